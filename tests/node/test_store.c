/*  test_store.c: the shared key-value store through real sockets and real
    nodes: put, get, del, keys, watches, compare-and-set, TTL, ephemeral
    keys, limits and policy on one node; replication, conflicts, digests
    and ephemeral keys of a lost node across several; the log across
    SIGKILL.

    Run one test: tests/node/test_store 'test_store_cas*'
*/

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define WAIT_MS     5000
#define QUIET_MS    300
#define NODES       5
#define CONVERGE_MS 5000        /* promise: a write is on every up node within this */

static const char *const s_names[NODES] = { "alpha", "beta", "gamma", "delta", "epsilon" };

typedef struct {
    node_t n[NODES];
    int port[NODES];
    ipcnet_t *q[NODES];
} fx_t;

static int setup(void **state)
{
    return harness_state_new(state, sizeof (fx_t));
}

static void s_heal(void);

static int teardown(void **state)
{
    fx_t *f = *state;
    s_heal();
    int rc = harness_teardown_nodes(f->n, f->q, s_names, NODES);
    harness_watchdog(NULL, 0);
    free(f);
    return rc;
}

#define WATCH(secs) harness_watchdog(__func__, (secs))

/* Starts node i, dialling node seed (-1: none), with extra arguments. */
static void s_start(fx_t *f, int i, int seed, char *const *more, int restart)
{
    char peer[64], portarg[16];
    char *extra[24];
    int n = 0;
    if (seed >= 0) {
        snprintf(peer, sizeof peer, "tcp://127.0.0.1:%d", f->port[seed]);
        extra[n++] = "--peer";
        extra[n++] = peer;
    }
    if (restart) {
        snprintf(portarg, sizeof portarg, "%d", f->port[i]);
        extra[n++] = "--port";
        extra[n++] = portarg;
    }
    extra[n++] = "--heartbeat";
    extra[n++] = "200";
    for (int k = 0; more && more[k] && n < 22; k++)
        extra[n++] = more[k];
    extra[n] = NULL;
    int rc = restart ? harness_restart_named(&f->n[i], s_names[i], extra)
                     : harness_start_named(&f->n[i], s_names[i], extra);
    if (rc < 0)
        fail_msg("cannot start %s: %s", s_names[i], strerror(-rc));
    f->port[i] = harness_node_port(&f->n[i]);
    assert_true(f->port[i] > 0);
}

static ipcnet_t *s_q(fx_t *f, int i)
{
    return harness_query_conn(&f->n[i], s_names[i], &f->q[i]);
}

/* Waits until node i has n peers up. */
static void s_mesh(fx_t *f, int i, int n)
{
    int64_t t0 = harness_now_ms();
    while (harness_peers_up(s_q(f, i)) < n && harness_now_ms() - t0 < 10000)
        usleep(20 * 1000);
    assert_int_equal(harness_peers_up(s_q(f, i)), n);
}

static void s_put(ipcnet_t *c, const char *key, const char *value)
{
    int rc = ipcnet_put(c, key, value, strlen(value), 0, 0);
    if (rc < 0)
        fail_msg("put %s: %s (%s)", key, ipcnet_strerror(rc), ipcnet_last_error(c));
}

/* The value of key on c as a string ("" with rc < 0 into *ret_rc). */
static int s_get(ipcnet_t *c, const char *key, char *buf, size_t size, uint64_t *version)
{
    ipcnet_msg_t m;
    int rc = ipcnet_get(c, key, &m, 0);
    if (rc < 0) {
        buf[0] = 0;
        return rc;
    }
    assert_true(m.size < size);
    memcpy(buf, m.data, m.size);
    buf[m.size] = 0;
    assert_string_equal(m.name, key);
    if (version)
        *version = m.version;
    return 0;
}

static void s_expect_value(ipcnet_t *c, const char *key, const char *want)
{
    char buf[256];
    int rc = s_get(c, key, buf, sizeof buf, NULL);
    if (rc < 0)
        fail_msg("get %s: %s", key, ipcnet_strerror(rc));
    assert_string_equal(buf, want);
}

/* The next key event on c: its kind, key and value. */
static void s_expect_key(ipcnet_t *c, int event, const char *key, const char *value)
{
    ipcnet_msg_t m;
    harness_expect(c, IPCNET_MSG_KEY, &m);
    if (m.event != event || strcmp(m.name, key) != 0)
        fail_msg("key event %d %s, expected %d %s", m.event, m.name, event, key);
    if (value) {
        assert_int_equal(m.size, strlen(value));
        assert_memory_equal(m.data, value, m.size);
    }
    assert_true(m.version > 0);
    assert_int_equal(strlen(m.node_id), 32);
}

/* --- one node -------------------------------------------------------------- */

