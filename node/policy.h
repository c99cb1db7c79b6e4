/*  policy.h: who may do what with which names (docs/policy.md).

    Rules are read from a file, one a line: allow or deny, actions, a name
    pattern, and whose calls they are about. The first rule that matches a
    call decides; with none, the call is allowed. The file can be read
    again while the node runs: a policy keeps its address, and its
    generation says when it changed. */
#ifndef IPCNET_POLICY_H
#define IPCNET_POLICY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct policy policy_t;

/* The actions a rule is about. */
enum {
    POLICY_BIND = 1 << 0, POLICY_SEND = 1 << 1, POLICY_REQUEST = 1 << 2,
    POLICY_REPLY = 1 << 3, POLICY_PUBLISH = 1 << 4, POLICY_SUBSCRIBE = 1 << 5,
    POLICY_WATCH = 1 << 6, POLICY_MONITOR = 1 << 7,
    POLICY_PUT = 1 << 8, POLICY_GET = 1 << 9, POLICY_WATCH_KEYS = 1 << 10,  /* the store */
};

/* Who calls: a client of this node (local, with its uid, groups and user
   name from the kernel), or a client of another node (its uid and user
   as that node says, and the node's name and id). */
typedef struct {
    int local;
    uint32_t uid;
    const gid_t *groups;        /* local: primary group first */
    size_t ngroups;
    const char *user;
    const char *node;           /* remote: the node's name, */
    const char *node_id;        /* and its id (32 hex digits) */
} policy_who_t;

/* An empty policy (every call allowed), or NULL when out of memory. */
policy_t *policy_new(void);
void policy_destroy(policy_t **self_p);

/* Reads the rules of path into self, replacing its rules and bumping its
   generation; on any error (said on stderr, or logged, with the file and
   line) it keeps the rules it had. Returns 0, -EINVAL (a rule is wrong),
   or -errno (the file cannot be read). */
int policy_load(policy_t *self, const char *path, int log);

/* Prints the rules as they are understood, one a line, to f. */
void policy_print(const policy_t *self, void *f);

/* Bumped at each load. */
uint64_t policy_gen(const policy_t *self);

/* Does any rule name one of these actions? (If not, checking them is
   needless.) */
int policy_has(const policy_t *self, int actions);

/* Checks a call: action on name (len bytes) by who. Returns 1 (a rule
   allows it), 0 (a rule denies it: *ret_rule, if not NULL, points at its
   text, "FILE:LINE: rule"), or -1 (no rule is about it). */
int policy_check(const policy_t *self, const policy_who_t *who, int action, const char *name,
                 size_t len, const char **ret_rule);

/* The words of a denial for the caller: "denied by FILE:LINE: rule",
   into buf; a denial the log tells of at most ten times a second. */
const char *policy_denial(char *buf, size_t size, const char *rule);
void policy_log_denial(const policy_who_t *who, const char *what, const char *name,
                       size_t len, const char *rule);

#endif
