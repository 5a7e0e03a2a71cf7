/* authorizer.c - the book's Casbin ACL, fixed model, policy.csv rules (see
 * authorizer.h). Rules are kept as an array of (subject, object, action) strings,
 * each malloc'd; a check is a linear scan (a policy has a handful of lines).
 *
 * Reload: a check holds the read side of a rwlock for its scan; plog_auth_reload
 * parses the new files outside the lock, then swaps the rule arrays under the write
 * side, so a check sees the old rules or the new ones, never a mix, and the old
 * array is freed only once no check can be reading it. */
#include "internal/auth/authorizer.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal/err/err.h"

/* Lines longer than this are a mistake, not a rule. */
#define LINE_MAX_LEN 4096 /* a line's bytes, its newline and a NUL */

struct rule {
    char *field[3]; /* subject, object, action */
    int line;       /* in the policy file */
};

struct plog_auth {
    pthread_rwlock_t lock; /* read: a check; write: the swap of a reload */
    struct rule *rules;
    size_t n, cap;
};

/* trim cuts leading and trailing blanks in place and returns the start. */
static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* squeeze copies s without any blanks into out (size bytes, truncating). */
static void squeeze(const char *s, char *out, size_t size)
{
    size_t j = 0;
    for (; *s != '\0' && j + 1 < size; s++)
        if (!isspace((unsigned char)*s))
            out[j++] = *s;
    out[j] = '\0';
}

/* read_line reads one line of f into buf (without its newline). Returns 1 for a
 * line, 0 at the end, -1 for a line too long, -2 for an I/O error, -3 for a line
 * that holds a NUL byte (fgets read more bytes than the string it left). */
static int read_line(FILE *f, char *buf, size_t size)
{
    long at = ftell(f);
    if (fgets(buf, (int)size, f) == NULL)
        return ferror(f) ? -2 : 0;
    size_t n = strlen(buf);
    if (at >= 0 && ftell(f) - at != (long)n)
        return -3;
    if (n > 0 && buf[n - 1] == '\n') {
        buf[--n] = '\0';
    } else if (!feof(f)) {
        return -1;
    }
    if (n > 0 && buf[n - 1] == '\r')
        buf[--n] = '\0';
    return 1;
}

/* read_failed says why read_line returned r (< 0) at line lineno of path. */
static int read_failed(int r, const char *path, int lineno, char *err, size_t errsize)
{
    if (r == -1) {
        snprintf(err, errsize, "%s:%d: line too long (the limit is %d bytes)", path, lineno,
                 LINE_MAX_LEN - 2);
        return PLOG_EINVAL;
    }
    if (r == -3) {
        snprintf(err, errsize, "%s:%d: a NUL byte in the line (the file must be text)", path, lineno);
        return PLOG_EINVAL;
    }
    snprintf(err, errsize, "%s:%d: %s", path, lineno, strerror(errno));
    return PLOG_EIO;
}

/* open_text opens the model or policy file at path for reading, past a byte
 * order mark, without waiting for good (plog_fopen_read: a FIFO nobody wrote to
 * blocked the open, and a SIGHUP reload with it; a directory read "path:1: Is a
 * directory"). */
static FILE *open_text(const char *path, char *err, size_t errsize)
{
    FILE *f = plog_fopen_read(path, err, errsize);
    if (f == NULL)
        return NULL;
    /* A UTF-8 byte order mark (some editors write one) is not part of line 1,
     * where it made "p" read as an unknown rule type that looked like "p". */
    unsigned char bom[3];
    if (fread(bom, 1, sizeof bom, f) != sizeof bom || memcmp(bom, "\xEF\xBB\xBF", sizeof bom) != 0)
        rewind(f);
    return f;
}

/* ---- model ------------------------------------------------------------------------ */

enum { SEC_NONE, SEC_REQUEST, SEC_POLICY, SEC_EFFECT, SEC_MATCHERS, SEC_COUNT };