static void test_store_put_get_del(void **state)
{
    fx_t *f = *state;
    WATCH(20);
    s_start(f, 0, -1, NULL, 0);
    ipcnet_t *c = harness_client(&f->n[0], "alpha", "c");
    uint64_t v1 = 0, v2 = 0;
    assert_int_equal(ipcnet_put_full(c, "cfg.mode", "fast", 4, 0, 0, 0, &v1), 0);
    char buf[64];
    uint64_t got = 0;
    assert_int_equal(s_get(c, "cfg.mode", buf, sizeof buf, &got), 0);
    assert_string_equal(buf, "fast");
    assert_int_equal(got, v1);
    assert_int_equal(ipcnet_put_full(c, "cfg.mode", "slow", 4, 0, 0, 0, &v2), 0);
    assert_true(v2 > v1);
    s_expect_value(c, "cfg.mode", "slow");
    /* An empty value is a value. */
    assert_int_equal(ipcnet_put(c, "cfg.empty", NULL, 0, 0, 0), 0);
    s_expect_value(c, "cfg.empty", "");
    /* Another client sees the same. */
    ipcnet_t *d = harness_client(&f->n[0], "alpha", "d");
    s_expect_value(d, "cfg.mode", "slow");
    assert_int_equal(ipcnet_del(d, "cfg.mode"), 0);
    assert_int_equal(s_get(c, "cfg.mode", buf, sizeof buf, NULL), -ENOENT);
    assert_int_equal(ipcnet_del(c, "cfg.mode"), -ENOENT);
    assert_int_equal(ipcnet_put(c, ".bad", "x", 1, 0, 0), -EINVAL);
    assert_int_equal(ipcnet_put(c, "bad key", "x", 1, 0, 0), -EINVAL);
    /* The node counts them. */
    assert_int_equal(harness_stat(s_q(f, 0), "store_keys"), 1);
    /* A raw frame with a bad key: an error, not a crash. */
    int fd = harness_raw_connect(&f->n[0]);
    assert_true(fd >= 0);
    assert_int_equal(harness_raw_hello(fd, "raw"), 0);
    uint8_t v[8] = { 0 };
    assert_int_equal(harness_raw_frame(fd, 0x10, 0, 7, 0, "a b", NULL, v, 8), 0);
    assert_int_equal(harness_raw_frame(fd, 0x10, 0, 8, 0, "short", NULL, v, 3), 0);
    uint8_t fb[512];
    wire_frame_t fr;
    assert_true(harness_raw_read_frame(fd, fb, sizeof fb, WAIT_MS, &fr) > 0);
    assert_int_equal(fr.type, WIRE_ERROR);
    assert_int_equal(fr.aux, EINVAL);
    assert_true(harness_raw_read_frame(fd, fb, sizeof fb, WAIT_MS, &fr) > 0);
    assert_int_equal(fr.type, WIRE_ERROR);
    assert_int_equal(fr.aux, EBADMSG);
    close(fd);
    assert_true(harness_alive(&f->n[0]));
}

static int s_lines(const char *text)
{
    int n = 0;
    for (const char *p = text; *p; p++)
        n += *p == '\n';
    return n;
}

static void test_store_keys(void **state)
{
    fx_t *f = *state;
    WATCH(20);
    s_start(f, 0, -1, NULL, 0);
    ipcnet_t *c = harness_client(&f->n[0], "alpha", "c");
    s_put(c, "svc.a", "1");
    s_put(c, "svc.b", "22");
    s_put(c, "svc.c", "333");
    s_put(c, "other", "x");
    assert_int_equal(ipcnet_del(c, "svc.c"), 0);
    char *text = NULL;
    assert_int_equal(ipcnet_keys(c, "svc.*", &text), 0);
    assert_int_equal(s_lines(text), 2);
    assert_non_null(strstr(text, "svc.a\t"));
    assert_non_null(strstr(text, "\t2\n"));         /* svc.b's size */
    assert_null(strstr(text, "svc.c"));
    free(text);
    assert_int_equal(ipcnet_keys(c, "*", &text), 0);
    assert_int_equal(s_lines(text), 3);
    free(text);
    /* Many keys: the listing comes in parts. */
    char key[64], value[200];
    memset(value, 'v', sizeof value - 1);
    value[sizeof value - 1] = 0;
    enum { MANY = 12000 };      /* 650 KB of listing: three parts */
    for (int i = 0; i < MANY; i++) {
        snprintf(key, sizeof key, "many.key-with-a-long-name-%05d", i);
        assert_int_equal(ipcnet_put(c, key, value, 10, 0, 0), 0);
    }
    assert_int_equal(ipcnet_keys(c, "many.*", &text), 0);
    assert_int_equal(s_lines(text), MANY);
    /* Each once. */
    for (int i = 0; i < MANY; i += 997) {
        snprintf(key, sizeof key, "many.key-with-a-long-name-%05d\t", i);
        const char *at = strstr(text, key);
        assert_non_null(at);
        assert_null(strstr(at + 1, key));
    }
    free(text);
    assert_int_equal(ipcnet_keys(c, "none.*", &text), 0);
    assert_string_equal(text, "");
    free(text);
}

/* A listing far larger than the client's queue limit is made as the
   client reads it (query.c's pages), not queued at once. */
static void test_store_keys_paced(void **state)
{
    fx_t *f = *state;
    WATCH(30);
    s_start(f, 0, -1, (char *[]) { "--queue-limit", "64K", NULL }, 0);
    ipcnet_t *c = harness_client(&f->n[0], "alpha", "c");
    enum { MANY = 20000 };
    char key[64];
    for (int i = 0; i < MANY; i++) {
        snprintf(key, sizeof key, "paced.a-key-of-some-length-%06d", i);
        assert_int_equal(ipcnet_put(c, key, "v", 1, 0, 0), 0);
    }
    char *text = NULL;
    assert_int_equal(ipcnet_keys(c, "paced.*", &text), 0);
    assert_int_equal(s_lines(text), MANY);
    free(text);
    assert_int_equal(harness_stat(s_q(f, 0), "dropped_clients"), 0);
    assert_true(harness_stat(s_q(f, 0), "paused") > 0);
}

