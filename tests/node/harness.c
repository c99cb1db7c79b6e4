/*  harness.c: runs a real ipc-node for a test; see harness.h. */

#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#define MAX_HELPERS 64
#define MAX_ARGS    32

extern char **environ;

/* What the watchdog must clean up; plain globals so the handler may read
   them. */
static volatile pid_t s_node_pid;
static char s_node_dir[64];
static char s_node_sock[108];
static char s_node_log[128];
static volatile pid_t s_helpers[MAX_HELPERS];
static char s_test[128];
/* RLIMIT_NOFILE for the nodes spawned from now on (harness_node_nofile). */
static long s_child_nofile;
/* Nodes of multi-node tests (harness_start_named), for the watchdog. */
static volatile pid_t s_nodes_pid[HARNESS_MAX_NODES];
static char s_nodes_dir[HARNESS_MAX_NODES][64];

int64_t harness_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void s_sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

int harness_scale(void)
{
    const char *s = getenv("TEST_TIMEOUT_SCALE");
    long v = s ? strtol(s, NULL, 10) : 1;
    return v >= 1 && v <= 100 ? (int) v : 1;
}

static unsigned s_scale(void)
{
    return (unsigned) harness_scale();
}

const char *harness_binary(void)
{
    const char *s = getenv("IPC_NODE");
    return s && *s ? s : "./ipc-node";
}

static void s_track(pid_t pid)
{
    for (int i = 0; i < MAX_HELPERS; i++)
        if (s_helpers[i] == 0) {
            s_helpers[i] = pid;
            return;
        }
    fprintf(stderr, "harness: too many helpers, pid %d untracked\n", (int) pid);
}

static void s_untrack(pid_t pid)
{
    for (int i = 0; i < MAX_HELPERS; i++)
        if (s_helpers[i] == pid)
            s_helpers[i] = 0;
}

/* Removes the files in dir and dir itself (one level: all we create). */
static void s_rmdir(const char *dir)
{
    if (!dir[0])
        return;
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            char path[512];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            if (unlink(path) < 0 && errno == EISDIR)
                rmdir(path);
        }
        closedir(d);
    }
    rmdir(dir);
}

static void s_dump_log(const node_t *node)
{
    FILE *f = fopen(node->log, "r");
    if (!f)
        return;
    fprintf(stderr, "---- ipc-node stderr (%s) ----\n", node->log);
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, f) && n++ < 200)
        fputs(line, stderr);
    fprintf(stderr, "---- end ----\n");
    fclose(f);
}

/* fork + exec the binary with argv[1..], stdout+stderr to errfile, the
   child dies with us (PDEATHSIG). */
