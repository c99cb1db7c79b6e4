/*  test_cluster.c: several ipc-node daemons talking to each other.

    Every test starts its own nodes (real processes, each in its own
    temporary directory with its own socket and state directory) that meet
    over ZeroMQ on 127.0.0.1 only, and talks to them through libipcnet. A
    watchdog bounds each test; every wait polls a condition with a
    deadline; every node is stopped by pid with SIGTERM and must exit 0,
    except the ones a test kills on purpose.

    Liveness figures (the time from kill() to what another node observes)
    are printed; the bounds asserted are the product's promises: a node
    killed with SIGKILL is lost within 2 s with the default heartbeat
    (500 ms) and within 1 s with --heartbeat 300; a node stopped with
    SIGTERM is dropped at once (< 500 ms).

    Run one test: tests/node/test_cluster 'test_cluster_liveness*'
*/

#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
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

#define NODES           5
#define WAIT_MS         5000    /* longest wait for something that must come */
#define QUIET_MS        300     /* how long to wait for something that must not */
#define MESH_MS         5000    /* a cluster must be meshed within this */
#define POLL_MS         20      /* polling period of liveness observations */
#define LOST_DEFAULT_MS 2000    /* promise: SIGKILLed node lost, default heartbeat */
#define LOST_FAST_MS    1000    /* promise: the same with --heartbeat 300 */
#define BYE_MS          500     /* promise: a node stopped with SIGTERM is dropped */
#define RESTART_MS      5000    /* a restarted node is back within this */

static const char *s_names[NODES] = { "alpha", "beta", "gamma", "delta", "epsilon" };

typedef struct {
    node_t n[NODES];
    int port[NODES];
    const char *heartbeat;      /* --heartbeat for every node, or NULL */
    ipcnet_t *q[NODES];         /* query connection to each node */
} fx_t;

/* --- fixtures ------------------------------------------------------------ */

static int setup(void **state)
{
    return harness_state_new(state, sizeof (fx_t));
}

static int teardown(void **state)
{
    fx_t *f = *state;
    int rc = harness_teardown_nodes(f->n, f->q, s_names, NODES);
    harness_watchdog(NULL, 0);
    free(f);
    return rc;
}

#define WATCH(secs) harness_watchdog(__func__, (secs))

/* --- nodes --------------------------------------------------------------- */

/* Starts node i ("alpha", "beta", ...) with --peer to node seed (-1: none),
   on port (0: any free one), with f->heartbeat. */
static void s_launch(fx_t *f, int i, int seed, int port, int restart)
{
    char peer[64], portarg[16];
    char *extra[12];
    int n = 0;
    if (seed >= 0) {
        assert_true(f->port[seed] > 0);
        snprintf(peer, sizeof peer, "tcp://127.0.0.1:%d", f->port[seed]);
        extra[n++] = "--peer";
        extra[n++] = peer;
    }
    if (f->heartbeat) {
        extra[n++] = "--heartbeat";
        extra[n++] = (char *) f->heartbeat;
    }
    snprintf(portarg, sizeof portarg, "%d", port);
    extra[n++] = "--port";
    extra[n++] = portarg;
    extra[n] = NULL;
    int rc = restart ? harness_restart_named(&f->n[i], s_names[i], extra)
                     : harness_start_named(&f->n[i], s_names[i], extra);
    if (rc < 0) {
        if (port) {
            char cmd[128];
            /* Who holds the port (a diagnosis, if ss is there). */
            snprintf(cmd, sizeof cmd, "echo 'sockets on port %d:' >&2; "
                     "ss -tanp 2>/dev/null | grep ':%d ' >&2", port, port);
            if (system(cmd) < 0)
                print_message("(ss failed)\n");
        }
        fail_msg("cannot %s node %s: %s", restart ? "restart" : "start", s_names[i],
                 strerror(-rc));
    }
    int p = harness_node_port(&f->n[i]);
    if (p <= 0)
        fail_msg("node %s: cannot read its port: %s", s_names[i], strerror(-p));
    if (port)
        assert_int_equal(p, port);
    f->port[i] = p;
}

static void s_start(fx_t *f, int i, int seed)
{
    s_launch(f, i, seed, 0, 0);
}

/* For a node to be restarted on the same port: a fixed port, below the
   ephemeral range (see harness_free_port). */
static void s_start_fixed(fx_t *f, int i, int seed)
{
    s_launch(f, i, seed, harness_fixed_port(), 0);
}

/* SIGKILL, keeping the directory (state dir, node id) for a restart. */
static int64_t s_crash(fx_t *f, int i)
{
    ipcnet_close(&f->q[i]);
    int64_t t0 = harness_now_ms();
    kill(f->n[i].pid, SIGKILL);
    harness_crash(&f->n[i]);
    return t0;
}

/* --- clients ------------------------------------------------------------- */

/* A client of node i, closed by the teardown. */
static ipcnet_t *s_conn(fx_t *f, int i, const char *label)
{
    return harness_client(&f->n[i], s_names[i], label);
}

/* A client of node i that holds name. */
static ipcnet_t *s_holder(fx_t *f, int i, const char *label, const char *name)
{
    return harness_holder(&f->n[i], s_names[i], label, name);
}

static const char *s_event(int ev)
{
    switch (ev) {
    case IPCNET_EV_NAME_UP:   return "NAME_UP";
    case IPCNET_EV_NAME_DOWN: return "NAME_DOWN";
    case IPCNET_EV_PEER_UP:   return "PEER_UP";
    case IPCNET_EV_PEER_DOWN: return "PEER_DOWN";
    }
    return "?";
}

/* Waits for one event (kind, name, node) on a watcher, skipping other
   events; any other kind of message fails. Returns the time it took. */
static int64_t s_wait_event(ipcnet_t *w, int event, const char *name, const char *node,
                            int timeout_ms)
{
    int64_t t0 = harness_now_ms(), deadline = t0 + timeout_ms;
    for (;;) {
        int left = (int) (deadline - harness_now_ms());
        if (left <= 0)
            fail_msg("no %s event for '%s' on node '%s' within %d ms", s_event(event), name,
                     node, timeout_ms);
        ipcnet_msg_t m;
        int rc = ipcnet_recv(w, &m, left);
        if (rc == -ETIMEDOUT || rc == -EAGAIN)
            continue;
        if (rc < 0)
            fail_msg("watcher: %s", ipcnet_strerror(rc));
        if (m.kind != IPCNET_MSG_EVENT)
            fail_msg("watcher got a %s message", harness_kind_name(m.kind));
        if (m.event == event && strcmp(m.name, name) == 0 && strcmp(m.node, node) == 0)
            return harness_now_ms() - t0;
    }
}

/* --- listings ------------------------------------------------------------ */

static ipcnet_t *s_q(fx_t *f, int i)
{
    return harness_query_conn(&f->n[i], s_names[i], &f->q[i]);
}

typedef harness_peer_t peer_row_t;

/* The line of peer name in node i's PEERS listing. Returns 1 if found. The
   first line must be the node itself, with source "self". */
static int s_peer(fx_t *f, int i, const char *name, peer_row_t *ret)
{
    return harness_peer(s_q(f, i), s_names[i], name, ret);
}

static int s_peer_up(fx_t *f, int i, const char *name)
{
    peer_row_t r;
    return s_peer(f, i, name, &r) && strcmp(r.state, "up") == 0;
}

/* How many peers (not itself) node i lists as up. */
static int s_count_up(fx_t *f, int i)
{
    return harness_peers_up(s_q(f, i));
}

static void s_dump(fx_t *f, int i, int what)
{
    if (f->n[i].pid <= 0)
        return;
    char *text = NULL;
    if (ipcnet_query(s_q(f, i), what, &text) == 0) {
        print_message("node %s %s:\n%s", s_names[i], what == IPCNET_Q_PEERS ? "peers" : "services",
                      text);
        free(text);
    }
}

/* Waits until each of the first count nodes (skipping node skip) sees
   every other one up. Returns the time it took. */
static int64_t s_wait_mesh_but(fx_t *f, int count, int skip, int timeout_ms)
{
    int64_t t0 = harness_now_ms(), deadline = t0 + timeout_ms;
    for (;;) {
        int ok = 1;
        for (int i = 0; ok && i < count; i++)
            for (int k = 0; ok && k < count; k++)
                if (i != k && i != skip && k != skip && !s_peer_up(f, i, s_names[k]))
                    ok = 0;
        if (ok)
            return harness_now_ms() - t0;
        if (harness_now_ms() > deadline) {
            for (int i = 0; i < count; i++)
                if (i != skip)
                    s_dump(f, i, IPCNET_Q_PEERS);
            fail_msg("%d nodes not meshed within %d ms", count - (skip >= 0), timeout_ms);
        }
        usleep(POLL_MS * 1000);
    }
}

static int64_t s_wait_mesh(fx_t *f, int count)
{
    return s_wait_mesh_but(f, count, -1, MESH_MS);
}

/* Starts nodes 0 to count - 1, node 0 the seed of the others, and waits
   until they are meshed. */
static void s_start_mesh(fx_t *f, int count)
{
    s_start(f, 0, -1);
    for (int i = 1; i < count; i++)
        s_start(f, i, 0);
    s_wait_mesh(f, count);
}

/* Does node i list name as held on node `node`? With holder non-NULL, the
   holder and label columns must match too. */
static int s_has_service(fx_t *f, int i, const char *name, const char *node,
                         const char *holder, const char *label)
{
    return harness_has_service(s_q(f, i), name, node, holder, label);
}

/* Waits until node i lists (present) or no longer lists name@node. */
static int64_t s_wait_service(fx_t *f, int i, const char *name, const char *node,
                              int present, int timeout_ms)
{
    int64_t t0 = harness_now_ms(), deadline = t0 + timeout_ms;
    for (;;) {
        if (s_has_service(f, i, name, node, NULL, NULL) == present)
            return harness_now_ms() - t0;
        if (harness_now_ms() > deadline) {
            s_dump(f, i, IPCNET_Q_SERVICES);
            fail_msg("node %s: '%s' on %s still %s after %d ms", s_names[i], name, node,
                     present ? "missing" : "listed", timeout_ms);
        }
        usleep(POLL_MS * 1000);
    }
}

/* A client of node i that holds name, once node seen_by lists it. */
static ipcnet_t *s_listed_holder(fx_t *f, int i, const char *label, const char *name,
                                 int seen_by)
{
    ipcnet_t *c = s_holder(f, i, label, name);
    s_wait_service(f, seen_by, name, s_names[i], 1, WAIT_MS);
    return c;
}

/* Makes sure every node in targets (count nodes, skipping from) has handled
   everything node from told it so far: a fresh name bound on from travels
   the same link after it, so once the others list it they have the rest. */
static void s_fence(fx_t *f, int from, int count)
{
    static int serial;
    char name[64];
    snprintf(name, sizeof name, "fence.%d.%d", from, ++serial);
    ipcnet_t *c = s_conn(f, from, "fence");
    harness_bind(c, name);
    for (int i = 0; i < count; i++)
        if (i != from)
            s_wait_service(f, i, name, s_names[from], 1, WAIT_MS);
    harness_client_close(&c);
}

/* The id of node i as it says itself (its first PEERS line). */
static void s_self_id(fx_t *f, int i, char ret[64])
{
    peer_row_t r;
    assert_true(s_peer(f, i, s_names[i], &r));
    snprintf(ret, 64, "%s", r.id);
}

/* Node i's public key, from node.key in its state directory (Z85), and
   the id it implies: the key's first 16 bytes in hex. */
static void s_node_key(fx_t *f, int i, char z85[41], uint8_t key[32], char id[33])
{
    char path[200];
    snprintf(path, sizeof path, "%s/node.key", f->n[i].dir);
    char *file = harness_read_file(path);
    const char *at = strstr(file, "public-key = \"");
    if (!at || strlen(at) < 14 + 41 || at[14 + 40] != '"')
        fail_msg("%s holds no public key", path);
    memcpy(z85, at + 14, 40);
    z85[40] = 0;
    free(file);
    assert_non_null(zmq_z85_decode(key, z85));
    for (int k = 0; k < 16; k++)
        snprintf(id + 2 * k, 3, "%02x", key[k]);
}

/* --- peers --------------------------------------------------------------- */

/* Two nodes: the one given --peer lists the seed as static, both see each
   other up with the ids of the keys kept in their state directories, and
   the first line of each listing is the node itself. */
static void test_cluster_two_nodes(void **state)
{
    fx_t *f = *state;
    WATCH(60);
    s_start(f, 0, -1);
    s_start(f, 1, 0);
    int64_t took = s_wait_mesh(f, 2);
    print_message("two nodes meshed in %lld ms\n", (long long) took);

    for (int i = 0; i < 2; i++) {
        char z85[41], id[33];
        uint8_t key[32];
        s_node_key(f, i, z85, key, id);
        char self[64];
        s_self_id(f, i, self);
        assert_string_equal(self, id);
        peer_row_t r;
        assert_true(s_peer(f, i, s_names[i], &r));
        assert_string_equal(r.key, z85);
        assert_true(s_peer(f, 1 - i, s_names[i], &r));
        assert_string_equal(r.id, id);              /* the other knows it by that id */
        assert_string_equal(r.key, z85);            /* and by that key */
        assert_string_equal(r.state, "up");
        char want[64];
        snprintf(want, sizeof want, "tcp://127.0.0.1:%d", f->port[i]);
        assert_string_equal(r.address, want);
    }
    peer_row_t r;
    assert_true(s_peer(f, 1, "alpha", &r));
    assert_string_equal(r.source, "static");
    /* alpha knows beta because beta dialled it. */
    assert_true(s_peer(f, 0, "beta", &r));
    if (!strstr(r.source, "incoming"))
        fail_msg("alpha lists beta with source '%s', not incoming", r.source);

    /* Each client knows its node. */
    ipcnet_t *a = s_conn(f, 0, "a");
    ipcnet_t *b = s_conn(f, 1, "b");
    assert_string_equal(ipcnet_node(a), "alpha");
    assert_string_equal(ipcnet_node(b), "beta");
    assert_non_null(strstr(ipcnet_address(b), "@beta"));
}

