/*  client.c: one client's queue of frames towards it: writev, room,
    pausing its senders, and doom. */

#include "client.h"
#include "log.h"

#include <czmq.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <linux/sockios.h>
#include <unistd.h>

#define TX_SIZE     (64 * 1024)     /* a block of a client's queue */
#define MAX_IOV     64

typedef struct {
    buf_t *buf;
    size_t off, len;
    buf_t *shm;                 /* a memfd to pass with this chunk's first byte */
} chunk_t;

/* A peer's message queued here, acknowledged once written up to end;
   or (confirm) a sender to answer then. */
typedef struct {
    client_origin_t from;
    confirm_t *confirm;
    uint64_t end;               /* bytes_in once it was queued */
} delivery_t;

void clients_init(clients_t *self, loop_t *loop, const node_config_t *cfg, node_stats_t *stats)
{
    *self = (clients_t) { .loop = loop, .cfg = cfg, .stats = stats, .gen = 1 };
}

void clients_fini(clients_t *self)
{
    for (size_t i = 0; i < self->runnable_peers.size; i++)
        peer_unref((peer_t **) &self->runnable_peers.items[i]);
    vec_free(&self->runnable);
    vec_free(&self->dirty);
    vec_free(&self->doomed);
    vec_free(&self->graveyard);
    vec_free(&self->runnable_peers);
    vec_free(&self->starved);
}

client_t *client_new(clients_t *clients, int fd, uint64_t id)
{
    client_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->clients = clients;
    c->fd = fd;
    c->id = id;
    strcpy(c->label, "-");
    return c;
}

void client_free(client_t *c)
{
    while (c->chunks.count > 0) {
        buf_unref(&RING_AT(&c->chunks, chunk_t, 0).buf);
        buf_unref(&RING_AT(&c->chunks, chunk_t, 0).shm);
        ring_pop(&c->chunks);
    }
    ring_free(&c->chunks);
    client_release_all(c);
    ring_free(&c->deliveries);
    for (size_t i = 0; i < c->parked_peers.size; i++)
        peer_unref((peer_t **) &c->parked_peers.items[i]);
    if (c->shm_timer)
        loop_timer_cancel(c->clients->loop, c->shm_timer);
    buf_unref(&c->tail);
    buf_unref(&c->rx);
    vec_free(&c->waiters);
    vec_free(&c->parked_peers);
    vec_free(&c->names);
    vec_free(&c->subs);
    vec_free(&c->watches);
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}

static void s_mark_dirty(client_t *c)
{
    if (!c->dirty && vec_push(&c->clients->dirty, c) == 0)
        c->dirty = 1;
}

static int s_push_chunk(client_t *c, buf_t *buf, size_t off, size_t len)
{
    chunk_t *k = ring_push(&c->chunks, sizeof *k, 16);
    if (!k)
        return -ENOMEM;
    *k = (chunk_t) { buf_ref(buf), off, len, NULL };
    c->queued += len;
    return 0;
}

/* Makes room for len bytes at the end of the queue and counts them as
   queued. Returns where to write them, or NULL when out of memory. */
static uint8_t *s_queue_reserve(client_t *c, size_t len)
{
    if (!c->tail || c->tail->cap - c->tail_used < len) {
        buf_unref(&c->tail);
        c->tail = buf_new(len > TX_SIZE ? len : TX_SIZE);
        c->tail_used = 0;
        if (!c->tail)
            return NULL;
    }
    chunk_t *last = c->chunks.count ? &RING_AT(&c->chunks, chunk_t, c->chunks.count - 1) : NULL;
    if (last && last->buf == c->tail && last->off + last->len == c->tail_used) {
        last->len += len;
        c->queued += len;
    } else if (s_push_chunk(c, c->tail, c->tail_used, len) < 0)
        return NULL;
    uint8_t *at = c->tail->data + c->tail_used;
    c->tail_used += len;
    return at;
}

/* A payload that is a whole memfd, to a client that takes them: the head
   says so (WIRE_F_SHM, the region's size as payload) and begins a chunk
   of its own, which passes the fd when written (shm.h). */
