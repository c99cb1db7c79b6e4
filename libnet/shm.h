/*  shm.h: libipcnet's side of payloads in sealed memfds (issue 14;
    docs/protocol-local.md section 4.5): the fds read with the node's
    bytes, matched in order to the frames flagged WIRE_F_SHM, mapped
    read-only when handed out; regions made and passed for large sends;
    the zero-copy calls (ipcnet_buf_*). Not installed. */
#ifndef IPCNET_SHM_H
#define IPCNET_SHM_H

#include "wire.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SHM_IN_MAX 64           /* fds read and not yet matched to a frame */
#define SHM_UNREAD_MAX 16       /* memfds written that the node may not have read, */
#define SHM_UNREAD_BYTES (64u << 20)    /* and their bytes, before a send waits */

typedef struct {
    size_t off;                 /* the offset in rx of its frame's payload */
    int fd;
} shm_ref_t;

typedef struct {
    size_t threshold;           /* from WELCOME: payloads this large go as memfds; 0: none */
    int in[SHM_IN_MAX];         /* read, not yet matched: [0, nin) */
    unsigned nin;
    shm_ref_t *refs;            /* matched to frames not handed out yet */
    size_t nrefs, refs_cap;
    size_t claim_at;            /* rx offset up to which frames are matched */
    void *view;                 /* the payload handed out last, mapped, or NULL */
    size_t view_len;
    int view_fd;
    int out_fd;                 /* ipcnet_buf_send(): the region to pass, or -1 */
    unsigned unread;            /* memfds written since the socket was seen read out */
    size_t unread_bytes;
} shm_t;

struct ipcnet;

void shm_init(shm_t *s);
/* recv() that keeps the fds passed with the bytes. -1 with errno
   EBADMSG when the node passed more than the rules let it. */
ssize_t shm_recv(struct ipcnet *c, void *buf, size_t len);
/* Matches the fds read to the frames complete in rx. 0, or -EBADMSG
   (a flagged frame with no fd, or an fd with no frame). */
int shm_claim(struct ipcnet *c);
/* rx moved down by delta bytes (what was before is gone). */
void shm_shift(struct ipcnet *c, size_t delta);
/* f (flagged WIRE_F_SHM, a delivery) is handed out: its region mapped
   read-only as *data, *size, the view until shm_release. 0 or -EBADMSG. */
int shm_view(struct ipcnet *c, const wire_frame_t *f, const void **data, size_t *size);
/* The handed-out view goes (its mapping and fd), unless kept. */
void shm_release(struct ipcnet *c);
void shm_free(struct ipcnet *c);
/* The connection was lost (IPCNET_RECONNECT) and rx cut to the complete
   frames: fds matched to none are closed; the next socket starts anew. */
void shm_lost(struct ipcnet *c);
/* Does a payload of size bytes of this type go as a memfd? */
int shm_wanted(const struct ipcnet *c, uint8_t type, size_t size);
/* Sends the frame with its payload in a sealed memfd (a new one holding
   a copy of data, or out_fd). flags: IPCNET_DONTWAIT. */
int shm_send(struct ipcnet *c, uint8_t type, uint16_t wflags, uint32_t seq, uint32_t aux,
             const char *s1, const void *data, size_t size, int flags);
/* WELCOME: the node's threshold. */
void shm_welcome(struct ipcnet *c, const wire_frame_t *f);

#endif
