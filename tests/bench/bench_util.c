/*  bench_util.c: what bench_local and bench_cluster share; see bench_util.h. */

#include "bench_util.h"

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
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

static const char *s_prog = "bench";
static char s_tmpdir[64];       /* short: socket paths live in it */
static cpu_set_t s_cpus_all;    /* the mask we were started with */
static int s_cpu_pin = 0;       /* the CPU of pinned runs */
static volatile sig_atomic_t s_interrupted;
static pid_t s_parent;          /* children die with it */

static void s_on_signal(int sig)
{
    (void) sig;
    s_interrupted = 1;
}

/* --- the parent: set-up and options --------------------------------------- */

void bench_init(const char *prog)
{
    s_prog = prog;
}

int bench_start(void)
{
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
        fprintf(stderr, "%s: mkdtemp: %s\n", s_prog, strerror(errno));
        return -1;
    }
    s_parent = getpid();
    struct sigaction sa = { .sa_handler = s_on_signal };
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    return 0;
}

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st;
    (void) flag;
    (void) ftw;
    (void) remove(path);
    return 0;
}

int bench_end(void)
{
    nftw(s_tmpdir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    return s_interrupted ? 130 : 0;
}

const char *bench_tmpdir(void)
{
    return s_tmpdir;
}

bool bench_interrupted(void)
{
    return s_interrupted != 0;
}

int bench_cpu_pin(void)
{
    return s_cpu_pin;
}

int bench_cpu_count(void)
{
    return CPU_COUNT(&s_cpus_all);
}

long bench_num(const char *s, const char *what, long min)
{
    char *end;
    errno = 0;
    long v = strtol(s ? s : "", &end, 10);
    if (!s || errno || *end || v < min) {
        fprintf(stderr, "%s: bad %s '%s'\n", s_prog, what, s ? s : "");
        exit(2);
    }
    return v;
}

unsigned bench_list(const char *s, const char *const *names, int count, const char *what)
{
    unsigned bits = 0;
    char *copy = strdup(s ? s : ""), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int i;
        for (i = 0; i < count && strcmp(t, names[i]); i++) {
        }
        if (i == count) {
            fprintf(stderr, "%s: unknown %s '%s'\n", s_prog, what, t);
            exit(2);
        }
        bits |= 1u << i;
    }
    free(copy);
    if (!bits) {
        fprintf(stderr, "%s: empty %s list\n", s_prog, what);
        exit(2);
    }
    return bits;
}

void bench_env_num(const char *name, long *v, long min)
{
    const char *s = getenv(name);
    if (s && *s)
        *v = bench_num(s, name, min);
}

bool bench_quick(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--quick"))
            return true;
    return false;
}

int bench_options(int argc, char **argv, const bench_opt_t *opts, void (*usage)(FILE *f))
{
    for (const bench_opt_t *o = opts; o->name; o++)
        if (o->env && o->num)
            bench_env_num(o->env, o->num, o->min);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--quick"))
            continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 1;
        }
        const bench_opt_t *o = opts;
        while (o->name && strcmp(a, o->name))
            o++;
        if (!o->name) {
            usage(stderr);
            return 2;
        }
        if (o->flag) {
            *o->flag = true;
            continue;
        }
        i++;
        if (o->num)
            *o->num = bench_num(v, a, o->min);
        else if (o->bits)
            *o->bits = bench_list(v, o->names, o->count, o->what);
        else if (o->parse(v, o->arg) < 0)
            return 2;
    }
    return 0;
}

void bench_names(char *out, size_t len, unsigned bits, const char *const *names, int count)
{
    out[0] = '\0';
    for (int i = 0; i < count; i++)
        if (bits & 1u << i)
            snprintf(out + strlen(out), len - strlen(out), "%s%s", out[0] ? "," : "",
                     names[i]);
}

int bench_env_node(const char **ret_node, char **ret_args)
{
    const char *node = getenv("IPC_NODE");
    *ret_node = NULL;
    *ret_args = NULL;
    if (node && *node) {
        if (access(node, X_OK) < 0) {
            fprintf(stderr, "%s: IPC_NODE=%s: %s\n", s_prog, node, strerror(errno));
            return -1;
        }
        *ret_node = node;
    }
    const char *nargs = getenv("IPC_NODE_ARGS");
    *ret_args = nargs && *nargs ? strdup(nargs) : NULL;
    return 0;
}

const char *bench_self(char *buf, size_t len, const char *argv0)
{
    ssize_t sl = readlink("/proc/self/exe", buf, len - 1);
    buf[sl > 0 ? sl : 0] = '\0';
    return sl > 0 ? buf : argv0;
}

char *bench_args_append(char **argv, int *argc, int max, const char *args)
{
    char *extra = args ? strdup(args) : NULL;
    char *save = NULL;
    for (char *t = extra ? strtok_r(extra, " \t", &save) : NULL; t && *argc < max;
         t = strtok_r(NULL, " \t", &save))
        argv[(*argc)++] = t;
    return extra;
}

/* --- the parent: one run ---------------------------------------------------- */

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

