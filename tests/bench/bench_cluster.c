/*  bench_cluster.c: what two ipc-nodes cost against ZeroMQ alone, on one host.

    A benchmark, not a test: it prints figures and fails only when it cannot
    run at all. In one run it alternates two baselines and the candidate over
    the same traffic and prints medians over the rounds, their ratios and
    the CPU time per operation of every process involved.

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
      zmq    "plain ZeroMQ": a DEALER in process A, a ROUTER in process B,
             tcp 127.0.0.1, one ZeroMQ message per message of the same
             payload (zmq_send, zmq_msg_recv).
      node   two `$IPC_NODE --socket DIR/K.sock --name nodeA|nodeB --port P
             --bind 127.0.0.1 --state-dir DIR --no-mdns` (B with --peer
             tcp://127.0.0.1:PA; plus $IPC_NODE_ARGS), fresh per run; the
             run starts once each lists the other "up" (IPCNET_Q_PEERS) and
             A lists "bench.echo" held on nodeB (IPCNET_Q_SERVICES). Client B
             on node B binds "bench.echo", client A on node A sends to it.

    Both baselines give their ZeroMQ sockets a high-water mark of
    min(1000, 64 MiB / message) messages each way, and none of the three
    encrypts (the node has no CURVE yet).

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

#include "ipcnet.h"
#include "wire.h"

#include <zmq.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
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
#define NODE_A          "nodeA"
#define NODE_B          "nodeB"
#define SMALL           64              /* payload of the small scenarios */
#define MARKER          1               /* payload of the end marker */
#define RELAY_READ      (256 * 1024)    /* a relay's least read buffer */
#define RELAY_IOV       64              /* ZeroMQ messages per writev() */
#define RELAY_WBYTES    (256 * 1024)    /* bytes per writev(), about */
#define BATCH_CHUNK     (64 * 1024)     /* batched writes, as libipcnet's TX_BATCH */
#define HWM_BYTES       (64L * 1024 * 1024)
#define REQ_TIMEOUT_MS  10000           /* ipcnet_request() */
#define STOP_GRACE_S    5               /* SIGTERM to SIGKILL, reaping */
#define NODE_START_S    10              /* until a node accepts */
#define CLUSTER_UP_S    20              /* until peers are up and the name seen */

/* The senders as the node would name them in what it delivers. */
#define SRC_A           ":1@" NODE_A
#define SRC_B           ":1@" NODE_B

enum { SC_RT, SC_BATCH, SC_MID, SC_BIG, SC_COUNT };
enum { MODE_PINNED, MODE_UNPINNED, MODE_COUNT };
enum { V_RAW, V_ZMQ, V_NODE, V_COUNT };
/* Server A and B: relays or nodes (none for plain ZeroMQ); then clients. */
enum { ROLE_SA, ROLE_SB, ROLE_A, ROLE_B, ROLE_COUNT };

static const char *const s_sc_name[SC_COUNT] = {
    "rt 64B", "send 64B batch", "send 64KiB", "send 1MiB",
};
static const char *const s_sc_arg[SC_COUNT] = { "rt", "batch", "64k", "1m" };
static const char *const s_mode_name[MODE_COUNT] = { "pinned", "unpinned" };
static const char *const s_v_name[V_COUNT] = { "raw-2hop", "plain-zmq", "nodes" };
static const char *const s_v_arg[V_COUNT] = { "raw", "zmq", "node" };

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
    const char *node;       /* $IPC_NODE, NULL: baselines only */
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
    int v;                      /* V_* */
    bool pinned;
    int seq;                    /* run number, for unique file names */
    long count;                 /* one-way: messages */
    size_t size;                /* payload */
    char sock[2][108];          /* Unix sockets of A and B (raw, node) */
    char state[2][PATH_MAX];    /* state dirs of the nodes */
    char log[2][PATH_MAX];      /* logs of the nodes */
    int port[2];                /* TCP: nodes A and B; [1] is B's ROUTER */
    char endpoint[64];          /* tcp://127.0.0.1:port[1] */
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
    double value;               /* median us, msg/s or MB/s */
    double p99;                 /* round trips */
    double cpu_srv;             /* us per operation: relays or nodes */
    double cpu_cli;             /* us per operation: both clients */
} result_t;

static char s_tmpdir[64];       /* short: socket paths live in it */
static cpu_set_t s_cpus_all;    /* the mask we were started with */
static int s_cpu_pin = 0;       /* the CPU of pinned runs */
static volatile sig_atomic_t s_interrupted;
static int s_seq;
static pid_t s_parent;          /* children die with it */

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

static const char *s_role_name(int v, int role)
{
    static const char *const names[V_COUNT][ROLE_COUNT] = {
        { "relay A", "relay B", "client A", "client B" },
        { "-", "-", "DEALER A", "ROUTER B" },
        { "node A", "node B", "client A", "client B" },
    };
    return names[v][role];
}

/* --- children: common ------------------------------------------------------- */

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

