/*  test_proto.c: unit tests of the node-to-node codec (node/proto.c).

    The examples of docs/protocol-node.md (section 14) are replayed byte for
    byte, and read back from the document itself so that the two cannot
    drift apart; so is the table of shortest messages (section 6). Malformed
    input is made by cutting good messages at every length, flipping every
    byte and scrambling at random. Each decode works on a heap copy of
    exactly the bytes under test, so that valgrind or ASan see any read past
    the end of a message, and everything that decodes must lie inside its
    buffer, carry well-formed addresses where the spec asks for them, and
    encode back to the very same bytes. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto.h"
#include "wire.h"
#include "../common/hexdump.h"

#define SPEC "docs/protocol-node.md"

#define ID_A "5f0c3e9a7b214d68a1e2c3b4d5f60718"     /* alpha, as in the spec */
#define ID_B "c2d4e6f8091a2b3c4d5e6f708192a3b4"     /* beta */
#define N_TYPES 18                                  /* P_HELLO .. P_KEY */
#define N_OF(a) (sizeof (a) / sizeof (a)[0])

/* --- the spec's examples (docs/protocol-node.md, section 14) ------------- */

/* 14.1 HELLO from alpha: seq 1, cluster "ipcnet", port 5680, heartbeat
   500 ms. */
static const uint8_t s_ex_hello[] = {
    0xa9, 0x03, 0x01, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x20, '5', 'f', '0', 'c', '3', 'e', '9', 'a', '7', 'b', '2', '1', '4', 'd', '6', '8',
    'a', '1', 'e', '2', 'c', '3', 'b', '4', 'd', '5', 'f', '6', '0', '7', '1', '8',
    0x05, 'a', 'l', 'p', 'h', 'a',
    0x06, 'i', 'p', 'c', 'n', 'e', 't',
    0x16, 0x30,
    0x8e, 0x3b, 0x1f, 0x2a, 0x6c, 0x4d, 0x5e, 0x07,
    0x00, 0x00, 0x01, 0xf4,
};

/* 14.2 HELLO_ACK from beta, seq 0. */
static const uint8_t s_ex_hello_ack[] = {
    0xa9, 0x03, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x20, 'c', '2', 'd', '4', 'e', '6', 'f', '8', '0', '9', '1', 'a', '2', 'b', '3', 'c',
    '4', 'd', '5', 'e', '6', 'f', '7', '0', '8', '1', '9', '2', 'a', '3', 'b', '4',
    0x04, 'b', 'e', 't', 'a',
    0x13, 0x57, 0x9b, 0xdf, 0x24, 0x68, 0xac, 0xe0,
};

/* 14.3 NAMES_ADD from alpha, seq 2: "printer", "sensors.temp". */
static const uint8_t s_ex_names[] = {
    0xa9, 0x03, 0x03, 0x00, 0x00, 0x00, 0x00, 0x02,
    0x00, 0x02,
    0x07, 'p', 'r', 'i', 'n', 't', 'e', 'r',
    0x0c, 's', 'e', 'n', 's', 'o', 'r', 's', '.', 't', 'e', 'm', 'p',
};

/* 14.4 MSG, SEND with CONFIRM, seq 5: cseq 7 ":3@alpha" (uid 1000, user
   "alice") -> "printer", "hello". */
static const uint8_t s_ex_msg[] = {
    0xa9, 0x03, 0x08, 0x01, 0x00, 0x00, 0x00, 0x05,
    0x01, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00,
    0x08, ':', '3', '@', 'a', 'l', 'p', 'h', 'a',
    0x00, 0x00, 0x03, 0xe8,
    0x05, 'a', 'l', 'i', 'c', 'e',
    0x07, 'p', 'r', 'i', 'n', 't', 'e', 'r',
    'h', 'e', 'l', 'l', 'o',
};

/* 14.5 FAIL ENOENT for 14.4, on beta's DEALER with seq 4. */
static const uint8_t s_ex_fail[] = {
    0xa9, 0x03, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x04,
    0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x07, 0x08,
    0x08, ':', '3', '@', 'a', 'l', 'p', 'h', 'a',
    0x07, 'p', 'r', 'i', 'n', 't', 'e', 'r',
    0x0c, 'n', 'o', ' ', 's', 'u', 'c', 'h', ' ', 'n', 'a', 'm', 'e',
};

/* 14.6 CREDIT on beta's DEALER, seq 5: ack 5, 49 bytes. */
static const uint8_t s_ex_credit[] = {
    0xa9, 0x03, 0x10, 0x00, 0x00, 0x00, 0x00, 0x05,
    0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x31,
};

/* 14.7 PUB on beta's DEALER, seq 6: cseq 12 "sensors.temp" from ":2@beta"
   (uid 1001, user "bob"), "21.5". */
static const uint8_t s_ex_pub[] = {
    0xa9, 0x03, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x06,
    0x00, 0x00, 0x00, 0x0c,
    0x0c, 's', 'e', 'n', 's', 'o', 'r', 's', '.', 't', 'e', 'm', 'p',
    0x07, ':', '2', '@', 'b', 'e', 't', 'a',
    0x00, 0x00, 0x03, 0xe9,
    0x03, 'b', 'o', 'b',
    '2', '1', '.', '5',
};

/* 14.8 FAIL EACCES on beta's ROUTER: the refusal of a HELLO of another
   cluster; seq, cseq and what 0, to and name empty. */
static const uint8_t s_ex_refuse[] = {
    0xa9, 0x03, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x0d, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00,
    0x00,
    0x0f, 'a', 'n', 'o', 't', 'h', 'e', 'r', ' ', 'c', 'l', 'u', 's', 't', 'e', 'r',
};

/* 14.9 BATCH on beta's DEALER, seq 0: two SENDs of ":2@beta" (uid 1001,
   user "bob") to "printer@alpha", seqs 7 and 8, cseqs 13 and 14, "page 1"
   and "page 2". */
static const uint8_t s_ex_batch[] = {
    0xa9, 0x03, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x02,
    0x00, 0x00, 0x00, 0x35,
    0xa9, 0x03, 0x08, 0x00, 0x00, 0x00, 0x00, 0x07,
    0x01, 0x00, 0x00, 0x00, 0x0d, 0x00, 0x00, 0x00, 0x00,
    0x07, ':', '2', '@', 'b', 'e', 't', 'a',
    0x00, 0x00, 0x03, 0xe9,
    0x03, 'b', 'o', 'b',
    0x0d, 'p', 'r', 'i', 'n', 't', 'e', 'r', '@', 'a', 'l', 'p', 'h', 'a',
    'p', 'a', 'g', 'e', ' ', '1',
    0x00, 0x00, 0x00, 0x35,
    0xa9, 0x03, 0x08, 0x00, 0x00, 0x00, 0x00, 0x08,
    0x01, 0x00, 0x00, 0x00, 0x0e, 0x00, 0x00, 0x00, 0x00,
    0x07, ':', '2', '@', 'b', 'e', 't', 'a',
    0x00, 0x00, 0x03, 0xe9,
    0x03, 'b', 'o', 'b',
    0x0d, 'p', 'r', 'i', 'n', 't', 'e', 'r', '@', 'a', 'l', 'p', 'h', 'a',
    'p', 'a', 'g', 'e', ' ', '2',
};

/* 14.10 KEY answer from beta, seq 0: nonce 0x0123456789abcdef, then beta's
   public key, whose first 16 bytes are its id and the others 00 11 .. ff. */
static const uint8_t s_ex_key[] = {
    0xa9, 0x03, 0x12, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
    0xc2, 0xd4, 0xe6, 0xf8, 0x09, 0x1a, 0x2b, 0x3c, 0x4d, 0x5e, 0x6f, 0x70, 0x81, 0x92, 0xa3, 0xb4,
    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
};
#define KEY_B (s_ex_key + 16)                       /* beta's public key */

/* 14.11 REPLY on beta's DEALER, seq 9: request id 9, to ":3@alpha", from
   ":4@beta", whose uid 4242 has no name ("4242"), "12:00". */
static const uint8_t s_ex_reply[] = {
    0xa9, 0x03, 0x09, 0x00, 0x00, 0x00, 0x00, 0x09,
    0x00, 0x00, 0x00, 0x09,
    0x08, ':', '3', '@', 'a', 'l', 'p', 'h', 'a',
    0x07, ':', '4', '@', 'b', 'e', 't', 'a',
    0x00, 0x00, 0x10, 0x92,
    0x04, '4', '2', '4', '2',
    '1', '2', ':', '0', '0',
};

/* 14.12 STORE_RECORDS from alpha, seq 12: "fast" under "cfg.mode". */
static const uint8_t s_ex_records[] = {
    0xa9, 0x03, 0x20, 0x00, 0x00, 0x00, 0x00, 0x0c,
    0x00, 0x01,
    0x01, 0xa2, 0x3b, 0xc6, 0x96, 0x00, 0x00, 0x00,
    0x5f, 0x0c, 0x3e, 0x9a, 0x7b, 0x21, 0x4d, 0x68, 0xa1, 0xe2, 0xc3, 0xb4, 0xd5, 0xf6, 0x07, 0x18,
    0x00,
    0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x03, 0xe8,
    0x08, 'c', 'f', 'g', '.', 'm', 'o', 'd', 'e',
    0x00, 0x00, 0x00, 0x04,
    'f', 'a', 's', 't',
};

typedef struct {
    const uint8_t *bytes;
    size_t len;
} example_t;

static const example_t s_examples[] = {
    { s_ex_hello, sizeof s_ex_hello },
    { s_ex_hello_ack, sizeof s_ex_hello_ack },
    { s_ex_names, sizeof s_ex_names },
    { s_ex_msg, sizeof s_ex_msg },
    { s_ex_fail, sizeof s_ex_fail },
    { s_ex_credit, sizeof s_ex_credit },
    { s_ex_pub, sizeof s_ex_pub },
    { s_ex_refuse, sizeof s_ex_refuse },
    { s_ex_batch, sizeof s_ex_batch },
    { s_ex_key, sizeof s_ex_key },
    { s_ex_reply, sizeof s_ex_reply },
    { s_ex_records, sizeof s_ex_records },
};
#define N_EXAMPLES (sizeof s_examples / sizeof s_examples[0])

/* --- encoding helpers ---------------------------------------------------- */

static void s_str(proto_buf_t *b, const char *s)
{
    proto_str(b, s, strlen(s));
}

/* Takes the bytes of an encoded message (given to the caller, who frees
   them) and checks that encoding did not fail. */
static uint8_t *s_take(proto_buf_t *b, size_t *ret_len)
{
    assert_false(b->failed);
    assert_non_null(b->data);
    *ret_len = b->len;
    uint8_t *data = b->data;
    *b = (proto_buf_t) { 0 };
    return data;
}

static void s_hello(proto_buf_t *b, uint32_t seq, const char *id, const char *name,
                    const char *cluster, uint16_t port, uint64_t inc, uint32_t heartbeat)
{
    proto_begin(b, P_HELLO, 0, seq);
    s_str(b, id);
    s_str(b, name);
    s_str(b, cluster);
    proto_u16(b, port);
    proto_u64(b, inc);
    proto_u32(b, heartbeat);
}

static void s_hello_ack(proto_buf_t *b, uint32_t seq, const char *id, const char *name,
                        uint64_t inc)
{
    proto_begin(b, P_HELLO_ACK, 0, seq);
    s_str(b, id);
    s_str(b, name);
    proto_u64(b, inc);
}

/* A NAMES or SUBS list with count as given (which may lie about items). */
static void s_list(proto_buf_t *b, uint8_t type, uint32_t seq, uint16_t count,
                   const char *const *items, size_t n)
{
    proto_begin(b, type, 0, seq);
    proto_u16(b, count);
    for (size_t i = 0; i < n; i++)
        s_str(b, items[i]);
}

/* The 32-byte public key whose id is id: the 16 bytes that id spells in
   hex (either case; a digit that is not hex counts as 0), then the 16
   bytes 00 11 .. ff, as beta's key in the spec (section 14.10). */
static void s_key_for(const char *id, uint8_t key[PROTO_KEY_LEN])
{
    size_t len = strlen(id);
    for (size_t i = 0; i < 32; i++) {
        char c = i < len ? id[i] : '0';
        unsigned v = c >= '0' && c <= '9' ? (unsigned) (c - '0')
                   : c >= 'a' && c <= 'f' ? (unsigned) (c - 'a' + 10)
                   : c >= 'A' && c <= 'F' ? (unsigned) (c - 'A' + 10) : 0;
        if (i % 2 == 0)
            key[i / 2] = (uint8_t) (v << 4);
        else
            key[i / 2] |= (uint8_t) v;
    }
    for (size_t i = 16; i < PROTO_KEY_LEN; i++)
        key[i] = (uint8_t) (0x11 * (i - 16));
}

/* One PEERS item: id, name, endpoint, and a key of keylen bytes. */
static void s_peer_item(proto_buf_t *b, const char *id, const char *name, const char *endpoint,
                        const uint8_t *key, size_t keylen)
{
    s_str(b, id);
    s_str(b, name);
    s_str(b, endpoint);
    proto_str(b, (const char *) key, keylen);
}

/* PEERS: items holds n triplets id, name, endpoint; each item's key is
   the one of its id (s_key_for). */
static void s_peers(proto_buf_t *b, uint32_t seq, uint16_t count,
                    const char *const *items, size_t n)
{
    proto_begin(b, P_PEERS, 0, seq);
    proto_u16(b, count);
    for (size_t i = 0; i < n; i++) {
        uint8_t key[PROTO_KEY_LEN];
        s_key_for(items[3 * i], key);
        s_peer_item(b, items[3 * i], items[3 * i + 1], items[3 * i + 2], key, sizeof key);
    }
}

/* The sender of the messages a test makes without naming one. */
#define S_UID   1000
#define S_USER  "alice"

/* MSG with the sender's uid and user (userlen bytes at user). */
static void s_msg_from(proto_buf_t *b, uint8_t flags, uint32_t seq, uint8_t kind, uint32_t cseq,
                       uint32_t timeout, const char *from, uint32_t uid, const char *user,
                       size_t userlen, const char *to, const void *payload, size_t size)
{
    proto_begin(b, P_MSG, flags, seq);
    proto_u8(b, kind);
    proto_u32(b, cseq);
    proto_u32(b, timeout);
    s_str(b, from);
    proto_u32(b, uid);
    proto_str(b, user, userlen);
    s_str(b, to);
    proto_bytes(b, payload, size);
}

static void s_msg(proto_buf_t *b, uint8_t flags, uint32_t seq, uint8_t kind, uint32_t cseq,
                  uint32_t timeout, const char *from, const char *to,
                  const void *payload, size_t size)
{
    s_msg_from(b, flags, seq, kind, cseq, timeout, from, S_UID, S_USER, strlen(S_USER), to,
               payload, size);
}

/* A REPLY or a PUB: cseq, two strings, the sender's uid and user, the
   payload. */
static void s_data_from(proto_buf_t *b, uint8_t type, uint32_t seq, uint32_t cseq,
                        const char *first, const char *second, uint32_t uid, const char *user,
                        size_t userlen, const void *payload, size_t size)
{
    proto_begin(b, type, 0, seq);
    proto_u32(b, cseq);
    s_str(b, first);
    s_str(b, second);
    proto_u32(b, uid);
    proto_str(b, user, userlen);
    proto_bytes(b, payload, size);
}

static void s_reply(proto_buf_t *b, uint32_t seq, uint32_t cseq, const char *to,
                    const char *from, const void *payload, size_t size)
{
    s_data_from(b, P_REPLY, seq, cseq, to, from, S_UID, S_USER, strlen(S_USER), payload, size);
}

static void s_pub(proto_buf_t *b, uint32_t seq, uint32_t cseq, const char *topic,
                  const char *from, const void *payload, size_t size)
{
    s_data_from(b, P_PUB, seq, cseq, topic, from, S_UID, S_USER, strlen(S_USER), payload, size);
}

static void s_ack(proto_buf_t *b, uint32_t seq, uint32_t cseq, const char *to)
{
    proto_begin(b, P_ACK, 0, seq);
    proto_u32(b, cseq);
    s_str(b, to);
}

static void s_fail(proto_buf_t *b, uint32_t seq, uint32_t error, uint32_t cseq, uint8_t what,
                   const char *to, const char *name, const char *text)
{
    proto_begin(b, P_FAIL, 0, seq);
    proto_u32(b, error);
    proto_u32(b, cseq);
    proto_u8(b, what);
    s_str(b, to);
    s_str(b, name);
    s_str(b, text);
}

static void s_u64_msg(proto_buf_t *b, uint8_t type, uint32_t seq, uint64_t v)
{
    proto_begin(b, type, 0, seq);
    proto_u64(b, v);
}

static void s_credit(proto_buf_t *b, uint32_t seq, uint32_t ack, uint32_t bytes)
{
    proto_begin(b, P_CREDIT, 0, seq);
    proto_u32(b, ack);
    proto_u32(b, bytes);
}

/* KEY: the nonce, then keylen raw bytes (32 in a well-formed one). */
static void s_key_msg(proto_buf_t *b, uint32_t seq, uint64_t nonce, const uint8_t *key,
                      size_t keylen)
{
    proto_begin(b, P_KEY, 0, seq);
    proto_u64(b, nonce);
    proto_bytes(b, key, keylen);
}

/* A BATCH with count as given (which may lie about items): each item is
   its len:u32, then its bytes. */
static void s_batch(proto_buf_t *b, uint32_t seq, uint16_t count, const example_t *items,
                    size_t n)
{
    proto_begin(b, P_BATCH, 0, seq);
    proto_u16(b, count);
    for (size_t i = 0; i < n; i++) {
        proto_u32(b, (uint32_t) items[i].len);
        proto_bytes(b, items[i].bytes, items[i].len);
    }
}

/* --- decoding helpers ---------------------------------------------------- */

/* The address checks, written again here from the spec (protocol-local.md
   section 7.3) rather than borrowed from the codec. A client id: ':' and
   1 to 19 decimal digits, not all zero. */
static bool s_is_client_id(const char *s, size_t len)
{
    if (len < 2 || len > 20 || s[0] != ':')
        return false;
    bool nonzero = false;
    for (size_t i = 1; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        nonzero |= s[i] != '0';
    }
    return nonzero;
}

/* A unique address: ":N@node". */
static bool s_is_address(const char *s, size_t len)
{
    const char *at = memchr(s, '@', len);
    if (!at)
        return false;
    size_t idlen = (size_t) (at - s);
    return s_is_client_id(s, idlen) && wire_check_name(at + 1, len - idlen - 1) == 0;
}

/* A destination: "name", "name@node", ":N" or ":N@node". */
static bool s_is_dest(const char *s, size_t len)
{
    const char *at = memchr(s, '@', len);
    size_t tlen = at ? (size_t) (at - s) : len;
    if (at && wire_check_name(at + 1, len - tlen - 1) < 0)
        return false;
    return len <= 255 && (s_is_client_id(s, tlen) || wire_check_name(s, tlen) == 0);
}

/* Is key (32 bytes) the key of id (32 lowercase hex digits)? Its first 16
   bytes written in lowercase hex, as the spec says (section 3), rather
   than with the codec's proto_key_id. */
static bool s_is_key_of(const uint8_t *key, const char *id)
{
    char hex[PROTO_ID_LEN + 1];
    for (size_t i = 0; i < PROTO_ID_LEN / 2; i++)
        snprintf(hex + 2 * i, 3, "%02x", (unsigned) key[i]);
    return memcmp(hex, id, PROTO_ID_LEN) == 0;
}

static uint64_t s_get64(const uint8_t *p)
{
    return (uint64_t) wire_get32(p) << 32 | wire_get32(p + 4);
}

/* A view of n bytes at p must lie inside the len bytes at buf. */
static void s_assert_in(const uint8_t *buf, size_t len, const void *p, size_t n)
{
    const uint8_t *q = p;
    assert_non_null(q);
    assert_true(q >= buf && q <= buf + len);
    assert_true(n <= (size_t) (buf + len - q));
}

/* Walks a decoded list with proto_list_next: every item inside the list,
   valid for its kind, and the list used up exactly. */
static void s_assert_list(const uint8_t *buf, size_t len, const proto_msg_t *m)
{
    assert_true(m->count >= 1 && m->count <= PROTO_LIST_MAX);
    assert_ptr_equal(m->list, buf + PROTO_HEAD + 2);
    assert_int_equal(m->listlen, len - PROTO_HEAD - 2);
    const uint8_t *at = m->list, *end = m->list + m->listlen;
    for (unsigned i = 0; i < m->count; i++) {
        const char *s, *id = NULL;
        size_t n;
        for (int f = 0; f < (m->type == P_PEERS ? 4 : 1); f++) {
            assert_true(at < end);
            proto_list_next(&at, &s, &n);
            assert_true(at <= end);
            assert_ptr_equal(s + n, (const char *) at);
            s_assert_in(buf, len, s, n);
            if (m->type == P_PEERS && f == 0) {
                assert_int_equal(proto_check_id(s, n), 0);
                id = s;
            } else if (m->type == P_PEERS && f == 2)
                assert_true(n >= 7 && memcmp(s, "tcp://", 6) == 0);
            else if (m->type == P_PEERS && f == 3) {
                /* The key: 32 bytes, whose first 16 are the id in hex. */
                assert_int_equal(n, PROTO_KEY_LEN);
                assert_true(s_is_key_of((const uint8_t *) s, id));
            }
            else if (m->type == P_SUBS_ADD || m->type == P_SUBS_DEL)
                assert_int_equal(wire_check_pattern(s, n), 0);
            else
                assert_int_equal(wire_check_name(s, n), 0);
        }
    }
    assert_ptr_equal(at, end);
}

