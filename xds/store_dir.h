/*
 * store_dir.h - the manifest directory behind ringmesh-xds's store: reading every
 * *.yaml, *.yml and *.json in it (not recursive; names starting with '.' are skipped, which
 * is where the temporary files of our own writes live) and writing back what the API
 * applies, one file per object, atomically (temporary file, fsync, rename, fsync of the
 * directory).
 *
 * Files written by the API are named store_obj_filename() ("service-default-web.json"). An
 * object defined both in such a file and in another manifest is taken from the API's file
 * (it was applied later); any other object defined twice is an error naming both files.
 *
 * Blocking file I/O: called on the server's loop thread, but only at start-up, on a
 * debounced directory change and on an API mutation (small files, a local disk).
 */
#ifndef RINGMESH_STORE_DIR_H
#define RINGMESH_STORE_DIR_H

#include <stddef.h>

#include "store.h"

/* Reads dir into objects (*objs malloc'd; free with store_objs_free). Each object's file is
 * its path. 0; -errno for the directory itself (err "DIR: reason"); -EINVAL with the first
 * file's model error or a duplicate. */
int store_dir_read(const char *dir, struct store_obj ***objs, size_t *n, char *err,
                   size_t errlen);

/* Writes o as pretty JSON to dir/store_obj_filename(o) atomically and sets o->file to that
 * path. 0 or -errno (err names the path). */
int store_dir_write(const char *dir, struct store_obj *o, char *err, size_t errlen);

/* Removes o's file when it is the API's own file for o. Returns 0 (removed, or nothing to
 * remove because the object came from nowhere on disk), -EPERM when o comes from another
 * manifest (which the API does not edit: err names it), or -errno. */
int store_dir_remove(const char *dir, const struct store_obj *o, char *err, size_t errlen);

#endif