/* Gossip: gamma seeds only alpha, yet alpha, beta and gamma all see each
   other, and gamma knows beta through gossip. */
static void test_cluster_gossip_mesh(void **state)
{
    fx_t *f = *state;
    WATCH(60);
    s_start_mesh(f, 2);
    s_start(f, 2, 0);
    int64_t took = s_wait_mesh(f, 3);
    print_message("gamma joined the mesh through one seed in %lld ms\n", (long long) took);
    /* Every way each is known: beta and gamma hear of each other from
       alpha, and whichever dials first is also "incoming" to the other. */
    peer_row_t r, r2;
    assert_true(s_peer(f, 2, "beta", &r));
    if (!strstr(r.source, "gossip") && !strstr(r.source, "incoming"))
        fail_msg("gamma lists beta with source '%s'", r.source);
    assert_true(s_peer(f, 1, "gamma", &r2));
    if (!strstr(r.source, "gossip") && !strstr(r2.source, "gossip"))
        fail_msg("neither of beta and gamma heard of the other by gossip ('%s', '%s')",
                 r.source, r2.source);
    assert_true(s_peer(f, 2, "alpha", &r));
    assert_true(strncmp(r.source, "static", 6) == 0);     /* first of its ways */
    assert_true(s_peer(f, 1, "gamma", &r));
    if (!strstr(r.source, "gossip") && !strstr(r.source, "incoming"))
        fail_msg("beta lists gamma with source '%s'", r.source);
    for (int i = 0; i < 3; i++)
        assert_int_equal(s_count_up(f, i), 2);
}

/* --- send ---------------------------------------------------------------- */

/* n rounds of s[0] sending text[0] to dest[0] and s[1] text[1] to dest[1]
   (IPCNET_CONFIRM): h[k] gets text[k] n times, as sent to dest[k], and
   then nothing. */
static void s_send_pairs(ipcnet_t *const s[2], const char *const dest[2],
                         const char *const text[2], ipcnet_t *const h[2], int n)
{
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 2; k++)
            harness_send(s[k], dest[k], text[k], IPCNET_CONFIRM);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 2; k++)
            harness_expect_text(h[k], IPCNET_MSG_SEND, dest[k], text[k]);
    for (int k = 0; k < 2; k++)
        harness_expect_nothing(h[k]);
}

/* A name held only on beta: alpha lists it with holder "-", a send from
   alpha reaches it with the sender's address, in order. */
static void test_cluster_send_remote(void **state)
{
    fx_t *f = *state;
    WATCH(60);
    s_start_mesh(f, 2);
    ipcnet_t *h = s_holder(f, 1, "holder", "svc.remote");
    int64_t took = s_wait_service(f, 0, "svc.remote", "beta", 1, WAIT_MS);
    print_message("a name bound on beta listed on alpha after %lld ms\n", (long long) took);
    assert_true(s_has_service(f, 0, "svc.remote", "beta", "-", "-"));
    assert_true(s_has_service(f, 1, "svc.remote", "beta", ipcnet_address(h), "holder"));

    ipcnet_t *s = s_conn(f, 0, "sender");
    harness_send(s, "svc.remote", "hello", IPCNET_CONFIRM);
    ipcnet_msg_t m;
    harness_expect(h, IPCNET_MSG_SEND, &m);
    assert_string_equal(m.name, "svc.remote");
    assert_string_equal(m.source, ipcnet_address(s));
    assert_non_null(strstr(m.source, "@alpha"));
    assert_int_equal(m.size, 5);
    assert_memory_equal(m.data, "hello", 5);

    /* Empty payload, and a large one. */
    assert_int_equal(ipcnet_send(s, "svc.remote", NULL, 0, IPCNET_CONFIRM), 0);
    harness_expect(h, IPCNET_MSG_SEND, &m);
    assert_int_equal(m.size, 0);
    size_t big = 1024 * 1024 + 7;
    uint8_t *buf = malloc(big);
    assert_non_null(buf);
    for (size_t i = 0; i < big; i++)
        buf[i] = (uint8_t) (i * 31 + 7);
    /* Not with CONFIRM: that waits until beta has written it all to h's
       socket, more than the socket holds until h reads, which it does
       only after this call. */
    assert_int_equal(ipcnet_send(s, "svc.remote", buf, big, 0), 0);
    assert_int_equal(ipcnet_flush(s, WAIT_MS), 0);
    harness_expect(h, IPCNET_MSG_SEND, &m);
    assert_int_equal(m.size, big);
    assert_memory_equal(m.data, buf, big);

    /* A large publication reaches two subscribers on beta intact: they
       share its one copy in beta's memory. */
    ipcnet_t *sub1 = s_conn(f, 1, "sub1"), *sub2 = s_conn(f, 1, "sub2");
    assert_int_equal(ipcnet_subscribe(sub1, "big.*"), 0);
    assert_int_equal(ipcnet_subscribe(sub2, "big.data"), 0);
    s_fence(f, 1, 2);
    assert_int_equal(ipcnet_publish(s, "big.data", buf, big, IPCNET_CONFIRM), 0);
    ipcnet_t *subs[2] = { sub1, sub2 };
    for (int k = 0; k < 2; k++) {
        harness_expect(subs[k], IPCNET_MSG_PUBLISH, &m);
        assert_string_equal(m.name, "big.data");
        assert_int_equal(m.size, big);
        assert_memory_equal(m.data, buf, big);
    }
    free(buf);      /* the fixture closes the clients */

    /* Many without confirmation arrive in order; nothing comes back. */
    harness_send_many(s, h, "svc.remote", 500);

    /* The holder answers to the sender's unique address. */
    harness_send(h, ipcnet_address(s), "back", IPCNET_CONFIRM);
    harness_expect(s, IPCNET_MSG_SEND, &m);
    assert_string_equal(m.source, ipcnet_address(h));
    assert_int_equal(m.size, 4);
    assert_memory_equal(m.data, "back", 4);
}

/* A name held on alpha and on beta: every send from alpha goes to alpha's
   holder; from beta, to beta's. */
static void test_cluster_send_local_first(void **state)
{
    fx_t *f = *state;
    WATCH(60);
    s_start_mesh(f, 2);
    ipcnet_t *ha = s_holder(f, 0, "holder-a", "svc.both");
    ipcnet_t *hb = s_listed_holder(f, 1, "holder-b", "svc.both", 0);
    s_wait_service(f, 1, "svc.both", "alpha", 1, WAIT_MS);

    ipcnet_t *s[2] = { s_conn(f, 0, "sender-a"), s_conn(f, 1, "sender-b") };
    const char *dest[2] = { "svc.both", "svc.both" }, *text[2] = { "from a", "from b" };
    ipcnet_t *h[2] = { ha, hb };
    s_send_pairs(s, dest, text, h, 10);
    ipcnet_t *sa = s[0];

    /* Once alpha's holder leaves, alpha's sends cross to beta. */
    harness_client_close(&ha);
    harness_sync(sa);
    harness_send(sa, "svc.both", "crossed", IPCNET_CONFIRM);
    harness_expect_text(hb, IPCNET_MSG_SEND, "svc.both", "crossed");
}

/* Holders on beta and gamma, none on alpha: sends from alpha alternate. */
static void test_cluster_send_round_robin(void **state)
{
    fx_t *f = *state;
    WATCH(60);
    enum { PER = 10 };
    s_start_mesh(f, 3);
    ipcnet_t *h[2] = { s_listed_holder(f, 1, "holder-b", "svc.rr", 0),
                       s_listed_holder(f, 2, "holder-c", "svc.rr", 0) };

    ipcnet_t *s = s_conn(f, 0, "sender");
    harness_send_numbered(s, "svc.rr", 2 * PER);
    int seen[2 * PER] = { 0 };
    for (int k = 0; k < 2; k++) {
        int count = harness_take_numbered(h[k], 2 * PER, seen);
        if (count != PER)
            fail_msg("holder on %s got %d of %d messages: not round robin",
                     k ? "gamma" : "beta", count, 2 * PER);
    }
    harness_expect_once(seen, 2 * PER);
}

/* name@node pins the node; unknown names and nodes are errors. */
static void test_cluster_send_pinned(void **state)
{
    fx_t *f = *state;
    WATCH(60);
    s_start_mesh(f, 3);
    ipcnet_t *hb = s_listed_holder(f, 1, "holder-b", "svc.pin", 0);
    ipcnet_t *hc = s_listed_holder(f, 2, "holder-c", "svc.pin", 0);

    /* The receiver sees the destination as the sender wrote it. */
    ipcnet_t *s = s_conn(f, 0, "sender");
    ipcnet_t *senders[2] = { s, s }, *h[2] = { hc, hb };
    const char *dest[2] = { "svc.pin@gamma", "svc.pin@beta" };
    const char *text[2] = { "to gamma", "to beta" };
    s_send_pairs(senders, dest, text, h, 5);

    /* Pinned to a node where nobody holds it, or to ourselves. */
    int rc = ipcnet_send(s, "svc.pin@alpha", "x", 1, IPCNET_CONFIRM);
    if (rc != -ENOENT)
        fail_msg("svc.pin@alpha (held elsewhere only): %s, want -ENOENT", ipcnet_strerror(rc));
    rc = ipcnet_send(s, "nobody.here@beta", "x", 1, IPCNET_CONFIRM);
    if (rc != -ENOENT)
        fail_msg("nobody.here@beta: %s, want -ENOENT", ipcnet_strerror(rc));
    rc = ipcnet_send(s, "nobody.here", "x", 1, IPCNET_CONFIRM);
    if (rc != -ENOENT)
        fail_msg("nobody.here: %s, want -ENOENT", ipcnet_strerror(rc));
    rc = ipcnet_send(s, "svc.pin@nosuchnode", "x", 1, IPCNET_CONFIRM);
    if (rc != -EHOSTUNREACH)
        fail_msg("svc.pin@nosuchnode: %s, want -EHOSTUNREACH", ipcnet_strerror(rc));

    /* Without confirmation the same errors come back as messages. */
    ipcnet_msg_t m;
    assert_int_equal(ipcnet_send(s, "nobody.here@beta", "x", 1, 0), 0);
    uint32_t id = ipcnet_last_id(s);
    harness_expect(s, IPCNET_MSG_ERROR, &m);
    assert_int_equal(m.error, -ENOENT);
    assert_int_equal(m.id, id);
    assert_int_equal(ipcnet_send(s, "svc.pin@nosuchnode", "x", 1, 0), 0);
    id = ipcnet_last_id(s);
    harness_expect(s, IPCNET_MSG_ERROR, &m);
    assert_int_equal(m.error, -EHOSTUNREACH);
    assert_int_equal(m.id, id);
    harness_expect_nothing(s);
    harness_expect_nothing(hb);
    harness_expect_nothing(hc);
}

/* ":N@node" reaches that client on another node; a gone one is -ENOENT. */
static void test_cluster_send_unique_address(void **state)
{
    fx_t *f = *state;
    WATCH(60);
    s_start_mesh(f, 2);
    ipcnet_t *b = s_conn(f, 1, "b");
    ipcnet_t *a = s_conn(f, 0, "a");
    char addr[128];
    snprintf(addr, sizeof addr, "%s", ipcnet_address(b));
    assert_non_null(strstr(addr, "@beta"));

    harness_send(a, addr, "direct", IPCNET_CONFIRM);
    ipcnet_msg_t m;
    harness_expect(b, IPCNET_MSG_SEND, &m);
    assert_string_equal(m.source, ipcnet_address(a));
    assert_int_equal(m.size, 6);
    assert_memory_equal(m.data, "direct", 6);
    harness_send(b, m.source, "and back", IPCNET_CONFIRM);
    harness_expect_text(a, IPCNET_MSG_SEND, NULL, "and back");

    harness_client_close(&b);
    int64_t deadline = harness_now_ms() + WAIT_MS;
    int rc;
    /* The close is seen by beta at once; alpha asks beta. */
    while ((rc = ipcnet_send(a, addr, "late", 4, IPCNET_CONFIRM)) == 0 &&
           harness_now_ms() < deadline)
        usleep(POLL_MS * 1000);
    if (rc != -ENOENT)
        fail_msg("send to a closed remote client's address %s: %s (want -ENOENT)", addr,
                 ipcnet_strerror(rc));
    rc = ipcnet_send(a, ":999999@beta", "x", 1, IPCNET_CONFIRM);
    if (rc != -ENOENT)
        fail_msg(":999999@beta: %s (want -ENOENT)", ipcnet_strerror(rc));
    rc = ipcnet_send(a, ":1@nosuchnode", "x", 1, IPCNET_CONFIRM);
    if (rc != -EHOSTUNREACH)
        fail_msg(":1@nosuchnode: %s (want -EHOSTUNREACH)", ipcnet_strerror(rc));
}