static int s_decode(const uint8_t *buf, size_t len, proto_msg_t *ret);

/* Walks a decoded BATCH with proto_batch_next as the node does: count
   items (at least 2), each a len:u32 and that many bytes, at least a head,
   with the signature and the type of a MSG, REPLY or PUB, the last ending
   the message. The codec checks only that framing: each item is decoded on
   its own (through s_decode, which checks what decodes), and the receiver
   treats an item that does not decode as a malformed message. */
static void s_assert_batch(const uint8_t *buf, size_t len, const proto_msg_t *m)
{
    assert_true(m->count >= 2);
    assert_ptr_equal(m->list, buf + PROTO_HEAD + 2);
    assert_int_equal(m->listlen, len - PROTO_HEAD - 2);
    assert_true(m->listlen <= PROTO_BATCH_MAX);
    const uint8_t *at = m->list, *end = m->list + m->listlen;
    for (unsigned i = 0; i < m->count; i++) {
        const uint8_t *item, *was = at;
        size_t n;
        assert_true(end - at >= 4);
        proto_batch_next(&at, &item, &n);
        assert_int_equal(n, wire_get32(was));
        assert_ptr_equal(item, was + 4);
        assert_true(n >= PROTO_HEAD);
        s_assert_in(buf, len, item, n);
        assert_ptr_equal(item + n, at);
        assert_int_equal(item[0], PROTO_SIG);
        assert_true(item[2] == P_MSG || item[2] == P_REPLY || item[2] == P_PUB);
        proto_msg_t im;
        if (s_decode(item, n, &im) == 0)
            assert_int_equal(im.type, item[2]);
    }
    assert_ptr_equal(at, end);
}

/* Is c allowed in a user name: printable ASCII, no blank (section 6.6)? */
static bool s_user_char(uint8_t c)
{
    return c >= 0x21 && c <= 0x7e;
}

/* The sender of a MSG, REPLY or PUB: its uid at at, then its user as a
   str8 of 0 to 32 bytes 0x21..0x7E, inside the message. */
static void s_assert_sender(const uint8_t *buf, size_t len, const proto_msg_t *m,
                            const uint8_t *at)
{
    s_assert_in(buf, len, at, 5);
    assert_int_equal(m->uid, wire_get32(at));
    assert_int_equal(m->userlen, at[4]);
    assert_ptr_equal(m->user, (const char *) at + 5);
    s_assert_in(buf, len, m->user, m->userlen);
    assert_true(m->userlen <= WIRE_USER_MAX);
    for (size_t i = 0; i < m->userlen; i++)
        assert_true(s_user_char((uint8_t) m->user[i]));
}

/* A decoded message points inside its buffer, in the order of its fields,
   fills it exactly, and encodes back to the same bytes. */
static void s_assert_sound(const uint8_t *buf, size_t len, const proto_msg_t *m)
{
    assert_true(len >= PROTO_HEAD);
    assert_int_equal(m->version, PROTO_VERSION);
    assert_int_equal(m->type, buf[2]);
    assert_int_equal(m->flags, buf[3]);
    assert_int_equal(m->seq, wire_get32(buf + 4));
    const uint8_t *end = buf + len;
    switch (m->type) {
    case P_HELLO:
    case P_HELLO_ACK:
        assert_ptr_equal(m->id, buf + 9);
        assert_int_equal(proto_check_id(m->id, m->idlen), 0);
        assert_ptr_equal(m->name, m->id + m->idlen + 1);
        s_assert_in(buf, len, m->name, m->namelen);
        assert_int_equal(wire_check_name(m->name, m->namelen), 0);
        if (m->type == P_HELLO) {
            /* The cluster follows the name, and is a name too. */
            assert_ptr_equal(m->cluster, m->name + m->namelen + 1);
            s_assert_in(buf, len, m->cluster, m->clusterlen);
            assert_int_equal(wire_check_name(m->cluster, m->clusterlen), 0);
            assert_ptr_equal(m->cluster + m->clusterlen + 14, (const char *) end);
            assert_true(m->port != 0 && m->heartbeat != 0);
        } else
            assert_ptr_equal(m->name + m->namelen + 8, (const char *) end);
        break;
    case P_NAMES_ADD: case P_NAMES_DEL: case P_SUBS_ADD: case P_SUBS_DEL: case P_PEERS:
        s_assert_list(buf, len, m);
        break;
    case P_MSG:
        /* kind cseq timeout from uid user to payload */
        assert_true(m->kind == P_KIND_SEND || m->kind == P_KIND_REQUEST);
        assert_int_equal(m->cseq, wire_get32(buf + 9));
        assert_int_equal(m->timeout, wire_get32(buf + 13));
        assert_ptr_equal(m->from, buf + 18);
        s_assert_sender(buf, len, m, (const uint8_t *) m->from + m->fromlen);
        assert_ptr_equal(m->to, m->user + m->userlen + 1);
        assert_ptr_equal(m->data, (const uint8_t *) m->to + m->tolen);
        assert_true(s_is_address(m->from, m->fromlen));
        assert_true(s_is_dest(m->to, m->tolen));
        break;
    case P_REPLY:
    case P_PUB:
        /* The same layout, cseq to from uid user payload: a REPLY goes to
           an address, a PUB to a topic. */
        assert_int_equal(m->cseq, wire_get32(buf + 8));
        assert_ptr_equal(m->to, buf + 13);
        if (m->type == P_PUB)
            assert_int_equal(wire_check_name(m->to, m->tolen), 0);
        else
            assert_true(s_is_address(m->to, m->tolen));
        assert_ptr_equal(m->from, m->to + m->tolen + 1);
        s_assert_sender(buf, len, m, (const uint8_t *) m->from + m->fromlen);
        assert_ptr_equal(m->data, (const uint8_t *) m->user + m->userlen);
        assert_true(s_is_address(m->from, m->fromlen));
        break;
    case P_ACK:
        assert_int_equal(m->cseq, wire_get32(buf + 8));
        assert_ptr_equal(m->to, buf + 13);
        assert_ptr_equal(m->to + m->tolen, (const char *) end);
        assert_true(s_is_address(m->to, m->tolen));
        break;
    case P_FAIL:
        assert_true(m->error >= 1 && m->error <= 4095);
        assert_int_equal(m->error, wire_get32(buf + 8));
        assert_int_equal(m->cseq, wire_get32(buf + 12));
        assert_int_equal(m->kind, buf[16]);
        assert_ptr_equal(m->to, buf + 18);
        assert_ptr_equal(m->name, m->to + m->tolen + 1);
        assert_ptr_equal(m->text, m->name + m->namelen + 1);
        assert_ptr_equal(m->text + m->textlen, (const char *) end);
        /* An empty to only in the answers refusing a HELLO: of another
           version (EPROTO), of another cluster (EACCES), with no room
           (EUSERS). */
        if (m->tolen == 0)
            assert_true(m->error == EPROTO || m->error == EACCES || m->error == EUSERS);
        else
            assert_true(s_is_address(m->to, m->tolen));
        break;
    case P_PING: case P_PONG: case P_CREDIT:
        assert_int_equal(len, PROTO_HEAD + 8);
        break;
    case P_BYE:
        assert_int_equal(len, PROTO_HEAD);
        break;
    case P_BATCH:
        s_assert_batch(buf, len, m);
        break;
    case P_STORE_RECORDS: {
        /* Records end to end, each inside, to the end of the message. */
        assert_ptr_equal(m->list, buf + PROTO_HEAD + 2);
        assert_true(m->count >= 1);
        const uint8_t *at = m->list;
        for (unsigned i = 0; i < m->count; i++) {
            proto_record_t r;
            proto_record_next(&at, &r);
            s_assert_in(buf, len, r.key, r.keylen);
            assert_int_equal(wire_check_name(r.key, r.keylen), 0);
            assert_true(r.value >= buf && r.value + r.size <= end);
            if (r.flags & PROTO_STORE_DELETED)
                assert_int_equal(r.size, 0);
        }
        assert_ptr_equal(at, end);
        assert_ptr_equal(m->list + m->listlen, end);
        break;
    }
    case P_STORE_DIGEST:
        assert_int_equal(m->count, PROTO_STORE_BUCKETS);
        assert_int_equal(len, PROTO_HEAD + 2 + 12 * PROTO_STORE_BUCKETS);
        break;
    case P_KEY:
        /* Exactly a head, the nonce and the 32 bytes of the key. */
        assert_int_equal(len, PROTO_KEY_MSG);
        assert_true(m->stamp == s_get64(buf + PROTO_HEAD));
        assert_ptr_equal(m->key, buf + PROTO_HEAD + 8);
        s_assert_in(buf, len, m->key, PROTO_KEY_LEN);
        break;
    default:
        fail_msg("decoded an unknown type 0x%02x", m->type);
    }
    if (m->type == P_MSG || m->type == P_REPLY || m->type == P_PUB) {
        assert_true(m->fromlen >= 4 && m->tolen >= 1);
        s_assert_in(buf, len, m->to, m->tolen);
        s_assert_in(buf, len, m->from, m->fromlen);
        s_assert_in(buf, len, m->user, m->userlen);
        s_assert_in(buf, len, m->data, m->size);
        assert_ptr_equal(m->data + m->size, end);
    } else {
        /* Only those carry a sender. */
        assert_int_equal(m->uid, 0);
        assert_null(m->user);
        assert_int_equal(m->userlen, 0);
    }

    /* The codec's own encoder writes the very same bytes, and knows their
       size before it writes them. */
    proto_buf_t b = { 0 };
    assert_int_equal(proto_size(m), len);
    proto_encode(&b, m);
    assert_false(b.failed);
    assert_int_equal(b.len, len);
    assert_memory_equal(b.data, buf, len);
    proto_free(&b);
}

static const void *s_rebase(const void *p, const uint8_t *from, const uint8_t *to)
{
    return p ? to + ((const uint8_t *) p - from) : NULL;
}

/* Decodes a heap copy of exactly len bytes. On success checks that the
   message is sound and fills *ret with views into buf (the copy is gone);
   on -EPROTO checks the head; anything else must be -EBADMSG, with *ret
   untouched. */
static int s_decode(const uint8_t *buf, size_t len, proto_msg_t *ret)
{
    uint8_t *copy = hexdump_dup(buf, len);
    proto_msg_t m;
    memset(&m, 0x5a, sizeof m);
    proto_msg_t before = m;
    int rc = proto_decode(copy, len, &m);
    if (rc == 0) {
        s_assert_sound(copy, len, &m);
        m.id = s_rebase(m.id, copy, buf);
        m.name = s_rebase(m.name, copy, buf);
        m.cluster = s_rebase(m.cluster, copy, buf);
        m.list = s_rebase(m.list, copy, buf);
        m.from = s_rebase(m.from, copy, buf);
        m.to = s_rebase(m.to, copy, buf);
        m.user = s_rebase(m.user, copy, buf);
        m.text = s_rebase(m.text, copy, buf);
        m.data = s_rebase(m.data, copy, buf);
        m.key = s_rebase(m.key, copy, buf);
    } else if (rc == -EPROTO) {
        assert_true(len >= PROTO_HEAD && buf[0] == PROTO_SIG && buf[1] != PROTO_VERSION);
        assert_int_equal(m.version, buf[1]);
        assert_int_equal(m.type, buf[2]);
        assert_int_equal(m.flags, buf[3]);
        assert_int_equal(m.seq, wire_get32(buf + 4));
    } else {
        assert_int_equal(rc, -EBADMSG);
        assert_memory_equal(&m, &before, sizeof m);
    }
    free(copy);
    if (ret)
        *ret = m;
    return rc;
}

/* Decodes what b holds (through s_decode), then frees it; returns
   proto_decode's answer. */
static int s_try(proto_buf_t *b)
{
    assert_false(b->failed);
    int rc = s_decode(b->data, b->len, NULL);
    proto_free(b);
    return rc;
}

/* --- samples ------------------------------------------------------------- */

typedef struct {
    uint8_t *bytes;     /* owned */
    size_t len;
} sample_t;

static const uint8_t s_binary[] = { 'p', 0x00, 'a', 0xff, 'y', 0x80, '\n', 0x7f };

/* Appends the encoded message in b to the samples (taking its bytes). */
static void s_add(sample_t *out, size_t *n, proto_buf_t *b)
{
    out[*n].bytes = s_take(b, &out[*n].len);
    (*n)++;
}

/* The shortest valid message of each type, in type order; out has room for
   N_TYPES. Their lengths are the "codec minimum" column of section 6: a
   unique address is at least ":1@a", a name (node and cluster names too)
   or destination one byte, a user name none (its str8 one byte), a FAIL may leave its to empty (with error
   EPROTO or EACCES), a PEERS item carries its 32-byte key and a KEY is
   always 48 bytes. */
static size_t s_minimal(sample_t *out)
{
    static const char *const one[] = { "a" };
    static const char *const peer[] = { ID_B, "b", "tcp://x" };
    /* A BATCH's framing asks only for heads of a MSG, REPLY or PUB. */
    static const uint8_t head[PROTO_HEAD] = { PROTO_SIG, PROTO_VERSION, P_MSG, 0, 0, 0, 0, 1 };
    static const example_t heads[] = { { head, sizeof head }, { head, sizeof head } };
    static const uint8_t zeros[PROTO_KEY_LEN] = { 0 };
    proto_buf_t b = { 0 };
    size_t n = 0;
    s_hello(&b, 0, ID_A, "a", "c", 1, 0, 1);                s_add(out, &n, &b);
    s_hello_ack(&b, 0, ID_B, "b", 0);                       s_add(out, &n, &b);
    s_list(&b, P_NAMES_ADD, 0, 1, one, 1);                  s_add(out, &n, &b);
    s_list(&b, P_NAMES_DEL, 0, 1, one, 1);                  s_add(out, &n, &b);
    s_list(&b, P_SUBS_ADD, 0, 1, one, 1);                   s_add(out, &n, &b);
    s_list(&b, P_SUBS_DEL, 0, 1, one, 1);                   s_add(out, &n, &b);
    s_peers(&b, 0, 1, peer, 1);                             s_add(out, &n, &b);
    s_msg_from(&b, 0, 0, P_KIND_SEND, 0, 0, ":1@a", 0, "", 0, "t", NULL, 0);
    s_add(out, &n, &b);
    s_data_from(&b, P_REPLY, 0, 0, ":1@a", ":1@b", 0, "", 0, NULL, 0);
    s_add(out, &n, &b);
    s_data_from(&b, P_PUB, 0, 0, "t", ":1@a", 0, "", 0, NULL, 0);
    s_add(out, &n, &b);
    s_ack(&b, 0, 0, ":1@a");                                s_add(out, &n, &b);
    s_fail(&b, 0, EPROTO, 0, 0, "", "", "");                s_add(out, &n, &b);
    s_u64_msg(&b, P_PING, 0, 0);                            s_add(out, &n, &b);
    s_u64_msg(&b, P_PONG, 0, 0);                            s_add(out, &n, &b);
    proto_begin(&b, P_BYE, 0, 0);                           s_add(out, &n, &b);
    s_credit(&b, 0, 0, 0);                                  s_add(out, &n, &b);
    s_batch(&b, 0, 2, heads, 2);                            s_add(out, &n, &b);
    s_key_msg(&b, 0, 0, zeros, sizeof zeros);               s_add(out, &n, &b);
    assert_int_equal(n, N_TYPES);
    return n;
}

#define MAX_SAMPLES 96

static void s_free_samples(sample_t *s, size_t n);

/* The messages the malformed-input tests start from: the spec's examples,
   the shortest of each type, and full ones of each type with unusual
   numbers. Returns their count; free them with s_free_samples. */
static size_t s_samples(sample_t *out)
{
    static const char *const names[] = { "printer", "sensors.temp", "a", "x/y-z_0" };
    static const char *const pats[] = { "*", "sensors.*", "printer", "p*" };
    static const char *const peers[] = {
        ID_A, "alpha", "tcp://192.168.1.20:5680",
        ID_B, "beta.lan", "tcp://[fe80::1%eth0]:49152",
    };
    proto_buf_t b = { 0 };
    size_t n = 0;
    for (size_t i = 0; i < N_EXAMPLES; i++, n++) {
        out[n].bytes = hexdump_dup(s_examples[i].bytes, s_examples[i].len);
        out[n].len = s_examples[i].len;
    }
    n += s_minimal(out + n);

    s_hello(&b, 1, ID_B, "beta.example-1", "lab/floor-2_b.x", 65535, UINT64_MAX, UINT32_MAX);
    s_add(out, &n, &b);
    s_hello_ack(&b, 0, ID_A, "Z", 0x8000000000000001ull);
    s_add(out, &n, &b);
    for (uint8_t t = P_NAMES_ADD; t <= P_SUBS_DEL; t++) {
        s_list(&b, t, 0x01020304u + t, 4, t <= P_NAMES_DEL ? names : pats, 4);
        s_add(out, &n, &b);
    }
    s_peers(&b, 0xfffffffe, 2, peers, 2);
    s_add(out, &n, &b);
    s_msg(&b, P_F_CONFIRM, 9, P_KIND_SEND, 0xffffffff, 0, ":1@alpha", "printer@beta",
          s_binary, sizeof s_binary);
    s_add(out, &n, &b);
    s_msg(&b, 0x80, 0x7fffffff, P_KIND_REQUEST, 0x80000000, 30000, ":18@alpha", ":4@beta",
          s_binary, sizeof s_binary);
    s_add(out, &n, &b);
    s_reply(&b, 3, 0x80000000, ":18@alpha", ":4@beta", s_binary, sizeof s_binary);
    s_add(out, &n, &b);
    s_msg(&b, 0, 10, P_KIND_SEND, 1, 0, ":9999999999999999999@a", ":4", NULL, 0);
    s_add(out, &n, &b);
    s_pub(&b, 4, 0xfffffffe, "sensors.temp", ":2@beta", s_binary, sizeof s_binary);
    s_add(out, &n, &b);
    s_ack(&b, 5, 77, ":1@alpha");
    s_add(out, &n, &b);
    s_fail(&b, 6, ECONNRESET, 0x80000000, WIRE_REQUEST, ":18@alpha", "printer",
           "holder gone");
    s_add(out, &n, &b);
    s_fail(&b, 7, 4095, 0xffffffff, 0xff, ":1@b", "", "");
    s_add(out, &n, &b);
    s_fail(&b, 0, EPROTO, 0, 0, "", "beta", "protocol version not supported");
    s_add(out, &n, &b);
    s_fail(&b, 0, EACCES, 0, 0, "", "", "another cluster");
    s_add(out, &n, &b);
    s_u64_msg(&b, P_PING, 7, 0x0102030405060708ull);
    s_add(out, &n, &b);
    s_u64_msg(&b, P_PONG, 0, UINT64_MAX);
    s_add(out, &n, &b);
    proto_begin(&b, P_BYE, 0xff, 0xffffffff);
    s_add(out, &n, &b);
    s_credit(&b, 8, 0xfffffffe, 4u << 20);
    s_add(out, &n, &b);
    {
        /* A KEY question (zeros), and an answer with extreme bytes. */
        static const uint8_t zeros[PROTO_KEY_LEN] = { 0 };
        uint8_t ff[PROTO_KEY_LEN];
        memset(ff, 0xff, sizeof ff);
        s_key_msg(&b, 0, 0xfedcba9876543210ull, zeros, sizeof zeros);
        s_add(out, &n, &b);
        s_key_msg(&b, 0, UINT64_MAX, ff, sizeof ff);
        s_add(out, &n, &b);
    }
    {
        sample_t it[3];
        size_t k = 0;
        s_msg(&b, P_F_CONFIRM, 0xffffffff, P_KIND_REQUEST, 9, 500, ":1@alpha", "printer@beta",
              s_binary, sizeof s_binary);
        s_add(it, &k, &b);
        s_reply(&b, 0, 0x80000000, ":18@alpha", ":4@beta", NULL, 0);
        s_add(it, &k, &b);
        s_pub(&b, 1, 2, "sensors.temp", ":2@beta", "21.5", 4);
        s_add(it, &k, &b);
        example_t items[3];
        memset(items, 0, sizeof items);     /* gcc cannot see that k is 3 */
        assert_int_equal(k, 3);
        for (size_t i = 0; i < k; i++)
            items[i] = (example_t) { it[i].bytes, it[i].len };
        s_batch(&b, 0, 3, items, 3);
        b.data[3] = 0xff;   /* flags are not looked at */
        s_add(out, &n, &b);
        s_free_samples(it, k);
    }
    /* Senders at their extremes: the longest user, every printable byte,
       none, a uid in decimal; uid 0 and the largest. */
    {
        static const struct {
            uint32_t uid;
            const char *user;
        } who[] = {
            { 0xffffffffu, "abcdefghijklmnopqrstuvwxyz012345" },
            { 0, "" },
            { 0x80000000u, "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~" },
            { 4242, "4242" },
        };
        for (size_t w = 0; w < N_OF(who); w++) {
            size_t ul = strlen(who[w].user);
            s_msg_from(&b, (uint8_t) w, (uint32_t) w, w % 2 ? P_KIND_SEND : P_KIND_REQUEST,
                       (uint32_t) w, 1000, ":5@alpha", who[w].uid, who[w].user, ul,
                       "printer@beta", s_binary, w % 2 ? 0 : sizeof s_binary);
            s_add(out, &n, &b);
            s_data_from(&b, P_REPLY, 1, 2, ":18@alpha", ":4@beta", who[w].uid, who[w].user, ul,
                        s_binary, w % 2 ? sizeof s_binary : 0);
            s_add(out, &n, &b);
            s_data_from(&b, P_PUB, 1, 2, "sensors.temp", ":2@beta", who[w].uid, who[w].user,
                        ul, "21.5", w % 2 ? 4 : 0);
            s_add(out, &n, &b);
        }
    }
    /* The store's records: a value with a TTL, a deletion, an ephemeral
       binary value. */
    {
        static const uint8_t origin[16] = { 0xc2, 0xd4, 0xe6, 0xf8, 1, 2, 3, 4, 5, 6, 7, 8,
                                            9, 10, 11, 12 };
        proto_list_begin(&b, P_STORE_RECORDS);
        proto_record_t r1 = { 0x01a23bc696000001ull, origin, 0, 30000, 0, "svc.leader", 10,
                              (const uint8_t *) "node-1", 6 };
        proto_record_t r2 = { UINT64_MAX, origin, PROTO_STORE_DELETED, 0, 0xffffffffu, "a", 1,
                              NULL, 0 };
        proto_record_t r3 = { 1, origin, PROTO_STORE_EPHEMERAL, 0, 1000, "up/x-y_z", 8,
                              s_binary, sizeof s_binary };
        proto_record_add(&b, &r1);
        proto_record_add(&b, &r2);
        proto_record_add(&b, &r3);
        proto_set_seq(&b, 77);
        s_add(out, &n, &b);
    }
    assert_true(n <= MAX_SAMPLES);
    return n;
}

