/*
 * config.c - see config.h. One mutex guards the current pointer only while it is read
 * and referenced, or swapped: that makes "read the pointer, then take a reference" safe
 * against a concurrent publish releasing it.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "model.h"
#include "router.h"

static pthread_mutex_t config_lock = PTHREAD_MUTEX_INITIALIZER;
static struct config_snapshot *config_current; /* owned: the publication reference */
static atomic_uint_fast64_t config_gen;

static struct config_snapshot *snapshot_new(void)
{
    struct config_snapshot *s = calloc(1, sizeof(*s));
    if (s) {
        atomic_init(&s->refs, 1);
        s->loaded_at = time(NULL);
    }
    return s;
}

struct config_snapshot *config_empty(void)
{
    return snapshot_new();
}

/* The one compile step every source shares (--config file, xDS update, xDS cache): takes
 * over m, whatever happens. */
static struct config_snapshot *snapshot_compile(struct model_set *m, const char *source, char *err,
                                                size_t errlen)
{
    struct config_snapshot *s = snapshot_new();
    if (!s) {
        model_set_free(m);
        snprintf(err, errlen, "%s: out of memory for the snapshot", source);
        return NULL;
    }
    s->model = m;
    snprintf(s->source, sizeof(s->source), "%s", source);
    s->router = router_table_new(m, NULL, err, errlen);
    if (!s->router) {
        config_release(s);
        return NULL;
    }
    return s;
}

struct config_snapshot *config_load(const char *path, char *err, size_t errlen)
{
    struct model_set *m = model_load_file(path, err, errlen);
    return m ? snapshot_compile(m, path, err, errlen) : NULL;
}

struct config_snapshot *config_from_buffer(const char *name, const char *buf, size_t len, char *err,
                                           size_t errlen)
{
    struct model_set *m = model_load_buffer(name, buf, len, err, errlen);
    return m ? snapshot_compile(m, name, err, errlen) : NULL;
}

void config_release(struct config_snapshot *snap)
{
    if (snap && atomic_fetch_sub(&snap->refs, 1) == 1) {
        router_table_free(snap->router); /* it borrows the model: first */
        model_set_free(snap->model);
        free(snap);
    }
}

struct config_snapshot *config_hold(struct config_snapshot *snap)
{
    if (snap)
        atomic_fetch_add(&snap->refs, 1);
    return snap;
}

void config_publish(struct config_snapshot *snap)
{
    struct config_snapshot *old;
    pthread_mutex_lock(&config_lock);
    old = config_current;
    snap->version = old ? old->version + 1 : 1;
    config_current = snap;
    atomic_fetch_add(&config_gen, 1);
    pthread_mutex_unlock(&config_lock);
    config_release(old);
}

struct config_snapshot *config_acquire(void)
{
    struct config_snapshot *s;
    pthread_mutex_lock(&config_lock);
    s = config_current;
    if (s)
        atomic_fetch_add(&s->refs, 1);
    pthread_mutex_unlock(&config_lock);
    return s;
}

uint64_t config_generation(void)
{
    return atomic_load(&config_gen);
}

void config_shutdown(void)
{
    pthread_mutex_lock(&config_lock);
    struct config_snapshot *s = config_current;
    config_current = NULL;
    pthread_mutex_unlock(&config_lock);
    config_release(s);
}