static pid_t s_spawn(char *const argv[], const char *errfile, const char *env_extra)
{
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        signal(SIGALRM, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        int in = open("/dev/null", O_RDONLY);
        if (in >= 0) {
            dup2(in, 0);
            close(in);
        }
        int out = open(errfile ? errfile : "/dev/null",
                       O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (out >= 0) {
            dup2(out, 1);
            dup2(out, 2);
            close(out);
        }
        if (s_child_nofile > 0) {
            struct rlimit rl = { (rlim_t) s_child_nofile, (rlim_t) s_child_nofile };
            if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                fprintf(stderr, "harness: setrlimit(NOFILE, %ld): %s\n", s_child_nofile,
                        strerror(errno));
        }
        if (env_extra) {
            char kv[512];
            snprintf(kv, sizeof kv, "%s", env_extra);
            char *eq = strchr(kv, '=');
            if (eq) {
                *eq = 0;
                setenv(kv, eq + 1, 1);
            }
        }
        char *args[MAX_ARGS + 1];
        int n = 0;
        args[n++] = (char *) harness_binary();
        for (int i = 1; argv[i] && n < MAX_ARGS; i++)
            args[n++] = argv[i];
        args[n] = NULL;
        execve(args[0], args, environ);
        fprintf(stderr, "harness: exec %s: %s\n", args[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

int harness_waitpid(pid_t pid, int timeout_ms, int *ret_status)
{
    int64_t deadline = harness_now_ms() + timeout_ms;
    for (;;) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            if (ret_status)
                *ret_status = status;
            return 0;
        }
        if (r < 0 && errno != EINTR)
            return -errno;
        if (harness_now_ms() >= deadline)
            return -ETIMEDOUT;
        s_sleep_ms(5);
    }
}

static void s_forget(node_t *node);

/* Does something accept connections at path? */
static int s_accepts(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    int ok = connect(fd, (struct sockaddr *) &sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

int harness_prepare(node_t *ret)
{
    memset(ret, 0, sizeof *ret);
    snprintf(ret->dir, sizeof ret->dir, "/tmp/ipcnet-test-XXXXXX");
    if (!mkdtemp(ret->dir)) {
        int err = -errno;
        ret->dir[0] = 0;
        return err;
    }
    snprintf(ret->sock, sizeof ret->sock, "%s/node.sock", ret->dir);
    snprintf(ret->log, sizeof ret->log, "%s/node.log", ret->dir);
    memcpy(s_node_dir, ret->dir, sizeof s_node_dir);
    memcpy(s_node_sock, ret->sock, sizeof s_node_sock);
    memcpy(s_node_log, ret->log, sizeof s_node_log);
    return 0;
}

int harness_launch(node_t *node, char *const extra[], int via_env)
{
    char *argv[MAX_ARGS + 1];
    int n = 0;
    argv[n++] = "ipc-node";
    if (!via_env) {
        argv[n++] = "--socket";
        argv[n++] = node->sock;
    }
    argv[n++] = "--name";
    argv[n++] = HARNESS_NODE_NAME;
    /* Any free TCP port and a state directory of its own, so that nodes of
       tests running at once never meet. */
    argv[n++] = "--port";
    argv[n++] = "0";
    argv[n++] = "--state-dir";
    argv[n++] = node->dir;
    argv[n++] = "--no-mdns";
    /* Root stays root: the node's files are in the test's own directory,
       which only root may write (a test of dropping root says --user). */
    argv[n++] = "--no-drop";
    /* A cluster of this test process's own: a node of another test that
       happens to dial a port of ours (reused after a kill) is refused. */
    static char cluster[32];
    snprintf(cluster, sizeof cluster, "test-%d", (int) getpid());
    argv[n++] = "--cluster";
    argv[n++] = cluster;
    for (int i = 0; extra && extra[i] && n < MAX_ARGS; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;

    char env[200];
    snprintf(env, sizeof env, "IPCNET_SOCKET=%s", node->sock);
    pid_t pid = s_spawn(argv, node->log, via_env ? env : NULL);
    if (pid < 0) {
        s_forget(node);
        return (int) pid;
    }
    node->pid = pid;
    s_node_pid = pid;

    int64_t deadline = harness_now_ms() + HARNESS_START_MS * (int) s_scale();
    for (;;) {
        if (s_accepts(node->sock))
            return 0;
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            fprintf(stderr, "harness: ipc-node exited at start (status 0x%x)\n", status);
            s_dump_log(node);
            node->pid = 0;
            s_node_pid = 0;
            s_forget(node);
            return -ECHILD;
        }
        if (harness_now_ms() >= deadline) {
            fprintf(stderr, "harness: ipc-node did not accept on %s within %d ms\n",
                    node->sock, HARNESS_START_MS);
            s_dump_log(node);
            harness_kill(node);
            return -ETIMEDOUT;
        }
        s_sleep_ms(10);
    }
}

static int s_start(node_t *ret, char *const extra[], int via_env)
{
    int rc = harness_prepare(ret);
    return rc < 0 ? rc : harness_launch(ret, extra, via_env);
}

int harness_startv(node_t *ret, char *const extra[])
{
    return s_start(ret, extra, 0);
}

int harness_start(node_t *ret, ...)
{
    char *extra[MAX_ARGS + 1];
    int n = 0;
    va_list ap;
    va_start(ap, ret);
    char *a;
    while ((a = va_arg(ap, char *)) && n < MAX_ARGS)
        extra[n++] = a;
    va_end(ap);
    extra[n] = NULL;
    return s_start(ret, extra, 0);
}

int harness_start_env(node_t *ret)
{
    return s_start(ret, NULL, 1);
}

pid_t harness_spawn_node(char *const argv[], const char *errfile, const char *env_extra)
{
    pid_t pid = s_spawn(argv, errfile, env_extra);
    if (pid > 0)
        s_track(pid);
    return pid;
}

static void s_untrack_node(const node_t *node);

static void s_forget(node_t *node)
{
    s_untrack_node(node);
    if (s_node_pid == node->pid)
        s_node_pid = 0;
    node->pid = 0;
    s_rmdir(node->dir);
    node->dir[0] = 0;
    s_node_dir[0] = 0;
}

void harness_cleanup(node_t *node)
{
    if (node->pid > 0)
        harness_kill(node);
    else
        s_forget(node);
}

void harness_kill(node_t *node)
{
    if (node->pid > 0) {
        kill(node->pid, SIGKILL);
        harness_waitpid(node->pid, 5000, &node->status);
    }
    s_forget(node);
}

int harness_alive(node_t *node)
{
    if (node->pid <= 0)
        return 0;
    int status;
    pid_t r = waitpid(node->pid, &status, WNOHANG);
    if (r == node->pid) {
        node->status = status;
        fprintf(stderr, "harness: ipc-node %d died (status 0x%x)\n", (int) node->pid, status);
        s_dump_log(node);
        if (s_node_pid == node->pid)
            s_node_pid = 0;
        for (int i = 0; i < HARNESS_MAX_NODES; i++)
            if (s_nodes_pid[i] == node->pid)
                s_nodes_pid[i] = 0;
        node->pid = 0;
        return 0;
    }
    return 1;
}

/* Waits (bounded) for a node sent sig to exit, and judges how: exit 0 and
   its socket removed. Forgets it. Returns 0 or -1. */
static int s_reap(node_t *node, int sig)
{
    int rc = 0;
    int status = 0;
    if (harness_waitpid(node->pid, HARNESS_STOP_MS * (int) s_scale(), &status) < 0) {
        fprintf(stderr, "harness: ipc-node %d ignored signal %d for %d ms, killing it\n",
                (int) node->pid, sig, HARNESS_STOP_MS);
        kill(node->pid, SIGKILL);
        harness_waitpid(node->pid, 5000, &status);
        rc = -1;
    } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        if (WIFSIGNALED(status))
            fprintf(stderr, "harness: ipc-node died of signal %d on signal %d\n",
                    WTERMSIG(status), sig);
        else
            fprintf(stderr, "harness: ipc-node exited %d on signal %d, not 0\n",
                    WEXITSTATUS(status), sig);
        rc = -1;
    }
    node->status = status;
    if (rc == 0 && access(node->sock, F_OK) == 0) {
        fprintf(stderr, "harness: ipc-node left its socket %s behind\n", node->sock);
        rc = -1;
    }
    if (rc < 0 || getenv("HARNESS_VERBOSE"))
        s_dump_log(node);
    s_forget(node);
    return rc;
}

int harness_stop(node_t *node)
{
    return harness_stop_with(node, SIGTERM);
}

int harness_stop_with(node_t *node, int sig)
{
    if (node->pid <= 0) {
        fprintf(stderr, "harness: ipc-node was already gone at stop (status 0x%x)\n",
                node->status);
        s_dump_log(node);
        s_forget(node);
        return -1;
    }
    kill(node->pid, sig);
    return s_reap(node, sig);
}

pid_t harness_fork(void)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        /* A helper never outlives its test: it dies with the test process
           and has its own alarm in case the parent forgets it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        signal(SIGALRM, SIG_DFL);
        alarm(60 * s_scale());
        memset((void *) s_helpers, 0, sizeof s_helpers);
        s_node_pid = 0;
        s_node_dir[0] = 0;
    } else if (pid > 0)
        s_track(pid);
    return pid;
}

int harness_reap(pid_t pid, int timeout_ms)
{
    int status = 0;
    int rc = harness_waitpid(pid, timeout_ms * (int) s_scale(), &status);
    if (rc < 0) {
        fprintf(stderr, "harness: helper %d did not exit within %d ms, killing it\n",
                (int) pid, timeout_ms);
        kill(pid, SIGKILL);
        harness_waitpid(pid, 5000, &status);
        s_untrack(pid);
        return -1;
    }
    s_untrack(pid);
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return -1;
}

void harness_reap_all(void)
{
    for (int i = 0; i < MAX_HELPERS; i++) {
        pid_t pid = s_helpers[i];
        if (pid > 0) {
            kill(pid, SIGKILL);
            harness_waitpid(pid, 5000, NULL);
            s_helpers[i] = 0;
        }
    }
}

static void s_on_alarm(int sig)
{
    (void) sig;
    static const char a[] = "\nharness: WATCHDOG: test '";
    static const char b[] = "' hung; killing the node and helpers\n";
    if (write(2, a, sizeof a - 1) < 0 || write(2, s_test, strlen(s_test)) < 0 ||
        write(2, b, sizeof b - 1) < 0) {
        /* nothing to do */
    }
    if (s_node_pid > 0)
        kill(s_node_pid, SIGKILL);
    for (int i = 0; i < MAX_HELPERS; i++)
        if (s_helpers[i] > 0)
            kill(s_helpers[i], SIGKILL);
    if (s_node_dir[0]) {
        unlink(s_node_sock);
        unlink(s_node_log);
        rmdir(s_node_dir);
    }
    for (int i = 0; i < HARNESS_MAX_NODES; i++) {
        if (s_nodes_pid[i] > 0)
            kill(s_nodes_pid[i], SIGKILL);
        if (s_nodes_dir[i][0]) {
            static const char *files[] = { "node.sock", "node.log", "node.id", "node.id.tmp" };
            char path[128];
            for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
                /* no snprintf in a signal handler */
                size_t n = strlen(s_nodes_dir[i]), m = strlen(files[k]);
                if (n + 1 + m + 1 > sizeof path)
                    continue;
                memcpy(path, s_nodes_dir[i], n);
                path[n] = '/';
                memcpy(path + n + 1, files[k], m + 1);
                unlink(path);
            }
            rmdir(s_nodes_dir[i]);
        }
    }
    _exit(1);
}

void harness_watchdog(const char *test, unsigned seconds)
{
    if (seconds == 0) {
        alarm(0);
        return;
    }
    snprintf(s_test, sizeof s_test, "%s", test ? test : "?");
    struct sigaction sa = { .sa_handler = s_on_alarm };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    alarm(seconds * s_scale());
}

ipcnet_t *harness_connect(const node_t *node, const char *label)
{
    ipcnet_t *c = NULL;
    int rc = ipcnet_connect(&c, node->sock, label, 0);
    if (rc < 0) {
        fprintf(stderr, "harness: ipcnet_connect(%s): %s\n", node->sock, ipcnet_strerror(rc));
        return NULL;
    }
    return c;
}

void harness_sync(ipcnet_t *c)
{
    char *text = NULL;
    int rc = ipcnet_query(c, IPCNET_Q_STATS, &text);
    if (rc < 0)
        fprintf(stderr, "harness: sync query failed: %s\n", ipcnet_strerror(rc));
    free(text);
}

int harness_recv(ipcnet_t *c, ipcnet_msg_t *ret, int timeout_ms)
{
    return ipcnet_recv(c, ret, timeout_ms);
}

long harness_rss_kib(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int) pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

/* Built with ASan, as the node of the same build is: clang links its
   runtime statically, so the node's maps do not show it. */
#if defined(__SANITIZE_ADDRESS__)
#define BUILT_WITH_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BUILT_WITH_ASAN 1
#endif
#endif

int harness_instrumented(pid_t pid)
{
#ifdef BUILT_WITH_ASAN
    (void) pid;
    return 1;
#endif
    const char *env = getenv("TEST_NO_RSS");
    if (env && *env && strcmp(env, "0") != 0)
        return 1;
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/%d/maps", (int) pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int found = 0;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, "libasan") || strstr(line, "vgpreload") ||
                strstr(line, "memcheck") || strstr(line, "libtsan");
    fclose(f);
    return found;
}

long harness_raise_nofile(long want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -1;
    if ((long) rl.rlim_cur < want) {
        rlim_t n = (rlim_t) want;
        if (rl.rlim_max != RLIM_INFINITY && n > rl.rlim_max)
            n = rl.rlim_max;
        rl.rlim_cur = n;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return (long) rl.rlim_cur;
}

void harness_node_nofile(long limit)
{
    s_child_nofile = limit;
}

long long harness_cpu_ms(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int) pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    /* After "pid (comm) ": the comm may hold spaces, so from its last ')'. */
    const char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    unsigned long long utime, stime;
    /* state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
               &utime, &stime) != 2)
        return -1;
    long hz = sysconf(_SC_CLK_TCK);
    return (long long) ((utime + stime) * 1000ull / (unsigned long long) (hz > 0 ? hz : 100));
}

int harness_count_lines(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int count = 0;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) >= 0)
        count += strstr(line, needle) != NULL;
    free(line);
    fclose(f);
    return count;
}

/* --- raw protocol ----------------------------------------------------- */

int harness_raw_connect(const node_t *node)
{
    if (!node->sock[0])
        return -EINVAL;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", node->sock);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

int harness_raw_write(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    int64_t deadline = harness_now_ms() + 5000;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                int left = (int) (deadline - harness_now_ms());
                if (left <= 0)
                    return -ETIMEDOUT;
                struct pollfd pfd = { fd, POLLOUT, 0 };
                poll(&pfd, 1, left);
                continue;
            }
            return -errno;
        }
        p += n;
        len -= (size_t) n;
    }
    return 0;
}

