/*  fuzz_wire.c: a libFuzzer target for the local wire codec.

    The input is read the way ipc-node reads a client's socket: a stream of
    frames, each sized by wire_peek() and decoded by wire_decode(). Every
    frame is copied to a heap buffer of exactly its length first, so that
    ASan sees a read past its end even when more input follows. What decodes
    must be sound: views inside the frame and in the order of its fields;
    for a frame that delivers a message, its sender (uid, len3 of at most
    32, a user of bytes 0x21..0x7E, a node id) right after str2 and before
    the payload, and for any other none; encoding (wire_encode_from) back
    to the same bytes. Its strings are handed to the name, pattern and
    destination checks as the node would. Any breach aborts, which
    libFuzzer reports. */

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

/* The node's limit in a typical setup: 1 MiB of payload. */
#define MAX_FRAME  (WIRE_HEAD_MAX + ((size_t) 1 << 20))

#define CHECK(cond)  do { if (!(cond)) abort (); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Runs a decoded string through the checks the node applies to it. */
static void s_strings(const char *s, size_t len)
{
    uint64_t client;
    size_t namelen, nodelen;
    const char *node;
    if (wire_parse_dest(s, len, &client, &namelen, &node, &nodelen) == 0) {
        CHECK(namelen <= len && nodelen <= len);
        CHECK(node >= s && node + nodelen == s + len);
        CHECK(nodelen == 0 || namelen + 1 + nodelen == len);
        CHECK((client != 0) == (namelen > 0 && s[0] == ':'));
        /* A valid destination fits in one string and names no pattern. */
        CHECK(len <= WIRE_NAME_MAX);
        CHECK(!memchr(s, '*', len));
    }
    if (wire_check_pattern(s, len) == 0) {
        CHECK(len >= 1 && len <= WIRE_NAME_MAX);
        /* A pattern matches itself, and a prefix pattern its prefix. */
        if (s[len - 1] != '*')
            CHECK(wire_match(s, len, s, len));
        else if (len > 1)
            CHECK(wire_match(s, len, s, len - 1));
    }
    if (wire_check_name(s, len) == 0)
        CHECK(wire_check_pattern(s, len) == 0);
}

/* Decodes one frame of exactly len bytes (borrowed) from a heap copy. */
static void s_frame(const uint8_t *bytes, size_t len)
{
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return;
    memcpy(buf, bytes, len);

    wire_frame_t f;
    if (wire_decode(buf, len, &f) == 0) {
        CHECK(len >= WIRE_MIN);
        CHECK(f.s1 == (const char *) buf + 17);
        CHECK(f.s2 == f.s1 + f.s1len + 1);
        const uint8_t *after = (const uint8_t *) f.s2 + f.s2len;
        if (wire_has_from(f.type)) {
            /* uid:u32 len3:u8 user[len3] node_id[16], in this order. */
            CHECK(f.from.uid == wire_get32(after));
            CHECK(f.from.userlen == after[4] && f.from.userlen <= WIRE_USER_MAX);
            CHECK(f.from.user == (const char *) after + 5);
            for (size_t i = 0; i < f.from.userlen; i++)
                CHECK((uint8_t) f.from.user[i] >= 0x21 && (uint8_t) f.from.user[i] <= 0x7e);
            CHECK(f.from.node_id == after + 5 + f.from.userlen);
            CHECK(f.data == f.from.node_id + WIRE_NODE_ID);
            CHECK(f.type == WIRE_MESSAGE || f.type == WIRE_DELIVER_REQ ||
                  f.type == WIRE_DELIVER_REP || f.type == WIRE_PUBLICATION ||
                  f.type == WIRE_MONITORED);
            /* Touch the node id, so ASan checks it too. */
            volatile unsigned sum = 0;
            for (size_t i = 0; i < WIRE_NODE_ID; i++)
                sum += f.from.node_id[i];
            (void) sum;
        } else {
            CHECK(f.from.uid == 0 && f.from.userlen == 0 && f.from.node_id == NULL);
            CHECK(f.data == after);
        }
        CHECK(f.data + f.size == buf + len);

        uint8_t head[WIRE_HEAD_MAX];
        size_t n = wire_encode_from(head, f.type, f.flags, f.seq, f.aux,
                                    f.s1, f.s1len, f.s2, f.s2len, &f.from, f.size);
        CHECK(n + f.size == len && memcmp(head, buf, n) == 0);

        s_strings(f.s1, f.s1len);
        s_strings(f.s2, f.s2len);
        if (f.s1len && f.s2len)
            wire_match(f.s1, f.s1len, f.s2, f.s2len);
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The whole input as one frame, whatever its size field says. */
    s_frame(data, size);

    /* The input as a stream, as the node cuts it. */
    size_t at = 0;
    while (at < size) {
        ssize_t n = wire_peek(data + at, size - at, MAX_FRAME);
        if (n == 0 || n == -EBADMSG || n == -EMSGSIZE)
            break;
        CHECK(n >= WIRE_MIN && (size_t) n <= MAX_FRAME);
        if ((size_t) n > size - at)
            break;          /* the node would wait for more */
        s_frame(data + at, (size_t) n);
        at += (size_t) n;
    }
    return 0;
}