static void s_free_samples(sample_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(s[i].bytes);
}

/* The offset where a type's payload begins, or 0 if its type has none. */
static size_t s_payload_at(const uint8_t *buf, size_t len)
{
    proto_msg_t m;
    assert_int_equal(s_decode(buf, len, &m), 0);
    if (m.type != P_MSG && m.type != P_REPLY && m.type != P_PUB)
        return 0;
    return (size_t) (m.data - buf);
}

/* --- round trips, type by type ------------------------------------------ */

/* m is the MSG of the spec's example (14.4): a confirmed SEND, seq 5,
   cseq 7, from ":3@alpha" (uid 1000, user "alice") to "printer",
   "hello". */
static void s_expect_msg_example(const proto_msg_t *m)
{
    assert_int_equal(m->type, P_MSG);
    assert_int_equal(m->flags, P_F_CONFIRM);
    assert_int_equal(m->seq, 5);
    assert_int_equal(m->kind, P_KIND_SEND);
    assert_int_equal(m->cseq, 7);
    assert_int_equal(m->timeout, 0);
    assert_int_equal(m->fromlen, 8);
    assert_memory_equal(m->from, ":3@alpha", m->fromlen);
    assert_int_equal(m->uid, 1000);
    assert_int_equal(m->userlen, 5);
    assert_memory_equal(m->user, "alice", 5);
    assert_int_equal(m->tolen, 7);
    assert_memory_equal(m->to, "printer", m->tolen);
    assert_int_equal(m->size, 5);
    assert_memory_equal(m->data, "hello", 5);
}

/* m is the FAIL of the spec's example: seq 4, ENOENT for the SEND cseq 7
   of ":3@alpha" to "printer". */
static void s_expect_fail_example(const proto_msg_t *m)
{
    assert_int_equal(m->type, P_FAIL);
    assert_int_equal(m->seq, 4);
    assert_int_equal(m->error, ENOENT);
    assert_int_equal(m->cseq, 7);
    assert_int_equal(m->kind, WIRE_SEND);
    assert_memory_equal(m->to, ":3@alpha", m->tolen);
    assert_memory_equal(m->name, "printer", m->namelen);
}

static void test_proto_hello_roundtrip(void **state)
{
    (void) state;
    proto_buf_t b = { 0 };
    proto_msg_t m;
    s_hello(&b, 1, ID_A, "alpha", "ipcnet", 5680, 0x8e3b1f2a6c4d5e07ull, 500);
    assert_int_equal(s_decode(b.data, b.len, &m), 0);
    assert_int_equal(m.version, 3);
    assert_int_equal(m.type, P_HELLO);
    assert_int_equal(m.flags, 0);
    assert_int_equal(m.seq, 1);
    assert_int_equal(m.idlen, 32);
    assert_memory_equal(m.id, ID_A, 32);
    assert_int_equal(m.namelen, 5);
    assert_memory_equal(m.name, "alpha", 5);
    assert_int_equal(m.clusterlen, 6);
    assert_memory_equal(m.cluster, "ipcnet", 6);
    assert_int_equal(m.port, 5680);
    assert_true(m.incarnation == 0x8e3b1f2a6c4d5e07ull);
    assert_int_equal(m.heartbeat, 500);

    /* Extremes travel unchanged; the longest name and cluster fit. */
    char longest[255], cluster[255];
    memset(longest, 'n', sizeof longest);
    memset(cluster, 'c', sizeof cluster);
    proto_begin(&b, P_HELLO, 0, 0xffffffff);
    s_str(&b, ID_B);
    proto_str(&b, longest, sizeof longest);
    proto_str(&b, cluster, sizeof cluster);
    proto_u16(&b, 65535);
    proto_u64(&b, UINT64_MAX);
    proto_u32(&b, UINT32_MAX);
    assert_int_equal(s_decode(b.data, b.len, &m), 0);
    assert_int_equal(m.seq, 0xffffffff);
    assert_memory_equal(m.id, ID_B, 32);
    assert_int_equal(m.namelen, 255);
    assert_memory_equal(m.name, longest, 255);
    assert_int_equal(m.clusterlen, 255);
    assert_memory_equal(m.cluster, cluster, 255);
    assert_int_equal(m.port, 65535);
    assert_true(m.incarnation == UINT64_MAX);
    assert_int_equal(m.heartbeat, UINT32_MAX);
    proto_free(&b);
}

static void test_proto_hello_ack_roundtrip(void **state)
{
    (void) state;
    proto_buf_t b = { 0 };
    proto_msg_t m;
    s_hello_ack(&b, 0, ID_B, "beta", 0x13579bdf2468ace0ull);
    assert_int_equal(s_decode(b.data, b.len, &m), 0);
    assert_int_equal(m.type, P_HELLO_ACK);
    assert_int_equal(m.seq, 0);
    assert_memory_equal(m.id, ID_B, 32);
    assert_int_equal(m.idlen, 32);
    assert_int_equal(m.namelen, 4);
    assert_memory_equal(m.name, "beta", 4);
    assert_true(m.incarnation == 0x13579bdf2468ace0ull);
    /* No cluster, port or heartbeat in a HELLO_ACK, and an incarnation of
       0 is fine. */
    assert_int_equal(m.clusterlen, 0);
    assert_int_equal(m.port, 0);
    assert_int_equal(m.heartbeat, 0);
    s_hello_ack(&b, 0, ID_B, "beta", 0);
    assert_int_equal(s_decode(b.data, b.len, &m), 0);
    assert_true(m.incarnation == 0);
    proto_free(&b);
}

/* Walks a name or pattern list and compares it with want[]. */
static void s_assert_items(const proto_msg_t *m, const char *const *want, size_t n)
{
    assert_int_equal(m->count, n);
    const uint8_t *at = m->list;
    for (size_t i = 0; i < n; i++) {
        const char *s;
        size_t len;
        proto_list_next(&at, &s, &len);
        assert_int_equal(len, strlen(want[i]));
        assert_memory_equal(s, want[i], len);
    }
    assert_ptr_equal(at, m->list + m->listlen);
}

static void test_proto_lists_roundtrip(void **state)
{
    (void) state;
    static const char *const names[] = { "printer", "sensors.temp", "_x", "/a/b" };
    static const char *const pats[] = { "*", "sensors.*", "printer", "p*" };
    proto_buf_t b = { 0 };
    proto_msg_t m;
    for (uint8_t t = P_NAMES_ADD; t <= P_SUBS_DEL; t++) {
        const char *const *items = t <= P_NAMES_DEL ? names : pats;
        s_list(&b, t, 42, 4, items, 4);
        assert_int_equal(s_decode(b.data, b.len, &m), 0);
        assert_int_equal(m.type, t);
        assert_int_equal(m.seq, 42);
        s_assert_items(&m, items, 4);
    }
    proto_free(&b);
}

static void test_proto_peers_roundtrip(void **state)
{
    (void) state;
    static const char *const peers[] = {
        ID_A, "alpha", "tcp://192.168.1.20:5680",
        ID_B, "beta", "tcp://[::1]:5681",
        "00000000000000000000000000000000", "c", "tcp://h",
    };
    proto_buf_t b = { 0 };
    proto_msg_t m;
    s_peers(&b, 9, 3, peers, 3);
    assert_int_equal(s_decode(b.data, b.len, &m), 0);
    assert_int_equal(m.type, P_PEERS);
    /* count counts peers, and each peer is four strings: id, name,
       endpoint, key. */
    assert_int_equal(m.count, 3);
    const uint8_t *at = m.list;
    for (size_t i = 0; i < 3; i++) {
        const char *s;
        size_t len;
        for (size_t f = 0; f < 3; f++) {
            proto_list_next(&at, &s, &len);
            assert_int_equal(len, strlen(peers[3 * i + f]));
            assert_memory_equal(s, peers[3 * i + f], len);
        }
        uint8_t key[PROTO_KEY_LEN];
        s_key_for(peers[3 * i], key);
        proto_list_next(&at, &s, &len);
        assert_int_equal(len, PROTO_KEY_LEN);
        assert_memory_equal(s, key, PROTO_KEY_LEN);
    }
    assert_ptr_equal(at, m.list + m.listlen);
    proto_free(&b);
}

/* Two peers, alpha and beta, laid out by hand: count 2, then per item its
   id, name, endpoint and key, each a length byte and its bytes. Beta's key
   is the one of the spec's KEY answer (14.10). */
static void test_proto_peers_two_items(void **state)
{
    (void) state;
    uint8_t key_a[PROTO_KEY_LEN];
    s_key_for(ID_A, key_a);
    /* s_key_for agrees with the spec on beta. */
    uint8_t key_b[PROTO_KEY_LEN];
    s_key_for(ID_B, key_b);
    assert_memory_equal(key_b, KEY_B, PROTO_KEY_LEN);

    uint8_t buf[256];
    size_t len = 0;
    static const uint8_t head[] = { 0xa9, 0x03, 0x07, 0x00, 0x00, 0x00, 0x00, 0x06, 0x00, 0x02 };
    memcpy(buf, head, sizeof head);
    len += sizeof head;
    const struct {
        const char *id, *name, *endpoint;
        const uint8_t *key;
    } items[] = {
        { ID_A, "alpha", "tcp://192.168.1.20:5680", key_a },
        { ID_B, "beta", "tcp://[fe80::1]:5680", KEY_B },
    };
    for (size_t i = 0; i < 2; i++) {
        const char *strs[] = { items[i].id, items[i].name, items[i].endpoint };
        for (size_t f = 0; f < 3; f++) {
            buf[len++] = (uint8_t) strlen(strs[f]);
            memcpy(buf + len, strs[f], strlen(strs[f]));
            len += strlen(strs[f]);
        }
        buf[len++] = PROTO_KEY_LEN;
        memcpy(buf + len, items[i].key, PROTO_KEY_LEN);
        len += PROTO_KEY_LEN;
    }
    assert_int_equal(len, 10 + (33 + 6 + 24 + 33) + (33 + 5 + 21 + 33));

    proto_msg_t m;
    assert_int_equal(s_decode(buf, len, &m), 0);
    assert_int_equal(m.type, P_PEERS);
    assert_int_equal(m.seq, 6);
    assert_int_equal(m.count, 2);
    assert_ptr_equal(m.list, buf + PROTO_HEAD + 2);
    assert_int_equal(m.listlen, len - PROTO_HEAD - 2);
    const uint8_t *at = m.list;
    for (size_t i = 0; i < 2; i++) {
        const char *s;
        size_t n;
        proto_list_next(&at, &s, &n);
        assert_int_equal(n, 32);
        assert_memory_equal(s, items[i].id, 32);
        proto_list_next(&at, &s, &n);
        assert_int_equal(n, strlen(items[i].name));
        assert_memory_equal(s, items[i].name, n);
        proto_list_next(&at, &s, &n);
        assert_int_equal(n, strlen(items[i].endpoint));
        assert_memory_equal(s, items[i].endpoint, n);
        proto_list_next(&at, &s, &n);
        assert_int_equal(n, PROTO_KEY_LEN);
        assert_memory_equal(s, items[i].key, PROTO_KEY_LEN);
        char id[PROTO_ID_LEN + 1];
        proto_key_id((const uint8_t *) s, id);
        assert_string_equal(id, items[i].id);
    }
    assert_ptr_equal(at, buf + len);

    /* The same through the encoder. */
    proto_buf_t b = { 0 };
    proto_begin(&b, P_PEERS, 0, 6);
    proto_u16(&b, 2);
    for (size_t i = 0; i < 2; i++)
        s_peer_item(&b, items[i].id, items[i].name, items[i].endpoint, items[i].key,
                    PROTO_KEY_LEN);
    assert_false(b.failed);
    assert_int_equal(b.len, len);
    assert_memory_equal(b.data, buf, len);
    proto_free(&b);

    /* Every cut of it is refused. */
    for (size_t cut = 0; cut < len; cut++)
        assert_int_equal(s_decode(buf, cut, NULL), -EBADMSG);
}

static void test_proto_msg_roundtrip(void **state)
{
    (void) state;
    proto_buf_t b = { 0 };
    proto_msg_t m;

    s_msg(&b, P_F_CONFIRM, 5, P_KIND_SEND, 7, 0, ":3@alpha", "printer", "hello", 5);
    assert_int_equal(s_decode(b.data, b.len, &m), 0);
    s_expect_msg_example(&m);
    assert_int_equal(m.fromlen, 8);
    assert_int_equal(m.tolen, 7);

    s_msg(&b, 0, 6, P_KIND_REQUEST, 0xfedcba98, 30000, ":18@alpha", ":4@beta",
          s_binary, sizeof s_binary);
    assert_int_equal(s_decode(b.data, b.len, &m), 0);
    assert_int_equal(m.flags, 0);
    assert_int_equal(m.kind, P_KIND_REQUEST);
    assert_int_equal(m.cseq, 0xfedcba98);
    assert_int_equal(m.timeout, 30000);
    assert_memory_equal(m.from, ":18@alpha", m.fromlen);
    assert_memory_equal(m.to, ":4@beta", m.tolen);
    assert_int_equal(m.size, sizeof s_binary);
    assert_memory_equal(m.data, s_binary, sizeof s_binary);

    /* An empty payload is a payload. */
    s_msg(&b, 0, 7, P_KIND_SEND, 1, 0, ":1@a", "x", NULL, 0);
    assert_int_equal(s_decode(b.data, b.len, &m), 0);
    assert_int_equal(m.size, 0);
    assert_ptr_equal(m.data, b.data + b.len);
    proto_free(&b);
}

static void test_proto_msg_large_payload(void **state)
{
    (void) state;
    size_t size = (size_t) 1 << 20;
    uint8_t *payload = malloc(size);
    assert_non_null(payload);
    for (size_t i = 0; i < size; i++)
        payload[i] = (uint8_t) (i * 31 + 7);
    proto_buf_t b = { 0 };
    proto_msg_t m;
    s_msg(&b, 0, 1, P_KIND_SEND, 1, 0, ":1@a", "big", payload, size);
    assert_int_equal(b.len, PROTO_HEAD + 1 + 4 + 4 + 5 + 4 + 1 + strlen(S_USER) + 4 + size);
    assert_true(b.cap >= b.len);
    assert_int_equal(s_decode(b.data, b.len, &m), 0);
    assert_int_equal(m.size, size);
    assert_memory_equal(m.data, payload, size);
    proto_free(&b);
    free(payload);
}

static void test_proto_reply_pub_ack_roundtrip(void **state)
{
    (void) state;
    proto_buf_t b = { 0 };
    proto_msg_t m;

    s_reply(&b, 11, 0x80000001, ":18@alpha", ":4@beta", "answer", 6);
    assert_int_equal(s_decode(b.data, b.len, &m), 0);
    assert_int_equal(m.type, P_REPLY);
    assert_int_equal(m.seq, 11);
    assert_int_equal(m.cseq, 0x80000001);
    /* to comes first on the wire, then from. */
    assert_int_equal(m.tolen, 9);
    assert_memory_equal(m.to, ":18@alpha", 9);
    assert_ptr_equal(m.to, b.data + 13);
    assert_int_equal(m.fromlen, 7);
    assert_memory_equal(m.from, ":4@beta", 7);
    assert_int_equal(m.size, 6);
    assert_memory_equal(m.data, "answer", 6);

    s_pub(&b, 12, 0xc0ffee01, "sensors.temp", ":2@beta", s_binary, sizeof s_binary);
    assert_int_equal(s_decode(b.data, b.len, &m), 0);
    assert_int_equal(m.type, P_PUB);
    assert_int_equal(m.seq, 12);
    /* The publisher's seq comes first; the topic comes back in the to
       field. */
    assert_int_equal(m.cseq, 0xc0ffee01);
    assert_int_equal(m.tolen, 12);
    assert_memory_equal(m.to, "sensors.temp", 12);
    assert_ptr_equal(m.to, b.data + 13);
    assert_int_equal(m.fromlen, 7);
    assert_memory_equal(m.from, ":2@beta", m.fromlen);
    assert_int_equal(m.size, sizeof s_binary);
    assert_memory_equal(m.data, s_binary, m.size);

    s_ack(&b, 13, 0xdeadbeef, ":1@alpha");
    assert_int_equal(s_decode(b.data, b.len, &m), 0);
    assert_int_equal(m.type, P_ACK);
    assert_int_equal(m.seq, 13);
    assert_int_equal(m.cseq, 0xdeadbeef);
    assert_int_equal(m.tolen, 8);
    assert_memory_equal(m.to, ":1@alpha", 8);
    proto_free(&b);
}

static void test_proto_fail_roundtrip(void **state)
{
    (void) state;
    proto_buf_t b = { 0 };
    proto_msg_t m;
    s_fail(&b, 4, ENOENT, 7, WIRE_SEND, ":3@alpha", "printer", "no such name");
    assert_int_equal(s_decode(b.data, b.len, &m), 0);
    s_expect_fail_example(&m);      /* what comes back in the kind field */
    assert_int_equal(m.textlen, 12);
    assert_memory_equal(m.text, "no such name", 12);

    /* The answer to a HELLO of another version (section 13): seq, cseq and
       what 0, to and name empty, only a text. */
    s_fail(&b, 0, EPROTO, 0, 0, "", "", "protocol version not supported");
    assert_int_equal(s_decode(b.data, b.len, &m), 0);
    assert_int_equal(m.error, EPROTO);
    assert_int_equal(m.seq + m.cseq + m.kind, 0);
    assert_int_equal(m.tolen + m.namelen, 0);
    assert_int_equal(m.textlen, strlen("protocol version not supported"));
    assert_memory_equal(m.text, "protocol version not supported", m.textlen);

    /* Only to is required, outside that answer. */
    s_fail(&b, 1, 1, 0, 0, ":1@a", "", "");
    assert_int_equal(s_decode(b.data, b.len, &m), 0);
    assert_int_equal(m.tolen, 4);
    assert_int_equal(m.namelen + m.textlen, 0);
    /* A FAIL about a PUB names the publisher's seq. */
    s_fail(&b, 2, EMSGSIZE, 0xc0ffee01, WIRE_PUBLISH, ":2@beta", "sensors.temp", "too large");
    assert_int_equal(s_decode(b.data, b.len, &m), 0);
    assert_int_equal(m.cseq, 0xc0ffee01);
    assert_int_equal(m.kind, WIRE_PUBLISH);
    proto_free(&b);
}

