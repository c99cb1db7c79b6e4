/*  bench_util.h: what bench_local and bench_cluster share.

    One run of a benchmark is a bench_run_t: its processes (the servers
    first, then client A and client B), the pipes between them and the
    parent, the page they share and the run's deadline. The parent opens a
    run, starts its processes, measures from go to done with the processes'
    CPU clocks and closes the run, which stops and reaps every process by
    pid. A child reports on its pipe and gives up with bench_child_fail().

    The libipcnet clients of the node variants are the same in both
    benchmarks and live here, as do the parent's helpers: options, the
    temporary directory, signals, CPU pinning, medians and formatting.
*/
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <limits.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <time.h>

#include "wire.h"

#define BENCH_ROLES          4              /* processes of one run, at most */
#define BENCH_ECHO_NAME      "bench.echo"   /* the name client B binds */
#define BENCH_SMALL          64             /* payload of the small scenarios */
#define BENCH_MARKER         1              /* payload of the end marker */
#define BENCH_BATCH_CHUNK    (64 * 1024)    /* batched writes, as libipcnet's TX_BATCH */
#define BENCH_REQ_TIMEOUT_MS 10000          /* ipcnet_request() */
#define BENCH_STOP_GRACE_S   5              /* SIGTERM to SIGKILL, reaping */
#define BENCH_NODE_START_S   10             /* until a node accepts */

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
    char err[BENCH_ROLES][240]; /* why a child gave up */
    uint32_t lat[];             /* round trips in ns, rt of them */
} bench_shared_t;

/* One run. bench_run_open() fills the second half; the caller sets the
   first half (names, daemons, sockets) before it starts processes. */
typedef struct {
    const char *name[BENCH_ROLES];  /* each process's name in messages */
    bool daemon[BENCH_ROLES];       /* a node: stopped by SIGTERM at the end */
    const char *sock_a;             /* where client A connects */
    const char *sock_b;             /* where client B connects */

    int roles;                      /* servers, then client A, client B */
    int role_a, role_b;             /* roles - 2, roles - 1 */
    bool pinned;                    /* every process on one CPU */
    int timeout;                    /* seconds the run may take */
    long rt;                        /* measured round trips */
    long warm;                      /* unmeasured round trips before them */
    double deadline;                /* CLOCK_MONOTONIC */
    bench_shared_t *sh;
    size_t sh_size;
    int up[2];                      /* children -> parent: 'r' ready, 'd' done, 'E' */
    int ctl[BENCH_ROLES][2];        /* parent -> child: 'g' go, 'q' quit */
    pid_t pid[BENCH_ROLES];         /* 0: not started or reaped */
} bench_run_t;

/* What a run yields, or its medians over the rounds. */
typedef struct {
    bool ok;
    double value;               /* median us, msg/s, MiB/s or MB/s */
    double p99;                 /* round trips */
    double cpu_srv;             /* us per operation: relays or nodes */
    double cpu_cli;             /* us per operation: both clients */
} bench_result_t;

/* Seconds of CLOCK_MONOTONIC. Inline: it is on the measured paths. */
static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* --- the parent: set-up and options ------------------------------------- */

/* Names the program in the messages of the option parsers. Borrowed. */
void bench_init(const char *prog);

/* Reads the CPU mask, makes the temporary directory, catches SIGINT and
   SIGTERM, ignores SIGPIPE, line-buffers stdout. Returns 0, or -1 (said
   on stderr). */
int bench_start(void);

/* Removes the temporary directory. Returns the exit status: 130 when
   interrupted, else 0. */
int bench_end(void);

/* The temporary directory (short: socket paths live in it). Borrowed. */
const char *bench_tmpdir(void);

/* Has SIGINT or SIGTERM come? */
bool bench_interrupted(void);

/* The CPU of pinned runs, and how many CPUs we may use. */
int bench_cpu_pin(void);
int bench_cpu_count(void);

