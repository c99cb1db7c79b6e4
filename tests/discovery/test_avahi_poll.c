/*  test_avahi_poll.c: tests of the AvahiPoll adapter (discovery/avahi_poll.c)
    on the node's real event loop (node/loop.c).

    Everything goes through the AvahiPoll function pointers, the way
    avahi-client and libdbus use them, with real pipes and socketpairs. Each
    run of the loop is bounded by a loop timer that stops it, and each test
    by an alarm. Every watch callback checks with poll() that what it was
    told is true of the fd at that moment, so a stale or invented event fails
    the test even where the count of calls looks right. Timeouts are measured
    with CLOCK_MONOTONIC; their upper bounds are generous, for a loaded
    machine, and grow with TEST_TIMEOUT_SCALE (as under valgrind). */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "avahi_poll.h"
#include "loop.h"

#define WATCHDOG_S  10      /* per test, times TEST_TIMEOUT_SCALE */
#define QUIET_MS    150     /* how long "never fires" is watched */
#define BOUND_MS    2000    /* the most something expected may take */
#define MAX_RECS    8
#define MAX_FDS     16

typedef struct fixture fixture_t;
typedef struct rec rec_t;
typedef struct trec trec_t;

/* One watch and what its callback saw and is to do. */
struct rec {
    fixture_t *fx;
    AvahiWatch *w;              /* NULL once freed */
    int fd;
    int calls;
    AvahiWatchEvent first, last, seen;  /* event of the first / last call; all */
    int wrong_args;             /* calls with another watch or fd */
    int wrong_get;              /* watch_get_events() != event inside the call */
    int unconfirmed;            /* calls that poll() did not bear out */
    int stop;                   /* loop_stop() at each call */
    int drain;                  /* read all there is */
    int disarm;                 /* watch_update(w, 0) */
    int free_self;              /* watch_free(w) */
    rec_t *victim;              /* watch_free() this one, once, if still there */
    void (*hook)(rec_t *r);     /* anything else, last */
    void *ctx;
};

/* One timeout and what its callback saw and is to do. */
struct trec {
    fixture_t *fx;
    AvahiTimeout *t;            /* NULL once freed */
    int calls;
    int64_t at_us[8];           /* CLOCK_MONOTONIC at each call */
    int turn[8];                /* loop turn at each call */
    int rearm_ms;               /* timeout_update(now + rearm_ms) while calls < rearm_count */
    int rearm_count;
    int rearm_past;             /* re-arm with a time in the past instead */
    int stop_at;                /* loop_stop() when calls reaches it (0: never) */
    int free_self;
    trec_t *victim;             /* timeout_free() this one, once, if still there */
};

struct fixture {
    loop_t *loop;
    avahi_poll_t *adapter;
    const AvahiPoll *api;
    loop_timer_t *bound;        /* stops the current run; NULL once fired */
    int timed_out;
    int turns;                  /* loop turns, counted by the idle hook */
    rec_t recs[MAX_RECS];
    int nrecs;
    trec_t trecs[MAX_RECS];
    int ntrecs;
    int fds[MAX_FDS];           /* to close at teardown; -1 when closed */
};

static char s_test[64] = "?";

/* --- harness ---------------------------------------------------------------- */

static unsigned s_scale(void)
{
    const char *s = getenv("TEST_TIMEOUT_SCALE");
    long v = s ? strtol(s, NULL, 10) : 1;
    return v >= 1 && v <= 100 ? (unsigned) v : 1;
}

static void s_on_alarm(int sig)
{
    (void) sig;
    static const char a[] = "\ntest_avahi_poll: WATCHDOG: test '";
    static const char b[] = "' hung\n";
    if (write(2, a, sizeof a - 1) < 0 || write(2, s_test, strlen(s_test)) < 0 ||
        write(2, b, sizeof b - 1) < 0) {
        /* nothing to do */
    }
    _exit(1);
}

static int64_t s_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The wall-clock time ms milliseconds from now (negative: in the past), as
   Avahi gives it. */
static struct timeval s_in_ms(int64_t ms)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    int64_t us = (int64_t) tv.tv_sec * 1000000 + tv.tv_usec + ms * 1000;
    tv.tv_sec = (time_t) (us / 1000000);
    tv.tv_usec = (suseconds_t) (us % 1000000);
    return tv;
}

static int s_idle(loop_t *loop, void *arg)
{
    (void) loop;
    fixture_t *fx = arg;
    fx->turns++;
    return 0;
}

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    if (!fx)
        return -1;
    for (int i = 0; i < MAX_FDS; i++)
        fx->fds[i] = -1;
    fx->loop = loop_new();
    fx->adapter = fx->loop ? avahi_poll_new(fx->loop) : NULL;
    if (!fx->adapter) {
        loop_destroy(&fx->loop);
        free(fx);
        return -1;
    }
    fx->api = avahi_poll_get(fx->adapter);
    loop_set_idle(fx->loop, s_idle, fx);
    struct sigaction sa = { .sa_handler = s_on_alarm };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    alarm(WATCHDOG_S * s_scale());
    *state = fx;
    return 0;
}

