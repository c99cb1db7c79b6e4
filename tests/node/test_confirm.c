/*  test_confirm.c: what IPCNET_CONFIRM waits for, on one node and across
    two, through real sockets, real nodes and real ZeroMQ.

    A message sent with CONFIRM is answered once the receiving node has
    written it to its receiver's socket, not when it was queued there: a
    receiver that does not read (its socket full, the rest waiting in its
    node) holds the answer back, and one that goes away before the message
    was written makes it fail with -ECONNRESET.

    Run one test: tests/node/test_confirm 'test_confirm_remote*'
*/

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define WAIT_MS     5000
#define QUIET_MS    300
#define BIG         (1024 * 1024)
#define FILL        4           /* BIG messages: more than a socket holds */

static const char *const s_names[] = { "alpha", "beta" };

typedef struct {
    node_t n[2];
    ipcnet_t *q[2];
} fx_t;

static int setup(void **state)
{
    return harness_state_new(state, sizeof (fx_t));
}

static int teardown(void **state)
{
    fx_t *f = *state;
    int rc = harness_teardown_nodes(f->n, f->q, s_names, 2);
    harness_watchdog(NULL, 0);
    free(f);
    return rc;
}

#define WATCH(secs) harness_watchdog(__func__, (secs))

/* Starts alpha, and with two, beta dialling alpha; waits for the link.
   Payloads are copied (--shm-threshold 0): a memfd is written to the
   receiver's socket at once, so large ones would not fill it. */
static void s_start(fx_t *f, int two)
{
    if (harness_start_named(&f->n[0], "alpha", (char *[]) { "--shm-threshold", "0", NULL }) < 0)
        fail_msg("cannot start alpha");
    if (!two)
        return;
    char peer[64];
    snprintf(peer, sizeof peer, "tcp://127.0.0.1:%d", harness_node_port(&f->n[0]));
    if (harness_start_named(&f->n[1], "beta",
                            (char *[]) { "--peer", peer, "--shm-threshold", "0", NULL }) < 0)
        fail_msg("cannot start beta");
    ipcnet_t *q = harness_query_conn(&f->n[0], "alpha", &f->q[0]);
    int64_t t0 = harness_now_ms();
    while (harness_peers_up(q) < 1 && harness_now_ms() - t0 < 10000)
        usleep(50 * 1000);
    assert_int_equal(harness_peers_up(q), 1);
}

/* Until node i lists name as held on node `on` (bounded). */
static void s_seen(fx_t *f, int i, const char *name, const char *on)
{
    ipcnet_t *q = harness_query_conn(&f->n[i], s_names[i], &f->q[i]);
    int64_t t0 = harness_now_ms();
    while (!harness_has_service(q, name, on, NULL, NULL) && harness_now_ms() - t0 < 10000)
        usleep(20 * 1000);
    assert_true(harness_has_service(q, name, on, NULL, NULL));
}

/* Sends FILL large messages to name, without CONFIRM: the receiver does
   not read, so its socket fills and the rest waits in its node. */
static void s_fill(ipcnet_t *c, const char *name)
{
    static char big[BIG];
    for (int i = 0; i < FILL; i++)
        assert_int_equal(ipcnet_send(c, name, big, sizeof big, 0), 0);
    assert_int_equal(ipcnet_flush(c, WAIT_MS), 0);
}

/* A raw client of node (said HELLO) that sends "x" to name with CONFIRM
   as seq 2; the answer is read by the caller. */
static int s_confirm_raw(const node_t *node, const char *name)
{
    int fd = harness_raw_connect(node);
    assert_true(fd >= 0);
    assert_int_equal(harness_raw_hello(fd, "confirmer"), 0);
    assert_int_equal(harness_raw_frame(fd, WIRE_SEND, WIRE_F_CONFIRM, 2, 0, name, NULL, "x", 1),
                     0);
    return fd;
}

/* Reads everything sent to r: FILL large messages, then "x". */
static void s_read_all(ipcnet_t *r)
{
    ipcnet_msg_t m;
    for (int i = 0; i < FILL; i++) {
        harness_expect(r, IPCNET_MSG_SEND, &m);
        assert_int_equal(m.size, BIG);
    }
    harness_expect_text(r, IPCNET_MSG_SEND, NULL, "x");
}

