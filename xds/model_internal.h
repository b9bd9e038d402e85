/*
 * model_internal.h - what the model's files share and nothing else includes: the
 * validation context (source, document, object, current field path, error buffer, arena)
 * and the strict field getters every kind's validator is written with.
 *
 * Conventions: every int function returns 0, or -1 after writing the error through
 * model_fail(). The path is a stack: model_path_key()/model_path_idx() push and return a
 * mark, model_path_pop() restores it. On an error return the path is left as it was (the
 * message is already formatted). A cJSON value of null counts as absent everywhere.
 */
#ifndef RINGMESH_MODEL_INTERNAL_H
#define RINGMESH_MODEL_INTERNAL_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"

#define MODEL_PATH_MAX 384

struct model_ctx {
    const char *src;    /* source name; borrowed */
    int doc;            /* 1-based document index */
    const char *kind;   /* "HTTPRoute" once known, else NULL */
    const char *obj_ns; /* once metadata parsed; arena strings */
    const char *obj_name;
    char path[MODEL_PATH_MAX];
    size_t path_len;
    char *err;
    size_t errlen;
    struct model_arena *arena;
};

/* String syntaxes the getters check. */
enum model_str {
    MODEL_STR_ANY,          /* any string, even "" */
    MODEL_STR_NONEMPTY,     /* at least one byte */
    MODEL_STR_DNS_LABEL,    /* RFC 1123 label: namespaces, port names, zones */
    MODEL_STR_DNS_1035,     /* RFC 1035 label: Service names */
    MODEL_STR_SUBDOMAIN,    /* RFC 1123 subdomain: most object names */
    MODEL_STR_HOSTNAME,     /* Gateway API hostname: subdomain, optional leading "*." */
    MODEL_STR_PRECISE_HOST, /* hostname without wildcard */
    MODEL_STR_HEADER_NAME,  /* RFC 9110 token, <= 256 */
    MODEL_STR_TOKEN,        /* the same syntax, for cookie names and methods */
    MODEL_STR_HEADER_VALUE, /* no CR, LF or NUL, <= 4096 */
    MODEL_STR_IANA_SVC,     /* IANA service name: named targetPorts */
    MODEL_STR_LABEL_KEY,    /* Kubernetes label/annotation key: [prefix/]name */
    MODEL_STR_LABEL_VALUE,  /* Kubernetes label value, may be "" */
};

/* Arena: zeroed allocations freed together. */
struct model_arena *model_arena_new(void);
void model_arena_free(struct model_arena *a);
/* n * size zeroed bytes (n may be 0: a non-NULL pointer); NULL + "out of memory" error. */
void *model_alloc(struct model_ctx *c, size_t n, size_t size);
/* A copy of s in the arena; NULL + error on allocation failure. */
const char *model_strdup(struct model_ctx *c, const char *s);

