/*  server.c: local clients and the directory they share.

    Buffers. Each client reads into a 64 KiB buffer and its frames are
    handled in place. A frame larger than that gets a buffer of its own,
    which is then passed by reference to the receivers' queues: a large
    payload is never copied by the node. Small frames are copied into the
    receiver's queue, which is written with writev once per loop turn.

    Flow control. Before a frame is delivered the receiver must have room
    (its queue empty, or queue + frame within the limit). If not, the
    sender is paused on that receiver, the frame stays in its buffer, and
    it is handled again once the receiver drains to half its limit. Answers
    from the node itself (OK, ERROR, events) are never held back; a client
    that lets them pile up past a hard limit is disconnected, and a client
    whose own queue is full is not read until it reads.

    Teardown. A client that must go is first marked doomed; the loop's idle
    hook tears it down (names, subscriptions, requests, waiters) and frees
    it once no list points to it, so callbacks never see a freed client. */

#include "server.h"
#include "cluster.h"
#include "dict.h"
#include "wire.h"

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#define RX_SIZE       (64 * 1024)   /* a client's read buffer */
#define TX_SIZE       (64 * 1024)   /* a block of a client's queue */
#define BY_REF        (16 * 1024)   /* payloads this large are not copied */
#define MAX_IOV       64
#define MAX_PER_CLIENT 4096         /* names, subscriptions, watches each */

enum { C_NEW, C_READY };
enum { DONE = 0, BLOCKED = 1 };

/* A reference-counted block of bytes, shared by queues: our own memory,
   or a ZeroMQ message from a peer, held without copying it. */
typedef struct {
    uint32_t refs;
    size_t cap;
    uint8_t *data;
    zmq_msg_t *zmsg;            /* NULL: data is ours, after this header */
} buf_t;

typedef struct {
    buf_t *buf;
    size_t off, len;
} chunk_t;

typedef struct client client_t;
typedef struct request request_t;

/* A list of pointers, unordered; removal swaps in the last. */
typedef struct {
    void **items;
    size_t size, cap;
} vec_t;

struct client {
    server_t *server;
    uint64_t id;
    int fd;
    int state;
    int doomed;
    int in_loop;                /* fd registered with the loop */
    int runnable, dirty;        /* in server's lists */
    char address[WIRE_NAME_MAX + 1];
    char label[WIRE_NAME_MAX + 1];
    struct ucred cred;

    buf_t *rx;                  /* frames read: [rx_head, rx_tail) */
    size_t rx_head, rx_tail;

    chunk_t *chunks;            /* queue: ring of chunks */
    size_t chunk_first, chunk_count, chunk_cap;
    buf_t *tail;                /* block being filled, with its own ref */
    size_t tail_used;
    size_t queued;              /* bytes in the queue */
    uint64_t bytes_in, bytes_out;       /* ever queued, ever written */
    struct delivery {           /* peers' messages queued here, in order */
        peer_t *peer;
        uint32_t epoch, seq;
        uint64_t end;           /* bytes_in once it was queued */
    } *deliveries;
    size_t dl_first, dl_count, dl_cap;

    client_t *blocked_on;       /* paused until this client drains */
    peer_t *blocked_peer;       /* paused until this peer has credit */
    vec_t waiters;              /* clients paused on us */
    vec_t parked_peers;         /* peers holding a message for us */
    vec_t names;                /* name_t * we hold */
    vec_t subs;                 /* sub_t * we are in */
    vec_t watches;              /* char * patterns */
    request_t *asked;           /* requests we made, awaiting replies */
    request_t *held;            /* requests given to us to answer */
    uint32_t pub_epoch;         /* the last publish delivered to us */
    struct {                    /* where our last destination led */
        uint64_t gen;           /* server->gen when filled; 0: empty */
        size_t dlen;
        char dest[WIRE_NAME_MAX];
        client_t *to;           /* a unique address, or */
        peer_t *peer;           /* another node, or */
        struct name *name;      /* a name */
        int local_only;         /* name@us */
        size_t hlen;
        uint8_t head[WIRE_HEAD_MAX];    /* its MESSAGE head, size 0, seq 0 */
    } route;
};

/* A service name and its local holders. */
typedef struct name {
    char *name;
    vec_t holders;              /* local clients */
    size_t next;                /* round robin */
    vec_t peers;                /* nodes that hold it */
    size_t next_peer;
} name_t;

/* A subscription pattern and its subscribers. */
typedef struct {
    char *pattern;
    int prefix;                 /* pattern ends in '*' */
    vec_t clients;
} sub_t;

struct request {
    server_t *server;
    uint8_t key[12 + WIRE_NAME_MAX];    /* requester id, request id, its node */
    size_t keylen;
    uint32_t id;
    client_t *requester;        /* NULL: on peer, at address from */
    client_t *holder;           /* NULL: on peer */
    peer_t *peer;
    char *from;
    loop_timer_t *timer;
    request_t *anext, **aprev;  /* in requester->asked */
    request_t *hnext, **hprev;  /* in holder->held */
};

struct server {
    loop_t *loop;
    cluster_t *cluster;
    node_config_t config;
    int listen_fd;
    int lock_fd;
    char lock_path[sizeof ((struct sockaddr_un *) 0)->sun_path + 8];
    uint64_t next_id;
    dict_t *clients;            /* id -> client_t */
    dict_t *names;              /* name -> name_t */
    dict_t *exact_subs;         /* topic -> sub_t, patterns without '*' */
    vec_t prefix_subs;          /* sub_t with a '*' */
    vec_t watchers;             /* client_t watching something */
    dict_t *requests;           /* key -> request_t */
    vec_t runnable;             /* paused clients to resume */
    vec_t dirty;                /* clients with bytes to write */
    vec_t doomed;               /* clients to tear down */
    vec_t graveyard;            /* torn down, to free */
    uint32_t pub_epoch;
    struct {                    /* the peer message being delivered, if any */
        peer_t *peer;
        uint32_t epoch, seq;
        void *zmsg;             /* its ZeroMQ message */
    } from_peer;
    uint64_t gen;               /* bumped when a name or client may have gone */
    struct remote_route {       /* where the last message from a peer led */
        uint64_t gen;
        size_t tolen;
        char to[WIRE_NAME_MAX];
        client_t *to_client;
        struct name *name;
    } remote_route;
    size_t nclients;
    int64_t started;
    struct {
        uint64_t frames_in, frames_out, bytes_in, bytes_out;
        uint64_t delivered, errors, paused, dropped_clients, violations;
    } stats;
};

/* --- small helpers ------------------------------------------------------------- */

static int vec_push(vec_t *v, void *item)
{
    if (v->size == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 4;
        void **items = realloc(v->items, cap * sizeof *items);
        if (!items)
            return -ENOMEM;
        v->items = items;
        v->cap = cap;
    }
    v->items[v->size++] = item;
    return 0;
}

static int vec_remove(vec_t *v, const void *item)
{
    for (size_t i = 0; i < v->size; i++)
        if (v->items[i] == item) {
            v->items[i] = v->items[--v->size];
            return 1;
        }
    return 0;
}

static int vec_has(const vec_t *v, const void *item)
{
    for (size_t i = 0; i < v->size; i++)
        if (v->items[i] == item)
            return 1;
    return 0;
}

static void vec_free(vec_t *v)
{
    free(v->items);
    *v = (vec_t) { 0 };
}

/* Large buffers are kept for reuse: a fresh one costs a page fault per
   4 KiB, more than copying it. One pool for the process (one thread). */
#define POOL_SLOTS  8
#define POOL_BYTES  (64u << 20)
static struct {
    buf_t *items[POOL_SLOTS];
    size_t count, bytes;
} s_pool;

static buf_t *buf_new(size_t cap)
{
    buf_t *b = NULL;
    if (cap > RX_SIZE) {
        /* The smallest pooled buffer that fits, if it is not twice too big. */
        size_t best = SIZE_MAX;
        for (size_t i = 0; i < s_pool.count; i++)
            if (s_pool.items[i]->cap >= cap && s_pool.items[i]->cap <= 2 * cap &&
                (best == SIZE_MAX || s_pool.items[i]->cap < s_pool.items[best]->cap))
                best = i;
        if (best != SIZE_MAX) {
            b = s_pool.items[best];
            s_pool.items[best] = s_pool.items[--s_pool.count];
            s_pool.bytes -= b->cap;
            b->refs = 1;
            return b;
        }
    }
    b = malloc(sizeof *b + cap);
    if (b) {
        b->refs = 1;
        b->cap = cap;
        b->data = (uint8_t *) (b + 1);
        b->zmsg = NULL;
    }
    return b;
}

/* A buffer sharing the content of a ZeroMQ message (zmq_msg_copy shares a
   large message's bytes by reference count). NULL when out of memory. */
static buf_t *buf_of_zmq(zmq_msg_t *msg)
{
    buf_t *b = malloc(sizeof *b + sizeof (zmq_msg_t));
    if (!b)
        return NULL;
    b->zmsg = (zmq_msg_t *) (b + 1);
    if (zmq_msg_init(b->zmsg) < 0 || zmq_msg_copy(b->zmsg, msg) < 0) {
        free(b);
        return NULL;
    }
    b->refs = 1;
    b->cap = zmq_msg_size(b->zmsg);
    b->data = zmq_msg_data(b->zmsg);
    return b;
}

static void buf_unref(buf_t **bp)
{
    buf_t *b = *bp;
    *bp = NULL;
    if (!b || --b->refs > 0)
        return;
    if (b->zmsg) {
        zmq_msg_close(b->zmsg);
        free(b);
        return;
    }
    if (b->cap > RX_SIZE && b->cap <= POOL_BYTES / 4 && s_pool.bytes + b->cap <= POOL_BYTES) {
        if (s_pool.count == POOL_SLOTS) {
            /* Make room: the oldest goes. */
            s_pool.bytes -= s_pool.items[0]->cap;
            free(s_pool.items[0]);
            s_pool.items[0] = s_pool.items[--s_pool.count];
        }
        s_pool.items[s_pool.count++] = b;
        s_pool.bytes += b->cap;
        return;
    }
    free(b);
}

