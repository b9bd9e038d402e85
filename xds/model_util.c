/*
 * model_util.c - the model's validation toolkit: the arena every loaded object lives in,
 * error formatting with the JSON path, and strict typed getters (strings of a given syntax,
 * ranged integers, enums, GEP-2257 durations, lists, string maps), plus the metadata every
 * kind shares. Pure; each call works on the caller's struct model_ctx only.
 *
 * The error text is part of the interface (tests compare it byte for byte): "want <what>,
 * got <value>" for a wrong value, "required" for a missing one, "unknown field" for a key
 * the schema does not have.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <arpa/inet.h>
#include <ctype.h>
#include <math.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "model_internal.h"

const char *const model_method_names[] = {"",        "GET",     "HEAD",  "POST",  "PUT", "DELETE",
                                          "CONNECT", "OPTIONS", "TRACE", "PATCH", NULL};
const char *const model_protocol_names[] = {"TCP", "UDP", "SCTP", NULL};

/* ---- arena ---- */

#define ARENA_CHUNK 16384

struct model_arena_chunk {
    struct model_arena_chunk *next;
    size_t used, cap;
    max_align_t data[];
};

struct model_arena {
    struct model_arena_chunk *head;
};

struct model_arena *model_arena_new(void)
{
    return calloc(1, sizeof(struct model_arena));
}

void model_arena_free(struct model_arena *a)
{
    if (!a)
        return;
    for (struct model_arena_chunk *ch = a->head, *next; ch; ch = next) {
        next = ch->next;
        free(ch);
    }
    free(a);
}

static void *arena_alloc(struct model_arena *a, size_t len)
{
    const size_t align = sizeof(max_align_t);
    len = (len + align - 1) & ~(align - 1);
    if (len == 0)
        len = align;
    struct model_arena_chunk *ch = a->head;
    if (!ch || ch->cap - ch->used < len) {
        /* Big requests get their own chunk behind the current one, so the rest of
         * the current chunk is not wasted. */
        size_t cap = len > ARENA_CHUNK / 4 ? len : ARENA_CHUNK;
        struct model_arena_chunk *n = calloc(1, sizeof(*n) + cap);
        if (!n)
            return NULL;
        n->cap = cap;
        if (ch && cap != ARENA_CHUNK) {
            n->next = ch->next;
            ch->next = n;
        } else {
            n->next = ch;
            a->head = n;
        }
        ch = n;
    }
    void *p = (char *)ch->data + ch->used;
    ch->used += len;
    return p;
}

void *model_alloc(struct model_ctx *c, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size) {
        model_fail(c, "out of memory");
        return NULL;
    }
    void *p = arena_alloc(c->arena, n * size);
    if (!p)
        model_fail(c, "out of memory");
    return p;
}

const char *model_strdup(struct model_ctx *c, const char *s)
{
    size_t len = strlen(s);
    char *p = model_alloc(c, len + 1, 1);
    if (p)
        memcpy(p, s, len + 1);
    return p;
}

/* ---- errors and paths ---- */

static void vfail(struct model_ctx *c, const char *fmt, va_list ap)
{
    if (!c->err || c->errlen == 0)
        return;
    size_t off = 0;
    int n;
#define APPEND(...)                                                                                \
    do {                                                                                           \
        n = snprintf(c->err + off, c->errlen - off, __VA_ARGS__);                                  \
        if (n < 0 || (size_t)n >= c->errlen - off)                                                 \
            return;                                                                                \
        off += (size_t)n;                                                                          \
    } while (0)
    APPEND("%s: ", c->src);
    if (c->doc > 0) {
        APPEND("document %d", c->doc);
        if (c->kind && c->obj_name)
            APPEND(" (%s %s/%s)", c->kind, c->obj_ns ? c->obj_ns : "default", c->obj_name);
        else if (c->kind)
            APPEND(" (%s)", c->kind);
        APPEND(": ");
    }
    if (c->path_len)
        APPEND("%s: ", c->path);
#undef APPEND
    vsnprintf(c->err + off, c->errlen - off, fmt, ap);
}