/* Frees what a test left, even one that failed half-way. */
static int teardown(void **state)
{
    fixture_t *fx = *state;
    if (fx->adapter) {
        for (int i = 0; i < fx->nrecs; i++)
            if (fx->recs[i].w)
                fx->api->watch_free(fx->recs[i].w);
        for (int i = 0; i < fx->ntrecs; i++)
            if (fx->trecs[i].t)
                fx->api->timeout_free(fx->trecs[i].t);
    }
    avahi_poll_destroy(&fx->adapter);
    loop_timer_cancel(fx->loop, fx->bound);
    loop_destroy(&fx->loop);
    for (int i = 0; i < MAX_FDS; i++)
        if (fx->fds[i] >= 0)
            close(fx->fds[i]);
    free(fx);
    alarm(0);
    snprintf(s_test, sizeof s_test, "?");
    return 0;
}

static fixture_t *s_begin(void **state, const char *name)
{
    snprintf(s_test, sizeof s_test, "%s", name);
    return *state;
}

static void s_keep_fd(fixture_t *fx, int fd)
{
    for (int i = 0; i < MAX_FDS; i++)
        if (fx->fds[i] < 0) {
            fx->fds[i] = fd;
            return;
        }
    fail_msg("too many fds");
}

/* Closes fd and forgets it. */
static void s_close(fixture_t *fx, int fd)
{
    for (int i = 0; i < MAX_FDS; i++)
        if (fx->fds[i] == fd) {
            fx->fds[i] = -1;
            break;
        }
    close(fd);
}

static void s_pipe(fixture_t *fx, int p[2])
{
    assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    s_keep_fd(fx, p[0]);
    s_keep_fd(fx, p[1]);
}

/* Moves a new pair so that its first end has the number fd, closed before
   and so free (the pair may have taken it for either end). */
static void s_place(int pair[2], int fd)
{
    if (pair[1] == fd) {
        int w = fcntl(pair[1], F_DUPFD_CLOEXEC, 0);
        assert_true(w >= 0);
        close(pair[1]);
        pair[1] = w;
    }
    if (pair[0] != fd) {
        assert_int_equal(dup3(pair[0], fd, O_CLOEXEC), fd);
        close(pair[0]);
        pair[0] = fd;
    }
}

/* A new pipe whose read end has the number read_fd, closed before. */
static void s_pipe_at(fixture_t *fx, int p[2], int read_fd)
{
    assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    s_place(p, read_fd);
    s_keep_fd(fx, p[0]);
    s_keep_fd(fx, p[1]);
}

