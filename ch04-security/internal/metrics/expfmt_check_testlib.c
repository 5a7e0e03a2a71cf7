/* expfmt_check_testlib.c - the strict Prometheus text-format reader of the metrics tests (expfmt_check.h), in
 * the test library (linked only into tests and benchmarks). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "internal/metrics/expfmt_check.h"

void expfmt_msg(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, size, fmt, ap);
    va_end(ap);
}

bool expfmt_name_char(char c, bool first, bool colon)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
        return true;
    if (colon && c == ':')
        return true;
    return !first && c >= '0' && c <= '9';
}

bool expfmt_name(const char **p, char *out, size_t size, bool colon)
{
    size_t n = 0;

    if (!expfmt_name_char(**p, true, colon))
        return false;
    while (expfmt_name_char(**p, n == 0, colon)) {
        if (n + 1 >= size)
            return false;
        out[n++] = *(*p)++;
    }
    out[n] = '\0';
    return true;
}

bool expfmt_value(const char *s, double *v)
{
    char *end;

    if (strcmp(s, "+Inf") == 0) {
        *v = INFINITY;
        return true;
    }
    if (strcmp(s, "-Inf") == 0) {
        *v = -INFINITY;
        return true;
    }
    if (strcmp(s, "NaN") == 0) {
        *v = NAN;
        return true;
    }
    if (*s == '\0')
        return false;
    *v = strtod(s, &end);
    /* strtod also takes "inf"/"nan"/hex: the format does not. */
    return *end == '\0' && !isinf(*v) && !isnan(*v) && strpbrk(s, "xXiInN") == NULL;
}

bool expfmt_parse_sample(const char *line, struct expfmt_sample *s, char *why, size_t wlen)
{
    const char *p = line;

    memset(s, 0, sizeof(*s));
    if (!expfmt_name(&p, s->name, sizeof(s->name), true)) {
        expfmt_msg(why, wlen, "bad metric name");
        return false;
    }
    if (*p == '{') {
        p++;
        while (*p != '}') {
            size_t n = 0;
            int i = s->nlabels;
            if (i == EXPFMT_MAX_LABELS) {
                expfmt_msg(why, wlen, "too many labels");
                return false;
            }
            if (!expfmt_name(&p, s->lname[i], sizeof(s->lname[i]), false) || *p++ != '=' || *p++ != '"') {
                expfmt_msg(why, wlen, "bad label name or missing =\"");
                return false;
            }
            for (; *p != '"'; p++) {
                char c = *p;
                if (c == '\0' || c == '\n') {
                    expfmt_msg(why, wlen, "unterminated label value");
                    return false;
                }
                if (c == '\\') {
                    p++;
                    if (*p == 'n')
                        c = '\n';
                    else if (*p == '\\' || *p == '"')
                        c = *p;
                    else {
                        expfmt_msg(why, wlen, "bad escape in label value");
                        return false;
                    }
                }
                if (n + 1 >= sizeof(s->lval[i])) {
                    expfmt_msg(why, wlen, "label value too long");
                    return false;
                }
                s->lval[i][n++] = c;
            }
            p++; /* closing quote */
            s->nlabels++;
            for (int j = 0; j < i; j++)
                if (strcmp(s->lname[j], s->lname[i]) == 0) {
                    expfmt_msg(why, wlen, "label %s twice", s->lname[i]);
                    return false;
                }
            if (*p == ',')
                p++;
            else if (*p != '}') {
                expfmt_msg(why, wlen, "expected , or } after a label");
                return false;
            }
        }
        p++;
    }
    if (*p++ != ' ') {
        expfmt_msg(why, wlen, "expected one space before the value");
        return false;
    }
    /* An optional timestamp would follow a second space; we never write one. */
    if (!expfmt_value(p, &s->value)) {
        expfmt_msg(why, wlen, "bad value \"%s\"", p);
        return false;
    }
    return true;
}

const char *expfmt_label(const struct expfmt_sample *s, const char *name)
{
    for (int i = 0; i < s->nlabels; i++)
        if (strcmp(s->lname[i], name) == 0)
            return s->lval[i];
    return NULL;
}

void expfmt_key(const struct expfmt_sample *s, char *key, size_t size)
{
    size_t o = 0;

    key[0] = '\0';
    for (int i = 0; i < s->nlabels && o < size; i++)
        if (strcmp(s->lname[i], "le") != 0)
            o += (size_t)snprintf(key + o, size - o, "%s=%s,", s->lname[i], s->lval[i]);
}

bool expfmt_has_suffix(const char *s, const char *fam, const char *suffix)
{
    size_t n = strlen(fam);
    return strncmp(s, fam, n) == 0 && strcmp(s + n, suffix) == 0;
}

