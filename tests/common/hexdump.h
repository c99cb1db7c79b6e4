/*  hexdump.h: the ```hexdump blocks of the protocol specs in docs/, for
    the tests that check the spec's examples against the codecs (test_wire,
    test_proto), and the exact heap copy of a frame both decode from.

    A block is a fenced ```hexdump section whose lines are "bytes | what
    they mean": two hex digits a byte, before the '|'. The readers fail the
    running cmocka test on a malformed block.
*/
#ifndef HEXDUMP_H
#define HEXDUMP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define HEXDUMP_MAX_BLOCKS  16      /* blocks one spec may hold */

typedef struct {
    uint8_t bytes[1024];
    size_t len;
} hexdump_block_t;

/* Opens the spec rel ("docs/protocol-node.md"): under $TOP_SRCDIR (set by
   'make check'), else in the source tree this file was compiled from.
   Skips the running test when it cannot be read. Given: the caller
   closes it. */
FILE *hexdump_open_spec(const char *rel);

/* Reads the hexdump blocks of in into blocks[HEXDUMP_MAX_BLOCKS] (the
   bytes before the '|' of each line). Returns the number of blocks. */
size_t hexdump_read_blocks(FILE *in, hexdump_block_t *blocks);

/* Reads the hexdump blocks of the spec rel (see hexdump_open_spec()).
   Returns the number of blocks. */
size_t hexdump_read_spec(const char *rel, hexdump_block_t *blocks);

/* A heap copy of exactly len bytes of a frame (given: free() it), so that
   the memory checkers catch a decoder reading past its end. */
uint8_t *hexdump_dup(const uint8_t *buf, size_t len);

/* Fails the running test unless block b is exactly the len bytes. */
void hexdump_expect_block(const hexdump_block_t *b, const uint8_t *bytes, size_t len);

#endif