static void s_socketpair(fixture_t *fx, int sv[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    s_keep_fd(fx, sv[0]);
    s_keep_fd(fx, sv[1]);
}

static void s_put(int fd)
{
    assert_int_equal(write(fd, "x", 1), 1);
}

static void s_on_bound(loop_t *loop, void *arg)
{
    fixture_t *fx = arg;
    fx->bound = NULL;
    fx->timed_out = 1;
    loop_stop(loop);
}

/* Runs the loop until a callback stops it or ms have passed; returns 1 in
   the second case. */
static int s_run(fixture_t *fx, int64_t ms)
{
    fx->timed_out = 0;
    fx->bound = loop_timer_add(fx->loop, ms, s_on_bound, fx);
    assert_non_null(fx->bound);
    assert_int_equal(loop_run(fx->loop), 0);
    loop_timer_cancel(fx->loop, fx->bound);
    fx->bound = NULL;
    return fx->timed_out;
}

/* Runs until a callback stops the loop; fails if none does in time. */
static void s_run_until_stopped(fixture_t *fx)
{
    assert_int_equal(s_run(fx, (int64_t) BOUND_MS * s_scale()), 0);
}

/* Runs for QUIET_MS, for what must not happen. */
static void s_run_quiet(fixture_t *fx)
{
    assert_int_equal(s_run(fx, QUIET_MS), 1);
}

/* --- watches ---------------------------------------------------------------- */

/* Whether fd's state at this moment bears out event, as poll() sees it. */
static int s_confirmed(int fd, AvahiWatchEvent event)
{
    struct pollfd p = { .fd = fd, .events = POLLIN | POLLOUT | POLLRDHUP };
    if (poll(&p, 1, 0) < 0)
        return 0;
    int gone = p.revents & (POLLHUP | POLLERR | POLLRDHUP);
    if ((event & AVAHI_WATCH_IN) && !(p.revents & POLLIN) && !gone)
        return 0;
    if ((event & AVAHI_WATCH_OUT) && !(p.revents & POLLOUT) && !gone)
        return 0;
    if ((event & (AVAHI_WATCH_HUP | AVAHI_WATCH_ERR)) && !gone)
        return 0;
    return 1;
}

static void s_on_watch(AvahiWatch *w, int fd, AvahiWatchEvent event, void *userdata)
{
    rec_t *r = userdata;
    const AvahiPoll *api = r->fx->api;
    r->calls++;
    if (r->calls == 1)
        r->first = event;
    r->last = event;
    r->seen |= event;
    if (w != r->w || fd != r->fd)
        r->wrong_args++;
    if (api->watch_get_events(w) != event)
        r->wrong_get++;
    if (!s_confirmed(fd, event))
        r->unconfirmed++;
    if (r->victim && r->victim->w) {
        api->watch_free(r->victim->w);
        r->victim->w = NULL;
    }
    if (r->drain) {
        char buf[256];
        while (read(fd, buf, sizeof buf) > 0) {
        }
    }
    if (r->disarm)
        api->watch_update(w, 0);
    if (r->free_self) {
        api->watch_free(w);
        r->w = NULL;
    }
    if (r->stop)
        loop_stop(r->fx->loop);
    if (r->hook)
        r->hook(r);
}

/* A recorder for a new watch on fd for events, freed at teardown. */
static rec_t *s_watch(fixture_t *fx, int fd, AvahiWatchEvent events)
{
    assert_true(fx->nrecs < MAX_RECS);
    rec_t *r = &fx->recs[fx->nrecs++];
    r->fx = fx;
    r->fd = fd;
    r->w = fx->api->watch_new(fx->api, fd, events, s_on_watch, r);
    assert_non_null(r->w);
    return r;
}

static void s_free_watch(rec_t *r)
{
    r->fx->api->watch_free(r->w);
    r->w = NULL;
}

/* Nothing the adapter handed this watch was wrong or untrue. */
static void s_assert_honest(const rec_t *r)
{
    assert_int_equal(r->wrong_args, 0);
    assert_int_equal(r->wrong_get, 0);
    assert_int_equal(r->unconfirmed, 0);
}

static void s_nop_fd(loop_t *loop, int fd, int revents, void *arg)
{
    (void) loop, (void) fd, (void) revents, (void) arg;
}

/* Whether the loop has let go of fd: it then takes a new watch on it. */
static int s_loop_lets_go(fixture_t *fx, int fd)
{
    int rc = loop_fd_add(fx->loop, fd, LOOP_IN, s_nop_fd, NULL);
    if (rc == 0)
        loop_fd_del(fx->loop, fd);
    return rc == 0;
}

/* An IN watch on a pipe's read end is quiet while the pipe is empty and
   fires with IN once a byte is written; watch_get_events() inside the
   callback says IN too. */
static void test_avahi_poll_watch_in_fires_on_data(void **state)
{
    fixture_t *fx = s_begin(state, __func__);
    int p[2];
    s_pipe(fx, p);
    rec_t *r = s_watch(fx, p[0], AVAHI_WATCH_IN);
    r->stop = 1;

    s_run_quiet(fx);
    assert_int_equal(r->calls, 0);

    s_put(p[1]);
    s_run_until_stopped(fx);
    assert_int_equal(r->calls, 1);
    assert_int_equal(r->first, AVAHI_WATCH_IN);
    s_assert_honest(r);

    /* Level-triggered: the byte is still there, so it fires again; once it
       is read, the watch is quiet. */
    r->drain = 1;
    s_run_until_stopped(fx);
    assert_int_equal(r->calls, 2);
    s_run_quiet(fx);
    assert_int_equal(r->calls, 2);
    s_assert_honest(r);
}

/* watch_update from IN to OUT on a socket that can be written at once fires
   OUT; an update to 0 stops the callbacks; back to IN, it fires on data. */
static void test_avahi_poll_watch_update(void **state)
{
    fixture_t *fx = s_begin(state, __func__);
    int sv[2];
    s_socketpair(fx, sv);
    rec_t *r = s_watch(fx, sv[0], AVAHI_WATCH_IN);
    r->stop = 1;
    s_run_quiet(fx);
    assert_int_equal(r->calls, 0);

    fx->api->watch_update(r->w, AVAHI_WATCH_OUT);
    r->disarm = 1;              /* the update to 0 happens in the callback */
    s_run_until_stopped(fx);
    assert_int_equal(r->calls, 1);
    assert_int_equal(r->first, AVAHI_WATCH_OUT);
    s_run_quiet(fx);
    assert_int_equal(r->calls, 1);

    /* Updated to 0 from outside a callback, too. */
    fx->api->watch_update(r->w, AVAHI_WATCH_OUT);
    fx->api->watch_update(r->w, 0);
    s_run_quiet(fx);
    assert_int_equal(r->calls, 1);

    r->disarm = 0;
    r->drain = 1;
    fx->api->watch_update(r->w, AVAHI_WATCH_IN);
    s_run_quiet(fx);
    assert_int_equal(r->calls, 1);
    s_put(sv[1]);
    s_run_until_stopped(fx);
    assert_int_equal(r->calls, 2);
    assert_int_equal(r->last, AVAHI_WATCH_IN);
    s_assert_honest(r);
}

/* Two watches on one fd, one for IN and one for OUT as libdbus makes them:
   each is called for its own events only. */
static void test_avahi_poll_two_watches_same_fd(void **state)
{
    fixture_t *fx = s_begin(state, __func__);
    int sv[2];
    s_socketpair(fx, sv);
    rec_t *in = s_watch(fx, sv[0], AVAHI_WATCH_IN);
    rec_t *out = s_watch(fx, sv[0], AVAHI_WATCH_OUT);
    in->drain = 1;
    out->disarm = 1;

    /* Writable, nothing to read: only the OUT watch. */
    out->stop = 1;
    s_run_until_stopped(fx);
    assert_int_equal(out->calls, 1);
    assert_int_equal(out->first, AVAHI_WATCH_OUT);
    assert_int_equal(in->calls, 0);

    /* Something to read, OUT watch at 0: only the IN watch. */
    in->stop = 1;
    s_put(sv[1]);
    s_run_until_stopped(fx);
    assert_int_equal(in->calls, 1);
    assert_int_equal(in->first, AVAHI_WATCH_IN);
    assert_int_equal(out->calls, 1);

    /* Both at once: both called, each with its own event. */
    in->stop = out->stop = 0;
    fx->api->watch_update(out->w, AVAHI_WATCH_OUT);
    s_put(sv[1]);
    s_run_quiet(fx);
    assert_int_equal(in->calls, 2);
    assert_int_equal(out->calls, 2);
    assert_int_equal(in->seen, AVAHI_WATCH_IN);
    assert_int_equal(out->seen, AVAHI_WATCH_OUT);
    s_assert_honest(in);
    s_assert_honest(out);
}

/* A callback that frees its own watch: no crash (valgrind, ASan), never
   called again, and a later watch on the same fd works. */
static void test_avahi_poll_watch_frees_itself(void **state)
{
    fixture_t *fx = s_begin(state, __func__);
    int p[2];
    s_pipe(fx, p);
    rec_t *r = s_watch(fx, p[0], AVAHI_WATCH_IN);
    r->free_self = 1;
    s_put(p[1]);                /* never read: it would fire for ever */
    s_run_quiet(fx);
    assert_int_equal(r->calls, 1);
    assert_null(r->w);
    s_assert_honest(r);
    assert_true(s_loop_lets_go(fx, p[0]));

    rec_t *again = s_watch(fx, p[0], AVAHI_WATCH_IN);
    again->drain = again->stop = 1;
    s_run_until_stopped(fx);
    assert_int_equal(again->calls, 1);
    assert_int_equal(r->calls, 1);
    s_assert_honest(again);
}

/* Two watches on one fd, each freeing itself in its callback: both are
   called once, the second after the first is gone. */
static void test_avahi_poll_watches_on_one_fd_free_themselves(void **state)
{
    fixture_t *fx = s_begin(state, __func__);
    int p[2];
    s_pipe(fx, p);
    rec_t *a = s_watch(fx, p[0], AVAHI_WATCH_IN);
    rec_t *b = s_watch(fx, p[0], AVAHI_WATCH_IN);
    a->free_self = b->free_self = 1;
    s_put(p[1]);
    s_run_quiet(fx);
    assert_int_equal(a->calls, 1);
    assert_int_equal(b->calls, 1);
    s_assert_honest(a);
    s_assert_honest(b);
    assert_true(s_loop_lets_go(fx, p[0]));
}

/* A callback that frees another watch on the same fd, not yet dispatched in
   this round: that watch is not called, now or later. Whichever of the two
   runs first frees the other. */
static void test_avahi_poll_watch_frees_other_on_same_fd(void **state)
{
    fixture_t *fx = s_begin(state, __func__);
    int p[2];
    s_pipe(fx, p);
    rec_t *a = s_watch(fx, p[0], AVAHI_WATCH_IN);
    rec_t *b = s_watch(fx, p[0], AVAHI_WATCH_IN);
    a->victim = b;
    b->victim = a;
    a->drain = b->drain = 1;
    s_put(p[1]);
    s_run_quiet(fx);
    assert_int_equal(a->calls + b->calls, 1);
    rec_t *gone = a->calls ? b : a;
    assert_null(gone->w);
    s_assert_honest(a);
    s_assert_honest(b);

    s_put(p[1]);
    s_run_quiet(fx);
    assert_int_equal(gone->calls, 0);
    assert_int_equal(a->calls + b->calls, 2);
}

/* The same across two fds ready in the same round: the freed watch's fd is
   not dispatched. */
static void test_avahi_poll_watch_frees_other_fd(void **state)
{
    fixture_t *fx = s_begin(state, __func__);
    int p[2], q[2];
    s_pipe(fx, p);
    s_pipe(fx, q);
    rec_t *a = s_watch(fx, p[0], AVAHI_WATCH_IN);
    rec_t *b = s_watch(fx, q[0], AVAHI_WATCH_IN);
    a->victim = b;
    b->victim = a;
    a->drain = b->drain = 1;
    s_put(p[1]);
    s_put(q[1]);
    s_run_quiet(fx);
    assert_int_equal(a->calls + b->calls, 1);
    rec_t *gone = a->calls ? b : a;
    assert_null(gone->w);
    assert_true(s_loop_lets_go(fx, gone->fd));
    s_assert_honest(a);
    s_assert_honest(b);
}

/* Freeing every watch of an fd takes it out of the loop: the loop takes a
   new watch on it, data on it calls nothing, and once it is closed, its
   number reused by a new socket takes a new watch that fires. */
static void test_avahi_poll_free_all_watches_removes_fd(void **state)
{
    fixture_t *fx = s_begin(state, __func__);
    int sv[2];
    s_socketpair(fx, sv);
    rec_t *in = s_watch(fx, sv[0], AVAHI_WATCH_IN);
    rec_t *out = s_watch(fx, sv[0], AVAHI_WATCH_OUT);
    int fd = sv[0];
    s_free_watch(in);
    assert_false(s_loop_lets_go(fx, fd));   /* the OUT watch still holds it */
    s_free_watch(out);
    assert_true(s_loop_lets_go(fx, fd));
    s_put(sv[1]);
    s_run_quiet(fx);
    assert_int_equal(in->calls + out->calls, 0);

    s_close(fx, sv[0]);
    s_close(fx, sv[1]);
    int nsv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, nsv), 0);
    s_place(nsv, fd);
    s_keep_fd(fx, nsv[0]);
    s_keep_fd(fx, nsv[1]);
    rec_t *fresh = s_watch(fx, fd, AVAHI_WATCH_IN);
    fresh->drain = fresh->stop = 1;
    s_run_quiet(fx);
    assert_int_equal(fresh->calls, 0);
    s_put(nsv[1]);
    s_run_until_stopped(fx);
    assert_int_equal(fresh->calls, 1);
    assert_int_equal(fresh->first, AVAHI_WATCH_IN);
    s_assert_honest(fresh);
}

