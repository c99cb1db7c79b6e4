/*  cluster.c: peers over ZeroMQ (docs/protocol-node.md).

    Sockets. One ROUTER takes every peer's messages; each peer gets one
    DEALER that carries our messages to its ROUTER, whose routing id is our
    node id. A DEALER knows whom it reached from the HELLO_ACK its HELLO
    gets; the ROUTER knows who speaks from the routing id and that peer's
    HELLO. A peer is up once both directions have shaken hands.

    Security (protocol section 12). Every link is CURVE: the ROUTER is a
    server with our key pair, each DEALER a client that knows its peer's
    public key before it dials. Our id is our public key's first 16 bytes in
    hex. A ZAP handler on our loop authenticates each connection to the
    ROUTER (against --authorized-keys, if given) and names it by its key, so
    every ROUTER message is checked to come from the id that its key owns.
    A static peer given without a key is asked for it over UDP (KEY).

    ZeroMQ's file descriptors signal edges, not levels: after every send the
    socket may hold input that no wake-up will announce, so cluster_idle()
    looks at each socket's ZMQ_EVENTS before the loop sleeps.

    Flow control. Each direction has a credit window in bytes. Sending a
    data frame spends credit and remembers the frame's origin until the
    peer's CREDIT acknowledges it; a lost peer's unacknowledged frames fail
    back to their senders. A frame for a local client whose queue is full is
    parked, in order, and the client is asked to call back when it drains. */

#include "cluster.h"
#include "dict.h"
#include "mdns.h"
#include "wire.h"

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define TICK_MS         50
#define HELLO_EVERY_MS  1000
#define DEALER_HWM      100000
#define ENDPOINT_MAX    128
#define BATCH_ITEM_MAX  2048        /* data messages this small are batched */
#define SUSPECT_MS      400         /* a peer whose record went must answer by then */
#define KEY_ASK_MS      500         /* a KEY question unanswered is asked again */
#define REDIAL_MS       5000        /* a dial not answered by then is made anew (a
                                       key learned on first use asked again) */
#define ZAP_ENDPOINT    "inproc://zeromq.zap.01"
#define CURVE_OVERHEAD  64          /* a CURVE MESSAGE command around a frame */

typedef struct {
    uint32_t seq;
    uint32_t bytes;
    uint64_t origin;
    uint32_t cseq;
    uint8_t what;
} flight_t;

/* A data message received, until its last copy reached a local socket. */
typedef struct {
    uint32_t seq;
    uint32_t bytes;
    uint32_t pending;       /* copies queued, not yet written */
    int handed;             /* the server has taken it (not parked) */
} received_t;

typedef struct parked {
    struct parked *next;
    zmq_msg_t msg;
} parked_t;

struct peer {
    cluster_t *cluster;
    char id[PROTO_ID_LEN + 1];          /* "" until a handshake tells */
    char name[WIRE_NAME_MAX + 1];
    char endpoint[ENDPOINT_MAX];
    uint8_t key[PROTO_KEY_LEN];     /* its public key, once known */
    int has_key;
    int key_tofu;               /* learned from a KEY answer, not configured */
    int kfd;                    /* UDP socket asking for its key, or -1 */
    uint64_t knonce;
    int64_t kasked, dialled;
    unsigned ktries;
    struct sockaddr_storage kaddr;
    socklen_t kaddrlen;
    int is_static;
    int by_mdns;                /* found (also) through mDNS */
    int up;
    int64_t suspect_since;      /* its mDNS record went away: is it alive? */
    int64_t last_refused_log, last_redial_log, last_key_log;
    zsock_t *dealer;
    int dealer_fd;
    int got_ack, got_hello;
    int hello_pending;          /* HELLO not taken: no connection yet */
    uint64_t incarnation;
    uint32_t heartbeat;         /* its PING interval, from its HELLO */
    uint32_t tx_seq, rx_seq;
    int64_t last_seen, last_ping, last_hello, up_since;
    int64_t rtt_us;
    int congested;
    int touched;                /* sent on since its input was last read */
    proto_buf_t batch;          /* small data messages, sent as one BATCH */
    uint16_t batched;
    /* sending: credit and what it has not acknowledged */
    int64_t credit;
    flight_t *flights;
    size_t fl_first, fl_count, fl_cap;
    /* receiving: what we owe it credit for, what waits for a local client */
    uint32_t handled_seq;
    size_t handled_bytes;
    received_t *rx;             /* ring of data messages not yet credited */
    size_t rx_first, rx_count, rx_cap;
    uint32_t epoch;             /* bumped when the ring is reset */
    parked_t *parked, *parked_tail;
    size_t parked_bytes;
    /* its directory */
    dict_t *names;
    dict_t *subs;
    /* local clients waiting for room on us */
    client_t **waiters;
    size_t nwaiters, capwaiters;
};

struct cluster {
    loop_t *loop;
    server_t *server;
    node_config_t cfg;
    char id[PROTO_ID_LEN + 1];
    uint64_t incarnation;
    zcert_t *cert;              /* our key pair */
    uint8_t key[PROTO_KEY_LEN];
    zcertstore_t *authorized;   /* --authorized-keys, or NULL: open */
    zsock_t *zap;               /* our ZAP handler */
    int zap_fd;
    int udp_fd;                 /* answers KEY questions */
    int64_t last_spoof_log, last_unauth_log;
    zsock_t *router;
    int router_fd;
    int router_touched;
    int port;
    peer_t **peers;
    size_t npeers, cappeers;
    loop_timer_t *tick;
    proto_buf_t out;
    char self_endpoints[4][ENDPOINT_MAX];   /* dialled and found to be us */
    size_t nself;
    mdns_t *mdns;
    peer_t *last_peer;          /* who sent the last ROUTER message */
    int64_t last_foreign_log;   /* rate of "another cluster" notices */
    int64_t last_twin_log;      /* rate of "our own id" warnings */
};

static void s_lost(peer_t *p, const char *why);

/* A peer is lost after two and a half of its own heartbeats of silence:
   its PINGs come one heartbeat (and a tick) apart, so a live peer is never
   near that, and a dead one is noticed within 2.5 heartbeats and a tick. */
static int64_t s_timeout(const peer_t *p)
{
    return p->heartbeat ? 5 * (int64_t) p->heartbeat / 2 : 1250;
}
static size_t s_frame_bytes(size_t size);

static int64_t s_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* --- identity ---------------------------------------------------------------------- */

static int s_mkdirs(const char *path)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s", path);
    for (char *p = dir + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                return -errno;
            *p = '/';
        }
    return mkdir(dir, 0700) < 0 && errno != EEXIST ? -errno : 0;
}

/* Loads the key pair kept in state_dir (node.key, node.key_secret), or
   makes one and keeps it, so a restarted node is the same node (its id is
   its key's). Logs why and returns NULL on failure. */
static zcert_t *s_cert_load(const char *state_dir)
{
    char path[600], secret[620];
    int rc = s_mkdirs(state_dir);
    if (rc < 0) {
        zsys_error("cannot create state directory %s: %s", state_dir, strerror(-rc));
        return NULL;
    }
    snprintf(path, sizeof path, "%s/node.key", state_dir);
    snprintf(secret, sizeof secret, "%s/node.key_secret", state_dir);
    if (access(path, F_OK) == 0 || access(secret, F_OK) == 0) {
        zcert_t *cert = zcert_load(path);
        char pub[41];
        /* The public key must be the secret key's: a mismatched pair fails
           every handshake, far from its cause. */
        if (!cert || zmq_curve_public(pub, zcert_secret_txt(cert)) < 0 ||
            strcmp(pub, zcert_public_txt(cert)) != 0) {
            zsys_error("%s and %s do not hold a key pair; move them away to make a new one",
                       path, secret);
            zcert_destroy(&cert);
            return NULL;
        }
        return cert;
    }
    zcert_t *cert = zcert_new();
    if (!cert) {
        zsys_error("cannot make a key pair: %s", zmq_strerror(zmq_errno()));
        return NULL;
    }
    zcert_set_meta(cert, "made-by", "ipc-node");
    mode_t old = umask(077);
    rc = zcert_save(cert, path);
    umask(old);
    if (rc < 0 || chmod(path, 0644) < 0) {
        zsys_error("cannot write %s: %s", path, strerror(errno));
        zcert_destroy(&cert);
        return NULL;
    }
    zsys_notice("made a new key pair in %s", path);
    return cert;
}

int cluster_key(const char *state_dir, char txt[41])
{
    zcert_t *cert = s_cert_load(state_dir);
    if (!cert)
        return -1;
    snprintf(txt, 41, "%s", zcert_public_txt(cert));
    zcert_destroy(&cert);
    return 0;
}

/* May we take (dial, or be dialled by) the node of this key? */
static int s_key_allowed(cluster_t *self, const uint8_t *key)
{
    if (!self->authorized || memcmp(key, self->key, PROTO_KEY_LEN) == 0)
        return 1;
    char txt[41];
    zmq_z85_encode(txt, key, PROTO_KEY_LEN);
    return zcertstore_lookup(self->authorized, txt) != NULL;
}

static void s_key_refused_log(cluster_t *self, const uint8_t *key, const char *where)
{
    int64_t now = loop_now(self->loop);
    if (now - self->last_unauth_log < 10000)
        return;
    self->last_unauth_log = now;
    char txt[41];
    zmq_z85_encode(txt, key, PROTO_KEY_LEN);
    zsys_notice("key %s (%s) is not in %s: refusing it", txt, where, self->cfg.authorized_keys);
}

/* --- sending ----------------------------------------------------------------------- */

/* Sends the encoded message in self->out to peer's DEALER. Returns 0,
   -EAGAIN (high-water mark) or another negative errno. */
static int s_flush_batch(peer_t *p);

static int s_send(peer_t *p)
{
    cluster_t *self = p->cluster;
    if (self->out.failed || !p->dealer)
        return -ENOMEM;
    /* Batched messages have smaller seqs: they go first. */
    if (p->batched && s_flush_batch(p) < 0)
        return -EHOSTUNREACH;
    p->touched = 1;
    if (zmq_send(zsock_resolve(p->dealer), self->out.data, self->out.len, ZMQ_DONTWAIT) < 0) {
        if (errno == EAGAIN)
            p->congested = 1;
        return -errno;
    }
    return 0;
}

static void s_begin(peer_t *p, uint8_t type, uint8_t flags)
{
    proto_begin(&p->cluster->out, type, flags, ++p->tx_seq);
}

static void s_send_hello(peer_t *p)
{
    cluster_t *self = p->cluster;
    p->tx_seq = 0;
    s_begin(p, P_HELLO, 0);
    proto_str(&self->out, self->id, PROTO_ID_LEN);
    proto_str(&self->out, self->cfg.name, strlen(self->cfg.name));
    proto_str(&self->out, self->cfg.cluster, strlen(self->cfg.cluster));
    proto_u16(&self->out, (uint16_t) self->port);
    proto_u64(&self->out, self->incarnation);
    proto_u32(&self->out, self->cfg.heartbeat);
    p->last_hello = loop_now(self->loop);
    /* With ZMQ_IMMEDIATE a HELLO is refused until the connection is made;
       cluster_idle sends it as soon as the DEALER can write. */
    p->hello_pending = s_send(p) < 0;
}

