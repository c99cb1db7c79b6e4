/*  test_node.c: ipc-node through real sockets, one real node per test.

    Every test talks to a fresh ipc-node started by the harness (see
    harness.h) through libipcnet, or through a raw AF_UNIX socket for the
    malformed-input tests. A watchdog bounds each test; helper processes
    are forked through the harness and reaped by pid.

    Run one test: tests/node/test_node 'test_node_watch*'
*/

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define MIB             (1024 * 1024)
#define DEFAULT_MAX     (16 * MIB)
#define WAIT_MS         3000    /* longest wait for something that must come */
#define QUIET_MS        250     /* how long to wait for something that must not */

typedef struct {
    node_t node;
} fx_t;

/* --- fixtures ------------------------------------------------------------ */

static int setup_node(void **state)
{
    if (harness_state_new(state, sizeof (fx_t)) < 0)
        return -1;
    fx_t *f = *state;
    harness_watchdog("setup", 30);
    if (harness_start(&f->node, NULL) < 0) {
        free(f);
        return -1;
    }
    return 0;
}

/* For tests that start their node themselves, with their own options. */
static int setup_bare(void **state)
{
    return harness_state_new(state, sizeof (fx_t));
}

static int teardown(void **state)
{
    fx_t *f = *state;
    int rc = 0;
    harness_reap_all();
    if (f->node.pid > 0)
        rc = harness_stop(&f->node);
    else
        harness_cleanup(&f->node);
    harness_watchdog(NULL, 0);
    free(f);
    return rc;
}

#define WATCH(secs) harness_watchdog(__func__, (secs))

/* --- helpers ------------------------------------------------------------- */

static ipcnet_t *s_conn(fx_t *f, const char *label)
{
    ipcnet_t *c = harness_connect(&f->node, label);
    assert_non_null(c);
    return c;
}

/* A client that holds name. */
static ipcnet_t *s_holder(fx_t *f, const char *label, const char *name)
{
    ipcnet_t *c = s_conn(f, label);
    harness_bind(c, name);
    return c;
}

/* A deterministic byte pattern per (seed, offset). */
static void s_fill(uint8_t *p, size_t n, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 0x9E3779B9u;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        p[i] = (uint8_t) (x >> 16);
    }
}

/* Offset of the first byte from skip on that differs from s_fill(seed),
   or -1. */
static long s_check_fill_from(const uint8_t *p, size_t n, uint32_t seed, size_t skip)
{
    uint32_t x = seed * 2654435761u + 0x9E3779B9u;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        if (i >= skip && p[i] != (uint8_t) (x >> 16))
            return (long) i;
    }
    return -1;
}

static long s_check_fill(const uint8_t *p, size_t n, uint32_t seed)
{
    return s_check_fill_from(p, n, seed, 0);
}

static void s_expect_event(ipcnet_t *c, int event, const char *name)
{
    ipcnet_msg_t m;
    harness_expect(c, IPCNET_MSG_EVENT, &m);
    if (m.event != event || strcmp(m.name, name) != 0)
        fail_msg("expected event %d for '%s', got event %d for '%s'",
                 event, name, m.event, m.name);
    assert_string_equal(m.node, HARNESS_NODE_NAME);
}

/* Does text hold a line that starts with prefix? */
static int s_has_line(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const char *p = text; p && *p; ) {
        if (strncmp(p, prefix, n) == 0)
            return 1;
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return 0;
}

/* The value of "key\tvalue" in a STATS text, or -1. */
static long s_stat(const char *text, const char *key)
{
    char prefix[128];
    snprintf(prefix, sizeof prefix, "%s\t", key);
    size_t n = strlen(prefix);
    for (const char *p = text; p && *p; ) {
        if (strncmp(p, prefix, n) == 0)
            return strtol(p + n, NULL, 10);
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return -1;
}

/* The node still runs and a new client can do a round trip. */
static void s_node_serves(fx_t *f)
{
    assert_true(harness_alive(&f->node));
    ipcnet_t *c = s_conn(f, "probe");
    char *t = harness_query(c, IPCNET_Q_STATS);
    free(t);
    ipcnet_close(&c);
}

/* A new client (label) sends text to name with IPCNET_CONFIRM: h, which
   holds name, gets it. */
static void s_reaches(fx_t *f, const char *label, ipcnet_t *h, const char *name,
                      const char *text)
{
    ipcnet_t *s = s_conn(f, label);
    harness_send(s, name, text, IPCNET_CONFIRM);
    harness_expect_text(h, IPCNET_MSG_SEND, name, text);
    ipcnet_close(&s);
}

/* --- life cycle ---------------------------------------------------------- */

/* The node accepts a client and says who it is; SIGTERM stops it cleanly
   (checked by the teardown: exit 0, socket removed). */
static void test_node_start_stop(void **state)
{
    fx_t *f = *state;
    WATCH(30);
    struct stat st;
    assert_int_equal(stat(f->node.sock, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));

    ipcnet_t *c = s_conn(f, "lifecycle");
    assert_string_equal(ipcnet_node(c), HARNESS_NODE_NAME);
    const char *addr = ipcnet_address(c);
    assert_non_null(addr);
    unsigned long n = 0;
    char node[64] = "";
    if (sscanf(addr, ":%lu@%63s", &n, node) != 2)
        fail_msg("address '%s' is not :N@node", addr);
    assert_true(n > 0);
    assert_string_equal(node, HARNESS_NODE_NAME);
    assert_int_equal(ipcnet_max_message(c), DEFAULT_MAX);
    assert_true(ipcnet_fd(c) >= 0);

    /* Two clients get two different addresses. */
    ipcnet_t *d = s_conn(f, "lifecycle2");
    assert_string_not_equal(ipcnet_address(c), ipcnet_address(d));
    ipcnet_close(&d);
    assert_null(d);
    ipcnet_close(&c);
    ipcnet_close(&c);           /* safe twice */
}

/* SIGINT stops the node like SIGTERM: exit 0, socket file removed. */
static void test_node_sigint_stops(void **state)
{
    fx_t *f = *state;
    WATCH(30);
    ipcnet_t *c = s_holder(f, "sigint", "svc.sigint");
    assert_int_equal(harness_stop_with(&f->node, SIGINT), 0);
    /* The client sees the node go. */
    ipcnet_msg_t m;
    int rc = ipcnet_recv(c, &m, WAIT_MS);
    assert_true(rc < 0);
    assert_true(rc != -ETIMEDOUT);
    ipcnet_close(&c);
}

/* A second node on the same socket exits non-zero at once, says another
   node serves the socket, and leaves the first one (and its socket) alone. */
static void test_node_second_instance_refused(void **state)
{
    fx_t *f = *state;
    WATCH(30);
    ipcnet_t *c = s_holder(f, "first", "svc.first");

    char errfile[200];
    snprintf(errfile, sizeof errfile, "%s/second.log", f->node.dir);
    char *argv[] = { "ipc-node", "--socket", f->node.sock, "--name", "second", NULL };
    int64_t t0 = harness_now_ms();
    pid_t pid = harness_spawn_node(argv, errfile, NULL);
    assert_true(pid > 0);
    int code = harness_reap(pid, 3000);
    int64_t took = harness_now_ms() - t0;
    char *err = harness_read_file(errfile);
    if (code <= 0 || code >= 128)
        fail_msg("second node: exit code %d after %lld ms (want non-zero exit), stderr: %s",
                 code, (long long) took, err);
    if (!strstr(err, "another") && !strstr(err, "already"))
        fail_msg("second node's stderr does not say another node serves the socket: '%s'",
                 err);
    free(err);

    /* The first node still owns and serves the socket. */
    assert_int_equal(access(f->node.sock, F_OK), 0);
    s_node_serves(f);
    s_reaches(f, "after-second", c, "svc.first", "still here");
    ipcnet_close(&c);
}

/* A socket file nobody listens on is removed and replaced. */
static void test_node_stale_socket_replaced(void **state)
{
    fx_t *f = *state;
    WATCH(30);
    assert_int_equal(harness_prepare(&f->node), 0);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", f->node.sock);
    assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof sa), 0);
    close(fd);                  /* the file stays, nobody listens */
    assert_int_equal(access(f->node.sock, F_OK), 0);

    assert_int_equal(harness_launch(&f->node, NULL, 0), 0);
    ipcnet_t *c = s_conn(f, "stale");
    assert_string_equal(ipcnet_node(c), HARNESS_NODE_NAME);
    ipcnet_close(&c);
}

/* IPCNET_SOCKET names the socket for both the node and the library. */
static void test_node_socket_env(void **state)
{
    fx_t *f = *state;
    WATCH(30);
    assert_int_equal(harness_start_env(&f->node), 0);
    struct stat st;
    assert_int_equal(stat(f->node.sock, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));

    char *old = getenv("IPCNET_SOCKET") ? strdup(getenv("IPCNET_SOCKET")) : NULL;
    setenv("IPCNET_SOCKET", f->node.sock, 1);
    ipcnet_t *c = NULL;
    int rc = ipcnet_connect(&c, NULL, "env", 0);
    if (old) {
        setenv("IPCNET_SOCKET", old, 1);
        free(old);
    } else
        unsetenv("IPCNET_SOCKET");
    assert_int_equal(rc, 0);
    assert_string_equal(ipcnet_node(c), HARNESS_NODE_NAME);
    ipcnet_close(&c);
}

/* --- send ---------------------------------------------------------------- */

