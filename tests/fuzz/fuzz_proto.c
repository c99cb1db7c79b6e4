/*  fuzz_proto.c: a libFuzzer target for the node-to-node codec.

    The input is one ZeroMQ message from a peer, decoded by proto_decode()
    from a heap copy of exactly its length, so that ASan sees a read past
    its end. What decodes must be sound: every view inside the message and
    in the order of its fields, lists walked with proto_list_next() to their
    exact end with every item valid for its kind (a PEERS item's key 32
    bytes whose first 16 are its id in lowercase hex), every address and
    destination well-formed (checked here again from the spec, not with the
    codec's own helper), the sender of a MSG, REPLY or PUB (uid, then a
    user of 0 to 32 bytes 0x21..0x7E) right after its from and no sender
    in any other type, and the codec's encoder writing the decoded
    message back to the very same bytes, of the size proto_size() says. A BATCH is walked with
    proto_batch_next() as the node does, and each item is checked in the same
    way as a message of its own (from a heap copy of exactly its length). A
    message of another version must say so and decode nothing else. Any
    breach aborts, which libFuzzer reports. */

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "wire.h"

#define CHECK(cond)  do { if (!(cond)) abort (); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Is the view of n bytes at p inside the len bytes at buf? */
static int s_inside(const uint8_t *buf, size_t len, const void *p, size_t n)
{
    const uint8_t *q = p;
    return q && q >= buf && q <= buf + len && n <= (size_t) (buf + len - q);
}

/* A client id: ':' and 1 to 19 decimal digits, not all zero
   (docs/protocol-local.md section 7.3). */
static int s_is_client_id(const char *s, size_t len)
{
    if (len < 2 || len > 20 || s[0] != ':')
        return 0;
    int nonzero = 0;
    for (size_t i = 1; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        nonzero |= s[i] != '0';
    }
    return nonzero;
}

/* A unique address, ":N@node". */
static int s_is_address(const char *s, size_t len)
{
    const char *at = memchr(s, '@', len);
    if (!at)
        return 0;
    size_t idlen = (size_t) (at - s);
    return s_is_client_id(s, idlen) && wire_check_name(at + 1, len - idlen - 1) == 0;
}

/* A destination: "name", "name@node", ":N" or ":N@node". */
static int s_is_dest(const char *s, size_t len)
{
    const char *at = memchr(s, '@', len);
    size_t tlen = at ? (size_t) (at - s) : len;
    if (at && wire_check_name(at + 1, len - tlen - 1) < 0)
        return 0;
    return len <= 255 && (s_is_client_id(s, tlen) || wire_check_name(s, tlen) == 0);
}

/* Is key (32 bytes) the key of id: its first 16 bytes in lowercase hex?
   Written again from the spec, not with proto_key_id(). */
static int s_is_key_of(const uint8_t *key, const char *id)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < PROTO_ID_LEN / 2; i++)
        if (id[2 * i] != hex[key[i] / 16] || id[2 * i + 1] != hex[key[i] % 16])
            return 0;
    return 1;
}

/* The sender of a MSG, REPLY or PUB: its uid at at, then its user, a
   str8 of 0 to 32 bytes 0x21..0x7E (protocol-node.md 6.6). */
static void s_sender(const uint8_t *buf, size_t len, const proto_msg_t *m, const uint8_t *at)
{
    CHECK(s_inside(buf, len, at, 5));
    CHECK(m->uid == wire_get32(at) && m->userlen == at[4] && m->userlen <= WIRE_USER_MAX);
    CHECK(m->user == (const char *) at + 5 && s_inside(buf, len, m->user, m->userlen));
    for (size_t i = 0; i < m->userlen; i++)
        CHECK((uint8_t) m->user[i] >= 0x21 && (uint8_t) m->user[i] <= 0x7e);
}