static void test_proto_ping_pong_bye_credit_roundtrip(void **state)
{
    (void) state;
    proto_buf_t b = { 0 };
    proto_msg_t m;
    static const uint64_t stamps[] = { 0, 1, 0x0102030405060708ull, UINT64_MAX };
    for (size_t i = 0; i < 4; i++)
        for (uint8_t t = P_PING; t <= P_PONG; t++) {
            s_u64_msg(&b, t, (uint32_t) i, stamps[i]);
            assert_int_equal(b.len, 16);
            assert_int_equal(s_decode(b.data, b.len, &m), 0);
            assert_int_equal(m.type, t);
            assert_int_equal(m.seq, i);
            assert_true(m.stamp == stamps[i]);
        }

    proto_begin(&b, P_BYE, 0, 99);
    assert_int_equal(b.len, PROTO_HEAD);
    assert_int_equal(s_decode(b.data, b.len, &m), 0);
    assert_int_equal(m.type, P_BYE);
    assert_int_equal(m.seq, 99);

    s_credit(&b, 5, 0xffffffff, 39);
    assert_int_equal(s_decode(b.data, b.len, &m), 0);
    assert_int_equal(m.type, P_CREDIT);
    assert_int_equal(m.ack, 0xffffffff);
    assert_int_equal(m.credit, 39);
    proto_free(&b);
}

/* Flags other than CONFIRM, and on every type, are not looked at. */
static void test_proto_flags_travel_unchanged(void **state)
{
    (void) state;
    static sample_t s[MAX_SAMPLES];
    size_t n = s_samples(s);
    for (size_t i = 0; i < n; i++) {
        for (unsigned f = 0; f < 256; f += 0x11) {
            s[i].bytes[3] = (uint8_t) f;
            proto_msg_t m;
            assert_int_equal(s_decode(s[i].bytes, s[i].len, &m), 0);
            assert_int_equal(m.flags, f);
        }
    }
    s_free_samples(s, n);
}

/* --- the spec's examples ------------------------------------------------- */

static void test_proto_spec_examples_decode(void **state)
{
    (void) state;
    proto_msg_t m;

    assert_int_equal(s_decode(s_ex_hello, sizeof s_ex_hello, &m), 0);
    assert_int_equal(m.type, P_HELLO);
    assert_int_equal(m.seq, 1);
    assert_memory_equal(m.id, ID_A, 32);
    assert_memory_equal(m.name, "alpha", m.namelen);
    assert_int_equal(m.clusterlen, 6);
    assert_memory_equal(m.cluster, "ipcnet", 6);
    assert_int_equal(m.port, 5680);
    assert_true(m.incarnation == 0x8e3b1f2a6c4d5e07ull);
    assert_int_equal(m.heartbeat, 500);
    assert_int_equal(sizeof s_ex_hello, 68);

    assert_int_equal(s_decode(s_ex_hello_ack, sizeof s_ex_hello_ack, &m), 0);
    assert_int_equal(m.type, P_HELLO_ACK);
    assert_int_equal(m.seq, 0);
    assert_memory_equal(m.id, ID_B, 32);
    assert_memory_equal(m.name, "beta", m.namelen);
    assert_true(m.incarnation == 0x13579bdf2468ace0ull);

    static const char *const names[] = { "printer", "sensors.temp" };
    assert_int_equal(s_decode(s_ex_names, sizeof s_ex_names, &m), 0);
    assert_int_equal(m.type, P_NAMES_ADD);
    assert_int_equal(m.seq, 2);
    s_assert_items(&m, names, 2);

    assert_int_equal(s_decode(s_ex_msg, sizeof s_ex_msg, &m), 0);
    s_expect_msg_example(&m);

    assert_int_equal(s_decode(s_ex_fail, sizeof s_ex_fail, &m), 0);
    s_expect_fail_example(&m);
    assert_memory_equal(m.text, "no such name", m.textlen);

    assert_int_equal(s_decode(s_ex_credit, sizeof s_ex_credit, &m), 0);
    assert_int_equal(m.type, P_CREDIT);
    assert_int_equal(m.seq, 5);
    assert_int_equal(m.ack, 5);
    /* The CREDIT covers exactly the MSG of 14.4. */
    assert_int_equal(m.credit, sizeof s_ex_msg);

    assert_int_equal(s_decode(s_ex_pub, sizeof s_ex_pub, &m), 0);
    assert_int_equal(m.type, P_PUB);
    assert_int_equal(m.flags, 0);
    assert_int_equal(m.seq, 6);
    assert_int_equal(m.cseq, 12);
    assert_int_equal(m.tolen, 12);
    assert_memory_equal(m.to, "sensors.temp", 12);
    assert_int_equal(m.fromlen, 7);
    assert_memory_equal(m.from, ":2@beta", 7);
    assert_int_equal(m.uid, 1001);
    assert_int_equal(m.userlen, 3);
    assert_memory_equal(m.user, "bob", 3);
    assert_int_equal(m.size, 4);
    assert_memory_equal(m.data, "21.5", 4);
    assert_int_equal(sizeof s_ex_pub, 45);

    assert_int_equal(s_decode(s_ex_refuse, sizeof s_ex_refuse, &m), 0);
    assert_int_equal(m.type, P_FAIL);
    assert_int_equal(m.seq, 0);
    assert_int_equal(m.error, EACCES);
    assert_int_equal(m.cseq, 0);
    assert_int_equal(m.kind, 0);
    assert_int_equal(m.tolen + m.namelen, 0);
    assert_int_equal(m.textlen, 15);
    assert_memory_equal(m.text, "another cluster", 15);

    assert_int_equal(s_decode(s_ex_batch, sizeof s_ex_batch, &m), 0);
    assert_int_equal(m.type, P_BATCH);
    assert_int_equal(m.flags, 0);
    assert_int_equal(m.seq, 0);
    assert_int_equal(m.count, 2);
    assert_int_equal(sizeof s_ex_batch, 124);
    const uint8_t *at = m.list;
    for (unsigned i = 0; i < 2; i++) {
        const uint8_t *item;
        size_t len;
        proto_msg_t im;
        proto_batch_next(&at, &item, &len);
        assert_int_equal(len, 53);
        assert_int_equal(s_decode(item, len, &im), 0);
        assert_int_equal(im.type, P_MSG);
        assert_int_equal(im.flags, 0);
        assert_int_equal(im.seq, 7 + i);
        assert_int_equal(im.kind, P_KIND_SEND);
        assert_int_equal(im.cseq, 13 + i);
        assert_int_equal(im.timeout, 0);
        assert_int_equal(im.fromlen, 7);
        assert_memory_equal(im.from, ":2@beta", 7);
        assert_int_equal(im.uid, 1001);
        assert_int_equal(im.userlen, 3);
        assert_memory_equal(im.user, "bob", 3);
        assert_int_equal(im.tolen, 13);
        assert_memory_equal(im.to, "printer@alpha", 13);
        assert_int_equal(im.size, 6);
        assert_memory_equal(im.data, i ? "page 2" : "page 1", 6);
    }
    assert_ptr_equal(at, m.list + m.listlen);

    assert_int_equal(s_decode(s_ex_key, sizeof s_ex_key, &m), 0);
    assert_int_equal(m.type, P_KEY);
    assert_int_equal(m.flags, 0);
    assert_int_equal(m.seq, 0);
    assert_int_equal(sizeof s_ex_key, 48);
    assert_true(m.stamp == 0x0123456789abcdefull);
    assert_ptr_equal(m.key, s_ex_key + 16);
    /* The key's id is beta's. */
    char id[PROTO_ID_LEN + 1];
    proto_key_id(m.key, id);
    assert_string_equal(id, ID_B);

    assert_int_equal(s_decode(s_ex_reply, sizeof s_ex_reply, &m), 0);
    assert_int_equal(m.type, P_REPLY);
    assert_int_equal(m.flags, 0);
    assert_int_equal(m.seq, 9);
    assert_int_equal(m.cseq, 9);
    assert_int_equal(m.tolen, 8);
    assert_memory_equal(m.to, ":3@alpha", 8);
    assert_int_equal(m.fromlen, 7);
    assert_memory_equal(m.from, ":4@beta", 7);
    /* A uid without a name: its number in decimal is the user. */
    assert_int_equal(m.uid, 4242);
    assert_int_equal(m.userlen, 4);
    assert_memory_equal(m.user, "4242", 4);
    assert_int_equal(m.size, 5);
    assert_memory_equal(m.data, "12:00", 5);
    assert_int_equal(sizeof s_ex_reply, 43);

    assert_int_equal(s_decode(s_ex_records, sizeof s_ex_records, &m), 0);
    assert_int_equal(m.type, P_STORE_RECORDS);
    assert_int_equal(m.seq, 12);
    assert_int_equal(m.count, 1);
    assert_int_equal(sizeof s_ex_records, 60);
    const uint8_t *rat = m.list;
    proto_record_t r;
    proto_record_next(&rat, &r);
    assert_true(r.stamp == 0x01a23bc696000000ull);
    assert_true((r.stamp >> 16) == 1796299200000ull);
    assert_memory_equal(r.origin, s_ex_records + 18, 16);
    char oid[PROTO_ID_LEN + 1];
    proto_hex(r.origin, 16, oid);
    assert_string_equal(oid, ID_A);
    assert_int_equal(r.flags, 0);
    assert_int_equal(r.ttl, 0);
    assert_int_equal(r.uid, 1000);
    assert_int_equal(r.keylen, 8);
    assert_memory_equal(r.key, "cfg.mode", 8);
    assert_int_equal(r.size, 4);
    assert_memory_equal(r.value, "fast", 4);

    /* The sizes the spec's text gives: 14.4 is 49 bytes, as 14.6 counts. */
    assert_int_equal(sizeof s_ex_msg, 49);
}

/* The store's messages: a record encoded as 14.12, a digest of exactly
   1024 buckets, and what the decoder refuses. */
static void test_proto_store_messages(void **state)
{
    (void) state;
    proto_buf_t b = { 0 };
    proto_list_begin(&b, P_STORE_RECORDS);
    proto_record_t r = { 0x01a23bc696000000ull, s_ex_records + 18, 0, 0, 1000, "cfg.mode", 8,
                         (const uint8_t *) "fast", 4 };
    proto_record_add(&b, &r);
    proto_set_seq(&b, 12);
    assert_int_equal(b.len, sizeof s_ex_records);
    assert_memory_equal(b.data, s_ex_records, b.len);

    proto_msg_t m;
    uint8_t *bad = hexdump_dup(s_ex_records, sizeof s_ex_records);
    bad[34] = 0x04;                     /* an unknown flag */
    assert_int_equal(proto_decode(bad, sizeof s_ex_records, &m), -EBADMSG);
    bad[34] = PROTO_STORE_DELETED;      /* a deletion with a value */
    assert_int_equal(proto_decode(bad, sizeof s_ex_records, &m), -EBADMSG);
    bad[34] = 0;
    bad[44] = ' ';                      /* a key that is not a name */
    assert_int_equal(proto_decode(bad, sizeof s_ex_records, &m), -EBADMSG);
    bad[44] = 'c';
    bad[9] = 0;                         /* no record */
    assert_int_equal(proto_decode(bad, sizeof s_ex_records, &m), -EBADMSG);
    bad[9] = 2;                         /* more records than there are */
    assert_int_equal(proto_decode(bad, sizeof s_ex_records, &m), -EBADMSG);
    free(bad);

    /* A digest: 1024 buckets of (count, hash), no more, no fewer. */
    proto_begin(&b, P_STORE_DIGEST, 0, 3);
    proto_u16(&b, PROTO_STORE_BUCKETS);
    for (unsigned i = 0; i < PROTO_STORE_BUCKETS; i++) {
        proto_u32(&b, i);
        proto_u64(&b, 0x0123456789abcdefull ^ i);
    }
    assert_int_equal(b.len, 12298);
    assert_int_equal(s_decode(b.data, b.len, &m), 0);
    assert_int_equal(m.type, P_STORE_DIGEST);
    assert_int_equal(m.count, PROTO_STORE_BUCKETS);
    assert_int_equal(wire_get32(m.list + 12 * 5), 5);
    assert_int_equal(s_decode(b.data, b.len - 1, &m), -EBADMSG);
    b.data[PROTO_HEAD + 1] = 0xff;      /* 1023 buckets said, 1024 there */
    assert_int_equal(s_decode(b.data, b.len, &m), -EBADMSG);

    /* Codes between the known ones are unknown. */
    for (uint8_t t = P_KEY + 1; t < P_STORE_RECORDS; t++) {
        uint8_t head[PROTO_HEAD] = { PROTO_SIG, PROTO_VERSION, t, 0, 0, 0, 0, 1 };
        assert_int_equal(s_decode(head, sizeof head, &m), -EBADMSG);
    }
    proto_free(&b);
}

/* Encoding the examples' fields from scratch gives the examples' bytes. */
static void test_proto_spec_examples_encode(void **state)
{
    (void) state;
    static const char *const names[] = { "printer", "sensors.temp" };
    proto_buf_t b = { 0 };
    s_hello(&b, 1, ID_A, "alpha", "ipcnet", 5680, 0x8e3b1f2a6c4d5e07ull, 500);
    assert_int_equal(b.len, sizeof s_ex_hello);
    assert_memory_equal(b.data, s_ex_hello, b.len);
    s_hello_ack(&b, 0, ID_B, "beta", 0x13579bdf2468ace0ull);
    assert_int_equal(b.len, sizeof s_ex_hello_ack);
    assert_memory_equal(b.data, s_ex_hello_ack, b.len);
    s_list(&b, P_NAMES_ADD, 2, 2, names, 2);
    assert_int_equal(b.len, sizeof s_ex_names);
    assert_memory_equal(b.data, s_ex_names, b.len);
    s_msg(&b, P_F_CONFIRM, 5, P_KIND_SEND, 7, 0, ":3@alpha", "printer", "hello", 5);
    assert_int_equal(b.len, sizeof s_ex_msg);
    assert_memory_equal(b.data, s_ex_msg, b.len);
    s_fail(&b, 4, ENOENT, 7, WIRE_SEND, ":3@alpha", "printer", "no such name");
    assert_int_equal(b.len, sizeof s_ex_fail);
    assert_memory_equal(b.data, s_ex_fail, b.len);
    s_credit(&b, 5, 5, sizeof s_ex_msg);
    assert_int_equal(b.len, sizeof s_ex_credit);
    assert_memory_equal(b.data, s_ex_credit, b.len);
    s_data_from(&b, P_PUB, 6, 12, "sensors.temp", ":2@beta", 1001, "bob", 3, "21.5", 4);
    assert_int_equal(b.len, sizeof s_ex_pub);
    assert_memory_equal(b.data, s_ex_pub, b.len);
    s_fail(&b, 0, EACCES, 0, 0, "", "", "another cluster");
    assert_int_equal(b.len, sizeof s_ex_refuse);
    assert_memory_equal(b.data, s_ex_refuse, b.len);

    /* The BATCH of 14.9: its items are encoded alone, then framed. */
    proto_buf_t one = { 0 }, two = { 0 };
    s_msg_from(&one, 0, 7, P_KIND_SEND, 13, 0, ":2@beta", 1001, "bob", 3, "printer@alpha",
               "page 1", 6);
    s_msg_from(&two, 0, 8, P_KIND_SEND, 14, 0, ":2@beta", 1001, "bob", 3, "printer@alpha",
               "page 2", 6);
    const example_t items[] = { { one.data, one.len }, { two.data, two.len } };
    s_batch(&b, 0, 2, items, 2);
    assert_false(b.failed);
    assert_int_equal(b.len, sizeof s_ex_batch);
    assert_memory_equal(b.data, s_ex_batch, b.len);

    /* The KEY of 14.10: beta's key, made from its id and 00 11 .. ff. */
    uint8_t key[PROTO_KEY_LEN];
    s_key_for(ID_B, key);
    s_key_msg(&b, 0, 0x0123456789abcdefull, key, sizeof key);
    assert_int_equal(b.len, sizeof s_ex_key);
    assert_memory_equal(b.data, s_ex_key, b.len);

    /* The REPLY of 14.11. */
    s_data_from(&b, P_REPLY, 9, 9, ":3@alpha", ":4@beta", 4242, "4242", 4, "12:00", 5);
    assert_int_equal(b.len, sizeof s_ex_reply);
    assert_memory_equal(b.data, s_ex_reply, b.len);
    proto_free(&one);
    proto_free(&two);
    proto_free(&b);
}

static void test_proto_spec_examples_match_doc(void **state)
{
    (void) state;
    static hexdump_block_t blocks[HEXDUMP_MAX_BLOCKS];
    size_t n = hexdump_read_spec(SPEC, blocks);
    assert_int_equal(n, N_EXAMPLES);
    for (size_t i = 0; i < n; i++)
        hexdump_expect_block(&blocks[i], s_examples[i].bytes, s_examples[i].len);
}

/* The table of section 6 gives each type's code and the length of its
   shortest valid message; the codec must agree with both. */
static void test_proto_spec_type_table_matches(void **state)
{
    (void) state;
    static sample_t mins[N_TYPES];
    size_t nmin = s_minimal(mins);
    FILE *in = hexdump_open_spec(SPEC);
    char line[512];
    bool seen[N_TYPES + 1] = { false };
    size_t rows = 0;
    while (fgets(line, sizeof line, in)) {
        unsigned code, min;
        char *p = strstr(line, "| `0x");
        /* The last column: "ack, bytes | 16 bytes |" has two. */
        char *q = NULL;
        for (char *r = strstr(line, " bytes |"); r; r = strstr(r + 1, " bytes |"))
            q = r;
        if (line[0] != '|' || !p || !q || sscanf(p, "| `0x%x`", &code) != 1)
            continue;
        while (q > line && q[-1] >= '0' && q[-1] <= '9')
            q--;
        assert_int_equal(sscanf(q, "%u bytes |", &min), 1);
        assert_true(code >= 1 && code <= N_TYPES);
        assert_false(seen[code]);
        seen[code] = true;
        rows++;
        if (mins[code - 1].len != min)
            fail_msg("type 0x%02x: the spec says %u bytes, the shortest is %zu",
                     code, min, mins[code - 1].len);
        assert_int_equal(mins[code - 1].bytes[2], code);
    }
    fclose(in);
    assert_int_equal(rows, N_TYPES);
    s_free_samples(mins, nmin);
}

/* --- the head ------------------------------------------------------------ */

static void test_proto_decode_short_or_unsigned(void **state)
{
    (void) state;
    proto_msg_t m;
    /* Fewer than 8 bytes is never a message, whatever they say. */
    for (size_t len = 0; len < PROTO_HEAD; len++)
        assert_int_equal(s_decode(s_ex_hello, len, &m), -EBADMSG);
    static const uint8_t ours[7] = { PROTO_SIG, PROTO_VERSION, P_BYE, 0, 0, 0, 1 };
    assert_int_equal(s_decode(ours, sizeof ours, &m), -EBADMSG);
    static const uint8_t v1[7] = { PROTO_SIG, 1, P_HELLO, 0, 0, 0, 1 };
    assert_int_equal(s_decode(v1, sizeof v1, &m), -EBADMSG);
    static const uint8_t v3[7] = { PROTO_SIG, PROTO_VERSION + 1, P_HELLO, 0, 0, 0, 1 };
    assert_int_equal(s_decode(v3, sizeof v3, &m), -EBADMSG);

    uint8_t buf[sizeof s_ex_credit];
    for (unsigned sig = 0; sig < 256; sig++) {
        if (sig == PROTO_SIG)
            continue;
        memcpy(buf, s_ex_credit, sizeof buf);
        buf[0] = (uint8_t) sig;
        assert_int_equal(s_decode(buf, sizeof buf, &m), -EBADMSG);
        buf[1] = PROTO_VERSION + 1;     /* a wrong signature wins over a wrong version */
        assert_int_equal(s_decode(buf, sizeof buf, &m), -EBADMSG);
        buf[1] = 1;
        assert_int_equal(s_decode(buf, sizeof buf, &m), -EBADMSG);
    }
}

