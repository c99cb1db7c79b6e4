/*  peer.c: one link to another node: its DEALER, the numbering of what we
    send, the batch, credit, what is in flight, what we received and owe
    credit for, what waits for a local queue, and who waits for room.

    Flow control. Each direction has a credit window in bytes. Sending a
    data message spends credit and remembers its origin until the peer's
    CREDIT acknowledges it. What we receive is noted in a ring, in seq
    order, and credited back once every local copy of it is written: a
    message is acknowledged only once its receiver could read it, so one
    still queued here when this node dies fails back to its sender. */

#include "peer.h"
#include "wire.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEALER_HWM      100000
#define BATCH_ITEM_MAX  2048        /* data messages this small are batched */
#define ENDPOINT_MAX    128

/* A data message received, until its last copy reached a local socket. */
typedef struct {
    uint32_t seq;
    uint32_t bytes;
    uint32_t pending;       /* copies queued, not yet written */
    int handed;             /* its receivers took it (not parked) */
} received_t;

typedef struct parked {
    struct parked *next;
    zmq_msg_t msg;
} parked_t;

struct peer {
    peer_env_t *env;
    uint32_t refs;
    int closed;                 /* peer_destroy'ed: only references remain */
    peer_state_t state;
    const char *lost_why;
    char why[64];
    char id[PROTO_ID_LEN + 1];  /* "" until its key is known */
    char name[WIRE_NAME_MAX + 1];
    char endpoint[ENDPOINT_MAX];
    uint8_t key[PROTO_KEY_LEN];
    int has_key;
    void *dealer;               /* a libzmq socket (czmq's zsock_new asserts on failure) */
    int dealer_fd;
    int hello_pending;          /* HELLO not taken: no connection yet */
    int congested;              /* a send met the high-water mark */
    int touched;                /* sent on since its input was last read */
    uint64_t incarnation;
    uint32_t heartbeat;         /* its PING interval, from its HELLO */
    uint32_t tx_seq, rx_seq;
    int64_t last_seen, last_ping, last_hello, rtt_us;
    peer_state_t lost_from;     /* the state it failed in */
    /* sending */
    proto_buf_t batch;          /* small data messages, sent as one BATCH */
    unsigned batched;
    int64_t credit;
    ring_t flights;             /* peer_flight_t, oldest first */
    vec_t waiters;
    /* receiving */
    uint32_t handled_seq;
    size_t handled_bytes;
    ring_t rx;                  /* received_t, not yet credited */
    uint32_t epoch;             /* bumped when the ring is reset */
    parked_t *parked, *parked_tail;
    size_t parked_bytes;
};

int64_t peer_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

size_t peer_frame_bytes(size_t size)
{
    return PROTO_HEAD + 16 + 2 * 256 + size;
}

peer_t *peer_new(peer_env_t *env, const char *endpoint)
{
    peer_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->env = env;
    self->refs = 1;
    self->state = PEER_ASKING_KEY;
    self->dealer_fd = -1;
    snprintf(self->endpoint, sizeof self->endpoint, "%s", endpoint);
    strcpy(self->name, "-");
    self->last_seen = loop_now(env->loop);
    return self;
}

static void s_dealer_close(peer_t *self)
{
    if (!self->dealer)
        return;
    loop_fd_del(self->env->loop, self->dealer_fd);
    zsys_close(self->dealer, __FILE__, __LINE__);
    self->dealer = NULL;
    self->dealer_fd = -1;
}

static void s_drop_parked(peer_t *self)
{
    while (self->parked) {
        parked_t *k = self->parked;
        self->parked = k->next;
        zmq_msg_close(&k->msg);
        free(k);
    }
    self->parked_tail = NULL;
    self->parked_bytes = 0;
}

static void s_free(peer_t *self)
{
    proto_free(&self->batch);
    ring_free(&self->flights);
    ring_free(&self->rx);
    vec_free(&self->waiters);
    free(self);
}

