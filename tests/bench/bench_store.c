/*  bench_store.c: what the shared store costs: a local put+get round trip
    beside a local request/reply round trip in the same run, the time a put
    on one node takes to reach a watcher on another, the memory per key of
    100,000 keys, and the time a new node takes to hold them all.

    A benchmark, not a test: it prints figures and fails only when it cannot
    run. Nodes are real ($IPC_NODE, else ./ipc-node) on loopback, in a
    temporary directory removed at the end; every process it starts is
    stopped by pid and reaped.

      tests/bench/bench_store [--keys N] [--rounds N]
*/

#include "ipcnet.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_NODES 4

static char s_dir[64];
static pid_t s_pids[MAX_NODES + 1];
static int s_npids;

static double s_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void s_cleanup(void)
{
    for (int i = 0; i < s_npids; i++)
        if (s_pids[i] > 0) {
            kill(s_pids[i], SIGTERM);
            waitpid(s_pids[i], NULL, 0);
            s_pids[i] = 0;
        }
    if (s_dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "bench_store: cannot remove %s\n", s_dir);
    }
}

static void s_die(const char *what, int rc)
{
    fprintf(stderr, "bench_store: %s: %s\n", what, rc ? ipcnet_strerror(rc) : strerror(errno));
    s_cleanup();
    exit(1);
}

static int s_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *) &a, sizeof a) < 0 ||
        getsockname(fd, (struct sockaddr *) &a, &len) < 0)
        s_die("a free port", 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* Starts node name on port, dialling seed_port (0: none); its socket path
   into sock. Returns its pid once it accepts. */
static pid_t s_node(const char *name, int port, int seed_port, char *sock, size_t size,
                    const char *fsync)
{
    char state[96], portarg[16], peer[64];
    snprintf(sock, size, "%s/%s.sock", s_dir, name);
    snprintf(state, sizeof state, "%s/%s", s_dir, name);
    mkdir(state, 0700);
    snprintf(portarg, sizeof portarg, "%d", port);
    snprintf(peer, sizeof peer, "tcp://127.0.0.1:%d", seed_port);
    const char *bin = getenv("IPC_NODE") ? getenv("IPC_NODE") : "./ipc-node";
    pid_t pid = fork();
    if (pid == 0) {
        char log[128];
        snprintf(log, sizeof log, "%s/%s.log", s_dir, name);
        if (!freopen(log, "w", stderr))
            _exit(126);
        char *argv[] = { (char *) bin, "--socket", sock, "--name", (char *) name,
                         "--state-dir", state, "--port", portarg, "--bind", "127.0.0.1",
                         "--no-mdns", "--no-config", "--heartbeat", "200",
                         "--store-max-keys-per-uid", "10000000", "--store-fsync", (char *) fsync,
                         seed_port ? "--peer" : NULL, peer, NULL };
        execv(bin, argv);
        _exit(127);
    }
    if (pid < 0)
        s_die("fork", 0);
    s_pids[s_npids++] = pid;
    for (int i = 0; i < 500; i++) {
        ipcnet_t *c;
        if (ipcnet_connect(&c, sock, "probe", 0) == 0) {
            ipcnet_close(&c);
            return pid;
        }
        usleep(10000);
    }
    s_die("the node did not start", 0);
    return -1;
}

static long s_rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int) pid);
    FILE *f = fopen(path, "r");
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

