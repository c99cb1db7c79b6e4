/*  test_wire.c: unit tests of the local wire codec (libnet/wire.c).

    The examples of docs/protocol-local.md (section 12) are replayed byte for
    byte, and read back from the document itself so that the two cannot
    drift apart. Malformed input is made by cutting good frames at every
    offset and flipping every byte. Each decode works on a heap copy of
    exactly the bytes under test, so that valgrind or ASan see any read past
    the end of a frame. */

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

/* --- the spec's examples (docs/protocol-local.md, section 12) ------------ */

/* 12.1 HELLO, label "demo", seq 1, version 1. */
static const uint8_t s_ex_hello[] = {
    0x00, 0x00, 0x00, 0x12, 0xa7, 0x01, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01,
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
} example_t;

static const example_t s_examples[] = {
    { s_ex_hello, sizeof s_ex_hello, WIRE_HELLO, 0, 1, WIRE_VERSION,
      "demo", "", "" },
    { s_ex_welcome, sizeof s_ex_welcome, WIRE_WELCOME, 0, 1, 1048576,
      ":1@alpha", "alpha", "" },
    { s_ex_send, sizeof s_ex_send, WIRE_SEND, 0, 7, 0,
      "printer", "", "hello" },
    { s_ex_error, sizeof s_ex_error, WIRE_ERROR, WIRE_SEND, 7, ENOENT,
      "printer", "no such name", "" },
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
} rule_t;

static const rule_t s_spec_rules[] = {
    { WIRE_HELLO,       OPT,  NONE, false },
    { WIRE_BIND,        REQ,  NONE, false },
    { WIRE_UNBIND,      REQ,  NONE, false },
    { WIRE_SUBSCRIBE,   REQ,  NONE, false },
    { WIRE_UNSUBSCRIBE, REQ,  NONE, false },
    { WIRE_WATCH,       REQ,  NONE, false },
    { WIRE_UNWATCH,     REQ,  NONE, false },
    { WIRE_SEND,        REQ,  NONE, true  },
    { WIRE_REQUEST,     REQ,  NONE, true  },
    { WIRE_REPLY,       REQ,  NONE, true  },
    { WIRE_PUBLISH,     REQ,  NONE, true  },
    { WIRE_QUERY,       NONE, NONE, false },
    { WIRE_WELCOME,     REQ,  REQ,  false },
    { WIRE_OK,          NONE, NONE, true  },
    { WIRE_ERROR,       OPT,  OPT,  false },
    { WIRE_MESSAGE,     REQ,  REQ,  true  },
    { WIRE_DELIVER_REQ, REQ,  REQ,  true  },
    { WIRE_DELIVER_REP, REQ,  NONE, true  },
    { WIRE_PUBLICATION, REQ,  REQ,  true  },
    { WIRE_EVENT,       REQ,  REQ,  false },
};
#define N_TYPES (sizeof s_spec_rules / sizeof s_spec_rules[0])

static const rule_t *s_rule_of(unsigned type)
{
    for (size_t i = 0; i < N_TYPES; i++)
        if (s_spec_rules[i].type == type)
            return &s_spec_rules[i];
    return NULL;
}

/* --- helpers ------------------------------------------------------------- */

/* Encodes a whole frame into out (room for WIRE_HEAD_MAX + paylen bytes);
   returns its length. */
static size_t s_build(uint8_t *out, uint8_t type, uint16_t flags, uint32_t seq,
                      uint32_t aux, const char *s1, size_t l1,
                      const char *s2, size_t l2, const void *payload, size_t paylen)
{
    size_t head = wire_encode(out, type, flags, seq, aux, s1, l1, s2, l2, paylen);
    if (paylen)
        memcpy(out + head, payload, paylen);
    return head + paylen;
}

/* A decoded frame must point inside its buffer, fill it exactly, and encode
   back to the very same bytes. */
static void s_assert_sound(const uint8_t *buf, size_t len, const wire_frame_t *f)
{
    assert_true(f->s1len <= WIRE_NAME_MAX);
    assert_true(f->s2len <= WIRE_NAME_MAX);
    assert_ptr_equal(f->s1, (const char *) buf + 17);
    assert_ptr_equal(f->s2, (const char *) buf + 18 + f->s1len);
    assert_ptr_equal(f->data, buf + 18 + f->s1len + f->s2len);
    assert_int_equal(WIRE_MIN + f->s1len + f->s2len + f->size, len);
    assert_true(f->data + f->size == buf + len);

    uint8_t head[WIRE_HEAD_MAX];
    size_t n = wire_encode(head, f->type, f->flags, f->seq, f->aux,
                           f->s1, f->s1len, f->s2, f->s2len, f->size);
    assert_int_equal(n, len - f->size);
    assert_memory_equal(head, buf, n);
    assert_int_equal(wire_peek(buf, len, len), (ssize_t) len);
}