int model_fail(struct model_ctx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(c, fmt, ap);
    va_end(ap);
    return -1;
}

int model_fail_at(struct model_ctx *c, const char *key, const char *fmt, ...)
{
    model_path_key(c, key);
    va_list ap;
    va_start(ap, fmt);
    vfail(c, fmt, ap);
    va_end(ap);
    return -1;
}

static void path_append(struct model_ctx *c, const char *s)
{
    size_t len = strlen(s);
    if (c->path_len + len >= sizeof(c->path)) {
        /* Only a hostile document nests this deep; keep the message bounded. */
        len = sizeof(c->path) - 1 - c->path_len;
    }
    memcpy(c->path + c->path_len, s, len);
    c->path_len += len;
    c->path[c->path_len] = 0;
}

static bool is_ident(const char *s)
{
    if (!(isalpha((unsigned char)*s) || *s == '_'))
        return false;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_'))
            return false;
    return true;
}

/* Writes s as a double-quoted string, escaping what would not print, cut at max bytes. */
static void quote(char *buf, size_t len, const char *s, size_t max)
{
    size_t o = 0, i = 0;
    if (len < 8) {
        if (len)
            buf[0] = 0;
        return;
    }
    buf[o++] = '"';
    for (; s[i] && i < max && o + 6 < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)ch;
        } else if (ch < 0x20 || ch == 0x7f) {
            o += (size_t)snprintf(buf + o, len - o, "\\x%02x", ch);
        } else {
            buf[o++] = (char)ch;
        }
    }
    if (s[i] && o + 5 < len) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o++] = '"';
    buf[o] = 0;
}

size_t model_path_key(struct model_ctx *c, const char *key)
{
    size_t mark = c->path_len;
    if (is_ident(key) && strlen(key) <= 64) {
        if (c->path_len)
            path_append(c, ".");
        path_append(c, key);
    } else {
        char q[160];
        quote(q, sizeof(q), key, 64);
        path_append(c, "[");
        path_append(c, q);
        path_append(c, "]");
    }
    return mark;
}

size_t model_path_idx(struct model_ctx *c, size_t i)
{
    size_t mark = c->path_len;
    char b[32];
    snprintf(b, sizeof(b), "[%zu]", i);
    path_append(c, b);
    return mark;
}

void model_path_pop(struct model_ctx *c, size_t mark)
{
    c->path_len = mark;
    c->path[mark] = 0;
}

const char *model_describe(const cJSON *v, char *buf, size_t len)
{
    if (!v || cJSON_IsNull(v))
        snprintf(buf, len, "null");
    else if (cJSON_IsTrue(v))
        snprintf(buf, len, "true");
    else if (cJSON_IsFalse(v))
        snprintf(buf, len, "false");
    else if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (isfinite(d) && d == floor(d) && fabs(d) < 1e18)
            snprintf(buf, len, "%lld", (long long)d);
        else
            snprintf(buf, len, "%g", d);
    } else if (cJSON_IsString(v))
        quote(buf, len, v->valuestring, 64);
    else if (cJSON_IsArray(v))
        snprintf(buf, len, "a list");
    else if (cJSON_IsObject(v))
        snprintf(buf, len, "a mapping");
    else
        snprintf(buf, len, "an invalid value");
    return buf;
}

int model_want(struct model_ctx *c, const cJSON *v, const char *what)
{
    char got[160];
    return model_fail(c, "want %s, got %s", what, model_describe(v, got, sizeof(got)));
}

/* ---- objects ---- */