bool expfmt_check(const char *text, struct expfmt_stats *st, char *why, size_t wlen)
{
    struct family {
        char name[128];
        char type[16];
        bool help, typed, sampled;
    } fams[64];
    int nfam = 0, cur = -1, lineno = 0;
    /* histogram series state */
    char hkey[1024] = "", part[16] = "";
    double last_le = -INFINITY, last_bucket = 0;
    bool have_inf = false;
    char(*seen)[1400] = calloc(EXPFMT_MAX_SERIES, sizeof(*seen));
    int nseen = 0;
    const char *p = text;
    bool ok = false;
    char msg[256] = "";

    memset(st, 0, sizeof(*st));
    if (seen == NULL) {
        expfmt_msg(why, wlen, "out of memory");
        return false;
    }
    if (*text == '\0' || text[strlen(text) - 1] != '\n') {
        expfmt_msg(msg, sizeof(msg), "text does not end with a newline");
        goto out;
    }
    while (*p != '\0') {
        char line[2048];
        const char *nl = strchr(p, '\n');
        size_t n = (size_t)(nl - p);
        lineno++;
        if (n >= sizeof(line)) {
            expfmt_msg(msg, sizeof(msg), "line too long");
            goto out;
        }
        memcpy(line, p, n);
        line[n] = '\0';
        p = nl + 1;
        if (n == 0)
            continue; /* empty lines are allowed and ignored */
        if (line[0] == '#') {
            const char *q;
            bool is_help = strncmp(line, "# HELP ", 7) == 0;
            bool is_type = strncmp(line, "# TYPE ", 7) == 0;
            char name[128];
            int f;
            if (!is_help && !is_type)
                continue; /* a comment */
            q = line + 7;
            if (!expfmt_name(&q, name, sizeof(name), true) || *q != ' ') {
                expfmt_msg(msg, sizeof(msg), "bad name in HELP/TYPE");
                goto out;
            }
            q++;
            for (f = 0; f < nfam && strcmp(fams[f].name, name) != 0; f++)
                ;
            if (f == nfam) {
                if (nfam == 64) {
                    expfmt_msg(msg, sizeof(msg), "too many families");
                    goto out;
                }
                memset(&fams[f], 0, sizeof(fams[f]));
                snprintf(fams[f].name, sizeof(fams[f].name), "%s", name);
                nfam++;
            }
            if (fams[f].sampled) {
                expfmt_msg(msg, sizeof(msg), "HELP/TYPE of %s after its samples", name);
                goto out;
            }
            if (is_help) {
                if (fams[f].help) {
                    expfmt_msg(msg, sizeof(msg), "second HELP for %s", name);
                    goto out;
                }
                fams[f].help = true;
            } else {
                if (fams[f].typed) {
                    expfmt_msg(msg, sizeof(msg), "second TYPE for %s", name);
                    goto out;
                }
                if (strcmp(q, "counter") && strcmp(q, "gauge") && strcmp(q, "histogram") &&
                    strcmp(q, "summary") && strcmp(q, "untyped")) {
                    expfmt_msg(msg, sizeof(msg), "unknown type \"%s\"", q);
                    goto out;
                }
                fams[f].typed = true;
                snprintf(fams[f].type, sizeof(fams[f].type), "%s", q);
            }
            continue;
        }
        struct expfmt_sample s;
        char key[1024], series[1400];
        if (!expfmt_parse_sample(line, &s, msg, sizeof(msg)))
            goto out;
        st->samples++;
        /* Find the sample's family: its own name, or a histogram's name plus suffix. */
        {
            int f = -1;
            for (int i = 0; i < nfam; i++) {
                const char *fn = fams[i].name;
                bool hist = strcmp(fams[i].type, "histogram") == 0;
                if (strcmp(s.name, fn) == 0 && !hist)
                    f = i;
                if (hist &&
                    (expfmt_has_suffix(s.name, fn, "_bucket") || expfmt_has_suffix(s.name, fn, "_sum") ||
                     expfmt_has_suffix(s.name, fn, "_count")))
                    f = i;
            }
            if (f < 0 || !fams[f].typed) {
                expfmt_msg(msg, sizeof(msg), "sample %s has no TYPE line before it", s.name);
                goto out;
            }
            if (f != cur) {
                if (fams[f].sampled) {
                    expfmt_msg(msg, sizeof(msg), "family %s is not contiguous", fams[f].name);
                    goto out;
                }
                if (cur >= 0 && strcmp(fams[cur].type, "histogram") == 0 && hkey[0] != '\0' &&
                    strcmp(part, "count") != 0) {
                    expfmt_msg(msg, sizeof(msg), "histogram %s series ends without _count", fams[cur].name);
                    goto out;
                }
                cur = f;
                hkey[0] = '\0';
                part[0] = '\0';
            }
            fams[f].sampled = true;
        }
        if (strcmp(fams[cur].type, "counter") == 0 && !(s.value >= 0)) {
            expfmt_msg(msg, sizeof(msg), "counter %s is negative", s.name);
            goto out;
        }
        expfmt_key(&s, key, sizeof(key));
        snprintf(series, sizeof(series), "%s{%s le=%s}", s.name, key,
                 expfmt_label(&s, "le") ? expfmt_label(&s, "le") : "");
        for (int i = 0; i < nseen; i++)
            if (strcmp(seen[i], series) == 0) {
                expfmt_msg(msg, sizeof(msg), "series %s appears twice", series);
                goto out;
            }
        if (nseen == EXPFMT_MAX_SERIES) {
            expfmt_msg(msg, sizeof(msg), "too many series");
            goto out;
        }
        snprintf(seen[nseen++], sizeof(seen[0]), "%s", series);
        if (strcmp(fams[cur].type, "histogram") != 0)
            continue;
        {
            const char *fn = fams[cur].name, *le = expfmt_label(&s, "le");
            bool bucket = expfmt_has_suffix(s.name, fn, "_bucket");
            if (bucket != (le != NULL)) {
                expfmt_msg(msg, sizeof(msg), "%s: le belongs on _bucket only", s.name);
                goto out;
            }
            if (bucket) {
                double lev;
                if (strcmp(hkey, key) != 0 || strcmp(part, "bucket") != 0) {
                    if (hkey[0] != '\0' && strcmp(part, "count") != 0) {
                        expfmt_msg(msg, sizeof(msg), "%s: series %s ends without _count", fn, hkey);
                        goto out;
                    }
                    if (strcmp(hkey, key) == 0) {
                        expfmt_msg(msg, sizeof(msg), "%s: series %s repeated", fn, key);
                        goto out;
                    }
                    snprintf(hkey, sizeof(hkey), "%s", key);
                    snprintf(part, sizeof(part), "bucket");
                    last_le = -INFINITY;
                    last_bucket = 0;
                    have_inf = false;
                    st->histograms++;
                }
                if (!expfmt_value(le, &lev) || isnan(lev) || !(lev > last_le) || have_inf) {
                    expfmt_msg(msg, sizeof(msg), "%s: le \"%s\" not increasing", fn, le);
                    goto out;
                }
                if (s.value < last_bucket) {
                    expfmt_msg(msg, sizeof(msg), "%s: bucket le=%s count %g below the previous %g", fn, le,
                               s.value, last_bucket);
                    goto out;
                }
                last_le = lev;
                last_bucket = s.value;
                have_inf = isinf(lev);
            } else if (expfmt_has_suffix(s.name, fn, "_sum")) {
                if (strcmp(hkey, key) != 0 || strcmp(part, "bucket") != 0 || !have_inf) {
                    expfmt_msg(msg, sizeof(msg), "%s_sum: not after the series' buckets ending in +Inf", fn);
                    goto out;
                }
                snprintf(part, sizeof(part), "sum");
            } else {
                if (strcmp(hkey, key) != 0 || strcmp(part, "sum") != 0) {
                    expfmt_msg(msg, sizeof(msg), "%s_count: not after the series' _sum", fn);
                    goto out;
                }
                if (s.value != last_bucket) {
                    expfmt_msg(msg, sizeof(msg), "%s_count %g differs from the +Inf bucket %g", fn, s.value,
                               last_bucket);
                    goto out;
                }
                snprintf(part, sizeof(part), "count");
            }
        }
    }
    if (cur >= 0 && strcmp(fams[cur].type, "histogram") == 0 && hkey[0] != '\0' &&
        strcmp(part, "count") != 0) {
        expfmt_msg(msg, sizeof(msg), "last histogram series ends without _count");
        goto out;
    }
    st->families = nfam;
    ok = true;
out:
    if (!ok)
        expfmt_msg(why, wlen, "line %d: %s", lineno, msg);
    free(seen);
    return ok;
}

double expfmt_find(const char *text, const char *series)
{
    size_t n = strlen(series);
    const char *p = text;

    while (p != NULL && *p != '\0') {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return -1;
}

const char *expfmt_find_str(const char *text, const char *series, char *buf, size_t size)
{
    size_t n = strlen(series);
    const char *p = text;

    while (p != NULL && *p != '\0') {
        if (strncmp(p, series, n) == 0 && p[n] == ' ') {
            const char *v = p + n + 1;
            size_t k = strcspn(v, "\n");
            snprintf(buf, size, "%.*s", (int)k, v);
            return buf;
        }
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return NULL;
}