/* Answers on the ROUTER, to the DEALER that spoke (HELLO_ACK, PONG, FAIL). */
static void s_answer(cluster_t *self, const void *rid, size_t ridlen)
{
    void *router = zsock_resolve(self->router);
    self->router_touched = 1;
    if (self->out.failed ||
        zmq_send(router, rid, ridlen, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_send(router, self->out.data, self->out.len, ZMQ_DONTWAIT) < 0) {
        /* A peer that went away as we answered: it says HELLO again. */
    }
}

/* --- peers ------------------------------------------------------------------------- */

static void s_dealer_ready(loop_t *loop, int fd, int revents, void *arg);

static int s_dealer_open(peer_t *p)
{
    cluster_t *self = p->cluster;
    p->dealer = zsock_new(ZMQ_DEALER);
    if (!p->dealer)
        return -ENOMEM;
    zsock_set_identity(p->dealer, self->id);
    zsock_set_linger(p->dealer, 0);
    zsock_set_sndhwm(p->dealer, DEALER_HWM);
    zsock_set_rcvhwm(p->dealer, DEALER_HWM);
    zsock_set_maxmsgsize(p->dealer, 64 * 1024);     /* answers only: HELLO_ACK, PONG, FAIL */
    zsock_set_reconnect_ivl(p->dealer, 100);
    zsock_set_reconnect_ivl_max(p->dealer, 1000);
    /* Nothing is queued for a peer not connected: HELLOs would pile up
       while it is away and all arrive when it returns, and data for it
       must fail, not wait. */
    zsock_set_immediate(p->dealer, 1);
    /* IPv6 for an IPv6 address only: a host name is dialled over IPv4,
       else "localhost" would be ::1 and miss a peer bound to 127.0.0.1. */
    zsock_set_ipv6(p->dealer, strchr(p->endpoint, '[') != NULL);
    /* CURVE: our key pair, and the key the node we dial must hold. */
    zcert_apply(self->cert, p->dealer);
    zsock_set_curve_serverkey_bin(p->dealer, p->key);
    p->dialled = loop_now(self->loop);
    if (zsock_connect(p->dealer, "%s", p->endpoint) < 0) {
        zsys_warning("cannot connect to %s: %s", p->endpoint, zmq_strerror(zmq_errno()));
        zsock_destroy(&p->dealer);
        return -EINVAL;
    }
    p->dealer_fd = zsock_fd(p->dealer);
    loop_fd_add(self->loop, p->dealer_fd, LOOP_IN, s_dealer_ready, p);
    p->congested = 0;
    p->got_ack = 0;
    s_send_hello(p);
    return 0;
}

static void s_dealer_close(peer_t *p)
{
    if (!p->dealer)
        return;
    loop_fd_del(p->cluster->loop, p->dealer_fd);
    zsock_destroy(&p->dealer);
    p->dealer_fd = -1;
}

static peer_t *s_by_id(cluster_t *self, const char *id, size_t len)
{
    for (size_t i = 0; i < self->npeers; i++)
        if (self->peers[i]->id[0] && len == PROTO_ID_LEN &&
            memcmp(self->peers[i]->id, id, len) == 0)
            return self->peers[i];
    return NULL;
}

static peer_t *s_by_endpoint(cluster_t *self, const char *endpoint)
{
    for (size_t i = 0; i < self->npeers; i++)
        if (strcmp(self->peers[i]->endpoint, endpoint) == 0)
            return self->peers[i];
    return NULL;
}

static int s_is_self_endpoint(cluster_t *self, const char *endpoint)
{
    for (size_t i = 0; i < self->nself; i++)
        if (strcmp(self->self_endpoints[i], endpoint) == 0)
            return 1;
    return 0;
}

static int s_key_ask_start(peer_t *p);

static void s_self_endpoint(cluster_t *self, const char *endpoint)
{
    if (!s_is_self_endpoint(self, endpoint) && self->nself < 4)
        snprintf(self->self_endpoints[self->nself++], ENDPOINT_MAX, "%s", endpoint);
}

/* A new peer to dial at endpoint, with its key; a static peer may come
   without one, and is then asked for it. Returns NULL for ourselves, a
   key not authorized, or out of memory. */
static peer_t *s_peer_new(cluster_t *self, const char *endpoint, int is_static,
                          const uint8_t *key)
{
    if (key && memcmp(key, self->key, PROTO_KEY_LEN) == 0) {
        s_self_endpoint(self, endpoint);
        return NULL;
    }
    if (key && !s_key_allowed(self, key)) {
        s_key_refused_log(self, key, endpoint);
        return NULL;
    }
    if (self->npeers == self->cappeers) {
        size_t cap = self->cappeers ? self->cappeers * 2 : 16;
        peer_t **peers = realloc(self->peers, cap * sizeof *peers);
        if (!peers)
            return NULL;
        self->peers = peers;
        self->cappeers = cap;
    }
    peer_t *p = calloc(1, sizeof *p);
    if (!p || !(p->names = dict_new()) || !(p->subs = dict_new())) {
        if (p) {
            dict_destroy(&p->names);
            free(p);
        }
        return NULL;
    }
    p->cluster = self;
    p->is_static = is_static;
    p->dealer_fd = -1;
    p->kfd = -1;
    p->last_refused_log = p->last_redial_log = p->last_key_log = INT64_MIN / 2;
    snprintf(p->endpoint, sizeof p->endpoint, "%s", endpoint);
    strcpy(p->name, "-");
    p->last_seen = loop_now(self->loop);
    if (key) {
        memcpy(p->key, key, PROTO_KEY_LEN);
        p->has_key = 1;
        proto_key_id(key, p->id);
    }
    self->peers[self->npeers++] = p;
    if ((key ? s_dealer_open(p) : s_key_ask_start(p)) < 0) {
        self->npeers--;
        dict_destroy(&p->names);
        dict_destroy(&p->subs);
        free(p);
        return NULL;
    }
    return p;
}

static void s_peer_free(peer_t *p)
{
    cluster_t *self = p->cluster;
    if (self->last_peer == p)
        self->last_peer = NULL;
    for (size_t i = 0; i < self->npeers; i++)
        if (self->peers[i] == p) {
            self->peers[i] = self->peers[--self->npeers];
            break;
        }
    s_dealer_close(p);
    if (p->kfd >= 0) {
        loop_fd_del(self->loop, p->kfd);
        close(p->kfd);
    }
    while (p->parked) {
        parked_t *k = p->parked;
        p->parked = k->next;
        zmq_msg_close(&k->msg);
        free(k);
    }
    dict_destroy(&p->names);
    dict_destroy(&p->subs);
    free(p->flights);
    proto_free(&p->batch);
    free(p->rx);
    free(p->waiters);
    free(p);
}

const char *peer_name(const peer_t *p)
{
    return p->name;
}

int peer_is_up(const peer_t *p)
{
    return p->up;
}

/* Tells the server about each name or pattern of a dictionary. */
typedef struct {
    server_t *server;
    peer_t *peer;
    int up;
} each_t;

static void s_each_name(const void *key, size_t len, void *value, void *arg)
{
    (void) value;
    each_t *e = arg;
    server_remote_name(e->server, e->peer, key, len, e->up);
}

static void s_each_sub(const void *key, size_t len, void *value, void *arg)
{
    (void) value;
    each_t *e = arg;
    server_remote_sub(e->server, e->peer, key, len, e->up);
}

static void s_resume_waiters(peer_t *p)
{
    /* The server may add waiters back while we resume: take the list. */
    size_t n = p->nwaiters;
    client_t **w = p->waiters;
    p->waiters = NULL;
    p->nwaiters = p->capwaiters = 0;
    for (size_t i = 0; i < n; i++)
        server_resume(p->cluster->server, w[i]);
    free(w);
}

/* Sends a list message (NAMES_*, SUBS_*) item by item, in chunks. */
typedef struct {
    peer_t *peer;
    uint8_t type;
    uint16_t count;
    size_t count_at;
} list_t;

static void s_list_flush(list_t *l)
{
    cluster_t *self = l->peer->cluster;
    if (l->count == 0)
        return;
    self->out.data[l->count_at] = (uint8_t) (l->count >> 8);
    self->out.data[l->count_at + 1] = (uint8_t) l->count;
    s_send(l->peer);
    l->count = 0;
}

static void s_list_add(void *arg, const char *s, size_t len)
{
    list_t *l = arg;
    cluster_t *self = l->peer->cluster;
    if (l->count == PROTO_LIST_MAX)
        s_list_flush(l);
    if (l->count == 0) {
        s_begin(l->peer, l->type, 0);
        l->count_at = self->out.len;
        proto_u16(&self->out, 0);
    }
    proto_str(&self->out, s, len);
    l->count++;
}

static void s_name_item(void *arg, const char *s, size_t len)
{
    list_t *l = arg;
    if (l->type != P_NAMES_ADD) {
        s_list_flush(l);
        l->type = P_NAMES_ADD;
    }
    s_list_add(l, s, len);
}

static void s_sub_item(void *arg, const char *s, size_t len)
{
    list_t *l = arg;
    if (l->type != P_SUBS_ADD) {
        s_list_flush(l);
        l->type = P_SUBS_ADD;
    }
    s_list_add(l, s, len);
}

/* Tells to one peer every other up peer (or, with only, just that one). */
static void s_gossip(peer_t *to, peer_t *only)
{
    cluster_t *self = to->cluster;
    uint16_t count = 0;
    size_t count_at = 0;
    for (size_t i = 0; i < self->npeers; i++) {
        peer_t *p = self->peers[i];
        if (p == to || !p->up || !p->has_key || (only && p != only))
            continue;
        if (count == 0) {
            s_begin(to, P_PEERS, 0);
            count_at = self->out.len;
            proto_u16(&self->out, 0);
        }
        proto_str(&self->out, p->id, PROTO_ID_LEN);
        proto_str(&self->out, p->name, strlen(p->name));
        proto_str(&self->out, p->endpoint, strlen(p->endpoint));
        proto_str(&self->out, (const char *) p->key, PROTO_KEY_LEN);
        if (++count == PROTO_LIST_MAX)
            break;
    }
    if (count > 0) {
        self->out.data[count_at] = (uint8_t) (count >> 8);
        self->out.data[count_at + 1] = (uint8_t) count;
        s_send(to);
    }
}

static void s_check_up(peer_t *p)
{
    cluster_t *self = p->cluster;
    if (p->up || !p->got_ack || !p->got_hello)
        return;
    p->up = 1;
    p->up_since = p->last_seen = p->last_ping = loop_now(self->loop);
    p->credit = (int64_t) self->cfg.window;
    p->congested = 0;
    zsys_notice("peer %s (%.8s) up at %s (%s)", p->name, p->id, p->endpoint,
                p->is_static ? "static" : p->by_mdns ? "mdns" : "gossip");
    /* Our state, then whom we know; and everyone we know learns of it. */
    list_t l = { .peer = p, .type = P_NAMES_ADD };
    server_each_local(self->server, s_name_item, s_sub_item, &l);
    s_list_flush(&l);
    s_gossip(p, NULL);
    for (size_t i = 0; i < self->npeers; i++)
        if (self->peers[i] != p && self->peers[i]->up)
            s_gossip(self->peers[i], p);
    server_peer_state(self->server, p, 1);
}

/* Forgets everything of the peer's incarnation; the peer is dialled anew. */
static void s_lost(peer_t *p, const char *why)
{
    cluster_t *self = p->cluster;
    int was_up = p->up;
    if (was_up)
        zsys_notice("peer %s (%.8s) at %s lost: %s", p->name, p->id, p->endpoint, why);
    p->up = 0;
    p->got_ack = p->got_hello = 0;
    p->incarnation = 0;
    each_t e = { self->server, p, 0 };
    dict_each(p->names, s_each_name, &e);
    dict_each(p->subs, s_each_sub, &e);
    dict_destroy(&p->names);
    dict_destroy(&p->subs);
    p->names = dict_new();
    p->subs = dict_new();
    /* Whatever it did not acknowledge fails back to its sender. */
    while (p->fl_count > 0) {
        flight_t *f = &p->flights[p->fl_first];
        p->fl_first = (p->fl_first + 1) % p->fl_cap;
        p->fl_count--;
        if (f->origin)
            server_fail_origin(self->server, f->origin, f->cseq, f->what, EHOSTUNREACH);
    }
    while (p->parked) {
        parked_t *k = p->parked;
        p->parked = k->next;
        zmq_msg_close(&k->msg);
        free(k);
    }
    p->parked_tail = NULL;
    p->parked_bytes = 0;
    p->handled_bytes = 0;
    p->rx_count = 0;
    p->epoch++;             /* copies still queued here no longer count */
    p->batch.len = 0;       /* its messages were failed back with the flights */
    p->batched = 0;
    if (was_up)
        server_peer_state(self->server, p, 0);
    s_resume_waiters(p);
    /* A new DEALER: anything still queued in the old one is stale. */
    s_dealer_close(p);
    s_dealer_open(p);
}

/* Drops a peer for good: lost, then freed. */
static void s_forget(peer_t *p, const char *why)
{
    s_lost(p, why);
    server_peer_forget(p->cluster->server, p);
    s_peer_free(p);
}

/* --- keys: asking a static peer, answering, authenticating ------------------------- */

/* Splits "tcp://HOST:PORT" (HOST may be "[v6]") into host and port. */
static int s_split(const char *endpoint, char *host, size_t hsize, char *port, size_t psize)
{
    if (strncmp(endpoint, "tcp://", 6) != 0)
        return -EINVAL;
    const char *h = endpoint + 6, *colon = strrchr(h, ':');
    if (!colon || colon == h || strlen(colon + 1) == 0 || strlen(colon + 1) >= psize)
        return -EINVAL;
    size_t hlen = (size_t) (colon - h);
    if (h[0] == '[' && hlen >= 2 && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= hsize)
        return -EINVAL;
    memcpy(host, h, hlen);
    host[hlen] = 0;
    strcpy(port, colon + 1);
    return 0;
}

static void s_key_answer(loop_t *loop, int fd, int revents, void *arg);

static void s_key_ask(peer_t *p)
{
    cluster_t *self = p->cluster;
    proto_begin(&self->out, P_KEY, 0, 0);
    proto_u64(&self->out, p->knonce);
    uint8_t zero[PROTO_KEY_LEN] = { 0 };
    proto_bytes(&self->out, zero, sizeof zero);
    if (!self->out.failed)
        (void) sendto(p->kfd, self->out.data, self->out.len, MSG_DONTWAIT,
                      (struct sockaddr *) &p->kaddr, p->kaddrlen);   /* lost: asked again */
    p->kasked = loop_now(self->loop);
    p->ktries++;
}

/* Starts asking a static peer for its key (KEY over UDP, at the port
   number of its endpoint). A host name is resolved here, on our thread:
   give addresses, or pinned keys, where DNS may be slow. */
static int s_key_ask_start(peer_t *p)
{
    cluster_t *self = p->cluster;
    char host[ENDPOINT_MAX], port[16];
    if (s_split(p->endpoint, host, sizeof host, port, sizeof port) < 0)
        return -EINVAL;
    p->kasked = loop_now(self->loop);
    struct addrinfo hints = {
        .ai_socktype = SOCK_DGRAM, .ai_flags = AI_NUMERICSERV,
        .ai_family = strchr(p->endpoint, '[') ? AF_INET6 : AF_INET,     /* as the DEALER */
    }, *ai;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0) {
        if (p->ktries++ % 30 == 0)
            zsys_warning("cannot resolve %s: %s; trying again", p->endpoint, gai_strerror(rc));
        return 0;       /* the tick tries again */
    }
    if (ai->ai_addrlen <= sizeof p->kaddr) {
        memcpy(&p->kaddr, ai->ai_addr, ai->ai_addrlen);
        p->kaddrlen = ai->ai_addrlen;
        p->kfd = socket(ai->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    }
    freeaddrinfo(ai);
    if (p->kfd < 0) {
        zsys_warning("cannot ask %s for its key: %s", p->endpoint, strerror(errno));
        return 0;
    }
    if (getrandom(&p->knonce, sizeof p->knonce, 0) != sizeof p->knonce)
        p->knonce = (uint64_t) s_now_us() ^ (uint64_t) (uintptr_t) p;
    loop_fd_add(self->loop, p->kfd, LOOP_IN, s_key_answer, p);
    if (p->ktries == 0 && !p->has_key)
        zsys_info("asking %s for its key (no key given for it)", p->endpoint);
    s_key_ask(p);
    return 0;
}

static void s_key_ask_stop(peer_t *p)
{
    if (p->kfd < 0)
        return;
    loop_fd_del(p->cluster->loop, p->kfd);
    close(p->kfd);
    p->kfd = -1;
}

/* A key learned on first use is kept in the state directory (known-peers:
   "endpoint key" lines), so that a seed whose key changes later is refused
   instead of trusted again. Returns 0 if key is the one known for the
   peer's endpoint, or is now; -1 if another key is known. */
static int s_known(cluster_t *self, peer_t *p, const uint8_t *key)
{
    char path[600], line[300], txt[41];
    zmq_z85_encode(txt, key, PROTO_KEY_LEN);
    snprintf(path, sizeof path, "%s/known-peers", self->cfg.state_dir);
    size_t eplen = strlen(p->endpoint);
    int lineno = 0, rc = 1;
    FILE *f = fopen(path, "r");
    while (f && rc == 1 && fgets(line, sizeof line, f)) {
        lineno++;
        if (strncmp(line, p->endpoint, eplen) != 0 || line[eplen] != ' ')
            continue;
        char *known = line + eplen + 1;
        known[strcspn(known, "\r\n")] = 0;
        rc = strcmp(known, txt) == 0 ? 0 : -1;
    }
    if (f)
        fclose(f);
    if (rc == 0)
        return 0;
    if (rc < 0) {
        int64_t now = loop_now(self->loop);
        if (now - p->last_key_log > 60000) {
            zsys_error("%s now answers with key %s, not the one %s:%d keeps: refusing it "
                       "(if the change is expected, delete that line or pin the key)",
                       p->endpoint, txt, path, lineno);
            p->last_key_log = now;
        }
        return -1;
    }
    f = fopen(path, "a");
    if (!f || fprintf(f, "%s %s\n", p->endpoint, txt) < 0 || fclose(f) != 0)
        zsys_warning("cannot keep the key of %s in %s: %s", p->endpoint, path, strerror(errno));
    zsys_notice("learned the key of %s on first use: %s, kept in %s (pin it: --peer '%s#%s')",
                p->endpoint, txt, path, p->endpoint, txt);
    return 0;
}

/* peer, dialled by endpoint without a key, has one now: from a KEY
   answer, an mDNS record or a connection from its address, none of which
   proves that the key is the endpoint's: trusted on first use, and
   checked against known-peers. Returns 0 (p may still have no key: refused), or -1 if p
   was freed. */
static int s_key_learned(peer_t *p, const uint8_t *key)
{
    cluster_t *self = p->cluster;
    s_key_ask_stop(p);
    p->ktries = 0;
    if (memcmp(key, self->key, PROTO_KEY_LEN) == 0) {
        s_self_endpoint(self, p->endpoint);
        s_forget(p, "it is ourselves");
        return -1;
    }
    if (!s_key_allowed(self, key)) {
        s_key_refused_log(self, key, p->endpoint);
        p->kasked = loop_now(self->loop) + REDIAL_MS;        /* asked again later */
        return 0;
    }
    char id[PROTO_ID_LEN + 1];
    proto_key_id(key, id);
    peer_t *other = s_by_id(self, id, PROTO_ID_LEN);
    if (other && other != p) {
        /* Known already, by another way: one peer. */
        other->is_static |= p->is_static;
        s_forget(p, "known already");
        return -1;
    }
    int same = p->has_key && memcmp(p->key, key, PROTO_KEY_LEN) == 0;
    if (!same && s_known(self, p, key) < 0) {
        p->kasked = loop_now(self->loop) + REDIAL_MS;        /* asked again later */
        return 0;
    }
    memcpy(p->key, key, PROTO_KEY_LEN);
    p->has_key = 1;
    p->key_tofu = 1;
    memcpy(p->id, id, sizeof id);
    s_dealer_close(p);
    return s_dealer_open(p) < 0 ? (s_forget(p, "cannot connect"), -1) : 0;
}

static void s_key_answer(loop_t *loop, int fd, int revents, void *arg)
{
    (void) loop;
    (void) revents;
    peer_t *p = arg;
    for (int i = 0; i < 16; i++) {
        uint8_t buf[PROTO_KEY_MSG + 1];
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0)
            return;
        proto_msg_t m;
        static const uint8_t zero[PROTO_KEY_LEN];
        if (n != PROTO_KEY_MSG || proto_decode(buf, (size_t) n, &m) < 0 || m.type != P_KEY ||
            m.stamp != p->knonce || memcmp(m.key, zero, PROTO_KEY_LEN) == 0)
            continue;   /* not the answer to our question */
        s_key_learned(p, m.key);
        return;         /* p may be gone, fd closed */
    }
}