const cJSON *model_get(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

int model_check_object(struct model_ctx *c, const cJSON *v, const char *const *allowed)
{
    if (!cJSON_IsObject(v))
        return model_want(c, v, "a mapping");
    for (const cJSON *it = v->child; it; it = it->next) {
        const char *const *a = allowed;
        while (*a && strcmp(*a, it->string) != 0)
            a++;
        if (!*a)
            return model_fail_at(c, it->string, "unknown field");
    }
    return 0;
}

int model_enter(struct model_ctx *c, const cJSON *obj, const char *key, bool required,
                const char *const *allowed, const cJSON **out, size_t *mark)
{
    const cJSON *v = model_get(obj, key);
    *out = v;
    *mark = model_path_key(c, key);
    if (!v) {
        if (required)
            return model_fail(c, "required");
        model_path_pop(c, *mark);
        return 0;
    }
    return model_check_object(c, v, allowed);
}

/* ---- string syntaxes ---- */

static bool is_label_1123(const char *s, size_t len)
{
    if (len == 0 || len > 63)
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
        if (!alnum && !(ch == '-' && i > 0 && i + 1 < len))
            return false;
    }
    return true;
}

static bool is_subdomain(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > 253)
        return false;
    for (const char *p = s;;) {
        const char *dot = strchr(p, '.');
        size_t l = dot ? (size_t)(dot - p) : strlen(p);
        if (!is_label_1123(p, l))
            return false;
        if (!dot)
            return true;
        p = dot + 1;
    }
}