/* With IPCNET_CONFIRM a send to a name nobody holds fails at once. */
static void test_node_send_no_holder_confirm(void **state)
{
    fx_t *f = *state;
    WATCH(30);
    ipcnet_t *c = s_conn(f, "sender");
    assert_int_equal(ipcnet_send(c, "nobody.here", "x", 1, IPCNET_CONFIRM), -ENOENT);
    assert_int_equal(ipcnet_send(c, "nobody.here@" HARNESS_NODE_NAME, "x", 1,
                                 IPCNET_CONFIRM), -ENOENT);
    /* The connection stays usable. */
    harness_bind(c, "svc.self");
    harness_send(c, "svc.self", "to me", IPCNET_CONFIRM);
    harness_expect_text(c, IPCNET_MSG_SEND, "svc.self", "to me");
    ipcnet_close(&c);
}

/* Without IPCNET_CONFIRM the send returns 0 and the error comes back as a
   message carrying the send's sequence number. */
static void test_node_send_no_holder_error(void **state)
{
    fx_t *f = *state;
    WATCH(30);
    ipcnet_t *c = s_conn(f, "sender");
    assert_int_equal(ipcnet_send(c, "nobody.here", "x", 1, 0), 0);
    uint32_t id = ipcnet_last_id(c);
    ipcnet_msg_t m;
    harness_expect(c, IPCNET_MSG_ERROR, &m);
    assert_int_equal(m.error, -ENOENT);
    assert_int_equal(m.id, id);

    /* A second one gets its own id. */
    assert_int_equal(ipcnet_send(c, "nobody.else", "y", 1, 0), 0);
    uint32_t id2 = ipcnet_last_id(c);
    assert_true(id2 != id);
    harness_expect(c, IPCNET_MSG_ERROR, &m);
    assert_int_equal(m.error, -ENOENT);
    assert_int_equal(m.id, id2);
    harness_expect_nothing(c);
    ipcnet_close(&c);
}

/* A send to a name reaches its holder with the sender's address, in order. */
static void test_node_send_to_name(void **state)
{
    fx_t *f = *state;
    WATCH(30);
    ipcnet_t *h = s_conn(f, "holder");
    ipcnet_t *s = s_conn(f, "sender");
    harness_bind(h, "svc.echo");

    harness_send(s, "svc.echo", "hello", IPCNET_CONFIRM);
    ipcnet_msg_t m;
    harness_expect(h, IPCNET_MSG_SEND, &m);
    assert_string_equal(m.name, "svc.echo");
    assert_string_equal(m.source, ipcnet_address(s));
    assert_int_equal(m.size, 5);
    assert_memory_equal(m.data, "hello", 5);

    /* Empty payload. */
    assert_int_equal(ipcnet_send(s, "svc.echo", NULL, 0, IPCNET_CONFIRM), 0);
    harness_expect(h, IPCNET_MSG_SEND, &m);
    assert_int_equal(m.size, 0);

    /* name@node pins this node. */
    harness_send(s, "svc.echo@" HARNESS_NODE_NAME, "pinned", IPCNET_CONFIRM);
    harness_expect_text(h, IPCNET_MSG_SEND, NULL, "pinned");

    /* Many without confirmation arrive in order; none comes back. */
    harness_send_many(s, h, "svc.echo", 200);
    ipcnet_close(&s);
    ipcnet_close(&h);
}

/* A name with many holders: each send reaches exactly one, round robin. */
static void test_node_send_round_robin(void **state)
{
    fx_t *f = *state;
    WATCH(30);
    enum { HOLDERS = 3, PER = 10 };
    ipcnet_t *h[HOLDERS];
    for (int i = 0; i < HOLDERS; i++) {
        h[i] = s_conn(f, "rr-holder");
        harness_bind(h[i], "svc.rr");
    }
    ipcnet_t *s = s_conn(f, "sender");
    harness_send_numbered(s, "svc.rr", HOLDERS * PER);
    int seen[HOLDERS * PER] = { 0 };
    for (int i = 0; i < HOLDERS; i++) {
        int count = harness_take_numbered(h[i], HOLDERS * PER, seen);
        if (count != PER)
            fail_msg("holder %d got %d of %d messages: not round robin", i, count,
                     HOLDERS * PER);
    }
    harness_expect_once(seen, HOLDERS * PER);

    /* After one holder leaves, the others share the name. */
    ipcnet_close(&h[0]);
    harness_sync(s);
    for (int i = 0; i < 4; i++)
        harness_send(s, "svc.rr", "after", IPCNET_CONFIRM);
    int got = 0;
    ipcnet_msg_t m;
    for (int i = 1; i < HOLDERS; i++)
        while (ipcnet_recv(h[i], &m, QUIET_MS) == 0)
            got++;
    assert_int_equal(got, 4);
    for (int i = 1; i < HOLDERS; i++)
        ipcnet_close(&h[i]);
    ipcnet_close(&s);
}

/* A client's unique address ":N@node" can be sent to; a gone one cannot. */
static void test_node_send_unique_address(void **state)
{
    fx_t *f = *state;
    WATCH(30);
    ipcnet_t *a = s_conn(f, "a");
    ipcnet_t *b = s_conn(f, "b");
    char addr[128];
    snprintf(addr, sizeof addr, "%s", ipcnet_address(a));

    harness_send(b, addr, "direct", IPCNET_CONFIRM);
    ipcnet_msg_t m;
    harness_expect(a, IPCNET_MSG_SEND, &m);
    assert_string_equal(m.source, ipcnet_address(b));
    assert_int_equal(m.size, 6);
    assert_memory_equal(m.data, "direct", 6);

    /* ":N" without the node is this node. */
    char shortaddr[64];
    snprintf(shortaddr, sizeof shortaddr, "%.*s", (int) strcspn(addr, "@"), addr);
    harness_send(b, shortaddr, "short", IPCNET_CONFIRM);
    harness_expect_text(a, IPCNET_MSG_SEND, NULL, "short");

    ipcnet_close(&a);
    harness_sync(b);
    int rc = ipcnet_send(b, addr, "late", 4, IPCNET_CONFIRM);
    if (rc != -ENOENT)
        fail_msg("send to a closed client's address %s: %s (want -ENOENT)", addr,
                 ipcnet_strerror(rc));
    assert_int_equal(ipcnet_send(b, ":999999@" HARNESS_NODE_NAME, "x", 1, IPCNET_CONFIRM),
                     -ENOENT);
    ipcnet_close(&b);
}

/* A holder's names vanish the moment its socket closes: a send right after
   gets -ENOENT, and the listing no longer shows the name. */
static void test_node_names_vanish_on_close(void **state)
{
    fx_t *f = *state;
    WATCH(60);
    ipcnet_t *s = s_conn(f, "sender");
    for (int i = 0; i < 20; i++) {
        char name[32];
        snprintf(name, sizeof name, "svc.gone.%d", i);
        ipcnet_t *h = s_conn(f, "holder");
        harness_bind(h, name);
        harness_bind(h, "svc.gone.also");
        harness_send(s, name, "ping", IPCNET_CONFIRM);
        harness_expect_text(h, IPCNET_MSG_SEND, name, "ping");
        ipcnet_close(&h);
        int rc = ipcnet_send(s, name, "x", 1, IPCNET_CONFIRM);
        if (rc != -ENOENT)
            fail_msg("round %d: send right after the holder closed: %s (want -ENOENT)",
                     i, ipcnet_strerror(rc));
        assert_int_equal(ipcnet_send(s, "svc.gone.also", "x", 1, IPCNET_CONFIRM), -ENOENT);
    }
    char *t = harness_query(s, IPCNET_Q_SERVICES);
    if (strstr(t, "svc.gone"))
        fail_msg("services still list a closed holder's names:\n%s", t);
    free(t);
    ipcnet_close(&s);
}

/* --- bind ---------------------------------------------------------------- */

/* Bad names give -EINVAL and the connection stays usable; -EEXIST and
   -ENOENT as the header says. */
static void test_node_bind_errors(void **state)
{
    fx_t *f = *state;
    WATCH(30);
    ipcnet_t *c = s_conn(f, "binder");
    char longname[300];
    memset(longname, 'x', 256);
    longname[256] = 0;
    const char *bad[] = { "", "bad name", ".dot", "-dash", "a*", "x@y", ":12",
                          "semi;colon", longname };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = ipcnet_bind(c, bad[i]);
        if (rc != -EINVAL)
            fail_msg("bind '%.40s': %s (want -EINVAL)", bad[i], ipcnet_strerror(rc));
    }
    longname[255] = 0;          /* 255 bytes is the longest good name */
    harness_bind(c, longname);
    harness_bind(c, "good.name");
    assert_int_equal(ipcnet_bind(c, "good.name"), -EEXIST);
    assert_int_equal(ipcnet_unbind(c, "never.bound"), -ENOENT);

    ipcnet_t *s = s_conn(f, "sender");
    harness_send(s, "good.name", "works", IPCNET_CONFIRM);
    harness_expect_text(c, IPCNET_MSG_SEND, "good.name", "works");
    harness_send(s, longname, "long", IPCNET_CONFIRM);
    harness_expect_text(c, IPCNET_MSG_SEND, longname, "long");

    assert_int_equal(ipcnet_unbind(c, "good.name"), 0);
    assert_int_equal(ipcnet_send(s, "good.name", "x", 1, IPCNET_CONFIRM), -ENOENT);
    ipcnet_close(&s);
    ipcnet_close(&c);
}

/* The node itself checks names (a raw client skips the library's checks):
   an ERROR frame for the command with EINVAL, and the connection stays. */
