/*  bench_shm.c: what passing large payloads as sealed memfds (issue 14)
    gains over copying them through the node, against the floor of a raw
    memfd handoff between two processes with no node at all.

    A benchmark, not a test: it prints figures and fails only when it
    cannot run. In one run, for each payload size, medians over --rounds:

      shm    ipc-node with --shm-threshold 1 (every payload a memfd): A
             ipcnet_send()s N payloads to "bench.sink", B ipcnet_recv()s
             them (msg.data a read-only mapping, MAP_POPULATE);
      copy   the same node with --shm-threshold 0: bytes through the node;
      floor  no node: A makes a memfd, writes the payload, seals it, passes
             it on a socketpair; B maps it (MAP_POPULATE), as the library;
      socket no node: A writes the payload on a socketpair, B reads it.

    B looks at the first and the last byte of each payload. Then: a publish
    of 1 MiB to 1 and to 10 subscribers through the shm node (until every
    subscriber has every one). CPU per message is each process's user +
    system time over the run (getrusage of the clients, /proc of the node)
    divided by N. Every child is reaped and the node stopped by pid.

      IPC_NODE=build/ipc-node build/tests/bench/bench_shm [--rounds R] [--quick]
*/

#include "ipcnet.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SEALS (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)
#define MAX_SUBS 10

typedef struct {
    volatile double t0, t1[MAX_SUBS];   /* A began; each receiver had all */
    volatile int ready;
    volatile int failed;
} shared_t;

static shared_t *s_sh;
static const char *s_node_bin;
static char s_dir[64];

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double s_rusage_children(void)
{
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static double s_proc_cpu(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int) pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    if (p)
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st);
    return (double) (ut + st) / (double) sysconf(_SC_CLK_TCK);
}

static void s_fail(const char *what)
{
    fprintf(stderr, "bench_shm: %s: %s\n", what, strerror(errno));
    s_sh->failed = 1;
    _exit(1);
}

/* --- the node ------------------------------------------------------------------ */