static void test_store_watch(void **state)
{
    fx_t *f = *state;
    WATCH(20);
    s_start(f, 0, -1, NULL, 0);
    ipcnet_t *c = harness_client(&f->n[0], "alpha", "c");
    ipcnet_t *w = harness_client(&f->n[0], "alpha", "w");
    s_put(c, "led.a", "on");
    assert_int_equal(ipcnet_watch_keys(w, "led.*"), 0);
    assert_int_equal(ipcnet_watch_keys(w, "led.*"), -EEXIST);
    s_expect_key(w, IPCNET_KEY_PUT, "led.a", "on");        /* the snapshot */
    s_put(c, "led.b", "off");
    s_expect_key(w, IPCNET_KEY_PUT, "led.b", "off");
    s_put(c, "other", "x");
    assert_int_equal(ipcnet_del(c, "led.a"), 0);
    s_expect_key(w, IPCNET_KEY_DEL, "led.a", NULL);
    harness_expect_nothing(w);
    assert_int_equal(ipcnet_unwatch_keys(w, "led.*"), 0);
    assert_int_equal(ipcnet_unwatch_keys(w, "led.*"), -ENOENT);
    s_put(c, "led.c", "on");
    harness_expect_nothing(w);
}

/* A handle made with IPCNET_RECONNECT watches its keys again when its node
   comes back, snapshot first; what the log kept is in it. */
static void test_store_watch_reconnect(void **state)
{
    fx_t *f = *state;
    WATCH(30);
    char *more[] = { "--store-fsync", "always", NULL };
    s_start(f, 0, -1, more, 0);
    ipcnet_t *c = harness_client(&f->n[0], "alpha", "c");
    s_put(c, "r.kept", "1");
    harness_client_close(&c);
    ipcnet_t *w = NULL;
    assert_int_equal(ipcnet_connect(&w, f->n[0].sock, "w", IPCNET_RECONNECT), 0);
    assert_int_equal(ipcnet_watch_keys(w, "r.*"), 0);
    s_expect_key(w, IPCNET_KEY_PUT, "r.kept", "1");
    ipcnet_close(&f->q[0]);
    harness_crash(&f->n[0]);
    s_start(f, 0, -1, more, 1);
    int down = 0, up = 0, again = 0;
    int64_t t0 = harness_now_ms();
    while ((!up || !again) && harness_now_ms() - t0 < 10000) {
        ipcnet_msg_t m;
        if (ipcnet_recv(w, &m, 200) < 0)
            continue;
        if (m.kind == IPCNET_MSG_EVENT && m.event == IPCNET_EV_NODE_DOWN)
            down = 1;
        else if (m.kind == IPCNET_MSG_EVENT && m.event == IPCNET_EV_NODE_UP)
            up = 1;
        else if (m.kind == IPCNET_MSG_KEY && strcmp(m.name, "r.kept") == 0)
            again = 1;
    }
    assert_true(down && up && again);
    c = harness_client(&f->n[0], "alpha", "c");
    s_put(c, "r.new", "2");
    s_expect_key(w, IPCNET_KEY_PUT, "r.new", "2");
    assert_int_equal(ipcnet_unwatch_keys(w, "r.*"), 0);
    ipcnet_close(&w);
}

static void test_store_cas(void **state)
{
    fx_t *f = *state;
    WATCH(20);
    s_start(f, 0, -1, NULL, 0);
    ipcnet_t *a = harness_client(&f->n[0], "alpha", "a");
    ipcnet_t *b = harness_client(&f->n[0], "alpha", "b");
    uint64_t v1 = 0, v2 = 0, v;
    /* Leader election: the first to put with version 0 wins. */
    assert_int_equal(ipcnet_put_full(a, "leader", "a", 1, 0, IPCNET_IF | IPCNET_EPHEMERAL, 0,
                                     &v1), 0);
    assert_int_equal(ipcnet_put_full(b, "leader", "b", 1, 0, IPCNET_IF | IPCNET_EPHEMERAL, 0,
                                     NULL), -ESTALE);
    assert_non_null(strstr(ipcnet_last_error(b), "version"));
    char buf[16];
    assert_int_equal(s_get(b, "leader", buf, sizeof buf, &v), 0);
    assert_string_equal(buf, "a");
    assert_int_equal(v, v1);
    /* Renewal on the version read. */
    assert_int_equal(ipcnet_put_full(a, "leader", "a2", 2, 0, IPCNET_IF | IPCNET_EPHEMERAL, v1,
                                     &v2), 0);
    assert_true(v2 > v1);
    assert_int_equal(ipcnet_put_if(b, "leader", "b", 1, v1), -ESTALE);
    /* The leader goes: b takes over. */
    harness_client_close(&a);
    int64_t t0 = harness_now_ms();
    int rc;
    while ((rc = ipcnet_put_full(b, "leader", "b", 1, 0, IPCNET_IF, 0, NULL)) == -ESTALE &&
           harness_now_ms() - t0 < WAIT_MS)
        usleep(10 * 1000);
    assert_int_equal(rc, 0);
    s_expect_value(b, "leader", "b");
}

static void test_store_ttl(void **state)
{
    fx_t *f = *state;
    WATCH(20);
    s_start(f, 0, -1, NULL, 0);
    ipcnet_t *c = harness_client(&f->n[0], "alpha", "c");
    ipcnet_t *w = harness_client(&f->n[0], "alpha", "w");
    assert_int_equal(ipcnet_watch_keys(w, "tmp.*"), 0);
    int64_t t0 = harness_now_ms();
    assert_int_equal(ipcnet_put(c, "tmp.lease", "x", 1, 400, 0), 0);
    s_expect_key(w, IPCNET_KEY_PUT, "tmp.lease", "x");
    s_expect_value(c, "tmp.lease", "x");
    s_expect_key(w, IPCNET_KEY_DEL, "tmp.lease", NULL);
    int64_t took = harness_now_ms() - t0;
    print_message("TTL 400 ms: deleted after %lld ms\n", (long long) took);
    assert_true(took >= 350 && took < 1500);
    char buf[8];
    assert_int_equal(s_get(c, "tmp.lease", buf, sizeof buf, NULL), -ENOENT);
    /* A put without TTL over one with: kept. */
    assert_int_equal(ipcnet_put(c, "tmp.keep", "1", 1, 200, 0), 0);
    assert_int_equal(ipcnet_put(c, "tmp.keep", "2", 1, 0, 0), 0);
    usleep(400 * 1000);
    s_expect_value(c, "tmp.keep", "2");
    assert_int_equal(harness_stat(s_q(f, 0), "store_expired"), 1);
}