static void test_node_bind_bad_name_raw(void **state)
{
    fx_t *f = *state;
    WATCH(30);
    int fd = harness_raw_connect(&f->node);
    assert_true(fd >= 0);
    assert_int_equal(harness_raw_hello(fd, "raw"), 0);
    uint8_t buf[WIRE_HEAD_MAX + 4096];
    wire_frame_t fr;
    const char *bad[] = { "bad name", ".dot", "a*", "x\001y" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(harness_raw_frame(fd, WIRE_BIND, 0, 10 + (uint32_t) i, 0, bad[i],
                                           NULL, NULL, 0), 0);
        ssize_t n = harness_raw_read_frame(fd, buf, sizeof buf, WAIT_MS, &fr);
        if (n <= 0)
            fail_msg("bind '%s' on a raw connection: no answer (%zd)", bad[i], n);
        assert_int_equal(fr.type, WIRE_ERROR);
        assert_int_equal(fr.seq, 10 + i);
        assert_int_equal(fr.aux, EINVAL);
    }
    assert_int_equal(harness_raw_frame(fd, WIRE_BIND, 0, 20, 0, "raw.good", NULL, NULL, 0), 0);
    ssize_t n = harness_raw_read_frame(fd, buf, sizeof buf, WAIT_MS, &fr);
    assert_true(n > 0);
    assert_int_equal(fr.type, WIRE_OK);
    assert_int_equal(fr.seq, 20);

    ipcnet_t *s = s_conn(f, "sender");
    harness_send(s, "raw.good", "hi", IPCNET_CONFIRM);
    n = harness_raw_read_frame(fd, buf, sizeof buf, WAIT_MS, &fr);
    assert_true(n > 0);
    assert_int_equal(fr.type, WIRE_MESSAGE);
    assert_int_equal(fr.size, 2);
    assert_memory_equal(fr.data, "hi", 2);
    ipcnet_close(&s);
    close(fd);
}

/* --- request / reply ----------------------------------------------------- */

/* request_async + reply in one process: ids, sources, payloads. */
static void test_node_request_reply_async(void **state)
{
    fx_t *f = *state;
    WATCH(30);
    ipcnet_t *h = s_conn(f, "server");
    ipcnet_t *r = s_conn(f, "client");
    harness_bind(h, "svc.calc");
    harness_ping_pong(r, h, "svc.calc", 2000);

    /* Two outstanding requests answered out of order keep their ids. */
    uint32_t ids[2];
    harness_out_of_order(r, h, "svc.calc", "svc.calc", 2000, ids);
    assert_true(ids[0] != ids[1]);
    ipcnet_close(&r);
    ipcnet_close(&h);
}

/* Blocking ipcnet_request against a responder in another process. */
static void test_node_request_reply_blocking(void **state)
{
    fx_t *f = *state;
    WATCH(30);
    harness_upper_t upper = { 3, 10000 };
    pid_t pid = harness_fork_holder(&f->node, "upper", "svc.upper", harness_upper_holder,
                                    &upper);
    ipcnet_t *c = s_conn(f, "requester");
    harness_expect_upper(c, "svc.upper", "request");
    assert_int_equal(harness_reap(pid, 5000), 0);
    ipcnet_close(&c);
}

/* A holder that never answers: -ETIMEDOUT after about timeout_ms, and a
   late reply does not pass for the answer to a later request. */
static void test_node_request_timeout(void **state)
{
    fx_t *f = *state;
    WATCH(30);
    ipcnet_t *h = s_conn(f, "sleeper");
    ipcnet_t *r = s_conn(f, "client");
    harness_bind(h, "svc.slow");

    ipcnet_msg_t m;
    int64_t took = harness_request_times_out(r, "svc.slow", 300);
    if (took < 250 || took > 3000)
        fail_msg("timed out after %lld ms for a 300 ms timeout", (long long) took);

    uint32_t id2;
    assert_int_equal(ipcnet_request_async(r, "svc.slow", "q2", 2, 3000, &id2), 0);
    harness_expect(h, IPCNET_MSG_REQUEST, &m);
    assert_int_equal(m.size, 1);
    assert_int_equal(ipcnet_reply(h, &m, "late", 4), 0);     /* may be dropped */
    harness_expect(h, IPCNET_MSG_REQUEST, &m);
    assert_int_equal(m.size, 2);
    assert_int_equal(ipcnet_reply(h, &m, "second", 6), 0);
    for (;;) {
        harness_expect(r, IPCNET_MSG_REPLY, &m);
        if (m.id == id2)
            break;
        print_message("note: a late reply (id %u) was delivered after its timeout\n", m.id);
    }
    assert_int_equal(m.size, 6);
    assert_memory_equal(m.data, "second", 6);
    ipcnet_close(&r);
    ipcnet_close(&h);
}

/* --request-timeout sets the default for a request with timeout 0. */
static void test_node_request_timeout_option(void **state)
{
    fx_t *f = *state;
    WATCH(30);
    assert_int_equal(harness_start(&f->node, "--request-timeout", "300", NULL), 0);
    ipcnet_t *h = s_conn(f, "sleeper");
    ipcnet_t *r = s_conn(f, "client");
    harness_bind(h, "svc.slow");

    ipcnet_msg_t m;
    int64_t took = harness_request_times_out(r, "svc.slow", 0);
    if (took < 250 || took > 3000)
        fail_msg("default timeout 300 ms took %lld ms", (long long) took);
    harness_expect(h, IPCNET_MSG_REQUEST, &m);
    assert_true(m.timeout_ms > 0 && m.timeout_ms <= 300);
    ipcnet_close(&r);
    ipcnet_close(&h);
}

/* The holder closes before replying: -ECONNRESET, long before the timeout. */
static void test_node_request_holder_closes(void **state)
{
    fx_t *f = *state;
    WATCH(30);
    int wait_ms = 10000;
    pid_t pid = harness_fork_holder(&f->node, "flaky", "svc.flaky", harness_vanishing_holder,
                                    &wait_ms);

    ipcnet_t *c = s_conn(f, "requester");
    ipcnet_msg_t m;
    int64_t t0 = harness_now_ms();
    int rc = ipcnet_request(c, "svc.flaky", "q", 1, 8000, &m);
    int64_t took = harness_now_ms() - t0;
    assert_int_equal(harness_reap(pid, 5000), 0);
    if (rc != -ECONNRESET)
        fail_msg("request to a holder that closed: %s after %lld ms (want -ECONNRESET)",
                 ipcnet_strerror(rc), (long long) took);
    assert_true(took < 5000);

    /* The same through request_async: an ERROR message with the id. */
    ipcnet_t *h = s_holder(f, "flaky2", "svc.flaky2");
    harness_request_holder_gone(c, &h, "svc.flaky2", 8000);
    ipcnet_close(&c);
}

/* No holder: -ENOENT at once (blocking) or as an ERROR message (async). */
static void test_node_request_no_holder(void **state)
{
    fx_t *f = *state;
    WATCH(30);
    ipcnet_t *c = s_conn(f, "requester");
    ipcnet_msg_t m;
    int64_t t0 = harness_now_ms();
    assert_int_equal(ipcnet_request(c, "svc.none", "q", 1, 5000, &m), -ENOENT);
    assert_true(harness_now_ms() - t0 < 2000);

    uint32_t id;
    assert_int_equal(ipcnet_request_async(c, "svc.none", "q", 1, 5000, &id), 0);
    harness_expect(c, IPCNET_MSG_ERROR, &m);
    assert_int_equal(m.error, -ENOENT);
    assert_int_equal(m.id, id);
    ipcnet_close(&c);
}

/* --- publish / subscribe ------------------------------------------------- */

static void test_node_publish_subscribe(void **state)
{
    fx_t *f = *state;
    WATCH(30);
    ipcnet_t *p = s_conn(f, "publisher");
    ipcnet_t *exact = s_conn(f, "exact");
    ipcnet_t *prefix = s_conn(f, "prefix");
    ipcnet_t *all = s_conn(f, "all");
    ipcnet_t *other = s_conn(f, "other");
    ipcnet_t *deeper = s_conn(f, "deeper");
    assert_int_equal(ipcnet_subscribe(exact, "a.b"), 0);
    assert_int_equal(ipcnet_subscribe(prefix, "a.*"), 0);
    assert_int_equal(ipcnet_subscribe(all, "*"), 0);
    assert_int_equal(ipcnet_subscribe(other, "c.*"), 0);
    assert_int_equal(ipcnet_subscribe(deeper, "a.b.c"), 0);
    assert_int_equal(ipcnet_subscribe(exact, "bad pattern"), -EINVAL);

    assert_int_equal(ipcnet_publish(p, "a.b", "x", 1, 0), 0);
    ipcnet_t *got[] = { exact, prefix, all };
    for (int i = 0; i < 3; i++)
        harness_expect_from(got[i], IPCNET_MSG_PUBLISH, "a.b", ipcnet_address(p), "x", 1);
    harness_expect_nothing(other);
    harness_expect_nothing(deeper);
    harness_expect_nothing(p);

    ipcnet_t *cd[] = { all, other }, *not_cd[] = { exact, prefix };
    harness_publish_to(p, "c.d", "y", 0, cd, 2, not_cd, 2);

    /* Unsubscribed: no more. */
    assert_int_equal(ipcnet_unsubscribe(prefix, "a.*"), 0);
    ipcnet_t *ab[] = { exact, all };
    harness_publish_to(p, "a.b", "z", IPCNET_CONFIRM, ab, 2, &prefix, 1);

    /* Many in order. */
    ipcnet_t *abc[] = { deeper, all };
    harness_publish_many(p, "a.b.c", 100, abc, 2);
    harness_expect_nothing(exact);

    ipcnet_t *cs[] = { p, exact, prefix, all, other, deeper };
    for (int i = 0; i < 6; i++)
        ipcnet_close(&cs[i]);
}

/* --- watch --------------------------------------------------------------- */