static long long s_stat(ipcnet_t *c, const char *key)
{
    char *text;
    if (ipcnet_query(c, IPCNET_Q_STATS, &text) < 0)
        return -1;
    long long v = -1;
    size_t len = strlen(key);
    for (char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (strncmp(line, key, len) == 0 && line[len] == '\t')
            v = atoll(line + len + 1);
    free(text);
    return v;
}

static int s_cmp(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

/* Median and 99th percentile of n samples (sorted in place). */
static void s_report(const char *what, double *us, int n)
{
    qsort(us, (size_t) n, sizeof *us, s_cmp);
    printf("%-44s median %7.1f us   p99 %7.1f us   (%d)\n", what, us[n / 2],
           us[(int) (n * 0.99)], n);
}

/* A child that answers requests to bench.echo with their payload. */
static pid_t s_echo(const char *sock)
{
    pid_t pid = fork();
    if (pid == 0) {
        ipcnet_t *c;
        if (ipcnet_connect(&c, sock, "echo", 0) < 0 || ipcnet_bind(c, "bench.echo") < 0)
            _exit(2);
        for (;;) {
            ipcnet_msg_t m;
            if (ipcnet_recv(c, &m, -1) < 0)
                _exit(0);
            if (m.kind == IPCNET_MSG_REQUEST)
                ipcnet_reply(c, &m, m.data, m.size);
        }
    }
    s_pids[s_npids++] = pid;
    return pid;
}

int main(int argc, char **argv)
{
    int keys = 100000, rounds = 20000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--keys") == 0)
            keys = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--rounds") == 0)
            rounds = atoi(argv[i + 1]);
    }
    if (keys < 1 || rounds < 100) {
        fprintf(stderr, "usage: bench_store [--keys N] [--rounds N>=100]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    snprintf(s_dir, sizeof s_dir, "/tmp/bench-store-XXXXXX");
    if (!mkdtemp(s_dir))
        s_die("mkdtemp", 0);
    char sock_a[128], sock_b[128], sock_c[128];
    int port_a = s_free_port();
    pid_t node_a = s_node("alpha", port_a, 0, sock_a, sizeof sock_a, "batch");
    s_echo(sock_a);

    ipcnet_t *c;
    int rc = ipcnet_connect(&c, sock_a, "bench", 0);
    if (rc < 0)
        s_die("connect", rc);
    double *us = calloc((size_t) rounds, sizeof *us);
    char value[64];
    memset(value, 'v', sizeof value);
    /* The echo holder is up once a request gets through. */
    ipcnet_msg_t m;
    for (int i = 0; i < 500 && ipcnet_request(c, "bench.echo", "x", 1, 1000, &m) < 0; i++)
        usleep(10000);

    printf("bench_store: %d rounds, 64-byte payloads and values, one node (alpha)\n", rounds);
    for (int i = 0; i < rounds; i++) {
        double t0 = s_now_us();
        if ((rc = ipcnet_request(c, "bench.echo", value, sizeof value, 5000, &m)) < 0)
            s_die("request", rc);
        us[i] = s_now_us() - t0;
    }
    s_report("request/reply round trip (local)", us, rounds);
    for (int i = 0; i < rounds; i++) {
        double t0 = s_now_us();
        if ((rc = ipcnet_put(c, "bench.key", value, sizeof value, 0, 0)) < 0)
            s_die("put", rc);
        if ((rc = ipcnet_get(c, "bench.key", &m, 0)) < 0 || m.size != sizeof value)
            s_die("get", rc);
        us[i] = s_now_us() - t0;
    }
    s_report("put + get round trips (local, fsync batch)", us, rounds);
    for (int i = 0; i < rounds; i++) {
        double t0 = s_now_us();
        if ((rc = ipcnet_get(c, "bench.key", &m, 0)) < 0)
            s_die("get", rc);
        us[i] = s_now_us() - t0;
    }
    s_report("get round trip (local)", us, rounds);

    /* The cost of --store-fsync always, on a node of its own. */
    {
        char sock_d[128];
        s_node("delta", s_free_port(), 0, sock_d, sizeof sock_d, "always");
        ipcnet_t *d;
        if ((rc = ipcnet_connect(&d, sock_d, "bench", 0)) < 0)
            s_die("connect to delta", rc);
        int nd = rounds < 2000 ? rounds : 2000;
        for (int i = 0; i < nd; i++) {
            double t0 = s_now_us();
            if ((rc = ipcnet_put(d, "bench.key", value, sizeof value, 0, 0)) < 0)
                s_die("put", rc);
            us[i] = s_now_us() - t0;
        }
        s_report("put round trip, --store-fsync always", us, nd);
        ipcnet_close(&d);
    }

    /* A second node, a watcher there: a put here until it sees it. */
    int port_b = s_free_port();
    s_node("beta", port_b, port_a, sock_b, sizeof sock_b, "batch");
    ipcnet_t *w;
    if ((rc = ipcnet_connect(&w, sock_b, "watcher", 0)) < 0 ||
        (rc = ipcnet_watch_keys(w, "lat.*")) < 0)
        s_die("watch on beta", rc);
    /* Until beta is up with alpha: a put there arrives. */
    for (int i = 0; i < 1000; i++) {
        ipcnet_put(c, "lat.probe", "1", 1, 0, 0);
        if (ipcnet_recv(w, &m, 10) == 0 && m.kind == IPCNET_MSG_KEY)
            break;
    }
    while (ipcnet_recv(w, &m, 50) == 0)
        ;
    int n = rounds < 5000 ? rounds : 5000;
    for (int i = 0; i < n; i++) {
        double t0 = s_now_us();
        if ((rc = ipcnet_put(c, "lat.k", value, sizeof value, 0, 0)) < 0)
            s_die("put", rc);
        do
            rc = ipcnet_recv(w, &m, 5000);
        while (rc == 0 && m.kind != IPCNET_MSG_KEY);
        if (rc < 0)
            s_die("the watcher on beta", rc);
        us[i] = s_now_us() - t0;
    }
    s_report("put on alpha until a watcher on beta has it", us, n);

    /* Memory per key. */
    long before = s_rss_kib(node_a);
    double t0 = s_now_us();
    char key[64];
    for (int i = 0; i < keys; i++) {
        snprintf(key, sizeof key, "mem.key-%07d", i);
        if ((rc = ipcnet_put(c, key, value, 32, 0, 0)) < 0)
            s_die("put", rc);
    }
    double took = s_now_us() - t0;
    long after = s_rss_kib(node_a);
    printf("%d keys (16-byte keys, 32-byte values) put in %.0f ms: %.0f puts/s\n", keys,
           took / 1000, keys / (took / 1e6));
    printf("alpha's RSS %ld -> %ld KiB: %.0f bytes per key (beta holds them too)\n", before,
           after, (after - before) * 1024.0 / keys);

    /* A new node: how long until it holds them all. */
    int port_c = s_free_port();
    t0 = s_now_us();
    s_node("gamma", port_c, port_a, sock_c, sizeof sock_c, "batch");
    ipcnet_t *g;
    if ((rc = ipcnet_connect(&g, sock_c, "q", 0)) < 0)
        s_die("connect to gamma", rc);
    long long want = s_stat(c, "store_keys"), have = 0;
    while ((have = s_stat(g, "store_keys")) < want && s_now_us() - t0 < 60e6)
        usleep(2000);
    printf("a new node holds all %lld keys %.0f ms after it was started (digest exchange)\n",
           have, (s_now_us() - t0) / 1000);
    ipcnet_close(&g);
    ipcnet_close(&w);
    ipcnet_close(&c);
    free(us);
    s_cleanup();
    return have == want ? 0 : 1;
}
