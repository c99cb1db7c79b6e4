/*  json.c: JSON out; see json.h. */

#include "json.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define DEPTH_MAX 8

static int s_pretty;
static int s_depth;
static int s_first[DEPTH_MAX];  /* no element yet at this depth */
static char s_kind[DEPTH_MAX];  /* '{' or '[' */
static int s_after_key;         /* the next value follows a key */

void json_pretty(int on)
{
    s_pretty = on;
}

static void s_indent(void)
{
    if (!s_pretty)
        return;
    putchar('\n');
    for (int i = 0; i < s_depth; i++)
        fputs("  ", stdout);
}

/* Before a value (or a key): the comma, and in an array the indent. */
static void s_element(void)
{
    if (s_after_key) {
        s_after_key = 0;
        return;
    }
    if (s_depth > 0) {
        if (!s_first[s_depth - 1])
            putchar(',');
        if (!s_pretty && !s_first[s_depth - 1])
            putchar(' ');
        s_first[s_depth - 1] = 0;
        s_indent();
    }
}

void json_open(char kind)
{
    s_element();
    putchar(kind);
    if (s_depth < DEPTH_MAX) {
        s_first[s_depth] = 1;
        s_kind[s_depth] = kind;
        s_depth++;
    }
}

void json_close(void)
{
    if (s_depth == 0)
        return;
    s_depth--;
    if (!s_first[s_depth])
        s_indent();
    putchar(s_kind[s_depth] == '{' ? '}' : ']');
}

void json_key(const char *key)
{
    s_element();
    s_after_key = 1;        /* the key itself needs no comma */
    json_string(key, strlen(key));
    fputs(": ", stdout);
    s_after_key = 1;
}

int json_utf8_valid(const unsigned char *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        unsigned char c = s[i];
        size_t n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3
                 : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (n == 0 || i + n > len)
            return 0;
        uint32_t cp = n == 1 ? c : c & (0x7F >> n);
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        /* Overlong forms, surrogates, past U+10FFFF. */
        if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
            (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
            return 0;
        i += n;
    }
    return 1;
}

/* The length of the UTF-8 sequence at s (len bytes left), or 0 if bad. */
static size_t s_seq(const unsigned char *s, size_t len)
{
    size_t n = s[0] < 0x80 ? 1 : (s[0] & 0xE0) == 0xC0 ? 2 : (s[0] & 0xF0) == 0xE0 ? 3
             : (s[0] & 0xF8) == 0xF0 ? 4 : 0;
    return n && n <= len && json_utf8_valid(s, n) ? n : 0;
}

void json_string(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *) str;
    if (!s_after_key)
        s_element();
    else
        s_after_key = 0;
    putchar('"');
    for (size_t i = 0; i < len;) {
        unsigned char ch = s[i];
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch == '\n')
            fputs("\\n", stdout);
        else if (ch == '\t')
            fputs("\\t", stdout);
        else if (ch < 0x20 || ch == 0x7f)
            printf("\\u%04x", ch);
        else if (ch < 0x80)
            putchar(ch);
        else {
            size_t n = s_seq(s + i, len - i);
            if (n == 0) {
                fputs("\\ufffd", stdout);
                i++;
                continue;
            }
            fwrite(s + i, 1, n, stdout);
            i += n;
            continue;
        }
        i++;
    }
    putchar('"');
}

void json_cstring(const char *s)
{
    if (s)
        json_string(s, strlen(s));
    else
        json_null();
}

void json_number(long long n)
{
    if (!s_after_key)
        s_element();
    s_after_key = 0;
    printf("%lld", n);
}

void json_raw(const char *text)
{
    if (!s_after_key)
        s_element();
    s_after_key = 0;
    fputs(text, stdout);
}

void json_null(void)
{
    if (!s_after_key)
        s_element();
    s_after_key = 0;
    fputs("null", stdout);
}

void json_field(const char *s, int numeric)
{
    size_t len = strlen(s);
    int digits = len > 0 && len < 19 && (s[0] != '0' || len == 1);
    for (size_t i = 0; i < len && digits; i++)
        digits = s[i] >= '0' && s[i] <= '9';
    if (len == 0 || strcmp(s, "-") == 0)
        json_null();
    else if (numeric && digits) {
        long long n = 0;
        for (size_t i = 0; i < len; i++)
            n = n * 10 + (s[i] - '0');
        json_number(n);
    } else
        json_string(s, len);
}

int json_payload(const void *data, size_t size)
{
    if (json_utf8_valid(data, size)) {
        json_string(data, size);
        return 0;
    }
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = data;
    if (!s_after_key)
        s_element();
    s_after_key = 0;
    putchar('"');
    for (size_t i = 0; i < size; i += 3) {
        uint32_t v = (uint32_t) p[i] << 16 | (i + 1 < size ? (uint32_t) p[i + 1] << 8 : 0) |
                     (i + 2 < size ? p[i + 2] : 0);
        putchar(b64[v >> 18 & 63]);
        putchar(b64[v >> 12 & 63]);
        putchar(i + 1 < size ? b64[v >> 6 & 63] : '=');
        putchar(i + 2 < size ? b64[v & 63] : '=');
    }
    putchar('"');
    return 1;
}

void json_end(void)
{
    putchar('\n');
    fflush(stdout);
}
