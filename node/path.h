/*  path.h: the directories the node keeps its files in. */
#ifndef IPCNET_PATH_H
#define IPCNET_PATH_H

#include <sys/types.h>

/* Makes dir and any missing parent (parents 0755, dir itself leaf_mode);
   one that exists already is left as it is. Returns 0 or -errno. */
int path_mkdirs(const char *dir, mode_t leaf_mode);

#endif
