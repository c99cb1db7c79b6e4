/*  bench_local.c: what ipc-node costs against a plain byte relay, on one host.

    A benchmark, not a test: it prints figures and fails only when it cannot
    run at all. In one run it alternates a baseline and the candidate over
    the same traffic and prints medians over the rounds, their ratio and the
    CPU time per operation of every process involved.

      relay  one process accepts two Unix stream connections and forwards
             bytes between them (poll, read up to 64 KiB, one write per
             read); the two clients exchange the frames the node would
             deliver (wire.h MESSAGE / DELIVER_REP, same sizes), encode
             each head and decode each frame, as libipcnet does.
      node   `$IPC_NODE --socket DIR/node-K.sock --name bench` (plus
             $IPC_NODE_ARGS), a fresh one per run; client B binds
             "bench.echo", client A sends to it.

    Scenarios: 64-byte request/reply round trips (median and p99); 64-byte
    one-way messages, one write per message and batched (IPCNET_MORE +
    ipcnet_flush against 64 KiB writes); 1 MiB messages. Each runs with every
    process pinned to one CPU (no cross-CPU wake-ups) and unpinned.

    CPU is read from each process's CPU clock (clock_getcpuclockid(), all
    threads, nanoseconds) just before the go signal and just after the
    measuring client reports done, so start-up and tear-down are left out.

    Every child is reaped, the node is stopped with SIGTERM and waited for,
    the temporary directory is removed and every run is bounded by --timeout.
*/

#include "ipcnet.h"
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ECHO_NAME       "bench.echo"
#define SMALL           64              /* payload of the small scenarios */
#define MARKER          1               /* payload of the end marker */
#define RELAY_BUF       (64 * 1024)     /* the relay's read size */
#define BATCH_CHUNK     (64 * 1024)     /* batched writes, as libipcnet's TX_BATCH */
#define REQ_TIMEOUT_MS  10000           /* ipcnet_request() */
#define STOP_GRACE_S    5               /* SIGTERM to SIGKILL, reaping */
#define NODE_START_S    10              /* until the node accepts */

/* Heads as the node would deliver them: a MESSAGE from ":1@bench" to
   "bench.echo" (100-byte frame with 64 bytes), a DELIVER_REP from
   ":2@bench" (90 bytes). The relay's clients send exactly these. */
#define SRC_A           ":1@bench"
#define SRC_B           ":2@bench"

enum { SC_RT, SC_SEND, SC_BATCH, SC_BIG, SC_COUNT };
enum { MODE_PINNED, MODE_UNPINNED, MODE_COUNT };
enum { ROLE_SRV, ROLE_A, ROLE_B, ROLE_COUNT };

static const char *const s_sc_name[SC_COUNT] = {
    "rt 64B", "send 64B x1", "send 64B batch", "send 1MiB",
};
static const char *const s_sc_arg[SC_COUNT] = { "rt", "send", "batch", "big" };
static const char *const s_mode_name[MODE_COUNT] = { "pinned", "unpinned" };
static const char *const s_role_name[ROLE_COUNT] = { "server", "client A", "client B" };

typedef struct {
    long rt;                /* measured round trips per run */
    long msgs;              /* 64-byte messages per throughput run */
    long big;               /* 1 MiB messages per run */
    size_t big_size;        /* payload of the big scenario */
    int rounds;
    int timeout;            /* seconds per run */
    unsigned modes;         /* bit per MODE_* */
    unsigned scenarios;     /* bit per SC_* */
    bool quick;
    const char *node;       /* $IPC_NODE, NULL: relay only */
    char *node_args;        /* $IPC_NODE_ARGS, split on spaces */
} config_t;

/* Shared between the parent and the children of one run (MAP_SHARED). */
typedef struct {
    volatile int stop;          /* the parent says: leave */
    double t_start;             /* CLOCK_MONOTONIC: A starts sending */
    double t_end;               /* A has its last reply / B has it all */
    long received;              /* messages counted by B */
    char pad1[64];
    volatile long progress_a;   /* messages sent / round trips done so far */
    char pad2[64];
    volatile long progress_b;   /* messages received so far */
    char pad3[64];
    long errors;                /* IPCNET_MSG_ERROR seen by A or B */
    int first_error;            /* its errno (negative) */
    char err[ROLE_COUNT][240];  /* why a child gave up */
    uint32_t lat[];             /* round trips in ns, cfg.rt of them */
} shared_t;

typedef struct {
    const config_t *cfg;
    int sc;
    bool pinned;
    bool node;
    int seq;                    /* run number, for unique socket names */
    char sock[108];
    shared_t *sh;
    size_t sh_size;
    int up[2];                  /* children -> parent: 'r' ready, 'd' done, 'E' */
    int ctl[ROLE_COUNT][2];     /* parent -> child: 'g' go, 'q' quit */
    pid_t pid[ROLE_COUNT];
    double deadline;            /* CLOCK_MONOTONIC */
    long warm;                  /* unmeasured round trips before the measured */
} run_t;

typedef struct {
    bool ok;
    double value;               /* median us, msg/s or MiB/s */
    double p99;                 /* round trips */
    double cpu_srv;             /* us per operation */
    double cpu_cli;
} result_t;

static char s_tmpdir[64];       /* short: socket paths live in it */
static cpu_set_t s_cpus_all;    /* the mask we were started with */
static int s_cpu_pin = 0;       /* the CPU of pinned runs */
static volatile sig_atomic_t s_interrupted;
static int s_seq;
static pid_t s_parent;            /* children die with it */

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static void s_on_signal(int sig)
{
    (void) sig;
    s_interrupted = 1;
}

/* --- children ------------------------------------------------------------- */

/* A child gives up: says why in the shared page and to the parent. */
__attribute__((format(printf, 3, 4), noreturn))
static void s_child_fail(run_t *r, int role, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->sh->err[role], sizeof r->sh->err[role], fmt, ap);
    va_end(ap);
    char c = 'E';
    if (write(r->up[1], &c, 1) < 0) {
        /* the parent is gone; nothing else to tell */
    }
    _exit(1);
}

static void s_child_say(run_t *r, int role, char c)
{
    if (write(r->up[1], &c, 1) != 1)
        s_child_fail(r, role, "cannot write to the parent: %s", strerror(errno));
}

/* Waits for the byte `want` from the parent, until the run's deadline. */
static void s_child_wait(run_t *r, int role, char want)
{
    for (;;) {
        int left = (int) ((r->deadline - s_now()) * 1000);
        if (left <= 0)
            s_child_fail(r, role, "timed out waiting for '%c' from the parent", want);
        struct pollfd p = { .fd = r->ctl[role][0], .events = POLLIN };
        int n = poll(&p, 1, left);
        if (n < 0 && errno != EINTR)
            s_child_fail(r, role, "poll: %s", strerror(errno));
        if (n <= 0)
            continue;
        char c;
        ssize_t got = read(r->ctl[role][0], &c, 1);
        if (got == 1 && c == want)
            return;
        if (got == 0)
            _exit(1);           /* the parent went away */
    }
}