static void test_proto_decode_wrong_version(void **state)
{
    (void) state;
    static sample_t s[MAX_SAMPLES];
    size_t n = s_samples(s);
    for (size_t i = 0; i < n; i++) {
        for (unsigned v = 0; v < 256; v++) {
            if (v == PROTO_VERSION)
                continue;
            s[i].bytes[1] = (uint8_t) v;
            proto_msg_t m;
            memset(&m, 0x5a, sizeof m);
            assert_int_equal(proto_decode(s[i].bytes, s[i].len, &m), -EPROTO);
            assert_int_equal(m.version, v);
            assert_int_equal(m.type, s[i].bytes[2]);
            assert_int_equal(m.flags, s[i].bytes[3]);
            assert_int_equal(m.seq, wire_get32(s[i].bytes + 4));
            /* Nothing of the body is decoded. */
            assert_null(m.id);
            assert_null(m.data);
            assert_null(m.key);
            assert_int_equal(m.count, 0);
            assert_int_equal(s_decode(s[i].bytes, s[i].len, NULL), -EPROTO);
        }
        s[i].bytes[1] = PROTO_VERSION;
    }
    s_free_samples(s, n);

    /* Whatever the body, even none or an unknown type: the head is read.
       The next version and the ones before are other versions. */
    assert_int_equal(PROTO_VERSION, 3);
    static const uint8_t others[] = { PROTO_VERSION + 1, 2, 1 };
    for (size_t i = 0; i < N_OF(others); i++) {
        uint8_t head[PROTO_HEAD + 3] = {
            PROTO_SIG, others[i], 0xee, 0x81, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3,
        };
        for (size_t len = PROTO_HEAD; len <= sizeof head; len++) {
            proto_msg_t m;
            assert_int_equal(s_decode(head, len, &m), -EPROTO);
            assert_int_equal(m.version, others[i]);
            assert_int_equal(m.type, 0xee);
            assert_int_equal(m.flags, 0x81);
            assert_int_equal(m.seq, 0xdeadbeef);
        }
    }

    /* A well-formed message of version 1 (the spec's HELLO of 14.1, as
       version 1 had it) is of another version now, and so is a version 1
       PEERS, whose items had no key. */
    uint8_t v1[sizeof s_ex_hello];
    memcpy(v1, s_ex_hello, sizeof v1);
    v1[1] = 1;
    proto_msg_t m;
    assert_int_equal(s_decode(v1, sizeof v1, &m), -EPROTO);
    assert_int_equal(m.version, 1);
    assert_int_equal(m.type, P_HELLO);
    assert_int_equal(m.seq, 1);
    proto_buf_t b = { 0 };
    proto_begin(&b, P_PEERS, 0, 3);
    proto_u16(&b, 1);
    s_str(&b, ID_A);
    s_str(&b, "alpha");
    s_str(&b, "tcp://h:1");
    assert_false(b.failed);
    b.data[1] = 1;
    assert_int_equal(s_decode(b.data, b.len, &m), -EPROTO);
    assert_int_equal(m.version, 1);
    assert_int_equal(m.type, P_PEERS);
    /* The same under version 3 is malformed: the key is missing. */
    b.data[1] = PROTO_VERSION;
    assert_int_equal(s_try(&b), -EBADMSG);

    /* Version 2's MSG, REPLY and PUB had no uid and user (section 13):
       under version 2 they are of another version, under version 3
       malformed, or (with a payload) other fields than were sent. */
    proto_begin(&b, P_MSG, P_F_CONFIRM, 5);         /* 14.4 as version 2 had it */
    proto_u8(&b, P_KIND_SEND);
    proto_u32(&b, 7);
    proto_u32(&b, 0);
    s_str(&b, ":3@alpha");
    s_str(&b, "printer");
    proto_bytes(&b, "hello", 5);
    assert_false(b.failed);
    assert_int_equal(b.len, 39);
    b.data[1] = 2;
    assert_int_equal(s_decode(b.data, b.len, &m), -EPROTO);
    assert_int_equal(m.version, 2);
    assert_int_equal(m.type, P_MSG);
    assert_int_equal(m.seq, 5);
    assert_null(m.user);
    b.data[1] = PROTO_VERSION;
    /* to's length byte and "pri" are read as the uid, 'n' (110) as the
       user's length */
    assert_int_equal(s_try(&b), -EBADMSG);
    proto_begin(&b, P_PUB, 0, 6);                   /* 14.7 as version 2 had it */
    proto_u32(&b, 12);
    s_str(&b, "sensors.temp");
    s_str(&b, ":2@beta");
    proto_bytes(&b, "21.5", 4);
    assert_false(b.failed);
    b.data[1] = 2;
    assert_int_equal(s_decode(b.data, b.len, NULL), -EPROTO);
    b.data[1] = PROTO_VERSION;
    assert_int_equal(s_try(&b), -EBADMSG);          /* no room for the user's length */
    proto_begin(&b, P_REPLY, 0, 6);
    proto_u32(&b, 9);
    s_str(&b, ":3@alpha");
    s_str(&b, ":4@beta");
    assert_false(b.failed);
    b.data[1] = 2;
    assert_int_equal(s_decode(b.data, b.len, NULL), -EPROTO);
    b.data[1] = PROTO_VERSION;
    assert_int_equal(s_try(&b), -EBADMSG);
}

static void test_proto_decode_unknown_types(void **state)
{
    (void) state;
    uint8_t buf[PROTO_HEAD + 16];
    memset(buf, 0, sizeof buf);
    buf[0] = PROTO_SIG;
    buf[1] = PROTO_VERSION;
    for (unsigned t = 0; t < 256; t++) {
        if (t >= P_HELLO && t <= P_KEY)
            continue;
        buf[2] = (uint8_t) t;
        for (size_t len = PROTO_HEAD; len <= sizeof buf; len++)
            assert_int_equal(s_decode(buf, len, NULL), -EBADMSG);
    }
}

static void test_proto_decode_leaves_ret_on_failure(void **state)
{
    (void) state;
    proto_msg_t m, before;
    memset(&m, 0x5a, sizeof m);
    before = m;
    uint8_t buf[sizeof s_ex_msg];
    memcpy(buf, s_ex_msg, sizeof buf);
    buf[8] = 3;         /* kind 3 */
    assert_int_equal(proto_decode(buf, sizeof buf, &m), -EBADMSG);
    assert_memory_equal(&m, &before, sizeof m);
    assert_int_equal(proto_decode(buf, 3, &m), -EBADMSG);
    assert_memory_equal(&m, &before, sizeof m);
}

/* --- malformed input ----------------------------------------------------- */

static void test_proto_decode_trailing_bytes(void **state)
{
    (void) state;
    static sample_t s[MAX_SAMPLES];
    size_t n = s_samples(s);
    for (size_t i = 0; i < n; i++) {
        size_t len = s[i].len, at = s_payload_at(s[i].bytes, len);
        for (size_t extra = 1; extra <= 3; extra++) {
            uint8_t *longer = malloc(len + extra);
            assert_non_null(longer);
            memcpy(longer, s[i].bytes, len);
            memset(longer + len, 0, extra);
            proto_msg_t m;
            int rc = s_decode(longer, len + extra, &m);
            if (at) {
                /* A payload runs to the end: the bytes are payload. */
                assert_int_equal(rc, 0);
                assert_int_equal(m.size, len + extra - at);
            } else
                assert_int_equal(rc, -EBADMSG);
            free(longer);
        }
    }
    s_free_samples(s, n);
}

/* A message cut short is refused, except a MSG, REPLY or PUB cut inside its
   payload, which is a message with a shorter payload. */
static void test_proto_decode_cut_at_every_length(void **state)
{
    (void) state;
    static sample_t s[MAX_SAMPLES];
    size_t n = s_samples(s);
    size_t shorter = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = s[i].len, at = s_payload_at(s[i].bytes, len);
        proto_msg_t whole;
        assert_int_equal(s_decode(s[i].bytes, len, &whole), 0);
        for (size_t cut = 0; cut < len; cut++) {
            proto_msg_t m;
            int rc = s_decode(s[i].bytes, cut, &m);
            if (!at || cut < at) {
                if (rc != -EBADMSG)
                    fail_msg("sample %zu (type 0x%02x) cut at %zu of %zu: %d",
                             i, s[i].bytes[2], cut, len, rc);
                continue;
            }
            assert_int_equal(rc, 0);
            assert_int_equal(m.size, cut - at);
            assert_ptr_equal(m.data, s[i].bytes + at);
            assert_int_equal(m.cseq, whole.cseq);
            assert_int_equal(m.fromlen, whole.fromlen);
            assert_int_equal(m.tolen, whole.tolen);
            shorter++;
        }
    }
    assert_true(shorter > 0);
    s_free_samples(s, n);
}

/* Whatever one byte becomes, the message is refused, or is of another
   version, or decodes to views inside it that encode back to it. */
static void test_proto_decode_flip_every_byte(void **state)
{
    (void) state;
    static sample_t s[MAX_SAMPLES];
    size_t n = s_samples(s);
    size_t accepted = 0, refused = 0, other = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t *msg = s[i].bytes;
        size_t len = s[i].len;
        for (size_t at = 0; at < len; at++) {
            uint8_t orig = msg[at];
            const uint8_t values[] = {
                0x00, 0x01, 0x02, 0x20, 0x2a, 0x7f, 0x80, 0xfe, 0xff,
                orig ^ 0x01, orig ^ 0x20, orig ^ 0x80, (uint8_t) (orig + 1), (uint8_t) (orig - 1),
            };
            for (size_t v = 0; v < sizeof values; v++) {
                if (values[v] == orig)
                    continue;
                msg[at] = values[v];
                int rc = s_decode(msg, len, NULL);
                if (rc == 0)
                    accepted++;
                else if (rc == -EPROTO)
                    other++;
                else
                    refused++;
            }
            msg[at] = orig;
        }
    }
    /* All three happen: seq and numbers are free, lengths and names not. */
    assert_true(accepted > 0 && refused > 0 && other > 0);
    s_free_samples(s, n);
}

/* Many bytes changed at once, inserted or removed, from a fixed seed so
   that a failure can be replayed. */
static uint32_t s_rand(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return (uint32_t) (*x >> 16);
}

static void test_proto_decode_scrambled(void **state)
{
    (void) state;
    static sample_t s[MAX_SAMPLES];
    size_t n = s_samples(s);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    uint8_t buf[1024];
    size_t accepted = 0;
    for (unsigned round = 0; round < 200000; round++) {
        const sample_t *from = &s[s_rand(&x) % n];
        size_t len = from->len;
        assert_true(len <= sizeof buf);
        memcpy(buf, from->bytes, len);
        unsigned edits = 1 + s_rand(&x) % 4;
        for (unsigned e = 0; e < edits; e++) {
            unsigned what = s_rand(&x) % 4;
            size_t at = len ? s_rand(&x) % len : 0;
            if (what <= 1 && len)
                buf[at] = (uint8_t) s_rand(&x);             /* change a byte */
            else if (what == 2 && len < sizeof buf) {       /* insert one */
                memmove(buf + at + 1, buf + at, len - at);
                buf[at] = (uint8_t) s_rand(&x);
                len++;
            } else if (len) {                               /* remove one */
                memmove(buf + at, buf + at + 1, len - at - 1);
                len--;
            }
        }
        /* Keep the head mostly right, so that the bodies get fuzzed. */
        if (len >= 2 && s_rand(&x) % 8) {
            buf[0] = PROTO_SIG;
            buf[1] = PROTO_VERSION;
        }
        if (s_decode(buf, len, NULL) == 0)
            accepted++;
    }
    assert_true(accepted > 0);
    s_free_samples(s, n);
}

/* --- the rules of each type ---------------------------------------------- */

static const char *const s_bad_ids[] = {
    "", "5f0c3e9a7b214d68a1e2c3b4d5f6071",        /* 31 */
    "5f0c3e9a7b214d68a1e2c3b4d5f607180",          /* 33 */
    "5F0C3E9A7B214D68A1E2C3B4D5F60718",           /* upper case */
    "5f0c3e9a7b214d68a1e2c3b4d5f6071g",
    "5f0c3e9a7b214d68 1e2c3b4d5f60718",
    "5f0c3e9a-7b21-4d68-a1e2-c3b4d5f6",
    "0x0c3e9a7b214d68a1e2c3b4d5f60718",
};
static const char *const s_bad_names[] = {
    "", ".", "-a", ".hidden", "a b", "a@b", "a*", "*", ":1", "caf\xc3\xa9", "tab\t",
};

static void test_proto_check_id(void **state)
{
    (void) state;
    static const char *const good[] = {
        ID_A, ID_B, "00000000000000000000000000000000",
        "ffffffffffffffffffffffffffffffff", "0123456789abcdef0123456789abcdef",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_int_equal(proto_check_id(good[i], strlen(good[i])), 0);
    for (size_t i = 0; i < sizeof s_bad_ids / sizeof s_bad_ids[0]; i++)
        if (proto_check_id(s_bad_ids[i], strlen(s_bad_ids[i])) != -EINVAL)
            fail_msg("id '%s' accepted", s_bad_ids[i]);
    /* Only len bytes count; a NUL inside is not hex. */
    assert_int_equal(proto_check_id(ID_A "ff", 32), 0);
    char nul[32];
    memcpy(nul, ID_A, 32);
    nul[16] = '\0';
    assert_int_equal(proto_check_id(nul, 32), -EINVAL);
    for (unsigned c = 0; c < 256; c++) {
        memcpy(nul, ID_A, 32);
        nul[31] = (char) c;
        bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
        assert_int_equal(proto_check_id(nul, 32), hex ? 0 : -EINVAL);
    }
}

static void test_proto_hello_rules(void **state)
{
    (void) state;
    proto_buf_t b = { 0 };
    for (size_t i = 0; i < sizeof s_bad_ids / sizeof s_bad_ids[0]; i++) {
        s_hello(&b, 1, s_bad_ids[i], "alpha", "ipcnet", 5680, 1, 500);
        assert_int_equal(s_try(&b), -EBADMSG);
        s_hello_ack(&b, 0, s_bad_ids[i], "beta", 1);
        assert_int_equal(s_try(&b), -EBADMSG);
    }
    for (size_t i = 0; i < sizeof s_bad_names / sizeof s_bad_names[0]; i++) {
        s_hello(&b, 1, ID_A, s_bad_names[i], "ipcnet", 5680, 1, 500);
        assert_int_equal(s_try(&b), -EBADMSG);
        s_hello_ack(&b, 0, ID_B, s_bad_names[i], 1);
        assert_int_equal(s_try(&b), -EBADMSG);
        /* The cluster is a name: not empty, no pattern, no '@'. */
        s_hello(&b, 1, ID_A, "alpha", s_bad_names[i], 5680, 1, 500);
        if (s_try(&b) != -EBADMSG)
            fail_msg("HELLO of cluster '%s' accepted", s_bad_names[i]);
    }
    static const char *const good_clusters[] = {
        "ipcnet", "c", "lab-2", "a.b_c/d", "_x", "0", "IPCNET",
    };
    for (size_t i = 0; i < N_OF(good_clusters); i++) {
        s_hello(&b, 1, ID_A, "alpha", good_clusters[i], 5680, 1, 500);
        if (s_try(&b) != 0)
            fail_msg("HELLO of cluster '%s' refused", good_clusters[i]);
    }
    /* Port and heartbeat 0 are refused; their smallest values are fine. */
    s_hello(&b, 1, ID_A, "alpha", "ipcnet", 0, 1, 500);
    assert_int_equal(s_try(&b), -EBADMSG);
    s_hello(&b, 1, ID_A, "alpha", "ipcnet", 5680, 1, 0);
    assert_int_equal(s_try(&b), -EBADMSG);
    s_hello(&b, 1, ID_A, "alpha", "ipcnet", 1, 0, 1);
    assert_int_equal(s_try(&b), 0);
    /* A HELLO of before the cluster (id, name, port, incarnation,
       heartbeat) does not parse: its port is read as a cluster's length. */
    proto_begin(&b, P_HELLO, 0, 1);
    s_str(&b, ID_A);
    s_str(&b, "alpha");
    proto_u16(&b, 5680);
    proto_u64(&b, 1);
    proto_u32(&b, 500);
    assert_int_equal(s_try(&b), -EBADMSG);
    /* A HELLO_ACK is not a HELLO: without cluster, port and heartbeat, and
       a HELLO's body under a HELLO_ACK type has bytes left over. */
    s_hello(&b, 1, ID_A, "alpha", "ipcnet", 5680, 1, 500);
    b.data[2] = P_HELLO_ACK;
    assert_int_equal(s_try(&b), -EBADMSG);
    s_hello_ack(&b, 0, ID_B, "beta", 1);
    b.data[2] = P_HELLO;
    assert_int_equal(s_try(&b), -EBADMSG);
}

/* Unique addresses (":N@node") and destinations, good and bad. */
static const char *const s_good_addresses[] = {
    ":1@a", ":3@alpha", ":18@beta.lan", ":9999999999999999999@n", ":42@_x/y-z.0",
    ":007@a",       /* leading zeros: still 1*19DIGIT, value 7 */
};
static const char *const s_bad_addresses[] = {
    "", ":", ":@a", ":0@a", ":00@a", ":1", ":1@", "1@a", "a@b", "printer",
    "printer@beta", ":x@a", ":1x@a", ":-1@a", ":+1@a", ": 1@a", ":1 @a", ":1@a b",
    ":1@.a", ":1@-a", ":1@a@b", ":1@@a", ":1@a*", ":1@*", "@a", ":1@a\n",
    ":12345678901234567890@a",      /* 20 digits */
    ":99999999999999999999@a",
};
static const char *const s_good_dests[] = {
    "printer", "printer@beta", ":4", ":4@beta", "a", "x/y-z_0@n.1",
    ":9999999999999999999", "_@_",
};
static const char *const s_bad_dests[] = {
    "", "@", "@beta", "printer@", "printer@beta@gamma", ":0", ":0@beta", ":", ":@b",
    ":x", ".printer", "-p", "a b", "*", "p*", "p*@b", "printer@.b", "printer@b c",
    ":12345678901234567890", "caf\xc3\xa9", "printer@b*",
};

/* The longest unique address and destination, 255 bytes each. */
static void s_longest(char *address, char *dest)
{
    memcpy(address, ":1234567890123456789@", 21);
    memset(address + 21, 'n', 234);
    address[255] = '\0';
    memset(dest, 'd', 120);
    dest[120] = '@';
    memset(dest + 121, 'm', 134);
    dest[255] = '\0';
}

/* Spec and test agree on which strings are addresses and destinations. */
static void test_proto_address_oracle(void **state)
{
    (void) state;
    for (size_t i = 0; i < N_OF(s_good_addresses); i++)
        assert_true(s_is_address(s_good_addresses[i], strlen(s_good_addresses[i])) &&
                    s_is_dest(s_good_addresses[i], strlen(s_good_addresses[i])));
    for (size_t i = 0; i < N_OF(s_bad_addresses); i++)
        assert_false(s_is_address(s_bad_addresses[i], strlen(s_bad_addresses[i])));
    for (size_t i = 0; i < N_OF(s_good_dests); i++)
        assert_true(s_is_dest(s_good_dests[i], strlen(s_good_dests[i])));
    for (size_t i = 0; i < N_OF(s_bad_dests); i++)
        assert_false(s_is_dest(s_bad_dests[i], strlen(s_bad_dests[i])));
}

static void test_proto_msg_rules(void **state)
{
    (void) state;
    proto_buf_t b = { 0 };
    for (unsigned kind = 0; kind < 256; kind++) {
        s_msg(&b, 0, 1, (uint8_t) kind, 1, 0, ":1@a", "x", "p", 1);
        bool ok = kind == P_KIND_SEND || kind == P_KIND_REQUEST;
        assert_int_equal(s_try(&b), ok ? 0 : -EBADMSG);
    }

    /* from: a unique address; to: a destination, any of the four kinds. */
    for (size_t i = 0; i < N_OF(s_good_addresses); i++) {
        s_msg(&b, 0, 1, P_KIND_SEND, 1, 0, s_good_addresses[i], "x", "p", 1);
        if (s_try(&b) != 0)
            fail_msg("MSG from '%s' refused", s_good_addresses[i]);
        s_msg(&b, 0, 1, P_KIND_REQUEST, 1, 0, ":1@a", s_good_addresses[i], "p", 1);
        if (s_try(&b) != 0)
            fail_msg("MSG to '%s' refused", s_good_addresses[i]);
    }
    for (size_t i = 0; i < N_OF(s_bad_addresses); i++) {
        s_msg(&b, 0, 1, P_KIND_SEND, 1, 0, s_bad_addresses[i], "x", "p", 1);
        if (s_try(&b) != -EBADMSG)
            fail_msg("MSG from '%s' accepted", s_bad_addresses[i]);
    }
    for (size_t i = 0; i < N_OF(s_good_dests); i++) {
        s_msg(&b, 0, 1, P_KIND_SEND, 1, 0, ":1@a", s_good_dests[i], "p", 1);
        if (s_try(&b) != 0)
            fail_msg("MSG to '%s' refused", s_good_dests[i]);
        /* A destination that is not a unique address is no sender. */
        if (!s_is_address(s_good_dests[i], strlen(s_good_dests[i]))) {
            s_msg(&b, 0, 1, P_KIND_SEND, 1, 0, s_good_dests[i], ":1@a", "p", 1);
            if (s_try(&b) != -EBADMSG)
                fail_msg("MSG from '%s' accepted", s_good_dests[i]);
        }
    }
    for (size_t i = 0; i < N_OF(s_bad_dests); i++) {
        s_msg(&b, 0, 1, P_KIND_SEND, 1, 0, ":1@a", s_bad_dests[i], "p", 1);
        if (s_try(&b) != -EBADMSG)
            fail_msg("MSG to '%s' accepted", s_bad_dests[i]);
    }

    char address[256], dest[256], name[256];
    s_longest(address, dest);
    memset(name, 'n', 255);
    name[255] = '\0';
    s_msg(&b, 0, 1, P_KIND_REQUEST, 1, 1, address, dest, NULL, 0);
    assert_int_equal(s_try(&b), 0);
    s_msg(&b, 0, 1, P_KIND_REQUEST, 1, 1, address, name, NULL, 0);
    assert_int_equal(s_try(&b), 0);
    /* A name of 255 bytes is not an address. */
    s_msg(&b, 0, 1, P_KIND_REQUEST, 1, 1, name, address, NULL, 0);
    assert_int_equal(s_try(&b), -EBADMSG);
    proto_free(&b);
}

static void test_proto_reply_pub_ack_rules(void **state)
{
    (void) state;
    proto_buf_t b = { 0 };

    /* REPLY: both to and from are unique addresses; a destination that is
       not one (a name, ":N" without its node) will not do. */
    for (size_t i = 0; i < N_OF(s_good_addresses); i++) {
        s_reply(&b, 1, 1, s_good_addresses[i], ":1@b", "p", 1);
        assert_int_equal(s_try(&b), 0);
        s_reply(&b, 1, 1, ":1@a", s_good_addresses[i], "p", 1);
        assert_int_equal(s_try(&b), 0);
    }
    for (size_t i = 0; i < N_OF(s_bad_addresses); i++) {
        s_reply(&b, 1, 1, s_bad_addresses[i], ":1@b", "p", 1);
        if (s_try(&b) != -EBADMSG)
            fail_msg("REPLY to '%s' accepted", s_bad_addresses[i]);
        s_reply(&b, 1, 1, ":1@a", s_bad_addresses[i], "p", 1);
        if (s_try(&b) != -EBADMSG)
            fail_msg("REPLY from '%s' accepted", s_bad_addresses[i]);
    }
    s_reply(&b, 1, 1, "printer", ":1@b", "p", 1);
    assert_int_equal(s_try(&b), -EBADMSG);
    s_reply(&b, 1, 1, ":4", ":1@b", "p", 1);
    assert_int_equal(s_try(&b), -EBADMSG);
    s_reply(&b, 1, 1, ":1@a", "printer@b", "p", 1);
    assert_int_equal(s_try(&b), -EBADMSG);

    char address[256], dest[256];
    s_longest(address, dest);
    s_reply(&b, 1, 1, address, address, NULL, 0);
    assert_int_equal(s_try(&b), 0);

    /* PUB: the topic is a name, not a pattern; the publisher a unique
       address. The cseq is any number. */
    for (size_t i = 0; i < N_OF(s_bad_names); i++) {
        s_pub(&b, 1, 1, s_bad_names[i], ":1@a", "p", 1);
        assert_int_equal(s_try(&b), -EBADMSG);
    }
    s_pub(&b, 1, 1, "sensors.*", ":1@a", "p", 1);
    assert_int_equal(s_try(&b), -EBADMSG);
    s_pub(&b, 1, 1, "sensors@beta", ":1@a", "p", 1);
    assert_int_equal(s_try(&b), -EBADMSG);
    for (size_t i = 0; i < N_OF(s_good_addresses); i++) {
        s_pub(&b, 1, 0, "topic", s_good_addresses[i], "p", 1);
        assert_int_equal(s_try(&b), 0);
    }
    for (size_t i = 0; i < N_OF(s_bad_addresses); i++) {
        s_pub(&b, 1, UINT32_MAX, "topic", s_bad_addresses[i], "p", 1);
        if (s_try(&b) != -EBADMSG)
            fail_msg("PUB from '%s' accepted", s_bad_addresses[i]);
    }
    s_pub(&b, 1, 1, dest + 121, address, NULL, 0);     /* a 134-byte topic */
    assert_int_equal(s_try(&b), 0);
    char topic[256];
    memset(topic, 't', 255);
    topic[255] = '\0';
    s_pub(&b, 1, 1, topic, address, NULL, 0);
    assert_int_equal(s_try(&b), 0);
    /* Without its cseq (the PUB of before), the topic's length byte is
       read from cseq: the message does not parse. */
    proto_begin(&b, P_PUB, 0, 1);
    s_str(&b, "topic");
    s_str(&b, ":1@a");
    assert_int_equal(s_try(&b), -EBADMSG);

    /* ACK: the client to tell is a unique address. */
    for (size_t i = 0; i < N_OF(s_good_addresses); i++) {
        s_ack(&b, 1, 1, s_good_addresses[i]);
        assert_int_equal(s_try(&b), 0);
    }
    for (size_t i = 0; i < N_OF(s_bad_addresses); i++) {
        s_ack(&b, 1, 1, s_bad_addresses[i]);
        if (s_try(&b) != -EBADMSG)
            fail_msg("ACK to '%s' accepted", s_bad_addresses[i]);
    }
    s_ack(&b, 1, 1, "printer");
    assert_int_equal(s_try(&b), -EBADMSG);
    s_ack(&b, 1, 1, address);
    assert_int_equal(s_try(&b), 0);
    proto_free(&b);
}

static void test_proto_fail_rules(void **state)
{
    (void) state;
    static const uint32_t good[] = { 1, ENOENT, EPROTO, ECONNRESET, EHOSTUNREACH, 4095 };
    static const uint32_t bad[] = { 0, 4096, 65536, 0x7fffffff, 0xffffffff };
    proto_buf_t b = { 0 };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        s_fail(&b, 1, good[i], 1, WIRE_SEND, ":1@a", "x", "t");
        assert_int_equal(s_try(&b), 0);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s_fail(&b, 1, bad[i], 1, WIRE_SEND, ":1@a", "x", "t");
        assert_int_equal(s_try(&b), -EBADMSG);
        /* An empty to does not save a bad error number. */
        s_fail(&b, 0, bad[i], 0, 0, "", "", "t");
        assert_int_equal(s_try(&b), -EBADMSG);
    }
    /* what is passed on whatever it is; name and text are free text. */
    for (unsigned what = 0; what < 256; what++) {
        s_fail(&b, 1, ENOENT, 1, (uint8_t) what, ":1@a", "a b\x01\xff", "t\n");
        assert_int_equal(s_try(&b), 0);
    }

    /* to: the client to tell, a unique address... */
    for (size_t i = 0; i < N_OF(s_good_addresses); i++) {
        s_fail(&b, 1, ENOENT, 1, WIRE_SEND, s_good_addresses[i], "x", "t");
        assert_int_equal(s_try(&b), 0);
    }
    for (size_t i = 0; i < N_OF(s_bad_addresses); i++) {
        if (!*s_bad_addresses[i])
            continue;
        /* ... whatever the error, EPROTO too. */
        s_fail(&b, 1, ENOENT, 1, WIRE_SEND, s_bad_addresses[i], "x", "t");
        if (s_try(&b) != -EBADMSG)
            fail_msg("FAIL to '%s' accepted", s_bad_addresses[i]);
        s_fail(&b, 0, EPROTO, 0, 0, s_bad_addresses[i], "", "t");
        if (s_try(&b) != -EBADMSG)
            fail_msg("FAIL EPROTO to '%s' accepted", s_bad_addresses[i]);
    }
    s_fail(&b, 1, ENOENT, 1, WIRE_SEND, "printer", "x", "t");
    assert_int_equal(s_try(&b), -EBADMSG);
    char address[256], dest[256];
    s_longest(address, dest);
    s_fail(&b, 1, ENOENT, 1, WIRE_SEND, address, dest, dest);
    assert_int_equal(s_try(&b), 0);

    /* ... or empty: see test_proto_fail_refusals. */
    proto_free(&b);
}