static void test_node_watch(void **state)
{
    fx_t *f = *state;
    WATCH(30);
    ipcnet_t *b = s_holder(f, "b", "svc.one");
    ipcnet_t *w = s_conn(f, "watcher");
    assert_int_equal(ipcnet_watch(w, "svc.*"), 0);
    s_expect_event(w, IPCNET_EV_NAME_UP, "svc.one");     /* held at watch time */
    harness_expect_nothing(w);

    ipcnet_t *c = s_holder(f, "c", "svc.two");
    s_expect_event(w, IPCNET_EV_NAME_UP, "svc.two");

    /* A second holder, and its leaving, change nothing. */
    ipcnet_t *d = s_holder(f, "d", "svc.two");
    harness_expect_nothing(w);
    assert_int_equal(ipcnet_unbind(d, "svc.two"), 0);
    harness_expect_nothing(w);

    /* A name outside the pattern is not reported. */
    harness_bind(d, "other");
    harness_expect_nothing(w);

    /* Last holder's socket closes: down. */
    ipcnet_close(&c);
    s_expect_event(w, IPCNET_EV_NAME_DOWN, "svc.two");

    /* Last holder unbinds: down. */
    assert_int_equal(ipcnet_unbind(b, "svc.one"), 0);
    s_expect_event(w, IPCNET_EV_NAME_DOWN, "svc.one");

    /* "*" sees what is held now: only "other". */
    ipcnet_t *w2 = s_conn(f, "watcher2");
    assert_int_equal(ipcnet_watch(w2, "*"), 0);
    s_expect_event(w2, IPCNET_EV_NAME_UP, "other");
    harness_expect_nothing(w2);

    /* Unwatched: no more events there; w2 still gets them. */
    assert_int_equal(ipcnet_unwatch(w, "svc.*"), 0);
    harness_bind(b, "svc.three");
    s_expect_event(w2, IPCNET_EV_NAME_UP, "svc.three");
    harness_expect_nothing(w);
    assert_int_equal(ipcnet_watch(w, "bad pattern"), -EINVAL);

    ipcnet_close(&d);
    s_expect_event(w2, IPCNET_EV_NAME_DOWN, "other");
    ipcnet_close(&b);
    s_expect_event(w2, IPCNET_EV_NAME_DOWN, "svc.three");
    ipcnet_close(&w2);
    ipcnet_close(&w);
}

/* --- queries ------------------------------------------------------------- */

static void test_node_query(void **state)
{
    fx_t *f = *state;
    WATCH(30);
    ipcnet_t *c = s_holder(f, "querier", "svc.listed");

    char *t = harness_query(c, IPCNET_Q_STATS);
    for (const char *p = t; *p; ) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t) (nl - p) : strlen(p);
        const char *tab = memchr(p, '\t', len);
        if (!tab || tab == p || memchr(tab + 1, '\t', len - (size_t) (tab + 1 - p)))
            fail_msg("stats line is not key<TAB>value: '%.*s'", (int) len, p);
        p += len + (nl ? 1 : 0);
    }
    assert_int_equal(s_stat(t, "clients"), 1);
    free(t);

    char line[512];
    t = harness_query(c, IPCNET_Q_SERVICES);
    snprintf(line, sizeof line, "svc.listed\t%s\t%s\tquerier", HARNESS_NODE_NAME,
             ipcnet_address(c));
    if (!s_has_line(t, line))
        fail_msg("services lack '%s':\n%s", line, t);
    free(t);

    t = harness_query(c, IPCNET_Q_PEERS);
    if (!s_has_line(t, HARNESS_NODE_NAME "\t"))
        fail_msg("peers do not list this node:\n%s", t);
    free(t);

    t = harness_query(c, IPCNET_Q_CLIENTS);
    snprintf(line, sizeof line, "%s\tquerier\t%d\t%d\t", ipcnet_address(c), (int) getpid(),
             (int) getuid());
    if (!s_has_line(t, line))
        fail_msg("clients lack '%s':\n%s", line, t);
    free(t);

    char *bad = NULL;
    assert_int_equal(ipcnet_query(c, 99, &bad), -EINVAL);
    ipcnet_close(&c);
}

/* --- payloads ------------------------------------------------------------ */

/* Payloads from 0 bytes to exactly 16 MiB arrive intact; one byte more is
   -EMSGSIZE. The sender is another process so neither side deadlocks. */
static void test_node_large_payloads(void **state)
{
    fx_t *f = *state;
    WATCH(120);
    static const size_t sizes[] = { 0, 1, 1000, 65535, 65536, 65537, MIB, 4 * MIB + 3,
                                    8 * MIB + 1, DEFAULT_MAX };
    enum { N = sizeof sizes / sizeof sizes[0] };
    ipcnet_t *r = s_holder(f, "receiver", "svc.big");

    pid_t pid = harness_fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        ipcnet_t *s = harness_connect(&f->node, "big-sender");
        uint8_t *buf = malloc(DEFAULT_MAX + 1);
        if (!s || !buf)
            _exit(100);
        for (int i = 0; i < N; i++) {
            s_fill(buf, sizes[i], (uint32_t) i);
            int rc = ipcnet_send(s, "svc.big", buf, sizes[i], IPCNET_CONFIRM);
            if (rc < 0) {
                fprintf(stderr, "big sender: %zu bytes: %s\n", sizes[i], ipcnet_strerror(rc));
                _exit(1 + i);
            }
        }
        if (ipcnet_send(s, "svc.big", buf, DEFAULT_MAX + 1, 0) != -EMSGSIZE)
            _exit(50);
        if (ipcnet_flush(s, 30000) < 0)
            _exit(51);
        free(buf);
        ipcnet_close(&s);
        _exit(0);
    }

    for (int i = 0; i < N; i++) {
        ipcnet_msg_t m;
        int rc = ipcnet_recv(r, &m, 30000);
        if (rc < 0)
            fail_msg("payload %d (%zu bytes) did not arrive: %s", i, sizes[i],
                     ipcnet_strerror(rc));
        assert_int_equal(m.kind, IPCNET_MSG_SEND);
        if (m.size != sizes[i])
            fail_msg("payload %d: %zu bytes arrived, %zu sent", i, m.size, sizes[i]);
        long bad = s_check_fill(m.data, m.size, (uint32_t) i);
        if (bad >= 0)
            fail_msg("payload %d (%zu bytes) differs at byte %ld", i, sizes[i], bad);
    }
    int code = harness_reap(pid, 30000);
    if (code != 0)
        fail_msg("sender exited %d (1+i: payload i refused; 50: no -EMSGSIZE)", code);
    harness_expect_nothing(r);

    /* In this process too: 16 MiB + 1 is refused, before any waiting. */
    uint8_t *buf = calloc(1, DEFAULT_MAX + 1);
    assert_non_null(buf);
    assert_int_equal(ipcnet_send(r, "svc.big", buf, DEFAULT_MAX + 1, IPCNET_CONFIRM),
                     -EMSGSIZE);
    free(buf);
    ipcnet_close(&r);
}

/* --max-message: the node announces it, the library and the node enforce it. */
static void test_node_max_message_option(void **state)
{
    fx_t *f = *state;
    WATCH(30);
    assert_int_equal(harness_start(&f->node, "--max-message", "1024", NULL), 0);
    ipcnet_t *r = s_holder(f, "receiver", "svc.small");
    assert_int_equal(ipcnet_max_message(r), 1024);
    uint8_t buf[2048];
    s_fill(buf, sizeof buf, 7);
    assert_int_equal(ipcnet_send(r, "svc.small", buf, 1024, IPCNET_CONFIRM), 0);
    ipcnet_msg_t m;
    harness_expect(r, IPCNET_MSG_SEND, &m);
    assert_int_equal(m.size, 1024);
    assert_memory_equal(m.data, buf, 1024);
    assert_int_equal(ipcnet_send(r, "svc.small", buf, 1025, IPCNET_CONFIRM), -EMSGSIZE);

    /* A raw client that ignores the limit is refused (error or disconnect)
       and nothing reaches the holder. */
    int fd = harness_raw_connect(&f->node);
    assert_true(fd >= 0);
    assert_int_equal(harness_raw_hello(fd, "raw"), 0);
    int wrc = harness_raw_frame(fd, WIRE_SEND, WIRE_F_CONFIRM, 7, 0, "svc.small", NULL,
                                buf, 2000);
    assert_true(wrc == 0 || wrc == -EPIPE || wrc == -ECONNRESET);   /* may close early */
    uint8_t in[WIRE_HEAD_MAX + 64];
    wire_frame_t fr;
    ssize_t n = harness_raw_read_frame(fd, in, sizeof in, WAIT_MS, &fr);
    if (n > 0) {
        /* An ERROR: for the send (seq 7), or for the connection (seq 0)
           before it closes. */
        if (fr.type != WIRE_ERROR)
            fail_msg("a 2000-byte send with --max-message 1024 got frame type 0x%x", fr.type);
        assert_true(fr.seq == 7 || fr.seq == 0);
        assert_int_equal(fr.aux, EMSGSIZE);
    } else if (n != 0)
        fail_msg("a 2000-byte send with --max-message 1024: neither error nor close (%zd)", n);
    close(fd);
    harness_expect_nothing(r);
    s_node_serves(f);
    ipcnet_close(&r);
}

/* --- flow control -------------------------------------------------------- */

#define FC_SIZE (64 * 1024)

/* Pushes numbered FC_SIZE messages with IPCNET_DONTWAIT to a holder that
   does not read, for at most budget bytes of attempts. Returns how many
   were accepted; *ret_eagain counts -EAGAIN; *ret_rss the peak node RSS. */