static int s_queue_shm(client_t *c, const uint8_t *head, size_t hlen, buf_t *pbuf)
{
    size_t len = hlen + WIRE_SHM_REF;
    if (!c->tail || c->tail->cap - c->tail_used < len) {
        buf_unref(&c->tail);
        c->tail = buf_new(TX_SIZE);
        c->tail_used = 0;
        if (!c->tail)
            return -ENOMEM;
    }
    if (s_push_chunk(c, c->tail, c->tail_used, len) < 0)
        return -ENOMEM;
    uint8_t *at = c->tail->data + c->tail_used;
    c->tail_used += len;
    memcpy(at, head, hlen);
    wire_put32(at, (uint32_t) (hlen - 4 + WIRE_SHM_REF));
    at[7] |= WIRE_F_SHM;
    wire_put32(at + hlen, (uint32_t) ((uint64_t) pbuf->cap >> 32));
    wire_put32(at + hlen + 4, (uint32_t) pbuf->cap);
    RING_AT(&c->chunks, chunk_t, c->chunks.count - 1).shm = buf_ref(pbuf);
    c->shm_fds++;
    c->shm_bytes += pbuf->cap;
    return 0;
}

int client_queue_frame(client_t *c, const uint8_t *head, size_t hlen, buf_t *pbuf,
                       const uint8_t *payload, size_t size, const client_origin_t *from)
{
    int rc = 0;
    if (pbuf && pbuf->fd >= 0 && size == pbuf->cap)
        payload = pbuf->data;       /* a region: all of it (a peer's: a copy) */
    if (pbuf && pbuf->fd >= 0 && c->shm_ok && payload == pbuf->data && size == pbuf->cap) {
        rc = s_queue_shm(c, head, hlen, pbuf);
        size = WIRE_SHM_REF;        /* what goes on the socket */
    } else if (pbuf && size >= CLIENT_BY_REF) {
        uint8_t *at = s_queue_reserve(c, hlen);
        if (at)
            memcpy(at, head, hlen);
        rc = at ? s_push_chunk(c, pbuf, (size_t) (payload - pbuf->data), size) : -ENOMEM;
    } else {
        /* Head and payload in one piece, as most frames are small. */
        uint8_t *at = s_queue_reserve(c, hlen + size);
        if (at) {
            memcpy(at, head, hlen);
            if (size)
                memcpy(at + hlen, payload, size);
        } else
            rc = -ENOMEM;
    }
    if (rc < 0) {
        log_error("client %s: out of memory queueing a frame; disconnecting", c->address);
        c->doomed = 1;
    }
    c->bytes_in += hlen + size;
    if (rc == 0 && from) {
        /* A peer's message: acknowledged once written to c's socket. */
        delivery_t *d = ring_push(&c->deliveries, sizeof *d, 16);
        if (d) {
            *d = (delivery_t) { *from, NULL, c->bytes_in };
            peer_ref(from->peer);
            peer_hold(from->peer, from->epoch, from->seq);
        }
    }
    c->clients->stats->frames_out++;
    s_mark_dirty(c);
    return rc;
}

int client_confirm(client_t *c, uint64_t client, peer_t *peer, uint32_t seq,
                   const char *from, size_t fromlen, const char *name, size_t namelen)
{
    confirm_t *k = malloc(sizeof *k + fromlen + namelen);
    delivery_t *d = k ? ring_push(&c->deliveries, sizeof *d, 16) : NULL;
    if (!d) {
        free(k);
        return -ENOMEM;
    }
    *k = (confirm_t) { .client = client, .peer = peer, .seq = seq, .what = WIRE_SEND,
                       .fromlen = (uint8_t) fromlen, .namelen = (uint8_t) namelen };
    if (fromlen)
        memcpy(k->strings, from, fromlen);
    if (namelen)
        memcpy(k->strings + fromlen, name, namelen);
    if (peer)
        peer_ref(peer);
    *d = (delivery_t) { .confirm = k, .end = c->bytes_in };
    return 0;
}

/* Peers' messages whose last byte has left (or, with all, everything: c
   is going) are delivered as far as this node can tell; senders who
   asked hear it, or that c went before. */
static void s_delivered(client_t *c, int all)
{
    while (c->deliveries.count > 0) {
        delivery_t *d = &RING_AT(&c->deliveries, delivery_t, 0);
        if (!all && d->end > c->bytes_out)
            break;
        delivery_t done = *d;
        ring_pop(&c->deliveries);
        if (done.confirm) {
            struct confirm_hook *hook = &c->clients->confirmed;
            if (hook->fn)
                hook->fn(hook->arg, done.confirm, done.end <= c->bytes_out ? 0 : ECONNRESET);
            peer_unref(&done.confirm->peer);
            free(done.confirm);
            continue;
        }
        peer_release(done.from.peer, done.from.epoch, done.from.seq);
        peer_unref(&done.from.peer);
    }
}

void client_release_all(client_t *c)
{
    s_delivered(c, 1);
}

int client_has_room(const client_t *c, size_t len)
{
    const node_config_t *cfg = c->clients->cfg;
    if (c->shm_fds >= cfg->shm_max_fds || (c->shm_fds && c->shm_bytes + len > cfg->shm_queue_limit))
        return 0;       /* memfds queued, their limits (docs/limits.md) */
    return c->queued == 0 || c->queued + len <= cfg->queue_limit;
}