/* KEY questions to us: answered with our key, the same size. */
static void s_udp_ready(loop_t *loop, int fd, int revents, void *arg)
{
    (void) loop;
    (void) revents;
    cluster_t *self = arg;
    static const uint8_t zero[PROTO_KEY_LEN];
    for (int i = 0; i < 64; i++) {
        uint8_t buf[PROTO_KEY_MSG + 1];
        struct sockaddr_storage from;
        socklen_t fromlen = sizeof from;
        ssize_t n = recvfrom(fd, buf, sizeof buf, MSG_DONTWAIT, (struct sockaddr *) &from,
                             &fromlen);
        if (n < 0)
            return;
        proto_msg_t m;
        if (n != PROTO_KEY_MSG || proto_decode(buf, (size_t) n, &m) < 0 || m.type != P_KEY ||
            memcmp(m.key, zero, PROTO_KEY_LEN) != 0)
            continue;   /* not a question */
        proto_begin(&self->out, P_KEY, 0, 0);
        proto_u64(&self->out, m.stamp);
        proto_bytes(&self->out, self->key, PROTO_KEY_LEN);
        if (!self->out.failed)
            (void) sendto(fd, self->out.data, self->out.len, MSG_DONTWAIT,
                          (struct sockaddr *) &from, fromlen);
    }
}