static void s_pool_clear(void)
{
    while (s_pool.count > 0)
        free(s_pool.items[--s_pool.count]);
    s_pool.bytes = 0;
}

static char *s_strndup(const char *s, size_t len)
{
    char *d = malloc(len + 1);
    if (d) {
        memcpy(d, s, len);
        d[len] = 0;
    }
    return d;
}

/* --- the queue towards a client ------------------------------------------------ */

static void s_mark_dirty(client_t *c)
{
    if (!c->dirty && vec_push(&c->server->dirty, c) == 0)
        c->dirty = 1;
}

static int s_push_chunk(client_t *c, buf_t *buf, size_t off, size_t len)
{
    if (c->chunk_count == c->chunk_cap) {
        size_t cap = c->chunk_cap ? c->chunk_cap * 2 : 16;
        chunk_t *chunks = malloc(cap * sizeof *chunks);
        if (!chunks)
            return -ENOMEM;
        for (size_t i = 0; i < c->chunk_count; i++)
            chunks[i] = c->chunks[(c->chunk_first + i) % c->chunk_cap];
        free(c->chunks);
        c->chunks = chunks;
        c->chunk_cap = cap;
        c->chunk_first = 0;
    }
    c->chunks[(c->chunk_first + c->chunk_count++) % c->chunk_cap] = (chunk_t) { buf, off, len };
    buf->refs++;
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
    chunk_t *last = c->chunk_count
        ? &c->chunks[(c->chunk_first + c->chunk_count - 1) % c->chunk_cap] : NULL;
    if (last && last->buf == c->tail && last->off + last->len == c->tail_used) {
        last->len += len;
        c->queued += len;
    } else if (s_push_chunk(c, c->tail, c->tail_used, len) < 0)
        return NULL;
    uint8_t *at = c->tail->data + c->tail_used;
    c->tail_used += len;
    return at;
}

static int s_queue_copy(client_t *c, const void *data, size_t len)
{
    uint8_t *at = s_queue_reserve(c, len);
    if (!at)
        return -ENOMEM;
    memcpy(at, data, len);
    return 0;
}

/* Queues one frame: its head, then its payload, by reference when it is
   large and lives in a shared buffer. */
static int s_queue_frame(client_t *c, const uint8_t *head, size_t hlen,
                         buf_t *pbuf, const uint8_t *payload, size_t size)
{
    int rc = 0;
    if (pbuf && size >= BY_REF) {
        rc = s_queue_copy(c, head, hlen);
        if (rc == 0)
            rc = s_push_chunk(c, pbuf, (size_t) (payload - pbuf->data), size);
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
        zsys_error("client %s: out of memory queueing a frame; disconnecting", c->address);
        c->doomed = 1;
    }
    c->bytes_in += hlen + size;
    server_t *s = c->server;
    if (rc == 0 && s->from_peer.peer) {
        /* A peer's message: acknowledged once written to c's socket. */
        if (c->dl_count == c->dl_cap) {
            size_t cap = c->dl_cap ? c->dl_cap * 2 : 16;
            struct delivery *d = malloc(cap * sizeof *d);
            if (d) {
                for (size_t i = 0; i < c->dl_count; i++)
                    d[i] = c->deliveries[(c->dl_first + i) % c->dl_cap];
                free(c->deliveries);
                c->deliveries = d;
                c->dl_cap = cap;
                c->dl_first = 0;
            }
        }
        if (c->dl_count < c->dl_cap) {
            c->deliveries[(c->dl_first + c->dl_count++) % c->dl_cap] = (struct delivery) {
                s->from_peer.peer, s->from_peer.epoch, s->from_peer.seq, c->bytes_in };
            cluster_hold(s->from_peer.peer, s->from_peer.epoch, s->from_peer.seq);
        }
    }
    s->stats.frames_out++;
    s_mark_dirty(c);
    return rc;
}

/* Peers' messages whose last byte has left (or, with all, everything: c
   is going) are delivered as far as this node can tell. */
static void s_delivered(client_t *c, int all)
{
    while (c->dl_count > 0) {
        struct delivery *d = &c->deliveries[c->dl_first];
        if (!all && d->end > c->bytes_out)
            break;
        c->dl_first = (c->dl_first + 1) % c->dl_cap;
        c->dl_count--;
        cluster_release(d->peer, d->epoch, d->seq);
    }
}

/* Is there room for a frame of len bytes? An empty queue takes any frame. */
static int s_has_room(const client_t *c, size_t len)
{
    return c->queued == 0 || c->queued + len <= c->server->config.queue_limit;
}

static void s_doom(client_t *c, const char *why);

/* Queues a frame from the node itself (OK, ERROR, EVENT...): never held
   back, but a client that lets these pile up is cut off. */
static void s_send_control(client_t *c, uint8_t type, uint16_t flags, uint32_t seq,
                           uint32_t aux, const char *s1, size_t l1,
                           const char *s2, size_t l2, const void *data, size_t size)
{
    if (c->doomed)
        return;
    uint8_t head[WIRE_HEAD_MAX];
    size_t hlen = wire_encode(head, type, flags, seq, aux, s1, l1, s2, l2, size);
    s_queue_frame(c, head, hlen, NULL, data, size);
    const node_config_t *cfg = &c->server->config;
    if (c->queued > 2 * cfg->queue_limit + cfg->max_message)
        s_doom(c, "does not read its messages (queue over the hard limit)");
}

static void s_send_error(client_t *c, const wire_frame_t *f, int err,
                         const char *name, size_t nlen, const char *text)
{
    c->server->stats.errors++;
    s_send_control(c, WIRE_ERROR, f->type, f->seq, (uint32_t) err, name, nlen,
                   text, text ? strlen(text) : 0, NULL, 0);
}

static void s_send_ok(client_t *c, const wire_frame_t *f, const void *data, size_t size)
{
    s_send_control(c, WIRE_OK, 0, f->seq, 0, NULL, 0, NULL, 0, data, size);
}

static void s_update_events(client_t *c)
{
    if (!c->in_loop)
        return;
    int events = (c->blocked_on || c->blocked_peer || c->doomed ? 0 : LOOP_IN) |
                 (c->queued ? LOOP_OUT : 0);
    loop_fd_mod(c->server->loop, c->fd, events);
}

/* Resumes every client paused on c, and lets peers holding messages for
   c try again: it has room, or is gone. */
static void s_wake_waiters(client_t *c)
{
    for (size_t i = 0; i < c->waiters.size; i++) {
        client_t *w = c->waiters.items[i];
        w->blocked_on = NULL;
        if (!w->runnable && vec_push(&c->server->runnable, w) == 0)
            w->runnable = 1;
    }
    c->waiters.size = 0;
    /* A peer may park again on c while it resumes: take the list first. */
    vec_t parked = c->parked_peers;
    c->parked_peers = (vec_t) { 0 };
    for (size_t i = 0; i < parked.size; i++)
        cluster_resume(parked.items[i]);
    vec_free(&parked);
}

/* Writes what the socket takes. Returns 0, or -1 if the client is doomed. */
static int s_write(client_t *c)
{
    server_t *s = c->server;
    while (c->chunk_count > 0) {
        struct iovec iov[MAX_IOV];
        int n = 0;
        for (size_t i = 0; i < c->chunk_count && n < MAX_IOV; i++, n++) {
            chunk_t *k = &c->chunks[(c->chunk_first + i) % c->chunk_cap];
            iov[n] = (struct iovec) { k->buf->data + k->off, k->len };
        }
        ssize_t done = writev(c->fd, iov, n);
        if (done < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                break;
            /* EPIPE, ECONNRESET: the client left; the read side says so. */
            s_doom(c, errno == EPIPE || errno == ECONNRESET ? NULL : "write failed");
            return -1;
        }
        s->stats.bytes_out += (uint64_t) done;
        c->bytes_out += (uint64_t) done;
        c->queued -= (size_t) done;
        while (done > 0) {
            chunk_t *k = &c->chunks[c->chunk_first];
            if ((size_t) done < k->len) {
                k->off += (size_t) done;
                k->len -= (size_t) done;
                break;
            }
            done -= (ssize_t) k->len;
            buf_unref(&k->buf);
            c->chunk_first = (c->chunk_first + 1) % c->chunk_cap;
            c->chunk_count--;
        }
    }
    /* An empty queue reuses its block when no one else holds it. */
    if (c->chunk_count == 0 && c->tail && c->tail->refs == 1)
        c->tail_used = 0;
    if (c->dl_count > 0)
        s_delivered(c, 0);
    if ((c->waiters.size > 0 || c->parked_peers.size > 0) &&
        c->queued <= s->config.queue_limit / 2)
        s_wake_waiters(c);
    s_update_events(c);
    return 0;
}

/* --- the directory ---------------------------------------------------------------- */

/* Tells every watcher of a matching pattern that name came or went on
   node (ours or a peer's). */
static void s_name_event(server_t *s, const char *name, size_t len, int event,
                         const char *node)
{
    for (size_t i = 0; i < s->watchers.size; i++) {
        client_t *w = s->watchers.items[i];
        for (size_t j = 0; j < w->watches.size; j++) {
            const char *p = w->watches.items[j];
            if (wire_match(p, strlen(p), name, len)) {
                s_send_control(w, WIRE_EVENT, 0, 0, (uint32_t) event, name, len,
                               node, strlen(node), NULL, 0);
                break;
            }
        }
    }
}

static name_t *s_name_get(server_t *s, const char *name, size_t len)
{
    name_t *n = dict_get(s->names, name, len);
    if (n)
        return n;
    n = calloc(1, sizeof *n);
    if (!n || !(n->name = s_strndup(name, len)) || dict_put(s->names, name, len, n) < 0) {
        if (n)
            free(n->name);
        free(n);
        return NULL;
    }
    return n;
}

