/*  bench_cluster.c: what two ipc-nodes cost against ZeroMQ alone, on one host.

    A benchmark, not a test: it prints figures and fails only when it cannot
    run at all. In one run it alternates four baselines and the candidate
    over the same traffic and prints medians over the rounds, their ratios
    and the CPU time per operation of every process involved.

      raw    "raw 2-hop": client A -> Unix socket -> relay A -> ZeroMQ
             DEALER -> tcp 127.0.0.1 -> ZeroMQ ROUTER of relay B -> Unix
             socket -> client B, and back the same way for replies. The
             relays use libzmq directly (zmq_poll over the ZeroMQ socket and
             the Unix fd); a relay reads what the Unix socket has (up to
             256 KiB), sends each whole frame as one ZeroMQ message, and
             writes what ZeroMQ has for it (up to 64 messages or 256 KiB)
             with one writev(). The clients exchange the frames the node
             would deliver (wire.h DELIVER_REQ / MESSAGE / DELIVER_REP, same
             sizes), encode each head and decode each frame, as libipcnet
             does.
      raw-curve  "raw 2-hop, CURVE": raw with the relays' ZeroMQ link
             encrypted: the ROUTER is a CURVE server (ZMQ_CURVE_SERVER and
             its secret key), the DEALER a CURVE client (its own keypair and
             ZMQ_CURVE_SERVERKEY); fresh keys from zmq_curve_keypair() per
             run, no ZAP handler (libzmq then accepts any client key).
      zmq    "plain ZeroMQ": a DEALER in process A, a ROUTER in process B,
             tcp 127.0.0.1, one ZeroMQ message per message of the same
             payload (zmq_send, zmq_msg_recv).
      zmq-curve  "plain ZeroMQ, CURVE": zmq with CURVE, keys as raw-curve.
      nats   "NATS", what people pick instead: nats-server (Debian's, run
             with -a 127.0.0.1 and a max_payload for the 1 MiB scenario)
             between two nats.c clients: A does natsConnection_Request()
             to "bench.echo" (one wildcard inbox), B answers on a
             synchronous subscription; one-way, A publishes to
             "bench.sink" and flushes, B counts. SendAsap for round trips
             (every publish written at once), buffered for one-way. Built
             when configure finds libnats; tests/bench/setup.sh installs
             nats-server and libnats-dev.
      node   two `$IPC_NODE --socket DIR/K.sock --name nodeA|nodeB --port P
             --bind 127.0.0.1 --state-dir DIR --no-mdns` (B with --peer
             tcp://127.0.0.1:PA; plus $IPC_NODE_ARGS), fresh per run; the
             run starts once each lists the other "up" (IPCNET_Q_PEERS) and
             A lists "bench.echo" held on nodeB (IPCNET_Q_SERVICES). Client B
             on node B binds "bench.echo", client A on node A sends to it.

    Every baseline gives its ZeroMQ sockets a high-water mark of
    min(1000, 64 MiB / message) messages each way. The node-to-node link is
    CURVE-encrypted, always: the nodes are set against raw (the required
    baseline) and raw-curve (like for like), and against zmq and zmq-curve.
    The CURVE handshakes, like the nodes' meeting, end before the go signal.
    --baselines-only runs the four baselines without any node.

    Scenarios: 64-byte request/reply round trips (median and p99); 64-byte
    one-way messages, batched by the sender (IPCNET_MORE + ipcnet_flush; the
    raw client writes 64 KiB at a time, as libipcnet does; ZeroMQ batches on
    its own); 64 KiB and 1 MiB one-way messages. Each runs with every
    process (nodes and relays with their threads) pinned to one CPU and
    unpinned.

    CPU is read from each process's CPU clock (clock_getcpuclockid(), all
    threads) just before the go signal and just after the measuring client
    reports done, so start-up and tear-down are left out.

    Every child is reaped, nodes are stopped with SIGTERM by PID and waited
    for, the temporary directory is removed and every run is bounded by
    --timeout.
*/

#include "bench_util.h"
#include "ipcnet.h"
#include "wire.h"

#include <zmq.h>
#ifdef HAVE_NATS
#include <nats/nats.h>
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <unistd.h>

#define NODE_A          "nodeA"
#define NODE_B          "nodeB"
#define RELAY_READ      (256 * 1024)    /* a relay's least read buffer */
#define RELAY_IOV       64              /* ZeroMQ messages per writev() */
#define RELAY_WBYTES    (256 * 1024)    /* bytes per writev(), about */
#define HWM_BYTES       (64L * 1024 * 1024)
#define CLUSTER_UP_S    20              /* until peers are up and the name seen */

/* The senders as the node would name them in what it delivers. */
#define SRC_A           ":1@" NODE_A
#define SRC_B           ":1@" NODE_B

enum { SC_RT, SC_BATCH, SC_MID, SC_BIG, SC_COUNT };
enum { MODE_PINNED, MODE_UNPINNED, MODE_COUNT };
enum { V_RAW, V_RAW_CURVE, V_ZMQ, V_ZMQ_CURVE, V_NATS, V_NODE, V_COUNT };
/* Server A and B: relays or nodes (none for plain ZeroMQ); then clients. */
enum { ROLE_SA, ROLE_SB, ROLE_A, ROLE_B, ROLE_COUNT };

static const char *const s_sc_name[SC_COUNT] = {
    "rt 64B", "send 64B batch", "send 64KiB", "send 1MiB",
};
static const char *const s_sc_arg[SC_COUNT] = { "rt", "batch", "64k", "1m" };
static const char *const s_mode_name[MODE_COUNT] = { "pinned", "unpinned" };
static const char *const s_v_name[V_COUNT] = {
    "raw-2hop", "raw-curve", "plain-zmq", "zmq-curve", "nats", "nodes",
};
static const char *const s_v_arg[V_COUNT] = {
    "raw", "raw-curve", "zmq", "zmq-curve", "nats", "node",
};
#define V_BASELINES     ((1u << V_RAW) | (1u << V_RAW_CURVE) | (1u << V_ZMQ) | \
                         (1u << V_ZMQ_CURVE) | (1u << V_NATS))
#define NATS_SERVER     "/usr/sbin/nats-server"
#define V_CURVES        ((1u << V_RAW_CURVE) | (1u << V_ZMQ_CURVE))

/* Relays between the clients (raw, raw-curve)? ZeroMQ alone (zmq,
   zmq-curve)? CURVE on the ZeroMQ link of a baseline? */
static bool s_v_relay(int v)
{
    return v == V_RAW || v == V_RAW_CURVE;
}

static bool s_v_zmq(int v)
{
    return v == V_ZMQ || v == V_ZMQ_CURVE;
}

static bool s_v_curve(int v)
{
    return v == V_RAW_CURVE || v == V_ZMQ_CURVE;
}

