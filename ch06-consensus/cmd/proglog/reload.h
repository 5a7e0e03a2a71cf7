/* reload.h - the signals of both of proglog's modes, the agent (main.c) and the
 * lone server (single.c): SIGINT and SIGTERM stop, SIGHUP reloads; and their
 * descriptor limit. What a reload does here: the log level from --log-level-file,
 * an error line for each part that kept its old state, and one summary line:
 *
 *   time=2026-12-02T03:10:00.123Z level=info msg=reloaded log_level=warn was=info acl=reloaded
 *       acl_rules=4 tls=kept node=node1
 *
 * (node= in agent mode only.)
 * acl and tls are "reloaded", "kept" (the file did not load; the old one stays in
 * force) or "off" (plain text: nothing to reload). The ACL and certificates
 * themselves are reloaded by the caller (plog_agent_reload, or single.c directly),
 * which hands the outcome here. */
#ifndef PLOG_CMD_PROGLOG_RELOAD_H
#define PLOG_CMD_PROGLOG_RELOAD_H

#include <signal.h>
#include <stddef.h>

#include "internal/auth/authorizer.h"
#include "internal/logger/logger.h"

/* reload_block_signals blocks SIGINT, SIGTERM (stop) and SIGHUP (reload) and puts
 * them in *set for sigwait, and ignores SIGPIPE. Call it before any thread exists:
 * every thread inherits the mask, so only the sigwait loop sees the three. */
void reload_block_signals(sigset_t *set);

/* reload_raise_nofile lifts the descriptor limit to its hard limit (as Go's
 * runtime does), logging a warning to lg when it cannot. Call it before the logs
 * open: a log holds two per segment (its store and its index) and every
 * connection one (--max-connections, not a default soft limit of 1024, should
 * bound those), and under that limit a data directory of some 500 segments failed
 * to open ("Too many open files"). */
void reload_raise_nofile(plog_logger *lg);

/* What reloading the ACL and the server certificates did, for reload_finish. */
struct reload_security {
    const char *policy_file, *cert_file; /* named in the error lines, unless: */
    const char *files[8];                /* every file the reload read (NULL where unset): an error
                                            line names the one its error names */
    int acl, tls;                        /* PLOG_OK: reloaded; else kept, and why: */
    const char *acl_err, *tls_err;
    size_t acl_rules;         /* rules in force now */
    const plog_auth *acl_now; /* the ACL in force, for reload_warn_unmatched */
};

/* reload_read_level reads the one word of a level file (blanks and a newline around
 * it are fine) into *out. 0, or -1 with why (size bytes) naming the file and the
 * reason. */
int reload_read_level(const char *path, plog_logger_level *out, char *why, size_t size);

/* reload_warn_unmatched logs one warning when rules of acl, read from
 * policy_file, can never match a check of this program: an object other than "*",
 * or an action other than produce, consume, gossip or "*" (plog_auth_unmatched). A
 * typo such as "Consume" loads and would otherwise only show as denials. A policy
 * with no rule (an emptied file) gets a warning that every request is denied
 * instead. Called at start and by reload_finish after a reload of the ACL. */
void reload_warn_unmatched(plog_logger *lg, const char *node, const char *policy_file, const plog_auth *acl);

/* reload_finish logs, naming node in each line (NULL: the lone server, unnamed;
 * under make run three nodes write to one terminal), an error line for each part of
 * sec that was kept (sec NULL:
 * plain text, acl=off tls=off) and the warning of reload_warn_unmatched for a
 * reloaded ACL, reloads lg's level from level_file (NULL: the level
 * stays; a bad file keeps it, with an error line), and writes the summary line under
 * whichever of the old and new levels shows it, so that lowering the level to warn
 * still leaves a trace of the change that did it. */
void reload_finish(plog_logger *lg, const char *node, const char *level_file,
                   const struct reload_security *sec);

#endif
