/*  reconnect.c: what IPCNET_RECONNECT adds to a handle.

    When the node goes away the handle keeps the frames it had read and
    turns the loss into notes that the application reads in their place
    among them: NODE_DOWN, then an ERROR (-ECONNRESET) for each request in
    flight. Its descriptor number is parked on a timer that fires at the
    next try, so a poll loop wakes to call ipcnet_dispatch(). Tries back
    off from 100 ms to 5 s with jitter, so the clients of a restarted node
    do not all come back in the same millisecond. The application watches
    an epoll descriptor that holds the socket or the timer, whichever is
    there, so its event loop needs no change when one becomes the other. Once the node welcomes
    it again the handle binds, subscribes and watches again what it held;
    when the node has answered all of that, NODE_UP says how long the gap
    lasted. A name that cannot be had again comes as an ERROR with the
    name and the node's words. */

#include "handle.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define FIRST_TRY_MS 100
#define LAST_TRY_MS  5000

static const char s_lost_why[] = "the connection to the node was lost";

/* --- notes ----------------------------------------------------------------- */

static note_t *s_note(ipcnet_t *c, size_t pos, int event, int error, uint32_t id,
                      const char *name, const char *why, size_t whylen)
{
    if (c->note_tail == c->note_cap) {
        if (c->note_head > 0) {
            memmove(c->notes, c->notes + c->note_head,
                    (c->note_tail - c->note_head) * sizeof *c->notes);
            c->note_tail -= c->note_head;
            c->note_head = 0;
        } else {
            size_t cap = c->note_cap ? 2 * c->note_cap : 16;
            note_t *notes = realloc(c->notes, cap * sizeof *notes);
            if (!notes)
                return NULL;
            c->notes = notes;
            c->note_cap = cap;
        }
    }
    note_t *n = &c->notes[c->note_tail++];
    *n = (note_t) { .pos = pos, .event = event, .error = error, .id = id };
    n->name = name ? strdup(name) : NULL;
    n->why = why ? strndup(why, whylen) : NULL;
    return n;
}

int reconnect_note(ipcnet_t *c, size_t at, ipcnet_msg_t *msg)
{
    if (c->note_head == c->note_tail || c->notes[c->note_head].pos > at)
        return 0;
    note_t *n = &c->notes[c->note_head++];
    memset(msg, 0, sizeof *msg);
    msg->source = msg->name = msg->node = msg->user = msg->node_id = "";
    msg->id = n->id;
    msg->gap_ms = n->gap_ms;
    if (n->event) {
        msg->kind = IPCNET_MSG_EVENT;
        msg->event = n->event;
        if (n->name)
            msg->node = strcpy(c->s1, n->name);
    } else {
        msg->kind = IPCNET_MSG_ERROR;
        msg->error = n->error;
        if (n->name)
            msg->name = strcpy(c->s1, n->name);
        if (n->why) {
            msg->data = strcpy(c->s2, n->why);
            msg->size = strlen(c->s2);
        }
    }
    free(n->name);
    free(n->why);
    if (c->note_head == c->note_tail)
        c->note_head = c->note_tail = 0;
    return 1;
}

void reconnect_shift(ipcnet_t *c, size_t delta)
{
    for (size_t i = c->note_head; i < c->note_tail; i++)
        c->notes[i].pos = c->notes[i].pos > delta ? c->notes[i].pos - delta : 0;
}

/* --- requests in flight: a set of ids, open addressing ------------------------ */

static size_t s_home(uint64_t key, size_t cap)
{
    return (size_t) ((key * 0x9E3779B97F4A7C15ull) >> 32) & (cap - 1);
}

static void s_put(uint64_t *set, size_t cap, uint64_t key)
{
    size_t i = s_home(key, cap);
    while (set[i] && set[i] != key)
        i = (i + 1) & (cap - 1);
    set[i] = key;
}

