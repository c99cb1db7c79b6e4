/*  test_wire.c: unit tests of the local wire codec (libnet/wire.c).

    The examples of docs/protocol-local.md (section 12) are replayed byte for
    byte, and read back from the document itself so that the two cannot
    drift apart. Malformed input is made by cutting good frames at every
    offset and flipping every byte. Each decode works on a heap copy of
    exactly the bytes under test, so that valgrind or ASan see any read past
    the end of a frame, and its answer is held to a decoder written here
    again from the spec (sections 4 and 6), the sender of a delivered
    message (section 4.4) included. */

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

#include "wire.h"
#include "../common/hexdump.h"

#define BIG_MAX  ((size_t) 1 << 20)     /* a max_frame that never limits */
#define N_OF(a) (sizeof (a) / sizeof (a)[0])

/* --- the spec's examples (docs/protocol-local.md, section 12) ------------ */

/* 12.1 HELLO, label "demo", seq 1, version 2. */
static const uint8_t s_ex_hello[] = {
    0x00, 0x00, 0x00, 0x12, 0xa7, 0x01, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02,
    0x04, 0x64, 0x65, 0x6d, 0x6f, 0x00,
};

/* 12.2 WELCOME: ":1@alpha", node "alpha", seq 1, max payload 1 MiB. */
static const uint8_t s_ex_welcome[] = {
    0x00, 0x00, 0x00, 0x1b, 0xa7, 0x81, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x10, 0x00, 0x00,
    0x08, 0x3a, 0x31, 0x40, 0x61, 0x6c, 0x70, 0x68, 0x61,
    0x05, 0x61, 0x6c, 0x70, 0x68, 0x61,
};

/* 12.3 SEND "hello" to "printer", seq 7. */
static const uint8_t s_ex_send[] = {
    0x00, 0x00, 0x00, 0x1a, 0xa7, 0x08, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00,
    0x07, 0x70, 0x72, 0x69, 0x6e, 0x74, 0x65, 0x72,
    0x00, 0x68, 0x65, 0x6c, 0x6c, 0x6f,
};

/* 12.4 ERROR ENOENT for the SEND of seq 7, "printer", "no such name". */
static const uint8_t s_ex_error[] = {
    0x00, 0x00, 0x00, 0x21, 0xa7, 0x83, 0x00, 0x08,
    0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x02,
    0x07, 0x70, 0x72, 0x69, 0x6e, 0x74, 0x65, 0x72,
    0x0c, 0x6e, 0x6f, 0x20, 0x73, 0x75, 0x63, 0x68,
    0x20, 0x6e, 0x61, 0x6d, 0x65,
};

/* 12.7 PUT "fast" under "cfg.mode", seq 9: the expected version, then the value. */
static const uint8_t s_ex_put[] = {
    0x00, 0x00, 0x00, 0x22, 0xa7, 0x10, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x09, 0x00, 0x00, 0x00, 0x00,
    0x08, 'c', 'f', 'g', '.', 'm', 'o', 'd', 'e', 0x00,
    0, 0, 0, 0, 0, 0, 0, 0, 'f', 'a', 's', 't',
};
static const char s_put_payload[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 'f', 'a', 's', 't' };

/* 12.8 KEY_EVENT of 12.7, written by alpha, version 0x01a23bc696000000. */
static const uint8_t s_ex_key_event[] = {
    0x00, 0x00, 0x00, 0x42, 0xa7, 0x90, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x08, 'c', 'f', 'g', '.', 'm', 'o', 'd', 'e',
    0x20, '5', 'f', '0', 'c', '3', 'e', '9', 'a', '7', 'b', '2', '1', '4', 'd', '6', '8',
    'a', '1', 'e', '2', 'c', '3', 'b', '4', 'd', '5', 'f', '6', '0', '7', '1', '8',
    0x01, 0xa2, 0x3b, 0xc6, 0x96, 0x00, 0x00, 0x00, 'f', 'a', 's', 't',
};
static const char s_event_payload[12] = {
    0x01, (char) 0xa2, 0x3b, (char) 0xc6, (char) 0x96, 0, 0, 0, 'f', 'a', 's', 't'
};

/* Node alpha's id (the node-to-node spec's, section 14 there), as bytes. */
static const uint8_t s_alpha_id[WIRE_NODE_ID] = {
    0x5f, 0x0c, 0x3e, 0x9a, 0x7b, 0x21, 0x4d, 0x68,
    0xa1, 0xe2, 0xc3, 0xb4, 0xd5, 0xf6, 0x07, 0x18,
};

/* 12.5 MESSAGE: 12.3 delivered to the holder of "printer", from ":1@alpha",
   seq 7, whose sender is uid 1000, user "alice", on node alpha. */
static const uint8_t s_ex_message[] = {
    0x00, 0x00, 0x00, 0x3c, 0xa7, 0x88, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00,
    0x08, 0x3a, 0x31, 0x40, 0x61, 0x6c, 0x70, 0x68, 0x61,
    0x07, 0x70, 0x72, 0x69, 0x6e, 0x74, 0x65, 0x72,
    0x00, 0x00, 0x03, 0xe8,
    0x05, 0x61, 0x6c, 0x69, 0x63, 0x65,
    0x5f, 0x0c, 0x3e, 0x9a, 0x7b, 0x21, 0x4d, 0x68,
    0xa1, 0xe2, 0xc3, 0xb4, 0xd5, 0xf6, 0x07, 0x18,
    0x68, 0x65, 0x6c, 0x6c, 0x6f,
};

/* 12.6 SEND to "printer", seq 8, its 1 MiB payload in a memfd (SHM). */
static const uint8_t s_ex_send_shm[] = {
    0x00, 0x00, 0x00, 0x1d, 0xa7, 0x08, 0x00, 0x04,
    0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00,
    0x07, 0x70, 0x72, 0x69, 0x6e, 0x74, 0x65, 0x72, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00,
};

typedef struct {
    const uint8_t *bytes;
    size_t len;
    uint8_t type;
    uint16_t flags;
    uint32_t seq;
    uint32_t aux;
    const char *s1;
    const char *s2;
    const char *payload;
    /* the sender, for a frame that delivers a message (user non-NULL) */
    uint32_t uid;
    const char *user;
    const uint8_t *node_id;
    size_t plen;        /* payload bytes; 0: strlen(payload) */
} example_t;

static const example_t s_examples[] = {
    { s_ex_hello, sizeof s_ex_hello, WIRE_HELLO, 0, 1, WIRE_VERSION,
      "demo", "", "", 0, NULL, NULL, 0 },
    { s_ex_welcome, sizeof s_ex_welcome, WIRE_WELCOME, 0, 1, 1048576,
      ":1@alpha", "alpha", "", 0, NULL, NULL, 0 },
    { s_ex_send, sizeof s_ex_send, WIRE_SEND, 0, 7, 0,
      "printer", "", "hello", 0, NULL, NULL, 0 },
    { s_ex_error, sizeof s_ex_error, WIRE_ERROR, WIRE_SEND, 7, ENOENT,
      "printer", "no such name", "", 0, NULL, NULL, 0 },
    { s_ex_message, sizeof s_ex_message, WIRE_MESSAGE, 0, 7, 0,
      ":1@alpha", "printer", "hello", 1000, "alice", s_alpha_id, 0 },
    { s_ex_send_shm, sizeof s_ex_send_shm, WIRE_SEND, WIRE_F_SHM, 8, 0,
      "printer", "", "\0\0\0\0\0\x10\0\0", 0, NULL, NULL, WIRE_SHM_REF },
    { s_ex_put, sizeof s_ex_put, WIRE_PUT, 0, 9, 0,
      "cfg.mode", "", s_put_payload, 0, NULL, NULL, sizeof s_put_payload },
    { s_ex_key_event, sizeof s_ex_key_event, WIRE_KEY_EVENT, 0, 0, WIRE_KEV_PUT,
      "cfg.mode", "5f0c3e9a7b214d68a1e2c3b4d5f60718", s_event_payload, 0, NULL, NULL,
      sizeof s_event_payload },
};
#define N_EXAMPLES (sizeof s_examples / sizeof s_examples[0])

/* --- the spec's per-type rules (section 6) ------------------------------- */

/* Kept apart from s_rules in wire.c on purpose: this is the spec's table,
   and the tests hold the codec to it. */
enum { NONE = 0, REQ = 1, OPT = 2 };

typedef struct {
    uint8_t type;
    uint8_t s1, s2;
    bool payload;
    bool from;          /* carries the sender (section 4.4) */
} rule_t;