static void s_pin(bool pinned)
{
    cpu_set_t set;
    if (pinned) {
        CPU_ZERO(&set);
        CPU_SET(s_cpu_pin, &set);
    } else
        set = s_cpus_all;
    (void) sched_setaffinity(0, sizeof set, &set);
}

/* What every child does after fork(): its CPUs, a last-resort alarm, and
   no end of the pipes that is not its own. */
static void s_child_setup(run_t *r, int role)
{
    (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != s_parent)
        _exit(1);
    s_pin(r->pinned);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    alarm((unsigned) r->cfg->timeout + 10);
    close(r->up[0]);
    for (int i = 0; i < ROLE_COUNT; i++) {
        close(r->ctl[i][1]);
        if (i != role)
            close(r->ctl[i][0]);
    }
}

static int s_write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EPIPE;
        p += n;
        len -= (size_t) n;
    }
    return 0;
}

/* A receive buffer that hands out whole frames, as the library must. */
typedef struct {
    uint8_t *buf;
    size_t cap, start, end;
} reader_t;

static int s_reader_init(reader_t *rd, size_t cap)
{
    rd->buf = malloc(cap);
    rd->cap = cap;
    rd->start = rd->end = 0;
    return rd->buf ? 0 : -ENOMEM;
}

/* The next complete frame, decoded: 1, 0 when more bytes are needed, or a
   negative errno for a bad frame. */
static int s_reader_next(reader_t *rd, wire_frame_t *f)
{
    ssize_t len = wire_peek(rd->buf + rd->start, rd->end - rd->start, rd->cap);
    if (len < 0)
        return (int) len;
    if (len == 0 || (size_t) len > rd->end - rd->start)
        return 0;
    int rc = wire_decode(rd->buf + rd->start, (size_t) len, f);
    if (rc < 0)
        return rc;
    rd->start += (size_t) len;
    return 1;
}

/* Reads what the socket has (blocking). Returns bytes, 0 at EOF, -errno. */
static ssize_t s_reader_fill(reader_t *rd, int fd)
{
    if (rd->start == rd->end)
        rd->start = rd->end = 0;
    else if (rd->end == rd->cap || rd->cap - rd->start < 64 * 1024) {
        memmove(rd->buf, rd->buf + rd->start, rd->end - rd->start);
        rd->end -= rd->start;
        rd->start = 0;
    }
    for (;;) {
        ssize_t n = read(fd, rd->buf + rd->end, rd->cap - rd->end);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        rd->end += (size_t) n;
        return n;
    }
}

static int s_unix_connect(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    if (connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

/* The relay: accepts two connections and forwards bytes between them,
   one write per read, until either side closes. */
static void s_relay(run_t *r, int lfd)
{
    int fd[2];
    for (int i = 0; i < 2; i++) {
        fd[i] = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd[i] < 0)
            s_child_fail(r, ROLE_SRV, "accept: %s", strerror(errno));
    }
    close(lfd);
    uint8_t *buf = malloc(RELAY_BUF);
    if (!buf)
        s_child_fail(r, ROLE_SRV, "out of memory");
    struct pollfd p[2] = { { .fd = fd[0], .events = POLLIN }, { .fd = fd[1], .events = POLLIN } };
    for (;;) {
        int n = poll(p, 2, 1000);
        if (n < 0 && errno != EINTR)
            s_child_fail(r, ROLE_SRV, "poll: %s", strerror(errno));
        if (n <= 0) {
            if (s_now() > r->deadline)
                s_child_fail(r, ROLE_SRV, "timed out");
            continue;
        }
        for (int i = 0; i < 2; i++) {
            if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t got = read(fd[i], buf, RELAY_BUF);
            if (got < 0 && errno == EINTR)
                continue;
            if (got <= 0)
                _exit(0);       /* a side closed: the run is over */
            if (s_write_all(fd[1 - i], buf, (size_t) got) < 0)
                _exit(0);
        }
    }
}

/* Relay client A of the round trips: sends a request frame, waits for the
   whole reply, r->warm times unmeasured, then cfg.rt times measured. */
static void s_relay_rt_a(run_t *r, int fd)
{
    uint8_t frame[WIRE_HEAD_MAX + SMALL];
    size_t head = wire_encode(frame, WIRE_MESSAGE, 0, 0, 0, SRC_A, strlen(SRC_A),
                              ECHO_NAME, strlen(ECHO_NAME), SMALL);
    memset(frame + head, 'a', SMALL);
    reader_t rd;
    if (s_reader_init(&rd, 256 * 1024) < 0)
        s_child_fail(r, ROLE_A, "out of memory");
    s_child_say(r, ROLE_A, 'r');
    s_child_wait(r, ROLE_A, 'g');

    long total = r->warm + r->cfg->rt;
    r->sh->t_start = s_now();
    for (long i = 0; i < total; i++) {
        double t0 = s_now();
        if (t0 > r->deadline)
            s_child_fail(r, ROLE_A, "timed out after %ld round trips", i);
        wire_put32(frame + 8, (uint32_t) i);
        int rc = s_write_all(fd, frame, head + SMALL);
        if (rc < 0)
            s_child_fail(r, ROLE_A, "write: %s", strerror(-rc));
        wire_frame_t f;
        while ((rc = s_reader_next(&rd, &f)) == 0) {
            ssize_t n = s_reader_fill(&rd, fd);
            if (n <= 0)
                s_child_fail(r, ROLE_A, "read: %s", n ? strerror((int) -n) : "EOF");
        }
        if (rc < 0 || f.size != SMALL || f.seq != (uint32_t) i)
            s_child_fail(r, ROLE_A, "bad reply %ld", i);
        if (i >= r->warm) {
            double ns = (s_now() - t0) * 1e9;
            r->sh->lat[i - r->warm] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t) ns;
        }
        r->sh->progress_a = i + 1;
    }
    r->sh->t_end = s_now();
    s_child_say(r, ROLE_A, 'd');
    s_child_wait(r, ROLE_A, 'q');
    _exit(0);
}

/* Relay client B of the round trips: answers each request with a reply
   frame of the same payload, until EOF. */
static void s_relay_rt_b(run_t *r, int fd)
{
    uint8_t frame[WIRE_HEAD_MAX + SMALL];
    size_t head = wire_encode(frame, WIRE_DELIVER_REP, 0, 0, 0, SRC_B, strlen(SRC_B),
                              NULL, 0, SMALL);
    reader_t rd;
    if (s_reader_init(&rd, 256 * 1024) < 0)
        s_child_fail(r, ROLE_B, "out of memory");
    s_child_say(r, ROLE_B, 'r');
    for (;;) {
        wire_frame_t f;
        int rc;
        while ((rc = s_reader_next(&rd, &f)) == 1) {
            if (f.size != SMALL)
                s_child_fail(r, ROLE_B, "bad request");
            wire_put32(frame + 8, f.seq);
            memcpy(frame + head, f.data, SMALL);
            if (s_write_all(fd, frame, head + SMALL) < 0)
                _exit(0);
        }
        if (rc < 0)
            s_child_fail(r, ROLE_B, "bad frame: %s", strerror(-rc));
        if (s_reader_fill(&rd, fd) <= 0)
            _exit(0);
    }
}