void peer_destroy(peer_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    peer_t *self = *self_p;
    *self_p = NULL;
    s_dealer_close(self);
    s_drop_parked(self);
    self->closed = 1;
    self->state = PEER_LOST;
    self->epoch++;              /* copies still queued no longer count */
    self->rx.count = 0;
    self->flights.count = 0;
    self->waiters.size = 0;
    peer_unref(&self);
}

peer_t *peer_ref(peer_t *self)
{
    self->refs++;
    return self;
}

void peer_unref(peer_t **self_p)
{
    peer_t *self = *self_p;
    *self_p = NULL;
    if (self && --self->refs == 0)
        s_free(self);
}

/* --- who it is ----------------------------------------------------------------- */

const char *peer_id(const peer_t *self) { return self->id; }
const char *peer_name(const peer_t *self) { return self->name; }
const char *peer_endpoint(const peer_t *self) { return self->endpoint; }
const uint8_t *peer_key(const peer_t *self) { return self->has_key ? self->key : NULL; }
uint64_t peer_incarnation(const peer_t *self) { return self->incarnation; }

void peer_set_key(peer_t *self, const uint8_t key[PROTO_KEY_LEN])
{
    memcpy(self->key, key, PROTO_KEY_LEN);
    self->has_key = 1;
    proto_key_id(key, self->id);
}

void peer_set_name(peer_t *self, const char *name, size_t len)
{
    if (len > WIRE_NAME_MAX)
        len = WIRE_NAME_MAX;
    memcpy(self->name, name, len);
    self->name[len] = 0;
}

void peer_set_endpoint(peer_t *self, const char *endpoint)
{
    snprintf(self->endpoint, sizeof self->endpoint, "%s", endpoint);
}

/* --- the handshake --------------------------------------------------------------- */

enum { EV_DIAL, EV_ACK, EV_HELLO, EV_LOSE, EVENTS };

#define NO 0xff
static const uint8_t s_next[PEER_LOST + 1][EVENTS] = {
    /*                  DIAL             ACK           HELLO          LOSE */
    [PEER_ASKING_KEY] = { PEER_CONNECTING, NO,          NO,            PEER_ASKING_KEY },
    [PEER_CONNECTING] = { PEER_CONNECTING, PEER_ACKED,  PEER_GREETED,  PEER_LOST },
    [PEER_ACKED]      = { PEER_CONNECTING, PEER_ACKED,  PEER_UP,       PEER_LOST },
    [PEER_GREETED]    = { PEER_GREETED,    PEER_UP,     PEER_GREETED,  PEER_LOST },
    [PEER_UP]         = { NO,              PEER_UP,     NO,            PEER_LOST },
    [PEER_LOST]       = { PEER_CONNECTING, NO,          NO,            PEER_LOST },
};

static const char *const s_state_names[] = {
    [PEER_ASKING_KEY] = "asking-key", [PEER_CONNECTING] = "connecting",
    [PEER_ACKED] = "acked", [PEER_GREETED] = "greeted", [PEER_UP] = "up",
    [PEER_LOST] = "lost",
};

const char *peer_state_name(peer_state_t state)
{
    return state <= PEER_LOST ? s_state_names[state] : "?";
}

peer_state_t peer_state(const peer_t *self) { return self->state; }
int peer_is_up(const peer_t *self) { return self->state == PEER_UP; }

/* Applies event; the entry into UP gives the link its window. */
static int s_event(peer_t *self, int event)
{
    uint8_t next = s_next[self->state][event];
    if (next == NO)
        return -EINVAL;
    if (next == PEER_UP && self->state != PEER_UP) {
        self->last_seen = self->last_ping = loop_now(self->env->loop);
        self->credit = (int64_t) self->env->window;
        self->congested = 0;
    }
    self->state = next;
    return 0;
}

