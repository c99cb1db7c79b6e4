/*  json.h: JSON out, for the CLI's --json: always valid, whatever the bytes.

    Strings that are not UTF-8 keep their valid parts and have each bad
    byte replaced by U+FFFD; payloads are never altered: text when they
    are UTF-8, else base64 (the caller adds "encoding": "base64"). With
    pretty, objects and arrays are indented. Writes to stdout. */
#ifndef IPCNET_JSON_H
#define IPCNET_JSON_H

#include <stddef.h>

void json_pretty(int on);

/* '{' or '[' to open, and its close. */
void json_open(char kind);
void json_close(void);

/* The key of the next value in an object. */
void json_key(const char *key);

void json_string(const char *s, size_t len);
void json_cstring(const char *s);       /* NULL: null */
void json_number(long long n);
void json_null(void);
/* text as it is (a number the caller formatted). */
void json_raw(const char *text);
/* A value that is digits (no leading zero) as a number, "-" or "" as
   null, else a string: for listing fields that may be either. */
void json_field(const char *s, int numeric);
/* A payload: text if it is UTF-8, else base64. Returns 1 for base64. */
int json_payload(const void *data, size_t size);

/* Ends the top value with a newline. */
void json_end(void);

int json_utf8_valid(const unsigned char *s, size_t len);

#endif
