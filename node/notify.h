/*  notify.h: telling systemd how the node is (sd_notify's protocol, with no
    libsystemd): a datagram to $NOTIFY_SOCKET, when it is set. */
#ifndef IPCNET_NOTIFY_H
#define IPCNET_NOTIFY_H

/* Sends state ("READY=1", "STOPPING=1", "STATUS=..."; several joined by
   newlines). Returns 0, 1 when NOTIFY_SOCKET is not set, or -errno. */
int notify(const char *state);

#endif