static int s_send_raw(peer_t *self, const void *data, size_t len)
{
    self->touched = 1;
    if (!self->dealer || zmq_send(self->dealer, data, len, ZMQ_DONTWAIT) < 0) {
        if (self->dealer && errno == EAGAIN)
            self->congested = 1;
        return self->dealer ? -errno : -EHOSTUNREACH;
    }
    return 0;
}

static void s_send_hello(peer_t *self)
{
    proto_buf_t *out = &self->env->out;
    self->tx_seq = 0;
    self->env->hello.seq = ++self->tx_seq;
    self->last_hello = loop_now(self->env->loop);
    proto_encode(out, &self->env->hello);
    /* With ZMQ_IMMEDIATE a HELLO is refused until the connection is made;
       peer_writable() says it as soon as the DEALER can write. */
    self->hello_pending = out->failed || s_send_raw(self, out->data, out->len) < 0;
}

int peer_dial(peer_t *self, int reconnect, loop_fd_fn *fn, void *arg)
{
    if (!self->has_key || s_next[self->state][EV_DIAL] == NO)
        return -EINVAL;
    s_dealer_close(self);
    peer_env_t *env = self->env;
    /* Out of sockets or descriptors is an error to handle, not to assert
       on: libzmq's own call, which returns NULL. */
    void *dealer = zsys_socket(ZMQ_DEALER, __FILE__, __LINE__);
    if (!dealer)
        return -(zmq_errno() ? zmq_errno() : ENOMEM);
    zsock_set_identity(dealer, env->id);
    zsock_set_linger(dealer, 0);
    zsock_set_sndhwm(dealer, DEALER_HWM);
    zsock_set_rcvhwm(dealer, DEALER_HWM);
    zsock_set_maxmsgsize(dealer, (int64_t) env->max_answer);
    /* A node that never answered is dialled again by its owner, at a pace
       it chooses; ZeroMQ redials only nodes we have met. */
    zsock_set_reconnect_ivl(dealer, reconnect ? 100 : -1);
    zsock_set_reconnect_ivl_max(dealer, 1000);
    /* Nothing is queued for a peer not connected: HELLOs would pile up
       while it is away and all arrive when it returns, and data for it
       must fail, not wait. */
    zsock_set_immediate(dealer, 1);
    /* IPv6 for an IPv6 address only: a host name is dialled over IPv4,
       else "localhost" would be ::1 and miss a peer bound to 127.0.0.1. */
    zsock_set_ipv6(dealer, strchr(self->endpoint, '[') != NULL);
    /* CURVE: our key pair, and the key the node we dial must hold. */
    zcert_apply(env->cert, dealer);
    zsock_set_curve_serverkey_bin(dealer, self->key);
    size_t fdlen = sizeof self->dealer_fd;
    if (zmq_connect(dealer, self->endpoint) < 0 ||
        zmq_getsockopt(dealer, ZMQ_FD, &self->dealer_fd, &fdlen) < 0) {
        int err = zmq_errno();
        zsys_close(dealer, __FILE__, __LINE__);
        self->dealer_fd = -1;
        return -(err ? err : EINVAL);
    }
    self->dealer = dealer;
    loop_fd_add(env->loop, self->dealer_fd, LOOP_IN, fn, arg);
    self->congested = 0;
    s_event(self, EV_DIAL);
    s_send_hello(self);
    return 0;
}

void peer_hello_due(peer_t *self, int64_t now, int64_t every)
{
    if ((self->state == PEER_CONNECTING || self->state == PEER_GREETED) && self->dealer &&
        now - self->last_hello >= every)
        s_send_hello(self);
}

int peer_acked(peer_t *self)
{
    return s_event(self, EV_ACK);
}

int peer_greeted(peer_t *self, uint64_t incarnation, uint32_t heartbeat, uint32_t seq)
{
    if (s_next[self->state][EV_HELLO] == NO)
        return -EINVAL;
    self->incarnation = incarnation;
    self->heartbeat = heartbeat > 60000 ? 60000 : heartbeat;
    self->rx_seq = seq;
    self->last_seen = loop_now(self->env->loop);
    return s_event(self, EV_HELLO);
}

