/*  session.c: one client's input: read, decode, HELLO, dispatch, and its
    teardown. */

#include "session.h"
#include "store.h"
#include "log.h"
#include "route.h"
#include "shm.h"

#include <czmq.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RX_SIZE     BUF_SMALL       /* a client's read buffer */

struct sessions {
    clients_t *clients;
    directory_t *dir;
    deliver_t *deliver;
    requests_t *requests;
    query_t *query;
    loop_timer_t *sweep;        /* looks for clients that stall */
    int64_t sweep_ms;
    store_t *store;
};

static void s_sweep(loop_t *loop, void *arg);

sessions_t *sessions_new(clients_t *clients, directory_t *dir, deliver_t *deliver,
                         requests_t *requests, query_t *query)
{
    sessions_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    *self = (sessions_t) { clients, dir, deliver, requests, query, NULL, 0, NULL };
    /* Often enough to keep each timeout within a tenth or so of itself. */
    unsigned shortest = clients->cfg->hello_timeout < clients->cfg->frame_timeout
                      ? clients->cfg->hello_timeout : clients->cfg->frame_timeout;
    self->sweep_ms = shortest / 8 < 50 ? 50 : shortest / 8 > 1000 ? 1000 : shortest / 8;
    if (!(self->sweep = loop_timer_add(clients->loop, self->sweep_ms, s_sweep, self))) {
        free(self);
        return NULL;
    }
    return self;
}

void sessions_set_store(sessions_t *self, store_t *store)
{
    self->store = store;
}

void sessions_destroy(sessions_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    loop_timer_cancel((*self_p)->clients->loop, (*self_p)->sweep);
    free(*self_p);
    *self_p = NULL;
}

/* A client that said nothing since it connected, or began a frame and
   stopped, is cut off: it holds a slot, or memory, for nothing. */
static void s_stalled(client_t *c, void *arg)
{
    (void) arg;
    const node_config_t *cfg = c->clients->cfg;
    int64_t now = loop_now(c->clients->loop);
    if (c->doomed)
        return;
    if (!c->ready && now - c->since > (int64_t) cfg->hello_timeout) {
        const char *why = "no HELLO in time";
        client_send_control(c, WIRE_ERROR, WIRE_HELLO, 1, ETIMEDOUT, NULL, 0, why, strlen(why),
                            NULL, 0);
        client_doom(c, "did not say HELLO in time (--hello-timeout)");
    } else if (c->frame_since && !c->blocked_on && !c->blocked_peer && !c->starved &&
               now - c->frame_since > (int64_t) cfg->frame_timeout) {
        const char *why = "frame begun and not finished in time";
        c->clients->stats->violations++;
        client_send_control(c, WIRE_ERROR, 0, 0, ETIMEDOUT, NULL, 0, why, strlen(why), NULL, 0);
        client_doom(c, "began a frame and did not finish it in time (--frame-timeout)");
    }
}

static void s_sweep(loop_t *loop, void *arg)
{
    sessions_t *self = arg;
    directory_each_client(self->dir, s_stalled, NULL);
    self->sweep = loop_timer_add(loop, self->sweep_ms, s_sweep, self);
}

/* A large frame's buffer goes: its bytes no longer count, and the clients
   that waited for such memory may read again. */
static void s_large_release(client_t *c)
{
    clients_t *clients = c->clients;
    if (!c->rx_large)
        return;
    clients->large -= c->rx_large;
    c->rx_large = 0;
    while (clients->starved.size > 0) {
        client_t *w = clients->starved.items[--clients->starved.size];
        w->starved = 0;
        /* --frame-timeout counts the time it may read, not this wait. */
        if (w->frame_since)
            w->frame_since = loop_now(clients->loop);
        client_update_events(w);
    }
}

/* May c take a buffer of size bytes for a large frame? If not it waits,
   unread, until another's is released. */
static int s_large_reserve(client_t *c, size_t size)
{
    clients_t *clients = c->clients;
    if (clients->large + size > clients->cfg->max_unfinished && clients->large > 0) {
        if (!c->starved && vec_push(&clients->starved, c) == 0) {
            c->starved = 1;
            client_update_events(c);
        }
        return -ENOBUFS;
    }
    clients->large += size;
    c->rx_large = size;
    return 0;
}

