/*  client.c: libipcnet, the client side of the local protocol.

    The socket is always non-blocking inside; blocking calls wait in poll().
    Frames from the node are read in batches into one buffer and handed out
    as borrowed views, so a received payload is never copied by the library.
    A call that waits for one answer (an OK, a reply) leaves other frames in
    the buffer for ipcnet_recv() and marks the one it took as taken (type 0),
    so nothing that arrives meanwhile is lost or reordered.

    Sends go out with one write when nothing is queued; with IPCNET_MORE, or
    while the socket is full, frames are appended to a buffer and leave in
    one write, as ZeroMQ batches queued messages.

    With IPCNET_RECONNECT a lost connection is not the end of the handle:
    reconnect.c takes it from there, and the calls here wait for it or
    fail at once with -ENOTCONN while it is away. */

#include "handle.h"
#include "paths.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define RX_CHUNK      (64 * 1024)       /* least free room for one read */
#define RX_CAP        (64u << 20)       /* stop reading past this much unread */
#define TX_BATCH      (64 * 1024)       /* IPCNET_MORE writes at this much */
#define TX_LIMIT      (256 * 1024)      /* queued bytes before sends wait */
#define CONTROL_WAIT  30000             /* ms to wait for a node's answer */

/* Milliseconds left until deadline, for poll(); -1 when there is none. */
static int s_left(int64_t deadline)
{
    if (deadline < 0)
        return -1;
    int64_t left = deadline - handle_now_ms();
    return left < 0 ? 0 : left > INT_MAX ? INT_MAX : (int) left;
}

static int64_t s_deadline(int timeout_ms)
{
    return timeout_ms < 0 ? -1 : handle_now_ms() + timeout_ms;
}

int ipcnet_default_socket(char *buf, size_t size)
{
    const char *env = getenv("IPCNET_SOCKET");
    if (env && *env) {
        int n = snprintf(buf, size, "%s", env);
        return n < 0 || (size_t) n >= size ? -ENAMETOOLONG : 0;
    }
    /* The user's own node if it runs, in a directory that is really the
       user's; else the system node. */
    int rc = paths_own_socket(buf, size);
    if (rc < 0 || geteuid() == 0)
        return rc;
    char dir[sizeof ((struct sockaddr_un *) 0)->sun_path], why[256];
    snprintf(dir, sizeof dir, "%s", buf);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    struct stat st;
    rc = paths_check_dir(dir, geteuid(), (uid_t) -1, why, sizeof why);
    if (rc < 0)
        return rc;
    if (rc == 1 && stat(buf, &st) == 0 && S_ISSOCK(st.st_mode))
        return 0;
    int n = snprintf(buf, size, "%s", PATHS_SYSTEM_SOCKET);
    return n < 0 || (size_t) n >= size ? -ENAMETOOLONG : 0;
}

/* The connection broke (err: -ECONNRESET, or -EBADMSG for a frame that
   makes no sense). Without IPCNET_RECONNECT the handle is dead for good;
   with it, reconnect.c tells the application and tries again. Returns
   -ECONNRESET for the call that met the loss, or err. */
static int s_fail(ipcnet_t *c, int err)
{
    if (!(c->flags & IPCNET_RECONNECT)) {
        c->dead = err;
        return err;
    }
    reconnect_lost(c);
    return -ECONNRESET;
}

/* --- writing --------------------------------------------------------------- */

/* Writes as much of the queue as the socket takes now. */
int handle_write(ipcnet_t *c)
{
    while (c->tx_head < c->tx_tail) {
        ssize_t n = send(c->fd, c->tx + c->tx_head, c->tx_tail - c->tx_head, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return 0;
            return s_fail(c, -ECONNRESET);
        }
        c->tx_head += (size_t) n;
    }
    c->tx_head = c->tx_tail = 0;
    return 0;
}

/* Makes room to read into, without moving bytes a handed-out message may
   still point to. Returns the bytes free at the tail (0: none for now). */
static size_t s_room(ipcnet_t *c)
{
    if (c->rx_cap - c->rx_tail >= RX_CHUNK || c->view)
        return c->rx_cap - c->rx_tail;
    if (c->rx_head == c->rx_tail) {
        reconnect_shift(c, c->rx_head);
        shm_shift(c, c->rx_head);
        c->rx_head = c->rx_tail = 0;
    } else {
        /* Compact first; grow only if the unread bytes fill the buffer. */
        if (c->rx_head > 0) {
            memmove(c->rx, c->rx + c->rx_head, c->rx_tail - c->rx_head);
            reconnect_shift(c, c->rx_head);
            shm_shift(c, c->rx_head);
            c->rx_tail -= c->rx_head;
            c->rx_head = 0;
        }
        /* A frame larger than the buffer gets room for all of it at once. */
        size_t want = c->rx_tail + RX_CHUNK;
        ssize_t frame = wire_peek(c->rx, c->rx_tail, c->max_message + WIRE_HEAD_MAX);
        if (frame > 0 && (size_t) frame + RX_CHUNK > want)
            want = (size_t) frame + RX_CHUNK;
        if (want > c->rx_cap && c->rx_tail <= RX_CAP + c->max_message) {
            uint8_t *rx = realloc(c->rx, want);
            if (rx) {
                c->rx = rx;
                c->rx_cap = want;
            }
        }
    }
    if (c->rx_cap - c->rx_tail < RX_CHUNK && !c->rx) {
        c->rx = malloc(RX_CHUNK);
        c->rx_cap = c->rx ? RX_CHUNK : 0;
    }
    return c->rx_cap - c->rx_tail;
}

/* Reads what the socket has into the receive buffer. Returns bytes read,
   0 if none were ready, -ENOBUFS if unread messages fill the buffer, or
   -ECONNRESET when the node is gone. */