typedef struct {
    long rt;                /* measured round trips per run */
    long msgs;              /* 64-byte messages per batched run */
    long mid;               /* 64 KiB messages per run */
    long big;               /* 1 MiB messages per run */
    size_t mid_size;        /* payload of the 64 KiB scenario */
    size_t big_size;        /* payload of the 1 MiB scenario */
    int rounds;
    int timeout;            /* seconds per run */
    unsigned modes;         /* bit per MODE_* */
    unsigned scenarios;     /* bit per SC_* */
    unsigned variants;      /* bit per V_* */
    bool quick;
    bool baselines_only;    /* --baselines-only: no node, even with $IPC_NODE */
    const char *node;       /* $IPC_NODE, NULL: baselines only */
    char *node_args;        /* $IPC_NODE_ARGS, split on spaces */
} config_t;

typedef struct {
    bench_run_t b;              /* processes, pipes, shared page, deadline */
    const config_t *cfg;
    int sc;
    int v;                      /* V_* */
    int seq;                    /* run number, for unique file names */
    long count;                 /* one-way: messages */
    size_t size;                /* payload */
    char sock[2][108];          /* Unix sockets of A and B (raw, node) */
    char state[2][PATH_MAX];    /* state dirs of the nodes */
    char log[2][PATH_MAX];      /* logs of the nodes */
    int port[2];                /* TCP: nodes A and B; [1] is B's ROUTER */
    char endpoint[64];          /* tcp://127.0.0.1:port[1] */
    bool curve;                 /* the baseline's ZeroMQ link uses CURVE */
    char srv_pub[41], srv_sec[41];  /* Z85: the ROUTER's keypair */
    char cli_pub[41], cli_sec[41];  /* Z85: the DEALER's keypair */
} run_t;

static int s_seq;

static const char *s_role_name(int v, int role)
{
    static const char *const names[V_COUNT][ROLE_COUNT] = {
        { "relay A", "relay B", "client A", "client B" },
        { "relay A", "relay B", "client A", "client B" },
        { "-", "-", "DEALER A", "ROUTER B" },
        { "-", "-", "DEALER A", "ROUTER B" },
        { "nats-server", "-", "client A", "client B" },
        { "node A", "node B", "client A", "client B" },
    };
    return names[v][role];
}


/* The capacity of a reader for payloads of payload bytes: at least twice
   the largest frame plus 64 KiB, so a frame always fits once the buffer
   is compacted (frames up to half of it are taken). */
static size_t s_reader_cap(size_t payload)
{
    size_t cap = 2 * (payload + WIRE_HEAD_MAX) + 64 * 1024;
    return cap < RELAY_READ ? RELAY_READ : cap;
}

/* --- children: ZeroMQ ---------------------------------------------------------- */

/* A ZeroMQ socket with what every baseline sets, and CURVE when the run
   has it. The context is made in the child, after fork(). */
static void *s_zsock(run_t *r, int role, int type)
{
    void *ctx = zmq_ctx_new();
    void *s = ctx ? zmq_socket(ctx, type) : NULL;
    if (!s)
        bench_child_fail(&r->b, role, "zmq_socket: %s", zmq_strerror(zmq_errno()));
    int hwm = (int) (HWM_BYTES / (long) (r->size + WIRE_HEAD_MAX));
    hwm = hwm > 1000 ? 1000 : hwm < 16 ? 16 : hwm;
    int zero = 0, one = 1, tmo = 100;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s, ZMQ_SNDTIMEO, &tmo, sizeof tmo);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
    if (type == ZMQ_ROUTER)
        zmq_setsockopt(s, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    if (r->curve) {
        /* Before bind/connect: the mechanism is fixed per connection. */
        bool ok = type == ZMQ_ROUTER
            ? zmq_setsockopt(s, ZMQ_CURVE_SERVER, &one, sizeof one) == 0 &&
              zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, r->srv_sec, 40) == 0
            : zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, r->srv_pub, 40) == 0 &&
              zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, r->cli_pub, 40) == 0 &&
              zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, r->cli_sec, 40) == 0;
        if (!ok)
            bench_child_fail(&r->b, role, "CURVE options: %s", zmq_strerror(zmq_errno()));
    }
    int rc = type == ZMQ_ROUTER ? zmq_bind(s, r->endpoint) : zmq_connect(s, r->endpoint);
    if (rc < 0)
        bench_child_fail(&r->b, role, "zmq_%s(%s): %s", type == ZMQ_ROUTER ? "bind" : "connect",
                     r->endpoint, zmq_strerror(zmq_errno()));
    return s;
}

/* zmq_send() that waits for room until the run's deadline. */
static void s_zsend(run_t *r, int role, void *s, const void *buf, size_t len, int flags)
{
    while (zmq_send(s, buf, len, flags) < 0) {
        int e = zmq_errno();
        if ((e != EAGAIN && e != EINTR) || bench_now() > r->b.deadline || r->b.sh->stop)
            bench_child_fail(&r->b, role, "zmq_send: %s", e == EAGAIN ? "timed out" : zmq_strerror(e));
    }
}

/* zmq_msg_recv() that waits until the run's deadline. Returns the size, or
   -1 when told to stop. */
static int s_zrecv(run_t *r, int role, void *s, zmq_msg_t *m)
{
    for (;;) {
        int n = zmq_msg_recv(m, s, 0);
        if (n >= 0)
            return n;
        int e = zmq_errno();
        if (r->b.sh->stop)
            return -1;
        if ((e != EAGAIN && e != EINTR) || bench_now() > r->b.deadline)
            bench_child_fail(&r->b, role, "zmq_msg_recv: %s",
                         e == EAGAIN ? "timed out" : zmq_strerror(e));
    }
}

/* The handshake that proves the connection is there before the run: the
   DEALER sends an empty message, the ROUTER answers with one. The ROUTER
   returns the DEALER's routing id in *id. */
static void s_zhello(run_t *r, int role, void *s, bool router, zmq_msg_t *id)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (router) {
        zmq_msg_init(id);
        if (s_zrecv(r, role, s, id) < 0 || s_zrecv(r, role, s, &m) != 0)
            bench_child_fail(&r->b, role, "bad handshake");
        zmq_msg_t copy;
        zmq_msg_init(&copy);
        zmq_msg_copy(&copy, id);
        if (zmq_msg_send(&copy, s, ZMQ_SNDMORE) < 0)
            bench_child_fail(&r->b, role, "zmq_msg_send: %s", zmq_strerror(zmq_errno()));
        s_zsend(r, role, s, "", 0, 0);
    } else {
        s_zsend(r, role, s, "", 0, 0);
        if (s_zrecv(r, role, s, &m) != 0)
            bench_child_fail(&r->b, role, "bad handshake");
    }
    zmq_msg_close(&m);
}

/* --- children: the raw 2-hop relays ------------------------------------------- */

/* Relay A (DEALER) or B (ROUTER): accepts its client on lfd and forwards
   each whole frame from it as one ZeroMQ message, and each ZeroMQ message
   to it, until its client closes or the parent says stop. */