/* Its answer: OK only once the receiver read enough for "x" to be written. */
static void s_held_then_ok(int fd, ipcnet_t *r)
{
    uint8_t buf[WIRE_HEAD_MAX + 64];
    wire_frame_t fr;
    ssize_t n = harness_raw_read_frame(fd, buf, sizeof buf, QUIET_MS, &fr);
    if (n != -ETIMEDOUT)
        fail_msg("an answer to CONFIRM (type 0x%02x) while the receiver reads nothing",
                 n > 0 ? fr.type : 0);
    s_read_all(r);
    n = harness_raw_read_frame(fd, buf, sizeof buf, WAIT_MS, &fr);
    assert_true(n > 0);
    assert_int_equal(fr.type, WIRE_OK);
    assert_int_equal(fr.seq, 2);
}

/* Its answer once the receiver closed without reading: ERROR ECONNRESET. */
static void s_fails_when_gone(int fd)
{
    uint8_t buf[WIRE_HEAD_MAX + 256];
    wire_frame_t fr;
    ssize_t n = harness_raw_read_frame(fd, buf, sizeof buf, WAIT_MS, &fr);
    assert_true(n > 0);
    if (fr.type != WIRE_ERROR || fr.aux != ECONNRESET)
        fail_msg("type 0x%02x aux %u, not ERROR ECONNRESET", fr.type, fr.aux);
    assert_int_equal(fr.seq, 2);
    assert_int_equal(fr.flags, WIRE_SEND);
    assert_true(fr.s2len > 0);      /* the node's words */
}

static void test_confirm_local_waits_for_the_socket(void **state)
{
    WATCH(30);
    fx_t *f = *state;
    s_start(f, 0);
    ipcnet_t *r = harness_holder(&f->n[0], "alpha", "slow", "c.slow");
    ipcnet_t *s = harness_client(&f->n[0], "alpha", "filler");
    s_fill(s, "c.slow");
    harness_sync(s);
    int fd = s_confirm_raw(&f->n[0], "c.slow");
    s_held_then_ok(fd, r);
    close(fd);
}

static void test_confirm_local_receiver_gone(void **state)
{
    WATCH(30);
    fx_t *f = *state;
    s_start(f, 0);
    ipcnet_t *r = harness_holder(&f->n[0], "alpha", "slow", "c.slow");
    ipcnet_t *s = harness_client(&f->n[0], "alpha", "filler");
    s_fill(s, "c.slow");
    harness_sync(s);
    int fd = s_confirm_raw(&f->n[0], "c.slow");
    usleep(QUIET_MS * 1000);
    harness_client_close(&r);
    s_fails_when_gone(fd);
    close(fd);
}

static void test_confirm_remote_waits_for_the_socket(void **state)
{
    WATCH(60);
    fx_t *f = *state;
    s_start(f, 1);
    ipcnet_t *r = harness_holder(&f->n[1], "beta", "slow", "c.far");
    s_seen(f, 0, "c.far", "beta");
    ipcnet_t *s = harness_client(&f->n[0], "alpha", "filler");
    s_fill(s, "c.far");
    /* alpha has handled the fill, so it crosses first: one link, in order. */
    harness_sync(s);
    int fd = s_confirm_raw(&f->n[0], "c.far");
    s_held_then_ok(fd, r);
    close(fd);
}

static void test_confirm_remote_receiver_gone(void **state)
{
    WATCH(60);
    fx_t *f = *state;
    s_start(f, 1);
    ipcnet_t *r = harness_holder(&f->n[1], "beta", "slow", "c.far");
    s_seen(f, 0, "c.far", "beta");
    ipcnet_t *s = harness_client(&f->n[0], "alpha", "filler");
    s_fill(s, "c.far");
    harness_sync(s);
    int fd = s_confirm_raw(&f->n[0], "c.far");
    usleep(2 * QUIET_MS * 1000);
    harness_client_close(&r);
    s_fails_when_gone(fd);
    close(fd);
}

