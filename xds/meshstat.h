/*
 * meshstat.h - golden metrics per Service from the sidecars' Istio-style metrics, for
 * `ringmeshctl stat`: success rate, requests per second, latency percentiles, open TCP
 * connections. Pure code: scraped texts go in (the caller does the HTTP), rows come out.
 *
 * A snapshot (struct meshstat_snap) is one round of scrapes: each sidecar's text is
 * folded into per-(sidecar, reporter, Service) sums of the families it reads, with the
 * prefix ringmesh_ or istio_ (CONVENTIONS.md section 3):
 *   *_requests_total                       requests, and those that succeeded: not 5xx,
 *                                          and grpc_response_status "0", "" or absent
 *   *_request_duration_milliseconds_bucket per-le sums (the families' _sum and _count are
 *                                          not needed)
 *   *_tcp_connections_{opened,closed}_total, *_tcp_{sent,received}_bytes_total
 * Everything else is skipped. The Service of a series is destination_service_name and
 * destination_service_namespace, else the first two labels of destination_service (the
 * FQDN), else destination_canonical_service / destination_workload and
 * destination_workload_namespace; a series with none of these is not per Service (a
 * process total) and is skipped. A series whose every label is "overflow" (the sidecar's
 * cardinality cap) counts under the Service "(overflow)", namespace "-". A series without
 * a reporter label counts as reporter="destination".
 *
 * meshstat_rows() compares two snapshots: per Service, the reporter="destination" sums
 * (what the servers' sidecars saw) when any sidecar reported it so, else
 * reporter="source" (the Service has no sidecar of its own). Counter deltas are taken per
 * sidecar and entry (a counter that went down restarted: its delta is its value); a
 * sidecar missing from either round is left out of the deltas. Latency quantiles come from
 * the summed bucket deltas (sidecars are assumed to share a bucket layout: a bound one of
 * them lacks gets nothing from it). Open TCP connections are opened - closed of the newer
 * round, not a delta.
 *
 * Ownership: a snapshot owns its entries and their strings; rows own theirs
 * (meshstat_rows_free). Not thread-safe; no I/O; memory bounded by MESHSTAT_MAX_ENTRIES
 * and MESHSTAT_MAX_BUCKETS.
 */
#ifndef RINGMESH_MESHSTAT_H
#define RINGMESH_MESHSTAT_H

#include <stdbool.h>
#include <stddef.h>

#define MESHSTAT_MAX_BUCKETS  40    /* distinct le bounds per entry */
#define MESHSTAT_MAX_ENTRIES  65536 /* (sidecar, reporter, Service) triples per snapshot */
#define MESHSTAT_MAX_SIDECARS 4096
#define MESHSTAT_OVERFLOW     "(overflow)"

enum meshstat_reporter {
    MESHSTAT_DESTINATION, /* reporter="destination" (or none): the server's sidecar */
    MESHSTAT_SOURCE,      /* reporter="source": the client's sidecar */
    MESHSTAT_OVERFLOWED,  /* the cardinality cap's series */
};

const char *meshstat_reporter_str(enum meshstat_reporter r);

struct meshstat_entry {
    int sidecar; /* the caller's index of the sidecar scraped */
    enum meshstat_reporter reporter;
    char *ns, *name, *fqdn; /* owned; fqdn "" when no series named one */
    bool has_req, has_hist, has_tcp;
    double requests, success;
    int n_buckets;
    double le[MESHSTAT_MAX_BUCKETS], bucket[MESHSTAT_MAX_BUCKETS]; /* le ascending */
    double tcp_opened, tcp_closed, tcp_sent, tcp_received;
};

struct meshstat_snap {
    struct meshstat_entry *e; /* owned */
    size_t n, cap;
    bool scraped[MESHSTAT_MAX_SIDECARS]; /* sidecar i's text was added */
    size_t last;                         /* the entry the previous sample went to */
};

void meshstat_snap_init(struct meshstat_snap *s);
void meshstat_snap_free(struct meshstat_snap *s);

/*
 * Folds sidecar's (0 <= sidecar < MESHSTAT_MAX_SIDECARS) scraped text into s. 0, or a
 * negative errno with err naming the line and what was wrong (a parse error, too many
 * Services or buckets); on an error nothing of this text stays in s, and the sidecar
 * counts as not scraped.
 */
int meshstat_snap_add(struct meshstat_snap *s, int sidecar, const char *text, size_t len, char *err,
                      size_t errlen);

/* One Service's golden metrics; NaN where there is no data. */
struct meshstat_row {
    char *ns, *name, *fqdn; /* owned */
    enum meshstat_reporter reporter;
    int meshed;      /* sidecars that reported it as the destination in cur */
    double requests; /* in the interval */
    double success;  /* share 0..1 of requests that succeeded; NaN without requests */
    double rps;      /* requests / interval */
    double p50_ms, p95_ms, p99_ms;
    double tcp_open;                       /* NaN without TCP series */
    double tcp_sent_bps, tcp_received_bps; /* bytes per second; NaN without TCP series */
};

/* Filter: name NAME, NAME.NS or the FQDN (NULL: any); ns (NULL: any). */
struct meshstat_filter {
    const char *service, *ns;
};

/*
 * The rows from prev to cur, interval_s apart (> 0), sorted by namespace then name,
 * filtered. *out is malloc'd (NULL when there are none); returns the count, or -ENOMEM.
 */
int meshstat_rows(const struct meshstat_snap *prev, const struct meshstat_snap *cur,
                  double interval_s, const struct meshstat_filter *f, struct meshstat_row **out);
void meshstat_rows_free(struct meshstat_row *rows, int n);

/* true when SERVICE (NAME, NAME.NS or an FQDN) names the row. */
bool meshstat_row_matches(const struct meshstat_row *r, const char *service);

#endif