/* The same from inside the callback, as libdbus does on disconnect: free
   the watch, close the fd, and a new pipe under the same number gets a new
   watch, which fires only once that pipe has data. */
typedef struct {
    int p[2];                   /* the pipe put in place */
    rec_t *fresh;
} reopen_t;

static void s_reopen_hook(rec_t *r)
{
    reopen_t *ro = r->ctx;
    if (ro->fresh)
        return;
    int fd = r->fd;
    s_close(r->fx, fd);
    s_pipe_at(r->fx, ro->p, fd);
    ro->fresh = s_watch(r->fx, fd, AVAHI_WATCH_IN);
}

static void test_avahi_poll_watch_reopens_fd_in_callback(void **state)
{
    fixture_t *fx = s_begin(state, __func__);
    int p[2];
    s_pipe(fx, p);
    reopen_t ro = { { -1, -1 }, NULL };
    rec_t *r = s_watch(fx, p[0], AVAHI_WATCH_IN);
    r->free_self = 1;
    r->hook = s_reopen_hook;
    r->ctx = &ro;
    s_put(p[1]);
    s_run_quiet(fx);
    assert_int_equal(r->calls, 1);
    assert_non_null(ro.fresh);
    assert_int_equal(ro.fresh->calls, 0);

    ro.fresh->drain = ro.fresh->stop = 1;
    s_put(ro.p[1]);
    s_run_until_stopped(fx);
    assert_int_equal(ro.fresh->calls, 1);
    assert_int_equal(ro.fresh->first, AVAHI_WATCH_IN);
    s_assert_honest(r);
    s_assert_honest(ro.fresh);
}