/* What any child of a run does first: it dies with the parent (by
   deathsig), runs on the run's CPUs and takes SIGINT and SIGTERM again. */
static void s_child_begin(bench_run_t *self, int deathsig)
{
    (void) prctl(PR_SET_PDEATHSIG, deathsig);
    if (getppid() != s_parent)
        _exit(1);
    s_pin(self->pinned);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
}

/* CPU seconds used so far by process pid, all its threads; 0 for no pid. */
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

/* Reaps pid within BENCH_STOP_GRACE_S seconds, then kills it. Returns its
   status, or -1. */
static int s_reap(pid_t pid, const char *who)
{
    double end = bench_now() + BENCH_STOP_GRACE_S;
    int st;
    for (;;) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid)
            return st;
        if (w < 0 && errno != EINTR)
            return -1;
        if (bench_now() > end)
            break;
        usleep(2000);
    }
    fprintf(stderr, "  %s (pid %d) still running %d s later: SIGKILL\n",
            who, (int) pid, BENCH_STOP_GRACE_S);
    kill(pid, SIGKILL);
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return -1;
}

/* Says on stderr how a process that should have exited 0 ended. */
static void s_say_status(const char *who, int st, const char *after)
{
    if (st != -1 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
        fprintf(stderr, "  %s ended with %s %d%s\n", who,
                WIFSIGNALED(st) ? "signal" : "status",
                WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st), after);
}

int bench_run_open(bench_run_t *self, int roles, long rt, int timeout, bool pinned)
{
    memset(self, 0, sizeof *self);
    self->roles = roles;
    self->role_a = roles - 2;
    self->role_b = roles - 1;
    self->rt = rt;
    self->timeout = timeout;
    self->pinned = pinned;
    self->warm = rt / 10 < 10 ? 10 : rt / 10 > 1000 ? 1000 : rt / 10;
    self->deadline = bench_now() + timeout;
    self->up[0] = self->up[1] = -1;
    for (int i = 0; i < BENCH_ROLES; i++)
        self->ctl[i][0] = self->ctl[i][1] = -1;

    self->sh_size = sizeof(bench_shared_t) + (size_t) rt * sizeof(uint32_t);
    self->sh = mmap(NULL, self->sh_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                    -1, 0);
    if (self->sh == MAP_FAILED) {
        fprintf(stderr, "  mmap: %s\n", strerror(errno));
        return -1;
    }
    bool ok = pipe2(self->up, O_CLOEXEC) == 0;
    for (int i = 0; ok && i < roles; i++)
        ok = pipe2(self->ctl[i], O_CLOEXEC) == 0;
    if (!ok) {
        bench_run_close(self, false);
        return -1;
    }
    return 0;
}

int bench_run_fork(bench_run_t *self, int role, void (*body)(void *arg, int role), void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        bench_child_setup(self, role);
        body(arg, role);
        _exit(1);
    }
    self->pid[role] = pid;
    return 0;
}

int bench_run_node(bench_run_t *self, int role, char *const argv[], const char *log,
                   const char *sock)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        /* A node left behind by a killed benchmark would run for ever. */
        s_child_begin(self, SIGTERM);
        signal(SIGPIPE, SIG_DFL);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (nul >= 0)
            dup2(nul, 0);
        execv(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    self->pid[role] = pid;

    double end = bench_now() + BENCH_NODE_START_S;
    if (end > self->deadline)
        end = self->deadline;
    for (;;) {
        if (bench_run_check(self, "before accepting") < 0)
            return -1;
        int fd = strncmp(sock, "tcp:", 4) == 0 ? bench_tcp_connect(atoi(sock + 4))
                                               : bench_unix_connect(sock);
        if (fd >= 0) {
            close(fd);
            return 0;
        }
        if (s_interrupted || bench_now() > end) {
            fprintf(stderr, "  aborted: %s did not accept on %s within %d s\n",
                    self->name[role], sock, BENCH_NODE_START_S);
            return -1;
        }
        usleep(5000);
    }
}

int bench_run_check(bench_run_t *self, const char *before)
{
    for (int i = 0; i < self->roles; i++) {
        int st;
        if (self->pid[i] > 0 && waitpid(self->pid[i], &st, WNOHANG) == self->pid[i]) {
            self->pid[i] = 0;
            fprintf(stderr, "  aborted: %s exited (%s %d) %s\n", self->name[i],
                    WIFSIGNALED(st) ? "signal" : "status",
                    WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st), before);
            return -1;
        }
    }
    return 0;
}

int bench_run_wait(bench_run_t *self, int want, char what)
{
    char before[32];
    snprintf(before, sizeof before, "before '%c'", what);
    while (want > 0) {
        if (s_interrupted)
            return -1;
        int left = (int) ((self->deadline - bench_now()) * 1000);
        if (left <= 0) {
            fprintf(stderr, "  aborted: no '%c' within the run's %d s; client A at %ld "
                    "(sent or round trips), client B at %ld (received)\n", what,
                    self->timeout, self->sh->progress_a, self->sh->progress_b);
            return -1;
        }
        struct pollfd p = { .fd = self->up[0], .events = POLLIN };
        int n = poll(&p, 1, left < 200 ? left : 200);
        if (n < 0 && errno != EINTR)
            return -1;
        if (n <= 0) {
            /* A child that died without a word (a crash, a node). */
            if (bench_run_check(self, before) < 0)
                return -1;
            continue;
        }
        char c;
        if (read(self->up[0], &c, 1) != 1)
            return -1;
        if (c == 'E')
            return -1;
        if (c == what)
            want--;
    }
    return 0;
}

