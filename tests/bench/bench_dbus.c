/*  bench_dbus.c: ipc-node's local path against D-Bus, on one host.

    A benchmark, not a test: it prints figures and fails only when it cannot
    run at all. In one run it alternates D-Bus (the baseline: what a program
    would use otherwise) and ipc-node (the candidate) over the same traffic
    and prints medians over the rounds, their ratios and the CPU time per
    operation of every process involved.

      dbus   a private `dbus-daemon --config-file=DIR/bus-K.conf --nofork
             --nopidfile --nosyslog`, fresh per run, listening on
             unix:path=DIR/bus-K (session-like config written by us: EXTERNAL
             auth, everything allowed, the limits below). Clients use
             libdbus-1 directly, its cheapest way: a private connection,
             Hello, then dbus_connection_pop_message() and
             dbus_connection_read_write() (no dispatch, no object tree).
             Client B owns BUS_NAME; client A sends to it.
      node   `$IPC_NODE --socket DIR/s-K --port 0 --bind 127.0.0.1 --no-mdns
             --state-dir DIR --cluster bench-PID` (plus $IPC_NODE_ARGS),
             fresh per run; client B binds "bench.echo", client A sends to
             it, with the libipcnet clients of bench_local.

    Scenarios:
      rt     64-byte request/reply round trips, median and p99. D-Bus: a
             method call Echo(ay) to BUS_NAME with
             dbus_connection_send_with_reply_and_block(); B returns the same
             bytes. Node: ipcnet_request(); B ipcnet_reply()s the payload.
      send   64-byte one-way messages as fast as the bus takes them, msg/s.
             D-Bus (--oneway signal, the default): signals Push(ay) without
             destination, which B receives through a match rule; (--oneway
             call): method calls Push(ay) to BUS_NAME flagged
             NO_REPLY_EXPECTED. Signals were the faster of the two here (by
             about 10% in msg/s, less bus CPU a message), so they are the
             default. libdbus writes each message as it is sent (one writev a
             message; it has no way to batch); A lets at most --dbus-queue
             bytes wait unwritten in libdbus before it waits for the socket.
             Node: ipcnet_send() with IPCNET_MORE (64 KiB batches) and
             ipcnet_flush(), as bench_local's "batch".
      big    1 MiB one-way messages (--big-size), MB/s of payload (10^6
             bytes/s). D-Bus as send; node: ipcnet_send() without
             IPCNET_MORE.
    The receiver counts messages of the right size until a 1-byte marker
    that A sends last; D-Bus keeps the order of one sender's messages, so a
    marker ahead of the count means messages were lost (the run fails).
    Each scenario runs with every process pinned to one CPU
    (sched_setaffinity) and unpinned.

    The bus's limits (<limit> in its config): max_message_size 32 MiB (or
    the big payload + 64 KiB when larger), max_incoming_bytes 64 MiB,
    max_outgoing_bytes 1 GiB. dbus-daemon stops reading a sender whose
    messages in the bus exceed max_incoming_bytes (flow control, like
    ipc-node's --queue-limit) but drops messages for a receiver whose queue
    exceeds max_outgoing_bytes: incoming below outgoing means a fast sender
    is slowed down, never dropped nor disconnected. The libdbus clients
    take messages up to the same size (dbus_connection_set_max_message_size).

    CPU is read from each process's CPU clock (clock_getcpuclockid(), all
    threads) just before the go signal and just after the measuring client
    reports done, so start-up and tear-down are left out.

    Every child is reaped, dbus-daemon and ipc-node are stopped with SIGTERM
    by PID and waited for (SIGKILL after 5 s), the temporary directory is
    removed and every run is bounded by --timeout.
*/

#include "bench_util.h"
#include "ipcnet.h"

#include <dbus/dbus.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#define BUS_NAME        "org.ipcnet.Bench"
#define BUS_PATH        "/org/ipcnet/Bench"
#define BUS_IFACE       "org.ipcnet.Bench"
#define BUS_MATCH       "type='signal',interface='" BUS_IFACE "',member='Push'"

#define BUS_MAX_MESSAGE  (32L * 1024 * 1024)    /* at least; see the top */
#define BUS_MAX_INCOMING (64L * 1024 * 1024)
#define BUS_MAX_OUTGOING (1024L * 1024 * 1024)
#define DBUS_ARRAY_MAX   (64L * 1024 * 1024)    /* DBUS_MAXIMUM_ARRAY_LENGTH */

enum { SC_RT, SC_SEND, SC_BIG, SC_COUNT };
enum { MODE_PINNED, MODE_UNPINNED, MODE_COUNT };
enum { ROLE_SRV, ROLE_A, ROLE_B, ROLE_COUNT };
enum { SYS_DBUS, SYS_NODE, SYS_COUNT };
enum { ONEWAY_CALL, ONEWAY_SIGNAL, ONEWAY_COUNT };

