/*  shm.c: libipcnet's payloads in sealed memfds: the fds read with the
    node's bytes matched to their frames and mapped when handed out, the
    regions made and passed for large sends, and the zero-copy calls. */

#include "handle.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/sockios.h>

#define SHM_SEALS (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)
#define SHM_CMSG_FDS 8          /* room in one read: more than a node passes */

void shm_init(shm_t *s)
{
    memset(s, 0, sizeof *s);
    s->view_fd = s->out_fd = -1;
}

ssize_t shm_recv(ipcnet_t *c, void *buf, size_t len)
{
    shm_t *s = &c->shm;
    union {
        struct cmsghdr h;
        char room[CMSG_SPACE(SHM_CMSG_FDS * sizeof (int))];
    } ctl;
    struct iovec iov = { buf, len };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl,
                         .msg_controllen = sizeof ctl };
    ssize_t n = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC);
    if (n < 0)
        return n;
    int bad = (mh.msg_flags & MSG_CTRUNC) != 0;
    for (struct cmsghdr *h = CMSG_FIRSTHDR(&mh); h; h = CMSG_NXTHDR(&mh, h)) {
        if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (h->cmsg_len - CMSG_LEN(0)) / sizeof (int);
        for (size_t i = 0; i < k; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(h) + i * sizeof (int), sizeof fd);
            if (s->nin < SHM_IN_MAX && !bad)
                s->in[s->nin++] = fd;
            else {
                close(fd);
                bad = 1;
            }
        }
    }
    if (bad) {
        errno = EBADMSG;
        return -1;
    }
    return n;
}

static int s_delivery(uint8_t type)
{
    return type == WIRE_MESSAGE || type == WIRE_DELIVER_REQ || type == WIRE_DELIVER_REP ||
           type == WIRE_PUBLICATION;
}

int shm_claim(ipcnet_t *c)
{
    shm_t *s = &c->shm;
    size_t at = s->claim_at > c->rx_head ? s->claim_at : c->rx_head;
    while (at + WIRE_MIN <= c->rx_tail) {
        ssize_t len = wire_peek(c->rx + at, c->rx_tail - at, c->max_message + WIRE_HEAD_MAX);
        if (len <= 0 || (size_t) len > c->rx_tail - at)
            break;      /* bad frames are s_next's to find */
        const uint8_t *p = c->rx + at;
        if (s_delivery(p[5]) && (p[7] & WIRE_F_SHM) && (size_t) len >= WIRE_MIN + WIRE_SHM_REF) {
            if (s->nin == 0)
                return -EBADMSG;        /* its fd came before its first byte, or never */
            if (s->nrefs == s->refs_cap) {
                size_t cap = s->refs_cap ? 2 * s->refs_cap : 8;
                shm_ref_t *r = realloc(s->refs, cap * sizeof *r);
                if (!r)
                    return -ENOMEM;
                s->refs = r;
                s->refs_cap = cap;
            }
            s->refs[s->nrefs++] = (shm_ref_t) { at + (size_t) len - WIRE_SHM_REF, s->in[0] };
            memmove(s->in, s->in + 1, --s->nin * sizeof (int));
        }
        at += (size_t) len;
    }
    s->claim_at = at;
    if (at == c->rx_tail && s->nin > 0) {
        /* Every byte read is a whole frame and an fd is left: it came
           with a frame not flagged SHM. */
        while (s->nin > 0)
            close(s->in[--s->nin]);
        return -EBADMSG;
    }
    return 0;
}

void shm_shift(ipcnet_t *c, size_t delta)
{
    shm_t *s = &c->shm;
    size_t j = 0;
    for (size_t i = 0; i < s->nrefs; i++) {
        if (s->refs[i].off < delta)
            close(s->refs[i].fd);       /* its frame went unread (taken, a stray) */
        else
            s->refs[j++] = (shm_ref_t) { s->refs[i].off - delta, s->refs[i].fd };
    }
    s->nrefs = j;
    s->claim_at = s->claim_at > delta ? s->claim_at - delta : 0;
}

