/*  client.h: a local client, and its queue of frames towards it.

    One client_t per connection. Its parts belong to the modules that use
    them: the queue and pausing to client.c, the input to session.c, its
    names, subscriptions and watches to directory.c, its requests to
    request.c, its route cache to route.c.

    The queue. Frames towards a client are queued in blocks and written
    with writev once per loop turn; a large payload that lives in a shared
    buffer is queued by reference, not copied. The queue is bounded: before
    a frame from another client or a peer is queued, the receiver must
    have room (its queue empty, or queue + frame within the limit); if not,
    the sender is paused on it and handled again once it drains to half
    its limit. Answers from the node itself (OK, ERROR, events) are never
    held back, but a client that lets them pile up past a hard limit is
    cut off.

    Teardown. A client that must go is first marked doomed; the idle pass
    tears it down and frees it once no list points to it, so no callback
    ever sees a freed client. */
#ifndef IPCNET_CLIENT_H
#define IPCNET_CLIENT_H

#include "buf.h"
#include "loop.h"
#include "node.h"
#include "peer.h"
#include "policy.h"
#include "wire.h"

#include <stdint.h>
#include <sys/socket.h>

typedef struct client client_t;
typedef struct request request_t;
struct route;
struct confirm;

#define CLIENT_GROUPS   32      /* groups of a client the policy knows */

/* What all clients share: the lists the idle pass works through. */
typedef struct {
    loop_t *loop;
    const node_config_t *cfg;
    node_stats_t *stats;
    uint64_t gen;               /* bumped when a route may have gone stale */
    vec_t runnable;             /* paused clients to resume */
    vec_t dirty;                /* clients with bytes to write */
    vec_t doomed;               /* clients to tear down */
    vec_t graveyard;            /* torn down, to free */
    vec_t runnable_peers;       /* peers whose parked messages may go on (references) */
    vec_t starved;              /* clients not read until large-frame memory frees */
    size_t large;               /* bytes of large-frame buffers held by readers */
    struct confirm_hook {       /* answers IPCNET_CONFIRM once written (deliver.c) */
        void (*fn) (void *arg, const struct confirm *k, int err);
        void *arg;
    } confirmed;
} clients_t;

/* The verdict on a client's last send, kept while the policy and the
   names held stay the same (deliver.c). */
typedef struct {
    uint64_t gen, dgen;         /* the policy's and the directory's; 0: empty */
    int action;
    size_t len;
    char name[WIRE_NAME_MAX];
    int allowed;
    const char *rule;
} policy_cache_t;

struct client {
    clients_t *clients;
    uint64_t id;
    int fd;
    int in_loop;                /* fd registered with the loop */
    int doomed;
    int dirty, runnable;        /* in the clients' lists */
    char address[WIRE_NAME_MAX + 1];
    char label[WIRE_NAME_MAX + 1];
    struct ucred cred;          /* from SO_PEERCRED */
    char user[WIRE_USER_MAX + 1];       /* cred.uid's name, or its number */
    uint8_t userlen;                    /* strlen(user) */
    uint16_t addrlen;                   /* strlen(address) */
    gid_t groups[CLIENT_GROUPS];        /* cred.gid, then the user's other groups */
    size_t ngroups;
    struct {                    /* the last topic a publication to it was checked for */
        uint64_t gen;           /* the policy's; 0: empty */
        size_t len;
        char topic[WIRE_NAME_MAX];
        int allowed;
    } sub_check;
    int64_t since;              /* loop time it connected */

    /* input (session.c) */
    struct sessions *sessions;  /* what handles its frames */
    int ready;                  /* HELLO taken */
    buf_t *rx;                  /* frames read: [rx_head, rx_tail) */
    size_t rx_head, rx_tail;
    size_t rx_large;            /* rx's bytes counted in clients->large */
    int starved;                /* in clients->starved */
    int64_t frame_since;        /* loop time the frame being read began, or 0 */
    struct route *route;        /* where our last destination led (route.c) */
    struct listing *listing;    /* a listing being sent to it (query.c) */

    /* the queue (client.c) */
    ring_t chunks;              /* what to write, in order */
    buf_t *tail;                /* block being filled, with its own ref */
    size_t tail_used;
    size_t queued;              /* bytes in the queue */
    uint64_t bytes_in, bytes_out;       /* ever queued, ever written */
    ring_t deliveries;          /* peers' messages queued here, in order */
    client_t *blocked_on;       /* paused until this client drains */
    peer_t *blocked_peer;       /* paused until this peer has room */
    vec_t waiters;              /* clients paused on us */
    vec_t parked_peers;         /* peers holding a message for us (references) */

    /* shared memory (shm.c): memfds from it, and towards it (client.c) */
    int shm_ok;                 /* said in HELLO that it takes memfds */
    int *shm_in;                /* received, not yet matched to a frame: [0, shm_nin) */
    unsigned shm_nin;
    buf_t *shm_cur;             /* the mapped payload of the frame at rx_head */
    size_t shm_cur_at;          /* that frame's offset in rx */
    unsigned shm_fds;           /* memfds queued towards it, not yet written */
    size_t shm_bytes;           /* their bytes */
    unsigned shm_unread;        /* written since its socket was last seen read out */
    size_t shm_unread_bytes;
    loop_timer_t *shm_timer;    /* looks again whether it has read them */

