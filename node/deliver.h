/*  deliver.h: SEND, REQUEST, REPLY and PUBLISH, from a local client or a
    peer, to their receivers: local queues, or peers.

    Each message gets one answer: queued for its receiver (OK when it asked
    for a confirmation), or an ERROR that says why not. A receiver whose
    queue is full pauses the sender (CLIENT_BLOCKED): the frame is handled
    again when the receiver drains, so nothing is dropped. A publication
    reaches every subscriber or, until all have room, none. */
#ifndef IPCNET_DELIVER_H
#define IPCNET_DELIVER_H

#include "client.h"
#include "directory.h"
#include "peer.h"
#include "policy.h"
#include "proto.h"
#include "request.h"
#include "wire.h"

typedef struct deliver deliver_t;

/* policy (borrowed) decides who may send, request, reply and publish
   what, and which subscriber sees which topic. */
deliver_t *deliver_new(clients_t *clients, directory_t *dir, requests_t *requests,
                       policy_t *policy, const node_config_t *config, node_stats_t *stats);
void deliver_destroy(deliver_t **self_p);

/* A frame of local client c (SEND or REQUEST; REPLY; PUBLISH) whose
   payload lives in pbuf. Return CLIENT_DONE, or CLIENT_BLOCKED when c was
   paused and the frame must be handled again. */
int deliver_send(deliver_t *self, client_t *c, const wire_frame_t *f, buf_t *pbuf);
int deliver_reply(deliver_t *self, client_t *c, const wire_frame_t *f, buf_t *pbuf);
int deliver_publish(deliver_t *self, client_t *c, const wire_frame_t *f, buf_t *pbuf);

/* A data message (MSG, REPLY, PUB) from peer, decoded as m from the
   ZeroMQ message zmsg (borrowed; a large payload is queued by reference
   to it). Returns CLIENT_DONE, or CLIENT_BLOCKED when a local queue is
   full: the local client then holds peer as parked, and the caller keeps
   the message and hands it again once that client drains. */
int deliver_from_peer(deliver_t *self, peer_t *peer, const proto_msg_t *m, zmq_msg_t *zmsg);

/* peer's answer to a message of one of our clients: ACK or FAIL. */
void deliver_peer_ack(deliver_t *self, peer_t *peer, const proto_msg_t *m);
void deliver_peer_fail(deliver_t *self, peer_t *peer, const proto_msg_t *m);

/* A message of local client (id) was not acknowledged by a lost peer. */
void deliver_fail_origin(deliver_t *self, uint64_t client, uint32_t cseq, uint8_t what, int err);

#endif