/* Walks a decoded list as the node does, checking every item. */
static void s_list(const uint8_t *buf, size_t len, const proto_msg_t *m)
{
    CHECK(m->count >= 1 && m->count <= PROTO_LIST_MAX);
    CHECK(m->list == buf + PROTO_HEAD + 2 && m->listlen == len - PROTO_HEAD - 2);
    const uint8_t *at = m->list, *end = m->list + m->listlen;
    int fields = m->type == P_PEERS ? 4 : 1;
    for (unsigned i = 0; i < m->count; i++) {
        const char *id = NULL;
        for (int f = 0; f < fields; f++) {
            const char *s;
            size_t n;
            CHECK(at < end);
            proto_list_next(&at, &s, &n);
            CHECK(at <= end && s + n == (const char *) at);
            CHECK(s_inside(buf, len, s, n));
            if (m->type == P_PEERS && f == 0) {
                CHECK(proto_check_id(s, n) == 0);
                id = s;
            } else if (m->type == P_PEERS && f == 2)
                CHECK(n >= 7 && memcmp(s, "tcp://", 6) == 0 && !memchr(s, ' ', n));
            else if (m->type == P_PEERS && f == 3)
                CHECK(n == PROTO_KEY_LEN && id && s_is_key_of((const uint8_t *) s, id));
            else if (m->type == P_SUBS_ADD || m->type == P_SUBS_DEL)
                CHECK(wire_check_pattern(s, n) == 0);
            else
                CHECK(wire_check_name(s, n) == 0);
        }
    }
    CHECK(at == end);
}

static void s_check(const uint8_t *data, size_t size, int in_batch);

/* Walks a decoded BATCH as the node does: count items (at least 2), each
   a len:u32 then that many bytes, at least a head, signature right, type
   MSG, REPLY or PUB, the last ending the message; then checks each item
   as a message of its own. */
static void s_batch(const uint8_t *buf, size_t len, const proto_msg_t *m)
{
    CHECK(m->count >= 2);
    CHECK(m->list == buf + PROTO_HEAD + 2 && m->listlen == len - PROTO_HEAD - 2);
    CHECK(m->listlen <= PROTO_BATCH_MAX);
    const uint8_t *at = m->list, *end = m->list + m->listlen;
    for (unsigned i = 0; i < m->count; i++) {
        const uint8_t *item, *was = at;
        size_t n;
        CHECK(end - at >= 4);
        proto_batch_next(&at, &item, &n);
        CHECK(n == wire_get32(was) && item == was + 4 && n >= PROTO_HEAD);
        CHECK(s_inside(buf, len, item, n) && item + n == at);
        CHECK(item[0] == PROTO_SIG);
        CHECK(item[2] == P_MSG || item[2] == P_REPLY || item[2] == P_PUB);
        s_check(item, n, 1);
    }
    CHECK(at == end);
}