static int s_read(ipcnet_t *c)
{
    if (s_room(c) == 0)
        return c->view ? 0 : -ENOBUFS;
    for (;;) {
        ssize_t n = shm_recv(c, c->rx + c->rx_tail, c->rx_cap - c->rx_tail);
        if (n > 0) {
            c->rx_tail += (size_t) n;
            if (shm_claim(c) < 0)
                return s_fail(c, -EBADMSG);     /* an fd out of place */
            return (int) (n > INT_MAX ? INT_MAX : n);
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return 0;
        return s_fail(c, n < 0 && errno == EBADMSG ? -EBADMSG : -ECONNRESET);
    }
}

/* Waits until the socket is readable (or writable, while bytes are queued
   or the caller has some of its own to write) or deadline passes, then
   moves what it can. Returns 0, -ETIMEDOUT or a negative errno when the
   node is gone. */
static int s_wait(ipcnet_t *c, int64_t deadline, int writing)
{
    if (c->dead)
        return c->dead;
    if (c->link == LINK_WAITING)
        return reconnect_wait(c, deadline);
    struct pollfd pfd = { .fd = c->fd, .events = s_room(c) ? POLLIN : 0 };
    if (writing || c->tx_head < c->tx_tail)
        pfd.events |= POLLOUT;
    if (pfd.events == 0)
        return -ENOBUFS;    /* unread messages fill the buffer */
    int rc = poll(&pfd, 1, s_left(deadline));
    if (rc < 0 && errno != EINTR)
        return -errno;
    if (rc == 0)
        return -ETIMEDOUT;
    if (pfd.revents & (POLLOUT | POLLERR | POLLHUP)) {
        rc = handle_write(c);
        if (rc < 0)
            return rc;
    }
    if (pfd.revents & (POLLIN | POLLERR | POLLHUP)) {
        rc = s_read(c);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Writes the whole queue, waiting as long as it takes (reading meanwhile,
   so two clients flooding each other cannot deadlock through the node). */
static int s_drain(ipcnet_t *c, int64_t deadline)
{
    int rc = handle_write(c);
    while (rc == 0 && c->tx_head < c->tx_tail)
        rc = s_wait(c, deadline, 0);
    return rc;
}

/* Appends bytes to the queue, growing it as needed. */
int handle_append(ipcnet_t *c, const void *data, size_t size)
{
    if (c->tx_cap - c->tx_tail < size) {
        if (c->tx_head > 0) {
            memmove(c->tx, c->tx + c->tx_head, c->tx_tail - c->tx_head);
            c->tx_tail -= c->tx_head;
            c->tx_head = 0;
        }
        if (c->tx_cap - c->tx_tail < size) {
            size_t want = c->tx_tail + size;
            if (want < TX_LIMIT + WIRE_HEAD_MAX)
                want = TX_LIMIT + WIRE_HEAD_MAX;
            uint8_t *tx = realloc(c->tx, want);
            if (!tx)
                return -ENOMEM;
            c->tx = tx;
            c->tx_cap = want;
        }
    }
    memcpy(c->tx + c->tx_tail, data, size);
    c->tx_tail += size;
    return 0;
}

/* Sends one frame. Flags: IPCNET_DONTWAIT, IPCNET_MORE. */
static int s_send_frame(ipcnet_t *c, uint8_t type, uint16_t wflags, uint32_t seq,
                        uint32_t aux, const char *s1, const char *s2,
                        const void *data, size_t size, int flags)
{
    if (c->dead)
        return c->dead;
    if (shm_wanted(c, type, size))     /* the payload in a sealed memfd */
        return shm_send(c, type, wflags, seq, aux, s1, data, size, flags);
    int dontwait = (flags & IPCNET_DONTWAIT) || (c->flags & IPCNET_NONBLOCK);
    uint8_t head[WIRE_HEAD_MAX];
    size_t hlen = wire_encode(head, type, wflags, seq, aux, s1, s1 ? strlen(s1) : 0,
                              s2, s2 ? strlen(s2) : 0, size);
    size_t queued = c->tx_tail - c->tx_head;

    /* Room: a frame may always go into an empty queue, whatever its size. */
    if (queued > 0 && queued + hlen + size > TX_LIMIT) {
        int rc = handle_write(c);
        if (rc < 0)
            return rc;
        if (c->tx_head < c->tx_tail) {
            if (dontwait)
                return -EAGAIN;
            rc = s_drain(c, -1);
            if (rc < 0)
                return rc;
        }
        queued = 0;
    }

    if (queued == 0 && !(flags & IPCNET_MORE)) {
        /* The common case: straight from the caller's buffer, one syscall. */
        struct iovec iov[2] = { { head, hlen }, { (void *) data, size } };
        struct msghdr mh = { .msg_iov = iov, .msg_iovlen = size ? 2 : 1 };
        size_t done = 0, total = hlen + size;
        for (;;) {
            ssize_t n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && errno != EAGAIN)
                return s_fail(c, -ECONNRESET);
            if (n > 0)
                done += (size_t) n;
            if (done == total)
                return 0;
            if (dontwait)
                break;
            /* Partial write of a large frame: go on from where it stopped. */
            size_t skip = n > 0 ? (size_t) n : 0;
            while (skip > 0 && mh.msg_iovlen > 0) {
                if (skip >= mh.msg_iov->iov_len) {
                    skip -= mh.msg_iov->iov_len;
                    mh.msg_iov++;
                    mh.msg_iovlen--;
                } else {
                    mh.msg_iov->iov_base = (uint8_t *) mh.msg_iov->iov_base + skip;
                    mh.msg_iov->iov_len -= skip;
                    skip = 0;
                }
            }
            int rc = s_wait(c, -1, 1);
            if (rc < 0)
                return rc;
        }
        /* Queue what the socket did not take; the frame is accepted. */
        int rc = 0;
        if (done < hlen)
            rc = handle_append(c, head + done, hlen - done);
        if (rc == 0)
            rc = handle_append(c, (const uint8_t *) data + (done > hlen ? done - hlen : 0),
                          size - (done > hlen ? done - hlen : 0));
        return rc;
    }

    int rc = handle_append(c, head, hlen);
    if (rc == 0 && size)
        rc = handle_append(c, data, size);
    if (rc < 0)
        return rc;
    if (flags & IPCNET_MORE) {
        if (c->tx_tail - c->tx_head < TX_BATCH)
            return 0;
        return handle_write(c);
    }
    return dontwait ? handle_write(c) : s_drain(c, -1);
}

/* --- reading --------------------------------------------------------------- */

/* Ends the views of the message handed out last. */
static void s_release(ipcnet_t *c)
{
    c->view = 0;
    shm_release(c);
    /* Skip frames taken out of order by a waiting call. */
    while (c->rx_tail - c->rx_head >= WIRE_MIN && c->rx[c->rx_head + 5] == 0)
        c->rx_head += 4 + wire_get32(c->rx + c->rx_head);
}

/* The next complete frame at or after offset *at, decoded; advances *at
   past it. Returns 1, 0 if none is complete yet (or, with notes, if one
   of the library's notes is due before the next), or -EBADMSG. */
static int s_next(ipcnet_t *c, size_t *at, wire_frame_t *ret, int notes)
{
    while (*at < c->rx_tail) {
        ssize_t len = wire_peek(c->rx + *at, c->rx_tail - *at,
                                c->max_message + WIRE_HEAD_MAX);
        if (len < 0)
            return s_fail(c, -EBADMSG);
        if (len == 0 || (size_t) len > c->rx_tail - *at)
            return 0;
        size_t here = *at;
        *at += (size_t) len;
        if (c->rx[here + 5] == 0)
            continue;       /* taken */
        if (wire_decode(c->rx + here, (size_t) len, ret) < 0) {
            *at = here;
            return s_fail(c, -EBADMSG);
        }
        if ((c->link == LINK_HELLO || c->restoring) && reconnect_frame(c, ret, *at)) {
            c->rx[here + 5] = 0;
            /* A note it made (NODE_UP) comes before the frames after it. */
            if (notes && c->note_head < c->note_tail && c->notes[c->note_head].pos <= *at)
                return 0;
            continue;       /* the library's own */
        }
        return 1;
    }
    return 0;
}

static const char *s_copy(char *dst, const char *src, size_t len)
{
    wire_copy(dst, src, len);
    dst[len] = 0;
    return dst;
}

/* Who sent a delivered message, from its frame: uid and user on its
   node, that node's name (from the sender's address, srclen bytes) and
   id. A run of messages mostly comes from one node: its id in hex and its
   name are made again only when they change. */
static void s_sender(ipcnet_t *c, const wire_frame_t *f, ipcnet_msg_t *msg, size_t srclen)
{
    static const char hex[] = "0123456789abcdef";
    msg->uid = f->from.uid;
    msg->user = s_copy(c->user, f->from.user, f->from.userlen);
    if (!c->node_id[0] || memcmp(c->node_id_raw, f->from.node_id, WIRE_NODE_ID) != 0) {
        memcpy(c->node_id_raw, f->from.node_id, WIRE_NODE_ID);
        for (size_t i = 0; i < WIRE_NODE_ID; i++) {
            c->node_id[2 * i] = hex[f->from.node_id[i] >> 4];
            c->node_id[2 * i + 1] = hex[f->from.node_id[i] & 15];
        }
        c->node_id[2 * WIRE_NODE_ID] = 0;
    }
    msg->node_id = c->node_id;
    const char *at = memchr(msg->source, '@', srclen);
    if (!at) {
        msg->node = "";
        return;
    }
    size_t len = srclen - (size_t) (at + 1 - msg->source);
    if (len != c->from_node_len || memcmp(c->from_node, at + 1, len) != 0)
        c->from_node_len = len, s_copy(c->from_node, at + 1, len);
    msg->node = c->from_node;
}

/* Fills *msg from a delivered frame. Returns 1, or 0 for a frame that is
   not for the application (a stray OK). */
static int s_to_msg(ipcnet_t *c, const wire_frame_t *f, ipcnet_msg_t *msg)
{
    memset(msg, 0, sizeof *msg);
    msg->source = msg->name = msg->node = msg->user = msg->node_id = "";
    msg->data = f->data;
    msg->size = f->size;
    msg->id = f->seq;
    if ((f->flags & WIRE_F_SHM) && f->type != WIRE_MONITORED && wire_has_from(f->type) &&
        shm_view(c, f, &msg->data, &msg->size) < 0) {
        msg->kind = IPCNET_MSG_ERROR;   /* a region it could not map */
        msg->error = -EBADMSG;
        msg->data = NULL;
        msg->size = 0;
        return 1;
    }
    switch (f->type) {
    case WIRE_MESSAGE:
        msg->kind = IPCNET_MSG_SEND;
        msg->source = s_copy(c->s1, f->s1, f->s1len);
        msg->name = s_copy(c->s2, f->s2, f->s2len);
        s_sender(c, f, msg, f->s1len);
        return 1;
    case WIRE_DELIVER_REQ:
        msg->kind = IPCNET_MSG_REQUEST;
        msg->timeout_ms = f->aux;
        msg->source = s_copy(c->s1, f->s1, f->s1len);
        msg->name = s_copy(c->s2, f->s2, f->s2len);
        s_sender(c, f, msg, f->s1len);
        return 1;
    case WIRE_DELIVER_REP:
        if (c->flags & IPCNET_RECONNECT)
            reconnect_pending_del(c, f->seq);
        msg->kind = IPCNET_MSG_REPLY;
        msg->source = s_copy(c->s1, f->s1, f->s1len);
        s_sender(c, f, msg, f->s1len);
        return 1;
    case WIRE_PUBLICATION:
        msg->kind = IPCNET_MSG_PUBLISH;
        msg->name = s_copy(c->s1, f->s1, f->s1len);
        msg->source = s_copy(c->s2, f->s2, f->s2len);
        s_sender(c, f, msg, f->s2len);
        return 1;
    case WIRE_MONITORED:
        msg->kind = IPCNET_MSG_MONITOR;
        msg->event = f->aux == WIRE_MON_SEND ? IPCNET_MSG_SEND
                   : f->aux == WIRE_MON_REQUEST ? IPCNET_MSG_REQUEST
                   : f->aux == WIRE_MON_REPLY ? IPCNET_MSG_REPLY
                   : f->aux == WIRE_MON_PUBLISH ? IPCNET_MSG_PUBLISH : 0;
        msg->name = s_copy(c->s1, f->s1, f->s1len);
        msg->source = s_copy(c->s2, f->s2, f->s2len);
        s_sender(c, f, msg, f->s2len);
        msg->id = 0;
        if (f->size < 4)
            return 0;           /* not from a node that speaks this protocol */
        msg->total = wire_get32(f->data);
        msg->data = f->data + 4;
        msg->size = f->size - 4;
        if (msg->event == 0) {
            msg->id = (uint32_t) msg->total;    /* notes lost */
            msg->total = msg->size = 0;
        }
        return 1;
    case WIRE_EVENT:
        msg->kind = IPCNET_MSG_EVENT;
        msg->event = (int) f->aux;
        msg->name = s_copy(c->s1, f->s1, f->s1len);
        msg->node = s_copy(c->s2, f->s2, f->s2len);
        return 1;
    case WIRE_KEY_EVENT:
        return store_to_msg(c, f, msg);
    case WIRE_ERROR:
        if (c->flags & IPCNET_RECONNECT)
            reconnect_pending_del(c, f->seq);
        msg->kind = IPCNET_MSG_ERROR;
        msg->error = f->aux > 0 && f->aux < 4096 ? -(int) f->aux : -EPROTO;
        msg->name = s_copy(c->s1, f->s1, f->s1len);
        /* The node's words for why, as text (not NUL-terminated). */
        msg->data = f->s2;
        msg->size = f->s2len;
        return 1;
    default:
        return 0;
    }
}

/* Takes the next message for the application, if one is complete: a
   frame, or the library's own note due before it. */
static int s_take(ipcnet_t *c, ipcnet_msg_t *msg)
{
    size_t at = c->rx_head;
    for (;;) {
        if (reconnect_note(c, at, msg)) {
            c->rx_head = at;
            c->view = 1;
            return 1;
        }
        wire_frame_t f;
        int rc = s_next(c, &at, &f, 1);
        if (rc == -ECONNRESET && (c->flags & IPCNET_RECONNECT))
            continue;       /* the loss is a note now */
        if (rc == 0 && c->note_head < c->note_tail && c->notes[c->note_head].pos <= at)
            continue;
        if (rc != 1)
            return rc;
        /* Frames ahead were all taken: this one ends at rx_head now. */
        c->rx_head = at;
        if (s_to_msg(c, &f, msg)) {
            c->view = 1;
            return 1;
        }
        s_release(c);
    }
}

/* Waits for the OK, ERROR or DELIVER_REP that answers seq, leaving other
   frames in place. Returns 0 with *ret filled (a view), or a negative errno
   (the node's error for seq, or -ETIMEDOUT). */
static int s_await(ipcnet_t *c, uint32_t seq, int64_t deadline, wire_frame_t *ret)
{
    c->why[0] = 0;      /* the words of this failure, or none */
    int rc = s_drain(c, deadline);
    size_t at = c->rx_head;
    while (rc == 0) {
        wire_frame_t f;
        size_t here = at;
        while ((rc = s_next(c, &at, &f, 0)) == 1) {
            if (f.seq == seq && (f.type == WIRE_OK || f.type == WIRE_ERROR ||
                                 f.type == WIRE_DELIVER_REP || f.type == WIRE_WELCOME)) {
                c->rx[here + 5] = 0;        /* taken; the bytes stay valid */
                if ((c->flags & IPCNET_RECONNECT) && f.type != WIRE_OK)
                    reconnect_pending_del(c, seq);
                if (f.type == WIRE_ERROR) {
                    s_copy(c->why, f.s2, f.s2len);
                    return f.aux > 0 && f.aux < 4096 ? -(int) f.aux : -EPROTO;
                }
                *ret = f;
                c->view = 1;
                return 0;
            }
            here = at;
        }
        if (rc < 0)
            return rc;
        at = here;      /* rescan from the first incomplete frame */
        size_t head = c->rx_head;
        rc = s_wait(c, deadline, 0);
        if (rc == 0 && c->link != LINK_UP)
            rc = -ECONNRESET;       /* the answer went with the connection */
        /* s_read may have compacted the buffer: offsets move with rx_head. */
        at -= head - c->rx_head;
    }
    return rc;
}

/* Sends a control command and waits for its answer. */
/* Before anything is sent: 0 once connected. While the node is away, a
   caller that does not wait gets -ENOTCONN at once; one that waits, waits
   for the node up to wait_ms, then gets -ENOTCONN. */
static int s_ready(ipcnet_t *c, int dontwait, int wait_ms)
{
    if (c->dead)
        return c->dead;
    if (c->link == LINK_UP)
        return 0;
    int64_t deadline = s_deadline(wait_ms);
    while (c->link != LINK_UP) {
        if (dontwait || (c->flags & IPCNET_NONBLOCK)) {
            reconnect_try(c);
            if (c->link == LINK_WAITING)
                return -ENOTCONN;
        }
        int rc = s_wait(c, dontwait ? handle_now_ms() : deadline, 0);
        if (rc == -ETIMEDOUT)
            return -ENOTCONN;
        if (rc < 0 && rc != -ECONNRESET)
            return rc;
        /* The WELCOME may have come: frames of the reconnection are the
           library's, handled as they are looked at. */
        size_t at = c->rx_head;
        wire_frame_t f;
        while (c->link == LINK_HELLO && s_next(c, &at, &f, 0) == 1)
            ;
    }
    return 0;
}

static int s_command(ipcnet_t *c, uint8_t type, uint32_t aux, const char *s1,
                     wire_frame_t *ret)
{
    int rc = s_ready(c, 0, CONTROL_WAIT);
    if (rc < 0)
        return rc;
    uint32_t seq = ++c->seq;
    rc = s_send_frame(c, type, type == WIRE_HELLO ? WIRE_F_SHM : 0, seq, aux, s1, NULL, NULL, 0, 0);
    s_release(c);
    if (rc < 0)
        return rc;
    wire_frame_t f;
    return s_await(c, seq, s_deadline(CONTROL_WAIT), ret ? ret : &f);
}

static int s_check_string(const char *s)
{
    if (!s)
        return -EINVAL;
    size_t len = strlen(s);
    return len == 0 || len > WIRE_NAME_MAX ? -EINVAL : 0;
}

/* --- the API --------------------------------------------------------------- */

/* The node refused us and closed (too many clients, ...): our HELLO may
   have failed to go out before its ERROR was read. Returns the error it
   gave, or rc when it gave none. */
static int s_refusal(int fd, int rc)
{
    uint8_t buf[WIRE_HEAD_MAX];
    size_t len = 0;
    struct pollfd p = { .fd = fd, .events = POLLIN };
    while (len < sizeof buf && poll(&p, 1, 200) > 0) {
        ssize_t n = read(fd, buf + len, sizeof buf - len);
        if (n <= 0)
            break;
        len += (size_t) n;
        ssize_t frame = wire_peek(buf, len, sizeof buf);
        wire_frame_t f;
        if (frame < 0 || (frame > 0 && (size_t) frame > sizeof buf))
            break;
        if (frame > 0 && (size_t) frame <= len && wire_decode(buf, (size_t) frame, &f) == 0)
            return f.type == WIRE_ERROR && f.aux > 0 && f.aux < 4096 ? -(int) f.aux : rc;
    }
    return rc;
}

int ipcnet_connect(ipcnet_t **ret, const char *path, const char *label, int flags)
{
    if (!ret || (label && strlen(label) > WIRE_NAME_MAX) ||
        (flags & ~(IPCNET_NONBLOCK | IPCNET_RECONNECT)))
        return -EINVAL;
    char buf[sizeof ((struct sockaddr_un *) 0)->sun_path];
    if (!path) {
        int rc = ipcnet_default_socket(buf, sizeof buf);
        if (rc < 0)
            return rc;
        path = buf;
    }
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof sa.sun_path)
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);

    ipcnet_t *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->max_message = 0;
    shm_init(&c->shm);
    /* Connect blocking: a non-blocking connect fails with EAGAIN when the
       node's backlog is full, which is normal when many start at once. */
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int rc = c->fd < 0 ? -errno : 0;
    while (rc == 0 && connect(c->fd, (struct sockaddr *) &sa, sizeof sa) < 0)
        if (errno != EINTR)
            rc = -errno;
    if (rc == 0 && fcntl(c->fd, F_SETFL, O_NONBLOCK) < 0)
        rc = -errno;
    if (rc == 0) {
        c->flags = 0;       /* the handshake waits, whatever the flags */
        wire_frame_t f;
        rc = s_command(c, WIRE_HELLO, WIRE_VERSION, label && *label ? label : NULL, &f);
        if (rc == -ECONNRESET)
            rc = s_refusal(c->fd, rc);
        if (rc == 0 && f.type != WIRE_WELCOME)
            rc = -EPROTO;
        if (rc == 0) {
            s_copy(c->address, f.s1, f.s1len);
            s_copy(c->node, f.s2, f.s2len);
            c->max_message = f.aux;
            shm_welcome(c, &f);
        }
    }
    if (rc < 0) {
        if (c->fd >= 0)
            close(c->fd);
        free(c->rx);
        free(c->tx);
        free(c);
        return rc;
    }
    c->flags = flags;
    if (flags & IPCNET_RECONNECT) {
        c->efd = epoll_create1(EPOLL_CLOEXEC);
        if (c->efd < 0) {
            rc = -errno;
            ipcnet_close(&c);
            return rc;
        }
        reconnect_watch(c);
    }
    /* What a reconnection needs: where, under which label. */
    strcpy(c->path, path);
    snprintf(c->label, sizeof c->label, "%s", label ? label : "");
    c->rng = (uint32_t) getpid() ^ (uint32_t) handle_now_ms() ^ (uint32_t) (uintptr_t) c;
    *ret = c;
    return 0;
}

