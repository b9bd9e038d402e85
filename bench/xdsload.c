/*
 * xdsload.c - N lightweight delta xDS clients against ringmesh-xds, and K endpoint changes
 * made through its API, timed from the clients' side (bench/xds_run.sh; never a test).
 *
 *   xdsload --xds-port P --api-port A --slice NS/NAME[,NS/NAME...] [--clients 100]
 *           [--changes 50] [--gap-ms 1000] [--timeout-ms 10000] [--host 127.0.0.1]
 *
 * One thread, epoll, nghttp2: each client is one h2c (prior knowledge) connection with one
 * POST /ringmesh.xds.v1/DeltaResources (xds/PROTOCOL.md) whose request body stays open; it
 * subscribes "*" to the six types (node on the first line), ACKs every response line at
 * once, and keeps only counters: no JSON is parsed except the few fields of each line's head
 * (type_url, nonce) and, for a line carrying a change's marker, its resource count.
 *
 * After every client has had its six first responses (warm), change k of K (a second
 * thread, libcurl): GET the EndpointSlice (round robin over --slice), set its first
 * endpoint's first address to a marker address unique to the change (10.250.x.y), POST it
 * to /api/v1/apply. t_req is taken before the POST starts, t_resp when its answer is in;
 * the clients' loop stamps, per client, the arrival of the (whole) response line holding
 * the marker. All clocks are CLOCK_MONOTONIC in this process. Then --gap-ms of quiet (the
 * server's own inotify reload of the file the API wrote falls in it) before the next change;
 * the bytes each client received from t_req to the end of the gap are that change's bytes
 * (socket bytes: h2 frames included; and the JSON lines' bytes).
 *
 * Output (stdout), JSON lines: {"phase":"warm",...} once, then {"phase":"change",...} per
 * change with per-client arrays. Progress and errors on stderr. Exit 0 when every change
 * reached every client before --timeout-ms, 1 otherwise (the records say which).
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#define NTYPES 6
static const char *const type_urls[NTYPES] = {
    "v1/Service",
    "ringmesh.io/v1alpha1/DestinationPolicy",
    "discovery.k8s.io/v1/EndpointSlice",
    "gateway.networking.k8s.io/v1/HTTPRoute",
    "ringmesh.io/v1alpha1/AuthorizationPolicy",
    "ringmesh.io/v1alpha1/PeerAuthentication",
};

struct client {
    int id, fd;
    nghttp2_session *s;
    int32_t stream;
    char *out; /* request body not yet handed to nghttp2 */
    size_t out_len, out_cap, out_off;
    bool deferred, dead;
    char *line; /* the response line being received */
    size_t line_len, line_cap;
    uint64_t sock_bytes, line_bytes, lines;
    int first_seen;  /* types with their first response */
    double warm_at;  /* ms, when the sixth first response was complete */
    double marker_at; /* ms, when the line with the current marker was complete (0: not yet) */
    uint64_t marker_line_bytes;
    int marker_resources;
    char marker_type[128];
};

static struct client *cl;
static int nclients;
static char marker[40]; /* "\"10.250.x.y\"" while a change is out; "" otherwise */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void die(const char *what)
{
    fprintf(stderr, "xdsload: %s\n", what);
    exit(2);
}

static void out_put(struct client *c, const char *s, size_t n)
{
    if (c->out_len + n > c->out_cap) {
        c->out_cap = (c->out_len + n) * 2 + 256;
        if (!(c->out = realloc(c->out, c->out_cap)))
            die("out of memory");
    }
    memcpy(c->out + c->out_len, s, n);
    c->out_len += n;
    if (c->deferred && c->stream > 0) {
        c->deferred = false;
        nghttp2_session_resume_data(c->s, c->stream);
    }
}