/* Decodes a heap copy of exactly len bytes; on success checks that the
   frame is sound and fills *ret with views into buf. */
static int s_decode(const uint8_t *buf, size_t len, wire_frame_t *ret)
{
    uint8_t *copy = hexdump_dup(buf, len);
    wire_frame_t f;
    int rc = wire_decode(copy, len, &f);
    if (rc == 0) {
        s_assert_sound(copy, len, &f);
        /* Views into the copy would dangle: rebase them onto buf. */
        f.s1 = (const char *) buf + (f.s1 - (const char *) copy);
        f.s2 = (const char *) buf + (f.s2 - (const char *) copy);
        f.data = buf + (f.data - copy);
        *ret = f;
    } else
        assert_int_equal(rc, -EBADMSG);
    free(copy);
    return rc;
}

/* Builds the fullest frame that type allows: both strings and a payload
   where the rules permit them. out has room for WIRE_HEAD_MAX + 64. */
static size_t s_sample(uint8_t *out, const rule_t *r)
{
    static const char payload[] = "payload\0with\xff" "binary";
    return s_build(out, r->type, 0x0102, 0x03040506, 0x0708090a,
                   "sensors.temp", r->s1 ? 12 : 0,
                   ":12@node-b", r->s2 ? 10 : 0,
                   payload, r->payload ? sizeof payload - 1 : 0);
}

typedef struct {
    uint8_t bytes[WIRE_HEAD_MAX + 64];
    size_t len;
} sample_t;

/* The frames the malformed-input tests start from: the spec's examples and
   one full frame of each type, written into out (room for N_EXAMPLES +
   N_TYPES). Returns their count. */
static size_t s_samples(sample_t *out)
{
    size_t n = 0;
    for (size_t i = 0; i < N_EXAMPLES; i++, n++) {
        memcpy(out[n].bytes, s_examples[i].bytes, s_examples[i].len);
        out[n].len = s_examples[i].len;
    }
    for (size_t i = 0; i < N_TYPES; i++, n++)
        out[n].len = s_sample(out[n].bytes, &s_spec_rules[i]);
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
        /* Extreme header values travel unchanged. */
        static const uint32_t nums[] = { 0, 1, 0x7fffffff, 0x80000000, 0xffffffff };
        for (size_t k = 0; k < sizeof nums / sizeof nums[0]; k++) {
            uint16_t flags = (uint16_t) (nums[k] ^ 0xa5c3);
            size_t len = s_build(buf, r->type, flags, nums[k], ~nums[k],
                                 s1, strlen(s1), s2, strlen(s2), pl, pllen);
            assert_int_equal(len, WIRE_MIN + strlen(s1) + strlen(s2) + pllen);
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

    /* The longest head fills WIRE_HEAD_MAX exactly: no byte more. */
    uint8_t *head = malloc(WIRE_HEAD_MAX);
    assert_non_null(head);
    size_t n = wire_encode(head, WIRE_MESSAGE, 0, 1, 2, a, sizeof a, b, sizeof b, 0);
    assert_int_equal(n, WIRE_HEAD_MAX);

    wire_frame_t f;
    assert_int_equal(s_decode(head, n, &f), 0);
    assert_int_equal(f.s1len, WIRE_NAME_MAX);
    assert_int_equal(f.s2len, WIRE_NAME_MAX);
    assert_memory_equal(f.s1, a, sizeof a);
    assert_memory_equal(f.s2, b, sizeof b);
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
    assert_int_equal(n, WIRE_HEAD_MAX);
    wire_frame_t f;
    assert_int_equal(s_decode(buf, n, &f), 0);
    assert_int_equal(f.s1len, WIRE_NAME_MAX);
    assert_int_equal(f.s2len, WIRE_NAME_MAX);
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
        assert_int_equal(f.size, strlen(ex->payload));
        assert_memory_equal(f.data, ex->payload, f.size);

        /* Encoding the same fields from scratch gives the same bytes. */
        uint8_t buf[WIRE_HEAD_MAX + 16];
        size_t len = s_build(buf, ex->type, ex->flags, ex->seq, ex->aux,
                             ex->s1, strlen(ex->s1), ex->s2, strlen(ex->s2),
                             ex->payload, strlen(ex->payload));
        assert_int_equal(len, ex->len);
        assert_memory_equal(buf, ex->bytes, len);
    }
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

    /* MESSAGE "ab" "cd": len1 at 16, len2 at 19, no payload. */
    size_t len = s_build(buf, WIRE_MESSAGE, 0, 1, 0, "ab", 2, "cd", 2, NULL, 0);
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
    static const uint8_t unknown[] = { 0x00, 0x0d, 0x7f, 0x80, 0x84, 0x87, 0x8d, 0xff };
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
    static sample_t samples[N_EXAMPLES + N_TYPES];
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
    static sample_t samples[N_EXAMPLES + N_TYPES];
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
