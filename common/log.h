/*
 * log.h - leveled logging to stderr, one line per message.
 *
 * Lines look like "2026-11-25T09:00:00.123Z warn [w1] message". The level is checked
 * before any formatting, so a disabled debug line costs one compare. Thread-safe: each
 * line is formatted into a stack buffer and written with one write(2). The worker tag
 * ("main", "w0", ...) is per thread, set by log_set_thread_name().
 */
#ifndef RINGMESH_LOG_H
#define RINGMESH_LOG_H

#include <stdatomic.h>

/* LOG_OFF is a threshold only (nothing logs at it): the level that silences everything. */
enum log_level { LOG_OFF = -1, LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG, LOG_TRACE };

/* The threshold; any thread may change it at any time (the sidecar's POST /logging). An
 * atomic read relaxed: a line racing a change may go either way, never torn. */
extern _Atomic int log_level_current;

/* Parses "error|warn|info|debug|trace" (and "warning"); returns the level or -1 if
 * unknown. */
int log_level_parse(const char *s);
const char *log_level_str(enum log_level lvl);
/* Names this thread in every line it logs (copied; at most 15 characters). */
void log_set_thread_name(const char *name);
/* Program name shown in each line, e.g. "ringmesh-init" (borrowed; must stay valid). */
void log_set_program(const char *name);
void log_write(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define LOG_AT(lvl, ...)                                                                           \
    do {                                                                                           \
        if ((int)(lvl) <= atomic_load_explicit(&log_level_current, memory_order_relaxed))          \
            log_write((lvl), __VA_ARGS__);                                                         \
    } while (0)
#define log_error(...) LOG_AT(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  LOG_AT(LOG_WARN, __VA_ARGS__)
#define log_info(...)  LOG_AT(LOG_INFO, __VA_ARGS__)
#define log_debug(...) LOG_AT(LOG_DEBUG, __VA_ARGS__)
#define log_trace(...) LOG_AT(LOG_TRACE, __VA_ARGS__)

#endif
