/*  test_limits.c: what a client or a peer can make a node hold, through
    real sockets and a real node (docs/protocol-node.md 7.6, ipc-node(8)).

    Each test starts its own node with small limits and attacks it as a
    hostile client or peer would: thousands of HELLOs from keys of their
    own, gossip and names past every bound, requests never answered,
    connections that never say HELLO or stop in the middle of a frame,
    the clients of one user, a node out of file descriptors, a listing of
    65,536 names. Each checks that the node stays alive and answering,
    that it refuses what is past its limits with the error it promises,
    and that its memory stays bounded; each is bounded in time (a watchdog
    and deadlines on every wait).

    Figures are printed as "figure:" lines: the node's RSS before and
    after each attack, its CPU time while out of descriptors, the time to
    list 65,536 names. RSS is not asserted when the node runs under
    valgrind or a sanitizer (harness_instrumented).

    LIMITS_OLD_NODE=1 leaves out of the node's command line every option
    that a node from before the limits (9eb0aaf) does not know, so that
    these tests can be run against such a binary (IPC_NODE=...) to see
    what it did; they must fail there.

    Run one test: tests/node/test_limits 'test_limits_hello*'
*/

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <cmocka.h>
#include <zmq.h>

#include "harness.h"
#include "proto.h"

#define WAIT_MS         5000    /* longest wait for something that must come */
#define QUIET_MS        300     /* how long to wait for something that must not */
#define NODE            "limits"

static const char *s_names[1] = { NODE };

typedef struct {
    node_t n[1];
    ipcnet_t *q[1];
} fx_t;

/* --- fixtures ------------------------------------------------------------ */

static int setup(void **state)
{
    return harness_state_new(state, sizeof (fx_t));
}

static int teardown(void **state)
{
    fx_t *f = *state;
    harness_node_nofile(0);
    int rc = harness_teardown_nodes(f->n, f->q, s_names, 1);
    harness_watchdog(NULL, 0);
    free(f);
    return rc;
}

#define WATCH(secs) harness_watchdog(__func__, (secs))

/* The options of the limits, unknown to a node built before them. */
static int s_new_option(const char *arg)
{
    static const char *const opts[] = {
        "--max-peers", "--max-unverified", "--max-peer-names", "--max-peer-subscriptions",
        "--max-peer-requests", "--max-clients-per-uid", "--hello-timeout", "--frame-timeout",
        "--max-unfinished", "--max-names", "--max-subscriptions", "--max-watches",
        "--max-requests", "--max-node-requests",
    };
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        if (strcmp(arg, opts[i]) == 0)
            return 1;
    return 0;
}

/* Starts the node (harness_start_named: loopback only, no mDNS, a cluster
   of this test process's own) with the NULL-terminated options, each
   followed by its value. */
static void s_start(fx_t *f, ...)
{
    const char *old = getenv("LIMITS_OLD_NODE");
    int drop = old && *old && strcmp(old, "0") != 0;
    char *extra[24];
    int n = 0;
    va_list ap;
    va_start(ap, f);
    char *a;
    while ((a = va_arg(ap, char *)) && n < 22) {
        char *v = va_arg(ap, char *);
        if (drop && s_new_option(a)) {
            print_message("(LIMITS_OLD_NODE: leaving out %s %s)\n", a, v);
            continue;
        }
        extra[n++] = a;
        extra[n++] = v;
    }
    va_end(ap);
    extra[n] = NULL;
    int rc = harness_start_named(&f->n[0], NODE, extra);
    if (rc < 0)
        fail_msg("cannot start the node: %s", strerror(-rc));
}

static ipcnet_t *s_q(fx_t *f)
{
    return harness_query_conn(&f->n[0], NODE, &f->q[0]);
}

/* The cluster of the harness's nodes (harness_launch). */
static const char *s_cluster(void)
{
    static char cluster[32];
    snprintf(cluster, sizeof cluster, "test-%d", (int) getpid());
    return cluster;
}

/* --- figures --------------------------------------------------------------- */

static long s_rss(fx_t *f)
{
    return harness_rss_kib(f->n[0].pid);
}