void peer_lose(peer_t *self, const char *why)
{
    if (self->state == PEER_LOST || self->state == PEER_ASKING_KEY)
        return;
    snprintf(self->why, sizeof self->why, "%s", why);
    self->lost_why = self->why;
    self->lost_from = self->state;
    s_event(self, EV_LOSE);
}

peer_state_t peer_lost_from(const peer_t *self)
{
    return self->lost_from;
}

const char *peer_lost_why(const peer_t *self)
{
    return self->lost_why ? self->lost_why : "lost";
}

void peer_reset(peer_t *self, ring_t *flights, vec_t *waiters)
{
    *flights = self->flights;
    self->flights = (ring_t) { 0 };
    *waiters = self->waiters;
    self->waiters = (vec_t) { 0 };
    self->incarnation = 0;
    self->handled_bytes = 0;
    self->rx.count = 0;
    self->epoch++;              /* copies still queued here no longer count */
    self->batch.len = 0;        /* its messages are in the flights */
    self->batched = 0;
    s_drop_parked(self);
    /* A new DEALER comes with the next DIAL: anything still queued in the
       old one is stale. */
    s_dealer_close(self);
}

int peer_wants_out(const peer_t *self)
{
    return self->dealer && (self->congested || self->hello_pending);
}

int peer_can_write(peer_t *self)
{
    return self->dealer && (zsock_events(self->dealer) & ZMQ_POLLOUT);
}

int peer_writable(peer_t *self)
{
    if (self->hello_pending)
        s_send_hello(self);
    int was = self->congested;
    self->congested = 0;
    return was;
}

/* --- sending ------------------------------------------------------------------------ */

int peer_flush(peer_t *self)
{
    if (!self->batched)
        return 0;
    const uint8_t *data = self->batch.data;
    size_t len = self->batch.len;
    if (self->batched == 1) {
        data += PROTO_HEAD + 2 + 4;     /* the item alone, as itself */
        len -= PROTO_HEAD + 2 + 4;
    } else
        proto_batch_end(&self->batch, self->batched);
    self->batched = 0;
    if (s_send_raw(self, data, len) < 0) {
        /* Its messages are in flight: they fail back when it is reaped. */
        peer_lose(self, "its connection is stuck");
        return -EHOSTUNREACH;
    }
    return 0;
}

static int s_send_encoded(peer_t *self, proto_buf_t *b)
{
    if (b->failed)
        return -ENOMEM;
    if (self->state == PEER_LOST || !self->dealer)
        return -EHOSTUNREACH;
    /* Batched messages have smaller seqs: they go first. */
    if (self->batched && peer_flush(self) < 0)
        return -EHOSTUNREACH;
    proto_set_seq(b, ++self->tx_seq);
    return s_send_raw(self, b->data, b->len);
}

int peer_send(peer_t *self, proto_msg_t *m)
{
    proto_encode(&self->env->out, m);
    return s_send_encoded(self, &self->env->out);
}

void peer_send_ack(peer_t *self, uint32_t cseq, const char *to, size_t tolen)
{
    if (self->state != PEER_UP)
        return;
    proto_msg_t m = { .type = P_ACK, .cseq = cseq, .to = to, .tolen = tolen };
    peer_send(self, &m);
}

void peer_send_fail(peer_t *self, int err, uint32_t cseq, uint8_t what, const char *to,
                    size_t tolen, const char *name, size_t namelen, const char *text)
{
    if (self->state != PEER_UP)
        return;
    proto_msg_t m = {
        .type = P_FAIL, .error = (uint32_t) err, .cseq = cseq, .kind = what,
        .to = to, .tolen = tolen, .name = name, .namelen = namelen,
        .text = text, .textlen = strlen(text),
    };
    peer_send(self, &m);
}

