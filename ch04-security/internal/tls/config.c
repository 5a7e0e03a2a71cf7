/* config.c - server and client TLS configs from PEM files (see config.h).
 * The PEM text goes to the engine through nng's own setters, so the engine sees
 * exactly what any other nng program would give it. */
#include "internal/tls/config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "internal/err/err.h"
#include "internal/tls/engine_int.h"

/* A PEM file larger than this is a mistake, not a certificate chain. */
#define PEM_MAX (1024 * 1024)

/* read_pem reads path into a malloc'd NUL-terminated string (the caller frees). */
static int read_pem(const char *what, const char *path, char **out, char *err, size_t errsize)
{
    char why[PATH_MAX + 64];
    FILE *f = plog_fopen_read(path, why, sizeof why); /* a FIFO nobody writes to must not block a reload */
    if (f == NULL) {
        snprintf(err, errsize, "%s %s", what, why);
        return PLOG_EIO;
    }
    char *buf = malloc(PEM_MAX + 1);
    if (buf == NULL) {
        fclose(f);
        snprintf(err, errsize, "%s %s: out of memory", what, path);
        return PLOG_ENOMEM;
    }
    size_t n = fread(buf, 1, PEM_MAX + 1, f);
    int rerr = ferror(f) ? errno : 0;
    fclose(f);
    if (rerr != 0 || n > PEM_MAX) {
        snprintf(err, errsize, "%s %s: %s", what, path, rerr != 0 ? strerror(rerr) : "file too large");
        free(buf);
        return PLOG_EIO;
    }
    buf[n] = '\0';
    if (strlen(buf) != n || strstr(buf, "-----BEGIN ") == NULL) {
        snprintf(err, errsize, "%s %s: not a PEM file", what, path);
        free(buf);
        return PLOG_ETLS;
    }
    *out = buf;
    return PLOG_OK;
}

/* tls_fail turns an nng setter's failure into PLOG_ETLS with the engine's reason. */
static int tls_fail(nng_tls_config *cfg, int nrv, const char *what, const char *path, char *err,
                    size_t errsize)
{
    char why[PLOG_TLS_ERRMSG_SIZE];
    if (!plog_tls_config_errmsg(cfg, why, sizeof why))
        snprintf(why, sizeof why, "%s", nng_strerror(nrv));
    snprintf(err, errsize, "%s %s: %s", what, path, why);
    return nrv == NNG_ENOMEM ? PLOG_ENOMEM : PLOG_ETLS;
}

/* check_server_cert refuses the first certificate of the PEM text cert (from
 * path) when it has expired: every client would refuse it, and such a server
 * started, or reloaded, and then failed every handshake. A certificate that does
 * not parse passes: the engine then says what is wrong with it. (A certificate
 * made for clients only fails its clients too, but a node may be given one on
 * purpose: the cluster tests check that its peers refuse it.) */
static int check_server_cert(const char *cert, const char *path, char *err, size_t errsize)
{
    BIO *b = BIO_new_mem_buf(cert, -1);
    X509 *x = b != NULL ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    int rv = PLOG_OK;
    if (x != NULL && X509_cmp_current_time(X509_get0_notAfter(x)) < 0) {
        struct tm tm;
        char when[32];
        if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) != 1 ||
            strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
            snprintf(when, sizeof when, "(unreadable date)");
        snprintf(err, errsize, "certificate file %s: expired on %s: every client would refuse it", path,
                 when);
        rv = PLOG_ETLS;
    }
    X509_free(x);
    ERR_clear_error();
    return rv;
}

/* The most a server's certificates and CA names may take in its handshake flight:
 * the whole flight (with ServerHello, the other messages and record overhead) must
 * fit nng 1.5.2's 16 KiB TLS send buffer and leave in one write. Past it, the
 * server writes the rest later, and when the client has hung up by then the write
 * fails EPIPE, which nng turns into NNG_ECLOSED and hands to the listener, which
 * then stops accepting for good (docs/NNG.md, pitfall 18). */
#define SERVER_FLIGHT_MAX (14 * 1024)

/* pem_der_bytes sums over the certificates of the PEM text pem the DER size of
 * each one (names false) or of its subject name as a certificate request lists it
 * (names true: 2 bytes of length each). */
static size_t pem_der_bytes(const char *pem, bool names)
{
    size_t total = 0;
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509 *x;
    while (b != NULL && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        int n = names ? i2d_X509_NAME(X509_get_subject_name(x), NULL) + 2 : i2d_X509(x, NULL);
        total += n > 0 ? (size_t)n : 0;
        X509_free(x);
    }
    BIO_free(b);
    ERR_clear_error();
    return total;
}

/* check_server_flight refuses a server whose certificate chain and CA names would
 * not fit one handshake flight (SERVER_FLIGHT_MAX). */
static int check_server_flight(const char *cert, const char *ca, const char *cert_file, const char *ca_file,
                               char *err, size_t errsize)
{
    size_t certs = pem_der_bytes(cert, false), names = pem_der_bytes(ca, true);
    if (certs + names <= SERVER_FLIGHT_MAX)
        return PLOG_OK;
    snprintf(
        err, errsize,
        "%s %s: the server's handshake would carry %zu bytes of certificates and CA names (at most %d: "
        "past it nng 1.5.2 stops accepting once a client hangs up mid-handshake; docs/NNG.md, pitfall 18)",
        names > certs ? "CA file" : "certificate file", names > certs ? ca_file : cert_file, certs + names,
        SERVER_FLIGHT_MAX);
    return PLOG_ETLS;
}