/* --- request / reply ----------------------------------------------------- */

/* Requests from alpha to a holder on beta: async in this process, and
   blocking against a responder process. */
static void test_cluster_request_reply(void **state)
{
    fx_t *f = *state;
    WATCH(60);
    s_start_mesh(f, 2);
    ipcnet_t *h = s_listed_holder(f, 1, "server", "svc.calc", 0);
    ipcnet_t *r = s_conn(f, 0, "client");
    harness_ping_pong(r, h, "svc.calc", 3000);

    /* Two outstanding, answered out of order, keep their ids. */
    harness_out_of_order(r, h, "svc.calc@beta", "svc.calc", 3000, NULL);

    /* A request nobody holds: -ENOENT; to a node nobody knows: -EHOSTUNREACH. */
    ipcnet_msg_t m;
    assert_int_equal(ipcnet_request(r, "svc.none", "q", 1, 3000, &m), -ENOENT);
    assert_int_equal(ipcnet_request(r, "svc.none@beta", "q", 1, 3000, &m), -ENOENT);
    assert_int_equal(ipcnet_request(r, "svc.calc@nosuchnode", "q", 1, 3000, &m), -EHOSTUNREACH);

    /* Blocking requests against a responder process on beta. */
    harness_upper_t upper = { 3, 15000 };
    pid_t pid = harness_fork_holder(&f->n[1], "upper", "svc.upper", harness_upper_holder,
                                    &upper);
    s_wait_service(f, 0, "svc.upper", "beta", 1, WAIT_MS);
    harness_expect_upper(r, "svc.upper", "request across nodes");
    assert_int_equal(harness_reap(pid, 5000), 0);
}

/* A remote holder that never answers: -ETIMEDOUT after about the timeout. */
static void test_cluster_request_timeout(void **state)
{
    fx_t *f = *state;
    WATCH(60);
    s_start_mesh(f, 2);
    ipcnet_t *h = s_listed_holder(f, 1, "sleeper", "svc.slow", 0);
    ipcnet_t *r = s_conn(f, 0, "client");

    ipcnet_msg_t m;
    int64_t took = harness_request_times_out(r, "svc.slow", 300);
    print_message("remote request timed out after %lld ms (timeout 300 ms)\n", (long long) took);
    if (took < 250 || took > 3000)
        fail_msg("timed out after %lld ms for a 300 ms timeout", (long long) took);
    harness_expect(h, IPCNET_MSG_REQUEST, &m);         /* it did arrive */
    assert_true(m.timeout_ms <= 300);

    /* The async form: an ERROR message with the id. */
    uint32_t id;
    assert_int_equal(ipcnet_request_async(r, "svc.slow", "q2", 2, 300, &id), 0);
    harness_expect(r, IPCNET_MSG_ERROR, &m);
    assert_int_equal(m.error, -ETIMEDOUT);
    assert_int_equal(m.id, id);
}

/* The remote holder closes before replying: -ECONNRESET, long before the
   timeout. */
static void test_cluster_request_holder_closes(void **state)
{
    fx_t *f = *state;
    WATCH(60);
    s_start_mesh(f, 2);
    int wait_ms = 15000;
    pid_t pid = harness_fork_holder(&f->n[1], "flaky", "svc.flaky", harness_vanishing_holder,
                                    &wait_ms);
    s_wait_service(f, 0, "svc.flaky", "beta", 1, WAIT_MS);

    ipcnet_t *c = s_conn(f, 0, "requester");
    ipcnet_msg_t m;
    int64_t t0 = harness_now_ms();
    int rc = ipcnet_request(c, "svc.flaky", "q", 1, 10000, &m);
    int64_t took = harness_now_ms() - t0;
    assert_int_equal(harness_reap(pid, 5000), 0);
    print_message("remote holder closed: %s after %lld ms\n", ipcnet_strerror(rc),
                  (long long) took);
    if (rc != -ECONNRESET)
        fail_msg("request to a remote holder that closed: %s after %lld ms "
                 "(want -ECONNRESET)", ipcnet_strerror(rc), (long long) took);
    assert_true(took < 5000);

    /* The same through request_async, with the holder in this process. */
    ipcnet_t *h = s_listed_holder(f, 1, "flaky2", "svc.flaky2", 0);
    harness_request_holder_gone(c, &h, "svc.flaky2", 10000);
}

/* --- publish / subscribe ------------------------------------------------- */

/* A publication reaches every matching subscriber on every node, exact and
   pattern subscriptions alike, and no one else. */
static void test_cluster_publish(void **state)
{
    fx_t *f = *state;
    WATCH(60);
    s_start_mesh(f, 3);
    ipcnet_t *p = s_conn(f, 0, "publisher");
    ipcnet_t *local = s_conn(f, 0, "local-exact");
    ipcnet_t *exact = s_conn(f, 1, "exact");
    ipcnet_t *prefix = s_conn(f, 1, "prefix");
    ipcnet_t *all = s_conn(f, 2, "all");
    ipcnet_t *other = s_conn(f, 2, "other");
    assert_int_equal(ipcnet_subscribe(local, "a.b"), 0);
    assert_int_equal(ipcnet_subscribe(exact, "a.b"), 0);
    assert_int_equal(ipcnet_subscribe(prefix, "a.*"), 0);
    assert_int_equal(ipcnet_subscribe(all, "*"), 0);
    assert_int_equal(ipcnet_subscribe(other, "c.*"), 0);
    s_fence(f, 1, 3);
    s_fence(f, 2, 3);

    assert_int_equal(ipcnet_publish(p, "a.b", "x", 1, 0), 0);
    ipcnet_t *got[] = { local, exact, prefix, all };
    for (int i = 0; i < 4; i++)
        harness_expect_from(got[i], IPCNET_MSG_PUBLISH, "a.b", ipcnet_address(p), "x", 1);
    harness_expect_nothing(other);
    harness_expect_nothing(p);

    ipcnet_t *cd[] = { all, other }, *not_cd[] = { exact, prefix, local };
    harness_publish_to(p, "c.d", "y", 0, cd, 2, not_cd, 3);

    /* Many, in order, from a publisher on beta to subscribers everywhere. */
    ipcnet_t *pb = s_conn(f, 1, "publisher-b");
    harness_publish_many(pb, "a.b", 200, got, 4);

    /* Unsubscribed on beta: no more there. */
    assert_int_equal(ipcnet_unsubscribe(prefix, "a.*"), 0);
    s_fence(f, 1, 3);
    ipcnet_t *not_az[] = { prefix, exact, local, p };
    harness_publish_to(p, "a.z", "z", 0, &all, 1, not_az, 4);
}

/* --- watch --------------------------------------------------------------- */

/* A watcher on alpha sees remote names come and go with their node, and
   peers come and go when its pattern matches the peer's name. */
static void test_cluster_watch(void **state)
{
    fx_t *f = *state;
    WATCH(60);
    s_start_mesh(f, 2);
    ipcnet_t *hb = s_listed_holder(f, 1, "holder", "svc.early", 0);

    ipcnet_t *w = s_conn(f, 0, "watch-all");
    ipcnet_t *wg = s_conn(f, 0, "watch-gamma");
    ipcnet_t *ws = s_conn(f, 0, "watch-svc");
    assert_int_equal(ipcnet_watch(w, "*"), 0);
    assert_int_equal(ipcnet_watch(wg, "gam*"), 0);
    assert_int_equal(ipcnet_watch(ws, "svc.*"), 0);
    /* A remote name held at watch time is reported with its node. */
    s_wait_event(w, IPCNET_EV_NAME_UP, "svc.early", "beta", WAIT_MS);
    s_wait_event(ws, IPCNET_EV_NAME_UP, "svc.early", "beta", WAIT_MS);

    /* A name bound on beta now. */
    harness_bind(hb, "svc.later");
    int64_t took = s_wait_event(w, IPCNET_EV_NAME_UP, "svc.later", "beta", WAIT_MS);
    print_message("NAME_UP from beta after %lld ms\n", (long long) took);
    s_wait_event(ws, IPCNET_EV_NAME_UP, "svc.later", "beta", WAIT_MS);

    /* gamma joins: PEER_UP for the watchers whose pattern matches it. */
    s_start(f, 2, 0);
    took = s_wait_event(wg, IPCNET_EV_PEER_UP, "gamma", "gamma", MESH_MS);
    print_message("PEER_UP gamma after %lld ms\n", (long long) took);
    s_wait_event(w, IPCNET_EV_PEER_UP, "gamma", "gamma", MESH_MS);
    s_wait_mesh(f, 3);
    ipcnet_t *hc = s_holder(f, 2, "holder-c", "gamma.svc");
    s_wait_event(wg, IPCNET_EV_NAME_UP, "gamma.svc", "gamma", WAIT_MS);
    s_wait_event(w, IPCNET_EV_NAME_UP, "gamma.svc", "gamma", WAIT_MS);

    /* The last holder closes: NAME_DOWN with the node. */
    harness_client_close(&hb);
    took = s_wait_event(w, IPCNET_EV_NAME_DOWN, "svc.later", "beta", WAIT_MS);
    print_message("NAME_DOWN from beta after %lld ms\n", (long long) took);
    s_wait_event(ws, IPCNET_EV_NAME_DOWN, "svc.early", "beta", WAIT_MS);

    /* gamma stops: PEER_DOWN (and its name goes down). */
    ipcnet_close(&f->q[2]);
    harness_client_close(&hc);
    kill(f->n[2].pid, SIGTERM);
    s_wait_event(wg, IPCNET_EV_PEER_DOWN, "gamma", "gamma", WAIT_MS);
    s_wait_event(w, IPCNET_EV_PEER_DOWN, "gamma", "gamma", WAIT_MS);
    assert_int_equal(harness_stop_wait(&f->n[2], SIGTERM), 0);

    /* ws ("svc.*") saw no peer events and no gamma.svc. */
    ipcnet_msg_t m;
    while (ipcnet_recv(ws, &m, QUIET_MS) == 0) {
        assert_int_equal(m.kind, IPCNET_MSG_EVENT);
        if (m.event == IPCNET_EV_PEER_UP || m.event == IPCNET_EV_PEER_DOWN ||
            strncmp(m.name, "svc.", 4) != 0)
            fail_msg("watcher of 'svc.*' got %s for '%s' (node '%s')", s_event(m.event),
                     m.name, m.node);
    }
    /* wg ("gam*") saw nothing of beta. */
    while (ipcnet_recv(wg, &m, QUIET_MS) == 0) {
        assert_int_equal(m.kind, IPCNET_MSG_EVENT);
        if (strncmp(m.name, "gam", 3) != 0)
            fail_msg("watcher of 'gam*' got %s for '%s' (node '%s')", s_event(m.event),
                     m.name, m.node);
    }
}

/* --- liveness ------------------------------------------------------------ */

typedef struct {
    int64_t services;   /* the dead node's name left the listing */
    int64_t peer;       /* the dead node no longer listed up */
    int64_t name_down;  /* the watcher's NAME_DOWN */
    int64_t peer_down;  /* the watcher's PEER_DOWN */
} lost_t;

static int64_t s_max4(const lost_t *l)
{
    int64_t m = l->services;
    if (l->peer > m)
        m = l->peer;
    if (l->name_down > m)
        m = l->name_down;
    if (l->peer_down > m)
        m = l->peer_down;
    return m;
}

/* Watches nodes obs[0..nobs-1] all at once from t0 (the kill) until each
   has noticed, in every way, that node dead and its name svc are gone:
   their listings are polled every POLL_MS; w[k] (NULL: none) watches "*"
   on obs[k] and its events are timed as they arrive. Waits up to
   limit_ms + 3 s so that a late observation is measured rather than cut
   off; a missing one stays -1. */
static void s_observe_loss(fx_t *f, const int *obs, ipcnet_t *const *w, int nobs, int dead,
                           const char *svc, int64_t t0, int limit_ms, lost_t *ret)
{
    for (int k = 0; k < nobs; k++)
        ret[k] = (lost_t) { -1, -1, w[k] ? -1 : -2, w[k] ? -1 : -2 };
    int64_t deadline = t0 + limit_ms + 3000;
    for (;;) {
        int done = 1;
        for (int k = 0; k < nobs; k++) {
            lost_t *l = &ret[k];
            if (l->services < 0 && !s_has_service(f, obs[k], svc, s_names[dead], NULL, NULL))
                l->services = harness_now_ms() - t0;
            if (l->peer < 0 && !s_peer_up(f, obs[k], s_names[dead]))
                l->peer = harness_now_ms() - t0;
            done &= l->services >= 0 && l->peer >= 0 && l->name_down != -1 && l->peer_down != -1;
        }
        if (done || harness_now_ms() > deadline)
            return;
        /* Until the next poll, take the watchers' events as they come; an
           event says the listings are worth polling at once. */
        int64_t next = harness_now_ms() + POLL_MS;
        for (int any = 0; !any; ) {
            struct pollfd pfd[NODES];
            int n = 0;
            for (int k = 0; k < nobs; k++) {
                ipcnet_msg_t m;
                while (w[k] && ipcnet_recv(w[k], &m, 0) == 0) {
                    any = 1;
                    int64_t at = harness_now_ms() - t0;
                    if (m.kind != IPCNET_MSG_EVENT)
                        fail_msg("watcher got a %s message", harness_kind_name(m.kind));
                    if (m.event == IPCNET_EV_NAME_DOWN && !strcmp(m.name, svc) &&
                        !strcmp(m.node, s_names[dead]) && ret[k].name_down < 0)
                        ret[k].name_down = at;
                    if (m.event == IPCNET_EV_PEER_DOWN && !strcmp(m.name, s_names[dead]) &&
                        !strcmp(m.node, s_names[dead]) && ret[k].peer_down < 0)
                        ret[k].peer_down = at;
                }
                if (w[k])
                    pfd[n++] = (struct pollfd) { ipcnet_fd(w[k]), POLLIN, 0 };
            }
            int left = (int) (next - harness_now_ms());
            if (left <= 0)
                break;
            if (n == 0)
                usleep((useconds_t) left * 1000);
            else
                poll(pfd, (nfds_t) n, left);
        }
    }
}