static const rule_t s_spec_rules[] = {
    { WIRE_HELLO,       OPT,  NONE, false, false },
    { WIRE_BIND,        REQ,  NONE, false, false },
    { WIRE_UNBIND,      REQ,  NONE, false, false },
    { WIRE_SUBSCRIBE,   REQ,  NONE, false, false },
    { WIRE_UNSUBSCRIBE, REQ,  NONE, false, false },
    { WIRE_WATCH,       REQ,  NONE, false, false },
    { WIRE_UNWATCH,     REQ,  NONE, false, false },
    { WIRE_SEND,        REQ,  NONE, true,  false },
    { WIRE_REQUEST,     REQ,  NONE, true,  false },
    { WIRE_REPLY,       REQ,  NONE, true,  false },
    { WIRE_PUBLISH,     REQ,  NONE, true,  false },
    { WIRE_QUERY,       OPT,  NONE, false, false },
    { WIRE_MONITOR,     OPT,  NONE, false, false },
    { WIRE_WELCOME,     REQ,  REQ,  true,  false },
    { WIRE_OK,          NONE, NONE, true,  false },
    { WIRE_ERROR,       OPT,  OPT,  false, false },
    { WIRE_MESSAGE,     REQ,  REQ,  true,  true  },
    { WIRE_DELIVER_REQ, REQ,  REQ,  true,  true  },
    { WIRE_DELIVER_REP, REQ,  NONE, true,  true  },
    { WIRE_PUBLICATION, REQ,  REQ,  true,  true  },
    { WIRE_EVENT,       REQ,  REQ,  false, false },
    { WIRE_MONITORED,   OPT,  OPT,  true,  true  },
    /* the store (docs/store.md) */
    { WIRE_PUT,         REQ,  NONE, true,  false },
    { WIRE_GET,         REQ,  NONE, false, false },
    { WIRE_DEL,         REQ,  NONE, true,  false },
    { WIRE_KEYS,        REQ,  NONE, false, false },
    { WIRE_WATCH_KEYS,  REQ,  NONE, false, false },
    { WIRE_UNWATCH_KEYS, REQ, NONE, false, false },
    { WIRE_KEY_EVENT,   REQ,  OPT,  true,  false },
};
#define N_TYPES (sizeof s_spec_rules / sizeof s_spec_rules[0])

static const rule_t *s_rule_of(unsigned type)
{
    for (size_t i = 0; i < N_TYPES; i++)
        if (s_spec_rules[i].type == type)
            return &s_spec_rules[i];
    return NULL;
}

/* --- the spec's decoder (sections 4.1 to 4.6) ----------------------------- */

/* Where a frame's fields are, as the spec reads it. */
typedef struct {
    size_t l1, l2;
    size_t from_at;     /* offset of uid, 0 if the type carries no sender */
    uint32_t uid;
    size_t l3;
    size_t data_at, size;
} layout_t;

/* Is c allowed in a user name: printable ASCII, no blank (0x21..0x7E)? */
static bool s_user_char(uint8_t c)
{
    return c >= 0x21 && c <= 0x7e;
}

/* Reads len bytes as the spec says (not as wire.c does): true and *ret
   filled for a frame a receiver accepts, false for one it rejects. */
static bool s_spec_decode(const uint8_t *buf, size_t len, layout_t *ret)
{
    layout_t l = { 0 };
    if (len < 18 || buf[4] != 0xa7)
        return false;
    uint32_t size = (uint32_t) buf[0] << 24 | (uint32_t) buf[1] << 16 |
                    (uint32_t) buf[2] << 8 | buf[3];
    if (size < 14 || (uint64_t) size + 4 != len)
        return false;
    const rule_t *r = s_rule_of(buf[5]);
    if (!r)
        return false;
    /* len1, str1 and len2 must lie inside the frame; str2 too. */
    l.l1 = buf[16];
    if (17 + l.l1 + 1 > len)
        return false;
    l.l2 = buf[17 + l.l1];
    size_t at = 18 + l.l1;
    if (at + l.l2 > len)
        return false;
    at += l.l2;
    if (r->from) {
        /* uid, len3 (0..32), user (0x21..0x7E), node id: all inside. */
        if (at + 5 > len)
            return false;
        l.from_at = at;
        l.uid = (uint32_t) buf[at] << 24 | (uint32_t) buf[at + 1] << 16 |
                (uint32_t) buf[at + 2] << 8 | buf[at + 3];
        l.l3 = buf[at + 4];
        if (l.l3 > 32 || at + 5 + l.l3 + 16 > len)
            return false;
        for (size_t i = 0; i < l.l3; i++)
            if (!s_user_char(buf[at + 5 + i]))
                return false;
        at += 5 + l.l3 + 16;
    }
    l.data_at = at;
    l.size = len - at;
    if ((r->s1 == REQ && l.l1 == 0) || (r->s1 == NONE && l.l1 > 0) ||
        (r->s2 == REQ && l.l2 == 0) || (r->s2 == NONE && l.l2 > 0) ||
        (!r->payload && l.size > 0))
        return false;
    *ret = l;
    return true;
}

/* --- helpers ------------------------------------------------------------- */

/* A sender: uid, user (a C string), node id. */
static wire_from_t s_from(uint32_t uid, const char *user, const uint8_t *node_id)
{
    return (wire_from_t) { uid, user, strlen(user), node_id };
}

/* Encodes a whole frame into out (room for WIRE_HEAD_MAX + paylen bytes)
   with the sender from (for a type that carries one; NULL: the unknown
   sender of wire_encode); returns its length. */
static size_t s_build_from(uint8_t *out, uint8_t type, uint16_t flags, uint32_t seq,
                           uint32_t aux, const char *s1, size_t l1,
                           const char *s2, size_t l2, const wire_from_t *from,
                           const void *payload, size_t paylen)
{
    size_t head = from ? wire_encode_from(out, type, flags, seq, aux, s1, l1, s2, l2, from, paylen)
                       : wire_encode(out, type, flags, seq, aux, s1, l1, s2, l2, paylen);
    if (paylen)
        memcpy(out + head, payload, paylen);
    return head + paylen;
}

static size_t s_build(uint8_t *out, uint8_t type, uint16_t flags, uint32_t seq,
                      uint32_t aux, const char *s1, size_t l1,
                      const char *s2, size_t l2, const void *payload, size_t paylen)
{
    return s_build_from(out, type, flags, seq, aux, s1, l1, s2, l2, NULL, payload, paylen);
}

/* A decoded frame must point inside its buffer, in the order of its
   fields, fill it exactly, agree with the spec's decoder, and encode back
   to the very same bytes. */
static void s_assert_sound(const uint8_t *buf, size_t len, const wire_frame_t *f)
{
    layout_t l;
    assert_true(s_spec_decode(buf, len, &l));
    assert_int_equal(f->type, buf[5]);
    assert_int_equal(f->flags, (uint16_t) (buf[6] << 8 | buf[7]));
    assert_int_equal(f->seq, wire_get32(buf + 8));
    assert_int_equal(f->aux, wire_get32(buf + 12));
    assert_true(f->s1len <= WIRE_NAME_MAX);
    assert_true(f->s2len <= WIRE_NAME_MAX);
    assert_int_equal(f->s1len, l.l1);
    assert_int_equal(f->s2len, l.l2);
    assert_ptr_equal(f->s1, (const char *) buf + 17);
    assert_ptr_equal(f->s2, (const char *) buf + 18 + f->s1len);
    if (wire_has_from(f->type)) {
        /* uid, len3, user, node id, in this order right after str2. */
        const uint8_t *at = buf + 18 + f->s1len + f->s2len;
        assert_int_equal(l.from_at, (size_t) (at - buf));
        assert_int_equal(f->from.uid, wire_get32(at));
        assert_int_equal(f->from.uid, l.uid);
        assert_int_equal(f->from.userlen, at[4]);
        assert_int_equal(f->from.userlen, l.l3);
        assert_true(f->from.userlen <= WIRE_USER_MAX);
        assert_ptr_equal(f->from.user, (const char *) at + 5);
        for (size_t i = 0; i < f->from.userlen; i++)
            assert_true(s_user_char((uint8_t) f->from.user[i]));
        assert_ptr_equal(f->from.node_id, at + 5 + f->from.userlen);
        assert_ptr_equal(f->data, f->from.node_id + WIRE_NODE_ID);
        assert_int_equal(WIRE_MIN + f->s1len + f->s2len + 5 + f->from.userlen + WIRE_NODE_ID +
                         f->size, len);
    } else {
        /* No sender: nothing of it, and nothing between str2 and the
           payload. */
        assert_int_equal(l.from_at, 0);
        assert_int_equal(f->from.uid, 0);
        assert_int_equal(f->from.userlen, 0);
        assert_null(f->from.node_id);
        assert_ptr_equal(f->data, buf + 18 + f->s1len + f->s2len);
        assert_int_equal(WIRE_MIN + f->s1len + f->s2len + f->size, len);
    }
    assert_ptr_equal(f->data, buf + l.data_at);
    assert_int_equal(f->size, l.size);
    assert_true(f->data + f->size == buf + len);

    uint8_t head[WIRE_HEAD_MAX];
    size_t n = wire_encode_from(head, f->type, f->flags, f->seq, f->aux, f->s1, f->s1len,
                                f->s2, f->s2len, &f->from, f->size);
    assert_int_equal(n, len - f->size);
    assert_memory_equal(head, buf, n);
    if (!wire_has_from(f->type)) {
        /* Without a sender, wire_encode writes the same. */
        n = wire_encode(head, f->type, f->flags, f->seq, f->aux,
                        f->s1, f->s1len, f->s2, f->s2len, f->size);
        assert_int_equal(n, len - f->size);
        assert_memory_equal(head, buf, n);
    }
    assert_int_equal(wire_peek(buf, len, len), (ssize_t) len);
}

