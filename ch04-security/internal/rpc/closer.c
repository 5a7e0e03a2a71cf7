/* closer.c - the process's closer thread (closer.h).
 *
 * The queue and the count of closes not done yet (queued or running) are
 * process-wide and outlive whatever submitted them. */
#include "internal/rpc/closer.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

struct job {
    struct job *next;
    void (*fn)(void *);
    void *arg;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t queued_cv = PTHREAD_COND_INITIALIZER; /* work queued */
static pthread_cond_t done_cv = PTHREAD_COND_INITIALIZER;   /* pending went down */
static struct job *head, *tail;
static unsigned pending;
static bool started;
static int64_t running_since_ms; /* when the close running now started; 0: none runs */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *closer_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    for (;;) {
        while (head == NULL)
            pthread_cond_wait(&queued_cv, &mu);
        struct job *j = head;
        head = j->next;
        if (head == NULL)
            tail = NULL;
        running_since_ms = mono_ms();
        pthread_mutex_unlock(&mu);
        j->fn(j->arg);
        free(j);
        pthread_mutex_lock(&mu);
        running_since_ms = 0;
        pending--;
        pthread_cond_broadcast(&done_cv);
    }
    return NULL;
}

void plog_rpc_closer_submit(void (*fn)(void *), void *arg)
{
    struct job *j = malloc(sizeof *j);
    pthread_mutex_lock(&mu);
    if (j != NULL && !started) {
        pthread_attr_t attr;
        pthread_t th;
        if (pthread_attr_init(&attr) == 0) {
            pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
            started = pthread_create(&th, &attr, closer_main, NULL) == 0;
            pthread_attr_destroy(&attr);
        }
    }
    if (j != NULL && started) {
        *j = (struct job){.fn = fn, .arg = arg};
        if (tail != NULL)
            tail->next = j;
        else
            head = j;
        tail = j;
        pending++;
        pthread_cond_signal(&queued_cv);
        pthread_mutex_unlock(&mu);
        return;
    }
    pthread_mutex_unlock(&mu);
    free(j);
    fn(arg);
}

bool plog_rpc_closer_wait(int timeout_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    if (timeout_ms > 0) {
        until.tv_sec += timeout_ms / 1000;
        until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&mu);
    while (pending > 0 && pthread_cond_timedwait(&done_cv, &mu, &until) == 0)
        ;
    bool done = pending == 0;
    pthread_mutex_unlock(&mu);
    return done;
}

uint32_t plog_rpc_closer_busy_ms(void)
{
    pthread_mutex_lock(&mu);
    int64_t since = running_since_ms;
    pthread_mutex_unlock(&mu);
    if (since == 0)
        return 0;
    int64_t busy = mono_ms() - since;
    return busy < 1 ? 1 : busy > UINT32_MAX ? UINT32_MAX : (uint32_t)busy; /* running: never 0 */
}
