/* rejoin.c - the members a node has seen, kept in DATA_DIR/members (rejoin.h).
 * One line per member: its name and its gossip address, separated by a space. */
#include "internal/agent/rejoin.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "internal/err/err.h"

static int find(const plog_agent_rejoin *r, const char *name)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->m[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* store writes every member to a temporary file and renames it over the file:
 * a crash leaves the old list or the new one, never half of one. No fsync: the
 * list is a hint (rejoin.h). */
static int store(const plog_agent_rejoin *r)
{
    char tmp[sizeof r->path + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", r->path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return PLOG_EIO;
    for (size_t i = 0; i < r->n; i++)
        fprintf(f, "%s %s\n", r->m[i].name, r->m[i].addr);
    if (fclose(f) != 0 || rename(tmp, r->path) != 0) {
        unlink(tmp);
        return PLOG_EIO;
    }
    return PLOG_OK;
}

/* fits: a name or address the file can hold: 1..max bytes, no blanks. */
static bool fits(const char *s, size_t max)
{
    size_t n = strlen(s);
    return n > 0 && n <= max && strpbrk(s, " \t\r\n") == NULL;
}

int plog_agent_rejoin_load(plog_agent_rejoin *r, const char *dir, size_t *skipped)
{
    r->n = 0;
    *skipped = 0;
    int len = snprintf(r->path, sizeof r->path, "%s/members", dir);
    if (len < 0 || (size_t)len >= sizeof r->path)
        return PLOG_EINVAL;
    FILE *f = fopen(r->path, "r");
    if (f == NULL)
        return errno == ENOENT ? PLOG_OK : PLOG_EIO;
    char line[PLOG_GOSSIP_MAX_NAME + PLOG_GOSSIP_MAX_ADDR + 8];
    while (fgets(line, sizeof line, f) != NULL) {
        size_t n = strcspn(line, "\n");
        bool whole = line[n] == '\n' || feof(f);
        line[n] = '\0';
        char *sp = strchr(line, ' ');
        if (!whole || sp == NULL || r->n == PLOG_AGENT_REJOIN_MAX) {
            (*skipped)++;
            int c;
            while (!whole && (c = fgetc(f)) != EOF && c != '\n')
                ; /* the rest of an overlong line */
            continue;
        }
        *sp = '\0';
        if (!fits(line, PLOG_GOSSIP_MAX_NAME) || !fits(sp + 1, PLOG_GOSSIP_MAX_ADDR) || find(r, line) >= 0) {
            (*skipped)++;
            continue;
        }
        snprintf(r->m[r->n].name, sizeof r->m[r->n].name, "%s", line);
        snprintf(r->m[r->n].addr, sizeof r->m[r->n].addr, "%s", sp + 1);
        r->n++;
    }
    int rv = ferror(f) ? PLOG_EIO : PLOG_OK;
    fclose(f);
    return rv;
}

int plog_agent_rejoin_saw(plog_agent_rejoin *r, const char *name, const char *addr)
{
    if (!fits(name, PLOG_GOSSIP_MAX_NAME) || !fits(addr, PLOG_GOSSIP_MAX_ADDR))
        return PLOG_EINVAL;
    int i = find(r, name);
    if (i >= 0 && strcmp(r->m[i].addr, addr) == 0)
        return PLOG_OK;
    if (i < 0) {
        if (r->n == PLOG_AGENT_REJOIN_MAX)
            return PLOG_OK;
        i = (int)r->n++;
        snprintf(r->m[i].name, sizeof r->m[i].name, "%s", name);
    }
    snprintf(r->m[i].addr, sizeof r->m[i].addr, "%s", addr);
    return store(r);
}

int plog_agent_rejoin_left(plog_agent_rejoin *r, const char *name)
{
    int i = find(r, name);
    if (i < 0)
        return PLOG_OK;
    r->m[i] = r->m[--r->n];
    return store(r);
}

void plog_agent_rejoin_join_list(const plog_agent_rejoin *r, const char **out, size_t cap, size_t *n)
{
    for (size_t i = 0; i < r->n && *n < cap; i++) {
        bool have = false;
        for (size_t k = 0; k < *n && !have; k++)
            have = strcmp(out[k], r->m[i].addr) == 0;
        if (!have)
            out[(*n)++] = r->m[i].addr;
    }
}
