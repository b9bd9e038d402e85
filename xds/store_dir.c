/*
 * store_dir.c - see store_dir.h.
 */
#include "store_dir.h"
#include "fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

static bool is_manifest(const char *name)
{
    size_t l = strlen(name);
    if (name[0] == '.')
        return false;
    return (l > 5 && !strcmp(name + l - 5, ".yaml")) || (l > 4 && !strcmp(name + l - 4, ".yml")) ||
           (l > 5 && !strcmp(name + l - 5, ".json"));
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_own_file(const struct store_obj *o)
{
    char fn[NAME_MAX + 1];
    const char *base;
    if (!o->file || store_obj_filename(o, fn, sizeof(fn)))
        return false;
    base = strrchr(o->file, '/');
    return !strcmp(base ? base + 1 : o->file, fn);
}

static int read_file(const char *path, char **out, size_t *len)
{
    return file_read(path, MODEL_MAX_FILE_BYTES, out, len);
}

int store_dir_read(const char *dir, struct store_obj ***objs, size_t *n, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char **names = NULL, path[PATH_MAX];
    size_t nn = 0, cap = 0;
    int rc = 0;

    *objs = NULL;
    *n = 0;
    if (!d) {
        rc = -errno;
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return rc;
    }
    while ((de = readdir(d))) {
        if (!is_manifest(de->d_name))
            continue;
        if (nn == cap) {
            cap = cap ? cap * 2 : 16;
            char **t = realloc(names, cap * sizeof(*t));
            if (!t) {
                rc = -ENOMEM;
                break;
            }
            names = t;
        }
        if (!(names[nn] = strdup(de->d_name))) {
            rc = -ENOMEM;
            break;
        }
        nn++;
    }
    closedir(d);
    if (rc) {
        snprintf(err, errlen, "%s: out of memory", dir);
        goto out;
    }
    if (nn) /* qsort(NULL, 0) is undefined: an empty directory lists nothing */
        qsort(names, nn, sizeof(*names), name_cmp);
    for (size_t i = 0; i < nn && !rc; i++) {
        char *buf = NULL;
        size_t len = 0;
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        if ((rc = read_file(path, &buf, &len))) {
            if (rc == -ENOENT) { /* removed while we listed: it is gone, fine */
                rc = 0;
                continue;
            }
            snprintf(err, errlen, "%s: %s", path, strerror(-rc));
            break;
        }
        rc = store_parse(path, buf, len, path, objs, n, err, errlen);
        free(buf);
    }
    /* duplicates across files: the API's own file wins, anything else is an error */
    for (size_t i = 0; i < *n && !rc; i++) {
        for (size_t j = i + 1; j < *n && !rc; j++) {
            struct store_obj *a = (*objs)[i], *b = (*objs)[j];
            if (!a || !b || a->kind != b->kind || strcmp(a->ns, b->ns) || strcmp(a->name, b->name))
                continue;
            if (is_own_file(a) != is_own_file(b)) {
                size_t drop = is_own_file(a) ? j : i;
                store_obj_free((*objs)[drop]);
                (*objs)[drop] = NULL;
            } else {
                snprintf(err, errlen, "%s %s/%s is defined in both %s and %s",
                         model_kind_str(a->kind), a->ns, a->name, a->file, b->file);
                rc = -EINVAL;
            }
        }
    }
    { /* compact away the dropped ones */
        size_t k = 0;
        for (size_t i = 0; i < *n; i++)
            if ((*objs)[i])
                (*objs)[k++] = (*objs)[i];
        *n = k;
    }
out:
    for (size_t i = 0; i < nn; i++)
        free(names[i]);
    free(names);
    if (rc) {
        store_objs_free(*objs, *n);
        *objs = NULL;
        *n = 0;
    }
    return rc;
}

int store_dir_write(const char *dir, struct store_obj *o, char *err, size_t errlen)
{
    char fn[NAME_MAX + 1], path[PATH_MAX];
    char *text;
    int rc;
    size_t len;

    if (store_obj_filename(o, fn, sizeof(fn)) ||
        snprintf(path, sizeof(path), "%s/%s", dir, fn) >= (int)sizeof(path)) {
        snprintf(err, errlen, "%s/%s: name too long", dir, fn);
        return -ENAMETOOLONG;
    }
    if (!(text = cJSON_Print(o->doc))) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -ENOMEM;
    }
    len = strlen(text);
    text[len++] = '\n'; /* replaces the NUL; written by length */
    rc = file_write_atomic(path, text, len, 0644, true); /* the rename survives a crash */
    free(text);
    if (rc) {
        snprintf(err, errlen, "%s: %s", path, strerror(-rc));
        return rc;
    }
    free(o->file);
    o->file = strdup(path);
    return 0;
}

int store_dir_remove(const char *dir, const struct store_obj *o, char *err, size_t errlen)
{
    (void)dir;
    if (!o->file)
        return 0;
    if (!is_own_file(o)) {
        snprintf(err, errlen,
                 "%s %s/%s is defined in %s, which the API does not edit: remove it there",
                 model_kind_str(o->kind), o->ns, o->name, o->file);
        return -EPERM;
    }
    if (unlink(o->file) && errno != ENOENT) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", o->file, strerror(e));
        return -e;
    }
    return 0;
}