int bench_run_measure(bench_run_t *self, double ret_cpu[BENCH_ROLES])
{
    double cpu0[BENCH_ROLES], cpu1[BENCH_ROLES];
    for (int i = 0; i < self->roles; i++)
        cpu0[i] = s_cpu_of(self->pid[i]);
    char g = 'g';
    if (write(self->ctl[self->role_a][1], &g, 1) != 1)
        return -1;
    if (bench_run_wait(self, 1, 'd') < 0)
        return -1;
    for (int i = 0; i < self->roles; i++)
        cpu1[i] = s_cpu_of(self->pid[i]);
    for (int i = 0; i < BENCH_ROLES; i++)
        ret_cpu[i] = i < self->roles ? cpu1[i] - cpu0[i] : 0;
    return 0;
}

static int s_cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
    return x < y ? -1 : x > y;
}

void bench_run_latency(bench_run_t *self, double *ret_median_us, double *ret_p99_us)
{
    size_t n = (size_t) self->rt;
    qsort(self->sh->lat, n, sizeof self->sh->lat[0], s_cmp_u32);
    *ret_median_us = self->sh->lat[n / 2] / 1e3;
    size_t i99 = (n * 99 + 99) / 100 - 1;     /* ceil(0.99 n) - 1 */
    *ret_p99_us = self->sh->lat[i99 < n ? i99 : n - 1] / 1e3;
}

int bench_run_left_ms(const bench_run_t *self, int cap)
{
    double left = (self->deadline - bench_now()) * 1000;
    return left <= 0 ? 0 : left > cap ? cap : (int) left;
}

/* Ends every process of the run that is still there: the clients by their
   quit byte (SIGKILL when the run failed), the relays by the stop flag or
   their clients' EOF (SIGKILL when failed), the nodes by SIGTERM; each is
   reaped. */
static void s_run_stop(bench_run_t *self, bool ok)
{
    self->sh->stop = 1;
    for (int i = 0; i < self->roles; i++) {
        if (self->pid[i] <= 0 || self->daemon[i])
            continue;
        if (!ok)
            kill(self->pid[i], SIGKILL);
        else if (i == self->role_a || i == self->role_b) {
            char q = 'q';
            if (write(self->ctl[i][1], &q, 1) < 0) {
                /* it is gone already; reaped below */
            }
        }
    }
    for (int i = 0; i < self->roles; i++) {
        if (self->pid[i] <= 0 || self->daemon[i])
            continue;
        int st = s_reap(self->pid[i], self->name[i]);
        if (ok)
            s_say_status(self->name[i], st, "");
        self->pid[i] = 0;
    }
    for (int i = 0; i < self->roles; i++)
        if (self->pid[i] > 0 && self->daemon[i])
            kill(self->pid[i], SIGTERM);
    for (int i = 0; i < self->roles; i++)
        if (self->pid[i] > 0 && self->daemon[i]) {
            s_say_status(self->name[i], s_reap(self->pid[i], self->name[i]),
                         " after SIGTERM");
            self->pid[i] = 0;
        }
}

void bench_run_close(bench_run_t *self, bool ok)
{
    if (ok && self->sh->errors)
        fprintf(stderr, "  note: %ld IPCNET_MSG_ERROR, the first: %s\n", self->sh->errors,
                ipcnet_strerror(self->sh->first_error));
    if (!ok && s_interrupted)
        fprintf(stderr, "  interrupted\n");
    s_run_stop(self, ok);
    if (!ok)
        for (int i = 0; i < self->roles; i++)
            if (self->sh->err[i][0])
                fprintf(stderr, "  %s: %s\n", self->name[i], self->sh->err[i]);
    if (self->up[0] >= 0) {
        close(self->up[0]);
        close(self->up[1]);
    }
    for (int i = 0; i < BENCH_ROLES; i++)
        if (self->ctl[i][0] >= 0) {
            close(self->ctl[i][0]);
            close(self->ctl[i][1]);
        }
    munmap(self->sh, self->sh_size);
    self->sh = NULL;
}

void bench_print_log_tail(const char *path)
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

/* --- a child of the run ------------------------------------------------------ */

void bench_child_setup(bench_run_t *self, int role)
{
    s_child_begin(self, SIGKILL);
    alarm((unsigned) self->timeout + 10);
    close(self->up[0]);
    for (int i = 0; i < self->roles; i++) {
        close(self->ctl[i][1]);
        if (i != role)
            close(self->ctl[i][0]);
    }
}