/* Number s at least min, or exits 2 saying `what` is bad. */
long bench_num(const char *s, const char *what, long min);

/* Bits of the comma-separated names in s, or exits 2. */
unsigned bench_list(const char *s, const char *const *names, int count, const char *what);

/* Sets *v from the environment variable `name` when it is set. */
void bench_env_num(const char *name, long *v, long min);

/* A command-line option of a benchmark: "NAME VALUE", or a switch. One of
   num, bits, flag or parse says what it sets. */
typedef struct {
    const char *name;           /* "--rt" */
    const char *env;            /* also read from this variable first, or NULL */
    long *num;                  /* a number of at least min (bench_num()) */
    long min;
    unsigned *bits;             /* a list of names[count] (bench_list()), a what */
    const char *const *names;
    int count;
    const char *what;
    bool *flag;                 /* a switch: set to true, no value */
    int (*parse)(const char *value, void *arg);     /* else: < 0 refuses it */
    void *arg;
} bench_opt_t;

/* Reads the options opts (ended by one without a name): first their
   environment variables, then argv, where --quick (the caller's own) is
   skipped and -h or --help prints usage on stdout. Returns 0 to go on,
   1 after the help, 2 on an unknown option (usage on stderr) or a value
   parse refused; a bad number or list exits 2. */
int bench_options(int argc, char **argv, const bench_opt_t *opts, void (*usage)(FILE *f));

/* The rows of a bench_opt_t table for the options every benchmark takes:
   --rounds, --rt, --msgs, --big (also $BENCH_ROUNDS ...), --big-size,
   --timeout, --only (scenarios) and --mode. */
#define BENCH_OPTS_COMMON(rounds, rt, msgs, big, big_size, timeout, scenarios, sc_names,    \
                          sc_count, modes, mode_names, mode_count)                           \
    { .name = "--rounds", .env = "BENCH_ROUNDS", .num = (rounds), .min = 1 },                \
    { .name = "--rt", .env = "BENCH_RT", .num = (rt), .min = 1 },                            \
    { .name = "--msgs", .env = "BENCH_MSGS", .num = (msgs), .min = 1 },                      \
    { .name = "--big", .env = "BENCH_BIG", .num = (big), .min = 1 },                         \
    { .name = "--big-size", .num = (big_size), .min = BENCH_MARKER + 1 },                    \
    { .name = "--timeout", .num = (timeout), .min = 1 },                                     \
    { .name = "--only", .bits = (scenarios), .names = (sc_names), .count = (sc_count),       \
      .what = "scenario" },                                                                  \
    { .name = "--mode", .bits = (modes), .names = (mode_names), .count = (mode_count),       \
      .what = "mode" }

/* What a benchmark runs: each scenario in the bits of scenarios (of
   sc_count, named sc_names), each mode in modes, rounds times, each
   variant in variants. */
typedef struct {
    unsigned scenarios, modes, variants;
    const char *const *sc_names, *const *mode_names, *const *var_names;
    int sc_count, mode_count, var_count, rounds;
} bench_plan_t;

/* One run (arg: the benchmark's): scenario sc, mode m, variant v, its
   result in *ret. Returns 0, or -1 when it failed. */
typedef int (bench_one_fn) (void *arg, int sc, int m, int v, bench_result_t *ret);

/* Does one() for every run of plan, in that nesting (rounds of a mode
   alternate the variants), saying on stderr which run starts; the result
   of (sc, m, v, round k) is res[((sc * mode_count + m) * var_count + v)
   * rounds + k]. Stops when interrupted. Returns how many runs failed. */
int bench_each_run(const bench_plan_t *plan, bench_result_t *res, bench_one_fn *one, void *arg);

/* Steps (*sc, *m) to the next scenario and mode selected by the bits of
   scenarios and modes, scenario-major: start with 0 and -1. Returns false
   past the last. */
bool bench_next_cell(unsigned scenarios, int sc_count, unsigned modes, int mode_count, int *sc,
                     int *m);

