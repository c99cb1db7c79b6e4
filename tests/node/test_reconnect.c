/*  test_reconnect.c: clients made with IPCNET_RECONNECT across a node that
    is killed and started again, through real sockets and a real node.

    The node is SIGKILLed (its socket file stays, refusing) and started
    again in the same directory. Each test checks what the application
    sees: the messages read before the loss, NODE_DOWN, the requests in
    flight failed, NODE_UP with the gap, and then names, subscriptions and
    watches working again without the application doing anything.

    Run one test: tests/node/test_reconnect 'test_reconnect_poll*'
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
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define WAIT_MS     3000
#define QUIET_MS    250
#define NAME        "solo"

typedef struct {
    node_t node;
    ipcnet_t *c[4];
} fx_t;

static int setup(void **state)
{
    if (harness_state_new(state, sizeof (fx_t)) < 0)
        return -1;
    fx_t *f = *state;
    harness_watchdog("setup", 30);
    if (harness_start_named(&f->node, NAME, (char *[]) { NULL }) < 0) {
        free(f);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    for (int i = 0; i < 4; i++)
        ipcnet_close(&f->c[i]);
    harness_reap_all();
    int rc = 0;
    if (f->node.pid > 0)
        rc = harness_stop(&f->node);
    else
        harness_cleanup(&f->node);
    harness_watchdog(NULL, 0);
    free(f);
    return rc;
}

#define WATCH(secs) harness_watchdog(__func__, (secs))

/* A client with IPCNET_RECONNECT (and flags), closed by the teardown. */
static ipcnet_t *s_client(fx_t *f, int i, int flags)
{
    int rc = ipcnet_connect(&f->c[i], f->node.sock, "reconnecting", IPCNET_RECONNECT | flags);
    if (rc < 0)
        fail_msg("connect: %s", ipcnet_strerror(rc));
    return f->c[i];
}

/* SIGKILL: the socket file stays behind, refusing connections. */
static void s_crash(fx_t *f)
{
    harness_crash(&f->node);
}

static void s_restart(fx_t *f, char *const extra[])
{
    char *none[] = { NULL };
    int rc = harness_restart_named(&f->node, NAME, extra ? extra : none);
    if (rc < 0)
        fail_msg("cannot restart the node: %s", strerror(-rc));
}

static void s_expect_event(ipcnet_t *c, int event, ipcnet_msg_t *ret)
{
    ipcnet_msg_t m;
    harness_expect(c, IPCNET_MSG_EVENT, &m);
    if (m.event != event)
        fail_msg("event %d expected, got %d (%s %s)", event, m.event, m.name, m.node);
    if (ret)
        *ret = m;
}

/* --- tests ---------------------------------------------------------------- */

/* Names, subscriptions and watches come back by themselves; NODE_UP says
   how long the node was away. */
static void test_reconnect_restores(void **state)
{
    WATCH(30);
    fx_t *f = *state;
    ipcnet_t *c = s_client(f, 0, 0);
    assert_int_equal(ipcnet_bind(c, "svc"), 0);
    assert_int_equal(ipcnet_subscribe(c, "t.*"), 0);
    assert_int_equal(ipcnet_watch(c, "w*"), 0);
    assert_int_equal(ipcnet_bind(c, "gone"), 0);
    assert_int_equal(ipcnet_unbind(c, "gone"), 0);
    int fd = ipcnet_fd(c);

    s_crash(f);
    int64_t t0 = harness_now_ms();
    ipcnet_msg_t m;
    s_expect_event(c, IPCNET_EV_NODE_DOWN, &m);
    assert_string_equal(m.node, NAME);
    /* Away for a while: sends that do not wait fail at once. */
    assert_int_equal(ipcnet_send(c, "svc", "x", 1, IPCNET_DONTWAIT), -ENOTCONN);
    assert_int_equal(ipcnet_publish(c, "t.a", "x", 1, IPCNET_DONTWAIT), -ENOTCONN);
    usleep(400 * 1000);
    s_restart(f, NULL);
    s_expect_event(c, IPCNET_EV_NODE_UP, &m);
    int64_t gap = harness_now_ms() - t0;
    assert_string_equal(m.node, NAME);
    if (m.gap_ms < 400 || m.gap_ms > gap + 50)
        fail_msg("gap_ms %u, but the node was away 400 to %lld ms", m.gap_ms, (long long) gap);
    assert_int_equal(ipcnet_fd(c), fd);

    /* Everything the client held works again; what it let go does not. */
    ipcnet_t *q = harness_connect(&f->node, "other");
    assert_non_null(q);
    assert_true(harness_has_service(q, "svc", NAME, ipcnet_address(c), "reconnecting"));
    assert_false(harness_has_service(q, "gone", NAME, NULL, NULL));
    harness_send(q, "svc", "hello again", IPCNET_CONFIRM);
    harness_expect_text(c, IPCNET_MSG_SEND, "svc", "hello again");
    assert_int_equal(ipcnet_publish(q, "t.b", "news", 4, IPCNET_CONFIRM), 0);
    harness_expect_text(c, IPCNET_MSG_PUBLISH, "t.b", "news");
    harness_bind(q, "w1");
    s_expect_event(c, IPCNET_EV_NAME_UP, &m);
    assert_string_equal(m.name, "w1");
    assert_int_equal(ipcnet_send(q, "gone", "x", 1, IPCNET_CONFIRM), -ENOENT);
    harness_expect_nothing(c);
    ipcnet_close(&q);
}

