/*
 * outlier_test.c - sidecar/outlier: consecutive 5xx and gateway detectors, ejection and
 * un-ejection timing, ejection time growing with repeats and decaying, the max ejection
 * percentage (skipped and counted), config from the model.
 */
#include <stdint.h>
#include <string.h>

#include "model.h"
#include "outlier.h"
#include "tap.h"

static struct outlier_config cfg(uint32_t c5xx, uint32_t cgw, uint32_t max_pct)
{
    struct outlier_config c;
    outlier_config_default(&c);
    c.consecutive_5xx = c5xx;
    c.consecutive_gateway = cgw;
    c.max_ejection_percent = max_pct;
    return c;
}

/* n reports of r on h at now; returns the last event. */
static enum outlier_event report_n(struct outlier *o, struct outlier_host *h, enum outlier_result r,
                                   int n, int64_t now)
{
    enum outlier_event ev = OUTLIER_EV_NONE;
    for (int i = 0; i < n; i++)
        ev = outlier_report(o, h, r, now);
    return ev;
}

static void test_config(void)
{
    struct outlier_config c;
    outlier_config_default(&c);
    ok(c.enabled, "default config is enabled");
    is_int(c.consecutive_5xx, 5, "default consecutive5xx 5");
    is_int(c.consecutive_gateway, 0, "default consecutiveGatewayErrors 0 (off)");
    is_int(c.interval_ms, 10000, "default interval 10 s");
    is_int(c.base_ejection_ms, 30000, "default baseEjectionTime 30 s");
    is_int(c.max_ejection_ms, 300000, "default max ejection 300 s (Envoy)");
    is_int(c.max_ejection_percent, 10, "default maxEjectionPercent 10");

    outlier_config_from_model(&c, NULL);
    ok(!c.enabled, "no policy: detection off");

    struct model_destination_policy p;
    memset(&p, 0, sizeof(p));
    p.has_outlier = false;
    outlier_config_from_model(&c, &p);
    ok(!c.enabled, "policy without outlierDetection: off");
    p.has_outlier = true;
    p.consecutive_5xx = 7;
    p.consecutive_gateway = 3;
    p.outlier_interval_ms = 5000;
    p.base_ejection_ms = 1000;
    p.max_ejection_percent = 40;
    outlier_config_from_model(&c, &p);
    ok(c.enabled, "policy with outlierDetection: on");
    is_int(c.consecutive_5xx, 7, "consecutive5xx from the model");
    is_int(c.consecutive_gateway, 3, "consecutiveGatewayErrors from the model");
    is_int(c.interval_ms, 5000, "interval from the model");
    is_int(c.base_ejection_ms, 1000, "baseEjectionTime from the model");
    is_int(c.max_ejection_percent, 40, "maxEjectionPercent from the model");
}