/* Decodes a heap copy of exactly len bytes; the codec accepts what the
   spec's decoder accepts, and nothing else. On success checks that the
   frame is sound and fills *ret with views into buf. */
static int s_decode(const uint8_t *buf, size_t len, wire_frame_t *ret)
{
    uint8_t *copy = hexdump_dup(buf, len);
    wire_frame_t f;
    int rc = wire_decode(copy, len, &f);
    layout_t l;
    bool spec = s_spec_decode(copy, len, &l);
    if (spec != (rc == 0)) {
        free(copy);
        fail_msg("a frame of %zu bytes, type 0x%02x: wire_decode says %d, the spec %s",
                 len, len > 5 ? buf[5] : 0, rc, spec ? "accepts it" : "rejects it");
    }
    if (rc == 0) {
        s_assert_sound(copy, len, &f);
        /* Views into the copy would dangle: rebase them onto buf. */
        f.s1 = (const char *) buf + (f.s1 - (const char *) copy);
        f.s2 = (const char *) buf + (f.s2 - (const char *) copy);
        if (f.from.node_id) {
            f.from.user = (const char *) buf + (f.from.user - (const char *) copy);
            f.from.node_id = buf + (f.from.node_id - copy);
        }
        f.data = buf + (f.data - copy);
        *ret = f;
    } else
        assert_int_equal(rc, -EBADMSG);
    free(copy);
    return rc;
}

/* Some node id: 16 bytes of every kind. */
static const uint8_t s_some_id[WIRE_NODE_ID] = {
    0x00, 0xff, 0x7f, 0x80, 0x01, 0xfe, 0x20, 0x21,
    0x7e, 0x0a, 0xa7, 0x88, 0x5a, 0xa5, 0xc3, 0x3c,
};

/* Builds the fullest frame that type allows: both strings, the sender
   and a payload where the rules permit them. out has room for
   WIRE_HEAD_MAX + 64. */
static size_t s_sample(uint8_t *out, const rule_t *r)
{
    static const char payload[] = "payload\0with\xff" "binary";
    wire_from_t from = s_from(0x01020304, "alice.b-c_1", s_some_id);
    return s_build_from(out, r->type, 0x0102, 0x03040506, 0x0708090a,
                        "sensors.temp", r->s1 ? 12 : 0,
                        ":12@node-b", r->s2 ? 10 : 0, r->from ? &from : NULL,
                        payload, r->payload ? sizeof payload - 1 : 0);
}

typedef struct {
    uint8_t bytes[WIRE_HEAD_MAX + 64];
    size_t len;
} sample_t;

/* Senders at their extremes, for the frames that deliver a message: the
   longest user name, none, every printable byte. */
#define N_SENDERS 3
static wire_from_t s_sender(size_t i)
{
    static const wire_from_t senders[N_SENDERS] = {
        { 0xffffffffu, "abcdefghijklmnopqrstuvwxyz012345", 32, s_alpha_id },
        { 0, "", 0, s_some_id },
        { 0x80000000u, "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", 32, s_alpha_id },
    };
    return senders[i];
}

/* The frames the malformed-input tests start from: the spec's examples,
   one full frame of each type, and the frames that deliver a message with
   each of the extreme senders, written into out (room for MAX_SAMPLES).
   Returns their count. */
#define MAX_SAMPLES (N_EXAMPLES + N_TYPES + 5 * N_SENDERS)    /* 5 types carry a sender */
static size_t s_samples(sample_t *out)
{
    size_t n = 0;
    for (size_t i = 0; i < N_EXAMPLES; i++, n++) {
        memcpy(out[n].bytes, s_examples[i].bytes, s_examples[i].len);
        out[n].len = s_examples[i].len;
    }
    for (size_t i = 0; i < N_TYPES; i++, n++)
        out[n].len = s_sample(out[n].bytes, &s_spec_rules[i]);
    for (size_t i = 0; i < N_TYPES; i++) {
        const rule_t *r = &s_spec_rules[i];
        if (!r->from)
            continue;
        for (size_t k = 0; k < N_SENDERS; k++, n++) {
            wire_from_t from = s_sender(k);
            /* Short strings, and a payload only for every other one. */
            out[n].len = s_build_from(out[n].bytes, r->type, 0, (uint32_t) k, 0,
                                      ":7@n", 4, "t", r->s2 ? 1 : 0, &from,
                                      "xyz", k % 2 ? 3 : 0);
        }
    }
    assert_true(n <= MAX_SAMPLES);
    return n;
}

/* --- round trips --------------------------------------------------------- */

static void test_wire_roundtrip_every_type(void **state)
{
    (void) state;
    uint8_t buf[WIRE_HEAD_MAX + 64];
    for (size_t i = 0; i < N_TYPES; i++) {
        const rule_t *r = &s_spec_rules[i];
        const char *s1 = r->s1 ? "printer@alpha" : "";
        const char *s2 = r->s2 ? ":7@alpha" : "";
        const char *pl = r->payload ? "some \0 bytes" : "";
        size_t pllen = r->payload ? 12 : 0;
        /* Extreme header values travel unchanged, and so does the sender
           of a frame that delivers a message. */
        static const uint32_t nums[] = { 0, 1, 0x7fffffff, 0x80000000, 0xffffffff };
        for (size_t k = 0; k < sizeof nums / sizeof nums[0]; k++) {
            uint16_t flags = (uint16_t) (nums[k] ^ 0xa5c3);
            static const char *const users[] = { "root", "", "a", "alice.b-c_1", "~!" };
            wire_from_t from = s_from(~nums[k] ^ 0x5a, users[k], k % 2 ? s_alpha_id : s_some_id);
            size_t len = s_build_from(buf, r->type, flags, nums[k], ~nums[k],
                                      s1, strlen(s1), s2, strlen(s2), &from, pl, pllen);
            size_t fromlen = r->from ? 4 + 1 + strlen(users[k]) + WIRE_NODE_ID : 0;
            assert_int_equal(len, WIRE_MIN + strlen(s1) + strlen(s2) + fromlen + pllen);
            assert_int_equal(wire_get32(buf), len - 4);
            assert_int_equal(wire_peek(buf, len, BIG_MAX), (ssize_t) len);

            wire_frame_t f;
            assert_int_equal(s_decode(buf, len, &f), 0);
            assert_int_equal(f.type, r->type);
            assert_int_equal(f.flags, flags);
            assert_int_equal(f.seq, nums[k]);
            assert_int_equal(f.aux, ~nums[k]);
            assert_int_equal(f.s1len, strlen(s1));
            assert_memory_equal(f.s1, s1, f.s1len);
            assert_int_equal(f.s2len, strlen(s2));
            assert_memory_equal(f.s2, s2, f.s2len);
            assert_int_equal(f.size, pllen);
            assert_memory_equal(f.data, pl, pllen);
            if (r->from) {
                assert_int_equal(f.from.uid, from.uid);
                assert_int_equal(f.from.userlen, from.userlen);
                assert_memory_equal(f.from.user, from.user, from.userlen);
                assert_memory_equal(f.from.node_id, from.node_id, WIRE_NODE_ID);
            } else
                assert_null(f.from.node_id);
        }
    }
}

static void test_wire_roundtrip_optional_strings_absent(void **state)
{
    (void) state;
    uint8_t buf[WIRE_HEAD_MAX];
    wire_frame_t f;

    /* HELLO without a label, ERROR with neither name nor text. */
    size_t len = s_build(buf, WIRE_HELLO, 0, 1, WIRE_VERSION, NULL, 0, NULL, 0, NULL, 0);
    assert_int_equal(len, WIRE_MIN);
    assert_int_equal(s_decode(buf, len, &f), 0);
    assert_int_equal(f.s1len, 0);
    assert_int_equal(f.aux, WIRE_VERSION);

    len = s_build(buf, WIRE_ERROR, WIRE_BIND, 3, EACCES, NULL, 0, "denied", 6, NULL, 0);
    assert_int_equal(s_decode(buf, len, &f), 0);
    assert_int_equal(f.s1len, 0);
    assert_int_equal(f.s2len, 6);
    assert_int_equal(f.flags, WIRE_BIND);

    len = s_build(buf, WIRE_ERROR, 0, 0, EBADMSG, NULL, 0, NULL, 0, NULL, 0);
    assert_int_equal(s_decode(buf, len, &f), 0);
    assert_int_equal(f.s1len + f.s2len + f.size, 0);
}