/* Checks a message that decoded (len bytes at buf). */
static void s_sound(const uint8_t *buf, size_t len, const proto_msg_t *m)
{
    CHECK(len >= PROTO_HEAD && buf[0] == PROTO_SIG);
    CHECK(m->version == PROTO_VERSION && m->type == buf[2] && m->flags == buf[3]);
    CHECK(m->seq == wire_get32(buf + 4));
    switch (m->type) {
    case P_HELLO:
    case P_HELLO_ACK:
        CHECK(m->id == (const char *) buf + 9 && proto_check_id(m->id, m->idlen) == 0);
        CHECK(m->name == m->id + m->idlen + 1 && s_inside(buf, len, m->name, m->namelen));
        CHECK(wire_check_name(m->name, m->namelen) == 0);
        if (m->type == P_HELLO) {
            /* The cluster follows the name and is a name too; then port,
               incarnation and heartbeat, 14 bytes, end the message. */
            CHECK(m->cluster == m->name + m->namelen + 1);
            CHECK(s_inside(buf, len, m->cluster, m->clusterlen));
            CHECK(wire_check_name(m->cluster, m->clusterlen) == 0);
            CHECK(m->cluster + m->clusterlen + 14 == (const char *) buf + len);
            CHECK(m->port != 0 && m->heartbeat != 0);
        } else
            CHECK(m->clusterlen == 0 && m->name + m->namelen + 8 == (const char *) buf + len);
        break;
    case P_NAMES_ADD: case P_NAMES_DEL: case P_SUBS_ADD: case P_SUBS_DEL: case P_PEERS:
        s_list(buf, len, m);
        break;
    case P_MSG:
        CHECK(m->kind == P_KIND_SEND || m->kind == P_KIND_REQUEST);
        CHECK(m->cseq == wire_get32(buf + 9) && m->timeout == wire_get32(buf + 13));
        /* kind cseq timeout from uid user to payload */
        CHECK(m->from == (const char *) buf + 18);
        s_sender(buf, len, m, (const uint8_t *) m->from + m->fromlen);
        CHECK(m->to == m->user + m->userlen + 1);
        CHECK(s_is_address(m->from, m->fromlen) && s_is_dest(m->to, m->tolen));
        CHECK(m->data == (const uint8_t *) m->to + m->tolen);
        break;
    case P_REPLY:
        CHECK(m->cseq == wire_get32(buf + 8));
        /* cseq to from uid user payload */
        CHECK(m->to == (const char *) buf + 13 && m->from == m->to + m->tolen + 1);
        CHECK(s_is_address(m->to, m->tolen) && s_is_address(m->from, m->fromlen));
        s_sender(buf, len, m, (const uint8_t *) m->from + m->fromlen);
        CHECK(m->data == (const uint8_t *) m->user + m->userlen);
        break;
    case P_PUB:
        CHECK(m->cseq == wire_get32(buf + 8));
        CHECK(m->to == (const char *) buf + 13 && wire_check_name(m->to, m->tolen) == 0);
        CHECK(m->from == m->to + m->tolen + 1 && s_is_address(m->from, m->fromlen));
        s_sender(buf, len, m, (const uint8_t *) m->from + m->fromlen);
        CHECK(m->data == (const uint8_t *) m->user + m->userlen);
        break;
    case P_ACK:
        CHECK(m->cseq == wire_get32(buf + 8));
        CHECK(m->to == (const char *) buf + 13 && s_is_address(m->to, m->tolen));
        CHECK(m->to + m->tolen == (const char *) buf + len);
        break;
    case P_FAIL:
        CHECK(m->error >= 1 && m->error <= 4095 && m->error == wire_get32(buf + 8));
        CHECK(m->cseq == wire_get32(buf + 12) && m->kind == buf[16]);
        CHECK(m->to == (const char *) buf + 18);
        /* An empty to only in the answers refusing a HELLO: of another
           version (EPROTO), of another cluster (EACCES), or with no room (EUSERS). */
        CHECK(m->tolen ? s_is_address(m->to, m->tolen)
                       : m->error == EPROTO || m->error == EACCES || m->error == EUSERS);
        CHECK(m->name == m->to + m->tolen + 1 && m->text == m->name + m->namelen + 1);
        CHECK(m->text + m->textlen == (const char *) buf + len);
        break;
    case P_PING: case P_PONG: case P_CREDIT:
        CHECK(len == PROTO_HEAD + 8);
        break;
    case P_BYE:
        CHECK(len == PROTO_HEAD);
        break;
    case P_BATCH:
        s_batch(buf, len, m);
        break;
    case P_KEY:
        /* Exactly a head, the nonce and the 32 bytes of the key. */
        CHECK(len == PROTO_KEY_MSG && m->key == buf + PROTO_HEAD + 8);
        CHECK(s_inside(buf, len, m->key, PROTO_KEY_LEN));
        CHECK(m->stamp == ((uint64_t) wire_get32(buf + PROTO_HEAD) << 32 |
                           wire_get32(buf + PROTO_HEAD + 4)));
        break;
    case P_STORE_RECORDS: {
        /* Records end to end inside the message, each key a name, no
           value in a deletion; every byte of them touched. */
        CHECK(m->list == buf + PROTO_HEAD + 2 && m->count >= 1);
        const uint8_t *at = m->list;
        volatile unsigned touch = 0;
        for (unsigned i = 0; i < m->count; i++) {
            proto_record_t r;
            proto_record_next(&at, &r);
            CHECK(s_inside(buf, len, r.key, r.keylen) && wire_check_name(r.key, r.keylen) == 0);
            CHECK(s_inside(buf, len, r.value, r.size));
            CHECK(!(r.flags & PROTO_STORE_DELETED) || r.size == 0);
            CHECK(!(r.flags & ~(PROTO_STORE_DELETED | PROTO_STORE_EPHEMERAL)));
            for (size_t k = 0; k < r.size; k++)
                touch += r.value[k];
        }
        (void) touch;
        CHECK(at == buf + len && m->list + m->listlen == buf + len);
        break;
    }
    case P_STORE_DIGEST:
        CHECK(m->count == PROTO_STORE_BUCKETS && len == PROTO_HEAD + 2 + 12 * PROTO_STORE_BUCKETS);
        CHECK(m->list == buf + PROTO_HEAD + 2 && m->listlen == 12 * PROTO_STORE_BUCKETS);
        break;
    default:
        abort();
    }
    if (m->type == P_MSG || m->type == P_REPLY || m->type == P_PUB) {
        CHECK(s_inside(buf, len, m->to, m->tolen) && s_inside(buf, len, m->from, m->fromlen));
        CHECK(s_inside(buf, len, m->user, m->userlen));
        CHECK(s_inside(buf, len, m->data, m->size) && m->data + m->size == buf + len);
    } else
        CHECK(m->uid == 0 && m->user == NULL && m->userlen == 0);
    /* Touch every byte of the strings, so ASan checks them too. */
    volatile unsigned sum = 0;
    for (size_t i = 0; i < m->fromlen; i++)
        sum += (uint8_t) m->from[i];
    for (size_t i = 0; i < m->tolen; i++)
        sum += (uint8_t) m->to[i];
    for (size_t i = 0; i < m->namelen; i++)
        sum += (uint8_t) m->name[i];
    for (size_t i = 0; i < m->clusterlen; i++)
        sum += (uint8_t) m->cluster[i];
    for (size_t i = 0; i < m->textlen; i++)
        sum += (uint8_t) m->text[i];
    for (size_t i = 0; i < m->userlen; i++)
        sum += (uint8_t) m->user[i];
    if (m->type == P_KEY)
        for (size_t i = 0; i < PROTO_KEY_LEN; i++)
            sum += m->key[i];
    (void) sum;

    proto_buf_t b = { 0 };
    CHECK(proto_size(m) == len);
    proto_encode(&b, m);
    CHECK(!b.failed && b.len == len && memcmp(b.data, buf, len) == 0);
    proto_free(&b);
}

