/*  policy.c: the rules of a policy file, read and checked. */

#include "policy.h"
#include "log.h"
#include "path.h"
#include "wire.h"

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define POLICY_FILE_MAX (1u << 20)
#define POLICY_RULES_MAX 10000
#define RULE_TEXT       320

enum { WHO_ANY, WHO_LOCAL, WHO_REMOTE, WHO_USER, WHO_UID, WHO_GROUP, WHO_GID, WHO_NODE };

typedef struct {
    int allow;
    int actions;
    char pattern[WIRE_NAME_MAX + 1];
    size_t plen;                /* without the '*' of a prefix */
    int prefix;                 /* pattern ends in '*' ("*" alone: plen 0) */
    int who;
    uint32_t id;                /* WHO_UID, WHO_GID; WHO_GROUP: its gid */
    char user[WIRE_USER_MAX + 1];       /* WHO_USER: "" for any user (user *@node) */
    char node[WIRE_NAME_MAX + 1];       /* WHO_USER, WHO_NODE: "" for this node */
    char text[RULE_TEXT];       /* "FILE:LINE: the rule", for denials */
} rule_t;

struct policy {
    rule_t *rules;
    size_t count;
    int actions;                /* every action some rule names */
    uint64_t gen;
    int fd;                     /* the file last read, kept open: see policy_load */
    dev_t dev;
    ino_t ino;
};

static const struct {
    const char *name;
    int bit;
} s_actions[] = {
    { "bind", POLICY_BIND }, { "send", POLICY_SEND }, { "request", POLICY_REQUEST },
    { "reply", POLICY_REPLY }, { "publish", POLICY_PUBLISH }, { "subscribe", POLICY_SUBSCRIBE },
    { "watch", POLICY_WATCH }, { "monitor", POLICY_MONITOR },
    { "put", POLICY_PUT }, { "get", POLICY_GET }, { "watch-keys", POLICY_WATCH_KEYS },
};
#define N_ACTIONS (sizeof s_actions / sizeof s_actions[0])
#define ALL_ACTIONS ((1 << N_ACTIONS) - 1)

policy_t *policy_new(void)
{
    policy_t *self = calloc(1, sizeof (policy_t));
    if (self)
        self->fd = -1;
    return self;
}

void policy_destroy(policy_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    if ((*self_p)->fd >= 0)
        close((*self_p)->fd);
    free((*self_p)->rules);
    free(*self_p);
    *self_p = NULL;
}

uint64_t policy_gen(const policy_t *self)
{
    return self->gen;
}

int policy_has(const policy_t *self, int actions)
{
    return (self->actions & actions) != 0;
}

/* Says what is wrong with a line: on stderr (--policy-check, a node
   starting) or in the log (a reload). */
static void s_error(int log, const char *path, int lineno, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void s_error(int log, const char *path, int lineno, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (log)
        log_error("%s:%d: %s", path, lineno, what);
    else
        fprintf(stderr, "ipc-node: %s:%d: %s\n", path, lineno, what);
}

/* Splits the next word off *at (blanks between words). */
static char *s_word(char **at)
{
    char *w = *at + strspn(*at, " \t\r");
    if (!*w)
        return NULL;
    char *end = w + strcspn(w, " \t\r");
    if (*end)
        *end++ = 0;
    *at = end;
    return w;
}

static int s_number(const char *s, uint32_t *ret)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || *s == '-' || v > UINT32_MAX)
        return -1;
    *ret = (uint32_t) v;
    return 0;
}

/* Reads one rule (the line without its comment); returns 0 or -1 after
   saying why. */
