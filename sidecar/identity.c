/*
 * identity.c - see identity.h. The renewal thread sleeps on a condition variable until
 * the renewal time or identity_stop(); a blocking HTTPS exchange here holds up nothing
 * else (not the xDS stream, not a worker, not the admin server).
 */
#include "identity.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ca.h"
#include "fileio.h"
#include "client.h"
#include "log.h"
#include "tls.h"

#define SIGN_TIMEOUT_MS 30000
#define TOKEN_MAX       8192

static int write_atomic(const char *dir, const char *name, const char *data, mode_t mode)
{
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    return file_write_atomic(path, data, strlen(data), mode, true);
}

/* The token file's first line, trimmed. malloc'd, or NULL with err. */
static char *read_token(const char *path, char *err, size_t errlen)
{
    char *buf;
    size_t n;
    int rc = file_read(path, TOKEN_MAX, &buf, &n);
    if (rc < 0) {
        snprintf(err, errlen, "--xds-token %s: %s", path,
                 rc == -EFBIG ? "over 8 KiB: not a token" : strerror(-rc));
        return NULL;
    }
    n = strcspn(buf, "\r\n");
    buf[n] = 0;
    while (n && (buf[n - 1] == ' ' || buf[n - 1] == '\t'))
        buf[--n] = 0;
    if (!buf[0]) {
        snprintf(err, errlen, "--xds-token %s: empty", path);
        free(buf);
        return NULL;
    }
    return buf;
}

time_t identity_renew_at(const char *cert_dir)
{
    char err[512], path[4096];
    struct stat st;
    struct tls_creds *c = tls_creds_load(cert_dir, err, sizeof(err));
    time_t na, at;
    if (!c)
        return 0;
    na = tls_creds_not_after(c);
    tls_creds_release(c);
    snprintf(path, sizeof(path), "%s/cert-chain.pem", cert_dir);
    if (stat(path, &st) < 0 || st.st_mtime >= na)
        return 0;
    at = st.st_mtime + (na - st.st_mtime) / 2;
    return at;
}

int identity_issue(const struct identity_config *cfg, bool renewal, time_t *renew_at, char *err,
                   size_t errlen)
{
    struct xds_url u;
    char *key = NULL, *csr = NULL, *chain = NULL, *root = NULL, *token = NULL, why[512];
    time_t expires = 0, now = time(NULL);
    int rc;
    if ((rc = xds_url_parse(cfg->url, &u, err, errlen)) < 0)
        return rc;
    if (mkdir(cfg->cert_dir, 0700) < 0 && errno != EEXIST) {
        rc = -errno;
        snprintf(err, errlen, "--cert-dir %s: %s", cfg->cert_dir, strerror(errno));
        return rc;
    }
    /* renewals over TLS present the current certificate; bootstrap and dev use the token */
    bool use_cert = renewal && u.tls;
    if (!use_cert && !(token = read_token(cfg->token_path, err, errlen)))
        return -EINVAL;
    if ((rc = ca_key_new(&key, why, sizeof(why))) < 0 ||
        (rc = ca_make_csr(key, strlen(key), &csr, why, sizeof(why))) < 0) {
        snprintf(err, errlen, "making the key and CSR: %s", why);
        goto out;
    }
    rc = xds_ca_sign(cfg->url, use_cert ? NULL : token, cfg->cert_dir, csr,
                     SIGN_TIMEOUT_MS, &chain, &root, &expires, err, errlen);
    if (rc < 0)
        goto out;
    /* the key first: a reload between the files fails the key-pair check and is retried
     * by the next file's event, never runs with a mismatched pair */
    const struct {
        const char *name, *data;
        mode_t mode;
    } files[] = {
        {"key.pem", key, 0600}, {"root-cert.pem", root, 0644}, {"cert-chain.pem", chain, 0644}};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        if ((rc = write_atomic(cfg->cert_dir, files[i].name, files[i].data, files[i].mode)) < 0) {
            snprintf(err, errlen, "writing %s/%s: %s", cfg->cert_dir, files[i].name, strerror(-rc));
            goto out;
        }
    }
    if (!expires) {
        time_t at = identity_renew_at(cfg->cert_dir);
        *renew_at = at ? at : now + 3600;
    } else {
        *renew_at = now + (expires - now) / 2;
    }
    rc = 0;
out:
    if (key)
        explicit_bzero(key, strlen(key));
    if (token)
        explicit_bzero(token, strlen(token));
    free(key);
    free(csr);
    free(chain);
    free(root);
    free(token);
    return rc;
}

struct identity {
    struct identity_config cfg;
    time_t renew_at;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;
};

static void *renew_main(void *arg)
{
    struct identity *id = arg;
    unsigned attempt = 0, seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    log_set_thread_name("identity");
    pthread_mutex_lock(&id->lock);
    while (!id->stop) {
        struct timespec ts = {.tv_sec = id->renew_at};
        if (time(NULL) < id->renew_at) {
            pthread_cond_timedwait(&id->cond, &id->lock, &ts); /* CLOCK_REALTIME: wall time */
            continue;
        }
        pthread_mutex_unlock(&id->lock);
        char err[1024];
        time_t next = 0;
        int rc = identity_issue(&id->cfg, true, &next, err, sizeof(err));
        pthread_mutex_lock(&id->lock);
        if (rc == 0) {
            attempt = 0;
            id->renew_at = next;
            log_info("identity: certificate renewed in %s; next renewal in %lld s",
                     id->cfg.cert_dir, (long long)(next - time(NULL)));
        } else {
            unsigned ms = xds_backoff_ms(attempt < 6 ? attempt + 4 : 10, &seed);
            attempt++;
            id->renew_at = time(NULL) + (time_t)(ms / 1000 + 1);
            log_error("identity: renewal failed (%s); the current certificate stays; retrying "
                      "in %u s",
                      err, ms / 1000 + 1);
        }
    }
    pthread_mutex_unlock(&id->lock);
    tls_thread_done(); /* the keys it made filled this thread's ECC tables */
    return NULL;
}

struct identity *identity_start(const struct identity_config *cfg, time_t renew_at)
{
    struct identity *id = calloc(1, sizeof(*id));
    if (!id)
        return NULL;
    id->cfg = *cfg;
    id->renew_at = renew_at;
    pthread_mutex_init(&id->lock, NULL);
    pthread_cond_init(&id->cond, NULL);
    if (pthread_create(&id->thread, NULL, renew_main, id)) {
        pthread_mutex_destroy(&id->lock);
        pthread_cond_destroy(&id->cond);
        free(id);
        return NULL;
    }
    return id;
}

void identity_stop(struct identity *id)
{
    if (!id)
        return;
    pthread_mutex_lock(&id->lock);
    id->stop = true;
    pthread_cond_signal(&id->cond);
    pthread_mutex_unlock(&id->lock);
    pthread_join(id->thread, NULL);
    pthread_mutex_destroy(&id->lock);
    pthread_cond_destroy(&id->cond);
    free(id);
}