/* What the first lines of a benchmark's report name. */
typedef struct {
    struct utsname u;           /* the host */
    char path[PATH_MAX];
    const char *self;           /* this program (bench_self()) */
    char env[2 * PATH_MAX];     /* "IPC_NODE=N IPC_NODE_ARGS='A' " to reproduce, or "" */
    char only[64], modes[32];   /* the selected scenarios (their arguments) and modes */
} bench_header_t;

/* Starts the benchmark (bench_start()) and fills h for a benchmark run
   as argv0 with node and node_args (may be NULL) and the selected
   scenarios and modes. Returns 0, or -1 if it could not start. */
int bench_begin(bench_header_t *h, const char *argv0, const char *node, const char *node_args,
                unsigned scenarios, const char *const *sc_args, int sc_count, unsigned modes,
                const char *const *mode_names, int mode_count);

/* Is --quick among the arguments? */
bool bench_quick(int argc, char **argv);

/* Writes the names of the set bits, comma-separated, to out. */
void bench_names(char *out, size_t len, unsigned bits, const char *const *names, int count);

/* $IPC_NODE in *ret_node (borrowed; NULL when unset) and $IPC_NODE_ARGS in
   *ret_args (given; NULL when unset). Returns 0, or -1 when IPC_NODE is
   not executable (said on stderr). */
int bench_env_node(const char **ret_node, char **ret_args);

/* This program's path for the reproduce line: /proc/self/exe into buf,
   else argv0. Borrowed. */
const char *bench_self(char *buf, size_t len, const char *argv0);

/* Appends the words of args (space or tab separated) to argv while *argc
   is below max. Returns the buffer they point into: given, free it after
   the exec (NULL when args is NULL). */
char *bench_args_append(char **argv, int *argc, int max, const char *args);

/* --- the parent: one run -------------------------------------------------- */

/* Opens a run of `roles` processes with room for rt latencies and a
   deadline timeout seconds from now. Returns 0, or -1 (said on stderr)
   with nothing left open. */
int bench_run_open(bench_run_t *self, int roles, long rt, int timeout, bool pinned);

/* Forks the process of `role`: bench_child_setup(), then body(arg, role),
   which must not return. Returns 0 or -1. */
int bench_run_fork(bench_run_t *self, int role, void (*body)(void *arg, int role), void *arg);

/* Starts the node of `role` with argv (argv[0] the binary), pinned like
   the clients, stdout and stderr appended to log, and waits (bounded)
   until it accepts on sock (a Unix socket's path, or "tcp:PORT" for a
   server on 127.0.0.1). Returns 0 or -1 (said on stderr). */
int bench_run_node(bench_run_t *self, int role, char *const argv[], const char *log,
                   const char *sock);

/* Starts the run's ipc-node node as role: node --socket sock [--name name]
   --port 0 [--bind bind] --no-mdns --state-dir <tmp> --cluster cluster
   and the words of node_args (may be NULL), name and bind left out when
   NULL, and waits until it accepts (bench_run_node()). Returns 0 or -1. */
int bench_run_local_node(bench_run_t *self, int role, const char *node, const char *node_args,
                         const char *sock, const char *name, const char *bind,
                         const char *cluster, const char *log);

/* Looks for a process of the run that died without a word; says so with
   `before` ("before accepting"). Returns 0, or -1 when one did. */
int bench_run_check(bench_run_t *self, const char *before);

/* Waits for the one-byte reports `what` of `want` children, until the
   deadline. Returns 0, or -1 when a child failed, timed out or the user
   interrupted (said on stderr). */
int bench_run_wait(bench_run_t *self, int want, char what);

/* Tells client A to go and waits for 'd'; ret_cpu[i] is the CPU seconds
   process i used in between, all its threads. Returns 0 or -1. */
int bench_run_measure(bench_run_t *self, double ret_cpu[BENCH_ROLES]);

/* Median and 99th percentile of the measured round trips, in us. Sorts
   the latencies. */