static int s_rule(char *line, rule_t *r, int log, const char *path, int lineno)
{
    char *at = line;
    char *verdict = s_word(&at), *actions = s_word(&at), *pattern = s_word(&at);
    char *who = s_word(&at), *whom = who ? s_word(&at) : NULL, *extra = s_word(&at);
    if (!verdict || !actions || !pattern) {
        s_error(log, path, lineno, "a rule is 'allow|deny ACTIONS PATTERN [WHO]'");
        return -1;
    }
    memset(r, 0, sizeof *r);
    if (strcmp(verdict, "allow") == 0)
        r->allow = 1;
    else if (strcmp(verdict, "deny") != 0) {
        s_error(log, path, lineno, "'%s': a rule starts with allow or deny", verdict);
        return -1;
    }
    if (strcmp(actions, "*") == 0)
        r->actions = ALL_ACTIONS;
    for (char *a = actions, *next; r->actions != ALL_ACTIONS && a && *a; a = next) {
        next = strchr(a, ',');
        if (next)
            *next++ = 0;
        size_t i = 0;
        while (i < N_ACTIONS && strcmp(s_actions[i].name, a) != 0)
            i++;
        if (i == N_ACTIONS) {
            s_error(log, path, lineno, "'%s' is not an action (bind, send, request, reply, "
                    "publish, subscribe, watch, or *)", a);
            return -1;
        }
        r->actions |= s_actions[i].bit;
    }
    size_t plen = strlen(pattern);
    if (wire_check_pattern(pattern, plen) < 0) {
        s_error(log, path, lineno, "'%s' is not a name, a prefix and *, or *", pattern);
        return -1;
    }
    r->prefix = pattern[plen - 1] == '*';
    r->plen = r->prefix ? plen - 1 : plen;
    memcpy(r->pattern, pattern, plen + 1);
    r->who = WHO_ANY;
    if (who && strcmp(who, "everyone") != 0 && strcmp(who, "local") != 0 &&
        strcmp(who, "remote") != 0 && !whom) {
        s_error(log, path, lineno, "'%s' needs a name or a number after it", who);
        return -1;
    }
    if (!who || strcmp(who, "everyone") == 0)
        r->who = WHO_ANY;
    else if (strcmp(who, "local") == 0)
        r->who = WHO_LOCAL;
    else if (strcmp(who, "remote") == 0)
        r->who = WHO_REMOTE;
    else if (strcmp(who, "uid") == 0 || strcmp(who, "gid") == 0) {
        r->who = who[0] == 'u' ? WHO_UID : WHO_GID;
        if (s_number(whom, &r->id) < 0) {
            s_error(log, path, lineno, "'%s' is not a number", whom);
            return -1;
        }
    } else if (strcmp(who, "group") == 0) {
        struct group *g = getgrnam(whom);
        if (!g) {
            s_error(log, path, lineno, "'%s' is no group of this system", whom);
            return -1;
        }
        r->who = WHO_GROUP;
        r->id = g->gr_gid;
    } else if (strcmp(who, "node") == 0) {
        if (wire_check_name(whom, strlen(whom)) < 0 || strlen(whom) > WIRE_NAME_MAX) {
            s_error(log, path, lineno, "'%s' is not a node name or id", whom);
            return -1;
        }
        r->who = WHO_NODE;
        snprintf(r->node, sizeof r->node, "%s", whom);
    } else if (strcmp(who, "user") == 0) {
        r->who = WHO_USER;
        char *atsign = strchr(whom, '@');
        if (atsign) {
            *atsign = 0;
            const char *node = atsign + 1;
            if (!*node || wire_check_name(node, strlen(node)) < 0 ||
                strlen(node) > WIRE_NAME_MAX) {
                s_error(log, path, lineno, "'%s' is not a node name or id", node);
                return -1;
            }
            snprintf(r->node, sizeof r->node, "%s", node);
        }
        if (strcmp(whom, "*") == 0 && atsign)
            r->user[0] = 0;
        else if (!*whom || strlen(whom) > WIRE_USER_MAX || strpbrk(whom, "*@")) {
            s_error(log, path, lineno, "'%s' is not a user name", whom);
            return -1;
        } else {
            snprintf(r->user, sizeof r->user, "%s", whom);
            struct passwd *pw = !atsign ? getpwnam(whom) : NULL;
            if (!atsign && !pw) {
                s_error(log, path, lineno, "'%s' is no user of this system (a user of "
                        "another node is user NAME@NODE)", whom);
                return -1;
            }
            if (pw) {
                r->who = WHO_UID;       /* a local user is its uid */
                r->id = pw->pw_uid;
            }
        }
    } else {
        s_error(log, path, lineno, "'%s': who is everyone, local, remote, user, uid, group, "
                "gid or node", who);
        return -1;
    }
    if (extra) {
        s_error(log, path, lineno, "'%s': one who a rule; write several rules", extra);
        return -1;
    }
    return 0;
}

