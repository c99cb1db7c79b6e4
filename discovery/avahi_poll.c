/*  avahi_poll.c: AvahiPoll on loop_t. */

#include "avahi_poll.h"

#include <poll.h>
#include <stdlib.h>
#include <sys/time.h>

struct AvahiWatch {
    avahi_poll_t *owner;
    AvahiWatch *next;           /* every watch, one list */
    int fd;
    AvahiWatchEvent events;     /* asked for */
    AvahiWatchEvent revents;    /* last seen, for watch_get_events */
    AvahiWatchCallback callback;
    void *userdata;
    int dead;                   /* freed during a dispatch */
};

struct AvahiTimeout {
    avahi_poll_t *owner;
    loop_timer_t *timer;        /* NULL: disabled */
    AvahiTimeoutCallback callback;
    void *userdata;
};

struct avahi_poll {
    AvahiPoll api;              /* first: api.userdata points back here */
    loop_t *loop;
    AvahiWatch *watches;
    int dispatching;            /* dead watches are unlinked after */
};

/* The events every live watch on fd asks for, as loop events. */
static int s_wanted(avahi_poll_t *self, int fd, int *ret_count)
{
    int events = 0, count = 0;
    for (AvahiWatch *w = self->watches; w; w = w->next)
        if (w->fd == fd && !w->dead) {
            count++;
            events |= (w->events & AVAHI_WATCH_IN ? LOOP_IN : 0) |
                      (w->events & AVAHI_WATCH_OUT ? LOOP_OUT : 0);
        }
    *ret_count = count;
    return events;
}

static void s_fd_ready(loop_t *loop, int fd, int revents, void *arg);

/* Tells the loop what fd is watched for now, or stops watching it.
   Returns 0 or a negative errno from the loop. */
static int s_sync(avahi_poll_t *self, int fd)
{
    int count;
    int events = s_wanted(self, fd, &count);
    if (count == 0) {
        loop_fd_del(self->loop, fd);
        return 0;
    }
    if (loop_fd_mod(self->loop, fd, events) == 0)
        return 0;
    return loop_fd_add(self->loop, fd, events, s_fd_ready, self);
}

static void s_reap(avahi_poll_t *self)
{
    for (AvahiWatch **at = &self->watches; *at;) {
        AvahiWatch *w = *at;
        if (w->dead) {
            *at = w->next;
            free(w);
        } else
            at = &w->next;
    }
}

static void s_fd_ready(loop_t *loop, int fd, int revents, void *arg)
{
    (void) loop;
    avahi_poll_t *self = arg;
    AvahiWatchEvent ready = (revents & LOOP_IN ? AVAHI_WATCH_IN : 0) |
                            (revents & LOOP_OUT ? AVAHI_WATCH_OUT : 0);
    if (revents & LOOP_ERR)
        ready |= AVAHI_WATCH_ERR | AVAHI_WATCH_HUP;
    self->dispatching++;
    for (AvahiWatch *w = self->watches; w; w = w->next) {
        if (w->fd != fd || w->dead)
            continue;
        AvahiWatchEvent mine = ready & (w->events | AVAHI_WATCH_ERR | AVAHI_WATCH_HUP);
        if (!mine)
            continue;
        w->revents = mine;
        w->callback(w, fd, mine, w->userdata);
        if (!w->dead)
            w->revents = 0;
    }
    if (--self->dispatching == 0)
        s_reap(self);
}

static AvahiWatch *s_watch_new(const AvahiPoll *api, int fd, AvahiWatchEvent event,
                               AvahiWatchCallback callback, void *userdata)
{
    avahi_poll_t *self = api->userdata;
    AvahiWatch *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->owner = self;
    w->fd = fd;
    w->events = event;
    w->callback = callback;
    w->userdata = userdata;
    w->next = self->watches;
    self->watches = w;
    if (s_sync(self, fd) < 0) {
        /* Avahi takes NULL for "cannot watch that". */
        self->watches = w->next;
        free(w);
        s_sync(self, fd);
        return NULL;
    }
    return w;
}

static void s_watch_update(AvahiWatch *w, AvahiWatchEvent event)
{
    w->events = event;
    s_sync(w->owner, w->fd);
}

static AvahiWatchEvent s_watch_get_events(AvahiWatch *w)
{
    return w->revents;
}

static void s_watch_free(AvahiWatch *w)
{
    avahi_poll_t *self = w->owner;
    w->dead = 1;
    s_sync(self, w->fd);
    if (self->dispatching == 0)
        s_reap(self);
}

/* Milliseconds from now until the wall-clock time tv, Avahi's clock. */
static int64_t s_delay(const struct timeval *tv)
{
    struct timeval now;
    gettimeofday(&now, NULL);
    int64_t ms = (int64_t) (tv->tv_sec - now.tv_sec) * 1000 + (tv->tv_usec - now.tv_usec) / 1000;
    return ms < 0 ? 0 : ms;
}

static void s_timeout_fired(loop_t *loop, void *arg)
{
    (void) loop;
    AvahiTimeout *t = arg;
    t->timer = NULL;            /* the loop freed it; disabled until updated */
    t->callback(t, t->userdata);
}

static AvahiTimeout *s_timeout_new(const AvahiPoll *api, const struct timeval *tv,
                                   AvahiTimeoutCallback callback, void *userdata)
{
    AvahiTimeout *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->owner = api->userdata;
    t->callback = callback;
    t->userdata = userdata;
    if (tv && !(t->timer = loop_timer_add(t->owner->loop, s_delay(tv), s_timeout_fired, t))) {
        free(t);
        return NULL;
    }
    return t;
}

static void s_timeout_update(AvahiTimeout *t, const struct timeval *tv)
{
    loop_timer_cancel(t->owner->loop, t->timer);
    t->timer = tv ? loop_timer_add(t->owner->loop, s_delay(tv), s_timeout_fired, t) : NULL;
}

static void s_timeout_free(AvahiTimeout *t)
{
    loop_timer_cancel(t->owner->loop, t->timer);
    free(t);
}

avahi_poll_t *avahi_poll_new(loop_t *loop)
{
    avahi_poll_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->loop = loop;
    self->api = (AvahiPoll) {
        .userdata = self,
        .watch_new = s_watch_new,
        .watch_update = s_watch_update,
        .watch_get_events = s_watch_get_events,
        .watch_free = s_watch_free,
        .timeout_new = s_timeout_new,
        .timeout_update = s_timeout_update,
        .timeout_free = s_timeout_free,
    };
    return self;
}

void avahi_poll_destroy(avahi_poll_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    avahi_poll_t *self = *self_p;
    /* Watches Avahi did not free: stop hearing them and let them go. */
    for (AvahiWatch *w = self->watches; w; w = w->next)
        if (!w->dead)
            loop_fd_del(self->loop, w->fd);
    for (AvahiWatch *w = self->watches, *next; w; w = next) {
        next = w->next;
        free(w);
    }
    free(self);
    *self_p = NULL;
}

const AvahiPoll *avahi_poll_get(avahi_poll_t *self)
{
    return &self->api;
}