void bench_run_latency(bench_run_t *self, double *ret_median_us, double *ret_p99_us);

/* Once the run is done (bench_run_wait): measures the CPU of every process
   and fills ret. A round trip (rt) yields the median and p99 latency in
   us; otherwise count messages over the measured time give a rate
   (bytes 0: messages/s) or a throughput (bytes per message, divided by
   unit: 1e6 for MB/s, 1048576 for MiB/s). CPU is us per operation of the
   servers (every role before client A) and of both clients. Returns 0 with
   ret->ok set, or -1. */
int bench_run_result(bench_run_t *self, bool rt, long count, double bytes, double unit,
                     bench_result_t *ret);

/* Milliseconds left until the deadline, at most cap, at least 0. */
int bench_run_left_ms(const bench_run_t *self, int cap);

/* Ends the run: clients by their quit byte (SIGKILL when the run failed),
   relays on their own (SIGKILL when failed), nodes by SIGTERM, each reaped
   by pid; says on stderr what failed, closes the pipes, unmaps the page. */
void bench_run_close(bench_run_t *self, bool ok);

/* Prints the last 8 lines of a node's log to stderr. */
void bench_print_log_tail(const char *path);

/* The rest of a run with one server, started (false: it did not start):
   forks client B then client A (client(arg, role)), waits until both are
   ready, measures (bench_run_result() with rt, count, bytes and unit),
   closes the run, printing the tail of log (may be NULL) if it failed,
   and removes the socket sock. Returns 0 or -1. */
int bench_run_clients(bench_run_t *self, bool started, void (*client) (void *arg, int role),
                      void *arg, bool rt, long count, double bytes, double unit,
                      bench_result_t *ret, const char *log, const char *sock);

/* --- a child of the run ---------------------------------------------------- */

/* What every child does after fork(): its CPUs, a last-resort alarm, and
   no end of the pipes that is not its own. */
void bench_child_setup(bench_run_t *self, int role);

/* A child gives up: says why in the shared page and to the parent. */
__attribute__((format(printf, 3, 4), noreturn))
void bench_child_fail(bench_run_t *self, int role, const char *fmt, ...);

/* Sends the byte c to the parent, or gives up. */
void bench_child_say(bench_run_t *self, int role, char c);

/* Waits for the byte `want` from the parent, until the deadline. */
void bench_child_wait(bench_run_t *self, int role, char want);

/* Round trip i, started at t0, is done: records its latency unless it is
   a warm-up one, and the progress. */
void bench_child_rt_done(bench_run_t *self, long i, double t0);

/* Writes all of buf. Returns 0 or -errno. */
int bench_write_all(int fd, const void *buf, size_t len);

/* Writes cnt buffers, in one writev() unless the socket takes less; iov
   is used up. Returns 0 or -errno. */
int bench_writev_all(int fd, struct iovec *v, int cnt);

/* A connected Unix stream socket, or -errno. */
int bench_unix_connect(const char *path);

/* A TCP socket connected to 127.0.0.1:port, or -errno. */
int bench_tcp_connect(int port);

/* A listening Unix socket for a relay, or -1 (said on stderr). */
int bench_listen(const char *path);

/* Wire client A of the one-way scenarios: `count` frames of `size` bytes
   from src to BENCH_ECHO_NAME, then a marker. It does per message what
   libipcnet does: encodes the head, then either writes head and payload
   with one writev() (as ipcnet_send() does with sendmsg()) or, batching,
   copies both into a buffer written each time the next frame would pass
   64 KiB (IPCNET_MORE). Never returns. */
void bench_wire_send_a(bench_run_t *self, int fd, const char *src, long count, size_t size,
                       bool batch);

/* A receive buffer that hands out whole frames, as the library must. */
typedef struct {
    uint8_t *buf;
    size_t cap, start, end;
    size_t max;                 /* the longest frame it takes */
} bench_reader_t;

