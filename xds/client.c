/*
 * client.c - see client.h. One thread, one CURLM, at most one stream (CURL easy) at a
 * time. The out queue (lines for the request body) is the only thing other threads touch,
 * under c->lock, together with the status copy. curl_easy_pause() is only ever called on
 * the client's thread and never with the lock held: unpausing may call the read callback
 * at once, which takes the lock.
 */
#include "client.h"
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "log.h"

#define STREAM_PATH "/ringmesh.xds.v1/DeltaResources"
#define SIGN_PATH   "/ringmesh.ca.v1/Sign"

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!err || !errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int xds_url_parse(const char *url, struct xds_url *out, char *err, size_t errlen)
{
    const char *p, *host, *hend, *colon;
    size_t hlen;
    memset(out, 0, sizeof(*out));
    if (strncmp(url, "http://", 7) == 0) {
        p = url + 7;
    } else if (strncmp(url, "https://", 8) == 0) {
        out->tls = true;
        p = url + 8;
    } else {
        seterr(err, errlen,
               "'%s': want http://HOST:PORT (plaintext, 15010) or "
               "https://HOST:PORT (TLS, 15012)",
               url);
        return -EINVAL;
    }
    host = p;
    if (*p == '[') {
        hend = strchr(p, ']');
        if (!hend) {
            seterr(err, errlen, "'%s': unterminated [IPv6] address", url);
            return -EINVAL;
        }
        host = p + 1;
        colon = hend + 1;
    } else {
        hend = p + strcspn(p, ":/");
        colon = hend;
    }
    hlen = (size_t)(hend - host);
    if (hlen == 0 || hlen >= sizeof(out->host)) {
        seterr(err, errlen, "'%s': no host", url);
        return -EINVAL;
    }
    for (const char *h = host; h < hend; h++) {
        if (!(*h == '.' || *h == '-' || *h == ':' || *h == '_' || (*h >= '0' && *h <= '9') ||
              (*h >= 'a' && *h <= 'z') || (*h >= 'A' && *h <= 'Z'))) {
            seterr(err, errlen, "'%s': bad character in the host", url);
            return -EINVAL;
        }
    }
    memcpy(out->host, host, hlen);
    if (*colon != ':') {
        seterr(err, errlen, "'%s': no port (the control plane listens on 15010 and 15012)", url);
        return -EINVAL;
    }
    char *end;
    errno = 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (errno || end == colon + 1 || port < 1 || port > 65535 || colon[1] < '0' || colon[1] > '9') {
        seterr(err, errlen, "'%s': bad port", url);
        return -EINVAL;
    }
    if (*end && strcmp(end, "/") != 0) {
        seterr(err, errlen, "'%s': no path allowed after the port", url);
        return -EINVAL;
    }
    out->port = (unsigned short)port;
    snprintf(out->base, sizeof(out->base), "%.*s", (int)(end - url), url);
    return 0;
}

unsigned xds_backoff_ms(unsigned attempt, unsigned *seed)
{
    unsigned base = XDS_BACKOFF_MIN_MS;
    for (unsigned i = 0; i < attempt && base < XDS_BACKOFF_MAX_MS; i++)
        base *= 2;
    if (base > XDS_BACKOFF_MAX_MS)
        base = XDS_BACKOFF_MAX_MS;
    /* uniform in [base/2, base*3/2] */
    return base / 2 + (unsigned)((double)rand_r(seed) / ((double)RAND_MAX + 1) * (base + 1));
}

/* ---- the client ---- */

struct xds_client {
    struct xds_url url;
    char *node_json;  /* owned */
    char *cert_dir;   /* owned or NULL */
    char *cache_path; /* owned or NULL */
    xds_apply_cb apply;
    void *apply_arg;
    struct xds_delta delta; /* client thread only */

    CURLM *multi; /* owned */
    pthread_t thread;
    bool started;
    atomic_bool stop;

    pthread_mutex_t lock; /* guards out, status, want_unpause */
    char *out;            /* owned: queued request body bytes */
    size_t out_len, out_off, out_cap;
    bool want_unpause;
    struct xds_status status;