static const char *const s_sc_name[SC_COUNT] = { "rt 64B", "send 64B", "send 1MiB" };
static const char *const s_sc_arg[SC_COUNT] = { "rt", "send", "big" };
static const char *const s_mode_name[MODE_COUNT] = { "pinned", "unpinned" };
static const char *const s_sys_name[SYS_COUNT] = { "dbus", "node" };
static const char *const s_oneway_name[ONEWAY_COUNT] = { "call", "signal" };

typedef struct {
    long rt;                /* measured round trips per run */
    long msgs;              /* 64-byte messages per throughput run */
    long big;               /* big messages per run */
    size_t big_size;        /* payload of the big scenario */
    long dbus_queue;        /* bytes libdbus may hold unwritten in client A */
    int oneway;             /* ONEWAY_* */
    int rounds;
    int timeout;            /* seconds per run */
    unsigned modes;         /* bit per MODE_* */
    unsigned scenarios;     /* bit per SC_* */
    const char *node;       /* $IPC_NODE; NULL: D-Bus only */
    char *node_args;        /* $IPC_NODE_ARGS, split on spaces */
    const char *dbus_daemon;/* $DBUS_DAEMON or from PATH; NULL: node only */
    char cluster[32];       /* bench-PID */
} config_t;

typedef struct {
    bench_run_t b;              /* processes, pipes, shared page, deadline */
    const config_t *cfg;
    int sc;
    int sys;
    char sock[108];
} run_t;

static int s_seq;

/* --- D-Bus clients ---------------------------------------------------------- */

/* The byte array of m: its length and *data, or -1 when m has none. */
static int s_dbus_array(DBusMessage *m, const void **data)
{
    DBusMessageIter it, sub;
    if (!dbus_message_iter_init(m, &it) || dbus_message_iter_get_arg_type(&it) != DBUS_TYPE_ARRAY
            || dbus_message_iter_get_element_type(&it) != DBUS_TYPE_BYTE)
        return -1;
    dbus_message_iter_recurse(&it, &sub);
    int n = 0;
    *data = NULL;
    dbus_message_iter_get_fixed_array(&sub, data, &n);
    return n;
}

/* A message of `kind` (Echo call, Push call without reply, Push signal)
   carrying size bytes of data; gives up when out of memory. */
enum { MSG_ECHO, MSG_PUSH_CALL, MSG_PUSH_SIGNAL };

static DBusMessage *s_dbus_msg(run_t *r, int role, int kind, const uint8_t *data, size_t size)
{
    DBusMessage *m = kind == MSG_PUSH_SIGNAL
        ? dbus_message_new_signal(BUS_PATH, BUS_IFACE, "Push")
        : dbus_message_new_method_call(BUS_NAME, BUS_PATH, BUS_IFACE,
                                       kind == MSG_ECHO ? "Echo" : "Push");
    if (!m)
        bench_child_fail(&r->b, role, "dbus_message_new: out of memory");
    if (kind == MSG_PUSH_CALL)
        dbus_message_set_no_reply(m, TRUE);
    if (!dbus_message_append_args(m, DBUS_TYPE_ARRAY, DBUS_TYPE_BYTE, &data, (int) size,
                                  DBUS_TYPE_INVALID))
        bench_child_fail(&r->b, role, "dbus_message_append_args: out of memory");
    return m;
}

/* A private connection to the run's bus, registered (Hello). */
static DBusConnection *s_dbus_connect(run_t *r, int role)
{
    char addr[160];
    snprintf(addr, sizeof addr, "unix:path=%s", r->sock);
    DBusError err;
    dbus_error_init(&err);
    DBusConnection *c = dbus_connection_open_private(addr, &err);
    if (!c)
        bench_child_fail(&r->b, role, "dbus_connection_open_private(%s): %s", addr,
                         err.message);
    dbus_connection_set_exit_on_disconnect(c, FALSE);
    long max = r->cfg->big_size + 65536 > BUS_MAX_MESSAGE ? (long) r->cfg->big_size + 65536
                                                        : BUS_MAX_MESSAGE;
    dbus_connection_set_max_message_size(c, max);
    if (dbus_connection_get_max_received_size(c) < 2 * max)
        dbus_connection_set_max_received_size(c, 2 * max);
    if (!dbus_bus_register(c, &err))
        bench_child_fail(&r->b, role, "dbus_bus_register: %s", err.message);
    return c;
}

static void s_dbus_close(DBusConnection *c)
{
    dbus_connection_close(c);
    dbus_connection_unref(c);
}

/* Client B: connected, owning BUS_NAME, and for signals matching them. */
static DBusConnection *s_dbus_server(run_t *r)
{
    DBusConnection *c = s_dbus_connect(r, ROLE_B);
    DBusError err;
    dbus_error_init(&err);
    int rc = dbus_bus_request_name(c, BUS_NAME, DBUS_NAME_FLAG_DO_NOT_QUEUE, &err);
    if (rc != DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER)
        bench_child_fail(&r->b, ROLE_B, "RequestName(%s): %s", BUS_NAME,
                         dbus_error_is_set(&err) ? err.message : "not the primary owner");
    if (r->sc != SC_RT && r->cfg->oneway == ONEWAY_SIGNAL) {
        dbus_bus_add_match(c, BUS_MATCH, &err);
        if (dbus_error_is_set(&err))
            bench_child_fail(&r->b, ROLE_B, "AddMatch: %s", err.message);
    }
    return c;
}