void bench_child_fail(bench_run_t *self, int role, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(self->sh->err[role], sizeof self->sh->err[role], fmt, ap);
    va_end(ap);
    char c = 'E';
    if (write(self->up[1], &c, 1) < 0) {
        /* the parent is gone; nothing else to tell */
    }
    _exit(1);
}

void bench_child_say(bench_run_t *self, int role, char c)
{
    if (write(self->up[1], &c, 1) != 1)
        bench_child_fail(self, role, "cannot write to the parent: %s", strerror(errno));
}

void bench_child_wait(bench_run_t *self, int role, char want)
{
    for (;;) {
        int left = (int) ((self->deadline - bench_now()) * 1000);
        if (left <= 0)
            bench_child_fail(self, role, "timed out waiting for '%c' from the parent", want);
        struct pollfd p = { .fd = self->ctl[role][0], .events = POLLIN };
        int n = poll(&p, 1, left);
        if (n < 0 && errno != EINTR)
            bench_child_fail(self, role, "poll: %s", strerror(errno));
        if (n <= 0)
            continue;
        char c;
        ssize_t got = read(self->ctl[role][0], &c, 1);
        if (got == 1 && c == want)
            return;
        if (got == 0)
            _exit(1);           /* the parent went away */
    }
}

void bench_child_rt_done(bench_run_t *self, long i, double t0)
{
    if (i >= self->warm) {
        double ns = (bench_now() - t0) * 1e9;
        self->sh->lat[i - self->warm] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t) ns;
    }
    self->sh->progress_a = i + 1;
}

int bench_write_all(int fd, const void *buf, size_t len)
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

int bench_writev_all(int fd, struct iovec *v, int cnt)
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

int bench_tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t) port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

int bench_unix_connect(const char *path)
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

int bench_listen(const char *path)
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

void bench_wire_send_a(bench_run_t *self, int fd, const char *src, long count, size_t size,
                       bool batch)
{
    int role = self->role_a;
    uint8_t *payload = malloc(size);
    uint8_t *chunk = batch ? malloc(BENCH_BATCH_CHUNK + WIRE_HEAD_MAX + size) : NULL;
    if (!payload || (batch && !chunk))
        bench_child_fail(self, role, "out of memory");
    memset(payload, 'm', size);
    bench_child_say(self, role, 'r');
    bench_child_wait(self, role, 'g');

    self->sh->t_start = bench_now();
    size_t used = 0;
    int rc = 0;
    for (long i = 0; i <= count && rc == 0; i++) {
        if ((i & 255) == 0 && bench_now() > self->deadline)
            bench_child_fail(self, role, "timed out after %ld messages", i);
        size_t n = i < count ? size : BENCH_MARKER;
        uint8_t head[WIRE_HEAD_MAX];
        size_t hlen = wire_encode(batch ? chunk + used : head, WIRE_MESSAGE, 0,
                                  (uint32_t) i, 0, src, strlen(src),
                                  BENCH_ECHO_NAME, strlen(BENCH_ECHO_NAME), n);
        if (!batch) {
            struct iovec iov[2] = { { head, hlen }, { payload, n } };
            rc = bench_writev_all(fd, iov, 2);
        } else {
            memcpy(chunk + used + hlen, payload, n);
            used += hlen + n;
            if (used + WIRE_MIN + strlen(src) + strlen(BENCH_ECHO_NAME) + size >
                    BENCH_BATCH_CHUNK || i == count) {
                rc = bench_write_all(fd, chunk, used);
                used = 0;
            }
        }
        self->sh->progress_a = i;
    }
    if (rc < 0)
        bench_child_fail(self, role, "write: %s", strerror(-rc));
    bench_child_wait(self, role, 'q');
    _exit(0);
}

/* --- the libipcnet clients --------------------------------------------------- */

static void s_note_error(bench_run_t *self, const ipcnet_msg_t *m)
{
    if (self->sh->errors++ == 0)
        self->sh->first_error = m->error;
}

static ipcnet_t *s_client_connect(bench_run_t *self, int role, const char *label)
{
    ipcnet_t *c = NULL;
    const char *sock = role == self->role_a ? self->sock_a : self->sock_b;
    int rc = ipcnet_connect(&c, sock, label, 0);
    if (rc < 0)
        bench_child_fail(self, role, "ipcnet_connect(%s): %s", sock, ipcnet_strerror(rc));
    return c;
}

/* Client B, connected and holding BENCH_ECHO_NAME. */
static ipcnet_t *s_client_bind(bench_run_t *self)
{
    ipcnet_t *c = s_client_connect(self, self->role_b, "bench-b");
    int rc = ipcnet_bind(c, BENCH_ECHO_NAME);
    if (rc < 0)
        bench_child_fail(self, self->role_b, "ipcnet_bind(%s): %s", BENCH_ECHO_NAME,
                         ipcnet_strerror(rc));
    return c;
}

