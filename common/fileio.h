/*
 * fileio.h - whole small files: read one into memory, write one atomically. Shared by the
 * sidecar (certificates, tokens, the xDS cache), ringmesh-xds (its manifest directory) and
 * ringmeshctl, which each had their own copy.
 */
#ifndef RINGMESH_FILEIO_H
#define RINGMESH_FILEIO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Reads all of path into *out (malloc'd, NUL-terminated; the length in *len when len is
 * not NULL). 0, -errno from open/read, -EFBIG when it holds more than max bytes, -ENOMEM. */
int file_read(const char *path, size_t max, char **out, size_t *len);

/* Writes data[0..len) to path atomically: a temporary file ".<name>.tmp.XXXXXX" beside it
 * (created 0600, so a key is never readable by others, then given mode), written in full,
 * fsync'd and renamed over path; with sync_dir the directory is fsync'd too, so the rename
 * survives a crash. A watcher of the directory sees the temporary name start with '.'.
 * 0 or -errno (the temporary file is removed on failure). */
int file_write_atomic(const char *path, const void *data, size_t len, mode_t mode, bool sync_dir);

#endif
