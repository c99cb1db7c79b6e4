/*  ipcnet.h: the client library of ipc-node.

    A program connects to its local ipc-node over a Unix socket and then
    sends to names, makes requests, publishes to topics and watches names,
    whether the other program is on this machine or another. The library
    needs libc alone, imposes no event loop (use ipcnet_fd() and
    ipcnet_dispatch()) and never logs: every call returns 0 or a negative
    errno, which ipcnet_strerror() turns into words. See ipcnet(3).

    A handle is used by one thread at a time.
*/
#ifndef IPCNET_H
#define IPCNET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IPCNET_VERSION_MAJOR 0
#define IPCNET_VERSION_MINOR 2
#define IPCNET_VERSION_PATCH 0

typedef struct ipcnet ipcnet_t;

/* Flags of ipcnet_connect(). */
#define IPCNET_NONBLOCK  0x01   /* calls that would wait return -EAGAIN */
#define IPCNET_RECONNECT 0x02   /* survive the node going away: see below */

/* Flags of ipcnet_send() and ipcnet_publish(). */
#define IPCNET_DONTWAIT  0x01   /* return -EAGAIN rather than wait for room */
#define IPCNET_MORE      0x02   /* more follow: queue, write later in one batch */
#define IPCNET_CONFIRM   0x04   /* wait until the receiver's node has written
                                   it to the receiver's socket (a publication:
                                   until queued and forwarded); errors come
                                   back from this call */

/* What ipcnet_recv() returns. */
typedef enum {
    IPCNET_MSG_SEND = 1,        /* a message sent to a name we hold or to us */
    IPCNET_MSG_REQUEST = 2,     /* a request; answer it with ipcnet_reply() */
    IPCNET_MSG_REPLY = 3,       /* the reply to ipcnet_request_async() */
    IPCNET_MSG_PUBLISH = 4,     /* a publication on a topic we subscribe to */
    IPCNET_MSG_EVENT = 5,       /* a watched name or peer came or went */
    IPCNET_MSG_ERROR = 6,       /* an earlier send, publish or request failed:
                                   data and size hold the node's words for why */
    IPCNET_MSG_MONITOR = 7,     /* ipcnet_monitor(): a message the node routed */
    IPCNET_MSG_KEY = 8,         /* ipcnet_watch_keys(): a key put or deleted */
} ipcnet_kind_t;

/* Events (msg.event of IPCNET_MSG_EVENT). */
#define IPCNET_EV_NAME_UP    1  /* a name gained its first holder */
#define IPCNET_EV_NAME_DOWN  2  /* a name lost its last holder */
#define IPCNET_EV_PEER_UP    3  /* a node joined */
#define IPCNET_EV_PEER_DOWN  4  /* a node left or was lost */
#define IPCNET_EV_NODE_DOWN  5  /* IPCNET_RECONNECT: our node went away */
#define IPCNET_EV_NODE_UP    6  /* IPCNET_RECONNECT: back, all held again */

/* A received message. Every pointer is borrowed from the handle and valid
   until the next call on it; copy what you keep. */
typedef struct {
    ipcnet_kind_t kind;
    int event;              /* IPCNET_EV_* for IPCNET_MSG_EVENT */
    int error;              /* negative errno for IPCNET_MSG_ERROR */
    uint32_t id;            /* request id (REQUEST, REPLY, ERROR: the id or
                               sequence number of what failed) */
    uint32_t timeout_ms;    /* REQUEST: time the requester still waits */
    const char *source;     /* unique address of the sender ("" if none) */
    const char *name;       /* name or topic it was sent to; event's name */
    const char *node;       /* EVENT: node of the name or peer; SEND, REQUEST,
                               REPLY, PUBLISH: the sender's node */
    const void *data;       /* payload */
    size_t size;            /* payload bytes */
    /* Who sent it (SEND, REQUEST, REPLY, PUBLISH): its uid and user name
       on its own node, taken by that node from the kernel (SO_PEERCRED),
       and that node's id (its key's; 32 hex digits). From another node,
       uid and user are that node's word, and node_id is proven by its
       key. */
    uint32_t uid;
    const char *user;
    const char *node_id;
    uint32_t gap_ms;        /* EVENT NODE_UP: how long the node was away */
    /* MONITOR: event is the kind of what was routed (IPCNET_MSG_SEND,
       _REQUEST, _REPLY, _PUBLISH), name where to, source and the sender's
       fields who from, data its first bytes and total its whole size; an
       event of 0 says that id notes were lost (the monitor read too
       slowly). */
    size_t total;
    /* KEY (event IPCNET_KEY_PUT or _DEL, name the key, data the value) and
       ipcnet_get(): the key's version; node_id: the node that wrote it. */
    uint64_t version;
} ipcnet_msg_t;