void ipcnet_close(ipcnet_t **cp)
{
    if (!cp || !*cp)
        return;
    ipcnet_t *c = *cp;
    if (!c->dead && c->link == LINK_UP)
        handle_write(c);
    close(c->fd);
    if (c->flags & IPCNET_RECONNECT)
        close(c->efd);
    reconnect_free(c);
    shm_free(c);
    free(c->rx);
    free(c->tx);
    free(c);
    *cp = NULL;
}

const char *ipcnet_last_error(const ipcnet_t *c)
{
    return c ? c->why : "";
}

const char *ipcnet_address(const ipcnet_t *c)
{
    return c ? c->address : "";
}

const char *ipcnet_node(const ipcnet_t *c)
{
    return c ? c->node : "";
}

size_t ipcnet_max_message(const ipcnet_t *c)
{
    return c ? c->max_message : 0;
}

int ipcnet_fd(const ipcnet_t *c)
{
    return !c ? -EINVAL : c->flags & IPCNET_RECONNECT ? c->efd : c->fd;
}

int ipcnet_pending(const ipcnet_t *c)
{
    if (!c)
        return 0;
    if (c->note_head < c->note_tail)
        return 1;
    /* A complete frame not taken yet (a frame of the library's own, or
       an answer taken by a call that waited, counts too: harmless). */
    for (size_t at = c->rx_head; at + WIRE_MIN <= c->rx_tail;) {
        ssize_t len = wire_peek(c->rx + at, c->rx_tail - at, c->max_message + WIRE_HEAD_MAX);
        if (len <= 0 || (size_t) len > c->rx_tail - at)
            return 0;
        if (c->rx[at + 5] != 0)
            return 1;
        at += (size_t) len;
    }
    return 0;
}