/* Frees n once nobody, here or on a peer, holds it. */
static void s_name_gc(server_t *s, name_t *n)
{
    if (n->holders.size > 0 || n->peers.size > 0)
        return;
    dict_del(s->names, n->name, strlen(n->name));
    vec_free(&n->holders);
    vec_free(&n->peers);
    free(n->name);
    free(n);
}

static int s_bind(client_t *c, const char *name, size_t len)
{
    server_t *s = c->server;
    name_t *n = dict_get(s->names, name, len);
    if (n && vec_has(&n->holders, c))
        return -EEXIST;
    if (c->names.size >= MAX_PER_CLIENT)
        return -ENOBUFS;
    if (!(n = s_name_get(s, name, len)))
        return -ENOMEM;
    if (vec_push(&n->holders, c) < 0 || vec_push(&c->names, n) < 0) {
        vec_remove(&n->holders, c);
        s_name_gc(s, n);
        return -ENOMEM;
    }
    if (n->holders.size == 1) {
        s_name_event(s, name, len, WIRE_EV_NAME_UP, s->config.name);
        if (s->cluster)
            cluster_local_name(s->cluster, name, len, 1);
    }
    s->gen++;
    return 0;
}

static void s_unbind(client_t *c, name_t *n)
{
    server_t *s = c->server;
    vec_remove(&c->names, n);
    vec_remove(&n->holders, c);
    s->gen++;
    if (n->holders.size > 0)
        return;
    size_t len = strlen(n->name);
    s_name_event(s, n->name, len, WIRE_EV_NAME_DOWN, s->config.name);
    if (s->cluster)
        cluster_local_name(s->cluster, n->name, len, 0);
    s_name_gc(s, n);
}

void server_remote_name(server_t *s, peer_t *peer, const char *name, size_t len, int up)
{
    name_t *n = up ? s_name_get(s, name, len) : dict_get(s->names, name, len);
    if (!n)
        return;
    if (up ? vec_push(&n->peers, peer) < 0 : !vec_remove(&n->peers, peer)) {
        s_name_gc(s, n);
        return;
    }
    s->gen++;
    s_name_event(s, name, len, up ? WIRE_EV_NAME_UP : WIRE_EV_NAME_DOWN, peer_name(peer));
    if (!up)
        s_name_gc(s, n);
}

void server_remote_sub(server_t *s, peer_t *peer, const char *pattern, size_t len, int up)
{
    /* The cluster keeps peers' patterns and matches them when we publish. */
    (void) peer;
    (void) pattern;
    (void) len;
    (void) up;
    s->gen++;
}

static int s_subscribe(client_t *c, const char *pattern, size_t len)
{
    server_t *s = c->server;
    int prefix = pattern[len - 1] == '*';
    sub_t *sub = NULL;
    if (prefix) {
        for (size_t i = 0; i < s->prefix_subs.size && !sub; i++) {
            sub_t *p = s->prefix_subs.items[i];
            if (strlen(p->pattern) == len && memcmp(p->pattern, pattern, len) == 0)
                sub = p;
        }
    } else
        sub = dict_get(s->exact_subs, pattern, len);
    if (sub && vec_has(&sub->clients, c))
        return -EEXIST;
    if (c->subs.size >= MAX_PER_CLIENT)
        return -ENOBUFS;
    if (!sub) {
        sub = calloc(1, sizeof *sub);
        if (!sub || !(sub->pattern = s_strndup(pattern, len)) ||
            (prefix ? vec_push(&s->prefix_subs, sub) : dict_put(s->exact_subs, pattern, len, sub)) < 0) {
            if (sub)
                free(sub->pattern);
            free(sub);
            return -ENOMEM;
        }
        sub->prefix = prefix;
    }
    if (vec_push(&sub->clients, c) < 0)
        return -ENOMEM;     /* an empty sub_t stays until its pattern is reused */
    if (vec_push(&c->subs, sub) < 0) {
        vec_remove(&sub->clients, c);
        return -ENOMEM;
    }
    if (sub->clients.size == 1 && s->cluster)
        cluster_local_sub(s->cluster, pattern, len, 1);
    return 0;
}

static void s_unsubscribe(client_t *c, sub_t *sub)
{
    server_t *s = c->server;
    vec_remove(&c->subs, sub);
    vec_remove(&sub->clients, c);
    if (sub->clients.size > 0)
        return;
    if (s->cluster)
        cluster_local_sub(s->cluster, sub->pattern, strlen(sub->pattern), 0);
    if (sub->prefix)
        vec_remove(&s->prefix_subs, sub);
    else
        dict_del(s->exact_subs, sub->pattern, strlen(sub->pattern));
    vec_free(&sub->clients);
    free(sub->pattern);
    free(sub);
}

static sub_t *s_find_sub(client_t *c, const char *pattern, size_t len)
{
    for (size_t i = 0; i < c->subs.size; i++) {
        sub_t *sub = c->subs.items[i];
        if (strlen(sub->pattern) == len && memcmp(sub->pattern, pattern, len) == 0)
            return sub;
    }
    return NULL;
}

static size_t s_find_watch(client_t *c, const char *pattern, size_t len)
{
    for (size_t i = 0; i < c->watches.size; i++) {
        const char *p = c->watches.items[i];
        if (strlen(p) == len && memcmp(p, pattern, len) == 0)
            return i;
    }
    return SIZE_MAX;
}

typedef struct {
    client_t *watcher;
    const char *pattern;
} watch_ctx_t;

/* The events a new watch starts with: every name held now, per node. */
static void s_initial_event(const void *key, size_t len, void *value, void *arg)
{
    name_t *n = value;
    watch_ctx_t *ctx = arg;
    server_t *s = ctx->watcher->server;
    if (!wire_match(ctx->pattern, strlen(ctx->pattern), key, len))
        return;
    if (n->holders.size > 0)
        s_send_control(ctx->watcher, WIRE_EVENT, 0, 0, WIRE_EV_NAME_UP, key, len,
                       s->config.name, strlen(s->config.name), NULL, 0);
    for (size_t i = 0; i < n->peers.size; i++) {
        const char *node = peer_name(n->peers.items[i]);
        s_send_control(ctx->watcher, WIRE_EVENT, 0, 0, WIRE_EV_NAME_UP, key, len,
                       node, strlen(node), NULL, 0);
    }
}

typedef struct {
    server_t *server;
    void (*name) (void *arg, const char *s, size_t len);
    void *arg;
} each_local_t;

static void s_each_local_name(const void *key, size_t len, void *value, void *arg)
{
    each_local_t *e = arg;
    if (((name_t *) value)->holders.size > 0)
        e->name(e->arg, key, len);
}

static void s_each_local_sub(const void *key, size_t len, void *value, void *arg)
{
    (void) value;
    each_local_t *e = arg;
    e->name(e->arg, key, len);
}

void server_each_local(server_t *s, void (*name) (void *arg, const char *str, size_t len),
                       void (*sub) (void *arg, const char *str, size_t len), void *arg)
{
    each_local_t e = { s, name, arg };
    dict_each(s->names, s_each_local_name, &e);
    e.name = sub;
    dict_each(s->exact_subs, s_each_local_sub, &e);
    for (size_t i = 0; i < s->prefix_subs.size; i++) {
        sub_t *p = s->prefix_subs.items[i];
        sub(arg, p->pattern, strlen(p->pattern));
    }
}

/* --- requests ---------------------------------------------------------------- */

/* A request's key: requester id and request id, and for a request made on
   another node, that node's name. */
static size_t s_request_key(uint8_t *key, uint64_t requester, uint32_t id,
                            const char *node, size_t nodelen)
{
    memcpy(key, &requester, 8);
    memcpy(key + 8, &id, 4);
    memcpy(key + 12, node, nodelen);
    return 12 + nodelen;
}

static void s_request_free(server_t *s, request_t *r)
{
    dict_del(s->requests, r->key, r->keylen);
    loop_timer_cancel(s->loop, r->timer);
    if (r->aprev && (*r->aprev = r->anext))
        r->anext->aprev = r->aprev;
    if (r->hprev && (*r->hprev = r->hnext))
        r->hnext->hprev = r->hprev;
    free(r->from);
    free(r);
}

/* Fails a pending request towards its requester, here or on its node. */
static void s_request_fail(server_t *s, request_t *r, int err, const char *text)
{
    s->stats.errors++;
    if (r->requester)
        s_send_control(r->requester, WIRE_ERROR, WIRE_REQUEST, r->id, (uint32_t) err,
                       NULL, 0, text, strlen(text), NULL, 0);
    else if (r->peer && r->from)
        cluster_fail(r->peer, err, r->id, WIRE_REQUEST, r->from, strlen(r->from), NULL, 0, text);
    s_request_free(s, r);
}

static void s_request_expired(loop_t *loop, void *arg)
{
    (void) loop;
    request_t *r = arg;
    r->timer = NULL;        /* the loop freed it */
    if (r->requester)
        s_request_fail(r->server, r, ETIMEDOUT, "no reply in time");
    else
        s_request_free(r->server, r);   /* the requester's node decides */
}

/* Is request id of local client pending? */
static int s_request_pending(server_t *s, uint64_t client, uint32_t id)
{
    uint8_t key[12];
    return dict_get(s->requests, key, s_request_key(key, client, id, "", 0)) != NULL;
}

/* Records a pending request. requester is the local client that asked,
   or NULL when from (its address) is on peer; holder is the local client
   that answers, or NULL when it is on peer. */