static void test_store_ephemeral(void **state)
{
    fx_t *f = *state;
    WATCH(20);
    s_start(f, 0, -1, NULL, 0);
    ipcnet_t *a = harness_client(&f->n[0], "alpha", "a");
    ipcnet_t *w = harness_client(&f->n[0], "alpha", "w");
    assert_int_equal(ipcnet_put(a, "up.a", "meta", 4, 0, IPCNET_EPHEMERAL), 0);
    assert_int_equal(ipcnet_put(a, "up.a2", "meta", 4, 0, IPCNET_EPHEMERAL), 0);
    assert_int_equal(ipcnet_put(a, "kept", "1", 1, 0, 0), 0);
    /* A key made ephemeral, then put plainly by another: no longer a's. */
    assert_int_equal(ipcnet_put(w, "up.a2", "mine", 4, 0, 0), 0);
    assert_int_equal(ipcnet_watch_keys(w, "up.*"), 0);
    ipcnet_msg_t m;
    harness_expect(w, IPCNET_MSG_KEY, &m);
    harness_expect(w, IPCNET_MSG_KEY, &m);
    harness_client_close(&a);
    s_expect_key(w, IPCNET_KEY_DEL, "up.a", NULL);
    harness_expect_nothing(w);
    s_expect_value(w, "kept", "1");
    s_expect_value(w, "up.a2", "mine");
}

static void test_store_limits(void **state)
{
    fx_t *f = *state;
    WATCH(20);
    s_start(f, 0, -1, (char *[]) { "--store-max-value", "16", "--store-max-keys", "3", NULL }, 0);
    ipcnet_t *c = harness_client(&f->n[0], "alpha", "c");
    assert_int_equal(ipcnet_put(c, "a", "0123456789abcdef", 16, 0, 0), 0);
    assert_int_equal(ipcnet_put(c, "a", "0123456789abcdefg", 17, 0, 0), -EMSGSIZE);
    assert_non_null(strstr(ipcnet_last_error(c), "--store-max-value"));
    assert_int_equal(ipcnet_put(c, "b", "1", 1, 0, 0), 0);
    assert_int_equal(ipcnet_put(c, "c", "1", 1, 0, 0), 0);
    assert_int_equal(ipcnet_put(c, "d", "1", 1, 0, 0), -ENOBUFS);
    assert_non_null(strstr(ipcnet_last_error(c), "--store-max-keys"));
    /* A key held may change. */
    assert_int_equal(ipcnet_put(c, "c", "2", 1, 0, 0), 0);
    /* Watches are bounded by --max-watches. */
    assert_true(harness_alive(&f->n[0]));
}

/* A client running as nobody (uid 65534) against the per-uid limits; the
   node lets it in through --group nogroup. Exit codes: 0 as expected, 2
   no connection, 3 a put refused too early, 4 not refused, 5 wrong words. */
static int s_as_nobody(const node_t *n)
{
    if (setgid(65534) < 0 || setuid(65534) < 0)
        return 2;
    ipcnet_t *c = NULL;
    if (ipcnet_connect(&c, n->sock, "nobody", 0) < 0)
        return 2;
    for (int i = 0; i < 3; i++) {
        char key[16];
        snprintf(key, sizeof key, "u.%d", i);
        if (ipcnet_put(c, key, "12345678", 8, 0, 0) < 0)
            return 3;
    }
    /* A fourth key: too many; an existing one may change. */
    if (ipcnet_put(c, "u.3", "x", 1, 0, 0) != -ENOBUFS)
        return 4;
    if (!strstr(ipcnet_last_error(c), "--store-max-keys-per-uid"))
        return 5;
    if (ipcnet_put(c, "u.0", "1234567890", 10, 0, 0) < 0)
        return 3;
    /* Bytes: 3 keys of 3 bytes and values of 8..10, within 40; not 30 more. */
    char big[32];
    memset(big, 'b', sizeof big);
    if (ipcnet_put(c, "u.1", big, 30, 0, 0) != -ENOBUFS)
        return 4;
    if (!strstr(ipcnet_last_error(c), "--store-max-bytes-per-uid"))
        return 5;
    ipcnet_close(&c);
    return 0;
}

static void test_store_limits_per_uid(void **state)
{
    fx_t *f = *state;
    WATCH(20);
    if (geteuid() != 0)
        skip();
    s_start(f, 0, -1, (char *[]) { "--group", "nogroup", "--store-max-keys-per-uid", "3",
                                   "--store-max-bytes-per-uid", "40", NULL }, 0);
    /* Its directory, made for root alone: nobody may pass through it. */
    assert_int_equal(chmod(f->n[0].dir, 0711), 0);
    pid_t pid = harness_fork();
    if (pid == 0)
        _exit(s_as_nobody(&f->n[0]));
    int rc = harness_reap(pid, 10000);
    if (rc != 0)
        fail_msg("the client running as nobody: exit %d", rc);
    /* Root is bounded by the node's limits alone. */
    ipcnet_t *c = harness_client(&f->n[0], "alpha", "root");
    for (int i = 0; i < 10; i++) {
        char key[16];
        snprintf(key, sizeof key, "r.%d", i);
        assert_int_equal(ipcnet_put(c, key, "12345678", 8, 0, 0), 0);
    }
}