static void s_relay(run_t *r, int role, int lfd)
{
    bool router = role == ROLE_SB;
    void *zs = s_zsock(r, role, router ? ZMQ_ROUTER : ZMQ_DEALER);
    zmq_msg_t id;
    s_zhello(r, role, zs, router, &id);

    struct pollfd lp = { .fd = lfd, .events = POLLIN };
    while (poll(&lp, 1, bench_run_left_ms(&r->b, 1000)) <= 0)
        if (bench_now() > r->b.deadline || r->b.sh->stop)
            bench_child_fail(&r->b, role, "no client came");
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        bench_child_fail(&r->b, role, "accept: %s", strerror(errno));
    close(lfd);
    bench_reader_t rd;
    if (bench_reader_init(&rd, s_reader_cap(r->size), s_reader_cap(r->size) / 2) < 0)
        bench_child_fail(&r->b, role, "out of memory");
    zmq_msg_t msgs[RELAY_IOV];
    struct iovec iov[RELAY_IOV];
    bench_child_say(&r->b, role, 'r');

    for (;;) {
        zmq_pollitem_t it[2] = {
            { .socket = zs, .events = ZMQ_POLLIN },
            { .fd = fd, .events = ZMQ_POLLIN },
        };
        int n = zmq_poll(it, 2, 100);
        if (r->b.sh->stop)
            _exit(0);
        if (n < 0 && zmq_errno() != EINTR)
            bench_child_fail(&r->b, role, "zmq_poll: %s", zmq_strerror(zmq_errno()));
        if (n <= 0) {
            if (bench_now() > r->b.deadline)
                bench_child_fail(&r->b, role, "timed out");
            continue;
        }
        if (it[1].revents & (ZMQ_POLLIN | ZMQ_POLLERR)) {
            ssize_t got = bench_reader_fill(&rd, fd);
            if (got <= 0)
                _exit(0);       /* the client closed: the run is over */
            const uint8_t *p = NULL;
            size_t len = 0;
            int rc;
            while ((rc = bench_reader_frame(&rd, &p, &len)) == 1) {
                if (router) {
                    zmq_msg_t copy;
                    zmq_msg_init(&copy);
                    zmq_msg_copy(&copy, &id);
                    if (zmq_msg_send(&copy, zs, ZMQ_SNDMORE) < 0)
                        bench_child_fail(&r->b, role, "zmq_msg_send: %s", zmq_strerror(zmq_errno()));
                }
                s_zsend(r, role, zs, p, len, 0);
            }
            if (rc < 0)
                bench_child_fail(&r->b, role, "bad frame from the client: %s", strerror(-rc));
        }
        if (it[0].revents & ZMQ_POLLIN) {
            /* What ZeroMQ has for the client, in one writev(). */
            int k = 0;
            size_t bytes = 0;
            while (k < RELAY_IOV && bytes < RELAY_WBYTES) {
                if (router) {
                    zmq_msg_t from;
                    zmq_msg_init(&from);
                    int rc = zmq_msg_recv(&from, zs, ZMQ_DONTWAIT);
                    zmq_msg_close(&from);
                    if (rc < 0)
                        break;
                    zmq_msg_init(&msgs[k]);
                    if (zmq_msg_recv(&msgs[k], zs, 0) < 0)
                        bench_child_fail(&r->b, role, "zmq_msg_recv: %s", zmq_strerror(zmq_errno()));
                } else {
                    zmq_msg_init(&msgs[k]);
                    if (zmq_msg_recv(&msgs[k], zs, ZMQ_DONTWAIT) < 0) {
                        zmq_msg_close(&msgs[k]);
                        break;
                    }
                }
                iov[k].iov_base = zmq_msg_data(&msgs[k]);
                iov[k].iov_len = zmq_msg_size(&msgs[k]);
                bytes += iov[k].iov_len;
                k++;
            }
            int rc = bench_writev_all(fd, iov, k);
            for (int i = 0; i < k; i++)
                zmq_msg_close(&msgs[i]);
            if (rc < 0)
                _exit(0);
        }
    }
}

/* --- children: plain ZeroMQ ------------------------------------------------------ */

/* DEALER A: round trips, or `count` one-way messages and the marker. */
static void s_zmq_a(run_t *r)
{
    void *s = s_zsock(r, ROLE_A, ZMQ_DEALER);
    s_zhello(r, ROLE_A, s, false, NULL);
    uint8_t *buf = malloc(r->size);
    if (!buf)
        bench_child_fail(&r->b, ROLE_A, "out of memory");
    memset(buf, r->sc == SC_RT ? 'a' : 'm', r->size);
    zmq_msg_t m;
    zmq_msg_init(&m);
    bench_child_say(&r->b, ROLE_A, 'r');
    bench_child_wait(&r->b, ROLE_A, 'g');

    r->b.sh->t_start = bench_now();
    if (r->sc == SC_RT) {
        long total = r->b.warm + r->cfg->rt;
        for (long i = 0; i < total; i++) {
            double t0 = bench_now();
            if (t0 > r->b.deadline)
                bench_child_fail(&r->b, ROLE_A, "timed out after %ld round trips", i);
            memcpy(buf, &i, sizeof i);
            s_zsend(r, ROLE_A, s, buf, BENCH_SMALL, 0);
            if (s_zrecv(r, ROLE_A, s, &m) != BENCH_SMALL || memcmp(zmq_msg_data(&m), &i, sizeof i))
                bench_child_fail(&r->b, ROLE_A, "bad reply %ld", i);
            bench_child_rt_done(&r->b, i, t0);
        }
        r->b.sh->t_end = bench_now();
        bench_child_say(&r->b, ROLE_A, 'd');
    } else {
        for (long i = 0; i <= r->count; i++) {
            if ((i & 255) == 0 && bench_now() > r->b.deadline)
                bench_child_fail(&r->b, ROLE_A, "timed out after %ld messages", i);
            s_zsend(r, ROLE_A, s, buf, i < r->count ? r->size : BENCH_MARKER, 0);
            r->b.sh->progress_a = i;
        }
    }
    bench_child_wait(&r->b, ROLE_A, 'q');
    _exit(0);
}

/* ROUTER B: echoes each message back until told to stop, or counts
   `count` one-way messages and the marker. */