/* Called by ipcnet_dispatch() for each message; msg is borrowed. */
typedef void (ipcnet_handler_fn) (ipcnet_t *c, const ipcnet_msg_t *msg, void *arg);

/* Connects to the local node at path; NULL means ipcnet_default_socket().
   label (may be NULL) names the program in listings. On success *ret is a
   new handle, given to the caller. -EACCES: not allowed to connect (see
   ipc-node(8): the socket's group), or the user's own socket directory
   is not safe to use.

   IPCNET_RECONNECT: when the node goes away (it restarts, it is killed),
   the handle is not lost. Messages already read are handed out first,
   then an IPCNET_EV_NODE_DOWN event, then an IPCNET_MSG_ERROR with
   -ECONNRESET and its id for each ipcnet_request_async() in flight. The
   library tries again from 100 ms to every 5 s; once connected it binds,
   subscribes and watches again all the handle held, and when the node
   has answered, an IPCNET_EV_NODE_UP event gives the gap in msg.gap_ms.
   A name it cannot have again comes first as an IPCNET_MSG_ERROR with
   the name. The handle's address changes (ipcnet_address()). During the
   gap, sends and requests with IPCNET_DONTWAIT or on an IPCNET_NONBLOCK
   handle fail at once with -ENOTCONN; others wait for the node up to 30 s
   (a request: up to its timeout), then fail with -ENOTCONN. A message
   sent before the loss without IPCNET_CONFIRM may be lost with the node;
   one sent with it got its answer, or -ECONNRESET. The first connection
   is not retried: a node that is not there is an error here. */
int ipcnet_connect(ipcnet_t **ret, const char *path, const char *label, int flags);

/* Writes the socket path that ipcnet_connect(NULL) would use into buf:
   $IPCNET_SOCKET if set; for root, /run/ipc-node/node.sock; for another
   user, its own node's ($XDG_RUNTIME_DIR/ipc-node/node.sock, or without
   XDG_RUNTIME_DIR /tmp/ipc-node-UID/node.sock) if that node runs, else
   the system node's, /run/ipc-node/node.sock. Returns 0, -ENAMETOOLONG
   if it does not fit in size bytes, or -EACCES if the user's own socket
   directory exists but is not the user's, or may be written by others. */
int ipcnet_default_socket(char *buf, size_t size);

/* Closes the handle taken from *c and sets *c to NULL; safe on NULL. Data
   queued with IPCNET_MORE is flushed first if that does not block. */
void ipcnet_close(ipcnet_t **c);

/* The node's words for why the last call that waited for its answer
   failed ("denied by /etc/ipc-node/policy:3: deny bind printer", "held by
   another user", "no such node", ...; "" when it said none, and after a
   call that waited and succeeded). Borrowed, valid until the next call
   that waits for an answer. */
const char *ipcnet_last_error(const ipcnet_t *c);

/* This client's unique address, ":N@node", and its node's name; borrowed. */
const char *ipcnet_address(const ipcnet_t *c);
const char *ipcnet_node(const ipcnet_t *c);

/* The largest payload the node accepts, in bytes. */
size_t ipcnet_max_message(const ipcnet_t *c);

/* Event-loop integration: watch ipcnet_fd() for POLLIN, and for POLLOUT
   too while ipcnet_want_write() is true; then call ipcnet_dispatch().
   With IPCNET_RECONNECT the descriptor is the same for the handle's life
   (an epoll descriptor that holds the connection, or while the node is
   away a timer for the next try): watch it for POLLIN alone; it becomes
   readable when there is something to read, to write or to try. */
int ipcnet_fd(const ipcnet_t *c);
int ipcnet_want_write(const ipcnet_t *c);

/* Are messages read already, waiting in the library? A call that waits
   for its answer (a bind, a request, a confirmed send) reads what comes
   meanwhile, and the descriptor does not tell of those: an event loop
   that also makes such calls checks this (or calls ipcnet_dispatch())
   before it waits on the descriptor again. */
int ipcnet_pending(const ipcnet_t *c);

/* Reads what is ready without waiting, writes what is queued, and calls fn
   for each complete message. Returns the number of messages handled, or a
   negative errno (-ECONNRESET when the node went away). */
int ipcnet_dispatch(ipcnet_t *c, ipcnet_handler_fn *fn, void *arg);