/* Two fds ready in the same round. Whichever callback runs first frees the
   other fd's watch, closes that fd and puts a new, empty pipe under the
   same number with a new IN watch. The new pipe has nothing to read and has
   not hung up, so its watch must stay quiet: the loop must not hand it the
   event it had collected for the old fd. (This is what a node callback does
   when it drops one connection and accepts or dials another.) */
typedef struct {
    rec_t *a, *b;
    int *pa, *pb;               /* their pipes */
    int p[2];                   /* the pipe put in place */
    rec_t *fresh;
} swap_t;

static void s_swap_hook(rec_t *r)
{
    swap_t *s = r->ctx;
    if (s->fresh)
        return;
    fixture_t *fx = r->fx;
    rec_t *other = r == s->a ? s->b : s->a;
    int *op = r == s->a ? s->pb : s->pa;
    int fd = other->fd;
    if (other->w)
        s_free_watch(other);
    s_close(fx, op[0]);
    if (op[1] >= 0)
        s_close(fx, op[1]);
    s_pipe_at(fx, s->p, fd);
    s->fresh = s_watch(fx, fd, AVAHI_WATCH_IN);
}

static void s_swap_run(fixture_t *fx, int hangup)
{
    int pa[2], pb[2];
    s_pipe(fx, pa);
    s_pipe(fx, pb);
    swap_t s = { .pa = pa, .pb = pb, .p = { -1, -1 } };
    s.a = s_watch(fx, pa[0], AVAHI_WATCH_IN);
    s.b = s_watch(fx, pb[0], AVAHI_WATCH_IN);
    s.a->hook = s.b->hook = s_swap_hook;
    s.a->ctx = s.b->ctx = &s;
    if (hangup) {
        /* The survivor frees its watch, as libdbus does on a hang-up. */
        s.a->free_self = s.b->free_self = 1;
        s_close(fx, pa[1]);
        s_close(fx, pb[1]);
        pa[1] = pb[1] = -1;
    } else {
        s.a->drain = s.b->drain = 1;
        s_put(pa[1]);
        s_put(pb[1]);
    }
    s_run_quiet(fx);
    assert_int_equal(s.a->calls + s.b->calls, 1);
    assert_non_null(s.fresh);
    if (s.fresh->calls)
        fprintf(stderr, "%s: the new pipe's watch was called %d time(s) with event 0x%x, "
                "which poll() did not bear out %d time(s)\n", s_test, s.fresh->calls,
                (unsigned) s.fresh->first, s.fresh->unconfirmed);
    assert_int_equal(s.fresh->calls, 0);

    s.fresh->drain = s.fresh->stop = 1;
    s_put(s.p[1]);
    s_run_until_stopped(fx);
    assert_int_equal(s.fresh->calls, 1);
    assert_int_equal(s.fresh->first, AVAHI_WATCH_IN);
}