static void s_zmq_b(run_t *r)
{
    void *s = s_zsock(r, ROLE_B, ZMQ_ROUTER);
    zmq_msg_t id, m;
    s_zhello(r, ROLE_B, s, true, &id);
    zmq_msg_init(&m);
    bench_child_say(&r->b, ROLE_B, 'r');
    if (r->sc == SC_RT) {
        for (;;) {
            if (s_zrecv(r, ROLE_B, s, &id) < 0)
                break;
            if (s_zrecv(r, ROLE_B, s, &m) < 0)
                break;
            if (zmq_msg_send(&id, s, ZMQ_SNDMORE) < 0 || zmq_msg_send(&m, s, 0) < 0)
                bench_child_fail(&r->b, ROLE_B, "zmq_msg_send: %s", zmq_strerror(zmq_errno()));
        }
        _exit(0);
    }
    long got = 0;
    bool marker = false;
    while (!marker || got < r->count) {
        if (s_zrecv(r, ROLE_B, s, &id) < 0 || s_zrecv(r, ROLE_B, s, &m) < 0)
            bench_child_fail(&r->b, ROLE_B, "stopped with %ld messages", got);
        size_t n = zmq_msg_size(&m);
        if (n == r->size)
            got++;
        else if (n == BENCH_MARKER)
            marker = true;
        if ((got & 255) == 0)
            r->b.sh->progress_b = got;
    }
    r->b.sh->t_end = bench_now();
    r->b.sh->received = got;
    r->b.sh->progress_b = got;
    bench_child_say(&r->b, ROLE_B, 'd');
    bench_child_wait(&r->b, ROLE_B, 'q');
    _exit(0);
}

/* --- children: NATS ---------------------------------------------------------------- */

#ifdef HAVE_NATS
static natsConnection *s_nats_connect(run_t *r, int role, bool asap)
{
    natsOptions *o = NULL;
    natsConnection *nc = NULL;
    char url[64];
    snprintf(url, sizeof url, "nats://127.0.0.1:%d", r->port[1]);
    if (natsOptions_Create(&o) != NATS_OK || natsOptions_SetURL(o, url) != NATS_OK ||
        natsOptions_SetSendAsap(o, asap) != NATS_OK ||
        natsConnection_Connect(&nc, o) != NATS_OK)
        bench_child_fail(&r->b, role, "NATS: %s", nats_GetLastError(NULL));
    natsOptions_Destroy(o);
    return nc;
}

/* Client A: round trips by request, or `count` publications and the marker. */
static void s_nats_a(run_t *r)
{
    bool rt = r->sc == SC_RT;
    natsConnection *nc = s_nats_connect(r, ROLE_A, rt);
    uint8_t *buf = malloc(r->size);
    if (!buf)
        bench_child_fail(&r->b, ROLE_A, "out of memory");
    memset(buf, rt ? 'a' : 'm', r->size);
    bench_child_say(&r->b, ROLE_A, 'r');
    bench_child_wait(&r->b, ROLE_A, 'g');
    r->b.sh->t_start = bench_now();
    if (rt) {
        long total = r->b.warm + r->cfg->rt;
        for (long i = 0; i < total; i++) {
            double t0 = bench_now();
            if (t0 > r->b.deadline)
                bench_child_fail(&r->b, ROLE_A, "timed out after %ld round trips", i);
            memcpy(buf, &i, sizeof i);
            natsMsg *reply = NULL;
            if (natsConnection_Request(&reply, nc, "bench.echo", (const char *) buf, BENCH_SMALL,
                                       5000) != NATS_OK ||
                natsMsg_GetDataLength(reply) != BENCH_SMALL ||
                memcmp(natsMsg_GetData(reply), &i, sizeof i))
                bench_child_fail(&r->b, ROLE_A, "bad reply %ld: %s", i, nats_GetLastError(NULL));
            natsMsg_Destroy(reply);
            bench_child_rt_done(&r->b, i, t0);
        }
        r->b.sh->t_end = bench_now();
        bench_child_say(&r->b, ROLE_A, 'd');
    } else {
        for (long i = 0; i <= r->count; i++) {
            if ((i & 255) == 0 && bench_now() > r->b.deadline)
                bench_child_fail(&r->b, ROLE_A, "timed out after %ld messages", i);
            if (natsConnection_Publish(nc, "bench.sink", buf,
                                       (int) (i < r->count ? r->size : BENCH_MARKER)) != NATS_OK)
                bench_child_fail(&r->b, ROLE_A, "publish: %s", nats_GetLastError(NULL));
            r->b.sh->progress_a = i;
        }
        natsConnection_Flush(nc);
    }
    bench_child_wait(&r->b, ROLE_A, 'q');
    _exit(0);
}

/* Client B: answers each request until told to stop, or counts. */
static void s_nats_b(run_t *r)
{
    bool rt = r->sc == SC_RT;
    natsConnection *nc = s_nats_connect(r, ROLE_B, true);
    natsSubscription *sub = NULL;
    if (natsConnection_SubscribeSync(&sub, nc, rt ? "bench.echo" : "bench.sink") != NATS_OK ||
        natsSubscription_SetPendingLimits(sub, -1, -1) != NATS_OK ||
        natsConnection_Flush(nc) != NATS_OK)     /* subscribed at the server before A starts */
        bench_child_fail(&r->b, ROLE_B, "subscribe: %s", nats_GetLastError(NULL));
    bench_child_say(&r->b, ROLE_B, 'r');
    long got = 0;
    bool marker = false;
    while (rt ? !r->b.sh->stop : (!marker || got < r->count)) {
        natsMsg *m = NULL;
        natsStatus s = natsSubscription_NextMsg(&m, sub, 200);
        if (s == NATS_TIMEOUT) {
            if (!rt && bench_now() > r->b.deadline)
                bench_child_fail(&r->b, ROLE_B, "stopped with %ld messages", got);
            continue;
        }
        if (s != NATS_OK)
            bench_child_fail(&r->b, ROLE_B, "next: %s", nats_GetLastError(NULL));
        if (rt)
            natsConnection_Publish(nc, natsMsg_GetReply(m), natsMsg_GetData(m),
                                   natsMsg_GetDataLength(m));
        else if ((size_t) natsMsg_GetDataLength(m) == r->size)
            got++;
        else if (natsMsg_GetDataLength(m) == BENCH_MARKER)
            marker = true;
        natsMsg_Destroy(m);
        if (!rt && (got & 255) == 0)
            r->b.sh->progress_b = got;
    }
    if (!rt) {
        r->b.sh->t_end = bench_now();
        r->b.sh->received = got;
        r->b.sh->progress_b = got;
        bench_child_say(&r->b, ROLE_B, 'd');
        bench_child_wait(&r->b, ROLE_B, 'q');
    }
    _exit(0);
}

/* nats-server on 127.0.0.1:port[1], payloads up to the largest scenario. */
static int s_nats_start(run_t *r)
{
    char conf[PATH_MAX], port[16], sock[32];
    snprintf(conf, sizeof conf, "%s/nats-%d.conf", bench_tmpdir(), r->seq);
    FILE *f = fopen(conf, "w");
    if (!f || fprintf(f, "max_payload: %zu\n", r->size + 65536 > 1048576 ? r->size + 65536
                                                                        : 1048576) < 0 ||
        fclose(f) != 0) {
        fprintf(stderr, "  cannot write %s\n", conf);
        return -1;
    }
    snprintf(port, sizeof port, "%d", r->port[1]);
    snprintf(sock, sizeof sock, "tcp:%d", r->port[1]);
    char *argv[] = { (char *) NATS_SERVER, (char *) "-a", (char *) "127.0.0.1", (char *) "-p",
                     port, (char *) "-c", conf, NULL };
    return bench_run_node(&r->b, ROLE_SA, argv, r->log[0], sock);
}
#endif