/* Waits up to timeout_ms (-1: forever, 0: not at all) for one message and
   fills *ret. Returns 0, -EAGAIN or -ETIMEDOUT when none came. */
int ipcnet_recv(ipcnet_t *c, ipcnet_msg_t *ret, int timeout_ms);

/* Writes everything queued (IPCNET_MORE), waiting up to timeout_ms. */
int ipcnet_flush(ipcnet_t *c, int timeout_ms);

/* Binds or unbinds a service name; waits for the node's answer. Many
   clients may bind one name. -EINVAL bad name, -EEXIST already bound by us,
   -ENOENT not bound by us. */
int ipcnet_bind(ipcnet_t *c, const char *name);
int ipcnet_unbind(ipcnet_t *c, const char *name);

/* Sends to dest: a name (one holder gets it: local first, then round robin),
   "name@node", or a unique address ":N@node". Returns 0 once queued; an
   undeliverable message comes back as IPCNET_MSG_ERROR with its sequence
   number (see ipcnet_last_id()), unless IPCNET_CONFIRM asks to wait, when
   this call returns the error itself (-ENOENT: nobody holds the name). */
int ipcnet_send(ipcnet_t *c, const char *dest, const void *data, size_t size, int flags);

/* The sequence number of the last send, publish or request on c. */
uint32_t ipcnet_last_id(const ipcnet_t *c);

/* Sends a request and waits for its reply, at most timeout_ms (0: the
   node's default). *ret is the reply (IPCNET_MSG_REPLY), borrowed. Returns
   0, -ENOENT, -ETIMEDOUT, -ECONNRESET (the holder went away), ... */
int ipcnet_request(ipcnet_t *c, const char *dest, const void *data, size_t size,
                   int timeout_ms, ipcnet_msg_t *ret);

/* Sends a request without waiting; the reply or the error comes later
   through ipcnet_recv()/ipcnet_dispatch() with msg.id == *ret_id. */
int ipcnet_request_async(ipcnet_t *c, const char *dest, const void *data,
                         size_t size, int timeout_ms, uint32_t *ret_id);

/* Answers the request req (borrowed; copy req->source and req->id if the
   answer comes later, and use ipcnet_reply_to()). */
int ipcnet_reply(ipcnet_t *c, const ipcnet_msg_t *req, const void *data, size_t size);
int ipcnet_reply_to(ipcnet_t *c, const char *requester, uint32_t id,
                    const void *data, size_t size);

/* Shared memory without a copy (ipcnet(3), "Large payloads in shared
   memory"). A payload of at least the node's threshold sent with the calls
   above is copied once into a sealed memfd and passed, not copied through
   the node; a received one is a read-only mapping, valid until the next
   call. With a buffer the program fills the region in place:

     ipcnet_buf_alloc()    a writable region of size bytes (a memfd);
     ipcnet_buf_send()     seals it (nobody can change it after) and sends
     ipcnet_buf_publish()  it without a copy; the buffer is given up, on
                           failure too (*buf is zeroed);
     ipcnet_msg_keep()     keeps a received payload past the next call, as
                           a read-only buffer (a copy if it came inline),
                           to read at leisure or hand on with the above;
     ipcnet_buf_release()  unmaps and closes a buffer not sent.

   The region is the process's memory (counted as shared memory). */
typedef struct {
    void *data;             /* the region's bytes: writable until sent */
    size_t size;
    int fd;                 /* its memfd, the library's; -1 when empty */
    int readonly;           /* kept from a message: data is read-only */
} ipcnet_buf_t;

int ipcnet_buf_alloc(ipcnet_t *c, size_t size, ipcnet_buf_t *buf);
int ipcnet_buf_send(ipcnet_t *c, const char *dest, ipcnet_buf_t *buf, int flags);
int ipcnet_buf_publish(ipcnet_t *c, const char *topic, ipcnet_buf_t *buf, int flags);
int ipcnet_msg_keep(ipcnet_t *c, const ipcnet_msg_t *msg, ipcnet_buf_t *buf);
void ipcnet_buf_release(ipcnet_buf_t *buf);

/* Topics: "sensors.temp"; a pattern "sensors.*" or "*" subscribes to many. */
int ipcnet_subscribe(ipcnet_t *c, const char *pattern);
int ipcnet_unsubscribe(ipcnet_t *c, const char *pattern);
int ipcnet_publish(ipcnet_t *c, const char *topic, const void *data, size_t size, int flags);

