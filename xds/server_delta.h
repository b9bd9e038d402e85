/*
 * server_delta.h - the server side: the delta xDS state of one type on one stream (xds/PROTOCOL.md), as pure code:
 * what the client subscribed to, what it holds (name -> version: its ACKed state plus what
 * is in flight), the one outstanding nonce, the last NACK; and, given the store, what the
 * next response carries.
 *
 * The next response is computed, not queued: it is the difference between the store and
 * what the client holds, so changes made while a response is unACKed coalesce by
 * construction and a slow client costs one map of names per type, never a queue of copies.
 * Rules (CONVENTIONS.md section 4, delta): only changed or new objects are sent; names the
 * client holds that no longer exist go in removed_resources; an explicitly subscribed name
 * that does not exist comes back in removed_resources once; the first response of a type is
 * sent even when empty (the client's warming waits for it); a NACKed response is not resent
 * (the client's held state is taken to be what was sent, and the next real change goes
 * out); an ACK or NACK whose nonce is not the outstanding one is stale and ignored, but the
 * subscription changes on its line are honoured.
 *
 * One thread (the server's loop). Ownership: a struct delta_type owns its maps and strings;
 * a struct delta_resp borrows the store's objects (use it before the store changes) and owns
 * its removed names.
 */
#ifndef RINGMESH_SERVER_DELTA_H
#define RINGMESH_SERVER_DELTA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* A string -> u64 map (open addressing). Keys owned. */
struct delta_map {
    char **keys;
    uint64_t *vals;
    size_t n, cap;
};

#define DELTA_ABSENT 0 /* held value: the client was told the name does not exist */

struct delta_nack {
    uint64_t nonce; /* 0 = never NACKed */
    char *message;  /* owned */
    int64_t at_s;   /* seconds since the epoch */
};

struct delta_type {
    enum model_kind kind;
    bool subscribed;        /* its first request arrived */
    bool wildcard;          /* "*" (or an empty first subscribe) */
    bool sent_first;        /* its first response went out */
    struct delta_map names; /* explicit subscriptions */
    struct delta_map held;  /* what the client holds: name -> version or DELTA_ABSENT */
    uint64_t pending_nonce; /* the unACKed response, 0 = none */
    uint64_t pending_sysver;
    uint64_t acked_sysver; /* system_version_info of the last ACKed response; 0 = none */
    uint64_t acks, nacks;
    struct delta_nack last_nack;
    /* the store's kind_rev when delta_next last looked (not while a response was
     * pending), and whether a request changed what the client wants since: with neither
     * moved there is nothing new to send and the type is skipped (delta_due) */
    uint64_t seen_rev;
    bool dirty;
};

/* One request line of this type, already parsed (borrowed strings). */
struct delta_req {
    const char *const *subscribe;
    size_t n_subscribe;
    const char *const *unsubscribe;
    size_t n_unsubscribe;
    const char *const *initial_names; /* initial_resource_versions */
    const char *const *initial_versions;
    size_t n_initial;
    bool has_nonce;
    uint64_t nonce;      /* response_nonce (a nonce we never sent parses as 0: stale) */
    const char *error;   /* error_detail.message when NACKing (non-NULL = NACK) */
};

enum delta_ack { DELTA_NONE, DELTA_ACK, DELTA_NACK, DELTA_STALE };

void delta_type_init(struct delta_type *t, enum model_kind kind);
struct delta_resp;
/* Whether delta_next may have something to send: false when nothing is pending, the first
 * response went out, no request changed the subscription and the store's revision of this
 * kind is the one last looked at. Then calls delta_next, and marks what it saw. */
int delta_next_if_due(struct delta_type *t, const struct store *s, struct delta_resp *out);
void delta_type_free(struct delta_type *t);

/* Applies one request line at now_s. Returns 0 and what its nonce meant in *ack, or
 * -EPROTO with err filled (initial_resource_versions on a type already subscribed). */
int delta_request(struct delta_type *t, const struct delta_req *r, int64_t now_s,
                  enum delta_ack *ack, char *err, size_t errlen);

/* The next response. */
struct delta_resp {
    struct store_obj **res; /* borrowed from the store: changed or new, in store order */
    size_t n_res;
    char **removed; /* owned */
    size_t n_removed;
};

/* Whether a response is due now (subscribed, nothing outstanding, and a difference or the
 * first response); fills *out if so (release with delta_resp_free). -ENOMEM on allocation
 * failure. Returns 1 due, 0 not due. */
int delta_next(const struct delta_type *t, const struct store *s, struct delta_resp *out);

/* The response went out with nonce (and the store's revision sysver): the client now holds
 * it and it is outstanding. 0 or -ENOMEM. */
int delta_sent(struct delta_type *t, const struct delta_resp *r, uint64_t nonce,
               uint64_t sysver);

void delta_resp_free(struct delta_resp *r);

/* The response as one JSON line, '\n'-terminated, malloc'd (NULL on no memory); *len its
 * bytes. */
char *delta_resp_json(const struct delta_resp *r, enum model_kind kind, uint64_t nonce,
                      uint64_t sysver, size_t *len);

/* Map helpers (exposed for tests). Get returns whether the key is present. */
bool delta_map_get(const struct delta_map *m, const char *key, uint64_t *val);
int delta_map_put(struct delta_map *m, const char *key, uint64_t val);
void delta_map_del(struct delta_map *m, const char *key);
void delta_map_free(struct delta_map *m);

#endif