static const char *s_ms(int64_t v, char buf[24])
{
    if (v == -2)
        return "-";
    if (v == -1)
        return "never";
    snprintf(buf, 24, "%lld ms", (long long) v);
    return buf;
}

/* Prints what obs noticed and when; fails unless it noticed every way
   (-2: not watched) within limit_ms. */
static void s_check_loss(const char *what, const char *obs, const lost_t *l, int limit_ms)
{
    char b1[24], b2[24], b3[24], b4[24];
    print_message("%s: %s noticed after: services %s, peers %s, NAME_DOWN %s, "
                  "PEER_DOWN %s (limit %d ms)\n", what, obs, s_ms(l->services, b1),
                  s_ms(l->peer, b2), s_ms(l->name_down, b3), s_ms(l->peer_down, b4),
                  limit_ms);
    if (l->services == -1 || l->peer == -1 || l->name_down == -1 || l->peer_down == -1)
        fail_msg("%s: %s did not notice in every way within %d ms", what, obs, limit_ms + 3000);
    if (s_max4(l) > limit_ms)
        fail_msg("%s: %s took %lld ms to notice (limit %d ms)", what, obs,
                 (long long) s_max4(l), limit_ms);
}

/* Three nodes; beta holds svc.lost and is killed (SIGKILL) or stopped
   (SIGTERM). alpha and gamma must notice within limit_ms. */
static void s_liveness(fx_t *f, int sig, int limit_ms, const char *what)
{
    s_start_mesh(f, 3);
    ipcnet_t *h = s_listed_holder(f, 1, "doomed", "svc.lost", 0);
    s_wait_service(f, 2, "svc.lost", "beta", 1, WAIT_MS);
    ipcnet_t *wa = s_conn(f, 0, "watch-a");
    ipcnet_t *wc = s_conn(f, 2, "watch-c");
    assert_int_equal(ipcnet_watch(wa, "*"), 0);
    assert_int_equal(ipcnet_watch(wc, "*"), 0);
    s_wait_event(wa, IPCNET_EV_NAME_UP, "svc.lost", "beta", WAIT_MS);
    s_wait_event(wc, IPCNET_EV_NAME_UP, "svc.lost", "beta", WAIT_MS);
    /* Let the links settle into their heartbeat rhythm. */
    usleep(600 * 1000);
    assert_true(s_peer_up(f, 0, "beta") && s_peer_up(f, 2, "beta"));

    ipcnet_close(&f->q[1]);
    int64_t t0 = harness_now_ms();
    kill(f->n[1].pid, sig);
    lost_t l[2];
    const int obs[2] = { 0, 2 };
    ipcnet_t *const w[2] = { wa, wc };
    s_observe_loss(f, obs, w, 2, 1, "svc.lost", t0, limit_ms, l);
    if (sig == SIGKILL)
        harness_crash(&f->n[1]);
    else
        assert_int_equal(harness_stop_wait(&f->n[1], sig), 0);
    s_check_loss(what, "alpha", &l[0], limit_ms);
    s_check_loss(what, "gamma", &l[1], limit_ms);

    /* Sends to its name now fail at once; pinned to it, too. */
    ipcnet_t *s = s_conn(f, 0, "sender");
    int rc = ipcnet_send(s, "svc.lost", "x", 1, IPCNET_CONFIRM);
    if (rc != -ENOENT)
        fail_msg("send to a lost node's name: %s (want -ENOENT)", ipcnet_strerror(rc));
    rc = ipcnet_send(s, "svc.lost@beta", "x", 1, IPCNET_CONFIRM);
    print_message("send pinned to the lost node: %s\n", ipcnet_strerror(rc));
    assert_true(rc == -EHOSTUNREACH || rc == -ENOENT);
    ipcnet_msg_t m;
    rc = ipcnet_request(s, "svc.lost", "q", 1, 3000, &m);
    if (rc != -ENOENT)
        fail_msg("request to a lost node's name: %s (want -ENOENT)", ipcnet_strerror(rc));

    /* The two others still talk. */
    assert_true(s_peer_up(f, 0, "gamma") && s_peer_up(f, 2, "alpha"));
    ipcnet_t *hc = s_listed_holder(f, 2, "survivor", "svc.alive", 0);
    harness_send(s, "svc.alive", "still here", IPCNET_CONFIRM);
    harness_expect_text(hc, IPCNET_MSG_SEND, "svc.alive", "still here");
    harness_client_close(&h);
}

/* SIGKILL with the default heartbeat (500 ms): lost within 2 s. */
static void test_cluster_liveness_kill(void **state)
{
    fx_t *f = *state;
    WATCH(60);
    s_liveness(f, SIGKILL, LOST_DEFAULT_MS, "SIGKILL, heartbeat 500 ms");
}

/* SIGKILL with --heartbeat 300 on all nodes: lost within 1 s. */
static void test_cluster_liveness_kill_fast(void **state)
{
    fx_t *f = *state;
    WATCH(60);
    f->heartbeat = "300";
    s_liveness(f, SIGKILL, LOST_FAST_MS, "SIGKILL, heartbeat 300 ms");
}

/* SIGTERM: the node says goodbye, the others drop it at once. */
static void test_cluster_liveness_goodbye(void **state)
{
    fx_t *f = *state;
    WATCH(60);
    s_liveness(f, SIGTERM, BYE_MS, "SIGTERM");
}

/* beta is frozen (SIGSTOP: a hung node, or a cut link). A send with
   IPCNET_CONFIRM from alpha meanwhile gets -EHOSTUNREACH once alpha loses
   it, within the liveness window; when beta thaws (SIGCONT) the two meet
   again by themselves and beta's names come back. */
static void test_cluster_frozen_node(void **state)
{
    fx_t *f = *state;
    WATCH(60);
    s_start_mesh(f, 2);
    ipcnet_t *h = s_listed_holder(f, 1, "frozen-holder", "svc.frozen", 0);
    usleep(600 * 1000);
    ipcnet_t *s = s_conn(f, 0, "sender");
    harness_send(s, "svc.frozen", "before", IPCNET_CONFIRM);
    harness_expect_text(h, IPCNET_MSG_SEND, "svc.frozen", "before");

    /* Nothing may talk to beta while it is stopped: it would not answer. */
    int64_t t0 = harness_now_ms();
    kill(f->n[1].pid, SIGSTOP);
    int rc = ipcnet_send(s, "svc.frozen", "during", 6, IPCNET_CONFIRM);
    int64_t took = harness_now_ms() - t0;
    print_message("confirmed send to a frozen node: %s after %lld ms\n", ipcnet_strerror(rc),
                  (long long) took);
    if (rc != -EHOSTUNREACH) {
        kill(f->n[1].pid, SIGCONT);
        fail_msg("confirmed send to a frozen node: %s (want -EHOSTUNREACH)",
                 ipcnet_strerror(rc));
    }
    if (took > LOST_DEFAULT_MS) {
        kill(f->n[1].pid, SIGCONT);
        fail_msg("the error came %lld ms after beta froze (limit %d ms)", (long long) took,
                 LOST_DEFAULT_MS);
    }
    int gone = !s_peer_up(f, 0, "beta") && !s_has_service(f, 0, "svc.frozen", "beta", NULL, NULL);
    rc = ipcnet_send(s, "svc.frozen", "x", 1, IPCNET_CONFIRM);
    kill(f->n[1].pid, SIGCONT);
    int64_t t1 = harness_now_ms();
    assert_true(gone);
    assert_int_equal(rc, -ENOENT);

    /* Thawed: back together without a restart. */
    s_wait_mesh(f, 2);
    s_wait_service(f, 0, "svc.frozen", "beta", 1, RESTART_MS);
    print_message("beta thawed: up again on alpha with its name after %lld ms\n",
                  (long long) (harness_now_ms() - t1));
    harness_send(s, "svc.frozen", "after", IPCNET_CONFIRM);
    ipcnet_msg_t m;
    harness_expect(h, IPCNET_MSG_SEND, &m);
    if (m.size == 6 && memcmp(m.data, "during", 6) == 0) {
        /* Reported failed to the sender, yet delivered when beta woke up. */
        print_message("note: the message failed back as -EHOSTUNREACH was delivered "
                      "after beta thawed\n");
        harness_expect(h, IPCNET_MSG_SEND, &m);
    }
    assert_int_equal(m.size, 5);
    assert_memory_equal(m.data, "after", 5);
    harness_expect_nothing(h);
}

/* beta is killed and started again with the same state directory, name
   and port: alpha and gamma see it up again with the same id without any
   restart of their own, and its names come back. */
static void test_cluster_restart_same_id(void **state)
{
    fx_t *f = *state;
    WATCH(90);
    s_start(f, 0, -1);
    s_start_fixed(f, 1, 0);
    s_start(f, 2, 0);
    s_wait_mesh(f, 3);
    peer_row_t before_a, before_c;
    assert_true(s_peer(f, 0, "beta", &before_a));
    assert_true(s_peer(f, 2, "beta", &before_c));
    assert_string_equal(before_a.id, before_c.id);
    char self[64];
    s_self_id(f, 1, self);
    assert_string_equal(self, before_a.id);
    int port_b = f->port[1];
    ipcnet_t *h = s_listed_holder(f, 1, "holder", "svc.phoenix", 0);
    s_wait_service(f, 2, "svc.phoenix", "beta", 1, WAIT_MS);

    int64_t t0 = s_crash(f, 1);
    lost_t l[2];
    const int obs[2] = { 0, 2 };
    ipcnet_t *const w[2] = { NULL, NULL };
    s_observe_loss(f, obs, w, 2, 1, "svc.phoenix", t0, LOST_DEFAULT_MS, l);
    for (int k = 0; k < 2; k++) {
        s_check_loss("beta killed", s_names[obs[k]], &l[k], LOST_DEFAULT_MS);
    }

    /* Same directory (hence id), name and port; the same seed. */
    int64_t t1 = harness_now_ms();
    s_launch(f, 1, 0, port_b, 1);
    s_wait_mesh(f, 3);
    int64_t took = harness_now_ms() - t1;
    print_message("beta restarted: the mesh was whole again %lld ms after the restart\n",
                  (long long) took);
    assert_true(took <= RESTART_MS);
    peer_row_t after_a, after_c;
    assert_true(s_peer(f, 0, "beta", &after_a));
    assert_true(s_peer(f, 2, "beta", &after_c));
    assert_string_equal(after_a.id, before_a.id);
    assert_string_equal(after_c.id, before_a.id);
    assert_string_equal(after_a.state, "up");
    s_self_id(f, 1, self);
    assert_string_equal(self, before_a.id);

    /* Only one beta is listed on alpha. */
    char *t = harness_query(s_q(f, 0), IPCNET_Q_PEERS);
    int lines = 0;
    for (const char *p = t; (p = strstr(p, "beta\t")); p++)
        if (p == t || p[-1] == '\n')
            lines++;
    if (lines != 1)
        fail_msg("alpha lists beta %d times after its restart:\n%s", lines, t);
    free(t);

    /* The old holder saw its node go; a client binds the name again on
       the new beta, and alpha and gamma reach it. */
    ipcnet_msg_t m;
    int rc = ipcnet_recv(h, &m, WAIT_MS);
    assert_true(rc < 0 && rc != -ETIMEDOUT && rc != -EAGAIN);
    harness_client_close(&h);
    h = s_conn(f, 1, "holder-again");
    harness_bind(h, "svc.phoenix");
    s_wait_service(f, 0, "svc.phoenix", "beta", 1, RESTART_MS);
    s_wait_service(f, 2, "svc.phoenix", "beta", 1, RESTART_MS);
    ipcnet_t *s = s_conn(f, 0, "sender");
    harness_send(s, "svc.phoenix", "risen", IPCNET_CONFIRM);
    harness_expect_text(h, IPCNET_MSG_SEND, "svc.phoenix", "risen");
    ipcnet_t *sc = s_conn(f, 2, "sender-c");
    harness_send(sc, "svc.phoenix", "risen too", IPCNET_CONFIRM);
    harness_expect_text(h, IPCNET_MSG_SEND, "svc.phoenix", "risen too");
    /* And beta reaches the others. */
    ipcnet_t *ha = s_listed_holder(f, 0, "holder-a", "svc.alpha", 1);
    harness_send(h, "svc.alpha", "hi alpha", IPCNET_CONFIRM);
    harness_expect_text(ha, IPCNET_MSG_SEND, "svc.alpha", "hi alpha");
}

/* The seed itself (alpha, no --peer) is killed and restarted with the same
   state directory and port: beta and gamma, which were told of it by
   --peer, take it back. */