static void test_store_policy(void **state)
{
    fx_t *f = *state;
    WATCH(20);
    char keep[] = "/tmp/store-policy-XXXXXX";
    int fd = mkstemp(keep);
    assert_true(fd >= 0);
    const char *rules = "deny put secret.*\ndeny get hidden.*\ndeny watch-keys hidden.*\n"
                        "allow put,get *\n";
    assert_int_equal(write(fd, rules, strlen(rules)), (ssize_t) strlen(rules));
    close(fd);
    chmod(keep, 0644);
    s_start(f, 0, -1, (char *[]) { "--policy", keep, NULL }, 0);
    ipcnet_t *c = harness_client(&f->n[0], "alpha", "c");
    assert_int_equal(ipcnet_put(c, "secret.x", "1", 1, 0, 0), -EACCES);
    assert_non_null(strstr(ipcnet_last_error(c), "deny put secret.*"));
    assert_int_equal(ipcnet_put(c, "hidden.x", "1", 1, 0, 0), 0);
    char buf[8];
    assert_int_equal(s_get(c, "hidden.x", buf, sizeof buf, NULL), -EACCES);
    assert_int_equal(ipcnet_watch_keys(c, "hidden.*"), -EACCES);
    /* A wider watch does not show what get may not. */
    assert_int_equal(ipcnet_watch_keys(c, "*"), 0);
    assert_int_equal(ipcnet_put(c, "open", "1", 1, 0, 0), 0);
    s_expect_key(c, IPCNET_KEY_PUT, "open", "1");
    harness_expect_nothing(c);
    char *text;
    assert_int_equal(ipcnet_keys(c, "*", &text), 0);
    assert_null(strstr(text, "hidden"));
    free(text);
    unlink(keep);
}

/* --- the log ------------------------------------------------------------- */

static void test_store_persist(void **state)
{
    fx_t *f = *state;
    WATCH(30);
    char *more[] = { "--store-fsync", "always", NULL };
    s_start(f, 0, -1, more, 0);
    ipcnet_t *c = harness_client(&f->n[0], "alpha", "c");
    char key[32], value[32];
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof key, "p.%d", i);
        snprintf(value, sizeof value, "value %d", i);
        s_put(c, key, value);
    }
    assert_int_equal(ipcnet_del(c, "p.7"), 0);
    assert_int_equal(ipcnet_put(c, "p.eph", "x", 1, 0, IPCNET_EPHEMERAL), 0);
    harness_close_clients();
    ipcnet_close(&f->q[0]);
    harness_crash(&f->n[0]);
    /* A torn record at the end, as a crash in the middle of a write leaves. */
    char path[160];
    snprintf(path, sizeof path, "%s/state/store.log", f->n[0].dir);
    struct stat st;
    if (stat(path, &st) < 0) {
        /* Where the state directory is: find the log. */
        char cmd[256];
        snprintf(cmd, sizeof cmd, "find %s -name store.log", f->n[0].dir);
        FILE *p = popen(cmd, "r");
        assert_non_null(p);
        assert_non_null(fgets(path, sizeof path, p));
        pclose(p);
        path[strcspn(path, "\n")] = 0;
    }
    int fd = open(path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    static const uint8_t torn[] = { 0, 0, 0, 60, 1, 2, 3, 4, 0, 0, 1 };
    assert_int_equal(write(fd, torn, sizeof torn), (ssize_t) sizeof torn);
    close(fd);
    s_start(f, 0, -1, more, 1);
    c = harness_client(&f->n[0], "alpha", "c");
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof key, "p.%d", i);
        snprintf(value, sizeof value, "value %d", i);
        char buf[32];
        int rc = s_get(c, key, buf, sizeof buf, NULL);
        if (i == 7) {
            assert_int_equal(rc, -ENOENT);
            continue;
        }
        assert_int_equal(rc, 0);
        assert_string_equal(buf, value);
    }
    char buf[8];
    assert_int_equal(s_get(c, "p.eph", buf, sizeof buf, NULL), -ENOENT);
    assert_true(harness_count_lines(f->n[0].log, "not a whole record") >= 1);
    /* New writes go after the good records. */
    s_put(c, "p.after", "1");
}

/* Overwrites make the log grow; past 1 MiB and twice the live records it
   is rewritten with the live ones alone, and still read back whole. */
static void test_store_compaction(void **state)
{
    fx_t *f = *state;
    WATCH(60);
    char *more[] = { "--store-fsync", "never", NULL };
    s_start(f, 0, -1, more, 0);
    ipcnet_t *c = harness_client(&f->n[0], "alpha", "c");
    char key[32], value[1024];
    enum { ROUNDS = 400, KEYS = 10 };
    for (int r = 0; r < ROUNDS; r++)
        for (int k = 0; k < KEYS; k++) {
            snprintf(key, sizeof key, "c.%d", k);
            memset(value, 'a' + r % 26, sizeof value);
            snprintf(value, 16, "%d-%d", r, k);
            assert_int_equal(ipcnet_put(c, key, value, sizeof value, 0, 0), 0);
        }
    assert_int_equal(ipcnet_del(c, "c.9"), 0);
    long long log_bytes = harness_stat(s_q(f, 0), "store_log_bytes");
    print_message("%d puts of 1 KiB (%d KiB written): the log holds %lld bytes\n",
                  ROUNDS * KEYS, ROUNDS * KEYS, log_bytes);
    assert_true(log_bytes < (1 << 20) + 64 * 1024);
    assert_true(harness_count_lines(f->n[0].log, "log compacted") >= 1);
    harness_close_clients();
    ipcnet_close(&f->q[0]);
    harness_crash(&f->n[0]);
    s_start(f, 0, -1, more, 1);
    c = harness_client(&f->n[0], "alpha", "c");
    for (int k = 0; k < KEYS - 1; k++) {
        snprintf(key, sizeof key, "c.%d", k);
        ipcnet_msg_t m;
        assert_int_equal(ipcnet_get(c, key, &m, 0), 0);
        char want[16];
        snprintf(want, sizeof want, "%d-%d", ROUNDS - 1, k);
        assert_int_equal(m.size, sizeof value);
        assert_string_equal((const char *) m.data, want);
    }
    char buf[8];
    assert_int_equal(s_get(c, "c.9", buf, sizeof buf, NULL), -ENOENT);
}