/* A protocol violation: say why, then disconnect. */
static void s_violation(client_t *c, int err, const char *why)
{
    c->clients->stats->violations++;
    client_send_control(c, WIRE_ERROR, 0, 0, (uint32_t) err, NULL, 0, why, strlen(why), NULL, 0);
    client_doom(c, why);
}

/* Copies a label, turning anything that would break a listing into '?'. */
static void s_set_label(client_t *c, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        c->label[i] = (unsigned char) s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    c->label[len] = 0;
    if (len == 0)
        strcpy(c->label, "-");
}

static void s_hello(client_t *c, const wire_frame_t *f)
{
    const node_config_t *cfg = c->clients->cfg;
    if (f->type != WIRE_HELLO) {
        client_send_error(c, f, EPROTO, NULL, 0, "HELLO expected");
        client_doom(c, "did not start with HELLO");
    } else if (f->aux != WIRE_VERSION) {
        client_send_error(c, f, EPROTO, NULL, 0, "unsupported protocol version");
        client_doom(c, "speaks another protocol version");
    } else {
        s_set_label(c, f->s1, f->s1len);
        c->ready = 1;
        c->shm_ok = (f->flags & WIRE_F_SHM) != 0;   /* takes memfds (shm.h) */
        uint8_t shm[4];
        wire_put32(shm, (uint32_t) cfg->shm_threshold);
        client_send_control(c, WIRE_WELCOME, 0, f->seq, (uint32_t) cfg->max_message,
                            c->address, strlen(c->address), cfg->name, strlen(cfg->name),
                            shm, sizeof shm);
    }
}

/* Handles one decoded frame. Returns CLIENT_DONE, or CLIENT_BLOCKED when
   it must be handled again later (the sender is paused). */
static int s_handle(sessions_t *self, client_t *c, const wire_frame_t *f, buf_t *pbuf)
{
    c->clients->stats->frames_in++;
    if (!c->ready) {
        s_hello(c, f);
        return CLIENT_DONE;
    }
    directory_t *dir = self->dir;
    const char *why = NULL;
    int rc = 0;
    switch (f->type) {
    case WIRE_SEND:
    case WIRE_REQUEST:
        return deliver_send(self->deliver, c, f, pbuf);
    case WIRE_REPLY:
        return deliver_reply(self->deliver, c, f, pbuf);
    case WIRE_PUBLISH:
        return deliver_publish(self->deliver, c, f, pbuf);
    case WIRE_QUERY:
    case WIRE_KEYS:             /* the store's listing, made as the client reads */
        return query_answer(self->query, c, f);
    case WIRE_BIND:
        rc = wire_check_name(f->s1, f->s1len);
        if (rc == 0)
            rc = directory_bind(dir, c, f->s1, f->s1len, &why);
        break;
    case WIRE_UNBIND:
        rc = directory_unbind(dir, c, f->s1, f->s1len);
        break;
    case WIRE_SUBSCRIBE:
        rc = wire_check_pattern(f->s1, f->s1len);
        if (rc == 0)
            rc = directory_subscribe(dir, c, f->s1, f->s1len, &why);
        break;
    case WIRE_UNSUBSCRIBE:
        rc = directory_unsubscribe(dir, c, f->s1, f->s1len);
        break;
    case WIRE_WATCH:
        rc = wire_check_pattern(f->s1, f->s1len);
        if (rc == 0)
            rc = directory_watch(dir, c, f->s1, f->s1len, &why);
        if (rc == 0) {
            client_send_ok(c, f, NULL, 0);
            directory_watch_snapshot(dir, c, f->s1, f->s1len);
            return CLIENT_DONE;
        }
        break;
    case WIRE_UNWATCH:
        rc = directory_unwatch(dir, c, f->s1, f->s1len);
        break;
    case WIRE_MONITOR:
        rc = f->s1len ? wire_check_pattern(f->s1, f->s1len) : 0;
        if (rc == 0)
            rc = directory_monitor(dir, c, f->s1, f->s1len);
        break;
    default:
        if (self->store && store_is_command(f->type)) {
            store_command(self->store, c, f);
            return CLIENT_DONE;
        }
        /* Node-to-client types, a second HELLO: the client is confused. */
        client_send_error(c, f, EBADMSG, NULL, 0, "unexpected frame type");
        client_doom(c, "sent an unexpected frame type");
        return CLIENT_DONE;
    }
    if (rc < 0)
        client_send_error(c, f, -rc, f->s1, f->s1len,
                          why ? why : rc == -EINVAL ? "bad name" : rc == -EEXIST ? "already there" :
                          rc == -ENOENT ? "not there" : rc == -ENOBUFS ? "too many" : "failed");
    else
        client_send_ok(c, f, NULL, 0);
    return CLIENT_DONE;
}