static void s_udp_open(cluster_t *self)
{
    char host[64], port[16];
    const char *addr = self->cfg.bind;
    size_t len = strlen(addr);
    if (addr[0] == '[' && len >= 2 && addr[len - 1] == ']')
        snprintf(host, sizeof host, "%.*s", (int) len - 2, addr + 1);
    else
        snprintf(host, sizeof host, "%s", addr);
    snprintf(port, sizeof port, "%d", self->port);
    int any = strcmp(host, "*") == 0;
    if (any) {
        /* Both families on one socket, as the ROUTER; IPv4 alone where
           the kernel has no IPv6. */
        int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), off = 0;
        struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT,
                                   .sin6_port = htons((uint16_t) self->port) };
        if (fd >= 0 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off) == 0 &&
            bind(fd, (struct sockaddr *) &sa, sizeof sa) == 0) {
            self->udp_fd = fd;
            loop_fd_add(self->loop, fd, LOOP_IN, s_udp_ready, self);
            return;
        }
        if (fd >= 0)
            close(fd);
    }
    struct addrinfo hints = {
        .ai_socktype = SOCK_DGRAM, .ai_family = any ? AF_INET : AF_UNSPEC,
        .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV,
    }, *ai;
    int rc = getaddrinfo(any ? NULL : host, port, &hints, &ai);
    if (rc != 0) {
        zsys_warning("not answering KEY questions: cannot use %s: %s", host, gai_strerror(rc));
        return;
    }
    int fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        zsys_warning("not answering KEY questions: cannot bind UDP port %s: %s "
                     "(peers must then be given our key)", port, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return;
    }
    freeaddrinfo(ai);
    self->udp_fd = fd;
    loop_fd_add(self->loop, fd, LOOP_IN, s_udp_ready, self);
}

/* ZAP (ZeroMQ RFC 27): every connection to our ROUTER is asked about here.
   We take the keys authorized, and name the connection by its key in hex
   (its User-Id), which s_router_message checks each message against. */
static void s_zap_drain(cluster_t *self)
{
    void *zap = zsock_resolve(self->zap);
    for (int n = 0; n < 256; n++) {
        /* version, request id, domain, address, routing id, mechanism, key;
           a request of more parts is read whole and refused. */
        zmq_msg_t part[8];
        int nparts = 0, more = 1;
        while (more && nparts < 8) {
            zmq_msg_init(&part[nparts]);
            if (zmq_msg_recv(&part[nparts], zap, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&part[nparts]);
                break;
            }
            more = zmq_msg_more(&part[nparts++]);
        }
        if (nparts == 0)
            return;
        for (zmq_msg_t extra; more; zmq_msg_close(&extra)) {
            zmq_msg_init(&extra);
            more = zmq_msg_recv(&extra, zap, ZMQ_DONTWAIT) >= 0 && zmq_msg_more(&extra);
        }
        const char *status = "400", *text = "malformed request";
        char uid[2 * PROTO_KEY_LEN + 1] = "";
        if (nparts == 7 && zmq_msg_size(&part[0]) == 3 && memcmp(zmq_msg_data(&part[0]), "1.0", 3) == 0 &&
            zmq_msg_size(&part[5]) == 5 && memcmp(zmq_msg_data(&part[5]), "CURVE", 5) == 0 &&
            zmq_msg_size(&part[6]) == PROTO_KEY_LEN) {
            const uint8_t *key = zmq_msg_data(&part[6]);
            if (s_key_allowed(self, key)) {
                proto_hex(key, PROTO_KEY_LEN, uid);
                status = "200";
                text = "OK";
            } else {
                s_key_refused_log(self, key, "a node dialling us");
                text = "key not authorized";
            }
        }
        zmq_send(zap, "1.0", 3, ZMQ_SNDMORE | ZMQ_DONTWAIT);
        if (nparts >= 2)
            zmq_send(zap, zmq_msg_data(&part[1]), zmq_msg_size(&part[1]), ZMQ_SNDMORE | ZMQ_DONTWAIT);
        else
            zmq_send(zap, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT);
        zmq_send(zap, status, 3, ZMQ_SNDMORE | ZMQ_DONTWAIT);
        zmq_send(zap, text, strlen(text), ZMQ_SNDMORE | ZMQ_DONTWAIT);
        zmq_send(zap, uid, strlen(uid), ZMQ_SNDMORE | ZMQ_DONTWAIT);
        zmq_send(zap, "", 0, ZMQ_DONTWAIT);
        for (int i = 0; i < nparts; i++)
            zmq_msg_close(&part[i]);
    }
}

static void s_zap_ready(loop_t *loop, int fd, int revents, void *arg)
{
    (void) loop;
    (void) fd;
    (void) revents;
    s_zap_drain(arg);
}

/* --- receiving ----------------------------------------------------------------------- */

static void s_send_credit(peer_t *p)
{
    if (p->handled_bytes == 0 || !p->up)
        return;
    s_begin(p, P_CREDIT, 0);
    proto_u32(&p->cluster->out, p->handled_seq);
    proto_u32(&p->cluster->out, (uint32_t) (p->handled_bytes > UINT32_MAX ? UINT32_MAX : p->handled_bytes));
    p->handled_bytes = 0;
    s_send(p);
}

/* Credits every message at the front of the ring that is done: taken by
   the server and written to every local socket it was queued for. A
   message is acknowledged only once its receiver could read it, so one
   still queued here when this node dies fails back to its sender. */
static void s_advance(peer_t *p)
{
    while (p->rx_count > 0) {
        received_t *r = &p->rx[p->rx_first];
        if (!r->handed || r->pending > 0)
            break;
        p->handled_seq = r->seq;
        p->handled_bytes += r->bytes;
        p->rx_first = (p->rx_first + 1) % p->rx_cap;
        p->rx_count--;
    }
    if (p->handled_bytes >= p->cluster->cfg.window / 8)
        s_send_credit(p);
}

/* The entry of seq in the ring, or NULL. Seqs rise along the ring, so
   the place is computed, not searched: the entry is seq - first's seq
   slots in, if nothing was skipped (checked). */
static received_t *s_received(peer_t *p, uint32_t epoch, uint32_t seq)
{
    if (epoch != p->epoch || p->rx_count == 0)
        return NULL;
    uint32_t off = seq - p->rx[p->rx_first].seq;
    if (off < p->rx_count) {
        received_t *r = &p->rx[(p->rx_first + off) % p->rx_cap];
        if (r->seq == seq)
            return r;
    }
    /* Control messages between data messages leave gaps in the seqs:
       search, from the end nearer to it. */
    int back = off >= p->rx_count / 2;
    for (size_t i = 0; i < p->rx_count; i++) {
        size_t k = back ? p->rx_count - 1 - i : i;
        received_t *r = &p->rx[(p->rx_first + k) % p->rx_cap];
        if (r->seq == seq)
            return r;
    }
    return NULL;
}

uint32_t peer_epoch(const peer_t *p)
{
    return p->epoch;
}

void cluster_hold(peer_t *p, uint32_t epoch, uint32_t seq)
{
    received_t *r = s_received(p, epoch, seq);
    if (r)
        r->pending++;
}

void cluster_release(peer_t *p, uint32_t epoch, uint32_t seq)
{
    received_t *r = s_received(p, epoch, seq);
    if (r && r->pending > 0) {
        r->pending--;
        s_advance(p);
    }
}

/* Records a data message as received, before it is handed over. */
static int s_note(peer_t *p, uint32_t seq, size_t bytes)
{
    if (p->rx_count == p->rx_cap) {
        size_t cap = p->rx_cap ? p->rx_cap * 2 : 64;
        received_t *rx = malloc(cap * sizeof *rx);
        if (!rx)
            return -ENOMEM;
        for (size_t i = 0; i < p->rx_count; i++)
            rx[i] = p->rx[(p->rx_first + i) % p->rx_cap];
        free(p->rx);
        p->rx = rx;
        p->rx_cap = cap;
        p->rx_first = 0;
    }
    p->rx[(p->rx_first + p->rx_count++) % p->rx_cap] =
        (received_t) { seq, (uint32_t) bytes, 0, 0 };
    return 0;
}

/* Hands one data message to the server (decoded as m, or decoded again
   from msg when m is NULL). Returns 1 if it must wait. */
static int s_deliver(peer_t *p, zmq_msg_t *msg, const proto_msg_t *m)
{
    proto_msg_t again;
    if (!m) {
        if (proto_decode(zmq_msg_data(msg), zmq_msg_size(msg), &again) < 0)
            return 0;       /* checked when it arrived */
        m = &again;
    }
    client_t *blocked = NULL;
    if (server_remote_data(p->cluster->server, p, m, msg, &blocked) == REMOTE_BLOCKED)
        return 1;
    received_t *r = s_received(p, p->epoch, m->seq);
    if (r)
        r->handed = 1;
    s_advance(p);
    return 0;
}

static int s_park(peer_t *p, zmq_msg_t *msg)
{
    /* Credit bounds what a peer may send ahead; one that sends more does
       not honour it. */
    if (p->parked_bytes + zmq_msg_size(msg) > 2 * p->cluster->cfg.window + s_frame_bytes(0))
        return -ENOBUFS;
    parked_t *k = malloc(sizeof *k);
    if (!k)
        return -ENOMEM;
    p->parked_bytes += zmq_msg_size(msg);
    zmq_msg_init(&k->msg);
    zmq_msg_move(&k->msg, msg);
    k->next = NULL;
    if (p->parked_tail)
        p->parked_tail->next = k;
    else
        p->parked = k;
    p->parked_tail = k;
    return 0;
}

void cluster_resume(peer_t *p)
{
    while (p->parked) {
        parked_t *k = p->parked;
        if (s_deliver(p, &k->msg, NULL))
            return;
        p->parked = k->next;
        if (!p->parked)
            p->parked_tail = NULL;
        p->parked_bytes -= zmq_msg_size(&k->msg);
        zmq_msg_close(&k->msg);
        free(k);
    }
}

/* Refuses a HELLO: a FAIL with an empty "to", on the dialler's connection. */
static void s_refuse(cluster_t *self, const void *rid, size_t ridlen, int err, const char *text)
{
    proto_begin(&self->out, P_FAIL, 0, 0);
    proto_u32(&self->out, (uint32_t) err);
    proto_u32(&self->out, 0);
    proto_u8(&self->out, 0);
    proto_str(&self->out, "", 0);
    proto_str(&self->out, "", 0);
    proto_str(&self->out, text, strlen(text));
    s_answer(self, rid, ridlen);
}