/* A helper writing keys with --store-fsync always; each acknowledged put
   is reported on the pipe as its number. */
static void s_writer(const node_t *n, int fd)
{
    ipcnet_t *c = NULL;
    if (ipcnet_connect(&c, n->sock, "writer", 0) < 0)
        _exit(2);
    char key[32], value[64];
    for (uint32_t i = 0;; i++) {
        snprintf(key, sizeof key, "w.%u", i % 500);
        snprintf(value, sizeof value, "%u-%0*u", i, (int) (i % 40), 0);
        if (ipcnet_put(c, key, value, strlen(value), 0, 0) < 0)
            _exit(0);
        if (write(fd, &i, sizeof i) != sizeof i)
            _exit(3);
    }
}

static void test_store_sigkill_during_writes(void **state)
{
    fx_t *f = *state;
    WATCH(90);
    char *more[] = { "--store-fsync", "always", NULL };
    s_start(f, 0, -1, more, 0);
    uint32_t seed = (uint32_t) harness_now_ms();
    for (int round = 0; round < 4; round++) {
        int p[2];
        assert_int_equal(pipe(p), 0);
        pid_t pid = harness_fork();
        if (pid == 0) {
            close(p[0]);
            s_writer(&f->n[0], p[1]);
        }
        close(p[1]);
        seed = seed * 1103515245 + 12345;
        usleep((useconds_t) (100 + (seed >> 16) % 400) * 1000);
        ipcnet_close(&f->q[0]);
        harness_crash(&f->n[0]);
        /* The last acknowledged value of each key, from the pipe. */
        static uint32_t last[500];
        static int seen[500];
        memset(seen, 0, sizeof seen);
        uint32_t i;
        int acked = 0;
        while (read(p[0], &i, sizeof i) == sizeof i) {
            last[i % 500] = i;
            seen[i % 500] = 1;
            acked++;
        }
        close(p[0]);
        harness_reap(pid, 5000);
        s_start(f, 0, -1, more, 1);
        ipcnet_t *c = harness_client(&f->n[0], "alpha", "check");
        int checked = 0;
        for (int k = 0; k < 500; k++) {
            if (!seen[k])
                continue;
            char key[32], buf[128];
            snprintf(key, sizeof key, "w.%d", k);
            uint64_t v;
            assert_int_equal(s_get(c, key, buf, sizeof buf, &v), 0);
            /* The acknowledged write, or one after it that was written
               but whose answer the kill took (at most one per key). */
            uint32_t n = (uint32_t) strtoul(buf, NULL, 10);
            assert_true(n == last[k] || n == last[k] + 500);
            checked++;
        }
        print_message("round %d: %d puts acknowledged, %d keys checked after SIGKILL\n",
                      round, acked, checked);
        assert_true(acked > 0);
        harness_client_close(&c);
    }
}

/* --- several nodes ---------------------------------------------------------- */

/* Waits until every node of 0..count-1 has the same value of key; returns
   that value's text in buf. */
static int64_t s_converged(fx_t *f, int count, const char *const *keys, int nkeys,
                           int64_t within)
{
    ipcnet_t *c[NODES];
    for (int i = 0; i < count; i++)
        c[i] = harness_client(&f->n[i], s_names[i], "check");
    int64_t t0 = harness_now_ms();
    for (;;) {
        int same = 1;
        for (int k = 0; k < nkeys && same; k++) {
            char first[128], buf[128];
            uint64_t v0 = 0, v;
            int rc0 = s_get(c[0], keys[k], first, sizeof first, &v0);
            for (int i = 1; i < count && same; i++) {
                int rc = s_get(c[i], keys[k], buf, sizeof buf, &v);
                same = rc == rc0 && (rc < 0 || (v == v0 && strcmp(buf, first) == 0));
            }
        }
        if (same)
            break;
        if (harness_now_ms() - t0 > within)
            fail_msg("not converged within %lld ms", (long long) within);
        usleep(10 * 1000);
    }
    for (int i = 0; i < count; i++)
        harness_client_close(&c[i]);
    return harness_now_ms() - t0;
}

static void test_store_replicated(void **state)
{
    fx_t *f = *state;
    WATCH(30);
    s_start(f, 0, -1, NULL, 0);
    s_start(f, 1, 0, NULL, 0);
    s_mesh(f, 0, 1);
    ipcnet_t *a = harness_client(&f->n[0], "alpha", "a");
    ipcnet_t *w = harness_client(&f->n[1], "beta", "w");
    assert_int_equal(ipcnet_watch_keys(w, "cfg.*"), 0);
    int64_t t0 = harness_now_ms();
    s_put(a, "cfg.x", "1");
    s_expect_key(w, IPCNET_KEY_PUT, "cfg.x", "1");
    print_message("put on alpha seen by a watcher on beta after %lld ms\n",
                  (long long) (harness_now_ms() - t0));
    s_expect_value(w, "cfg.x", "1");
    assert_int_equal(ipcnet_del(w, "cfg.x"), 0);
    int64_t t1 = harness_now_ms();
    char buf[8];
    while (s_get(a, "cfg.x", buf, sizeof buf, NULL) == 0 && harness_now_ms() - t1 < WAIT_MS)
        usleep(5000);
    assert_int_equal(s_get(a, "cfg.x", buf, sizeof buf, NULL), -ENOENT);
    s_expect_key(w, IPCNET_KEY_DEL, "cfg.x", NULL);
}

