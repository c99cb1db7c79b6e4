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

#include "bench_util.h"
#include "ipcnet.h"
#include "wire.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#define RELAY_BUF       (64 * 1024)     /* the relay's read size */
#define READER          (256 * 1024)    /* its clients' least read buffer */

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
static const char *const s_nd_name[2] = { "relay", "node" };    /* the two variants */

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

typedef struct {
    bench_run_t b;              /* processes, pipes, shared page, deadline */
    const config_t *cfg;
    int sc;
    bool node;
    int seq;                    /* run number, for unique socket names */
    char sock[108];
} run_t;

static int s_seq;

/* --- children ------------------------------------------------------------- */

/* The relay: accepts two connections and forwards bytes between them,
   one write per read, until either side closes. */
static void s_relay(run_t *r, int lfd)
{
    int fd[2];
    for (int i = 0; i < 2; i++) {
        fd[i] = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd[i] < 0)
            bench_child_fail(&r->b, ROLE_SRV, "accept: %s", strerror(errno));
    }
    close(lfd);
    uint8_t *buf = malloc(RELAY_BUF);
    if (!buf)
        bench_child_fail(&r->b, ROLE_SRV, "out of memory");
    struct pollfd p[2] = { { .fd = fd[0], .events = POLLIN }, { .fd = fd[1], .events = POLLIN } };
    for (;;) {
        int n = poll(p, 2, 1000);
        if (n < 0 && errno != EINTR)
            bench_child_fail(&r->b, ROLE_SRV, "poll: %s", strerror(errno));
        if (n <= 0) {
            if (bench_now() > r->b.deadline)
                bench_child_fail(&r->b, ROLE_SRV, "timed out");
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
            if (bench_write_all(fd[1 - i], buf, (size_t) got) < 0)
                _exit(0);
        }
    }
}

/* What client `role` of scenario r->sc runs; never returns. */
static void s_client(void *arg, int role)
{
    run_t *r = arg;
    const config_t *cfg = r->cfg;
    long count = r->sc == SC_BIG ? cfg->big : cfg->msgs;
    size_t size = r->sc == SC_BIG ? cfg->big_size : BENCH_SMALL;
    bool batch = r->sc == SC_BATCH;
    if (r->node) {
        bench_node_client(&r->b, role, r->sc == SC_RT, count, size, batch);
    } else {
        int fd = bench_unix_connect(r->sock);
        if (fd < 0)
            bench_child_fail(&r->b, role, "connect(%s): %s", r->sock, strerror(-fd));
        if (r->sc == SC_RT)
            role == ROLE_A ? bench_relay_rt_a(&r->b, fd, WIRE_MESSAGE, 0, SRC_A, READER, READER)
                           : bench_relay_rt_b(&r->b, fd, SRC_B, READER, READER);
        else if (role == ROLE_A)
            bench_wire_send_a(&r->b, fd, SRC_A, count, size, batch);
        else {
            size_t cap = size > 128 * 1024 ? 2 * (size + WIRE_HEAD_MAX) : READER;
            bench_relay_send_b(&r->b, fd, count, size, cap, cap);
        }
    }
    _exit(1);
}

/* --- parent --------------------------------------------------------------- */

/* Starts ipc-node on r->sock, pinned like the clients, and waits (bounded)
   until it accepts a connection. Returns 0 or -1. */
static int s_node_start(run_t *r, const char *log)
{
    return bench_run_local_node(&r->b, ROLE_SRV, r->cfg->node, r->cfg->node_args, r->sock,
                                "bench", NULL, "bench-local", log);
}

/* Starts the relay on r->sock. Returns 0 or -1. */
static int s_relay_start(run_t *r)
{
    int lfd = bench_listen(r->sock);
    if (lfd < 0)
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(lfd);
        return -1;
    }
    if (pid == 0) {
        bench_child_setup(&r->b, ROLE_SRV);
        s_relay(r, lfd);
        _exit(0);
    }
    close(lfd);
    r->b.pid[ROLE_SRV] = pid;
    return 0;
}

/* One run: one scenario, one mode, relay or node. Fills *ret. Returns 0,
   or -1 when the run was aborted (said on stderr). */
