/*  privs.c: the socket's group, the user to become, and becoming it. */

#include "privs.h"
#include "log.h"

#include <czmq.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

int privs_plan(node_config_t *config)
{
    int root = geteuid() == 0;
    config->access_gid = (gid_t) -1;
    config->drop = 0;
    config->run_uid = geteuid();
    config->run_gid = getegid();
    if (config->group[0]) {
        struct group *g = getgrnam(config->group);
        if (!g) {
            log_error("--group %s: no such group", config->group);
            return -1;
        }
        config->access_gid = g->gr_gid;
    } else if (root) {
        struct group *g = getgrnam(PRIVS_DEFAULT_NAME);
        config->access_gid = g ? g->gr_gid : 0;
    }
    if (!root || config->no_drop) {
        if (config->user[0] && !root)
            log_warning("--user %s: not started as root, so running as uid %u", config->user,
                        (unsigned) geteuid());
        return 0;
    }
    const char *name = config->user[0] ? config->user : PRIVS_DEFAULT_NAME;
    struct passwd *pw = getpwnam(name);
    if (!pw) {
        if (config->user[0]) {
            log_error("--user %s: no such user", config->user);
            return -1;
        }
        log_notice("running as root: there is no user '%s' to become (make one, give "
                   "--user, or say --no-drop)", PRIVS_DEFAULT_NAME);
        return 0;
    }
    if (pw->pw_uid == 0) {
        log_notice("running as root: --user %s is root", name);
        return 0;
    }
    config->drop = 1;
    config->run_uid = pw->pw_uid;
    config->run_gid = pw->pw_gid;
    return 0;
}

int privs_drop(const node_config_t *config)
{
    if (!config->drop)
        return 0;
    gid_t groups[1] = { config->access_gid };
    size_t ngroups = config->access_gid != (gid_t) -1 && config->access_gid != config->run_gid;
    if (setgroups(ngroups, groups) < 0 || setgid(config->run_gid) < 0 ||
        setuid(config->run_uid) < 0) {
        log_error("cannot become uid %u: %s", (unsigned) config->run_uid, strerror(errno));
        return -1;
    }
    /* Root is gone for good: neither it nor any capability comes back. */
    if (setuid(0) == 0 || geteuid() != config->run_uid) {
        log_error("still able to become root after dropping it: stopping");
        return -1;
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        log_warning("cannot forbid new privileges: %s, ignoring", strerror(errno));
    struct passwd *pw = getpwuid(config->run_uid);
    log_notice("running as %s (uid %u, gid %u)", pw ? pw->pw_name : "?",
               (unsigned) config->run_uid, (unsigned) config->run_gid);
    return 0;
}