int peer_send_encoded(peer_t *self, proto_buf_t *b)
{
    return s_send_encoded(self, b);
}

int peer_room(const peer_t *self, size_t size)
{
    if (self->state != PEER_UP)
        return 1;       /* the send fails at once: nothing to wait for */
    if (self->congested)
        return 0;
    return self->credit >= (int64_t) peer_frame_bytes(size) || self->flights.count == 0;
}

static void s_in_flight(peer_t *self, peer_flight_t *slot, size_t bytes, uint64_t origin,
                        uint32_t cseq, uint8_t what)
{
    self->credit -= (int64_t) bytes;
    *slot = (peer_flight_t) { self->tx_seq, (uint32_t) bytes, origin, cseq, what };
}

int peer_send_data(peer_t *self, proto_msg_t *m, uint64_t origin, uint32_t cseq, uint8_t what)
{
    if (self->state != PEER_UP || !self->dealer)
        return -EHOSTUNREACH;
    size_t len = proto_size(m);
    if (len <= BATCH_ITEM_MAX) {
        /* Small: into the batch, which leaves as one ZeroMQ frame before
           the loop sleeps (or before anything else to this peer). */
        if (self->batched && self->batch.len + 4 + len > PROTO_BATCH_MAX + PROTO_HEAD + 2 &&
            peer_flush(self) < 0)
            return -EHOSTUNREACH;
        peer_flight_t *slot = ring_push(&self->flights, sizeof *slot, 64);
        if (!slot)
            return -ENOMEM;
        if (!self->batched)
            proto_batch_begin(&self->batch);
        m->seq = self->tx_seq + 1;
        proto_batch_add(&self->batch, m);
        if (self->batch.failed) {
            self->flights.count--;
            peer_lose(self, "out of memory batching");
            return -EHOSTUNREACH;
        }
        self->tx_seq++;
        self->batched++;
        s_in_flight(self, slot, len, origin, cseq, what);
        return 0;
    }
    if (self->batched && peer_flush(self) < 0)
        return -EHOSTUNREACH;
    /* Large: the frame is built in the ZeroMQ message itself, so the
       payload is copied once. */
    proto_buf_t *out = &self->env->out;
    const void *data = m->data;
    size_t size = m->size;
    m->data = NULL;
    m->size = 0;
    m->seq = self->tx_seq + 1;
    proto_encode(out, m);
    m->data = data;
    m->size = size;
    zmq_msg_t msg;
    peer_flight_t *slot;
    if (out->failed || !(slot = ring_push(&self->flights, sizeof *slot, 64)))
        return -ENOMEM;
    if (zmq_msg_init_size(&msg, out->len + size) < 0) {
        self->flights.count--;
        return -ENOMEM;
    }
    memcpy(zmq_msg_data(&msg), out->data, out->len);
    if (size)
        memcpy((uint8_t *) zmq_msg_data(&msg) + out->len, data, size);
    self->touched = 1;
    if (zmq_msg_send(&msg, self->dealer, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&msg);
        self->flights.count--;
        /* At the high-water mark with credit left, or disconnected: the
           link is stuck. Start over rather than leave a gap. */
        peer_lose(self, "its connection is stuck");
        return -EHOSTUNREACH;
    }
    self->tx_seq++;
    s_in_flight(self, slot, out->len + size, origin, cseq, what);
    return 0;
}

void peer_settled(peer_t *self, uint64_t origin, uint32_t cseq)
{
    /* Newest first: an answer most often follows its message closely. */
    for (size_t i = self->flights.count; i-- > 0;) {
        peer_flight_t *f = &RING_AT(&self->flights, peer_flight_t, i);
        if (f->origin == origin && f->cseq == cseq) {
            f->origin = 0;
            return;
        }
    }
}

