/*  hexdump.c: the ```hexdump blocks of the specs; see hexdump.h. */

#include "hexdump.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <cmocka.h>

/* Where the spec is: $TOP_SRCDIR, else the source tree this file was
   compiled from. Returns a malloc'd path (given). */
static char *s_spec_path(const char *rel)
{
    const char *top = getenv("TOP_SRCDIR");
    char *path = NULL;
    if (top && *top) {
        if (asprintf(&path, "%s/%s", top, rel) < 0)
            return NULL;
        return path;
    }
    const char *me = __FILE__, *tail = "tests/common/hexdump.c";
    size_t mlen = strlen(me), tlen = strlen(tail);
    int prefix = mlen >= tlen && strcmp(me + mlen - tlen, tail) == 0
               ? (int) (mlen - tlen) : 0;
    if (asprintf(&path, "%.*s%s", prefix, me, rel) < 0)
        return NULL;
    return path;
}

FILE *hexdump_open_spec(const char *rel)
{
    char *path = s_spec_path(rel);
    assert_non_null(path);
    FILE *in = fopen(path, "r");
    if (!in) {
        print_message("cannot read %s: %s (set TOP_SRCDIR)\n", path, strerror(errno));
        free(path);
        skip();
    }
    free(path);
    return in;
}

size_t hexdump_read_blocks(FILE *in, hexdump_block_t *blocks)
{
    char line[512];
    size_t n = 0;
    bool inside = false;
    while (fgets(line, sizeof line, in)) {
        if (!inside) {
            if (strncmp(line, "```hexdump", 10) == 0) {
                assert_true(n < HEXDUMP_MAX_BLOCKS);
                blocks[n].len = 0;
                inside = true;
            }
            continue;
        }
        if (strncmp(line, "```", 3) == 0) {
            inside = false;
            n++;
            continue;
        }
        char *bar = strchr(line, '|');
        assert_non_null(bar);       /* every dump line is "bytes | meaning" */
        *bar = '\0';
        for (char *tok = strtok(line, " \t"); tok; tok = strtok(NULL, " \t")) {
            char *end;
            unsigned long v = strtoul(tok, &end, 16);
            assert_int_equal(strlen(tok), 2);
            assert_true(*end == '\0' && v <= 0xff);
            assert_true(blocks[n].len < sizeof blocks[n].bytes);
            blocks[n].bytes[blocks[n].len++] = (uint8_t) v;
        }
    }
    assert_false(inside);
    return n;
}

size_t hexdump_read_spec(const char *rel, hexdump_block_t *blocks)
{
    FILE *in = hexdump_open_spec(rel);
    size_t n = hexdump_read_blocks(in, blocks);
    fclose(in);
    return n;
}

void hexdump_expect_block(const hexdump_block_t *b, const uint8_t *bytes, size_t len)
{
    assert_int_equal(b->len, len);
    assert_memory_equal(b->bytes, bytes, len);
}

uint8_t *hexdump_dup(const uint8_t *buf, size_t len)
{
    uint8_t *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len)
        memcpy(copy, buf, len);
    return copy;
}
