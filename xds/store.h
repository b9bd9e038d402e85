/*
 * store.h - ringmesh-xds's store: the mesh's objects keyed by kind/namespace/name, each as
 * its document (a cJSON tree and its compact JSON text), with a store revision that moves on
 * every change and, per object, the revision it last changed at (its xDS version).
 *
 * Every change goes through one gate, store_commit(): the whole candidate set of objects
 * must load with the resource model (xds/model.h) as one List, so the store never holds
 * what a sidecar would reject for model reasons. A commit that changes nothing does not
 * move the revision (so re-reading a directory the server itself just wrote is a no-op).
 *
 * Pure: no I/O (store_dir.c reads and writes the manifest directory). One thread (the
 * server's loop) owns a store. Objects are sorted by (kind, namespace, name), so one kind is
 * one contiguous range and a response is naturally duplicate-free and ordered.
 *
 * Ownership: a struct store owns its objects; a struct store_obj owns every field.
 */
#ifndef RINGMESH_STORE_H
#define RINGMESH_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"

struct cJSON;

struct store_obj {
    enum model_kind kind;
    char *ns;           /* owned */
    char *name;         /* owned */
    char *key;          /* owned: "<ns>/<name>", the xDS resource name */
    struct cJSON *doc;  /* owned: the object as written */
    char *json;         /* owned: doc as compact JSON, what is compared and served */
    uint64_t version;   /* store revision of its last change (0 until committed) */
    char *file;         /* owned: the manifest file it came from; NULL = the API */
};

struct store {
    struct store_obj **objs; /* owned, sorted by store_obj_cmp */
    size_t n, cap;
    uint64_t revision; /* 0 = empty and never changed */
    /* per kind: the revision at which an object of that kind last appeared, changed or
     * went (streams skip a kind whose kind_rev they have already answered) */
    uint64_t kind_rev[MODEL_KIND_COUNT];
    /* The latest changes, a ring: (revision, kind, key) of every object created, changed or
     * removed. A stream that has seen everything up to revision r (r >= log_floor) finds
     * what is new in it instead of diffing the whole kind. */
    struct store_change {
        uint64_t rev;
        enum model_kind kind;
        char *key; /* owned */
    } *log;
    size_t log_len, log_head; /* entries in use; the next slot (of STORE_LOG_SIZE) */
    uint64_t log_floor;       /* every change after this revision is in the log */
};
#define STORE_LOG_SIZE 4096

/* What a commit did to one object, for the API's answer. */
enum store_action { STORE_CREATED, STORE_CONFIGURED, STORE_UNCHANGED, STORE_DELETED };
const char *store_action_str(enum store_action a);

/* The xDS push order (PROTOCOL.md "Type URLs"): STORE_TYPE_COUNT kinds. */
#define STORE_TYPE_COUNT MODEL_KIND_COUNT
extern const enum model_kind store_push_order[STORE_TYPE_COUNT];
/* "v1/Service", ...; NULL for a bad kind. */
const char *store_type_url(enum model_kind k);
/* "v1", "discovery.k8s.io/v1", ... */
const char *store_api_version(enum model_kind k);
/* A kind from what a person or a client writes: "Service", "service", "services", "svc",
 * "HTTPRoute", "httproutes", a type URL, ... -1 when unknown. */
int store_kind_parse(const char *s);

void store_init(struct store *s);
void store_free(struct store *s);

/* Frees one object (NULL is fine). */
void store_obj_free(struct store_obj *o);

/* Parses manifests buf[0..len) (YAML or JSON, as model_load_buffer takes them) into
 * objects (validated one by one by the model; src names the input in errors), appended to
 * *objs (a malloc'd array the caller frees with store_objs_free). Each object's file is a
 * copy of file (may be NULL). 0, or -EINVAL with the model's error in err. */
int store_parse(const char *src, const char *buf, size_t len, const char *file,
                struct store_obj ***objs, size_t *n, char *err, size_t errlen);
void store_objs_free(struct store_obj **objs, size_t n);

/* Finds an object; NULL when absent. */
struct store_obj *store_find(const struct store *s, enum model_kind k, const char *ns,
                             const char *name);
/* The objects of one kind: *first and the count. */
size_t store_range(const struct store *s, enum model_kind k, struct store_obj ***first);
/* Objects of a kind (or all, k = -1). */
size_t store_count(const struct store *s, int k);

/* Commits a change. mode STORE_MERGE: objs (taken over, whatever the result; the array
 * itself stays the caller's) replace or add to the store's objects; STORE_REPLACE: objs
 * become the whole store (a directory reload); STORE_DELETE: objs name objects to remove
 * (kind, ns and name are read; -ENOENT naming the first missing one). The candidate must
 * load as one List with the model (-EINVAL, the model's error in err, nothing changed).
 * When something changed, the revision moves by one and every changed object's version is
 * the new revision; unchanged objects keep theirs (and their old file unless the new copy
 * names one). actions (may be NULL; n entries) receives what happened to each of objs.
 * Returns 0 and sets *changed. */
enum store_mode { STORE_MERGE, STORE_REPLACE, STORE_DELETE };
int store_commit(struct store *s, enum store_mode mode, struct store_obj **objs, size_t n,
                 enum store_action *actions, bool *changed, char *err, size_t errlen);

/* The file name ringmesh-xds gives an object it writes: "<kind, lowercase>-<ns>-<name>.json".
 * 0 or -ENAMETOOLONG. */
int store_obj_filename(const struct store_obj *o, char *out, size_t outlen);

#endif