static void test_avahi_poll_reused_fd_gets_no_stale_in(void **state)
{
    s_swap_run(s_begin(state, __func__), 0);
}

static void test_avahi_poll_reused_fd_gets_no_stale_hup(void **state)
{
    s_swap_run(s_begin(state, __func__), 1);
}

/* Closing a pipe's write end makes an IN watch on the read end fire, with
   IN and/or HUP (and maybe ERR), never OUT. */
static void test_avahi_poll_hangup_fires_in_watch(void **state)
{
    fixture_t *fx = s_begin(state, __func__);
    int p[2];
    s_pipe(fx, p);
    rec_t *r = s_watch(fx, p[0], AVAHI_WATCH_IN);
    r->free_self = r->stop = 1;
    s_run_quiet(fx);
    assert_int_equal(r->calls, 0);
    s_close(fx, p[1]);
    s_run_until_stopped(fx);
    assert_int_equal(r->calls, 1);
    assert_true(r->first & (AVAHI_WATCH_IN | AVAHI_WATCH_HUP));
    assert_int_equal(r->first & ~(AVAHI_WATCH_IN | AVAHI_WATCH_HUP | AVAHI_WATCH_ERR), 0);
    s_assert_honest(r);
}

/* The other way: the reader goes away and an OUT watch on the write end
   fires, with OUT and/or ERR or HUP, never IN. */
static void test_avahi_poll_hangup_fires_out_watch(void **state)
{
    fixture_t *fx = s_begin(state, __func__);
    int p[2];
    s_pipe(fx, p);
    rec_t *r = s_watch(fx, p[1], AVAHI_WATCH_OUT);
    r->stop = 1;
    r->disarm = 1;
    s_run_until_stopped(fx);    /* an empty pipe can be written */
    assert_int_equal(r->calls, 1);
    assert_int_equal(r->first, AVAHI_WATCH_OUT);

    r->disarm = 0;
    r->free_self = 1;
    fx->api->watch_update(r->w, AVAHI_WATCH_OUT);
    s_close(fx, p[0]);
    s_run_until_stopped(fx);
    assert_int_equal(r->calls, 2);
    assert_true(r->last & (AVAHI_WATCH_OUT | AVAHI_WATCH_ERR | AVAHI_WATCH_HUP));
    assert_int_equal(r->last & AVAHI_WATCH_IN, 0);
    s_assert_honest(r);
}

/* avahi_poll_destroy() with a watch Avahi did not free lets go of its fd
   (valgrind: and of its memory); it is safe on NULL, twice. */
static void test_avahi_poll_destroy_lets_go(void **state)
{
    fixture_t *fx = s_begin(state, __func__);
    int sv[2];
    s_socketpair(fx, sv);
    rec_t *r = s_watch(fx, sv[0], AVAHI_WATCH_IN);
    avahi_poll_destroy(&fx->adapter);
    assert_null(fx->adapter);
    avahi_poll_destroy(&fx->adapter);
    avahi_poll_destroy(NULL);
    r->w = NULL;
    assert_true(s_loop_lets_go(fx, sv[0]));
    s_put(sv[1]);
    s_run_quiet(fx);
    assert_int_equal(r->calls, 0);
}

/* --- timeouts --------------------------------------------------------------- */