static int config_build(nng_tls_mode mode, const char *cert_file, const char *key_file, const char *ca_file,
                        const char *server_name, nng_tls_config **cfgp, char *err, size_t errsize)
{
    char *cert = NULL, *key = NULL, *ca = NULL;
    nng_tls_config *cfg = NULL;
    int rv, nrv;

    if (ca_file == NULL || (cert_file == NULL) != (key_file == NULL) ||
        (mode == NNG_TLS_MODE_SERVER && cert_file == NULL)) {
        snprintf(err, errsize, "TLS needs a CA file%s",
                 mode == NNG_TLS_MODE_SERVER ? ", a certificate and a key"
                                             : " (and a certificate with its key)");
        return PLOG_EINVAL;
    }
    if (mode == NNG_TLS_MODE_CLIENT && (server_name == NULL || server_name[0] == '\0')) {
        /* Never "no hostname check": any certificate of the CA would pass for the server. */
        snprintf(err, errsize, "a TLS client needs the server name to verify (an IP address or DNS name)");
        return PLOG_EINVAL;
    }
    if ((rv = read_pem("CA file", ca_file, &ca, err, errsize)) != PLOG_OK)
        goto fail;
    if (cert_file != NULL &&
        ((rv = read_pem("certificate file", cert_file, &cert, err, errsize)) != PLOG_OK ||
         (rv = read_pem("key file", key_file, &key, err, errsize)) != PLOG_OK))
        goto fail;
    if (mode == NNG_TLS_MODE_SERVER &&
        ((rv = check_server_cert(cert, cert_file, err, errsize)) != PLOG_OK ||
         (rv = check_server_flight(cert, ca, cert_file, ca_file, err, errsize)) != PLOG_OK))
        goto fail;
    if ((rv = plog_tls_config_alloc(mode, &cfg)) != PLOG_OK) {
        snprintf(err, errsize, "TLS config: %s (is engine %s registered?)", plog_strerror(rv),
                 PLOG_TLS_ENGINE_NAME);
        goto fail;
    }
    if ((nrv = nng_tls_config_ca_chain(cfg, ca, NULL)) != 0) {
        rv = tls_fail(cfg, nrv, "CA file", ca_file, err, errsize);
        goto fail;
    }
    if (cert != NULL && (nrv = nng_tls_config_own_cert(cfg, cert, key, NULL)) != 0) {
        /* Name the file the engine could not use: the key when it says so, both
         * when they do not belong together, else the certificate. */
        char why[PLOG_TLS_ERRMSG_SIZE], both[2 * PATH_MAX + 8];
        const char *what = "certificate file", *path = cert_file;
        if (plog_tls_config_errmsg(cfg, why, sizeof why) &&
            strncmp(why, "no usable PEM private key", 25) == 0) {
            what = "key file";
            path = key_file;
        } else if (strstr(why, "does not match") != NULL) {
            snprintf(both, sizeof both, "%s and %s", cert_file, key_file);
            what = "certificate and key files";
            path = both;
        }
        rv = tls_fail(cfg, nrv, what, path, err, errsize);
        goto fail;
    }
    if ((nrv = nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED)) != 0 ||
        (server_name != NULL && (nrv = nng_tls_config_server_name(cfg, server_name)) != 0) ||
        (nrv = nng_tls_config_version(cfg, NNG_TLS_1_2, NNG_TLS_1_3)) != 0) {
        rv = tls_fail(cfg, nrv, "TLS config", server_name != NULL ? server_name : "", err, errsize);
        goto fail;
    }
    plog_tls_config_clear_errmsg(cfg);
    free(ca);
    free(cert);
    free(key);
    *cfgp = cfg;
    return PLOG_OK;

fail:
    if (cfg != NULL)
        nng_tls_config_free(cfg);
    free(ca);
    free(cert);
    free(key);
    return rv;
}

int plog_tls_config_server(const char *cert_file, const char *key_file, const char *ca_file,
                           nng_tls_config **cfgp, char *err, size_t errsize)
{
    return config_build(NNG_TLS_MODE_SERVER, cert_file, key_file, ca_file, NULL, cfgp, err, errsize);
}

int plog_tls_config_server_reload(nng_tls_config *live, const char *cert_file, const char *key_file,
                                  const char *ca_file, char *err, size_t errsize)
{
    nng_tls_config *fresh;
    int rv = plog_tls_config_server(cert_file, key_file, ca_file, &fresh, err, errsize);
    if (rv != PLOG_OK)
        return rv;
    if ((rv = plog_tls_config_adopt(live, fresh)) != PLOG_OK)
        snprintf(err, errsize, "TLS reload: not a server config of engine %s", PLOG_TLS_ENGINE_NAME);
    nng_tls_config_free(fresh);
    return rv;
}

int plog_tls_config_client(const char *cert_file, const char *key_file, const char *ca_file,
                           const char *server_name, nng_tls_config **cfgp, char *err, size_t errsize)
{
    return config_build(NNG_TLS_MODE_CLIENT, cert_file, key_file, ca_file, server_name, cfgp, err, errsize);
}

bool plog_tls_url_is_tls(const char *url)
{
    return strncmp(url, "tls+tcp://", 10) == 0 || strncmp(url, "tls+tcp4://", 11) == 0 ||
           strncmp(url, "tls+tcp6://", 11) == 0;
}

int plog_tls_url_host(const char *url, char *host, size_t size)
{
    const char *p = strstr(url, "://");
    if (p == NULL)
        return PLOG_EINVAL;
    p += 3;
    const char *end;
    if (*p == '[') {
        p++;
        if ((end = strchr(p, ']')) == NULL)
            return PLOG_EINVAL;
    } else {
        end = p + strcspn(p, ":/");
    }
    size_t n = (size_t)(end - p);
    if (n == 0 || n >= size)
        return PLOG_EINVAL;
    memcpy(host, p, n);
    host[n] = '\0';
    return PLOG_OK;
}
