/* file.c - the YAML config file (see file.h), on libyaml's event parser.
 *
 * Accepted event stream: STREAM-START DOCUMENT-START MAPPING-START
 *   (SCALAR key (SCALAR value | SEQUENCE-START SCALAR* SEQUENCE-END))*
 *   MAPPING-END DOCUMENT-END STREAM-END
 * An empty file (no document) is an empty configuration. A file is at most
 * MAX_FILE_BYTES (every flag fits in far less: a larger one is not a config file,
 * and /dev/zero or an endless pipe would be read for good), a list at most
 * MAX_LIST_ITEMS values (start-join-addrs takes 64). */
#include "internal/config/file.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <yaml.h>

#include "internal/err/err.h"

#define MAX_FILE_BYTES (1u << 20)
#define MAX_LIST_ITEMS 1024

/* A file read through a byte budget (read_capped). */
struct capped {
    FILE *in;
    size_t left;
    bool over; /* the file has more than MAX_FILE_BYTES */
};

/* read_capped is libyaml's read handler: fread within the budget; 0 (an input
 * error to libyaml) past it. */
static int read_capped(void *arg, unsigned char *buf, size_t size, size_t *n)
{
    struct capped *c = arg;
    *n = fread(buf, 1, size < c->left + 1 ? size : c->left + 1, c->in);
    if (*n > c->left) {
        c->over = true;
        return 0;
    }
    c->left -= *n;
    return !ferror(c->in);
}

struct entry {
    char *key, *value;
    size_t line;
    bool list; /* the value was a sequence */
};

struct plog_config_file {
    struct entry *v;
    size_t n, cap;
};

static int add(plog_config_file *f, char *key, char *value, size_t line, bool list)
{
    if (f->n == f->cap) {
        size_t c = f->cap == 0 ? 16 : f->cap * 2;
        struct entry *v = realloc(f->v, c * sizeof *v);
        if (v == NULL)
            return PLOG_ENOMEM;
        f->v = v;
        f->cap = c;
    }
    f->v[f->n++] = (struct entry){key, value, line, list};
    return PLOG_OK;
}

/* append_item appends "," and s to *acc (a malloc'd string). */
static int append_item(char **acc, const char *s, size_t len)
{
    size_t have = *acc != NULL ? strlen(*acc) : 0;
    char *p = realloc(*acc, have + len + 2);
    if (p == NULL)
        return PLOG_ENOMEM;
    if (have > 0)
        p[have++] = ',';
    memcpy(p + have, s, len);
    p[have + len] = '\0';
    *acc = p;
    return PLOG_OK;
}

