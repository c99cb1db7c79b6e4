/*  path.h: the directories the node keeps its files in, made or checked
    so that no one else can plant or swap a file in them, and those files
    read whole. */
#ifndef IPCNET_PATH_H
#define IPCNET_PATH_H

#include <stddef.h>
#include <sys/types.h>

/* Makes dir (parents 0755, dir itself mode whatever the umask), or, if it
   exists, checks that it is a directory (not a link) owned by us, root or
   also_uid ((uid_t) -1: none) that no one else may write. Returns 1 if it
   was made, 0 if it was there and is safe, or -errno with a sentence in
   why naming the path, what is wrong and the fix. */
int path_own_dir(const char *dir, mode_t mode, uid_t also_uid, char *why, size_t size);

/* The first size bytes of the open file fd, read from offset 0 whatever
   its position, in a new buffer with a NUL after them; *len says how many
   there were (fewer if the file shrank). NULL when out of memory. */
char *path_read(int fd, size_t size, size_t *len);

/* The directory part of path, into buf. Returns 0 or -ENAMETOOLONG. */
int path_dirname(const char *path, char *buf, size_t size);

#endif
