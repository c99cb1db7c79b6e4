/*  proto_reencode.h: for tests of the node-to-node codec. */
#ifndef IPCNET_PROTO_REENCODE_H
#define IPCNET_PROTO_REENCODE_H

#include "proto.h"

/* Encodes a decoded message again, field by field as docs/protocol-node.md
   section 6 lays them out: what proto_decode() took must come out byte
   for byte. Returns 0, or -1 for a type it does not know. */
int proto_reencode(proto_buf_t *b, const proto_msg_t *m);

#endif