int harness_raw_frame(int fd, uint8_t type, uint16_t flags, uint32_t seq,
                      uint32_t aux, const char *s1, const char *s2,
                      const void *payload, size_t size)
{
    uint8_t head[WIRE_HEAD_MAX];
    size_t n = wire_encode(head, type, flags, seq, aux, s1, s1 ? strlen(s1) : 0,
                           s2, s2 ? strlen(s2) : 0, size);
    int rc = harness_raw_write(fd, head, n);
    if (rc == 0 && size > 0)
        rc = harness_raw_write(fd, payload, size);
    return rc;
}

/* Waits until fd is readable or the deadline passes. Returns 1 when it
   is readable, 0 to try again (interrupted), -ETIMEDOUT, or -errno. */
static int s_poll_in(int fd, int64_t deadline)
{
    int left = (int) (deadline - harness_now_ms());
    if (left <= 0)
        return -ETIMEDOUT;
    struct pollfd pfd = { fd, POLLIN, 0 };
    int r = poll(&pfd, 1, left);
    if (r < 0 && errno != EINTR)
        return -errno;
    return r > 0;
}

/* Reads exactly len bytes before the deadline. 0, -ECONNRESET on EOF. */
static int s_read_full(int fd, uint8_t *buf, size_t len, int64_t deadline, int *ret_eof)
{
    size_t have = 0;
    while (have < len) {
        int r = s_poll_in(fd, deadline);
        if (r < 0)
            return r;
        if (r == 0)
            continue;
        ssize_t n = recv(fd, buf + have, len - have, MSG_DONTWAIT);
        if (n == 0) {
            *ret_eof = 1;
            return 0;
        }
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            if (errno == ECONNRESET) {
                *ret_eof = 1;
                return 0;
            }
            return -errno;
        }
        have += (size_t) n;
    }
    return 0;
}

ssize_t harness_raw_read_frame(int fd, uint8_t *buf, size_t cap, int timeout_ms,
                               wire_frame_t *ret)
{
    int64_t deadline = harness_now_ms() + timeout_ms;
    int eof = 0;
    if (cap < WIRE_MIN)
        return -EINVAL;
    int rc = s_read_full(fd, buf, 5, deadline, &eof);
    if (rc < 0)
        return rc;
    if (eof)
        return 0;
    ssize_t len = wire_peek(buf, 5, cap);
    if (len <= 0)
        return len < 0 ? len : -EBADMSG;
    rc = s_read_full(fd, buf + 5, (size_t) len - 5, deadline, &eof);
    if (rc < 0)
        return rc;
    if (eof)
        return 0;
    if (wire_decode(buf, (size_t) len, ret) < 0)
        return -EBADMSG;
    return len;
}