int ipcnet_want_write(const ipcnet_t *c)
{
    if (!c)
        return 0;
    int want = c->link != LINK_WAITING && c->tx_head < c->tx_tail;
    if (c->flags & IPCNET_RECONNECT)
        reconnect_want_write((ipcnet_t *) c, want);     /* efd must say so too */
    return want;
}

uint32_t ipcnet_last_id(const ipcnet_t *c)
{
    return c ? c->seq : 0;
}

int ipcnet_dispatch(ipcnet_t *c, ipcnet_handler_fn *fn, void *arg)
{
    if (!c || !fn)
        return -EINVAL;
    s_release(c);
    reconnect_try(c);
    int rc = 0;
    if (c->link != LINK_WAITING) {
        rc = handle_write(c);
        if (rc == 0)
            rc = s_read(c);
    }
    if (rc == -ECONNRESET && (c->flags & IPCNET_RECONNECT))
        rc = 0;         /* the loss is a note now */
    if (rc < 0 && c->rx_head == c->rx_tail)
        return rc;
    int count = 0;
    ipcnet_msg_t msg;
    /* Bounded: only frames read by this call, so a fast sender cannot keep
       the caller here forever. */
    while ((rc = s_take(c, &msg)) == 1) {
        count++;
        fn(c, &msg, arg);
        s_release(c);
    }
    return rc < 0 ? rc : count;
}