static void s_hello_ack(cluster_t *self, const proto_msg_t *m)
{
    proto_begin(&self->out, P_HELLO_ACK, 0, 0);
    proto_str(&self->out, self->id, PROTO_ID_LEN);
    proto_str(&self->out, self->cfg.name, strlen(self->cfg.name));
    proto_u64(&self->out, self->incarnation);
    s_answer(self, m->id, m->idlen);
}

static void s_on_hello(cluster_t *self, const proto_msg_t *m, const char *addr,
                       const uint8_t *key)
{
    if (m->idlen == PROTO_ID_LEN && memcmp(m->id, self->id, PROTO_ID_LEN) == 0) {
        /* Our own HELLO: we dialled ourselves; the HELLO_ACK tells the
           dialler so. Our id with another incarnation is another node. */
        if (m->incarnation == self->incarnation)
            s_hello_ack(self, m);
        else if (loop_now(self->loop) - self->last_twin_log > 60000) {
            zsys_warning("a node at %s says HELLO with our own id %.8s (copied state directory?), "
                         "ignoring", addr, self->id);
            self->last_twin_log = loop_now(self->loop);
        }
        return;
    }
    if (m->clusterlen != strlen(self->cfg.cluster) ||
        memcmp(m->cluster, self->cfg.cluster, m->clusterlen) != 0) {
        /* Another cluster's node: say so, once in a while. */
        int64_t now = loop_now(self->loop);
        if (now - self->last_foreign_log > 60000) {
            zsys_notice("node %.*s at %s belongs to cluster '%.*s', not '%s': ignoring it",
                        (int) m->namelen, m->name, addr, (int) m->clusterlen, m->cluster,
                        self->cfg.cluster);
            self->last_foreign_log = now;
        }
        s_refuse(self, m->id, m->idlen, EACCES, "another cluster");
        /* A peer we knew, restarted into another cluster: gone now. */
        peer_t *known = s_by_id(self, m->id, m->idlen);
        if (known && known->up)
            s_lost(known, "it moved to another cluster");
        return;
    }
    peer_t *p = s_by_id(self, m->id, m->idlen);
    /* A HELLO from a peer that is up: it has started over with us (its
       DEALER is new), so must we. HELLOs are only repeated until answered. */
    if (p && (p->up || (p->got_hello && p->incarnation != m->incarnation)))
        s_lost(p, p->incarnation != m->incarnation ? "it restarted" : "it reconnected");
    char endpoint[ENDPOINT_MAX];
    snprintf(endpoint, sizeof endpoint, strchr(addr, ':') ? "tcp://[%s]:%u" : "tcp://%s:%u",
             addr, (unsigned) m->port);
    if (!p) {
        /* A static peer still asking for its key may be this peer: its
           connection has just told it, authenticated. */
        p = s_by_endpoint(self, endpoint);
        if (p && p->has_key)
            p = NULL;
        if (p && (s_key_learned(p, key) < 0 || !p->has_key))
            return;     /* ourselves, or a key known-peers refuses */
        if (!p && !(p = s_peer_new(self, endpoint, 0, key)))
            return;
    }
    memcpy(p->name, m->name, m->namelen);
    p->name[m->namelen] = 0;
    p->got_hello = 1;
    p->incarnation = m->incarnation;
    p->heartbeat = m->heartbeat > 60000 ? 60000 : m->heartbeat;
    p->rx_seq = m->seq;
    p->last_seen = loop_now(self->loop);
    s_hello_ack(self, m);
    s_check_up(p);
}

/* A data message: bytes[len], inside msg, or (msg NULL) an item of a
   BATCH, copied into a message of its own only if it must wait. */
static void s_on_data(peer_t *p, const proto_msg_t *m, zmq_msg_t *msg, const void *bytes,
                      size_t len)
{
    /* A peer speaks for its own clients only: the address ends in
       "@<its name>" (the codec checked the rest of its syntax). */
    size_t nlen = strlen(p->name);
    if (m->fromlen < nlen + 1 || m->from[m->fromlen - nlen - 1] != '@' ||
        memcmp(m->from + m->fromlen - nlen, p->name, nlen) != 0) {
        s_lost(p, "it sent a message from another node's client");
        return;
    }
    if (s_note(p, m->seq, len) < 0) {
        s_lost(p, "out of memory holding its messages");
        return;
    }
    if (!p->parked && !s_deliver(p, msg, m))
        return;
    zmq_msg_t copy;
    if (!msg) {
        if (zmq_msg_init_size(&copy, len) < 0) {
            s_lost(p, "out of memory holding its messages");
            return;
        }
        memcpy(zmq_msg_data(&copy), bytes, len);
        msg = &copy;
    }
    if (s_park(p, msg) < 0) {
        if (msg == &copy)
            zmq_msg_close(&copy);
        s_lost(p, "it does not honour flow control, or out of memory");
    }
}

static void s_on_list(peer_t *p, const proto_msg_t *m)
{
    cluster_t *self = p->cluster;
    const uint8_t *at = m->list;
    for (unsigned i = 0; i < m->count; i++) {
        const char *s;
        size_t len;
        proto_list_next(&at, &s, &len);
        if (m->type == P_PEERS) {
            const char *name, *endpoint, *key;
            size_t namelen, eplen, keylen;
            proto_list_next(&at, &name, &namelen);
            proto_list_next(&at, &endpoint, &eplen);
            proto_list_next(&at, &key, &keylen);   /* its id's: checked */
            char ep[ENDPOINT_MAX];
            if (eplen >= sizeof ep || memcmp(s, self->id, PROTO_ID_LEN) == 0 ||
                s_by_id(self, s, len))
                continue;
            memcpy(ep, endpoint, eplen);
            ep[eplen] = 0;
            if (!s_by_endpoint(self, ep) && !s_is_self_endpoint(self, ep)) {
                zsys_info("peer %.*s heard of %.*s at %s; connecting", (int) strlen(p->name),
                          p->name, (int) namelen, name, ep);
                s_peer_new(self, ep, 0, (const uint8_t *) key);
            }
            continue;
        }
        int add = m->type == P_NAMES_ADD || m->type == P_SUBS_ADD;
        dict_t *d = m->type == P_NAMES_ADD || m->type == P_NAMES_DEL ? p->names : p->subs;
        int had = dict_get(d, s, len) != NULL;
        if (add == had)
            continue;
        if (add && dict_put(d, s, len, (void *) 1) < 0)
            continue;
        if (!add)
            dict_del(d, s, len);
        if (d == p->names)
            server_remote_name(self->server, p, s, len, add);
        else
            server_remote_sub(self->server, p, s, len, add);
    }
}

static void s_on_credit(peer_t *p, const proto_msg_t *m)
{
    /* Acknowledged: every frame up to m->ack. */
    while (p->fl_count > 0) {
        flight_t *f = &p->flights[p->fl_first];
        if ((int32_t) (m->ack - f->seq) < 0)
            break;
        p->fl_first = (p->fl_first + 1) % p->fl_cap;
        p->fl_count--;
    }
    p->credit += m->credit;
    if (p->credit > (int64_t) p->cluster->cfg.window)
        p->credit = (int64_t) p->cluster->cfg.window;
    if (p->nwaiters > 0 && p->credit > 0)
        s_resume_waiters(p);
}

/* Takes seq if it follows the last one from p; otherwise p is lost (a
   gap: something was dropped) and 0 is returned. */
static int s_in_order(peer_t *p, uint32_t seq)
{
    if (seq != p->rx_seq + 1) {
        char why[64];
        snprintf(why, sizeof why, "sequence gap (%u after %u)", seq, p->rx_seq);
        s_lost(p, why);
        return 0;
    }
    p->rx_seq = seq;
    return 1;
}

/* A BATCH: each item is a data message of its own, in seq order. */
static void s_on_batch(peer_t *p, const proto_msg_t *batch)
{
    const uint8_t *at = batch->list;
    p->last_seen = loop_now(p->cluster->loop);
    for (unsigned i = 0; i < batch->count; i++) {
        const uint8_t *item;
        size_t len;
        proto_batch_next(&at, &item, &len);
        proto_msg_t m;
        if (proto_decode(item, len, &m) < 0 ||
            (m.type != P_MSG && m.type != P_REPLY && m.type != P_PUB)) {
            s_lost(p, "it sent a malformed message");
            return;
        }
        if (!s_in_order(p, m.seq))
            return;
        uint32_t epoch = p->epoch;
        s_on_data(p, &m, NULL, item, len);
        if (p->epoch != epoch)
            return;     /* lost on the way: the rest is void */
    }
}

/* One message on the ROUTER: [routing id][body]. */
/* Is this message from the node whose id its routing id is? Its
   connection's User-Id is the key it authenticated with (s_zap_drain). */
static int s_from_owner(cluster_t *self, zmq_msg_t *rid, zmq_msg_t *body)
{
    const char *uid = zmq_msg_gets(body, "User-Id");
    if (uid && zmq_msg_size(rid) == PROTO_ID_LEN &&
        memcmp(uid, zmq_msg_data(rid), PROTO_ID_LEN) == 0)
        return 1;
    int64_t now = loop_now(self->loop);
    if (now - self->last_spoof_log > 10000) {
        const char *addr = zmq_msg_gets(body, "Peer-Address");
        zsys_warning("a node at %s with key %.16s... speaks as %.*s, not its own id: ignoring it",
                     addr ? addr : "?", uid ? uid : "?",
                     (int) (zmq_msg_size(rid) > 64 ? 64 : zmq_msg_size(rid)),
                     (const char *) zmq_msg_data(rid));
        self->last_spoof_log = now;
    }
    return 0;
}