/* Client A of the round trips: Echo calls, each waited for. */
static void s_dbus_rt_a(run_t *r)
{
    DBusConnection *c = s_dbus_connect(r, ROLE_A);
    uint8_t buf[BENCH_SMALL];
    memset(buf, 'a', sizeof buf);
    DBusError err;
    dbus_error_init(&err);
    bench_child_say(&r->b, ROLE_A, 'r');
    bench_child_wait(&r->b, ROLE_A, 'g');

    long total = r->b.warm + r->b.rt;
    r->b.sh->t_start = bench_now();
    for (long i = 0; i < total; i++) {
        double t0 = bench_now();
        if (t0 > r->b.deadline)
            bench_child_fail(&r->b, ROLE_A, "timed out after %ld round trips", i);
        DBusMessage *m = s_dbus_msg(r, ROLE_A, MSG_ECHO, buf, sizeof buf);
        DBusMessage *rep = dbus_connection_send_with_reply_and_block(c, m,
                                                                     BENCH_REQ_TIMEOUT_MS, &err);
        dbus_message_unref(m);
        if (!rep)
            bench_child_fail(&r->b, ROLE_A, "Echo #%ld: %s: %s", i, err.name, err.message);
        const void *d;
        int n = s_dbus_array(rep, &d);
        if (n != BENCH_SMALL)
            bench_child_fail(&r->b, ROLE_A, "Echo #%ld: a reply of %d bytes", i, n);
        dbus_message_unref(rep);
        bench_child_rt_done(&r->b, i, t0);
    }
    r->b.sh->t_end = bench_now();
    bench_child_say(&r->b, ROLE_A, 'd');
    bench_child_wait(&r->b, ROLE_A, 'q');
    s_dbus_close(c);
    _exit(0);
}

/* Client B of the round trips: returns each Echo's bytes until the parent
   says stop. */
static void s_dbus_rt_b(run_t *r)
{
    DBusConnection *c = s_dbus_server(r);
    bench_child_say(&r->b, ROLE_B, 'r');
    uint8_t buf[BENCH_SMALL];
    while (!r->b.sh->stop) {
        DBusMessage *m;
        while ((m = dbus_connection_pop_message(c))) {
            if (dbus_message_is_method_call(m, BUS_IFACE, "Echo")) {
                const void *d;
                int n = s_dbus_array(m, &d);
                if (n < 0)
                    bench_child_fail(&r->b, ROLE_B, "an Echo without bytes");
                /* As bench_node_rt_b: copy, then answer. */
                size_t len = (size_t) n < sizeof buf ? (size_t) n : sizeof buf;
                memcpy(buf, d, len);
                DBusMessage *rep = dbus_message_new_method_return(m);
                const uint8_t *p = buf;
                if (!rep || !dbus_message_append_args(rep, DBUS_TYPE_ARRAY, DBUS_TYPE_BYTE, &p,
                                                      (int) len, DBUS_TYPE_INVALID)
                        || !dbus_connection_send(c, rep, NULL))
                    bench_child_fail(&r->b, ROLE_B, "reply: out of memory");
                dbus_message_unref(rep);
            }
            dbus_message_unref(m);
        }
        /* Writes what is left of the replies, reads what came, or waits. */
        if (!dbus_connection_read_write(c, 50)) {
            if (r->b.sh->stop)
                break;
            bench_child_fail(&r->b, ROLE_B, "disconnected from the bus");
        }
    }
    s_dbus_close(c);
    _exit(0);
}

/* Client A waits until libdbus holds at most `most` bytes unwritten. */
static void s_dbus_drain(run_t *r, DBusConnection *c, long most, long sent)
{
    while (dbus_connection_get_outgoing_size(c) > most) {
        int left = bench_run_left_ms(&r->b, 1000);
        if (left <= 0)
            bench_child_fail(&r->b, ROLE_A, "timed out after %ld messages", sent);
        if (!dbus_connection_read_write(c, left))
            bench_child_fail(&r->b, ROLE_A, "disconnected from the bus after %ld messages",
                             sent);
        /* Nothing is expected to come; drop what does (NameAcquired...). */
        DBusMessage *m;
        while ((m = dbus_connection_pop_message(c)))
            dbus_message_unref(m);
    }
}