/* Writes both buffers, in one writev() unless the socket takes less. */
static int s_writev_all(int fd, const void *head, size_t hlen, const void *data, size_t size)
{
    struct iovec iov[2] = { { (void *) head, hlen }, { (void *) data, size } };
    struct iovec *v = iov;
    int cnt = size ? 2 : 1;
    while (cnt > 0) {
        ssize_t n = writev(fd, v, cnt);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EPIPE;
        while (cnt > 0 && (size_t) n >= v->iov_len) {
            n -= (ssize_t) v->iov_len;
            v++;
            cnt--;
        }
        if (cnt > 0) {
            v->iov_base = (uint8_t *) v->iov_base + n;
            v->iov_len -= (size_t) n;
        }
    }
    return 0;
}

/* Relay sender of the one-way scenarios: `count` messages of `size` bytes,
   then a marker of MARKER bytes. It does per message what libipcnet does:
   encodes the head, then either writes head and payload with one writev()
   (as ipcnet_send() does with sendmsg()) or, batching, copies both into a
   buffer written each time the next frame would pass 64 KiB (IPCNET_MORE). */
static void s_relay_send_a(run_t *r, int fd, long count, size_t size, bool batch)
{
    uint8_t *payload = malloc(size);
    uint8_t *chunk = batch ? malloc(BATCH_CHUNK + WIRE_HEAD_MAX + size) : NULL;
    if (!payload || (batch && !chunk))
        s_child_fail(r, ROLE_A, "out of memory");
    memset(payload, 'm', size);
    s_child_say(r, ROLE_A, 'r');
    s_child_wait(r, ROLE_A, 'g');

    r->sh->t_start = s_now();
    size_t used = 0;
    int rc = 0;
    for (long i = 0; i <= count && rc == 0; i++) {
        if ((i & 255) == 0 && s_now() > r->deadline)
            s_child_fail(r, ROLE_A, "timed out after %ld messages", i);
        size_t n = i < count ? size : MARKER;
        uint8_t head[WIRE_HEAD_MAX];
        size_t hlen = wire_encode(batch ? chunk + used : head, WIRE_MESSAGE, 0,
                                  (uint32_t) i, 0, SRC_A, strlen(SRC_A),
                                  ECHO_NAME, strlen(ECHO_NAME), n);
        if (!batch) {
            rc = s_writev_all(fd, head, hlen, payload, n);
        } else {
            memcpy(chunk + used + hlen, payload, n);
            used += hlen + n;
            if (used + WIRE_MIN + strlen(SRC_A) + strlen(ECHO_NAME) + size > BATCH_CHUNK ||
                i == count) {
                rc = s_write_all(fd, chunk, used);
                used = 0;
            }
        }
        r->sh->progress_a = i;
    }
    if (rc < 0)
        s_child_fail(r, ROLE_A, "write: %s", strerror(-rc));
    s_child_wait(r, ROLE_A, 'q');
    _exit(0);
}

/* Relay receiver: counts whole frames of `size` bytes until the marker. */
static void s_relay_send_b(run_t *r, int fd, long count, size_t size)
{
    reader_t rd;
    if (s_reader_init(&rd, size > 128 * 1024 ? 2 * (size + WIRE_HEAD_MAX) : 256 * 1024) < 0)
        s_child_fail(r, ROLE_B, "out of memory");
    s_child_say(r, ROLE_B, 'r');
    long got = 0;
    bool marker = false;
    while (!marker || got < count) {
        wire_frame_t f;
        int rc;
        while ((rc = s_reader_next(&rd, &f)) == 1) {
            if (f.size == size)
                got++;
            else if (f.size == MARKER)
                marker = true;
        }
        if (rc < 0)
            s_child_fail(r, ROLE_B, "bad frame: %s", strerror(-rc));
        r->sh->progress_b = got;
        if (marker && got >= count)
            break;
        ssize_t n = s_reader_fill(&rd, fd);
        if (n <= 0)
            s_child_fail(r, ROLE_B, "read after %ld messages: %s", got,
                         n ? strerror((int) -n) : "EOF");
    }
    r->sh->t_end = s_now();
    r->sh->received = got;
    s_child_say(r, ROLE_B, 'd');
    s_child_wait(r, ROLE_B, 'q');
    _exit(0);
}

static void s_note_error(run_t *r, const ipcnet_msg_t *m)
{
    if (r->sh->errors++ == 0)
        r->sh->first_error = m->error;
}

static ipcnet_t *s_client_connect(run_t *r, int role, const char *label)
{
    ipcnet_t *c = NULL;
    int rc = ipcnet_connect(&c, r->sock, label, 0);
    if (rc < 0)
        s_child_fail(r, role, "ipcnet_connect(%s): %s", r->sock, ipcnet_strerror(rc));
    return c;
}

/* Node client A of the round trips: ipcnet_request() to bench.echo. */
static void s_node_rt_a(run_t *r)
{
    ipcnet_t *c = s_client_connect(r, ROLE_A, "bench-a");
    uint8_t buf[SMALL];
    memset(buf, 'a', sizeof buf);
    s_child_say(r, ROLE_A, 'r');
    s_child_wait(r, ROLE_A, 'g');

    long total = r->warm + r->cfg->rt;
    r->sh->t_start = s_now();
    for (long i = 0; i < total; i++) {
        double t0 = s_now();
        if (t0 > r->deadline)
            s_child_fail(r, ROLE_A, "timed out after %ld round trips", i);
        ipcnet_msg_t rep;
        int rc = ipcnet_request(c, ECHO_NAME, buf, sizeof buf, REQ_TIMEOUT_MS, &rep);
        if (rc < 0)
            s_child_fail(r, ROLE_A, "ipcnet_request #%ld: %s", i, ipcnet_strerror(rc));
        if (rep.kind != IPCNET_MSG_REPLY || rep.size != SMALL)
            s_child_fail(r, ROLE_A, "ipcnet_request #%ld: kind %d, %zu bytes",
                         i, (int) rep.kind, rep.size);
        if (i >= r->warm) {
            double ns = (s_now() - t0) * 1e9;
            r->sh->lat[i - r->warm] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t) ns;
        }
        r->sh->progress_a = i + 1;
    }
    r->sh->t_end = s_now();
    s_child_say(r, ROLE_A, 'd');
    s_child_wait(r, ROLE_A, 'q');
    ipcnet_close(&c);
    _exit(0);
}

/* Node client B of the round trips: answers each IPCNET_MSG_REQUEST with
   its own payload, until the parent says stop. */
