/* file.h - proglog's --config-file: a YAML mapping whose keys are the long flag
 * names, read with libyaml (Go: the book's cmd/proglog reads it with viper).
 *
 *   data-dir: /var/lib/proglog
 *   node-name: node1
 *   bind-addr: 127.0.0.1:8401
 *   rpc-port: 8400
 *   start-join-addrs: [127.0.0.1:8411, 127.0.0.1:8421]   # or "a,b", or a block list
 *
 * Values are scalars, or a sequence of scalars (joined with ","). Anything else
 * (a nested mapping, an alias, several documents, a repeated key) is refused with
 * the file, line and column. Which keys are allowed is the program's business
 * (plog_config_file_key lets it check every key against its flags). */
#ifndef PLOG_CONFIG_FILE_H
#define PLOG_CONFIG_FILE_H

#include <stdbool.h>
#include <stddef.h>

typedef struct plog_config_file plog_config_file;

/* plog_config_file_read parses the YAML file at path. On PLOG_OK *out is the
 * caller's until plog_config_file_free. On failure err (errsize bytes) says
 * "path:line:col: what": PLOG_EIO (unreadable), PLOG_EINVAL (not the form above),
 * PLOG_ENOMEM. */
int plog_config_file_read(const char *path, plog_config_file **out, char *err, size_t errsize);

/* plog_config_file_get returns the value of key (borrowed until free), or NULL. */
const char *plog_config_file_get(const plog_config_file *f, const char *key);

/* plog_config_file_count and _key enumerate the keys in file order; _line gives
 * the line a key is on (for error messages). */
size_t plog_config_file_count(const plog_config_file *f);
const char *plog_config_file_key(const plog_config_file *f, size_t i);
size_t plog_config_file_line(const plog_config_file *f, size_t i);

/* plog_config_file_is_list says whether key i's value was a sequence (its items
 * joined with ","), so that a program can refuse one where a flag takes one value. */
bool plog_config_file_is_list(const plog_config_file *f, size_t i);

/* plog_config_file_free frees f. NULL does nothing. */
void plog_config_file_free(plog_config_file *f);

#endif
