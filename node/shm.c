/*  shm.c: payloads in sealed memfds on the node's side: fds read with a
    client's bytes, matched to its frames, checked, mapped; and regions made
    for payloads from peers. */

#include "shm.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* Room in one recvmsg for more fds than a sender may pass in one (one),
   so that a client passing many is seen, not cut short unseen. */
#define SHM_CMSG_FDS 8

/* A violation of the fd rules: say why, then disconnect. */
static void s_violation(client_t *c, int err, const char *why)
{
    c->clients->stats->violations++;
    client_send_control(c, WIRE_ERROR, 0, 0, (uint32_t) err, NULL, 0, why, strlen(why), NULL, 0);
    client_doom(c, why);
}

static void s_close_fds(const int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        close(fds[i]);
}

ssize_t shm_read(client_t *c, void *buf, size_t len)
{
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
    int fds[SHM_CMSG_FDS];
    size_t nfds = 0;
    for (struct cmsghdr *h = CMSG_FIRSTHDR(&mh); h; h = CMSG_NXTHDR(&mh, h)) {
        if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (h->cmsg_len - CMSG_LEN(0)) / sizeof (int);
        for (size_t i = 0; i < k && nfds < SHM_CMSG_FDS; i++)
            memcpy(&fds[nfds++], CMSG_DATA(h) + i * sizeof (int), sizeof (int));
    }
    if (nfds == 0 && !(mh.msg_flags & MSG_CTRUNC))
        return n;
    const node_config_t *cfg = c->clients->cfg;
    const char *why = NULL;
    int err = EBADMSG;
    if (mh.msg_flags & MSG_CTRUNC)
        why = "more file descriptors in one write than allowed (one)";
    else if (cfg->shm_threshold == 0)
        why = "file descriptor passed to a node that takes none (--shm-threshold 0)";
    else if (nfds > 1)
        why = "more file descriptors in one write than allowed (one)";
    else if (c->shm_nin + nfds > cfg->shm_max_fds) {
        why = "too many file descriptors in flight (--shm-max-fds)";
        err = ENOBUFS;
    } else if (!c->shm_in && !(c->shm_in = malloc(cfg->shm_max_fds * sizeof (int)))) {
        why = "out of memory for file descriptors";
        err = ENOMEM;
    }
    if (why) {
        s_close_fds(fds, nfds);
        s_violation(c, err, why);
        errno = ECONNABORTED;
        return -1;
    }
    memcpy(c->shm_in + c->shm_nin, fds, nfds * sizeof (int));
    c->shm_nin += (unsigned) nfds;
    return n;
}

/* Is fd a memfd (or another shmem file) sealed against every change, of
   at least size bytes? 0 or why not. */
static const char *s_check(int fd, uint64_t size)
{
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
        return "payload fd is not a memfd (not a regular file)";
    int seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0)
        return "payload fd is not a memfd (it takes no seals)";
    if ((seals & SHM_SEALS) != SHM_SEALS)
        return "payload memfd is not sealed (write, shrink, grow and seal)";
    if ((uint64_t) st.st_size < size)
        return "payload memfd is smaller than the frame says";
    return NULL;
}

int shm_frame(client_t *c, wire_frame_t *f, size_t at, buf_t **ret)
{
    if (c->shm_cur && c->shm_cur_at == at) {
        /* Handled again after a pause: the same mapping. */
        f->data = c->shm_cur->data;
        f->size = c->shm_cur->cap;
        f->flags &= (uint16_t) ~WIRE_F_SHM;
        *ret = c->shm_cur;
        return 0;
    }
    shm_done(c);
    if (f->size != WIRE_SHM_REF) {
        s_violation(c, EBADMSG, "frame flagged SHM whose payload is not a size");
        return -1;
    }
    if (c->shm_nin == 0) {
        s_violation(c, EBADMSG, "frame flagged SHM without its file descriptor");
        return -1;
    }
    int fd = c->shm_in[0];
    memmove(c->shm_in, c->shm_in + 1, --c->shm_nin * sizeof (int));
    uint64_t size = (uint64_t) wire_get32(f->data) << 32 | wire_get32(f->data + 4);
    const node_config_t *cfg = c->clients->cfg;
    const char *why = NULL;
    int err = EBADMSG;
    if (size > cfg->max_message) {
        why = "message too large";
        err = EMSGSIZE;
    } else if (size == 0)
        why = "empty memfd payload";
    else
        why = s_check(fd, size);
    void *map = why ? MAP_FAILED : mmap(NULL, (size_t) size, PROT_READ, MAP_SHARED, fd, 0);
    buf_t *b = map != MAP_FAILED ? malloc(sizeof *b) : NULL;
    if (!why && !b) {
        why = "cannot map the payload memfd";
        err = ENOMEM;
    }
    if (why) {
        if (map != MAP_FAILED)
            munmap(map, (size_t) size);
        close(fd);
        c->clients->stats->errors++;
        c->clients->stats->shm_refused++;
        f->flags &= (uint16_t) ~WIRE_F_SHM;
        client_send_error(c, f, err, f->s1, f->s1len, why);
        return 1;
    }
    *b = (buf_t) { .refs = 1, .cap = (size_t) size, .data = map, .zmsg = NULL, .fd = fd };
    c->clients->stats->shm_taken++;
    c->shm_cur = b;
    c->shm_cur_at = at;
    f->data = map;
    f->size = (size_t) size;
    f->flags &= (uint16_t) ~WIRE_F_SHM;
    *ret = b;
    return 0;
}

void shm_done(client_t *c)
{
    buf_unref(&c->shm_cur);
}

int shm_check_stray(client_t *c)
{
    if (c->shm_nin == 0 || c->doomed)
        return 0;
    s_close_fds(c->shm_in, c->shm_nin);
    c->shm_nin = 0;
    s_violation(c, EBADMSG, "file descriptor passed with a frame not flagged SHM");
    return -1;
}

void shm_client_free(client_t *c)
{
    if (c->shm_in)
        s_close_fds(c->shm_in, c->shm_nin);
    free(c->shm_in);
    c->shm_in = NULL;
    c->shm_nin = 0;
    shm_done(c);
}

buf_t *shm_of_bytes(const void *data, size_t size)
{
    int fd = memfd_create("ipcnet", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return NULL;
    void *map = MAP_FAILED;
    buf_t *b = NULL;
    if (ftruncate(fd, (off_t) size) == 0 &&
        (map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) != MAP_FAILED) {
        memcpy(map, data, size);
        /* F_SEAL_WRITE needs no writable mapping: map it again, read-only. */
        munmap(map, size);
        map = MAP_FAILED;
        if (fcntl(fd, F_ADD_SEALS, SHM_SEALS) == 0)
            map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    }
    if (map != MAP_FAILED && (b = malloc(sizeof *b)))
        *b = (buf_t) { .refs = 1, .cap = size, .data = map, .zmsg = NULL, .fd = fd };
    if (!b) {
        if (map != MAP_FAILED)
            munmap(map, size);
        close(fd);
    }
    return b;
}