/* Formats "src: document N (Kind ns/name): path: <fmt>" into c->err; returns -1. */
int model_fail(struct model_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same with key pushed onto the path first. */
int model_fail_at(struct model_ctx *c, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "want <what>, got <description of v>" at the current path; returns -1. */
int model_want(struct model_ctx *c, const cJSON *v, const char *what);

size_t model_path_key(struct model_ctx *c, const char *key);
size_t model_path_idx(struct model_ctx *c, size_t i);
void model_path_pop(struct model_ctx *c, size_t mark);

/* A short description of v for "got ...": -5, "abc", true, null, a mapping, a list. */
const char *model_describe(const cJSON *v, char *buf, size_t len);

/* obj[key], or NULL when absent or null. */
const cJSON *model_get(const cJSON *obj, const char *key);
/* v must be a mapping whose keys all appear in allowed (NULL-terminated); an unknown key
 * is an error naming it. */
int model_check_object(struct model_ctx *c, const cJSON *v, const char *const *allowed);
/* Checks s against syntax; on failure reports "want <syntax>, got "s"" at the path. */
int model_check_str(struct model_ctx *c, const cJSON *v, const char *s, enum model_str syntax);
bool model_is_str(const char *s, enum model_str syntax);

/* Typed getters for obj[key]. Absent (or null): required => error "required", else the
 * default is stored. Strings are copied to the arena; *out = NULL when absent. */
int model_get_str(struct model_ctx *c, const cJSON *obj, const char *key, bool required,
                  enum model_str syntax, const char **out);
int model_get_int(struct model_ctx *c, const cJSON *obj, const char *key, bool required,
                  long long min, long long max, long long def, long long *out);
int model_get_bool(struct model_ctx *c, const cJSON *obj, const char *key, bool def, bool *out);
/* names is NULL-terminated; *out is the index; def < 0 means required. */
int model_get_enum(struct model_ctx *c, const cJSON *obj, const char *key, const char *const *names,
                   int def, int *out);
/* A GEP-2257 duration in ms; def is stored when absent (may be MODEL_DURATION_UNSET). */
int model_get_duration(struct model_ctx *c, const cJSON *obj, const char *key, int64_t def,
                       int64_t *out_ms);
/* A list of min..max entries; *out = NULL and *n = 0 when absent and not required. */
int model_get_list(struct model_ctx *c, const cJSON *obj, const char *key, bool required,
                   size_t min, size_t max, const cJSON **out, size_t *n);
/* A list of strings of the given syntax, duplicates refused when unique. */
int model_get_str_list(struct model_ctx *c, const cJSON *obj, const char *key, size_t max,
                       enum model_str syntax, bool unique, const char ***out, size_t *n);
/* A mapping of string to string, keys and values of the given syntaxes. */
int model_get_str_map(struct model_ctx *c, const cJSON *obj, const char *key,
                      enum model_str key_syntax, enum model_str value_syntax, struct model_kv **out,
                      size_t *n);
/* Pushes key on the path and checks the value is a mapping with allowed keys; returns
 * the value (NULL when absent) through out, and the mark to pop in *mark. */
int model_enter(struct model_ctx *c, const cJSON *obj, const char *key, bool required,
                const char *const *allowed, const cJSON **out, size_t *mark);

/* A list of up to 32 distinct HTTP status codes in 400..599. */
int model_get_codes(struct model_ctx *c, const cJSON *obj, const char *key, uint16_t **out,
                    size_t *n);

/* Parses a GEP-2257 duration ("1h2m3s", "500ms", "0s"); -1 if malformed. */
int model_parse_duration(const char *s, int64_t *out_ms);
/* Parses an IP literal. */
bool model_parse_ip(const char *s, struct model_ip *ip);
/* A pcre2 pattern that must compile; reports pcre2's message and offset. */
int model_check_regex(struct model_ctx *c, const char *pattern);

/* metadata: name (syntax name_syntax), namespace, labels, annotations, creationTimestamp.
 * Sets c->obj_ns/obj_name. */
int model_parse_meta(struct model_ctx *c, const cJSON *doc, enum model_str name_syntax,
                     struct model_meta *m);
/* A targetRef {group: "", kind: Service, name}; stores the name. */
int model_parse_service_ref(struct model_ctx *c, const cJSON *obj, const char *key, bool required,
                            const char **name);

/* Per kind: validates doc (apiVersion/kind already checked) into *out. */
int model_parse_service(struct model_ctx *c, const cJSON *doc, struct model_service *out);
int model_parse_slice(struct model_ctx *c, const cJSON *doc, struct model_slice *out);
int model_parse_route(struct model_ctx *c, const cJSON *doc, struct model_route *out);
int model_parse_dest_policy(struct model_ctx *c, const cJSON *doc,
                            struct model_destination_policy *out);
int model_parse_authz(struct model_ctx *c, const cJSON *doc, struct model_authz_policy *out);
int model_parse_peer_authn(struct model_ctx *c, const cJSON *doc, struct model_peer_authn *out);

/* Shared enum tables. */
extern const char *const model_method_names[];   /* index = enum model_method; [0] "" */
extern const char *const model_protocol_names[]; /* TCP UDP SCTP */

#define MODEL_TRY(x)                                                                               \
    do {                                                                                           \
        if ((x) < 0)                                                                               \
            return -1;                                                                             \
    } while (0)

#endif
