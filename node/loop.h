/*  loop.h: the node's one event loop (epoll, timers, an idle hook).

    One thread owns every socket. File descriptors are watched through
    epoll, so a wake-up costs O(ready), not O(clients); timers live in a
    binary heap. Callbacks may add, change or remove any watch or timer,
    including their own. */
#ifndef IPCNET_LOOP_H
#define IPCNET_LOOP_H

#include <stdint.h>

typedef struct loop loop_t;
typedef struct loop_timer loop_timer_t;

#define LOOP_IN   0x01
#define LOOP_OUT  0x04
#define LOOP_ERR  0x08

/* Called when fd is ready; revents has LOOP_IN/LOOP_OUT (LOOP_IN also when
   the peer shut its side down), and all three of LOOP_IN|LOOP_OUT|LOOP_ERR
   on error or hang-up, so that the owner's read or write sees it even
   while it watches neither. Hang-ups of a wake-up are dispatched first. */
typedef void (loop_fd_fn) (loop_t *loop, int fd, int revents, void *arg);
/* Called when a timer is due; the timer is already gone. */
typedef void (loop_timer_fn) (loop_t *loop, void *arg);
/* Called before each wait; returns 1 if it left work to do (do not sleep). */
typedef int (loop_idle_fn) (loop_t *loop, void *arg);

loop_t *loop_new(void);
void loop_destroy(loop_t **self_p);

/* Watches fd for events (LOOP_IN|LOOP_OUT, may be 0). Returns 0 or -errno. */
int loop_fd_add(loop_t *self, int fd, int events, loop_fd_fn *fn, void *arg);
int loop_fd_mod(loop_t *self, int fd, int events);
void loop_fd_del(loop_t *self, int fd);

/* Calls fn once after ms milliseconds. Returns the timer (owned by the
   loop until it fires or is cancelled), or NULL when out of memory. */
loop_timer_t *loop_timer_add(loop_t *self, int64_t ms, loop_timer_fn *fn, void *arg);
/* Cancels a timer that has not fired; safe on NULL. */
void loop_timer_cancel(loop_t *self, loop_timer_t *timer);
/* When the timer is due, in loop_now() time. */
int64_t loop_timer_due(const loop_timer_t *timer);

void loop_set_idle(loop_t *self, loop_idle_fn *fn, void *arg);

/* Monotonic milliseconds, refreshed at each wake-up. */
int64_t loop_now(const loop_t *self);
int64_t loop_clock_ms(void);

/* Descriptors this process may still open (RLIMIT_NOFILE less those
   open, counted in /proc/self/fd), or -1 if it cannot tell. */
long loop_fds_free(void);

/* Runs until loop_stop(). Returns 0 or -errno if epoll failed. */
int loop_run(loop_t *self);
void loop_stop(loop_t *self);

#endif