static ssize_t body_read(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t len,
                         uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    struct client *c = ud;
    size_t n = c->out_len - c->out_off;
    if (!n) {
        c->out_len = c->out_off = 0;
        c->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    if (n > len)
        n = len;
    memcpy(buf, c->out + c->out_off, n);
    c->out_off += n;
    return (ssize_t)n;
}

/* The string value of "key":"..." in the line's head (before "resources"). */
static bool head_str(const char *line, size_t len, const char *key, char *out, size_t outlen)
{
    size_t lim = len < 512 ? len : 512;
    char pat[64];
    int pl = snprintf(pat, sizeof(pat), "\"%s\":\"", key);
    for (size_t i = 0; i + (size_t)pl < lim; i++) {
        if (memcmp(line + i, pat, (size_t)pl))
            continue;
        const char *v = line + i + pl, *e = memchr(v, '"', len - (size_t)(v - line));
        if (!e || (size_t)(e - v) >= outlen)
            return false;
        memcpy(out, v, (size_t)(e - v));
        out[e - v] = 0;
        return true;
    }
    return false;
}

static void on_line(struct client *c, double t)
{
    char tu[128], nonce[32], ack[256];
    c->lines++;
    c->line_bytes += c->line_len + 1;
    if (!head_str(c->line, c->line_len, "type_url", tu, sizeof(tu)) ||
        !head_str(c->line, c->line_len, "nonce", nonce, sizeof(nonce))) {
        fprintf(stderr, "xdsload: client %d: a line without type_url/nonce: %.200s\n", c->id,
                c->line);
        return;
    }
    int n = snprintf(ack, sizeof(ack), "{\"type_url\":\"%s\",\"response_nonce\":\"%s\"}\n", tu,
                     nonce);
    out_put(c, ack, (size_t)n);
    if (c->first_seen < NTYPES && ++c->first_seen == NTYPES)
        c->warm_at = t;
    if (marker[0] && !c->marker_at && memmem(c->line, c->line_len, marker, strlen(marker))) {
        c->marker_at = t;
        c->marker_line_bytes = c->line_len + 1;
        snprintf(c->marker_type, sizeof(c->marker_type), "%s", tu);
        c->line[c->line_len] = 0;
        cJSON *j = cJSON_ParseWithLength(c->line, c->line_len);
        c->marker_resources = cJSON_GetArraySize(cJSON_GetObjectItem(j, "resources"));
        cJSON_Delete(j);
    }
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *data,
                   size_t len, void *ud)
{
    struct client *c = ud;
    double t = 0;
    for (size_t i = 0; i < len; i++) {
        const uint8_t *nl = memchr(data + i, '\n', len - i);
        size_t n = nl ? (size_t)(nl - (data + i)) : len - i;
        if (c->line_len + n + 1 > c->line_cap) {
            c->line_cap = (c->line_len + n + 1) * 2;
            if (!(c->line = realloc(c->line, c->line_cap)))
                die("out of memory");
        }
        memcpy(c->line + c->line_len, data + i, n);
        c->line_len += n;
        i += n;
        if (nl) {
            if (!t)
                t = now_ms();
            on_line(c, t);
            c->line_len = 0;
        }
    }
    return 0;
}

static int on_close(nghttp2_session *s, int32_t sid, uint32_t err, void *ud)
{
    struct client *c = ud;
    fprintf(stderr, "xdsload: client %d: stream closed (h2 error %u)\n", c->id, err);
    c->dead = true;
    return 0;
}

static ssize_t on_send(nghttp2_session *s, const uint8_t *data, size_t len, int flags, void *ud)
{
    struct client *c = ud;
    ssize_t w = send(c->fd, data, len, MSG_NOSIGNAL);
    if (w < 0)
        return errno == EAGAIN ? NGHTTP2_ERR_WOULDBLOCK : NGHTTP2_ERR_CALLBACK_FAILURE;
    return w;
}

static void client_start(struct client *c, const char *host, int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int one = 1;
    inet_pton(AF_INET, host, &sa.sin_addr);
    if ((c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
        connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)))
        die("cannot connect to the xDS port");
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fcntl(c->fd, F_SETFL, O_NONBLOCK);

    nghttp2_session_callbacks *cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_send_callback(cb, on_send);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
    nghttp2_option *opt;
    nghttp2_option_new(&opt);
    if (nghttp2_session_client_new2(&c->s, cb, c, opt))
        die("nghttp2_session_client_new2");
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    nghttp2_settings_entry st[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 24},
                                   {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, 1 << 20}};
    nghttp2_submit_settings(c->s, NGHTTP2_FLAG_NONE, st, 2);
    nghttp2_session_set_local_window_size(c->s, NGHTTP2_FLAG_NONE, 0, 1 << 26);

    char hostport[64];
    snprintf(hostport, sizeof(hostport), "%s:%d", host, port);