static void test_wire_roundtrip_longest_strings(void **state)
{
    (void) state;
    char a[WIRE_NAME_MAX], b[WIRE_NAME_MAX];
    memset(a, 'a', sizeof a);
    memset(b, 'b', sizeof b);
    /* The spec's figures (section 4.1): the sender at its longest is 53
       bytes, the longest head 581. */
    assert_int_equal(WIRE_FROM_MAX, 4 + 1 + 32 + 16);
    assert_int_equal(WIRE_HEAD_MAX, 581);

    /* The longest head fills WIRE_HEAD_MAX exactly: no byte more. */
    uint8_t *head = malloc(WIRE_HEAD_MAX);
    assert_non_null(head);
    wire_from_t from = s_sender(0);
    assert_int_equal(from.userlen, WIRE_USER_MAX);
    size_t n = wire_encode_from(head, WIRE_MESSAGE, 0, 1, 2, a, sizeof a, b, sizeof b,
                                &from, 0);
    assert_int_equal(n, WIRE_HEAD_MAX);

    wire_frame_t f;
    assert_int_equal(s_decode(head, n, &f), 0);
    assert_int_equal(f.s1len, WIRE_NAME_MAX);
    assert_int_equal(f.s2len, WIRE_NAME_MAX);
    assert_memory_equal(f.s1, a, sizeof a);
    assert_memory_equal(f.s2, b, sizeof b);
    assert_int_equal(f.from.userlen, WIRE_USER_MAX);
    assert_memory_equal(f.from.user, from.user, WIRE_USER_MAX);
    assert_memory_equal(f.from.node_id, s_alpha_id, WIRE_NODE_ID);
    assert_int_equal(f.size, 0);

    /* A frame that carries no sender is 53 bytes shorter at most. */
    n = wire_encode(head, WIRE_WELCOME, 0, 1, 2, a, sizeof a, b, sizeof b, 0);
    assert_int_equal(n, WIRE_HEAD_MAX - WIRE_FROM_MAX);
    assert_int_equal(s_decode(head, n, &f), 0);
    free(head);
}

static void test_wire_encode_cuts_long_strings(void **state)
{
    (void) state;
    char longs[300];
    memset(longs, 'x', sizeof longs);
    uint8_t buf[WIRE_HEAD_MAX];
    size_t n = wire_encode(buf, WIRE_ERROR, 0, 1, EINVAL, longs, sizeof longs,
                           longs, sizeof longs, 0);
    assert_int_equal(n, WIRE_MIN + 2 * WIRE_NAME_MAX);
    wire_frame_t f;
    assert_int_equal(s_decode(buf, n, &f), 0);
    assert_int_equal(f.s1len, WIRE_NAME_MAX);
    assert_int_equal(f.s2len, WIRE_NAME_MAX);

    /* A user name too is cut, at 32 bytes (wire.h). */
    wire_from_t from = { 7, longs, sizeof longs, s_alpha_id };
    n = wire_encode_from(buf, WIRE_PUBLICATION, 0, 1, 0, longs, sizeof longs,
                         longs, sizeof longs, &from, 0);
    assert_int_equal(n, WIRE_HEAD_MAX);
    assert_int_equal(s_decode(buf, n, &f), 0);
    assert_int_equal(f.s1len + f.s2len, 2 * WIRE_NAME_MAX);
    assert_int_equal(f.from.uid, 7);
    assert_int_equal(f.from.userlen, WIRE_USER_MAX);
    assert_memory_equal(f.from.user, longs, WIRE_USER_MAX);
    assert_memory_equal(f.from.node_id, s_alpha_id, WIRE_NODE_ID);
    for (size_t len = WIRE_USER_MAX + 1; len < sizeof longs; len += 37) {
        from.userlen = len;
        n = wire_encode_from(buf, WIRE_DELIVER_REP, 0, 1, 0, ":1@a", 4, NULL, 0, &from, 0);
        assert_int_equal(n, WIRE_MIN + 4 + WIRE_FROM_MAX);
        assert_int_equal(s_decode(buf, n, &f), 0);
        assert_int_equal(f.from.userlen, WIRE_USER_MAX);
    }
}

static void test_wire_encode_size_counts_payload(void **state)
{
    (void) state;
    uint8_t buf[WIRE_HEAD_MAX];
    size_t n = wire_encode(buf, WIRE_SEND, 0, 1, 0, "x", 1, NULL, 0, 1000000);
    assert_int_equal(n, WIRE_MIN + 1);
    assert_int_equal(wire_get32(buf), n - 4 + 1000000);
    assert_int_equal(wire_peek(buf, n, BIG_MAX), (ssize_t) (n + 1000000));
}

/* --- the spec's examples ------------------------------------------------- */

static void test_wire_spec_examples_decode_and_reencode(void **state)
{
    (void) state;
    for (size_t i = 0; i < N_EXAMPLES; i++) {
        const example_t *ex = &s_examples[i];
        wire_frame_t f;
        assert_int_equal(wire_peek(ex->bytes, ex->len, BIG_MAX), (ssize_t) ex->len);
        assert_int_equal(s_decode(ex->bytes, ex->len, &f), 0);
        assert_int_equal(f.type, ex->type);
        assert_int_equal(f.flags, ex->flags);
        assert_int_equal(f.seq, ex->seq);
        assert_int_equal(f.aux, ex->aux);
        assert_int_equal(f.s1len, strlen(ex->s1));
        assert_memory_equal(f.s1, ex->s1, f.s1len);
        assert_int_equal(f.s2len, strlen(ex->s2));
        assert_memory_equal(f.s2, ex->s2, f.s2len);
        size_t plen = ex->plen ? ex->plen : strlen(ex->payload);
        assert_int_equal(f.size, plen);
        assert_memory_equal(f.data, ex->payload, f.size);
        assert_int_equal(wire_has_from(ex->type), ex->user != NULL);
        if (ex->user) {
            assert_int_equal(f.from.uid, ex->uid);
            assert_int_equal(f.from.userlen, strlen(ex->user));
            assert_memory_equal(f.from.user, ex->user, f.from.userlen);
            assert_memory_equal(f.from.node_id, ex->node_id, WIRE_NODE_ID);
        }

        /* Encoding the same fields from scratch gives the same bytes. */
        uint8_t buf[WIRE_HEAD_MAX + 16];
        wire_from_t from = ex->user ? s_from(ex->uid, ex->user, ex->node_id)
                                    : (wire_from_t) { 0, "", 0, NULL };
        size_t len = s_build_from(buf, ex->type, ex->flags, ex->seq, ex->aux,
                                  ex->s1, strlen(ex->s1), ex->s2, strlen(ex->s2),
                                  ex->user ? &from : NULL, ex->payload, plen);
        assert_int_equal(len, ex->len);
        assert_memory_equal(buf, ex->bytes, len);
    }
    /* The HELLO says version 2, and 12.5 is 12.3 delivered. */
    assert_int_equal(WIRE_VERSION, 2);
    assert_int_equal(wire_get32(s_ex_hello + 12), 2);
    assert_int_equal(sizeof s_ex_message, 64);
    assert_memory_equal(s_ex_message + 8, s_ex_send + 8, 4);
    assert_memory_equal(s_ex_message + sizeof s_ex_message - 5, "hello", 5);
}

static void test_wire_spec_examples_match_doc(void **state)
{
    (void) state;
    static hexdump_block_t blocks[HEXDUMP_MAX_BLOCKS];
    size_t n = hexdump_read_spec("docs/protocol-local.md", blocks);
    assert_int_equal(n, N_EXAMPLES);
    for (size_t i = 0; i < n; i++)
        hexdump_expect_block(&blocks[i], s_examples[i].bytes, s_examples[i].len);
}

/* --- wire_peek ----------------------------------------------------------- */

static void test_wire_peek_needs_five_bytes(void **state)
{
    (void) state;
    static const uint8_t junk[4] = { 0xff, 0xff, 0xff, 0xff };
    for (size_t len = 0; len < 5; len++) {
        uint8_t *copy = hexdump_dup(s_ex_send, len);
        assert_int_equal(wire_peek(copy, len, BIG_MAX), 0);
        free(copy);
        /* Not even a huge size is judged before the signature is there. */
        copy = hexdump_dup(junk, len);
        assert_int_equal(wire_peek(copy, len, 64), 0);
        free(copy);
    }
    assert_int_equal(wire_peek(s_ex_send, 5, BIG_MAX), (ssize_t) sizeof s_ex_send);
}

static void test_wire_peek_bad_signature(void **state)
{
    (void) state;
    uint8_t buf[sizeof s_ex_send];
    for (unsigned v = 0; v < 256; v++) {
        if (v == WIRE_SIG)
            continue;
        memcpy(buf, s_ex_send, sizeof buf);
        buf[4] = (uint8_t) v;
        assert_int_equal(wire_peek(buf, 5, BIG_MAX), -EBADMSG);
        assert_int_equal(wire_peek(buf, sizeof buf, BIG_MAX), -EBADMSG);
    }
}

static void test_wire_peek_size_too_small(void **state)
{
    (void) state;
    uint8_t buf[WIRE_MIN] = { 0 };
    buf[4] = WIRE_SIG;
    for (uint32_t size = 0; size < WIRE_MIN - 4; size++) {
        wire_put32(buf, size);
        assert_int_equal(wire_peek(buf, sizeof buf, BIG_MAX), -EBADMSG);
    }
    wire_put32(buf, WIRE_MIN - 4);
    assert_int_equal(wire_peek(buf, sizeof buf, BIG_MAX), WIRE_MIN);
}