void bench_child_rt_run(bench_run_t *self, bench_rt_fn *one, void *arg)
{
    int role = self->role_a;
    bench_child_say(self, role, 'r');
    bench_child_wait(self, role, 'g');
    long total = self->warm + self->rt;
    self->sh->t_start = bench_now();
    for (long i = 0; i < total; i++) {
        double t0 = bench_now();
        if (t0 > self->deadline)
            bench_child_fail(self, role, "timed out after %ld round trips", i);
        one(self, i, arg);
        bench_child_rt_done(self, i, t0);
    }
    self->sh->t_end = bench_now();
    bench_child_say(self, role, 'd');
    bench_child_wait(self, role, 'q');
}

/* One ipcnet_request() round trip of bench_node_rt_a() (arg: the client). */
static void s_node_rt_one(bench_run_t *self, long i, void *arg)
{
    static uint8_t buf[BENCH_SMALL];
    if (!buf[0])
        memset(buf, 'a', sizeof buf);
    ipcnet_msg_t rep;
    int rc = ipcnet_request(arg, BENCH_ECHO_NAME, buf, sizeof buf, BENCH_REQ_TIMEOUT_MS, &rep);
    if (rc < 0)
        bench_child_fail(self, self->role_a, "ipcnet_request #%ld: %s", i, ipcnet_strerror(rc));
    if (rep.kind != IPCNET_MSG_REPLY || rep.size != BENCH_SMALL)
        bench_child_fail(self, self->role_a, "ipcnet_request #%ld: kind %d, %zu bytes",
                         i, (int) rep.kind, rep.size);
}

void bench_node_rt_a(bench_run_t *self)
{
    ipcnet_t *c = s_client_connect(self, self->role_a, "bench-a");
    bench_child_rt_run(self, s_node_rt_one, c);
    ipcnet_close(&c);
    _exit(0);
}

void bench_node_rt_b(bench_run_t *self)
{
    int role = self->role_b;
    ipcnet_t *c = s_client_bind(self);
    bench_child_say(self, role, 'r');
    uint8_t buf[BENCH_SMALL];
    while (!self->sh->stop) {
        ipcnet_msg_t m;
        int rc = ipcnet_recv(c, &m, 50);
        if (rc == -ETIMEDOUT || rc == -EAGAIN || rc == -EINTR)
            continue;
        if (rc < 0) {
            if (self->sh->stop)
                break;
            bench_child_fail(self, role, "ipcnet_recv: %s", ipcnet_strerror(rc));
        }
        if (m.kind == IPCNET_MSG_ERROR) {
            s_note_error(self, &m);
            continue;
        }
        if (m.kind != IPCNET_MSG_REQUEST)
            continue;
        /* The payload is borrowed until the next call on c: copy it. */
        size_t n = m.size < sizeof buf ? m.size : sizeof buf;
        memcpy(buf, m.data, n);
        rc = ipcnet_reply(c, &m, buf, n);
        if (rc < 0)
            bench_child_fail(self, role, "ipcnet_reply: %s", ipcnet_strerror(rc));
    }
    ipcnet_close(&c);
    _exit(0);
}

void bench_node_send_a(bench_run_t *self, long count, size_t size, bool batch)
{
    int role = self->role_a;
    ipcnet_t *c = s_client_connect(self, role, "bench-a");
    if (ipcnet_max_message(c) < size)
        bench_child_fail(self, role, "the node takes at most %zu bytes a message, not %zu",
                         ipcnet_max_message(c), size);
    uint8_t *buf = malloc(size);
    if (!buf)
        bench_child_fail(self, role, "out of memory");
    memset(buf, 'm', size);
    int flags = batch ? IPCNET_MORE : 0;
    bench_child_say(self, role, 'r');
    bench_child_wait(self, role, 'g');

    self->sh->t_start = bench_now();
    for (long i = 0; i <= count; i++) {
        if ((i & 255) == 0 && bench_now() > self->deadline)
            bench_child_fail(self, role, "timed out after %ld messages", i);
        size_t n = i < count ? size : BENCH_MARKER;
        int rc = ipcnet_send(c, BENCH_ECHO_NAME, buf, n, flags);
        if (rc == -EAGAIN && batch) {
            /* The batch queue is full: write it out and try again. */
            rc = ipcnet_flush(c, bench_run_left_ms(self, INT_MAX));
            if (rc < 0)
                bench_child_fail(self, role, "ipcnet_flush after %ld: %s", i,
                                 ipcnet_strerror(rc));
            rc = ipcnet_send(c, BENCH_ECHO_NAME, buf, n, flags);
        }
        if (rc < 0)
            bench_child_fail(self, role, "ipcnet_send #%ld: %s", i, ipcnet_strerror(rc));
        self->sh->progress_a = i + 1;
    }
    if (batch) {
        int rc = ipcnet_flush(c, bench_run_left_ms(self, INT_MAX));
        if (rc < 0)
            bench_child_fail(self, role, "ipcnet_flush: %s", ipcnet_strerror(rc));
    }
    /* Wait for the parent, collecting any error the node sends back. */
    for (;;) {
        struct pollfd p[2] = {
            { .fd = self->ctl[role][0], .events = POLLIN },
            { .fd = ipcnet_fd(c), .events = POLLIN },
        };
        int left = bench_run_left_ms(self, INT_MAX);
        if (left <= 0)
            bench_child_fail(self, role, "timed out waiting for the parent");
        int n = poll(p, 2, left);
        if (n < 0 && errno != EINTR)
            bench_child_fail(self, role, "poll: %s", strerror(errno));
        if (n > 0 && p[0].revents)
            break;
        if (n > 0 && p[1].revents) {
            ipcnet_msg_t m;
            while (ipcnet_recv(c, &m, 0) == 0)
                if (m.kind == IPCNET_MSG_ERROR)
                    s_note_error(self, &m);
            if (p[1].revents & (POLLHUP | POLLERR))
                break;
        }
    }
    ipcnet_close(&c);
    _exit(0);
}

