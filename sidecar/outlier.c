/*
 * outlier.c - consecutive-failure outlier detection (see outlier.h for the semantics).
 */
#include "outlier.h"

#include <stddef.h>

/* Sidecar objects are built without -Ixds; only the policy struct is read here. */
#include "model.h"

void outlier_config_default(struct outlier_config *c)
{
    c->enabled = true;
    c->consecutive_5xx = OUTLIER_DEFAULT_CONSECUTIVE_5XX;
    c->consecutive_gateway = OUTLIER_DEFAULT_CONSECUTIVE_GATEWAY;
    c->interval_ms = OUTLIER_DEFAULT_INTERVAL_MS;
    c->base_ejection_ms = OUTLIER_DEFAULT_BASE_EJECTION_MS;
    c->max_ejection_ms = OUTLIER_DEFAULT_MAX_EJECTION_MS;
    c->max_ejection_percent = OUTLIER_DEFAULT_MAX_PERCENT;
}

void outlier_config_from_model(struct outlier_config *c, const struct model_destination_policy *p)
{
    outlier_config_default(c);
    if (!p || !p->has_outlier) {
        c->enabled = false;
        return;
    }
    c->consecutive_5xx = p->consecutive_5xx > 0 ? (uint32_t)p->consecutive_5xx : 0;
    c->consecutive_gateway = p->consecutive_gateway > 0 ? (uint32_t)p->consecutive_gateway : 0;
    c->interval_ms = p->outlier_interval_ms;
    c->base_ejection_ms = p->base_ejection_ms;
    c->max_ejection_percent = p->max_ejection_percent > 0 ? (uint32_t)p->max_ejection_percent : 0;
}

enum outlier_result outlier_classify_status(int status)
{
    if (status < 500 || status > 599)
        return OUTLIER_SUCCESS;
    if (status >= 502 && status <= 504)
        return OUTLIER_GATEWAY;
    return OUTLIER_ERROR_5XX;
}

void outlier_init(struct outlier *o, const struct outlier_config *cfg)
{
    *o = (struct outlier){.cfg = *cfg};
}

void outlier_set_config(struct outlier *o, const struct outlier_config *cfg)
{
    o->cfg = *cfg;
}

void outlier_set_membership(struct outlier *o, uint32_t n_hosts, uint32_t n_ejected)
{
    o->n_hosts = n_hosts;
    o->n_ejected = n_ejected;
}

static int64_t ejection_ms(const struct outlier_config *c, uint32_t multiplier)
{
    int64_t base = c->base_ejection_ms > 0 ? c->base_ejection_ms : 1;
    int64_t cap = c->max_ejection_ms > base ? c->max_ejection_ms : base;
    /* multiplier may keep growing on a flapping host; stop multiplying once past the cap
     * so the product never overflows. */
    if (multiplier == 0)
        multiplier = 1;
    if ((int64_t)multiplier > cap / base)
        return cap;
    return base * multiplier;
}

static bool under_ceiling(const struct outlier *o)
{
    /* (ejected + 1) / hosts <= max%, in integers. */
    return (uint64_t)(o->n_ejected + 1) * 100 <= (uint64_t)o->cfg.max_ejection_percent * o->n_hosts;
}

enum outlier_event outlier_report(struct outlier *o, struct outlier_host *h, enum outlier_result r,
                                  int64_t now_ms)
{
    if (h->ejected)
        return OUTLIER_EV_NONE;
    if (r == OUTLIER_SUCCESS) {
        h->consecutive_5xx = 0;
        h->consecutive_gateway = 0;
        return OUTLIER_EV_NONE;
    }
    h->consecutive_5xx++;
    if (r == OUTLIER_GATEWAY)
        h->consecutive_gateway++;
    else
        h->consecutive_gateway = 0;
    if (!o->cfg.enabled)
        return OUTLIER_EV_NONE;

    bool by_5xx = o->cfg.consecutive_5xx && h->consecutive_5xx >= o->cfg.consecutive_5xx;
    bool by_gw = o->cfg.consecutive_gateway && h->consecutive_gateway >= o->cfg.consecutive_gateway;
    if (!by_5xx && !by_gw)
        return OUTLIER_EV_NONE;

    h->consecutive_5xx = 0;
    h->consecutive_gateway = 0;
    if (!under_ceiling(o)) {
        o->stats.skipped_max_percent++;
        return OUTLIER_EV_SKIPPED;
    }
    h->multiplier++;
    h->ejected = true;
    h->ejected_at_ms = now_ms;
    h->eject_until_ms = now_ms + ejection_ms(&o->cfg, h->multiplier);
    o->n_ejected++;
    o->stats.ejections++;
    /* Both detectors may fire on the same report; count the gateway one, the more
     * specific. */
    if (by_gw)
        o->stats.ejections_gateway++;
    else
        o->stats.ejections_5xx++;
    return OUTLIER_EV_EJECTED;
}

bool outlier_tick(struct outlier *o, struct outlier_host *h, int64_t now_ms)
{
    if (h->ejected) {
        if (now_ms < h->eject_until_ms)
            return false;
        h->ejected = false;
        h->consecutive_5xx = 0;
        h->consecutive_gateway = 0;
        h->decay_from_ms = now_ms;
        if (o->n_ejected)
            o->n_ejected--;
        o->stats.unejections++;
        return true;
    }
    if (h->multiplier && o->cfg.interval_ms > 0 &&
        now_ms - h->decay_from_ms >= o->cfg.interval_ms) {
        int64_t steps = (now_ms - h->decay_from_ms) / o->cfg.interval_ms;
        h->multiplier = steps >= h->multiplier ? 0 : h->multiplier - (uint32_t)steps;
        h->decay_from_ms += steps * o->cfg.interval_ms;
    }
    return false;
}

int64_t outlier_next_ms(const struct outlier *o, const struct outlier_host *h)
{
    if (h->ejected)
        return h->eject_until_ms;
    if (h->multiplier && o->cfg.interval_ms > 0)
        return h->decay_from_ms + o->cfg.interval_ms;
    return INT64_MAX;
}

void outlier_host_reset(struct outlier_host *h)
{
    *h = (struct outlier_host){0};
}