static void test_wire_peek_over_max(void **state)
{
    (void) state;
    size_t len = sizeof s_ex_send;
    assert_int_equal(wire_peek(s_ex_send, 5, len), (ssize_t) len);
    assert_int_equal(wire_peek(s_ex_send, 5, len - 1), -EMSGSIZE);
    assert_int_equal(wire_peek(s_ex_send, len, 0), -EMSGSIZE);

    /* size + 4 must not wrap around 32 bits on the way to the limit. */
    uint8_t buf[5] = { 0xff, 0xff, 0xff, 0xff, WIRE_SIG };
    assert_int_equal(wire_peek(buf, 5, BIG_MAX), -EMSGSIZE);
    assert_int_equal(wire_peek(buf, 5, 0xffffffffu), -EMSGSIZE);
    wire_put32(buf, 0xfffffffc);
    assert_int_equal(wire_peek(buf, 5, 0xffffffffu), -EMSGSIZE);
    if (sizeof(size_t) > 4)
        assert_int_equal(wire_peek(buf, 5, SIZE_MAX), (ssize_t) 0x100000000ull);
}

/* --- wire_decode: malformed input ---------------------------------------- */

static void test_wire_decode_length_mismatch(void **state)
{
    (void) state;
    uint8_t buf[sizeof s_ex_send + 1];
    memcpy(buf, s_ex_send, sizeof s_ex_send);
    buf[sizeof s_ex_send] = 0;
    wire_frame_t f;
    /* A trailing byte, and a size field one off either way. */
    assert_int_equal(s_decode(buf, sizeof buf, &f), -EBADMSG);
    buf[3]++;
    assert_int_equal(s_decode(buf, sizeof s_ex_send, &f), -EBADMSG);
    buf[3] -= 2;
    assert_int_equal(s_decode(buf, sizeof s_ex_send, &f), -EBADMSG);
    buf[3]++;
    assert_int_equal(s_decode(buf, sizeof s_ex_send, &f), 0);
}

static void test_wire_decode_strings_overrun(void **state)
{
    (void) state;
    uint8_t buf[64];
    wire_frame_t f;

    /* EVENT "ab" "cd": len1 at 16, len2 at 19, nothing after str2. */
    size_t len = s_build(buf, WIRE_EVENT, 0, 0, WIRE_EV_NAME_UP, "ab", 2, "cd", 2, NULL, 0);
    assert_int_equal(s_decode(buf, len, &f), 0);

    buf[16] = 4;        /* s1 eats s2's length byte and s2 ... */
    assert_int_equal(s_decode(buf, len, &f), -EBADMSG);
    buf[16] = 5;        /* ... and leaves no room for len2 */
    assert_int_equal(s_decode(buf, len, &f), -EBADMSG);
    buf[16] = 255;
    assert_int_equal(s_decode(buf, len, &f), -EBADMSG);
    buf[16] = 2;
    buf[19] = 3;        /* s2 one past the end */
    assert_int_equal(s_decode(buf, len, &f), -EBADMSG);
    buf[19] = 255;
    assert_int_equal(s_decode(buf, len, &f), -EBADMSG);

    /* The smallest frame: len1 must not reach the len2 byte. */
    len = s_build(buf, WIRE_ERROR, 0, 1, 1, NULL, 0, NULL, 0, NULL, 0);
    buf[16] = 1;
    assert_int_equal(s_decode(buf, len, &f), -EBADMSG);
}

static void test_wire_decode_leaves_ret_on_failure(void **state)
{
    (void) state;
    wire_frame_t f, before;
    memset(&f, 0x5a, sizeof f);
    before = f;
    uint8_t buf[sizeof s_ex_send];
    memcpy(buf, s_ex_send, sizeof buf);
    buf[5] = 0x7f;      /* unknown type */
    assert_int_equal(wire_decode(buf, sizeof buf, &f), -EBADMSG);
    assert_memory_equal(&f, &before, sizeof f);
    assert_int_equal(wire_decode(buf, 3, &f), -EBADMSG);
    assert_memory_equal(&f, &before, sizeof f);
}

static void test_wire_decode_rules_every_type(void **state)
{
    (void) state;
    static const size_t lens[] = { 0, 1, WIRE_NAME_MAX };
    static const size_t pays[] = { 0, 1, 300 };
    char str[WIRE_NAME_MAX];
    uint8_t pay[300];
    memset(str, 'n', sizeof str);
    memset(pay, 0xee, sizeof pay);
    uint8_t *buf = malloc(WIRE_HEAD_MAX + sizeof pay);
    assert_non_null(buf);

    for (unsigned type = 0; type < 256; type++) {
        const rule_t *r = s_rule_of(type);
        for (size_t a = 0; a < 3; a++)
            for (size_t b = 0; b < 3; b++)
                for (size_t c = 0; c < 3; c++) {
                    size_t l1 = lens[a], l2 = lens[b], pl = pays[c];
                    bool ok = r &&
                              (l1 ? r->s1 != NONE : r->s1 != REQ) &&
                              (l2 ? r->s2 != NONE : r->s2 != REQ) &&
                              (pl == 0 || r->payload);
                    size_t len = s_build(buf, (uint8_t) type, 0, 1, 2,
                                         str, l1, str, l2, pay, pl);
                    wire_frame_t f;
                    int rc = s_decode(buf, len, &f);
                    if (rc != (ok ? 0 : -EBADMSG))
                        fail_msg("type 0x%02x len1 %zu len2 %zu payload %zu: %d",
                                 type, l1, l2, pl, rc);
                }
    }
    free(buf);
}

static void test_wire_decode_unknown_types(void **state)
{
    (void) state;
    static const uint8_t unknown[] = { 0x00, 0x0e, 0x7f, 0x80, 0x84, 0x87, 0x8e, 0xff };
    uint8_t buf[WIRE_MIN];
    for (size_t i = 0; i < sizeof unknown; i++) {
        size_t len = s_build(buf, unknown[i], 0, 1, 0, NULL, 0, NULL, 0, NULL, 0);
        wire_frame_t f;
        assert_int_equal(s_decode(buf, len, &f), -EBADMSG);
    }
}

/* Cutting a frame anywhere leaves something that is not a frame: decode
   refuses it, and peek either wants more bytes or names a longer frame. The
   cut is also re-labelled with a size that matches it, which makes the
   string lengths run past the end. */
static void test_wire_decode_cut_at_every_offset(void **state)
{
    (void) state;
    static sample_t samples[MAX_SAMPLES];
    size_t n = s_samples(samples);
    for (size_t i = 0; i < n; i++) {
        const uint8_t *frame = samples[i].bytes;
        size_t len = samples[i].len;
        for (size_t cut = 0; cut < len; cut++) {
            uint8_t *copy = hexdump_dup(frame, cut);
            wire_frame_t f;
            assert_int_equal(wire_decode(copy, cut, &f), -EBADMSG);
            ssize_t need = wire_peek(copy, cut, BIG_MAX);
            assert_true(need == 0 || need > (ssize_t) cut);
            if (cut >= 5)
                assert_int_equal(need, (ssize_t) len);
            if (cut >= 4) {
                wire_put32(copy, (uint32_t) (cut - 4));
                if (s_decode(copy, cut, &f) == 0)
                    assert_int_equal(f.type, frame[5]);
            }
            free(copy);
        }
    }
}

/* Whatever one byte becomes, the frame is either refused or decodes to
   views inside the buffer that encode back to the same bytes. */
static void test_wire_decode_flip_every_byte(void **state)
{
    (void) state;
    static sample_t samples[MAX_SAMPLES];
    size_t n = s_samples(samples);
    size_t accepted = 0, refused = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t *frame = samples[i].bytes;
        size_t len = samples[i].len;
        for (size_t at = 0; at < len; at++) {
            uint8_t orig = frame[at];
            const uint8_t values[] = {
                0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff,
                orig ^ 0x01, orig ^ 0x80, (uint8_t) (orig + 1), (uint8_t) (orig - 1),
            };
            for (size_t v = 0; v < sizeof values; v++) {
                if (values[v] == orig)
                    continue;
                frame[at] = values[v];
                wire_frame_t f;
                if (s_decode(frame, len, &f) == 0)
                    accepted++;
                else
                    refused++;
                ssize_t need = wire_peek(frame, len, BIG_MAX);
                assert_true(need == -EBADMSG || need == -EMSGSIZE || need >= WIRE_MIN);
            }
            frame[at] = orig;
        }
    }
    /* Both outcomes happen: flags, seq and aux bytes are free, the rest not. */
    assert_true(accepted > 0 && refused > 0);
}

/* --- the sender (section 4.4) --------------------------------------------- */

/* Only MESSAGE, DELIVER_REQ, DELIVER_REP, PUBLICATION and MONITORED carry
   a sender, and wire_has_from() says so of every type code. */