/* How many descriptors the node has open. */
static int s_fds(fx_t *f)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int) f->n[0].pid);
    int fds = 0;
    DIR *dir = opendir(path);
    for (struct dirent *e; dir && (e = readdir(dir));)
        fds += e->d_name[0] != '.';
    if (dir)
        closedir(dir);
    return fds;
}

/* Prints the node's RSS before and after an attack, and fails if it grew
   by more than limit_kib (unless the node is instrumented). */
static void s_rss_check(fx_t *f, const char *what, long before, long after, long limit_kib)
{
    print_message("figure: %s: node RSS %ld KiB before, %ld KiB after (%+ld KiB; "
                  "bound %+ld KiB)\n", what, before, after, after - before, limit_kib);
    if (harness_instrumented(f->n[0].pid)) {
        print_message("(the node is instrumented: its RSS is not checked)\n");
        return;
    }
    assert_true(before > 0 && after > 0);
    if (after - before > limit_kib)
        fail_msg("%s: the node's RSS grew by %ld KiB (more than %ld KiB)", what,
                 after - before, limit_kib);
}

/* The node serves a new client: it binds a name and sends itself a message. */
static void s_still_serves(fx_t *f, const char *name)
{
    if (!harness_alive(&f->n[0]))
        fail_msg("the node died");
    ipcnet_t *c = harness_holder(&f->n[0], NODE, "after", name);
    harness_send(c, name, "still here", IPCNET_CONFIRM);
    harness_expect_text(c, IPCNET_MSG_SEND, name, "still here");
    assert_true(harness_has_service(s_q(f), name, NODE, NULL, NULL));
    harness_client_close(&c);
}

/* --- the peers listing ------------------------------------------------------ */

typedef struct {
    int rows;                   /* peers, the node itself not counted */
    int not_up;                 /* of them, not up: being dialled, not met */
} peer_count_t;

/* Counts the rows of the node's peers listing; calls fn (if not NULL) for
   each peer's address. */
static peer_count_t s_peers(fx_t *f, void (*fn) (const char *address, void *arg), void *arg)
{
    peer_count_t pc = { 0, 0 };
    char *t = harness_query(s_q(f), IPCNET_Q_PEERS);
    for (char *line = t; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = 0;
        char *fl[8];
        int n = 0;
        for (char *p = line; n < 8;) {
            fl[n++] = p;
            if (!(p = strchr(p, '\t')))
                break;
            *p++ = 0;
        }
        if (n != 8)
            fail_msg("a peers row with %d fields, not 8", n);
        if (strcmp(fl[3], "self") != 0) {
            pc.rows++;
            pc.not_up += strcmp(fl[4], "up") != 0;
            if (fn)
                fn(fl[2], arg);
        }
        line = nl ? nl + 1 : NULL;
    }
    free(t);
    return pc;
}

/* --- hostile peers ------------------------------------------------------------ */

/* The node's public key (Z85), from node.key in its state directory.
   Its socket accepts before its key is made: a query waits for the node
   to be serving. */
static void s_node_key(const node_t *n, char z85[41])
{
    assert_true(harness_node_port(n) > 0);
    char path[200];
    snprintf(path, sizeof path, "%s/node.key", n->dir);
    char *file = harness_read_file(path);
    const char *at = strstr(file, "public-key = \"");
    if (!at || strlen(at) < 14 + 41 || at[14 + 40] != '"')
        fail_msg("%s holds no public key", path);
    memcpy(z85, at + 14, 40);
    z85[40] = 0;
    free(file);
}

/* A CURVE DEALER to the node's ROUTER (port) with a key pair of its own,
   routing id its key's id (returned in id). */