int reconnect_pending_add(ipcnet_t *c, uint32_t id)
{
    if (2 * (c->npending + 1) > c->pending_cap) {
        size_t cap = c->pending_cap ? 2 * c->pending_cap : 64;
        uint64_t *set = calloc(cap, sizeof *set);
        if (!set)
            return -ENOMEM;
        for (size_t i = 0; i < c->pending_cap; i++)
            if (c->pending[i])
                s_put(set, cap, c->pending[i]);
        free(c->pending);
        c->pending = set;
        c->pending_cap = cap;
    }
    size_t i = s_home(id + 1ull, c->pending_cap);
    while (c->pending[i] && c->pending[i] != id + 1ull)
        i = (i + 1) & (c->pending_cap - 1);
    if (!c->pending[i]) {
        c->pending[i] = id + 1ull;
        c->npending++;
    }
    return 0;
}

void reconnect_pending_del(ipcnet_t *c, uint32_t id)
{
    if (c->npending == 0)
        return;
    size_t mask = c->pending_cap - 1, i = s_home(id + 1ull, c->pending_cap);
    while (c->pending[i] != id + 1ull) {
        if (!c->pending[i])
            return;
        i = (i + 1) & mask;
    }
    /* Pull back the entries after it that would no longer be found. */
    c->pending[i] = 0;
    c->npending--;
    for (size_t j = (i + 1) & mask; c->pending[j]; j = (j + 1) & mask) {
        size_t home = s_home(c->pending[j], c->pending_cap);
        if (((j - home) & mask) >= ((j - i) & mask)) {
            c->pending[i] = c->pending[j];
            c->pending[j] = 0;
            i = j;
        }
    }
}

static int s_by_id(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
    return x < y ? -1 : x > y;
}

/* Every request in flight fails, in the order they were made. */
static void s_fail_pending(ipcnet_t *c, size_t pos)
{
    if (c->npending == 0)
        return;
    uint32_t *ids = malloc(c->npending * sizeof *ids);
    size_t n = 0;
    for (size_t i = 0; i < c->pending_cap; i++)
        if (c->pending[i]) {
            if (ids)
                ids[n++] = (uint32_t) (c->pending[i] - 1);
            else
                s_note(c, pos, 0, -ECONNRESET, (uint32_t) (c->pending[i] - 1), NULL,
                       s_lost_why, sizeof s_lost_why - 1);
            c->pending[i] = 0;
        }
    if (ids) {
        qsort(ids, n, sizeof *ids, s_by_id);
        for (size_t i = 0; i < n; i++)
            s_note(c, pos, 0, -ECONNRESET, ids[i], NULL, s_lost_why, sizeof s_lost_why - 1);
        free(ids);
    }
    c->npending = 0;
}

/* --- what to make again ----------------------------------------------------- */

int reconnect_held_add(ipcnet_t *c, uint8_t type, const char *name)
{
    for (size_t i = 0; i < c->nheld; i++)
        if (c->held[i]->type == type && strcmp(c->held[i]->name, name) == 0)
            return 0;
    if (c->nheld == c->held_cap) {
        size_t cap = c->held_cap ? 2 * c->held_cap : 16;
        held_t **held = realloc(c->held, cap * sizeof *held);
        if (!held)
            return -ENOMEM;
        c->held = held;
        c->held_cap = cap;
    }
    size_t len = strlen(name);
    held_t *h = malloc(sizeof *h + len + 1);
    if (!h)
        return -ENOMEM;
    h->type = type;
    memcpy(h->name, name, len + 1);
    c->held[c->nheld++] = h;
    return 0;
}

void reconnect_held_del(ipcnet_t *c, uint8_t type, const char *name)
{
    for (size_t i = 0; i < c->nheld; i++)
        if (c->held[i]->type == type && strcmp(c->held[i]->name, name) == 0) {
            if (c->restoring) {
                c->held[i]->type = 0;   /* places stay put while answers come */
                return;
            }
            free(c->held[i]);
            c->held[i] = c->held[--c->nheld];
            return;
        }
}

/* Drops the entries marked gone; not while their answers are awaited. */
static void s_compact(ipcnet_t *c)
{
    size_t n = 0;
    for (size_t i = 0; i < c->nheld; i++) {
        if (c->held[i]->type)
            c->held[n++] = c->held[i];
        else
            free(c->held[i]);
    }
    c->nheld = n;
}