static void test_classify(void)
{
    static const struct {
        int status;
        enum outlier_result want;
    } t[] = {
        {200, OUTLIER_SUCCESS},   {204, OUTLIER_SUCCESS},   {404, OUTLIER_SUCCESS},
        {429, OUTLIER_SUCCESS},   {499, OUTLIER_SUCCESS},   {500, OUTLIER_ERROR_5XX},
        {501, OUTLIER_ERROR_5XX}, {502, OUTLIER_GATEWAY},   {503, OUTLIER_GATEWAY},
        {504, OUTLIER_GATEWAY},   {505, OUTLIER_ERROR_5XX}, {599, OUTLIER_ERROR_5XX},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        ok(outlier_classify_status(t[i].status) == t[i].want, "status %d classified", t[i].status);
}

static void test_consecutive_5xx(void)
{
    struct outlier_config c = cfg(5, 0, 100);
    struct outlier o;
    struct outlier_host h = {0};
    outlier_init(&o, &c);
    outlier_set_membership(&o, 10, 0);

    ok(report_n(&o, &h, OUTLIER_ERROR_5XX, 4, 1000) == OUTLIER_EV_NONE, "4 x 500: not ejected");
    is_int(h.consecutive_5xx, 4, "4 consecutive counted");
    outlier_report(&o, &h, OUTLIER_SUCCESS, 1000);
    is_int(h.consecutive_5xx, 0, "a success resets the count");
    ok(report_n(&o, &h, OUTLIER_ERROR_5XX, 4, 1000) == OUTLIER_EV_NONE, "4 more: not ejected");
    ok(outlier_report(&o, &h, OUTLIER_GATEWAY, 1000) == OUTLIER_EV_EJECTED,
       "the 5th 5xx (a 503 counts too) ejects");
    ok(h.ejected, "host is ejected");
    is_int(h.eject_until_ms, 1000 + 30000, "first ejection lasts baseEjectionTime");
    is_int(o.n_ejected, 1, "one ejected");
    is_int(o.stats.ejections, 1, "ejections counted");
    is_int(o.stats.ejections_5xx, 1, "counted as a consecutive-5xx ejection");
    is_int(h.consecutive_5xx, 0, "counters reset on ejection");

    ok(report_n(&o, &h, OUTLIER_ERROR_5XX, 20, 2000) == OUTLIER_EV_NONE,
       "reports while ejected are ignored");
    is_int(o.stats.ejections, 1, "no second ejection while ejected");

    ok(!outlier_tick(&o, &h, 30999), "still ejected 1 ms before the end");
    is_int(outlier_next_ms(&o, &h), 31000, "next event is the un-ejection");
    ok(outlier_tick(&o, &h, 31000), "un-ejected when the time has passed");
    ok(!h.ejected, "host healthy again");
    is_int(o.n_ejected, 0, "none ejected");
    is_int(o.stats.unejections, 1, "un-ejections counted");
    ok(!outlier_tick(&o, &h, 31001), "a second tick does nothing");

    /* local failures count as 5xx */
    outlier_host_reset(&h);
    ok(report_n(&o, &h, OUTLIER_GATEWAY, 5, 50000) == OUTLIER_EV_EJECTED,
       "5 connect failures/resets (gateway results) eject under consecutive5xx");
}

static void test_consecutive_gateway(void)
{
    struct outlier_config c = cfg(0, 3, 100);
    struct outlier o;
    struct outlier_host h = {0};
    outlier_init(&o, &c);
    outlier_set_membership(&o, 4, 0);

    report_n(&o, &h, OUTLIER_GATEWAY, 2, 0);
    outlier_report(&o, &h, OUTLIER_ERROR_5XX, 0);
    is_int(h.consecutive_gateway, 0, "a non-gateway 5xx resets the gateway count");
    ok(report_n(&o, &h, OUTLIER_ERROR_5XX, 50, 0) == OUTLIER_EV_NONE,
       "consecutive5xx 0 disables that detector");
    ok(report_n(&o, &h, OUTLIER_GATEWAY, 2, 0) == OUTLIER_EV_NONE, "2 gateway errors: no");
    ok(outlier_report(&o, &h, OUTLIER_GATEWAY, 0) == OUTLIER_EV_EJECTED,
       "3rd gateway error ejects");
    is_int(o.stats.ejections_gateway, 1, "counted as a gateway ejection");
    is_int(o.stats.ejections_5xx, 0, "not as a 5xx ejection");

    struct outlier_config off = cfg(0, 0, 100);
    struct outlier_host h2 = {0};
    outlier_init(&o, &off);
    outlier_set_membership(&o, 4, 0);
    ok(report_n(&o, &h2, OUTLIER_GATEWAY, 1000, 0) == OUTLIER_EV_NONE,
       "both detectors 0: never ejects");
    off = cfg(1, 1, 100);
    off.enabled = false;
    outlier_init(&o, &off);
    outlier_set_membership(&o, 4, 0);
    ok(report_n(&o, &h2, OUTLIER_GATEWAY, 10, 0) == OUTLIER_EV_NONE, "disabled: never ejects");
}

static void test_growing_and_decay(void)
{
    struct outlier_config c = cfg(1, 0, 100);
    struct outlier o;
    struct outlier_host h = {0};
    outlier_init(&o, &c);
    outlier_set_membership(&o, 2, 0);
    int64_t now = 0;
    int64_t want[] = {30000, 60000, 90000, 120000};
    for (int i = 0; i < 4; i++) {
        ok(outlier_report(&o, &h, OUTLIER_ERROR_5XX, now) == OUTLIER_EV_EJECTED, "ejection %d",
           i + 1);
        is_int(h.eject_until_ms - now, want[i], "ejection time = base x times ejected");
        now = h.eject_until_ms;
        ok(outlier_tick(&o, &h, now), "un-ejected after it");
    }
    is_int(h.multiplier, 4, "multiplier 4");
    /* healthy for 2.5 intervals: two decay steps */
    outlier_tick(&o, &h, now + 9999);
    is_int(h.multiplier, 4, "no decay before a full interval");
    is_int(outlier_next_ms(&o, &h), now + 10000, "next event is a decay step");
    outlier_tick(&o, &h, now + 25000);
    is_int(h.multiplier, 2, "two intervals healthy: multiplier 4 -> 2");
    outlier_report(&o, &h, OUTLIER_ERROR_5XX, now + 25000);
    is_int(h.eject_until_ms - (now + 25000), 90000, "next ejection: base x 3 after the decay");
    now = h.eject_until_ms;
    outlier_tick(&o, &h, now);
    outlier_tick(&o, &h, now + 10 * 10000);
    is_int(h.multiplier, 0, "long healthy: multiplier decays to 0");
    is_int(outlier_next_ms(&o, &h), INT64_MAX, "nothing pending");
    outlier_report(&o, &h, OUTLIER_ERROR_5XX, now + 100000);
    is_int(h.eject_until_ms - (now + 100000), 30000, "back to the base ejection time");

    /* the cap */
    struct outlier_host h2 = {0};
    now = 0;
    for (int i = 0; i < 15; i++) {
        outlier_report(&o, &h2, OUTLIER_ERROR_5XX, now);
        now = h2.eject_until_ms;
        outlier_tick(&o, &h2, now);
    }
    is_int(h2.multiplier, 15, "15 ejections");
    outlier_report(&o, &h2, OUTLIER_ERROR_5XX, now);
    is_int(h2.eject_until_ms - now, 300000, "ejection time capped at max_ejection_ms");

    /* a huge multiplier never overflows */
    h2.ejected = false;
    h2.multiplier = UINT32_MAX - 1;
    outlier_set_membership(&o, 100, 0);
    ok(outlier_report(&o, &h2, OUTLIER_ERROR_5XX, 0) == OUTLIER_EV_EJECTED, "ejected again");
    is_int(h2.eject_until_ms, 300000, "huge multiplier still capped");
}

static void test_max_percent(void)
{
    struct outlier_config c = cfg(1, 0, 10);
    struct outlier o;
    struct outlier_host h[20];
    memset(h, 0, sizeof(h));
    outlier_init(&o, &c);
    outlier_set_membership(&o, 10, 0);
    ok(outlier_report(&o, &h[0], OUTLIER_ERROR_5XX, 0) == OUTLIER_EV_EJECTED,
       "10 hosts, 10%%: the first ejection is allowed");
    ok(outlier_report(&o, &h[1], OUTLIER_ERROR_5XX, 0) == OUTLIER_EV_SKIPPED,
       "the second would exceed 10%%: skipped");
    ok(!h[1].ejected, "skipped host stays in");
    is_int(o.stats.skipped_max_percent, 1, "skip counted");
    is_int(h[1].consecutive_5xx, 0, "skipped host's counters reset");
    is_int(o.n_ejected, 1, "still one ejected");
    outlier_tick(&o, &h[0], 30000);
    ok(outlier_report(&o, &h[1], OUTLIER_ERROR_5XX, 30000) == OUTLIER_EV_EJECTED,
       "after the first un-ejects, the second may be ejected");

    outlier_init(&o, &c);
    memset(h, 0, sizeof(h));
    outlier_set_membership(&o, 20, 0);
    int ej = 0;
    for (int i = 0; i < 20; i++)
        ej += outlier_report(&o, &h[i], OUTLIER_ERROR_5XX, 0) == OUTLIER_EV_EJECTED;
    is_int(ej, 2, "20 hosts, 10%: exactly 2 ejected");
    is_int(o.stats.skipped_max_percent, 18, "18 skipped");

    outlier_init(&o, &c);
    memset(h, 0, sizeof(h));
    outlier_set_membership(&o, 5, 0);
    ok(outlier_report(&o, &h[0], OUTLIER_ERROR_5XX, 0) == OUTLIER_EV_SKIPPED,
       "5 hosts, 10%%: one ejection would be 20%%, skipped (never exceeded)");

    c = cfg(1, 0, 100);
    outlier_init(&o, &c);
    memset(h, 0, sizeof(h));
    outlier_set_membership(&o, 5, 0);
    ej = 0;
    for (int i = 0; i < 5; i++)
        ej += outlier_report(&o, &h[i], OUTLIER_ERROR_5XX, 0) == OUTLIER_EV_EJECTED;
    is_int(ej, 5, "100%: every host may be ejected");

    c = cfg(1, 0, 0);
    outlier_init(&o, &c);
    memset(h, 0, sizeof(h));
    outlier_set_membership(&o, 100, 0);
    ok(outlier_report(&o, &h[0], OUTLIER_ERROR_5XX, 0) == OUTLIER_EV_SKIPPED, "0%%: never ejects");

    c = cfg(1, 0, 50);
    outlier_init(&o, &c);
    outlier_set_membership(&o, 4, 2);
    memset(h, 0, sizeof(h));
    ok(outlier_report(&o, &h[0], OUTLIER_ERROR_5XX, 0) == OUTLIER_EV_SKIPPED,
       "membership counts given by the caller are honoured (2 of 4 ejected at 50%%)");
}

int main(void)
{
    test_config();
    test_classify();
    test_consecutive_5xx();
    test_consecutive_gateway();
    test_growing_and_decay();
    test_max_percent();
    return tap_done();
}