static const struct {
    const char *section;
    const char *key;
    const char *want; /* the value, blanks removed */
} model_rules[SEC_COUNT] = {
    [SEC_REQUEST] = {"request_definition", "r", "sub,obj,act"},
    [SEC_POLICY] = {"policy_definition", "p", "sub,obj,act"},
    [SEC_EFFECT] = {"policy_effect", "e", "some(where(p.eft==allow))"},
    [SEC_MATCHERS] = {"matchers", "m", "r.sub==p.sub&&r.obj==p.obj&&r.act==p.act"},
};

static int check_model(const char *path, char *err, size_t errsize)
{
    FILE *f = open_text(path, err, errsize);
    if (f == NULL)
        return PLOG_EIO;
    char line[LINE_MAX_LEN], squeezed[LINE_MAX_LEN];
    bool seen[SEC_COUNT] = {false};
    int sec = SEC_NONE, lineno = 0, r, rv = PLOG_OK;

    while ((r = read_line(f, line, sizeof line)) == 1) {
        lineno++;
        char *s = trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        if (*s == '[') {
            char *end = strchr(s, ']');
            if (end == NULL || end[1] != '\0') {
                snprintf(err, errsize, "%s:%d: malformed section header \"%s\"", path, lineno, s);
                rv = PLOG_EINVAL;
                goto done;
            }
            *end = '\0';
            const char *name = trim(s + 1);
            sec = SEC_NONE;
            for (int i = SEC_REQUEST; i < SEC_COUNT; i++)
                if (strcmp(name, model_rules[i].section) == 0)
                    sec = i;
            if (sec == SEC_NONE) {
                snprintf(err, errsize,
                         "%s:%d: section [%s] is not supported (roles and other "
                         "Casbin features are not implemented)",
                         path, lineno, name);
                rv = PLOG_EINVAL;
                goto done;
            }
            continue;
        }
        char *eq = strchr(s, '=');
        if (sec == SEC_NONE || eq == NULL) {
            snprintf(err, errsize, "%s:%d: expected \"key = value\" inside a section, got \"%s\"", path,
                     lineno, s);
            rv = PLOG_EINVAL;
            goto done;
        }
        *eq = '\0';
        const char *key = trim(s);
        squeeze(eq + 1, squeezed, sizeof squeezed);
        if (strcmp(key, model_rules[sec].key) != 0 || strcmp(squeezed, model_rules[sec].want) != 0 ||
            seen[sec]) {
            snprintf(err, errsize,
                     "%s:%d: unsupported [%s] entry \"%s = %s\"; the only model "
                     "supported is the book's (%s = %s)",
                     path, lineno, model_rules[sec].section, key, squeezed, model_rules[sec].key,
                     model_rules[sec].want);
            rv = PLOG_EINVAL;
            goto done;
        }
        seen[sec] = true;
    }
    if (r < 0) {
        rv = read_failed(r, path, lineno + 1, err, errsize);
        goto done;
    }
    for (int i = SEC_REQUEST; i < SEC_COUNT; i++) {
        if (!seen[i]) {
            snprintf(err, errsize, "%s: missing [%s] %s = ...", path, model_rules[i].section,
                     model_rules[i].key);
            rv = PLOG_EINVAL;
            goto done;
        }
    }
done:
    fclose(f);
    return rv;
}

/* ---- policy ----------------------------------------------------------------------- */

static const char *const field_names[] = {"subject", "object", "action"};

/* split_csv splits s at commas into at most max trimmed fields, stripping one pair
 * of surrounding double quotes. Returns the number of fields, or max + 1 if more. */
static int split_csv(char *s, char **fields, int max)
{
    int n = 0;
    for (;;) {
        char *comma = strchr(s, ',');
        if (comma != NULL)
            *comma = '\0';
        if (n == max)
            return max + 1;
        char *f = trim(s);
        size_t len = strlen(f);
        if (len >= 2 && f[0] == '"' && f[len - 1] == '"') {
            f[len - 1] = '\0';
            f++;
        }
        fields[n++] = f;
        if (comma == NULL)
            return n;
        s = comma + 1;
    }
}