static request_t *s_request_new(server_t *s, client_t *requester, uint64_t rid_client,
                                uint32_t id, const char *from, size_t fromlen,
                                const char *node, size_t nodelen, client_t *holder,
                                peer_t *peer, uint32_t timeout)
{
    request_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->server = s;
    r->keylen = s_request_key(r->key, rid_client, id, node, nodelen);
    if (dict_get(s->requests, r->key, r->keylen) ||
        (from && !(r->from = s_strndup(from, fromlen)))) {
        free(r);
        return NULL;
    }
    r->id = id;
    r->requester = requester;
    r->holder = holder;
    r->peer = peer;
    r->timer = loop_timer_add(s->loop, timeout, s_request_expired, r);
    if (!r->timer || dict_put(s->requests, r->key, r->keylen, r) < 0) {
        loop_timer_cancel(s->loop, r->timer);
        free(r->from);
        free(r);
        return NULL;
    }
    if (requester) {
        if ((r->anext = requester->asked))
            requester->asked->aprev = &r->anext;
        r->aprev = &requester->asked;
        requester->asked = r;
    }
    if (holder) {
        if ((r->hnext = holder->held))
            holder->held->hprev = &r->hnext;
        r->hprev = &holder->held;
        holder->held = r;
    }
    return r;
}

/* --- routing ----------------------------------------------------------------- */

/* Picks one holder of n: round robin, skipping holders whose queue is
   full; if all are, the first live one in turn (the sender waits for it).
   A doomed holder (closed, not yet torn down) holds nothing: NULL if no
   live holder is left. */
static client_t *s_pick(name_t *n, size_t len)
{
    size_t count = n->holders.size;
    client_t *first = NULL;
    for (size_t i = 0; i < count; i++) {
        client_t *h = n->holders.items[(n->next + i) % count];
        if (h->doomed)
            continue;
        if (s_has_room(h, len)) {
            n->next = (n->next + i + 1) % count;
            return h;
        }
        if (!first)
            first = h;
    }
    return first;
}

/* Round robin over the peers that hold n and are up. */
static peer_t *s_pick_peer(name_t *n)
{
    size_t count = n->peers.size;
    for (size_t i = 0; i < count; i++) {
        peer_t *p = n->peers.items[(n->next_peer + i) % count];
        if (peer_is_up(p)) {
            n->next_peer = (n->next_peer + i + 1) % count;
            return p;
        }
    }
    return NULL;
}

typedef struct {
    client_t *to;       /* a local client, or */
    peer_t *peer;       /* the node to forward to */
} target_t;

/* A cached or fresh name route: local holders first, then peers. */
static int s_route_name(name_t *n, int local_only, size_t len, target_t *ret)
{
    ret->to = s_pick(n, len);
    ret->peer = ret->to || local_only ? NULL : s_pick_peer(n);
    return ret->to || ret->peer ? 0 : -ENOENT;
}

static int s_is_self(const server_t *s, const char *node, size_t len)
{
    return len == 0 || (len == strlen(s->config.name) && memcmp(node, s->config.name, len) == 0);
}

/* Finds where a destination leads from here, preferring a local holder
   with room for len bytes. Returns 0 with *ret set (a local queue may be
   full, a peer out of credit), or a negative errno. With cache, the way
   is remembered in c->route for the next frame to the same destination,
   until the directory changes. */
static int s_resolve(server_t *s, client_t *cache, const char *dest, size_t dlen,
                     size_t len, target_t *ret)
{
    if (cache && cache->route.gen == s->gen && cache->route.dlen == dlen &&
        memcmp(cache->route.dest, dest, dlen) == 0) {
        ret->to = cache->route.to;
        ret->peer = cache->route.peer;
        if (cache->route.name)
            return s_route_name(cache->route.name, cache->route.local_only, len, ret);
        return 0;
    }
    uint64_t id;
    size_t namelen, nodelen;
    const char *node;
    if (wire_parse_dest(dest, dlen, &id, &namelen, &node, &nodelen) < 0)
        return -EINVAL;
    name_t *n = NULL;
    int local_only = nodelen > 0;
    ret->to = NULL;
    ret->peer = NULL;
    if (!s_is_self(s, node, nodelen)) {
        /* Pinned to another node: it must be up, and hold the name. */
        ret->peer = s->cluster ? cluster_find_node(s->cluster, node, nodelen) : NULL;
        if (!ret->peer)
            return -EHOSTUNREACH;
        if (!id) {
            n = dict_get(s->names, dest, namelen);
            if (!n || !vec_has(&n->peers, ret->peer))
                return -ENOENT;
            n = NULL;
        }
    } else if (id) {
        ret->to = dict_get(s->clients, &id, sizeof id);
        if (!ret->to || ret->to->doomed || ret->to->state != C_READY)
            return -ENOENT;
    } else {
        n = dict_get(s->names, dest, namelen);
        if (!n || s_route_name(n, local_only, len, ret) < 0)
            return -ENOENT;
    }
    if (cache) {
        cache->route.gen = s->gen;
        cache->route.dlen = dlen;
        memcpy(cache->route.dest, dest, dlen);
        cache->route.to = n ? NULL : ret->to;
        cache->route.peer = n ? NULL : ret->peer;
        cache->route.name = n;
        cache->route.local_only = local_only;
        cache->route.hlen = wire_encode(cache->route.head, WIRE_MESSAGE, 0, 0, 0,
                                        cache->address, strlen(cache->address), dest, dlen, 0);
    }
    return 0;
}

/* Pauses c until target drains; the frame is handled again then. */
static int s_block(client_t *c, client_t *target)
{
    if (vec_push(&target->waiters, c) < 0) {
        s_doom(c, "out of memory");
        return BLOCKED;
    }
    c->blocked_on = target;
    c->server->stats.paused++;
    s_update_events(c);
    return BLOCKED;
}

/* Pauses c until peer has credit again, or is lost. */
static int s_block_peer(client_t *c, peer_t *peer)
{
    if (cluster_wait(peer, c) < 0) {
        s_doom(c, "out of memory");
        return BLOCKED;
    }
    c->blocked_peer = peer;
    c->server->stats.paused++;
    s_update_events(c);
    return BLOCKED;
}

void server_resume(server_t *s, client_t *c)
{
    c->blocked_peer = NULL;
    if (!c->runnable && vec_push(&s->runnable, c) == 0)
        c->runnable = 1;
}

/* Answers a REQUEST that could not be recorded: its id is in use, or
   memory ran out. */
static void s_request_refused(client_t *c, const wire_frame_t *f)
{
    int err = s_request_pending(c->server, c->id, f->seq) ? EEXIST : ENOMEM;
    s_send_error(c, f, err, f->s1, f->s1len,
                 err == EEXIST ? "request id in use" : "out of memory");
}

static uint32_t s_timeout(const server_t *s, uint32_t asked)
{
    uint32_t timeout = asked ? asked : s->config.request_timeout;
    return timeout > NODE_MAX_REQ_TIMEOUT ? NODE_MAX_REQ_TIMEOUT : timeout;
}

static int s_handle_send(client_t *c, const wire_frame_t *f, buf_t *pbuf)
{
    server_t *s = c->server;
    if (f->size > s->config.max_message) {
        s_send_error(c, f, EMSGSIZE, f->s1, f->s1len, "message too large");
        return DONE;
    }
    target_t t;
    size_t alen = strlen(c->address);
    size_t len = WIRE_MIN + alen + f->s1len + f->size;
    int rc = s_resolve(s, c, f->s1, f->s1len, len, &t);
    if (rc < 0) {
        s_send_error(c, f, -rc, f->s1, f->s1len,
                     rc == -ENOENT ? "no such name" :
                     rc == -EHOSTUNREACH ? "no such node" : "bad destination");
        return DONE;
    }
    uint32_t timeout = s_timeout(s, f->aux);
    if (t.peer) {
        if (!cluster_room(t.peer, f->size))
            return s_block_peer(c, t.peer);
        request_t *r = NULL;
        if (f->type == WIRE_REQUEST &&
            !(r = s_request_new(s, c, c->id, f->seq, NULL, 0, "", 0, NULL, t.peer, timeout))) {
            s_request_refused(c, f);
            return DONE;
        }
        rc = cluster_msg(t.peer, f->type == WIRE_REQUEST ? P_KIND_REQUEST : P_KIND_SEND,
                         f->flags & WIRE_F_CONFIRM ? P_F_CONFIRM : 0, f->seq, timeout,
                         c->address, alen, f->s1, f->s1len, f->data, f->size, c->id);
        if (rc < 0) {
            if (r)
                s_request_free(s, r);
            s_send_error(c, f, -rc, f->s1, f->s1len, "cannot reach the node");
        }
        return DONE;        /* the peer's ACK or FAIL answers a CONFIRM */
    }
    client_t *to = t.to;
    if (!s_has_room(to, len))
        return s_block(c, to);

    uint8_t head[WIRE_HEAD_MAX];
    size_t hlen;
    if (f->type == WIRE_REQUEST) {
        if (!s_request_new(s, c, c->id, f->seq, NULL, 0, "", 0, to, NULL, timeout)) {
            s_request_refused(c, f);
            return DONE;
        }
        hlen = wire_encode(head, WIRE_DELIVER_REQ, 0, f->seq, timeout, c->address, alen,
                           f->s1, f->s1len, f->size);
    } else {
        /* The head differs from the last one to this place only in size
           and seq: patch a copy rather than encode it again. */
        hlen = c->route.hlen;
        memcpy(head, c->route.head, hlen);
        wire_put32(head, (uint32_t) (hlen - 4 + f->size));
        wire_put32(head + 8, f->seq);
    }
    s_queue_frame(to, head, hlen, pbuf, f->data, f->size);
    s->stats.delivered++;
    if (f->flags & WIRE_F_CONFIRM)
        s_send_ok(c, f, NULL, 0);
    return DONE;
}

