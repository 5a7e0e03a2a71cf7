/* authorizer.h - the ACL: may this subject do this action to this object?
 * (Go: internal/auth/authorizer.go, which wraps Casbin.)
 *
 * The book keeps its ACL in two Casbin files, and so do we, read by this module
 * rather than by Casbin:
 *
 *   model.conf (optional)                 policy.csv
 *     [request_definition]                  p, root, *, produce
 *     r = sub, obj, act                     p, root, *, consume
 *     [policy_definition]
 *     p = sub, obj, act
 *     [policy_effect]
 *     e = some(where (p.eft == allow))
 *     [matchers]
 *     m = r.sub == p.sub && r.obj == p.obj && r.act == p.act
 *
 * The model is fixed: a request (subject, object, action) is allowed when some
 * policy line matches all three, and denied otherwise (there is no deny rule). One
 * extension: a policy value "*" matches any request value, so "p, *, *, consume"
 * lets every authenticated client consume. The book gets the same effect on its
 * own files by always asking for object "*" (objectWildcard); so do we. A model
 * file, when given, is checked to be exactly this model (whitespace aside), so
 * that nobody believes a Casbin feature is in force that is not: roles (g lines,
 * [role_definition]), other matchers or effects are refused with file:line.
 *
 * policy.csv: one rule per line, "p, subject, object, action", fields separated by
 * commas and trimmed of blanks, optionally in double quotes; blank lines and lines
 * starting with '#' are skipped. An empty policy denies everything.
 *
 * Subjects are the CN of the client's verified certificate (internal/tls/peer.h).
 * The empty subject (no verified identity) is always denied, whatever the policy.
 *
 * Any number of threads may authorize at once, also while one thread reloads the
 * files (plog_auth_reload, on SIGHUP): each check sees either the old rules or the
 * new ones whole. */
#ifndef PLOG_AUTH_AUTHORIZER_H
#define PLOG_AUTH_AUTHORIZER_H

#include <stddef.h>

/* The book's object and actions (Go: objectWildcard, produceAction, consumeAction). */
#define PLOG_AUTH_OBJECT_ANY "*"
#define PLOG_AUTH_PRODUCE "produce"
#define PLOG_AUTH_CONSUME "consume"

/* The size of a buffer that holds any error text of this module. */
#define PLOG_AUTH_ERRMSG_SIZE 512

typedef struct plog_auth plog_auth;

/* plog_auth_new reads the policy at policy_path and, when model_path is not NULL,
 * checks the model there (Go: auth.New(model, policy)). On PLOG_OK *ap owns the ACL
 * until plog_auth_free(). On failure err (errsize bytes) says which file, which
 * line and what is wrong: PLOG_EINVAL (policy_path NULL, malformed file),
 * PLOG_EIO (unreadable file), PLOG_ENOMEM. */
int plog_auth_new(const char *model_path, const char *policy_path, plog_auth **ap, char *err, size_t errsize);

/* plog_auth_reload reads the files again, as plog_auth_new, and on PLOG_OK makes
 * the new rules a's rules for every check that starts after it; checks in flight
 * finish with the old ones, which are freed once they are done. On failure a keeps
 * its rules and err says why, as for plog_auth_new. Not concurrent with
 * plog_auth_free; one reload at a time. */
int plog_auth_reload(plog_auth *a, const char *model_path, const char *policy_path, char *err,
                     size_t errsize);

/* plog_auth_free frees a. NULL is fine. */
void plog_auth_free(plog_auth *a);

/* plog_auth_authorize returns PLOG_OK when some rule allows subject to do action to
 * object, else PLOG_EPERM (Go: Authorizer.Authorize). Strings are borrowed. */
int plog_auth_authorize(const plog_auth *a, const char *subject, const char *object, const char *action);

/* plog_auth_denial writes the book's denial text into buf (size bytes):
 * "nobody not permitted to produce to *". An empty subject reads "(unauthenticated)". */
void plog_auth_denial(const char *subject, const char *object, const char *action, char *buf, size_t size);

/* plog_auth_rules returns how many policy rules a holds. */
size_t plog_auth_rules(const plog_auth *a);

/* plog_auth_unmatched counts the rules of a that no check of the program can
 * match, so that it can say so: a rule whose object is not "*" (every check asks
 * for object "*", as the book's do), or whose action is neither "*" nor one of
 * actions[0..nactions) (the actions the program checks). Such a rule loads (the
 * format allows any word) and silently allows nothing: a typo ("Consume", "prodcue")
 * reads as a denial at run time. Writes the first one into buf (size bytes),
 * "line 3: action \"Consume\"", or "" when there is none. */
size_t plog_auth_unmatched(const plog_auth *a, const char *const actions[], size_t nactions, char *buf,
                           size_t size);

#endif
