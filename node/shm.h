/*  shm.h: payloads in sealed memfds on the node's side (issue 14).

    A client passes a large payload as a memfd with SCM_RIGHTS, on the
    sendmsg that begins with its frame (flagged WIRE_F_SHM). The node keeps
    the fds it reads in arrival order, gives each flagged frame the first,
    checks that it is a memfd sealed against every change and as large as
    the frame says, and maps it read-only into a buf_t (buf.h: fd >= 0),
    which then travels like any shared payload: by reference to local
    receivers (client.c passes the same fd on), copied straight from the
    mapping into ZeroMQ towards peers. A payload from a peer above the
    threshold is written once into a new sealed memfd for local receivers.
    docs/protocol-local.md section 4.5; limits in docs/limits.md. */
#ifndef IPCNET_SHM_H
#define IPCNET_SHM_H

#include "client.h"

#include <fcntl.h>

/* read() on c's socket that also takes the fds passed with the bytes.
   Returns bytes read, 0 at end of stream, -1 with errno; an fd that may
   not come (shm off, too many in flight, cut short) dooms c with an
   ERROR (then -1, errno ECONNABORTED). */
ssize_t shm_read(client_t *c, void *buf, size_t len);

/* Does f carry its payload in a memfd: flagged WIRE_F_SHM, of a type
   that may (SEND, REQUEST, REPLY, PUBLISH; elsewhere the bit is ignored)? */
static inline int shm_flagged(const wire_frame_t *f)
{
    return (f->flags & WIRE_F_SHM) && (f->type == WIRE_SEND || f->type == WIRE_REQUEST ||
                                       f->type == WIRE_REPLY || f->type == WIRE_PUBLISH);
}

/* f (at offset at of c's rx) is flagged WIRE_F_SHM: gives it its fd,
   checked and mapped. Returns 0 with f's data and size now the region's
   and *ret the mapping (borrowed: c->shm_cur, until the frame is done,
   shm_done); 1 if the frame was answered with an ERROR and is done (a
   bad fd, too large: the fd is closed); -1 if c was doomed (no fd came
   with the frame, or its payload is not WIRE_SHM_REF bytes). */
int shm_frame(client_t *c, wire_frame_t *f, size_t at, buf_t **ret);

/* The frame at rx_head is done: its mapping goes (queues keep theirs). */
void shm_done(client_t *c);

/* Every byte read was a whole frame, handled: an fd still waiting came
   with no frame to take it, a protocol violation. Returns -1 if c was
   doomed, else 0. */
int shm_check_stray(client_t *c);

/* Closes the fds c passed that no frame took, drops its mapping. */
void shm_client_free(client_t *c);

/* A sealed memfd holding a copy of size bytes of data, mapped read-only;
   NULL when that fails (the caller copies as before). */
buf_t *shm_of_bytes(const void *data, size_t size);

/* The seals every region passed must carry. */
#define SHM_SEALS (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

#endif