/* The FAILs that refuse a HELLO, on the ROUTER: of another version
   (EPROTO, section 13), of another cluster (EACCES, section 7.5), with no
   room for it (EUSERS, section 7.6). Only they may leave to empty; with a
   to, they are ordinary FAILs. */
static void test_proto_fail_refusals(void **state)
{
    (void) state;
    proto_buf_t b = { 0 };
    proto_msg_t m;
    static const struct {
        uint32_t error;
        const char *text;
    } refusals[] = {
        { EPROTO, "protocol version not supported" },
        { EACCES, "another cluster" },
        { EUSERS, "too many peers: try again later" },
    };
    for (size_t i = 0; i < N_OF(refusals); i++) {
        /* As a node sends it: seq, cseq and what 0, to and name empty. */
        s_fail(&b, 0, refusals[i].error, 0, 0, "", "", refusals[i].text);
        if (s_decode(b.data, b.len, &m) != 0) {
            proto_free(&b);
            fail_msg("FAIL %u with an empty to refused (protocol-node.md 6.10)",
                     refusals[i].error);
        }
        assert_int_equal(m.type, P_FAIL);
        assert_int_equal(m.error, refusals[i].error);
        assert_int_equal(m.seq + m.cseq + m.kind, 0);
        assert_int_equal(m.tolen + m.namelen, 0);
        assert_int_equal(m.textlen, strlen(refusals[i].text));
        assert_memory_equal(m.text, refusals[i].text, m.textlen);
        /* Whatever else it carries. */
        s_fail(&b, 0, refusals[i].error, 7, WIRE_SEND, "", "printer", "");
        assert_int_equal(s_try(&b), 0);
        s_fail(&b, 3, refusals[i].error, 7, WIRE_SEND, ":3@alpha", "printer", "");
        assert_int_equal(s_try(&b), 0);
    }
    /* Any other error with an empty to is malformed. */
    for (uint32_t error = 1; error <= 4095; error++) {
        s_fail(&b, 0, error, 0, 0, "", "", "refused");
        int rc = s_try(&b);
        int want = error == EPROTO || error == EACCES || error == EUSERS ? 0 : -EBADMSG;
        if (rc != want)
            fail_msg("FAIL %u with an empty to: %d, want %d", error, rc, want);
    }
    proto_free(&b);
}

/* --- the sender: uid and user (sections 6.6 to 6.8) ------------------------ */

/* A MSG, REPLY or PUB of type t with this sender (userlen bytes at user)
   and a payload of size bytes. */
static void s_with_sender(proto_buf_t *b, uint8_t t, uint32_t uid, const char *user,
                          size_t userlen, const void *payload, size_t size)
{
    if (t == P_MSG)
        s_msg_from(b, 0, 1, P_KIND_SEND, 1, 0, ":1@a", uid, user, userlen, "x", payload, size);
    else
        s_data_from(b, t, 1, 1, t == P_PUB ? "topic" : ":1@b", ":1@a", uid, user, userlen,
                    payload, size);
}

static const uint8_t s_data_types[] = { P_MSG, P_REPLY, P_PUB };

/* uid and user travel unchanged, whatever their values, in each of the
   three types; the uid is big-endian, the user a str8 right after it. */
static void test_proto_sender_roundtrip(void **state)
{
    (void) state;
    static const uint32_t uids[] = { 0, 1, 1000, 65534, 0x7fffffff, 0x80000000u, 0xffffffffu };
    static const char *const users[] = {
        "", "a", "root", "alice", "nobody", "4242", "x.y-z_0@h", "~", "!",
        "abcdefghijklmnopqrstuvwxyz012345",
    };
    proto_buf_t b = { 0 };
    for (size_t t = 0; t < N_OF(s_data_types); t++)
        for (size_t u = 0; u < N_OF(uids); u++)
            for (size_t w = 0; w < N_OF(users); w++) {
                size_t ul = strlen(users[w]);
                s_with_sender(&b, s_data_types[t], uids[u], users[w], ul, "pay", w % 2 ? 3 : 0);
                proto_msg_t m;
                assert_int_equal(s_decode(b.data, b.len, &m), 0);
                assert_int_equal(m.type, s_data_types[t]);
                assert_int_equal(m.uid, uids[u]);
                assert_int_equal(m.userlen, ul);
                assert_memory_equal(m.user, users[w], ul);
                assert_int_equal(m.size, w % 2 ? 3 : 0);
                /* Where they are: uid right after from, then the user. */
                const uint8_t *at = (const uint8_t *) m.from + m.fromlen;
                assert_int_equal(at[0], (uint8_t) (uids[u] >> 24));
                assert_int_equal(at[3], (uint8_t) uids[u]);
                assert_int_equal(at[4], ul);
                /* The encoder knows their size. */
                assert_int_equal(proto_size(&m), b.len);
            }
    proto_free(&b);
}

/* A message made from a proto_msg_t with uid and user is the one made
   field by field: proto_encode writes them where the spec says. */
static void test_proto_sender_encode(void **state)
{
    (void) state;
    proto_msg_t m = {
        .type = P_MSG, .flags = P_F_CONFIRM, .seq = 5, .kind = P_KIND_SEND, .cseq = 7,
        .timeout = 0, .from = ":3@alpha", .fromlen = 8, .uid = 1000, .user = "alice",
        .userlen = 5, .to = "printer", .tolen = 7, .data = (const uint8_t *) "hello", .size = 5,
    };
    proto_buf_t b = { 0 };
    assert_int_equal(proto_size(&m), sizeof s_ex_msg);
    proto_encode(&b, &m);
    assert_false(b.failed);
    assert_int_equal(b.len, sizeof s_ex_msg);
    assert_memory_equal(b.data, s_ex_msg, b.len);

    proto_msg_t r = {
        .type = P_REPLY, .seq = 9, .cseq = 9, .to = ":3@alpha", .tolen = 8, .from = ":4@beta",
        .fromlen = 7, .uid = 4242, .user = "4242", .userlen = 4,
        .data = (const uint8_t *) "12:00", .size = 5,
    };
    assert_int_equal(proto_size(&r), sizeof s_ex_reply);
    proto_encode(&b, &r);
    assert_false(b.failed);
    assert_int_equal(b.len, sizeof s_ex_reply);
    assert_memory_equal(b.data, s_ex_reply, b.len);

    proto_msg_t p = {
        .type = P_PUB, .seq = 6, .cseq = 12, .to = "sensors.temp", .tolen = 12,
        .from = ":2@beta", .fromlen = 7, .uid = 1001, .user = "bob", .userlen = 3,
        .data = (const uint8_t *) "21.5", .size = 4,
    };
    assert_int_equal(proto_size(&p), sizeof s_ex_pub);
    proto_encode(&b, &p);
    assert_false(b.failed);
    assert_memory_equal(b.data, s_ex_pub, sizeof s_ex_pub);

    /* No user at all (NULL, 0) is an empty str8. */
    p.user = NULL;
    p.userlen = 0;
    assert_int_equal(proto_size(&p), sizeof s_ex_pub - 3);
    proto_encode(&b, &p);
    assert_false(b.failed);
    proto_msg_t d;
    assert_int_equal(s_decode(b.data, b.len, &d), 0);
    assert_int_equal(d.userlen, 0);
    assert_int_equal(d.uid, 1001);
    proto_free(&b);
}

/* user: 0 to 32 bytes, each 0x21..0x7E (section 6.6); else the message is
   malformed, in each of the three types. */
static void test_proto_user_rules(void **state)
{
    (void) state;
    char user[256];
    memset(user, 'u', sizeof user);
    proto_buf_t b = { 0 };
    for (size_t t = 0; t < N_OF(s_data_types); t++) {
        /* Every length: up to 32 good, 33 to 255 malformed, printable or
           not, with a payload or without. */
        for (size_t len = 0; len <= 255; len++) {
            s_with_sender(&b, s_data_types[t], 7, user, len, "p", len % 2);
            int rc = s_try(&b);
            if (rc != (len <= WIRE_USER_MAX ? 0 : -EBADMSG))
                fail_msg("type 0x%02x with a user of %zu bytes: %d", s_data_types[t], len, rc);
        }
        /* Every byte value, at the start, the middle and the end of users
           of 1, 2, 17 and 32 bytes. */
        static const size_t lens[] = { 1, 2, 17, 32 };
        for (size_t li = 0; li < N_OF(lens); li++) {
            size_t places[] = { 0, lens[li] / 2, lens[li] - 1 };
            for (size_t pi = 0; pi < N_OF(places); pi++)
                for (unsigned v = 0; v < 256; v++) {
                    user[places[pi]] = (char) v;
                    s_with_sender(&b, s_data_types[t], 7, user, lens[li], "p", pi % 2);
                    int rc = s_try(&b);
                    bool ok = v >= 0x21 && v <= 0x7e;
                    if (rc != (ok ? 0 : -EBADMSG))
                        fail_msg("type 0x%02x, user of %zu bytes with 0x%02x at %zu: %d",
                                 s_data_types[t], lens[li], v, places[pi], rc);
                    user[places[pi]] = 'u';
                }
        }
        /* A blank, a tab, a NUL, DEL, UTF-8: each alone is enough. */
        static const char *const bad[] = {
            "a b", " ", "\t", "a\n", "ro\0t", "\x7f", "caf\xc3\xa9", "\xff",
        };
        static const size_t badlen[] = { 3, 1, 1, 2, 4, 1, 5, 1 };
        for (size_t i = 0; i < N_OF(bad); i++) {
            s_with_sender(&b, s_data_types[t], 0, bad[i], badlen[i], NULL, 0);
            assert_int_equal(s_try(&b), -EBADMSG);
        }
    }
    proto_free(&b);
}

/* A MSG, REPLY or PUB cut anywhere before its payload, inside its uid or
   its user too, is refused; every value of the user's length byte other
   than its own moves the fields after it, which are then read as the spec
   says (s_decode's soundness checks hold whatever comes back). */
static void test_proto_sender_cut_and_flip(void **state)
{
    (void) state;
    proto_buf_t b = { 0 };
    static const char *const users[] = { "", "bob", "abcdefghijklmnopqrstuvwxyz012345" };
    for (size_t t = 0; t < N_OF(s_data_types); t++)
        for (size_t w = 0; w < N_OF(users); w++) {
            size_t ul = strlen(users[w]);
            s_with_sender(&b, s_data_types[t], 0x01020304, users[w], ul, "xyz", 3);
            proto_msg_t whole;
            assert_int_equal(s_decode(b.data, b.len, &whole), 0);
            size_t uid_at = (size_t) ((const uint8_t *) whole.from + whole.fromlen - b.data);
            size_t data_at = (size_t) (whole.data - b.data);
            assert_int_equal(data_at, uid_at + 4 + 1 + ul + (s_data_types[t] == P_MSG ? 2 : 0));
            for (size_t cut = 0; cut < b.len; cut++) {
                proto_msg_t m;
                int rc = s_decode(b.data, cut, &m);
                if (cut < data_at) {
                    if (rc != -EBADMSG)
                        fail_msg("type 0x%02x, user '%s', cut at %zu (uid at %zu): %d",
                                 s_data_types[t], users[w], cut, uid_at, rc);
                } else {
                    assert_int_equal(rc, 0);
                    assert_int_equal(m.uid, 0x01020304);
                    assert_int_equal(m.userlen, ul);
                }
            }
            /* Every value of each uid byte: still the same message, with
               that uid. */
            for (size_t at = uid_at; at < uid_at + 4; at++)
                for (unsigned v = 0; v < 256; v++) {
                    uint8_t orig = b.data[at];
                    b.data[at] = (uint8_t) v;
                    proto_msg_t m;
                    assert_int_equal(s_decode(b.data, b.len, &m), 0);
                    assert_int_equal(m.uid, wire_get32(b.data + uid_at));
                    b.data[at] = orig;
                }
            /* Every value of the user's length. */
            for (unsigned v = 0; v < 256; v++) {
                uint8_t orig = b.data[uid_at + 4];
                b.data[uid_at + 4] = (uint8_t) v;
                proto_msg_t m;
                int rc = s_decode(b.data, b.len, &m);
                if (v > WIRE_USER_MAX)
                    assert_int_equal(rc, -EBADMSG);
                else if (v == ul)
                    assert_int_equal(rc, 0);
                else if (rc == 0)
                    assert_int_equal(m.userlen, v);
                b.data[uid_at + 4] = orig;
            }
        }
    proto_free(&b);
}

/* In a BATCH, an item whose user is bad leaves the batch well framed (the
   codec checks only the framing, section 6.14) and is itself malformed,
   as the receiver decodes it. */
static void test_proto_batch_item_bad_user(void **state)
{
    (void) state;
    proto_buf_t a = { 0 }, c = { 0 }, b = { 0 };
    s_msg(&a, 0, 7, P_KIND_SEND, 13, 0, ":2@beta", "printer@alpha", "page 1", 6);
    s_data_from(&c, P_PUB, 8, 14, "sensors.temp", ":2@beta", 1001, "b b", 3, "21.5", 4);
    assert_int_equal(s_decode(c.data, c.len, NULL), -EBADMSG);
    const example_t two[] = { { a.data, a.len }, { c.data, c.len } };
    s_batch(&b, 0, 2, two, 2);
    proto_msg_t m;
    assert_int_equal(s_decode(b.data, b.len, &m), 0);
    assert_int_equal(m.count, 2);
    const uint8_t *at = m.list, *item;
    size_t len;
    proto_batch_next(&at, &item, &len);
    assert_int_equal(s_decode(item, len, NULL), 0);
    proto_batch_next(&at, &item, &len);
    assert_int_equal(len, c.len);
    assert_int_equal(s_decode(item, len, NULL), -EBADMSG);
    proto_free(&a);
    proto_free(&c);
    proto_free(&b);
}

/* --- lists --------------------------------------------------------------- */

/* A list of n items built by item(i, buf), with count as given; a PEERS
   item has the key of its id (s_key_for) after its three strings. */