static pid_t s_node_start(const char *sock, const char *threshold)
{
    pid_t pid = fork();
    if (pid == 0) {
        char log[128];
        snprintf(log, sizeof log, "%s/node.log", s_dir);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd >= 0)
            dup2(fd, 2);
        execl(s_node_bin, s_node_bin, "--socket", sock, "--name", "bench", "--port", "0",
              "--bind", "127.0.0.1", "--no-mdns", "--state-dir", s_dir, "--shm-threshold",
              threshold, "--max-message", "16M", (char *) NULL);
        _exit(127);
    }
    for (int i = 0; i < 500; i++) {
        ipcnet_t *c = NULL;
        if (ipcnet_connect(&c, sock, "probe", 0) == 0) {
            ipcnet_close(&c);
            return pid;
        }
        usleep(10 * 1000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

static void s_node_stop(pid_t pid)
{
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

/* --- one run ------------------------------------------------------------------------- */

typedef struct {
    double secs, cpu_clients, cpu_node;
} result_t;

static uint8_t *s_payload;

static void s_check(const uint8_t *p, size_t size)
{
    if (p[0] != s_payload[0] || p[size - 1] != s_payload[size - 1]) {
        errno = EBADMSG;
        s_fail("payload corrupted");
    }
}

/* Through the node at sock: B receives n of size, A sends them. */
static void s_node_b(const char *sock, long n, size_t size, int subs, int idx)
{
    ipcnet_t *c = NULL;
    if (ipcnet_connect(&c, sock, "bench-b", 0) < 0)
        s_fail("connect B");
    if ((subs ? ipcnet_subscribe(c, "bench.t") : ipcnet_bind(c, "bench.sink")) < 0)
        s_fail("bind");
    __sync_fetch_and_add(&s_sh->ready, 1);
    for (long i = 0; i < n; i++) {
        ipcnet_msg_t m;
        int rc = ipcnet_recv(c, &m, 20000);
        if (rc < 0 || m.size != size) {
            errno = rc < 0 ? -rc : EBADMSG;
            s_fail("recv");
        }
        s_check(m.data, m.size);
    }
    s_sh->t1[idx] = s_now();
    ipcnet_close(&c);
    _exit(0);
}

static void s_node_a(const char *sock, long n, size_t size, int publish)
{
    ipcnet_t *c = NULL;
    if (ipcnet_connect(&c, sock, "bench-a", 0) < 0)
        s_fail("connect A");
    s_sh->t0 = s_now();
    for (long i = 0; i < n; i++)
        if ((publish ? ipcnet_publish(c, "bench.t", s_payload, size, 0)
                     : ipcnet_send(c, "bench.sink", s_payload, size, 0)) < 0)
            s_fail("send");
    ipcnet_flush(c, 20000);
    ipcnet_close(&c);
    _exit(0);
}

/* No node: memfds (floor) or bytes (socket) on a socketpair. */
static void s_raw_b(int fd, long n, size_t size, int memfd)
{
    uint8_t *buf = memfd ? NULL : malloc(size);
    s_sh->ready = 1;
    for (long i = 0; i < n; i++) {
        if (!memfd) {
            for (size_t got = 0; got < size;) {
                ssize_t k = read(fd, buf + got, size - got);
                if (k <= 0)
                    s_fail("read");
                got += (size_t) k;
            }
            s_check(buf, size);
            continue;
        }
        char byte;
        union {
            struct cmsghdr h;
            char room[CMSG_SPACE(sizeof (int))];
        } ctl;
        struct iovec iov = { &byte, 1 };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl,
                             .msg_controllen = sizeof ctl };
        if (recvmsg(fd, &mh, MSG_CMSG_CLOEXEC) != 1)
            s_fail("recvmsg");
        int mfd;
        memcpy(&mfd, CMSG_DATA(CMSG_FIRSTHDR(&mh)), sizeof mfd);
        struct stat st;
        if (fstat(mfd, &st) < 0 || fcntl(mfd, F_GET_SEALS) != SEALS)
            s_fail("not sealed");
        void *p = mmap(NULL, size, PROT_READ, MAP_SHARED | MAP_POPULATE, mfd, 0);
        if (p == MAP_FAILED)
            s_fail("mmap");
        s_check(p, size);
        munmap(p, size);
        close(mfd);
    }
    s_sh->t1[0] = s_now();
    _exit(0);
}

static void s_raw_a(int fd, long n, size_t size, int memfd)
{
    s_sh->t0 = s_now();
    for (long i = 0; i < n; i++) {
        if (!memfd) {
            for (size_t put = 0; put < size;) {
                ssize_t k = write(fd, s_payload + put, size - put);
                if (k <= 0)
                    s_fail("write");
                put += (size_t) k;
            }
            continue;
        }
        int mfd = memfd_create("floor", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (mfd < 0 || write(mfd, s_payload, size) != (ssize_t) size ||
            fcntl(mfd, F_ADD_SEALS, SEALS) < 0)
            s_fail("memfd");
        union {
            struct cmsghdr h;
            char room[CMSG_SPACE(sizeof (int))];
        } ctl;
        struct iovec iov = { "x", 1 };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl,
                             .msg_controllen = sizeof ctl };
        ctl.h = (struct cmsghdr) { .cmsg_len = CMSG_LEN(sizeof (int)), .cmsg_level = SOL_SOCKET,
                                   .cmsg_type = SCM_RIGHTS };
        memcpy(CMSG_DATA(&ctl.h), &mfd, sizeof mfd);
        if (sendmsg(fd, &mh, 0) != 1)
            s_fail("sendmsg");
        close(mfd);
    }
    _exit(0);
}

enum { V_SHM, V_COPY, V_FLOOR, V_SOCKET };
static const char *const s_vname[] = { "shm", "copy", "floor", "socket" };

/* One run of variant v: n payloads of size (subs > 0: a publish to subs
   subscribers). node: its pid and socket, for the node variants. */
static int s_run(int v, long n, size_t size, int subs, pid_t node, const char *sock,
                 result_t *ret)
{
    memset((void *) s_sh, 0, sizeof *s_sh);
    int nb = subs ? subs : 1;
    int sp[2] = { -1, -1 };
    if (v >= V_FLOOR && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
        return -1;
    double cpu0 = s_rusage_children(), node0 = node > 0 ? s_proc_cpu(node) : 0;
    pid_t pids[MAX_SUBS + 1];
    for (int i = 0; i < nb; i++) {
        if ((pids[i] = fork()) == 0) {
            if (v >= V_FLOOR) {
                close(sp[0]);
                s_raw_b(sp[1], n, size, v == V_FLOOR);
            }
            s_node_b(sock, n, size, subs, i);
        }
    }
    while (s_sh->ready < nb && !s_sh->failed)
        usleep(1000);
    if ((pids[nb] = fork()) == 0) {
        if (v >= V_FLOOR) {
            close(sp[1]);
            s_raw_a(sp[0], n, size, v == V_FLOOR);
        }
        s_node_a(sock, n, size, subs > 0);
    }
    if (sp[0] >= 0) {
        close(sp[0]);
        close(sp[1]);
    }
    int ok = 1;
    for (int i = 0; i <= nb; i++) {
        int st;
        waitpid(pids[i], &st, 0);
        ok &= WIFEXITED(st) && WEXITSTATUS(st) == 0;
    }
    if (!ok || s_sh->failed)
        return -1;
    double t1 = 0;
    for (int i = 0; i < nb; i++)
        t1 = s_sh->t1[i] > t1 ? s_sh->t1[i] : t1;
    ret->secs = t1 - s_sh->t0;
    ret->cpu_clients = s_rusage_children() - cpu0;
    ret->cpu_node = node > 0 ? s_proc_cpu(node) - node0 : 0;
    return 0;
}

static int s_cmp(const void *a, const void *b)
{
    double x = ((const result_t *) a)->secs, y = ((const result_t *) b)->secs;
    return x < y ? -1 : x > y;
}

/* Median of rounds runs. */
static int s_median(int v, long n, size_t size, int subs, pid_t node, const char *sock,
                    int rounds, result_t *ret)
{
    result_t r[16];
    for (int i = 0; i < rounds; i++)
        if (s_run(v, n, size, subs, node, sock, &r[i]) < 0)
            return -1;
    qsort(r, (size_t) rounds, sizeof r[0], s_cmp);
    *ret = r[rounds / 2];
    return 0;
}

int main(int argc, char **argv)
{
    int rounds = 5, quick = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else {
            fprintf(stderr, "usage: IPC_NODE=ipc-node %s [--rounds R] [--quick]\n", argv[0]);
            return 2;
        }
    }
    if (rounds < 1 || rounds > 15)
        rounds = 5;
    s_node_bin = getenv("IPC_NODE");
    if (!s_node_bin) {
        fprintf(stderr, "bench_shm: set IPC_NODE to the ipc-node binary\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    s_sh = mmap(NULL, sizeof *s_sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    strcpy(s_dir, "/tmp/bench-shm-XXXXXX");
    if (s_sh == MAP_FAILED || !mkdtemp(s_dir))
        return 1;
    s_payload = malloc(16u << 20);
    for (size_t i = 0; i < 16u << 20; i++)
        s_payload[i] = (uint8_t) (i * 7 + 3);
    char sock_shm[108], sock_copy[108];
    snprintf(sock_shm, sizeof sock_shm, "%s/shm.sock", s_dir);
    snprintf(sock_copy, sizeof sock_copy, "%s/copy.sock", s_dir);
    pid_t n_shm = s_node_start(sock_shm, "1"), n_copy = s_node_start(sock_copy, "0");
    if (n_shm < 0 || n_copy < 0) {
        fprintf(stderr, "bench_shm: cannot start %s (log in %s)\n", s_node_bin, s_dir);
        return 1;
    }
    printf("bench_shm: %d rounds, medians; MB/s of payload; CPU per message (ms) of the "
           "clients together and of the node\n", rounds);
    static const size_t sizes[] = { 16384, 65536, 262144, 1u << 20, 4u << 20, 16u << 20 };
    int rc = 0;
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0] && rc == 0; k++) {
        size_t size = sizes[k];
        long n = (long) ((quick ? 64u << 20 : 512u << 20) / size);
        n = n > 20000 ? 20000 : n < 16 ? 16 : n;
        result_t r[4];
        for (int v = 0; v < 4 && rc == 0; v++)
            rc = s_median(v, n, size, 0, v == V_SHM ? n_shm : v == V_COPY ? n_copy : 0,
                          v == V_SHM ? sock_shm : sock_copy, rounds, &r[v]);
        if (rc < 0)
            break;
        printf("%8zu B x %5ld:", size, n);
        for (int v = 0; v < 4; v++)
            printf("  %s %7.0f MB/s (cpu %.3f+%.3f)", s_vname[v], n * (double) size / r[v].secs / 1e6,
                   r[v].cpu_clients / n * 1e3, r[v].cpu_node / n * 1e3);
        printf("\n          shm/floor %.2fx  shm/copy %.2fx  floor/socket %.2fx\n",
               r[V_FLOOR].secs / r[V_SHM].secs, r[V_COPY].secs / r[V_SHM].secs,
               r[V_SOCKET].secs / r[V_FLOOR].secs);
        fflush(stdout);
    }
    for (int v = V_SHM; v <= V_COPY && rc == 0; v++) {
        result_t r[2];
        long n = quick ? 64 : 256;
        for (int k = 0; k < 2 && rc == 0; k++)
            rc = s_median(v, n, 1u << 20, k ? MAX_SUBS : 1, v == V_SHM ? n_shm : n_copy,
                          v == V_SHM ? sock_shm : sock_copy, rounds, &r[k]);
        for (int k = 0; k < 2 && rc == 0; k++)
            printf("publish 1 MiB %s to %2d subscribers x %ld: %.1f us per publish (all "
                   "received), cpu %.3f+%.3f ms per publish\n", s_vname[v], k ? MAX_SUBS : 1, n,
                   r[k].secs / n * 1e6, r[k].cpu_clients / n * 1e3, r[k].cpu_node / n * 1e3);
        if (rc == 0)
            printf("          %s: 10 subscribers / 1 subscriber %.2fx\n", s_vname[v],
                   r[1].secs / r[0].secs);
        fflush(stdout);
    }
    s_node_stop(n_shm);
    s_node_stop(n_copy);
    if (rc < 0)
        fprintf(stderr, "bench_shm: a run failed (node log in %s)\n", s_dir);
    else {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "bench_shm: could not remove %s\n", s_dir);
    }
    return rc < 0;
}