static uint32_t s_push(fx_t *f, ipcnet_t *s, const char *dest, size_t budget,
                       uint32_t *ret_eagain, long *ret_rss, size_t *ret_first_eagain)
{
    uint8_t *buf = malloc(FC_SIZE);
    assert_non_null(buf);
    uint32_t accepted = 0, eagain = 0;
    long peak = 0;
    *ret_first_eagain = 0;
    for (size_t pushed = 0, k = 0; pushed < budget; pushed += FC_SIZE, k++) {
        s_fill(buf, FC_SIZE, accepted);
        memcpy(buf, &accepted, sizeof accepted);
        int rc = ipcnet_send(s, dest, buf, FC_SIZE, IPCNET_DONTWAIT);
        if (rc == 0)
            accepted++;
        else if (rc == -EAGAIN) {
            if (eagain++ == 0)
                *ret_first_eagain = (size_t) accepted * FC_SIZE;
            struct pollfd pfd = { ipcnet_fd(s), POLLOUT, 0 };
            poll(&pfd, 1, 1);
        } else
            fail_msg("send %u with DONTWAIT: %s", accepted, ipcnet_strerror(rc));
        if (k % 64 == 0) {
            long rss = harness_rss_kib(f->node.pid);
            if (rss > peak)
                peak = rss;
        }
    }
    long rss = harness_rss_kib(f->node.pid);
    if (rss > peak)
        peak = rss;
    free(buf);
    *ret_eagain = eagain;
    *ret_rss = peak;
    return accepted;
}

/* The fill of a numbered message: s_fill(seq) after the number. */
static long s_check_numbered(const uint8_t *data, size_t size, uint32_t seq)
{
    return s_check_fill_from(data, size, seq, sizeof seq);
}

/* Reads the accepted messages from r while flushing s: all arrive, in
   order, intact, and no more. */
static void s_drain_all(ipcnet_t *s, ipcnet_t *r, uint32_t accepted)
{
    harness_drain_numbered(s, r, accepted, FC_SIZE, s_check_numbered);
}

/* A holder that never reads: the sender gets -EAGAIN, the node's memory
   stays bounded, and once the holder reads, everything accepted arrives. */
static void test_node_flow_control(void **state)
{
    fx_t *f = *state;
    WATCH(120);
    ipcnet_t *r = s_holder(f, "slow-reader", "svc.slow");
    ipcnet_t *s = s_conn(f, "fast-sender");
    long rss0 = harness_rss_kib(f->node.pid);

    uint32_t eagain;
    long peak;
    size_t first;
    uint32_t accepted = s_push(f, s, "svc.slow", 200 * (size_t) MIB, &eagain, &peak, &first);
    print_message("flow control: %u accepted (%zu KiB before the first EAGAIN), %u EAGAIN, "
                  "node RSS %ld KiB before, peak %ld KiB\n",
                  accepted, first / 1024, eagain, rss0, peak);
    assert_true(eagain > 0);
    assert_true(accepted > 0);
    assert_true(peak > 0);
    if (harness_instrumented(f->node.pid))
        print_message("note: the node runs under valgrind or a sanitizer: RSS not checked\n");
    else if (peak > 64 * 1024)
        fail_msg("node RSS reached %ld KiB (limit 64 MiB) with 8 MiB queue limit", peak);
    assert_true(harness_alive(&f->node));

    s_drain_all(s, r, accepted);

    /* And the pipe works normally afterwards. */
    harness_send(s, "svc.slow", "after", IPCNET_CONFIRM);
    harness_expect_text(r, IPCNET_MSG_SEND, "svc.slow", "after");
    ipcnet_close(&s);
    ipcnet_close(&r);
}

/* A blocking sender (no IPCNET_DONTWAIT) to a holder that does not read
   waits rather than growing the node; when the holder reads, all arrive. */
static void test_node_flow_control_blocking(void **state)
{
    fx_t *f = *state;
    WATCH(120);
    enum { COUNT = 64 };        /* 64 MiB: eight times the queue limit */
    /* The copying path; memfds are bounded by --shm-max-fds (test_shm). */
    assert_int_equal(harness_start(&f->node, "--shm-threshold", "0", NULL), 0);
    ipcnet_t *r = s_holder(f, "slow-reader", "svc.slow");
    pid_t pid = harness_fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        ipcnet_t *s = harness_connect(&f->node, "blocking-sender");
        uint8_t *buf = malloc(MIB);
        if (!s || !buf)
            _exit(100);
        for (uint32_t i = 0; i < COUNT; i++) {
            s_fill(buf, MIB, i);
            memcpy(buf, &i, sizeof i);
            int rc = ipcnet_send(s, "svc.slow", buf, MIB, 0);
            if (rc < 0) {
                fprintf(stderr, "blocking sender: message %u: %s\n", i, ipcnet_strerror(rc));
                _exit(1);
            }
        }
        if (ipcnet_flush(s, 30000) < 0)
            _exit(2);
        ipcnet_msg_t m;
        if (ipcnet_recv(s, &m, 0) == 0)
            _exit(3);           /* nothing may come back: no error, no loss */
        free(buf);
        ipcnet_close(&s);
        _exit(0);
    }
    /* Let the sender run into the limit. */
    long peak = 0;
    for (int i = 0; i < 20; i++) {
        usleep(50000);
        long rss = harness_rss_kib(f->node.pid);
        if (rss > peak)
            peak = rss;
    }
    int status;
    assert_int_equal(harness_waitpid(pid, 0, &status), -ETIMEDOUT);   /* still waiting */
    print_message("blocking sender paused; node peak RSS %ld KiB\n", peak);
    if (harness_instrumented(f->node.pid))
        print_message("note: the node runs under valgrind or a sanitizer: RSS not checked\n");
    else if (peak > 64 * 1024)
        fail_msg("node RSS reached %ld KiB while a sender was paused", peak);

    for (uint32_t i = 0; i < COUNT; i++) {
        ipcnet_msg_t m;
        int rc = ipcnet_recv(r, &m, 10000);
        if (rc < 0)
            fail_msg("message %u of %u did not arrive: %s", i, COUNT, ipcnet_strerror(rc));
        harness_expect_numbered(&m, MIB, i, s_check_numbered);
    }
    int code = harness_reap(pid, 30000);
    if (code != 0)
        fail_msg("blocking sender exited %d (1: send failed, 3: got a message back)", code);
    harness_expect_nothing(r);
    ipcnet_close(&r);
}

/* --queue-limit: a small limit pushes back much earlier than the default. */
static void test_node_queue_limit_option(void **state)
{
    fx_t *f = *state;
    WATCH(120);
    assert_int_equal(harness_start(&f->node, "--queue-limit", "262144", "--shm-threshold", "0",
                                   NULL), 0);
    ipcnet_t *r = s_holder(f, "slow-reader", "svc.slow");
    ipcnet_t *s = s_conn(f, "fast-sender");
    uint32_t eagain;
    long peak;
    size_t first;
    uint32_t accepted = s_push(f, s, "svc.slow", 32 * (size_t) MIB, &eagain, &peak, &first);
    print_message("queue limit 256 KiB: %u accepted (%zu KiB before the first EAGAIN), "
                  "%u EAGAIN, node peak RSS %ld KiB\n", accepted, first / 1024, eagain, peak);
    assert_true(eagain > 0);
    /* 256 KiB queue plus the kernel's socket buffers on both sides. */
    if (first >= 8 * (size_t) MIB)
        fail_msg("%zu KiB accepted before pushback with a 256 KiB queue limit",
                 first / 1024);
    s_drain_all(s, r, accepted);
    ipcnet_close(&s);
    ipcnet_close(&r);
}

/* --- malformed input ----------------------------------------------------- */

/* Each raw connection gets closed by the node within a bounded time while
   a well-behaved client keeps working. */
static void s_expect_dropped(fx_t *f, ipcnet_t *good, int fd, const char *what)
{
    int rc = harness_raw_wait_closed(fd, WAIT_MS);
    close(fd);
    if (rc < 0)
        fail_msg("%s: the node did not close the connection (%s)", what, strerror(-rc));
    assert_true(harness_alive(&f->node));
    harness_sync(good);
    char *t = harness_query(good, IPCNET_Q_STATS);
    free(t);
}

static void test_node_garbage_bad_signature(void **state)
{
    fx_t *f = *state;
    WATCH(30);
    ipcnet_t *good = s_holder(f, "good", "svc.good");

    /* Junk before any HELLO. */
    int fd = harness_raw_connect(&f->node);
    assert_true(fd >= 0);
    uint8_t junk[64];
    memset(junk, 0x5A, sizeof junk);
    junk[0] = 0; junk[1] = 0; junk[2] = 0; junk[3] = 40;
    harness_raw_write(fd, junk, sizeof junk);
    s_expect_dropped(f, good, fd, "bad signature before HELLO");

    /* A good HELLO, then a frame with a bad signature. */
    fd = harness_raw_connect(&f->node);
    assert_true(fd >= 0);
    assert_int_equal(harness_raw_hello(fd, "raw"), 0);
    uint8_t fr[WIRE_HEAD_MAX];
    size_t n = wire_encode(fr, WIRE_BIND, 0, 2, 0, "svc.junk", 8, NULL, 0, 0);
    fr[4] = 0xA6;
    harness_raw_write(fd, fr, n);
    s_expect_dropped(f, good, fd, "bad signature after HELLO");

    /* The good client was never disturbed. */
    ipcnet_t *s = s_conn(f, "sender");
    harness_send(s, "svc.good", "ok", IPCNET_CONFIRM);
    harness_expect_text(good, IPCNET_MSG_SEND, "svc.good", "ok");
    assert_int_equal(ipcnet_send(s, "svc.junk", "x", 1, IPCNET_CONFIRM), -ENOENT);
    ipcnet_close(&s);
    ipcnet_close(&good);
}

