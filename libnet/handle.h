/*  handle.h: inside an ipcnet_t, shared by client.c (the connection and
    the calls) and reconnect.c (what IPCNET_RECONNECT adds: notes for the
    application, requests in flight, names to bind again, the retries).
    Not installed. */
#ifndef IPCNET_HANDLE_H
#define IPCNET_HANDLE_H

#include "ipcnet.h"
#include "shm.h"
#include "wire.h"

#include <stdint.h>
#include <sys/un.h>
#include <time.h>

/* Connection states of a handle made with IPCNET_RECONNECT. */
enum {
    LINK_UP = 0,        /* connected and welcomed */
    LINK_WAITING = 1,   /* lost; fd is a timer that fires at the next try */
    LINK_HELLO = 2,     /* connected again, HELLO sent, no WELCOME yet */
};

/* Something the library itself tells the application, in its place among
   the frames read: the loss (NODE_DOWN), a request the loss failed, a
   name that could not be bound again, the return (NODE_UP). */
typedef struct {
    size_t pos;         /* comes before the frame at this offset of rx */
    int event;          /* IPCNET_EV_NODE_DOWN or _UP; 0: an IPCNET_MSG_ERROR */
    int error;          /* negative errno of an ERROR */
    uint32_t id;        /* the failed request's id */
    uint32_t gap_ms;    /* NODE_UP: how long the node was away */
    char *name;         /* or NULL */
    char *why;          /* or NULL */
} note_t;

/* A name bound, a pattern subscribed or watched: made again on return. */
typedef struct {
    uint8_t type;       /* WIRE_BIND, _SUBSCRIBE, _WATCH, _WATCH_KEYS; 0: dropped */
    char name[];
} held_t;

struct ipcnet {
    int fd;
    int flags;                  /* IPCNET_NONBLOCK, IPCNET_RECONNECT */
    int dead;                   /* the node went away: -ECONNRESET or -EBADMSG */
    uint32_t seq;               /* last sequence number sent */
    size_t max_message;
    uint8_t *rx;                /* frames from the node: [rx_head, rx_tail) */
    size_t rx_cap, rx_head, rx_tail;
    int view;                   /* a message handed out may still be read */
    uint8_t *tx;                /* queued bytes: [tx_head, tx_tail) */
    size_t tx_cap, tx_head, tx_tail;
    char address[WIRE_NAME_MAX + 1];
    char node[WIRE_NAME_MAX + 1];
    char s1[WIRE_NAME_MAX + 1];   /* NUL-terminated copies for ipcnet_msg_t */
    char s2[WIRE_NAME_MAX + 1];
    char user[WIRE_USER_MAX + 1];
    char node_id[2 * WIRE_NODE_ID + 1];
    char from_node[WIRE_NAME_MAX + 1];
    uint8_t node_id_raw[WIRE_NODE_ID];  /* node_id in bytes, once node_id[0] is set */
    size_t from_node_len;
    char why[WIRE_NAME_MAX + 1];        /* the node's words for the last failure */
    /* the head of the last batched send, for the next to the same place */
    uint8_t again_head[WIRE_MIN + WIRE_NAME_MAX];
    size_t again_hlen;
    uint8_t again_type;
    char again_to[WIRE_NAME_MAX + 1];
    shm_t shm;                  /* payloads in memfds (shm.c) */

    /* IPCNET_RECONNECT */
    int efd;                    /* epoll of fd: what ipcnet_fd() gives */
    int out_watched;            /* fd is in efd for EPOLLOUT too */
    int link;                   /* LINK_* */
    int timer;                  /* fd is a timerfd (else the dead socket) */
    int gap;                    /* NODE_DOWN told, NODE_UP not yet */
    int64_t down_since, next_try;
    int backoff_ms;
    uint32_t rng;
    uint32_t hello_seq;
    uint32_t restore_first;     /* the binds made again: their first seq, */
    size_t restore_count;       /* how many were sent */
    size_t restoring;           /* and how many are not answered yet */
    char path[sizeof ((struct sockaddr_un *) 0)->sun_path];
    char label[WIRE_NAME_MAX + 1];
    note_t *notes;              /* [note_head, note_tail) */
    size_t note_head, note_tail, note_cap;
    uint64_t *pending;          /* request ids + 1 in flight; 0: empty slot */
    size_t npending, pending_cap;
    held_t **held;
    size_t nheld, held_cap;
};

static inline int64_t handle_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* client.c */
int handle_append(ipcnet_t *c, const void *data, size_t size);
int handle_write(ipcnet_t *c);
/* For shm.c: s_drain, s_wait, s_fail and s_post of client.c. */
int handle_drain(ipcnet_t *c, int64_t deadline);
int handle_wait(ipcnet_t *c, int64_t deadline, int writing);
int handle_fail(ipcnet_t *c, int err);
int handle_post(ipcnet_t *c, uint8_t type, const char *to, const void *data, size_t size,
                int flags);

/* For store.c: sends one command (s1 may be NULL) and waits up to
   timeout_ms (0: the default) for the first answer to it; *ret_seq gets
   its seq for handle_await() of the parts that follow. */
int handle_call(ipcnet_t *c, uint8_t type, uint16_t wflags, uint32_t aux, const char *s1,
                const void *data, size_t size, int timeout_ms, wire_frame_t *ret,
                uint32_t *ret_seq);
int handle_await(ipcnet_t *c, uint32_t seq, int timeout_ms, wire_frame_t *ret);
void handle_release(ipcnet_t *c);

/* store.c: a KEY_EVENT frame as a message (1), or 0. */
int store_to_msg(ipcnet_t *c, const wire_frame_t *f, ipcnet_msg_t *msg);

/* reconnect.c. fd became another file: watch it. */
void reconnect_watch(ipcnet_t *c);
/* Keeps efd's interest in writing as ipcnet_want_write() says. */
void reconnect_want_write(ipcnet_t *c, int want);
/* The connection broke: keep the frames read, fail the
   requests in flight, tell the application, wait to try again. */
void reconnect_lost(ipcnet_t *c);
/* Tries to connect again if it is time. */
void reconnect_try(ipcnet_t *c);
/* While LINK_WAITING: waits until the next try or deadline, then tries.
   Returns 0, or -ETIMEDOUT if deadline passed and the link is still down. */
int reconnect_wait(ipcnet_t *c, int64_t deadline);
/* A frame of the reconnection (the WELCOME, an answer to a bind made
   again) is the library's: handled and 1; else 0. end: its end in rx. */
int reconnect_frame(ipcnet_t *c, const wire_frame_t *f, size_t end);
/* The note due before offset at of rx, as a message, if any: 1 or 0. */
int reconnect_note(ipcnet_t *c, size_t at, ipcnet_msg_t *msg);
/* rx moved down by delta bytes. */
void reconnect_shift(ipcnet_t *c, size_t delta);
/* Requests in flight: added when sent, removed when answered. */
int reconnect_pending_add(ipcnet_t *c, uint32_t id);
void reconnect_pending_del(ipcnet_t *c, uint32_t id);
/* What to make again on return: a name bound, a pattern subscribed or
   watched (type WIRE_BIND, WIRE_SUBSCRIBE, WIRE_WATCH). */
int reconnect_held_add(ipcnet_t *c, uint8_t type, const char *name);
void reconnect_held_del(ipcnet_t *c, uint8_t type, const char *name);
void reconnect_free(ipcnet_t *c);

#endif