/* --- losing and finding the node ------------------------------------------- */

void reconnect_watch(ipcnet_t *c)
{
    /* The file that was there left the epoll set when dup2() closed it. */
    struct epoll_event ev = { .events = EPOLLIN };
    epoll_ctl(c->efd, EPOLL_CTL_ADD, c->fd, &ev);
    c->out_watched = 0;
}

void reconnect_want_write(ipcnet_t *c, int want)
{
    if (want == c->out_watched)
        return;
    struct epoll_event ev = { .events = EPOLLIN | (want ? EPOLLOUT : 0) };
    if (epoll_ctl(c->efd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->out_watched = want;
}

/* Arms the timer (or, without one, the clock) for the next try. */
static void s_park(ipcnet_t *c, int64_t now)
{
    if (!c->timer) {
        /* The timer takes the socket's number. Without one (no descriptor
           left) the dead socket stays: it polls ready, and each call
           tries when due. */
        int t = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (t >= 0 && dup2(t, c->fd) >= 0)
            c->timer = 1;
        if (t >= 0)
            close(t);
        if (c->timer)
            reconnect_watch(c);
    }
    c->rng = c->rng * 1103515245u + 12345u;
    int ms = c->backoff_ms * 3 / 4 + (int) ((c->rng >> 16) % (unsigned) (c->backoff_ms / 2 + 1));
    c->next_try = now + ms;
    c->backoff_ms = c->backoff_ms * 2 > LAST_TRY_MS ? LAST_TRY_MS : c->backoff_ms * 2;
    if (c->timer) {
        struct itimerspec its = { .it_value = { ms / 1000, (long) (ms % 1000) * 1000000 + 1 } };
        timerfd_settime(c->fd, 0, &its, NULL);
    }
}

void reconnect_lost(ipcnet_t *c)
{
    /* Keep the complete frames read before the loss; a partial one, or
       one that makes no sense, goes. Replies among them are answers. */
    size_t at = c->rx_head;
    while (at < c->rx_tail) {
        ssize_t len = wire_peek(c->rx + at, c->rx_tail - at, c->max_message + WIRE_HEAD_MAX);
        if (len <= 0 || (size_t) len > c->rx_tail - at)
            break;
        wire_frame_t f;
        if (c->rx[at + 5] != 0) {
            if (wire_decode(c->rx + at, (size_t) len, &f) < 0)
                break;
            if (f.type == WIRE_DELIVER_REP || f.type == WIRE_ERROR)
                reconnect_pending_del(c, f.seq);
        }
        at += (size_t) len;
    }
    c->rx_tail = at;
    shm_lost(c);            /* fds of a frame cut short go with it */
    c->tx_head = c->tx_tail = 0;
    c->restoring = c->restore_count = 0;
    int64_t now = handle_now_ms();
    if (!c->gap) {
        c->gap = 1;
        c->down_since = now;
        c->backoff_ms = FIRST_TRY_MS;
        s_note(c, at, IPCNET_EV_NODE_DOWN, 0, 0, c->node, NULL, 0);
    }
    s_fail_pending(c, at);
    c->link = LINK_WAITING;
    s_park(c, now);
}

void reconnect_try(ipcnet_t *c)
{
    if (c->link != LINK_WAITING)
        return;
    if (c->timer) {
        uint64_t expired;
        if (read(c->fd, &expired, sizeof expired) < 0) {
            /* not yet: nothing to drain */
        }
    }
    int64_t now = handle_now_ms();
    if (now < c->next_try)
        return;
    /* Never wait here: a node whose backlog is full (EAGAIN) is tried
       again later, like one that is not there. */
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    memcpy(sa.sun_path, c->path, sizeof sa.sun_path);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0 || connect(s, (struct sockaddr *) &sa, sizeof sa) < 0 || dup2(s, c->fd) < 0) {
        if (s >= 0)
            close(s);
        s_park(c, now);
        return;
    }
    close(s);
    c->timer = 0;
    reconnect_watch(c);
    c->link = LINK_HELLO;
    c->hello_seq = ++c->seq;
    uint8_t head[WIRE_HEAD_MAX];
    size_t len = wire_encode(head, WIRE_HELLO, WIRE_F_SHM, c->hello_seq, WIRE_VERSION,
                             c->label[0] ? c->label : NULL, strlen(c->label), NULL, 0, 0);
    if (handle_append(c, head, len) < 0)
        reconnect_lost(c);
    else
        handle_write(c);        /* a failure is a loss, handled there */
}

int reconnect_wait(ipcnet_t *c, int64_t deadline)
{
    reconnect_try(c);
    if (c->link != LINK_WAITING)
        return 0;
    int64_t now = handle_now_ms(), until = c->next_try;
    if (deadline >= 0 && deadline < until)
        until = deadline;
    int ms = until > now ? (int) (until - now) : 0;
    struct pollfd p = { .fd = c->fd, .events = POLLIN };
    poll(&p, c->timer ? 1 : 0, ms);
    reconnect_try(c);
    if (c->link == LINK_WAITING && deadline >= 0 && handle_now_ms() >= deadline)
        return -ETIMEDOUT;
    return 0;
}

static void s_up(ipcnet_t *c, size_t pos)
{
    note_t *n = s_note(c, pos, IPCNET_EV_NODE_UP, 0, 0, c->node, NULL, 0);
    if (n)
        n->gap_ms = (uint32_t) (handle_now_ms() - c->down_since);
    c->gap = 0;
    c->backoff_ms = FIRST_TRY_MS;
}

/* Welcomed again: bind, subscribe and watch again, all in one write. */
static void s_restore(ipcnet_t *c, size_t pos)
{
    s_compact(c);
    c->restore_first = c->seq + 1;
    c->restore_count = c->restoring = 0;
    for (size_t i = 0; i < c->nheld; i++) {
        held_t *h = c->held[i];
        uint8_t head[WIRE_HEAD_MAX];
        size_t len = wire_encode(head, h->type, 0, c->seq + 1, 0, h->name, strlen(h->name),
                                 NULL, 0, 0);
        if (handle_append(c, head, len) < 0) {
            s_note(c, pos, 0, -ENOMEM, 0, h->name, NULL, 0);
            h->type = 0;
            continue;
        }
        c->seq++;
        c->restore_count++;
        c->restoring++;
    }
    if (c->restoring == 0) {
        s_compact(c);
        s_up(c, pos);
    }
    handle_write(c);
}

int reconnect_frame(ipcnet_t *c, const wire_frame_t *f, size_t end)
{
    if (c->link == LINK_HELLO) {
        if (f->type != WIRE_WELCOME || f->seq != c->hello_seq) {
            reconnect_lost(c);      /* refused (too many clients, ...): later */
            return 1;
        }
        wire_copy(c->address, f->s1, f->s1len);
        c->address[f->s1len] = 0;
        wire_copy(c->node, f->s2, f->s2len);
        c->node[f->s2len] = 0;
        c->max_message = f->aux;
        shm_welcome(c, f);
        c->link = LINK_UP;
        s_restore(c, end);
        return 1;
    }
    uint32_t i = f->seq - c->restore_first;
    if (c->restoring == 0 || i >= c->restore_count ||
        (f->type != WIRE_OK && f->type != WIRE_ERROR))
        return 0;
    if (f->type == WIRE_ERROR) {
        held_t *h = c->held[i];
        s_note(c, end, 0, f->aux > 0 && f->aux < 4096 ? -(int) f->aux : -EPROTO, f->seq,
               h->name, f->s2, f->s2len);
        h->type = 0;
    }
    if (--c->restoring == 0) {
        s_compact(c);
        s_up(c, end);
    }
    return 1;
}

void reconnect_free(ipcnet_t *c)
{
    for (size_t i = c->note_head; i < c->note_tail; i++) {
        free(c->notes[i].name);
        free(c->notes[i].why);
    }
    free(c->notes);
    free(c->pending);
    for (size_t i = 0; i < c->nheld; i++)
        free(c->held[i]);
    free(c->held);
}