static void test_store_converge_five(void **state)
{
    fx_t *f = *state;
    WATCH(60);
    s_start(f, 0, -1, NULL, 0);
    for (int i = 1; i < NODES; i++)
        s_start(f, i, 0, NULL, 0);
    for (int i = 0; i < NODES; i++)
        s_mesh(f, i, NODES - 1);
    ipcnet_t *c[NODES];
    for (int i = 0; i < NODES; i++)
        c[i] = harness_client(&f->n[i], s_names[i], "writer");
    /* Every node writes every key, interleaved: conflicts everywhere. */
    enum { KEYS = 20, ROUNDS = 10 };
    char names[KEYS][16];
    const char *keys[KEYS];
    for (int k = 0; k < KEYS; k++) {
        snprintf(names[k], sizeof names[k], "race.%d", k);
        keys[k] = names[k];
    }
    char value[64];
    for (int r = 0; r < ROUNDS; r++)
        for (int k = 0; k < KEYS; k++)
            for (int i = 0; i < NODES; i++) {
                snprintf(value, sizeof value, "%s-%d", s_names[i], r);
                assert_int_equal(ipcnet_put(c[i], keys[k], value, strlen(value), 0, 0), 0);
            }
    /* A few deletions racing with puts. */
    for (int i = 0; i < NODES; i++)
        ipcnet_del(c[i], keys[i]);
    int64_t took = s_converged(f, NODES, keys, KEYS, CONVERGE_MS);
    print_message("5 nodes, %d concurrent writes to %d keys: converged %lld ms after the "
                  "last write\n", ROUNDS * KEYS * NODES, KEYS, (long long) took);
}

static void test_store_digest_on_join(void **state)
{
    fx_t *f = *state;
    WATCH(60);
    s_start(f, 0, -1, NULL, 0);
    ipcnet_t *a = harness_client(&f->n[0], "alpha", "a");
    enum { KEYS = 2000 };
    char key[32], value[32];
    for (int i = 0; i < KEYS; i++) {
        snprintf(key, sizeof key, "j.%d", i);
        snprintf(value, sizeof value, "v%d", i);
        s_put(a, key, value);
    }
    int64_t t0 = harness_now_ms();
    s_start(f, 1, 0, NULL, 0);
    s_mesh(f, 1, 1);
    ipcnet_t *q = s_q(f, 1);
    while (harness_stat(q, "store_keys") < KEYS && harness_now_ms() - t0 < 20000)
        usleep(10 * 1000);
    assert_int_equal(harness_stat(q, "store_keys"), KEYS);
    print_message("a new node has %d keys %lld ms after it started\n", KEYS,
                  (long long) (harness_now_ms() - t0));
    long long sent = harness_stat(s_q(f, 0), "store_sync_records");
    assert_true(sent >= KEYS && sent < KEYS + 10);
    /* beta goes; alpha changes 10 keys; beta comes back: only the buckets
       of those keys are sent again, not all. */
    ipcnet_close(&f->q[1]);
    harness_crash(&f->n[1]);
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof key, "j.%d", i);
        s_put(a, key, "changed");
    }
    s_start(f, 1, 0, NULL, 1);
    s_mesh(f, 1, 1);
    ipcnet_t *b = harness_client(&f->n[1], "beta", "b");
    int64_t t1 = harness_now_ms();
    char buf[32];
    while ((s_get(b, "j.9", buf, sizeof buf, NULL) < 0 || strcmp(buf, "changed") != 0) &&
           harness_now_ms() - t1 < 10000)
        usleep(10 * 1000);
    assert_string_equal(buf, "changed");
    long long again = harness_stat(s_q(f, 0), "store_sync_records") - sent;
    print_message("after 10 changes, the digest exchange sent %lld of %d records\n", again,
                  KEYS);
    assert_true(again >= 10 && again < KEYS / 4);
    s_expect_value(b, "j.0", "changed");
    s_expect_value(b, "j.1999", "v1999");
}

static void test_store_ephemeral_node_lost(void **state)
{
    fx_t *f = *state;
    WATCH(30);
    s_start(f, 0, -1, NULL, 0);
    s_start(f, 1, 0, NULL, 0);
    s_mesh(f, 0, 1);
    ipcnet_t *b = harness_client(&f->n[1], "beta", "b");
    ipcnet_t *w = harness_client(&f->n[0], "alpha", "w");
    assert_int_equal(ipcnet_watch_keys(w, "up.*"), 0);
    assert_int_equal(ipcnet_put(b, "up.beta", "here", 4, 0, IPCNET_EPHEMERAL), 0);
    assert_int_equal(ipcnet_put(b, "up.kept", "here", 4, 0, 0), 0);
    s_expect_key(w, IPCNET_KEY_PUT, "up.beta", "here");
    s_expect_key(w, IPCNET_KEY_PUT, "up.kept", "here");
    harness_client_close(&b);
    ipcnet_close(&f->q[1]);
    int64_t t0 = harness_now_ms();
    harness_crash(&f->n[1]);
    s_expect_key(w, IPCNET_KEY_DEL, "up.beta", NULL);
    int64_t took = harness_now_ms() - t0;
    print_message("ephemeral key of a SIGKILLed node gone after %lld ms (heartbeat 200)\n",
                  (long long) took);
    assert_true(took < 2000);
    harness_expect_nothing(w);
    s_expect_value(w, "up.kept", "here");
}

/* nft: cuts every TCP connection of the node on port that runs as
   nobody (its own dials, whose packets carry its uid, and those to its
   port), both ways, through a conntrack mark. 0, or -1 when nft cannot. */
