/*
 * log.c - see log.h. No locks: each line is one write(2) of at most 1 KiB, which
 * POSIX keeps whole on a pipe and which files opened O_APPEND keep in order.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

_Atomic int log_level_current = LOG_INFO;
static const char *log_program = "ringmesh";
static __thread char log_thread[16] = "main";

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};

int log_level_parse(const char *s)
{
    for (unsigned i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
        if (strcasecmp(s, level_names[i]) == 0)
            return (int)i;
    if (strcasecmp(s, "warning") == 0)
        return LOG_WARN;
    return -1;
}

const char *log_level_str(enum log_level lvl)
{
    if (lvl == LOG_OFF)
        return "off";
    return (unsigned)lvl < 5 ? level_names[lvl] : "?";
}

void log_set_thread_name(const char *name)
{
    snprintf(log_thread, sizeof(log_thread), "%s", name);
}

void log_set_program(const char *name)
{
    log_program = name;
}

void log_write(enum log_level lvl, const char *fmt, ...)
{
    char line[1024];
    struct timespec ts;
    struct tm tm;
    size_t n;
    va_list ap;
    int r;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    r = snprintf(line + n, sizeof(line) - n, ".%03ldZ %s %s [%s] ", ts.tv_nsec / 1000000,
                 log_program, log_level_str(lvl), log_thread);
    if (r > 0)
        n += (size_t)r;
    va_start(ap, fmt);
    r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);
    if (r > 0)
        n += (size_t)r < sizeof(line) - n ? (size_t)r : sizeof(line) - n - 1;
    if (n >= sizeof(line) - 1)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}