int ipcnet_recv(ipcnet_t *c, ipcnet_msg_t *ret, int timeout_ms)
{
    if (!c || !ret)
        return -EINVAL;
    s_release(c);
    int64_t deadline = s_deadline(timeout_ms);
    int polled = 0;
    for (;;) {
        int rc = s_take(c, ret);
        if (rc != 0)
            return rc < 0 ? rc : 0;
        if (c->dead)
            return c->dead;
        if (timeout_ms == 0 || (c->flags & IPCNET_NONBLOCK)) {
            if (polled++)
                return -EAGAIN;
            reconnect_try(c);
            if (c->link != LINK_WAITING) {
                rc = handle_write(c);
                if (rc == 0)
                    rc = s_read(c);
            }
        } else
            rc = s_wait(c, deadline, 0);
        if (rc == -ECONNRESET && (c->flags & IPCNET_RECONNECT))
            continue;   /* the loss is a note now */
        if (rc < 0)
            return rc;
    }
}

int ipcnet_flush(ipcnet_t *c, int timeout_ms)
{
    if (!c)
        return -EINVAL;
    if (c->dead)
        return c->dead;
    if (c->link != LINK_UP)
        return c->tx_head < c->tx_tail ? -ENOTCONN : 0;
    return s_drain(c, s_deadline(timeout_ms));
}

