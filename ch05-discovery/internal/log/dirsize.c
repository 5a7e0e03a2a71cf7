/* dirsize.c - the bytes a log directory holds on disk (see dirsize.h). */
#include "internal/log/dirsize.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* Two levels below dir reach a segment of Raft's log in a node's data directory
 * (DATA/raft/log-N/0.store) and no further, so a data directory pointed at a big
 * tree by mistake costs a scrape little. */
#define MAX_DEPTH 2

static bool is_segment_file(const char *name)
{
    size_t n = strlen(name);
    return n > 6 && (strcmp(name + n - 6, ".store") == 0 || strcmp(name + n - 6, ".index") == 0);
}

static int64_t dir_bytes(const char *dir, int depth)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    int64_t total = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char path[4096];
        struct stat st;
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path)
            continue;
        /* lstat: a symbolic link is not followed out of the directory. */
        if (lstat(path, &st) != 0)
            continue;
        if (S_ISREG(st.st_mode) && is_segment_file(e->d_name))
            total += (int64_t)st.st_size;
        else if (S_ISDIR(st.st_mode) && depth < MAX_DEPTH)
            total += dir_bytes(path, depth + 1);
    }
    closedir(d);
    return total;
}

int64_t plog_log_dir_bytes(const char *dir)
{
    return dir_bytes(dir, 0);
}