/* The request a reply addressed to requester answers, with its id. */
static request_t *s_find_request(server_t *s, const char *requester, size_t len, uint32_t id)
{
    uint64_t client;
    size_t namelen, nodelen;
    const char *node;
    if (wire_parse_dest(requester, len, &client, &namelen, &node, &nodelen) < 0 || !client)
        return NULL;
    uint8_t key[12 + WIRE_NAME_MAX];
    size_t keylen = s_is_self(s, node, nodelen)
        ? s_request_key(key, client, id, "", 0) : s_request_key(key, client, id, node, nodelen);
    return dict_get(s->requests, key, keylen);
}

static int s_handle_reply(client_t *c, const wire_frame_t *f, buf_t *pbuf)
{
    server_t *s = c->server;
    request_t *r = s_find_request(s, f->s1, f->s1len, f->aux);
    if (!r || r->holder != c) {
        s_send_error(c, f, ENOENT, f->s1, f->s1len, "no such pending request");
        return DONE;
    }
    if (f->size > s->config.max_message) {
        s_request_fail(s, r, EMSGSIZE, "reply too large");
        s_send_error(c, f, EMSGSIZE, f->s1, f->s1len, "reply too large");
        return DONE;
    }
    size_t alen = strlen(c->address);
    if (!r->requester) {
        /* The requester is on another node. */
        if (!cluster_room(r->peer, f->size))
            return s_block_peer(c, r->peer);
        if (cluster_reply(r->peer, r->id, r->from, strlen(r->from), c->address, alen,
                          f->data, f->size, c->id) < 0)
            s_send_error(c, f, EHOSTUNREACH, f->s1, f->s1len, "the requester's node is gone");
        s_request_free(s, r);
        return DONE;
    }
    client_t *to = r->requester;
    size_t len = WIRE_MIN + alen + f->size;
    if (!s_has_room(to, len))
        return s_block(c, to);
    uint8_t head[WIRE_HEAD_MAX];
    size_t hlen = wire_encode(head, WIRE_DELIVER_REP, 0, r->id, 0, c->address, alen,
                              NULL, 0, f->size);
    s_queue_frame(to, head, hlen, pbuf, f->data, f->size);
    s->stats.delivered++;
    s_request_free(s, r);
    return DONE;
}

/* Delivers a publication to every local subscriber, all or none: a full
   subscriber is returned in *ret_blocked and nobody gets it yet. */
static int s_publish_local(server_t *s, const char *topic, size_t tlen, const char *from,
                           size_t fromlen, uint32_t seq, buf_t *pbuf, const void *data,
                           size_t size, client_t **ret_blocked)
{
    size_t len = WIRE_MIN + fromlen + tlen + size;
    sub_t *exact = dict_get(s->exact_subs, topic, tlen);
    for (int pass = 0; pass < 2; pass++) {
        uint8_t head[WIRE_HEAD_MAX];
        size_t hlen = wire_encode(head, WIRE_PUBLICATION, 0, seq, 0, topic, tlen,
                                  from, fromlen, size);
        uint32_t epoch = ++s->pub_epoch;
        for (size_t i = 0; i <= s->prefix_subs.size; i++) {
            sub_t *sub = i < s->prefix_subs.size ? s->prefix_subs.items[i] : exact;
            if (!sub || (sub->prefix && !wire_match(sub->pattern, strlen(sub->pattern),
                                                    topic, tlen)))
                continue;
            for (size_t j = 0; j < sub->clients.size; j++) {
                client_t *to = sub->clients.items[j];
                if (to->pub_epoch == epoch || to->doomed)
                    continue;
                to->pub_epoch = epoch;
                if (pass == 0 && !s_has_room(to, len)) {
                    *ret_blocked = to;
                    return BLOCKED;
                }
                if (pass == 1) {
                    s_queue_frame(to, head, hlen, pbuf, data, size);
                    s->stats.delivered++;
                }
            }
        }
    }
    return DONE;
}

static int s_handle_publish(client_t *c, const wire_frame_t *f, buf_t *pbuf)
{
    server_t *s = c->server;
    if (wire_check_name(f->s1, f->s1len) < 0) {
        s_send_error(c, f, EINVAL, f->s1, f->s1len, "bad topic");
        return DONE;
    }
    if (f->size > s->config.max_message) {
        s_send_error(c, f, EMSGSIZE, f->s1, f->s1len, "message too large");
        return DONE;
    }
    /* Everyone must have room before anyone gets it: a publish is never
       half delivered, and a full subscriber pauses the publisher. */
    peer_t *peer = NULL;
    if (s->cluster && !cluster_pub_room(s->cluster, f->s1, f->s1len, f->size, &peer))
        return s_block_peer(c, peer);
    client_t *full = NULL;
    size_t alen = strlen(c->address);
    if (s_publish_local(s, f->s1, f->s1len, c->address, alen, f->seq, pbuf, f->data,
                        f->size, &full) == BLOCKED)
        return s_block(c, full);
    if (s->cluster)
        cluster_pub(s->cluster, f->s1, f->s1len, c->address, alen, f->data, f->size,
                    c->id, f->seq);
    if (f->flags & WIRE_F_CONFIRM)
        s_send_ok(c, f, NULL, 0);
    return DONE;
}

/* --- what peers send ------------------------------------------------------------ */

/* A local client by its address, if the address is of this node. */
static client_t *s_local_client(server_t *s, const char *addr, size_t len)
{
    uint64_t id;
    size_t namelen, nodelen;
    const char *node;
    if (wire_parse_dest(addr, len, &id, &namelen, &node, &nodelen) < 0 || !id ||
        !s_is_self(s, node, nodelen))
        return NULL;
    client_t *c = dict_get(s->clients, &id, sizeof id);
    return c && !c->doomed && c->state == C_READY ? c : NULL;
}

/* A large payload from a peer is queued by reference to its ZeroMQ
   message, not copied; NULL for a small one (copied) or out of memory. */
static buf_t *s_peer_payload(server_t *s, size_t size)
{
    return size >= BY_REF && s->from_peer.zmsg ? buf_of_zmq(s->from_peer.zmsg) : NULL;
}

static int s_remote_msg(server_t *s, peer_t *peer, const proto_msg_t *m, client_t **ret_blocked)
{
    uint8_t what = m->kind == P_KIND_REQUEST ? WIRE_REQUEST : WIRE_SEND;
    if (m->size > s->config.max_message) {
        cluster_fail(peer, EMSGSIZE, m->cseq, what, m->from, m->fromlen, m->to, m->tolen,
                     "message too large");
        return REMOTE_DONE;
    }
    /* Only for us: a name or address pinned to another node is not
       forwarded again (the spec says ENOENT: nobody holds it here). */
    target_t t = { 0 };
    int rc = 0;
    size_t len = WIRE_MIN + m->fromlen + m->tolen + m->size;
    struct remote_route *rr = &s->remote_route;
    if (rr->gen == s->gen && rr->tolen == m->tolen && memcmp(rr->to, m->to, m->tolen) == 0) {
        /* As for the last message from a peer to this destination. */
        t.to = rr->to_client ? rr->to_client : s_pick(rr->name, len);
        if (!t.to)
            rc = -ENOENT;
    } else {
        uint64_t id;
        size_t namelen, nodelen;
        const char *node;
        name_t *n = NULL;
        rc = wire_parse_dest(m->to, m->tolen, &id, &namelen, &node, &nodelen);
        if (rc == 0 && !s_is_self(s, node, nodelen))
            rc = -ENOENT;
        if (rc == 0) {
            if (id) {
                t.to = dict_get(s->clients, &id, sizeof id);
                if (!t.to || t.to->doomed || t.to->state != C_READY)
                    rc = -ENOENT;
            } else {
                n = dict_get(s->names, m->to, namelen);
                if (!n || !(t.to = s_pick(n, len)))
                    rc = -ENOENT;
            }
        }
        if (rc == 0) {
            rr->gen = s->gen;
            rr->tolen = m->tolen;
            memcpy(rr->to, m->to, m->tolen);
            rr->to_client = n ? NULL : t.to;
            rr->name = n;
        }
    }
    if (rc < 0) {
        s->stats.errors++;
        cluster_fail(peer, -rc, m->cseq, what, m->from, m->fromlen, m->to, m->tolen,
                     rc == -ENOENT ? "no such name" : "not for this node");
        return REMOTE_DONE;
    }
    if (!s_has_room(t.to, len)) {
        *ret_blocked = t.to;
        return REMOTE_BLOCKED;
    }
    uint8_t head[WIRE_HEAD_MAX];
    size_t hlen;
    if (m->kind == P_KIND_REQUEST) {
        uint64_t rclient;
        size_t rnamelen, rnodelen;
        const char *rnode;
        if (wire_parse_dest(m->from, m->fromlen, &rclient, &rnamelen, &rnode, &rnodelen) < 0 ||
            !rclient || s_is_self(s, rnode, rnodelen) ||
            !s_request_new(s, NULL, rclient, m->cseq, m->from, m->fromlen, rnode, rnodelen,
                           t.to, peer, s_timeout(s, m->timeout) + 1000)) {
            cluster_fail(peer, EINVAL, m->cseq, what, m->from, m->fromlen, m->to, m->tolen,
                         "bad requester address or request id in use");
            return REMOTE_DONE;
        }
        hlen = wire_encode(head, WIRE_DELIVER_REQ, 0, m->cseq, s_timeout(s, m->timeout),
                           m->from, m->fromlen, m->to, m->tolen, m->size);
    } else
        hlen = wire_encode(head, WIRE_MESSAGE, 0, m->cseq, 0, m->from, m->fromlen,
                           m->to, m->tolen, m->size);
    buf_t *pbuf = s_peer_payload(s, m->size);
    s_queue_frame(t.to, head, hlen, pbuf, m->data, m->size);
    buf_unref(&pbuf);
    s->stats.delivered++;
    if (m->flags & P_F_CONFIRM)
        cluster_ack(peer, m->cseq, m->from, m->fromlen);
    return REMOTE_DONE;
}