/* BIND, SUBSCRIBE, WATCH and their undoing; with IPCNET_RECONNECT what
   is held is remembered, to be made again on return. */
static int s_hold(ipcnet_t *c, uint8_t type, uint8_t undo, const char *name)
{
    if (!c || s_check_string(name) < 0)
        return -EINVAL;
    int rc = s_command(c, undo ? undo : type, 0, name, NULL);
    if (rc == 0 && (c->flags & IPCNET_RECONNECT)) {
        if (undo)
            reconnect_held_del(c, type, name);
        else if (reconnect_held_add(c, type, name) < 0) {
            s_command(c, type == WIRE_BIND ? WIRE_UNBIND : type == WIRE_SUBSCRIBE
                         ? WIRE_UNSUBSCRIBE : WIRE_UNWATCH, 0, name, NULL);
            rc = -ENOMEM;   /* it could not be kept across a reconnection */
        }
    }
    return rc;
}

int ipcnet_bind(ipcnet_t *c, const char *name)
{
    return s_hold(c, WIRE_BIND, 0, name);
}

int ipcnet_unbind(ipcnet_t *c, const char *name)
{
    return s_hold(c, WIRE_BIND, WIRE_UNBIND, name);
}

int ipcnet_subscribe(ipcnet_t *c, const char *pattern)
{
    return s_hold(c, WIRE_SUBSCRIBE, 0, pattern);
}

int ipcnet_unsubscribe(ipcnet_t *c, const char *pattern)
{
    return s_hold(c, WIRE_SUBSCRIBE, WIRE_UNSUBSCRIBE, pattern);
}

int ipcnet_watch(ipcnet_t *c, const char *pattern)
{
    return s_hold(c, WIRE_WATCH, 0, pattern);
}