static int s_run(const config_t *cfg, int sc, bool pinned, bool node, bench_result_t *ret)
{
    memset(ret, 0, sizeof *ret);
    run_t r = { .cfg = cfg, .sc = sc, .node = node, .seq = ++s_seq };
    snprintf(r.sock, sizeof r.sock, "%s/%s-%d.sock", bench_tmpdir(), node ? "node" : "relay",
             r.seq);
    char log[PATH_MAX];
    snprintf(log, sizeof log, "%s/node-%d.log", bench_tmpdir(), r.seq);
    if (bench_run_open(&r.b, ROLE_COUNT, cfg->rt, cfg->timeout, pinned) < 0)
        return -1;
    r.b.name[ROLE_SRV] = node ? "ipc-node" : "relay";
    r.b.name[ROLE_A] = "client A";
    r.b.name[ROLE_B] = "client B";
    r.b.daemon[ROLE_SRV] = node;
    r.b.sock_a = r.b.sock_b = r.sock;

    bool started = !(node ? s_node_start(&r, log) : s_relay_start(&r));
    return bench_run_clients(&r.b, started, s_client, &r, sc == SC_RT,
                             sc == SC_BIG ? cfg->big : cfg->msgs,
                             sc == SC_BIG ? (double) cfg->big_size : 0, 1048576.0, ret,
                             node ? log : NULL, r.sock);
}

/* --- report --------------------------------------------------------------- */

