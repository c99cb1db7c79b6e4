/*  options.h: the command line and --config files: the option table, the
    checks of each value, and the defaults that depend on who runs the node. */
#ifndef IPCNET_OPTIONS_H
#define IPCNET_OPTIONS_H

#include "cli.h"
#include "node.h"

#include <stddef.h>

/* What the options say, gathered before anything starts. */
typedef struct {
    node_config_t config;
    cli_t cli;
    int use_syslog, verbs, key_verb;
    const char *policy_check;   /* --policy-check FILE */
    const char *socket_opt, *name_opt;
    char **peers;
    size_t npeers;
    char **kept;        /* values read from config files */
    size_t nkept;
    int depth;          /* --config nesting */
    int in_file;        /* reading a config file */
    const char *node_opt, *verb_opt;    /* the first of each given on argv */
} options_t;

/* Read first by the node run as root, when it exists (--no-config: not). */
#define DEFAULT_CONFIG SYSCONFDIR "/ipc-node/ipc-node.conf"

/* Reads argv into o (starting from the defaults). Returns -1 to go on,
   or the exit status to end with at once (0 after --help or --version, 2
   for bad usage, said on stderr). */
int options_parse(options_t *o, int argc, char **argv);

/* What the daemon still needs: the socket path, the state directory and
   the node name, from the options or their defaults. Returns 0, or 2
   after saying why on stderr. */
int options_daemon(options_t *o);

/* The state directory: /var/lib/ipc-node for root, else under
   $XDG_STATE_HOME or ~/.local/state. Returns 0, or -1 if it does not fit. */
int options_default_state_dir(char *buf, size_t size);

/* Frees what o holds (the peers). */
void options_free(options_t *o);

#endif