    /* the current stream; client thread only */
    CURL *easy;
    bool paused;
    bool got_status;   /* the response code was checked */
    bool broken;       /* a line could not be answered: end this stream */
    bool answered_any; /* a response was handled: backoff starts over after this stream */
    char *in;          /* owned: the partial response line */
    size_t in_len, in_cap;
    char stream_error[512];
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int xds_client_queue(struct xds_client *c, const char *line, size_t len)
{
    pthread_mutex_lock(&c->lock);
    if (c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    if (c->out_len + len > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap < c->out_len + len)
            cap *= 2;
        char *n = realloc(c->out, cap);
        if (!n) {
            pthread_mutex_unlock(&c->lock);
            return -ENOMEM;
        }
        c->out = n;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, line, len);
    c->out_len += len;
    c->want_unpause = true;
    pthread_mutex_unlock(&c->lock);
    if (c->multi)
        curl_multi_wakeup(c->multi);
    return 0;
}

static size_t on_read(char *buf, size_t size, size_t nitems, void *arg)
{
    struct xds_client *c = arg;
    size_t n, cap = size * nitems;
    pthread_mutex_lock(&c->lock);
    n = c->out_len - c->out_off;
    if (n == 0) {
        c->paused = true; /* curl pauses the upload: unpause when something is queued */
        pthread_mutex_unlock(&c->lock);
        return atomic_load(&c->stop) ? 0 : CURL_READFUNC_PAUSE;
    }
    if (n > cap)
        n = cap;
    memcpy(buf, c->out + c->out_off, n);
    c->out_off += n;
    pthread_mutex_unlock(&c->lock);
    return n;
}

static void status_sync(struct xds_client *c)
{
    /* caller holds c->lock */
    c->status.warm = xds_delta_is_warm(&c->delta);
    for (int t = 0; t < XDS_T_COUNT; t++) {
        memcpy(c->status.acked_version[t], c->delta.acked_version[t], XDS_VERSION_MAX);
        c->status.held[t] = xds_delta_count(&c->delta, t);
    }
}

int xds_client_write_cache(const char *path, const struct xds_delta *d)
{
    size_t len;
    char *buf = xds_delta_cache(d, &len);
    if (!buf)
        return -ENOMEM;
    int e = file_write_atomic(path, buf, len, 0600, false);
    free(buf);
    return e;
}

int xds_client_load_cache(const char *path, struct xds_delta *d, char *err, size_t errlen)
{
    char *buf, why[512];
    size_t len;
    int rc = file_read(path, 256u << 20, &buf, &len);
    if (rc < 0) {
        seterr(err, errlen, "%s: %s", path, rc == -EFBIG ? "too large" : strerror(-rc));
        return rc;
    }
    rc = xds_delta_load_cache(d, buf, len, why, sizeof(why));
    if (rc < 0)
        seterr(err, errlen, "%s: %s", path, why);
    free(buf);
    return rc;
}

/* One complete response line: apply it, queue the answer. */
static void on_line(struct xds_client *c, const char *line, size_t len)
{
    struct xds_delta_result r;
    int rc = xds_delta_handle(&c->delta, line, len, c->apply, c->apply_arg, &r);
    if (rc < 0 || r.verdict == XDS_ERROR) {
        snprintf(c->stream_error, sizeof(c->stream_error), "%.300s",
                 rc < 0 ? "out of memory answering a response" : r.error);
        c->broken = true;
        xds_delta_result_free(&r);
        return;
    }
    c->answered_any = true;
    const char *type = r.type >= 0 ? xds_type_url(r.type) : "(unknown type)";
    if (r.verdict == XDS_ACK) {
        log_info("xds: ACK %s nonce %s version %s: %zu updated, %zu removed", type, r.nonce,
                 r.system_version, r.n_updated, r.n_removed);
        if (c->cache_path && xds_delta_is_warm(&c->delta)) {
            int e = xds_client_write_cache(c->cache_path, &c->delta);
            if (e < 0)
                log_warn("xds: cannot write the cache %s: %s", c->cache_path, strerror(-e));
        }
    } else {
        log_warn("xds: NACK %s nonce %s: %s", type, r.nonce, r.error);
    }
    pthread_mutex_lock(&c->lock);
    if (r.verdict == XDS_ACK) {
        c->status.updates_accepted++;
    } else {
        c->status.updates_rejected++;
        snprintf(c->status.last_nack, sizeof(c->status.last_nack), "%s", r.error);
        snprintf(c->status.last_nack_type, sizeof(c->status.last_nack_type), "%s",
                 r.type >= 0 ? xds_type_url(r.type) : "");
        snprintf(c->status.last_nack_nonce, sizeof(c->status.last_nack_nonce), "%s", r.nonce);
        c->status.last_nack_at = time(NULL);
    }
    status_sync(c);
    pthread_mutex_unlock(&c->lock);
    if (xds_client_queue(c, r.reply, r.reply_len) < 0) {
        snprintf(c->stream_error, sizeof(c->stream_error), "out of memory queueing an answer");
        c->broken = true;
    }
    xds_delta_result_free(&r);
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *arg)
{
    struct xds_client *c = arg;
    size_t n = size * nmemb;
    if (!c->got_status) {
        long code = 0;
        curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &code);
        c->got_status = true;
        if (code != 200) {
            snprintf(c->stream_error, sizeof(c->stream_error), "HTTP status %ld: %.*s", code,
                     (int)(n > 200 ? 200 : n), data);
            return 0; /* ends the transfer (CURLE_WRITE_ERROR) */
        }
        pthread_mutex_lock(&c->lock);
        c->status.connected = true;
        c->status.last_error[0] = 0;
        pthread_mutex_unlock(&c->lock);
        log_info("xds: connected to %s", c->url.base);
    }
    size_t off = 0;
    while (off < n) {
        const char *nl = memchr(data + off, '\n', n - off);
        size_t take = nl ? (size_t)(nl - (data + off)) : n - off;
        if (c->in_len + take > XDS_LINE_MAX) {
            snprintf(c->stream_error, sizeof(c->stream_error), "a response line over %u bytes",
                     XDS_LINE_MAX);
            return 0;
        }
        if (nl && c->in_len == 0) {
            on_line(c, data + off, take); /* the whole line is here: no copy */
        } else {
            if (c->in_len + take > c->in_cap) {
                size_t cap = c->in_cap ? c->in_cap : 65536;
                while (cap < c->in_len + take)
                    cap *= 2;
                char *b = realloc(c->in, cap);
                if (!b) {
                    snprintf(c->stream_error, sizeof(c->stream_error), "out of memory");
                    return 0;
                }
                c->in = b;
                c->in_cap = cap;
            }
            memcpy(c->in + c->in_len, data + off, take);
            c->in_len += take;
            if (nl) {
                on_line(c, c->in, c->in_len);
                c->in_len = 0;
            }
        }
        if (c->broken)
            return 0;
        off += take + (nl ? 1 : 0);
    }
    return n;
}