/* Unchanged: a receiver that reads gets it, and the answer is quick. */
static void test_confirm_fast_path(void **state)
{
    WATCH(30);
    fx_t *f = *state;
    s_start(f, 1);
    ipcnet_t *r = harness_holder(&f->n[1], "beta", "reader", "c.quick");
    s_seen(f, 0, "c.quick", "beta");
    ipcnet_t *s = harness_client(&f->n[0], "alpha", "sender");
    for (int i = 0; i < 100; i++) {
        char text[16];
        snprintf(text, sizeof text, "n%d", i);
        harness_send(s, "c.quick", text, IPCNET_CONFIRM);
        harness_expect_text(r, IPCNET_MSG_SEND, "c.quick", text);
    }
}

/* --- order ------------------------------------------------------------------ */

#define ORDER_N     100000      /* messages of each of two senders */

/* In the helper: reads 2 x ORDER_N numbered messages; each sender's must
   come 0, 1, 2, ... Exit 0, or 1 on a gap or a swap (said on stderr). */
static int s_check_order(ipcnet_t *c, void *arg)
{
    (void) arg;
    char first[2][64] = { "", "" };
    uint32_t next[2] = { 0, 0 };
    for (long i = 0; i < 2L * ORDER_N; i++) {
        ipcnet_msg_t m;
        int rc = ipcnet_recv(c, &m, 20000);
        if (rc < 0 || m.kind != IPCNET_MSG_SEND || m.size != sizeof (uint32_t)) {
            fprintf(stderr, "order: message %ld: %s\n", i, rc < 0 ? ipcnet_strerror(rc) : "odd");
            return 1;
        }
        int who = strcmp(m.source, first[0]) == 0 ? 0 : strcmp(m.source, first[1]) == 0 ? 1
                : !first[0][0] ? 0 : !first[1][0] ? 1 : -1;
        if (who < 0)
            return 1;
        if (!first[who][0])
            snprintf(first[who], sizeof first[who], "%s", m.source);
        uint32_t n;
        memcpy(&n, m.data, sizeof n);
        if (n != next[who]) {
            fprintf(stderr, "order: from %s got %u, expected %u\n", m.source, n, next[who]);
            return 1;
        }
        next[who]++;
    }
    return 0;
}

/* Two senders on alpha, interleaved, to one receiver on beta: each one's
   messages arrive in order and none is missing, under load (batched with
   IPCNET_MORE, the receiver's queue and the link's window full). */
static void test_confirm_order_across_nodes(void **state)
{
    WATCH(120);
    fx_t *f = *state;
    s_start(f, 1);
    pid_t pid = harness_fork_holder(&f->n[1], "orderly", "c.order", s_check_order, NULL);
    assert_true(pid > 0);
    s_seen(f, 0, "c.order", "beta");
    ipcnet_t *s[2] = { harness_client(&f->n[0], "alpha", "one"),
                       harness_client(&f->n[0], "alpha", "two") };
    int64_t t0 = harness_now_ms();
    for (uint32_t n = 0; n < ORDER_N; n += 1000)
        for (int k = 0; k < 2; k++)
            for (uint32_t i = n; i < n + 1000; i++)
                assert_int_equal(ipcnet_send(s[k], "c.order", &i, sizeof i, IPCNET_MORE), 0);
    for (int k = 0; k < 2; k++)
        assert_int_equal(ipcnet_flush(s[k], 20000), 0);
    int code = harness_reap(pid, 60000);
    print_message("order: 2 x %d messages alpha -> beta, in order, in %lld ms\n", ORDER_N,
                  (long long) (harness_now_ms() - t0));
    assert_int_equal(code, 0);
}

int main(int argc, char **argv)
{
    harness_main(argc, argv, WAIT_MS, QUIET_MS);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_confirm_local_waits_for_the_socket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_confirm_local_receiver_gone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_confirm_remote_waits_for_the_socket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_confirm_remote_receiver_gone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_confirm_fast_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_confirm_order_across_nodes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