static void s_node_rt_b(run_t *r)
{
    ipcnet_t *c = s_client_connect(r, ROLE_B, "bench-b");
    int rc = ipcnet_bind(c, ECHO_NAME);
    if (rc < 0)
        s_child_fail(r, ROLE_B, "ipcnet_bind(%s): %s", ECHO_NAME, ipcnet_strerror(rc));
    s_child_say(r, ROLE_B, 'r');
    uint8_t buf[SMALL];
    while (!r->sh->stop) {
        ipcnet_msg_t m;
        rc = ipcnet_recv(c, &m, 50);
        if (rc == -ETIMEDOUT || rc == -EAGAIN || rc == -EINTR)
            continue;
        if (rc < 0) {
            if (r->sh->stop)
                break;
            s_child_fail(r, ROLE_B, "ipcnet_recv: %s", ipcnet_strerror(rc));
        }
        if (m.kind == IPCNET_MSG_ERROR) {
            s_note_error(r, &m);
            continue;
        }
        if (m.kind != IPCNET_MSG_REQUEST)
            continue;
        /* The payload is borrowed until the next call on c: copy it. */
        size_t n = m.size < sizeof buf ? m.size : sizeof buf;
        memcpy(buf, m.data, n);
        rc = ipcnet_reply(c, &m, buf, n);
        if (rc < 0)
            s_child_fail(r, ROLE_B, "ipcnet_reply: %s", ipcnet_strerror(rc));
    }
    ipcnet_close(&c);
    _exit(0);
}

/* Node sender: `count` ipcnet_send() of `size` bytes (IPCNET_MORE when
   batching, then ipcnet_flush()), then a marker of MARKER bytes. */
static void s_node_send_a(run_t *r, long count, size_t size, bool batch)
{
    ipcnet_t *c = s_client_connect(r, ROLE_A, "bench-a");
    if (ipcnet_max_message(c) < size)
        s_child_fail(r, ROLE_A, "the node takes at most %zu bytes a message, not %zu",
                     ipcnet_max_message(c), size);
    uint8_t *buf = malloc(size);
    if (!buf)
        s_child_fail(r, ROLE_A, "out of memory");
    memset(buf, 'm', size);
    int flags = batch ? IPCNET_MORE : 0;
    s_child_say(r, ROLE_A, 'r');
    s_child_wait(r, ROLE_A, 'g');

    r->sh->t_start = s_now();
    for (long i = 0; i <= count; i++) {
        if ((i & 255) == 0 && s_now() > r->deadline)
            s_child_fail(r, ROLE_A, "timed out after %ld messages", i);
        size_t n = i < count ? size : MARKER;
        int rc = ipcnet_send(c, ECHO_NAME, buf, n, flags);
        if (rc == -EAGAIN && batch) {
            /* The batch queue is full: write it out and try again. */
            int left = (int) ((r->deadline - s_now()) * 1000);
            rc = ipcnet_flush(c, left > 0 ? left : 0);
            if (rc < 0)
                s_child_fail(r, ROLE_A, "ipcnet_flush after %ld: %s", i, ipcnet_strerror(rc));
            rc = ipcnet_send(c, ECHO_NAME, buf, n, flags);
        }
        if (rc < 0)
            s_child_fail(r, ROLE_A, "ipcnet_send #%ld: %s", i, ipcnet_strerror(rc));
        r->sh->progress_a = i + 1;
    }
    if (batch) {
        int left = (int) ((r->deadline - s_now()) * 1000);
        int rc = ipcnet_flush(c, left > 0 ? left : 0);
        if (rc < 0)
            s_child_fail(r, ROLE_A, "ipcnet_flush: %s", ipcnet_strerror(rc));
    }
    /* Wait for the parent, collecting any error the node sends back. */
    for (;;) {
        struct pollfd p[2] = {
            { .fd = r->ctl[ROLE_A][0], .events = POLLIN },
            { .fd = ipcnet_fd(c), .events = POLLIN },
        };
        int left = (int) ((r->deadline - s_now()) * 1000);
        if (left <= 0)
            s_child_fail(r, ROLE_A, "timed out waiting for the parent");
        int n = poll(p, 2, left);
        if (n < 0 && errno != EINTR)
            s_child_fail(r, ROLE_A, "poll: %s", strerror(errno));
        if (n > 0 && p[0].revents)
            break;
        if (n > 0 && p[1].revents) {
            ipcnet_msg_t m;
            while (ipcnet_recv(c, &m, 0) == 0)
                if (m.kind == IPCNET_MSG_ERROR)
                    s_note_error(r, &m);
            if (p[1].revents & (POLLHUP | POLLERR))
                break;
        }
    }
    ipcnet_close(&c);
    _exit(0);
}

typedef struct {
    run_t *r;
    size_t size;
    long got;
    bool marker;
} counter_t;

static void s_count(ipcnet_t *c, const ipcnet_msg_t *m, void *arg)
{
    counter_t *k = arg;
    (void) c;
    if (m->kind == IPCNET_MSG_ERROR)
        s_note_error(k->r, m);
    else if (m->kind == IPCNET_MSG_SEND && m->size == k->size)
        k->got++;
    else if (m->kind == IPCNET_MSG_SEND && m->size == MARKER)
        k->marker = true;
}

/* Node receiver: binds bench.echo and counts messages with poll() and
   ipcnet_dispatch() until it has `count` and the marker. */
static void s_node_send_b(run_t *r, long count, size_t size)
{
    ipcnet_t *c = s_client_connect(r, ROLE_B, "bench-b");
    int rc = ipcnet_bind(c, ECHO_NAME);
    if (rc < 0)
        s_child_fail(r, ROLE_B, "ipcnet_bind(%s): %s", ECHO_NAME, ipcnet_strerror(rc));
    counter_t k = { .r = r, .size = size };
    s_child_say(r, ROLE_B, 'r');
    while (!k.marker || k.got < count) {
        int left = (int) ((r->deadline - s_now()) * 1000);
        if (left <= 0)
            s_child_fail(r, ROLE_B, "timed out with %ld of %ld messages%s", k.got, count,
                         k.marker ? " and the marker" : "");
        struct pollfd p = { .fd = ipcnet_fd(c), .events = POLLIN };
        if (ipcnet_want_write(c))
            p.events |= POLLOUT;
        int n = poll(&p, 1, left < 1000 ? left : 1000);
        if (n < 0 && errno != EINTR)
            s_child_fail(r, ROLE_B, "poll: %s", strerror(errno));
        if (n <= 0)
            continue;
        rc = ipcnet_dispatch(c, s_count, &k);
        if (rc < 0)
            s_child_fail(r, ROLE_B, "ipcnet_dispatch after %ld messages: %s", k.got,
                         ipcnet_strerror(rc));
        r->sh->progress_b = k.got;
    }
    r->sh->t_end = s_now();
    r->sh->received = k.got;
    s_child_say(r, ROLE_B, 'd');
    s_child_wait(r, ROLE_B, 'q');
    ipcnet_close(&c);
    _exit(0);
}

