/*  proto_reencode.c: a decoded node-to-node message encoded again, for
    test_proto and fuzz_proto to check that decoding loses nothing. */

#include "proto_reencode.h"

int proto_reencode(proto_buf_t *b, const proto_msg_t *m)
{
    proto_begin(b, m->type, m->flags, m->seq);
    switch (m->type) {
    case P_HELLO:
    case P_HELLO_ACK:
        proto_str(b, m->id, m->idlen);
        proto_str(b, m->name, m->namelen);
        if (m->type == P_HELLO) {
            proto_str(b, m->cluster, m->clusterlen);
            proto_u16(b, m->port);
        }
        proto_u64(b, m->incarnation);
        if (m->type == P_HELLO)
            proto_u32(b, m->heartbeat);
        break;
    case P_NAMES_ADD: case P_NAMES_DEL: case P_SUBS_ADD: case P_SUBS_DEL: case P_PEERS:
        proto_u16(b, m->count);
        proto_bytes(b, m->list, m->listlen);
        break;
    case P_MSG:
        proto_u8(b, m->kind);
        proto_u32(b, m->cseq);
        proto_u32(b, m->timeout);
        proto_str(b, m->from, m->fromlen);
        proto_str(b, m->to, m->tolen);
        proto_bytes(b, m->data, m->size);
        break;
    case P_REPLY:
        proto_u32(b, m->cseq);
        proto_str(b, m->to, m->tolen);
        proto_str(b, m->from, m->fromlen);
        proto_bytes(b, m->data, m->size);
        break;
    case P_PUB:
        proto_u32(b, m->cseq);
        proto_str(b, m->to, m->tolen);
        proto_str(b, m->from, m->fromlen);
        proto_bytes(b, m->data, m->size);
        break;
    case P_ACK:
        proto_u32(b, m->cseq);
        proto_str(b, m->to, m->tolen);
        break;
    case P_FAIL:
        proto_u32(b, m->error);
        proto_u32(b, m->cseq);
        proto_u8(b, m->kind);
        proto_str(b, m->to, m->tolen);
        proto_str(b, m->name, m->namelen);
        proto_str(b, m->text, m->textlen);
        break;
    case P_PING:
    case P_PONG:
        proto_u64(b, m->stamp);
        break;
    case P_BYE:
        break;
    case P_CREDIT:
        proto_u32(b, m->ack);
        proto_u32(b, m->credit);
        break;
    case P_BATCH:
        proto_u16(b, m->count);
        proto_bytes(b, m->list, m->listlen);
        break;
    case P_KEY:
        proto_u64(b, m->stamp);
        proto_bytes(b, m->key, PROTO_KEY_LEN);
        break;
    default:
        return -1;
    }
    return 0;
}