/* What client `role` of the run does; never returns. */
static void s_client(void *arg, int role)
{
    run_t *r = arg;
    bool batch = r->sc == SC_BATCH;
#ifdef HAVE_NATS
    if (r->v == V_NATS) {
        role == ROLE_A ? s_nats_a(r) : s_nats_b(r);
    }
#endif
    if (s_v_zmq(r->v)) {
        role == ROLE_A ? s_zmq_a(r) : s_zmq_b(r);
    } else if (r->v == V_NODE) {
        bench_node_client(&r->b, role, r->sc == SC_RT, r->count, r->size, batch);
    } else {
        const char *sock = r->sock[role == ROLE_A ? 0 : 1];
        int fd = bench_unix_connect(sock);
        if (fd < 0)
            bench_child_fail(&r->b, role, "connect(%s): %s", sock, strerror(-fd));
        if (r->sc == SC_RT)
            role == ROLE_A ? bench_relay_rt_a(&r->b, fd, WIRE_DELIVER_REQ, BENCH_REQ_TIMEOUT_MS,
                                             SRC_A, s_reader_cap(BENCH_SMALL),
                                             s_reader_cap(BENCH_SMALL) / 2)
                           : bench_relay_rt_b(&r->b, fd, SRC_B, s_reader_cap(BENCH_SMALL),
                                              s_reader_cap(BENCH_SMALL) / 2);
        else if (role == ROLE_A)
            bench_wire_send_a(&r->b, fd, SRC_A, r->count, r->size, batch);
        else
            bench_relay_send_b(&r->b, fd, r->count, r->size, s_reader_cap(r->size),
                               s_reader_cap(r->size) / 2);
    }
    _exit(1);
}

/* --- parent --------------------------------------------------------------- */

/* A TCP port on 127.0.0.1 that was free a moment ago; -1 if none. */
static int s_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof sa;
    int port = -1;
    if (bind(fd, (struct sockaddr *) &sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *) &sa, &len) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

/* Starts node k (0: A, 1: B, seeded with A) pinned like the clients, and
   waits (bounded) until it accepts a connection. Returns 0 or -1. */
static int s_node_start(run_t *r, int k)
{
    const config_t *cfg = r->cfg;
    char port[16], peer[64];
    snprintf(port, sizeof port, "%d", r->port[k]);
    snprintf(peer, sizeof peer, "tcp://127.0.0.1:%d", r->port[0]);
    if (mkdir(r->state[k], 0700) < 0 && errno != EEXIST) {
        fprintf(stderr, "  mkdir %s: %s\n", r->state[k], strerror(errno));
        return -1;
    }
    char *argv[64];
    int argc = 0;
    argv[argc++] = (char *) cfg->node;
    argv[argc++] = (char *) "--socket";
    argv[argc++] = r->sock[k];
    argv[argc++] = (char *) "--name";
    argv[argc++] = (char *) (k ? NODE_B : NODE_A);
    argv[argc++] = (char *) "--port";
    argv[argc++] = port;
    argv[argc++] = (char *) "--bind";
    argv[argc++] = (char *) "127.0.0.1";
    argv[argc++] = (char *) "--state-dir";
    argv[argc++] = r->state[k];
    argv[argc++] = (char *) "--no-mdns";
    argv[argc++] = (char *) "--cluster";
    argv[argc++] = (char *) "bench-cluster";
    if (k) {
        argv[argc++] = (char *) "--peer";
        argv[argc++] = peer;
    }
    char *extra = bench_args_append(argv, &argc, 63, cfg->node_args);
    argv[argc] = NULL;
    int rc = bench_run_node(&r->b, k ? ROLE_SB : ROLE_SA, argv, r->log[k], r->sock[k]);
    free(extra);
    return rc;
}

/* Does the listing have a line whose field 0 is f0 and field `col` is fc? */
static bool s_listing_has(const char *text, const char *f0, int col, const char *fc)
{
    size_t l0 = strlen(f0), lc = strlen(fc);
    for (const char *line = text; line && *line; ) {
        const char *eol = strchr(line, '\n');
        size_t len = eol ? (size_t) (eol - line) : strlen(line);
        if (len > l0 && !memcmp(line, f0, l0) && line[l0] == '\t') {
            const char *f = line;
            for (int i = 0; i < col && f; i++) {
                f = memchr(f, '\t', len - (size_t) (f - line));
                if (f)
                    f++;
            }
            if (f) {
                size_t rest = len - (size_t) (f - line);
                const char *tab = memchr(f, '\t', rest);
                size_t fl = tab ? (size_t) (tab - f) : rest;
                if (fl == lc && !memcmp(f, fc, lc))
                    return true;
            }
        }
        line = eol ? eol + 1 : NULL;
    }
    return false;
}

/* Waits (bounded) until node k's listing `what` has a line with f0 in
   field 0 and fc in field col. Returns 0 or -1. */
static int s_wait_listing(run_t *r, int k, int what, const char *f0, int col,
                          const char *fc, double end)
{
    ipcnet_t *c = NULL;
    int rc = ipcnet_connect(&c, r->sock[k], "bench-probe", 0);
    if (rc < 0) {
        fprintf(stderr, "  aborted: ipcnet_connect(%s): %s\n", r->sock[k], ipcnet_strerror(rc));
        return -1;
    }
    char *text = NULL;
    for (;;) {
        free(text);
        text = NULL;
        rc = ipcnet_query(c, what, &text);
        if (rc < 0) {
            fprintf(stderr, "  aborted: ipcnet_query(%s): %s\n", r->sock[k],
                    ipcnet_strerror(rc));
            break;
        }
        if (s_listing_has(text, f0, col, fc)) {
            free(text);
            ipcnet_close(&c);
            return 0;
        }
        if (bench_interrupted() || bench_run_check(&r->b, "while the nodes met") < 0)
            break;
        if (bench_now() > end) {
            fprintf(stderr, "  aborted: %s never listed %s with %s within %d s; it lists:\n%s",
                    s_role_name(V_NODE, k ? ROLE_SB : ROLE_SA), f0, fc, CLUSTER_UP_S,
                    text ? text : "(nothing)\n");
            break;
        }
        usleep(10000);
    }
    free(text);
    ipcnet_close(&c);
    return -1;
}

/* Starts relay B and relay A; both report 'r' once their ZeroMQ handshake
   is done and their client is accepted. Returns 0 or -1. */
