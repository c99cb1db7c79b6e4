/*  peer.h: one link to another node (docs/protocol-node.md).

    A peer is dialled through a DEALER of its own, whose routing id is our
    id, and speaks to us on our ROUTER. The link numbers what it sends,
    batches small data messages, spends and regains credit, remembers what
    the peer has not acknowledged, notes what it received until every local
    copy is written, parks what a full local queue cannot take, and lists
    who waits for room on it. It never calls up: when the link fails it
    marks itself lost and returns -EHOSTUNREACH; its owner (the cluster)
    reaps it in the idle pass.

    Handshake. One state, changed only by the events of this table:

      state \ event   DIAL        ACK        HELLO      LOSE
      ASKING_KEY      CONNECTING  -          -          -
      CONNECTING      CONNECTING  ACKED      GREETED    LOST
      ACKED           CONNECTING  ACKED      UP         LOST
      GREETED         GREETED     UP         GREETED    LOST
      UP              -           UP         -          LOST
      LOST            CONNECTING  -          -          LOST

    DIAL opens a new DEALER and says HELLO (its key must be known); ACK is
    its HELLO_ACK on that DEALER; HELLO is its own HELLO on our ROUTER,
    answered. Entering UP gives a full credit window; LOST keeps the reason
    until peer_reset(), which fails nothing itself but hands back what
    was in flight. A "-" is refused (-EINVAL, the state unchanged). */
#ifndef IPCNET_PEER_H
#define IPCNET_PEER_H

#include "buf.h"
#include "loop.h"
#include "proto.h"

#include <czmq.h>
#include <stddef.h>
#include <stdint.h>

typedef struct peer peer_t;

typedef enum {
    PEER_ASKING_KEY, PEER_CONNECTING, PEER_ACKED, PEER_GREETED, PEER_UP, PEER_LOST,
} peer_state_t;

/* What every link shares; owned by the cluster, borrowed by each peer. */
typedef struct {
    loop_t *loop;
    zcert_t *cert;              /* our key pair */
    const char *id;             /* our id, every DEALER's routing id */
    size_t window;              /* credit bytes per link */
    size_t max_answer;          /* largest frame a DEALER takes */
    proto_msg_t hello;          /* our HELLO, said by every DIAL */
    proto_buf_t out;            /* where messages are encoded */
} peer_env_t;

/* A message sent and not yet acknowledged, with whom to tell if it fails. */
typedef struct {
    uint32_t seq;
    uint32_t bytes;
    uint64_t origin;            /* local client id, 0: nobody to tell */
    uint32_t cseq;
    uint8_t what;               /* the local frame type that sent it */
} peer_flight_t;

/* A new link to endpoint, in ASKING_KEY until it has a key (peer_set_key),
   with one reference, the caller's. NULL when out of memory. */
peer_t *peer_new(peer_env_t *env, const char *endpoint);

/* Closes the link, drops the caller's reference and sets *self_p to NULL;
   safe on NULL. Others' references keep the memory, not the link. */
void peer_destroy(peer_t **self_p);

/* References held by queues that name the peer (deliveries, parked). */
peer_t *peer_ref(peer_t *self);
void peer_unref(peer_t **self_p);

/* --- who it is --------------------------------------------------------------- */

/* Its id ("" until its key is known), name ("-" until it says), endpoint,
   key (NULL until known). Borrowed. */
const char *peer_id(const peer_t *self);
const char *peer_name(const peer_t *self);
const char *peer_endpoint(const peer_t *self);
const uint8_t *peer_key(const peer_t *self);
void peer_set_key(peer_t *self, const uint8_t key[PROTO_KEY_LEN]);
void peer_set_name(peer_t *self, const char *name, size_t len);
void peer_set_endpoint(peer_t *self, const char *endpoint);

/* --- the handshake ------------------------------------------------------------- */

peer_state_t peer_state(const peer_t *self);
const char *peer_state_name(peer_state_t state);
int peer_is_up(const peer_t *self);

/* DIAL: a new DEALER to its endpoint, and our HELLO on it; with
   reconnect, ZeroMQ dials again by itself when the connection drops.
   Returns 0, -EINVAL (refused by the table, or the endpoint), -EMFILE
   (out of sockets or descriptors), -ENOMEM. The DEALER's input is
   announced to fn with arg. */
int peer_dial(peer_t *self, int reconnect, loop_fd_fn *fn, void *arg);

/* Says our HELLO again, its numbering started over, if it is not answered
   and was last said every ms or longer ago (now: loop time). */
void peer_hello_due(peer_t *self, int64_t now, int64_t every);

/* ACK: its HELLO_ACK came. HELLO: its HELLO came, with the incarnation,
   heartbeat and seq it gave. Return 0 or -EINVAL (refused). */
int peer_acked(peer_t *self);
int peer_greeted(peer_t *self, uint64_t incarnation, uint32_t heartbeat, uint32_t seq);

/* LOSE: marks the link failed, keeping why (a constant or a buffer of the
   caller's copied here). */
void peer_lose(peer_t *self, const char *why);
const char *peer_lost_why(const peer_t *self);

/* The state a lost link was in when it failed. */
peer_state_t peer_lost_from(const peer_t *self);

/* After LOSE, forgets the link's incarnation: closes the DEALER, drops
   what was parked and noted, bumps the epoch, and moves what was in flight
   into *flights and who waited into *waiters (both given; free them). The
   owner fails the flights back and wakes the waiters, then dials again or
   destroys the peer. */
void peer_reset(peer_t *self, ring_t *flights, vec_t *waiters);