int harness_raw_hello(int fd, const char *label)
{
    int rc = harness_raw_frame(fd, WIRE_HELLO, 0, 1, WIRE_VERSION, label, NULL, NULL, 0);
    if (rc < 0)
        return rc;
    uint8_t buf[WIRE_HEAD_MAX];
    wire_frame_t f;
    ssize_t n = harness_raw_read_frame(fd, buf, sizeof buf, 5000, &f);
    if (n <= 0)
        return n == 0 ? -ECONNRESET : (int) n;
    return f.type == WIRE_WELCOME ? 0 : -EPROTO;
}

int harness_raw_wait_closed(int fd, int timeout_ms)
{
    int64_t deadline = harness_now_ms() + timeout_ms;
    static uint8_t sink[65536];
    for (;;) {
        int r = s_poll_in(fd, deadline);
        if (r < 0)
            return r;
        if (r == 0)
            continue;
        ssize_t n = recv(fd, sink, sizeof sink, MSG_DONTWAIT);
        if (n == 0)
            return 0;
        if (n < 0 && (errno == ECONNRESET || errno == EPIPE))
            return 0;
        if (n < 0 && errno != EINTR && errno != EAGAIN)
            return -errno;
    }
}

/* --- several nodes ------------------------------------------------------ */

static void s_untrack_node(const node_t *node)
{
    if (!node->dir[0])
        return;
    for (int i = 0; i < HARNESS_MAX_NODES; i++)
        if (strcmp(s_nodes_dir[i], node->dir) == 0) {
            s_nodes_pid[i] = 0;
            s_nodes_dir[i][0] = 0;
        }
}

/* Remembers node (its directory, and its pid once it has one). */
static void s_track_node(const node_t *node)
{
    int free_slot = -1;
    for (int i = 0; i < HARNESS_MAX_NODES; i++) {
        if (strcmp(s_nodes_dir[i], node->dir) == 0) {
            s_nodes_pid[i] = node->pid;
            return;
        }
        if (free_slot < 0 && !s_nodes_dir[i][0])
            free_slot = i;
    }
    if (free_slot < 0) {
        fprintf(stderr, "harness: too many nodes, %s untracked\n", node->dir);
        return;
    }
    memcpy(s_nodes_dir[free_slot], node->dir, sizeof s_nodes_dir[free_slot]);
    s_nodes_pid[free_slot] = node->pid;
}

static int s_launch_named(node_t *node, const char *name, char *const extra[])
{
    char *args[MAX_ARGS + 1];
    int n = 0;
    args[n++] = "--name";
    args[n++] = (char *) name;
    args[n++] = "--bind";
    args[n++] = "127.0.0.1";
    args[n++] = "--no-mdns";
    for (int i = 0; extra && extra[i] && n < MAX_ARGS - 9; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    s_track_node(node);
    int rc = harness_launch(node, args, 0);
    if (rc == 0)
        s_track_node(node);
    return rc;
}

int harness_start_named(node_t *ret, const char *name, char *const extra[])
{
    int rc = harness_prepare(ret);
    if (rc < 0)
        return rc;
    return s_launch_named(ret, name, extra);
}

int harness_restart_named(node_t *node, const char *name, char *const extra[])
{
    if (node->pid > 0 || !node->dir[0])
        return -EINVAL;
    memcpy(s_node_dir, node->dir, sizeof s_node_dir);
    memcpy(s_node_sock, node->sock, sizeof s_node_sock);
    memcpy(s_node_log, node->log, sizeof s_node_log);
    return s_launch_named(node, name, extra);
}

void harness_crash(node_t *node)
{
    if (node->pid <= 0)
        return;
    kill(node->pid, SIGKILL);
    harness_waitpid(node->pid, 5000, &node->status);
    for (int i = 0; i < HARNESS_MAX_NODES; i++)
        if (s_nodes_pid[i] == node->pid)
            s_nodes_pid[i] = 0;
    if (s_node_pid == node->pid)
        s_node_pid = 0;
    node->pid = 0;
}

int harness_stop_wait(node_t *node, int sig)
{
    if (node->pid <= 0) {
        fprintf(stderr, "harness: ipc-node was already gone (status 0x%x)\n", node->status);
        s_dump_log(node);
        s_forget(node);
        return -1;
    }
    return s_reap(node, sig);
}

int harness_node_port(const node_t *node)
{
    ipcnet_t *c = harness_connect(node, "port-probe");
    if (!c)
        return -ECONNREFUSED;
    char *text = NULL;
    int rc = ipcnet_query(c, IPCNET_Q_PEERS, &text);
    ipcnet_close(&c);
    if (rc < 0)
        return rc;
    /* name \t id \t address \t source ...: the first line is the node. */
    rc = -EBADMSG;
    char *line = text, *end = strchr(text, '\n');
    if (end)
        *end = 0;
    char *tab1 = strchr(line, '\t');
    char *tab2 = tab1 ? strchr(tab1 + 1, '\t') : NULL;
    char *tab3 = tab2 ? strchr(tab2 + 1, '\t') : NULL;
    if (tab3) {
        *tab3 = 0;
        char *colon = strrchr(tab2 + 1, ':');
        long port = colon ? strtol(colon + 1, NULL, 10) : 0;
        if (port > 0 && port < 65536 && strstr(tab3 + 1, "self") == tab3 + 1)
            rc = (int) port;
    }
    free(text);
    return rc;
}

/* Can a TCP socket bind 127.0.0.1:port now? */
static int s_port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = { .sin_family = AF_INET };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t) port);
    int ok = bind(fd, (struct sockaddr *) &sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

int harness_free_port(void)
{
    /* Below the kernel's ephemeral range: no outgoing connection (say, a
       peer dialling this very port while its node is down) can take it
       as its source port and keep a restarted node from binding it. */
    int low = 32768;
    FILE *fp = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (fp) {
        if (fscanf(fp, "%d", &low) != 1)
            low = 32768;
        fclose(fp);
    }
    int first = 10000, span = low - first;
    if (span < 1000) {
        first = 1024;
        span = low - first;
    }
    if (span < 100)
        return -EADDRNOTAVAIL;
    uint32_t x = (uint32_t) getpid() * 2654435761u ^ (uint32_t) harness_now_ms();
    for (int tries = 0; tries < 200; tries++) {
        x = x * 1103515245u + 12345u;
        int port = first + (int) ((x >> 8) % (uint32_t) span);
        if (s_port_free(port))
            return port;
    }
    return -EADDRINUSE;
}

/* --- expectations, for cmocka tests -------------------------------------------- */

static int s_wait_ms = 5000;    /* for what must come */
static int s_quiet_ms = 300;    /* for what must not */

void harness_expect_waits(int wait_ms, int quiet_ms)
{
    s_wait_ms = wait_ms;
    s_quiet_ms = quiet_ms;
}

const char *harness_kind_name(ipcnet_kind_t kind)
{
    switch (kind) {
    case IPCNET_MSG_SEND:    return "SEND";
    case IPCNET_MSG_REQUEST: return "REQUEST";
    case IPCNET_MSG_REPLY:   return "REPLY";
    case IPCNET_MSG_PUBLISH: return "PUBLISH";
    case IPCNET_MSG_EVENT:   return "EVENT";
    case IPCNET_MSG_ERROR:   return "ERROR";
    case IPCNET_MSG_MONITOR: return "MONITOR";
    case IPCNET_MSG_KEY:     return "KEY";
    }
    return "?";
}

void harness_expect(ipcnet_t *c, ipcnet_kind_t kind, ipcnet_msg_t *ret)
{
    int rc = ipcnet_recv(c, ret, s_wait_ms);
    if (rc < 0)
        fail_msg("expected a %s message, got %s", harness_kind_name(kind),
                 ipcnet_strerror(rc));
    if (ret->kind != kind)
        fail_msg("expected a %s message, got %s (name '%s', error %d)",
                 harness_kind_name(kind), harness_kind_name(ret->kind), ret->name, ret->error);
}

void harness_expect_text(ipcnet_t *c, ipcnet_kind_t kind, const char *name,
                         const char *text)
{
    ipcnet_msg_t m;
    harness_expect(c, kind, &m);
    if (name)
        assert_string_equal(m.name, name);
    if (m.size != strlen(text) || memcmp(m.data, text, m.size) != 0)
        fail_msg("expected '%s', got '%.*s'", text, (int) m.size, (const char *) m.data);
}

void harness_expect_nothing(ipcnet_t *c)
{
    ipcnet_msg_t m;
    int rc = ipcnet_recv(c, &m, s_quiet_ms);
    if (rc == 0)
        fail_msg("expected nothing, got a %s message (name '%s', event %d, error %d, "
                 "%zu bytes)", harness_kind_name(m.kind), m.name, m.event, m.error, m.size);
    assert_true(rc == -ETIMEDOUT || rc == -EAGAIN);
}

void harness_bind(ipcnet_t *c, const char *name)
{
    int rc = ipcnet_bind(c, name);
    if (rc < 0)
        fail_msg("bind '%s': %s", name, ipcnet_strerror(rc));
}

void harness_send(ipcnet_t *c, const char *dest, const char *text, int flags)
{
    int rc = ipcnet_send(c, dest, text, strlen(text), flags);
    if (rc < 0)
        fail_msg("send to '%s': %s", dest, ipcnet_strerror(rc));
}

void harness_wait_ready(int fd)
{
    struct pollfd pfd = { fd, POLLIN, 0 };
    int r = poll(&pfd, 1, HARNESS_READY_MS);
    assert_int_equal(r, 1);
    char b;
    assert_int_equal(read(fd, &b, 1), 1);
}

char *harness_read_file(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return strdup("");
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    buf[n] = 0;
    fclose(fp);
    return strdup(buf);
}

/* --- listings -------------------------------------------------------------------- */

/* Splits line (modified) at tabs into at most max fields; returns how
   many. */
static int s_fields(char *line, char **field, int max)
{
    int n = 0;
    for (char *p = line; n < max; ) {
        field[n++] = p;
        p = strchr(p, '\t');
        if (!p)
            break;
        *p++ = 0;
    }
    return n;
}

/* Calls fn for each row of a listing, split into fields. */
static void s_rows(char *text, int (*fn) (char **fl, int n, int row, void *arg), void *arg)
{
    int row = 0;
    for (char *line = text; line && *line; row++) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = 0;
        char *fl[9];
        int n = s_fields(line, fl, 9);
        if (fn(fl, n, row, arg))
            break;
        line = nl ? nl + 1 : NULL;
    }
}