static int add_rule(plog_auth *a, char *const f[3], int line)
{
    if (a->n == a->cap) {
        size_t cap = a->cap == 0 ? 8 : a->cap * 2;
        struct rule *r = realloc(a->rules, cap * sizeof *r);
        if (r == NULL)
            return PLOG_ENOMEM;
        a->rules = r;
        a->cap = cap;
    }
    struct rule *r = &a->rules[a->n];
    r->line = line;
    for (int i = 0; i < 3; i++) {
        if ((r->field[i] = strdup(f[i])) == NULL) {
            while (i-- > 0)
                free(r->field[i]);
            return PLOG_ENOMEM;
        }
    }
    a->n++;
    return PLOG_OK;
}

static int load_policy(plog_auth *a, const char *path, char *err, size_t errsize)
{
    FILE *f = open_text(path, err, errsize);
    if (f == NULL)
        return PLOG_EIO;
    char line[LINE_MAX_LEN];
    int lineno = 0, r, rv = PLOG_OK;

    while ((r = read_line(f, line, sizeof line)) == 1) {
        lineno++;
        char *s = trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        char *fields[4];
        int n = split_csv(s, fields, 4);
        if (fields[0][0] == 'g' && (fields[0][1] == '\0' || isdigit((unsigned char)fields[0][1]))) {
            snprintf(err, errsize, "%s:%d: role lines (\"%s, ...\") are not supported", path, lineno,
                     fields[0]);
            rv = PLOG_EINVAL;
            goto done;
        }
        if (strcmp(fields[0], "p") != 0) {
            snprintf(err, errsize,
                     "%s:%d: unknown rule type \"%s\" (want \"p, subject, object, "
                     "action\")",
                     path, lineno, fields[0]);
            rv = PLOG_EINVAL;
            goto done;
        }
        if (n != 4) {
            snprintf(err, errsize, "%s:%d: want 4 fields (p, subject, object, action), got %s%d", path,
                     lineno, n > 4 ? "more than " : "", n > 4 ? 4 : n);
            rv = PLOG_EINVAL;
            goto done;
        }
        for (int i = 0; i < 3; i++) {
            if (fields[i + 1][0] == '\0') {
                snprintf(err, errsize, "%s:%d: empty %s", path, lineno, field_names[i]);
                rv = PLOG_EINVAL;
                goto done;
            }
            /* `p, "root, *, produce` was a rule for the subject `"root`, loaded in silence */
            if (strchr(fields[i + 1], '"') != NULL) {
                snprintf(err, errsize, "%s:%d: a stray double quote in the %s (quote a whole field, or none)",
                         path, lineno, field_names[i]);
                rv = PLOG_EINVAL;
                goto done;
            }
        }
        if ((rv = add_rule(a, fields + 1, lineno)) != PLOG_OK) {
            snprintf(err, errsize, "%s:%d: out of memory", path, lineno);
            goto done;
        }
    }
    if (r < 0) {
        rv = read_failed(r, path, lineno + 1, err, errsize);
    }
done:
    fclose(f);
    return rv;
}

/* ---- public ----------------------------------------------------------------------- */

int plog_auth_new(const char *model_path, const char *policy_path, plog_auth **ap, char *err, size_t errsize)
{
    int rv;
    if (policy_path == NULL) {
        snprintf(err, errsize, "no ACL policy file");
        return PLOG_EINVAL;
    }
    if (model_path != NULL && (rv = check_model(model_path, err, errsize)) != PLOG_OK)
        return rv;
    plog_auth *a = calloc(1, sizeof *a);
    if (a == NULL || pthread_rwlock_init(&a->lock, NULL) != 0) {
        free(a);
        snprintf(err, errsize, "out of memory");
        return PLOG_ENOMEM;
    }
    if ((rv = load_policy(a, policy_path, err, errsize)) != PLOG_OK) {
        plog_auth_free(a);
        return rv;
    }
    *ap = a;
    return PLOG_OK;
}