void client_send_control(client_t *c, uint8_t type, uint16_t flags, uint32_t seq,
                         uint32_t aux, const char *s1, size_t l1,
                         const char *s2, size_t l2, const void *data, size_t size)
{
    if (c->doomed)
        return;
    uint8_t head[WIRE_HEAD_MAX];
    size_t hlen = wire_encode(head, type, flags, seq, aux, s1, l1, s2, l2, size);
    client_queue_frame(c, head, hlen, NULL, data, size, NULL);
    const node_config_t *cfg = c->clients->cfg;
    if (c->queued > 2 * cfg->queue_limit + cfg->max_message)
        client_doom(c, "does not read its messages (queue over the hard limit)");
}

void client_send_error(client_t *c, const wire_frame_t *f, int err, const char *name,
                       size_t nlen, const char *text)
{
    c->clients->stats->errors++;
    client_send_control(c, WIRE_ERROR, f->type, f->seq, (uint32_t) err, name, nlen,
                        text, text ? strlen(text) : 0, NULL, 0);
}

void client_send_ok(client_t *c, const wire_frame_t *f, const void *data, size_t size)
{
    client_send_control(c, WIRE_OK, 0, f->seq, 0, NULL, 0, NULL, 0, data, size);
}

void client_update_events(client_t *c)
{
    if (!c->in_loop)
        return;
    int events = (c->blocked_on || c->blocked_peer || c->doomed || c->starved ? 0 : LOOP_IN) |
                 (c->queued ? LOOP_OUT : 0);
    loop_fd_mod(c->clients->loop, c->fd, events);
}

void client_wake(client_t *c)
{
    c->blocked_peer = NULL;
    /* --frame-timeout counts the time it may read, not the wait. */
    if (c->frame_since)
        c->frame_since = loop_now(c->clients->loop);
    if (!c->runnable && vec_push(&c->clients->runnable, c) == 0)
        c->runnable = 1;
}

void client_wake_waiters(client_t *c)
{
    for (size_t i = 0; i < c->waiters.size; i++) {
        client_t *w = c->waiters.items[i];
        w->blocked_on = NULL;
        client_wake(w);
    }
    c->waiters.size = 0;
    /* The peers holding messages for c try again in the idle pass. */
    vec_t *peers = &c->clients->runnable_peers;
    for (size_t i = 0; i < c->parked_peers.size; i++) {
        peer_t *p = c->parked_peers.items[i];
        if (vec_has(peers, p) || vec_push(peers, p) < 0)
            peer_unref(&p);
    }
    c->parked_peers.size = 0;
}

#define SHM_RECHECK_MS 2

static void s_shm_recheck(loop_t *loop, void *arg)
{
    (void) loop;
    client_t *c = arg;
    c->shm_timer = NULL;
    if (!c->doomed)
        client_write(c);
}

/* May the memfd at the head of c's queue be written? Not while as many
   as the limits allow are in c's socket, unread: the kernel would hold
   any number. Nothing tells when a reader takes them, so a timer looks
   again whether the socket is read out (SIOCOUTQ 0). */
static int s_shm_may_write(client_t *c, const buf_t *shm)
{
    const node_config_t *cfg = c->clients->cfg;
    if (c->shm_unread < cfg->shm_max_fds &&
        (c->shm_unread == 0 || c->shm_unread_bytes + shm->cap <= cfg->shm_queue_limit))
        return 1;
    int outq = 0;
    if (ioctl(c->fd, SIOCOUTQ, &outq) == 0 && outq == 0) {
        c->shm_unread = 0;
        c->shm_unread_bytes = 0;
        return 1;
    }
    if (!c->shm_timer)
        c->shm_timer = loop_timer_add(c->clients->loop, SHM_RECHECK_MS, s_shm_recheck, c);
    return 0;
}