static void test_cluster_restart_seed(void **state)
{
    fx_t *f = *state;
    WATCH(90);
    s_start_fixed(f, 0, -1);
    s_start(f, 1, 0);
    s_start(f, 2, 0);
    s_wait_mesh(f, 3);
    char id[64];
    s_self_id(f, 0, id);
    int port_a = f->port[0];

    int64_t t0 = s_crash(f, 0);
    lost_t l[2];
    const int obs[2] = { 1, 2 };
    ipcnet_t *const w[2] = { NULL, NULL };
    s_observe_loss(f, obs, w, 2, 0, "nothing.here", t0, LOST_DEFAULT_MS, l);
    for (int k = 0; k < 2; k++)
        s_check_loss("seed alpha killed", s_names[obs[k]], &l[k], LOST_DEFAULT_MS);
    ipcnet_t *hb = s_holder(f, 1, "holder-b", "svc.b");
    /* beta and gamma still see each other. */
    s_wait_mesh_but(f, 3, 0, MESH_MS);
    s_wait_service(f, 2, "svc.b", "beta", 1, WAIT_MS);

    int64_t t1 = harness_now_ms();
    s_launch(f, 0, -1, port_a, 1);
    s_wait_mesh(f, 3);
    int64_t took = harness_now_ms() - t1;
    print_message("seed alpha restarted: the mesh was whole again %lld ms after the restart\n",
                  (long long) took);
    assert_true(took <= RESTART_MS);
    char again[64];
    s_self_id(f, 0, again);
    assert_string_equal(again, id);
    peer_row_t r;
    assert_true(s_peer(f, 1, "alpha", &r));
    assert_string_equal(r.id, id);
    assert_true(s_peer(f, 2, "alpha", &r));
    assert_string_equal(r.id, id);

    /* alpha learns beta's names again and reaches them. */
    s_wait_service(f, 0, "svc.b", "beta", 1, WAIT_MS);
    ipcnet_t *s = s_conn(f, 0, "sender");
    harness_send(s, "svc.b", "back", IPCNET_CONFIRM);
    harness_expect_text(hb, IPCNET_MSG_SEND, "svc.b", "back");
}

/* --- no silent loss ------------------------------------------------------ */

/* What a holder that kills its own node needs: a pipe to tell when (the
   helper writes on fd[1]) and the node's pid. */
typedef struct {
    int *fd;
    pid_t node;
} killer_t;

/* A harness_holder_fn: on the request, kills its node and says when. */
static int s_killer_holder(ipcnet_t *h, void *arg)
{
    const killer_t *k = arg;
    close(k->fd[0]);
    ipcnet_msg_t m;
    if (ipcnet_recv(h, &m, 15000) < 0 || m.kind != IPCNET_MSG_REQUEST)
        return 4;
    int64_t t = harness_now_ms();
    kill(k->node, SIGKILL);
    if (write(k->fd[1], &t, sizeof t) != sizeof t)
        return 5;
    return 0;
}

/* A request is in the hands of a holder on beta when beta is killed: the
   requester on alpha gets a definite error (-EHOSTUNREACH or -ETIMEDOUT)
   within the liveness window, not a hang. */
static void test_cluster_request_node_killed(void **state)
{
    fx_t *f = *state;
    WATCH(60);
    s_start_mesh(f, 2);
    int tfd[2];
    assert_int_equal(pipe(tfd), 0);
    killer_t killer = { tfd, f->n[1].pid };
    pid_t pid = harness_fork_holder(&f->n[1], "doomed", "svc.doomed", s_killer_holder, &killer);
    close(tfd[1]);
    s_wait_service(f, 0, "svc.doomed", "beta", 1, WAIT_MS);
    usleep(600 * 1000);         /* heartbeats in their rhythm */
    ipcnet_close(&f->q[1]);

    ipcnet_t *c = s_conn(f, 0, "requester");
    ipcnet_msg_t m;
    int rc = ipcnet_request(c, "svc.doomed", "q", 1, 10000, &m);
    int64_t done = harness_now_ms();
    int64_t killed = 0;
    assert_int_equal(read(tfd[0], &killed, sizeof killed), (ssize_t) sizeof killed);
    close(tfd[0]);
    assert_int_equal(harness_reap(pid, 5000), 0);
    harness_crash(&f->n[1]);
    print_message("request to a holder whose node was killed: %s %lld ms after the kill\n",
                  ipcnet_strerror(rc), (long long) (done - killed));
    if (rc != -EHOSTUNREACH && rc != -ETIMEDOUT)
        fail_msg("request: %s (want -EHOSTUNREACH or -ETIMEDOUT)", ipcnet_strerror(rc));
    if (done - killed > LOST_DEFAULT_MS)
        fail_msg("the error came %lld ms after the kill (limit %d ms)",
                 (long long) (done - killed), LOST_DEFAULT_MS);

    /* The async form, against a holder in this process on a new node. */
    s_start(f, 2, 0);
    s_wait_mesh_but(f, 3, 1, MESH_MS);
    ipcnet_t *h = s_listed_holder(f, 2, "doomed2", "svc.doomed2", 0);
    uint32_t id;
    assert_int_equal(ipcnet_request_async(c, "svc.doomed2", "q", 1, 10000, &id), 0);
    harness_expect(h, IPCNET_MSG_REQUEST, &m);
    int64_t t0 = s_crash(f, 2);
    rc = ipcnet_recv(c, &m, LOST_DEFAULT_MS + 3000);
    int64_t took = harness_now_ms() - t0;
    if (rc < 0)
        fail_msg("no answer %lld ms after the node was killed: %s", (long long) took,
                 ipcnet_strerror(rc));
    assert_int_equal(m.kind, IPCNET_MSG_ERROR);
    assert_int_equal(m.id, id);
    print_message("async request: ERROR %s %lld ms after the kill\n",
                  ipcnet_strerror(m.error), (long long) took);
    assert_true(m.error == -EHOSTUNREACH || m.error == -ETIMEDOUT);
    assert_true(took <= LOST_DEFAULT_MS);
}

#define LOSS_SIZE    1024
#define LOSS_SETTLED 200        /* delivered, then a heartbeat before the kill */
#define LOSS_BEFORE  1500       /* sent just before the kill */
#define LOSS_AFTER   300        /* sent right after it */
#define LOSS_GAP_MS  150        /* between the last before and the kill */

/* Reads message indices the receiver reports until want of them came (or
   its end, want 0). Returns how many were read. */
static uint32_t s_read_arrivals(int fd, uint8_t *arrived, uint32_t total, uint32_t want,
                                int timeout_ms)
{
    uint32_t got = 0;
    int64_t deadline = harness_now_ms() + timeout_ms;
    while (!want || got < want) {
        struct pollfd p = { fd, POLLIN, 0 };
        int left = (int) (deadline - harness_now_ms());
        if (left <= 0)
            fail_msg("the receiver reported %u messages, %u expected", got, want);
        if (poll(&p, 1, left) <= 0)
            continue;
        uint32_t idx;
        ssize_t n = read(fd, &idx, sizeof idx);
        if (n == 0)
            break;
        assert_int_equal(n, (ssize_t) sizeof idx);
        if (idx >= total)
            fail_msg("the receiver got a message that was not sent (index %u)", idx);
        if (arrived[idx])
            fail_msg("message #%u arrived twice", idx);
        arrived[idx] = 1;
        got++;
    }
    return got;
}

/* A harness_holder_fn (arg: a pipe): reports the index of every message
   it gets on fd[1], slowly for the unsettled ones, until its node dies. */
static int s_reporting_holder(ipcnet_t *h, void *arg)
{
    int *fd = arg;
    close(fd[0]);
    for (;;) {
        ipcnet_msg_t m;
        int rc = ipcnet_recv(h, &m, 20000);
        if (rc < 0)
            break;          /* its node died: -ECONNRESET */
        uint32_t idx = UINT32_MAX;
        if (m.kind == IPCNET_MSG_SEND && m.size == LOSS_SIZE)
            memcpy(&idx, m.data, sizeof idx);
        if (write(fd[1], &idx, sizeof idx) != sizeof idx)
            return 4;
        if (idx >= LOSS_SETTLED && idx < LOSS_SETTLED + LOSS_BEFORE + LOSS_AFTER)
            usleep(200);    /* a slow reader: beta queues for it */
    }
    return 0;
}

/* Messages (no confirmation) from alpha to a holder on beta, and beta is
   killed in the middle: each one either reached the holder or came back
   to the sender as an error. The holder (another process) reports every
   message it got through a pipe, reading until its node's socket closes.

   A message can do both: beta handed it to the holder but died before
   its acknowledgement (CREDIT, sent every few tens of ms) reached alpha,
   which must then fail it back: the sender cannot know. Those are counted
   and printed, not failed. But messages delivered and given time to be
   acknowledged before the kill (the first LOSS_SETTLED) must not come
   back as errors.

   The holder reads slowly, so that when beta dies it holds messages
   queued for its holder that it has already acknowledged to alpha: those
   must not vanish either. */
static void test_cluster_no_silent_loss(void **state)
{
    fx_t *f = *state;
    WATCH(90);
    enum { TOTAL = LOSS_SETTLED + LOSS_BEFORE + LOSS_AFTER };
    s_start_mesh(f, 2);
    int dfd[2];
    assert_int_equal(pipe(dfd), 0);
    pid_t pid = harness_fork_holder(&f->n[1], "receiver", "svc.loss", s_reporting_holder, dfd);
    close(dfd[1]);
    s_wait_service(f, 0, "svc.loss", "beta", 1, WAIT_MS);
    usleep(600 * 1000);
    ipcnet_close(&f->q[1]);

    ipcnet_t *s = s_conn(f, 0, "sender");
    static uint32_t ids[TOTAL];
    static uint8_t arrived[TOTAL], failed[TOTAL];
    memset(arrived, 0, sizeof arrived);
    memset(failed, 0, sizeof failed);
    uint8_t buf[LOSS_SIZE];
    uint32_t sent = 0, refused = 0, got = 0;
    int64_t t0 = 0;
    int64_t give_up = harness_now_ms() + 20000;
    while (sent < TOTAL) {
        if (sent == LOSS_SETTLED) {
            /* All delivered, then a heartbeat for the acknowledgements. */
            assert_int_equal(ipcnet_flush(s, 5000), 0);
            got += s_read_arrivals(dfd[0], arrived, TOTAL, LOSS_SETTLED, WAIT_MS);
            usleep(500 * 1000);
            ipcnet_msg_t m;
            int rc = ipcnet_recv(s, &m, 0);
            if (rc == 0)
                fail_msg("sender got a %s message (error %d) before the kill",
                         harness_kind_name(m.kind), m.error);
        }
        if (sent == LOSS_SETTLED + LOSS_BEFORE) {
            /* A moment for beta to take them in and acknowledge what it
               took, then the kill while its reader still lags behind. */
            assert_int_equal(ipcnet_flush(s, 5000), 0);
            usleep(LOSS_GAP_MS * 1000);
            t0 = harness_now_ms();
            kill(f->n[1].pid, SIGKILL);
        }
        for (size_t k = 0; k < sizeof buf; k++)
            buf[k] = (uint8_t) (sent + k);
        memcpy(buf, &sent, sizeof sent);
        int rc = ipcnet_send(s, "svc.loss", buf, sizeof buf, IPCNET_DONTWAIT);
        if (rc == -EAGAIN) {
            /* Not sent: try the same one again shortly. */
            refused++;
            if (harness_now_ms() > give_up)
                fail_msg("sender stuck at %u of %u with -EAGAIN", sent, TOTAL);
            struct pollfd p = { ipcnet_fd(s), POLLOUT, 0 };
            poll(&p, 1, 5);
            continue;
        }
        if (rc < 0)
            fail_msg("send %u: %s", sent, ipcnet_strerror(rc));
        ids[sent++] = ipcnet_last_id(s);
    }
    assert_int_equal(ipcnet_flush(s, 5000), 0);
    harness_crash(&f->n[1]);

    /* What the receiver got (it stops when its node's socket closes). */
    got += s_read_arrivals(dfd[0], arrived, TOTAL, 0, 10000);
    close(dfd[0]);
    assert_int_equal(harness_reap(pid, 5000), 0);

    /* What came back: errors with the ids of the sends. */
    uint32_t unreach = 0, noent = 0, other = 0, dup_failed = 0, stray = 0;
    int64_t last_error = 0;
    int64_t deadline = t0 + LOST_DEFAULT_MS + 5000;
    for (;;) {
        uint32_t accounted = 0;
        for (uint32_t i = 0; i < TOTAL; i++)
            accounted += arrived[i] || failed[i];
        int left = (int) (deadline - harness_now_ms());
        if (accounted == TOTAL)
            left = QUIET_MS;    /* all told: wait a little for duplicates */
        if (left <= 0)
            break;
        ipcnet_msg_t m;
        int rc = ipcnet_recv(s, &m, left);
        if (rc == -ETIMEDOUT || rc == -EAGAIN) {
            if (accounted == TOTAL)
                break;
            continue;
        }
        if (rc < 0)
            fail_msg("sender recv: %s", ipcnet_strerror(rc));
        if (m.kind != IPCNET_MSG_ERROR)
            fail_msg("sender got a %s message", harness_kind_name(m.kind));
        last_error = harness_now_ms() - t0;
        if (m.error == -EHOSTUNREACH)
            unreach++;
        else if (m.error == -ENOENT)
            noent++;
        else
            other++;
        uint32_t i;
        for (i = 0; i < TOTAL && ids[i] != m.id; i++)
            ;
        if (i == TOTAL) {
            stray++;
            continue;
        }
        if (failed[i])
            dup_failed++;
        failed[i] = m.error == -ENOENT ? 2 : 1;
    }
    uint32_t errors = 0, both = 0, both_noent = 0, neither = 0, first_missing = UINT32_MAX;
    uint32_t settled_failed = 0, arrived_after = 0;
    for (uint32_t i = 0; i < TOTAL; i++) {
        errors += failed[i] != 0;
        both += arrived[i] && failed[i];
        both_noent += arrived[i] && failed[i] == 2;
        settled_failed += i < LOSS_SETTLED && failed[i];
        arrived_after += i >= LOSS_SETTLED && arrived[i];
        if (!arrived[i] && !failed[i] && !neither++)
            first_missing = i;
    }
    print_message("no silent loss: sent %u (%u settled, %u just before the kill, %u after; "
                  "%u refused with EAGAIN and sent again), arrived %u (%u of the unsettled), "
                  "errors %u (EHOSTUNREACH %u, ENOENT %u, other %u), both arrived and "
                  "failed %u (%u of them ENOENT), neither %u; last error %lld ms after the kill\n",
                  sent, LOSS_SETTLED, LOSS_BEFORE, LOSS_AFTER, refused, got, arrived_after,
                  errors, unreach, noent, other, both, both_noent, neither, (long long) last_error);
    assert_int_equal(other, 0);
    assert_int_equal(stray, 0);
    assert_int_equal(dup_failed, 0);
    if (neither)
        fail_msg("%u messages neither arrived nor came back as errors (first: #%u): "
                 "silent loss", neither, first_missing);
    if (settled_failed)
        fail_msg("%u messages delivered and acknowledged long before the kill came back "
                 "as errors", settled_failed);
    if (both_noent)
        fail_msg("%u messages that arrived came back as -ENOENT (no such name)", both_noent);
    /* Every message is accounted for; those that did both are counted once. */
    assert_int_equal(sent, got + errors - both);
    if (last_error > LOST_DEFAULT_MS)
        fail_msg("the last error came %lld ms after the kill (limit %d ms)",
                 (long long) last_error, LOST_DEFAULT_MS);
}