void plog_auth_free(plog_auth *a)
{
    if (a == NULL)
        return;
    for (size_t i = 0; i < a->n; i++)
        for (int j = 0; j < 3; j++)
            free(a->rules[i].field[j]);
    free(a->rules);
    pthread_rwlock_destroy(&a->lock);
    free(a);
}

int plog_auth_reload(plog_auth *a, const char *model_path, const char *policy_path, char *err, size_t errsize)
{
    plog_auth *fresh;
    int rv = plog_auth_new(model_path, policy_path, &fresh, err, errsize);
    if (rv != PLOG_OK)
        return rv;
    pthread_rwlock_wrlock(&a->lock);
    struct rule *rules = a->rules;
    size_t n = a->n, cap = a->cap;
    a->rules = fresh->rules;
    a->n = fresh->n;
    a->cap = fresh->cap;
    pthread_rwlock_unlock(&a->lock);
    fresh->rules = rules; /* the old rules go with fresh */
    fresh->n = n;
    fresh->cap = cap;
    plog_auth_free(fresh);
    return PLOG_OK;
}

static bool matches(const char *rule, const char *value)
{
    return strcmp(rule, "*") == 0 || strcmp(rule, value) == 0;
}

/* Go: Authorizer.Authorize. a is const to its callers: the lock is the one part a
 * check writes, so it is taken through a cast. */
int plog_auth_authorize(const plog_auth *a, const char *subject, const char *object, const char *action)
{
    if (subject == NULL || subject[0] == '\0' || object == NULL || action == NULL)
        return PLOG_EPERM;
    pthread_rwlock_t *lock = (pthread_rwlock_t *)&a->lock;
    int rv = PLOG_EPERM;
    pthread_rwlock_rdlock(lock);
    for (size_t i = 0; i < a->n; i++) {
        const struct rule *r = &a->rules[i];
        if (matches(r->field[0], subject) && matches(r->field[1], object) && matches(r->field[2], action)) {
            rv = PLOG_OK;
            break;
        }
    }
    pthread_rwlock_unlock(lock);
    return rv;
}

void plog_auth_denial(const char *subject, const char *object, const char *action, char *buf, size_t size)
{
    /* Go: fmt.Sprintf("%s not permitted to %s to %s", subject, action, object) */
    snprintf(buf, size, "%s not permitted to %s to %s",
             subject != NULL && subject[0] != '\0' ? subject : "(unauthenticated)",
             action != NULL ? action : "", object != NULL ? object : "");
}

size_t plog_auth_rules(const plog_auth *a)
{
    pthread_rwlock_t *lock = (pthread_rwlock_t *)&a->lock;
    pthread_rwlock_rdlock(lock);
    size_t n = a->n;
    pthread_rwlock_unlock(lock);
    return n;
}

size_t plog_auth_unmatched(const plog_auth *a, const char *const actions[], size_t nactions, char *buf,
                           size_t size)
{
    pthread_rwlock_t *lock = (pthread_rwlock_t *)&a->lock;
    size_t count = 0;
    if (size > 0)
        buf[0] = '\0';
    pthread_rwlock_rdlock(lock);
    for (size_t i = 0; i < a->n; i++) {
        const struct rule *r = &a->rules[i];
        const char *what = NULL, *value = NULL;
        if (!matches(r->field[1], PLOG_AUTH_OBJECT_ANY)) {
            what = "object", value = r->field[1];
        } else if (strcmp(r->field[2], "*") != 0) {
            what = "action", value = r->field[2];
            for (size_t k = 0; k < nactions && what != NULL; k++)
                if (matches(r->field[2], actions[k]))
                    what = NULL;
        }
        if (what != NULL && count++ == 0)
            snprintf(buf, size, "line %d: %s \"%s\"", r->line, what, value);
    }
    pthread_rwlock_unlock(lock);
    return count;
}