int peer_credited(peer_t *self, uint32_t ack, uint32_t bytes)
{
    /* Acknowledged: every message up to ack. */
    while (self->flights.count > 0) {
        peer_flight_t *f = &RING_AT(&self->flights, peer_flight_t, 0);
        if ((int32_t) (ack - f->seq) < 0)
            break;
        ring_pop(&self->flights);
    }
    self->credit += bytes;
    if (self->credit > (int64_t) self->env->window)
        self->credit = (int64_t) self->env->window;
    return self->waiters.size > 0 && self->credit > 0;
}

int peer_wait(peer_t *self, void *who)
{
    return vec_push(&self->waiters, who);
}

void peer_unwait(peer_t *self, void *who)
{
    vec_remove(&self->waiters, who);
}

void peer_take_waiters(peer_t *self, vec_t *ret)
{
    *ret = self->waiters;
    self->waiters = (vec_t) { 0 };
}

/* --- receiving ------------------------------------------------------------------------ */

int peer_dealer_recv(peer_t *self, zmq_msg_t *msg)
{
    self->touched = 0;
    if (!self->dealer || zmq_msg_recv(msg, self->dealer, ZMQ_DONTWAIT) < 0)
        return -EAGAIN;
    self->touched = 1;      /* until a read finds nothing */
    return 0;
}

int peer_touched(const peer_t *self)
{
    return self->touched && self->dealer;
}

int peer_in_order(peer_t *self, uint32_t seq)
{
    if (seq != self->rx_seq + 1) {
        char why[64];
        snprintf(why, sizeof why, "sequence gap (%u after %u)", seq, self->rx_seq);
        peer_lose(self, why);
        return 0;
    }
    self->rx_seq = seq;
    return 1;
}

int peer_note(peer_t *self, uint32_t seq, size_t bytes)
{
    received_t *r = ring_push(&self->rx, sizeof *r, 64);
    if (!r)
        return -ENOMEM;
    *r = (received_t) { seq, (uint32_t) bytes, 0, 0 };
    return 0;
}

void peer_send_credit(peer_t *self)
{
    if (self->handled_bytes == 0 || self->state != PEER_UP)
        return;
    proto_msg_t m = {
        .type = P_CREDIT, .ack = self->handled_seq,
        .credit = (uint32_t) (self->handled_bytes > UINT32_MAX ? UINT32_MAX : self->handled_bytes),
    };
    self->handled_bytes = 0;
    peer_send(self, &m);
}

/* Credits every message at the front of the ring that is done: taken and
   written to every local socket it was queued for. */
static void s_advance(peer_t *self)
{
    while (self->rx.count > 0) {
        received_t *r = &RING_AT(&self->rx, received_t, 0);
        if (!r->handed || r->pending > 0)
            break;
        self->handled_seq = r->seq;
        self->handled_bytes += r->bytes;
        ring_pop(&self->rx);
    }
    if (self->handled_bytes >= self->env->window / 8)
        peer_send_credit(self);
}

/* The entry of seq in the ring, or NULL. Seqs rise along the ring, so the
   place is computed, not searched: seq - first's seq slots in, if nothing
   was skipped (checked). */
static received_t *s_received(peer_t *self, uint32_t epoch, uint32_t seq)
{
    if (epoch != self->epoch || self->rx.count == 0)
        return NULL;
    uint32_t off = seq - RING_AT(&self->rx, received_t, 0).seq;
    if (off < self->rx.count) {
        received_t *r = &RING_AT(&self->rx, received_t, off);
        if (r->seq == seq)
            return r;
    }
    /* Control messages between data messages leave gaps in the seqs:
       search, from the end nearer to it. */
    int back = off >= self->rx.count / 2;
    for (size_t i = 0; i < self->rx.count; i++) {
        size_t k = back ? self->rx.count - 1 - i : i;
        received_t *r = &RING_AT(&self->rx, received_t, k);
        if (r->seq == seq)
            return r;
    }
    return NULL;
}

