/*  loop.c: epoll, a timer heap and an idle hook. */

#include "loop.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    loop_fd_fn *fn;
    void *arg;
    int events;
    uint32_t gen;       /* which loop_fd_add this watch came from */
} watch_t;

struct loop_timer {
    int64_t due;
    size_t index;       /* place in the heap */
    loop_timer_fn *fn;
    void *arg;
};

struct loop {
    int epfd;
    int stop;
    int64_t now;
    watch_t *watches;   /* indexed by fd */
    size_t nwatches;
    uint32_t gen;
    loop_timer_t **heap;
    size_t nheap, capheap;
    loop_idle_fn *idle;
    void *idle_arg;
};

int64_t loop_clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

loop_t *loop_new(void)
{
    loop_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (self->epfd < 0) {
        free(self);
        return NULL;
    }
    self->now = loop_clock_ms();
    return self;
}

void loop_destroy(loop_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    loop_t *self = *self_p;
    for (size_t i = 0; i < self->nheap; i++)
        free(self->heap[i]);
    free(self->heap);
    free(self->watches);
    close(self->epfd);
    free(self);
    *self_p = NULL;
}

static uint32_t s_epoll_events(int events)
{
    return (events & LOOP_IN ? EPOLLIN | EPOLLRDHUP : 0) | (events & LOOP_OUT ? EPOLLOUT : 0);
}