static void *s_dealer(void *ctx, int port, const char *server_z85, char id[33])
{
    char pub[41], sec[41];
    uint8_t mine[32];
    assert_int_equal(zmq_curve_keypair(pub, sec), 0);
    assert_non_null(zmq_z85_decode(mine, pub));
    proto_key_id(mine, id);
    void *d = zmq_socket(ctx, ZMQ_DEALER);
    if (!d)
        fail_msg("zmq_socket: %s", zmq_strerror(zmq_errno()));
    int zero = 0;
    zmq_setsockopt(d, ZMQ_ROUTING_ID, id, 32);
    zmq_setsockopt(d, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(d, ZMQ_CURVE_SERVERKEY, server_z85, 40);
    zmq_setsockopt(d, ZMQ_CURVE_PUBLICKEY, pub, 40);
    zmq_setsockopt(d, ZMQ_CURVE_SECRETKEY, sec, 40);
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", port);
    if (zmq_connect(d, ep) < 0)
        fail_msg("zmq_connect %s: %s", ep, zmq_strerror(zmq_errno()));
    return d;
}

/* A HELLO of our cluster from id, listening (it says) on port 1, where
   nothing answers the node's dial back. */
static void s_hello(proto_buf_t *b, const char *id, const char *name)
{
    uint64_t inc;
    if (getrandom(&inc, sizeof inc, 0) != sizeof inc)
        inc = (uint64_t) harness_now_ms();
    proto_begin(b, P_HELLO, 0, 1);
    proto_str(b, id, strlen(id));
    proto_str(b, name, strlen(name));
    proto_str(b, s_cluster(), strlen(s_cluster()));
    proto_u16(b, 1);
    proto_u64(b, inc);
    proto_u32(b, 500);
}

/* Receives one message on a DEALER within timeout_ms and decodes it into
   *m (views into buf). Returns its size, or -1. */
static int s_zrecv(void *d, uint8_t *buf, size_t cap, int timeout_ms, proto_msg_t *m)
{
    zmq_pollitem_t item = { d, 0, ZMQ_POLLIN, 0 };
    if (zmq_poll(&item, 1, timeout_ms) <= 0)
        return -1;
    int n = zmq_recv(d, buf, cap, ZMQ_DONTWAIT);
    if (n < 0 || (size_t) n > cap || proto_decode(buf, (size_t) n, m) < 0)
        return -1;
    return n;
}

static void s_zsend(void *d, const proto_buf_t *b)
{
    assert_false(b->failed);
    if (zmq_send(d, b->data, b->len, 0) != (int) b->len)
        fail_msg("zmq_send: %s", zmq_strerror(zmq_errno()));
}

/* A hostile peer that the node has greeted: its HELLO (seq 1) answered
   with HELLO_ACK. What it sends next the node takes (section 7.1), until
   it forgets it for never answering its dials (about 15 s). */
static void *s_greeted_peer(fx_t *f, void *ctx, const char *name, char id[33])
{
    char z85[41];
    s_node_key(&f->n[0], z85);
    int port = harness_node_port(&f->n[0]);
    assert_true(port > 0);
    void *d = s_dealer(ctx, port, z85, id);
    proto_buf_t b = { 0 };
    s_hello(&b, id, name);
    s_zsend(d, &b);
    proto_free(&b);
    uint8_t buf[512];
    proto_msg_t m;
    if (s_zrecv(d, buf, sizeof buf, WAIT_MS, &m) < 0)
        fail_msg("no answer to the HELLO of %s", name);
    if (m.type != P_HELLO_ACK)
        fail_msg("the HELLO of %s was answered with type %u (error %u), not HELLO_ACK", name,
                 m.type, m.error);
    return d;
}

/* The node has handled everything the peer sent before: a PING with seq
   is answered PONG on the same connection, in order. */
static void s_zsync(void *d, uint32_t seq)
{
    proto_buf_t b = { 0 };
    proto_begin(&b, P_PING, 0, seq);
    proto_u64(&b, 0x5eed);
    s_zsend(d, &b);
    proto_free(&b);
    uint8_t buf[512];
    proto_msg_t m;
    int64_t deadline = harness_now_ms() + 20000;
    while (harness_now_ms() < deadline) {
        if (s_zrecv(d, buf, sizeof buf, 1000, &m) >= 0 && m.type == P_PONG && m.stamp == 0x5eed)
            return;
    }
    fail_msg("no PONG to the PING of seq %u: the node did not read what came before", seq);
}

/* --- 1: HELLOs from more nodes than it may take --------------------------------- */

#define FLOOD           1100        /* more than the old node's ~1,021 sockets */
#define FLOOD_PEERS     32
#define FLOOD_UNMET     8
#define EARLY_MS        14000       /* before any peer taken can be forgotten */

/* 1,100 DEALERs, each with a CURVE key of its own, say HELLO of our
   cluster: the node takes --max-unverified of them (it cannot meet them:
   nothing answers its dial back), answers every other FAIL EUSERS, never
   lists more than --max-peers, stays alive and serves a client. (Before
   the limits it took them all, a DEALER each, until czmq asserted.) */
static void test_limits_hello_flood(void **state)
{
    fx_t *f = *state;
    WATCH(120);
    harness_raise_nofile(3 * FLOOD + 256);
    s_start(f, "--max-peers", "32", "--max-unverified", "8", NULL);
    char z85[41];
    s_node_key(&f->n[0], z85);
    int port = harness_node_port(&f->n[0]);
    assert_true(port > 0);
    long rss0 = s_rss(f);

    void *ctx = zmq_ctx_new();
    assert_non_null(ctx);
    assert_int_equal(zmq_ctx_set(ctx, ZMQ_MAX_SOCKETS, FLOOD + 64), 0);
    void **d = calloc(FLOOD, sizeof *d);
    zmq_pollitem_t *items = calloc(FLOOD, sizeof *items);
    int *answer = calloc(FLOOD, sizeof *answer);     /* 0 none, 1 ACK, 2 EUSERS, 3 other */
    assert_true(d && items && answer);
    proto_buf_t b = { 0 };
    int64_t t0 = harness_now_ms();
    for (int i = 0; i < FLOOD; i++) {
        char id[33], name[32];
        d[i] = s_dealer(ctx, port, z85, id);
        snprintf(name, sizeof name, "flood-%d", i);
        s_hello(&b, id, name);
        s_zsend(d[i], &b);
        items[i] = (zmq_pollitem_t) { d[i], 0, ZMQ_POLLIN, 0 };
    }
    proto_free(&b);
    int64_t sent_ms = harness_now_ms() - t0;

    /* Every HELLO gets an answer: HELLO_ACK while there is room, FAIL
       EUSERS beyond; meanwhile the listing never passes the limits. */
    int answered = 0, acks = 0, early_acks = 0, eusers = 0, others = 0, polls = 0;
    peer_count_t most = { 0, 0 };
    int64_t next_list = 0, deadline = t0 + 30000;
    while (answered < FLOOD && harness_now_ms() < deadline) {
        int r = zmq_poll(items, FLOOD, 100);
        for (int i = 0; r > 0 && i < FLOOD; i++) {
            if (!(items[i].revents & ZMQ_POLLIN))
                continue;
            uint8_t buf[512];
            proto_msg_t m;
            int n = zmq_recv(d[i], buf, sizeof buf, ZMQ_DONTWAIT);
            if (n < 0 || answer[i])
                continue;
            answered++;
            if (n > (int) sizeof buf || proto_decode(buf, (size_t) n, &m) < 0)
                answer[i] = 3;
            else if (m.type == P_HELLO_ACK)
                answer[i] = 1;
            else if (m.type == P_FAIL && m.error == EUSERS)
                answer[i] = 2;
            else
                answer[i] = 3;
            acks += answer[i] == 1;
            early_acks += answer[i] == 1 && harness_now_ms() < t0 + EARLY_MS;
            eusers += answer[i] == 2;
            others += answer[i] == 3;
        }
        if (harness_now_ms() >= next_list) {
            if (!harness_alive(&f->n[0]))
                fail_msg("the node died after %d answers", answered);
            peer_count_t pc = s_peers(f, NULL, NULL);
            most.rows = pc.rows > most.rows ? pc.rows : most.rows;
            most.not_up = pc.not_up > most.not_up ? pc.not_up : most.not_up;
            polls++;
            next_list = harness_now_ms() + 250;
        }
    }
    int64_t took = harness_now_ms() - t0;
    long rss_flood = s_rss(f);
    int fds_flood = s_fds(f);
    for (int i = 0; i < FLOOD; i++)
        zmq_close(d[i]);
    zmq_ctx_term(ctx);
    free(d);
    free(items);
    free(answer);
    print_message("figure: hello flood: %d HELLOs sent in %lld ms; within %lld ms %d answered: "
                  "%d HELLO_ACK (%d in the first %d s), %d FAIL EUSERS, %d other; the peers "
                  "listing (%d looks) held at most %d peers, %d not up\n", FLOOD,
                  (long long) sent_ms, (long long) took, answered, acks, early_acks,
                  EARLY_MS / 1000, eusers, others, polls, most.rows, most.not_up);

    assert_true(harness_alive(&f->n[0]));
    assert_int_equal(others, 0);
    assert_true(acks >= 1);
    /* No peer is forgotten within 15 s of its dial (three dials 5 s apart):
       till then the room taken stays taken. Later, room frees as they are
       forgotten (a slow node, under valgrind, is still answering then). */
    if (early_acks > FLOOD_UNMET)
        fail_msg("%d HELLOs taken within %d s, more than --max-unverified %d", early_acks,
                 EARLY_MS / 1000, FLOOD_UNMET);
    if (acks > FLOOD_UNMET * (1 + took / 15000))
        fail_msg("%d HELLOs taken in %lld ms, more than --max-unverified %d each 15 s", acks,
                 (long long) took, FLOOD_UNMET);
    if (eusers < FLOOD - FLOOD_PEERS)
        fail_msg("only %d HELLOs refused with EUSERS (%d answered of %d)", eusers, answered,
                 FLOOD);
    assert_true(most.rows <= FLOOD_PEERS);
    assert_true(most.not_up <= FLOOD_UNMET);

    s_still_serves(f, "svc.after.flood");
    long rss1 = s_rss(f);
    print_message("figure: hello flood: node RSS %ld KiB and %d descriptors with %d CURVE "
                  "connections open\n", rss_flood, fds_flood, FLOOD);
    s_rss_check(f, "hello flood", rss0, rss1 > rss_flood ? rss1 : rss_flood, 128 * 1024);
}

/* --- 2: gossip of more nodes than it may dial ------------------------------------ */

#define FAKES           1024        /* one PEERS message's most */
#define FAKE_WATCH_MS   22000
#define FAKE_LIFE_MS    20000       /* three dials 5 s apart, then forgotten */

typedef struct {
    int *by_port;               /* port -> fake index, or -1 */
    int64_t *first, *last;      /* when each fake was first and last listed */
    int64_t now;
} fakes_seen_t;

static void s_fake_listed(const char *address, void *arg)
{
    fakes_seen_t *s = arg;
    const char *colon = strrchr(address, ':');
    long port = colon ? strtol(colon + 1, NULL, 10) : -1;
    if (port <= 0 || port > 65535 || s->by_port[port] < 0)
        return;
    int i = s->by_port[port];
    if (!s->first[i])
        s->first[i] = s->now;
    s->last[i] = s->now;
}

/* A peer the node greeted gossips 1,024 nodes it never met, each a key and
   a TCP listener of ours whose accepts count the node's dials: the node
   dials --max-unverified at a time, each at most three times, forgets
   each within 20 s, drops what its queue (256) cannot hold and says so,
   never lists more than its limits, and its memory stays flat. (Before:
   a DEALER for each, until czmq asserted.) */
static void test_limits_gossip_flood(void **state)
{
    fx_t *f = *state;
    WATCH(90);
    harness_raise_nofile(FAKES + 1024);
    s_start(f, "--max-peers", "32", "--max-unverified", "8", NULL);

    /* The fakes: a key each (its id the key's), and a TCP listener each
       whose accepts count the node's dials. */
    int *lfd = calloc(FAKES, sizeof *lfd), *dials = calloc(FAKES, sizeof *dials);
    uint8_t (*key)[32] = calloc(FAKES, sizeof *key);
    fakes_seen_t seen = { calloc(65536, sizeof (int)), calloc(FAKES, sizeof (int64_t)),
                          calloc(FAKES, sizeof (int64_t)), 0 };
    struct pollfd *pfd = calloc(FAKES, sizeof *pfd);
    assert_true(lfd && dials && key && seen.by_port && seen.first && seen.last && pfd);
    memset(seen.by_port, 0xff, 65536 * sizeof (int));
    proto_buf_t b = { 0 };
    proto_list_begin(&b, P_PEERS);
    for (int i = 0; i < FAKES; i++) {
        lfd[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        assert_true(lfd[i] >= 0);
        struct sockaddr_in sa = { .sin_family = AF_INET };
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof sa;
        assert_int_equal(bind(lfd[i], (struct sockaddr *) &sa, sizeof sa), 0);
        assert_int_equal(listen(lfd[i], 16), 0);
        assert_int_equal(getsockname(lfd[i], (struct sockaddr *) &sa, &len), 0);
        int port = ntohs(sa.sin_port);
        seen.by_port[port] = i;
        pfd[i] = (struct pollfd) { lfd[i], POLLIN, 0 };
        assert_int_equal(getrandom(key[i], 32, 0), 32);
        char id[33], name[32], ep[64];
        proto_key_id(key[i], id);
        snprintf(name, sizeof name, "fake-%d", i);
        snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", port);
        proto_list_add_peer(&b, id, name, ep, key[i]);
    }
    assert_int_equal(proto_list_count(&b), FAKES);
    proto_set_seq(&b, 2);

    void *ctx = zmq_ctx_new();
    char gid[33];
    void *d = s_greeted_peer(f, ctx, "gossiper", gid);
    long rss0 = s_rss(f);
    int64_t t0 = harness_now_ms();
    s_zsend(d, &b);
    proto_free(&b);

    peer_count_t most = { 0, 0 };
    long rss_most = rss0;
    int64_t next_list = 0;
    while ((seen.now = harness_now_ms()) < t0 + FAKE_WATCH_MS) {
        if (poll(pfd, FAKES, 50) > 0)
            for (int i = 0; i < FAKES; i++) {
                if (!(pfd[i].revents & POLLIN))
                    continue;
                int c;
                while ((c = accept4(lfd[i], NULL, NULL, SOCK_CLOEXEC)) >= 0) {
                    dials[i]++;
                    close(c);
                }
            }
        if (seen.now >= next_list) {
            if (!harness_alive(&f->n[0]))
                fail_msg("the node died %lld ms after the PEERS", (long long) (seen.now - t0));
            peer_count_t pc = s_peers(f, s_fake_listed, &seen);
            most.rows = pc.rows > most.rows ? pc.rows : most.rows;
            most.not_up = pc.not_up > most.not_up ? pc.not_up : most.not_up;
            long rss = s_rss(f);
            rss_most = rss > rss_most ? rss : rss_most;
            next_list = seen.now + 500;
        }
    }
    zmq_close(d);
    zmq_ctx_term(ctx);

    int dialled = 0, listed = 0, most_dials = 0, total = 0, worst = -1;
    int64_t longest = 0;
    for (int i = 0; i < FAKES; i++) {
        dialled += dials[i] > 0;
        total += dials[i];
        most_dials = dials[i] > most_dials ? dials[i] : most_dials;
        if (seen.first[i]) {
            listed++;
            if (seen.last[i] - seen.first[i] > longest) {
                longest = seen.last[i] - seen.first[i];
                worst = i;
            }
        }
    }
    print_message("figure: gossip flood: %d fakes gossiped; over %d s the node dialled %d of "
                  "them (%d dials, at most %d to one), listed %d, each for at most %lld ms; "
                  "at most %d peers listed, %d not up\n", FAKES, FAKE_WATCH_MS / 1000, dialled,
                  total, most_dials, listed, (long long) longest, most.rows, most.not_up);
    assert_true(harness_alive(&f->n[0]));
    assert_true(most.rows <= 32);
    assert_true(most.not_up <= 8);
    if (most_dials > 3)
        fail_msg("a fake was dialled %d times (at most 3 for a node never met)", most_dials);
    assert_true(dialled >= 4);
    if (longest > FAKE_LIFE_MS)
        fail_msg("fake %d was listed for %lld ms (forgotten after three dials 5 s apart)",
                 worst, (long long) longest);
    /* Past the queue of 256, the rest were dropped and said to be. */
    assert_true(harness_count_lines(f->n[0].log, "heard of more nodes than can wait") >= 1);
    assert_true(harness_count_lines(f->n[0].log, "never answered (3 dials): forgetting it") >= 1);
    for (int i = 0; i < FAKES; i++)
        close(lfd[i]);
    free(lfd);
    free(dials);
    free(key);
    free(seen.by_port);
    free(seen.first);
    free(seen.last);
    free(pfd);
    s_still_serves(f, "svc.after.gossip");
    s_rss_check(f, "gossip flood", rss0, rss_most, 32 * 1024);
}

/* --- 3: more names and patterns from one peer than it may keep -------------------- */

#define PEER_NAMES      65536       /* sent: 64 lists of 1024 */
#define PEER_NAMES_CAP  1000
#define PEER_SUBS       4096
#define PEER_SUBS_CAP   100
#define LONG_NAME       200

/* One greeted peer advertises 65,536 names of 200 bytes, another 4,096
   patterns: the node keeps --max-peer-names and --max-peer-subscriptions
   of them, lists exactly --max-peer-names, says each once, and its memory
   stays flat. (Before: all kept.) */
static void test_limits_peer_names(void **state)
{
    fx_t *f = *state;
    WATCH(90);
    s_start(f, "--max-peer-names", "1000", "--max-peer-subscriptions", "100", NULL);
    void *ctx = zmq_ctx_new();
    char id[33], id2[33];
    void *d = s_greeted_peer(f, ctx, "namer", id);
    void *d2 = s_greeted_peer(f, ctx, "subscriber", id2);
    long rss0 = s_rss(f);
    int64_t t0 = harness_now_ms();
    proto_buf_t b = { 0 };
    uint32_t seq = 2;
    char name[LONG_NAME + 1];
    for (int i = 0; i < PEER_NAMES; i += PROTO_LIST_MAX) {
        proto_list_begin(&b, P_NAMES_ADD);
        for (int k = i; k < i + PROTO_LIST_MAX && k < PEER_NAMES; k++) {
            int n = snprintf(name, sizeof name, "peer.name.%06d.", k);
            memset(name + n, 'x', LONG_NAME - (size_t) n);
            proto_list_add(&b, name, LONG_NAME);
        }
        proto_set_seq(&b, seq++);
        s_zsend(d, &b);
    }
    uint32_t seq2 = 2;
    for (int i = 0; i < PEER_SUBS; i += PROTO_LIST_MAX) {
        proto_list_begin(&b, P_SUBS_ADD);
        for (int k = i; k < i + PROTO_LIST_MAX && k < PEER_SUBS; k++) {
            int n = snprintf(name, sizeof name, "peer.topic.%06d.*", k);
            proto_list_add(&b, name, (size_t) n);
        }
        proto_set_seq(&b, seq2++);
        s_zsend(d2, &b);
    }
    proto_free(&b);
    s_zsync(d, seq++);
    s_zsync(d2, seq2++);
    int64_t took = harness_now_ms() - t0;
    long rss1 = s_rss(f);

    char *t = harness_query(s_q(f), IPCNET_Q_SERVICES);
    int held = 0;
    for (char *line = t; line && *line;) {
        char *tab = strchr(line, '\t');
        held += tab && strncmp(tab + 1, "namer\t", 6) == 0;
        line = strchr(line, '\n');
        line = line ? line + 1 : NULL;
    }
    free(t);
    zmq_close(d);
    zmq_close(d2);
    zmq_ctx_term(ctx);
    print_message("figure: peer names: %d names of %d bytes from one peer, %d patterns from "
                  "another, sent in %lld ms; %d names listed\n", PEER_NAMES, LONG_NAME,
                  PEER_SUBS, (long long) took, held);
    assert_true(harness_alive(&f->n[0]));
    if (held != PEER_NAMES_CAP)
        fail_msg("the node lists %d names of the peer, not --max-peer-names %d", held,
                 PEER_NAMES_CAP);
    /* Said once (a minute), not once per name. */
    assert_int_equal(harness_count_lines(f->n[0].log,
                                         "holds more than 1000 names (--max-peer-names)"), 1);
    assert_int_equal(harness_count_lines(f->n[0].log, "holds more than 100 patterns "
                                         "(--max-peer-subscriptions)"), 1);
    s_still_serves(f, "svc.after.names");
    s_rss_check(f, "peer names", rss0, rss1, 16 * 1024);
}

int main(int argc, char **argv)
{
    harness_main(argc, argv, WAIT_MS, QUIET_MS);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_limits_hello_flood, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits_gossip_flood, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits_peer_names, setup, teardown),
    };
    return cmocka_run_group_tests_name("limits", tests, NULL, NULL);
}