/* Client A one-way: count messages of size bytes, then the marker. */
static void s_dbus_send_a(run_t *r, long count, size_t size)
{
    DBusConnection *c = s_dbus_connect(r, ROLE_A);
    uint8_t *buf = malloc(size);
    if (!buf)
        bench_child_fail(&r->b, ROLE_A, "out of memory");
    memset(buf, 'm', size);
    int kind = r->cfg->oneway == ONEWAY_SIGNAL ? MSG_PUSH_SIGNAL : MSG_PUSH_CALL;
    long queue = r->cfg->dbus_queue + (long) size;
    bench_child_say(&r->b, ROLE_A, 'r');
    bench_child_wait(&r->b, ROLE_A, 'g');

    r->b.sh->t_start = bench_now();
    for (long i = 0; i <= count; i++) {
        if ((i & 255) == 0 && bench_now() > r->b.deadline)
            bench_child_fail(&r->b, ROLE_A, "timed out after %ld messages", i);
        DBusMessage *m = s_dbus_msg(r, ROLE_A, kind, buf, i < count ? size : BENCH_MARKER);
        if (!dbus_connection_send(c, m, NULL))
            bench_child_fail(&r->b, ROLE_A, "dbus_connection_send #%ld: out of memory", i);
        dbus_message_unref(m);
        if (dbus_connection_get_outgoing_size(c) > queue)
            s_dbus_drain(r, c, queue, i);
        r->b.sh->progress_a = i + 1;
    }
    s_dbus_drain(r, c, 0, count);
    bench_child_wait(&r->b, ROLE_A, 'q');
    s_dbus_close(c);
    free(buf);
    _exit(0);
}

/* Client B one-way: counts Push messages of size bytes until the marker. */
static void s_dbus_send_b(run_t *r, long count, size_t size)
{
    DBusConnection *c = s_dbus_server(r);
    bool sig = r->cfg->oneway == ONEWAY_SIGNAL;
    bench_child_say(&r->b, ROLE_B, 'r');
    long got = 0;
    bool marker = false;
    for (;;) {
        DBusMessage *m;
        while ((m = dbus_connection_pop_message(c))) {
            if (sig ? dbus_message_is_signal(m, BUS_IFACE, "Push")
                    : dbus_message_is_method_call(m, BUS_IFACE, "Push")) {
                const void *d;
                int n = s_dbus_array(m, &d);
                if (n >= 0 && (size_t) n == size)
                    got++;
                else if (n == BENCH_MARKER)
                    marker = true;
            }
            dbus_message_unref(m);
        }
        r->b.sh->progress_b = got;
        if (marker && got >= count)
            break;
        if (marker)
            bench_child_fail(&r->b, ROLE_B, "the marker after %ld of %ld messages: the bus "
                             "lost %ld", got, count, count - got);
        int left = bench_run_left_ms(&r->b, 1000);
        if (left <= 0)
            bench_child_fail(&r->b, ROLE_B, "timed out with %ld of %ld messages", got, count);
        if (!dbus_connection_read_write(c, left))
            bench_child_fail(&r->b, ROLE_B, "disconnected from the bus after %ld messages",
                             got);
    }
    r->b.sh->t_end = bench_now();
    r->b.sh->received = got;
    bench_child_say(&r->b, ROLE_B, 'd');
    bench_child_wait(&r->b, ROLE_B, 'q');
    s_dbus_close(c);
    _exit(0);
}

/* What client `role` of the run does; never returns. */
static void s_client(void *arg, int role)
{
    run_t *r = arg;
    const config_t *cfg = r->cfg;
    long count = r->sc == SC_BIG ? cfg->big : cfg->msgs;
    size_t size = r->sc == SC_BIG ? cfg->big_size : BENCH_SMALL;
    if (r->sys == SYS_NODE) {
        bench_node_client(&r->b, role, r->sc == SC_RT, count, size, r->sc == SC_SEND);
    } else {
        if (r->sc == SC_RT)
            role == ROLE_A ? s_dbus_rt_a(r) : s_dbus_rt_b(r);
        else if (role == ROLE_A)
            s_dbus_send_a(r, count, size);
        else
            s_dbus_send_b(r, count, size);
    }
    _exit(1);
}

/* --- parent --------------------------------------------------------------- */

static long s_bus_max_message(const config_t *cfg)
{
    long want = (long) cfg->big_size + 65536;
    return want > BUS_MAX_MESSAGE ? want : BUS_MAX_MESSAGE;
}

