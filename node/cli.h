/*  cli.h: the command-line verbs; each talks to the local node as a client. */
#ifndef IPCNET_CLI_H
#define IPCNET_CLI_H

typedef enum {
    VERB_NONE = 0, VERB_SERVICES, VERB_PEERS, VERB_STATS, VERB_CLIENTS,
    VERB_SEND, VERB_REQUEST, VERB_LISTEN, VERB_PUBLISH, VERB_SUBSCRIBE, VERB_WATCH,
} verb_t;

typedef struct {
    verb_t verb;
    const char *socket;     /* NULL: the default */
    const char *target;     /* name, topic or pattern */
    const char *data;       /* payload; "-" reads standard input */
    int timeout_ms;         /* requests; 0: the node's default */
    long count;             /* listen, subscribe, watch: stop after; 0: never */
    int echo;               /* listen: answer requests with their payload */
    int json;
    int verbose;            /* listen, subscribe: who sent each message */
} cli_t;

/* Runs one verb. Returns the process exit status: 0, 1 on failure. */
int cli_run(const cli_t *cli);

#endif