static void s_router_message(cluster_t *self, zmq_msg_t *rid, zmq_msg_t *body)
{
    if (!s_from_owner(self, rid, body))
        return;
    proto_msg_t m;
    int rc = proto_decode(zmq_msg_data(body), zmq_msg_size(body), &m);
    /* The sender of the last message most likely sent this one too. */
    peer_t *p = self->last_peer;
    if (!p || zmq_msg_size(rid) != PROTO_ID_LEN || memcmp(p->id, zmq_msg_data(rid), PROTO_ID_LEN) != 0)
        p = self->last_peer = s_by_id(self, zmq_msg_data(rid), zmq_msg_size(rid));
    const char *addr = "?";
    /* m is filled only when decoding succeeded (or for -EPROTO, its head). */
    if (rc == -EPROTO || (rc == 0 && m.type == P_HELLO) || (rc < 0 && !p)) {
        addr = zmq_msg_gets(body, "Peer-Address");
        if (!addr)
            addr = "?";
        else if (strncmp(addr, "::ffff:", 7) == 0 && strchr(addr + 7, '.'))
            addr += 7;      /* IPv4 on a dual-stack socket: dialled as IPv4 */
    }
    if (rc == -EPROTO) {
        zsys_error("node at %s speaks protocol version %u, we speak %u: refusing it",
                   addr, m.version, PROTO_VERSION);
        s_refuse(self, zmq_msg_data(rid), zmq_msg_size(rid), EPROTO,
                 "protocol version not supported");
        return;
    }
    if (rc < 0) {
        zsys_warning("malformed message from %s (%s)%s", p ? p->name : "an unknown node", addr,
                     p ? "; dropping the peer" : ", ignoring");
        if (p)
            s_lost(p, "it sent a malformed message");
        return;
    }
    if (m.type == P_HELLO) {
        if (m.idlen != zmq_msg_size(rid) || memcmp(m.id, zmq_msg_data(rid), m.idlen) != 0) {
            zsys_warning("HELLO from %s claims an id its connection does not carry, ignoring", addr);
            return;
        }
        uint8_t key[PROTO_KEY_LEN];
        if (proto_unhex(zmq_msg_gets(body, "User-Id"), PROTO_KEY_LEN, key) == 0)
            s_on_hello(self, &m, addr, key);
        return;
    }
    if (!p || !p->got_hello)
        return;         /* from before its HELLO: stale */
    if (p->up && loop_now(self->loop) - p->last_seen > s_timeout(p)) {
        /* Silent past its timeout, yet talking: we were stalled (stopped,
           swapped out) and it has surely given us up and failed back what
           we had not acknowledged. What it sent before that is void. */
        s_lost(p, "silent past its timeout (were we stalled?)");
        return;
    }
    if (m.type == P_BATCH) {
        s_on_batch(p, &m);
        return;
    }
    if (!s_in_order(p, m.seq))
        return;
    p->last_seen = loop_now(self->loop);
    switch (m.type) {
    case P_MSG:
    case P_REPLY:
    case P_PUB:
        s_on_data(p, &m, body, zmq_msg_data(body), zmq_msg_size(body));
        break;
    case P_NAMES_ADD:
    case P_NAMES_DEL:
    case P_SUBS_ADD:
    case P_SUBS_DEL:
    case P_PEERS:
        s_on_list(p, &m);
        break;
    case P_ACK:
        server_remote_ack(self->server, p, &m);
        break;
    case P_FAIL:
        server_remote_fail(self->server, p, &m);
        break;
    case P_PING:
        proto_begin(&self->out, P_PONG, 0, 0);
        proto_u64(&self->out, m.stamp);
        s_answer(self, zmq_msg_data(rid), zmq_msg_size(rid));
        break;
    case P_BYE:
        /* A static peer is dialled until it returns; one found otherwise
           finds us again through its own seeds or its mDNS record. */
        if (p->is_static)
            s_lost(p, "it said goodbye");
        else
            s_forget(p, "it said goodbye");
        break;
    case P_CREDIT:
        s_on_credit(p, &m);
        break;
    default:
        break;          /* HELLO_ACK, PONG belong on a DEALER */
    }
}

/* Reads what the ROUTER has, a bounded batch. Returns 1 if more is left. */
static int s_router_drain(cluster_t *self)
{
    void *router = zsock_resolve(self->router);
    /* Until EAGAIN, which also takes in ZeroMQ's pending commands: asking
       ZMQ_EVENTS first would cost a poll() and a getpid() per message. */
    self->router_touched = 0;
    for (int i = 0; i < 1024; i++) {
        zmq_msg_t rid, body;
        zmq_msg_init(&rid);
        zmq_msg_init(&body);
        if (zmq_msg_recv(&rid, router, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&rid);
            zmq_msg_close(&body);
            return 0;
        }
        int more = zmq_msg_more(&rid);
        if (more && zmq_msg_recv(&body, router, ZMQ_DONTWAIT) >= 0 && !zmq_msg_more(&body))
            s_router_message(self, &rid, &body);
        else {
            /* Not [id][one frame]: skip the rest of it. */
            while (zmq_msg_more(&body) && zmq_msg_recv(&body, router, ZMQ_DONTWAIT) >= 0)
                ;
        }
        zmq_msg_close(&rid);
        zmq_msg_close(&body);
    }
    self->router_touched = 1;   /* more to read: on the next turn */
    return 1;
}

static void s_router_ready(loop_t *loop, int fd, int revents, void *arg)
{
    (void) loop;
    (void) fd;
    (void) revents;
    s_router_drain(arg);
}

/* What comes back on a DEALER: HELLO_ACK, PONG, FAIL. */
static void s_dealer_message(peer_t *p, const uint8_t *data, size_t size)
{
    cluster_t *self = p->cluster;
    proto_msg_t m;
    int rc = proto_decode(data, size, &m);
    if (rc < 0) {
        zsys_warning("malformed answer from %s, ignoring", p->endpoint);
        return;
    }
    if (m.type == P_FAIL && (m.error == EPROTO || m.error == EACCES)) {
        /* Refused: a static peer is asked again (it may be reconfigured),
           once a second, said once a minute; one found otherwise is
           forgotten. */
        int64_t now = loop_now(self->loop);
        if (!p->is_static || now - p->last_refused_log > 60000) {
            zsys_notice("node at %s refused us: %.*s", p->endpoint, (int) m.textlen, m.text);
            p->last_refused_log = now;
        }
        if (!p->is_static)
            s_forget(p, "it refused us");
        return;
    }
    if (m.type == P_PONG) {
        /* A sign of life, unless it comes after we were stalled past the
           peer's timeout: it has given us up (see s_router_message). */
        if (p->up && loop_now(self->loop) - p->last_seen > s_timeout(p)) {
            s_lost(p, "silent past its timeout (were we stalled?)");
            return;
        }
        p->rtt_us = s_now_us() - (int64_t) m.stamp;
        p->last_seen = loop_now(self->loop);
        return;
    }
    if (m.type != P_HELLO_ACK)
        return;
    if (!p->has_key || memcmp(m.id, p->id, PROTO_ID_LEN) != 0) {
        /* It holds the key we dialled (CURVE proved it): its id is that
           key's, whatever it says. */
        zsys_warning("node at %s answers with id %.8s, not its key's %.8s: ignoring it",
                     p->endpoint, m.id, p->id);
        return;
    }
    if (memcmp(m.id, self->id, PROTO_ID_LEN) == 0) {
        /* We dialled ourselves (a seed list or gossip naming us). */
        if (self->nself < 4)
            snprintf(self->self_endpoints[self->nself++], ENDPOINT_MAX, "%s", p->endpoint);
        s_peer_free(p);
        return;
    }
    peer_t *other = s_by_id(self, m.id, m.idlen);
    if (other && other != p) {
        /* The same peer reached two ways: keep one DEALER. */
        other->is_static |= p->is_static;
        if (other->dealer && other->got_ack) {
            s_peer_free(p);
            return;
        }
        s_dealer_close(other);
        other->dealer = p->dealer;
        other->dealer_fd = p->dealer_fd;
        other->tx_seq = p->tx_seq;
        snprintf(other->endpoint, sizeof other->endpoint, "%s", p->endpoint);
        loop_fd_del(self->loop, p->dealer_fd);
        loop_fd_add(self->loop, other->dealer_fd, LOOP_IN, s_dealer_ready, other);
        p->dealer = NULL;
        s_peer_free(p);
        p = other;
    } else if (!p->id[0]) {
        memcpy(p->id, m.id, PROTO_ID_LEN);
        p->id[PROTO_ID_LEN] = 0;
    }
    memcpy(p->name, m.name, m.namelen);
    p->name[m.namelen] = 0;
    p->got_ack = 1;
    s_check_up(p);
}

/* Reads a DEALER. Returns 1 if more is left. */
static int s_dealer_drain(peer_t *p)
{
    p->touched = 0;
    for (int i = 0; i < 256; i++) {
        if (!p->dealer)
            return 0;
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, zsock_resolve(p->dealer), ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&msg);
            return 0;
        }
        /* The peer may be freed by what it says (a self dial, a merge). */
        cluster_t *self = p->cluster;
        size_t before = self->npeers;
        s_dealer_message(p, zmq_msg_data(&msg), zmq_msg_size(&msg));
        zmq_msg_close(&msg);
        if (self->npeers != before)
            return 1;
    }
    p->touched = 1;
    return 1;
}

static void s_dealer_ready(loop_t *loop, int fd, int revents, void *arg)
{
    (void) loop;
    (void) fd;
    (void) revents;
    s_dealer_drain(arg);
}

int cluster_idle(cluster_t *self)
{
    /* A socket we sent on may hold input its descriptor will not signal:
       the send consumed the edge. Read those before sleeping. */
    int more = self->router_touched && s_router_drain(self);
    for (size_t i = 0; i < self->npeers; i++)
        s_flush_batch(self->peers[i]);
    for (size_t i = 0; i < self->npeers; i++) {
        peer_t *p = self->peers[i];
        if (p->touched && s_dealer_drain(p))
            return 1;
        if ((p->congested || p->hello_pending) && zsock_events(p->dealer) & ZMQ_POLLOUT) {
            if (p->hello_pending)
                s_send_hello(p);
            p->congested = 0;
            s_resume_waiters(p);
        }
    }
    return more;
}

static void s_tick(loop_t *loop, void *arg)
{
    cluster_t *self = arg;
    int64_t now = loop_now(loop);
    for (size_t i = 0; i < self->npeers; i++) {
        peer_t *p = self->peers[i];
        if (p->suspect_since && now - p->suspect_since >= SUSPECT_MS) {
            int silent = p->last_seen < p->suspect_since;
            p->suspect_since = 0;
            if (silent) {
                s_forget(p, "its mDNS record went away and it does not answer");
                i--;
                continue;
            }
        }
        if (!p->has_key) {
            /* A static peer we still ask for its key. */
            int64_t every = p->ktries < 10 ? KEY_ASK_MS : 2 * KEY_ASK_MS;
            if (now - p->kasked >= every) {
                if (p->kfd < 0)
                    s_key_ask_start(p);
                else
                    s_key_ask(p);
            }
            continue;
        }
        if (!p->got_ack && p->dealer && p->kfd < 0 && now - p->dialled > REDIAL_MS) {
            /* No handshake: ZeroMQ does not dial again after a refusal
               (our key not authorized there, which may change), and a key
               learned on first use may be stale. Dialled anew, after
               asking for the key again if it was learned so. */
            if (now - p->last_redial_log > 60000) {
                char key[41];
                zmq_z85_encode(key, p->key, PROTO_KEY_LEN);
                zsys_notice("no handshake with %s yet: it is down, or its key is not %s, "
                            "or ours is not authorized there; dialling again", p->endpoint, key);
                p->last_redial_log = now;
            }
            s_dealer_close(p);
            if (s_dealer_open(p) < 0) {
                s_forget(p, "cannot connect");
                i--;
                continue;
            }
            if (p->key_tofu)
                s_key_ask_start(p);
        } else if (p->kfd >= 0 && p->has_key && now - p->kasked >= 2 * KEY_ASK_MS) {
            if (p->ktries < 10)
                s_key_ask(p);
            else
                s_key_ask_stop(p);
        }
        int64_t timeout = s_timeout(p);
        if (p->up && now - p->last_seen > timeout) {
            char why[64];
            snprintf(why, sizeof why, "silent for %lld ms", (long long) (now - p->last_seen));
            s_lost(p, why);
            continue;
        }
        if (p->up && now - p->last_ping >= (int64_t) self->cfg.heartbeat) {
            s_begin(p, P_PING, 0);
            proto_u64(&self->out, (uint64_t) s_now_us());
            s_send(p);
            p->last_ping = now;
        }
        if (p->up)
            s_send_credit(p);
        else if (!p->got_ack && now - p->last_hello >= HELLO_EVERY_MS)
            s_send_hello(p);
    }
    self->tick = loop_timer_add(loop, TICK_MS, s_tick, self);
}

