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

/* The soft and hard RLIMIT_NOFILE of every node spawned from now on (set
   in the child before exec, so that the node cannot raise it); 0, the
   default: they inherit the test's. */
void harness_node_nofile(long limit);

/* CPU time (user and system) pid has used, in ms, from /proc/<pid>/stat;
   -1 if it cannot be read. */
long long harness_cpu_ms(pid_t pid);

/* How many lines of the file at path contain needle (the whole file, lines
   of any length). 0 when it cannot be read. */
int harness_count_lines(const char *path, const char *needle);

/* Milliseconds of a monotonic clock. */
int64_t harness_now_ms(void);

/* $TEST_TIMEOUT_SCALE (1 to 100, else 1): how much slower the node may be
   (under valgrind); the harness's own waits are scaled by it. */
int harness_scale(void);

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
    long long rtt_us;           /* round trip of its last PONG, 0 before one */
    long long seen_ms;          /* since the node last heard from it */
    char key[64];
    char reason[200];           /* why it is not up, "-" when nothing is wrong */
} harness_peer_t;

/* The row of peer name in the peers listing of q's node, whose own name
   is self. Returns 1 if found, else 0; fails the test if a row does not
   have 9 fields or the first row is not the node itself. */
int harness_peer(ipcnet_t *q, const char *self, const char *name, harness_peer_t *ret);

/* How many peers (not itself) q's node lists as up. */
int harness_peers_up(ipcnet_t *q);

/* Does q's node list name as held on node `node`? With holder non-NULL,
   the holder and label columns must match too. Fails the test on a row
   that does not have 5 fields. */
int harness_has_service(ipcnet_t *q, const char *name, const char *node, const char *holder,
                        const char *label);

/* The first 64 KiB of a file as a string ("" when it cannot be read).
   Given: the caller frees it. */
char *harness_read_file(const char *path);

/* --- fixtures shared by the test programs, for cmocka tests ------------------ */

/* A cmocka setup's state: *state gets size zeroed bytes (the caller's
   fixture, freed by its teardown). Returns 0, or -1 out of memory. */
int harness_state_new(void **state, size_t size);

/* The start of a test program's main(): SIGPIPE ignored, the waits of
   harness_expect*() set, and argv[1], if given, as cmocka's test filter. */
void harness_main(int argc, char **argv, int wait_ms, int quiet_ms);

#define HARNESS_MAX_CLIENTS 32      /* clients harness_client() tracks at once */

/* Connects a client to node (called name in failure messages) that
   harness_close_clients() closes; fails the test if it cannot. */
ipcnet_t *harness_client(const node_t *node, const char *name, const char *label);

/* harness_client() that binds service, else fails the test. */
ipcnet_t *harness_holder(const node_t *node, const char *name, const char *label,
                         const char *service);

/* Closes a client of harness_client() early and forgets it; *c is NULL. */
void harness_client_close(ipcnet_t **c);

/* Closes every client of harness_client() still open (for a teardown). */
void harness_close_clients(void);

/* The end of a teardown for count nodes n[] (called names[]) and their
   query connections q[]: closes those and the clients of harness_client(),
   reaps the helpers, then stops each node still running, last first
   (SIGCONT first, in case a test stopped it), checking that it exits
   cleanly, and removes the directories of the others. Returns 0, or -1
   (and says which) if a node did not stop cleanly. */
int harness_teardown_nodes(node_t *n, ipcnet_t **q, const char *const *names, int count);

/* The text of query what (IPCNET_Q_*) on q, given to the caller; fails
   the test if the query fails. */
char *harness_query(ipcnet_t *q, int what);

/* The value of key in the stats listing of q's node (IPCNET_Q_STATS, one
   "key<TAB>value" a line); fails the test if it has no such key. */
long long harness_stat(ipcnet_t *q, const char *key);

/* Connects *q to node (called name) unless it is connected already, and
   returns it; fails the test if it cannot. */
ipcnet_t *harness_query_conn(const node_t *node, const char *name, ipcnet_t **q);

/* A TCP port for a node to be started on again (harness_free_port()),
   else fails the test. */
int harness_fixed_port(void);

/* What a helper forked by harness_fork_holder() does with its client c,
   which holds the name; returns the helper's exit code. */
typedef int (harness_holder_fn) (ipcnet_t *c, void *arg);

/* Forks a helper that connects to node as label, binds service, says it
   is ready, then runs fn (exit 2: no connection or bind, 3: could not say
   ready). Returns its pid once it is ready, else fails the test. */
pid_t harness_fork_holder(const node_t *node, const char *label, const char *service,
                          harness_holder_fn *fn, void *arg);

/* How a harness_upper_holder() helper answers. */
typedef struct {
    int requests;               /* how many to answer */
    int timeout_ms;             /* longest wait for each */
} harness_upper_t;

/* A harness_holder_fn (arg: a harness_upper_t): answers each request with
   its payload in upper case, then flushes and exits 0 (4: no request in
   time, 5: the reply failed). */
int harness_upper_holder(ipcnet_t *c, void *arg);

/* A harness_holder_fn (arg: an int, the wait in ms): takes one request and
   exits without answering, its socket closing with it (4: none came). */
int harness_vanishing_holder(ipcnet_t *c, void *arg);

/* Blocking requests to dest, held by a harness_upper_holder() helper that
   answers three: "hello", "abc" and "" come back in upper case, else
   fails the test, saying what ("request", ...) failed. */
void harness_expect_upper(ipcnet_t *c, const char *dest, const char *what);

/* r requests "ping" of dest (held by h) with timeout_ms: h gets it, to
   dest, with r's address and a timeout within that, and its "pong" comes
   back to r with the request's id and h's address; else fails the test. */