static void s_on_timeout(AvahiTimeout *t, void *userdata)
{
    trec_t *r = userdata;
    fixture_t *fx = r->fx;
    const AvahiPoll *api = fx->api;
    if (r->calls < 8) {
        r->at_us[r->calls] = s_mono_us();
        r->turn[r->calls] = fx->turns;
    }
    r->calls++;
    if (r->victim && r->victim->t) {
        api->timeout_free(r->victim->t);
        r->victim->t = NULL;
    }
    if (r->calls < r->rearm_count) {
        struct timeval tv = s_in_ms(r->rearm_past ? -1000 : r->rearm_ms);
        api->timeout_update(t, &tv);
    }
    if (r->free_self) {
        api->timeout_free(t);
        r->t = NULL;
    }
    if (r->stop_at && r->calls == r->stop_at)
        loop_stop(fx->loop);
}

/* A recorder for a new timeout at ms from now (NO_TIME: none), freed at
   teardown. */
#define NO_TIME INT64_MIN
static trec_t *s_timeout(fixture_t *fx, int64_t ms)
{
    assert_true(fx->ntrecs < MAX_RECS);
    trec_t *r = &fx->trecs[fx->ntrecs++];
    r->fx = fx;
    struct timeval tv = s_in_ms(ms == NO_TIME ? 0 : ms);
    r->t = fx->api->timeout_new(fx->api, ms == NO_TIME ? NULL : &tv, s_on_timeout, r);
    assert_non_null(r->t);
    return r;
}

static int64_t s_ms_since(int64_t start_us, int64_t at_us)
{
    return (at_us - start_us) / 1000;
}

/* A timeout 50 ms ahead fires once, not before about 40 ms. */
static void test_avahi_poll_timeout_fires_once(void **state)
{
    fixture_t *fx = s_begin(state, __func__);
    int64_t start = s_mono_us();
    trec_t *r = s_timeout(fx, 50);
    r->stop_at = 1;
    s_run_until_stopped(fx);
    assert_int_equal(r->calls, 1);
    int64_t ms = s_ms_since(start, r->at_us[0]);
    assert_in_range(ms, 40, (int64_t) BOUND_MS * s_scale());
    s_run_quiet(fx);
    assert_int_equal(r->calls, 1);
}

/* timeout_new with NULL never fires until timeout_update gives it a time. */
static void test_avahi_poll_timeout_null_waits_for_update(void **state)
{
    fixture_t *fx = s_begin(state, __func__);
    trec_t *r = s_timeout(fx, NO_TIME);
    r->stop_at = 1;
    s_run_quiet(fx);
    assert_int_equal(r->calls, 0);

    int64_t start = s_mono_us();
    struct timeval tv = s_in_ms(50);
    fx->api->timeout_update(r->t, &tv);
    s_run_until_stopped(fx);
    assert_int_equal(r->calls, 1);
    assert_true(s_ms_since(start, r->at_us[0]) >= 40);
    s_run_quiet(fx);
    assert_int_equal(r->calls, 1);
}

/* timeout_update to NULL disables a pending timeout; a later update arms
   it again. */
static void test_avahi_poll_timeout_update_null_disables(void **state)
{
    fixture_t *fx = s_begin(state, __func__);
    trec_t *r = s_timeout(fx, 50);
    r->stop_at = 1;
    fx->api->timeout_update(r->t, NULL);
    assert_int_equal(s_run(fx, 200), 1);
    assert_int_equal(r->calls, 0);

    struct timeval tv = s_in_ms(20);
    fx->api->timeout_update(r->t, &tv);
    s_run_until_stopped(fx);
    assert_int_equal(r->calls, 1);
}

/* timeout_update to an earlier time fires at the earlier time; to a later
   one, not before it. */
static void test_avahi_poll_timeout_update_moves_it(void **state)
{
    fixture_t *fx = s_begin(state, __func__);
    int64_t start = s_mono_us();
    trec_t *r = s_timeout(fx, 5000);
    r->stop_at = 1;
    struct timeval tv = s_in_ms(50);
    fx->api->timeout_update(r->t, &tv);
    s_run_until_stopped(fx);
    assert_int_equal(r->calls, 1);
    assert_in_range(s_ms_since(start, r->at_us[0]), 40, 2500);

    start = s_mono_us();
    tv = s_in_ms(50);
    fx->api->timeout_update(r->t, &tv);
    tv = s_in_ms(300);
    fx->api->timeout_update(r->t, &tv);
    r->stop_at = 2;
    s_run_until_stopped(fx);
    assert_int_equal(r->calls, 2);
    assert_true(s_ms_since(start, r->at_us[1]) >= 290);
}

/* A time in the past fires on the next loop turn; re-armed in the past from
   its callback, it fires again within a turn. */
static void test_avahi_poll_timeout_in_past_fires_next_turn(void **state)
{
    fixture_t *fx = s_begin(state, __func__);
    trec_t *r = s_timeout(fx, -1000);
    r->rearm_past = 1;
    r->rearm_count = 2;
    r->stop_at = 2;
    fx->turns = 0;
    s_run_until_stopped(fx);
    assert_int_equal(r->calls, 2);
    assert_int_equal(r->turn[0], 1);
    assert_in_range(r->turn[1], 1, 2);
    s_run_quiet(fx);
    assert_int_equal(r->calls, 2);
}