typedef struct {
    bench_run_t *run;
    size_t size;
    long got;
    bool marker;
} counter_t;

static void s_count(ipcnet_t *c, const ipcnet_msg_t *m, void *arg)
{
    counter_t *k = arg;
    (void) c;
    if (m->kind == IPCNET_MSG_ERROR)
        s_note_error(k->run, m);
    else if (m->kind == IPCNET_MSG_SEND && m->size == k->size)
        k->got++;
    else if (m->kind == IPCNET_MSG_SEND && m->size == BENCH_MARKER)
        k->marker = true;
}

void bench_node_send_b(bench_run_t *self, long count, size_t size)
{
    int role = self->role_b;
    ipcnet_t *c = s_client_bind(self);
    counter_t k = { .run = self, .size = size };
    bench_child_say(self, role, 'r');
    while (!k.marker || k.got < count) {
        int left = bench_run_left_ms(self, 1000);
        if (left <= 0)
            bench_child_fail(self, role, "timed out with %ld of %ld messages%s", k.got, count,
                             k.marker ? " and the marker" : "");
        struct pollfd p = { .fd = ipcnet_fd(c), .events = POLLIN };
        if (ipcnet_want_write(c))
            p.events |= POLLOUT;
        int n = poll(&p, 1, left);
        if (n < 0 && errno != EINTR)
            bench_child_fail(self, role, "poll: %s", strerror(errno));
        if (n <= 0)
            continue;
        int rc = ipcnet_dispatch(c, s_count, &k);
        if (rc < 0)
            bench_child_fail(self, role, "ipcnet_dispatch after %ld messages: %s", k.got,
                             ipcnet_strerror(rc));
        self->sh->progress_b = k.got;
    }
    self->sh->t_end = bench_now();
    self->sh->received = k.got;
    bench_child_say(self, role, 'd');
    bench_child_wait(self, role, 'q');
    ipcnet_close(&c);
    _exit(0);
}

/* --- the report --------------------------------------------------------------- */

static int s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

double bench_median(const bench_result_t *res, int n, size_t off)
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

void bench_fmt(char *out, size_t len, double v, int decimals)
{
    if (isnan(v))
        snprintf(out, len, "-");
    else
        snprintf(out, len, "%.*f", decimals, v);
}

void bench_fmt_ratio(char *out, size_t len, double base, double cand)
{
    if (isnan(base) || isnan(cand) || base == 0)
        snprintf(out, len, "-");
    else
        snprintf(out, len, "%.2f", cand / base);
}

void bench_fmt_cpu(char *out, size_t len, double srv, double cli, bool servers)
{
    if (isnan(srv) || isnan(cli))
        snprintf(out, len, "-");
    else if (servers)
        snprintf(out, len, "%.2f (%.2f+%.2f)", srv + cli, srv, cli);
    else
        snprintf(out, len, "%.2f", cli);
}

void bench_print_footer(int failures)
{
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
}

int bench_run_result(bench_run_t *self, bool rt, long count, double bytes, double unit,
                     bench_result_t *ret)
{
    double cpu[BENCH_ROLES];
    if (bench_run_measure(self, cpu) < 0)
        return -1;
    double ops;
    if (rt) {
        ops = (double) (self->warm + self->rt);
        bench_run_latency(self, &ret->value, &ret->p99);
    } else {
        double secs = self->sh->t_end - self->sh->t_start;
        if (secs <= 0)
            secs = 1e-9;
        ops = (double) count;
        ret->value = bytes > 0 ? (double) count * bytes / secs / unit : (double) count / secs;
    }
    double srv = 0;
    for (int i = 0; i < self->role_a; i++)
        srv += cpu[i];
    ret->cpu_srv = srv * 1e6 / ops;
    ret->cpu_cli = (cpu[self->role_a] + cpu[self->role_b]) * 1e6 / ops;
    ret->ok = true;
    return 0;
}

void bench_print_round(const bench_result_t *x, bool rt, int decimals)
{
    if (!x->ok)
        printf("  (failed)");
    else if (rt)
        printf("  %.1f [%.1f] %.2f+%.2f", x->value, x->p99, x->cpu_srv, x->cpu_cli);
    else
        printf("  %.*f %.2f+%.2f", decimals, x->value, x->cpu_srv, x->cpu_cli);
}

/* --- relays' clients ------------------------------------------------------------ */