int plog_config_file_read(const char *path, plog_config_file **out, char *err, size_t errsize)
{
    FILE *in = fopen(path, "rb");
    struct stat st;
    if (in != NULL && fstat(fileno(in), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(in); /* a directory opens, and fails at the first read */
        in = NULL;
        errno = EISDIR;
    }
    if (in == NULL) {
        plog_errf(err, errsize, "%s: %s", path, strerror(errno));
        return PLOG_EIO;
    }
    plog_config_file *f = calloc(1, sizeof *f);
    yaml_parser_t p;
    if (f == NULL || !yaml_parser_initialize(&p)) {
        fclose(in);
        free(f);
        plog_errf(err, errsize, "out of memory");
        return PLOG_ENOMEM;
    }
    struct capped cap = {.in = in, .left = MAX_FILE_BYTES};
    yaml_parser_set_input(&p, read_capped, &cap);
    /* depth: 0 before the mapping, 1 in it expecting a key, 2 expecting a value,
     * 3 inside a sequence value. */
    int depth = 0, rv = PLOG_OK;
    bool done = false, seen_doc = false;
    char *key = NULL, *acc = NULL;
    size_t key_line = 0, items = 0;
    while (!done) {
        yaml_event_t e;
        if (!yaml_parser_parse(&p, &e)) {
            const char *why = p.problem != NULL ? p.problem : "malformed YAML";
            if (cap.over)
                plog_errf(err, errsize, "%s: larger than %u bytes: not a config file", path, MAX_FILE_BYTES);
            else if (p.error == YAML_READER_ERROR) /* the reader keeps no line, only the offset */
                plog_errf(err, errsize, "%s: byte %zu: %s", path, p.problem_offset, why);
            else
                plog_errf(err, errsize, "%s:%zu:%zu: %s", path, p.problem_mark.line + 1,
                          p.problem_mark.column + 1, why);
            rv = PLOG_EINVAL;
            break;
        }
        size_t line = e.start_mark.line + 1, col = e.start_mark.column + 1;
        const char *bad = NULL;
        char why[128];
        switch (e.type) {
        case YAML_STREAM_START_EVENT:
        case YAML_DOCUMENT_END_EVENT:
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (seen_doc)
                bad = "only one YAML document is allowed";
            seen_doc = true;
            break;
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_MAPPING_START_EVENT:
            if (depth != 0)
                bad = "values must be scalars or lists of scalars";
            depth = 1;
            break;
        case YAML_MAPPING_END_EVENT:
            depth = 0;
            break;
        case YAML_SEQUENCE_START_EVENT:
            if (depth != 2)
                bad = depth == 0 ? "the file must be a mapping of flag names to values"
                                 : "a key must be a scalar; lists may not nest";
            else
                depth = 3;
            items = 0;
            break;
        case YAML_SEQUENCE_END_EVENT:
            if (acc == NULL)
                acc = strdup("");
            if (acc == NULL || add(f, key, acc, key_line, true) != PLOG_OK)
                bad = "out of memory";
            else
                key = acc = NULL;
            depth = 1;
            break;
        case YAML_SCALAR_EVENT: {
            const char *s = (const char *)e.data.scalar.value;
            size_t len = e.data.scalar.length;
            if (depth == 0)
                bad = "the file must be a mapping of flag names to values";
            else if (memchr(s, '\0', len) != NULL)
                bad = "NUL in a value";
            else if (depth == 1) {
                for (size_t i = 0; i < f->n && bad == NULL; i++)
                    if (strlen(f->v[i].key) == len && memcmp(f->v[i].key, s, len) == 0) {
                        snprintf(why, sizeof why, "repeated key \"%.*s\" (first on line %zu)",
                                 (int)(len > 64 ? 64 : len), s, f->v[i].line);
                        bad = why;
                    }
                if (bad == NULL && (key = strndup(s, len)) == NULL)
                    bad = "out of memory";
                key_line = line;
                depth = 2;
            } else if (depth == 2) {
                char *v = strndup(s, len);
                if (v == NULL || add(f, key, v, key_line, false) != PLOG_OK) {
                    free(v);
                    bad = "out of memory";
                } else
                    key = NULL;
                depth = 1;
            } else if (++items > MAX_LIST_ITEMS) {
                snprintf(why, sizeof why, "a list of more than %d values", MAX_LIST_ITEMS);
                bad = why;
            } else if (append_item(&acc, s, len) != PLOG_OK)
                bad = "out of memory";
            break;
        }
        case YAML_ALIAS_EVENT:
            bad = "aliases are not allowed";
            break;
        default:
            bad = "unexpected YAML";
        }
        yaml_event_delete(&e);
        if (bad != NULL) {
            plog_errf(err, errsize, "%s:%zu:%zu: %s", path, line, col, bad);
            rv = strcmp(bad, "out of memory") == 0 ? PLOG_ENOMEM : PLOG_EINVAL;
            break;
        }
    }
    free(key);
    free(acc);
    yaml_parser_delete(&p);
    fclose(in);
    if (rv != PLOG_OK) {
        plog_config_file_free(f);
        return rv;
    }
    *out = f;
    return PLOG_OK;
}

const char *plog_config_file_get(const plog_config_file *f, const char *key)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->v[i].key, key) == 0)
            return f->v[i].value;
    return NULL;
}

size_t plog_config_file_count(const plog_config_file *f)
{
    return f->n;
}

const char *plog_config_file_key(const plog_config_file *f, size_t i)
{
    return f->v[i].key;
}

size_t plog_config_file_line(const plog_config_file *f, size_t i)
{
    return f->v[i].line;
}

bool plog_config_file_is_list(const plog_config_file *f, size_t i)
{
    return f->v[i].list;
}

void plog_config_file_free(plog_config_file *f)
{
    if (f == NULL)
        return;
    for (size_t i = 0; i < f->n; i++) {
        free(f->v[i].key);
        free(f->v[i].value);
    }
    free(f->v);
    free(f);
}