int loop_fd_add(loop_t *self, int fd, int events, loop_fd_fn *fn, void *arg)
{
    if (fd < 0 || !fn)
        return -EINVAL;
    if ((size_t) fd >= self->nwatches) {
        size_t n = self->nwatches ? self->nwatches : 64;
        while (n <= (size_t) fd)
            n *= 2;
        watch_t *w = realloc(self->watches, n * sizeof *w);
        if (!w)
            return -ENOMEM;
        memset(w + self->nwatches, 0, (n - self->nwatches) * sizeof *w);
        self->watches = w;
        self->nwatches = n;
    }
    /* An event carries the watch's generation as well as its fd: an event
       read for an fd that a callback closed, and whose number a new watch
       took in the same batch, must not reach the new watch. */
    uint32_t gen = ++self->gen;
    struct epoll_event ev = { .events = s_epoll_events(events),
                              .data.u64 = (uint64_t) gen << 32 | (uint32_t) fd };
    if (epoll_ctl(self->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return -errno;
    self->watches[fd] = (watch_t) { fn, arg, events, gen };
    return 0;
}

int loop_fd_mod(loop_t *self, int fd, int events)
{
    if (fd < 0 || (size_t) fd >= self->nwatches || !self->watches[fd].fn)
        return -EINVAL;
    if (self->watches[fd].events == events)
        return 0;
    struct epoll_event ev = { .events = s_epoll_events(events),
                              .data.u64 = (uint64_t) self->watches[fd].gen << 32 | (uint32_t) fd };
    if (epoll_ctl(self->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
        return -errno;
    self->watches[fd].events = events;
    return 0;
}

void loop_fd_del(loop_t *self, int fd)
{
    if (fd < 0 || (size_t) fd >= self->nwatches || !self->watches[fd].fn)
        return;
    epoll_ctl(self->epfd, EPOLL_CTL_DEL, fd, NULL);
    self->watches[fd].fn = NULL;
}

/* --- timers: a binary min-heap on due time ---------------------------------- */

static void s_heap_set(loop_t *self, size_t i, loop_timer_t *t)
{
    self->heap[i] = t;
    t->index = i;
}

static void s_heap_up(loop_t *self, size_t i)
{
    loop_timer_t *t = self->heap[i];
    while (i > 0 && self->heap[(i - 1) / 2]->due > t->due) {
        s_heap_set(self, i, self->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    s_heap_set(self, i, t);
}

static void s_heap_down(loop_t *self, size_t i)
{
    loop_timer_t *t = self->heap[i];
    for (;;) {
        size_t kid = 2 * i + 1;
        if (kid >= self->nheap)
            break;
        if (kid + 1 < self->nheap && self->heap[kid + 1]->due < self->heap[kid]->due)
            kid++;
        if (self->heap[kid]->due >= t->due)
            break;
        s_heap_set(self, i, self->heap[kid]);
        i = kid;
    }
    s_heap_set(self, i, t);
}

static void s_heap_remove(loop_t *self, loop_timer_t *t)
{
    size_t i = t->index;
    loop_timer_t *last = self->heap[--self->nheap];
    if (last != t) {
        s_heap_set(self, i, last);
        s_heap_up(self, i);
        s_heap_down(self, last->index);
    }
}

loop_timer_t *loop_timer_add(loop_t *self, int64_t ms, loop_timer_fn *fn, void *arg)
{
    if (self->nheap == self->capheap) {
        size_t cap = self->capheap ? self->capheap * 2 : 64;
        loop_timer_t **heap = realloc(self->heap, cap * sizeof *heap);
        if (!heap)
            return NULL;
        self->heap = heap;
        self->capheap = cap;
    }
    loop_timer_t *t = malloc(sizeof *t);
    if (!t)
        return NULL;
    t->due = loop_clock_ms() + (ms > 0 ? ms : 0);
    t->fn = fn;
    t->arg = arg;
    self->nheap++;
    s_heap_set(self, self->nheap - 1, t);
    s_heap_up(self, self->nheap - 1);
    return t;
}

void loop_timer_cancel(loop_t *self, loop_timer_t *t)
{
    if (!t)
        return;
    s_heap_remove(self, t);
    free(t);
}

int64_t loop_timer_due(const loop_timer_t *t)
{
    return t->due;
}

void loop_set_idle(loop_t *self, loop_idle_fn *fn, void *arg)
{
    self->idle = fn;
    self->idle_arg = arg;
}

int64_t loop_now(const loop_t *self)
{
    return self->now;
}

void loop_stop(loop_t *self)
{
    self->stop = 1;
}

/* Fires every due timer; each is unlinked before its callback runs. */
static void s_run_timers(loop_t *self)
{
    while (self->nheap > 0 && self->heap[0]->due <= self->now && !self->stop) {
        loop_timer_t *t = self->heap[0];
        s_heap_remove(self, t);
        loop_timer_fn *fn = t->fn;
        void *arg = t->arg;
        free(t);
        fn(self, arg);
    }
}

int loop_run(loop_t *self)
{
    struct epoll_event events[256];
    self->stop = 0;
    while (!self->stop) {
        int busy = self->idle ? self->idle(self, self->idle_arg) : 0;
        if (self->stop)
            break;
        int timeout = -1;
        if (busy)
            timeout = 0;
        else if (self->nheap > 0) {
            int64_t left = self->heap[0]->due - loop_clock_ms();
            timeout = left < 0 ? 0 : left > 60000 ? 60000 : (int) left;
        }
        int n = epoll_wait(self->epfd, events, 256, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        self->now = loop_clock_ms();
        /* Hang-ups first: a peer that closed before another sent to it is
           gone by the time that send is handled, whatever order epoll
           lists them in. */
        for (int pass = 0; pass < 2; pass++)
            for (int i = 0; i < n && !self->stop; i++) {
                uint32_t e = events[i].events;
                int hup = (e & (EPOLLERR | EPOLLHUP | EPOLLRDHUP)) != 0;
                if (hup != (pass == 0))
                    continue;
                int fd = (int) (uint32_t) events[i].data.u64;
                uint32_t gen = (uint32_t) (events[i].data.u64 >> 32);
                /* A callback earlier in this batch may have removed this
                   fd, or closed it and watched a new one of that number. */
                if ((size_t) fd >= self->nwatches || !self->watches[fd].fn ||
                    self->watches[fd].gen != gen)
                    continue;
                int revents = (e & EPOLLIN ? LOOP_IN : 0) | (e & EPOLLOUT ? LOOP_OUT : 0);
                if (e & EPOLLRDHUP)
                    revents |= LOOP_IN;     /* half closed: reading says the rest */
                if (e & (EPOLLERR | EPOLLHUP))
                    revents |= LOOP_IN | LOOP_OUT | LOOP_ERR;
                watch_t *w = &self->watches[fd];
                w->fn(self, fd, revents, w->arg);
            }
        s_run_timers(self);
    }
    return 0;
}

long loop_fds_free(void)
{
    struct rlimit rl;
    DIR *d = opendir("/proc/self/fd");
    if (!d || getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        if (d)
            closedir(d);
        return -1;
    }
    long open = -1;     /* the directory's own descriptor */
    for (struct dirent *e; (e = readdir(d));)
        open += e->d_name[0] != '.';
    closedir(d);
    long limit = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > LONG_MAX ? LONG_MAX
                                                                         : (long) rl.rlim_cur;
    return limit - open;
}