/* Decodes a heap copy of exactly size bytes and checks the answer; an
   item of a BATCH (in_batch) that decodes is a MSG, REPLY or PUB. */
static void s_check(const uint8_t *data, size_t size, int in_batch)
{
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return;
    memcpy(buf, data, size);

    proto_msg_t m, before;
    memset(&m, 0x5a, sizeof m);
    before = m;
    int rc = proto_decode(buf, size, &m);
    if (rc == 0) {
        s_sound(buf, size, &m);
        if (in_batch)
            CHECK(m.type == P_MSG || m.type == P_REPLY || m.type == P_PUB);
    }
    else if (rc == -EPROTO) {
        CHECK(size >= PROTO_HEAD && buf[0] == PROTO_SIG && buf[1] != PROTO_VERSION);
        CHECK(m.version == buf[1] && m.type == buf[2] && m.flags == buf[3]);
        CHECK(m.seq == wire_get32(buf + 4));
        CHECK(m.id == NULL && m.cluster == NULL && m.list == NULL && m.data == NULL &&
              m.key == NULL && m.size == 0 && m.user == NULL && m.uid == 0);
    } else {
        CHECK(rc == -EBADMSG);
        CHECK(memcmp(&m, &before, sizeof m) == 0);
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s_check(data, size, 0);
    return 0;
}