void harness_ping_pong(ipcnet_t *r, ipcnet_t *h, const char *dest, int timeout_ms);

/* c requests "q" of dest with timeout_ms (0: the node's default), which
   nobody answers: -ETIMEDOUT, else fails the test. Returns the time the
   request took, in ms. */
int64_t harness_request_times_out(ipcnet_t *c, const char *dest, int timeout_ms);

/* r makes two requests ("one" to dest1, "two" to dest2) of h, which
   answers the second first: each reply comes back with its request's
   id; else fails the test. The ids go to ret_ids (may be NULL). */
void harness_out_of_order(ipcnet_t *r, ipcnet_t *h, const char *dest1, const char *dest2,
                          int timeout_ms, uint32_t ret_ids[2]);

/* Receives one message of kind with this name, source and payload, else
   fails the test. */
void harness_expect_from(ipcnet_t *c, ipcnet_kind_t kind, const char *name,
                         const char *source, const void *data, size_t size);

/* p publishes text on topic with flags: each of the ngot clients in got
   receives it, and the nnone in none nothing; else fails the test. */
void harness_publish_to(ipcnet_t *p, const char *topic, const char *text, int flags,
                        ipcnet_t *const *got, int ngot, ipcnet_t *const *none, int nnone);

/* p publishes "0" .. "n-1" on topic: each of the ngot clients in got
   receives them in order; else fails the test. */
void harness_publish_many(ipcnet_t *p, const char *topic, int n, ipcnet_t *const *got,
                          int ngot);

/* c requests "q" of dest (timeout_ms), held by *h, which takes it and
   closes (harness_client_close()): c gets an ERROR ECONNRESET with the
   request's id; else fails the test. */
void harness_request_holder_gone(ipcnet_t *c, ipcnet_t **h, const char *dest, int timeout_ms);

/* Sends "msg 0" .. "msg n-1" to dest without confirmation: h gets them
   in order, and then nothing, nor does s get anything back; else fails
   the test. */
void harness_send_many(ipcnet_t *s, ipcnet_t *h, const char *dest, int n);

/* Sends "0" .. "n-1" to dest with IPCNET_CONFIRM, else fails the test. */
void harness_send_numbered(ipcnet_t *s, const char *dest, int n);

/* Takes what h receives until it is quiet (the quiet wait): SENDs of
   harness_send_numbered() (of n), in increasing order, each counted in
   seen[]. Returns how many; fails the test on anything else. */
int harness_take_numbered(ipcnet_t *h, int n, int *seen);

/* Fails the test unless each of the n numbers was seen exactly once. */
void harness_expect_once(const int *seen, int n);

/* Offset of the first wrong byte of a numbered message of size bytes
   (its number in the first four), or -1: the sender's fill pattern. */
typedef long (harness_check_fn) (const uint8_t *data, size_t size, uint32_t seq);

/* Checks that m is SEND numbered want (in its first four bytes) of size
   bytes whose fill check accepts; else fails the test. */
void harness_expect_numbered(const ipcnet_msg_t *m, size_t size, uint32_t want,
                             harness_check_fn *check);

/* Reads from r the accepted messages s sent (numbered from 0, size bytes,
   checked by check) while flushing s: all arrive in order, intact, and no
   more; s got nothing back. Else fails the test. Waits at most 60 s. */
void harness_drain_numbered(ipcnet_t *s, ipcnet_t *r, uint32_t accepted, size_t size,
                            harness_check_fn *check);

/* --- who sent a message (protocol-local.md 4.4), for cmocka tests ------------ */

/* Who a delivered message must say sent it. */
typedef struct {
    const char *source;         /* the sender's unique address */
    uint32_t uid;               /* its uid on its node */
    const char *user;           /* its user name there */
    const char *node;           /* its node's name */
    const char *node_id;        /* its node's id: 32 hex digits */
} harness_sender_t;

/* The user name a node gives uid (protocol-local.md 4.4): its name in the
   user database, if that is 1 to 32 bytes of 0x21..0x7E, else the uid in
   decimal. Written into buf (64 bytes), which is returned. */
const char *harness_user_of(uid_t uid, char *buf);

/* The id of q's node, whose name is self, from its own row of the peers
   listing (32 lowercase hex digits), into id (64 bytes); else fails the
   test. */
void harness_self_id(ipcnet_t *q, const char *self, char *id);

/* Fails the test (saying what) unless m names want as its sender: source,
   uid, user, node and node id. */
void harness_expect_sender(const ipcnet_msg_t *m, const harness_sender_t *want,
                           const char *what);

/* s (whose sender is s_who) sends to dest with and without IPCNET_CONFIRM
   (several times, in order), to h's unique address, makes a request of
   dest, and publishes on topic; h (h_who), which holds dest, gets each
   SEND and REQUEST from s_who and replies, and s gets the REPLY from
   h_who; sub, subscribed to topic, gets the PUBLISH from s_who; h sends
   back to s's address, from h_who. Else fails the test. */
void harness_expect_senders(ipcnet_t *s, const harness_sender_t *s_who, ipcnet_t *h,
                            const harness_sender_t *h_who, const char *dest, ipcnet_t *sub,
                            const char *topic);

/* A user of harness_fake_users(). */
typedef struct {
    uid_t uid;
    const char *name;
} harness_user_t;

/* Moves this process into a mount namespace of its own and there
   bind-mounts over /etc/passwd a copy of it with the n users added (group
   65534), for itself and the nodes it starts after this. Skips the
   running test when that cannot be done (not root, no mount namespace).
   dir (64 bytes) gets the copy's directory, for harness_fake_users_undo. */
void harness_fake_users(const harness_user_t *users, size_t n, char *dir);

/* Unmounts the copy and removes it. */
void harness_fake_users_undo(const char *dir);

#endif