/* One line of the table: relay and node, their ratio and CPU. */
static void s_row(const char *label, const char *unit, double base, double cand, int sc,
                  const char *cpu_base, const char *cpu_node)
{
    char b[32], c[32], ratio[32];
    int decimals = sc == SC_RT || sc == SC_BIG ? 1 : 0;
    bench_fmt(b, sizeof b, base, decimals);
    bench_fmt(c, sizeof c, cand, decimals);
    bench_fmt_ratio(ratio, sizeof ratio, base, cand);
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

/* A run of the plan: the relay (v 0) or the node (v 1). */
static int s_one(void *arg, int sc, int m, int v, bench_result_t *ret)
{
    return s_run(arg, sc, m == MODE_PINNED, v, ret);
}

int main(int argc, char **argv)
{
    config_t cfg = {
        .rt = 20000, .msgs = 200000, .big = 2000, .big_size = 1024 * 1024,
        .rounds = 5, .timeout = 60,
        .modes = (1u << MODE_COUNT) - 1, .scenarios = (1u << SC_COUNT) - 1,
    };
    bench_init("bench_local");
    if ((cfg.quick = bench_quick(argc, argv))) {
        cfg.rt = 500;
        cfg.msgs = 5000;
        cfg.big = 20;
        cfg.rounds = 1;
    }
    long rounds = cfg.rounds, timeout = cfg.timeout, big_size = (long) cfg.big_size;
    const bench_opt_t opts[] = {
        BENCH_OPTS_COMMON(&rounds, &cfg.rt, &cfg.msgs, &cfg.big, &big_size, &timeout,
                          &cfg.scenarios, s_sc_arg, SC_COUNT, &cfg.modes, s_mode_name,
                          MODE_COUNT),
        { .name = NULL },
    };
    int parsed = bench_options(argc, argv, opts, s_usage);
    if (parsed)
        return parsed == 1 ? 0 : 2;
    cfg.big_size = (size_t) big_size;
    if (rounds > 1000 || timeout > 86400 || cfg.rt > 100000000) {
        fprintf(stderr, "bench_local: counts out of range\n");
        return 2;
    }
    cfg.rounds = (int) rounds;
    cfg.timeout = (int) timeout;
    if (bench_env_node(&cfg.node, &cfg.node_args) < 0)
        return 2;
    /* Go, and the header: how to get these figures again, and on what. */
    bench_header_t hd;
    if (bench_begin(&hd, argv[0], cfg.node, cfg.node_args, cfg.scenarios, s_sc_arg, SC_COUNT,
                    cfg.modes, s_mode_name, MODE_COUNT) < 0)
        return 1;
    printf("# bench_local: ipc-node against a plain Unix-socket relay, same traffic, one run\n");
    printf("# reproduce: %s%s --rounds %d --rt %ld --msgs %ld --big %ld "
           "--big-size %zu --only %s --mode %s --timeout %d\n", hd.env, hd.self,
           cfg.rounds, cfg.rt, cfg.msgs, cfg.big, cfg.big_size, hd.only, hd.modes, cfg.timeout);
    printf("# host: %s %s %s, %d CPUs allowed; pinned = every process on CPU %d\n",
           hd.u.sysname, hd.u.release, hd.u.machine, bench_cpu_count(), bench_cpu_pin());
    printf("# relay: poll + read(64 KiB) + one write per read; its clients encode and "
           "decode wire.h frames as libipcnet does\n");
    printf("# node: %s --socket DIR/node-K.sock --name bench (fresh per run); "
           "clients use libipcnet\n", cfg.node ? cfg.node : "(IPC_NODE unset: skipped)");
    fflush(stdout);

    bench_result_t *res = calloc((size_t) SC_COUNT * MODE_COUNT * 2 * (size_t) cfg.rounds,
                           sizeof *res);
    if (!res)
        return 1;
#define RES(sc, m, nd, k) res[(((size_t) (sc) * MODE_COUNT + (m)) * 2 + (nd)) * \
                              (size_t) cfg.rounds + (k)]
    const bench_plan_t plan = { cfg.scenarios, cfg.modes, cfg.node ? 3u : 1u, s_sc_name,
                                s_mode_name, s_nd_name, SC_COUNT, MODE_COUNT, 2, cfg.rounds };
    int failures = bench_each_run(&plan, res, s_one, &cfg);

    printf("\n%-26s %-7s %12s %12s %10s  %-22s %-22s\n", "scenario", "unit", "relay",
           "node", "node/relay", "CPU us/op relay", "CPU us/op node");
    for (int sc = 0; sc < SC_COUNT; sc++) {
        if (!(cfg.scenarios & 1u << sc))
            continue;
        for (int m = 0; m < MODE_COUNT; m++) {
            if (!(cfg.modes & 1u << m))
                continue;
            const bench_result_t *rb = &RES(sc, m, 0, 0), *rn = &RES(sc, m, 1, 0);
            int n = cfg.rounds;
            char label[64], cb[48], cn[48];
            snprintf(label, sizeof label, "%s %s", s_sc_name[sc], s_mode_name[m]);
            bench_fmt_cpu(cb, sizeof cb, bench_median(rb, n, offsetof(bench_result_t, cpu_srv)),
                          bench_median(rb, n, offsetof(bench_result_t, cpu_cli)), true);
            bench_fmt_cpu(cn, sizeof cn, bench_median(rn, n, offsetof(bench_result_t, cpu_srv)),
                          bench_median(rn, n, offsetof(bench_result_t, cpu_cli)), true);
            const char *unit = sc == SC_RT ? "med us" : sc == SC_BIG ? "MiB/s" : "msg/s";
            s_row(label, unit, bench_median(rb, n, offsetof(bench_result_t, value)),
                  bench_median(rn, n, offsetof(bench_result_t, value)), sc, cb, cn);
            if (sc == SC_RT)
                s_row(label, "p99 us", bench_median(rb, n, offsetof(bench_result_t, p99)),
                      bench_median(rn, n, offsetof(bench_result_t, p99)), sc, "", "");
        }
    }
    printf("\n# figures: medians over %d round(s); relay and node alternate within each "
           "scenario and mode\n", cfg.rounds);
    printf("# node/relay: above 1 is slower for us, below 1 is slower for msg/s and MiB/s\n");
    printf("# CPU us/op: total (relay or node + both clients), per round trip for rt "
           "(warm-up included), per message otherwise;\n");
    printf("#   process CPU clocks of every process, all threads, from go to done\n");

    printf("\n# every round (value [p99] cpu-server+cpu-clients us/op):\n");
    for (int sc = 0, m = -1;
         bench_next_cell(cfg.scenarios, SC_COUNT, cfg.modes, MODE_COUNT, &sc, &m);) {
        for (int nd = 0; nd < (cfg.node ? 2 : 1); nd++) {
            printf("#   %-14s %-8s %-5s", s_sc_name[sc], s_mode_name[m],
                   nd ? "node" : "relay");
            for (int k = 0; k < cfg.rounds; k++)
                bench_print_round(&RES(sc, m, nd, k), sc == SC_RT, 0);
            printf("\n");
        }
    }
    bench_print_footer(failures);
#undef RES

    free(res);
    free(cfg.node_args);
    return bench_end();
}