typedef struct {
    const char *self, *name;
    harness_peer_t *ret;
    int found, up;
} peer_find_t;

static int s_peer_row(char **fl, int n, int row, void *arg)
{
    peer_find_t *p = arg;
    if (n != 9)
        fail_msg("peers row %d has %d fields, not 9", row, n);
    if (row == 0 && p->self && (strcmp(fl[0], p->self) || strcmp(fl[3], "self")))
        fail_msg("the first peers row is '%s' from '%s', not %s itself", fl[0], fl[3], p->self);
    if (row > 0 && strcmp(fl[4], "up") == 0)
        p->up++;
    if (p->name && !p->found && strcmp(fl[0], p->name) == 0) {
        p->found = 1;
        if (p->ret) {
            snprintf(p->ret->name, sizeof p->ret->name, "%s", fl[0]);
            snprintf(p->ret->id, sizeof p->ret->id, "%s", fl[1]);
            snprintf(p->ret->address, sizeof p->ret->address, "%s", fl[2]);
            snprintf(p->ret->source, sizeof p->ret->source, "%s", fl[3]);
            snprintf(p->ret->state, sizeof p->ret->state, "%s", fl[4]);
            p->ret->rtt_us = strtoll(fl[5], NULL, 10);
            p->ret->seen_ms = strtoll(fl[6], NULL, 10);
            snprintf(p->ret->key, sizeof p->ret->key, "%s", fl[7]);
            snprintf(p->ret->reason, sizeof p->ret->reason, "%s", fl[8]);
        }
    }
    return 0;
}

int harness_peer(ipcnet_t *q, const char *self, const char *name, harness_peer_t *ret)
{
    peer_find_t p = { self, name, ret, 0, 0 };
    char *t = harness_query(q, IPCNET_Q_PEERS);
    s_rows(t, s_peer_row, &p);
    free(t);
    return p.found;
}

int harness_peers_up(ipcnet_t *q)
{
    peer_find_t p = { NULL, NULL, NULL, 0, 0 };
    char *t = harness_query(q, IPCNET_Q_PEERS);
    s_rows(t, s_peer_row, &p);
    free(t);
    return p.up;
}

typedef struct {
    const char *name, *node, *holder, *label;
    int found;
} service_find_t;

static int s_service_row(char **fl, int n, int row, void *arg)
{
    service_find_t *s = arg;
    (void) row;
    if (n != 5)
        fail_msg("services row with %d fields, not 5", n);
    if (strcmp(fl[0], s->name) == 0 && strcmp(fl[1], s->node) == 0 &&
        (!s->holder || (strcmp(fl[2], s->holder) == 0 && strcmp(fl[3], s->label) == 0)))
        s->found = 1;
    return s->found;
}

int harness_has_service(ipcnet_t *q, const char *name, const char *node, const char *holder,
                        const char *label)
{
    service_find_t s = { name, node, holder, label, 0 };
    char *t = harness_query(q, IPCNET_Q_SERVICES);
    s_rows(t, s_service_row, &s);
    free(t);
    return s.found;
}

/* --- fixtures shared by the test programs -------------------------------------------- */

int harness_state_new(void **state, size_t size)
{
    void *f = calloc(1, size);
    if (!f)
        return -1;
    *state = f;
    return 0;
}