int bench_reader_init(bench_reader_t *rd, size_t cap, size_t max)
{
    rd->buf = malloc(cap);
    rd->cap = cap;
    rd->max = max;
    rd->start = rd->end = 0;
    return rd->buf ? 0 : -ENOMEM;
}

int bench_reader_frame(bench_reader_t *rd, const uint8_t **p, size_t *len)
{
    ssize_t n = wire_peek(rd->buf + rd->start, rd->end - rd->start, rd->max);
    if (n < 0)
        return (int) n;
    if (n == 0 || (size_t) n > rd->end - rd->start)
        return 0;
    *p = rd->buf + rd->start;
    *len = (size_t) n;
    rd->start += (size_t) n;
    return 1;
}

int bench_reader_next(bench_reader_t *rd, wire_frame_t *f)
{
    const uint8_t *p = NULL;
    size_t len = 0;
    int rc = bench_reader_frame(rd, &p, &len);
    if (rc <= 0)
        return rc;
    rc = wire_decode(p, len, f);
    return rc < 0 ? rc : 1;
}

ssize_t bench_reader_fill(bench_reader_t *rd, int fd)
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

/* A relay client A's round trip: its request frame and its reader. */
typedef struct {
    int fd;
    uint8_t frame[WIRE_HEAD_MAX + BENCH_SMALL];
    size_t head;
    bench_reader_t rd;
} relay_rt_t;

/* One round trip of bench_relay_rt_a(): request i out, its whole reply in. */
static void s_relay_rt_one(bench_run_t *self, long i, void *arg)
{
    relay_rt_t *x = arg;
    int role = self->role_a;
    wire_put32(x->frame + 8, (uint32_t) i);
    int rc = bench_write_all(x->fd, x->frame, x->head + BENCH_SMALL);
    if (rc < 0)
        bench_child_fail(self, role, "write: %s", strerror(-rc));
    wire_frame_t f;
    while ((rc = bench_reader_next(&x->rd, &f)) == 0) {
        ssize_t n = bench_reader_fill(&x->rd, x->fd);
        if (n <= 0)
            bench_child_fail(self, role, "read: %s", n ? strerror((int) -n) : "EOF");
    }
    if (rc < 0 || f.size != BENCH_SMALL || f.seq != (uint32_t) i)
        bench_child_fail(self, role, "bad reply %ld", i);
}

void bench_relay_rt_a(bench_run_t *self, int fd, uint8_t type, uint32_t aux, const char *src,
                      size_t cap, size_t max)
{
    relay_rt_t x = { .fd = fd };
    x.head = wire_encode(x.frame, type, 0, 0, aux, src, strlen(src), BENCH_ECHO_NAME,
                         strlen(BENCH_ECHO_NAME), BENCH_SMALL);
    memset(x.frame + x.head, 'a', BENCH_SMALL);
    if (bench_reader_init(&x.rd, cap, max) < 0)
        bench_child_fail(self, self->role_a, "out of memory");
    bench_child_rt_run(self, s_relay_rt_one, &x);
    _exit(0);
}

void bench_relay_rt_b(bench_run_t *self, int fd, const char *src, size_t cap, size_t max)
{
    int role = self->role_b;
    uint8_t frame[WIRE_HEAD_MAX + BENCH_SMALL];
    size_t head = wire_encode(frame, WIRE_DELIVER_REP, 0, 0, 0, src, strlen(src),
                              NULL, 0, BENCH_SMALL);
    bench_reader_t rd;
    if (bench_reader_init(&rd, cap, max) < 0)
        bench_child_fail(self, role, "out of memory");
    bench_child_say(self, role, 'r');
    for (;;) {
        wire_frame_t f;
        int rc;
        while ((rc = bench_reader_next(&rd, &f)) == 1) {
            if (f.size != BENCH_SMALL)
                bench_child_fail(self, role, "bad request");
            wire_put32(frame + 8, f.seq);
            memcpy(frame + head, f.data, BENCH_SMALL);
            if (bench_write_all(fd, frame, head + BENCH_SMALL) < 0)
                _exit(0);
        }
        if (rc < 0)
            bench_child_fail(self, role, "bad frame: %s", strerror(-rc));
        if (bench_reader_fill(&rd, fd) <= 0)
            _exit(0);
    }
}

void bench_relay_send_b(bench_run_t *self, int fd, long count, size_t size, size_t cap,
                        size_t max)
{
    int role = self->role_b;
    bench_reader_t rd;
    if (bench_reader_init(&rd, cap, max) < 0)
        bench_child_fail(self, role, "out of memory");
    bench_child_say(self, role, 'r');
    long got = 0;
    bool marker = false;
    while (!marker || got < count) {
        wire_frame_t f;
        int rc;
        while ((rc = bench_reader_next(&rd, &f)) == 1) {
            if (f.size == size)
                got++;
            else if (f.size == BENCH_MARKER)
                marker = true;
        }
        if (rc < 0)
            bench_child_fail(self, role, "bad frame: %s", strerror(-rc));
        self->sh->progress_b = got;
        if (marker && got >= count)
            break;
        ssize_t n = bench_reader_fill(&rd, fd);
        if (n <= 0)
            bench_child_fail(self, role, "read after %ld messages: %s", got,
                             n ? strerror((int) -n) : "EOF");
    }
    self->sh->t_end = bench_now();
    self->sh->received = got;
    bench_child_say(self, role, 'd');
    bench_child_wait(self, role, 'q');
    _exit(0);
}