static int s_remote_data(server_t *s, peer_t *peer, const proto_msg_t *m, client_t **ret_blocked)
{
    if (m->type == P_MSG)
        return s_remote_msg(s, peer, m, ret_blocked);
    if (m->type == P_PUB) {
        if (m->size > s->config.max_message) {
            cluster_fail(peer, EMSGSIZE, m->cseq, WIRE_PUBLISH, m->from, m->fromlen, m->to,
                         m->tolen, "message too large for this node");
            return REMOTE_DONE;
        }
        buf_t *pbuf = s_peer_payload(s, m->size);
        int rc = s_publish_local(s, m->to, m->tolen, m->from, m->fromlen, m->cseq, pbuf,
                                 m->data, m->size, ret_blocked);
        buf_unref(&pbuf);
        return rc == BLOCKED ? REMOTE_BLOCKED : REMOTE_DONE;
    }
    /* REPLY: to a local requester, for a request forwarded to that peer. */
    request_t *r = s_find_request(s, m->to, m->tolen, m->cseq);
    if (!r || !r->requester || r->peer != peer)
        return REMOTE_DONE;     /* timed out meanwhile: the requester was told */
    if (m->size > s->config.max_message) {
        s_request_fail(s, r, EMSGSIZE, "reply too large for this node");
        return REMOTE_DONE;
    }
    client_t *to = r->requester;
    size_t len = WIRE_MIN + m->fromlen + m->size;
    if (!s_has_room(to, len)) {
        *ret_blocked = to;
        return REMOTE_BLOCKED;
    }
    uint8_t head[WIRE_HEAD_MAX];
    size_t hlen = wire_encode(head, WIRE_DELIVER_REP, 0, r->id, 0, m->from, m->fromlen,
                              NULL, 0, m->size);
    buf_t *pbuf = s_peer_payload(s, m->size);
    s_queue_frame(to, head, hlen, pbuf, m->data, m->size);
    buf_unref(&pbuf);
    s->stats.delivered++;
    s_request_free(s, r);
    return REMOTE_DONE;
}

int server_remote_data(server_t *s, peer_t *peer, const proto_msg_t *m, void *zmsg,
                       client_t **ret_blocked)
{
    s->from_peer.peer = peer;
    s->from_peer.epoch = peer_epoch(peer);
    s->from_peer.seq = m->seq;
    s->from_peer.zmsg = zmsg;
    int rc = s_remote_data(s, peer, m, ret_blocked);
    s->from_peer.peer = NULL;
    s->from_peer.zmsg = NULL;
    if (rc == REMOTE_BLOCKED) {
        client_t *c = *ret_blocked;
        s->stats.paused++;
        if (!vec_has(&c->parked_peers, peer) && vec_push(&c->parked_peers, peer) < 0)
            return REMOTE_DONE;     /* cannot wait for it: lost, sadly */
    }
    return rc;
}

void server_remote_ack(server_t *s, peer_t *peer, const proto_msg_t *m)
{
    client_t *c = s_local_client(s, m->to, m->tolen);
    if (c) {
        cluster_settled(peer, c->id, m->cseq);
        s_send_control(c, WIRE_OK, 0, m->cseq, 0, NULL, 0, NULL, 0, NULL, 0);
    }
}

void server_remote_fail(server_t *s, peer_t *peer, const proto_msg_t *m)
{
    char text[WIRE_NAME_MAX + 1];
    snprintf(text, sizeof text, "%.*s", (int) m->textlen, m->text);
    if (m->kind == WIRE_REQUEST) {
        request_t *r = s_find_request(s, m->to, m->tolen, m->cseq);
        if (r && r->requester && r->peer == peer)
            s_request_fail(s, r, (int) m->error, text);
        return;
    }
    client_t *c = s_local_client(s, m->to, m->tolen);
    if (c) {
        s->stats.errors++;
        cluster_settled(peer, c->id, m->cseq);
        s_send_control(c, WIRE_ERROR, m->kind, m->cseq, m->error, m->name, m->namelen,
                       text, strlen(text), NULL, 0);
    }
}

void server_fail_origin(server_t *s, uint64_t client, uint32_t cseq, uint8_t what, int err)
{
    client_t *c = dict_get(s->clients, &client, sizeof client);
    if (!c || c->doomed || cseq == 0)
        return;
    if (what == WIRE_REQUEST) {
        uint8_t key[12];
        request_t *r = dict_get(s->requests, key, s_request_key(key, client, cseq, "", 0));
        if (r)
            s_request_fail(s, r, err, "the node holding it was lost");
        return;
    }
    s->stats.errors++;
    const char *text = "the node it went to was lost before taking it";
    s_send_control(c, WIRE_ERROR, what, cseq, (uint32_t) err, NULL, 0, text, strlen(text),
                   NULL, 0);
}

static void s_forget_in(const void *key, size_t len, void *value, void *arg)
{
    (void) key;
    (void) len;
    client_t *c = value;
    vec_remove(&c->parked_peers, arg);
    if (c->blocked_peer == arg)
        server_resume(c->server, c);
    /* Its deliveries need no release: drop them, keeping the order. */
    size_t kept = 0;
    for (size_t i = 0; i < c->dl_count; i++) {
        struct delivery d = c->deliveries[(c->dl_first + i) % c->dl_cap];
        if (d.peer != arg)
            c->deliveries[(c->dl_first + kept++) % c->dl_cap] = d;
    }
    c->dl_count = kept;
}

void server_peer_forget(server_t *s, peer_t *peer)
{
    s->gen++;
    dict_each(s->clients, s_forget_in, peer);
}

typedef struct {
    peer_t *peer;
    vec_t found;
} peer_requests_t;

static void s_requests_of(const void *key, size_t len, void *value, void *arg)
{
    (void) key;
    (void) len;
    request_t *r = value;
    peer_requests_t *pr = arg;
    if (r->peer == pr->peer)
        vec_push(&pr->found, r);
}

void server_peer_state(server_t *s, peer_t *peer, int up)
{
    s->gen++;
    const char *node = peer_name(peer);
    size_t len = strlen(node);
    for (size_t i = 0; i < s->watchers.size; i++) {
        client_t *w = s->watchers.items[i];
        for (size_t j = 0; j < w->watches.size; j++) {
            const char *p = w->watches.items[j];
            if (wire_match(p, strlen(p), node, len)) {
                s_send_control(w, WIRE_EVENT, 0, 0, up ? WIRE_EV_PEER_UP : WIRE_EV_PEER_DOWN,
                               node, len, node, len, NULL, 0);
                break;
            }
        }
    }
    if (up)
        return;
    /* Requests waiting on it fail now; those it made of us are void. */
    peer_requests_t pr = { peer, { 0 } };
    dict_each(s->requests, s_requests_of, &pr);
    for (size_t i = 0; i < pr.found.size; i++) {
        request_t *r = pr.found.items[i];
        if (r->requester)
            s_request_fail(s, r, EHOSTUNREACH, "the node holding it was lost");
        else
            s_request_free(s, r);
    }
    vec_free(&pr.found);
}

/* Appends one formatted record to a growing text; on failure the text is
   cut short, which a listing survives. */
