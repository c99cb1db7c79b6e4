/*  harness.h: runs a real ipc-node for a test and talks to it.

    Each test gets its own node in its own temporary directory: harness_start()
    spawns $IPC_NODE --socket <dir>/node.sock --name testnode, waits (bounded)
    until the socket accepts, and harness_stop() sends SIGTERM by pid, waits
    (bounded), and checks the node exited 0 and removed its socket. Helper
    processes forked by a test are tracked here too, so the per-test watchdog
    and the teardown can kill and reap them by pid. Nothing here waits
    forever: every wait has a deadline.
*/
#ifndef HARNESS_H
#define HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ipcnet.h"
#include "wire.h"

#define HARNESS_NODE_NAME   "testnode"
#define HARNESS_START_MS    5000        /* longest wait for the socket */
#define HARNESS_STOP_MS     5000        /* longest wait for a clean exit */

typedef struct {
    pid_t pid;                  /* the node, 0 once reaped */
    char dir[64];               /* mkdtemp directory */
    char sock[108];             /* <dir>/node.sock (fits sun_path) */
    char log[128];              /* <dir>/node.log: the node's stderr */
    int status;                 /* wait status once reaped */
} node_t;

/* Path of the ipc-node binary: $IPC_NODE, else "./ipc-node". Borrowed. */
const char *harness_binary(void);

/* Makes a fresh temporary directory and starts a node in it with
   --socket <dir>/node.sock --name testnode and the NULL-terminated extra
   arguments. Waits until the socket accepts. Returns 0 or -errno; on
   failure nothing is left running. */
int harness_start(node_t *ret, ...);
int harness_startv(node_t *ret, char *const extra[]);

/* Like harness_startv() but the node gets no --socket: its socket is only
   named by IPCNET_SOCKET=<dir>/node.sock in its environment. */
int harness_start_env(node_t *ret);

/* The two halves of harness_start(): make the directory and paths (so a
   test can put something at the socket path first), then spawn the node
   and wait until it accepts. On launch failure the directory is removed. */
int harness_prepare(node_t *ret);
int harness_launch(node_t *node, char *const extra[], int via_env);

/* Spawns one more ipc-node with the given argv (argv[0] is replaced by
   the binary), stderr to errfile (may be NULL), environment extended by
   env_extra ("K=V", may be NULL). Tracked as a helper. Returns the pid or
   -errno. */
pid_t harness_spawn_node(char *const argv[], const char *errfile,
                         const char *env_extra);

/* Stops the node: SIGTERM, bounded wait, SIGKILL after HARNESS_STOP_MS.
   Returns 0 when it exited 0 on SIGTERM and its socket file is gone;
   otherwise -1 and prints why. Removes the directory in any case. */
int harness_stop(node_t *node);

/* harness_stop() with another signal (SIGINT). */
int harness_stop_with(node_t *node, int sig);

/* Removes the node's directory (after the node is gone). */
void harness_cleanup(node_t *node);

/* Kills the node with SIGKILL and cleans up without any check. */
void harness_kill(node_t *node);

/* Is the node process still running (not exited, not a zombie)? */
int harness_alive(node_t *node);

/* Waits up to timeout_ms for pid to exit; fills *ret_status. Returns 0,
   or -ETIMEDOUT (the process is left running). */
int harness_waitpid(pid_t pid, int timeout_ms, int *ret_status);

/* Forks a helper process tracked by the harness. Returns as fork(). The
   child must end with _exit(). */
pid_t harness_fork(void);

/* Waits for a helper (bounded), SIGKILLs it on timeout. Returns its exit
   code (0..255), 128+signal if killed by a signal, or -1 on timeout. */
int harness_reap(pid_t pid, int timeout_ms);

/* Kills and reaps every tracked helper still running. */
void harness_reap_all(void);

/* Arms a watchdog: after seconds (scaled by $TEST_TIMEOUT_SCALE), kill the
   node and all helpers, print which test hung, and exit 1. 0 disarms. */
void harness_watchdog(const char *test, unsigned seconds);

/* Connects a library client to the node (blocking). NULL on failure. */
ipcnet_t *harness_connect(const node_t *node, const char *label);

/* Makes sure the node has handled every command sent so far on c (a query
   round trip; commands on one connection are handled in order). */
void harness_sync(ipcnet_t *c);

/* Waits up to timeout_ms for one message on c; 0 or the error. */
int harness_recv(ipcnet_t *c, ipcnet_msg_t *ret, int timeout_ms);

/* Resident set size of pid in KiB from /proc/<pid>/status, or -1. */
long harness_rss_kib(pid_t pid);

/* Does pid run under valgrind or a sanitizer (or is $TEST_NO_RSS set)?
   Then its RSS and descriptor limits say nothing about the node itself. */
int harness_instrumented(pid_t pid);

/* Raises RLIMIT_NOFILE to at least want (up to the hard limit). Returns
   the new soft limit. */
long harness_raise_nofile(long want);

/* Milliseconds of a monotonic clock. */
int64_t harness_now_ms(void);

/* --- raw protocol, for malformed-input tests ---------------------------- */

/* A raw AF_UNIX stream connection to the node, no HELLO sent. -errno. */
int harness_raw_connect(const node_t *node);