/* What client `role` of scenario r->sc runs; never returns. */
static void s_client(run_t *r, int role)
{
    const config_t *cfg = r->cfg;
    long count = r->sc == SC_BIG ? cfg->big : cfg->msgs;
    size_t size = r->sc == SC_BIG ? cfg->big_size : SMALL;
    bool batch = r->sc == SC_BATCH;
    if (r->node) {
        if (r->sc == SC_RT)
            role == ROLE_A ? s_node_rt_a(r) : s_node_rt_b(r);
        else if (role == ROLE_A)
            s_node_send_a(r, count, size, batch);
        else
            s_node_send_b(r, count, size);
    } else {
        int fd = s_unix_connect(r->sock);
        if (fd < 0)
            s_child_fail(r, role, "connect(%s): %s", r->sock, strerror(-fd));
        if (r->sc == SC_RT)
            role == ROLE_A ? s_relay_rt_a(r, fd) : s_relay_rt_b(r, fd);
        else if (role == ROLE_A)
            s_relay_send_a(r, fd, count, size, batch);
        else
            s_relay_send_b(r, fd, count, size);
    }
    _exit(1);
}

/* --- parent --------------------------------------------------------------- */

/* CPU seconds used so far by process pid, all its threads. */
static double s_cpu_of(pid_t pid)
{
    clockid_t clk;
    struct timespec ts;
    if (clock_getcpuclockid(pid, &clk) == 0 && clock_gettime(clk, &ts) == 0)
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;

    /* Fallback: utime + stime of /proc/<pid>/stat, in clock ticks. */
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int) pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    size_t n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = '\0';
    const char *p = strrchr(line, ')');
    unsigned long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
                     &ut, &st) != 2)
        return 0;
    return (double) (ut + st) / (double) sysconf(_SC_CLK_TCK);
}

/* Waits for the one-byte reports of `want` children, until the deadline.
   Returns 0, or -1 when a child failed, timed out or the user interrupted. */
static int s_wait_up(run_t *r, int want, char what)
{
    while (want > 0) {
        if (s_interrupted)
            return -1;
        int left = (int) ((r->deadline - s_now()) * 1000);
        if (left <= 0) {
            fprintf(stderr, "  aborted: no '%c' within the run's %d s; client A at %ld "
                    "(sent or round trips), client B at %ld (received)\n", what,
                    r->cfg->timeout, r->sh->progress_a, r->sh->progress_b);
            return -1;
        }
        struct pollfd p = { .fd = r->up[0], .events = POLLIN };
        int n = poll(&p, 1, left < 200 ? left : 200);
        if (n < 0 && errno != EINTR)
            return -1;
        if (n <= 0) {
            /* A child that died without a word (a crash, the node). */
            for (int i = 0; i < ROLE_COUNT; i++) {
                int st;
                if (r->pid[i] > 0 && waitpid(r->pid[i], &st, WNOHANG) == r->pid[i]) {
                    r->pid[i] = 0;
                    fprintf(stderr, "  aborted: %s exited (%s %d) before '%c'\n",
                            s_role_name[i], WIFSIGNALED(st) ? "signal" : "status",
                            WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st), what);
                    return -1;
                }
            }
            continue;
        }
        char c;
        if (read(r->up[0], &c, 1) != 1)
            return -1;
        if (c == 'E')
            return -1;
        if (c == what)
            want--;
    }
    return 0;
}

/* Reaps pid within STOP_GRACE_S seconds, then kills it. Returns its
   status, or -1. */
static int s_reap(pid_t pid, const char *who)
{
    double end = s_now() + STOP_GRACE_S;
    int st;
    for (;;) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid)
            return st;
        if (w < 0 && errno != EINTR)
            return -1;
        if (s_now() > end)
            break;
        usleep(2000);
    }
    fprintf(stderr, "  %s (pid %d) still running %d s later: SIGKILL\n",
            who, (int) pid, STOP_GRACE_S);
    kill(pid, SIGKILL);
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return -1;
}

static void s_print_log_tail(const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return;
    char line[512];
    char *lines[8] = { 0 };
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        free(lines[n % 8]);
        lines[n % 8] = strdup(line);
        n++;
    }
    fclose(f);
    if (n)
        fprintf(stderr, "  last lines of %s:\n", path);
    for (int i = n > 8 ? n - 8 : 0; i < n; i++) {
        fprintf(stderr, "    %s", lines[i % 8] ? lines[i % 8] : "\n");
        free(lines[i % 8]);
        lines[i % 8] = NULL;
    }
}

/* Starts ipc-node on r->sock, pinned like the clients, and waits (bounded)
   until it accepts a connection. Returns 0 or -1. */
static int s_node_start(run_t *r, const char *log)
{
    const config_t *cfg = r->cfg;
    char *argv[64];
    int argc = 0;
    argv[argc++] = (char *) cfg->node;
    argv[argc++] = (char *) "--socket";
    argv[argc++] = r->sock;
    argv[argc++] = (char *) "--name";
    argv[argc++] = (char *) "bench";
    argv[argc++] = (char *) "--port";
    argv[argc++] = (char *) "0";
    argv[argc++] = (char *) "--state-dir";
    argv[argc++] = s_tmpdir;
    argv[argc++] = (char *) "--no-mdns";
    argv[argc++] = (char *) "--cluster";
    argv[argc++] = (char *) "bench-local";
    char *extra = cfg->node_args ? strdup(cfg->node_args) : NULL;
    char *save = NULL;
    for (char *t = extra ? strtok_r(extra, " \t", &save) : NULL; t && argc < 63;
         t = strtok_r(NULL, " \t", &save))
        argv[argc++] = t;
    argv[argc] = NULL;

    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        free(extra);
        return -1;
    }
    if (pid == 0) {
        /* A node left behind by a killed benchmark would run for ever. */
        (void) prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != s_parent)
            _exit(1);
        s_pin(r->pinned);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (nul >= 0)
            dup2(nul, 0);
        execv(cfg->node, argv);
        fprintf(stderr, "exec %s: %s\n", cfg->node, strerror(errno));
        _exit(127);
    }
    free(extra);
    r->pid[ROLE_SRV] = pid;

    double end = s_now() + NODE_START_S;
    if (end > r->deadline)
        end = r->deadline;
    for (;;) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            r->pid[ROLE_SRV] = 0;
            fprintf(stderr, "  aborted: ipc-node exited (%s %d) before accepting\n",
                    WIFSIGNALED(st) ? "signal" : "status",
                    WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
            return -1;
        }
        int fd = s_unix_connect(r->sock);
        if (fd >= 0) {
            close(fd);
            return 0;
        }
        if (s_interrupted || s_now() > end) {
            fprintf(stderr, "  aborted: ipc-node did not accept on %s within %d s\n",
                    r->sock, NODE_START_S);
            return -1;
        }
        usleep(5000);
    }
}

/* Starts the relay on r->sock. Returns 0 or -1. */
static int s_relay_start(run_t *r)
{
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0)
        return -1;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", r->sock);
    if (bind(lfd, (struct sockaddr *) &sa, sizeof sa) < 0 || listen(lfd, 8) < 0) {
        fprintf(stderr, "  relay: bind %s: %s\n", r->sock, strerror(errno));
        close(lfd);
        return -1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(lfd);
        return -1;
    }
    if (pid == 0) {
        s_child_setup(r, ROLE_SRV);
        s_relay(r, lfd);
        _exit(0);
    }
    close(lfd);
    r->pid[ROLE_SRV] = pid;
    return 0;
}