static int s_relays_start(run_t *r)
{
    int lfd[2];
    for (int k = 0; k < 2; k++)
        if ((lfd[k] = bench_listen(r->sock[k])) < 0) {
            if (k)
                close(lfd[0]);
            return -1;
        }
    int rc = 0;
    for (int k = 1; k >= 0 && rc == 0; k--) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) {
            rc = -1;
            break;
        }
        int role = k ? ROLE_SB : ROLE_SA;
        if (pid == 0) {
            bench_child_setup(&r->b, role);
            close(lfd[1 - k]);
            s_relay(r, role, lfd[k]);
            _exit(0);
        }
        r->b.pid[role] = pid;
    }
    close(lfd[0]);
    close(lfd[1]);
    return rc;
}

static size_t s_sc_size(const config_t *cfg, int sc)
{
    return sc == SC_MID ? cfg->mid_size : sc == SC_BIG ? cfg->big_size : BENCH_SMALL;
}

static long s_sc_count(const config_t *cfg, int sc)
{
    return sc == SC_RT ? cfg->rt : sc == SC_BATCH ? cfg->msgs : sc == SC_MID ? cfg->mid
                                                                           : cfg->big;
}

/* One run: one scenario, one mode, one variant. Fills *ret. Returns 0, or
   -1 when the run was aborted (said on stderr). */
static int s_run(const config_t *cfg, int sc, bool pinned, int v, bench_result_t *ret)
{
    memset(ret, 0, sizeof *ret);
    run_t r = {
        .cfg = cfg, .sc = sc, .v = v, .seq = ++s_seq,
        .count = s_sc_count(cfg, sc), .size = s_sc_size(cfg, sc), .curve = s_v_curve(v),
    };
    for (int k = 0; k < 2; k++) {
        snprintf(r.sock[k], sizeof r.sock[k], "%s/%c%d.sock", bench_tmpdir(), 'a' + k, r.seq);
        snprintf(r.state[k], sizeof r.state[k], "%s/state-%c%d", bench_tmpdir(), 'a' + k,
                 r.seq);
        snprintf(r.log[k], sizeof r.log[k], "%s/node-%c%d.log", bench_tmpdir(), 'a' + k, r.seq);
        r.port[k] = s_free_port();
    }
    snprintf(r.endpoint, sizeof r.endpoint, "tcp://127.0.0.1:%d", r.port[1]);
    if (bench_run_open(&r.b, ROLE_COUNT, cfg->rt, cfg->timeout, pinned) < 0)
        return -1;
    for (int i = 0; i < ROLE_COUNT; i++) {
        r.b.name[i] = s_role_name(v, i);
        r.b.daemon[i] = (v == V_NODE && i < ROLE_A) || (v == V_NATS && i == ROLE_SA);
    }
    r.b.sock_a = r.sock[0];
    r.b.sock_b = r.sock[1];

    int rc = -1;
    bool ok = false;
    if (r.port[0] < 0 || r.port[1] < 0) {
        fprintf(stderr, "  no free TCP port on 127.0.0.1\n");
        goto out;
    }
    /* Fresh keys per run, made before the children fork. */
    if (r.curve && (zmq_curve_keypair(r.srv_pub, r.srv_sec) < 0 ||
                    zmq_curve_keypair(r.cli_pub, r.cli_sec) < 0)) {
        fprintf(stderr, "  zmq_curve_keypair: %s\n", zmq_strerror(zmq_errno()));
        goto out;
    }
    int servers = 0;
    if (v == V_NODE) {
        if (s_node_start(&r, 0) < 0 || s_node_start(&r, 1) < 0)
            goto out;
        double end = bench_now() + CLUSTER_UP_S;
        if (end > r.b.deadline)
            end = r.b.deadline;
        if (s_wait_listing(&r, 0, IPCNET_Q_PEERS, NODE_B, 4, "up", end) < 0 ||
            s_wait_listing(&r, 1, IPCNET_Q_PEERS, NODE_A, 4, "up", end) < 0)
            goto out;
    } else if (s_v_relay(v)) {
        if (s_relays_start(&r) < 0)
            goto out;
        servers = 2;
    }
#ifdef HAVE_NATS
    else if (v == V_NATS && s_nats_start(&r) < 0)
        goto out;
#endif
    for (int role = ROLE_B; role >= ROLE_A; role--)
        if (bench_run_fork(&r.b, role, s_client, &r) < 0)
            goto out;
    if (bench_run_wait(&r.b, 2 + servers, 'r') < 0)
        goto out;
    if (v == V_NODE) {
        double end = bench_now() + CLUSTER_UP_S;
        if (end > r.b.deadline)
            end = r.b.deadline;
        if (s_wait_listing(&r, 0, IPCNET_Q_SERVICES, BENCH_ECHO_NAME, 1, NODE_B, end) < 0)
            goto out;
    }

    if (bench_run_result(&r.b, sc == SC_RT, r.count, sc == SC_BATCH ? 0 : (double) r.size, 1e6,
                         ret) < 0)
        goto out;
    ok = true;
    rc = 0;

out:
    bench_run_close(&r.b, ok);
    if (!ok && v == V_NODE) {
        bench_print_log_tail(r.log[0]);
        bench_print_log_tail(r.log[1]);
    }
    unlink(r.sock[0]);
    unlink(r.sock[1]);
    return rc;
}

/* --- report --------------------------------------------------------------- */

static void s_usage(FILE *f)
{
    fprintf(f,
        "usage: IPC_NODE=path/to/ipc-node bench_cluster [options]\n"
        "  --quick            small counts, one round: a smoke run\n"
        "  --rounds N         rounds of each variant per scenario and mode (5)\n"
        "  --rt N             measured round trips per run (20000)\n"
        "  --msgs N           64-byte messages per batched run (200000)\n"
        "  --mid N            64 KiB messages per run (20000)\n"
        "  --big N            1 MiB messages per run (2000)\n"
        "  --mid-size BYTES   payload of the 64k scenario (65536)\n"
        "  --big-size BYTES   payload of the 1m scenario (1048576)\n"
        "  --only LIST        scenarios, comma-separated: rt,batch,64k,1m\n"
        "  --mode LIST        pinned,unpinned (both)\n"
        "  --variants LIST    raw,raw-curve,zmq,zmq-curve,nats,node (all; node needs\n"
        "                     IPC_NODE, nats libnats at build time and nats-server)\n"
        "  --baselines-only   no node, even with IPC_NODE: raw,raw-curve,zmq,zmq-curve\n"
        "                     (or those of them --variants names)\n"
        "  --timeout S        seconds before a run is aborted (60)\n"
        "environment: IPC_NODE (without it only the baselines run), IPC_NODE_ARGS\n"
        "(more arguments for both nodes), BENCH_ROUNDS, BENCH_RT, BENCH_MSGS,\n"
        "BENCH_MID, BENCH_BIG\n");
}

/* The medians of one scenario and mode, every variant, formatted. */
typedef struct {
    char label[64];
    const char *unit;
    double val[V_COUNT], p99[V_COUNT];
    char vs[V_COUNT][32], ps[V_COUNT][32], cpu[V_COUNT][48];
} row_t;