/* Milliseconds left until the run's deadline, at most cap, at least 0. */
static int s_left_ms(const run_t *r, int cap)
{
    double left = (r->deadline - s_now()) * 1000;
    return left <= 0 ? 0 : left > cap ? cap : (int) left;
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

/* Writes cnt buffers, in one writev() unless the socket takes less; iov is
   used up. */
static int s_writev_all(int fd, struct iovec *v, int cnt)
{
    while (cnt > 0 && v->iov_len == 0)
        v++, cnt--;
    while (cnt > 0) {
        ssize_t n = writev(fd, v, cnt > IOV_MAX ? IOV_MAX : cnt);
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

/* A receive buffer that hands out whole frames, as the library must. Its
   capacity is at least twice the largest frame plus 64 KiB, so a frame
   always fits once the buffer is compacted. */
typedef struct {
    uint8_t *buf;
    size_t cap, start, end;
} reader_t;

static int s_reader_init(reader_t *rd, size_t payload)
{
    size_t cap = 2 * (payload + WIRE_HEAD_MAX) + 64 * 1024;
    rd->cap = cap < RELAY_READ ? RELAY_READ : cap;
    rd->buf = malloc(rd->cap);
    rd->start = rd->end = 0;
    return rd->buf ? 0 : -ENOMEM;
}

/* The next complete frame, undecoded: 1, 0 when more bytes are needed, or
   a negative errno for a bad frame. */
static int s_reader_frame(reader_t *rd, const uint8_t **p, size_t *len)
{
    ssize_t n = wire_peek(rd->buf + rd->start, rd->end - rd->start, rd->cap / 2);
    if (n < 0)
        return (int) n;
    if (n == 0 || (size_t) n > rd->end - rd->start)
        return 0;
    *p = rd->buf + rd->start;
    *len = (size_t) n;
    rd->start += (size_t) n;
    return 1;
}

/* The next complete frame, decoded: 1, 0 or a negative errno. */
static int s_reader_next(reader_t *rd, wire_frame_t *f)
{
    const uint8_t *p = NULL;
    size_t len = 0;
    int rc = s_reader_frame(rd, &p, &len);
    if (rc <= 0)
        return rc;
    rc = wire_decode(p, len, f);
    return rc < 0 ? rc : 1;
}

/* Reads what the socket has (blocking). Returns bytes, 0 at EOF, -errno. */
static ssize_t s_reader_fill(reader_t *rd, int fd)
{
    if (rd->start == rd->end)
        rd->start = rd->end = 0;
    else if (rd->start > 0 && rd->cap - rd->end < 64 * 1024) {
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

/* --- children: ZeroMQ ---------------------------------------------------------- */

/* A ZeroMQ socket with what both baselines set. The context is made in the
   child, after fork(). */
static void *s_zsock(run_t *r, int role, int type)
{
    void *ctx = zmq_ctx_new();
    void *s = ctx ? zmq_socket(ctx, type) : NULL;
    if (!s)
        s_child_fail(r, role, "zmq_socket: %s", zmq_strerror(zmq_errno()));
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
    int rc = type == ZMQ_ROUTER ? zmq_bind(s, r->endpoint) : zmq_connect(s, r->endpoint);
    if (rc < 0)
        s_child_fail(r, role, "zmq_%s(%s): %s", type == ZMQ_ROUTER ? "bind" : "connect",
                     r->endpoint, zmq_strerror(zmq_errno()));
    return s;
}

/* zmq_send() that waits for room until the run's deadline. */
static void s_zsend(run_t *r, int role, void *s, const void *buf, size_t len, int flags)
{
    while (zmq_send(s, buf, len, flags) < 0) {
        int e = zmq_errno();
        if ((e != EAGAIN && e != EINTR) || s_now() > r->deadline || r->sh->stop)
            s_child_fail(r, role, "zmq_send: %s", e == EAGAIN ? "timed out" : zmq_strerror(e));
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
        if (r->sh->stop)
            return -1;
        if ((e != EAGAIN && e != EINTR) || s_now() > r->deadline)
            s_child_fail(r, role, "zmq_msg_recv: %s",
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
            s_child_fail(r, role, "bad handshake");
        zmq_msg_t copy;
        zmq_msg_init(&copy);
        zmq_msg_copy(&copy, id);
        if (zmq_msg_send(&copy, s, ZMQ_SNDMORE) < 0)
            s_child_fail(r, role, "zmq_msg_send: %s", zmq_strerror(zmq_errno()));
        s_zsend(r, role, s, "", 0, 0);
    } else {
        s_zsend(r, role, s, "", 0, 0);
        if (s_zrecv(r, role, s, &m) != 0)
            s_child_fail(r, role, "bad handshake");
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
    while (poll(&lp, 1, s_left_ms(r, 1000)) <= 0)
        if (s_now() > r->deadline || r->sh->stop)
            s_child_fail(r, role, "no client came");
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        s_child_fail(r, role, "accept: %s", strerror(errno));
    close(lfd);
    reader_t rd;
    if (s_reader_init(&rd, r->size) < 0)
        s_child_fail(r, role, "out of memory");
    zmq_msg_t msgs[RELAY_IOV];
    struct iovec iov[RELAY_IOV];
    s_child_say(r, role, 'r');

    for (;;) {
        zmq_pollitem_t it[2] = {
            { .socket = zs, .events = ZMQ_POLLIN },
            { .fd = fd, .events = ZMQ_POLLIN },
        };
        int n = zmq_poll(it, 2, 100);
        if (r->sh->stop)
            _exit(0);
        if (n < 0 && zmq_errno() != EINTR)
            s_child_fail(r, role, "zmq_poll: %s", zmq_strerror(zmq_errno()));
        if (n <= 0) {
            if (s_now() > r->deadline)
                s_child_fail(r, role, "timed out");
            continue;
        }
        if (it[1].revents & (ZMQ_POLLIN | ZMQ_POLLERR)) {
            ssize_t got = s_reader_fill(&rd, fd);
            if (got <= 0)
                _exit(0);       /* the client closed: the run is over */
            const uint8_t *p = NULL;
            size_t len = 0;
            int rc;
            while ((rc = s_reader_frame(&rd, &p, &len)) == 1) {
                if (router) {
                    zmq_msg_t copy;
                    zmq_msg_init(&copy);
                    zmq_msg_copy(&copy, &id);
                    if (zmq_msg_send(&copy, zs, ZMQ_SNDMORE) < 0)
                        s_child_fail(r, role, "zmq_msg_send: %s", zmq_strerror(zmq_errno()));
                }
                s_zsend(r, role, zs, p, len, 0);
            }
            if (rc < 0)
                s_child_fail(r, role, "bad frame from the client: %s", strerror(-rc));
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
                        s_child_fail(r, role, "zmq_msg_recv: %s", zmq_strerror(zmq_errno()));
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
            int rc = s_writev_all(fd, iov, k);
            for (int i = 0; i < k; i++)
                zmq_msg_close(&msgs[i]);
            if (rc < 0)
                _exit(0);
        }
    }
}

/* Relay client A of the round trips: sends a request frame, waits for the
   whole reply, r->warm times unmeasured, then cfg.rt times measured. */
static void s_relay_rt_a(run_t *r, int fd)
{
    uint8_t frame[WIRE_HEAD_MAX + SMALL];
    size_t head = wire_encode(frame, WIRE_DELIVER_REQ, 0, 0, REQ_TIMEOUT_MS, SRC_A,
                              strlen(SRC_A), ECHO_NAME, strlen(ECHO_NAME), SMALL);
    memset(frame + head, 'a', SMALL);
    reader_t rd;
    if (s_reader_init(&rd, SMALL) < 0)
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
    if (s_reader_init(&rd, SMALL) < 0)
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
            struct iovec iov[2] = { { head, hlen }, { payload, n } };
            rc = s_writev_all(fd, iov, 2);
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
    if (s_reader_init(&rd, size) < 0)
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

/* --- children: plain ZeroMQ ------------------------------------------------------ */

/* DEALER A: round trips, or `count` one-way messages and the marker. */
static void s_zmq_a(run_t *r)
{
    void *s = s_zsock(r, ROLE_A, ZMQ_DEALER);
    s_zhello(r, ROLE_A, s, false, NULL);
    uint8_t *buf = malloc(r->size);
    if (!buf)
        s_child_fail(r, ROLE_A, "out of memory");
    memset(buf, r->sc == SC_RT ? 'a' : 'm', r->size);
    zmq_msg_t m;
    zmq_msg_init(&m);
    s_child_say(r, ROLE_A, 'r');
    s_child_wait(r, ROLE_A, 'g');

    r->sh->t_start = s_now();
    if (r->sc == SC_RT) {
        long total = r->warm + r->cfg->rt;
        for (long i = 0; i < total; i++) {
            double t0 = s_now();
            if (t0 > r->deadline)
                s_child_fail(r, ROLE_A, "timed out after %ld round trips", i);
            memcpy(buf, &i, sizeof i);
            s_zsend(r, ROLE_A, s, buf, SMALL, 0);
            if (s_zrecv(r, ROLE_A, s, &m) != SMALL || memcmp(zmq_msg_data(&m), &i, sizeof i))
                s_child_fail(r, ROLE_A, "bad reply %ld", i);
            if (i >= r->warm) {
                double ns = (s_now() - t0) * 1e9;
                r->sh->lat[i - r->warm] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t) ns;
            }
            r->sh->progress_a = i + 1;
        }
        r->sh->t_end = s_now();
        s_child_say(r, ROLE_A, 'd');
    } else {
        for (long i = 0; i <= r->count; i++) {
            if ((i & 255) == 0 && s_now() > r->deadline)
                s_child_fail(r, ROLE_A, "timed out after %ld messages", i);
            s_zsend(r, ROLE_A, s, buf, i < r->count ? r->size : MARKER, 0);
            r->sh->progress_a = i;
        }
    }
    s_child_wait(r, ROLE_A, 'q');
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
    s_child_say(r, ROLE_B, 'r');
    if (r->sc == SC_RT) {
        for (;;) {
            if (s_zrecv(r, ROLE_B, s, &id) < 0)
                break;
            if (s_zrecv(r, ROLE_B, s, &m) < 0)
                break;
            if (zmq_msg_send(&id, s, ZMQ_SNDMORE) < 0 || zmq_msg_send(&m, s, 0) < 0)
                s_child_fail(r, ROLE_B, "zmq_msg_send: %s", zmq_strerror(zmq_errno()));
        }
        _exit(0);
    }
    long got = 0;
    bool marker = false;
    while (!marker || got < r->count) {
        if (s_zrecv(r, ROLE_B, s, &id) < 0 || s_zrecv(r, ROLE_B, s, &m) < 0)
            s_child_fail(r, ROLE_B, "stopped with %ld messages", got);
        size_t n = zmq_msg_size(&m);
        if (n == r->size)
            got++;
        else if (n == MARKER)
            marker = true;
        if ((got & 255) == 0)
            r->sh->progress_b = got;
    }
    r->sh->t_end = s_now();
    r->sh->received = got;
    r->sh->progress_b = got;
    s_child_say(r, ROLE_B, 'd');
    s_child_wait(r, ROLE_B, 'q');
    _exit(0);
}

/* --- children: clients of the nodes ---------------------------------------------- */

static void s_note_error(run_t *r, const ipcnet_msg_t *m)
{
    if (r->sh->errors++ == 0)
        r->sh->first_error = m->error;
}

static ipcnet_t *s_client_connect(run_t *r, int role, const char *label)
{
    ipcnet_t *c = NULL;
    const char *sock = r->sock[role == ROLE_A ? 0 : 1];
    int rc = ipcnet_connect(&c, sock, label, 0);
    if (rc < 0)
        s_child_fail(r, role, "ipcnet_connect(%s): %s", sock, ipcnet_strerror(rc));
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

static ipcnet_t *s_client_bind(run_t *r)
{
    ipcnet_t *c = s_client_connect(r, ROLE_B, "bench-b");
    int rc = ipcnet_bind(c, ECHO_NAME);
    if (rc < 0)
        s_child_fail(r, ROLE_B, "ipcnet_bind(%s): %s", ECHO_NAME, ipcnet_strerror(rc));
    return c;
}

/* Node client B of the round trips: answers each IPCNET_MSG_REQUEST with
   its own payload, until the parent says stop. */
static void s_node_rt_b(run_t *r)
{
    ipcnet_t *c = s_client_bind(r);
    s_child_say(r, ROLE_B, 'r');
    uint8_t buf[SMALL];
    while (!r->sh->stop) {
        ipcnet_msg_t m;
        int rc = ipcnet_recv(c, &m, 50);
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
            rc = ipcnet_flush(c, s_left_ms(r, INT_MAX));
            if (rc < 0)
                s_child_fail(r, ROLE_A, "ipcnet_flush after %ld: %s", i, ipcnet_strerror(rc));
            rc = ipcnet_send(c, ECHO_NAME, buf, n, flags);
        }
        if (rc < 0)
            s_child_fail(r, ROLE_A, "ipcnet_send #%ld: %s", i, ipcnet_strerror(rc));
        r->sh->progress_a = i + 1;
    }
    if (batch) {
        int rc = ipcnet_flush(c, s_left_ms(r, INT_MAX));
        if (rc < 0)
            s_child_fail(r, ROLE_A, "ipcnet_flush: %s", ipcnet_strerror(rc));
    }
    /* Wait for the parent, collecting any error the node sends back. */
    for (;;) {
        struct pollfd p[2] = {
            { .fd = r->ctl[ROLE_A][0], .events = POLLIN },
            { .fd = ipcnet_fd(c), .events = POLLIN },
        };
        int left = s_left_ms(r, INT_MAX);
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
    ipcnet_t *c = s_client_bind(r);
    counter_t k = { .r = r, .size = size };
    s_child_say(r, ROLE_B, 'r');
    while (!k.marker || k.got < count) {
        int left = s_left_ms(r, 1000);
        if (left <= 0)
            s_child_fail(r, ROLE_B, "timed out with %ld of %ld messages%s", k.got, count,
                         k.marker ? " and the marker" : "");
        struct pollfd p = { .fd = ipcnet_fd(c), .events = POLLIN };
        if (ipcnet_want_write(c))
            p.events |= POLLOUT;
        int n = poll(&p, 1, left);
        if (n < 0 && errno != EINTR)
            s_child_fail(r, ROLE_B, "poll: %s", strerror(errno));
        if (n <= 0)
            continue;
        int rc = ipcnet_dispatch(c, s_count, &k);
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

/* What client `role` of the run does; never returns. */
static void s_client(run_t *r, int role)
{
    bool batch = r->sc == SC_BATCH;
    if (r->v == V_ZMQ) {
        role == ROLE_A ? s_zmq_a(r) : s_zmq_b(r);
    } else if (r->v == V_NODE) {
        if (r->sc == SC_RT)
            role == ROLE_A ? s_node_rt_a(r) : s_node_rt_b(r);
        else if (role == ROLE_A)
            s_node_send_a(r, r->count, r->size, batch);
        else
            s_node_send_b(r, r->count, r->size);
    } else {
        const char *sock = r->sock[role == ROLE_A ? 0 : 1];
        int fd = s_unix_connect(sock);
        if (fd < 0)
            s_child_fail(r, role, "connect(%s): %s", sock, strerror(-fd));
        if (r->sc == SC_RT)
            role == ROLE_A ? s_relay_rt_a(r, fd) : s_relay_rt_b(r, fd);
        else if (role == ROLE_A)
            s_relay_send_a(r, fd, r->count, r->size, batch);
        else
            s_relay_send_b(r, fd, r->count, r->size);
    }
    _exit(1);
}

/* --- parent --------------------------------------------------------------- */

/* CPU seconds used so far by process pid, all its threads. */
static double s_cpu_of(pid_t pid)
{
    if (pid <= 0)
        return 0;
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

/* Looks for a child that died without a word (a crash, a node). */
static int s_check_children(run_t *r, const char *before)
{
    for (int i = 0; i < ROLE_COUNT; i++) {
        int st;
        if (r->pid[i] > 0 && waitpid(r->pid[i], &st, WNOHANG) == r->pid[i]) {
            r->pid[i] = 0;
            fprintf(stderr, "  aborted: %s exited (%s %d) %s\n", s_role_name(r->v, i),
                    WIFSIGNALED(st) ? "signal" : "status",
                    WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st), before);
            return -1;
        }
    }
    return 0;
}

/* Waits for the one-byte reports of `want` children, until the deadline.
   Returns 0, or -1 when a child failed, timed out or the user interrupted. */
static int s_wait_up(run_t *r, int want, char what)
{
    char before[32];
    snprintf(before, sizeof before, "before '%c'", what);
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
            if (s_check_children(r, before) < 0)
                return -1;
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
        int fd = open(r->log[k], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
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
    int role = k ? ROLE_SB : ROLE_SA;
    r->pid[role] = pid;

    double end = s_now() + NODE_START_S;
    if (end > r->deadline)
        end = r->deadline;
    for (;;) {
        if (s_check_children(r, "before accepting") < 0)
            return -1;
        int fd = s_unix_connect(r->sock[k]);
        if (fd >= 0) {
            close(fd);
            return 0;
        }
        if (s_interrupted || s_now() > end) {
            fprintf(stderr, "  aborted: %s did not accept on %s within %d s\n",
                    s_role_name(V_NODE, role), r->sock[k], NODE_START_S);
            return -1;
        }
        usleep(5000);
    }
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
        if (s_interrupted || s_check_children(r, "while the nodes met") < 0)
            break;
        if (s_now() > end) {
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

/* A Unix listening socket for a relay. Returns the fd or -1. */
static int s_listen(const char *path)
{
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0)
        return -1;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    if (bind(lfd, (struct sockaddr *) &sa, sizeof sa) < 0 || listen(lfd, 8) < 0) {
        fprintf(stderr, "  relay: bind %s: %s\n", path, strerror(errno));
        close(lfd);
        return -1;
    }
    return lfd;
}

/* Starts relay B and relay A; both report 'r' once their ZeroMQ handshake
   is done and their client is accepted. Returns 0 or -1. */
static int s_relays_start(run_t *r)
{
    int lfd[2];
    for (int k = 0; k < 2; k++)
        if ((lfd[k] = s_listen(r->sock[k])) < 0) {
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
            s_child_setup(r, role);
            close(lfd[1 - k]);
            s_relay(r, role, lfd[k]);
            _exit(0);
        }
        r->pid[role] = pid;
    }
    close(lfd[0]);
    close(lfd[1]);
    return rc;
}

static int s_cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
    return x < y ? -1 : x > y;
}

/* Ends every process of the run that is still there: the clients by their
   quit byte (SIGKILL when the run failed), the relays by the stop flag,
   the nodes by SIGTERM; each is reaped. */
static void s_run_stop(run_t *r, bool ok)
{
    r->sh->stop = 1;
    for (int i = 0; i < ROLE_COUNT; i++) {
        if (r->pid[i] <= 0 || (r->v == V_NODE && i < ROLE_A))
            continue;
        if (!ok)
            kill(r->pid[i], SIGKILL);
        else if (i >= ROLE_A) {
            char q = 'q';
            if (write(r->ctl[i][1], &q, 1) < 0) {
                /* it is gone already; reaped below */
            }
        }
    }
    for (int i = 0; i < ROLE_COUNT; i++) {
        if (r->pid[i] <= 0 || (r->v == V_NODE && i < ROLE_A))
            continue;
        int st = s_reap(r->pid[i], s_role_name(r->v, i));
        if (ok && st != -1 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
            fprintf(stderr, "  %s ended with %s %d\n", s_role_name(r->v, i),
                    WIFSIGNALED(st) ? "signal" : "status",
                    WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
        r->pid[i] = 0;
    }
    if (r->v != V_NODE)
        return;
    for (int i = ROLE_SA; i <= ROLE_SB; i++)
        if (r->pid[i] > 0)
            kill(r->pid[i], SIGTERM);
    for (int i = ROLE_SA; i <= ROLE_SB; i++)
        if (r->pid[i] > 0) {
            int st = s_reap(r->pid[i], s_role_name(V_NODE, i));
            if (st != -1 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
                fprintf(stderr, "  %s ended with %s %d after SIGTERM\n",
                        s_role_name(V_NODE, i), WIFSIGNALED(st) ? "signal" : "status",
                        WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
            r->pid[i] = 0;
        }
}

static size_t s_sc_size(const config_t *cfg, int sc)
{
    return sc == SC_MID ? cfg->mid_size : sc == SC_BIG ? cfg->big_size : SMALL;
}

static long s_sc_count(const config_t *cfg, int sc)
{
    return sc == SC_RT ? cfg->rt : sc == SC_BATCH ? cfg->msgs : sc == SC_MID ? cfg->mid
                                                                           : cfg->big;
}

/* One run: one scenario, one mode, one variant. Fills *ret. Returns 0, or
   -1 when the run was aborted (said on stderr). */
static int s_run(const config_t *cfg, int sc, bool pinned, int v, result_t *ret)
{
    memset(ret, 0, sizeof *ret);
    run_t r = {
        .cfg = cfg, .sc = sc, .v = v, .pinned = pinned, .seq = ++s_seq,
        .count = s_sc_count(cfg, sc), .size = s_sc_size(cfg, sc),
        .up = { -1, -1 }, .ctl = { { -1, -1 }, { -1, -1 }, { -1, -1 }, { -1, -1 } },
    };
    r.warm = cfg->rt / 10 < 10 ? 10 : cfg->rt / 10 > 1000 ? 1000 : cfg->rt / 10;
    r.deadline = s_now() + cfg->timeout;
    for (int k = 0; k < 2; k++) {
        snprintf(r.sock[k], sizeof r.sock[k], "%s/%c%d.sock", s_tmpdir, 'a' + k, r.seq);
        snprintf(r.state[k], sizeof r.state[k], "%s/state-%c%d", s_tmpdir, 'a' + k, r.seq);
        snprintf(r.log[k], sizeof r.log[k], "%s/node-%c%d.log", s_tmpdir, 'a' + k, r.seq);
        r.port[k] = s_free_port();
    }
    snprintf(r.endpoint, sizeof r.endpoint, "tcp://127.0.0.1:%d", r.port[1]);

    r.sh_size = sizeof(shared_t) + (size_t) cfg->rt * sizeof(uint32_t);
    r.sh = mmap(NULL, r.sh_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (r.sh == MAP_FAILED) {
        fprintf(stderr, "  mmap: %s\n", strerror(errno));
        return -1;
    }
    int rc = -1;
    bool ok = false;
    if (r.port[0] < 0 || r.port[1] < 0) {
        fprintf(stderr, "  no free TCP port on 127.0.0.1\n");
        goto out;
    }
    if (pipe2(r.up, O_CLOEXEC) < 0)
        goto out;
    for (int i = 0; i < ROLE_COUNT; i++)
        if (pipe2(r.ctl[i], O_CLOEXEC) < 0)
            goto out;

    int servers = 0;
    if (v == V_NODE) {
        if (s_node_start(&r, 0) < 0 || s_node_start(&r, 1) < 0)
            goto out;
        double end = s_now() + CLUSTER_UP_S;
        if (end > r.deadline)
            end = r.deadline;
        if (s_wait_listing(&r, 0, IPCNET_Q_PEERS, NODE_B, 4, "up", end) < 0 ||
            s_wait_listing(&r, 1, IPCNET_Q_PEERS, NODE_A, 4, "up", end) < 0)
            goto out;
    } else if (v == V_RAW) {
        if (s_relays_start(&r) < 0)
            goto out;
        servers = 2;
    }
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
    if (s_wait_up(&r, 2 + servers, 'r') < 0)
        goto out;
    if (v == V_NODE) {
        double end = s_now() + CLUSTER_UP_S;
        if (end > r.deadline)
            end = r.deadline;
        if (s_wait_listing(&r, 0, IPCNET_Q_SERVICES, ECHO_NAME, 1, NODE_B, end) < 0)
            goto out;
    }

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
        double secs = r.sh->t_end - r.sh->t_start;
        ops = (double) r.count;
        if (secs <= 0)
            secs = 1e-9;
        ret->value = sc == SC_BATCH ? (double) r.count / secs
                                    : (double) r.count * (double) r.size / secs / 1e6;
    }
    ret->cpu_srv = (cpu1[ROLE_SA] - cpu0[ROLE_SA] + cpu1[ROLE_SB] - cpu0[ROLE_SB]) * 1e6 / ops;
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
                fprintf(stderr, "  %s: %s\n", s_role_name(v, i), r.sh->err[i]);
        if (v == V_NODE) {
            s_print_log_tail(r.log[0]);
            s_print_log_tail(r.log[1]);
        }
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
    unlink(r.sock[0]);
    unlink(r.sock[1]);
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
    else if (sc == SC_BATCH)
        snprintf(out, len, "%.0f", v);
    else
        snprintf(out, len, "%.1f", v);
}

static void s_fmt_ratio(char *out, size_t len, double base, double cand)
{
    if (isnan(base) || isnan(cand) || base == 0)
        snprintf(out, len, "-");
    else
        snprintf(out, len, "%.2f", cand / base);
}

static void s_fmt_cpu(char *out, size_t len, double srv, double cli, bool servers)
{
    if (isnan(srv) || isnan(cli))
        snprintf(out, len, "-");
    else if (servers)
        snprintf(out, len, "%.2f (%.2f+%.2f)", srv + cli, srv, cli);
    else
        snprintf(out, len, "%.2f", cli);
}

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
        "  --variants LIST    raw,zmq,node (all; node needs IPC_NODE)\n"
        "  --timeout S        seconds before a run is aborted (60)\n"
        "environment: IPC_NODE (without it only the baselines run), IPC_NODE_ARGS\n"
        "(more arguments for both nodes), BENCH_ROUNDS, BENCH_RT, BENCH_MSGS,\n"
        "BENCH_MID, BENCH_BIG\n");
}

static long s_num(const char *s, const char *what, long min)
{
    char *end;
    errno = 0;
    long v = strtol(s ? s : "", &end, 10);
    if (!s || errno || *end || v < min) {
        fprintf(stderr, "bench_cluster: bad %s '%s'\n", what, s ? s : "");
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
            fprintf(stderr, "bench_cluster: unknown %s '%s'\n", what, t);
            exit(2);
        }
        bits |= 1u << i;
    }
    free(copy);
    if (!bits) {
        fprintf(stderr, "bench_cluster: empty %s list\n", what);
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

static void s_names(char *out, size_t len, unsigned bits, const char *const *names, int count)
{
    out[0] = '\0';
    for (int i = 0; i < count; i++)
        if (bits & 1u << i)
            snprintf(out + strlen(out), len - strlen(out), "%s%s", out[0] ? "," : "",
                     names[i]);
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
        .rt = 20000, .msgs = 200000, .mid = 20000, .big = 2000,
        .mid_size = 64 * 1024, .big_size = 1024 * 1024,
        .rounds = 5, .timeout = 60,
        .modes = (1u << MODE_COUNT) - 1, .scenarios = (1u << SC_COUNT) - 1,
        .variants = (1u << V_COUNT) - 1,
    };
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--quick")) {
            cfg.quick = true;
            cfg.rt = 500;
            cfg.msgs = 5000;
            cfg.mid = 200;
            cfg.big = 20;
            cfg.rounds = 1;
        }
    long rounds = cfg.rounds, timeout = cfg.timeout;
    s_env_num("BENCH_ROUNDS", &rounds, 1);
    s_env_num("BENCH_RT", &cfg.rt, 1);
    s_env_num("BENCH_MSGS", &cfg.msgs, 1);
    s_env_num("BENCH_MID", &cfg.mid, 1);
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
        else if (!strcmp(a, "--mid"))
            cfg.mid = s_num(v, a, 1), i++;
        else if (!strcmp(a, "--big"))
            cfg.big = s_num(v, a, 1), i++;
        else if (!strcmp(a, "--mid-size"))
            cfg.mid_size = (size_t) s_num(v, a, MARKER + 1), i++;
        else if (!strcmp(a, "--big-size"))
            cfg.big_size = (size_t) s_num(v, a, MARKER + 1), i++;
        else if (!strcmp(a, "--timeout"))
            timeout = s_num(v, a, 1), i++;
        else if (!strcmp(a, "--only"))
            cfg.scenarios = s_list(v, s_sc_arg, SC_COUNT, "scenario"), i++;
        else if (!strcmp(a, "--mode"))
            cfg.modes = s_list(v, s_mode_name, MODE_COUNT, "mode"), i++;
        else if (!strcmp(a, "--variants"))
            cfg.variants = s_list(v, s_v_arg, V_COUNT, "variant"), i++;
        else {
            s_usage(stderr);
            return 2;
        }
    }
    if (rounds > 1000 || timeout > 86400 || cfg.rt > 100000000 ||
        cfg.mid_size > 256L * 1024 * 1024 || cfg.big_size > 256L * 1024 * 1024 ||
        cfg.mid_size == SMALL || cfg.big_size == SMALL) {
        fprintf(stderr, "bench_cluster: counts or sizes out of range\n");
        return 2;
    }
    cfg.rounds = (int) rounds;
    cfg.timeout = (int) timeout;
    const char *node = getenv("IPC_NODE");
    if (node && *node) {
        if (access(node, X_OK) < 0) {
            fprintf(stderr, "bench_cluster: IPC_NODE=%s: %s\n", node, strerror(errno));
            return 2;
        }
        cfg.node = node;
    } else
        cfg.variants &= ~(1u << V_NODE);
    if (!cfg.variants) {
        fprintf(stderr, "bench_cluster: nothing to run (node needs IPC_NODE)\n");
        return 2;
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
        fprintf(stderr, "bench_cluster: mkdtemp: %s\n", strerror(errno));
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
    char only[64], modes[32], variants[32];
    s_names(only, sizeof only, cfg.scenarios, s_sc_arg, SC_COUNT);
    s_names(modes, sizeof modes, cfg.modes, s_mode_name, MODE_COUNT);
    s_names(variants, sizeof variants, cfg.variants, s_v_arg, V_COUNT);
    int major, minor, patch;
    zmq_version(&major, &minor, &patch);
    printf("# bench_cluster: two ipc-nodes against a raw 2-hop ZeroMQ relay and plain "
           "ZeroMQ, same traffic, one run\n");
    printf("# reproduce: %s%s%s%s%s%s%s --rounds %d --rt %ld --msgs %ld --mid %ld --big %ld "
           "--mid-size %zu --big-size %zu --only %s --mode %s --variants %s --timeout %d\n",
           cfg.node ? "IPC_NODE=" : "", cfg.node ? cfg.node : "",
           cfg.node_args ? " IPC_NODE_ARGS='" : "", cfg.node_args ? cfg.node_args : "",
           cfg.node_args ? "'" : "", cfg.node ? " " : "", sl > 0 ? self : argv[0],
           cfg.rounds, cfg.rt, cfg.msgs, cfg.mid, cfg.big, cfg.mid_size, cfg.big_size,
           only, modes, variants, cfg.timeout);
    printf("# host: %s %s %s, %d CPUs allowed; pinned = every process on CPU %d; "
           "libzmq %d.%d.%d\n", u.sysname, u.release, u.machine, CPU_COUNT(&s_cpus_all),
           s_cpu_pin, major, minor, patch);
    printf("# raw-2hop: client -unix- relay A -DEALER/tcp 127.0.0.1/ROUTER- relay B -unix- "
           "client; a ZeroMQ message per frame; clients encode and decode wire.h frames\n");
    printf("# plain-zmq: DEALER (process A) -tcp 127.0.0.1- ROUTER (process B), a ZeroMQ "
           "message per message\n");
    printf("# nodes: %s --socket DIR/K.sock --name nodeA|nodeB --port P --bind 127.0.0.1 "
           "--state-dir DIR --no-mdns [--peer tcp://127.0.0.1:PA] (fresh per run); "
           "clients use libipcnet\n", cfg.node ? cfg.node : "(IPC_NODE unset: skipped)");
    fflush(stdout);

    result_t *res = calloc((size_t) SC_COUNT * MODE_COUNT * V_COUNT * (size_t) cfg.rounds,
                           sizeof *res);
    if (!res)
        return 1;
#define RES(sc, m, v, k) res[(((size_t) (sc) * MODE_COUNT + (m)) * V_COUNT + (v)) * \
                             (size_t) cfg.rounds + (k)]
    int failures = 0;
    for (int sc = 0; sc < SC_COUNT && !s_interrupted; sc++) {
        if (!(cfg.scenarios & 1u << sc))
            continue;
        for (int m = 0; m < MODE_COUNT && !s_interrupted; m++) {
            if (!(cfg.modes & 1u << m))
                continue;
            for (int k = 0; k < cfg.rounds && !s_interrupted; k++)
                for (int v = 0; v < V_COUNT && !s_interrupted; v++) {
                    if (!(cfg.variants & 1u << v))
                        continue;
                    result_t *x = &RES(sc, m, v, k);
                    fprintf(stderr, "%s %s round %d/%d %s ...\n", s_sc_name[sc],
                            s_mode_name[m], k + 1, cfg.rounds, s_v_name[v]);
                    if (s_run(&cfg, sc, m == MODE_PINNED, v, x) < 0)
                        failures++;
                }
        }
    }

    printf("\n%-24s %-6s %10s %10s %10s %8s %8s  %-22s %-9s %-22s\n", "scenario", "unit",
           "raw-2hop", "plain-zmq", "nodes", "node/raw", "node/zmq", "CPU us/op raw",
           "CPU zmq", "CPU us/op nodes");
    for (int sc = 0; sc < SC_COUNT; sc++) {
        if (!(cfg.scenarios & 1u << sc))
            continue;
        for (int m = 0; m < MODE_COUNT; m++) {
            if (!(cfg.modes & 1u << m))
                continue;
            int n = cfg.rounds;
            double val[V_COUNT], p99[V_COUNT];
            char cpu[V_COUNT][48], vs[V_COUNT][32], ps[V_COUNT][32];
            for (int v = 0; v < V_COUNT; v++) {
                const result_t *rv = &RES(sc, m, v, 0);
                val[v] = s_median(rv, n, offsetof(result_t, value));
                p99[v] = s_median(rv, n, offsetof(result_t, p99));
                s_fmt_cpu(cpu[v], sizeof cpu[v], s_median(rv, n, offsetof(result_t, cpu_srv)),
                          s_median(rv, n, offsetof(result_t, cpu_cli)), v != V_ZMQ);
                s_fmt(vs[v], sizeof vs[v], val[v], sc);
                s_fmt(ps[v], sizeof ps[v], p99[v], sc);
            }
            char label[64], r1[16], r2[16];
            snprintf(label, sizeof label, "%s %s", s_sc_name[sc], s_mode_name[m]);
            s_fmt_ratio(r1, sizeof r1, val[V_RAW], val[V_NODE]);
            s_fmt_ratio(r2, sizeof r2, val[V_ZMQ], val[V_NODE]);
            const char *unit = sc == SC_RT ? "med us" : sc == SC_BATCH ? "msg/s" : "MB/s";
            printf("%-24s %-6s %10s %10s %10s %8s %8s  %-22s %-9s %-22s\n", label, unit,
                   vs[V_RAW], vs[V_ZMQ], vs[V_NODE], r1, r2, cpu[V_RAW], cpu[V_ZMQ],
                   cpu[V_NODE]);
            if (sc == SC_RT) {
                s_fmt_ratio(r1, sizeof r1, p99[V_RAW], p99[V_NODE]);
                s_fmt_ratio(r2, sizeof r2, p99[V_ZMQ], p99[V_NODE]);
                printf("%-24s %-6s %10s %10s %10s %8s %8s\n", label, "p99 us",
                       ps[V_RAW], ps[V_ZMQ], ps[V_NODE], r1, r2);
            }
        }
    }
    printf("\n# figures: medians over %d round(s); raw-2hop, plain-zmq and nodes alternate "
           "within each scenario and mode\n", cfg.rounds);
    printf("# ratios: above 1 is slower for us, below 1 is slower for msg/s and MB/s "
           "(MB = 10^6 bytes)\n");
    printf("# CPU us/op: total (relays or nodes + both clients) per round trip for rt "
           "(warm-up included), per message otherwise;\n");
    printf("#   process CPU clocks of every process, all threads, from go to done\n");

    printf("\n# every round (value [p99] cpu-servers+cpu-clients us/op):\n");
    for (int sc = 0; sc < SC_COUNT; sc++)
        for (int m = 0; m < MODE_COUNT; m++) {
            if (!(cfg.scenarios & 1u << sc) || !(cfg.modes & 1u << m))
                continue;
            for (int v = 0; v < V_COUNT; v++) {
                if (!(cfg.variants & 1u << v))
                    continue;
                printf("#   %-14s %-8s %-9s", s_sc_name[sc], s_mode_name[m], s_v_name[v]);
                for (int k = 0; k < cfg.rounds; k++) {
                    const result_t *x = &RES(sc, m, v, k);
                    if (!x->ok)
                        printf("  (failed)");
                    else if (sc == SC_RT)
                        printf("  %.1f [%.1f] %.2f+%.2f", x->value, x->p99, x->cpu_srv,
                               x->cpu_cli);
                    else
                        printf("  %.*f %.2f+%.2f", sc == SC_BATCH ? 0 : 1, x->value,
                               x->cpu_srv, x->cpu_cli);
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