static char s_table[48];

static int s_cut(int port)
{
    snprintf(s_table, sizeof s_table, "ipcnet_store_%d", (int) getpid());
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "nft add table inet %s && "
             "nft add chain inet %s out '{ type filter hook output priority 0; }' && "
             "nft add rule inet %s out meta skuid 65534 ct mark set 0x5170 && "
             "nft add rule inet %s out tcp dport %d ct mark set 0x5170 && "
             "nft add rule inet %s out tcp sport %d ct mark set 0x5170 && "
             "nft add rule inet %s out ct mark 0x5170 drop",
             s_table, s_table, s_table, s_table, port, s_table, port, s_table);
    return system(cmd) == 0 ? 0 : -1;
}

static void s_heal(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "nft delete table inet %s 2>/dev/null", s_table);
    if (s_table[0] && system(cmd) != 0)
        print_message("(no nft table %s to delete)\n", s_table);
    s_table[0] = 0;
}

static void s_wait_up(fx_t *f, int i, int n, int64_t within)
{
    int64_t t0 = harness_now_ms();
    while (harness_peers_up(s_q(f, i)) != n && harness_now_ms() - t0 < within)
        usleep(20 * 1000);
    if (harness_peers_up(s_q(f, i)) != n)
        fail_msg("%s: %d peers up, not %d", s_names[i], harness_peers_up(s_q(f, i)), n);
}

/* Alpha and beta on one side, gamma (running as nobody) on the other; both
   sides write the same keys; healed, every node holds the newer of each. */
static void test_store_partition(void **state)
{
    fx_t *f = *state;
    WATCH(90);
    if (geteuid() != 0 || system("nft list tables >/dev/null 2>&1") != 0)
        skip();
    s_start(f, 0, -1, NULL, 0);
    s_start(f, 1, 0, NULL, 0);
    s_start(f, 2, 0, (char *[]) { "--user", "nobody", NULL }, 0);
    for (int i = 0; i < 3; i++)
        s_mesh(f, i, 2);
    ipcnet_t *a = harness_client(&f->n[0], "alpha", "a");
    ipcnet_t *b = harness_client(&f->n[1], "beta", "b");
    ipcnet_t *g = harness_client(&f->n[2], "gamma", "g");
    enum { KEYS = 10 };
    char names[KEYS][16];
    const char *keys[KEYS];
    for (int k = 0; k < KEYS; k++) {
        snprintf(names[k], sizeof names[k], "part.%d", k);
        keys[k] = names[k];
        s_put(a, keys[k], "before");
    }
    s_converged(f, 3, keys, KEYS, CONVERGE_MS);
    assert_int_equal(ipcnet_put(g, "up.gamma", "leader", 6, 0, IPCNET_EPHEMERAL), 0);
    ipcnet_t *w = harness_client(&f->n[0], "alpha", "w");
    assert_int_equal(ipcnet_watch_keys(w, "up.*"), 0);
    s_expect_key(w, IPCNET_KEY_PUT, "up.gamma", "leader");

    if (s_cut(f->port[2]) < 0)
        fail_msg("nft cannot cut gamma off");
    int64_t t0 = harness_now_ms();
    s_wait_up(f, 0, 1, 10000);
    s_wait_up(f, 1, 1, 10000);
    s_wait_up(f, 2, 0, 10000);
    print_message("partition: gamma cut off, seen lost after %lld ms\n",
                  (long long) (harness_now_ms() - t0));
    /* Gamma's ephemeral key went with it, on the other side. */
    s_expect_key(w, IPCNET_KEY_DEL, "up.gamma", NULL);

    /* Gamma writes every key; then alpha half of them, and beta deletes
       the last: later, so theirs win those. */
    for (int k = 0; k < KEYS; k++)
        s_put(g, keys[k], "gamma-side");
    usleep(20 * 1000);
    for (int k = 0; k < KEYS / 2; k++)
        s_put(a, keys[k], "alpha-side");
    assert_int_equal(ipcnet_del(b, keys[KEYS - 1]), 0);
    /* Replication is asynchronous: beta has alpha's write soon, not at once. */
    char seen[32] = "";
    int64_t t2 = harness_now_ms();
    while (harness_now_ms() - t2 < 5000 &&
           (s_get(b, keys[0], seen, sizeof seen, NULL) < 0 || strcmp(seen, "alpha-side") != 0))
        usleep(5 * 1000);
    assert_string_equal(seen, "alpha-side");
    s_expect_value(g, keys[0], "gamma-side");

    s_heal();
    int64_t t1 = harness_now_ms();
    for (int i = 0; i < 3; i++)
        s_wait_up(f, i, 2, 20000);
    int64_t took = s_converged(f, 3, keys, KEYS, 20000) + (harness_now_ms() - t1);
    print_message("healed: all three equal %lld ms after the heal\n", (long long) took);
    char buf[32];
    for (int k = 0; k < KEYS; k++) {
        int rc = s_get(g, keys[k], buf, sizeof buf, NULL);
        if (k == KEYS - 1)
            assert_int_equal(rc, -ENOENT);
        else
            assert_string_equal(buf, k < KEYS / 2 ? "alpha-side" : "gamma-side");
    }
    /* Gamma's client is still there: its key is back where it was lost. */
    s_expect_key(w, IPCNET_KEY_PUT, "up.gamma", "leader");
}

int main(int argc, char **argv)
{
    harness_main(argc, argv, WAIT_MS, QUIET_MS);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_store_put_get_del, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_keys_paced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_watch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_watch_reconnect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_cas, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_ttl, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_ephemeral, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_limits_per_uid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_policy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_persist, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_compaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_sigkill_during_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_replicated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_converge_five, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_digest_on_join, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_ephemeral_node_lost, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_partition, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