    /* the directory (directory.c) */
    vec_t names;                /* name_t * we hold */
    vec_t subs;                 /* sub_t * we are in */
    vec_t watches;              /* char * patterns */
    char *monitor;              /* MONITOR: the pattern of what it sees, or NULL */
    policy_cache_t policy_cache;    /* its last send judged (deliver.c) */
    unsigned monitor_lost;      /* notes not queued for it (its queue was full) */
    uint32_t pub_epoch;         /* the last publish delivered to us */

    /* requests (request.c) */
    request_t *asked;           /* requests we made, awaiting replies */
    unsigned nasked;
    request_t *held;            /* requests given to us to answer */
};

/* A peer's message that a queued frame carries: acknowledged to the peer
   once written. */
typedef struct {
    peer_t *peer;
    uint32_t epoch, seq;
} client_origin_t;

/* A sender waiting to hear that its message was written to the socket
   of its receiver (CONFIRM): a local client, by id, or a peer's client,
   answered ACK (or FAIL) on that peer. */
typedef struct confirm {
    uint64_t client;            /* the local sender, or 0 */
    peer_t *peer;               /* or the peer (a reference while queued) */
    uint32_t seq;               /* the local SEND's seq, or the MSG's cseq */
    uint8_t what;               /* WIRE_SEND */
    uint8_t fromlen, namelen;
    char strings[];             /* a peer's sender's address, then the name */
} confirm_t;

/* Answers k once the frame queued last on c has been written to c's
   socket (err 0), or if c goes before that (err ECONNRESET), through
   clients->confirmed. from: a peer's sender's address; name: the name it
   was sent to. Returns 0, or -ENOMEM (the caller answers at once). */
int client_confirm(client_t *c, uint64_t client, peer_t *peer, uint32_t seq,
                   const char *from, size_t fromlen, const char *name, size_t namelen);

/* Payloads this large in a shared buffer are queued by reference. */
#define CLIENT_BY_REF   (16 * 1024)

/* Returned by whoever may pause a client's input. */
enum { CLIENT_DONE = 0, CLIENT_BLOCKED = 1 };

void clients_init(clients_t *self, loop_t *loop, const node_config_t *cfg, node_stats_t *stats);
void clients_fini(clients_t *self);

/* A new client on fd (taken), with id; NULL when out of memory. */
client_t *client_new(clients_t *clients, int fd, uint64_t id);

/* Frees a client torn down (its queue and buffers); its fd is closed. */
void client_free(client_t *c);

/* Queues one frame: its head, then its payload, by reference when it is
   large and lives in pbuf. from is the peer's message it carries, or
   NULL. Returns 0 or -ENOMEM (the client is then doomed). */
int client_queue_frame(client_t *c, const uint8_t *head, size_t hlen, buf_t *pbuf,
                       const uint8_t *payload, size_t size, const client_origin_t *from);

/* Queues a frame from the node itself (OK, ERROR, EVENT...). */
void client_send_control(client_t *c, uint8_t type, uint16_t flags, uint32_t seq,
                         uint32_t aux, const char *s1, size_t l1,
                         const char *s2, size_t l2, const void *data, size_t size);
void client_send_error(client_t *c, const wire_frame_t *f, int err, const char *name,
                       size_t nlen, const char *text);
void client_send_ok(client_t *c, const wire_frame_t *f, const void *data, size_t size);

/* Is there room for a frame of len bytes? An empty queue takes any frame. */
int client_has_room(const client_t *c, size_t len);

/* Writes what the socket takes. Returns 0, or -1 if the client is doomed. */
int client_write(client_t *c);

/* Marks c to be torn down in the idle pass, logging why (NULL: it left). */
void client_doom(client_t *c, const char *why);

/* Watches c's fd for what it needs now: input unless paused or doomed,
   output while bytes are queued. */
void client_update_events(client_t *c);

/* Pauses c until target drains, or until peer has room (or is lost).
   Return CLIENT_BLOCKED. */
int client_block_on(client_t *c, client_t *target);
int client_block_on_peer(client_t *c, peer_t *peer);

/* c may go on: it is put on the runnable list. */
void client_wake(client_t *c);

/* peer holds a message for c, waiting for room. Returns 0 or -ENOMEM. */
int client_park_peer(client_t *c, peer_t *peer);

/* Resumes every client paused on c and lets the peers holding messages
   for it go on (the runnable lists): it has room, or is gone. */
void client_wake_waiters(client_t *c);

/* Drops what c still has of peers' messages, as written (c is going). */
void client_release_all(client_t *c);

/* Who c is, for the policy (views into c). */
policy_who_t client_who(const client_t *c);

/* Removes c from every list of the clients, and from the peer it waits
   on (c is being torn down). */
void client_unlist(client_t *c);

#endif