int client_write(client_t *c)
{
    clients_t *clients = c->clients;
    while (c->chunks.count > 0) {
        struct iovec iov[MAX_IOV];
        int n = 0;
        for (size_t i = 0; i < c->chunks.count && n < MAX_IOV; i++, n++) {
            chunk_t *k = &RING_AT(&c->chunks, chunk_t, i);
            if (k->shm && i > 0)
                break;      /* a memfd's write begins with its frame */
            iov[n] = (struct iovec) { k->buf->data + k->off, k->len };
        }
        chunk_t *first = &RING_AT(&c->chunks, chunk_t, 0);
        if (first->shm && !s_shm_may_write(c, first->shm))
            break;
        union {
            struct cmsghdr h;
            char room[CMSG_SPACE(sizeof (int))];
        } ctl;
        struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t) n };
        if (first->shm) {
            mh.msg_control = &ctl;
            mh.msg_controllen = sizeof ctl;
            memset(&ctl, 0, sizeof ctl);    /* the padding after the fd goes out too */
            ctl.h = (struct cmsghdr) { .cmsg_len = CMSG_LEN(sizeof (int)),
                                       .cmsg_level = SOL_SOCKET, .cmsg_type = SCM_RIGHTS };
            memcpy(CMSG_DATA(&ctl.h), &first->shm->fd, sizeof (int));
        }
        ssize_t done = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
        if (done > 0 && first->shm) {
            /* Passed: the receiver has its own; ours goes with the last ref. */
            c->shm_fds--;
            c->shm_bytes -= first->shm->cap;
            c->shm_unread++;
            c->shm_unread_bytes += first->shm->cap;
            clients->stats->shm_passed++;
            buf_unref(&first->shm);
        }
        if (done < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                break;
            /* EPIPE, ECONNRESET: the client left; the read side says so. */
            client_doom(c, errno == EPIPE || errno == ECONNRESET ? NULL : "write failed");
            return -1;
        }
        clients->stats->bytes_out += (uint64_t) done;
        c->bytes_out += (uint64_t) done;
        c->queued -= (size_t) done;
        while (done > 0) {
            chunk_t *k = &RING_AT(&c->chunks, chunk_t, 0);
            if ((size_t) done < k->len) {
                k->off += (size_t) done;
                k->len -= (size_t) done;
                break;
            }
            done -= (ssize_t) k->len;
            buf_unref(&k->buf);
            buf_unref(&k->shm);
            ring_pop(&c->chunks);
        }
    }
    /* An empty queue reuses its block when no one else holds it. */
    if (c->chunks.count == 0 && c->tail && c->tail->refs == 1)
        c->tail_used = 0;
    if (c->deliveries.count > 0)
        s_delivered(c, 0);
    if ((c->waiters.size > 0 || c->parked_peers.size > 0) &&
        c->queued <= clients->cfg->queue_limit / 2 && c->shm_fds <= clients->cfg->shm_max_fds / 2 &&
        c->shm_bytes <= clients->cfg->shm_queue_limit / 2)
        client_wake_waiters(c);
    client_update_events(c);
    return 0;
}

void client_doom(client_t *c, const char *why)
{
    if (c->doomed)
        return;
    if (why)
        log_notice("client %s (%s, pid %d): %s; disconnecting", c->address, c->label,
                   (int) c->cred.pid, why);
    c->doomed = 1;
    clients_t *clients = c->clients;
    clients->gen++;         /* routes to it are stale */
    clients->stats->dropped_clients += why != NULL;
    if (vec_push(&clients->doomed, c) < 0)
        log_error("out of memory tearing down client %s", c->address);
    client_update_events(c);
}

int client_block_on(client_t *c, client_t *target)
{
    if (vec_push(&target->waiters, c) < 0) {
        client_doom(c, "out of memory");
        return CLIENT_BLOCKED;
    }
    c->blocked_on = target;
    c->clients->stats->paused++;
    client_update_events(c);
    return CLIENT_BLOCKED;
}

int client_block_on_peer(client_t *c, peer_t *peer)
{
    if (peer_wait(peer, c) < 0) {
        client_doom(c, "out of memory");
        return CLIENT_BLOCKED;
    }
    c->blocked_peer = peer;
    c->clients->stats->paused++;
    client_update_events(c);
    return CLIENT_BLOCKED;
}

int client_park_peer(client_t *c, peer_t *peer)
{
    if (vec_has(&c->parked_peers, peer))
        return 0;
    if (vec_push(&c->parked_peers, peer) < 0)
        return -ENOMEM;
    peer_ref(peer);
    return 0;
}

void client_unlist(client_t *c)
{
    clients_t *clients = c->clients;
    if (c->blocked_on)
        vec_remove(&c->blocked_on->waiters, c);
    c->blocked_on = NULL;
    if (c->blocked_peer)
        peer_unwait(c->blocked_peer, c);
    c->blocked_peer = NULL;
    if (c->runnable)
        vec_remove(&clients->runnable, c);
    if (c->dirty)
        vec_remove(&clients->dirty, c);
    if (c->starved)
        vec_remove(&clients->starved, c);
    c->runnable = c->dirty = c->starved = 0;
}

policy_who_t client_who(const client_t *c)
{
    return (policy_who_t) {
        .local = 1, .uid = c->cred.uid, .groups = c->groups, .ngroups = c->ngroups,
        .user = c->user,
    };
}