static void test_node_garbage_huge_frame(void **state)
{
    fx_t *f = *state;
    WATCH(30);
    ipcnet_t *good = s_conn(f, "good");
    uint8_t head[WIRE_HEAD_MAX];
    for (int hello = 0; hello < 2; hello++) {
        int fd = harness_raw_connect(&f->node);
        assert_true(fd >= 0);
        if (hello)
            assert_int_equal(harness_raw_hello(fd, "raw"), 0);
        size_t n = wire_encode(head, WIRE_SEND, 0, 3, 0, "svc.x", 5, NULL, 0, 0);
        wire_put32(head, 0xFFFFFFFFu);      /* claims 4 GiB */
        harness_raw_write(fd, head, n);
        harness_raw_write(fd, "abcdefgh", 8);
        s_expect_dropped(f, good, fd, hello ? "4 GiB frame after HELLO"
                                            : "4 GiB frame before HELLO");
    }
    /* A frame just over the largest message plus head. */
    int fd = harness_raw_connect(&f->node);
    assert_true(fd >= 0);
    assert_int_equal(harness_raw_hello(fd, "raw"), 0);
    size_t n = wire_encode(head, WIRE_SEND, 0, 3, 0, "svc.x", 5, NULL, 0, 0);
    wire_put32(head, (uint32_t) (DEFAULT_MAX + WIRE_HEAD_MAX + 4096));
    harness_raw_write(fd, head, n);
    s_expect_dropped(f, good, fd, "oversized frame");

    /* A size below the smallest frame. */
    fd = harness_raw_connect(&f->node);
    assert_true(fd >= 0);
    assert_int_equal(harness_raw_hello(fd, "raw"), 0);
    n = wire_encode(head, WIRE_QUERY, 0, 3, 1, NULL, 0, NULL, 0, 0);
    wire_put32(head, 3);
    harness_raw_write(fd, head, n);
    s_expect_dropped(f, good, fd, "undersized frame");

    long rss = harness_rss_kib(f->node.pid);
    assert_true(rss > 0);
    if (!harness_instrumented(f->node.pid) && rss >= 64 * 1024)
        fail_msg("node RSS is %ld KiB after oversized frames", rss);
    ipcnet_close(&good);
}

/* A good HELLO + BIND cut at every byte and closed: the node survives each
   and nothing is left bound. A cut frame kept open does not stall others. */
static void test_node_garbage_truncated(void **state)
{
    fx_t *f = *state;
    WATCH(60);
    uint8_t stream[2 * WIRE_HEAD_MAX];
    size_t len = wire_encode(stream, WIRE_HELLO, 0, 1, WIRE_VERSION, "cut", 3, NULL, 0, 0);
    size_t hello_len = len;
    len += wire_encode(stream + len, WIRE_BIND, 0, 2, 0, "svc.cut", 7, NULL, 0, 0);
    for (size_t cut = 1; cut < len; cut++) {
        int fd = harness_raw_connect(&f->node);
        assert_true(fd >= 0);
        harness_raw_write(fd, stream, cut);
        close(fd);
    }
    s_node_serves(f);
    ipcnet_t *s = s_conn(f, "sender");
    assert_int_equal(ipcnet_send(s, "svc.cut", "x", 1, IPCNET_CONFIRM), -ENOENT);

    /* A cut frame held open while others work. */
    int fd = harness_raw_connect(&f->node);
    assert_true(fd >= 0);
    harness_raw_write(fd, stream, hello_len + 5);
    ipcnet_t *h = s_holder(f, "holder", "svc.live");
    harness_send(s, "svc.live", "through", IPCNET_CONFIRM);
    harness_expect_text(h, IPCNET_MSG_SEND, "svc.live", "through");
    close(fd);
    ipcnet_close(&h);
    ipcnet_close(&s);
}

/* A valid HELLO then a type the node does not know: disconnected. */
static void test_node_garbage_unknown_type(void **state)
{
    fx_t *f = *state;
    WATCH(30);
    ipcnet_t *good = s_conn(f, "good");
    const uint8_t types[] = { 0x00, 0x7F, 0x0E, 0xFF };
    for (size_t i = 0; i < sizeof types; i++) {
        int fd = harness_raw_connect(&f->node);
        assert_true(fd >= 0);
        assert_int_equal(harness_raw_hello(fd, "raw"), 0);
        uint8_t fr[WIRE_HEAD_MAX];
        size_t n = wire_encode(fr, types[i], 0, 2, 0, "x", 1, NULL, 0, 0);
        harness_raw_write(fd, fr, n);
        char what[64];
        snprintf(what, sizeof what, "unknown type 0x%02x", types[i]);
        s_expect_dropped(f, good, fd, what);
    }
    /* A node-to-client type sent by a client is a protocol violation too. */
    int fd = harness_raw_connect(&f->node);
    assert_true(fd >= 0);
    assert_int_equal(harness_raw_hello(fd, "raw"), 0);
    assert_int_equal(harness_raw_frame(fd, WIRE_MESSAGE, 0, 2, 0, ":1", "svc.x", "p", 1), 0);
    s_expect_dropped(f, good, fd, "MESSAGE frame from a client");
    ipcnet_close(&good);
}

/* Random bytes from many connections: the node survives all. */
static void test_node_garbage_random(void **state)
{
    fx_t *f = *state;
    WATCH(60);
    ipcnet_t *good = s_holder(f, "good", "svc.good");
    uint32_t x = 12345;
    uint8_t buf[1024];
    for (int i = 0; i < 200; i++) {
        int fd = harness_raw_connect(&f->node);
        assert_true(fd >= 0);
        size_t n = 1 + (x >> 8) % sizeof buf;
        for (size_t k = 0; k < n; k++) {
            x = x * 1103515245u + 12345u;
            buf[k] = (uint8_t) (x >> 16);
        }
        if (i % 2) {            /* half of them start with a good HELLO */
            uint8_t h[WIRE_HEAD_MAX];
            size_t hn = wire_encode(h, WIRE_HELLO, 0, 1, WIRE_VERSION, NULL, 0, NULL, 0, 0);
            harness_raw_write(fd, h, hn);
            buf[4] = WIRE_SIG;  /* and a plausible signature after */
        }
        harness_raw_write(fd, buf, n);
        close(fd);
    }
    s_node_serves(f);
    s_reaches(f, "sender", good, "svc.good", "alive");
    ipcnet_close(&good);
}

/* --- who sent it (protocol-local.md 4.4) ---------------------------------- */