/* Watches names matching pattern ("*" for all): an IPCNET_EV_NAME_UP event
   for each name held now, then one whenever a name gains its first holder
   or loses its last (IPCNET_EV_NAME_DOWN). */
int ipcnet_watch(ipcnet_t *c, const char *pattern);
int ipcnet_unwatch(ipcnet_t *c, const char *pattern);

/* Shows every message the node routes to a name or topic matching
   pattern (NULL: all), as IPCNET_MSG_MONITOR messages: root sees all;
   another user what its own clients send and receive, and what the node's
   policy lets it monitor. Calling it again replaces the pattern; closing
   the handle stops it. Notes never slow the traffic: when the monitor
   reads too slowly they are dropped and counted. */
int ipcnet_monitor(ipcnet_t *c, const char *pattern);

/* What the node knows of a peer (its name, id or address) and why it is
   not up, step by step, as lines of text; *ret_text is given to the
   caller (free()). */
int ipcnet_diagnose(ipcnet_t *c, const char *peer, char **ret_text);

/* What ipcnet_query() asks for. */
#define IPCNET_Q_SERVICES 1     /* name, node, holder address, holder label, holder user */
#define IPCNET_Q_PEERS    2     /* name, id, address, source, state, rtt_us, last_seen_ms, key */
#define IPCNET_Q_STATS    3     /* key, value */
#define IPCNET_Q_CLIENTS  4     /* address, label, pid ("-": another user's), uid,
                                   queued bytes, user */

/* Asks the node for a listing: text, one record a line, fields separated
   by tabs. *ret_text is given to the caller (free()). */
int ipcnet_query(ipcnet_t *c, int what, char **ret_text);

/* --- the store (docs/store.md): keys every node of the cluster holds ------ */

/* Events of IPCNET_MSG_KEY. */
#define IPCNET_KEY_PUT  1       /* data and size: the new value */
#define IPCNET_KEY_DEL  2       /* deleted, expired, or its ephemeral owner went */

/* Flags of ipcnet_put(). */
#define IPCNET_EPHEMERAL 0x01   /* deleted when this handle closes or its node is lost */
#define IPCNET_IF        0x02   /* ipcnet_put_full(): only if the version is expected */

/* Puts value (size bytes, at most the node's --store-max-value) under key
   (a name, as ipcnet_bind takes). ttl_ms 0: kept until deleted. Waits for
   the node. -EACCES (policy), -EMSGSIZE, -ENOBUFS (a limit: see
   ipcnet_last_error()), -EINVAL. */
int ipcnet_put(ipcnet_t *c, const char *key, const void *value, size_t size,
               uint32_t ttl_ms, int flags);

/* Compare-and-set: puts only if the key's version is expected_version (0:
   only if it does not exist); else -ESTALE. Only as strong as the node it
   runs on: see docs/store.md. */
int ipcnet_put_if(ipcnet_t *c, const char *key, const void *value, size_t size,
                  uint64_t expected_version);

/* Both, and the version written into *ret_version (may be NULL). */
int ipcnet_put_full(ipcnet_t *c, const char *key, const void *value, size_t size,
                    uint32_t ttl_ms, int flags, uint64_t expected_version,
                    uint64_t *ret_version);

/* The value of key in *ret (data, size, version, name; borrowed until the
   next call), waiting up to timeout_ms (0: the default). -ENOENT: none. */
int ipcnet_get(ipcnet_t *c, const char *key, ipcnet_msg_t *ret, int timeout_ms);

/* Deletes key. -ENOENT: it was not there. */
int ipcnet_del(ipcnet_t *c, const char *key);

/* The keys matching pattern ("*", "prefix.*", a key) as text, one a line:
   key TAB version TAB size. *ret_text is given to the caller (free()). */
int ipcnet_keys(ipcnet_t *c, const char *pattern, char **ret_text);

/* Watches keys matching pattern: an IPCNET_MSG_KEY IPCNET_KEY_PUT for each
   key there now, then one for each put and an IPCNET_KEY_DEL for each
   deletion, on any node. With IPCNET_RECONNECT, watched again on return
   (its snapshot again first); ephemeral keys are not put again. */
int ipcnet_watch_keys(ipcnet_t *c, const char *pattern);
int ipcnet_unwatch_keys(ipcnet_t *c, const char *pattern);

/* Words for a negative errno returned by any call (-ENOENT covers both
   its meanings: no holder of a name, and, from ipcnet_connect, no socket). */
const char *ipcnet_strerror(int err);

#ifdef __cplusplus
}
#endif
#endif
