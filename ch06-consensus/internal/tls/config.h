/* config.h - TLS configurations for proglog's servers and clients, from PEM files.
 *
 * Mutual TLS, as the book's chapter 5: the server presents its certificate and
 * requires a client certificate that chains to the CA; the client presents its own
 * certificate and checks that the server's chains to the CA and carries the name it
 * dialed (an IP literal is matched against the certificate's IP SANs, a DNS name
 * against its DNS SANs). TLS 1.2 to 1.3; OpenSSL picks 1.3 when both sides have it.
 *
 * The configs are nng_tls_config objects bound to this chapter's OpenSSL engine
 * (engine.h): attach one with nng_listener_set_ptr / nng_dialer_set_ptr and
 * NNG_OPT_TLS_CONFIG, before starting the listener or dialer. The listener or dialer
 * takes its own reference, so the caller may nng_tls_config_free() its own at once. */
#ifndef PLOG_TLS_CONFIG_H
#define PLOG_TLS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

#include "internal/tls/engine.h"

/* plog_tls_config_server reads cert_file (our certificate, then any chain), key_file
 * (its private key, unencrypted PEM) and ca_file (the CAs that client certificates
 * must chain to) and builds a server config that requires a verified client
 * certificate. On PLOG_OK *cfgp holds one reference (nng_tls_config_free). On failure
 * err (errsize bytes, NUL-terminated) names the file and the reason: PLOG_EINVAL (a
 * NULL path), PLOG_EIO (unreadable file), PLOG_ETLS (not PEM, key does not match),
 * PLOG_ENOMEM. */
int plog_tls_config_server(const char *cert_file, const char *key_file, const char *ca_file,
                           nng_tls_config **cfgp, char *err, size_t errsize);

/* plog_tls_config_server_reload reads the three files again, as
 * plog_tls_config_server, and on PLOG_OK makes live (a server config from
 * plog_tls_config_server, possibly in use by a started listener) present the new
 * certificate and trust the new CAs on every connection accepted from then on.
 * Connections already open keep the certificate and CAs they were made with. On
 * failure live is unchanged and err names the file and the reason, with the codes of
 * plog_tls_config_server (PLOG_EINVAL also when live is not such a config). nng
 * fixes a listener's config at creation and refuses changes once it is in use;
 * this swaps the engine's OpenSSL context under it instead. */
int plog_tls_config_server_reload(nng_tls_config *live, const char *cert_file, const char *key_file,
                                  const char *ca_file, char *err, size_t errsize);

/* plog_tls_config_client builds a client config that verifies the server against
 * ca_file and server_name (a DNS name or an IP literal; see plog_tls_url_host;
 * required: NULL or "" is PLOG_EINVAL, never a client that checks no name), and
 * presents cert_file/key_file. cert_file and key_file are both given or both NULL;
 * NULL means no client certificate, which the servers of this project refuse (the
 * tests use it to prove that). Ownership and errors as plog_tls_config_server. */
int plog_tls_config_client(const char *cert_file, const char *key_file, const char *ca_file,
                           const char *server_name, nng_tls_config **cfgp, char *err, size_t errsize);

/* plog_tls_url_is_tls: true when url's scheme is tls+tcp, tls+tcp4 or tls+tcp6. */
bool plog_tls_url_is_tls(const char *url);

/* plog_tls_url_host copies the host of a "scheme://host:port" URL into host (size
 * bytes), without the brackets of an IPv6 literal: the server name a client should
 * verify. PLOG_EINVAL when url has no host or host does not fit. */
int plog_tls_url_host(const char *url, char *host, size_t size);

#endif
