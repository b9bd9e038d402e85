/*
 * server_ca.c - POST /ringmesh.ca.v1/Sign (xds/PROTOCOL.md "CA"): the identity comes from
 * the requester, never from the CSR: the verified client certificate on 15012 (renewal),
 * else a bootstrap token (authorization: Bearer, ringmeshctl ca token). Runs on the loop
 * thread; signing is one ECDSA signature, well under a millisecond.
 */
#include "server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "log.h"

static char *answer_error(int *status, int code, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    char *s;
    cJSON_AddStringToObject(o, "error", msg);
    s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    *status = code;
    return s;
}

char *xds_server_ca_sign(struct xds_server *srv, const char *body, size_t len, const char *identity,
                  const char *authorization, int *status)
{
    char id[CA_SPIFFE_ID_MAX + 1], err[512], ns[64], sa[254], when[32], *cert = NULL, *out;
    const cJSON *csr;
    cJSON *req, *resp;
    time_t now = time(NULL);
    struct tm tm;

    if (!srv->ca) {
        srv->m.csr_refused++;
        return answer_error(status, 503, "this server has no CA (start it with --ca-dir)");
    }
    if (identity) {
        snprintf(id, sizeof(id), "%s", identity);
    } else if (authorization && !strncasecmp(authorization, "Bearer ", 7)) {
        if (ca_token_check(srv->token_key, authorization + 7, now, ns, sizeof(ns), sa, sizeof(sa),
                           err, sizeof(err)) ||
            ca_mesh_id(ca_root_trust_domain(srv->ca), ns, sa, id, sizeof(id), err,
                       sizeof(err))) {
            srv->m.csr_refused++;
            log_warn("CA: Sign refused: bootstrap token: %s", err);
            char msg[600];
            snprintf(msg, sizeof(msg), "bootstrap token refused: %s", err);
            return answer_error(status, 403, msg);
        }
    } else {
        srv->m.csr_refused++;
        return answer_error(status, 401,
                            "no identity: present a client certificate (15012) or "
                            "authorization: Bearer <ringmeshctl ca token>");
    }
    req = cJSON_ParseWithLength(body, len);
    csr = cJSON_GetObjectItemCaseSensitive(req, "csr");
    if (!cJSON_IsString(csr)) {
        cJSON_Delete(req);
        srv->m.csr_refused++;
        return answer_error(status, 400, "body: want {\"csr\":\"<PEM CERTIFICATE REQUEST>\"}");
    }
    if (ca_sign_csr(srv->ca, csr->valuestring, strlen(csr->valuestring), id, srv->cert_ttl_s,
                    now, &cert, err, sizeof(err))) {
        cJSON_Delete(req);
        srv->m.csr_refused++;
        log_warn("CA: Sign for %s refused: %s", id, err);
        return answer_error(status, 400, err);
    }
    cJSON_Delete(req);
    time_t exp = now + (time_t)srv->cert_ttl_s;
    gmtime_r(&exp, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    resp = cJSON_CreateObject();
    cJSON_AddStringToObject(resp, "cert_chain", cert);
    cJSON_AddStringToObject(resp, "root_cert", srv->root_pem);
    cJSON_AddStringToObject(resp, "expires", when);
    out = cJSON_PrintUnformatted(resp);
    cJSON_Delete(resp);
    free(cert);
    srv->m.csr_signed++;
    log_info("CA: signed %s until %s (%s)", id, when, identity ? "renewal" : "bootstrap token");
    *status = out ? 200 : 500;
    return out;
}
