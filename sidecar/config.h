/*
 * config.h - the sidecar's configuration snapshots: the resource model loaded from
 * --config or from xDS (config_from_buffer), compiled once, immutable, reference-counted.
 *
 * The main thread loads a new snapshot (at start and on SIGHUP) and publishes it with
 * config_publish(); a bad file is rejected with its error and the current snapshot keeps
 * serving. Workers adopt the published snapshot between completion batches
 * (config_acquire() when config_generation() moved); whatever pinned an older snapshot
 * (a request in flight) keeps it until config_release(). The last release frees it, on
 * whichever thread that happens. Only publication and acquisition take a lock, never the
 * request path.
 */
#ifndef RINGMESH_CONFIG_H
#define RINGMESH_CONFIG_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct model_set;
struct router_table;

struct config_snapshot {
    atomic_int refs;
    uint64_t version;         /* 1, 2, ... in publication order (0 until published) */
    char source[256];         /* the file it came from, or "" */
    time_t loaded_at;
    struct model_set *model;  /* owned; NULL in the empty snapshot */
    struct router_table *router; /* owned, borrows model; NULL in the empty snapshot */
};

/* Loads and validates path and compiles its routing tables into a new snapshot (refs 1,
 * not yet published). NULL with the model's or the router's error (file, document,
 * field path) in err. */
struct config_snapshot *config_load(const char *path, char *err, size_t errlen);
/* The same as config_load() for a model held in memory (YAML or JSON, e.g. the
 * {"kind":"List","items":[...]} the xDS client builds from its resources): name is the
 * source in errors and in snap->source. buf need not be NUL-terminated. */
struct config_snapshot *config_from_buffer(const char *name, const char *buf, size_t len, char *err,
                                           size_t errlen);
/* The snapshot a sidecar runs with no --config: no services, everything is passthrough. */
struct config_snapshot *config_empty(void);
/* Makes snap current, taking over the caller's reference; the previous current one is
 * released. Assigns snap->version. Thread-safe. */
void config_publish(struct config_snapshot *snap);
/* A new reference to the current snapshot (never NULL after the first publish). */
struct config_snapshot *config_acquire(void);
void config_release(struct config_snapshot *snap);
/* One more reference to a snapshot the caller already holds (a request pinning the
 * worker's); returns snap (NULL stays NULL). */
struct config_snapshot *config_hold(struct config_snapshot *snap);
/* Increments on every publish: a cheap check whether to acquire again. */
uint64_t config_generation(void);
/* Releases the current snapshot (at exit, after the workers stopped). */
void config_shutdown(void);

#endif