#define HDR(n, v) {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE}
    nghttp2_nv hdrs[] = {HDR(":method", "POST"), HDR(":scheme", "http"),
                         HDR(":authority", hostport),
                         HDR(":path", "/ringmesh.xds.v1/DeltaResources"),
                         HDR("content-type", "application/x-ndjson")};
    nghttp2_data_provider dp = {.read_callback = body_read};
    char line[512];
    for (int i = 0; i < NTYPES; i++) {
        int n = i ? snprintf(line, sizeof(line),
                             "{\"type_url\":\"%s\",\"resource_names_subscribe\":[\"*\"]}\n",
                             type_urls[i])
                  : snprintf(line, sizeof(line),
                             "{\"node\":{\"id\":\"sidecar~10.200.%d.%d~xdsload-%d.bench~bench."
                             "svc.cluster.local\",\"cluster\":\"xdsload\",\"metadata\":{"
                             "\"namespace\":\"bench\",\"service_account\":\"xdsload\",\"pod\":"
                             "\"xdsload-%d\",\"pod_ip\":\"10.200.%d.%d\"},\"user_agent_name\":"
                             "\"xdsload\",\"user_agent_version\":\"0.1\"},\"type_url\":\"%s\","
                             "\"resource_names_subscribe\":[\"*\"]}\n",
                             c->id / 250, c->id % 250 + 1, c->id, c->id, c->id / 250,
                             c->id % 250 + 1, type_urls[i]);
        out_put(c, line, (size_t)n);
    }
    c->stream = nghttp2_submit_request(c->s, NULL, hdrs, sizeof(hdrs) / sizeof(hdrs[0]), &dp, c);
    if (c->stream < 0)
        die("nghttp2_submit_request");
}

static void client_io(struct client *c)
{
    uint8_t buf[1 << 16];
    for (;;) {
        ssize_t r = recv(c->fd, buf, sizeof(buf), 0);
        if (r > 0) {
            c->sock_bytes += (uint64_t)r;
            if (nghttp2_session_mem_recv(c->s, buf, (size_t)r) < 0) {
                c->dead = true;
                break;
            }
            continue;
        }
        if (r == 0 || errno != EAGAIN) {
            if (!c->dead)
                fprintf(stderr, "xdsload: client %d: connection closed\n", c->id);
            c->dead = true;
        }
        break;
    }
    if (!c->dead && nghttp2_session_send(c->s))
        c->dead = true;
}

/* ---- the changes (their own thread: the loop keeps receiving while the API works) ---- */

struct api_state {
    const char *base;
    char **slices;
    int nslices, changes;
    atomic_int want; /* change number the loop asks for (1-based); 0: none */
    atomic_int done; /* change number whose apply answered */
    double t_req, t_resp;
    long code;
    char err[256];
};

static size_t collect(char *p, size_t sz, size_t nm, void *ud)
{
    struct {
        char *b;
        size_t n;
    } *acc = ud;
    acc->b = realloc(acc->b, acc->n + sz * nm + 1);
    memcpy(acc->b + acc->n, p, sz * nm);
    acc->n += sz * nm;
    acc->b[acc->n] = 0;
    return sz * nm;
}