static int s_list_of(uint8_t type, uint16_t count, size_t n,
                     const char *(*item)(size_t i, char *buf, size_t f))
{
    proto_buf_t b = { 0 };
    char tmp[256];
    proto_begin(&b, type, 0, 1);
    proto_u16(&b, count);
    for (size_t i = 0; i < n; i++) {
        for (size_t f = 0; f < (type == P_PEERS ? 3u : 1u); f++)
            s_str(&b, item(i, tmp, f));
        if (type == P_PEERS) {
            uint8_t key[PROTO_KEY_LEN];
            s_key_for(item(i, tmp, 0), key);
            proto_str(&b, (const char *) key, sizeof key);
        }
    }
    return s_try(&b);
}

static const char *s_item_name(size_t i, char *buf, size_t f)
{
    (void) f;
    snprintf(buf, 256, "name.%zu", i);
    return buf;
}

static const char *s_item_pattern(size_t i, char *buf, size_t f)
{
    (void) f;
    snprintf(buf, 256, "topic.%zu.*", i);
    return buf;
}

static const char *s_item_peer(size_t i, char *buf, size_t f)
{
    if (f == 0)
        snprintf(buf, 256, "%032zx", i);
    else if (f == 1)
        snprintf(buf, 256, "node-%zu", i);
    else
        snprintf(buf, 256, "tcp://10.0.%zu.%zu:5680", i / 256, i % 256);
    return buf;
}

static void test_proto_list_limits(void **state)
{
    (void) state;
    for (uint8_t t = P_NAMES_ADD; t <= P_PEERS; t++) {
        const char *(*item)(size_t, char *, size_t) =
            t <= P_NAMES_DEL ? s_item_name : t <= P_SUBS_DEL ? s_item_pattern : s_item_peer;
        assert_int_equal(s_list_of(t, 0, 0, item), -EBADMSG);      /* empty */
        assert_int_equal(s_list_of(t, 1, 1, item), 0);
        assert_int_equal(s_list_of(t, PROTO_LIST_MAX, PROTO_LIST_MAX, item), 0);
        assert_int_equal(s_list_of(t, PROTO_LIST_MAX + 1, PROTO_LIST_MAX + 1, item), -EBADMSG);
        assert_int_equal(s_list_of(t, 0xffff, 0xffff, item), -EBADMSG);
        /* A count that lies either way. */
        assert_int_equal(s_list_of(t, 3, 2, item), -EBADMSG);
        assert_int_equal(s_list_of(t, 2, 3, item), -EBADMSG);
        assert_int_equal(s_list_of(t, 0, 1, item), -EBADMSG);
        assert_int_equal(s_list_of(t, 0xffff, 1, item), -EBADMSG);
    }
}

/* The biggest list there is: 1024 names of 255 bytes, walked to the end. */
static void test_proto_list_longest(void **state)
{
    (void) state;
    char name[255];
    proto_buf_t b = { 0 };
    proto_begin(&b, P_NAMES_ADD, 0, 1);
    proto_u16(&b, PROTO_LIST_MAX);
    for (size_t i = 0; i < PROTO_LIST_MAX; i++) {
        memset(name, 'a' + (int) (i % 26), sizeof name);
        proto_str(&b, name, sizeof name);
    }
    assert_int_equal(b.len, PROTO_HEAD + 2 + PROTO_LIST_MAX * 256);
    proto_msg_t m;
    assert_int_equal(s_decode(b.data, b.len, &m), 0);
    assert_int_equal(m.count, PROTO_LIST_MAX);
    const uint8_t *at = m.list;
    for (size_t i = 0; i < PROTO_LIST_MAX; i++) {
        const char *s;
        size_t len;
        proto_list_next(&at, &s, &len);
        assert_int_equal(len, 255);
        assert_true(s[0] == 'a' + (int) (i % 26) && s[254] == s[0]);
    }
    assert_ptr_equal(at, b.data + b.len);
    proto_free(&b);
}

static void test_proto_list_bad_items(void **state)
{
    (void) state;
    static const char *const bad_patterns[] = {
        "", "**", "*a", "a**", "a*b", ".*", "-*", "a b*", "@*", "*.x",
    };
    static const char *const bad_endpoints[] = {
        "", "tcp://", "tcp:/", "tcp:/x:1", "udp://h:1", "TCP://h:1", "ipc:///tmp/x",
        "tcp://h :1", "tcp://h\t1", "tcp://h\x7f", "tcp://h\x80", "tcp://\xc3\xa9",
        " tcp://h:1", "tcp://h\n",
    };
    static const char *const good_endpoints[] = {
        "tcp://h", "tcp://192.168.1.1:5680", "tcp://[::1]:5680", "tcp://a.b-c:1",
    };
    proto_buf_t b = { 0 };

    /* A bad item anywhere spoils the list: first, middle, last. */
    for (size_t pos = 0; pos < 3; pos++) {
        const char *items[3] = { "good", "good.too", "fine" };
        for (size_t i = 0; i < sizeof s_bad_names / sizeof s_bad_names[0]; i++) {
            items[pos] = s_bad_names[i];
            for (uint8_t t = P_NAMES_ADD; t <= P_NAMES_DEL; t++) {
                s_list(&b, t, 1, 3, items, 3);
                assert_int_equal(s_try(&b), -EBADMSG);
            }
        }
        for (size_t i = 0; i < sizeof bad_patterns / sizeof bad_patterns[0]; i++) {
            items[pos] = bad_patterns[i];
            for (uint8_t t = P_SUBS_ADD; t <= P_SUBS_DEL; t++) {
                s_list(&b, t, 1, 3, items, 3);
                assert_int_equal(s_try(&b), -EBADMSG);
            }
        }
    }
    /* Patterns are not names: a NAMES list refuses them. */
    static const char *const pats[] = { "*", "sensors.*" };
    s_list(&b, P_NAMES_ADD, 1, 2, pats, 2);
    assert_int_equal(s_try(&b), -EBADMSG);
    s_list(&b, P_SUBS_ADD, 1, 2, pats, 2);
    assert_int_equal(s_try(&b), 0);

    /* PEERS: the id, the name and the endpoint are each checked (the key:
       see test_proto_peers_key_rules). */
    const char *peer[6] = { ID_A, "alpha", "tcp://h:1", ID_B, "beta", "tcp://g:2" };
    for (size_t i = 0; i < sizeof s_bad_ids / sizeof s_bad_ids[0]; i++) {
        peer[3] = s_bad_ids[i];
        s_peers(&b, 1, 2, peer, 2);
        assert_int_equal(s_try(&b), -EBADMSG);
    }
    peer[3] = ID_B;
    for (size_t i = 0; i < sizeof s_bad_names / sizeof s_bad_names[0]; i++) {
        peer[1] = s_bad_names[i];
        s_peers(&b, 1, 2, peer, 2);
        assert_int_equal(s_try(&b), -EBADMSG);
    }
    peer[1] = "alpha";
    for (size_t i = 0; i < sizeof bad_endpoints / sizeof bad_endpoints[0]; i++) {
        peer[5] = bad_endpoints[i];
        s_peers(&b, 1, 2, peer, 2);
        if (s_try(&b) != -EBADMSG)
            fail_msg("endpoint '%s' accepted", bad_endpoints[i]);
    }
    for (size_t i = 0; i < sizeof good_endpoints / sizeof good_endpoints[0]; i++) {
        peer[5] = good_endpoints[i];
        s_peers(&b, 1, 2, peer, 2);
        if (s_try(&b) != 0)
            fail_msg("endpoint '%s' refused", good_endpoints[i]);
    }
    /* A peer is four strings: three short is not a peer, nor is one
       without its key (a version 1 item). */
    proto_begin(&b, P_PEERS, 0, 1);
    proto_u16(&b, 1);
    s_str(&b, ID_A);
    assert_int_equal(s_try(&b), -EBADMSG);
    proto_begin(&b, P_PEERS, 0, 1);
    proto_u16(&b, 1);
    s_str(&b, ID_A);
    s_str(&b, "alpha");
    s_str(&b, "tcp://h:1");
    assert_int_equal(s_try(&b), -EBADMSG);
}

/* PEERS: each item's key is a str8 of exactly 32 bytes, and the item's id
   is its first 16 bytes in lowercase hex (sections 3 and 6.5). */
static void test_proto_peers_key_rules(void **state)
{
    (void) state;
    uint8_t key_a[PROTO_KEY_LEN + 2], key_b[PROTO_KEY_LEN + 2];
    s_key_for(ID_A, key_a);
    s_key_for(ID_B, key_b);
    key_a[32] = key_a[33] = key_b[32] = key_b[33] = 0x5a;
    proto_buf_t b = { 0 };

    /* Both items good. */
    proto_begin(&b, P_PEERS, 0, 1);
    proto_u16(&b, 2);
    s_peer_item(&b, ID_A, "alpha", "tcp://h:1", key_a, PROTO_KEY_LEN);
    s_peer_item(&b, ID_B, "beta", "tcp://g:2", key_b, PROTO_KEY_LEN);
    assert_int_equal(s_try(&b), 0);

    /* A key of any other length, in either item: 31 and 33 bytes (the
       id's 16 bytes still right), and a few more; then every length up
       to 255. */
    static const size_t lens[] = { 31, 33, 0, 1, 16, 30, 34 };
    for (size_t i = 0; i < N_OF(lens); i++) {
        for (size_t which = 0; which < 2; which++) {
            proto_begin(&b, P_PEERS, 0, 1);
            proto_u16(&b, 2);
            s_peer_item(&b, ID_A, "alpha", "tcp://h:1", key_a, which ? PROTO_KEY_LEN : lens[i]);
            s_peer_item(&b, ID_B, "beta", "tcp://g:2", key_b, which ? lens[i] : PROTO_KEY_LEN);
            if (s_try(&b) != -EBADMSG)
                fail_msg("PEERS item %zu with a key of %zu bytes accepted", which, lens[i]);
        }
    }
    uint8_t big[255];
    memset(big, 0, sizeof big);
    memcpy(big, key_a, PROTO_KEY_LEN);
    for (size_t len = 0; len <= sizeof big; len++) {
        proto_begin(&b, P_PEERS, 0, 1);
        proto_u16(&b, 1);
        s_peer_item(&b, ID_A, "alpha", "tcp://h:1", big, len);
        assert_int_equal(s_try(&b), len == PROTO_KEY_LEN ? 0 : -EBADMSG);
    }

    /* An id that is not the key's: one hex digit changed, at every place,
       to every other digit; in either item. */
    for (size_t which = 0; which < 2; which++) {
        const char *good = which ? ID_B : ID_A;
        for (size_t at = 0; at < PROTO_ID_LEN; at++) {
            for (const char *d = "0123456789abcdef"; *d; d++) {
                if (*d == good[at])
                    continue;
                char id[PROTO_ID_LEN + 1];
                memcpy(id, good, sizeof id);
                id[at] = *d;
                assert_int_equal(proto_check_id(id, PROTO_ID_LEN), 0);
                proto_begin(&b, P_PEERS, 0, 1);
                proto_u16(&b, 2);
                s_peer_item(&b, which ? ID_A : id, "alpha", "tcp://h:1", key_a, PROTO_KEY_LEN);
                s_peer_item(&b, which ? id : ID_B, "beta", "tcp://g:2", key_b, PROTO_KEY_LEN);
                if (s_try(&b) != -EBADMSG)
                    fail_msg("PEERS id %s with the key of %s accepted", id, good);
            }
        }
    }
    /* Or a key byte changed among the first 16, which the id spells. */
    for (size_t at = 0; at < 16; at++) {
        uint8_t key[PROTO_KEY_LEN];
        memcpy(key, key_a, sizeof key);
        key[at] ^= 0x01;
        proto_begin(&b, P_PEERS, 0, 1);
        proto_u16(&b, 1);
        s_peer_item(&b, ID_A, "alpha", "tcp://h:1", key, sizeof key);
        assert_int_equal(s_try(&b), -EBADMSG);
    }
    /* The other 16 bytes are the key's own business. */
    for (size_t at = 16; at < PROTO_KEY_LEN; at++) {
        uint8_t key[PROTO_KEY_LEN];
        memcpy(key, key_a, sizeof key);
        key[at] ^= 0xff;
        proto_begin(&b, P_PEERS, 0, 1);
        proto_u16(&b, 1);
        s_peer_item(&b, ID_A, "alpha", "tcp://h:1", key, sizeof key);
        assert_int_equal(s_try(&b), 0);
    }
    /* The id of another peer in the same list, the items' ids swapped. */
    proto_begin(&b, P_PEERS, 0, 1);
    proto_u16(&b, 2);
    s_peer_item(&b, ID_B, "alpha", "tcp://h:1", key_a, PROTO_KEY_LEN);
    s_peer_item(&b, ID_A, "beta", "tcp://g:2", key_b, PROTO_KEY_LEN);
    assert_int_equal(s_try(&b), -EBADMSG);

    /* The id in upper case: the key's bytes, but not in lowercase hex. The
       key of "5F0C..." read case-blind is the same key as of "5f0c...". */
    static const char upper[] = "5F0C3E9A7B214D68A1E2C3B4D5F60718";
    uint8_t key_upper[PROTO_KEY_LEN];
    s_key_for(upper, key_upper);
    assert_memory_equal(key_upper, key_a, PROTO_KEY_LEN);
    proto_begin(&b, P_PEERS, 0, 1);
    proto_u16(&b, 1);
    s_peer_item(&b, upper, "alpha", "tcp://h:1", key_a, PROTO_KEY_LEN);
    assert_int_equal(s_try(&b), -EBADMSG);
    /* One upper-case digit is enough (ID_B's 'c' at the start). */
    char mixed[PROTO_ID_LEN + 1];
    memcpy(mixed, ID_B, sizeof mixed);
    mixed[0] = 'C';
    proto_begin(&b, P_PEERS, 0, 1);
    proto_u16(&b, 1);
    s_peer_item(&b, mixed, "beta", "tcp://g:2", key_b, PROTO_KEY_LEN);
    assert_int_equal(s_try(&b), -EBADMSG);

    /* Keys of any bytes: all zero, all 0xff, with their ids. */
    static const uint8_t zero[PROTO_KEY_LEN] = { 0 };
    uint8_t ff[PROTO_KEY_LEN];
    memset(ff, 0xff, sizeof ff);
    proto_begin(&b, P_PEERS, 0, 1);
    proto_u16(&b, 2);
    s_peer_item(&b, "00000000000000000000000000000000", "z", "tcp://h", zero, sizeof zero);
    s_peer_item(&b, "ffffffffffffffffffffffffffffffff", "f", "tcp://h", ff, sizeof ff);
    assert_int_equal(s_try(&b), 0);
    proto_begin(&b, P_PEERS, 0, 1);
    proto_u16(&b, 1);
    s_peer_item(&b, "ffffffffffffffffffffffffffffffff", "f", "tcp://h", zero, sizeof zero);
    assert_int_equal(s_try(&b), -EBADMSG);
    proto_free(&b);
}

/* --- KEY ----------------------------------------------------------------- */

/* A question (32 zero bytes) and an answer: the nonce comes back in
   stamp, the key is a view of its 32 bytes. */
static void test_proto_key_roundtrip(void **state)
{
    (void) state;
    static const uint64_t nonces[] = { 0, 1, 0x0123456789abcdefull, UINT64_MAX };
    static const uint8_t zeros[PROTO_KEY_LEN] = { 0 };
    proto_buf_t b = { 0 };
    proto_msg_t m;
    for (size_t i = 0; i < N_OF(nonces); i++) {
        s_key_msg(&b, 0, nonces[i], zeros, sizeof zeros);
        assert_int_equal(b.len, PROTO_KEY_MSG);
        assert_int_equal(s_decode(b.data, b.len, &m), 0);
        assert_int_equal(m.type, P_KEY);
        assert_int_equal(m.seq, 0);
        assert_true(m.stamp == nonces[i]);
        assert_ptr_equal(m.key, b.data + PROTO_HEAD + 8);
        assert_memory_equal(m.key, zeros, PROTO_KEY_LEN);

        s_key_msg(&b, 0, nonces[i], KEY_B, PROTO_KEY_LEN);
        assert_int_equal(s_decode(b.data, b.len, &m), 0);
        assert_true(m.stamp == nonces[i]);
        assert_ptr_equal(m.key, b.data + PROTO_HEAD + 8);
        assert_memory_equal(m.key, KEY_B, PROTO_KEY_LEN);
    }
    /* Any 32 bytes are a key, to the codec. */
    uint8_t key[PROTO_KEY_LEN];
    for (size_t i = 0; i < sizeof key; i++)
        key[i] = (uint8_t) (0xff - 7 * i);
    s_key_msg(&b, 0, 42, key, sizeof key);
    assert_int_equal(s_decode(b.data, b.len, &m), 0);
    assert_memory_equal(m.key, key, sizeof key);
    /* The nonce is big-endian, as every number. */
    assert_int_equal(b.data[8], 0);
    assert_int_equal(b.data[15], 42);
    proto_free(&b);
}

/* A KEY is exactly 48 bytes: any other length is malformed. */
static void test_proto_key_rules(void **state)
{
    (void) state;
    proto_buf_t b = { 0 };
    uint8_t key[PROTO_KEY_LEN + 40];
    memcpy(key, KEY_B, PROTO_KEY_LEN);
    memset(key + PROTO_KEY_LEN, 0xab, sizeof key - PROTO_KEY_LEN);

    /* 47 and 49 bytes: a key of 31 or 33. */
    s_key_msg(&b, 0, 1, key, PROTO_KEY_LEN - 1);
    assert_int_equal(b.len, 47);
    assert_int_equal(s_try(&b), -EBADMSG);
    s_key_msg(&b, 0, 1, key, PROTO_KEY_LEN + 1);
    assert_int_equal(b.len, 49);
    assert_int_equal(s_try(&b), -EBADMSG);
    /* Every body length up to 80 bytes, only 40 (nonce and key) is good. */
    for (size_t body = 0; body <= 8 + sizeof key; body++) {
        proto_begin(&b, P_KEY, 0, 0);
        proto_bytes(&b, s_ex_key + PROTO_HEAD, body < 40 ? body : 40);
        if (body > 40)
            proto_bytes(&b, key + PROTO_KEY_LEN, body - 40);
        assert_int_equal(b.len, PROTO_HEAD + body);
        int rc = s_try(&b);
        if (rc != (body == 40 ? 0 : -EBADMSG))
            fail_msg("KEY of %zu bytes: %d", PROTO_HEAD + body, rc);
    }

    /* Every cut of the spec's KEY is refused, and bytes after it too. */
    for (size_t cut = 0; cut < sizeof s_ex_key; cut++)
        if (s_decode(s_ex_key, cut, NULL) != -EBADMSG)
            fail_msg("KEY cut at %zu of %zu accepted", cut, sizeof s_ex_key);
    uint8_t longer[sizeof s_ex_key + 4];
    memcpy(longer, s_ex_key, sizeof s_ex_key);
    memset(longer + sizeof s_ex_key, 0, 4);
    for (size_t len = sizeof s_ex_key + 1; len <= sizeof longer; len++)
        assert_int_equal(s_decode(longer, len, NULL), -EBADMSG);

    /* A KEY is not a message of a link: no BATCH carries one. */
    proto_buf_t a = { 0 }, k = { 0 };
    s_msg(&a, 0, 7, P_KIND_SEND, 13, 0, ":2@beta", "printer@alpha", "page 1", 6);
    s_key_msg(&k, 0, 1, KEY_B, PROTO_KEY_LEN);
    const example_t items[] = { { a.data, a.len }, { k.data, k.len } };
    s_batch(&b, 0, 2, items, 2);
    assert_int_equal(s_try(&b), -EBADMSG);
    proto_free(&a);
    proto_free(&k);

    /* Another version is not decoded, whatever its length. */
    uint8_t v[sizeof s_ex_key];
    memcpy(v, s_ex_key, sizeof v);
    v[1] = 1;
    assert_int_equal(s_decode(v, sizeof v, NULL), -EPROTO);
    v[1] = PROTO_VERSION + 1;
    assert_int_equal(s_decode(v, sizeof v - 1, NULL), -EPROTO);
}

/* proto_key_id: a key's first 16 bytes in lowercase hex, NUL-terminated;
   the other 16 bytes do not count. */