/* What was read before the loss comes first, then NODE_DOWN, then each
   request in flight fails with -ECONNRESET, in the order they were made;
   answered requests are not failed twice. */
static void test_reconnect_fails_requests(void **state)
{
    WATCH(30);
    fx_t *f = *state;
    ipcnet_t *c = s_client(f, 0, 0);
    assert_int_equal(ipcnet_bind(c, "inbox"), 0);
    ipcnet_t *h = harness_connect(&f->node, "holder");
    assert_non_null(h);
    harness_bind(h, "slow");
    uint32_t id[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(ipcnet_request_async(c, "slow", "q", 1, 10000, &id[i]), 0);
    /* One is answered and its reply read by c before the loss. */
    ipcnet_msg_t m;
    harness_expect(h, IPCNET_MSG_REQUEST, &m);
    assert_int_equal(ipcnet_reply(h, &m, "a", 1), 0);
    harness_expect(h, IPCNET_MSG_REQUEST, &m);
    harness_expect(h, IPCNET_MSG_REQUEST, &m);
    harness_send(h, "inbox", "one", IPCNET_CONFIRM);
    harness_send(h, "inbox", "two", IPCNET_CONFIRM);
    usleep(100 * 1000);     /* the node wrote them: they wait in c's socket */
    s_crash(f);
    ipcnet_close(&h);

    harness_expect(c, IPCNET_MSG_REPLY, &m);
    assert_int_equal(m.id, id[0]);
    harness_expect_text(c, IPCNET_MSG_SEND, "inbox", "one");
    harness_expect_text(c, IPCNET_MSG_SEND, "inbox", "two");
    s_expect_event(c, IPCNET_EV_NODE_DOWN, NULL);
    for (int i = 1; i < 3; i++) {
        harness_expect(c, IPCNET_MSG_ERROR, &m);
        assert_int_equal(m.error, -ECONNRESET);
        assert_int_equal(m.id, id[i]);
    }
    harness_expect_nothing(c);
    s_restart(f, NULL);
    s_expect_event(c, IPCNET_EV_NODE_UP, NULL);
    harness_expect_nothing(c);
}

/* The call that meets the loss fails with -ECONNRESET. Then, during the
   gap: a request that may wait fails at its timeout; a send that may wait
   goes out once the node is back; a reply to a request of before the
   loss fails at once. */
static void test_reconnect_gap_waits(void **state)
{
    WATCH(30);
    fx_t *f = *state;
    ipcnet_t *c = s_client(f, 0, 0);
    s_crash(f);
    assert_int_equal(ipcnet_send(c, "x", "y", 1, 0), -ECONNRESET);
    s_expect_event(c, IPCNET_EV_NODE_DOWN, NULL);
    int64_t t0 = harness_now_ms();
    uint32_t id;
    assert_int_equal(ipcnet_request_async(c, "x", "q", 1, 300, &id), -ENOTCONN);
    int64_t took = harness_now_ms() - t0;
    if (took < 290 || took > 2000)
        fail_msg("a request with a 300 ms timeout waited %lld ms", (long long) took);
    assert_int_equal(ipcnet_reply_to(c, ":1@" NAME, 7, "r", 1), -ENOTCONN);
    s_restart(f, NULL);
    ipcnet_t *q = harness_connect(&f->node, "receiver");
    assert_non_null(q);
    harness_bind(q, "later");
    /* c has not seen the node back yet (its next try is up to 0.25 s
       away): this send waits for it, and is delivered. */
    assert_int_equal(ipcnet_send(c, "later", "after", 5, IPCNET_CONFIRM), 0);
    harness_expect_text(q, IPCNET_MSG_SEND, "later", "after");
    s_expect_event(c, IPCNET_EV_NODE_UP, NULL);
    ipcnet_close(&q);
}

/* A name that cannot be had again is reported with its name and the
   node's words, and the rest is restored. */
static void test_reconnect_name_refused(void **state)
{
    WATCH(30);
    fx_t *f = *state;
    ipcnet_t *c = s_client(f, 0, 0);
    assert_int_equal(ipcnet_bind(c, "first"), 0);
    assert_int_equal(ipcnet_bind(c, "second"), 0);
    s_crash(f);
    s_expect_event(c, IPCNET_EV_NODE_DOWN, NULL);
    s_restart(f, (char *[]) { "--max-names", "1", NULL });
    ipcnet_msg_t m;
    harness_expect(c, IPCNET_MSG_ERROR, &m);
    assert_int_equal(m.error, -ENOBUFS);
    assert_string_equal(m.name, "second");
    s_expect_event(c, IPCNET_EV_NODE_UP, NULL);
    ipcnet_t *q = harness_connect(&f->node, "other");
    assert_non_null(q);
    assert_true(harness_has_service(q, "first", NAME, ipcnet_address(c), "reconnecting"));
    assert_false(harness_has_service(q, "second", NAME, NULL, NULL));
    ipcnet_close(&q);
    /* It was dropped: unbinding it is an error, binding "first" is too. */
    assert_int_equal(ipcnet_unbind(c, "second"), -ENOENT);
    assert_int_equal(ipcnet_bind(c, "first"), -EEXIST);
}

/* An event loop on ipcnet_fd() alone, with a non-blocking handle: the
   descriptor stays the same, the loop is woken for each try and not
   more, and it sees the node go and come back. */
static void test_reconnect_poll_loop(void **state)
{
    WATCH(30);
    fx_t *f = *state;
    ipcnet_t *c = s_client(f, 0, IPCNET_NONBLOCK);
    assert_int_equal(ipcnet_bind(c, "looped"), 0);
    int fd = ipcnet_fd(c);
    s_crash(f);
    int64_t t0 = harness_now_ms(), restarted = 0;
    int down = 0, up = 0, wakes = 0, wakes_away = 0;
    while (!up && harness_now_ms() - t0 < 10000) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (ipcnet_want_write(c))
            p.events |= POLLOUT;
        int n = poll(&p, 1, 100);
        assert_true(n >= 0);
        if (!restarted && harness_now_ms() - t0 >= 1500) {
            s_restart(f, NULL);
            restarted = harness_now_ms();
        }
        if (n == 0)
            continue;
        wakes++;
        if (!restarted)
            wakes_away++;
        ipcnet_msg_t msg;
        while (ipcnet_recv(c, &msg, 0) == 0) {
            if (msg.kind == IPCNET_MSG_EVENT && msg.event == IPCNET_EV_NODE_DOWN)
                down = 1;
            if (msg.kind == IPCNET_MSG_EVENT && msg.event == IPCNET_EV_NODE_UP)
                up = 1;
        }
        assert_int_equal(ipcnet_fd(c), fd);
    }
    assert_true(down);
    assert_true(up);
    /* 1.5 s away: tries at about 0.1, 0.3, 0.7 and 1.5 s, and the loss. */
    if (wakes_away > 8)
        fail_msg("the loop woke %d times in 1.5 s without its node", wakes_away);
    if (harness_now_ms() - restarted > 3000)
        fail_msg("back %lld ms after the node was", (long long) (harness_now_ms() - restarted));
    ipcnet_t *q = harness_connect(&f->node, "sender");
    assert_non_null(q);
    harness_send(q, "looped", "in the loop", IPCNET_CONFIRM);
    ipcnet_close(&q);
    int64_t t1 = harness_now_ms();
    int got = 0;
    while (!got && harness_now_ms() - t1 < WAIT_MS) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, 100) <= 0)
            continue;
        ipcnet_msg_t msg;
        if (ipcnet_recv(c, &msg, 0) == 0 && msg.kind == IPCNET_MSG_SEND)
            got = msg.size == 11 && memcmp(msg.data, "in the loop", 11) == 0;
    }
    assert_true(got);
}