static void s_textf(char **text, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void s_textf(char **text, size_t *len, size_t *cap, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(*text ? *text + *len : NULL, *text ? *cap - *len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (*text && (size_t) n < *cap - *len) {
            *len += (size_t) n;
            return;
        }
        size_t want = (*cap ? *cap * 2 : 4096) + (size_t) n;
        char *t = realloc(*text, want);
        if (!t)
            return;
        *text = t;
        *cap = want;
    }
}

typedef struct {
    char *text;
    size_t len, cap;
    server_t *server;
} listing_t;

static void s_list_name(const void *key, size_t len, void *value, void *arg)
{
    (void) key;
    (void) len;
    name_t *n = value;
    listing_t *l = arg;
    for (size_t i = 0; i < n->holders.size; i++) {
        client_t *h = n->holders.items[i];
        s_textf(&l->text, &l->len, &l->cap, "%s\t%s\t%s\t%s\n", n->name,
                l->server->config.name, h->address, h->label);
    }
    /* A peer tells which names it holds, not who holds them there. */
    for (size_t i = 0; i < n->peers.size; i++)
        s_textf(&l->text, &l->len, &l->cap, "%s\t%s\t-\t-\n", n->name,
                peer_name(n->peers.items[i]));
}

static void s_list_line(void *arg, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void s_list_line(void *arg, const char *fmt, ...)
{
    listing_t *l = arg;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    s_textf(&l->text, &l->len, &l->cap, "%s", line);
}

static void s_list_client(const void *key, size_t len, void *value, void *arg)
{
    (void) key;
    (void) len;
    client_t *c = value;
    listing_t *l = arg;
    s_textf(&l->text, &l->len, &l->cap, "%s\t%s\t%d\t%u\t%zu\n", c->address, c->label,
            (int) c->cred.pid, (unsigned) c->cred.uid, c->queued);
}

static void s_handle_query(client_t *c, const wire_frame_t *f)
{
    server_t *s = c->server;
    listing_t l = { .server = s };
    switch (f->aux) {
    case WIRE_Q_SERVICES:
        dict_each(s->names, s_list_name, &l);
        break;
    case WIRE_Q_PEERS:
        if (s->cluster)
            cluster_list(s->cluster, s_list_line, &l);
        else
            s_textf(&l.text, &l.len, &l.cap, "%s\t-\tunix:%s\tself\tup\t0\t0\t-\n",
                    s->config.name, s->config.socket_path);
        break;
    case WIRE_Q_STATS:
        s_textf(&l.text, &l.len, &l.cap,
                "node\t%s\nsocket\t%s\nuptime_ms\t%lld\nclients\t%zu\nnames\t%zu\n"
                "subscriptions\t%zu\npending_requests\t%zu\nframes_in\t%llu\n"
                "frames_out\t%llu\nbytes_in\t%llu\nbytes_out\t%llu\ndelivered\t%llu\n"
                "errors\t%llu\npaused\t%llu\nviolations\t%llu\ndropped_clients\t%llu\n"
                "max_message\t%zu\nqueue_limit\t%zu\nmax_clients\t%u\n",
                s->config.name, s->config.socket_path,
                (long long) (loop_now(s->loop) - s->started), s->nclients,
                dict_size(s->names), dict_size(s->exact_subs) + s->prefix_subs.size,
                dict_size(s->requests),
                (unsigned long long) s->stats.frames_in, (unsigned long long) s->stats.frames_out,
                (unsigned long long) s->stats.bytes_in, (unsigned long long) s->stats.bytes_out,
                (unsigned long long) s->stats.delivered, (unsigned long long) s->stats.errors,
                (unsigned long long) s->stats.paused, (unsigned long long) s->stats.violations,
                (unsigned long long) s->stats.dropped_clients,
                s->config.max_message, s->config.queue_limit, s->config.max_clients);
        break;
    case WIRE_Q_CLIENTS:
        dict_each(s->clients, s_list_client, &l);
        break;
    default:
        s_send_error(c, f, EINVAL, NULL, 0, "unknown query");
        return;
    }
    s_send_ok(c, f, l.text, l.len);
    free(l.text);
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

/* Handles one decoded frame. Returns DONE, or BLOCKED when it must be
   handled again later (the sender is paused). */
static int s_handle(client_t *c, const wire_frame_t *f, buf_t *pbuf)
{
    server_t *s = c->server;
    s->stats.frames_in++;
    if (c->state == C_NEW) {
        if (f->type != WIRE_HELLO) {
            s_send_error(c, f, EPROTO, NULL, 0, "HELLO expected");
            s_doom(c, "did not start with HELLO");
        } else if (f->aux != WIRE_VERSION) {
            s_send_error(c, f, EPROTO, NULL, 0, "unsupported protocol version");
            s_doom(c, "speaks another protocol version");
        } else {
            s_set_label(c, f->s1, f->s1len);
            c->state = C_READY;
            s_send_control(c, WIRE_WELCOME, 0, f->seq, (uint32_t) s->config.max_message,
                           c->address, strlen(c->address), s->config.name,
                           strlen(s->config.name), NULL, 0);
        }
        return DONE;
    }

    int rc = 0;
    switch (f->type) {
    case WIRE_SEND:
    case WIRE_REQUEST:
        return s_handle_send(c, f, pbuf);
    case WIRE_REPLY:
        return s_handle_reply(c, f, pbuf);
    case WIRE_PUBLISH:
        return s_handle_publish(c, f, pbuf);
    case WIRE_QUERY:
        s_handle_query(c, f);
        return DONE;
    case WIRE_BIND:
        rc = wire_check_name(f->s1, f->s1len);
        if (rc == 0)
            rc = s_bind(c, f->s1, f->s1len);
        break;
    case WIRE_UNBIND: {
        name_t *n = dict_get(s->names, f->s1, f->s1len);
        rc = n && vec_has(&n->holders, c) ? 0 : -ENOENT;
        if (rc == 0)
            s_unbind(c, n);
        break;
    }
    case WIRE_SUBSCRIBE:
        rc = wire_check_pattern(f->s1, f->s1len);
        if (rc == 0)
            rc = s_subscribe(c, f->s1, f->s1len);
        break;
    case WIRE_UNSUBSCRIBE: {
        sub_t *sub = s_find_sub(c, f->s1, f->s1len);
        rc = sub ? 0 : -ENOENT;
        if (sub)
            s_unsubscribe(c, sub);
        break;
    }
    case WIRE_WATCH: {
        rc = wire_check_pattern(f->s1, f->s1len);
        if (rc == 0 && s_find_watch(c, f->s1, f->s1len) != SIZE_MAX)
            rc = -EEXIST;
        if (rc == 0 && c->watches.size >= MAX_PER_CLIENT)
            rc = -ENOBUFS;
        char *p = rc == 0 ? s_strndup(f->s1, f->s1len) : NULL;
        if (rc == 0 && (!p || vec_push(&c->watches, p) < 0)) {
            free(p);
            rc = -ENOMEM;
        }
        if (rc == 0 && c->watches.size == 1 && vec_push(&s->watchers, c) < 0) {
            free(c->watches.items[--c->watches.size]);
            rc = -ENOMEM;
        }
        if (rc == 0) {
            s_send_ok(c, f, NULL, 0);
            watch_ctx_t ctx = { c, p };
            dict_each(s->names, s_initial_event, &ctx);
            return DONE;
        }
        break;
    }
    case WIRE_UNWATCH: {
        size_t i = s_find_watch(c, f->s1, f->s1len);
        rc = i == SIZE_MAX ? -ENOENT : 0;
        if (rc == 0) {
            free(c->watches.items[i]);
            c->watches.items[i] = c->watches.items[--c->watches.size];
            if (c->watches.size == 0)
                vec_remove(&s->watchers, c);
        }
        break;
    }
    default:
        /* Node-to-client types, a second HELLO: the client is confused. */
        s_send_error(c, f, EBADMSG, NULL, 0, "unexpected frame type");
        s_doom(c, "sent an unexpected frame type");
        return DONE;
    }
    if (rc < 0)
        s_send_error(c, f, -rc, f->s1, f->s1len,
                     rc == -EINVAL ? "bad name" : rc == -EEXIST ? "already there" :
                     rc == -ENOENT ? "not there" : rc == -ENOBUFS ? "too many" : "failed");
    else
        s_send_ok(c, f, NULL, 0);
    return DONE;
}

/* A protocol violation: say why, then disconnect. */
static void s_violation(client_t *c, int err, const char *why)
{
    c->server->stats.violations++;
    s_send_control(c, WIRE_ERROR, 0, 0, (uint32_t) err, NULL, 0, why, strlen(why), NULL, 0);
    s_doom(c, why);
}

/* Handles every complete frame in c's buffer until it is empty or c must
   wait for a receiver. */
static void s_process(client_t *c)
{
    server_t *s = c->server;
    size_t max_frame = s->config.max_message + WIRE_HEAD_MAX;
    while (!c->doomed && !c->blocked_on && !c->blocked_peer && c->rx && c->rx_head < c->rx_tail) {
        /* Our own queue full of answers we have not read: wait for us. */
        if (c->queued > s->config.queue_limit) {
            s_block(c, c);
            return;
        }
        const uint8_t *at = c->rx->data + c->rx_head;
        size_t avail = c->rx_tail - c->rx_head;
        ssize_t len = wire_peek(at, avail, max_frame);
        if (len < 0) {
            s_violation(c, -(int) len, len == -EMSGSIZE ? "frame too large" : "bad frame");
            return;
        }
        if (len == 0 || (size_t) len > avail)
            return;
        wire_frame_t f;
        if (wire_decode(at, (size_t) len, &f) < 0) {
            s_violation(c, EBADMSG, "malformed frame");
            return;
        }
        if (s_handle(c, &f, c->rx) == BLOCKED)
            return;
        c->rx_head += (size_t) len;
    }
}


/* Reads from c's socket into its buffer. A frame larger than the buffer
   gets one of its own, read into directly. Returns bytes read, 0 if none
   were ready, or -1 once the client is gone. */
static ssize_t s_read(client_t *c)
{
    server_t *s = c->server;
    if (c->rx && c->rx_head == c->rx_tail) {
        c->rx_head = c->rx_tail = 0;
        if (c->rx->cap > RX_SIZE || c->rx->refs > 1)
            buf_unref(&c->rx);      /* a big frame's buffer: done with it */
    }
    if (!c->rx && !(c->rx = buf_new(RX_SIZE)))
        return 0;
    size_t avail = c->rx_tail - c->rx_head;
    ssize_t frame = wire_peek(c->rx->data + c->rx_head, avail,
                              s->config.max_message + WIRE_HEAD_MAX);
    size_t want = c->rx->cap - c->rx_tail;
    if (frame > RX_SIZE && c->rx->cap < (size_t) frame) {
        buf_t *big = buf_new((size_t) frame);
        if (!big) {
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
        ssize_t n = read(c->fd, c->rx->data + c->rx_tail, want);
        if (n > 0) {
            c->rx_tail += (size_t) n;
            s->stats.bytes_in += (uint64_t) n;
            return n;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return 0;
        if (c->rx_head < c->rx_tail)
            zsys_warning("client %s (%s): closed in the middle of a frame", c->address, c->label);
        s_doom(c, NULL);
        return -1;
    }
}

static void s_client_ready(loop_t *loop, int fd, int revents, void *arg)
{
    (void) fd;
    client_t *c = arg;
    if (c->doomed)
        return;
    if (revents & LOOP_OUT && s_write(c) < 0)
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
        s_process(c);
        if (n <= 0 || !c->rx || c->rx_tail < c->rx->cap)
            break;
    }
}

/* --- clients come and go ------------------------------------------------------ */

static void s_doom(client_t *c, const char *why)
{
    if (c->doomed)
        return;
    if (why)
        zsys_notice("client %s (%s, pid %d): %s; disconnecting", c->address, c->label,
                    (int) c->cred.pid, why);
    c->doomed = 1;
    c->server->gen++;       /* routes to it are stale */
    c->server->stats.dropped_clients += why != NULL;
    if (vec_push(&c->server->doomed, c) < 0)
        zsys_error("out of memory tearing down client %s", c->address);
    s_update_events(c);
}

/* Removes a doomed client from everything; it is freed later. */
static void s_teardown(client_t *c)
{
    server_t *s = c->server;
    /* Last words (an ERROR saying why) go out if the socket takes them. */
    if (c->queued > 0)
        s_write(c);
    if (c->in_loop)
        loop_fd_del(s->loop, c->fd);
    c->in_loop = 0;
    close(c->fd);
    c->fd = -1;
    dict_del(s->clients, &c->id, sizeof c->id);
    s->nclients--;

    while (c->names.size > 0)
        s_unbind(c, c->names.items[c->names.size - 1]);
    while (c->subs.size > 0)
        s_unsubscribe(c, c->subs.items[c->subs.size - 1]);
    if (c->watches.size > 0)
        vec_remove(&s->watchers, c);
    for (size_t i = 0; i < c->watches.size; i++)
        free(c->watches.items[i]);
    c->watches.size = 0;
    while (c->asked)
        s_request_free(s, c->asked);
    while (c->held)
        s_request_fail(s, c->held, ECONNRESET, "the holder went away before replying");
    s_wake_waiters(c);
    s_delivered(c, 1);      /* its unread messages die with it, as locally */
    if (c->blocked_on)
        vec_remove(&c->blocked_on->waiters, c);
    c->blocked_on = NULL;
    if (c->blocked_peer)
        cluster_unwait(c->blocked_peer, c);
    c->blocked_peer = NULL;
    if (c->runnable)
        vec_remove(&s->runnable, c);
    if (c->dirty)
        vec_remove(&s->dirty, c);
    c->runnable = c->dirty = 0;
    if (vec_push(&s->graveyard, c) < 0)
        zsys_error("out of memory: leaking client %s", c->address);
}

static void s_client_free(client_t *c)
{
    while (c->chunk_count > 0) {
        buf_unref(&c->chunks[c->chunk_first].buf);
        c->chunk_first = (c->chunk_first + 1) % c->chunk_cap;
        c->chunk_count--;
    }
    free(c->chunks);
    buf_unref(&c->tail);
    buf_unref(&c->rx);
    free(c->deliveries);
    vec_free(&c->waiters);
    vec_free(&c->parked_peers);
    vec_free(&c->names);
    vec_free(&c->subs);
    vec_free(&c->watches);
    free(c);
}

static void s_accept(loop_t *loop, int fd, int revents, void *arg)
{
    (void) revents;
    server_t *s = arg;
    /* A bounded batch: a flood of connects cannot starve the clients. */
    for (int i = 0; i < 64; i++) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EMFILE || errno == ENFILE)
                zsys_warning("cannot accept a client: %s; retrying", strerror(errno));
            else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                zsys_warning("accept failed: %s, ignoring", strerror(errno));
            return;
        }
        if (s->nclients >= s->config.max_clients) {
            /* Say why, then close: the HELLO would have had seq 1. */
            uint8_t head[WIRE_HEAD_MAX];
            const char *why = "too many clients";
            size_t hlen = wire_encode(head, WIRE_ERROR, WIRE_HELLO, 1, EUSERS, NULL, 0,
                                      why, strlen(why), 0);
            if (write(cfd, head, hlen) < 0) {
                /* Nothing to do: the client sees the connection close. */
            }
            close(cfd);
            zsys_warning("refused a client: %u clients already", s->config.max_clients);
            continue;
        }
        client_t *c = calloc(1, sizeof *c);
        if (!c) {
            close(cfd);
            return;
        }
        c->server = s;
        c->fd = cfd;
        c->id = ++s->next_id;
        snprintf(c->address, sizeof c->address, ":%llu@%s",
                 (unsigned long long) c->id, s->config.name);
        strcpy(c->label, "-");
        socklen_t len = sizeof c->cred;
        if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &c->cred, &len) < 0)
            c->cred = (struct ucred) { .pid = 0, .uid = (uid_t) -1, .gid = (gid_t) -1 };
        if (dict_put(s->clients, &c->id, sizeof c->id, c) < 0 ||
            loop_fd_add(loop, cfd, LOOP_IN, s_client_ready, c) < 0) {
            dict_del(s->clients, &c->id, sizeof c->id);
            close(cfd);
            free(c);
            continue;
        }
        c->in_loop = 1;
        s->nclients++;
        if (s->config.verbose)
            zsys_info("client %s connected (pid %d, uid %u)", c->address,
                      (int) c->cred.pid, (unsigned) c->cred.uid);
    }
}

