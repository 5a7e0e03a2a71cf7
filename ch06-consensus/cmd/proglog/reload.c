/* reload.c - the log level file and the lines a SIGHUP writes (see reload.h). */
#include "cmd/proglog/reload.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "internal/agent/agent.h"
#include "internal/err/err.h"

void reload_block_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

void reload_raise_nofile(plog_logger *lg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max)
        return;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        plog_logger_log(lg, PLOG_LOGGER_WARN, "cannot raise the descriptor limit", "err", strerror(errno),
                        NULL);
}

int reload_read_level(const char *path, plog_logger_level *out, char *why, size_t size)
{
    char buf[64] = "";
    FILE *f = plog_fopen_read(path, why, size); /* a FIFO nobody writes to must not block the reload */
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    int bad = ferror(f) ? errno : 0;
    fclose(f);
    if (bad != 0) {
        snprintf(why, size, "%s: %s", path, strerror(bad));
        return -1;
    }
    buf[n] = '\0';
    char *w = buf + strspn(buf, " \t\r\n");
    w[strcspn(w, " \t\r\n")] = '\0';
    if (plog_logger_parse_level(w, out) != PLOG_OK) {
        snprintf(why, size, "%s: want debug, info, warn or error, got \"%.20s\"", path, w);
        return -1;
    }
    return 0;
}

/* NODE ends a line's key=value pairs with node=NAME, or ends them there when
 * node is NULL (plog_logger_log stops at a NULL key). */
#define NODE(node) (node) != NULL ? "node" : NULL, (node), NULL

void reload_warn_unmatched(plog_logger *lg, const char *node, const char *policy_file, const plog_auth *acl)
{
    char first[PLOG_AUTH_ERRMSG_SIZE], count[24];
    if (plog_auth_rules(acl) == 0) {
        plog_logger_log(lg, PLOG_LOGGER_WARN, "the policy has no rules: every request is denied", "file",
                        policy_file, NODE(node));
        return;
    }
    size_t n = plog_auth_unmatched(acl, plog_agent_acl_actions, PLOG_AGENT_ACL_ACTIONS, first, sizeof first);
    if (n == 0)
        return;
    snprintf(count, sizeof count, "%zu", n);
    plog_logger_log(lg, PLOG_LOGGER_WARN, "policy rules that never match", "file", policy_file, "rules",
                    count, "first", first, "matched", "object * and action produce, consume, gossip or *",
                    NODE(node));
}

/* blamed: the file of sec->files that err names (the longest such path), else
 * dflt. A key, a CA or a model that fails names itself in err, and the line's file=
 * must not say the certificate or the policy. */
static const char *blamed(const struct reload_security *sec, const char *err, const char *dflt)
{
    const char *best = dflt;
    size_t best_len = 0;
    for (size_t i = 0; i < sizeof sec->files / sizeof sec->files[0] && err != NULL; i++) {
        const char *f = sec->files[i];
        if (f != NULL && strlen(f) > best_len && strstr(err, f) != NULL) {
            best = f;
            best_len = strlen(f);
        }
    }
    return best;
}

void reload_finish(plog_logger *lg, const char *node, const char *level_file,
                   const struct reload_security *sec)
{
    char why[512], rules[24] = "0";
    const char *acl = "off", *tls = "off";
    if (sec != NULL) {
        acl = sec->acl == PLOG_OK ? "reloaded" : "kept";
        if (sec->acl != PLOG_OK)
            plog_logger_log(lg, PLOG_LOGGER_ERROR, "reload failed, keeping the old ACL", "file",
                            blamed(sec, sec->acl_err, sec->policy_file), "err", sec->acl_err, NODE(node));
        else if (sec->acl_now != NULL)
            reload_warn_unmatched(lg, node, sec->policy_file, sec->acl_now);
        snprintf(rules, sizeof rules, "%zu", sec->acl_rules);
        tls = sec->tls == PLOG_OK ? "reloaded" : "kept";
        if (sec->tls != PLOG_OK)
            plog_logger_log(lg, PLOG_LOGGER_ERROR, "reload failed, keeping the old certificates", "file",
                            blamed(sec, sec->tls_err, sec->cert_file), "err", sec->tls_err, NODE(node));
    }
    plog_logger_level old = plog_logger_get_level(lg), level = old;
    if (level_file != NULL && reload_read_level(level_file, &level, why, sizeof why) != 0)
        plog_logger_log(lg, PLOG_LOGGER_ERROR, "reload failed, keeping the old log level", "file", level_file,
                        "err", why, "log_level", plog_logger_level_name(old), NODE(node));
    for (int pass = 0; pass < 2; pass++) {
        /* pass 0 before the change (when it raises the level), pass 1 after */
        if (pass == 1)
            plog_logger_set_level(lg, level);
        if ((pass == 0) == (level > old))
            plog_logger_log(lg, PLOG_LOGGER_INFO, "reloaded", "log_level", plog_logger_level_name(level),
                            "was", plog_logger_level_name(old), "acl", acl, "acl_rules", rules, "tls", tls,
                            NODE(node));
    }
}