static void test_wire_sender_only_where_spec_says(void **state)
{
    (void) state;
    for (unsigned type = 0; type < 256; type++) {
        const rule_t *r = s_rule_of(type);
        bool want = r && r->from;
        if ((wire_has_from((uint8_t) type) != 0) != want)
            fail_msg("wire_has_from(0x%02x) is %d", type, wire_has_from((uint8_t) type));
    }
    assert_true(wire_has_from(WIRE_MESSAGE) && wire_has_from(WIRE_DELIVER_REQ) &&
                wire_has_from(WIRE_DELIVER_REP) && wire_has_from(WIRE_PUBLICATION));

    /* A type without one writes none, whatever sender it is given. */
    wire_from_t from = s_sender(0);
    uint8_t a[WIRE_HEAD_MAX], b[WIRE_HEAD_MAX];
    for (size_t i = 0; i < N_TYPES; i++) {
        const rule_t *r = &s_spec_rules[i];
        if (r->from)
            continue;
        size_t na = wire_encode_from(a, r->type, 1, 2, 3, "x", r->s1 ? 1 : 0, "y",
                                     r->s2 ? 1 : 0, &from, 0);
        size_t nb = wire_encode(b, r->type, 1, 2, 3, "x", r->s1 ? 1 : 0, "y", r->s2 ? 1 : 0, 0);
        assert_int_equal(na, nb);
        assert_int_equal(na, WIRE_MIN + (r->s1 ? 1 : 0) + (r->s2 ? 1 : 0));
        assert_memory_equal(a, b, na);
    }

    /* What looks like a sender in a SEND, REQUEST, REPLY, PUBLISH or OK is
       payload (a WELCOME's too: its threshold); after an EVENT or an ERROR it is a malformed
       frame (no payload there). */
    uint8_t blk[WIRE_FROM_MAX];
    size_t blen = wire_encode_from(a, WIRE_MESSAGE, 0, 0, 0, "s", 1, "t", 1, &from, 0) -
                  (WIRE_MIN + 2);
    assert_int_equal(blen, WIRE_FROM_MAX);
    memcpy(blk, a + WIRE_MIN + 2, blen);
    uint8_t buf[WIRE_HEAD_MAX + WIRE_FROM_MAX];
    for (size_t i = 0; i < N_TYPES; i++) {
        const rule_t *r = &s_spec_rules[i];
        if (r->from)
            continue;
        size_t len = s_build(buf, r->type, 0, 1, 0, "x", r->s1 ? 1 : 0, "y", r->s2 ? 1 : 0,
                             blk, blen);
        wire_frame_t f;
        if (r->payload) {
            assert_int_equal(s_decode(buf, len, &f), 0);
            assert_int_equal(f.size, blen);
            assert_memory_equal(f.data, blk, blen);
            assert_null(f.from.node_id);
        } else
            assert_int_equal(s_decode(buf, len, &f), -EBADMSG);
    }

    /* A delivery without its sender (as version 1 had it) does not
       decode: the spec's SEND of 12.3 made a MESSAGE, a version 1
       MESSAGE "hello" from ":1@alpha" to "printer", and one with a
       payload too short to be a sender. */
    memcpy(buf, s_ex_send, sizeof s_ex_send);
    buf[5] = WIRE_MESSAGE;
    wire_frame_t f;
    assert_int_equal(s_decode(buf, sizeof s_ex_send, &f), -EBADMSG);
    size_t len = s_build(buf, WIRE_EVENT, 0, 7, 0, ":1@alpha", 8, "printer", 7, NULL, 0);
    memcpy(buf + len, "hello", 5);
    len += 5;
    wire_put32(buf, (uint32_t) (len - 4));
    for (size_t i = 0; i < N_TYPES; i++) {
        if (!s_spec_rules[i].from)
            continue;
        buf[5] = s_spec_rules[i].type;
        if (buf[5] == WIRE_DELIVER_REP)
            continue;   /* no str2: see below */
        assert_int_equal(s_decode(buf, len, &f), -EBADMSG);
    }
    len = s_build(buf, WIRE_REPLY, 0, 7, 0, ":1@alpha", 8, NULL, 0,
                  "a reply of 20 bytes.", 20);
    buf[5] = WIRE_DELIVER_REP;
    assert_int_equal(s_decode(buf, len, &f), -EBADMSG);
}

/* wire_encode gives a frame that delivers a message the unknown sender
   (wire.h): uid 0xFFFFFFFF, no user, a node id of zeros. */
static void test_wire_encode_unknown_sender(void **state)
{
    (void) state;
    static const uint8_t zeros[WIRE_NODE_ID] = { 0 };
    uint8_t buf[WIRE_HEAD_MAX + 8];
    for (size_t i = 0; i < N_TYPES; i++) {
        const rule_t *r = &s_spec_rules[i];
        if (!r->from)
            continue;
        size_t len = s_build(buf, r->type, 0, 9, 0, ":1@a", 4, "t", r->s2 ? 1 : 0, "pay", 3);
        assert_int_equal(len, WIRE_MIN + 4 + (r->s2 ? 1 : 0) + 4 + 1 + WIRE_NODE_ID + 3);
        wire_frame_t f;
        assert_int_equal(s_decode(buf, len, &f), 0);
        assert_int_equal(f.from.uid, 0xffffffffu);
        assert_int_equal(f.from.userlen, 0);
        assert_memory_equal(f.from.node_id, zeros, WIRE_NODE_ID);
        assert_int_equal(f.size, 3);
        assert_memory_equal(f.data, "pay", 3);
        /* wire_encode_from without a sender is the same. */
        uint8_t head[WIRE_HEAD_MAX];
        size_t n = wire_encode_from(head, r->type, 0, 9, 0, ":1@a", 4, "t", r->s2 ? 1 : 0,
                                    NULL, 3);
        assert_int_equal(n, len - 3);
        assert_memory_equal(head, buf, n);
    }
}

/* The bytes of a delivery laid out by hand from the table of section 4.4,
   for each type that carries a sender: the codec writes and reads them. */
static void test_wire_sender_layout(void **state)
{
    (void) state;
    static const struct {
        uint32_t uid;
        const char *user;
    } who[] = { { 0, "root" }, { 1000, "alice" }, { 65534, "nobody" }, { 4242, "4242" },
                { 0xfffffffe, "" }, { 7, "abcdefghijklmnopqrstuvwxyz012345" } };
    for (size_t i = 0; i < N_TYPES; i++) {
        const rule_t *r = &s_spec_rules[i];
        if (!r->from)
            continue;
        for (size_t w = 0; w < N_OF(who); w++) {
            const char *s1 = ":12@beta", *s2 = r->s2 ? "sensors.temp" : "";
            size_t l1 = strlen(s1), l2 = strlen(s2), l3 = strlen(who[w].user);
            uint8_t want[WIRE_HEAD_MAX + 8];
            size_t at = 0;
            size_t size = 14 + l1 + l2 + 4 + 1 + l3 + 16 + 2;
            wire_put32(want, (uint32_t) size);
            want[4] = 0xa7;
            want[5] = r->type;
            want[6] = 0;
            want[7] = 0;
            wire_put32(want + 8, 0x11223344);
            wire_put32(want + 12, r->type == WIRE_DELIVER_REQ ? 5000 : 0);
            at = 16;
            want[at++] = (uint8_t) l1;
            memcpy(want + at, s1, l1);
            at += l1;
            want[at++] = (uint8_t) l2;
            memcpy(want + at, s2, l2);
            at += l2;
            size_t uid_at = at;
            wire_put32(want + at, who[w].uid);
            at += 4;
            want[at++] = (uint8_t) l3;
            memcpy(want + at, who[w].user, l3);
            at += l3;
            memcpy(want + at, s_some_id, 16);
            at += 16;
            want[at++] = 'o';
            want[at++] = 'k';
            assert_int_equal(at, 4 + size);

            uint8_t buf[WIRE_HEAD_MAX + 8];
            wire_from_t from = s_from(who[w].uid, who[w].user, s_some_id);
            size_t len = s_build_from(buf, r->type, 0, 0x11223344,
                                      r->type == WIRE_DELIVER_REQ ? 5000 : 0, s1, l1, s2, l2,
                                      &from, "ok", 2);
            assert_int_equal(len, at);
            assert_memory_equal(buf, want, len);

            wire_frame_t f;
            assert_int_equal(s_decode(want, len, &f), 0);
            assert_ptr_equal(f.from.user, (const char *) want + uid_at + 5);
            assert_ptr_equal(f.from.node_id, want + uid_at + 5 + l3);
            assert_ptr_equal(f.data, want + uid_at + 5 + l3 + 16);
            assert_int_equal(f.from.uid, who[w].uid);
            assert_int_equal(f.from.userlen, l3);
            assert_memory_equal(f.from.user, who[w].user, l3);
            assert_memory_equal(f.from.node_id, s_some_id, WIRE_NODE_ID);
            assert_int_equal(f.size, 2);
        }
    }
    /* The shortest deliveries: one-byte strings, no user, no payload. */
    uint8_t buf[WIRE_HEAD_MAX];
    wire_from_t none = s_from(0, "", s_some_id);
    wire_frame_t f;
    size_t len = s_build_from(buf, WIRE_MESSAGE, 0, 0, 0, "a", 1, "b", 1, &none, NULL, 0);
    assert_int_equal(len, 41);
    assert_int_equal(s_decode(buf, len, &f), 0);
    len = s_build_from(buf, WIRE_DELIVER_REP, 0, 0, 0, "a", 1, NULL, 0, &none, NULL, 0);
    assert_int_equal(len, 40);
    assert_int_equal(s_decode(buf, len, &f), 0);
}

/* The frames that deliver a message, each with its sender: where the
   sender begins and where the payload does. */