static bool is_tchar(unsigned char ch)
{
    return isalnum(ch) || (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static bool is_label_name(const char *s, size_t len)
{
    if (len == 0 || len > 63 || !isalnum((unsigned char)s[0]) ||
        !isalnum((unsigned char)s[len - 1]))
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("-_.", s[i]))
            return false;
    return true;
}

bool model_is_dns_label(const char *s)
{
    return is_label_1123(s, strlen(s));
}

bool model_is_dns_subdomain(const char *s)
{
    return is_subdomain(s);
}

bool model_is_str(const char *s, enum model_str syntax)
{
    size_t len = strlen(s);
    switch (syntax) {
    case MODEL_STR_ANY:
        return true;
    case MODEL_STR_NONEMPTY:
        return len > 0;
    case MODEL_STR_DNS_LABEL:
        return is_label_1123(s, len);
    case MODEL_STR_DNS_1035:
        return is_label_1123(s, len) && s[0] >= 'a' && s[0] <= 'z';
    case MODEL_STR_SUBDOMAIN:
        return is_subdomain(s);
    case MODEL_STR_HOSTNAME:
    case MODEL_STR_PRECISE_HOST: {
        struct model_ip ip;
        if (model_parse_ip(s, &ip))
            return false;
        if (syntax == MODEL_STR_HOSTNAME && s[0] == '*' && s[1] == '.')
            s += 2;
        return is_subdomain(s);
    }
    case MODEL_STR_HEADER_NAME:
    case MODEL_STR_TOKEN:
        if (len == 0 || len > 256)
            return false;
        for (size_t i = 0; i < len; i++)
            if (!is_tchar((unsigned char)s[i]))
                return false;
        return true;
    case MODEL_STR_HEADER_VALUE:
        if (len > 4096)
            return false;
        for (size_t i = 0; i < len; i++)
            if (s[i] == '\r' || s[i] == '\n')
                return false;
        return true;
    case MODEL_STR_IANA_SVC: {
        bool letter = false;
        if (len == 0 || len > 15 || s[0] == '-' || s[len - 1] == '-' || strstr(s, "--"))
            return false;
        for (size_t i = 0; i < len; i++) {
            if (s[i] >= 'a' && s[i] <= 'z')
                letter = true;
            else if (!(s[i] >= '0' && s[i] <= '9') && s[i] != '-')
                return false;
        }
        return letter;
    }
    case MODEL_STR_LABEL_KEY: {
        const char *slash = strrchr(s, '/');
        if (!slash)
            return is_label_name(s, len);
        char prefix[254];
        size_t pl = (size_t)(slash - s);
        if (pl == 0 || pl > 253)
            return false;
        memcpy(prefix, s, pl);
        prefix[pl] = 0;
        return is_subdomain(prefix) && is_label_name(slash + 1, strlen(slash + 1));
    }
    case MODEL_STR_LABEL_VALUE:
        return len == 0 || is_label_name(s, len);
    }
    return false;
}

static const char *syntax_want(enum model_str syntax)
{
    switch (syntax) {
    case MODEL_STR_ANY:
        return "a string";
    case MODEL_STR_NONEMPTY:
        return "a non-empty string";
    case MODEL_STR_DNS_LABEL:
        return "a DNS label (at most 63 of a-z, 0-9 and '-', alphanumeric at both ends)";
    case MODEL_STR_DNS_1035:
        return "a DNS-1035 label (at most 63 of a-z, 0-9 and '-', starting with a letter)";
    case MODEL_STR_SUBDOMAIN:
        return "a DNS subdomain (dot-separated DNS labels, at most 253 bytes)";
    case MODEL_STR_HOSTNAME:
        return "a hostname (a DNS subdomain, optionally starting with \"*.\"; not an IP)";
    case MODEL_STR_PRECISE_HOST:
        return "a hostname (a DNS subdomain; not an IP)";
    case MODEL_STR_HEADER_NAME:
        return "an HTTP header name (1..256 token characters)";
    case MODEL_STR_TOKEN:
        return "a token (1..256 of letters, digits and !#$%&'*+-.^_`|~)";
    case MODEL_STR_HEADER_VALUE:
        return "a header value (at most 4096 bytes, no CR or LF)";
    case MODEL_STR_IANA_SVC:
        return "a port name (at most 15 of a-z, 0-9 and '-', with a letter)";
    case MODEL_STR_LABEL_KEY:
        return "a label key ([DNS subdomain/]name, name at most 63 of A-Z a-z 0-9 - _ .)";
    case MODEL_STR_LABEL_VALUE:
        return "a label value (at most 63 of A-Z a-z 0-9 - _ ., alphanumeric at both ends)";
    }
    return "a string";
}

int model_check_str(struct model_ctx *c, const cJSON *v, const char *s, enum model_str syntax)
{
    if (model_is_str(s, syntax))
        return 0;
    return model_want(c, v, syntax_want(syntax));
}

/* ---- typed getters ---- */

int model_get_str(struct model_ctx *c, const cJSON *obj, const char *key, bool required,
                  enum model_str syntax, const char **out)
{
    const cJSON *v = model_get(obj, key);
    *out = NULL;
    if (!v)
        return required ? model_fail_at(c, key, "required") : 0;
    size_t mark = model_path_key(c, key);
    if (!cJSON_IsString(v))
        return model_want(c, v, syntax_want(syntax));
    MODEL_TRY(model_check_str(c, v, v->valuestring, syntax));
    model_path_pop(c, mark);
    *out = model_strdup(c, v->valuestring);
    return *out ? 0 : -1;
}

static bool as_int(const cJSON *v, long long min, long long max, long long *out)
{
    if (!cJSON_IsNumber(v))
        return false;
    double d = v->valuedouble;
    /* Range-check the double before converting: out-of-range casts are undefined. */
    if (!isfinite(d) || d != floor(d) || d < (double)min || d > (double)max)
        return false;
    *out = (long long)d;
    return true;
}

int model_get_int(struct model_ctx *c, const cJSON *obj, const char *key, bool required,
                  long long min, long long max, long long def, long long *out)
{
    const cJSON *v = model_get(obj, key);
    *out = def;
    if (!v)
        return required ? model_fail_at(c, key, "required") : 0;
    if (as_int(v, min, max, out))
        return 0;
    model_path_key(c, key);
    char what[80];
    snprintf(what, sizeof(what), "an integer %lld..%lld", min, max);
    return model_want(c, v, what);
}

int model_get_bool(struct model_ctx *c, const cJSON *obj, const char *key, bool def, bool *out)
{
    const cJSON *v = model_get(obj, key);
    *out = def;
    if (!v)
        return 0;
    if (!cJSON_IsBool(v)) {
        model_path_key(c, key);
        return model_want(c, v, "true or false");
    }
    *out = cJSON_IsTrue(v);
    return 0;
}

int model_get_enum(struct model_ctx *c, const cJSON *obj, const char *key, const char *const *names,
                   int def, int *out)
{
    const cJSON *v = model_get(obj, key);
    *out = def;
    if (!v)
        return def < 0 ? model_fail_at(c, key, "required") : 0;
    if (cJSON_IsString(v))
        for (int i = 0; names[i]; i++)
            if (names[i][0] && strcmp(names[i], v->valuestring) == 0) {
                *out = i;
                return 0;
            }
    char what[512];
    size_t o = (size_t)snprintf(what, sizeof(what), "one of");
    for (int i = 0, first = 1; names[i] && o < sizeof(what); i++) {
        if (!names[i][0])
            continue;
        o += (size_t)snprintf(what + o, sizeof(what) - o, "%s %s", first ? "" : ",", names[i]);
        first = 0;
    }
    model_path_key(c, key);
    return model_want(c, v, what);
}

int model_parse_duration(const char *s, int64_t *out_ms)
{
    /* GEP-2257: ^([0-9]{1,5}(h|m|s|ms)){1,4}$ */
    int64_t total = 0;
    int parts = 0;
    const char *p = s;
    if (!*p)
        return -1;
    while (*p) {
        int64_t n = 0;
        int digits = 0;
        while (*p >= '0' && *p <= '9') {
            if (++digits > 5)
                return -1;
            n = n * 10 + (*p++ - '0');
        }
        if (digits == 0 || ++parts > 4)
            return -1;
        if (p[0] == 'm' && p[1] == 's') {
            total += n;
            p += 2;
        } else if (*p == 'h') {
            total += n * 3600000;
            p++;
        } else if (*p == 'm') {
            total += n * 60000;
            p++;
        } else if (*p == 's') {
            total += n * 1000;
            p++;
        } else {
            return -1;
        }
    }
    *out_ms = total;
    return 0;
}

int model_get_duration(struct model_ctx *c, const cJSON *obj, const char *key, int64_t def,
                       int64_t *out_ms)
{
    const cJSON *v = model_get(obj, key);
    *out_ms = def;
    if (!v)
        return 0;
    if (cJSON_IsString(v) && model_parse_duration(v->valuestring, out_ms) == 0)
        return 0;
    model_path_key(c, key);
    return model_want(c, v, "a duration like 500ms, 10s or 1h2m3s");
}

int model_get_list(struct model_ctx *c, const cJSON *obj, const char *key, bool required,
                   size_t min, size_t max, const cJSON **out, size_t *n)
{
    const cJSON *v = model_get(obj, key);
    *out = NULL;
    *n = 0;
    if (!v)
        return required ? model_fail_at(c, key, "required") : 0;
    size_t mark = model_path_key(c, key);
    if (!cJSON_IsArray(v))
        return model_want(c, v, "a list");
    size_t count = (size_t)cJSON_GetArraySize(v);
    if (count < min)
        return model_fail(c, "want at least %zu %s, got %zu", min, min == 1 ? "entry" : "entries",
                          count);
    if (count > max)
        return model_fail(c, "want at most %zu entries, got %zu", max, count);
    model_path_pop(c, mark);
    *out = v;
    *n = count;
    return 0;
}

int model_get_str_list(struct model_ctx *c, const cJSON *obj, const char *key, size_t max,
                       enum model_str syntax, bool unique, const char ***out, size_t *n)
{
    const cJSON *list;
    MODEL_TRY(model_get_list(c, obj, key, false, 0, max, &list, n));
    *out = NULL;
    if (!list)
        return 0;
    const char **a = model_alloc(c, *n, sizeof(*a));
    if (!a)
        return -1;
    size_t mark = model_path_key(c, key), i = 0;
    for (const cJSON *it = list->child; it; it = it->next, i++) {
        size_t m2 = model_path_idx(c, i);
        if (!cJSON_IsString(it))
            return model_want(c, it, syntax_want(syntax));
        MODEL_TRY(model_check_str(c, it, it->valuestring, syntax));
        for (size_t j = 0; unique && j < i; j++)
            if (strcmp(a[j], it->valuestring) == 0)
                return model_fail(c, "duplicate entry \"%s\"", a[j]);
        if (!(a[i] = model_strdup(c, it->valuestring)))
            return -1;
        model_path_pop(c, m2);
    }
    model_path_pop(c, mark);
    *out = a;
    return 0;
}

int model_get_str_map(struct model_ctx *c, const cJSON *obj, const char *key,
                      enum model_str key_syntax, enum model_str value_syntax, struct model_kv **out,
                      size_t *n)
{
    const cJSON *map = model_get(obj, key);
    *out = NULL;
    *n = 0;
    if (!map)
        return 0;
    size_t mark = model_path_key(c, key);
    if (!cJSON_IsObject(map))
        return model_want(c, map, "a mapping of strings");
    size_t count = (size_t)cJSON_GetArraySize(map), i = 0;
    struct model_kv *kv = model_alloc(c, count, sizeof(*kv));
    if (!kv)
        return -1;
    for (const cJSON *it = map->child; it; it = it->next, i++) {
        size_t m2 = model_path_key(c, it->string);
        if (!model_is_str(it->string, key_syntax)) {
            char q[160];
            quote(q, sizeof(q), it->string, 64);
            return model_fail(c, "want %s as key, got %s", syntax_want(key_syntax), q);
        }
        if (!cJSON_IsString(it))
            return model_want(c, it, "a string");
        MODEL_TRY(model_check_str(c, it, it->valuestring, value_syntax));
        kv[i].key = model_strdup(c, it->string);
        kv[i].value = model_strdup(c, it->valuestring);
        if (!kv[i].key || !kv[i].value)
            return -1;
        model_path_pop(c, m2);
    }
    model_path_pop(c, mark);
    *out = kv;
    *n = count;
    return 0;
}

/* A list of HTTP status codes in 400..599, no duplicates. */
int model_get_codes(struct model_ctx *c, const cJSON *obj, const char *key, uint16_t **out,
                    size_t *n)
{
    const cJSON *list;
    MODEL_TRY(model_get_list(c, obj, key, false, 0, 32, &list, n));
    if (!(*out = model_alloc(c, *n, sizeof(**out))))
        return -1;
    size_t mark = model_path_key(c, key), i = 0;
    for (const cJSON *it = list ? list->child : NULL; it; it = it->next, i++) {
        size_t m2 = model_path_idx(c, i);
        double d = cJSON_IsNumber(it) ? it->valuedouble : 0;
        if (!(d >= 400 && d <= 599 && d == (double)(int)d))
            return model_want(c, it, "an HTTP status code 400..599");
        (*out)[i] = (uint16_t)d;
        for (size_t j = 0; j < i; j++)
            if ((*out)[j] == (*out)[i])
                return model_fail(c, "duplicate code %u", (*out)[i]);
        model_path_pop(c, m2);
    }
    model_path_pop(c, mark);
    return 0;
}

bool model_parse_ip(const char *s, struct model_ip *ip)
{
    memset(ip->addr, 0, sizeof(ip->addr));
    ip->text = NULL;
    if (inet_pton(AF_INET, s, ip->addr) == 1) {
        ip->family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, s, ip->addr) == 1) {
        ip->family = AF_INET6;
        return true;
    }
    return false;
}