/* Before each sleep: resume paused clients, tear down the doomed, write
   what is queued. Returns 1 if work is left (the loop must not sleep). */
static int s_idle(loop_t *loop, void *arg)
{
    (void) loop;
    server_t *s = arg;
    for (int round = 0; round < 8; round++) {
        while (s->runnable.size > 0) {
            client_t *c = s->runnable.items[--s->runnable.size];
            c->runnable = 0;
            if (c->doomed || c->blocked_on || c->blocked_peer)
                continue;
            if (!c->in_loop && loop_fd_add(s->loop, c->fd, 0, s_client_ready, c) == 0)
                c->in_loop = 1;
            s_update_events(c);
            s_process(c);
        }
        while (s->doomed.size > 0)
            s_teardown(s->doomed.items[--s->doomed.size]);
        for (size_t i = 0; i < s->dirty.size; i++) {
            client_t *c = s->dirty.items[i];
            c->dirty = 0;
            if (!c->doomed)
                s_write(c);
        }
        s->dirty.size = 0;
        if (s->runnable.size == 0 && s->doomed.size == 0)
            break;
    }
    for (size_t i = 0; i < s->graveyard.size; i++)
        s_client_free(s->graveyard.items[i]);
    s->graveyard.size = 0;
    int more = s->cluster && cluster_idle(s->cluster);
    return more || s->runnable.size > 0 || s->doomed.size > 0 || s->dirty.size > 0;
}

/* --- the socket ------------------------------------------------------------------ */

/* Makes the socket's directory (mode 0755: any local user may connect;
   the socket itself is 0666 and every client's credentials are known). */
static int s_make_dir(const char *path)
{
    char dir[sizeof ((struct sockaddr_un *) 0)->sun_path];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return 0;
    *slash = 0;
    for (char *p = dir + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                return -errno;
            *p = '/';
        }
    if (mkdir(dir, 0755) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static int s_listen(server_t *s)
{
    const char *path = s->config.socket_path;
    int rc = s_make_dir(path);
    if (rc < 0) {
        zsys_error("cannot create the directory of %s: %s", path, strerror(-rc));
        return -1;
    }
    /* The lock decides who serves the path; the socket file alone cannot,
       as a crash leaves it behind. */
    snprintf(s->lock_path, sizeof s->lock_path, "%s.lock", path);
    s->lock_fd = open(s->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (s->lock_fd < 0) {
        zsys_error("cannot open %s: %s", s->lock_path, strerror(errno));
        return -1;
    }
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        zsys_error("another ipc-node already serves %s", path);
        close(s->lock_fd);
        s->lock_fd = -1;
        return -1;
    }
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    if (unlink(path) == 0)
        zsys_notice("removed a stale socket %s left by an earlier node", path);
    s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->listen_fd < 0 || bind(s->listen_fd, (struct sockaddr *) &sa, sizeof sa) < 0 ||
        chmod(path, 0666) < 0 || listen(s->listen_fd, SOMAXCONN) < 0) {
        zsys_error("cannot listen on %s: %s", path, strerror(errno));
        return -1;
    }
    return loop_fd_add(s->loop, s->listen_fd, LOOP_IN, s_accept, s);
}

/* Room for every client's descriptor, and a few of our own. */
static void s_raise_nofile(unsigned clients)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    rlim_t want = (rlim_t) clients + 64;
    if (rl.rlim_cur >= want)
        return;
    rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < want)
        zsys_warning("open files limited to %llu: fewer than %u clients will fit",
                     (unsigned long long) rl.rlim_cur, clients);
}

server_t *server_new(loop_t *loop, const node_config_t *config)
{
    server_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->loop = loop;
    s->config = *config;
    s->listen_fd = s->lock_fd = -1;
    s->started = loop_now(loop);
    s->gen = 1;                 /* 0 marks an empty route cache */
    s->clients = dict_new();
    s->names = dict_new();
    s->exact_subs = dict_new();
    s->requests = dict_new();
    if (!s->clients || !s->names || !s->exact_subs || !s->requests || s_listen(s) < 0) {
        server_destroy(&s);
        return NULL;
    }
    s_raise_nofile(s->config.max_clients);
    if (!(s->cluster = cluster_new(loop, s, &s->config))) {
        server_destroy(&s);
        return NULL;
    }
    loop_set_idle(loop, s_idle, s);
    return s;
}

static void s_free_name(const void *key, size_t len, void *value, void *arg)
{
    (void) key;
    (void) len;
    (void) arg;
    name_t *n = value;
    vec_free(&n->holders);
    vec_free(&n->peers);
    free(n->name);
    free(n);
}

static void s_doom_each(const void *key, size_t len, void *value, void *arg)
{
    (void) key;
    (void) len;
    (void) arg;
    s_doom(value, NULL);
}

void server_destroy(server_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    server_t *s = *self_p;
    if (s->clients) {
        dict_each(s->clients, s_doom_each, NULL);
        while (s->doomed.size > 0)
            s_teardown(s->doomed.items[--s->doomed.size]);
        for (size_t i = 0; i < s->graveyard.size; i++)
            s_client_free(s->graveyard.items[i]);
        s->graveyard.size = 0;
    }
    /* After the clients, whose teardown still tells peers; then goodbye. */
    cluster_destroy(&s->cluster);
    loop_set_idle(s->loop, NULL, NULL);
    if (s->listen_fd >= 0) {
        loop_fd_del(s->loop, s->listen_fd);
        close(s->listen_fd);
        unlink(s->config.socket_path);
    }
    /* The lock file stays: removing it would let a starting node lock a
       fresh file while another still holds the old one. */
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    dict_destroy(&s->clients);
    if (s->names)
        dict_each(s->names, s_free_name, NULL);     /* those peers held */
    dict_destroy(&s->names);
    dict_destroy(&s->exact_subs);
    dict_destroy(&s->requests);
    vec_free(&s->prefix_subs);
    vec_free(&s->watchers);
    vec_free(&s->runnable);
    vec_free(&s->dirty);
    vec_free(&s->doomed);
    vec_free(&s->graveyard);
    s_pool_clear();
    free(s);
    *self_p = NULL;
}