void harness_main(int argc, char **argv, int wait_ms, int quiet_ms)
{
    signal(SIGPIPE, SIG_IGN);
    harness_expect_waits(wait_ms, quiet_ms);
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
}

static ipcnet_t *s_clients[HARNESS_MAX_CLIENTS];

ipcnet_t *harness_client(const node_t *node, const char *name, const char *label)
{
    ipcnet_t *c = harness_connect(node, label);
    if (!c)
        fail_msg("cannot connect to node %s", name);
    for (int k = 0; k < HARNESS_MAX_CLIENTS; k++)
        if (!s_clients[k]) {
            s_clients[k] = c;
            return c;
        }
    ipcnet_close(&c);
    fail_msg("too many clients");
    return NULL;
}

ipcnet_t *harness_holder(const node_t *node, const char *name, const char *label,
                         const char *service)
{
    ipcnet_t *c = harness_client(node, name, label);
    harness_bind(c, service);
    return c;
}

void harness_client_close(ipcnet_t **c)
{
    for (int k = 0; k < HARNESS_MAX_CLIENTS; k++)
        if (s_clients[k] == *c)
            s_clients[k] = NULL;
    ipcnet_close(c);
}

void harness_close_clients(void)
{
    for (int k = 0; k < HARNESS_MAX_CLIENTS; k++)
        ipcnet_close(&s_clients[k]);
}

int harness_teardown_nodes(node_t *n, ipcnet_t **q, const char *const *names, int count)
{
    int rc = 0;
    harness_close_clients();
    for (int i = 0; i < count; i++)
        ipcnet_close(&q[i]);
    harness_reap_all();
    for (int i = 0; i < count; i++)
        if (n[i].pid > 0)
            kill(n[i].pid, SIGCONT);
    for (int i = count - 1; i >= 0; i--) {
        if (n[i].pid > 0) {
            if (harness_stop(&n[i]) < 0) {
                fprintf(stderr, "teardown: node %s did not stop cleanly\n",
                        names[i] ? names[i] : "?");
                rc = -1;
            }
        } else
            harness_cleanup(&n[i]);
    }
    return rc;
}

char *harness_query(ipcnet_t *q, int what)
{
    char *text = NULL;
    int rc = ipcnet_query(q, what, &text);
    if (rc < 0)
        fail_msg("query %d: %s", what, ipcnet_strerror(rc));
    assert_non_null(text);
    return text;
}

long long harness_stat(ipcnet_t *q, const char *key)
{
    char *t = harness_query(q, IPCNET_Q_STATS);
    size_t klen = strlen(key);
    long long v = -1;
    for (char *line = t; line && *line;) {
        if (strncmp(line, key, klen) == 0 && line[klen] == '\t') {
            v = strtoll(line + klen + 1, NULL, 10);
            break;
        }
        line = strchr(line, '\n');
        line = line ? line + 1 : NULL;
    }
    free(t);
    if (v < 0)
        fail_msg("the stats listing has no '%s'", key);
    return v;
}

ipcnet_t *harness_query_conn(const node_t *node, const char *name, ipcnet_t **q)
{
    if (!*q) {
        *q = harness_connect(node, "query");
        if (!*q)
            fail_msg("cannot connect to node %s for a query", name);
    }
    return *q;
}

int harness_fixed_port(void)
{
    int port = harness_free_port();
    if (port <= 0)
        fail_msg("no free port: %s", strerror(-port));
    return port;
}

pid_t harness_fork_holder(const node_t *node, const char *label, const char *service,
                          harness_holder_fn *fn, void *arg)
{
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = harness_fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        ipcnet_t *c = harness_connect(node, label);
        if (!c || ipcnet_bind(c, service) < 0)
            _exit(2);
        if (write(pfd[1], "r", 1) != 1)
            _exit(3);
        _exit(fn(c, arg));
    }
    close(pfd[1]);
    harness_wait_ready(pfd[0]);
    close(pfd[0]);
    return pid;
}

int harness_upper_holder(ipcnet_t *c, void *arg)
{
    const harness_upper_t *u = arg;
    for (int i = 0; i < u->requests; i++) {
        ipcnet_msg_t m;
        if (ipcnet_recv(c, &m, u->timeout_ms) < 0 || m.kind != IPCNET_MSG_REQUEST)
            return 4;
        char out[64];
        size_t n = m.size < sizeof out ? m.size : sizeof out;
        for (size_t k = 0; k < n; k++) {
            char ch = ((const char *) m.data)[k];
            out[k] = ch >= 'a' && ch <= 'z' ? (char) (ch - 32) : ch;
        }
        if (ipcnet_reply(c, &m, out, n) < 0)
            return 5;
    }
    ipcnet_flush(c, 5000);
    ipcnet_close(&c);
    return 0;
}

int harness_vanishing_holder(ipcnet_t *c, void *arg)
{
    ipcnet_msg_t m;
    if (ipcnet_recv(c, &m, *(const int *) arg) < 0 || m.kind != IPCNET_MSG_REQUEST)
        return 4;
    return 0;               /* the socket closes with the process */
}

void harness_expect_upper(ipcnet_t *c, const char *dest, const char *what)
{
    const char *in[] = { "hello", "abc", "" };
    const char *out[] = { "HELLO", "ABC", "" };
    for (int i = 0; i < 3; i++) {
        ipcnet_msg_t m;
        int rc = ipcnet_request(c, dest, in[i], strlen(in[i]), 5000, &m);
        if (rc < 0)
            fail_msg("%s %d: %s", what, i, ipcnet_strerror(rc));
        assert_int_equal(m.kind, IPCNET_MSG_REPLY);
        assert_int_equal(m.size, strlen(out[i]));
        assert_memory_equal(m.data, out[i], m.size);
    }
}

void harness_ping_pong(ipcnet_t *r, ipcnet_t *h, const char *dest, int timeout_ms)
{
    uint32_t id = 0;
    assert_int_equal(ipcnet_request_async(r, dest, "ping", 4, timeout_ms, &id), 0);
    ipcnet_msg_t m;
    harness_expect(h, IPCNET_MSG_REQUEST, &m);
    assert_string_equal(m.name, dest);
    assert_string_equal(m.source, ipcnet_address(r));
    assert_int_equal(m.size, 4);
    assert_memory_equal(m.data, "ping", 4);
    assert_true(m.timeout_ms > 0 && m.timeout_ms <= (uint32_t) timeout_ms);
    assert_int_equal(ipcnet_reply(h, &m, "pong", 4), 0);
    harness_expect(r, IPCNET_MSG_REPLY, &m);
    assert_int_equal(m.id, id);
    assert_string_equal(m.source, ipcnet_address(h));
    assert_int_equal(m.size, 4);
    assert_memory_equal(m.data, "pong", 4);
}