static void s_row(row_t *row, const bench_result_t *res, int rounds, int sc, int m)
{
    snprintf(row->label, sizeof row->label, "%s %s", s_sc_name[sc], s_mode_name[m]);
    row->unit = sc == SC_RT ? "med us" : sc == SC_BATCH ? "msg/s" : "MB/s";
    for (int v = 0; v < V_COUNT; v++) {
        const bench_result_t *rv = res + (((size_t) sc * MODE_COUNT + (size_t) m) * V_COUNT +
                                          (size_t) v) * (size_t) rounds;
        row->val[v] = bench_median(rv, rounds, offsetof(bench_result_t, value));
        row->p99[v] = bench_median(rv, rounds, offsetof(bench_result_t, p99));
        bench_fmt_cpu(row->cpu[v], sizeof row->cpu[v],
                      bench_median(rv, rounds, offsetof(bench_result_t, cpu_srv)),
                      bench_median(rv, rounds, offsetof(bench_result_t, cpu_cli)),
                      !s_v_zmq(v));
        bench_fmt(row->vs[v], sizeof row->vs[v], row->val[v], sc == SC_BATCH ? 0 : 1);
        bench_fmt(row->ps[v], sizeof row->ps[v], row->p99[v], sc == SC_BATCH ? 0 : 1);
    }
}

/* The ratios of one line: the node against each baseline, then CURVE
   against plain for each baseline. */
static void s_print_ratios(const char *label, const char *unit, const double x[V_COUNT])
{
    static const int pair[7][2] = {
        { V_RAW, V_NODE }, { V_RAW_CURVE, V_NODE }, { V_ZMQ, V_NODE },
        { V_ZMQ_CURVE, V_NODE }, { V_NATS, V_NODE }, { V_RAW, V_RAW_CURVE },
        { V_ZMQ, V_ZMQ_CURVE },
    };
    char q[7][16];
    for (int i = 0; i < 7; i++)
        bench_fmt_ratio(q[i], sizeof q[i], x[pair[i][0]], x[pair[i][1]]);
    printf("%-24s %-6s %8s %14s %8s %14s %9s %13s %13s\n", label, unit, q[0], q[1], q[2],
           q[3], q[4], q[5], q[6]);
}

static void s_report(const config_t *cfg, const bench_result_t *res)
{
    /* Table 1: the figures. */
    printf("\n# figures: medians over %d round(s); -: not run, or every round failed\n",
           cfg->rounds);
    printf("%-24s %-6s %10s %10s %10s %10s %10s %10s\n", "scenario", "unit", s_v_name[V_RAW],
           s_v_name[V_RAW_CURVE], s_v_name[V_ZMQ], s_v_name[V_ZMQ_CURVE], s_v_name[V_NATS],
           s_v_name[V_NODE]);
    for (int sc = 0, m = -1;
         bench_next_cell(cfg->scenarios, SC_COUNT, cfg->modes, MODE_COUNT, &sc, &m);) {
        row_t row;
        s_row(&row, res, cfg->rounds, sc, m);
        printf("%-24s %-6s %10s %10s %10s %10s %10s %10s\n", row.label, row.unit,
               row.vs[V_RAW], row.vs[V_RAW_CURVE], row.vs[V_ZMQ], row.vs[V_ZMQ_CURVE],
               row.vs[V_NATS], row.vs[V_NODE]);
        if (sc == SC_RT)
            printf("%-24s %-6s %10s %10s %10s %10s %10s %10s\n", row.label, "p99 us",
                   row.ps[V_RAW], row.ps[V_RAW_CURVE], row.ps[V_ZMQ], row.ps[V_ZMQ_CURVE],
                   row.ps[V_NATS], row.ps[V_NODE]);
    }

    /* Table 2: the ratios. */
    printf("\n# ratios of the medians: the nodes against each baseline (node/raw: the "
           "required baseline; node/raw-curve: like for like, both encrypt), and what CURVE "
           "costs each baseline\n");
    printf("%-24s %-6s %8s %14s %8s %14s %9s %13s %13s\n", "scenario", "unit", "node/raw",
           "node/raw-curve", "node/zmq", "node/zmq-curve", "node/nats", "raw-curve/raw",
           "zmq-curve/zmq");
    for (int sc = 0, m = -1;
         bench_next_cell(cfg->scenarios, SC_COUNT, cfg->modes, MODE_COUNT, &sc, &m);) {
        row_t row;
        s_row(&row, res, cfg->rounds, sc, m);
        s_print_ratios(row.label, row.unit, row.val);
        if (sc == SC_RT)
            s_print_ratios(row.label, "p99 us", row.p99);
    }

    /* Table 3: the CPU. */
    printf("\n# CPU us/op, medians: total (relays or nodes + both clients) per round trip "
           "for rt (warm-up included), per message otherwise;\n");
    printf("#   process CPU clocks of every process, all threads, from go to done\n");
    printf("%-24s %-26s %-26s %-10s %-10s %-26s %s\n", "scenario", s_v_name[V_RAW],
           s_v_name[V_RAW_CURVE], s_v_name[V_ZMQ], s_v_name[V_ZMQ_CURVE], s_v_name[V_NATS],
           s_v_name[V_NODE]);
    for (int sc = 0, m = -1;
         bench_next_cell(cfg->scenarios, SC_COUNT, cfg->modes, MODE_COUNT, &sc, &m);) {
        row_t row;
        s_row(&row, res, cfg->rounds, sc, m);
        printf("%-24s %-26s %-26s %-10s %-10s %-26s %s\n", row.label, row.cpu[V_RAW],
               row.cpu[V_RAW_CURVE], row.cpu[V_ZMQ], row.cpu[V_ZMQ_CURVE], row.cpu[V_NATS],
               row.cpu[V_NODE]);
    }

    printf("\n# the variants alternate within each scenario and mode, round by round\n");
    printf("# ratios: above 1 is slower for us, below 1 is slower for msg/s and MB/s "
           "(MB = 10^6 bytes)\n");
}

/* A run of the plan: variant v (V_*). */
static int s_one(void *arg, int sc, int m, int v, bench_result_t *ret)
{
    return s_run(arg, sc, m == MODE_PINNED, v, ret);
}