int ipcnet_unwatch(ipcnet_t *c, const char *pattern)
{
    return s_hold(c, WIRE_WATCH, WIRE_UNWATCH, pattern);
}

/* SEND and PUBLISH: checked here so a bad call costs no round trip. */
/* The batched case, most of a busy sender's calls: IPCNET_MORE to the
   destination of the last such call, with room in the queue. The frame's
   head is the last one's with its size and seq changed, written with the
   payload straight into the queue: no encoding, no checks that the last
   call made already. Returns 1 when it took the message. */
static int s_post_again(ipcnet_t *c, uint8_t type, const char *to, const void *data,
                        size_t size, int flags)
{
    size_t hlen = c->again_hlen, queued = c->tx_tail - c->tx_head;
    if (flags != IPCNET_MORE || type != c->again_type || !hlen || c->link != LINK_UP ||
        c->dead || size > c->max_message || (size && !data) ||
        queued + hlen + size > TX_LIMIT || c->tx_cap - c->tx_tail < hlen + size ||
        shm_wanted(c, type, size) ||
        strcmp(to, c->again_to) != 0)
        return 0;
    uint8_t *at = c->tx + c->tx_tail;
    memcpy(at, c->again_head, hlen);
    wire_put32(at, (uint32_t) (hlen - 4 + size));
    wire_put32(at + 8, ++c->seq);
    if (size)
        memcpy(at + hlen, data, size);
    c->tx_tail += hlen + size;
    if (c->view)
        s_release(c);       /* data is copied: the caller's view may go */
    return 1;
}

static int s_post(ipcnet_t *c, uint8_t type, const char *to, const void *data,
                  size_t size, int flags)
{
    if (c && to && s_post_again(c, type, to, data, size, flags))
        return c->tx_tail - c->tx_head < TX_BATCH ? 0 : handle_write(c);
    if (!c || s_check_string(to) < 0 || (size && !data) ||
        (flags & ~(IPCNET_DONTWAIT | IPCNET_MORE | IPCNET_CONFIRM)))
        return -EINVAL;
    int rc = s_ready(c, flags & IPCNET_DONTWAIT, CONTROL_WAIT);
    if (rc < 0)
        return rc;
    if (size > c->max_message)
        return -EMSGSIZE;
    uint32_t seq = c->seq + 1;
    int confirm = flags & IPCNET_CONFIRM;
    rc = s_send_frame(c, type, confirm ? WIRE_F_CONFIRM : 0, seq, 0, to, NULL,
                      data, size, confirm ? flags & ~IPCNET_MORE : flags);
    if (rc < 0)
        return rc;
    s_release(c);       /* data is written or copied: the caller's view may go */
    c->seq = seq;
    if (flags == IPCNET_MORE) {
        /* The next one to here may take the short way. */
        size_t len = strlen(to);
        c->again_hlen = wire_encode(c->again_head, type, 0, 0, 0, to, len, NULL, 0, 0);
        c->again_type = type;
        memcpy(c->again_to, to, len + 1);
    }
    if (!confirm)
        return 0;
    wire_frame_t f;
    return s_await(c, seq, s_deadline(CONTROL_WAIT), &f);
}

int ipcnet_send(ipcnet_t *c, const char *dest, const void *data, size_t size, int flags)
{
    return s_post(c, WIRE_SEND, dest, data, size, flags);
}

int ipcnet_publish(ipcnet_t *c, const char *topic, const void *data, size_t size, int flags)
{
    return s_post(c, WIRE_PUBLISH, topic, data, size, flags);
}

/* REQUEST; track: remember it is in flight, to fail it if the node goes. */
static int s_request(ipcnet_t *c, const char *dest, const void *data, size_t size,
                     int timeout_ms, uint32_t *ret_id, int track)
{
    if (!c || s_check_string(dest) < 0 || (size && !data) || timeout_ms < 0)
        return -EINVAL;
    int rc = s_ready(c, 0, timeout_ms > 0 ? timeout_ms : CONTROL_WAIT);
    if (rc < 0)
        return rc;
    if (size > c->max_message)
        return -EMSGSIZE;
    uint32_t seq = c->seq + 1;
    track = track && (c->flags & IPCNET_RECONNECT);
    if (track && reconnect_pending_add(c, seq) < 0)
        return -ENOMEM;
    rc = s_send_frame(c, WIRE_REQUEST, 0, seq, (uint32_t) timeout_ms, dest, NULL,
                      data, size, 0);
    if (rc < 0) {
        if (track)
            reconnect_pending_del(c, seq);
        return rc;
    }
    s_release(c);
    c->seq = seq;
    if (ret_id)
        *ret_id = seq;
    return 0;
}

int ipcnet_request_async(ipcnet_t *c, const char *dest, const void *data,
                         size_t size, int timeout_ms, uint32_t *ret_id)
{
    return s_request(c, dest, data, size, timeout_ms, ret_id, 1);
}

int ipcnet_request(ipcnet_t *c, const char *dest, const void *data, size_t size,
                   int timeout_ms, ipcnet_msg_t *ret)
{
    if (!ret)
        return -EINVAL;
    uint32_t id;
    int rc = s_request(c, dest, data, size, timeout_ms, &id, 0);
    if (rc < 0)
        return rc;
    /* The node answers at the timeout; wait a little longer than it. */
    int wait = (timeout_ms > 0 ? timeout_ms : CONTROL_WAIT) + 1000;
    wire_frame_t f;
    rc = s_await(c, id, s_deadline(wait), &f);
    if (rc < 0)
        return rc;
    s_to_msg(c, &f, ret);
    return 0;
}