/* Writes all of buf (EPIPE/ECONNRESET returned as -errno, not a signal). */
int harness_raw_write(int fd, const void *buf, size_t len);

/* Encodes and writes one frame. */
int harness_raw_frame(int fd, uint8_t type, uint16_t flags, uint32_t seq,
                      uint32_t aux, const char *s1, const char *s2,
                      const void *payload, size_t size);

/* Reads one whole frame into buf (cap bytes) within timeout_ms and decodes
   it into *ret (views into buf). Returns the frame length, 0 on EOF,
   -ETIMEDOUT, -EBADMSG, or -errno. */
ssize_t harness_raw_read_frame(int fd, uint8_t *buf, size_t cap,
                               int timeout_ms, wire_frame_t *ret);

/* Sends HELLO and reads the WELCOME. Returns 0 or a negative error. */
int harness_raw_hello(int fd, const char *label);

/* Reads and discards until the peer closes the connection. Returns 0 if
   it did (EOF or ECONNRESET) within timeout_ms, -ETIMEDOUT otherwise. */
int harness_raw_wait_closed(int fd, int timeout_ms);


/* --- several nodes ---------------------------------------------------------- */

#define HARNESS_MAX_NODES   16      /* nodes the watchdog tracks at once */

/* Starts a node called name in a fresh directory, like harness_startv(),
   that listens for peers on loopback only (--bind 127.0.0.1 --no-mdns),
   with the NULL-terminated extra arguments after those (a later option
   overrides an earlier one: "--port", "N"). The node is tracked: the
   watchdog kills it and removes its directory as well. Returns 0 or
   -errno; on failure nothing is left running. */
int harness_start_named(node_t *ret, const char *name, char *const extra[]);

/* Starts again, in its directory (same socket path, same state directory
   hence the same node id), a node stopped by harness_crash(). */
int harness_restart_named(node_t *node, const char *name, char *const extra[]);

/* Kills the node with SIGKILL and reaps it, but keeps its directory for
   harness_restart_named(); harness_cleanup() removes it later. */
void harness_crash(node_t *node);

/* The second half of harness_stop_with(): for a node a test has already
   sent sig, waits (bounded) for it to exit and checks it exited 0 and
   removed its socket. Returns 0 or -1 (and says why); removes the
   directory in any case. */
int harness_stop_wait(node_t *node, int sig);

/* The TCP port the node listens on for peers, read from the address of
   the "self" line of its IPCNET_Q_PEERS listing; -errno on failure. */
int harness_node_port(const node_t *node);

/* A TCP port on 127.0.0.1 that was free a moment ago, chosen at random
   below the kernel's ephemeral port range (so that no outgoing connection
   takes it as its source port while its node is down), or -errno. */
int harness_free_port(void);


/* --- expectations, for cmocka tests ------------------------------------------ */

/* These fail the running cmocka test (fail_msg) when the node does not do
   what is expected; the waits are the test program's (see below). */

#define HARNESS_READY_MS    5000        /* longest wait for a helper's byte */

/* Sets how long harness_expect*() wait for a message that must come and
   for one that must not. Defaults: 5000 and 300 ms. */
void harness_expect_waits(int wait_ms, int quiet_ms);

/* The name of a message kind ("SEND", ...). Borrowed. */
const char *harness_kind_name(ipcnet_kind_t kind);

/* Receives one message of the given kind on c, else fails. */
void harness_expect(ipcnet_t *c, ipcnet_kind_t kind, ipcnet_msg_t *ret);

/* Receives one message of the given kind with exactly this text (and
   this name unless name is NULL), else fails. */
void harness_expect_text(ipcnet_t *c, ipcnet_kind_t kind, const char *name,
                         const char *text);

/* Fails if anything arrives on c within the quiet wait. */
void harness_expect_nothing(ipcnet_t *c);

/* ipcnet_bind() that fails the test on error. */
void harness_bind(ipcnet_t *c, const char *name);

/* ipcnet_send() of a text that fails the test on error. */
void harness_send(ipcnet_t *c, const char *dest, const char *text, int flags);

/* Waits (HARNESS_READY_MS) until fd is readable and reads one byte (a
   helper's "ready"), else fails. */
void harness_wait_ready(int fd);

/* --- listings (IPCNET_Q_PEERS, IPCNET_Q_SERVICES), for cmocka tests ----------- */

/* A row of the peers listing. */
typedef struct {
    char name[64];
    char id[64];
    char address[128];
    char source[16];
    char state[16];
    char key[64];
} harness_peer_t;

/* The row of peer name in the peers listing of q's node, whose own name
   is self. Returns 1 if found, else 0; fails the test if a row does not
   have 8 fields or the first row is not the node itself. */
int harness_peer(ipcnet_t *q, const char *self, const char *name, harness_peer_t *ret);

/* How many peers (not itself) q's node lists as up. */
int harness_peers_up(ipcnet_t *q);

/* Does q's node list name as held on node `node`? With holder non-NULL,
   the holder and label columns must match too. Fails the test on a row
   that does not have 4 fields. */
int harness_has_service(ipcnet_t *q, const char *name, const char *node, const char *holder,
                        const char *label);

/* The first 64 KiB of a file as a string ("" when it cannot be read).
   Given: the caller frees it. */
char *harness_read_file(const char *path);

#endif