/* Opens a stream: the easy handle with the subscribe lines queued. 0 or -1. */
static int stream_open(struct xds_client *c, bool resume)
{
    char url[512], path[4096];
    struct curl_slist *h = NULL;
    pthread_mutex_lock(&c->lock);
    c->out_len = c->out_off = 0;
    c->want_unpause = false;
    pthread_mutex_unlock(&c->lock);
    c->paused = c->got_status = c->broken = c->answered_any = false;
    c->in_len = 0;
    c->stream_error[0] = 0;
    for (int t = 0; t < XDS_T_COUNT; t++) {
        size_t len;
        char *line =
            xds_delta_subscribe_line(&c->delta, t, t == 0 ? c->node_json : NULL, resume, &len);
        if (!line || xds_client_queue(c, line, len) < 0) {
            free(line);
            return -1;
        }
        free(line);
    }
    if (!(c->easy = curl_easy_init()))
        return -1;
    snprintf(url, sizeof(url), "%s%s", c->url.base, STREAM_PATH);
    h = curl_slist_append(h, "content-type: application/x-ndjson");
    h = curl_slist_append(h, "accept: application/x-ndjson");
    h = curl_slist_append(h, "expect:"); /* no 100-continue wait */
    curl_easy_setopt(c->easy, CURLOPT_PRIVATE, h);
    curl_easy_setopt(c->easy, CURLOPT_URL, url);
    curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c->easy, CURLOPT_HTTP_VERSION,
                     c->url.tls ? (long)CURL_HTTP_VERSION_2TLS
                                : (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
    curl_easy_setopt(c->easy, CURLOPT_POST, 1L);
    curl_easy_setopt(c->easy, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(c->easy, CURLOPT_READDATA, c);
    curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(c->easy, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(c->easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c->easy, CURLOPT_TCP_KEEPIDLE, 30L);
    curl_easy_setopt(c->easy, CURLOPT_TCP_KEEPINTVL, 10L);
    curl_easy_setopt(c->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->easy, CURLOPT_USERAGENT, "ringmesh-sidecar/0.1");
    if (c->url.tls && c->cert_dir) {
        snprintf(path, sizeof(path), "%s/root-cert.pem", c->cert_dir);
        curl_easy_setopt(c->easy, CURLOPT_CAINFO, path);
        snprintf(path, sizeof(path), "%s/cert-chain.pem", c->cert_dir);
        if (access(path, R_OK) == 0) {
            curl_easy_setopt(c->easy, CURLOPT_SSLCERT, path);
            snprintf(path, sizeof(path), "%s/key.pem", c->cert_dir);
            curl_easy_setopt(c->easy, CURLOPT_SSLKEY, path);
        }
    }
    if (curl_multi_add_handle(c->multi, c->easy) != CURLM_OK) {
        curl_easy_cleanup(c->easy);
        curl_slist_free_all(h);
        c->easy = NULL;
        return -1;
    }
    return 0;
}

static void stream_close(struct xds_client *c)
{
    struct curl_slist *h = NULL;
    if (!c->easy)
        return;
    curl_easy_getinfo(c->easy, CURLINFO_PRIVATE, (char **)&h);
    curl_multi_remove_handle(c->multi, c->easy);
    curl_easy_cleanup(c->easy);
    curl_slist_free_all(h);
    c->easy = NULL;
    pthread_mutex_lock(&c->lock);
    c->status.connected = false;
    c->out_len = c->out_off = 0; /* answers to a dead stream are moot */
    memcpy(c->status.last_error, c->stream_error, sizeof(c->status.last_error));
    pthread_mutex_unlock(&c->lock);
}

/* Runs one stream until it ends or the client stops. */
static void stream_run(struct xds_client *c, bool resume)
{
    if (stream_open(c, resume) < 0) {
        snprintf(c->stream_error, sizeof(c->stream_error), "cannot start a request");
        stream_close(c);
        return;
    }
    while (!atomic_load(&c->stop)) {
        int running = 0, q;
        CURLMsg *m;
        curl_multi_perform(c->multi, &running);
        while ((m = curl_multi_info_read(c->multi, &q))) {
            if (m->msg == CURLMSG_DONE && m->easy_handle == c->easy) {
                if (!c->stream_error[0]) {
                    if (m->data.result == CURLE_OK)
                        snprintf(c->stream_error, sizeof(c->stream_error),
                                 "the server ended the stream");
                    else
                        snprintf(c->stream_error, sizeof(c->stream_error), "%s",
                                 curl_easy_strerror(m->data.result));
                }
                stream_close(c);
                return;
            }
        }
        pthread_mutex_lock(&c->lock);
        bool unpause = c->want_unpause && c->paused && c->out_len > c->out_off;
        if (unpause) {
            c->want_unpause = false;
            c->paused = false;
        }
        pthread_mutex_unlock(&c->lock);
        if (unpause) {
            curl_easy_pause(c->easy, CURLPAUSE_CONT);
            continue; /* perform again at once: the body has bytes to send */
        }
        curl_multi_poll(c->multi, NULL, 0, 1000, NULL);
    }
    snprintf(c->stream_error, sizeof(c->stream_error), "stopped");
    stream_close(c);
}

static void *client_main(void *arg)
{
    struct xds_client *c = arg;
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    unsigned attempt = 0;
    /* a state that came from the cache resumes on the very first stream */
    bool resume = xds_delta_is_warm(&c->delta);
    log_set_thread_name("xds");
    while (!atomic_load(&c->stop)) {
        stream_run(c, resume);
        if (atomic_load(&c->stop))
            break;
        resume = true;
        if (c->answered_any)
            attempt = 0; /* the stream worked: back off from the start */
        unsigned wait = xds_backoff_ms(attempt, &seed);
        if (attempt < 16)
            attempt++;
        log_warn("xds: stream to %s ended (%s); reconnecting in %u ms", c->url.base,
                 c->stream_error, wait);
        uint64_t until = mono_ms() + wait;
        for (uint64_t now; !atomic_load(&c->stop) && (now = mono_ms()) < until;)
            curl_multi_poll(c->multi, NULL, 0, (int)(until - now), NULL);
        pthread_mutex_lock(&c->lock);
        c->status.reconnects++;
        pthread_mutex_unlock(&c->lock);
    }
    return NULL;
}

struct xds_client *xds_client_new(const struct xds_client_config *cfg, struct xds_delta *initial,
                                  char *err, size_t errlen)
{
    struct xds_client *c = calloc(1, sizeof(*c));
    if (!c) {
        seterr(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&c->lock, NULL);
    atomic_init(&c->stop, false);
    if (xds_url_parse(cfg->url, &c->url, err, errlen) < 0)
        goto fail_url;
    if (initial) {
        c->delta = *initial;
        memset(initial, 0, sizeof(*initial));
        if (xds_delta_init(initial) < 0)
            goto fail;
    } else if (xds_delta_init(&c->delta) < 0) {
        goto fail;
    }
    c->node_json = strdup(cfg->node_json ? cfg->node_json : "{}");
    c->cert_dir = cfg->cert_dir ? strdup(cfg->cert_dir) : NULL;
    c->cache_path = cfg->cache_path ? strdup(cfg->cache_path) : NULL;
    c->apply = cfg->apply;
    c->apply_arg = cfg->apply_arg;
    if (!c->node_json || (cfg->cert_dir && !c->cert_dir) || (cfg->cache_path && !c->cache_path))
        goto fail;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !(c->multi = curl_multi_init()))
        goto fail;
    status_sync(c);
    return c;
fail:
    seterr(err, errlen, "out of memory");
fail_url:
    xds_client_free(c);
    return NULL;
}

int xds_client_start(struct xds_client *c)
{
    int r = pthread_create(&c->thread, NULL, client_main, c);
    if (r)
        return -r;
    c->started = true;
    return 0;
}

void xds_client_free(struct xds_client *c)
{
    if (!c)
        return;
    if (c->started) {
        atomic_store(&c->stop, true);
        curl_multi_wakeup(c->multi);
        pthread_join(c->thread, NULL);
    }
    if (c->multi)
        curl_multi_cleanup(c->multi);
    xds_delta_free(&c->delta);
    free(c->node_json);
    free(c->cert_dir);
    free(c->cache_path);
    free(c->out);
    free(c->in);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

void xds_client_status(struct xds_client *c, struct xds_status *out)
{
    pthread_mutex_lock(&c->lock);
    *out = c->status;
    pthread_mutex_unlock(&c->lock);
}

/* ---- CA signing ---- */

size_t xds_body_write(char *data, size_t size, size_t nmemb, void *arg)
{
    struct xds_body *b = arg;
    size_t n = size * nmemb;
    if (b->len + n > b->max)
        return 0;
    char *p = realloc(b->p, b->len + n + 1);
    if (!p)
        return 0;
    memcpy(p + b->len, data, n);
    b->p = p;
    b->len += n;
    b->p[b->len] = 0;
    return n;
}

/* "2025-11-26T14:27:00Z" -> seconds since the epoch; 0 if not that. */
static time_t rfc3339(const char *s)
{
    struct tm tm = {0};
    const char *e = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    if (!e)
        return 0;
    if (*e == '.')
        for (e++; *e >= '0' && *e <= '9'; e++)
            ;
    if (strcmp(e, "Z") != 0)
        return 0;
    return timegm(&tm);
}

int xds_ca_sign(const char *url, const char *bearer, const char *cert_dir, const char *csr_pem,
                long timeout_ms, char **cert_chain, char **root_cert, time_t *expires, char *err,
                size_t errlen)
{
    struct xds_url u;
    struct xds_body b = {.max = 1u << 20};
    struct curl_slist *h = NULL;
    char full[512], auth[4200], path[4096];
    cJSON *req = NULL, *ans = NULL;
    char *body = NULL;
    long code = 0;
    int rc = -EIO;
    CURL *e;
    *cert_chain = *root_cert = NULL;
    *expires = 0;
    if (xds_url_parse(url, &u, err, errlen) < 0)
        return -EINVAL;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !(e = curl_easy_init())) {
        seterr(err, errlen, "cannot start curl");
        return -ENOMEM;
    }
    req = cJSON_CreateObject();
    if (!req || !cJSON_AddStringToObject(req, "csr", csr_pem) ||
        !(body = cJSON_PrintUnformatted(req))) {
        seterr(err, errlen, "out of memory");
        rc = -ENOMEM;
        goto out;
    }
    snprintf(full, sizeof(full), "%s%s", u.base, SIGN_PATH);
    h = curl_slist_append(h, "content-type: application/json");
    if (bearer) {
        snprintf(auth, sizeof(auth), "authorization: Bearer %s", bearer);
        h = curl_slist_append(h, auth);
    }
    curl_easy_setopt(e, CURLOPT_URL, full);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
                     u.tls ? (long)CURL_HTTP_VERSION_2TLS
                           : (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, xds_body_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    if (u.tls && cert_dir) {
        snprintf(path, sizeof(path), "%s/root-cert.pem", cert_dir);
        curl_easy_setopt(e, CURLOPT_CAINFO, path);
        if (!bearer) { /* a renewal proves who it is with its current certificate */
            snprintf(path, sizeof(path), "%s/cert-chain.pem", cert_dir);
            curl_easy_setopt(e, CURLOPT_SSLCERT, path);
            snprintf(path, sizeof(path), "%s/key.pem", cert_dir);
            curl_easy_setopt(e, CURLOPT_SSLKEY, path);
        }
    }
    CURLcode cr = curl_easy_perform(e);
    if (cr != CURLE_OK) {
        seterr(err, errlen, "%s: %s", full, curl_easy_strerror(cr));
        goto out;
    }
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    ans = b.p ? cJSON_Parse(b.p) : NULL;
    if (code != 200) {
        const char *msg = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ans, "error"));
        seterr(err, errlen, "%s: HTTP %ld: %s", full, code, msg ? msg : b.p ? b.p : "");
        rc = code == 401 || code == 403 ? -EACCES : -EIO;
        goto out;
    }
    const char *cc = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ans, "cert_chain"));
    const char *rt = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ans, "root_cert"));
    if (!cc || !rt || !strstr(cc, "-----BEGIN CERTIFICATE-----") ||
        !strstr(rt, "-----BEGIN CERTIFICATE-----")) {
        seterr(err, errlen, "%s: the answer has no cert_chain and root_cert PEM", full);
        rc = -EBADMSG;
        goto out;
    }
    *cert_chain = strdup(cc);
    *root_cert = strdup(rt);
    *expires = rfc3339(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ans, "expires")));
    if (!*cert_chain || !*root_cert) {
        free(*cert_chain);
        free(*root_cert);
        *cert_chain = *root_cert = NULL;
        seterr(err, errlen, "out of memory");
        rc = -ENOMEM;
        goto out;
    }
    rc = 0;
out:
    cJSON_Delete(req);
    cJSON_Delete(ans);
    free(body);
    free(b.p);
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
    return rc;
}