typedef struct {
    sample_t s;
    size_t from_at, data_at;
} delivery_t;

#define MAX_DELIVERIES (5 * (N_SENDERS + 2) + 1)
static size_t s_deliveries(delivery_t *out)
{
    static sample_t samples[MAX_SAMPLES];
    size_t n = s_samples(samples), k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!wire_has_from(samples[i].bytes[5]))
            continue;
        layout_t l;
        assert_true(s_spec_decode(samples[i].bytes, samples[i].len, &l));
        assert_true(k < MAX_DELIVERIES);
        out[k].s = samples[i];
        out[k].from_at = l.from_at;
        out[k].data_at = l.data_at;
        k++;
    }
    assert_int_equal(k, 1 + 5 + 5 * N_SENDERS);     /* the example, 5 types, each sender */
    return k;
}

/* A delivery cut anywhere in its sender, or before it, and labelled with
   the size it has then, is refused: the sender does not fit. Cut in its
   payload, it is a delivery with a shorter payload and the same sender.
   And a byte taken out of the sender of a delivery without payload always
   leaves it refused. */
static void test_wire_sender_cut_at_every_byte(void **state)
{
    (void) state;
    static delivery_t d[MAX_DELIVERIES];
    size_t n = s_deliveries(d);
    size_t refused = 0, shorter = 0;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *frame = d[i].s.bytes;
        size_t len = d[i].s.len;
        wire_frame_t whole;
        assert_int_equal(s_decode(frame, len, &whole), 0);
        for (size_t cut = WIRE_MIN; cut < len; cut++) {
            uint8_t *copy = hexdump_dup(frame, cut);
            wire_put32(copy, (uint32_t) (cut - 4));
            wire_frame_t f;
            int rc = s_decode(copy, cut, &f);
            if (cut < d[i].data_at) {
                if (rc != -EBADMSG)
                    fail_msg("delivery %zu (type 0x%02x) cut at %zu of %zu (sender at %zu, "
                             "payload at %zu) accepted", i, frame[5], cut, len, d[i].from_at,
                             d[i].data_at);
                refused++;
            } else {
                assert_int_equal(rc, 0);
                assert_int_equal(f.from.uid, whole.from.uid);
                assert_int_equal(f.from.userlen, whole.from.userlen);
                assert_int_equal(f.from.node_id - copy, whole.from.node_id - frame);
                assert_int_equal(f.size, cut - d[i].data_at);
                shorter++;
            }
            free(copy);
        }
        /* One byte taken out of the sender block. */
        for (size_t at = d[i].from_at; at < d[i].data_at; at++) {
            uint8_t *copy = hexdump_dup(frame, len - 1);
            memcpy(copy + at, frame + at + 1, len - at - 1);
            wire_put32(copy, (uint32_t) (len - 5));
            wire_frame_t f;
            int rc = s_decode(copy, len - 1, &f);     /* the spec decides */
            if (d[i].data_at == len && rc != -EBADMSG)
                fail_msg("delivery %zu without payload, byte %zu of its sender taken out: "
                         "accepted", i, at - d[i].from_at);
            free(copy);
        }
    }
    assert_true(refused > 0 && shorter > 0);
}

/* Every value of every byte of the sender: a uid and a node id are any
   bytes; a user byte must be 0x21..0x7E; len3 over 32 is refused, and
   any other len3 moves the user's end, which the spec's decoder follows. */
static void test_wire_sender_flip_every_byte(void **state)
{
    (void) state;
    static delivery_t d[MAX_DELIVERIES];
    size_t n = s_deliveries(d);
    for (size_t i = 0; i < n; i++) {
        uint8_t *frame = d[i].s.bytes;
        size_t len = d[i].s.len, base = d[i].from_at;
        size_t l3 = frame[base + 4];
        wire_frame_t whole;
        assert_int_equal(s_decode(frame, len, &whole), 0);
        for (size_t at = base; at < d[i].data_at; at++) {
            uint8_t orig = frame[at];
            for (unsigned v = 0; v < 256; v++) {
                frame[at] = (uint8_t) v;
                wire_frame_t f;
                int rc = s_decode(frame, len, &f);
                if (at < base + 4) {
                    assert_int_equal(rc, 0);
                    assert_int_equal(f.from.uid, wire_get32(frame + base));
                } else if (at == base + 4) {
                    if (v > WIRE_USER_MAX)
                        assert_int_equal(rc, -EBADMSG);
                    else if (v == l3)
                        assert_int_equal(rc, 0);
                    else if (rc == 0)
                        assert_int_equal(f.from.userlen, v);
                    /* no payload to borrow from: a longer user leaves no
                       room for the node id */
                    if (v > l3 && d[i].data_at == len)
                        assert_int_equal(rc, -EBADMSG);
                } else if (at < base + 5 + l3) {
                    assert_int_equal(rc, s_user_char((uint8_t) v) ? 0 : -EBADMSG);
                    if (rc == 0)
                        assert_int_equal((uint8_t) f.from.user[at - base - 5], v);
                } else {
                    assert_int_equal(rc, 0);
                    assert_int_equal(f.from.node_id[at - base - 5 - l3], v);
                    assert_memory_equal(f.data, whole.data, whole.size);
                }
            }
            frame[at] = orig;
        }
    }
}

/* len3 is at most 32, even when the bytes after it would make a longer
   user name and a node id: a MESSAGE whose payload is printable. */
static void test_wire_sender_len3_over_32(void **state)
{
    (void) state;
    char pay[300];
    memset(pay, 'u', sizeof pay);
    wire_from_t from = s_from(1000, "", s_alpha_id);
    uint8_t buf[WIRE_HEAD_MAX + sizeof pay];
    for (size_t i = 0; i < N_TYPES; i++) {
        const rule_t *r = &s_spec_rules[i];
        if (!r->from)
            continue;
        size_t len = s_build_from(buf, r->type, 0, 1, 0, ":1@a", 4, "b", r->s2 ? 1 : 0,
                                  &from, pay, sizeof pay);
        size_t l3_at = WIRE_MIN + 4 + (r->s2 ? 1 : 0) + 4;
        /* The node id of zeros is not printable: put a printable one in,
           so that any len3 up to 255 finds printable bytes. */
        memset(buf + l3_at + 1, 'i', WIRE_NODE_ID);
        for (unsigned v = 0; v < 256; v++) {
            buf[l3_at] = (uint8_t) v;
            wire_frame_t f;
            int rc = s_decode(buf, len, &f);
            if (v <= WIRE_USER_MAX) {
                if (rc != 0)
                    fail_msg("type 0x%02x with len3 %u refused", r->type, v);
                assert_int_equal(f.from.userlen, v);
                assert_int_equal(f.size, sizeof pay - v);
            } else if (rc != -EBADMSG)
                fail_msg("type 0x%02x with len3 %u accepted", r->type, v);
        }
    }
}

/* Each byte of a user name, at its start, middle and end, takes every
   value: only 0x21..0x7E are accepted (a blank, a control byte, DEL or a
   byte of UTF-8 are not). */
static void test_wire_sender_user_bytes(void **state)
{
    (void) state;
    char user[WIRE_USER_MAX];
    memset(user, 'a', sizeof user);
    static const size_t lens[] = { 1, 2, 17, WIRE_USER_MAX };
    size_t accepted = 0;
    for (size_t i = 0; i < N_TYPES; i++) {
        const rule_t *r = &s_spec_rules[i];
        if (!r->from)
            continue;
        for (size_t li = 0; li < N_OF(lens); li++) {
            size_t places[] = { 0, lens[li] / 2, lens[li] - 1 };
            for (size_t pi = 0; pi < N_OF(places); pi++) {
                for (unsigned v = 0; v < 256; v++) {
                    user[places[pi]] = (char) v;
                    wire_from_t from = { 42, user, lens[li], s_some_id };
                    uint8_t buf[WIRE_HEAD_MAX + 8];
                    size_t len = s_build_from(buf, r->type, 0, 1, 0, ":1@a", 4, "b",
                                              r->s2 ? 1 : 0, &from, "p", pi % 2);
                    wire_frame_t f;
                    int rc = s_decode(buf, len, &f);
                    bool ok = v >= 0x21 && v <= 0x7e;
                    if (rc != (ok ? 0 : -EBADMSG))
                        fail_msg("type 0x%02x, a user of %zu bytes with 0x%02x at %zu: %d",
                                 r->type, lens[li], v, places[pi], rc);
                    if (rc == 0) {
                        assert_memory_equal(f.from.user, user, lens[li]);
                        accepted++;
                    }
                    user[places[pi]] = 'a';
                }
            }
        }
    }
    assert_int_equal(accepted, 5 * N_OF(lens) * 3 * (0x7e - 0x21 + 1));   /* 5 types */
}

/* --- names, patterns, destinations --------------------------------------- */

static int s_name(const char *s)
{
    return wire_check_name(s, strlen(s));
}

static int s_pattern(const char *s)
{
    return wire_check_pattern(s, strlen(s));
}