/* Handles every complete frame in c's buffer until it is empty or c must
   wait for a receiver. */
static void s_process(sessions_t *self, client_t *c)
{
    const node_config_t *cfg = c->clients->cfg;
    size_t max_frame = cfg->max_message + WIRE_CLIENT_HEAD_MAX;
    while (!c->doomed && !c->blocked_on && !c->blocked_peer && c->rx && c->rx_head < c->rx_tail) {
        /* Our own queue full of answers we have not read: wait for us. */
        if (c->queued > cfg->queue_limit) {
            client_block_on(c, c);
            return;
        }
        const uint8_t *at = c->rx->data + c->rx_head;
        size_t avail = c->rx_tail - c->rx_head;
        ssize_t len = wire_peek(at, avail, max_frame);
        if (len < 0) {
            s_violation(c, -(int) len, len == -EMSGSIZE ? "frame too large" : "bad frame");
            return;
        }
        if (len == 0 || (size_t) len > avail) {
            if (!c->frame_since)
                c->frame_since = loop_now(c->clients->loop);
            return;
        }
        wire_frame_t f;
        if (wire_decode(at, (size_t) len, &f) < 0) {
            s_violation(c, EBADMSG, "malformed frame");
            return;
        }
        buf_t *pbuf = c->rx;
        int shm = c->ready && shm_flagged(&f) ? shm_frame(c, &f, c->rx_head, &pbuf) : 0;
        if (shm < 0 || (shm == 0 && s_handle(self, c, &f, pbuf) == CLIENT_BLOCKED))
            return;
        shm_done(c);
        c->rx_head += (size_t) len;
        c->frame_since = 0;
    }
    if (c->rx && c->rx_head == c->rx_tail)
        shm_check_stray(c);     /* an fd that no frame took */
}

/* Reads from c's socket into its buffer. A frame larger than the buffer
   gets one of its own, read into directly. Returns bytes read, 0 if none
   were ready, or -1 once the client is gone. */
