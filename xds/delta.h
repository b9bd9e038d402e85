/*
 * delta.h - the sidecar's side of the delta xDS protocol (xds/PROTOCOL.md) as pure
 * functions: the resources held per type, what one server response does to them, the
 * ACK/NACK line that answers it, the subscribe/resume lines, and the --xds-cache file.
 * No sockets, no threads, no clock: xds/client.c moves the lines; tests feed them.
 *
 * A response is applied in two steps so that nothing changes unless the whole candidate
 * set compiles: xds_delta_handle() builds the candidate (the held set of the response's
 * type with its resources replaced/added and removed_resources dropped), renders every
 * held type with the candidate as one model List, hands it to the caller's apply callback
 * (the sidecar compiles it with config_from_buffer(), the --config path, and publishes it
 * once warm) and only if that succeeds commits the candidate. Otherwise the answer is a
 * NACK with the callback's error (the model's, naming document and field) and the held
 * set stays as it was.
 *
 * Ownership: struct xds_delta owns its cJSON trees; struct xds_delta_result owns its
 * reply line. Not thread-safe: one thread (the client's) uses a state at a time.
 */
#ifndef RINGMESH_XDS_DELTA_H
#define RINGMESH_XDS_DELTA_H

#include <stdbool.h>
#include <stddef.h>

struct cJSON;

/* The six type URLs, in the order the server sends them on a new stream. */
enum xds_type {
    XDS_T_SERVICE,
    XDS_T_DEST_POLICY,
    XDS_T_SLICE,
    XDS_T_ROUTE,
    XDS_T_AUTHZ,
    XDS_T_PEER_AUTHN,
    XDS_T_COUNT
};

#define XDS_VERSION_MAX 128 /* nonce and system_version_info kept up to this many bytes */
#define XDS_ERROR_MAX   1024

/* "v1/Service", ...; NULL out of range. */
const char *xds_type_url(int type);
/* The index of a type URL, or -1 when it is not one of the six. */
int xds_type_index(const char *type_url);

struct xds_delta {
    struct cJSON *held[XDS_T_COUNT]; /* owned: {"<ns>/<name>": {"version":V,"resource":{...}}} */
    bool received[XDS_T_COUNT];      /* the type had an accepted response (or came from cache) */
    char acked_version[XDS_T_COUNT][XDS_VERSION_MAX]; /* system_version_info last ACKed */
    char acked_nonce[XDS_T_COUNT][XDS_VERSION_MAX];
};

/* Empty state: nothing held, nothing received. 0 or -ENOMEM. */
int xds_delta_init(struct xds_delta *d);
void xds_delta_free(struct xds_delta *d);
/* Every type has had its first response (or the state came from the cache): a snapshot
 * may be published. */
bool xds_delta_is_warm(const struct xds_delta *d);
/* How many resources of a type are held. */
size_t xds_delta_count(const struct xds_delta *d, int type);

/* Called with the whole candidate model (a JSON {"kind":"List","items":[...]}, every held
 * type in type order) to compile it and, when warm, publish it. 0 accepts; anything else
 * rejects, with the reason in err (NUL-terminated). */
typedef int (*xds_apply_cb)(void *arg, const char *model, size_t len, bool warm, char *err,
                            size_t errlen);

enum xds_verdict {
    XDS_ACK,   /* applied; reply is the ACK */
    XDS_NACK,  /* rejected, nothing changed; reply is the NACK, error says why */
    XDS_ERROR, /* not a response that can be answered (bad JSON, no nonce, an error line):
                  the stream is broken; error says why, reply is NULL */
};

struct xds_delta_result {
    enum xds_verdict verdict;
    int type;                         /* -1 when the type URL was not one of the six */
    char nonce[XDS_VERSION_MAX];
    char system_version[XDS_VERSION_MAX];
    char error[XDS_ERROR_MAX];        /* NACK / ERROR: why */
    char *reply;                      /* owned: the line to send, ending in '\n'; or NULL */
    size_t reply_len;
    size_t n_updated, n_removed;      /* what the response carried */
};

/*
 * Handles one response line line[0..len) (no newline needed; need not be NUL-terminated).
 * Rules (PROTOCOL.md, "Client rules"):
 * - a line that is not a JSON object, or has no nonce, or is {"error":...} -> XDS_ERROR;
 * - a type URL not among the six -> NACK naming it, nothing changes;
 * - a resource without a name, with a name twice in one response, in both resources and
 *   removed_resources, without a "resource" object, of another kind than the type URL, or
 *   whose metadata does not give back its name (<namespace>/<name>) -> NACK;
 * - otherwise the candidate set goes to apply(); its error becomes the NACK's message;
 * - removing a name that is not held is not an error (it is already gone).
 * Always fills res (free it with xds_delta_result_free()). Returns res->verdict, or
 * -ENOMEM.
 */
int xds_delta_handle(struct xds_delta *d, const char *line, size_t len, xds_apply_cb apply,
                     void *arg, struct xds_delta_result *res);
void xds_delta_result_free(struct xds_delta_result *res);

/* The model List of everything held (for the cache, /config_dump, a restart), as
 * compact JSON; NULL when out of memory. Caller frees. */
char *xds_delta_render(const struct xds_delta *d, size_t *len);

/*
 * The line subscribing to a type on a new stream, ending in '\n': type_url,
 * resource_names_subscribe ["*"], node (node_json, a JSON object, when not NULL: the
 * stream's first line only) and, when resume is true and something of the type is held,
 * initial_resource_versions {name: version}. NULL when out of memory or node_json is not
 * a JSON object. Caller frees.
 */
char *xds_delta_subscribe_line(const struct xds_delta *d, int type, const char *node_json,
                               bool resume, size_t *len);

/*
 * The --xds-cache file: {"ringmesh_xds_cache":1,"types":{T:{name:{version,resource}}}}.
 * xds_delta_cache() renders the held state (caller frees); xds_delta_load_cache()
 * replaces d's held state with buf's and marks every type received (a cache is only
 * written from a warm state), returning 0 or -EINVAL with err naming what was wrong.
 * The caller still compiles xds_delta_render() before serving it.
 */
char *xds_delta_cache(const struct xds_delta *d, size_t *len);
int xds_delta_load_cache(struct xds_delta *d, const char *buf, size_t len, char *err,
                         size_t errlen);

#endif