/* --- flow control -------------------------------------------------------- */

#define FC_SIZE     1024
#define FC_MAX      100000      /* attempts at most */
#define FC_RSS_KIB  (128 * 1024)

/* The fill of flow-control message seq: byte k is seq * 7 + k. */
static long s_check_fc(const uint8_t *data, size_t size, uint32_t seq)
{
    for (size_t k = sizeof seq; k < size; k++)
        if (data[k] != (uint8_t) (seq * 7 + k))
            return (long) k;
    return -1;
}

/* A holder on beta that does not read: the sender on alpha, with
   IPCNET_DONTWAIT, meets -EAGAIN; neither node grows past 128 MiB; once
   the holder reads, every accepted message arrives, in order. */
static void test_cluster_flow_control(void **state)
{
    fx_t *f = *state;
    WATCH(180);
    s_start_mesh(f, 2);
    ipcnet_t *r = s_listed_holder(f, 1, "slow-reader", "svc.slow", 0);
    ipcnet_t *s = s_conn(f, 0, "fast-sender");
    long rss0[2] = { harness_rss_kib(f->n[0].pid), harness_rss_kib(f->n[1].pid) };
    long peak[2] = { 0, 0 };

    uint8_t buf[FC_SIZE];
    uint32_t accepted = 0, eagain = 0, attempts = 0;
    int64_t t0 = harness_now_ms(), first_eagain = -1;
    while (attempts < FC_MAX && eagain < 200) {
        attempts++;
        for (size_t k = 0; k < sizeof buf; k++)
            buf[k] = (uint8_t) (accepted * 7 + k);
        memcpy(buf, &accepted, sizeof accepted);
        int rc = ipcnet_send(s, "svc.slow", buf, sizeof buf, IPCNET_DONTWAIT);
        if (rc == 0)
            accepted++;
        else if (rc == -EAGAIN) {
            if (eagain++ == 0)
                first_eagain = harness_now_ms() - t0;
            /* Give the nodes time to move what they can, then try again:
               the -EAGAIN must persist while nobody reads. */
            usleep(eagain < 20 ? 20 * 1000 : 1000);
        } else
            fail_msg("send %u with DONTWAIT: %s", accepted, ipcnet_strerror(rc));
        if (attempts % 500 == 0 || rc == -EAGAIN)
            for (int i = 0; i < 2; i++) {
                long v = harness_rss_kib(f->n[i].pid);
                if (v > peak[i])
                    peak[i] = v;
            }
    }
    print_message("flow control: %u accepted (%u KiB) before -EAGAIN (first after %lld ms), "
                  "%u EAGAIN in %u attempts; RSS alpha %ld -> peak %ld KiB, "
                  "beta %ld -> peak %ld KiB\n", accepted, accepted * FC_SIZE / 1024,
                  (long long) first_eagain, eagain, attempts, rss0[0], peak[0], rss0[1],
                  peak[1]);
    if (eagain == 0)
        fail_msg("%u messages of %d bytes accepted without any -EAGAIN", accepted, FC_SIZE);
    assert_true(accepted > 0);
    for (int i = 0; i < 2; i++) {
        if (harness_instrumented(f->n[i].pid))
            print_message("note: node %s is instrumented: RSS not checked\n", s_names[i]);
        else if (peak[i] > FC_RSS_KIB)
            fail_msg("node %s RSS reached %ld KiB (limit %d KiB)", s_names[i], peak[i],
                     FC_RSS_KIB);
    }
    assert_true(harness_alive(&f->n[0]) && harness_alive(&f->n[1]));

    /* Now the holder reads: all accepted arrive in order, intact. */
    harness_drain_numbered(s, r, accepted, FC_SIZE, s_check_fc);
    /* And the link works normally afterwards. */
    harness_send(s, "svc.slow", "after", IPCNET_CONFIRM);
    harness_expect_text(r, IPCNET_MSG_SEND, "svc.slow", "after");
    assert_true(s_peer_up(f, 0, "beta") && s_peer_up(f, 1, "alpha"));
}

/* --- untrusted peers ----------------------------------------------------- */

/* Random bytes written to a node's TCP port by a plain socket: the node
   goes on serving its clients and its peers. */
static void test_cluster_garbage_tcp(void **state)
{
    fx_t *f = *state;
    WATCH(60);
    s_start_mesh(f, 2);
    for (int round = 0; round < 5; round++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(fd >= 0);
        struct sockaddr_in sa = { .sin_family = AF_INET };
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sa.sin_port = htons((uint16_t) f->port[round % 2]);
        assert_int_equal(connect(fd, (struct sockaddr *) &sa, sizeof sa), 0);
        uint8_t junk[1000];
        assert_int_equal(getrandom(junk, sizeof junk, 0), (ssize_t) sizeof junk);
        if (round == 4)
            memset(junk, 0xff, sizeof junk);    /* a huge length, if it reads one */
        ssize_t n = send(fd, junk, sizeof junk, MSG_NOSIGNAL);
        if (n < 0)
            print_message("round %d: write: %s\n", round, strerror(errno));
        usleep(50 * 1000);
        close(fd);
    }
    assert_true(harness_alive(&f->n[0]) && harness_alive(&f->n[1]));

    /* Clients still bind and send, across the link too. */
    ipcnet_t *h = s_listed_holder(f, 0, "holder", "svc.after.garbage", 1);
    ipcnet_t *s = s_conn(f, 1, "sender");
    harness_send(s, "svc.after.garbage", "fine", IPCNET_CONFIRM);
    harness_expect_text(h, IPCNET_MSG_SEND, "svc.after.garbage", "fine");
    ipcnet_t *sl = s_conn(f, 0, "local-sender");
    harness_send(sl, "svc.after.garbage", "local", IPCNET_CONFIRM);
    harness_expect_text(h, IPCNET_MSG_SEND, "svc.after.garbage", "local");
    /* The peers stayed up, and a new one still joins. */
    assert_true(s_peer_up(f, 0, "beta") && s_peer_up(f, 1, "alpha"));
    s_start(f, 2, 0);
    s_wait_mesh(f, 3);
}

/* --- peers that may not join ------------------------------------------------ */

/* Sends one message on a DEALER and waits (bounded) for the answer the
   node's ROUTER gives on that connection. Returns its size, or -1. */
static int s_zmq_ask(void *dealer, const proto_buf_t *b, uint8_t *answer, size_t size)
{
    if (zmq_send(dealer, b->data, b->len, 0) < 0)
        return -1;
    zmq_pollitem_t item = { dealer, 0, ZMQ_POLLIN, 0 };
    if (zmq_poll(&item, 1, 5000) <= 0)
        return -1;
    return zmq_recv(dealer, answer, size, 0);
}

/* A CURVE DEALER to node i's ROUTER with a key pair of its own, whose
   routing id is rid (NULL: its key's id, the honest one). */