/* The id of the node, as bytes (from its 32 hex digits). */
static void s_id_bytes(const char *id, uint8_t out[WIRE_NODE_ID])
{
    for (size_t i = 0; i < WIRE_NODE_ID; i++) {
        unsigned v;
        assert_int_equal(sscanf(id + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t) v;
    }
}

/* Every delivery says who sent it: the sender's uid (ours: the node takes
   it from SO_PEERCRED), the name of that uid, the node's name and the
   node's id, which its peers listing gives; for SEND (confirmed or not,
   to a name or an address), REQUEST, REPLY and PUBLISH. A raw client sees
   the same bytes on the wire. */
static void test_node_sender_identity(void **state)
{
    fx_t *f = *state;
    WATCH(30);
    char user[64], id[64];
    harness_user_of(getuid(), user);
    ipcnet_t *q = s_conn(f, "query");
    harness_self_id(q, HARNESS_NODE_NAME, id);

    ipcnet_t *s = s_conn(f, "sender");
    ipcnet_t *h = s_holder(f, "holder", "svc.who");
    ipcnet_t *sub = s_conn(f, "subscriber");
    assert_int_equal(ipcnet_subscribe(sub, "who.*"), 0);
    harness_sync(sub);
    harness_sender_t sw = { ipcnet_address(s), (uint32_t) getuid(), user, HARNESS_NODE_NAME, id };
    harness_sender_t hw = { ipcnet_address(h), (uint32_t) getuid(), user, HARNESS_NODE_NAME, id };
    harness_expect_senders(s, &sw, h, &hw, "svc.who", sub, "who.am.i");
    /* From and to itself: a client is its own sender. */
    harness_bind(s, "svc.self");
    harness_send(s, "svc.self", "to me", IPCNET_CONFIRM);
    ipcnet_msg_t m;
    harness_expect(s, IPCNET_MSG_SEND, &m);
    harness_expect_sender(&m, &sw, "SEND to itself");

    /* On the wire: uid, user and the id's 16 bytes after str2. */
    int fd = harness_raw_connect(&f->node);
    assert_true(fd >= 0);
    assert_int_equal(harness_raw_hello(fd, "raw"), 0);
    assert_int_equal(harness_raw_frame(fd, WIRE_BIND, 0, 2, 0, "svc.raw", NULL, NULL, 0), 0);
    uint8_t buf[WIRE_HEAD_MAX + 64];
    wire_frame_t fr;
    assert_true(harness_raw_read_frame(fd, buf, sizeof buf, WAIT_MS, &fr) > 0);
    assert_int_equal(fr.type, WIRE_OK);
    harness_send(s, "svc.raw", "raw", IPCNET_CONFIRM);
    assert_true(harness_raw_read_frame(fd, buf, sizeof buf, WAIT_MS, &fr) > 0);
    assert_int_equal(fr.type, WIRE_MESSAGE);
    uint8_t want_id[WIRE_NODE_ID];
    s_id_bytes(id, want_id);
    assert_int_equal(fr.from.uid, getuid());
    assert_int_equal(fr.from.userlen, strlen(user));
    assert_memory_equal(fr.from.user, user, fr.from.userlen);
    assert_memory_equal(fr.from.node_id, want_id, WIRE_NODE_ID);
    assert_ptr_equal(fr.from.user, (const char *) buf + 18 + fr.s1len + fr.s2len + 5);
    assert_int_equal(fr.size, 3);
    close(fd);
    ipcnet_close(&sub);
    ipcnet_close(&h);
    ipcnet_close(&s);
    ipcnet_close(&q);
}

/* Forked as another user (setuid to uid), a client sends to svc.who,
   requests of it (the reply must be from holder, of the test's uid) and
   publishes on who.x; exits 0, or what failed. */
static int s_other_user(const node_t *node, uid_t uid, gid_t gid, const harness_sender_t *holder)
{
    if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
        return 10;
    if (getuid() != uid || geteuid() != uid)
        return 11;
    ipcnet_t *c = harness_connect(node, "other");
    if (!c)
        return 12;
    if (ipcnet_send(c, "svc.who", "from other", 10, IPCNET_CONFIRM) < 0)
        return 13;
    ipcnet_msg_t m;
    if (ipcnet_request(c, "svc.who", "asks", 4, 5000, &m) < 0)
        return 14;
    /* The reply is from the holder: root, or whoever runs the test. */
    if (m.kind != IPCNET_MSG_REPLY || m.uid != holder->uid || strcmp(m.user, holder->user) ||
        strcmp(m.source, holder->source) || strcmp(m.node_id, holder->node_id) ||
        strcmp(m.node, holder->node))
        return 15;
    if (ipcnet_publish(c, "who.x", "pub", 3, IPCNET_CONFIRM) < 0)
        return 16;
    ipcnet_flush(c, 5000);
    ipcnet_close(&c);
    return 0;
}

/* A client of another uid is reported as that uid and its name: the node
   reads the sender from the kernel, not from itself or its clients. Only
   as root, which can become nobody (the node lets the socket's group in,
   --group). */
static void test_node_sender_other_user(void **state)
{
    fx_t *f = *state;
    WATCH(30);
    struct passwd *pw = getuid() == 0 ? getpwnam("nobody") : NULL;
    struct group *gr = pw ? getgrgid(pw->pw_gid) : NULL;
    if (!pw || !gr || pw->pw_uid == 0) {
        print_message("note: not root, or no user nobody: skipped\n");
        skip();
    }
    uid_t uid = pw->pw_uid;
    gid_t gid = pw->pw_gid;
    char group[64];
    snprintf(group, sizeof group, "%s", gr->gr_name);
    assert_int_equal(harness_start(&f->node, "--group", group, NULL), 0);
    /* The test's directory is root's alone: let others through to the
       socket, which --group opens to the group. */
    assert_int_equal(chmod(f->node.dir, 0711), 0);

    char user[64], me[64], id[64];
    harness_user_of(uid, user);
    harness_user_of(getuid(), me);
    ipcnet_t *q = s_conn(f, "query");
    harness_self_id(q, HARNESS_NODE_NAME, id);
    ipcnet_t *h = s_holder(f, "holder", "svc.who");
    ipcnet_t *sub = s_conn(f, "subscriber");
    assert_int_equal(ipcnet_subscribe(sub, "who.*"), 0);
    harness_sync(sub);

    harness_sender_t hw = { ipcnet_address(h), (uint32_t) getuid(), me, HARNESS_NODE_NAME, id };
    pid_t pid = harness_fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(s_other_user(&f->node, uid, gid, &hw));

    ipcnet_msg_t m;
    harness_expect(h, IPCNET_MSG_SEND, &m);
    harness_sender_t other = { m.source, (uint32_t) uid, user, HARNESS_NODE_NAME, id };
    harness_expect_sender(&m, &other, "SEND of another user");
    char source[64];
    snprintf(source, sizeof source, "%s", m.source);
    other.source = source;
    harness_expect(h, IPCNET_MSG_REQUEST, &m);
    harness_expect_sender(&m, &other, "REQUEST of another user");
    assert_int_equal(ipcnet_reply(h, &m, "answer", 6), 0);
    harness_expect(sub, IPCNET_MSG_PUBLISH, &m);
    harness_expect_sender(&m, &other, "PUBLISH of another user");
    int rc = harness_reap(pid, 5000);
    if (rc != 0)
        fail_msg("the client of uid %u failed (exit %d)", (unsigned) uid, rc);
    /* And root (or whoever runs this) is still itself. */
    ipcnet_t *s = s_conn(f, "sender");
    harness_send(s, "svc.who", "me", IPCNET_CONFIRM);
    harness_expect(h, IPCNET_MSG_SEND, &m);
    harness_sender_t self = { ipcnet_address(s), (uint32_t) getuid(), me, HARNESS_NODE_NAME, id };
    harness_expect_sender(&m, &self, "SEND of the test's user");
    ipcnet_close(&s);
    ipcnet_close(&sub);
    ipcnet_close(&h);
    ipcnet_close(&q);
}

/* Users whose names the wire cannot carry as they are (protocol-local.md
   4.4: printable ASCII, no blank, at most 32 bytes), and two it can. */
static const harness_user_t s_odd_users[] = {
    { 4243, "caf\xc3\xa9" },                            /* UTF-8 */
    { 4244, "del\x7f" },                                /* DEL */
    { 4245, "ctl\x01x" },                               /* a control byte */
    { 4246, "cr\r" },                                   /* CR */
    { 4247, "abcdefghijklmnopqrstuvwxyz0123456" },      /* 33 bytes */
    { 4248, "abcdefghijklmnopqrstuvwxyz012345" },       /* 32 bytes: fine */
};

/* Forked: becomes uid (group nogroup) and sends "hi" to svc.odd with
   IPCNET_CONFIRM; exits 0, or what failed. */
static int s_odd_sender(const node_t *node, uid_t uid)
{
    if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(uid) < 0)
        return 10;
    ipcnet_t *c = harness_connect(node, "odd");
    if (!c)
        return 12;
    int rc = ipcnet_send(c, "svc.odd", "hi", 2, IPCNET_CONFIRM);
    ipcnet_close(&c);
    return rc < 0 ? 13 : 0;
}

/* A user whose name has a byte the wire does not allow in a user name
   (UTF-8, DEL, a control byte, CR; ipc-node lets only a blank, a tab and
   a newline disqualify a name) sends to a holder: the node must send a
   user the receiver can decode (by protocol-local.md 4.4 the uid in
   decimal, as for a name of 33 bytes). Whatever user the node sends, the
   receiver must get the message and keep its connection. */
static void test_node_sender_unprintable_user_name(void **state)
{
    fx_t *f = *state;
    WATCH(60);
    char dir[64];
    harness_fake_users(s_odd_users, sizeof s_odd_users / sizeof s_odd_users[0], dir);
    int rc = harness_start(&f->node, "--group", "nogroup", NULL);
    if (rc < 0) {
        harness_fake_users_undo(dir);
        fail_msg("cannot start the node: %s", strerror(-rc));
    }
    assert_int_equal(chmod(f->node.dir, 0711), 0);
    char id[64];
    ipcnet_t *q = s_conn(f, "query");
    harness_self_id(q, HARNESS_NODE_NAME, id);

    char report[2048] = "";
    size_t bad = 0;
    for (size_t i = 0; i < (sizeof s_odd_users / sizeof s_odd_users[0]); i++) {
        ipcnet_t *h = s_holder(f, "holder", "svc.odd");
        pid_t pid = harness_fork();
        assert_true(pid >= 0);
        if (pid == 0)
            _exit(s_odd_sender(&f->node, s_odd_users[i].uid));
        ipcnet_msg_t m;
        int got = harness_recv(h, &m, WAIT_MS);
        char want[64], what[256];
        harness_user_of(s_odd_users[i].uid, want);
        if (got < 0)
            snprintf(what, sizeof what, "uid %u: the holder's ipcnet_recv: %s\n",
                     (unsigned) s_odd_users[i].uid, ipcnet_strerror(got));
        else if (m.kind != IPCNET_MSG_SEND || m.uid != s_odd_users[i].uid ||
                 strcmp(m.user, want) != 0)
            snprintf(what, sizeof what, "uid %u: kind %d uid %u user '%s', want SEND, user "
                     "'%s'\n", (unsigned) s_odd_users[i].uid, m.kind, (unsigned) m.uid, m.user,
                     want);
        else
            what[0] = 0;
        int st = harness_reap(pid, 5000);
        if (!what[0] && st != 0)
            snprintf(what, sizeof what, "uid %u: its client failed (exit %d)\n",
                     (unsigned) s_odd_users[i].uid, st);
        if (what[0]) {
            bad++;
            strncat(report, what, sizeof report - strlen(report) - 1);
        }
        harness_sync(q);
        ipcnet_close(&h);
    }
    assert_true(harness_alive(&f->node));
    ipcnet_close(&q);
    harness_fake_users_undo(dir);
    if (bad)
        fail_msg("%zu of %zu senders with odd user names:\n%s", bad, (sizeof s_odd_users / sizeof s_odd_users[0]), report);
}

/* --- limits -------------------------------------------------------------- */

