/*  cli.h: the command-line verbs; each talks to the local node as a client. */
#ifndef IPCNET_CLI_H
#define IPCNET_CLI_H

typedef enum {
    VERB_NONE = 0, VERB_SERVICES, VERB_PEERS, VERB_STATS, VERB_CLIENTS,
    VERB_SEND, VERB_REQUEST, VERB_LISTEN, VERB_PUBLISH, VERB_SUBSCRIBE, VERB_WATCH,
    VERB_CHECK, VERB_PING, VERB_BENCH, VERB_MONITOR, VERB_DIAGNOSE,
    VERB_PUT, VERB_GET, VERB_DEL, VERB_KEYS, VERB_WATCH_KEYS,
} verb_t;

typedef struct {
    verb_t verb;
    const char *socket;     /* NULL: the default */
    const char *target;     /* name, topic or pattern */
    const char *data;       /* payload; "-" reads standard input */
    int timeout_ms;         /* requests; 0: the node's default */
    long count;             /* listen, subscribe, watch: stop after; 0: never */
    int echo;               /* listen: answer requests with their payload */
    const char *exec;       /* listen: answer requests with this command's output */
    int json;               /* 1; 2: pretty */
    int verbose;            /* listen, subscribe: who sent each message */
    unsigned ttl_ms;        /* put: the key's time to live; 0: none */
    int ephemeral;          /* put: gone when the CLI exits */
} cli_t;

/* Runs one verb. Returns the process exit status: 0, 1 on failure. */
int cli_run(const cli_t *cli);

/* Inside the CLI (cli.c, cli_tools.c). */
#include "ipcnet.h"
ipcnet_t *cli_connect(const cli_t *cli, const char *label, int flags);   /* says why not */
void cli_failed(ipcnet_t *c, const char *what, const char *target, int rc);
void cli_print_msg(const cli_t *cli, const ipcnet_msg_t *m);
/* A payload from the command line: data, or with "-" standard input (up
   to about max); given to the caller (free()); NULL when out of memory. */
char *cli_payload(const char *data, size_t max, size_t *ret_size);
int cli_check(const cli_t *cli);
int cli_ping(ipcnet_t *c, const cli_t *cli);
int cli_bench(ipcnet_t *c, const cli_t *cli);
/* --exec: runs the command on the request's payload and replies with its
   output; 0 or a negative errno. */
int cli_exec_reply(ipcnet_t *c, const cli_t *cli, const ipcnet_msg_t *req);
/* --put, --get, --del, --keys, --watch-keys (cli_store.c). */
int cli_store(ipcnet_t *c, const cli_t *cli);

#endif