static int s_cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
    return x < y ? -1 : x > y;
}

/* Ends every process of the run that is still there: the clients by their
   quit byte or SIGKILL, the relay by its EOF, the node by SIGTERM. */
static void s_run_stop(run_t *r, bool ok)
{
    r->sh->stop = 1;
    for (int i = ROLE_A; i < ROLE_COUNT; i++) {
        if (r->pid[i] <= 0)
            continue;
        if (ok) {
            char q = 'q';
            if (write(r->ctl[i][1], &q, 1) < 0) {
                /* it is gone already; reaped below */
            }
        } else
            kill(r->pid[i], SIGKILL);
    }
    for (int i = ROLE_A; i < ROLE_COUNT; i++)
        if (r->pid[i] > 0) {
            int st = s_reap(r->pid[i], s_role_name[i]);
            if (ok && st != -1 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
                fprintf(stderr, "  %s ended with %s %d\n", s_role_name[i],
                        WIFSIGNALED(st) ? "signal" : "status",
                        WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
            r->pid[i] = 0;
        }
    pid_t srv = r->pid[ROLE_SRV];
    if (srv > 0) {
        if (r->node || !ok)
            kill(srv, r->node ? SIGTERM : SIGKILL);
        int st = s_reap(srv, r->node ? "ipc-node" : "relay");
        if (r->node && st != -1 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
            fprintf(stderr, "  ipc-node ended with %s %d after SIGTERM\n",
                    WIFSIGNALED(st) ? "signal" : "status",
                    WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
        r->pid[ROLE_SRV] = 0;
    }
}

/* One run: one scenario, one mode, relay or node. Fills *ret. Returns 0,
   or -1 when the run was aborted (said on stderr). */
static int s_run(const config_t *cfg, int sc, bool pinned, bool node, result_t *ret)
{
    memset(ret, 0, sizeof *ret);
    run_t r = {
        .cfg = cfg, .sc = sc, .pinned = pinned, .node = node, .seq = ++s_seq,
        .up = { -1, -1 }, .ctl = { { -1, -1 }, { -1, -1 }, { -1, -1 } },
    };
    r.warm = cfg->rt / 10 < 10 ? 10 : cfg->rt / 10 > 1000 ? 1000 : cfg->rt / 10;
    r.deadline = s_now() + cfg->timeout;
    snprintf(r.sock, sizeof r.sock, "%s/%s-%d.sock", s_tmpdir, node ? "node" : "relay", r.seq);
    char log[PATH_MAX];
    snprintf(log, sizeof log, "%s/node-%d.log", s_tmpdir, r.seq);

    r.sh_size = sizeof(shared_t) + (size_t) cfg->rt * sizeof(uint32_t);
    r.sh = mmap(NULL, r.sh_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (r.sh == MAP_FAILED) {
        fprintf(stderr, "  mmap: %s\n", strerror(errno));
        return -1;
    }
    int rc = -1;
    bool ok = false;
    if (pipe2(r.up, O_CLOEXEC) < 0)
        goto out;
    for (int i = 0; i < ROLE_COUNT; i++)
        if (pipe2(r.ctl[i], O_CLOEXEC) < 0)
            goto out;

    if (node ? s_node_start(&r, log) : s_relay_start(&r))
        goto out;
    for (int role = ROLE_B; role >= ROLE_A; role--) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0)
            goto out;
        if (pid == 0) {
            s_child_setup(&r, role);
            s_client(&r, role);
        }
        r.pid[role] = pid;
    }
    if (s_wait_up(&r, 2, 'r') < 0)
        goto out;

    double cpu0[ROLE_COUNT], cpu1[ROLE_COUNT];
    for (int i = 0; i < ROLE_COUNT; i++)
        cpu0[i] = s_cpu_of(r.pid[i]);
    char g = 'g';
    if (write(r.ctl[ROLE_A][1], &g, 1) != 1)
        goto out;
    if (s_wait_up(&r, 1, 'd') < 0)
        goto out;
    for (int i = 0; i < ROLE_COUNT; i++)
        cpu1[i] = s_cpu_of(r.pid[i]);
    ok = true;

    double ops;
    if (sc == SC_RT) {
        ops = (double) (r.warm + cfg->rt);
        qsort(r.sh->lat, (size_t) cfg->rt, sizeof r.sh->lat[0], s_cmp_u32);
        ret->value = r.sh->lat[cfg->rt / 2] / 1e3;
        size_t i99 = ((size_t) cfg->rt * 99 + 99) / 100 - 1;     /* ceil(0.99 n) - 1 */
        ret->p99 = r.sh->lat[i99 < (size_t) cfg->rt ? i99 : (size_t) cfg->rt - 1] / 1e3;
    } else {
        long count = sc == SC_BIG ? cfg->big : cfg->msgs;
        double secs = r.sh->t_end - r.sh->t_start;
        ops = (double) count;
        if (secs <= 0)
            secs = 1e-9;
        ret->value = sc == SC_BIG ? (double) count * (double) cfg->big_size / secs / 1048576.0
                                  : (double) count / secs;
    }
    ret->cpu_srv = (cpu1[ROLE_SRV] - cpu0[ROLE_SRV]) * 1e6 / ops;
    ret->cpu_cli = (cpu1[ROLE_A] - cpu0[ROLE_A] + cpu1[ROLE_B] - cpu0[ROLE_B]) * 1e6 / ops;
    ret->ok = true;
    if (r.sh->errors)
        fprintf(stderr, "  note: %ld IPCNET_MSG_ERROR, the first: %s\n", r.sh->errors,
                ipcnet_strerror(r.sh->first_error));
    rc = 0;

out:
    if (!ok && s_interrupted)
        fprintf(stderr, "  interrupted\n");
    s_run_stop(&r, ok);
    if (!ok) {
        for (int i = 0; i < ROLE_COUNT; i++)
            if (r.sh->err[i][0])
                fprintf(stderr, "  %s: %s\n", s_role_name[i], r.sh->err[i]);
        if (node)
            s_print_log_tail(log);
    }
    if (r.up[0] >= 0) {
        close(r.up[0]);
        close(r.up[1]);
    }
    for (int i = 0; i < ROLE_COUNT; i++)
        if (r.ctl[i][0] >= 0) {
            close(r.ctl[i][0]);
            close(r.ctl[i][1]);
        }
    munmap(r.sh, r.sh_size);
    unlink(r.sock);
    return rc;
}

/* --- report --------------------------------------------------------------- */

static int s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

/* Median of the field at `off` over the successful runs; NAN if none. */
static double s_median(const result_t *res, int n, size_t off)
{
    double v[n > 0 ? n : 1];
    int k = 0;
    for (int i = 0; i < n; i++)
        if (res[i].ok)
            v[k++] = *(const double *) ((const char *) &res[i] + off);
    if (k == 0)
        return NAN;
    qsort(v, (size_t) k, sizeof v[0], s_cmp_double);
    return k % 2 ? v[k / 2] : (v[k / 2 - 1] + v[k / 2]) / 2;
}

static void s_fmt(char *out, size_t len, double v, int sc)
{
    if (isnan(v))
        snprintf(out, len, "-");
    else if (sc == SC_RT || sc == SC_BIG)
        snprintf(out, len, "%.1f", v);
    else
        snprintf(out, len, "%.0f", v);
}

static void s_fmt_cpu(char *out, size_t len, double srv, double cli)
{
    if (isnan(srv) || isnan(cli))
        snprintf(out, len, "-");
    else
        snprintf(out, len, "%.2f (%.2f+%.2f)", srv + cli, srv, cli);
}

static void s_row(const char *label, const char *unit, double base, double cand, int sc,
                  const char *cpu_base, const char *cpu_node)
{
    char b[32], c[32], ratio[32];
    s_fmt(b, sizeof b, base, sc);
    s_fmt(c, sizeof c, cand, sc);
    if (isnan(base) || isnan(cand) || base == 0)
        snprintf(ratio, sizeof ratio, "-");
    else
        snprintf(ratio, sizeof ratio, "%.2f", cand / base);
    printf("%-26s %-7s %12s %12s %10s  %-22s %-22s\n", label, unit, b, c, ratio,
           cpu_base, cpu_node);
}

static void s_usage(FILE *f)
{
    fprintf(f,
        "usage: IPC_NODE=path/to/ipc-node bench_local [options]\n"
        "  --quick            small counts, one round: a smoke run\n"
        "  --rounds N         relay/node pairs per scenario and mode (5)\n"
        "  --rt N             measured round trips per run (20000)\n"
        "  --msgs N           64-byte messages per throughput run (200000)\n"
        "  --big N            1 MiB messages per run (2000)\n"
        "  --big-size BYTES   payload of the big scenario (1048576)\n"
        "  --only LIST        scenarios, comma-separated: rt,send,batch,big\n"
        "  --mode LIST        pinned,unpinned (both)\n"
        "  --timeout S        seconds before a run is aborted (60)\n"
        "environment: IPC_NODE (without it only the relay runs), IPC_NODE_ARGS\n"
        "(more arguments for ipc-node), BENCH_ROUNDS, BENCH_RT, BENCH_MSGS, BENCH_BIG\n");
}

static long s_num(const char *s, const char *what, long min)
{
    char *end;
    errno = 0;
    long v = strtol(s ? s : "", &end, 10);
    if (!s || errno || *end || v < min) {
        fprintf(stderr, "bench_local: bad %s '%s'\n", what, s ? s : "");
        exit(2);
    }
    return v;
}

static unsigned s_list(const char *s, const char *const *names, int count, const char *what)
{
    unsigned bits = 0;
    char *copy = strdup(s ? s : ""), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int i;
        for (i = 0; i < count && strcmp(t, names[i]); i++) {
        }
        if (i == count) {
            fprintf(stderr, "bench_local: unknown %s '%s'\n", what, t);
            exit(2);
        }
        bits |= 1u << i;
    }
    free(copy);
    if (!bits) {
        fprintf(stderr, "bench_local: empty %s list\n", what);
        exit(2);
    }
    return bits;
}

static void s_env_num(const char *name, long *v, long min)
{
    const char *s = getenv(name);
    if (s && *s)
        *v = s_num(s, name, min);
}

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st;
    (void) flag;
    (void) ftw;
    (void) remove(path);
    return 0;
}

int main(int argc, char **argv)
{
    config_t cfg = {
        .rt = 20000, .msgs = 200000, .big = 2000, .big_size = 1024 * 1024,
        .rounds = 5, .timeout = 60,
        .modes = (1u << MODE_COUNT) - 1, .scenarios = (1u << SC_COUNT) - 1,
    };
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--quick")) {
            cfg.quick = true;
            cfg.rt = 500;
            cfg.msgs = 5000;
            cfg.big = 20;
            cfg.rounds = 1;
        }
    long rounds = cfg.rounds, timeout = cfg.timeout;
    s_env_num("BENCH_ROUNDS", &rounds, 1);
    s_env_num("BENCH_RT", &cfg.rt, 1);
    s_env_num("BENCH_MSGS", &cfg.msgs, 1);
    s_env_num("BENCH_BIG", &cfg.big, 1);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--quick"))
            continue;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            s_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--rounds"))
            rounds = s_num(v, a, 1), i++;
        else if (!strcmp(a, "--rt"))
            cfg.rt = s_num(v, a, 1), i++;
        else if (!strcmp(a, "--msgs"))
            cfg.msgs = s_num(v, a, 1), i++;
        else if (!strcmp(a, "--big"))
            cfg.big = s_num(v, a, 1), i++;
        else if (!strcmp(a, "--big-size"))
            cfg.big_size = (size_t) s_num(v, a, MARKER + 1), i++;
        else if (!strcmp(a, "--timeout"))
            timeout = s_num(v, a, 1), i++;
        else if (!strcmp(a, "--only"))
            cfg.scenarios = s_list(v, s_sc_arg, SC_COUNT, "scenario"), i++;
        else if (!strcmp(a, "--mode"))
            cfg.modes = s_list(v, s_mode_name, MODE_COUNT, "mode"), i++;
        else {
            s_usage(stderr);
            return 2;
        }
    }
    if (rounds > 1000 || timeout > 86400 || cfg.rt > 100000000) {
        fprintf(stderr, "bench_local: counts out of range\n");
        return 2;
    }
    cfg.rounds = (int) rounds;
    cfg.timeout = (int) timeout;
    const char *node = getenv("IPC_NODE");
    if (node && *node) {
        if (access(node, X_OK) < 0) {
            fprintf(stderr, "bench_local: IPC_NODE=%s: %s\n", node, strerror(errno));
            return 2;
        }
        cfg.node = node;
    }
    const char *nargs = getenv("IPC_NODE_ARGS");
    cfg.node_args = nargs && *nargs ? strdup(nargs) : NULL;

    if (sched_getaffinity(0, sizeof s_cpus_all, &s_cpus_all) == 0) {
        for (int c = 0; c < CPU_SETSIZE; c++)
            if (CPU_ISSET(c, &s_cpus_all)) {
                s_cpu_pin = c;
                break;
            }
    } else {
        CPU_ZERO(&s_cpus_all);
        CPU_SET(0, &s_cpus_all);
    }

    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp || strlen(tmp) + sizeof "/ipcnet-bench.XXXXXX" > sizeof s_tmpdir)
        tmp = "/tmp";
    snprintf(s_tmpdir, sizeof s_tmpdir, "%s/ipcnet-bench.XXXXXX", tmp);
    if (!mkdtemp(s_tmpdir)) {
        fprintf(stderr, "bench_local: mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    s_parent = getpid();
    struct sigaction sa = { .sa_handler = s_on_signal };
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);

    /* The header: how to get these figures again, and on what. */
    char self[PATH_MAX];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    self[sl > 0 ? sl : 0] = '\0';
    struct utsname u;
    uname(&u);
    char only[64] = "", modes[32] = "";
    for (int s = 0; s < SC_COUNT; s++)
        if (cfg.scenarios & 1u << s)
            snprintf(only + strlen(only), sizeof only - strlen(only), "%s%s",
                     only[0] ? "," : "", s_sc_arg[s]);
    for (int m = 0; m < MODE_COUNT; m++)
        if (cfg.modes & 1u << m)
            snprintf(modes + strlen(modes), sizeof modes - strlen(modes), "%s%s",
                     modes[0] ? "," : "", s_mode_name[m]);
    printf("# bench_local: ipc-node against a plain Unix-socket relay, same traffic, one run\n");
    printf("# reproduce: %s%s%s%s%s%s%s --rounds %d --rt %ld --msgs %ld --big %ld "
           "--big-size %zu --only %s --mode %s --timeout %d\n",
           cfg.node ? "IPC_NODE=" : "", cfg.node ? cfg.node : "",
           cfg.node_args ? " IPC_NODE_ARGS='" : "", cfg.node_args ? cfg.node_args : "",
           cfg.node_args ? "'" : "", cfg.node ? " " : "", sl > 0 ? self : argv[0], cfg.rounds, cfg.rt, cfg.msgs,
           cfg.big, cfg.big_size, only, modes, cfg.timeout);
    printf("# host: %s %s %s, %d CPUs allowed; pinned = every process on CPU %d\n",
           u.sysname, u.release, u.machine, CPU_COUNT(&s_cpus_all), s_cpu_pin);
    printf("# relay: poll + read(64 KiB) + one write per read; its clients encode and "
           "decode wire.h frames as libipcnet does\n");
    printf("# node: %s --socket DIR/node-K.sock --name bench (fresh per run); "
           "clients use libipcnet\n", cfg.node ? cfg.node : "(IPC_NODE unset: skipped)");
    fflush(stdout);

    result_t *res = calloc((size_t) SC_COUNT * MODE_COUNT * 2 * (size_t) cfg.rounds,
                           sizeof *res);
    if (!res)
        return 1;
#define RES(sc, m, nd, k) res[(((size_t) (sc) * MODE_COUNT + (m)) * 2 + (nd)) * \
                              (size_t) cfg.rounds + (k)]
    int failures = 0;
    for (int sc = 0; sc < SC_COUNT && !s_interrupted; sc++) {
        if (!(cfg.scenarios & 1u << sc))
            continue;
        for (int m = 0; m < MODE_COUNT && !s_interrupted; m++) {
            if (!(cfg.modes & 1u << m))
                continue;
            for (int k = 0; k < cfg.rounds && !s_interrupted; k++)
                for (int nd = 0; nd < (cfg.node ? 2 : 1) && !s_interrupted; nd++) {
                    result_t *x = &RES(sc, m, nd, k);
                    fprintf(stderr, "%s %s round %d/%d %s ...\n", s_sc_name[sc],
                            s_mode_name[m], k + 1, cfg.rounds, nd ? "node" : "relay");
                    if (s_run(&cfg, sc, m == MODE_PINNED, nd, x) < 0)
                        failures++;
                }
        }
    }

    printf("\n%-26s %-7s %12s %12s %10s  %-22s %-22s\n", "scenario", "unit", "relay",
           "node", "node/relay", "CPU us/op relay", "CPU us/op node");
    for (int sc = 0; sc < SC_COUNT; sc++) {
        if (!(cfg.scenarios & 1u << sc))
            continue;
        for (int m = 0; m < MODE_COUNT; m++) {
            if (!(cfg.modes & 1u << m))
                continue;
            const result_t *rb = &RES(sc, m, 0, 0), *rn = &RES(sc, m, 1, 0);
            int n = cfg.rounds;
            char label[64], cb[48], cn[48];
            snprintf(label, sizeof label, "%s %s", s_sc_name[sc], s_mode_name[m]);
            s_fmt_cpu(cb, sizeof cb, s_median(rb, n, offsetof(result_t, cpu_srv)),
                      s_median(rb, n, offsetof(result_t, cpu_cli)));
            s_fmt_cpu(cn, sizeof cn, s_median(rn, n, offsetof(result_t, cpu_srv)),
                      s_median(rn, n, offsetof(result_t, cpu_cli)));
            const char *unit = sc == SC_RT ? "med us" : sc == SC_BIG ? "MiB/s" : "msg/s";
            s_row(label, unit, s_median(rb, n, offsetof(result_t, value)),
                  s_median(rn, n, offsetof(result_t, value)), sc, cb, cn);
            if (sc == SC_RT)
                s_row(label, "p99 us", s_median(rb, n, offsetof(result_t, p99)),
                      s_median(rn, n, offsetof(result_t, p99)), sc, "", "");
        }
    }
    printf("\n# figures: medians over %d round(s); relay and node alternate within each "
           "scenario and mode\n", cfg.rounds);
    printf("# node/relay: above 1 is slower for us, below 1 is slower for msg/s and MiB/s\n");
    printf("# CPU us/op: total (relay or node + both clients), per round trip for rt "
           "(warm-up included), per message otherwise;\n");
    printf("#   process CPU clocks of every process, all threads, from go to done\n");

    printf("\n# every round (value [p99] cpu-server+cpu-clients us/op):\n");
    for (int sc = 0; sc < SC_COUNT; sc++)
        for (int m = 0; m < MODE_COUNT; m++) {
            if (!(cfg.scenarios & 1u << sc) || !(cfg.modes & 1u << m))
                continue;
            for (int nd = 0; nd < (cfg.node ? 2 : 1); nd++) {
                printf("#   %-14s %-8s %-5s", s_sc_name[sc], s_mode_name[m],
                       nd ? "node" : "relay");
                for (int k = 0; k < cfg.rounds; k++) {
                    const result_t *x = &RES(sc, m, nd, k);
                    if (!x->ok)
                        printf("  (failed)");
                    else if (sc == SC_RT)
                        printf("  %.1f [%.1f] %.2f+%.2f", x->value, x->p99, x->cpu_srv,
                               x->cpu_cli);
                    else
                        printf("  %.0f %.2f+%.2f", x->value, x->cpu_srv, x->cpu_cli);
                }
                printf("\n");
            }
        }
    struct rusage ru;
    if (getrusage(RUSAGE_CHILDREN, &ru) == 0)
        printf("# all children, whole run incl. start and stop (getrusage RUSAGE_CHILDREN): "
               "%.2f s user, %.2f s system\n",
               (double) ru.ru_utime.tv_sec + (double) ru.ru_utime.tv_usec / 1e6,
               (double) ru.ru_stime.tv_sec + (double) ru.ru_stime.tv_usec / 1e6);
    if (failures)
        printf("# %d run(s) aborted: see the messages on stderr\n", failures);
    if (s_interrupted)
        printf("# interrupted\n");
#undef RES

    free(res);
    free(cfg.node_args);
    nftw(s_tmpdir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    return s_interrupted ? 130 : 0;
}