int bench_run_clients(bench_run_t *self, bool started, void (*client) (void *arg, int role),
                      void *arg, bool rt, long count, double bytes, double unit,
                      bench_result_t *ret, const char *log, const char *sock)
{
    int rc = -1;
    bool ok = false;
    if (!started)
        goto out;
    for (int role = self->role_b; role >= self->role_a; role--)
        if (bench_run_fork(self, role, client, arg) < 0)
            goto out;
    if (bench_run_wait(self, 2, 'r') < 0)
        goto out;
    if (bench_run_result(self, rt, count, bytes, unit, ret) < 0)
        goto out;
    ok = true;
    rc = 0;

out:
    bench_run_close(self, ok);
    if (!ok && log)
        bench_print_log_tail(log);
    unlink(sock);
    return rc;
}

int bench_run_local_node(bench_run_t *self, int role, const char *node, const char *node_args,
                         const char *sock, const char *name, const char *bind,
                         const char *cluster, const char *log)
{
    char *argv[64];
    int argc = 0;
    argv[argc++] = (char *) node;
    argv[argc++] = (char *) "--socket";
    argv[argc++] = (char *) sock;
    if (name) {
        argv[argc++] = (char *) "--name";
        argv[argc++] = (char *) name;
    }
    argv[argc++] = (char *) "--port";
    argv[argc++] = (char *) "0";
    if (bind) {
        argv[argc++] = (char *) "--bind";
        argv[argc++] = (char *) bind;
    }
    argv[argc++] = (char *) "--no-mdns";
    argv[argc++] = (char *) "--state-dir";
    argv[argc++] = (char *) bench_tmpdir();
    argv[argc++] = (char *) "--cluster";
    argv[argc++] = (char *) cluster;
    char *extra = bench_args_append(argv, &argc, 63, node_args);
    argv[argc] = NULL;
    int rc = bench_run_node(self, role, argv, log, sock);
    free(extra);
    return rc;
}

void bench_node_client(bench_run_t *self, int role, bool rt, long count, size_t size,
                       bool batch)
{
    if (rt)
        role == self->role_a ? bench_node_rt_a(self) : bench_node_rt_b(self);
    else if (role == self->role_a)
        bench_node_send_a(self, count, size, batch);
    else
        bench_node_send_b(self, count, size);
}

int bench_each_run(const bench_plan_t *plan, bench_result_t *res, bench_one_fn *one, void *arg)
{
    const bench_plan_t *p = plan;
    int failures = 0;
    for (int sc = 0; sc < p->sc_count && !bench_interrupted(); sc++) {
        if (!(p->scenarios & 1u << sc))
            continue;
        for (int m = 0; m < p->mode_count && !bench_interrupted(); m++) {
            if (!(p->modes & 1u << m))
                continue;
            for (int k = 0; k < p->rounds && !bench_interrupted(); k++)
                for (int v = 0; v < p->var_count && !bench_interrupted(); v++) {
                    if (!(p->variants & 1u << v))
                        continue;
                    size_t at = (((size_t) sc * (size_t) p->mode_count + (size_t) m) *
                                 (size_t) p->var_count + (size_t) v) * (size_t) p->rounds +
                                (size_t) k;
                    fprintf(stderr, "%s %s round %d/%d %s ...\n", p->sc_names[sc],
                            p->mode_names[m], k + 1, p->rounds, p->var_names[v]);
                    if (one(arg, sc, m, v, &res[at]) < 0)
                        failures++;
                }
        }
    }
    return failures;
}

bool bench_next_cell(unsigned scenarios, int sc_count, unsigned modes, int mode_count, int *sc,
                     int *m)
{
    for (;;) {
        if (++*m >= mode_count) {
            *m = 0;
            if (++*sc >= sc_count)
                return false;
        }
        if ((scenarios & 1u << *sc) && (modes & 1u << *m))
            return true;
    }
}

int bench_begin(bench_header_t *h, const char *argv0, const char *node, const char *node_args,
                unsigned scenarios, const char *const *sc_args, int sc_count, unsigned modes,
                const char *const *mode_names, int mode_count)
{
    if (bench_start() < 0)
        return -1;
    uname(&h->u);
    h->self = bench_self(h->path, sizeof h->path, argv0);
    snprintf(h->env, sizeof h->env, "%s%s%s%s%s%s", node ? "IPC_NODE=" : "", node ? node : "",
             node_args ? " IPC_NODE_ARGS='" : "", node_args ? node_args : "",
             node_args ? "'" : "", node ? " " : "");
    bench_names(h->only, sizeof h->only, scenarios, sc_args, sc_count);
    bench_names(h->modes, sizeof h->modes, modes, mode_names, mode_count);
    return 0;
}