int shm_view(ipcnet_t *c, const wire_frame_t *f, const void **data, size_t *size)
{
    shm_t *s = &c->shm;
    size_t off = (size_t) (f->data - c->rx);
    if (f->size != WIRE_SHM_REF)
        return -EBADMSG;
    uint64_t len = (uint64_t) wire_get32(f->data) << 32 | wire_get32(f->data + 4);
    for (size_t i = 0; i < s->nrefs; i++) {
        if (s->refs[i].off != off)
            continue;
        int fd = s->refs[i].fd;
        s->refs[i] = s->refs[--s->nrefs];
        struct stat st;
        void *map = MAP_FAILED;
        if (len > 0 && len <= c->max_message && fstat(fd, &st) == 0 &&
            (uint64_t) st.st_size >= len)
            map = mmap(NULL, (size_t) len, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
        if (map == MAP_FAILED) {
            close(fd);
            return -EBADMSG;
        }
        shm_release(c);
        s->view = map;
        s->view_len = (size_t) len;
        s->view_fd = fd;
        *data = map;
        *size = (size_t) len;
        return 0;
    }
    return -EBADMSG;
}

void shm_release(ipcnet_t *c)
{
    shm_t *s = &c->shm;
    if (s->view) {
        munmap(s->view, s->view_len);
        close(s->view_fd);
    }
    s->view = NULL;
    s->view_len = 0;
    s->view_fd = -1;
}

void shm_free(ipcnet_t *c)
{
    shm_t *s = &c->shm;
    shm_release(c);
    while (s->nin > 0)
        close(s->in[--s->nin]);
    for (size_t i = 0; i < s->nrefs; i++)
        close(s->refs[i].fd);
    free(s->refs);
    s->refs = NULL;
    s->nrefs = s->refs_cap = 0;
}

void shm_lost(ipcnet_t *c)
{
    shm_t *s = &c->shm;
    while (s->nin > 0)
        close(s->in[--s->nin]);
    if (s->claim_at > c->rx_tail)
        s->claim_at = c->rx_tail;
    s->unread = 0;
    s->unread_bytes = 0;
}

int shm_wanted(const ipcnet_t *c, uint8_t type, size_t size)
{
    if (type != WIRE_SEND && type != WIRE_REQUEST && type != WIRE_REPLY && type != WIRE_PUBLISH)
        return 0;
    return c->shm.out_fd >= 0 || (c->shm.threshold && size >= c->shm.threshold && size > 0);
}

void shm_welcome(ipcnet_t *c, const wire_frame_t *f)
{
    c->shm.threshold = f->size >= 4 ? wire_get32(f->data) : 0;
}

/* A new sealed memfd holding a copy of data: the fd, or a negative errno. */
static int s_region(const void *data, size_t size)
{
    int fd = memfd_create("ipcnet", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -errno;
    for (size_t done = 0; done < size;) {
        ssize_t n = write(fd, (const uint8_t *) data + done, size - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int err = n < 0 ? -errno : -EIO;
            close(fd);
            return err;
        }
        done += (size_t) n;
    }
    if (fcntl(fd, F_ADD_SEALS, SHM_SEALS) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

/* Room for one more memfd of size bytes in the socket: not while as many
   as SHM_UNREAD_* are there that the node has not read (the kernel would
   take any number). Nothing tells when the node reads them: looks again
   each millisecond, reading meanwhile. 0, -EAGAIN, or an error. */
static int s_unread_room(ipcnet_t *c, size_t size, int dontwait)
{
    shm_t *s = &c->shm;
    while (s->unread >= SHM_UNREAD_MAX ||
           (s->unread > 0 && s->unread_bytes + size > SHM_UNREAD_BYTES)) {
        int outq = 0;
        if (ioctl(c->fd, SIOCOUTQ, &outq) == 0 && outq == 0) {
            s->unread = 0;
            s->unread_bytes = 0;
            break;
        }
        if (dontwait)
            return -EAGAIN;
        int rc = handle_wait(c, handle_now_ms() + 1, 0);
        if (rc < 0 && rc != -ETIMEDOUT)
            return rc;
    }
    return 0;
}

int shm_send(ipcnet_t *c, uint8_t type, uint16_t wflags, uint32_t seq, uint32_t aux,
             const char *s1, const void *data, size_t size, int flags)
{
    int dontwait = (flags & IPCNET_DONTWAIT) || (c->flags & IPCNET_NONBLOCK);
    int fd = c->shm.out_fd, own = fd < 0;
    if (own && (fd = s_region(data, size)) < 0)
        return fd;
    /* The fd rides on the write that begins with its frame: the queue
       goes first. */
    int rc = s_unread_room(c, size, dontwait);
    if (rc == 0 && c->tx_head < c->tx_tail) {
        rc = handle_write(c);
        if (rc == 0 && c->tx_head < c->tx_tail)
            rc = dontwait ? -EAGAIN : handle_drain(c, -1);
    }
    uint8_t frame[WIRE_HEAD_MAX + WIRE_SHM_REF];
    size_t hlen = wire_encode(frame, type, wflags | WIRE_F_SHM, seq, aux, s1, strlen(s1),
                              NULL, 0, WIRE_SHM_REF);
    wire_put32(frame + hlen, (uint32_t) ((uint64_t) size >> 32));
    wire_put32(frame + hlen + 4, (uint32_t) size);
    size_t total = hlen + WIRE_SHM_REF;
    while (rc == 0) {
        union {
            struct cmsghdr h;
            char room[CMSG_SPACE(sizeof (int))];
        } ctl;
        struct iovec iov = { frame, total };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl,
                             .msg_controllen = sizeof ctl };
        memset(&ctl, 0, sizeof ctl);        /* the padding after the fd goes out too */
        ctl.h = (struct cmsghdr) { .cmsg_len = CMSG_LEN(sizeof (int)), .cmsg_level = SOL_SOCKET,
                                   .cmsg_type = SCM_RIGHTS };
        memcpy(CMSG_DATA(&ctl.h), &fd, sizeof fd);
        ssize_t n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
        if (n > 0) {
            /* The fd went with the first byte; the rest waits in the queue. */
            if ((size_t) n < total)
                rc = handle_append(c, frame + n, total - (size_t) n);
            c->shm.unread++;
            c->shm.unread_bytes += size;
            break;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            rc = dontwait ? -EAGAIN : handle_wait(c, -1, 1);
        else
            rc = handle_fail(c, -ECONNRESET);
    }
    if (own)
        close(fd);
    return rc;
}

/* --- the zero-copy calls ---------------------------------------------------------- */

int ipcnet_buf_alloc(ipcnet_t *c, size_t size, ipcnet_buf_t *buf)
{
    if (!c || !buf || size == 0)
        return -EINVAL;
    *buf = (ipcnet_buf_t) { NULL, 0, -1, 0 };
    if (c->max_message && size > c->max_message)
        return -EMSGSIZE;
    int fd = memfd_create("ipcnet", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -errno;
    /* Its pages made at once: cheaper than a fault for each as it fills. */
    void *p = MAP_FAILED;
    if (ftruncate(fd, (off_t) size) == 0)
        p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (p == MAP_FAILED) {
        int err = -errno;
        close(fd);
        return err;
    }
    *buf = (ipcnet_buf_t) { p, size, fd, 0 };
    return 0;
}

void ipcnet_buf_release(ipcnet_buf_t *buf)
{
    if (!buf)
        return;
    if (buf->data)
        munmap(buf->data, buf->size);
    if (buf->fd >= 0)
        close(buf->fd);
    *buf = (ipcnet_buf_t) { NULL, 0, -1, 0 };
}

static int s_buf_post(ipcnet_t *c, uint8_t type, const char *to, ipcnet_buf_t *buf, int flags)
{
    if (!c || !buf || buf->fd < 0 || !buf->data || buf->size == 0) {
        ipcnet_buf_release(buf);
        return -EINVAL;
    }
    int rc = 0;
    int seals = fcntl(buf->fd, F_GET_SEALS);
    if (seals < 0 || (seals & SHM_SEALS) != SHM_SEALS) {
        /* F_SEAL_WRITE takes no shared mapping that may write: ours goes
           first, and comes back read-only once sealed. */
        munmap(buf->data, buf->size);
        buf->data = NULL;
        if (fcntl(buf->fd, F_ADD_SEALS, SHM_SEALS) < 0)
            rc = -errno;
        else if ((buf->data = mmap(NULL, buf->size, PROT_READ, MAP_SHARED, buf->fd, 0)) ==
                 MAP_FAILED) {
            buf->data = NULL;
            rc = -errno;
        }
    }
    if (rc == 0 && c->shm.threshold == 0)
        rc = handle_post(c, type, to, buf->data, buf->size, flags);    /* bytes, then */
    else if (rc == 0) {
        c->shm.out_fd = buf->fd;
        rc = handle_post(c, type, to, buf->data, buf->size, flags);
        c->shm.out_fd = -1;
    }
    ipcnet_buf_release(buf);
    return rc;
}

int ipcnet_buf_send(ipcnet_t *c, const char *dest, ipcnet_buf_t *buf, int flags)
{
    return s_buf_post(c, WIRE_SEND, dest, buf, flags);
}

int ipcnet_buf_publish(ipcnet_t *c, const char *topic, ipcnet_buf_t *buf, int flags)
{
    return s_buf_post(c, WIRE_PUBLISH, topic, buf, flags);
}

int ipcnet_msg_keep(ipcnet_t *c, const ipcnet_msg_t *msg, ipcnet_buf_t *buf)
{
    if (!c || !msg || !buf || msg->size == 0 || !msg->data)
        return -EINVAL;
    shm_t *s = &c->shm;
    if (s->view && msg->data == s->view && msg->size == s->view_len) {
        *buf = (ipcnet_buf_t) { s->view, s->view_len, s->view_fd, 1 };
        s->view = NULL;         /* the buffer's now: the next call leaves it */
        s->view_fd = -1;
        s->view_len = 0;
        return 0;
    }
    int rc = ipcnet_buf_alloc(c, msg->size, buf);
    if (rc == 0)
        memcpy(buf->data, msg->data, msg->size);
    return rc;
}