static ssize_t s_read(client_t *c)
{
    const node_config_t *cfg = c->clients->cfg;
    if (c->rx && c->rx_head == c->rx_tail) {
        c->rx_head = c->rx_tail = 0;
        if (c->rx->cap > RX_SIZE || c->rx->refs > 1) {
            buf_unref(&c->rx);      /* a big frame's buffer: done with it */
            s_large_release(c);
        }
    }
    if (!c->rx && !(c->rx = buf_new(RX_SIZE)))
        return 0;
    size_t avail = c->rx_tail - c->rx_head;
    ssize_t frame = wire_peek(c->rx->data + c->rx_head, avail, cfg->max_message + WIRE_CLIENT_HEAD_MAX);
    size_t want = c->rx->cap - c->rx_tail;
    if (frame > RX_SIZE && c->rx->cap < (size_t) frame) {
        if (s_large_reserve(c, (size_t) frame) < 0)
            return 0;               /* starved: read again when memory frees */
        buf_t *big = buf_new((size_t) frame);
        if (!big) {
            s_large_release(c);
            s_violation(c, ENOMEM, "out of memory for a large frame");
            return -1;
        }
        memcpy(big->data, c->rx->data + c->rx_head, avail);
        buf_unref(&c->rx);
        c->rx = big;
        c->rx_head = 0;
        c->rx_tail = avail;
        want = (size_t) frame - avail;      /* this frame only */
    } else if (frame > RX_SIZE)
        want = (size_t) frame - avail;
    else if (want < RX_SIZE / 4 && c->rx_head > 0) {
        /* Move the partial frame to the front; into a new buffer if queues
           still point into this one. */
        if (c->rx->refs > 1) {
            buf_t *fresh = buf_new(RX_SIZE);
            if (!fresh)
                return 0;
            memcpy(fresh->data, c->rx->data + c->rx_head, avail);
            buf_unref(&c->rx);
            c->rx = fresh;
        } else
            memmove(c->rx->data, c->rx->data + c->rx_head, avail);
        c->rx_head = 0;
        c->rx_tail = avail;
        want = c->rx->cap - avail;
    }
    if (want == 0)
        return 0;
    for (;;) {
        ssize_t n = shm_read(c, c->rx->data + c->rx_tail, want);
        if (n < 0 && errno == ECONNABORTED)
            return -1;          /* doomed: an fd it may not pass */
        if (n > 0) {
            c->rx_tail += (size_t) n;
            c->clients->stats->bytes_in += (uint64_t) n;
            return n;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return 0;
        if (c->rx_head < c->rx_tail)
            log_warning("client %s (%s): closed in the middle of a frame", c->address, c->label);
        client_doom(c, NULL);
        return -1;
    }
}

static void s_ready(loop_t *loop, int fd, int revents, void *arg)
{
    (void) fd;
    client_t *c = arg;
    if (c->doomed)
        return;
    if (revents & LOOP_OUT && client_write(c) < 0)
        return;
    if (!(revents & LOOP_IN))
        return;
    if (c->blocked_on || c->blocked_peer) {
        /* Paused with a hang-up pending: stop hearing it until resumed;
           what it sent before is still delivered. */
        if (revents & LOOP_ERR) {
            loop_fd_del(loop, c->fd);
            c->in_loop = 0;
        }
        return;
    }
    /* A few reads per wake-up, handled as they come, so one busy client
       cannot hold the loop. */
    for (int i = 0; i < 4 && !c->doomed && !c->blocked_on; i++) {
        ssize_t n = s_read(c);
        s_process(c->sessions, c);
        if (n <= 0 || !c->rx || c->rx_tail < c->rx->cap)
            break;
    }
}

int session_start(sessions_t *self, client_t *c)
{
    c->sessions = self;
    int rc = loop_fd_add(self->clients->loop, c->fd, LOOP_IN, s_ready, c);
    c->in_loop = rc == 0;
    return rc;
}

void sessions_resume(sessions_t *self)
{
    clients_t *clients = self->clients;
    while (clients->runnable.size > 0) {
        client_t *c = clients->runnable.items[--clients->runnable.size];
        c->runnable = 0;
        if (c->doomed || c->blocked_on || c->blocked_peer)
            continue;
        if (!c->in_loop && loop_fd_add(clients->loop, c->fd, 0, s_ready, c) == 0)
            c->in_loop = 1;
        client_update_events(c);
        s_process(self, c);
    }
}

/* Removes a doomed client from everything; it is freed later. */
static void s_teardown(sessions_t *self, client_t *c)
{
    clients_t *clients = self->clients;
    /* Last words (an ERROR saying why) go out if the socket takes them. */
    if (c->queued > 0)
        client_write(c);
    if (c->in_loop)
        loop_fd_del(clients->loop, c->fd);
    c->in_loop = 0;
    close(c->fd);
    c->fd = -1;
    s_large_release(c);
    shm_client_free(c);
    directory_client_gone(self->dir, c);
    if (self->store)
        store_client_gone(self->store, c);
    requests_client_gone(self->requests, c);
    client_wake_waiters(c);
    client_release_all(c);      /* its unread messages die with it, as locally */
    client_unlist(c);
    route_destroy(&c->route);
    query_forget(c);
    if (vec_push(&clients->graveyard, c) < 0)
        log_error("out of memory: leaking client %s", c->address);
}

void sessions_teardown(sessions_t *self)
{
    vec_t *doomed = &self->clients->doomed;
    while (doomed->size > 0)
        s_teardown(self, doomed->items[--doomed->size]);
}

void sessions_write(sessions_t *self)
{
    vec_t *dirty = &self->clients->dirty;
    for (size_t i = 0; i < dirty->size; i++) {
        client_t *c = dirty->items[i];
        c->dirty = 0;
        if (!c->doomed)
            client_write(c);
    }
    dirty->size = 0;
}

void sessions_free_graveyard(sessions_t *self)
{
    vec_t *graveyard = &self->clients->graveyard;
    for (size_t i = 0; i < graveyard->size; i++)
        client_free(graveyard->items[i]);
    graveyard->size = 0;
}

static void s_doom_each(client_t *c, void *arg)
{
    (void) arg;
    client_doom(c, NULL);
}

void sessions_close_all(sessions_t *self)
{
    directory_each_client(self->dir, s_doom_each, NULL);
    sessions_teardown(self);
    sessions_free_graveyard(self);
}