/* Writes the bus's config for a socket at sock. Returns 0 or -1. */
static int s_bus_config(const config_t *cfg, const char *path, const char *sock)
{
    FILE *f = fopen(path, "we");
    if (!f) {
        fprintf(stderr, "  %s: %s\n", path, strerror(errno));
        return -1;
    }
    fprintf(f,
        "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"
        " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
        "<busconfig>\n"
        "  <type>session</type>\n"
        "  <listen>unix:path=%s</listen>\n"
        "  <auth>EXTERNAL</auth>\n"
        "  <policy context=\"default\">\n"
        "    <allow send_destination=\"*\" eavesdrop=\"true\"/>\n"
        "    <allow eavesdrop=\"true\"/>\n"
        "    <allow own=\"*\"/>\n"
        "  </policy>\n"
        "  <limit name=\"max_message_size\">%ld</limit>\n"
        "  <limit name=\"max_incoming_bytes\">%ld</limit>\n"
        "  <limit name=\"max_outgoing_bytes\">%ld</limit>\n"
        "</busconfig>\n", sock, s_bus_max_message(cfg), BUS_MAX_INCOMING, BUS_MAX_OUTGOING);
    if (fclose(f) != 0) {
        fprintf(stderr, "  %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Starts the run's server: dbus-daemon or ipc-node, and waits (bounded)
   until it accepts on r->sock. Returns 0 or -1. */
static int s_server_start(run_t *r, int seq, const char *log)
{
    const config_t *cfg = r->cfg;
    char *argv[64];
    int argc = 0;
    if (r->sys == SYS_DBUS) {
        char conf[PATH_MAX], opt[PATH_MAX + 32];
        snprintf(conf, sizeof conf, "%s/bus-%d.conf", bench_tmpdir(), seq);
        if (s_bus_config(cfg, conf, r->sock) < 0)
            return -1;
        snprintf(opt, sizeof opt, "--config-file=%s", conf);
        argv[argc++] = (char *) cfg->dbus_daemon;
        argv[argc++] = opt;
        argv[argc++] = (char *) "--nofork";
        argv[argc++] = (char *) "--nopidfile";
        argv[argc++] = (char *) "--nosyslog";
        argv[argc] = NULL;
        return bench_run_node(&r->b, ROLE_SRV, argv, log, r->sock);
    }
    return bench_run_local_node(&r->b, ROLE_SRV, cfg->node, cfg->node_args, r->sock, NULL,
                                "127.0.0.1", cfg->cluster, log);
}

/* One run: one scenario, one mode, one system. Fills *ret. Returns 0, or
   -1 when the run was aborted (said on stderr). */
static int s_run(const config_t *cfg, int sc, bool pinned, int sys, bench_result_t *ret)
{
    memset(ret, 0, sizeof *ret);
    int seq = ++s_seq;
    run_t r = { .cfg = cfg, .sc = sc, .sys = sys };
    snprintf(r.sock, sizeof r.sock, "%s/%s-%d", bench_tmpdir(), sys == SYS_DBUS ? "bus" : "s",
             seq);
    char log[PATH_MAX];
    snprintf(log, sizeof log, "%s/%s-%d.log", bench_tmpdir(), s_sys_name[sys], seq);
    if (bench_run_open(&r.b, ROLE_COUNT, cfg->rt, cfg->timeout, pinned) < 0)
        return -1;
    r.b.name[ROLE_SRV] = sys == SYS_DBUS ? "dbus-daemon" : "ipc-node";
    r.b.name[ROLE_A] = "client A";
    r.b.name[ROLE_B] = "client B";
    r.b.daemon[ROLE_SRV] = true;
    r.b.sock_a = r.b.sock_b = r.sock;

    bool started = s_server_start(&r, seq, log) >= 0;
    return bench_run_clients(&r.b, started, s_client, &r, sc == SC_RT,
                             sc == SC_BIG ? cfg->big : cfg->msgs,
                             sc == SC_BIG ? (double) cfg->big_size : 0, 1e6, ret, log, r.sock);
}

/* The first line `path arg` prints, within 5 s, into out ("?" if none). */
static void s_capture(const char *path, const char *arg, char *out, size_t len)
{
    snprintf(out, len, "?");
    int p[2];
    if (!path || pipe2(p, O_CLOEXEC) < 0)
        return;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        dup2(p[1], 2);
        execl(path, path, arg, (char *) NULL);
        _exit(127);
    }
    close(p[1]);
    if (pid < 0) {
        close(p[0]);
        return;
    }
    char buf[256];
    size_t used = 0;
    double end = bench_now() + 5;
    while (used < sizeof buf - 1) {
        int left = (int) ((end - bench_now()) * 1000);
        if (left <= 0)
            break;
        struct pollfd pf = { .fd = p[0], .events = POLLIN };
        int n = poll(&pf, 1, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        ssize_t got = read(p[0], buf + used, sizeof buf - 1 - used);
        if (got <= 0)
            break;
        used += (size_t) got;
    }
    close(p[0]);
    kill(pid, SIGKILL);             /* gone already, normally */
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
    buf[used] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    size_t n = strlen(buf);
    if (n > 0) {
        n = n < len ? n : len - 1;
        memcpy(out, buf, n);
        out[n] = '\0';
    }
}

/* An executable `name` on $PATH, into buf; NULL if none. */
static const char *s_which(const char *name, char *buf, size_t len)
{
    const char *path = getenv("PATH");
    char *copy = strdup(path && *path ? path : "/usr/bin:/bin"), *save = NULL;
    const char *found = NULL;
    for (char *d = strtok_r(copy, ":", &save); d && !found; d = strtok_r(NULL, ":", &save)) {
        snprintf(buf, len, "%s/%s", d, name);
        if (access(buf, X_OK) == 0)
            found = buf;
    }
    free(copy);
    return found;
}

static void s_cpu_model(char *out, size_t len)
{
    snprintf(out, len, "?");
    FILE *f = fopen("/proc/cpuinfo", "re");
    if (!f)
        return;
    char line[256];
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
            char *v = strchr(line, ':') + 1;
            v += strspn(v, " \t");
            v[strcspn(v, "\n")] = '\0';
            snprintf(out, len, "%s", v);
            break;
        }
    fclose(f);
}

/* --- report --------------------------------------------------------------- */

/* cand / base with 3 significant digits, or "-". */
static void s_fmt_ratio(char *out, size_t len, double base, double cand)
{
    if (isnan(base) || isnan(cand) || base == 0)
        snprintf(out, len, "-");
    else
        snprintf(out, len, "%.3g", cand / base);
}

static void s_usage(FILE *f)
{
    fprintf(f,
        "usage: IPC_NODE=path/to/ipc-node bench_dbus [options]\n"
        "  --quick            small counts, one round: a smoke run\n"
        "  --rounds N         dbus/node pairs per scenario and mode (5)\n"
        "  --rt N             measured round trips per run (10000)\n"
        "  --msgs N           64-byte messages per throughput run (100000)\n"
        "  --big N            big messages per run (300)\n"
        "  --big-size BYTES   payload of the big scenario (1048576)\n"
        "  --oneway KIND      D-Bus one-way messages: signal (to a match rule, the\n"
        "                     default) or call (NO_REPLY_EXPECTED method calls)\n"
        "  --dbus-queue BYTES unwritten bytes libdbus may hold in the sender (65536)\n"
        "  --only LIST        scenarios, comma-separated: rt,send,big\n"
        "  --mode LIST        pinned,unpinned (both)\n"
        "  --timeout S        seconds before a run is aborted (60)\n"
        "environment: IPC_NODE (without it only D-Bus runs), IPC_NODE_ARGS (more\n"
        "arguments for ipc-node), DBUS_DAEMON (default: dbus-daemon on PATH; without\n"
        "one only the node runs), BENCH_ROUNDS, BENCH_RT, BENCH_MSGS, BENCH_BIG\n");
}

/* --oneway KIND: sets *(int *) arg to its ONEWAY_*; -1 for another. */
static int s_parse_oneway(const char *v, void *arg)
{
    int *oneway = arg;
    for (*oneway = 0; *oneway < ONEWAY_COUNT; (*oneway)++)
        if (v && !strcmp(v, s_oneway_name[*oneway]))
            return 0;
    fprintf(stderr, "bench_dbus: bad --oneway '%s': call or signal\n", v ? v : "");
    return -1;
}

/* A run of the plan: system v (SYS_*). */
static int s_one(void *arg, int sc, int m, int v, bench_result_t *ret)
{
    return s_run(arg, sc, m == MODE_PINNED, v, ret);
}

int main(int argc, char **argv)
{
    config_t cfg = {
        .rt = 10000, .msgs = 100000, .big = 300, .big_size = 1024 * 1024,
        .dbus_queue = 65536, .oneway = ONEWAY_SIGNAL, .rounds = 5, .timeout = 60,
        .modes = (1u << MODE_COUNT) - 1, .scenarios = (1u << SC_COUNT) - 1,
    };
    bench_init("bench_dbus");
    bool quick = bench_quick(argc, argv);
    if (quick) {
        cfg.rt = 2000;
        cfg.msgs = 20000;
        cfg.big = 50;
        cfg.rounds = 1;
    }
    long rounds = cfg.rounds, timeout = cfg.timeout, big_size = (long) cfg.big_size;
    const bench_opt_t opts[] = {
        BENCH_OPTS_COMMON(&rounds, &cfg.rt, &cfg.msgs, &cfg.big, &big_size, &timeout,
                          &cfg.scenarios, s_sc_arg, SC_COUNT, &cfg.modes, s_mode_name,
                          MODE_COUNT),
        { .name = "--dbus-queue", .num = &cfg.dbus_queue, .min = 0 },
        { .name = "--oneway", .parse = s_parse_oneway, .arg = &cfg.oneway },
        { .name = NULL },
    };
    int parsed = bench_options(argc, argv, opts, s_usage);
    if (parsed)
        return parsed == 1 ? 0 : 2;
    cfg.big_size = (size_t) big_size;
    if (rounds > 1000 || timeout > 86400 || cfg.rt > 100000000 || cfg.msgs > 1000000000
            || cfg.big > 1000000 || cfg.big_size > (size_t) DBUS_ARRAY_MAX
            || cfg.dbus_queue > 1L << 30) {
        fprintf(stderr, "bench_dbus: counts or sizes out of range (--big-size at most %ld: "
                "D-Bus arrays)\n", DBUS_ARRAY_MAX);
        return 2;
    }
    cfg.rounds = (int) rounds;
    cfg.timeout = (int) timeout;
    snprintf(cfg.cluster, sizeof cfg.cluster, "bench-%d", (int) getpid());
    if (bench_env_node(&cfg.node, &cfg.node_args) < 0)
        return 2;
    char dbus_path[PATH_MAX];
    const char *dd = getenv("DBUS_DAEMON");
    if (dd && *dd) {
        if (access(dd, X_OK) < 0) {
            fprintf(stderr, "bench_dbus: DBUS_DAEMON=%s: %s\n", dd, strerror(errno));
            return 2;
        }
        cfg.dbus_daemon = dd;
    } else
        cfg.dbus_daemon = s_which("dbus-daemon", dbus_path, sizeof dbus_path);
    if (!cfg.node && !cfg.dbus_daemon) {
        fprintf(stderr, "bench_dbus: nothing to run: no IPC_NODE and no dbus-daemon\n");
        return 2;
    }

    /* Versions before bench_start(): it ignores SIGPIPE, which exec would keep. */
    char v_node[128], v_dbus[128], cpu_model[128];
    s_capture(cfg.node, "--version", v_node, sizeof v_node);
    s_capture(cfg.dbus_daemon, "--version", v_dbus, sizeof v_dbus);
    s_cpu_model(cpu_model, sizeof cpu_model);
    int lmaj = 0, lmin = 0, lmic = 0;
    dbus_get_version(&lmaj, &lmin, &lmic);
    /* Go, and the header: how to get these figures again, and on what. */
    bench_header_t hd;
    if (bench_begin(&hd, argv[0], cfg.node, cfg.node_args, cfg.scenarios, s_sc_arg, SC_COUNT,
                    cfg.modes, s_mode_name, MODE_COUNT) < 0)
        return 1;
    printf("# bench_dbus: ipc-node's local path against D-Bus (dbus-daemon), same traffic, "
           "one run%s\n", quick ? " (--quick)" : "");
    printf("# reproduce: %s%s%s%s%s --rounds %d --rt %ld --msgs %ld --big %ld "
           "--big-size %zu --oneway %s --dbus-queue %ld --only %s --mode %s --timeout %d\n",
           hd.env, dd && *dd ? "DBUS_DAEMON=" : "", dd && *dd ? dd : "", dd && *dd ? " " : "",
           hd.self, cfg.rounds, cfg.rt, cfg.msgs, cfg.big, cfg.big_size,
           s_oneway_name[cfg.oneway], cfg.dbus_queue, hd.only, hd.modes, cfg.timeout);
    printf("# host: %s %s %s, %s, %d CPUs allowed; pinned = every process on CPU %d "
           "(sched_setaffinity)\n", hd.u.sysname, hd.u.release, hd.u.machine, cpu_model,
           bench_cpu_count(), bench_cpu_pin());
    char load[64] = "?";
    FILE *lf = fopen("/proc/loadavg", "re");
    if (lf) {
        if (fgets(load, sizeof load, lf))
            load[strcspn(load, "\n")] = '\0';
        fclose(lf);
    }
    printf("# load at start (/proc/loadavg): %s\n", load);
    printf("# versions: %s (%s); %s (%s); libdbus-1 %d.%d.%d; libipcnet %s\n",
           v_node, cfg.node ? cfg.node : "IPC_NODE unset: node skipped", v_dbus,
           cfg.dbus_daemon ? cfg.dbus_daemon : "not found: D-Bus skipped", lmaj, lmin, lmic,
           PACKAGE_VERSION);
    printf("# dbus: private dbus-daemon per run on unix:path=DIR/bus-K, config: session-like, "
           "EXTERNAL, all allowed, max_message_size %ld, max_incoming_bytes %ld, "
           "max_outgoing_bytes %ld\n", s_bus_max_message(&cfg), BUS_MAX_INCOMING,
           BUS_MAX_OUTGOING);
    printf("# dbus clients: libdbus-1, private connections, pop_message + read_write; "
           "rt = Echo(ay) with send_with_reply_and_block; one-way = %s; "
           "sender holds at most %ld+size bytes unwritten\n",
           cfg.oneway == ONEWAY_SIGNAL ? "Push(ay) signals to a match rule"
                                       : "Push(ay) calls flagged NO_REPLY_EXPECTED",
           cfg.dbus_queue);
    printf("# node: private ipc-node per run: --socket DIR/s-K --port 0 --bind 127.0.0.1 "
           "--no-mdns --state-dir DIR --cluster %s; clients libipcnet: rt = ipcnet_request, "
           "send 64B = ipcnet_send + IPCNET_MORE, 1MiB = ipcnet_send\n", cfg.cluster);
    printf("# dbus-broker: not measured (dbus-broker-launch needs journald and systemd "
           "socket activation)\n");
    fflush(stdout);

    int systems[SYS_COUNT], nsys = 0;
    unsigned systems_bits = 0;
    if (cfg.dbus_daemon)
        systems[nsys++] = SYS_DBUS;
    if (cfg.node)
        systems[nsys++] = SYS_NODE;
    for (int j = 0; j < nsys; j++)
        systems_bits |= 1u << systems[j];

    bench_result_t *res = calloc((size_t) SC_COUNT * MODE_COUNT * SYS_COUNT *
                                 (size_t) cfg.rounds, sizeof *res);
    if (!res)
        return 1;
#define RES(sc, m, s, k) res[(((size_t) (sc) * MODE_COUNT + (m)) * SYS_COUNT + (s)) * \
                             (size_t) cfg.rounds + (k)]
    const bench_plan_t plan = { cfg.scenarios, cfg.modes, systems_bits, s_sc_name, s_mode_name,
                                s_sys_name, SC_COUNT, MODE_COUNT, SYS_COUNT, cfg.rounds };
    int failures = bench_each_run(&plan, res, s_one, &cfg);

    /* Medians: value, p99, CPU of the server and of the clients. */
    double med[SC_COUNT][MODE_COUNT][SYS_COUNT][4];
    for (int sc = 0; sc < SC_COUNT; sc++)
        for (int m = 0; m < MODE_COUNT; m++)
            for (int s = 0; s < SYS_COUNT; s++) {
                const bench_result_t *x = &RES(sc, m, s, 0);
                med[sc][m][s][0] = bench_median(x, cfg.rounds, offsetof(bench_result_t, value));
                med[sc][m][s][1] = bench_median(x, cfg.rounds, offsetof(bench_result_t, p99));
                med[sc][m][s][2] = bench_median(x, cfg.rounds,
                                                offsetof(bench_result_t, cpu_srv));
                med[sc][m][s][3] = bench_median(x, cfg.rounds,
                                                offsetof(bench_result_t, cpu_cli));
            }

    printf("\n%-20s %-7s %12s %12s  %-26s %-26s\n", "scenario", "unit", "dbus", "node",
           "CPU us/op dbus", "CPU us/op node");
    for (int sc = 0, m = -1;
         bench_next_cell(cfg.scenarios, SC_COUNT, cfg.modes, MODE_COUNT, &sc, &m);) {
        char label[64], vd[32], vn[32], cd[48], cn[48];
        snprintf(label, sizeof label, "%s %s", s_sc_name[sc], s_mode_name[m]);
        int dec = sc == SC_SEND ? 0 : 1;
        bench_fmt(vd, sizeof vd, med[sc][m][SYS_DBUS][0], dec);
        bench_fmt(vn, sizeof vn, med[sc][m][SYS_NODE][0], dec);
        bench_fmt_cpu(cd, sizeof cd, med[sc][m][SYS_DBUS][2], med[sc][m][SYS_DBUS][3], true);
        bench_fmt_cpu(cn, sizeof cn, med[sc][m][SYS_NODE][2], med[sc][m][SYS_NODE][3], true);
        printf("%-20s %-7s %12s %12s  %-26s %-26s\n", label,
               sc == SC_RT ? "med us" : sc == SC_BIG ? "MB/s" : "msg/s", vd, vn, cd, cn);
        if (sc == SC_RT) {
            bench_fmt(vd, sizeof vd, med[sc][m][SYS_DBUS][1], 1);
            bench_fmt(vn, sizeof vn, med[sc][m][SYS_NODE][1], 1);
            printf("%-20s %-7s %12s %12s\n", label, "p99 us", vd, vn);
        }
    }

    printf("\n%-20s %-7s %10s %10s\n", "ratios node/dbus", "unit", "figure", "CPU/op");
    for (int sc = 0, m = -1;
         bench_next_cell(cfg.scenarios, SC_COUNT, cfg.modes, MODE_COUNT, &sc, &m);) {
        char label[64], rv[32], rc[32];
        snprintf(label, sizeof label, "%s %s", s_sc_name[sc], s_mode_name[m]);
        s_fmt_ratio(rv, sizeof rv, med[sc][m][SYS_DBUS][0], med[sc][m][SYS_NODE][0]);
        s_fmt_ratio(rc, sizeof rc, med[sc][m][SYS_DBUS][2] + med[sc][m][SYS_DBUS][3],
                        med[sc][m][SYS_NODE][2] + med[sc][m][SYS_NODE][3]);
        printf("%-20s %-7s %10s %10s\n", label,
               sc == SC_RT ? "med us" : sc == SC_BIG ? "MB/s" : "msg/s", rv, rc);
        if (sc == SC_RT) {
            s_fmt_ratio(rv, sizeof rv, med[sc][m][SYS_DBUS][1], med[sc][m][SYS_NODE][1]);
            printf("%-20s %-7s %10s\n", label, "p99 us", rv);
        }
    }
    printf("\n# figures: medians over %d round(s); dbus and node alternate within each "
           "scenario and mode\n", cfg.rounds);
    printf("# node/dbus: below 1 is better for the node in us and CPU/op, above 1 in msg/s "
           "and MB/s\n");
    printf("# CPU us/op: total (bus or node + both clients), per round trip for rt "
           "(warm-up included), per message otherwise;\n");
    printf("#   process CPU clocks of every process, all threads, from go to done\n");

    printf("\n# every round (value [p99] cpu-server+cpu-clients us/op):\n");
    for (int sc = 0, m = -1;
         bench_next_cell(cfg.scenarios, SC_COUNT, cfg.modes, MODE_COUNT, &sc, &m);) {
        for (int j = 0; j < nsys; j++) {
            int s = systems[j];
            printf("#   %-10s %-8s %-5s", s_sc_name[sc], s_mode_name[m], s_sys_name[s]);
            for (int k = 0; k < cfg.rounds; k++)
                bench_print_round(&RES(sc, m, s, k), sc == SC_RT, sc == SC_SEND ? 0 : 1);
            printf("\n");
        }
    }
    bench_print_footer(failures);
#undef RES

    free(res);
    free(cfg.node_args);
    int st = bench_end();
    return st ? st : failures ? 1 : 0;
}