static void test_wire_check_name_good(void **state)
{
    (void) state;
    static const char *good[] = {
        "a", "Z", "9", "_", "/", "printer", "sensors.temp", "a-b_c/d.e",
        "_private", "/tmp/x", "0day", "a.", "a-", "x..y", "UPPER.lower",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (s_name(good[i]) != 0)
            fail_msg("'%s' refused", good[i]);

    char longest[WIRE_NAME_MAX];
    memset(longest, 'a', sizeof longest);
    assert_int_equal(wire_check_name(longest, sizeof longest), 0);
    /* Only len bytes count: what follows is not looked at. */
    assert_int_equal(wire_check_name("ab cd", 2), 0);
}

static void test_wire_check_name_bad(void **state)
{
    (void) state;
    static const char *bad[] = {
        "", ".", "-", ".hidden", "-opt", "a b", "a@b", "a*", "*", ":1",
        "a:b", "tab\t", "nl\n", "caf\xc3\xa9", "a\\b", "a,b", "a+b", "~",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (s_name(bad[i]) != -EINVAL)
            fail_msg("'%s' accepted", bad[i]);

    assert_int_equal(wire_check_name("a\0b", 3), -EINVAL);
    char toolong[WIRE_NAME_MAX + 1];
    memset(toolong, 'a', sizeof toolong);
    assert_int_equal(wire_check_name(toolong, sizeof toolong), -EINVAL);
}

static void test_wire_check_pattern_good_and_bad(void **state)
{
    (void) state;
    static const char *good[] = {
        "*", "a", "a*", "sensors.*", "sensors*", "x/*", "printer", "a-*",
    };
    static const char *bad[] = {
        "", "**", "*a", "a**", "a*b", ".*", "-*", "a b*", "@*", "*.x", " *",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (s_pattern(good[i]) != 0)
            fail_msg("'%s' refused", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (s_pattern(bad[i]) != -EINVAL)
            fail_msg("'%s' accepted", bad[i]);

    /* A pattern must fit in one string: 255 bytes, star included. */
    char p[WIRE_NAME_MAX + 1];
    memset(p, 'p', sizeof p);
    assert_int_equal(wire_check_pattern(p, WIRE_NAME_MAX), 0);
    assert_int_equal(wire_check_pattern(p, WIRE_NAME_MAX + 1), -EINVAL);
    p[WIRE_NAME_MAX - 1] = '*';
    assert_int_equal(wire_check_pattern(p, WIRE_NAME_MAX), 0);
    p[WIRE_NAME_MAX - 1] = 'p';
    p[WIRE_NAME_MAX] = '*';
    assert_int_equal(wire_check_pattern(p, WIRE_NAME_MAX + 1), -EINVAL);
}

static int s_match(const char *pattern, const char *name)
{
    return wire_match(pattern, strlen(pattern), name, strlen(name));
}

static void test_wire_match(void **state)
{
    (void) state;
    assert_true(s_match("*", "anything"));
    assert_true(s_match("*", "a"));
    assert_true(s_match("printer", "printer"));
    assert_false(s_match("printer", "printer2"));
    assert_false(s_match("printer", "printe"));
    assert_false(s_match("printer", "Printer"));
    assert_true(s_match("sensors.*", "sensors.temp"));
    assert_true(s_match("sensors.*", "sensors."));
    assert_false(s_match("sensors.*", "sensors"));
    assert_false(s_match("sensors.*", "sensorsX"));
    assert_true(s_match("sensors*", "sensors"));
    assert_true(s_match("sensors*", "sensors.temp"));
    assert_false(s_match("ab*", "a"));
    assert_false(s_match("b*", "ab"));
}

typedef struct {
    const char *dest;
    uint64_t client;
    size_t namelen;
    const char *node;
} dest_t;

static void test_wire_parse_dest_good(void **state)
{
    (void) state;
    static const dest_t good[] = {
        { "printer", 0, 7, "" },
        { "printer@alpha", 0, 7, "alpha" },
        { "a@b", 0, 1, "b" },
        { ":1", 1, 2, "" },
        { ":42@beta", 42, 3, "beta" },
        { ":9999999999999999999", 9999999999999999999ull, 20, "" },
        { ":18@host-1.lan", 18, 3, "host-1.lan" },
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        const char *s = good[i].dest;
        size_t len = strlen(s);
        uint64_t client = 77;
        size_t namelen = 77, nodelen = 77;
        const char *node = NULL;
        if (wire_parse_dest(s, len, &client, &namelen, &node, &nodelen) != 0)
            fail_msg("'%s' refused", s);
        assert_int_equal(client, good[i].client);
        assert_int_equal(namelen, good[i].namelen);
        assert_int_equal(nodelen, strlen(good[i].node));
        assert_memory_equal(node, good[i].node, nodelen);
        /* The node part is a view into the destination. */
        assert_true(node >= s && node + nodelen == s + len);
    }
}

static void test_wire_parse_dest_bad(void **state)
{
    (void) state;
    static const char *bad[] = {
        "", "@", "a@", "@b", "a@b@c", ":", ":0", ":00", ":0@a", ":-1", ":+1",
        ":1a", ":a", ": 1", ":1 ", ":1@", "::1", ":1:2", ".a", "-a", "a b",
        "a@-b", "a@.b", "a@b c", "*", "a*", ":1@b*",
        ":12345678901234567890",    /* 20 digits */
        ":18446744073709551616",    /* 2^64 */
        ":99999999999999999999999",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t client = 77;
        size_t namelen = 77, nodelen = 77;
        const char *node = NULL;
        if (wire_parse_dest(bad[i], strlen(bad[i]), &client, &namelen,
                            &node, &nodelen) != -EINVAL)
            fail_msg("'%s' accepted", bad[i]);
        /* Outputs are untouched on failure. */
        assert_int_equal(client, 77);
        assert_int_equal(namelen + nodelen, 154);
        assert_null(node);
    }
}

static void test_wire_parse_dest_lengths(void **state)
{
    (void) state;
    char s[2 * WIRE_NAME_MAX + 2];
    uint64_t client;
    size_t namelen, nodelen;
    const char *node;

    /* A 255-byte name alone is fine, 256 bytes is not. */
    memset(s, 'n', sizeof s);
    assert_int_equal(wire_parse_dest(s, WIRE_NAME_MAX, &client, &namelen, &node, &nodelen), 0);
    assert_int_equal(namelen, WIRE_NAME_MAX);
    assert_int_equal(wire_parse_dest(s, WIRE_NAME_MAX + 1, &client, &namelen, &node, &nodelen),
                     -EINVAL);

    /* "name@node" must fit in one string as a whole, even when each part
       would be a valid name on its own. */
    s[100] = '@';
    assert_int_equal(wire_parse_dest(s, WIRE_NAME_MAX, &client, &namelen, &node, &nodelen), 0);
    assert_int_equal(namelen, 100);
    assert_int_equal(nodelen, WIRE_NAME_MAX - 101);
    assert_int_equal(wire_parse_dest(s, WIRE_NAME_MAX + 1, &client, &namelen, &node, &nodelen),
                     -EINVAL);
    assert_int_equal(wire_parse_dest(s, 2 * WIRE_NAME_MAX, &client, &namelen, &node, &nodelen),
                     -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wire_roundtrip_every_type),
        cmocka_unit_test(test_wire_roundtrip_optional_strings_absent),
        cmocka_unit_test(test_wire_roundtrip_longest_strings),
        cmocka_unit_test(test_wire_encode_cuts_long_strings),
        cmocka_unit_test(test_wire_encode_size_counts_payload),
        cmocka_unit_test(test_wire_spec_examples_decode_and_reencode),
        cmocka_unit_test(test_wire_spec_examples_match_doc),
        cmocka_unit_test(test_wire_peek_needs_five_bytes),
        cmocka_unit_test(test_wire_peek_bad_signature),
        cmocka_unit_test(test_wire_peek_size_too_small),
        cmocka_unit_test(test_wire_peek_over_max),
        cmocka_unit_test(test_wire_decode_length_mismatch),
        cmocka_unit_test(test_wire_decode_strings_overrun),
        cmocka_unit_test(test_wire_decode_leaves_ret_on_failure),
        cmocka_unit_test(test_wire_decode_rules_every_type),
        cmocka_unit_test(test_wire_decode_unknown_types),
        cmocka_unit_test(test_wire_decode_cut_at_every_offset),
        cmocka_unit_test(test_wire_decode_flip_every_byte),
        cmocka_unit_test(test_wire_sender_only_where_spec_says),
        cmocka_unit_test(test_wire_encode_unknown_sender),
        cmocka_unit_test(test_wire_sender_layout),
        cmocka_unit_test(test_wire_sender_cut_at_every_byte),
        cmocka_unit_test(test_wire_sender_flip_every_byte),
        cmocka_unit_test(test_wire_sender_len3_over_32),
        cmocka_unit_test(test_wire_sender_user_bytes),
        cmocka_unit_test(test_wire_check_name_good),
        cmocka_unit_test(test_wire_check_name_bad),
        cmocka_unit_test(test_wire_check_pattern_good_and_bad),
        cmocka_unit_test(test_wire_match),
        cmocka_unit_test(test_wire_parse_dest_good),
        cmocka_unit_test(test_wire_parse_dest_bad),
        cmocka_unit_test(test_wire_parse_dest_lengths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