void peer_handed(peer_t *self, uint32_t seq)
{
    received_t *r = s_received(self, self->epoch, seq);
    if (r)
        r->handed = 1;
    s_advance(self);
}

uint32_t peer_epoch(const peer_t *self)
{
    return self->epoch;
}

void peer_hold(peer_t *self, uint32_t epoch, uint32_t seq)
{
    received_t *r = s_received(self, epoch, seq);
    if (r)
        r->pending++;
}

void peer_release(peer_t *self, uint32_t epoch, uint32_t seq)
{
    received_t *r = s_received(self, epoch, seq);
    if (r && r->pending > 0) {
        r->pending--;
        s_advance(self);
    }
}

int peer_park(peer_t *self, zmq_msg_t *msg)
{
    /* Credit bounds what a peer may send ahead; one that sends more does
       not honour it. */
    if (self->parked_bytes + zmq_msg_size(msg) > 2 * self->env->window + peer_frame_bytes(0))
        return -ENOBUFS;
    parked_t *k = malloc(sizeof *k);
    if (!k)
        return -ENOMEM;
    self->parked_bytes += zmq_msg_size(msg);
    zmq_msg_init(&k->msg);
    zmq_msg_move(&k->msg, msg);
    k->next = NULL;
    if (self->parked_tail)
        self->parked_tail->next = k;
    else
        self->parked = k;
    self->parked_tail = k;
    return 0;
}

int peer_has_parked(const peer_t *self)
{
    return self->parked != NULL;
}

zmq_msg_t *peer_parked(peer_t *self)
{
    return self->parked ? &self->parked->msg : NULL;
}

void peer_parked_pop(peer_t *self)
{
    parked_t *k = self->parked;
    if (!k)
        return;
    self->parked = k->next;
    if (!self->parked)
        self->parked_tail = NULL;
    self->parked_bytes -= zmq_msg_size(&k->msg);
    zmq_msg_close(&k->msg);
    free(k);
}

/* --- liveness ---------------------------------------------------------------------------- */

void peer_seen(peer_t *self, int64_t now)
{
    self->last_seen = now;
}

int64_t peer_last_seen(const peer_t *self)
{
    return self->last_seen;
}

/* Its PINGs come one heartbeat (and a tick) apart, so a live peer is never
   near 2.5, and a dead one is noticed within 2.5 heartbeats and a tick. */
int64_t peer_timeout(const peer_t *self)
{
    return self->heartbeat ? 5 * (int64_t) self->heartbeat / 2 : 1250;
}

int peer_ping_due(peer_t *self, int64_t now, unsigned heartbeat)
{
    if (self->state != PEER_UP || now - self->last_ping < (int64_t) heartbeat)
        return 0;
    self->last_ping = now;
    return 1;
}

void peer_ponged(peer_t *self, uint64_t stamp)
{
    self->rtt_us = peer_now_us() - (int64_t) stamp;
    self->last_seen = loop_now(self->env->loop);
}

int64_t peer_rtt_us(const peer_t *self)
{
    return self->state == PEER_UP ? self->rtt_us : 0;
}

void peer_bye(peer_t *self)
{
    proto_msg_t bye = { .type = P_BYE };
    if (self->dealer)
        zsock_set_linger(self->dealer, 200);
    peer_send(self, &bye);
}

void peer_take_dealer(peer_t *self, peer_t *other, loop_fd_fn *fn, void *arg)
{
    s_dealer_close(self);
    self->dealer = other->dealer;
    self->dealer_fd = other->dealer_fd;
    self->tx_seq = other->tx_seq;
    self->hello_pending = other->hello_pending;
    snprintf(self->endpoint, sizeof self->endpoint, "%s", other->endpoint);
    loop_fd_del(self->env->loop, other->dealer_fd);
    loop_fd_add(self->env->loop, self->dealer_fd, LOOP_IN, fn, arg);
    other->dealer = NULL;
    other->dealer_fd = -1;
}