int64_t harness_request_times_out(ipcnet_t *c, const char *dest, int timeout_ms)
{
    ipcnet_msg_t m;
    int64_t t0 = harness_now_ms();
    int rc = ipcnet_request(c, dest, "q", 1, timeout_ms, &m);
    int64_t took = harness_now_ms() - t0;
    if (rc != -ETIMEDOUT)
        fail_msg("request to a holder that does not answer: %s after %lld ms "
                 "(want -ETIMEDOUT)", ipcnet_strerror(rc), (long long) took);
    return took;
}

void harness_out_of_order(ipcnet_t *r, ipcnet_t *h, const char *dest1, const char *dest2,
                          int timeout_ms, uint32_t ret_ids[2])
{
    uint32_t id1, id2;
    assert_int_equal(ipcnet_request_async(r, dest1, "one", 3, timeout_ms, &id1), 0);
    assert_int_equal(ipcnet_request_async(r, dest2, "two", 3, timeout_ms, &id2), 0);
    ipcnet_msg_t m;
    harness_expect(h, IPCNET_MSG_REQUEST, &m);
    char src[128];
    snprintf(src, sizeof src, "%s", m.source);
    uint32_t req1 = m.id;
    harness_expect(h, IPCNET_MSG_REQUEST, &m);
    assert_int_equal(ipcnet_reply(h, &m, "TWO", 3), 0);
    assert_int_equal(ipcnet_reply_to(h, src, req1, "ONE", 3), 0);
    harness_expect(r, IPCNET_MSG_REPLY, &m);
    assert_int_equal(m.id, id2);
    assert_memory_equal(m.data, "TWO", 3);
    harness_expect(r, IPCNET_MSG_REPLY, &m);
    assert_int_equal(m.id, id1);
    assert_memory_equal(m.data, "ONE", 3);
    if (ret_ids) {
        ret_ids[0] = id1;
        ret_ids[1] = id2;
    }
}

void harness_expect_from(ipcnet_t *c, ipcnet_kind_t kind, const char *name,
                         const char *source, const void *data, size_t size)
{
    ipcnet_msg_t m;
    harness_expect(c, kind, &m);
    assert_string_equal(m.name, name);
    assert_string_equal(m.source, source);
    assert_int_equal(m.size, size);
    assert_memory_equal(m.data, data, size);
}

void harness_publish_to(ipcnet_t *p, const char *topic, const char *text, int flags,
                        ipcnet_t *const *got, int ngot, ipcnet_t *const *none, int nnone)
{
    assert_int_equal(ipcnet_publish(p, topic, text, strlen(text), flags), 0);
    for (int i = 0; i < ngot; i++)
        harness_expect_text(got[i], IPCNET_MSG_PUBLISH, topic, text);
    for (int i = 0; i < nnone; i++)
        harness_expect_nothing(none[i]);
}

void harness_publish_many(ipcnet_t *p, const char *topic, int n, ipcnet_t *const *got,
                          int ngot)
{
    for (int i = 0; i < n; i++) {
        char text[16];
        snprintf(text, sizeof text, "%d", i);
        assert_int_equal(ipcnet_publish(p, topic, text, strlen(text), 0), 0);
    }
    for (int i = 0; i < n; i++) {
        char text[16];
        snprintf(text, sizeof text, "%d", i);
        for (int k = 0; k < ngot; k++)
            harness_expect_text(got[k], IPCNET_MSG_PUBLISH, topic, text);
    }
}

void harness_request_holder_gone(ipcnet_t *c, ipcnet_t **h, const char *dest, int timeout_ms)
{
    uint32_t id;
    assert_int_equal(ipcnet_request_async(c, dest, "q", 1, timeout_ms, &id), 0);
    ipcnet_msg_t m;
    harness_expect(*h, IPCNET_MSG_REQUEST, &m);
    harness_client_close(h);
    harness_expect(c, IPCNET_MSG_ERROR, &m);
    assert_int_equal(m.error, -ECONNRESET);
    assert_int_equal(m.id, id);
}

void harness_send_many(ipcnet_t *s, ipcnet_t *h, const char *dest, int n)
{
    for (int i = 0; i < n; i++) {
        char text[32];
        snprintf(text, sizeof text, "msg %d", i);
        harness_send(s, dest, text, 0);
    }
    for (int i = 0; i < n; i++) {
        char text[32];
        snprintf(text, sizeof text, "msg %d", i);
        harness_expect_text(h, IPCNET_MSG_SEND, dest, text);
    }
    harness_expect_nothing(h);
    harness_expect_nothing(s);
}

void harness_send_numbered(ipcnet_t *s, const char *dest, int n)
{
    for (int i = 0; i < n; i++) {
        char text[16];
        snprintf(text, sizeof text, "%d", i);
        harness_send(s, dest, text, IPCNET_CONFIRM);
    }
}

int harness_take_numbered(ipcnet_t *h, int n, int *seen)
{
    int count = 0, last = -1;
    ipcnet_msg_t m;
    while (ipcnet_recv(h, &m, s_quiet_ms) == 0) {
        assert_int_equal(m.kind, IPCNET_MSG_SEND);
        char text[16] = "";
        memcpy(text, m.data, m.size < 15 ? m.size : 15);
        int v = atoi(text);
        assert_in_range(v, 0, n - 1);
        assert_true(v > last);          /* in order at each holder */
        last = v;
        seen[v]++;
        count++;
    }
    return count;
}

void harness_expect_once(const int *seen, int n)
{
    for (int v = 0; v < n; v++)
        if (seen[v] != 1)
            fail_msg("message %d delivered %d times", v, seen[v]);
}

void harness_expect_numbered(const ipcnet_msg_t *m, size_t size, uint32_t want,
                             harness_check_fn *check)
{
    assert_int_equal(m->kind, IPCNET_MSG_SEND);
    assert_int_equal(m->size, size);
    uint32_t seq;
    memcpy(&seq, m->data, sizeof seq);
    if (seq != want)
        fail_msg("message %u arrived where %u was due (lost or reordered)", seq, want);
    long bad = check(m->data, size, seq);
    if (bad >= 0)
        fail_msg("message %u corrupted at byte %ld", seq, bad);
}

void harness_drain_numbered(ipcnet_t *s, ipcnet_t *r, uint32_t accepted, size_t size,
                            harness_check_fn *check)
{
    uint32_t next = 0;
    int64_t deadline = harness_now_ms() + 60000;
    while (next < accepted) {
        if (harness_now_ms() > deadline)
            fail_msg("only %u of %u accepted messages arrived", next, accepted);
        int rc = ipcnet_flush(s, 0);
        if (rc < 0 && rc != -EAGAIN && rc != -ETIMEDOUT)
            fail_msg("flush: %s", ipcnet_strerror(rc));
        ipcnet_msg_t m;
        rc = ipcnet_recv(r, &m, 50);
        if (rc == -ETIMEDOUT || rc == -EAGAIN)
            continue;
        if (rc < 0)
            fail_msg("recv after %u of %u: %s", next, accepted, ipcnet_strerror(rc));
        harness_expect_numbered(&m, size, next, check);
        next++;
    }
    assert_int_equal(ipcnet_flush(s, 5000), 0);
    harness_expect_nothing(r);
    /* The sender was pushed back, never told its messages were lost. */
    ipcnet_msg_t m;
    int rc = ipcnet_recv(s, &m, 0);
    if (rc == 0)
        fail_msg("sender got a %s message (error %d) during flow control",
                 harness_kind_name(m.kind), m.error);
}