int ipcnet_reply_to(ipcnet_t *c, const char *requester, uint32_t id,
                    const void *data, size_t size)
{
    if (!c || s_check_string(requester) < 0 || (size && !data))
        return -EINVAL;
    /* A request from before a reconnection died with the connection. */
    int rc = s_ready(c, 1, 0);
    if (rc < 0)
        return rc;
    if (size > c->max_message)
        return -EMSGSIZE;
    uint32_t seq = c->seq + 1;
    rc = s_send_frame(c, WIRE_REPLY, 0, seq, id, requester, NULL, data, size, 0);
    if (rc == 0)
        c->seq = seq;
    return rc;
}

int ipcnet_reply(ipcnet_t *c, const ipcnet_msg_t *req, const void *data, size_t size)
{
    if (!req || req->kind != IPCNET_MSG_REQUEST)
        return -EINVAL;
    /* req->source lives in c's scratch space and req->data in the receive
       buffer: both stay put until the frame is written. */
    return ipcnet_reply_to(c, req->source, req->id, data, size);
}

int ipcnet_monitor(ipcnet_t *c, const char *pattern)
{
    if (!c || (pattern && s_check_string(pattern) < 0))
        return -EINVAL;
    return s_command(c, WIRE_MONITOR, 0, pattern, NULL);
}

/* QUERY what, about (NULL or a subject's argument): the listing. */
static int s_query(ipcnet_t *c, int what, const char *about, char **ret_text)
{
    int rc = s_ready(c, 0, CONTROL_WAIT);
    if (rc < 0)
        return rc;
    uint32_t seq = ++c->seq;
    rc = s_send_frame(c, WIRE_QUERY, 0, seq, (uint32_t) what, about, NULL, NULL, 0, 0);
    s_release(c);
    /* A long listing comes in parts, each OK but the last flagged MORE. */
    char *text = NULL;
    size_t len = 0;
    for (int more = 1; rc == 0 && more;) {
        wire_frame_t f;
        rc = s_await(c, seq, s_deadline(CONTROL_WAIT), &f);
        if (rc < 0)
            break;
        more = (f.flags & WIRE_F_MORE) != 0;
        char *t = realloc(text, len + f.size + 1);
        if (!t) {
            rc = -ENOMEM;
            break;
        }
        text = t;
        memcpy(text + len, f.data, f.size);
        len += f.size;
        s_release(c);
    }
    if (rc < 0) {
        free(text);
        return rc;
    }
    text[len] = 0;
    *ret_text = text;
    return 0;
}

/* --- for store.c ---------------------------------------------------------- */

int handle_call(ipcnet_t *c, uint8_t type, uint16_t wflags, uint32_t aux, const char *s1,
                const void *data, size_t size, int timeout_ms, wire_frame_t *ret,
                uint32_t *ret_seq)
{
    int rc = s_ready(c, 0, CONTROL_WAIT);
    if (rc < 0)
        return rc;
    uint32_t seq = ++c->seq;
    if (ret_seq)
        *ret_seq = seq;
    rc = s_send_frame(c, type, wflags, seq, aux, s1, NULL, data, size, 0);
    s_release(c);
    return rc < 0 ? rc : s_await(c, seq, s_deadline(timeout_ms ? timeout_ms : CONTROL_WAIT), ret);
}

int handle_await(ipcnet_t *c, uint32_t seq, int timeout_ms, wire_frame_t *ret)
{
    return s_await(c, seq, s_deadline(timeout_ms ? timeout_ms : CONTROL_WAIT), ret);
}

void handle_release(ipcnet_t *c)
{
    s_release(c);
}

int ipcnet_query(ipcnet_t *c, int what, char **ret_text)
{
    if (!c || !ret_text || what < IPCNET_Q_SERVICES || what > IPCNET_Q_CLIENTS)
        return -EINVAL;
    return s_query(c, what, NULL, ret_text);
}

int ipcnet_diagnose(ipcnet_t *c, const char *peer, char **ret_text)
{
    if (!c || !ret_text || s_check_string(peer) < 0)
        return -EINVAL;
    return s_query(c, WIRE_Q_DIAGNOSE, peer, ret_text);
}

const char *ipcnet_strerror(int err)
{
    switch (err) {
    case 0:             return "success";
    case -ENOENT:       return "no such name: nobody holds it (from ipcnet_connect: no socket "
                               "at that path: is the node running?)";
    case -EHOSTUNREACH: return "peer lost or unreachable";
    case -ECONNRESET:   return "connection lost (the node or the holder went away)";
    case -ETIMEDOUT:    return "timed out";
    case -EMSGSIZE:     return "message too large";
    case -EAGAIN:       return "queue full, try again later";
    case -EACCES:       return "not allowed";
    case -EBADMSG:      return "malformed frame";
    case -EPROTO:       return "protocol error or version mismatch";
    case -EINVAL:       return "invalid argument or name";
    case -EEXIST:       return "name already bound by this client";
    case -ENOBUFS:      return "limit reached (too many names, patterns or requests, or unread messages)";
    case -ENAMETOOLONG: return "path or name too long";
    case -ENOTCONN:     return "not connected: the node went away (reconnecting)";
    case -ESTALE:       return "the key's version is not the one expected (compare-and-set)";
    case -EUSERS:       return "too many clients: the node has no room for another one (of this user)";
    default:            return err < 0 ? strerror(-err) : "unknown error";
    }
}

/* --- for shm.c ----------------------------------------------------------------- */

int handle_drain(ipcnet_t *c, int64_t deadline) { return s_drain(c, deadline); }
int handle_wait(ipcnet_t *c, int64_t deadline, int writing) { return s_wait(c, deadline, writing); }
int handle_fail(ipcnet_t *c, int err) { return s_fail(c, err); }
int handle_post(ipcnet_t *c, uint8_t type, const char *to, const void *data, size_t size,
                int flags)
{
    return s_post(c, type, to, data, size, flags);
}