static void *api_thread(void *arg)
{
    struct api_state *a = arg;
    CURL *h = curl_easy_init();
    for (int k = 1; k <= a->changes; k++) {
        while (atomic_load(&a->want) < k)
            usleep(200);
        char url[512], *slash, *body;
        const char *sl = a->slices[(k - 1) % a->nslices];
        struct {
            char *b;
            size_t n;
        } acc = {0};
        slash = strchr(sl, '/');
        snprintf(url, sizeof(url), "%s/api/v1/EndpointSlice/%.*s/%s", a->base,
                 (int)(slash - sl), sl, slash + 1);
        curl_easy_reset(h);
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &acc);
        if (curl_easy_perform(h) || !acc.b)
            die("GET of the slice failed");
        cJSON *o = cJSON_Parse(acc.b), *ep, *addrs;
        free(acc.b);
        acc.b = NULL;
        acc.n = 0;
        if (!o || !(ep = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "endpoints"), 0)) ||
            !(addrs = cJSON_GetObjectItem(ep, "addresses")))
            die("the slice has no endpoints[0].addresses");
        cJSON_DeleteItemFromObject(cJSON_GetObjectItem(o, "metadata"), "resourceVersion");
        char ip[32];
        snprintf(ip, sizeof(ip), "10.250.%d.%d", k / 250, k % 250 + 1);
        cJSON_ReplaceItemInArray(addrs, 0, cJSON_CreateString(ip));
        body = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        struct curl_slist *hd = curl_slist_append(NULL, "content-type: application/json");
        snprintf(url, sizeof(url), "%s/api/v1/apply", a->base);
        curl_easy_reset(h);
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &acc);
        a->t_req = now_ms();
        CURLcode rc = curl_easy_perform(h);
        a->t_resp = now_ms();
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &a->code);
        snprintf(a->err, sizeof(a->err), "%s", rc ? curl_easy_strerror(rc) : acc.b ? acc.b : "");
        for (char *p = a->err; *p; p++)
            if (*p == '"' || *p == '\\' || *p == '\n')
                *p = ' ';
        free(acc.b);
        free(body);
        curl_slist_free_all(hd);
        atomic_store(&a->done, k);
    }
    curl_easy_cleanup(h);
    return NULL;
}

/* ---- the loop ----------------------------------------------------------------------- */

static int ep;

static void poll_for(double ms)
{
    struct epoll_event evs[128];
    double end = now_ms() + ms;
    for (;;) {
        double left = end - now_ms();
        if (left <= 0)
            break;
        int n = epoll_wait(ep, evs, 128, left > 2 ? 2 : (int)left + 1);
        for (int i = 0; i < n; i++)
            client_io(&cl[evs[i].data.u32]);
        for (int i = 0; i < nclients; i++)
            if (!cl[i].dead && nghttp2_session_want_write(cl[i].s))
                nghttp2_session_send(cl[i].s);
    }
}

static void print_arr_d(const char *name, double *v, int n)
{
    printf(",\"%s\":[", name);
    for (int i = 0; i < n; i++)
        printf(i ? ",%.3f" : "%.3f", v[i]);
    printf("]");
}