/* The file to read: path opened now, or, when the node (no longer root)
   may not open it, the one it read before if path still names it: an
   administrator keeps /etc files root's alone, edited in place, and a
   reload must still see them. */
static int s_open(policy_t *self, const char *path, int log)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd >= 0 || errno != EACCES || self->fd < 0) {
        if (fd < 0)
            s_error(log, path, 0, "cannot read it: %s", strerror(errno));
        return fd < 0 ? -errno : fd;
    }
    struct stat now;
    if (stat(path, &now) == 0 && now.st_dev == self->dev && now.st_ino == self->ino)
        return dup(self->fd);
    s_error(log, path, 0, "the node (uid %u) may not read it, and it is not the file read "
            "before (replaced?): make it readable by uid %u, or restart the node",
            (unsigned) geteuid(), (unsigned) geteuid());
    return -EACCES;
}

int policy_load(policy_t *self, const char *path, int log)
{
    int fd = s_open(self, path, log);
    if (fd < 0)
        return fd;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int err = errno;
        s_error(log, path, 0, "cannot read it: %s", strerror(err));
        close(fd);
        return -err;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > POLICY_FILE_MAX) {
        s_error(log, path, 0, "%s", !S_ISREG(st.st_mode) ? "not a regular file"
                                                           : "larger than 1 MiB");
        close(fd);
        return -EINVAL;
    }
    /* Whoever may write the rules decides who may do what: root or the
       node's own user, no one else. */
    if (st.st_mode & (S_IWGRP | S_IWOTH) || (st.st_uid != 0 && st.st_uid != geteuid())) {
        s_error(log, path, 0, st.st_mode & (S_IWGRP | S_IWOTH)
                ? "others may rewrite the rules (mode %04o): refusing it (chmod go-w it)"
                : "it belongs to uid %u, not root nor the node's user: refusing it",
                st.st_mode & (S_IWGRP | S_IWOTH) ? (unsigned) (st.st_mode & 07777)
                                                 : (unsigned) st.st_uid);
        close(fd);
        return -EACCES;
    }
    size_t len;
    char *text = path_read(fd, (size_t) st.st_size, &len);
    /* Kept, for a reload after the node is no longer root. */
    if (self->fd >= 0)
        close(self->fd);
    self->fd = fd;
    self->dev = st.st_dev;
    self->ino = st.st_ino;
    if (!text)
        return -ENOMEM;
    rule_t *rules = NULL;
    size_t count = 0, cap = 0;
    int bad = 0, lineno = 0;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        lineno++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = 0;
        if (line[strspn(line, " \t\r")] == 0)
            continue;
        char copy[512];
        snprintf(copy, sizeof copy, "%s", line + strspn(line, " \t"));
        copy[strcspn(copy, "\r")] = 0;
        if (count == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            rule_t *r = ncap <= POLICY_RULES_MAX ? realloc(rules, ncap * sizeof *r) : NULL;
            if (!r) {
                s_error(log, path, lineno, "more than %d rules", POLICY_RULES_MAX);
                bad = 1;
                break;
            }
            rules = r;
            cap = ncap;
        }
        if (s_rule(line, &rules[count], log, path, lineno) < 0) {
            bad = 1;
            continue;
        }
        int n = snprintf(rules[count].text, RULE_TEXT, "%s:%d: %.200s", path, lineno, copy);
        (void) n;       /* a long path or rule is cut: the text is for people */
        count++;
    }
    free(text);
    if (bad) {
        free(rules);
        return -EINVAL;
    }
    free(self->rules);
    self->rules = rules;
    self->count = count;
    self->actions = 0;
    for (size_t i = 0; i < count; i++)
        self->actions |= rules[i].actions;
    self->gen++;
    return 0;
}