/* Makes rd a buffer of cap bytes for frames of at most max bytes.
   Returns 0 or -ENOMEM. */
int bench_reader_init(bench_reader_t *rd, size_t cap, size_t max);

/* The next complete frame, undecoded, in *p and *len: 1, 0 when more
   bytes are needed, or a negative errno for a bad frame. */
int bench_reader_frame(bench_reader_t *rd, const uint8_t **p, size_t *len);

/* The next complete frame, decoded: 1, 0 or a negative errno. */
int bench_reader_next(bench_reader_t *rd, wire_frame_t *f);

/* Reads what the socket has (blocking), first moving what is left to the
   front when less than 64 KiB is free at the end. Returns bytes, 0 at
   EOF, or -errno. */
ssize_t bench_reader_fill(bench_reader_t *rd, int fd);

/* One round trip, number i, of client A (arg: the client's own). */
typedef void (bench_rt_fn) (bench_run_t *self, long i, void *arg);

/* Client A's round trips: says ready, waits for go, then does one() for
   self->warm + self->rt round trips, each timed and failed past the
   deadline, then says done and waits for quit. */
void bench_child_rt_run(bench_run_t *self, bench_rt_fn *one, void *arg);

/* Relay client A of the round trips: sends a request frame of the given
   type and aux from src to BENCH_ECHO_NAME (BENCH_SMALL bytes) and waits
   for the whole reply, self->warm times unmeasured, then self->rt times
   measured, reading through a reader of cap bytes (frames up to max).
   Never returns. */
void bench_relay_rt_a(bench_run_t *self, int fd, uint8_t type, uint32_t aux, const char *src,
                      size_t cap, size_t max);

/* Relay client B of the round trips: answers each request with a reply
   frame from src of the same payload, until EOF. Never returns. */
void bench_relay_rt_b(bench_run_t *self, int fd, const char *src, size_t cap, size_t max);

/* Relay receiver of the one-way scenarios: counts whole frames of size
   bytes until the marker. Never returns. */
void bench_relay_send_b(bench_run_t *self, int fd, long count, size_t size, size_t cap,
                        size_t max);

/* The libipcnet clients of the node variants; none returns. Round trips:
   A does ipcnet_request() to BENCH_ECHO_NAME, B binds it and answers each
   request with its payload until the parent says stop. One-way: A sends
   `count` messages of `size` bytes (IPCNET_MORE and ipcnet_flush() when
   batching) and a marker, B counts them with poll() and ipcnet_dispatch(). */
void bench_node_rt_a(bench_run_t *self);
void bench_node_rt_b(bench_run_t *self);
void bench_node_send_a(bench_run_t *self, long count, size_t size, bool batch);
void bench_node_send_b(bench_run_t *self, long count, size_t size);

/* Client role of a node variant: the round trips (rt) or the one-way
   scenario above, as client A or B. Never returns. */
void bench_node_client(bench_run_t *self, int role, bool rt, long count, size_t size,
                       bool batch);

/* --- the report ----------------------------------------------------------- */

/* Median of the double at `off` in the successful results; NAN if none. */
double bench_median(const bench_result_t *res, int n, size_t off);

/* v with that many decimals, or "-" for NAN. */
void bench_fmt(char *out, size_t len, double v, int decimals);

/* cand / base with 2 decimals, or "-". */
void bench_fmt_ratio(char *out, size_t len, double base, double cand);

/* CPU per operation: "total (servers+clients)", or only the clients when
   there are no servers; "-" for NAN. */
void bench_fmt_cpu(char *out, size_t len, double srv, double cli, bool servers);

/* The last lines: CPU of all children over the whole run, aborted runs,
   interruption. */
void bench_print_footer(int failures);

/* Prints one round of a "# every round" line: "  value [p99] srv+cli" for
   a round trip, else "  value srv+cli" with decimals; "  (failed)". */
void bench_print_round(const bench_result_t *x, bool rt, int decimals);

#endif