/* --- what the server asks ------------------------------------------------------------ */

const char *cluster_id(const cluster_t *self)
{
    return self->id;
}

int cluster_port(const cluster_t *self)
{
    return self->port;
}

static void s_tell_all(cluster_t *self, uint8_t type, const char *s, size_t len)
{
    for (size_t i = 0; i < self->npeers; i++) {
        peer_t *p = self->peers[i];
        if (!p->up)
            continue;
        s_begin(p, type, 0);
        proto_u16(&self->out, 1);
        proto_str(&self->out, s, len);
        s_send(p);
    }
}

void cluster_local_name(cluster_t *self, const char *name, size_t len, int up)
{
    s_tell_all(self, up ? P_NAMES_ADD : P_NAMES_DEL, name, len);
}

void cluster_local_sub(cluster_t *self, const char *pattern, size_t len, int up)
{
    s_tell_all(self, up ? P_SUBS_ADD : P_SUBS_DEL, pattern, len);
}

peer_t *cluster_find_node(cluster_t *self, const char *name, size_t len)
{
    for (size_t i = 0; i < self->npeers; i++) {
        peer_t *p = self->peers[i];
        if (p->up && strlen(p->name) == len && memcmp(p->name, name, len) == 0)
            return p;
    }
    return NULL;
}

/* Bytes a data frame of size payload takes on the wire, at most. */
static size_t s_frame_bytes(size_t size)
{
    return PROTO_HEAD + 16 + 2 * 256 + size;
}

int cluster_room(const peer_t *p, size_t size)
{
    if (!p->up)
        return 1;       /* the send fails at once: nothing to wait for */
    if (p->congested)
        return 0;
    return p->credit >= (int64_t) s_frame_bytes(size) || p->fl_count == 0;
}

void cluster_settled(peer_t *p, uint64_t origin, uint32_t cseq)
{
    /* Newest first: an answer most often follows its message closely. */
    for (size_t i = p->fl_count; i-- > 0;) {
        flight_t *f = &p->flights[(p->fl_first + i) % p->fl_cap];
        if (f->origin == origin && f->cseq == cseq) {
            f->origin = 0;
            return;
        }
    }
}

int cluster_wait(peer_t *p, client_t *c)
{
    if (p->nwaiters == p->capwaiters) {
        size_t cap = p->capwaiters ? p->capwaiters * 2 : 8;
        client_t **w = realloc(p->waiters, cap * sizeof *w);
        if (!w)
            return -ENOMEM;
        p->waiters = w;
        p->capwaiters = cap;
    }
    p->waiters[p->nwaiters++] = c;
    return 0;
}

void cluster_unwait(peer_t *p, client_t *c)
{
    for (size_t i = 0; i < p->nwaiters; i++)
        if (p->waiters[i] == c) {
            p->waiters[i] = p->waiters[--p->nwaiters];
            return;
        }
}

/* Sends the peer's batch: one message alone as itself, several as a
   BATCH. Returns 0, or -EHOSTUNREACH when the link broke (the peer is then
   lost and its unacknowledged messages failed back). */
static int s_flush_batch(peer_t *p)
{
    if (!p->batched)
        return 0;
    const uint8_t *data = p->batch.data;
    size_t len = p->batch.len;
    if (p->batched == 1) {
        data += PROTO_HEAD + 2 + 4;     /* the item itself */
        len -= PROTO_HEAD + 2 + 4;
    } else {
        p->batch.data[PROTO_HEAD] = (uint8_t) (p->batched >> 8);
        p->batch.data[PROTO_HEAD + 1] = (uint8_t) p->batched;
    }
    p->batched = 0;
    p->touched = 1;
    if (!p->dealer || zmq_send(zsock_resolve(p->dealer), data, len, ZMQ_DONTWAIT) < 0) {
        s_lost(p, "its connection is stuck");
        return -EHOSTUNREACH;
    }
    return 0;
}

/* Sends the data frame whose head is in self->out, followed by its
   payload, and remembers it until acknowledged. The frame is built in the
   ZeroMQ message itself: the payload is copied once. */
static int s_send_data(peer_t *p, uint64_t origin, uint32_t cseq, uint8_t what,
                       const void *data, size_t size)
{
    cluster_t *self = p->cluster;
    if (self->out.failed) {
        p->tx_seq--;
        return -ENOMEM;
    }
    if (p->fl_count == p->fl_cap) {
        size_t cap = p->fl_cap ? p->fl_cap * 2 : 64;
        flight_t *f = malloc(cap * sizeof *f);
        if (!f) {
            p->tx_seq--;        /* not sent: no gap */
            return -ENOMEM;
        }
        for (size_t i = 0; i < p->fl_count; i++)
            f[i] = p->flights[(p->fl_first + i) % p->fl_cap];
        free(p->flights);
        p->flights = f;
        p->fl_cap = cap;
        p->fl_first = 0;
    }
    size_t len = self->out.len + size;
    if (len <= BATCH_ITEM_MAX) {
        /* Small: into the peer's batch, which leaves as one ZeroMQ frame
           before the loop sleeps (or before anything else to this peer). */
        if (p->batched && p->batch.len + 4 + len > PROTO_BATCH_MAX + PROTO_HEAD + 2 &&
            s_flush_batch(p) < 0)
            return -EHOSTUNREACH;
        if (!p->batched) {
            proto_begin(&p->batch, P_BATCH, 0, 0);
            proto_u16(&p->batch, 0);
        }
        proto_u32(&p->batch, (uint32_t) len);
        proto_bytes(&p->batch, self->out.data, self->out.len);
        proto_bytes(&p->batch, data, size);
        if (p->batch.failed) {
            s_lost(p, "out of memory batching");
            return -EHOSTUNREACH;
        }
        p->batched++;
        p->credit -= (int64_t) len;
        p->flights[(p->fl_first + p->fl_count++) % p->fl_cap] =
            (flight_t) { p->tx_seq, (uint32_t) len, origin, cseq, what };
        return 0;
    }
    if (p->batched && s_flush_batch(p) < 0)
        return -EHOSTUNREACH;
    zmq_msg_t msg;
    if (zmq_msg_init_size(&msg, len) < 0) {
        p->tx_seq--;
        return -ENOMEM;
    }
    memcpy(zmq_msg_data(&msg), self->out.data, self->out.len);
    if (size)
        memcpy((uint8_t *) zmq_msg_data(&msg) + self->out.len, data, size);
    p->touched = 1;
    if (zmq_msg_send(&msg, zsock_resolve(p->dealer), ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&msg);
        /* At the high-water mark with credit left, or disconnected: the
           link is stuck and the frame's seq is spent. Start over rather
           than leave a gap. */
        s_lost(p, "its connection is stuck");
        return -EHOSTUNREACH;
    }
    p->credit -= (int64_t) len;
    p->flights[(p->fl_first + p->fl_count++) % p->fl_cap] =
        (flight_t) { p->tx_seq, (uint32_t) len, origin, cseq, what };
    return 0;
}

int cluster_msg(peer_t *p, uint8_t kind, uint8_t flags, uint32_t cseq, uint32_t timeout,
                const char *from, size_t fromlen, const char *to, size_t tolen,
                const void *data, size_t size, uint64_t origin)
{
    if (!p->up)
        return -EHOSTUNREACH;
    proto_buf_t *b = &p->cluster->out;
    s_begin(p, P_MSG, flags);
    proto_u8(b, kind);
    proto_u32(b, cseq);
    proto_u32(b, timeout);
    proto_str(b, from, fromlen);
    proto_str(b, to, tolen);
    return s_send_data(p, origin, cseq, kind == P_KIND_REQUEST ? WIRE_REQUEST : WIRE_SEND,
                       data, size);
}

int cluster_reply(peer_t *p, uint32_t rid, const char *to, size_t tolen,
                  const char *from, size_t fromlen, const void *data, size_t size,
                  uint64_t origin)
{
    if (!p->up)
        return -EHOSTUNREACH;
    proto_buf_t *b = &p->cluster->out;
    s_begin(p, P_REPLY, 0);
    proto_u32(b, rid);
    proto_str(b, to, tolen);
    proto_str(b, from, fromlen);
    return s_send_data(p, origin, 0, WIRE_REPLY, data, size);
}

/* Does one of peer's patterns match topic? */
typedef struct {
    const char *topic;
    size_t len;
    int hit;
} match_t;

static void s_match(const void *key, size_t len, void *value, void *arg)
{
    (void) value;
    match_t *m = arg;
    if (!m->hit && wire_match(key, len, m->topic, m->len))
        m->hit = 1;
}

static int s_wants(const peer_t *p, const char *topic, size_t len)
{
    match_t m = { topic, len, 0 };
    if (p->up)
        dict_each(p->subs, s_match, &m);
    return m.hit;
}

int cluster_pub_room(cluster_t *self, const char *topic, size_t len, size_t size,
                     peer_t **ret_blocked)
{
    for (size_t i = 0; i < self->npeers; i++) {
        peer_t *p = self->peers[i];
        if (s_wants(p, topic, len) && !cluster_room(p, size)) {
            *ret_blocked = p;
            return 0;
        }
    }
    return 1;
}

void cluster_pub(cluster_t *self, const char *topic, size_t len, const char *from,
                 size_t fromlen, const void *data, size_t size, uint64_t origin,
                 uint32_t cseq)
{
    for (size_t i = 0; i < self->npeers; i++) {
        peer_t *p = self->peers[i];
        if (!s_wants(p, topic, len))
            continue;
        s_begin(p, P_PUB, 0);
        proto_u32(&self->out, cseq);
        proto_str(&self->out, topic, len);
        proto_str(&self->out, from, fromlen);
        int rc = s_send_data(p, origin, cseq, WIRE_PUBLISH, data, size);
        if (rc < 0)     /* not sent, so not in flight: say so here */
            server_fail_origin(self->server, origin, cseq, WIRE_PUBLISH, -rc);
    }
}

void cluster_ack(peer_t *p, uint32_t cseq, const char *to, size_t tolen)
{
    if (!p->up)
        return;
    s_begin(p, P_ACK, 0);
    proto_u32(&p->cluster->out, cseq);
    proto_str(&p->cluster->out, to, tolen);
    s_send(p);
}