/* The node away for longer than the backoff's cap, several times over:
   the client comes back each time, and its names with it. */
static void test_reconnect_many_times(void **state)
{
    WATCH(60);
    fx_t *f = *state;
    ipcnet_t *c = s_client(f, 0, 0);
    assert_int_equal(ipcnet_bind(c, "again"), 0);
    for (int round = 0; round < 3; round++) {
        s_crash(f);
        s_expect_event(c, IPCNET_EV_NODE_DOWN, NULL);
        if (round == 1)
            usleep(1200 * 1000);
        s_restart(f, NULL);
        harness_expect_waits(8000, QUIET_MS);
        s_expect_event(c, IPCNET_EV_NODE_UP, NULL);
        harness_expect_waits(WAIT_MS, QUIET_MS);
        ipcnet_t *q = harness_connect(&f->node, "sender");
        assert_non_null(q);
        harness_send(q, "again", "round", IPCNET_CONFIRM);
        harness_expect_text(c, IPCNET_MSG_SEND, "again", "round");
        ipcnet_close(&q);
    }
}

/* Without the flag nothing changes: the handle is dead. */
static void test_reconnect_not_asked(void **state)
{
    WATCH(30);
    fx_t *f = *state;
    ipcnet_t *c = harness_connect(&f->node, "plain");
    assert_non_null(c);
    s_crash(f);
    ipcnet_msg_t m;
    assert_int_equal(ipcnet_recv(c, &m, WAIT_MS), -ECONNRESET);
    s_restart(f, NULL);
    assert_int_equal(ipcnet_send(c, "x", "y", 1, 0), -ECONNRESET);
    ipcnet_close(&c);
}

int main(int argc, char **argv)
{
    harness_main(argc, argv, WAIT_MS, QUIET_MS);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reconnect_restores, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconnect_fails_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconnect_gap_waits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconnect_name_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconnect_poll_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconnect_many_times, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconnect_not_asked, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