/* --- who sent a message ------------------------------------------------------- */

const char *harness_user_of(uid_t uid, char *buf)
{
    struct passwd *pw = getpwuid(uid);
    int ok = pw && pw->pw_name[0] && strlen(pw->pw_name) <= WIRE_USER_MAX;
    for (const char *p = ok ? pw->pw_name : ""; *p; p++)
        if ((unsigned char) *p < 0x21 || (unsigned char) *p > 0x7e)
            ok = 0;
    if (ok)
        snprintf(buf, 64, "%s", pw->pw_name);
    else
        snprintf(buf, 64, "%u", (unsigned) uid);
    return buf;
}

void harness_self_id(ipcnet_t *q, const char *self, char *id)
{
    harness_peer_t row;
    if (!harness_peer(q, self, self, &row))
        fail_msg("node %s does not list itself", self);
    if (strcmp(row.source, "self") != 0)
        fail_msg("node %s's own row says '%s', not self", self, row.source);
    size_t n = strlen(row.id);
    int hex = n == 32;
    for (size_t i = 0; i < n; i++)
        hex &= (row.id[i] >= '0' && row.id[i] <= '9') || (row.id[i] >= 'a' && row.id[i] <= 'f');
    if (!hex)
        fail_msg("node %s's id '%s' is not 32 lowercase hex digits", self, row.id);
    snprintf(id, 64, "%s", row.id);
}

void harness_expect_sender(const ipcnet_msg_t *m, const harness_sender_t *want,
                           const char *what)
{
    if (strcmp(m->source, want->source) != 0 || m->uid != want->uid ||
        strcmp(m->user, want->user) != 0 || strcmp(m->node, want->node) != 0 ||
        strcmp(m->node_id, want->node_id) != 0)
        fail_msg("%s: from %s uid %u user '%s' node '%s' id %s; want %s uid %u user '%s' "
                 "node '%s' id %s", what, m->source, (unsigned) m->uid, m->user, m->node,
                 m->node_id, want->source, (unsigned) want->uid, want->user, want->node,
                 want->node_id);
}

/* Receives one message of kind with this payload on c, from want. */
static void s_expect_from_sender(ipcnet_t *c, ipcnet_kind_t kind, const char *text,
                                 const harness_sender_t *want, const char *what,
                                 ipcnet_msg_t *ret)
{
    ipcnet_msg_t m;
    harness_expect(c, kind, &m);
    if (m.size != strlen(text) || memcmp(m.data, text, m.size) != 0)
        fail_msg("%s: got '%.*s', want '%s'", what, (int) m.size, (const char *) m.data, text);
    harness_expect_sender(&m, want, what);
    if (ret)
        *ret = m;
}

void harness_expect_senders(ipcnet_t *s, const harness_sender_t *s_who, ipcnet_t *h,
                            const harness_sender_t *h_who, const char *dest, ipcnet_t *sub,
                            const char *topic)
{
    ipcnet_msg_t m;
    harness_send(s, dest, "confirmed", IPCNET_CONFIRM);
    s_expect_from_sender(h, IPCNET_MSG_SEND, "confirmed", s_who, "SEND with CONFIRM", NULL);
    /* Several in a row (the node reuses the head of the last one). */
    for (int i = 0; i < 3; i++) {
        char text[16];
        snprintf(text, sizeof text, "plain %d", i);
        harness_send(s, dest, text, 0);
    }
    for (int i = 0; i < 3; i++) {
        char text[16];
        snprintf(text, sizeof text, "plain %d", i);
        s_expect_from_sender(h, IPCNET_MSG_SEND, text, s_who, "SEND", NULL);
    }
    harness_send(s, h_who->source, "direct", IPCNET_CONFIRM);
    s_expect_from_sender(h, IPCNET_MSG_SEND, "direct", s_who, "SEND to an address", NULL);

    uint32_t id;
    assert_int_equal(ipcnet_request_async(s, dest, "who?", 4, 5000, &id), 0);
    s_expect_from_sender(h, IPCNET_MSG_REQUEST, "who?", s_who, "REQUEST", &m);
    assert_int_equal(m.id, id);
    assert_int_equal(ipcnet_reply(h, &m, "me", 2), 0);
    s_expect_from_sender(s, IPCNET_MSG_REPLY, "me", h_who, "REPLY", &m);
    assert_int_equal(m.id, id);

    assert_int_equal(ipcnet_publish(s, topic, "news", 4, IPCNET_CONFIRM), 0);
    s_expect_from_sender(sub, IPCNET_MSG_PUBLISH, "news", s_who, "PUBLISH", &m);
    assert_string_equal(m.name, topic);

    harness_send(h, s_who->source, "back", IPCNET_CONFIRM);
    s_expect_from_sender(s, IPCNET_MSG_SEND, "back", h_who, "SEND back", NULL);
}

void harness_fake_users(const harness_user_t *users, size_t n, char *dir)
{
    if (getuid() != 0 || unshare(CLONE_NEWNS) < 0 ||
        mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
        print_message("note: needs root and a mount namespace: skipped\n");
        skip();
    }
    snprintf(dir, 64, "/tmp/ipcnet-passwd-XXXXXX");
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/passwd", dir);
    char *orig = harness_read_file("/etc/passwd");
    FILE *out = fopen(path, "w");
    assert_non_null(out);
    fputs(orig, out);
    free(orig);
    for (size_t i = 0; i < n; i++)
        fprintf(out, "%s:x:%u:65534::/nonexistent:/usr/sbin/nologin\n", users[i].name,
                (unsigned) users[i].uid);
    assert_int_equal(fclose(out), 0);
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(chmod(dir, 0755), 0);
    if (mount(path, "/etc/passwd", NULL, MS_BIND, NULL) < 0)
        fail_msg("bind-mount %s on /etc/passwd: %s", path, strerror(errno));
    struct passwd *pw = n ? getpwuid(users[0].uid) : NULL;
    if (n && (!pw || strcmp(pw->pw_name, users[0].name) != 0))
        fail_msg("the copy of /etc/passwd is not read");
}

void harness_fake_users_undo(const char *dir)
{
    char path[128];
    umount2("/etc/passwd", MNT_DETACH);
    snprintf(path, sizeof path, "%s/passwd", dir);
    unlink(path);
    rmdir(dir);
}