void cluster_fail(peer_t *p, int err, uint32_t cseq, uint8_t what, const char *to,
                  size_t tolen, const char *name, size_t namelen, const char *text)
{
    if (!p->up)
        return;
    proto_buf_t *b = &p->cluster->out;
    s_begin(p, P_FAIL, 0);
    proto_u32(b, (uint32_t) err);
    proto_u32(b, cseq);
    proto_u8(b, what);
    proto_str(b, to, tolen);
    proto_str(b, name, namelen);
    proto_str(b, text, strlen(text));
    s_send(p);
}

void cluster_list(cluster_t *self, void (*line) (void *arg, const char *fmt, ...), void *arg)
{
    int64_t now = loop_now(self->loop);
    int v6 = strchr(self->cfg.bind, ':') && self->cfg.bind[0] != '[';
    line(arg, v6 ? "%s\t%s\ttcp://[%s]:%d\tself\tup\t0\t0\t%s\n"
                 : "%s\t%s\ttcp://%s:%d\tself\tup\t0\t0\t%s\n", self->cfg.name, self->id,
         self->cfg.bind, self->port, zcert_public_txt(self->cert));
    for (size_t i = 0; i < self->npeers; i++) {
        peer_t *p = self->peers[i];
        char key[41] = "-";
        if (p->has_key)
            zmq_z85_encode(key, p->key, PROTO_KEY_LEN);
        line(arg, "%s\t%s\t%s\t%s\t%s\t%lld\t%lld\t%s\n", p->name, p->id[0] ? p->id : "-",
             p->endpoint, p->is_static ? "static" : p->by_mdns ? "mdns" : "gossip",
             p->up ? "up" : p->has_key ? "connecting" : "asking-key",
             (long long) (p->up ? p->rtt_us : 0), (long long) (now - p->last_seen), key);
    }
}

/* mDNS found a node, or its record went away. */
static void s_mdns(void *arg, const char *id, const char *name, const char *endpoint,
                   const unsigned char *key, int up)
{
    cluster_t *self = arg;
    peer_t *p = s_by_id(self, id, strlen(id));
    if (!up) {
        /* Gone from mDNS: dead (its daemon withdrew it) or only its
           avahi-daemon restarted. A ping decides, quickly. */
        if (p && p->up && !p->suspect_since) {
            p->suspect_since = loop_now(self->loop);
            s_begin(p, P_PING, 0);
            proto_u64(&self->out, (uint64_t) s_now_us());
            s_send(p);
        } else if (p && !p->up && p->by_mdns && !p->is_static)
            s_forget(p, "its mDNS record went away");
        return;
    }
    if (p) {
        p->by_mdns = 1;
        return;
    }
    if (s_is_self_endpoint(self, endpoint))
        return;
    p = s_by_endpoint(self, endpoint);
    if (p && p->id[0])
        return;
    if (p && !p->has_key) {
        /* A static peer still asking for its key: the record has it. */
        if (s_key_learned(p, key) == 0)
            p->by_mdns = 1;
        return;
    }
    zsys_info("mDNS: found %s (%.8s) at %s; connecting", name, id, endpoint);
    if (!p && !(p = s_peer_new(self, endpoint, 0, key)))
        return;
    /* Its id is its key's; the handshake proves it holds that key. */
    p->by_mdns = 1;
}

/* --- life ---------------------------------------------------------------------------- */

int cluster_parse_peer(const char *spec, char *endpoint, size_t size, uint8_t *key,
                       int *has_key)
{
    const char *hash = strchr(spec, '#');
    size_t eplen = hash ? (size_t) (hash - spec) : strlen(spec);
    char host[ENDPOINT_MAX], port[16];
    if (eplen >= size || eplen >= ENDPOINT_MAX)
        return -EINVAL;
    memcpy(endpoint, spec, eplen);
    endpoint[eplen] = 0;
    char *end;
    if (s_split(endpoint, host, sizeof host, port, sizeof port) < 0 ||
        strtoul(port, &end, 10) - 1 >= 65535 || *end || port[0] < '0' || port[0] > '9')
        return -EINVAL;
    *has_key = hash != NULL;
    if (!hash)
        return 0;
    const char *k = hash + 1;
    size_t klen = strlen(k);
    if (klen == 40)
        return zmq_z85_decode(key, k) ? 0 : -EINVAL;
    return klen == 2 * PROTO_KEY_LEN ? proto_unhex(k, PROTO_KEY_LEN, key) : -EINVAL;
}

cluster_t *cluster_new(loop_t *loop, server_t *server, const node_config_t *config)
{
    cluster_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->loop = loop;
    self->server = server;
    self->cfg = *config;
    self->router_fd = -1;
    self->last_foreign_log = self->last_twin_log = INT64_MIN / 2;
    if (getrandom(&self->incarnation, sizeof self->incarnation, 0) != sizeof self->incarnation)
        self->incarnation = (uint64_t) s_now_us();
    self->udp_fd = self->zap_fd = -1;
    self->last_spoof_log = self->last_unauth_log = INT64_MIN / 2;
    if (!(self->cert = s_cert_load(self->cfg.state_dir))) {
        free(self);
        return NULL;
    }
    memcpy(self->key, zcert_public_key(self->cert), PROTO_KEY_LEN);
    proto_key_id(self->key, self->id);
    if (self->cfg.authorized_keys[0]) {
        struct stat st;
        if (stat(self->cfg.authorized_keys, &st) < 0 || !S_ISDIR(st.st_mode)) {
            zsys_error("--authorized-keys %s: not a directory", self->cfg.authorized_keys);
            cluster_destroy(&self);
            return NULL;
        }
        self->authorized = zcertstore_new(self->cfg.authorized_keys);
        if (!self->authorized) {
            zsys_error("cannot read %s", self->cfg.authorized_keys);
            cluster_destroy(&self);
            return NULL;
        }
    }
    /* The ZAP handler first: ZeroMQ asks it about every connection to
       the ROUTER, as soon as the ROUTER listens. */
    self->zap = zsock_new(ZMQ_REP);
    if (!self->zap || zsock_bind(self->zap, ZAP_ENDPOINT) < 0) {
        zsys_error("cannot start the ZAP handler: %s", zmq_strerror(zmq_errno()));
        cluster_destroy(&self);
        return NULL;
    }
    self->zap_fd = zsock_fd(self->zap);
    loop_fd_add(loop, self->zap_fd, LOOP_IN, s_zap_ready, self);
    self->router = zsock_new(ZMQ_ROUTER);
    if (!self->router) {
        zsys_error("cannot create a ZeroMQ socket: %s", zmq_strerror(zmq_errno()));
        cluster_destroy(&self);
        return NULL;
    }
    zsock_set_router_handover(self->router, 1);
    zsock_set_router_mandatory(self->router, 1);
    zsock_set_linger(self->router, 0);
    zsock_set_rcvhwm(self->router, 0);
    /* Bytes from the network are untrusted: ZeroMQ refuses (and
       disconnects) a frame claiming more than the largest message we take,
       before allocating it. */
    zsock_set_maxmsgsize(self->router,
                         (int64_t) (s_frame_bytes(self->cfg.max_message) + CURVE_OVERHEAD));
    zsock_set_sndhwm(self->router, DEALER_HWM);
    zsock_set_zap_domain(self->router, "ipcnet");
    zsock_set_curve_server(self->router, 1);
    zcert_apply(self->cert, self->router);
    char port[16];
    if (self->cfg.port)
        snprintf(port, sizeof port, "%u", self->cfg.port);
    else
        strcpy(port, "*");
    /* IPv6 too: "*" is then every address of both families (ZeroMQ falls
       back to IPv4 where the kernel has no IPv6); an IPv6 address is
       written in brackets. */
    zsock_set_ipv6(self->router, 1);
    int v6 = strchr(self->cfg.bind, ':') && self->cfg.bind[0] != '[';
    self->port = zsock_bind(self->router, v6 ? "tcp://[%s]:%s" : "tcp://%s:%s", self->cfg.bind,
                            port);
    if (self->port < 0) {
        zsys_error("cannot listen on tcp://%s:%s: %s", self->cfg.bind, port,
                   zmq_strerror(zmq_errno()));
        cluster_destroy(&self);
        return NULL;
    }
    if (self->port == 0)
        self->port = (int) self->cfg.port;
    self->router_fd = zsock_fd(self->router);
    self->router_touched = 1;
    loop_fd_add(loop, self->router_fd, LOOP_IN, s_router_ready, self);
    s_udp_open(self);
    zsys_notice("node id %s listening on tcp://%s:%d, key %s", self->id, self->cfg.bind,
                self->port, zcert_public_txt(self->cert));
    if (self->authorized)
        zsys_notice("taking only the nodes whose keys are in %s", self->cfg.authorized_keys);
    else
        zsys_notice("open: any node that reaches port %d may join (see --authorized-keys)",
                    self->port);
    for (size_t i = 0; i < self->cfg.npeers; i++) {
        char endpoint[ENDPOINT_MAX];
        uint8_t key[PROTO_KEY_LEN];
        int has_key;
        if (cluster_parse_peer(self->cfg.peers[i], endpoint, sizeof endpoint, key, &has_key) < 0)
            zsys_warning("peer %s is not tcp://HOST:PORT[#KEY], ignoring", self->cfg.peers[i]);
        else if (!s_by_endpoint(self, endpoint) &&
                 !s_peer_new(self, endpoint, 1, has_key ? key : NULL) &&
                 !s_is_self_endpoint(self, endpoint))
            zsys_warning("cannot add peer %s, ignoring", self->cfg.peers[i]);
    }
    self->tick = loop_timer_add(loop, TICK_MS, s_tick, self);
    if (!self->cfg.no_mdns &&
        !(self->mdns = mdns_new(loop, self->cfg.name, self->id, zcert_public_txt(self->cert),
                                self->cfg.cluster, self->port, s_mdns, self)))
        zsys_warning("mDNS off: out of memory");
    return self;
}

void cluster_destroy(cluster_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cluster_t *self = *self_p;
    mdns_destroy(&self->mdns);
    /* Goodbye to every peer, given a moment to leave. */
    for (size_t i = 0; i < self->npeers; i++) {
        peer_t *p = self->peers[i];
        if (p->up) {
            s_begin(p, P_BYE, 0);
            zsock_set_linger(p->dealer, 200);
            s_send(p);
        }
    }
    while (self->npeers > 0)
        s_peer_free(self->peers[self->npeers - 1]);
    free(self->peers);
    loop_timer_cancel(self->loop, self->tick);
    if (self->router_fd >= 0)
        loop_fd_del(self->loop, self->router_fd);
    zsock_destroy(&self->router);
    if (self->zap_fd >= 0)
        loop_fd_del(self->loop, self->zap_fd);
    zsock_destroy(&self->zap);
    if (self->udp_fd >= 0) {
        loop_fd_del(self->loop, self->udp_fd);
        close(self->udp_fd);
    }
    zcertstore_destroy(&self->authorized);
    zcert_destroy(&self->cert);
    proto_free(&self->out);
    free(self);
    *self_p = NULL;
}