void policy_print(const policy_t *self, void *out)
{
    FILE *f = out;
    for (size_t i = 0; i < self->count; i++) {
        const rule_t *r = &self->rules[i];
        fprintf(f, "%zu\t%s\t", i + 1, r->allow ? "allow" : "deny");
        int first = 1;
        for (size_t a = 0; a < N_ACTIONS; a++)
            if (r->actions & s_actions[a].bit) {
                fprintf(f, "%s%s", first ? "" : ",", s_actions[a].name);
                first = 0;
            }
        fprintf(f, "\t%s\t", r->pattern);
        switch (r->who) {
        case WHO_ANY: fputs("everyone", f); break;
        case WHO_LOCAL: fputs("local", f); break;
        case WHO_REMOTE: fputs("remote", f); break;
        case WHO_UID: fprintf(f, "uid %u", r->id); break;
        case WHO_GID: fprintf(f, "gid %u", r->id); break;
        case WHO_GROUP: {
            struct group *g = getgrgid(r->id);
            fprintf(f, "group %s (gid %u)", g ? g->gr_name : "?", r->id);
            break;
        }
        case WHO_NODE: fprintf(f, "node %s", r->node); break;
        default: fprintf(f, "user %s@%s", r->user[0] ? r->user : "*", r->node); break;
        }
        fprintf(f, "\t(%s)\n", r->text);
    }
}

/* Does the rule's pattern match name? */
static int s_name(const rule_t *r, const char *name, size_t len)
{
    if (r->prefix)
        return len >= r->plen && memcmp(name, r->pattern, r->plen) == 0;
    return len == r->plen && memcmp(name, r->pattern, len) == 0;
}

/* Is node (a rule's) the caller's node: its name, or its id? */
static int s_node(const char *node, const policy_who_t *who)
{
    return !who->local && ((who->node && strcmp(node, who->node) == 0) ||
                           (who->node_id && strcmp(node, who->node_id) == 0));
}

static int s_who(const rule_t *r, const policy_who_t *who)
{
    switch (r->who) {
    case WHO_ANY: return 1;
    case WHO_LOCAL: return who->local;
    case WHO_REMOTE: return !who->local;
    case WHO_UID: return who->local && who->uid == r->id;
    case WHO_GID:
    case WHO_GROUP:
        for (size_t i = 0; who->local && i < who->ngroups; i++)
            if (who->groups[i] == r->id)
                return 1;
        return 0;
    case WHO_NODE: return s_node(r->node, who);
    default:
        return s_node(r->node, who) &&
               (!r->user[0] || (who->user && strcmp(who->user, r->user) == 0));
    }
}

int policy_check(const policy_t *self, const policy_who_t *who, int action, const char *name,
                 size_t len, const char **ret_rule)
{
    if (!(self->actions & action))
        return -1;
    for (size_t i = 0; i < self->count; i++) {
        const rule_t *r = &self->rules[i];
        if ((r->actions & action) && s_name(r, name, len) && s_who(r, who)) {
            if (!r->allow && ret_rule)
                *ret_rule = r->text;
            return r->allow;
        }
    }
    return -1;
}

const char *policy_denial(char *buf, size_t size, const char *rule)
{
    snprintf(buf, size, "denied by %s", rule);
    return buf;
}

void policy_log_denial(const policy_who_t *who, const char *what, const char *name,
                       size_t len, const char *rule)
{
    /* At most ten lines a second, and how many were not logged. */
    static int64_t second;
    static unsigned said, unsaid;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (ts.tv_sec != second) {
        if (unsaid)
            log_notice("policy: %u more denials not logged", unsaid);
        second = ts.tv_sec;
        said = unsaid = 0;
    }
    if (said++ >= 10) {
        unsaid++;
        return;
    }
    if (who->local)
        log_notice("policy: %s '%.*s' by uid %u (%s) denied by %s", what, (int) len, name,
                   (unsigned) who->uid, who->user ? who->user : "?", rule);
    else
        log_notice("policy: %s '%.*s' by %s@%s denied by %s", what, (int) len, name,
                   who->user ? who->user : "?", who->node ? who->node : "?", rule);
}