int main(int argc, char **argv)
{
    bench_init("bench_cluster");
    config_t cfg = {
        .rt = 20000, .msgs = 200000, .mid = 20000, .big = 2000,
        .mid_size = 64 * 1024, .big_size = 1024 * 1024,
        .rounds = 5, .timeout = 60,
        .modes = (1u << MODE_COUNT) - 1, .scenarios = (1u << SC_COUNT) - 1,
        .variants = (1u << V_COUNT) - 1,
    };
    if ((cfg.quick = bench_quick(argc, argv))) {
        cfg.rt = 500;
        cfg.msgs = 5000;
        cfg.mid = 200;
        cfg.big = 20;
        cfg.rounds = 1;
    }
    long rounds = cfg.rounds, timeout = cfg.timeout, big_size = (long) cfg.big_size;
    long mid_size = (long) cfg.mid_size;
    const bench_opt_t opts[] = {
        BENCH_OPTS_COMMON(&rounds, &cfg.rt, &cfg.msgs, &cfg.big, &big_size, &timeout,
                          &cfg.scenarios, s_sc_arg, SC_COUNT, &cfg.modes, s_mode_name,
                          MODE_COUNT),
        { .name = "--mid", .env = "BENCH_MID", .num = &cfg.mid, .min = 1 },
        { .name = "--mid-size", .num = &mid_size, .min = BENCH_MARKER + 1 },
        { .name = "--variants", .bits = &cfg.variants, .names = s_v_arg, .count = V_COUNT,
          .what = "variant" },
        { .name = "--baselines-only", .flag = &cfg.baselines_only },
        { .name = NULL },
    };
    int parsed = bench_options(argc, argv, opts, s_usage);
    if (parsed)
        return parsed == 1 ? 0 : 2;
    cfg.big_size = (size_t) big_size;
    cfg.mid_size = (size_t) mid_size;
    if (rounds > 1000 || timeout > 86400 || cfg.rt > 100000000 ||
        cfg.mid_size > 256L * 1024 * 1024 || cfg.big_size > 256L * 1024 * 1024 ||
        cfg.mid_size == BENCH_SMALL || cfg.big_size == BENCH_SMALL) {
        fprintf(stderr, "bench_cluster: counts or sizes out of range\n");
        return 2;
    }
    cfg.rounds = (int) rounds;
    cfg.timeout = (int) timeout;
    if (cfg.baselines_only)
        cfg.variants &= V_BASELINES;    /* and $IPC_NODE is not even looked at */
    else if (bench_env_node(&cfg.node, &cfg.node_args) < 0)
        return 2;
    if (!cfg.node)
        cfg.variants &= ~(1u << V_NODE);
#ifdef HAVE_NATS
    if ((cfg.variants & (1u << V_NATS)) && access(NATS_SERVER, X_OK) < 0) {
        fprintf(stderr, "bench_cluster: no %s: the NATS baseline is skipped "
                "(tests/bench/setup.sh)\n", NATS_SERVER);
        cfg.variants &= ~(1u << V_NATS);
    }
#else
    cfg.variants &= ~(1u << V_NATS);
#endif
    bool curve = zmq_has("curve");
    if (!curve && (cfg.variants & V_CURVES)) {
        fprintf(stderr, "bench_cluster: this libzmq has no CURVE: raw-curve and zmq-curve "
                "skipped\n");
        cfg.variants &= ~V_CURVES;
    }
    if (!cfg.variants) {
        fprintf(stderr, "bench_cluster: nothing to run (node needs IPC_NODE and no "
                "--baselines-only)\n");
        return 2;
    }
    /* Go, and the header: how to get these figures again, and on what. */
    bench_header_t hd;
    if (bench_begin(&hd, argv[0], cfg.node, cfg.node_args, cfg.scenarios, s_sc_arg, SC_COUNT,
                    cfg.modes, s_mode_name, MODE_COUNT) < 0)
        return 1;
    char variants[64];
    bench_names(variants, sizeof variants, cfg.variants, s_v_arg, V_COUNT);
    int major, minor, patch;
    zmq_version(&major, &minor, &patch);
    printf("# bench_cluster: two ipc-nodes against a raw 2-hop ZeroMQ relay and plain "
           "ZeroMQ, each without and with CURVE, same traffic, one run\n");
    printf("# reproduce: %s%s --rounds %d --rt %ld --msgs %ld --mid %ld --big %ld "
           "--mid-size %zu --big-size %zu --only %s --mode %s --variants %s --timeout %d\n",
           hd.env, hd.self, cfg.rounds, cfg.rt, cfg.msgs, cfg.mid, cfg.big, cfg.mid_size,
           cfg.big_size, hd.only, hd.modes, variants, cfg.timeout);
    printf("# host: %s %s %s, %d CPUs allowed; pinned = every process on CPU %d; "
           "libzmq %d.%d.%d%s\n", hd.u.sysname, hd.u.release, hd.u.machine, bench_cpu_count(),
           bench_cpu_pin(), major, minor, patch, curve ? " with CURVE" : " without CURVE");
    printf("# raw-2hop: client -unix- relay A -DEALER/tcp 127.0.0.1/ROUTER- relay B -unix- "
           "client; a ZeroMQ message per frame; clients encode and decode wire.h frames\n");
    printf("# raw-curve: raw-2hop, the ROUTER a CURVE server, the DEALER a CURVE client "
           "(fresh zmq_curve_keypair() keys per run, no ZAP)\n");
    printf("# plain-zmq: DEALER (process A) -tcp 127.0.0.1- ROUTER (process B), a ZeroMQ "
           "message per message\n");
    printf("# zmq-curve: plain-zmq with CURVE, keys as raw-curve\n");
    printf("# nodes: %s --socket DIR/K.sock --name nodeA|nodeB --port P --bind 127.0.0.1 "
           "--state-dir DIR --no-mdns [--peer tcp://127.0.0.1:PA] (fresh per run); "
           "clients use libipcnet; the node link is CURVE\n",
           cfg.node ? cfg.node : cfg.baselines_only ? "(--baselines-only: skipped)"
                                                   : "(IPC_NODE unset: skipped)");
    fflush(stdout);

    bench_result_t *res = calloc((size_t) SC_COUNT * MODE_COUNT * V_COUNT *
                                 (size_t) cfg.rounds, sizeof *res);
    if (!res)
        return 1;
#define RES(sc, m, v, k) res[(((size_t) (sc) * MODE_COUNT + (m)) * V_COUNT + (v)) * \
                             (size_t) cfg.rounds + (k)]
    const bench_plan_t plan = { cfg.scenarios, cfg.modes, cfg.variants, s_sc_name, s_mode_name,
                                s_v_name, SC_COUNT, MODE_COUNT, V_COUNT, cfg.rounds };
    int failures = bench_each_run(&plan, res, s_one, &cfg);

    s_report(&cfg, res);

    printf("\n# every round (value [p99] cpu-servers+cpu-clients us/op):\n");
    for (int sc = 0, m = -1;
         bench_next_cell(cfg.scenarios, SC_COUNT, cfg.modes, MODE_COUNT, &sc, &m);) {
        for (int v = 0; v < V_COUNT; v++) {
            if (!(cfg.variants & 1u << v))
                continue;
            printf("#   %-14s %-8s %-9s", s_sc_name[sc], s_mode_name[m], s_v_name[v]);
            for (int k = 0; k < cfg.rounds; k++)
                bench_print_round(&RES(sc, m, v, k), sc == SC_RT, sc == SC_BATCH ? 0 : 1);
            printf("\n");
        }
    }
    bench_print_footer(failures);
#undef RES

    free(res);
    free(cfg.node_args);
    return bench_end();
}