/* Its incarnation (0 before its HELLO) and heartbeat interval. */
uint64_t peer_incarnation(const peer_t *self);

/* The DEALER took a HELLO refused for want of a connection, or a
   message refused at the high-water mark, and waits to write. */
int peer_wants_out(const peer_t *self);

/* Called when the DEALER may write again: says a pending HELLO. Returns
   1 if it was congested (its waiters may go on). */
int peer_writable(peer_t *self);

/* The DEALER's readiness for writing (ZMQ_POLLOUT). */
int peer_can_write(peer_t *self);

/* --- sending --------------------------------------------------------------------- */

/* Sends a control message (anything but MSG, REPLY, PUB), numbered here,
   after the batch. Returns 0, -EAGAIN (dropped at the high-water mark: the
   gap it leaves makes the peer start over), -EHOSTUNREACH. */
int peer_send(peer_t *self, proto_msg_t *m);

/* An ACK of a confirmed MSG, or a FAIL of anything, to the peer's client
   at to (if the peer is up). */
void peer_send_ack(peer_t *self, uint32_t cseq, const char *to, size_t tolen);
void peer_send_fail(peer_t *self, int err, uint32_t cseq, uint8_t what, const char *to,
                    size_t tolen, const char *name, size_t namelen, const char *text);

/* The same for a message encoded in b (a list); its seq is set here. */
int peer_send_encoded(peer_t *self, proto_buf_t *b);

/* May a data message of size payload bytes go now (credit, and ZeroMQ not
   at its high-water mark)? A peer not up says yes: its send fails at once. */
int peer_room(const peer_t *self, size_t size);

/* Sends a data message (MSG, REPLY or PUB with its payload), small ones
   batched, and keeps it in flight for (origin, cseq, what) until
   acknowledged. Returns 0, -EHOSTUNREACH (not up, or the link failed:
   it is lost, and this message was not sent), -ENOMEM. */
int peer_send_data(peer_t *self, proto_msg_t *m, uint64_t origin, uint32_t cseq, uint8_t what);

/* Sends the batch now. Returns 0 or -EHOSTUNREACH (the link failed). */
int peer_flush(peer_t *self);

/* (origin, cseq) has had its answer: a loss must not answer it again. */
void peer_settled(peer_t *self, uint64_t origin, uint32_t cseq);

/* Its CREDIT: acknowledged up to ack, bytes more to spend. Returns 1 if
   waiters may go on. */
int peer_credited(peer_t *self, uint32_t ack, uint32_t bytes);

/* Waiters: who waits for room on this link (opaque here). */
int peer_wait(peer_t *self, void *who);
void peer_unwait(peer_t *self, void *who);
void peer_take_waiters(peer_t *self, vec_t *ret);

/* --- receiving ------------------------------------------------------------------- */

/* Reads one message from its DEALER (HELLO_ACK, PONG, FAIL). Returns 0,
   or -EAGAIN when there is none. */
int peer_dealer_recv(peer_t *self, zmq_msg_t *msg);

/* Sent on since its DEALER was last read to the end (so input may be
   waiting that no wake-up will announce). */
int peer_touched(const peer_t *self);

/* Takes seq if it follows the last one received; otherwise the peer is
   lost (a gap) and 0 is returned. */
int peer_in_order(peer_t *self, uint32_t seq);

/* Notes a data message received, before it is handed over. Returns 0 or
   -ENOMEM. */
int peer_note(peer_t *self, uint32_t seq, size_t bytes);

/* The data message seq was taken by its receivers (not parked). */
void peer_handed(peer_t *self, uint32_t seq);

/* A copy of message seq (of epoch) queued to a local socket, or written.
   When every copy of the messages up to one is written, they are
   credited back to the peer. */
uint32_t peer_epoch(const peer_t *self);
void peer_hold(peer_t *self, uint32_t epoch, uint32_t seq);
void peer_release(peer_t *self, uint32_t epoch, uint32_t seq);

/* Sends the credit owed, if any (the tick). */
void peer_send_credit(peer_t *self);

/* Parks a message no local queue can take yet (moved from msg). Returns 0,
   or -ENOBUFS when the peer sent more than its credit allowed. */
int peer_park(peer_t *self, zmq_msg_t *msg);
int peer_has_parked(const peer_t *self);
zmq_msg_t *peer_parked(peer_t *self);
void peer_parked_pop(peer_t *self);

/* --- liveness ------------------------------------------------------------------- */

/* A sign of life at now (loop time). */
void peer_seen(peer_t *self, int64_t now);
int64_t peer_last_seen(const peer_t *self);

/* How long it may be silent: two and a half of its own heartbeats. */
int64_t peer_timeout(const peer_t *self);

/* Is a PING due (a heartbeat since the last one; now: loop time)? If so
   it counts as sent: the owner sends it on its ROUTER, so that it never
   waits behind the link's data (protocol section 6.11). */
int peer_ping_due(peer_t *self, int64_t now, unsigned heartbeat);

/* Its PONG to our PING of stamp (µs). */
void peer_ponged(peer_t *self, uint64_t stamp);
int64_t peer_rtt_us(const peer_t *self);

/* Microseconds of a monotonic clock, as PING stamps are. */
int64_t peer_now_us(void);

/* Says goodbye, given a moment to leave before the link closes. */
void peer_bye(peer_t *self);

/* Bytes a data frame of size payload takes on the wire, at most. */
size_t peer_frame_bytes(size_t size);

/* Moves other's DEALER (and its seq) to self: one link where two dials
   reached the same node. */
void peer_take_dealer(peer_t *self, peer_t *other, loop_fd_fn *fn, void *arg);

#endif