int model_check_regex(struct model_ctx *c, const char *pattern)
{
    int errcode;
    PCRE2_SIZE erroff;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &errcode,
                                   &erroff, NULL);
    if (re) {
        pcre2_code_free(re);
        return 0;
    }
    PCRE2_UCHAR msg[160];
    if (pcre2_get_error_message(errcode, msg, sizeof(msg)) < 0)
        snprintf((char *)msg, sizeof(msg), "error %d", errcode);
    return model_fail(c, "want a regular expression (pcre2), got an error at offset %zu: %s",
                      (size_t)erroff, (const char *)msg);
}

/* ---- metadata ---- */

static int parse_timestamp(const char *s, int64_t *out)
{
    /* RFC 3339 as Kubernetes writes it: 2024-05-01T12:00:00Z, fractions allowed. */
    struct tm tm = {0};
    int n = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &n) != 6 ||
        n != 19)
        return -1;
    const char *p = s + n;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return -1;
        while (isdigit((unsigned char)*p))
            p++;
    }
    if (strcmp(p, "Z") != 0 || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 ||
        tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    *out = (int64_t)timegm(&tm);
    return 0;
}

int model_parse_meta(struct model_ctx *c, const cJSON *doc, enum model_str name_syntax,
                     struct model_meta *m)
{
    static const char *const keys[] = {"name",
                                       "namespace",
                                       "labels",
                                       "annotations",
                                       "creationTimestamp",
                                       "uid",
                                       "resourceVersion",
                                       "generation",
                                       "managedFields",
                                       "ownerReferences",
                                       "finalizers",
                                       "generateName",
                                       "deletionTimestamp",
                                       "deletionGracePeriodSeconds",
                                       "selfLink",
                                       NULL};
    const cJSON *meta;
    size_t mark;
    MODEL_TRY(model_enter(c, doc, "metadata", true, keys, &meta, &mark));
    MODEL_TRY(model_get_str(c, meta, "name", true, name_syntax, &m->name));
    MODEL_TRY(model_get_str(c, meta, "namespace", false, MODEL_STR_DNS_LABEL, &m->ns));
    if (!m->ns && !(m->ns = model_strdup(c, "default")))
        return -1;
    c->obj_ns = m->ns;
    c->obj_name = m->name;
    MODEL_TRY(model_get_str_map(c, meta, "labels", MODEL_STR_LABEL_KEY, MODEL_STR_LABEL_VALUE,
                                &m->labels, &m->n_labels));
    MODEL_TRY(model_get_str_map(c, meta, "annotations", MODEL_STR_LABEL_KEY, MODEL_STR_ANY,
                                &m->annotations, &m->n_annotations));
    const cJSON *ts = model_get(meta, "creationTimestamp");
    if (ts && (!cJSON_IsString(ts) || parse_timestamp(ts->valuestring, &m->creation_ts) < 0)) {
        model_path_key(c, "creationTimestamp");
        return model_want(c, ts, "an RFC 3339 time like 2024-05-01T12:00:00Z");
    }
    model_path_pop(c, mark);
    m->doc = c->doc;
    return 0;
}

int model_parse_service_ref(struct model_ctx *c, const cJSON *obj, const char *key, bool required,
                            const char **name)
{
    static const char *const keys[] = {"group", "kind", "name", NULL};
    const cJSON *ref;
    size_t mark;
    *name = NULL;
    MODEL_TRY(model_enter(c, obj, key, required, keys, &ref, &mark));
    if (!ref)
        return 0;
    const cJSON *g = model_get(ref, "group"), *k = model_get(ref, "kind");
    if (g &&
        !(cJSON_IsString(g) && (!strcmp(g->valuestring, "") || !strcmp(g->valuestring, "core")))) {
        model_path_key(c, "group");
        return model_want(c, g, "\"\" (the core group)");
    }
    if (k && !(cJSON_IsString(k) && !strcmp(k->valuestring, "Service"))) {
        model_path_key(c, "kind");
        return model_want(c, k, "\"Service\"");
    }
    MODEL_TRY(model_get_str(c, ref, "name", true, MODEL_STR_DNS_1035, name));
    model_path_pop(c, mark);
    return 0;
}