static void *s_zmq_dealer(fx_t *f, int i, void *ctx, const char *rid, char id[33])
{
    char z85[41], pub[41], sec[41];
    uint8_t key[32], mine[32];
    s_node_key(f, i, z85, key, id);
    assert_int_equal(zmq_curve_keypair(pub, sec), 0);
    assert_non_null(zmq_z85_decode(mine, pub));
    for (int k = 0; k < 16; k++)
        snprintf(id + 2 * k, 3, "%02x", mine[k]);
    void *dealer = zmq_socket(ctx, ZMQ_DEALER);
    assert_non_null(dealer);
    int zero = 0;
    zmq_setsockopt(dealer, ZMQ_ROUTING_ID, rid ? rid : id, 32);
    zmq_setsockopt(dealer, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(dealer, ZMQ_CURVE_SERVERKEY, z85, 40);
    zmq_setsockopt(dealer, ZMQ_CURVE_PUBLICKEY, pub, 40);
    zmq_setsockopt(dealer, ZMQ_CURVE_SECRETKEY, sec, 40);
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", f->port[i]);
    assert_int_equal(zmq_connect(dealer, ep), 0);
    return dealer;
}

static void s_hello(proto_buf_t *b, const char *id, const char *name, const char *cluster)
{
    proto_begin(b, P_HELLO, 0, 1);
    proto_str(b, id, strlen(id));
    proto_str(b, name, strlen(name));
    proto_str(b, cluster, strlen(cluster));
    proto_u16(b, 9);
    proto_u64(b, 42);
    proto_u32(b, 500);
}

/* A node speaking another protocol version, or of another cluster, is
   answered with a FAIL (EPROTO, EACCES) and not taken; one that sends
   a malformed message gets nothing; one whose routing id is not its key's
   id is not heard at all; the node carries on. */
static void test_cluster_peer_refused(void **state)
{
    fx_t *f = *state;
    WATCH(60);
    s_start(f, 0, -1);
    void *ctx = zmq_ctx_new();
    char id[33];
    void *dealer = s_zmq_dealer(f, 0, ctx, NULL, id);

    proto_buf_t b = { 0 };
    uint8_t answer[512];
    /* A HELLO of the next version: only the head is ours to read. */
    proto_begin(&b, P_HELLO, 0, 1);
    b.data[1] = PROTO_VERSION + 1;
    proto_bytes(&b, "future fields", 13);
    int n = s_zmq_ask(dealer, &b, answer, sizeof answer);
    proto_msg_t m;
    assert_true(n > 0);
    assert_int_equal(proto_decode(answer, (size_t) n, &m), 0);
    assert_int_equal(m.type, P_FAIL);
    assert_int_equal(m.error, EPROTO);

    /* Our version, another cluster. */
    s_hello(&b, id, "stranger", "elsewhere");
    n = s_zmq_ask(dealer, &b, answer, sizeof answer);
    assert_true(n > 0);
    assert_int_equal(proto_decode(answer, (size_t) n, &m), 0);
    assert_int_equal(m.type, P_FAIL);
    assert_int_equal(m.error, EACCES);

    /* Garbage in our framing: no answer, no harm. */
    proto_begin(&b, 99, 0, 1);
    proto_bytes(&b, "junk", 4);
    assert_int_equal(s_zmq_ask(dealer, &b, answer, sizeof answer), -1);
    /* Its own id, the right cluster: taken (the HELLO_ACK says alpha). */
    char cluster[32];
    snprintf(cluster, sizeof cluster, "test-%d", (int) getpid());    /* the harness's */
    s_hello(&b, id, "stranger", cluster);
    n = s_zmq_ask(dealer, &b, answer, sizeof answer);
    assert_true(n > 0);
    assert_int_equal(proto_decode(answer, (size_t) n, &m), 0);
    assert_int_equal(m.type, P_HELLO_ACK);
    zmq_close(dealer);

    /* Another key, claiming that id (as routing id and in its HELLO): the
       ROUTER hands the routing id over, but the node hears nothing of it. */
    char other[33];
    dealer = s_zmq_dealer(f, 0, ctx, id, other);
    assert_string_not_equal(other, id);
    s_hello(&b, id, "impostor", cluster);
    assert_int_equal(s_zmq_ask(dealer, &b, answer, sizeof answer), -1);
    proto_begin(&b, P_PING, 0, 2);
    proto_u64(&b, 1);
    assert_int_equal(s_zmq_ask(dealer, &b, answer, sizeof answer), -1);
    proto_free(&b);
    zmq_close(dealer);
    zmq_ctx_term(ctx);
    assert_false(s_peer_up(f, 0, "impostor"));

    /* The stranger was not taken, and the node serves as before. */
    assert_false(s_peer_up(f, 0, "stranger"));
    assert_true(harness_alive(&f->n[0]));
    ipcnet_t *h = s_holder(f, 0, "holder", "svc.after.strangers");
    s_start(f, 1, 0);
    s_wait_mesh(f, 2);
    /* Up first, then the names: beta may list alpha up before its names. */
    s_wait_service(f, 1, "svc.after.strangers", s_names[0], 1, WAIT_MS);
    ipcnet_t *c = s_conn(f, 1, "sender");
    harness_send(c, "svc.after.strangers", "hi", IPCNET_CONFIRM);
    harness_expect_text(h, IPCNET_MSG_SEND, "svc.after.strangers", "hi");
}

/* --- who sent it, across nodes (protocol-local.md 4.4, protocol-node.md 6.6) -- */

/* Node i's id as its own peers row gives it, checked against the key in
   its state directory: the key's first 16 bytes in hex. */
static void s_checked_id(fx_t *f, int i, char id[64])
{
    char z85[41], kid[33];
    uint8_t key[32];
    harness_self_id(s_q(f, i), s_names[i], id);
    s_node_key(f, i, z85, key, kid);
    if (strcmp(id, kid) != 0)
        fail_msg("node %s lists id %s, its key's is %s", s_names[i], id, kid);
}

/* A client of alpha sends, requests, publishes to clients of beta, which
   reply and send back: each delivery names its sender's uid (ours, from
   SO_PEERCRED on its own node, carried in MSG, REPLY and PUB), its user,
   its node's name and its node's id (the peer's, whose key proved it);
   and the other way round, and between clients of one node, while the
   cluster carries traffic. */
static void test_cluster_sender_identity(void **state)
{
    fx_t *f = *state;
    WATCH(60);
    s_start_mesh(f, 2);
    char user[64], ida[64], idb[64];
    harness_user_of(getuid(), user);
    s_checked_id(f, 0, ida);
    s_checked_id(f, 1, idb);
    assert_string_not_equal(ida, idb);
    uint32_t uid = (uint32_t) getuid();

    ipcnet_t *sa = s_conn(f, 0, "sender-a");
    ipcnet_t *ha = s_listed_holder(f, 0, "holder-a", "svc.who.a", 1);
    ipcnet_t *sb = s_conn(f, 1, "sender-b");
    ipcnet_t *hb = s_listed_holder(f, 1, "holder-b", "svc.who.b", 0);
    ipcnet_t *suba = s_conn(f, 0, "subscriber-a");
    ipcnet_t *subb = s_conn(f, 1, "subscriber-b");
    assert_int_equal(ipcnet_subscribe(suba, "who.a.*"), 0);
    assert_int_equal(ipcnet_subscribe(subb, "who.b.*"), 0);
    s_fence(f, 0, 2);
    s_fence(f, 1, 2);
    harness_sender_t wsa = { ipcnet_address(sa), uid, user, "alpha", ida };
    harness_sender_t wha = { ipcnet_address(ha), uid, user, "alpha", ida };
    harness_sender_t wsb = { ipcnet_address(sb), uid, user, "beta", idb };
    harness_sender_t whb = { ipcnet_address(hb), uid, user, "beta", idb };

    /* alpha to beta, beta to alpha: node and node_id the sender's node. */
    harness_expect_senders(sa, &wsa, hb, &whb, "svc.who.b", subb, "who.b.x");
    harness_expect_senders(sb, &wsb, ha, &wha, "svc.who.a", suba, "who.a.x");
    /* Pinned to the node, and to the holder's address on the other node. */
    harness_expect_senders(sa, &wsa, hb, &whb, "svc.who.b@beta", subb, "who.b.y");
    /* Within one node, with the cluster up. */
    harness_expect_senders(sb, &wsb, hb, &whb, "svc.who.b", subb, "who.b.z");

    /* A publication on alpha reaches a subscriber on either node from
       alpha's client. */
    assert_int_equal(ipcnet_subscribe(subb, "who.a.*"), 0);
    s_fence(f, 1, 2);
    assert_int_equal(ipcnet_publish(sa, "who.a.both", "both", 4, 0), 0);
    ipcnet_t *subs[] = { suba, subb };
    for (int i = 0; i < 2; i++) {
        ipcnet_msg_t m;
        harness_expect(subs[i], IPCNET_MSG_PUBLISH, &m);
        harness_expect_sender(&m, &wsa, i ? "PUBLISH on alpha, to beta" : "PUBLISH on alpha");
    }
}

/* A MSG of the stranger of test_cluster_sender_claims: SEND, seq, cseq,
   from ":7@stranger" with uid and user (userlen bytes), to svc.claims. */
static void s_claim(void *dealer, proto_buf_t *b, uint32_t seq, uint32_t cseq, uint32_t uid,
                    const char *user, size_t userlen, const char *text)
{
    proto_begin(b, P_MSG, 0, seq);
    proto_u8(b, P_KIND_SEND);
    proto_u32(b, cseq);
    proto_u32(b, 0);
    proto_str(b, ":7@stranger", 11);
    proto_u32(b, uid);
    proto_str(b, user, userlen);
    proto_str(b, "svc.claims", 10);
    proto_bytes(b, text, strlen(text));
    assert_false(b->failed);
    assert_int_equal(zmq_send(dealer, b->data, b->len, 0), (int) b->len);
}

/* The stranger says HELLO (a new session): answered HELLO_ACK. */
static void s_stranger_hello(void *dealer, proto_buf_t *b, const char *id)
{
    char cluster[32];
    snprintf(cluster, sizeof cluster, "test-%d", (int) getpid());    /* the harness's */
    uint8_t answer[512];
    s_hello(b, id, "stranger", cluster);
    int n = s_zmq_ask(dealer, b, answer, sizeof answer);
    proto_msg_t m;
    assert_true(n > 0);
    assert_int_equal(proto_decode(answer, (size_t) n, &m), 0);
    assert_int_equal(m.type, P_HELLO_ACK);
}

/* A peer's uid and user are its word (protocol-node.md 6.6): a node that
   says a MSG comes from uid 4242, user "mallory" (or uid 0, "root") is
   passed on as it says, with its own name and the id its key proves. A
   user the codec refuses (a blank in it; 33 bytes) makes a malformed
   message: nothing of it is delivered, and the peer is dropped (section
   11.2), so that a MSG with the seq the bad one had is not heard either,
   until the peer starts a new session. */
static void test_cluster_sender_claims(void **state)
{
    fx_t *f = *state;
    WATCH(60);
    s_start(f, 0, -1);
    ipcnet_t *h = s_holder(f, 0, "holder", "svc.claims");
    void *ctx = zmq_ctx_new();
    char id[33];
    void *dealer = s_zmq_dealer(f, 0, ctx, NULL, id);
    proto_buf_t b = { 0 };
    s_stranger_hello(dealer, &b, id);

    static const struct {
        uint32_t uid;
        const char *user;
        const char *text;
    } claims[] = {
        { 4242, "mallory", "claim 1" }, { 0, "root", "claim 2" }, { 1000, "", "claim 3" },
        { 0xffffffffu, "abcdefghijklmnopqrstuvwxyz012345", "claim 4" },
    };
    uint32_t seq = 1;
    for (size_t i = 0; i < sizeof claims / sizeof claims[0]; i++) {
        s_claim(dealer, &b, ++seq, (uint32_t) i + 1, claims[i].uid, claims[i].user,
                strlen(claims[i].user), claims[i].text);
        ipcnet_msg_t got;
        harness_expect(h, IPCNET_MSG_SEND, &got);
        assert_int_equal(got.size, strlen(claims[i].text));
        assert_memory_equal(got.data, claims[i].text, got.size);
        harness_sender_t want = { ":7@stranger", claims[i].uid, claims[i].user, "stranger", id };
        harness_expect_sender(&got, &want, claims[i].text);
        assert_int_equal(got.id, i + 1);
    }

    static const struct {
        const char *user;
        size_t len;
        const char *log;
    } bad[] = {
        { "eve il", 6, "a blank" },
        { "abcdefghijklmnopqrstuvwxyz0123456", 33, "33 bytes" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (i > 0) {
            /* A new session: heard again. */
            s_stranger_hello(dealer, &b, id);
            seq = 1;
            s_claim(dealer, &b, ++seq, 20, 1000, "eve", 3, "back again");
            harness_expect_text(h, IPCNET_MSG_SEND, "svc.claims", "back again");
        }
        ++seq;
        s_claim(dealer, &b, seq, 21, 1000, bad[i].user, bad[i].len, "bad user");
        s_claim(dealer, &b, seq, 22, 1000, "eve", 3, "in its place");
        s_claim(dealer, &b, seq + 1, 23, 1000, "eve", 3, "after it");
        harness_expect_nothing(h);
        /* The log says so, once for each (a count: the log has them all). */
        char *log = harness_read_file(f->n[0].log);
        size_t dropped = 0;
        for (const char *p = log; (p = strstr(p, "malformed message from stranger")); p++)
            dropped++;
        free(log);
        if (dropped != i + 1)
            fail_msg("a MSG whose user has %s: the node's log says nothing of a malformed "
                     "message from stranger", bad[i].log);
    }
    proto_free(&b);
    zmq_close(dealer);
    zmq_ctx_term(ctx);
    assert_true(harness_alive(&f->n[0]));
    assert_false(s_peer_up(f, 0, "stranger"));
}

/* A user on alpha whose name has a byte the wire does not allow in a user
   name (UTF-8 here) sends to a holder on beta. By protocol-local.md 4.4
   the name the node sends is printable ASCII (else the uid in decimal):
   the message must arrive, and the link stay up. A MSG with such a user
   is malformed to beta (protocol-node.md 6.6), which drops alpha. */
static void test_cluster_sender_unprintable_user_name(void **state)
{
    fx_t *f = *state;
    WATCH(60);
    static const harness_user_t odd[] = { { 4243, "caf\xc3\xa9" } };
    char dir[64];
    harness_fake_users(odd, 1, dir);
    char *extra[] = { "--group", "nogroup", "--port", "0", NULL };
    int rc = harness_start_named(&f->n[0], "alpha", extra);
    if (rc < 0) {
        harness_fake_users_undo(dir);
        fail_msg("cannot start alpha: %s", strerror(-rc));
    }
    f->port[0] = harness_node_port(&f->n[0]);
    assert_true(f->port[0] > 0);
    assert_int_equal(chmod(f->n[0].dir, 0711), 0);
    s_start(f, 1, 0);
    s_wait_mesh(f, 2);
    ipcnet_t *h = s_listed_holder(f, 1, "holder", "svc.odd", 0);

    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = harness_fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(odd[0].uid) < 0)
            _exit(10);
        ipcnet_t *c = harness_connect(&f->n[0], "odd");
        if (!c)
            _exit(11);
        int r = ipcnet_send(c, "svc.odd", "hi", 2, IPCNET_CONFIRM);
        if (write(pfd[1], &r, sizeof r) != sizeof r)
            _exit(12);
        ipcnet_close(&c);
        _exit(0);
    }
    close(pfd[1]);
    int sent = 0;
    struct pollfd pf = { pfd[0], POLLIN, 0 };
    if (poll(&pf, 1, WAIT_MS * harness_scale()) <= 0 || read(pfd[0], &sent, sizeof sent) !=
        sizeof sent)
        sent = 1;
    close(pfd[0]);
    int st = harness_reap(pid, 5000);

    char report[1024] = "", want[64];
    harness_user_of(odd[0].uid, want);
    ipcnet_msg_t m;
    int got = harness_recv(h, &m, QUIET_MS * 3);
    size_t n = 0;
    if (st != 0 || sent != 0)
        n += (size_t) snprintf(report + n, sizeof report - n, "the sender's send: %s (exit %d)\n",
                               sent == 1 ? "no answer" : ipcnet_strerror(sent), st);
    if (got < 0)
        n += (size_t) snprintf(report + n, sizeof report - n, "beta's holder got nothing: %s\n",
                               ipcnet_strerror(got));
    else if (m.uid != odd[0].uid || strcmp(m.user, want) != 0)
        n += (size_t) snprintf(report + n, sizeof report - n, "beta's holder got uid %u "
                               "user '%s', want '%s'\n", (unsigned) m.uid, m.user, want);
    char *log = harness_read_file(f->n[1].log);
    if (strstr(log, "malformed message from alpha"))
        n += (size_t) snprintf(report + n, sizeof report - n, "beta's log: malformed message "
                               "from alpha; dropping the peer\n");
    free(log);
    harness_fake_users_undo(dir);
    if (n)
        fail_msg("a user named 'caf\\xc3\\xa9' on alpha sending to beta:\n%s", report);
}

/* --- a link dropped before its peer is lost ------------------------------ */

/* beta is killed: its TCP connections close at once, and alpha's DEALER,
   with ZMQ_IMMEDIATE, refuses what is sent to it; but with a heartbeat of
   2 s alpha declares beta lost only 5 s later. What alpha is asked to send
   to beta in that window (alone, or in a batch that fills) fails back to
   the sender, once, and alpha carries on. */