static void test_proto_key_id(void **state)
{
    (void) state;
    char id[PROTO_ID_LEN + 2];

    /* Beta's key (14.10) gives beta's id. */
    memset(id, 0x5a, sizeof id);
    proto_key_id(KEY_B, id);
    assert_string_equal(id, "c2d4e6f8091a2b3c4d5e6f708192a3b4");
    assert_string_equal(id, ID_B);
    assert_int_equal(id[PROTO_ID_LEN + 1], 0x5a);   /* nothing written past the NUL */

    uint8_t key[PROTO_KEY_LEN];
    for (size_t i = 0; i < sizeof key; i++)
        key[i] = (uint8_t) i;
    proto_key_id(key, id);
    assert_string_equal(id, "000102030405060708090a0b0c0d0e0f");
    memset(key + 16, 0xee, 16);
    proto_key_id(key, id);
    assert_string_equal(id, "000102030405060708090a0b0c0d0e0f");

    memset(key, 0, sizeof key);
    proto_key_id(key, id);
    assert_string_equal(id, "00000000000000000000000000000000");
    memset(key, 0xff, sizeof key);
    proto_key_id(key, id);
    assert_string_equal(id, "ffffffffffffffffffffffffffffffff");
    static const uint8_t mixed[PROTO_KEY_LEN] = {
        0xab, 0xcd, 0xef, 0x10, 0x9a, 0x5f, 0xa5, 0x0f, 0xf0, 0x01, 0x80, 0x7f, 0xde, 0xad,
        0xbe, 0xef,
    };
    proto_key_id(mixed, id);
    assert_string_equal(id, "abcdef109a5fa50ff001807fdeadbeef");

    /* What it writes is an id, and the test's own key maker agrees. */
    assert_int_equal(proto_check_id(id, strlen(id)), 0);
    s_key_for(ID_A, key);
    proto_key_id(key, id);
    assert_string_equal(id, ID_A);
}

/* --- BATCH ---------------------------------------------------------------- */

/* Three items, one of each data type, framed; walked back with
   proto_batch_next, each decodes on its own to what went in. */
static void test_proto_batch_roundtrip(void **state)
{
    (void) state;
    proto_buf_t it[3] = { { 0 } }, b = { 0 };
    s_msg(&it[0], P_F_CONFIRM, 41, P_KIND_SEND, 7, 0, ":3@alpha", "printer", "hello", 5);
    s_data_from(&it[1], P_REPLY, 42, 0x80000001, ":18@beta", ":4@alpha", 0, "root", 4,
                s_binary, sizeof s_binary);
    s_data_from(&it[2], P_PUB, 43, 12, "sensors.temp", ":3@alpha", 0xffffffffu, "", 0,
                NULL, 0);
    example_t items[3];
    for (size_t i = 0; i < 3; i++)
        items[i] = (example_t) { it[i].data, it[i].len };

    s_batch(&b, 0, 3, items, 3);
    assert_false(b.failed);
    assert_int_equal(b.len, PROTO_HEAD + 2 + 12 + it[0].len + it[1].len + it[2].len);
    proto_msg_t m;
    assert_int_equal(s_decode(b.data, b.len, &m), 0);
    assert_int_equal(m.type, P_BATCH);
    assert_int_equal(m.seq, 0);
    assert_int_equal(m.count, 3);
    assert_ptr_equal(m.list, b.data + PROTO_HEAD + 2);
    assert_int_equal(m.listlen, b.len - PROTO_HEAD - 2);

    const uint8_t *at = m.list;
    for (size_t i = 0; i < 3; i++) {
        const uint8_t *item;
        size_t len;
        proto_msg_t im;
        proto_batch_next(&at, &item, &len);
        assert_int_equal(len, it[i].len);
        assert_memory_equal(item, it[i].data, len);
        assert_int_equal(s_decode(item, len, &im), 0);
        assert_int_equal(im.seq, 41 + i);
        switch (i) {
        case 0:
            assert_int_equal(im.type, P_MSG);
            assert_int_equal(im.flags, P_F_CONFIRM);
            assert_int_equal(im.cseq, 7);
            assert_memory_equal(im.to, "printer", im.tolen);
            assert_int_equal(im.uid, S_UID);
            assert_int_equal(im.userlen, strlen(S_USER));
            assert_memory_equal(im.user, S_USER, im.userlen);
            assert_int_equal(im.size, 5);
            assert_memory_equal(im.data, "hello", 5);
            break;
        case 1:
            assert_int_equal(im.type, P_REPLY);
            assert_int_equal(im.cseq, 0x80000001);
            assert_memory_equal(im.to, ":18@beta", im.tolen);
            assert_memory_equal(im.from, ":4@alpha", im.fromlen);
            assert_int_equal(im.uid, 0);
            assert_int_equal(im.userlen, 4);
            assert_memory_equal(im.user, "root", 4);
            assert_int_equal(im.size, sizeof s_binary);
            assert_memory_equal(im.data, s_binary, im.size);
            break;
        default:
            assert_int_equal(im.type, P_PUB);
            assert_int_equal(im.tolen, 12);
            assert_memory_equal(im.to, "sensors.temp", 12);
            assert_int_equal(im.uid, 0xffffffffu);
            assert_int_equal(im.userlen, 0);
            assert_int_equal(im.size, 0);
            assert_ptr_equal(im.data, item + len);
        }
    }
    assert_ptr_equal(at, m.list + m.listlen);

    /* Every cut is refused: the count and the lengths say where it ends. */
    for (size_t cut = 0; cut < b.len; cut++)
        assert_int_equal(s_decode(b.data, cut, NULL), -EBADMSG);
    /* And so is any byte after the last item. */
    for (size_t extra = 1; extra <= 4; extra++) {
        proto_u8(&b, 0);
        assert_false(b.failed);
        assert_int_equal(s_decode(b.data, b.len, NULL), -EBADMSG);
    }
    for (size_t i = 0; i < 3; i++)
        proto_free(&it[i]);
    proto_free(&b);
}

/* The framing rules: count at least 2 and exact, item lengths at least a
   head and inside the message, item signature and type. */
static void test_proto_batch_rules(void **state)
{
    (void) state;
    proto_buf_t b = { 0 }, a = { 0 }, c = { 0 };
    s_msg(&a, 0, 7, P_KIND_SEND, 13, 0, ":2@beta", "printer@alpha", "page 1", 6);
    s_pub(&c, 8, 14, "sensors.temp", ":2@beta", "21.5", 4);
    const example_t two[] = { { a.data, a.len }, { c.data, c.len } };
    const example_t three[] = { { a.data, a.len }, { c.data, c.len }, { a.data, a.len } };
    proto_msg_t m;

    s_batch(&b, 0, 2, two, 2);
    assert_int_equal(s_decode(b.data, b.len, &m), 0);
    assert_int_equal(m.count, 2);
    /* The head's seq is not counted; the codec does not look at it. */
    s_batch(&b, 0x01020304, 2, two, 2);
    assert_int_equal(s_decode(b.data, b.len, &m), 0);
    assert_int_equal(m.seq, 0x01020304);

    static const struct {
        uint16_t count;
        size_t items;           /* of two (2 at most), else of three */
        int three, rc;
    } counts[] = {
        /* count 0 or 1: a batch of one is sent as itself. */
        { 0, 0, 0, -EBADMSG }, { 0, 2, 0, -EBADMSG }, { 1, 1, 0, -EBADMSG },
        { 1, 2, 0, -EBADMSG },
        /* count more or fewer than the items. */
        { 3, 2, 0, -EBADMSG }, { 2, 3, 1, -EBADMSG }, { 0xffff, 3, 1, -EBADMSG },
        { 3, 3, 1, 0 },
    };
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        s_batch(&b, 0, counts[i].count, counts[i].three ? three : two, counts[i].items);
        assert_int_equal(s_try(&b), counts[i].rc);
    }
    /* No count at all. */
    proto_begin(&b, P_BATCH, 0, 0);
    assert_int_equal(s_try(&b), -EBADMSG);
    proto_begin(&b, P_BATCH, 0, 0);
    proto_u8(&b, 0);
    assert_int_equal(s_try(&b), -EBADMSG);

    /* An item shorter than a head, even one that says so truthfully. */
    for (size_t n = 0; n < PROTO_HEAD; n++) {
        const example_t shorty[] = { { a.data, a.len }, { a.data, n } };
        s_batch(&b, 0, 2, shorty, 2);
        assert_int_equal(s_try(&b), -EBADMSG);
    }
    /* An item length that runs past the end, by one or by far. */
    static const uint32_t overrun[] = { 1, 2, 45, 0x10000, 0x7fffffff, 0xffffffff - 45 };
    for (size_t i = 0; i < N_OF(overrun); i++) {
        for (size_t which = 0; which < 2; which++) {
            s_batch(&b, 0, 2, two, 2);
            size_t at = PROTO_HEAD + 2 + (which ? 4 + a.len : 0);
            uint32_t len = (uint32_t) wire_get32(b.data + at) + overrun[i];
            b.data[at] = (uint8_t) (len >> 24);
            b.data[at + 1] = (uint8_t) (len >> 16);
            b.data[at + 2] = (uint8_t) (len >> 8);
            b.data[at + 3] = (uint8_t) len;
            assert_int_equal(s_try(&b), -EBADMSG);
        }
    }
    /* A length cut short leaves the rest of the item as a bad next item,
       or as trailing bytes. */
    s_batch(&b, 0, 2, two, 2);
    b.data[PROTO_HEAD + 2 + 4 + a.len + 3]--;
    assert_int_equal(s_try(&b), -EBADMSG);

    /* Only MSG, REPLY and PUB travel in a batch: a PING, another BATCH,
       any other type or an unknown one is refused. */
    proto_buf_t o = { 0 };
    for (unsigned t = 0; t < 256; t++) {
        if (t == P_MSG || t == P_REPLY || t == P_PUB)
            continue;
        s_u64_msg(&o, P_PING, 8, 1);
        o.data[2] = (uint8_t) t;
        const example_t bad[] = { { a.data, a.len }, { o.data, o.len } };
        s_batch(&b, 0, 2, bad, 2);
        assert_int_equal(s_try(&b), -EBADMSG);
        const example_t bad_first[] = { { o.data, o.len }, { a.data, a.len } };
        s_batch(&b, 0, 2, bad_first, 2);
        assert_int_equal(s_try(&b), -EBADMSG);
    }
    s_u64_msg(&o, P_PING, 8, 1);
    const example_t ping[] = { { a.data, a.len }, { o.data, o.len } };
    s_batch(&b, 0, 2, ping, 2);
    assert_int_equal(s_try(&b), -EBADMSG);
    /* A batch inside a batch. */
    s_batch(&o, 0, 2, two, 2);
    const example_t nested[] = { { a.data, a.len }, { o.data, o.len } };
    s_batch(&b, 0, 2, nested, 2);
    assert_int_equal(s_try(&b), -EBADMSG);
    proto_free(&o);

    /* A bad signature inside, in either item. */
    for (unsigned sig = 0; sig < 256; sig++) {
        if (sig == PROTO_SIG)
            continue;
        for (size_t which = 0; which < 2; which++) {
            s_batch(&b, 0, 2, two, 2);
            b.data[PROTO_HEAD + 2 + 4 + (which ? 4 + a.len : 0)] = (uint8_t) sig;
            assert_int_equal(s_try(&b), -EBADMSG);
        }
    }

    /* The framing is all the codec checks: an item of another version, or
       one whose body is bad, leaves the batch well framed. The receiver
       decodes each item and treats such an item as a malformed message. */
    s_batch(&b, 0, 2, two, 2);
    b.data[PROTO_HEAD + 2 + 4 + 1] = PROTO_VERSION + 1;     /* version 4 */
    assert_int_equal(s_decode(b.data, b.len, &m), 0);
    assert_int_equal(s_decode(b.data + PROTO_HEAD + 6, a.len, NULL), -EPROTO);
    b.data[PROTO_HEAD + 2 + 4 + 1] = 1;                     /* version 1 */
    assert_int_equal(s_decode(b.data, b.len, &m), 0);
    assert_int_equal(s_decode(b.data + PROTO_HEAD + 6, a.len, NULL), -EPROTO);
    proto_free(&b);
    s_batch(&b, 0, 2, two, 2);
    b.data[PROTO_HEAD + 2 + 4 + PROTO_HEAD] = 3;        /* MSG kind 3 */
    assert_int_equal(s_decode(b.data, b.len, &m), 0);
    assert_int_equal(s_decode(b.data + PROTO_HEAD + 6, a.len, NULL), -EBADMSG);
    proto_free(&b);
    proto_free(&a);
    proto_free(&c);
}

/* The items, len fields included, come to at most PROTO_BATCH_MAX bytes. */
static void test_proto_batch_limit(void **state)
{
    (void) state;
    assert_int_equal(PROTO_BATCH_MAX, 65536);
    size_t size = PROTO_BATCH_MAX;
    uint8_t *payload = calloc(1, size);
    assert_non_null(payload);
    proto_buf_t b = { 0 }, x = { 0 }, y = { 0 };
    /* Two MSGs: each item is 4 + 8 + 1 + 4 + 4 + 5 + 4 + 1 + 5 + 2 + payload
       bytes (from ":1@a", user "alice", to "x"). */
    size_t over = 4 + PROTO_HEAD + 1 + 4 + 4 + 5 + 4 + 1 + strlen(S_USER) + 2;
    for (size_t extra = 0; extra <= 2; extra++) {
        size_t total = PROTO_BATCH_MAX + extra;
        size_t p1 = total / 2 - over, p2 = total - total / 2 - over;
        s_msg(&x, 0, 1, P_KIND_SEND, 1, 0, ":1@a", "x", payload, p1);
        s_msg(&y, 0, 2, P_KIND_SEND, 2, 0, ":1@a", "y", payload, p2);
        const example_t two[] = { { x.data, x.len }, { y.data, y.len } };
        s_batch(&b, 0, 2, two, 2);
        assert_false(b.failed);
        assert_int_equal(b.len, PROTO_HEAD + 2 + total);
        assert_int_equal(s_decode(b.data, b.len, NULL), extra ? -EBADMSG : 0);
    }
    /* Many small items up to the limit: 5461 items of 12 bytes (len and a
       bare head, as the framing allows) come to 65532; the last one
       carries 4 bytes more, to fill it to the byte. */
    static const uint8_t head[PROTO_HEAD] = { PROTO_SIG, PROTO_VERSION, P_PUB, 0, 0, 0, 0, 1 };
    size_t n = PROTO_BATCH_MAX / 12;
    proto_begin(&b, P_BATCH, 0, 0);
    proto_u16(&b, (uint16_t) n);
    for (size_t i = 0; i < n; i++) {
        proto_u32(&b, (uint32_t) (i + 1 < n ? PROTO_HEAD : PROTO_HEAD + 4));
        proto_bytes(&b, head, PROTO_HEAD);
    }
    proto_bytes(&b, "1234", 4);
    assert_int_equal(b.len, PROTO_HEAD + 2 + PROTO_BATCH_MAX);
    assert_int_equal(s_decode(b.data, b.len, NULL), 0);
    proto_u8(&b, 0);            /* one more byte: over, and trailing */
    assert_int_equal(s_decode(b.data, b.len, NULL), -EBADMSG);
    proto_free(&b);
    proto_free(&x);
    proto_free(&y);
    free(payload);
}

/* --- the encoder --------------------------------------------------------- */

static void test_proto_encode_string_too_long_fails(void **state)
{
    (void) state;
    char s[256];
    memset(s, 'a', sizeof s);
    proto_buf_t b = { 0 };
    proto_begin(&b, P_ACK, 0, 1);
    proto_u32(&b, 1);
    proto_str(&b, s, 255);
    assert_false(b.failed);
    proto_str(&b, s, 256);
    assert_true(b.failed);
    /* Once failed, it stays failed and writes nothing more. */
    size_t len = b.len;
    proto_u64(&b, 1);
    proto_bytes(&b, s, 10);
    assert_true(b.failed);
    assert_int_equal(b.len, len);
    /* proto_begin starts over, in the same memory. */
    uint8_t *data = b.data;
    proto_begin(&b, P_BYE, 0, 2);
    assert_false(b.failed);
    assert_int_equal(b.len, PROTO_HEAD);
    assert_ptr_equal(b.data, data);
    assert_int_equal(s_decode(b.data, b.len, NULL), 0);
    proto_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len + b.cap + (size_t) b.failed, 0);
    proto_free(&b);     /* twice is fine */
}

static void test_proto_encode_head_layout(void **state)
{
    (void) state;
    proto_buf_t b = { 0 };
    proto_begin(&b, 0xab, 0xcd, 0x01020304);
    proto_u8(&b, 0x11);
    proto_u16(&b, 0x2233);
    proto_u32(&b, 0x44556677);
    proto_u64(&b, 0x8899aabbccddeeffull);
    proto_str(&b, "xy", 2);
    proto_str(&b, NULL, 0);
    proto_bytes(&b, NULL, 0);
    proto_bytes(&b, "z", 1);
    static const uint8_t want[] = {
        0xa9, 0x03, 0xab, 0xcd, 0x01, 0x02, 0x03, 0x04,
        0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
        0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
        0x02, 'x', 'y', 0x00, 'z',
    };
    assert_false(b.failed);
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.data, want, sizeof want);
    proto_free(&b);
}

/* A length no message can have fails the buffer instead of wrapping its
   size arithmetic around (the bytes behind it are never read). A growth
   loop that wraps spins forever: the alarm turns that into a failure. */
static void test_proto_encode_refuses_absurd_sizes(void **state)
{
    (void) state;
    static const size_t sizes[] = {
        SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - PROTO_HEAD, SIZE_MAX / 2 + 1, SIZE_MAX / 2,
        SIZE_MAX / 4 + 1, SIZE_MAX / 4 - PROTO_HEAD + 1,
    };
    alarm(30);
    proto_buf_t b = { 0 };
    proto_begin(&b, P_MSG, 0, 1);
    uint8_t *data = b.data;
    size_t cap = b.cap;
    assert_non_null(data);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        proto_begin(&b, P_MSG, 0, 1);
        assert_false(b.failed);
        proto_bytes(&b, "x", sizes[i]);
        if (!b.failed)
            fail_msg("proto_bytes took %zu bytes", sizes[i]);
        /* Nothing was written or allocated, and nothing more will be. */
        assert_int_equal(b.len, PROTO_HEAD);
        assert_int_equal(b.cap, cap);
        assert_ptr_equal(b.data, data);
        proto_u32(&b, 1);
        proto_str(&b, "ab", 2);
        assert_true(b.failed);
        assert_int_equal(b.len, PROTO_HEAD);
    }
    /* The buffer is as good as before. */
    s_ack(&b, 1, 2, ":1@a");
    assert_int_equal(s_try(&b), 0);
    proto_free(&b);
    alarm(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proto_hello_roundtrip),
        cmocka_unit_test(test_proto_hello_ack_roundtrip),
        cmocka_unit_test(test_proto_lists_roundtrip),
        cmocka_unit_test(test_proto_peers_roundtrip),
        cmocka_unit_test(test_proto_peers_two_items),
        cmocka_unit_test(test_proto_msg_roundtrip),
        cmocka_unit_test(test_proto_msg_large_payload),
        cmocka_unit_test(test_proto_reply_pub_ack_roundtrip),
        cmocka_unit_test(test_proto_fail_roundtrip),
        cmocka_unit_test(test_proto_ping_pong_bye_credit_roundtrip),
        cmocka_unit_test(test_proto_flags_travel_unchanged),
        cmocka_unit_test(test_proto_spec_examples_decode),
        cmocka_unit_test(test_proto_spec_examples_encode),
        cmocka_unit_test(test_proto_store_messages),
        cmocka_unit_test(test_proto_spec_examples_match_doc),
        cmocka_unit_test(test_proto_spec_type_table_matches),
        cmocka_unit_test(test_proto_decode_short_or_unsigned),
        cmocka_unit_test(test_proto_decode_wrong_version),
        cmocka_unit_test(test_proto_decode_unknown_types),
        cmocka_unit_test(test_proto_decode_leaves_ret_on_failure),
        cmocka_unit_test(test_proto_decode_trailing_bytes),
        cmocka_unit_test(test_proto_decode_cut_at_every_length),
        cmocka_unit_test(test_proto_decode_flip_every_byte),
        cmocka_unit_test(test_proto_decode_scrambled),
        cmocka_unit_test(test_proto_check_id),
        cmocka_unit_test(test_proto_hello_rules),
        cmocka_unit_test(test_proto_address_oracle),
        cmocka_unit_test(test_proto_msg_rules),
        cmocka_unit_test(test_proto_reply_pub_ack_rules),
        cmocka_unit_test(test_proto_fail_rules),
        cmocka_unit_test(test_proto_fail_refusals),
        cmocka_unit_test(test_proto_sender_roundtrip),
        cmocka_unit_test(test_proto_sender_encode),
        cmocka_unit_test(test_proto_user_rules),
        cmocka_unit_test(test_proto_sender_cut_and_flip),
        cmocka_unit_test(test_proto_batch_item_bad_user),
        cmocka_unit_test(test_proto_list_limits),
        cmocka_unit_test(test_proto_list_longest),
        cmocka_unit_test(test_proto_list_bad_items),
        cmocka_unit_test(test_proto_peers_key_rules),
        cmocka_unit_test(test_proto_key_roundtrip),
        cmocka_unit_test(test_proto_key_rules),
        cmocka_unit_test(test_proto_key_id),
        cmocka_unit_test(test_proto_batch_roundtrip),
        cmocka_unit_test(test_proto_batch_rules),
        cmocka_unit_test(test_proto_batch_limit),
        cmocka_unit_test(test_proto_encode_string_too_long_fails),
        cmocka_unit_test(test_proto_encode_refuses_absurd_sizes),
        cmocka_unit_test(test_proto_encode_head_layout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