static void print_arr_u(const char *name, uint64_t *v, int n)
{
    printf(",\"%s\":[", name);
    for (int i = 0; i < n; i++)
        printf(i ? ",%llu" : "%llu", (unsigned long long)v[i]);
    printf("]");
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *slices = NULL;
    int xport = 0, aport = 0, changes = 50, gap = 1000, timeout = 10000;
    nclients = 100;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--xds-port"))
            xport = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--api-port"))
            aport = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--clients"))
            nclients = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--changes"))
            changes = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--gap-ms"))
            gap = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--timeout-ms"))
            timeout = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--host"))
            host = argv[i + 1];
        else if (!strcmp(argv[i], "--slice"))
            slices = argv[i + 1];
        else
            die("usage: xdsload --xds-port P --api-port A --slice NS/NAME[,...] [--clients N] "
                "[--changes K] [--gap-ms MS] [--timeout-ms MS] [--host IP]");
    }
    if (!xport || !aport || !slices || nclients < 1)
        die("--xds-port, --api-port and --slice are required");

    struct api_state api = {.changes = changes};
    char base[128], *sl = strdup(slices), *save = NULL;
    snprintf(base, sizeof(base), "http://%s:%d", host, aport);
    api.base = base;
    for (char *t = strtok_r(sl, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        api.slices = realloc(api.slices, (size_t)(api.nslices + 1) * sizeof(char *));
        api.slices[api.nslices++] = t;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);

    cl = calloc((size_t)nclients, sizeof(*cl));
    if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
        die("epoll_create1");
    double t0 = now_ms();
    for (int i = 0; i < nclients; i++) {
        cl[i].id = i;
        client_start(&cl[i], host, xport);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, cl[i].fd, &ev);
        nghttp2_session_send(cl[i].s);
    }
    /* warm: every client has its six first responses */
    int warm = 0;
    while (warm < nclients && now_ms() - t0 < 600e3) {
        poll_for(5);
        warm = 0;
        for (int i = 0; i < nclients; i++) {
            if (cl[i].dead)
                die("a client's stream ended before it was warm");
            warm += cl[i].first_seen == NTYPES;
        }
    }
    if (warm < nclients)
        die("not every client warm after 600 s");
    poll_for(200); /* the ACKs out */
    {
        double w[nclients];
        uint64_t b[nclients];
        for (int i = 0; i < nclients; i++)
            w[i] = cl[i].warm_at - t0, b[i] = cl[i].sock_bytes;
        printf("{\"phase\":\"warm\",\"clients\":%d", nclients);
        print_arr_d("warm_ms", w, nclients);
        print_arr_u("sock_bytes", b, nclients);
        printf("}\n");
        fflush(stdout);
    }
    fprintf(stderr, "xdsload: %d clients warm in %.0f ms\n", nclients, now_ms() - t0);

    pthread_t th;
    pthread_create(&th, NULL, api_thread, &api);
    int failed = 0;
    for (int k = 1; k <= changes; k++) {
        uint64_t sb0[nclients], lb0[nclients], ln0[nclients];
        for (int i = 0; i < nclients; i++) {
            cl[i].marker_at = 0;
            cl[i].marker_resources = -1;
            cl[i].marker_line_bytes = 0;
            cl[i].marker_type[0] = 0;
            sb0[i] = cl[i].sock_bytes, lb0[i] = cl[i].line_bytes, ln0[i] = cl[i].lines;
        }
        snprintf(marker, sizeof(marker), "\"10.250.%d.%d\"", k / 250, k % 250 + 1);
        double start = now_ms();
        atomic_store(&api.want, k);
        int got = 0;
        while (now_ms() - start < timeout) {
            poll_for(1);
            got = 0;
            for (int i = 0; i < nclients; i++)
                got += cl[i].marker_at > 0;
            if (got == nclients && atomic_load(&api.done) >= k)
                break;
        }
        while (atomic_load(&api.done) < k) /* a hung apply: wait for curl anyway */
            poll_for(5);
        poll_for(gap);
        marker[0] = 0;
        double fr[nclients], fa[nclients];
        uint64_t sb[nclients], lb[nclients], ln[nclients], mb[nclients], nr[nclients];
        for (int i = 0; i < nclients; i++) {
            bool g = cl[i].marker_at > 0;
            fr[i] = g ? cl[i].marker_at - api.t_req : -1;
            fa[i] = g ? cl[i].marker_at - api.t_resp : -1e9;
            sb[i] = cl[i].sock_bytes - sb0[i];
            lb[i] = cl[i].line_bytes - lb0[i];
            ln[i] = cl[i].lines - ln0[i];
            mb[i] = cl[i].marker_line_bytes;
            nr[i] = (uint64_t)(cl[i].marker_resources < 0 ? 0 : cl[i].marker_resources);
        }
        printf("{\"phase\":\"change\",\"k\":%d,\"slice\":\"%s\",\"marker\":\"10.250.%d.%d\","
               "\"apply_code\":%ld,\"apply_ms\":%.3f,\"received\":%d,\"type\":\"%s\"",
               k, api.slices[(k - 1) % api.nslices], k / 250, k % 250 + 1, api.code,
               api.t_resp - api.t_req, got, cl[0].marker_type);
        if (api.code != 200)
            printf(",\"apply_error\":\"%.200s\"", api.err);
        print_arr_d("from_req_ms", fr, nclients);
        print_arr_d("from_resp_ms", fa, nclients);
        print_arr_u("sock_bytes", sb, nclients);
        print_arr_u("line_bytes", lb, nclients);
        print_arr_u("lines", ln, nclients);
        print_arr_u("marker_line_bytes", mb, nclients);
        print_arr_u("marker_resources", nr, nclients);
        printf("}\n");
        fflush(stdout);
        if (got < nclients || api.code != 200)
            failed++;
        fprintf(stderr, "xdsload: change %d/%d: apply %ld in %.1f ms, %d/%d clients\n", k,
                changes, api.code, api.t_resp - api.t_req, got, nclients);
    }
    pthread_join(th, NULL);
    return failed ? 1 : 0;
}