/* 1000 clients at once, each with its own name, talking to each other. */
static void test_node_many_clients(void **state)
{
    fx_t *f = *state;
    WATCH(180);
    enum { N = 1000 };
    long lim = harness_raise_nofile(N + 128);
    if (lim < N + 64)
        fail_msg("RLIMIT_NOFILE is %ld, need %d", lim, N + 64);
    ipcnet_t **c = calloc(N, sizeof *c);
    assert_non_null(c);
    char name[32];
    for (int i = 0; i < N; i++) {
        c[i] = harness_connect(&f->node, "many");
        if (!c[i])
            fail_msg("client %d of %d could not connect", i, N);
        snprintf(name, sizeof name, "mc.%04d", i);
        harness_bind(c[i], name);
    }
    /* Each sends to the next by name, and every tenth to the previous by
       address. */
    for (int i = 0; i < N; i++) {
        char text[32];
        snprintf(name, sizeof name, "mc.%04d", (i + 1) % N);
        snprintf(text, sizeof text, "from %d", i);
        harness_send(c[i], name, text, IPCNET_CONFIRM);
        if (i % 10 == 0)
            harness_send(c[i], ipcnet_address(c[(i + N - 1) % N]), text, IPCNET_CONFIRM);
    }
    for (int i = 0; i < N; i++) {
        /* By name from i-1; by address from i+1 when that one is a tenth.
           Their order depends on who sent first. */
        char by_name[32], by_addr[32];
        snprintf(name, sizeof name, "mc.%04d", i);
        snprintf(by_name, sizeof by_name, "from %d", (i + N - 1) % N);
        snprintf(by_addr, sizeof by_addr, "from %d", (i + 1) % N);
        int want_addr = (i + 1) % N % 10 == 0;
        int got_name = 0, got_addr = 0;
        for (int k = 0; k < 1 + want_addr; k++) {
            ipcnet_msg_t m;
            harness_expect(c[i], IPCNET_MSG_SEND, &m);
            if (!strcmp(m.name, name) && m.size == strlen(by_name) &&
                !memcmp(m.data, by_name, m.size))
                got_name++;
            else if (want_addr && m.size == strlen(by_addr) && !memcmp(m.data, by_addr, m.size))
                got_addr++;
            else
                fail_msg("client %d got '%.*s' sent to '%s'", i, (int) m.size,
                         (const char *) m.data, m.name);
        }
        assert_int_equal(got_name, 1);
        assert_int_equal(got_addr, want_addr);
    }
    char *t = harness_query(c[0], IPCNET_Q_STATS);
    long n = s_stat(t, "clients");
    if (n != N)
        fail_msg("stats say clients %ld, want %d:\n%s", n, N, t);
    free(t);
    t = harness_query(c[N - 1], IPCNET_Q_SERVICES);
    assert_true(s_has_line(t, "mc.0000\t"));
    assert_true(s_has_line(t, "mc.0999\t"));
    free(t);

    for (int i = 0; i < N; i++)
        ipcnet_close(&c[i]);
    free(c);

    /* All gone: the count comes back down (closes are seen asynchronously). */
    ipcnet_t *one = s_conn(f, "one");
    int64_t deadline = harness_now_ms() + 5000;
    for (;;) {
        t = harness_query(one, IPCNET_Q_STATS);
        n = s_stat(t, "clients");
        free(t);
        if (n == 1)
            break;
        if (harness_now_ms() > deadline)
            fail_msg("stats still say %ld clients after all but one closed", n);
        usleep(20000);
    }
    assert_int_equal(ipcnet_send(one, "mc.0500", "x", 1, IPCNET_CONFIRM), -ENOENT);
    ipcnet_close(&one);
}

/* The node raises its own RLIMIT_NOFILE to fit --max-clients (default
   4096), even when started with a low one. */
static void test_node_raises_nofile(void **state)
{
    fx_t *f = *state;
    WATCH(60);
    struct rlimit old, low;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    if (old.rlim_max != RLIM_INFINITY && old.rlim_max < 4200)
        skip();                 /* the node could not raise it either */
    low = old;
    low.rlim_cur = 256;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    int rc = harness_start(&f->node, NULL);
    setrlimit(RLIMIT_NOFILE, &old);
    assert_int_equal(rc, 0);

    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/limits", (int) f->node.pid);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    long soft = -1;
    while (fgets(line, sizeof line, fp))
        if (!strncmp(line, "Max open files", 14)) {
            char *p = line + 14;
            while (*p == ' ')
                p++;
            soft = strncmp(p, "unlimited", 9) == 0 ? LONG_MAX : strtol(p, NULL, 10);
        }
    fclose(fp);
    if (soft < 4096 && harness_instrumented(f->node.pid))
        skip();                 /* valgrind keeps descriptors for itself */
    if (soft < 4096)
        fail_msg("the node's soft RLIMIT_NOFILE is %ld, too low for 4096 clients", soft);

    /* More clients than the limit it was started with. */
    enum { N = 400 };
    assert_true(harness_raise_nofile(N + 64) >= N + 64);
    ipcnet_t *c[N];
    for (int i = 0; i < N; i++) {
        c[i] = harness_connect(&f->node, "fd");
        if (!c[i])
            fail_msg("client %d could not connect", i);
    }
    char *t = harness_query(c[N - 1], IPCNET_Q_STATS);
    assert_int_equal(s_stat(t, "clients"), N);
    free(t);
    for (int i = 0; i < N; i++)
        ipcnet_close(&c[i]);
}

/* --max-clients: one more is refused; after one leaves, a new one fits. */
static void test_node_max_clients_option(void **state)
{
    fx_t *f = *state;
    WATCH(30);
    assert_int_equal(harness_start(&f->node, "--max-clients", "4", NULL), 0);
    ipcnet_t *c[4];
    for (int i = 0; i < 4; i++)
        c[i] = s_conn(f, "max");
    ipcnet_t *extra = NULL;
    int rc = ipcnet_connect(&extra, f->node.sock, "extra", 0);
    if (rc == 0)
        fail_msg("a fifth client was accepted with --max-clients 4");
    assert_null(extra);
    assert_true(harness_alive(&f->node));

    ipcnet_close(&c[0]);
    int64_t deadline = harness_now_ms() + 3000;
    while ((rc = ipcnet_connect(&extra, f->node.sock, "extra", 0)) < 0) {
        if (harness_now_ms() > deadline)
            fail_msg("no room after a client left: %s", ipcnet_strerror(rc));
        usleep(20000);
    }
    harness_bind(extra, "svc.extra");
    harness_send(c[1], "svc.extra", "fits", IPCNET_CONFIRM);
    harness_expect_text(extra, IPCNET_MSG_SEND, "svc.extra", "fits");
    ipcnet_close(&extra);
    for (int i = 1; i < 4; i++)
        ipcnet_close(&c[i]);
}

int main(int argc, char **argv)
{
    harness_main(argc, argv, WAIT_MS, QUIET_MS);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_node_start_stop, setup_node, teardown),
        cmocka_unit_test_setup_teardown(test_node_sigint_stops, setup_node, teardown),
        cmocka_unit_test_setup_teardown(test_node_second_instance_refused, setup_node, teardown),
        cmocka_unit_test_setup_teardown(test_node_stale_socket_replaced, setup_bare, teardown),
        cmocka_unit_test_setup_teardown(test_node_socket_env, setup_bare, teardown),
        cmocka_unit_test_setup_teardown(test_node_send_no_holder_confirm, setup_node, teardown),
        cmocka_unit_test_setup_teardown(test_node_send_no_holder_error, setup_node, teardown),
        cmocka_unit_test_setup_teardown(test_node_send_to_name, setup_node, teardown),
        cmocka_unit_test_setup_teardown(test_node_send_round_robin, setup_node, teardown),
        cmocka_unit_test_setup_teardown(test_node_send_unique_address, setup_node, teardown),
        cmocka_unit_test_setup_teardown(test_node_names_vanish_on_close, setup_node, teardown),
        cmocka_unit_test_setup_teardown(test_node_bind_errors, setup_node, teardown),
        cmocka_unit_test_setup_teardown(test_node_bind_bad_name_raw, setup_node, teardown),
        cmocka_unit_test_setup_teardown(test_node_request_reply_async, setup_node, teardown),
        cmocka_unit_test_setup_teardown(test_node_request_reply_blocking, setup_node, teardown),
        cmocka_unit_test_setup_teardown(test_node_request_timeout, setup_node, teardown),
        cmocka_unit_test_setup_teardown(test_node_request_timeout_option, setup_bare, teardown),
        cmocka_unit_test_setup_teardown(test_node_request_holder_closes, setup_node, teardown),
        cmocka_unit_test_setup_teardown(test_node_request_no_holder, setup_node, teardown),
        cmocka_unit_test_setup_teardown(test_node_publish_subscribe, setup_node, teardown),
        cmocka_unit_test_setup_teardown(test_node_watch, setup_node, teardown),
        cmocka_unit_test_setup_teardown(test_node_query, setup_node, teardown),
        cmocka_unit_test_setup_teardown(test_node_large_payloads, setup_node, teardown),
        cmocka_unit_test_setup_teardown(test_node_max_message_option, setup_bare, teardown),
        cmocka_unit_test_setup_teardown(test_node_flow_control, setup_node, teardown),
        cmocka_unit_test_setup_teardown(test_node_flow_control_blocking, setup_bare, teardown),
        cmocka_unit_test_setup_teardown(test_node_queue_limit_option, setup_bare, teardown),
        cmocka_unit_test_setup_teardown(test_node_garbage_bad_signature, setup_node, teardown),
        cmocka_unit_test_setup_teardown(test_node_garbage_huge_frame, setup_node, teardown),
        cmocka_unit_test_setup_teardown(test_node_garbage_truncated, setup_node, teardown),
        cmocka_unit_test_setup_teardown(test_node_garbage_unknown_type, setup_node, teardown),
        cmocka_unit_test_setup_teardown(test_node_garbage_random, setup_node, teardown),
        cmocka_unit_test_setup_teardown(test_node_sender_identity, setup_node, teardown),
        cmocka_unit_test_setup_teardown(test_node_sender_other_user, setup_bare, teardown),
        cmocka_unit_test_setup_teardown(test_node_sender_unprintable_user_name, setup_bare,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_node_many_clients, setup_node, teardown),
        cmocka_unit_test_setup_teardown(test_node_raises_nofile, setup_bare, teardown),
        cmocka_unit_test_setup_teardown(test_node_max_clients_option, setup_bare, teardown),
    };
    return cmocka_run_group_tests_name("node", tests, NULL, NULL);
}