/* timeout_free before the time: it never fires (valgrind: no use after
   free when the time comes). */
static void test_avahi_poll_timeout_free_before_fire(void **state)
{
    fixture_t *fx = s_begin(state, __func__);
    trec_t *r = s_timeout(fx, 30);
    trec_t *later = s_timeout(fx, 60);  /* keeps a timer in the heap meanwhile */
    fx->api->timeout_free(r->t);
    r->t = NULL;
    later->stop_at = 1;
    s_run_until_stopped(fx);
    assert_int_equal(later->calls, 1);
    s_run_quiet(fx);
    assert_int_equal(r->calls, 0);
}

/* Two timeouts due in the same turn; whichever fires first frees the other,
   which then never fires. */
static void test_avahi_poll_timeout_frees_other(void **state)
{
    fixture_t *fx = s_begin(state, __func__);
    trec_t *a = s_timeout(fx, 20);
    trec_t *b = s_timeout(fx, 20);
    a->victim = b;
    b->victim = a;
    s_run_quiet(fx);
    assert_int_equal(a->calls + b->calls, 1);
    assert_null(a->calls ? b->t : a->t);
}

/* A callback that frees its own timeout: called once, no crash. */
static void test_avahi_poll_timeout_frees_itself(void **state)
{
    fixture_t *fx = s_begin(state, __func__);
    trec_t *r = s_timeout(fx, 20);
    r->free_self = 1;
    r->stop_at = 1;
    s_run_until_stopped(fx);
    assert_int_equal(r->calls, 1);
    assert_null(r->t);
    s_run_quiet(fx);
    assert_int_equal(r->calls, 1);
}

/* A callback that re-arms its timeout with timeout_update fires again:
   three times, each at least ~20 ms after the one before, then no more. */
static void test_avahi_poll_timeout_rearms_itself(void **state)
{
    fixture_t *fx = s_begin(state, __func__);
    trec_t *r = s_timeout(fx, 20);
    r->rearm_ms = 20;
    r->rearm_count = 3;
    r->stop_at = 3;
    s_run_until_stopped(fx);
    assert_int_equal(r->calls, 3);
    assert_true(s_ms_since(r->at_us[0], r->at_us[1]) >= 15);
    assert_true(s_ms_since(r->at_us[1], r->at_us[2]) >= 15);
    s_run_quiet(fx);
    assert_int_equal(r->calls, 3);
}

/* Watches and timeouts together: a timeout whose callback frees a watch
   and a watch whose callback arms a timeout. */
static void s_arm_hook(rec_t *r)
{
    trec_t *t = r->ctx;
    struct timeval tv = s_in_ms(10);
    r->fx->api->timeout_update(t->t, &tv);
}

static void test_avahi_poll_watch_arms_timeout(void **state)
{
    fixture_t *fx = s_begin(state, __func__);
    int p[2];
    s_pipe(fx, p);
    trec_t *t = s_timeout(fx, NO_TIME);
    t->stop_at = 1;
    rec_t *r = s_watch(fx, p[0], AVAHI_WATCH_IN);
    r->drain = 1;
    r->hook = s_arm_hook;
    r->ctx = t;
    s_put(p[1]);
    s_run_until_stopped(fx);
    assert_int_equal(r->calls, 1);
    assert_int_equal(t->calls, 1);
    s_assert_honest(r);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_avahi_poll_watch_in_fires_on_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_avahi_poll_watch_update, setup, teardown),
        cmocka_unit_test_setup_teardown(test_avahi_poll_two_watches_same_fd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_avahi_poll_watch_frees_itself, setup, teardown),
        cmocka_unit_test_setup_teardown(test_avahi_poll_watches_on_one_fd_free_themselves,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_avahi_poll_watch_frees_other_on_same_fd, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_avahi_poll_watch_frees_other_fd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_avahi_poll_free_all_watches_removes_fd, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_avahi_poll_watch_reopens_fd_in_callback, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_avahi_poll_reused_fd_gets_no_stale_in, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_avahi_poll_reused_fd_gets_no_stale_hup, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_avahi_poll_hangup_fires_in_watch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_avahi_poll_hangup_fires_out_watch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_avahi_poll_destroy_lets_go, setup, teardown),
        cmocka_unit_test_setup_teardown(test_avahi_poll_timeout_fires_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_avahi_poll_timeout_null_waits_for_update, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_avahi_poll_timeout_update_null_disables, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_avahi_poll_timeout_update_moves_it, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_avahi_poll_timeout_in_past_fires_next_turn, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_avahi_poll_timeout_free_before_fire, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_avahi_poll_timeout_frees_other, setup, teardown),
        cmocka_unit_test_setup_teardown(test_avahi_poll_timeout_frees_itself, setup, teardown),
        cmocka_unit_test_setup_teardown(test_avahi_poll_timeout_rearms_itself, setup, teardown),
        cmocka_unit_test_setup_teardown(test_avahi_poll_watch_arms_timeout, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