#define DROP_HEARTBEAT  "2000"  /* beta is lost 2.5 heartbeats after the kill */
#define DROP_WAIT_MS    200     /* after the kill: alpha's DEALER saw the link go */
#define DROP_BIG        4096    /* over 2 KiB (BATCH_ITEM_MAX): sent on its own */
#define DROP_SMALL      64      /* batched */
#define DROP_SMALL_N    3000    /* more than a 64 KiB batch, written at once */

/* alpha and beta meshed with the long heartbeat, beta holding name and
   alpha listing it. */
static void s_drop_setup(fx_t *f, const char *name)
{
    f->heartbeat = DROP_HEARTBEAT;
    s_start_mesh(f, 2);
    s_listed_holder(f, 1, "holder-b", name, 0);
}

/* SIGKILLs beta right after one of alpha's PINGs came back (its rtt in
   alpha's listing changed) and waits DROP_WAIT_MS: alpha still lists beta
   up, well inside the 5 s, but the link is gone, and alpha's next PING
   (which the refused DEALER would mark congested, holding sends back) is
   2 s away. */
static void s_drop_beta(fx_t *f)
{
    peer_row_t r;
    assert_true(s_peer(f, 0, "beta", &r));
    long long rtt = r.rtt_us;
    int limit_ms = 3 * atoi(DROP_HEARTBEAT) * harness_scale();
    int64_t deadline = harness_now_ms() + limit_ms;
    do {
        if (harness_now_ms() > deadline)
            fail_msg("no PONG from beta on alpha within %d ms", limit_ms);
        usleep(POLL_MS * 1000 / 4);
        assert_true(s_peer(f, 0, "beta", &r));
    } while (r.rtt_us == rtt);
    int64_t t0 = s_crash(f, 1);
    usleep((useconds_t) (DROP_WAIT_MS * harness_scale()) * 1000);
    if (!s_peer_up(f, 0, "beta"))
        fail_msg("alpha lost beta within %lld ms of the kill: no window to test",
                 (long long) (harness_now_ms() - t0));
}

/* alpha is alive and serves: a send between two of its clients. */
static void s_alpha_serves(fx_t *f)
{
    if (!harness_alive(&f->n[0]))
        fail_msg("alpha died");
    ipcnet_t *h = s_holder(f, 0, "holder-after", "svc.after.drop");
    ipcnet_t *s = s_conn(f, 0, "sender-after");
    harness_send(s, "svc.after.drop", "still here", IPCNET_CONFIRM);
    harness_expect_text(h, IPCNET_MSG_SEND, "svc.after.drop", "still here");
}

/* The answers to DROP_SMALL_N messages whose ids start at first. */
typedef struct {
    uint32_t first;
    uint8_t seen[DROP_SMALL_N];
    uint32_t answered, twice, unreach, noent;
} answers_t;

/* Counts an error err (a positive errno) for id; fails on an id that no
   message had, or an error other than EHOSTUNREACH (beta still listed)
   and ENOENT (its names gone). */
static void s_answer(answers_t *a, uint32_t id, int err)
{
    uint32_t i = id - a->first;
    if (i >= DROP_SMALL_N)
        fail_msg("an error for id %u, which no message had", id);
    if (err == EHOSTUNREACH)
        a->unreach++;
    else if (err == ENOENT)
        a->noent++;
    else
        fail_msg("message %u failed with %s (want EHOSTUNREACH or ENOENT)", i, strerror(err));
    if (a->seen[i]++)
        a->twice++;
    else
        a->answered++;
}

/* Says how the messages (what) were answered; fails if any twice. */
static void s_check_answers(const answers_t *a, const char *what)
{
    print_message("dropped link, %d %s of %d bytes: %u EHOSTUNREACH, %u ENOENT, "
                  "%u answered twice\n", DROP_SMALL_N, what, DROP_SMALL, a->unreach, a->noent,
                  a->twice);
    if (a->twice)
        fail_msg("%u %s were answered twice", a->twice, what);
}

/* A 4 KiB request to a name on beta, whose link dropped: one answer, an
   EHOSTUNREACH error; alpha alive. */
static void test_cluster_dropped_link_request(void **state)
{
    fx_t *f = *state;
    WATCH(60);
    s_drop_setup(f, "svc.dropped");
    ipcnet_t *r = s_conn(f, 0, "requester");
    s_drop_beta(f);

    static uint8_t buf[DROP_BIG];
    memset(buf, 'q', sizeof buf);
    ipcnet_msg_t m;
    int rc = ipcnet_request(r, "svc.dropped", buf, sizeof buf, 3000, &m);
    if (rc != -EHOSTUNREACH)
        fail_msg("a %d-byte request over a dropped link: %s (want -EHOSTUNREACH)", DROP_BIG,
                 ipcnet_strerror(rc));
    harness_expect_nothing(r);          /* one answer, not two */
    s_alpha_serves(f);
}

/* DROP_SMALL_N small sends to a name on beta, whose link dropped, written
   at once (IPCNET_MORE): a full batch is flushed into the refused DEALER.
   Each send gets exactly one error; alpha alive. */
static void test_cluster_dropped_link_batch(void **state)
{
    fx_t *f = *state;
    WATCH(60);
    s_drop_setup(f, "svc.dropped");
    ipcnet_t *s = s_conn(f, 0, "sender");
    s_drop_beta(f);

    static answers_t a;
    memset(&a, 0, sizeof a);
    uint8_t buf[DROP_SMALL];
    memset(buf, 's', sizeof buf);
    for (uint32_t i = 0; i < DROP_SMALL_N; i++) {
        int rc = ipcnet_send(s, "svc.dropped", buf, sizeof buf, IPCNET_MORE);
        if (rc < 0)
            fail_msg("send %u: %s", i, ipcnet_strerror(rc));
        if (i == 0)
            a.first = ipcnet_last_id(s);
        assert_int_equal(ipcnet_last_id(s), a.first + i);
    }
    int rc = ipcnet_flush(s, WAIT_MS);
    if (rc < 0)
        fail_msg("flush: %s", ipcnet_strerror(rc));
    while (a.answered < DROP_SMALL_N) {
        ipcnet_msg_t m;
        rc = ipcnet_recv(s, &m, WAIT_MS);
        if (rc < 0)
            fail_msg("%u of %u sends answered, then: %s", a.answered, DROP_SMALL_N,
                     ipcnet_strerror(rc));
        if (m.kind != IPCNET_MSG_ERROR)
            fail_msg("the sender got a %s message", harness_kind_name(m.kind));
        s_answer(&a, m.id, -m.error);
    }
    s_check_answers(&a, "sends");
    harness_expect_nothing(s);
    s_alpha_serves(f);
}

/* The same with small requests, written in one go on a raw connection:
   the request whose item overflows the batch finds it refused. Each
   request gets exactly one error; alpha alive. */
static void test_cluster_dropped_link_batch_requests(void **state)
{
    fx_t *f = *state;
    WATCH(60);
    s_drop_setup(f, "svc.dropped");
    int fd = harness_raw_connect(&f->n[0]);
    assert_true(fd >= 0);
    assert_int_equal(harness_raw_hello(fd, "raw-requester"), 0);
    static answers_t a;
    memset(&a, 0, sizeof a);
    a.first = 2;                /* the HELLO was seq 1 */
    size_t cap = DROP_SMALL_N * (WIRE_HEAD_MAX + DROP_SMALL), len = 0;
    uint8_t *out = malloc(cap);
    assert_non_null(out);
    for (uint32_t i = 0; i < DROP_SMALL_N; i++) {
        len += wire_encode(out + len, WIRE_REQUEST, 0, a.first + i, 10000, "svc.dropped", 11,
                           NULL, 0, DROP_SMALL);
        memset(out + len, 'q', DROP_SMALL);
        len += DROP_SMALL;
    }
    s_drop_beta(f);
    int rc = harness_raw_write(fd, out, len);
    free(out);
    if (rc < 0)
        fail_msg("writing %d requests: %s", DROP_SMALL_N, strerror(-rc));

    static uint8_t in[WIRE_HEAD_MAX + 4096];
    wire_frame_t fr;
    while (a.answered < DROP_SMALL_N) {
        ssize_t n = harness_raw_read_frame(fd, in, sizeof in, WAIT_MS, &fr);
        if (n <= 0)
            fail_msg("%u of %u requests answered, then: %s", a.answered, DROP_SMALL_N,
                     n == 0 ? "alpha closed the connection" : strerror((int) -n));
        if (fr.type != WIRE_ERROR)
            fail_msg("the requester got a frame of type 0x%x, not ERROR", fr.type);
        s_answer(&a, fr.seq, (int) fr.aux);
    }
    s_check_answers(&a, "requests");
    ssize_t n = harness_raw_read_frame(fd, in, sizeof in, QUIET_MS, &fr);
    if (n != -ETIMEDOUT)
        fail_msg("after every request was answered: %s",
                 n > 0 ? "one more frame" : n == 0 ? "alpha closed the connection"
                                                   : strerror((int) -n));
    close(fd);
    s_alpha_serves(f);
}

/* A requester on beta, a holder on alpha; beta is killed and the holder
   replies with more than 2 KiB over the dropped link: the holder gets at
   most one answer (the requester's node is gone: EHOSTUNREACH); alpha
   alive. */
static void test_cluster_dropped_link_reply(void **state)
{
    fx_t *f = *state;
    WATCH(60);
    f->heartbeat = DROP_HEARTBEAT;
    s_start_mesh(f, 2);
    ipcnet_t *h = s_listed_holder(f, 0, "holder-a", "svc.answers", 1);
    ipcnet_t *r = s_conn(f, 1, "requester-b");
    uint32_t id;
    assert_int_equal(ipcnet_request_async(r, "svc.answers", "q", 1, 10000, &id), 0);
    ipcnet_msg_t m;
    harness_expect(h, IPCNET_MSG_REQUEST, &m);
    char src[128];
    snprintf(src, sizeof src, "%s", m.source);
    uint32_t rid = m.id;
    s_drop_beta(f);

    static uint8_t buf[DROP_BIG];
    memset(buf, 'r', sizeof buf);
    assert_int_equal(ipcnet_reply_to(h, src, rid, buf, sizeof buf), 0);
    uint32_t seq = ipcnet_last_id(h);
    int rc = ipcnet_recv(h, &m, WAIT_MS);
    if (rc == 0) {
        if (m.kind != IPCNET_MSG_ERROR || m.error != -EHOSTUNREACH || m.id != seq)
            fail_msg("the holder got a %s message (error %s, id %u; the reply's is %u), "
                     "not EHOSTUNREACH", harness_kind_name(m.kind), ipcnet_strerror(m.error),
                     m.id, seq);
    } else if (rc != -ETIMEDOUT && rc != -EAGAIN)
        fail_msg("the holder, after a %d-byte reply over a dropped link: %s", DROP_BIG,
                 ipcnet_strerror(rc));
    print_message("a %d-byte reply over a dropped link: the holder got %s\n", DROP_BIG,
                  rc == 0 ? "EHOSTUNREACH" : "no answer");
    harness_expect_nothing(h);          /* at most one */
    s_alpha_serves(f);
}

/* --- five nodes ---------------------------------------------------------- */

/* Five nodes, each seeded with the previous one only: all see four peers
   up within 5 s, and a publication from the first reaches a subscriber on
   each of the five. */
static void test_cluster_five_nodes(void **state)
{
    fx_t *f = *state;
    WATCH(90);
    for (int i = 0; i < NODES; i++)
        s_start(f, i, i - 1);
    int64_t took = s_wait_mesh(f, NODES);
    print_message("five chained nodes meshed %lld ms after the last one started\n",
                  (long long) took);
    for (int i = 0; i < NODES; i++)
        assert_int_equal(s_count_up(f, i), NODES - 1);

    ipcnet_t *sub[NODES];
    const char *pattern[NODES] = { "five.*", "five.hello", "*", "five.*", "five.hello" };
    for (int i = 0; i < NODES; i++) {
        sub[i] = s_conn(f, i, "subscriber");
        assert_int_equal(ipcnet_subscribe(sub[i], pattern[i]), 0);
    }
    for (int i = 1; i < NODES; i++)
        s_fence(f, i, NODES);
    ipcnet_t *p = s_conn(f, 0, "publisher");
    assert_int_equal(ipcnet_publish(p, "five.hello", "hi all", 6, 0), 0);
    for (int i = 0; i < NODES; i++)
        harness_expect_from(sub[i], IPCNET_MSG_PUBLISH, "five.hello", ipcnet_address(p),
                            "hi all", 6);
    for (int i = 0; i < NODES; i++)
        harness_expect_nothing(sub[i]);       /* exactly once each */
    harness_expect_nothing(p);
}

int main(int argc, char **argv)
{
    harness_main(argc, argv, WAIT_MS, QUIET_MS);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cluster_two_nodes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_gossip_mesh, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_send_remote, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_send_local_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_send_round_robin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_send_pinned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_send_unique_address, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_request_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_request_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_request_holder_closes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_publish, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_watch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_liveness_kill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_liveness_kill_fast, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_liveness_goodbye, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_frozen_node, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_restart_same_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_restart_seed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_request_node_killed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_no_silent_loss, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_flow_control, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_garbage_tcp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_peer_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_sender_identity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_sender_claims, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_sender_unprintable_user_name, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cluster_five_nodes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_dropped_link_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_dropped_link_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_dropped_link_batch_requests, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cluster_dropped_link_reply, setup, teardown),
    };
    return cmocka_run_group_tests_name("cluster", tests, NULL, NULL);
}
