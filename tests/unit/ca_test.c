/*
 * ca_test.c - xds/ca: names and SPIFFE IDs (a table of good and bad IDs with their reasons);
 * roots made, written as PEM and loaded back (SEC 1 and PKCS#8 keys; wrong key, wrong curve,
 * a leaf, garbage refused); SVIDs issued and read back by wolfSSL (URI SAN, CA:false, key
 * usages and their criticality, serial, dates to the second, UTCTime and GeneralizedTime),
 * verified by wolfSSL's certificate manager against their root and not another; a TLS 1.3
 * handshake with client certificates between two wolfSSL endpoints on the issued files, each
 * side reading the other's SPIFFE ID; and the peer check on certificates that break the
 * X.509-SVID rules (two URI SANs, a DNS SAN only, a CA, keyCertSign, two SAN extensions,
 * bad URIs), plus every prefix and many corruptions of a good one (no crash under ASan).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/openssl/x509v3.h> /* XKU_*, GEN_URI */
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/random.h>

#include "ca.h"
#include "tap.h"

static char err[512];

static bool has(const char *s, const char *sub)
{
    bool yes = s && strstr(s, sub);
    if (!yes)
        printf("#   \"%s\" lacks \"%s\"\n", s ? s : "(null)", sub);
    return yes;
}

static int count(const char *s, const char *sub)
{
    int n = 0;
    while ((s = strstr(s, sub))) {
        n++;
        s += strlen(sub);
    }
    return n;
}

/* The first certificate of a PEM string as DER (malloc'd). */
static uint8_t *pem_der(const char *pem, size_t *len)
{
    size_t cap = strlen(pem) + 1;
    uint8_t *der = malloc(cap);
    int n = wc_CertPemToDer((const byte *)pem, (int)strlen(pem), der, (int)cap, CERT_TYPE);
    if (n <= 0) {
        free(der);
        return NULL;
    }
    *len = (size_t)n;
    return der;
}

static WOLFSSL_X509 *pem_x509(const char *pem)
{
    return wolfSSL_X509_load_certificate_buffer((const unsigned char *)pem, (int)strlen(pem),
                                                WOLFSSL_FILETYPE_PEM);
}

static time_t asn1_time(const WOLFSSL_ASN1_TIME *t)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (!t || wolfSSL_ASN1_TIME_to_tm(t, &tm) != WOLFSSL_SUCCESS)
        return -1;
    return timegm(&tm);
}

/* ---- names and IDs ------------------------------------------------------------------- */

static void test_names(void)
{
    char id[CA_SPIFFE_ID_MAX + 1], small[20];
    char long_sa[300];

    ok(ca_is_trust_domain("cluster.local"), "trust domain cluster.local");
    ok(ca_is_trust_domain("td"), "trust domain td");
    ok(!ca_is_trust_domain(""), "trust domain: empty refused");
    ok(!ca_is_trust_domain("Cluster.local"), "trust domain: uppercase refused");
    ok(!ca_is_trust_domain("cluster.local:8080"), "trust domain: port refused");
    ok(!ca_is_trust_domain("-x.local"), "trust domain: leading dash refused");
    ok(!ca_is_trust_domain(NULL), "trust domain: NULL refused");

    is_int(ca_mesh_id("cluster.local", "default", "bookinfo", id, sizeof(id), err, sizeof(err)), 0,
           "mesh id: ok");
    is_str(id, "spiffe://cluster.local/ns/default/sa/bookinfo", "mesh id: the Istio form");
    is_int(ca_mesh_id("cluster.local", "shop", "cart.v2", id, sizeof(id), err, sizeof(err)), 0,
           "mesh id: a service account may have dots (DNS subdomain)");
    is_int(ca_mesh_id("cluster.local", "Shop", "cart", id, sizeof(id), err, sizeof(err)), -EINVAL,
           "mesh id: uppercase namespace refused");
    ok(has(err, "namespace \"Shop\""), "mesh id: the error names the namespace");
    is_int(ca_mesh_id("cluster.local", "a.b", "cart", id, sizeof(id), err, sizeof(err)), -EINVAL,
           "mesh id: a namespace is a label, no dots");
    is_int(ca_mesh_id("cluster.local", "shop", "", id, sizeof(id), err, sizeof(err)), -EINVAL,
           "mesh id: empty service account refused");
    ok(has(err, "service account"), "mesh id: the error names the service account");
    memset(long_sa, 'a', 254);
    long_sa[254] = '\0';
    is_int(ca_mesh_id("cluster.local", "shop", long_sa, id, sizeof(id), err, sizeof(err)), -EINVAL,
           "mesh id: 254-character service account refused");
    is_int(ca_mesh_id("CLUSTER", "shop", "cart", id, sizeof(id), err, sizeof(err)), -EINVAL,
           "mesh id: bad trust domain refused");
    ok(has(err, "trust domain"), "mesh id: the error names the trust domain");
    is_int(ca_mesh_id("cluster.local", "shop", "cart", small, sizeof(small), err, sizeof(err)),
           -ENOSPC, "mesh id: too small a buffer is ENOSPC");
}

static void test_spiffe_ids(void)
{
    static const struct {
        const char *id;
        bool want_path;
        const char *why; /* NULL = valid */
    } cases[] = {
        {"spiffe://cluster.local/ns/default/sa/bookinfo", true, NULL},
        {"spiffe://td/a", true, NULL},
        {"spiffe://td/A-Z_0.9", true, NULL},
        {"spiffe://td.with_underscore/x", true, NULL},
        {"spiffe://cluster.local", false, NULL},
        {"spiffe://cluster.local", true, "has no path"},
        {"spiffe://cluster.local/ns/x", false, "has a path"},
        {"https://cluster.local/ns/a/sa/b", true, "not a spiffe URI"},
        {"SPIFFE://cluster.local/ns/a/sa/b", true, "not a spiffe URI"},
        {"spiffe:/cluster.local/x", true, "not a spiffe URI"},
        {"", true, "not a spiffe URI"},
        {"spiffe://", true, "has no trust domain"},
        {"spiffe:///ns/a", true, "has no trust domain"},
        {"spiffe://cluster.local:8443/ns/a", true, "has a port"},
        {"spiffe://user@cluster.local/ns/a", true, "has userinfo"},
        {"spiffe://Cluster.local/ns/a", true, "has an uppercase trust domain"},
        {"spiffe://clu$ter/ns/a", true, "invalid character in its trust domain"},
        {"spiffe://td/ns/a?x=1", true, "has a query"},
        {"spiffe://td/ns/a#frag", true, "has a fragment"},
        {"spiffe://td?x", true, "has a query"},
        {"spiffe://td/ns/a%20b", true, "has percent-encoding"},
        {"spiffe://td/ns//a", true, "empty path segment"},
        {"spiffe://td/ns/a/", true, "empty path segment"},
        {"spiffe://td/", true, "empty path segment"},
        {"spiffe://td/ns/./a", true, "dot segment"},
        {"spiffe://td/ns/..", true, "dot segment"},
        {"spiffe://td/ns/...", true, NULL},
        {"spiffe://td/ns/a b", true, "invalid character in its path"},
        {"spiffe://td/ns/a:b", true, "invalid character in its path"},
    };
    char buf[2100];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = ca_spiffe_id_check(cases[i].id, strlen(cases[i].id), cases[i].want_path, err,
                                    sizeof(err));
        if (!cases[i].why)
            is_int(rc, 0, cases[i].id);
        else if (ok(rc == -EINVAL && strstr(err, cases[i].why), "%s: %s", cases[i].id,
                    cases[i].why))
            ;
        else
            printf("#   rc %d, err \"%s\"\n", rc, err);
    }
    is_int(ca_spiffe_id_check("spiffe://td/a\0b", 15, true, err, sizeof(err)), -EINVAL,
           "a NUL inside the ID is refused");
    /* 2048 bytes is the limit */
    memcpy(buf, "spiffe://td/", 12);
    memset(buf + 12, 'a', sizeof(buf) - 12);
    is_int(ca_spiffe_id_check(buf, CA_SPIFFE_ID_MAX, true, err, sizeof(err)), 0,
           "a 2048-byte ID is fine");
    is_int(ca_spiffe_id_check(buf, CA_SPIFFE_ID_MAX + 1, true, err, sizeof(err)), -EINVAL,
           "a 2049-byte ID is refused");
}

/* ---- roots ----------------------------------------------------------------------------- */

static void test_root(void)
{
    time_t now = time(NULL);
    struct ca_root *root, *back, *other;
    struct ca_pem pem, opem;
    WOLFSSL_X509 *x;
    size_t len, len2;
    const uint8_t *der;
    char id[CA_SPIFFE_ID_MAX + 1];

    ok(!ca_root_new("Bad_TD", 10, now, err, sizeof(err)), "root: bad trust domain refused");
    ok(has(err, "trust domain \"Bad_TD\""), "root: the error names it");
    ok(!ca_root_new("cluster.local", 0, now, err, sizeof(err)), "root: 0 days refused");
    ok(!ca_root_new("cluster.local", CA_ROOT_MAX_DAYS + 1, now, err, sizeof(err)),
       "root: too many days refused");
    ok(has(err, "days"), "root: the error names days");

    root = ca_root_new("cluster.local", 3650, now, err, sizeof(err));
    if (!ok(root != NULL, "root: made"))
        printf("#   %s\n", err);
    if (!root)
        return;
    is_str(ca_root_trust_domain(root), "cluster.local", "root: trust domain");
    is_int(ca_root_not_after(root), now + 3650L * 86400, "root: notAfter = now + days");
    is_int(ca_root_pem(root, &pem, err, sizeof(err)), 0, "root: PEM");
    ok(has(pem.cert, "-----BEGIN CERTIFICATE-----\n"), "root: cert PEM");
    ok(has(pem.key, "-----BEGIN EC PRIVATE KEY-----\n"), "root: key PEM is SEC 1");

    /* what wolfSSL's own parser sees */
    x = pem_x509(pem.cert);
    ok(x != NULL, "root: wolfSSL parses it");
    if (x) {
        ok(wolfSSL_X509_get_isCA(x), "root: CA:true");
        is_int(wolfSSL_X509_ext_get_critical_by_NID(x, NID_basic_constraints), 1,
               "root: basicConstraints critical");
        is_int(wolfSSL_X509_get_keyUsage(x), KEYUSE_KEY_CERT_SIGN | KEYUSE_CRL_SIGN,
               "root: keyUsage keyCertSign + cRLSign only");
        is_int(wolfSSL_X509_ext_get_critical_by_NID(x, NID_key_usage), 1,
               "root: keyUsage critical");
        is_int(asn1_time(wolfSSL_X509_get_notBefore(x)), now - CA_CLOCK_SKEW_S,
               "root: notBefore = now - skew");
        is_int(asn1_time(wolfSSL_X509_get_notAfter(x)), now + 3650L * 86400,
               "root: notAfter (UTCTime) to the second");
        is_int(wolfSSL_X509_get_signature_type(x), CTC_SHA256wECDSA, "root: ecdsa-with-SHA256");
        wolfSSL_X509_free(x);
    }
    der = ca_root_der(root, &len);
    is_int(ca_svid_id(der, len, id, sizeof(id), err, sizeof(err)), -EINVAL,
           "peer check: the root is refused");
    ok(has(err, "a CA certificate"), "peer check: ... as a CA");

    back = ca_root_load(pem.cert, strlen(pem.cert), pem.key, strlen(pem.key), err, sizeof(err));
    if (!ok(back != NULL, "root: loads back from its PEM"))
        printf("#   %s\n", err);
    if (back) {
        const uint8_t *der2 = ca_root_der(back, &len2);
        ok(len == len2 && memcmp(der, der2, len) == 0, "root: same certificate after the load");
        is_str(ca_root_trust_domain(back), "cluster.local", "root: trust domain from its SAN");
        is_int(ca_root_not_after(back), ca_root_not_after(root), "root: notAfter read back");
        ca_root_free(back);
    }

    /* the refusals */
    ok(!ca_root_load("junk", 4, pem.key, strlen(pem.key), err, sizeof(err)),
       "load: garbage cert refused");
    ok(has(err, "root-cert.pem: no PEM CERTIFICATE"), "load: ... naming root-cert.pem");
    ok(!ca_root_load(pem.cert, strlen(pem.cert), "junk", 4, err, sizeof(err)),
       "load: garbage key refused");
    ok(has(err, "root-key.pem"), "load: ... naming root-key.pem");
    other = ca_root_new("cluster.local", 10, now, err, sizeof(err));
    if (other && ca_root_pem(other, &opem, err, sizeof(err)) == 0) {
        ok(!ca_root_load(pem.cert, strlen(pem.cert), opem.key, strlen(opem.key), err, sizeof(err)),
           "load: another root's key refused");
        ok(has(err, "root-key.pem: not the key of root-cert.pem"), "load: ... saying so");
        ca_pem_free(&opem);
    } else {
        ok(0, "load: a second root");
    }
    ca_root_free(other);

    /* PKCS#8 "PRIVATE KEY", as openssl genpkey writes */
    {
        uint8_t kder[256], p8[512];
        char p8pem[1024];
        word32 idx = 0, p8len = sizeof(p8);
        ecc_key k;
        int n =
            wc_KeyPemToDer((const byte *)pem.key, (int)strlen(pem.key), kder, sizeof(kder), NULL);
        wc_ecc_init(&k);
        ok(n > 0 && wc_EccPrivateKeyDecode(kder, &idx, &k, (word32)n) == 0 &&
               wc_EccPrivateKeyToPKCS8(&k, p8, &p8len) > 0,
           "PKCS#8: converted");
        n = wc_DerToPem(p8, p8len, (byte *)p8pem, sizeof(p8pem) - 1, PKCS8_PRIVATEKEY_TYPE);
        p8pem[n > 0 ? n : 0] = '\0';
        ok(has(p8pem, "-----BEGIN PRIVATE KEY-----"), "PKCS#8: PEM");
        back = ca_root_load(pem.cert, strlen(pem.cert), p8pem, strlen(p8pem), err, sizeof(err));
        if (!ok(back != NULL, "load: a PKCS#8 key works"))
            printf("#   %s\n", err);
        ca_root_free(back);
        wc_ecc_free(&k);
    }
    /* a P-384 key */
    {
        WC_RNG rng;
        ecc_key k;
        uint8_t kder[512];
        char kpem[1024];
        int n;
        wc_InitRng(&rng);
        wc_ecc_init(&k);
        wc_ecc_make_key_ex(&rng, 48, &k, ECC_SECP384R1);
        n = wc_EccKeyToDer(&k, kder, sizeof(kder));
        n = wc_DerToPem(kder, (word32)n, (byte *)kpem, sizeof(kpem) - 1, ECC_PRIVATEKEY_TYPE);
        kpem[n > 0 ? n : 0] = '\0';
        ok(!ca_root_load(pem.cert, strlen(pem.cert), kpem, strlen(kpem), err, sizeof(err)),
           "load: a P-384 key refused");
        ok(has(err, "not a P-256 key"), "load: ... saying so");
        wc_ecc_free(&k);
        wc_FreeRng(&rng);
    }
    ca_pem_free(&pem);

    /* a leaf is no root */
    {
        struct ca_leaf_req req = {.ns = "shop", .sa = "cart", .hours = 1, .now = now};
        struct ca_pem leaf;
        if (ca_issue(root, &req, &leaf, err, sizeof(err)) == 0) {
            ok(!ca_root_load(leaf.cert, strlen(leaf.cert), leaf.key, strlen(leaf.key), err,
                             sizeof(err)),
               "load: a leaf as root refused");
            ok(has(err, "root-cert.pem: not a CA certificate"), "load: ... as not a CA");
            ca_pem_free(&leaf);
        } else {
            ok(0, "issue for the leaf-as-root test: %s", err);
        }
    }
    ca_root_free(root);

    /* past 2049 the dates are GeneralizedTime */
    root = ca_root_new("td", CA_ROOT_MAX_DAYS, now, err, sizeof(err));
    if (root && ca_root_pem(root, &pem, err, sizeof(err)) == 0) {
        x = pem_x509(pem.cert);
        is_int(asn1_time(x ? wolfSSL_X509_get_notAfter(x) : NULL),
               now + (time_t)CA_ROOT_MAX_DAYS * 86400, "root: notAfter in 2126 (GeneralizedTime)");
        wolfSSL_X509_free(x);
        back = ca_root_load(pem.cert, strlen(pem.cert), pem.key, strlen(pem.key), err, sizeof(err));
        is_int(back ? ca_root_not_after(back) : 0, ca_root_not_after(root),
               "root: GeneralizedTime read back");
        ca_root_free(back);
        ca_pem_free(&pem);
    } else {
        ok(0, "a 100-year root: %s", err);
    }
    ca_root_free(root);
}

/* ---- issuing ------------------------------------------------------------------------- */

static void test_issue(void)
{
    time_t now = time(NULL);
    struct ca_root *root = ca_root_new("cluster.local", 1, now, err, sizeof(err));
    struct ca_root *other = ca_root_new("cluster.local", 1, now, err, sizeof(err));
    struct ca_leaf_req req = {.ns = "default", .sa = "bookinfo", .hours = 24, .now = now};
    struct ca_pem leaf, leaf2, rpem, opem;
    char id[CA_SPIFFE_ID_MAX + 1];
    WOLFSSL_CERT_MANAGER *cm;
    WOLFSSL_X509 *x;
    uint8_t *der, serial[32], serial2[32];
    int slen = sizeof(serial), slen2 = sizeof(serial2);
    size_t len;

    if (!ok(root && other, "issue: two roots"))
        return;

    /* refusals, each naming what was wrong */
    req.ns = "Default";
    is_int(ca_issue(root, &req, &leaf, err, sizeof(err)), -EINVAL, "issue: bad namespace");
    ok(has(err, "namespace \"Default\""), "issue: ... named");
    req.ns = "default";
    req.sa = "bad_sa";
    is_int(ca_issue(root, &req, &leaf, err, sizeof(err)), -EINVAL, "issue: bad service account");
    ok(has(err, "service account \"bad_sa\""), "issue: ... named");
    req.sa = "bookinfo";
    req.trust_domain = "example.org";
    is_int(ca_issue(root, &req, &leaf, err, sizeof(err)), -EINVAL,
           "issue: another trust domain than the root's");
    ok(has(err, "not the root's"), "issue: ... said");
    req.trust_domain = NULL;
    req.hours = 0;
    is_int(ca_issue(root, &req, &leaf, err, sizeof(err)), -EINVAL, "issue: 0 hours");
    req.hours = 25;
    is_int(ca_issue(root, &req, &leaf, err, sizeof(err)), -EINVAL,
           "issue: a leaf outliving its 1-day root");
    ok(has(err, "outlives the root"), "issue: ... said");
    req.now = now + 86400;
    req.hours = 1;
    is_int(ca_issue(root, &req, &leaf, err, sizeof(err)), -EINVAL, "issue: an expired root");
    ok(has(err, "the root expired"), "issue: ... said");

    req.now = now;
    req.hours = 24; /* exactly to the root's end */
    if (!ok(ca_issue(root, &req, &leaf, err, sizeof(err)) == 0, "issue: 24 h from a 1-day root")) {
        printf("#   %s\n", err);
        return;
    }
    ok(has(leaf.key, "-----BEGIN EC PRIVATE KEY-----\n"), "issue: key PEM");
    is_int(count(leaf.cert, "-----BEGIN CERTIFICATE-----"), 1,
           "issue: one certificate in the chain (the leaf)");
    req.ns = "shop";
    req.sa = "cart.v2";
    is_int(ca_issue(root, &req, &leaf2, err, sizeof(err)), 0, "issue: a second SVID");

    der = pem_der(leaf.cert, &len);
    is_int(ca_svid_id(der, len, id, sizeof(id), err, sizeof(err)), 0, "peer check: DER");
    is_str(id, "spiffe://cluster.local/ns/default/sa/bookinfo", "peer check: the SPIFFE ID");
    {
        /* DNS SANs after the URI (the control plane's certificate): still one SPIFFE ID */
        const char *dns[] = {"ringmesh-xds", "ringmesh-xds.ringmesh-system.svc"};
        struct ca_leaf_req r2 = req;
        struct ca_pem d = {0};
        size_t dl;
        r2.ns = "default";
        r2.sa = "bookinfo";
        r2.dns = dns;
        r2.n_dns = 2;
        is_int(ca_issue(root, &r2, &d, err, sizeof(err)), 0, "issue: with two DNS names");
        uint8_t *dd = d.cert ? pem_der(d.cert, &dl) : NULL;
        ok(dd && memmem(dd, dl, "\x82\x20ringmesh-xds.ringmesh-system.svc", 34) &&
               memmem(dd, dl, "\x82\x0cringmesh-xds", 14),
           "issue: the DNS names are dNSName SANs");
        is_int(dd ? ca_svid_id(dd, dl, id, sizeof(id), err, sizeof(err)) : -1, 0,
               "peer check: an SVID with DNS SANs too passes");
        free(dd);
        ca_pem_free(&d);
        dns[1] = "Not_A_Name";
        is_int(ca_issue(root, &r2, &d, err, sizeof(err)), -EINVAL, "issue: a bad DNS name");
        ok(has(err, "DNS name \"Not_A_Name\""), "issue: ... named");
    }
    is_int(ca_svid_id(der, len, id, 20, err, sizeof(err)), -ENOSPC,
           "peer check: small buffer is ENOSPC");

    x = pem_x509(leaf.cert);
    ok(x != NULL, "leaf: wolfSSL parses it");
    if (x) {
        WOLF_STACK_OF(WOLFSSL_GENERAL_NAME) * sans;
        is_int(ca_svid_id_x509(x, id, sizeof(id), err, sizeof(err)), 0, "peer check: X509");
        is_str(id, "spiffe://cluster.local/ns/default/sa/bookinfo",
               "peer check: X509 gives the same ID");
        ok(!wolfSSL_X509_get_isCA(x), "leaf: CA:false");
        is_int(wolfSSL_X509_ext_get_critical_by_NID(x, NID_basic_constraints), 1,
               "leaf: basicConstraints present (critical)");
        is_int(wolfSSL_X509_get_keyUsage(x), KEYUSE_DIGITAL_SIG,
               "leaf: keyUsage digitalSignature only");
        is_int(wolfSSL_X509_ext_get_critical_by_NID(x, NID_key_usage), 1,
               "leaf: keyUsage critical");
        is_int(wolfSSL_X509_get_extended_key_usage(x), XKU_SSL_SERVER | XKU_SSL_CLIENT,
               "leaf: extKeyUsage serverAuth + clientAuth");
        is_int(asn1_time(wolfSSL_X509_get_notBefore(x)), now - CA_CLOCK_SKEW_S,
               "leaf: notBefore = now - 5 min");
        is_int(asn1_time(wolfSSL_X509_get_notAfter(x)), now + 24 * 3600,
               "leaf: notAfter = now + 24 h");
        is_int(wolfSSL_X509_get_signature_type(x), CTC_SHA256wECDSA, "leaf: ecdsa-with-SHA256");
        sans = wolfSSL_X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
        is_int(sans ? wolfSSL_sk_GENERAL_NAME_num(sans) : -1, 1, "leaf: one SAN");
        if (sans && wolfSSL_sk_GENERAL_NAME_num(sans) == 1) {
            WOLFSSL_GENERAL_NAME *gn = wolfSSL_sk_GENERAL_NAME_value(sans, 0);
            is_int(gn->type, GEN_URI, "leaf: ... a URI");
            is_str((const char *)wolfSSL_ASN1_STRING_data(gn->d.uniformResourceIdentifier),
                   "spiffe://cluster.local/ns/default/sa/bookinfo", "leaf: ... the SPIFFE ID");
        }
        wolfSSL_sk_GENERAL_NAME_pop_free(sans, wolfSSL_GENERAL_NAME_free);
        ok(wolfSSL_X509_get_serial_number(x, serial, &slen) == WOLFSSL_SUCCESS && slen == 16 &&
               serial[0] & 0x40 && !(serial[0] & 0x80),
           "leaf: 16-byte positive serial");
        wolfSSL_X509_free(x);
    }
    x = pem_x509(leaf2.cert);
    ok(x && wolfSSL_X509_get_serial_number(x, serial2, &slen2) == WOLFSSL_SUCCESS &&
           (slen != slen2 || memcmp(serial, serial2, (size_t)slen) != 0),
       "leaf: two SVIDs have different serials");
    is_int(ca_svid_id_x509(x, id, sizeof(id), err, sizeof(err)), 0, "peer check: second SVID");
    is_str(id, "spiffe://cluster.local/ns/shop/sa/cart.v2", "peer check: its ID");
    wolfSSL_X509_free(x);
    is_int(ca_svid_id_x509(NULL, id, sizeof(id), err, sizeof(err)), -EINVAL,
           "peer check: NULL certificate");

    /* wolfSSL's chain verification: its root yes, another root no */
    ca_root_pem(root, &rpem, err, sizeof(err));
    ca_root_pem(other, &opem, err, sizeof(err));
    cm = wolfSSL_CertManagerNew();
    is_int(wolfSSL_CertManagerLoadCABuffer(cm, (const unsigned char *)rpem.cert,
                                           (long)strlen(rpem.cert), WOLFSSL_FILETYPE_PEM),
           WOLFSSL_SUCCESS, "wolfSSL: loads the root as a CA");
    is_int(wolfSSL_CertManagerVerifyBuffer(cm, der, (long)len, WOLFSSL_FILETYPE_ASN1),
           WOLFSSL_SUCCESS, "wolfSSL: verifies the SVID against its root");
    wolfSSL_CertManagerFree(cm);
    cm = wolfSSL_CertManagerNew();
    wolfSSL_CertManagerLoadCABuffer(cm, (const unsigned char *)opem.cert, (long)strlen(opem.cert),
                                    WOLFSSL_FILETYPE_PEM);
    ok(wolfSSL_CertManagerVerifyBuffer(cm, der, (long)len, WOLFSSL_FILETYPE_ASN1) !=
           WOLFSSL_SUCCESS,
       "wolfSSL: another root does not verify it");
    wolfSSL_CertManagerFree(cm);

    /* the key matches the certificate, as a TLS context checks */
    {
        WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfTLSv1_3_server_method());
        ok(ctx &&
               wolfSSL_CTX_use_certificate_chain_buffer(ctx, (const unsigned char *)leaf.cert,
                                                        (long)strlen(leaf.cert)) ==
                   WOLFSSL_SUCCESS &&
               wolfSSL_CTX_use_PrivateKey_buffer(ctx, (const unsigned char *)leaf.key,
                                                 (long)strlen(leaf.key),
                                                 WOLFSSL_FILETYPE_PEM) == WOLFSSL_SUCCESS &&
               wolfSSL_CTX_check_private_key(ctx) == WOLFSSL_SUCCESS,
           "wolfSSL: key.pem is cert-chain.pem's key");
        /* wolfSSL 5.5.4 does not compare EC keys here; if a later wolfSSL does, say so */
        if (ctx &&
            wolfSSL_CTX_use_PrivateKey_buffer(ctx, (const unsigned char *)leaf2.key,
                                              (long)strlen(leaf2.key),
                                              WOLFSSL_FILETYPE_PEM) == WOLFSSL_SUCCESS &&
            wolfSSL_CTX_check_private_key(ctx) != WOLFSSL_SUCCESS)
            printf("# this wolfSSL's check_private_key now catches a wrong EC key\n");
        wolfSSL_CTX_free(ctx);
    }
    is_int(ca_check_key_pair(leaf.cert, strlen(leaf.cert), leaf.key, strlen(leaf.key), err,
                             sizeof(err)),
           0, "key pair: an SVID and its key");
    is_int(ca_check_key_pair(leaf.cert, strlen(leaf.cert), leaf2.key, strlen(leaf2.key), err,
                             sizeof(err)),
           -EINVAL, "key pair: another SVID's key is refused");
    ok(has(err, "key: not the certificate's key"), "key pair: ... saying so");
    is_int(ca_check_key_pair("x", 1, leaf.key, strlen(leaf.key), err, sizeof(err)), -EINVAL,
           "key pair: no certificate");
    ok(has(err, "certificate: "), "key pair: ... naming the certificate");
    is_int(ca_check_key_pair(leaf.cert, strlen(leaf.cert), leaf.cert, strlen(leaf.cert), err,
                             sizeof(err)),
           -EINVAL, "key pair: a certificate as key");
    ok(has(err, "key: "), "key pair: ... naming the key");

    free(der);
    ca_pem_free(&leaf);
    ca_pem_free(&leaf2);
    ca_pem_free(&rpem);
    ca_pem_free(&opem);
    ca_root_free(root);
    ca_root_free(other);
}

/* Long names take DER's long length forms (0x81, 0x82) in the SAN and the subject. */
static void test_long_names(void)
{
    time_t now = time(NULL);
    char td[254], sa[254], want[CA_SPIFFE_ID_MAX + 1], id[CA_SPIFFE_ID_MAX + 1];
    struct ca_root *root;
    struct ca_pem pem, leaf;
    WOLFSSL_X509 *x;
    WOLFSSL_CERT_MANAGER *cm;
    uint8_t *der;
    size_t len;

    /* labels of 63 'a's joined by dots: 4 * 63 + 3 = 255 > 253, so three and a 61 */
    memset(td, 'a', sizeof(td));
    td[63] = td[127] = td[191] = '.';
    td[253] = '\0';
    memcpy(sa, td, sizeof(sa));
    sa[0] = 'b';
    ok(ca_is_trust_domain(td), "long names: a 253-character trust domain");
    root = ca_root_new(td, 10, now, err, sizeof(err));
    if (!ok(root && ca_root_pem(root, &pem, err, sizeof(err)) == 0, "long names: root made")) {
        printf("#   %s\n", err);
        ca_root_free(root);
        return;
    }
    x = pem_x509(pem.cert);
    {
        char cn[80] = "";
        if (x)
            wolfSSL_X509_NAME_get_text_by_NID(wolfSSL_X509_get_subject_name(x), NID_commonName, cn,
                                              sizeof(cn));
        is_str(cn, "ringmesh root CA", "long names: the CN falls back (a CN holds 64)");
    }
    wolfSSL_X509_free(x);
    struct ca_leaf_req rq = {.ns = "shop", .sa = sa, .hours = 1, .now = now};
    if (!ok(ca_issue(root, &rq, &leaf, err, sizeof(err)) == 0, "long names: SVID issued")) {
        printf("#   %s\n", err);
    } else {
        snprintf(want, sizeof(want), "spiffe://%s/ns/shop/sa/%s", td, sa);
        der = pem_der(leaf.cert, &len);
        is_int(ca_svid_id(der, len, id, sizeof(id), err, sizeof(err)), 0,
               "long names: the peer check reads it");
        is_int(strlen(want), 527, "long names: a 527-byte ID");
        is_str(id, want, "long names: the 527-byte ID round-trips");
        cm = wolfSSL_CertManagerNew();
        wolfSSL_CertManagerLoadCABuffer(cm, (const unsigned char *)pem.cert, (long)strlen(pem.cert),
                                        WOLFSSL_FILETYPE_PEM);
        is_int(wolfSSL_CertManagerVerifyBuffer(cm, der, (long)len, WOLFSSL_FILETYPE_ASN1),
               WOLFSSL_SUCCESS, "long names: wolfSSL verifies it");
        wolfSSL_CertManagerFree(cm);
        free(der);
        ca_pem_free(&leaf);
    }
    ca_pem_free(&pem);
    ca_root_free(root);
}

/* ---- mTLS between two wolfSSL endpoints ---------------------------------------------- */

static WOLFSSL_CTX *tls_ctx(bool server, const struct ca_pem *id, const char *root_pem)
{
    WOLFSSL_CTX *ctx =
        wolfSSL_CTX_new(server ? wolfTLSv1_3_server_method() : wolfTLSv1_3_client_method());
    if (!ctx ||
        wolfSSL_CTX_use_certificate_chain_buffer(ctx, (const unsigned char *)id->cert,
                                                 (long)strlen(id->cert)) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_use_PrivateKey_buffer(ctx, (const unsigned char *)id->key,
                                          (long)strlen(id->key),
                                          WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_load_verify_buffer(ctx, (const unsigned char *)root_pem, (long)strlen(root_pem),
                                       WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS) {
        wolfSSL_CTX_free(ctx);
        return NULL;
    }
    wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER | WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    return ctx;
}

/* Runs a handshake over a socketpair; on success fills each side's view of the other's
 * SPIFFE ID. Returns 0 or -1. */
static int handshake(WOLFSSL_CTX *cctx, WOLFSSL_CTX *sctx, char *client_saw, char *server_saw)
{
    int sv[2], rc = -1, cdone = 0, sdone = 0;
    WOLFSSL *c = NULL, *s = NULL;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv))
        return -1;
    c = wolfSSL_new(cctx);
    s = wolfSSL_new(sctx);
    if (!c || !s)
        goto out;
    wolfSSL_set_fd(c, sv[0]);
    wolfSSL_set_fd(s, sv[1]);
    for (int i = 0; i < 1000 && !(cdone && sdone); i++) {
        if (!cdone) {
            if (wolfSSL_connect(c) == WOLFSSL_SUCCESS)
                cdone = 1;
            else if (wolfSSL_want_read(c) == 0 && wolfSSL_want_write(c) == 0)
                goto out;
        }
        if (!sdone) {
            if (wolfSSL_accept(s) == WOLFSSL_SUCCESS)
                sdone = 1;
            else if (wolfSSL_want_read(s) == 0 && wolfSSL_want_write(s) == 0)
                goto out;
        }
    }
    if (!(cdone && sdone))
        goto out;
    /* TLS 1.3: the client finishes before the server has read its certificate; one
     * application byte each way settles both sides */
    {
        char b = 'x';
        for (int i = 0; i < 100; i++) {
            if (wolfSSL_write(c, &b, 1) == 1)
                break;
        }
        for (int i = 0; i < 100; i++) {
            if (wolfSSL_read(s, &b, 1) == 1)
                break;
        }
    }
    {
        WOLFSSL_X509 *pc = wolfSSL_get_peer_certificate(c);
        WOLFSSL_X509 *ps = wolfSSL_get_peer_certificate(s);
        rc = ca_svid_id_x509(pc, client_saw, CA_SPIFFE_ID_MAX + 1, err, sizeof(err)) ||
                     ca_svid_id_x509(ps, server_saw, CA_SPIFFE_ID_MAX + 1, err, sizeof(err))
                 ? -1
                 : 0;
        wolfSSL_X509_free(pc);
        wolfSSL_X509_free(ps);
    }
out:
    wolfSSL_free(c);
    wolfSSL_free(s);
    close(sv[0]);
    close(sv[1]);
    return rc;
}

static void test_mtls(void)
{
    time_t now = time(NULL);
    struct ca_root *root = ca_root_new("cluster.local", 10, now, err, sizeof(err));
    struct ca_root *rogue = ca_root_new("cluster.local", 10, now, err, sizeof(err));
    struct ca_leaf_req rq = {.ns = "shop", .sa = "cart", .hours = 1, .now = now};
    struct ca_pem rpem, cart, pay, mallory;
    char client_saw[CA_SPIFFE_ID_MAX + 1] = "", server_saw[CA_SPIFFE_ID_MAX + 1] = "";
    WOLFSSL_CTX *cctx, *sctx, *mctx;

    if (!root || !rogue || ca_root_pem(root, &rpem, err, sizeof(err)) ||
        ca_issue(root, &rq, &cart, err, sizeof(err))) {
        ok(0, "mTLS setup: %s", err);
        return;
    }
    rq.sa = "payments";
    ca_issue(root, &rq, &pay, err, sizeof(err));
    rq.sa = "cart"; /* the same name, from a root nobody trusts */
    ca_issue(rogue, &rq, &mallory, err, sizeof(err));

    cctx = tls_ctx(false, &cart, rpem.cert);
    sctx = tls_ctx(true, &pay, rpem.cert);
    mctx = tls_ctx(false, &mallory, rpem.cert);
    ok(cctx && sctx && mctx, "mTLS: wolfSSL contexts load the issued files");
    if (cctx && sctx) {
        is_int(handshake(cctx, sctx, client_saw, server_saw), 0,
               "mTLS: TLS 1.3 handshake with client certificates");
        is_str(client_saw, "spiffe://cluster.local/ns/shop/sa/payments",
               "mTLS: the client sees the server's ID");
        is_str(server_saw, "spiffe://cluster.local/ns/shop/sa/cart",
               "mTLS: the server sees the client's ID");
    }
    if (mctx && sctx)
        ok(handshake(mctx, sctx, client_saw, server_saw) != 0,
           "mTLS: a client certificate from another root is refused");
    wolfSSL_CTX_free(cctx);
    wolfSSL_CTX_free(sctx);
    wolfSSL_CTX_free(mctx);
    ca_pem_free(&rpem);
    ca_pem_free(&cart);
    ca_pem_free(&pay);
    ca_pem_free(&mallory);
    ca_root_free(root);
    ca_root_free(rogue);
}

/* ---- the peer check on broken certificates ----------------------------------------- */

/* GeneralNames from a list of (tag, value) pairs. */
static size_t gen_names(uint8_t *out, const uint8_t *tags, const char **vals, int n)
{
    uint8_t body[2048];
    size_t len = 0, h;
    for (int i = 0; i < n; i++) {
        size_t vl = strlen(vals[i]);
        body[len++] = tags[i];
        if (vl < 0x80) {
            body[len++] = (uint8_t)vl;
        } else {
            body[len++] = 0x81;
            body[len++] = (uint8_t)vl;
        }
        memcpy(body + len, vals[i], vl);
        len += vl;
    }
    out[0] = 0x30;
    if (len < 0x80) {
        out[1] = (uint8_t)len;
        h = 2;
    } else {
        out[1] = 0x82;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        h = 4;
    }
    memcpy(out + h, body, len);
    return h + len;
}

/* A self-signed certificate made with wolfSSL from raw SAN DER (the peer check reads, it does
 * not verify, so who signs does not matter). Returns DER length, or 0. */
static size_t forge(uint8_t *der, size_t cap, const uint8_t *san, size_t san_len, bool is_ca,
                    const char *ku)
{
    time_t now = time(NULL);
    Cert *c = wc_CertNew(NULL);
    WC_RNG rng;
    ecc_key k;
    int n = 0;

    wc_InitRng(&rng);
    wc_ecc_init(&k);
    wc_ecc_make_key_ex(&rng, 32, &k, ECC_SECP256R1);
    c->sigType = CTC_SHA256wECDSA;
    c->isCA = is_ca;
    c->daysValid = 1;
    (void)now;
    strcpy(c->subject.org, "test");
    if (san_len) {
        memcpy(c->altNames, san, san_len);
        c->altNamesSz = (int)san_len;
    }
    if (ku)
        wc_SetKeyUsage(c, ku);
    if (wc_MakeCert_ex(c, der, (word32)cap, ECC_TYPE, &k, &rng) > 0)
        n = wc_SignCert_ex(c->bodySz, c->sigType, der, (word32)cap, ECC_TYPE, &k, &rng);
    wc_CertFree(c);
    wc_ecc_free(&k);
    wc_FreeRng(&rng);
    return n > 0 ? (size_t)n : 0;
}

static void expect_refused(const uint8_t *der, size_t len, int want_rc, const char *why,
                           const char *name)
{
    char id[CA_SPIFFE_ID_MAX + 1];
    int rc;
    memcpy(id, "stale", 6);
    rc = ca_svid_id(der, len, id, sizeof(id), err, sizeof(err));
    if (!ok(len > 0 && rc == want_rc && strstr(err, why) && id[0] == '\0',
            "peer check refuses %s: %s", name, why))
        printf("#   len %zu rc %d err \"%s\" id \"%s\"\n", len, rc, err, id);
}

/* A minimal certificate DER around a given extensions body (the SEQUENCE OF's content). */
static size_t hand_cert(uint8_t *out, const uint8_t *exts, size_t exts_len)
{
    static const uint8_t head[] = {
        0xa0, 0x03, 0x02, 0x01, 0x02,                                           /* v3 */
        0x02, 0x01, 0x01,                                                       /* serial 1 */
        0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02, /* ecdsa-sha256 */
        0x30, 0x00,                                                             /* issuer */
        0x30, 0x1e, 0x17, 0x0d, '2',  '6',  '0',  '1',  '0',  '1',  '0',  '0',
        '0',  '0',  '0',  '0',  'Z',  0x17, 0x0d, '2',  '7',  '0',  '1',  '0',
        '1',  '0',  '0',  '0',  '0',  '0',  '0',  'Z',  0x30, 0x00, /* subject */
        0x30, 0x00,                                                 /* spki (empty) */
    };
    uint8_t tbs[1024];
    size_t t = 0, n = 0;

    memcpy(tbs, head, sizeof(head));
    t = sizeof(head);
    tbs[t++] = 0xa3;
    tbs[t++] = (uint8_t)(exts_len + 2);
    tbs[t++] = 0x30;
    tbs[t++] = (uint8_t)exts_len;
    memcpy(tbs + t, exts, exts_len);
    t += exts_len;
    /* Certificate { tbs, alg, BIT STRING }, with minimal DER lengths */
    size_t th = t < 0x80 ? 2 : 3, body = th + t + 12 + 3;
    out[n++] = 0x30;
    if (body >= 0x80)
        out[n++] = 0x81;
    out[n++] = (uint8_t)body;
    out[n++] = 0x30;
    if (t >= 0x80)
        out[n++] = 0x81;
    out[n++] = (uint8_t)t;
    memcpy(out + n, tbs, t);
    n += t;
    memcpy(out + n, head + 8, 12);
    n += 12;
    out[n++] = 0x03;
    out[n++] = 0x01;
    out[n++] = 0x00;
    return n;
}

/* An Extension { OID 2.5.29.17, OCTET STRING { GeneralNames with one URI } }. */
static size_t san_ext(uint8_t *out, const char *uri)
{
    uint8_t gn[256];
    const uint8_t tag = 0x86;
    size_t gl = gen_names(gn, &tag, &uri, 1), n = 0;
    out[n++] = 0x30;
    out[n++] = (uint8_t)(5 + 2 + gl);
    out[n++] = 0x06;
    out[n++] = 0x03;
    out[n++] = 0x55;
    out[n++] = 0x1d;
    out[n++] = 0x11;
    out[n++] = 0x04;
    out[n++] = (uint8_t)gl;
    memcpy(out + n, gn, gl);
    return n + gl;
}

static void test_peer_check(void)
{
    uint8_t der[4096], san[1024], exts[512];
    char id[CA_SPIFFE_ID_MAX + 1];
    const char *uri = "spiffe://cluster.local/ns/shop/sa/cart";
    size_t len, sl, el;

    {
        const uint8_t tags[] = {0x82, 0x86};
        const char *vals[] = {"cart.shop.svc.cluster.local", uri};
        sl = gen_names(san, tags, vals, 2);
        len = forge(der, sizeof(der), san, sl, false, "digitalSignature");
        is_int(ca_svid_id(der, len, id, sizeof(id), err, sizeof(err)), 0,
               "peer check: a DNS SAN beside the URI SAN is fine");
        is_str(id, uri, "peer check: ... and the URI is the ID");
    }
    {
        const uint8_t tags[] = {0x86, 0x86};
        const char *vals[] = {uri, "spiffe://cluster.local/ns/shop/sa/admin"};
        sl = gen_names(san, tags, vals, 2);
        len = forge(der, sizeof(der), san, sl, false, "digitalSignature");
        expect_refused(der, len, -EINVAL, "2 URI SANs", "two URI SANs");
    }
    {
        const uint8_t tags[] = {0x82};
        const char *vals[] = {"cart.shop.svc.cluster.local"};
        sl = gen_names(san, tags, vals, 1);
        len = forge(der, sizeof(der), san, sl, false, "digitalSignature");
        expect_refused(der, len, -EINVAL, "no URI SAN", "a DNS SAN only");
    }
    len = forge(der, sizeof(der), NULL, 0, false, "digitalSignature");
    expect_refused(der, len, -EINVAL, "no URI SAN", "no SAN at all");
    {
        const uint8_t tags[] = {0x86};
        const char *vals[] = {"https://cart.shop/x"};
        sl = gen_names(san, tags, vals, 1);
        len = forge(der, sizeof(der), san, sl, false, "digitalSignature");
        expect_refused(der, len, -EINVAL, "not a spiffe URI", "an https URI");
        vals[0] = "spiffe://cluster.local:443/ns/shop/sa/cart";
        sl = gen_names(san, tags, vals, 1);
        len = forge(der, sizeof(der), san, sl, false, "digitalSignature");
        expect_refused(der, len, -EINVAL, "has a port", "a port");
        vals[0] = "spiffe://cluster.local";
        sl = gen_names(san, tags, vals, 1);
        len = forge(der, sizeof(der), san, sl, false, "digitalSignature");
        expect_refused(der, len, -EINVAL, "has no path", "a trust domain ID on a leaf");
        vals[0] = uri;
        sl = gen_names(san, tags, vals, 1);
        len = forge(der, sizeof(der), san, sl, true, "keyCertSign,cRLSign");
        expect_refused(der, len, -EINVAL, "a CA certificate", "a CA cert");
        len = forge(der, sizeof(der), san, sl, false, "digitalSignature,keyCertSign");
        expect_refused(der, len, -EINVAL, "keyCertSign", "a leaf with keyCertSign");
        len = forge(der, sizeof(der), san, sl, false, "digitalSignature,cRLSign");
        expect_refused(der, len, -EINVAL, "cRLSign", "a leaf with cRLSign");
        len = forge(der, sizeof(der), san, sl, false, "digitalSignature,keyEncipherment");
        is_int(ca_svid_id(der, len, id, sizeof(id), err, sizeof(err)), 0,
               "peer check: keyEncipherment is allowed");
    }

    /* hand-made DER: what wolfSSL would not write */
    el = san_ext(exts, uri);
    len = hand_cert(der, exts, el);
    is_int(ca_svid_id(der, len, id, sizeof(id), err, sizeof(err)), 0,
           "peer check: the hand-made certificate with one SAN passes (the builder is right)");
    el += san_ext(exts + el, "spiffe://cluster.local/ns/shop/sa/admin");
    len = hand_cert(der, exts, el);
    expect_refused(der, len, -EINVAL, "two subjectAltName extensions", "two SAN extensions");
    el = san_ext(exts, "spiffe://td/ns/a\x01x");
    len = hand_cert(der, exts, el);
    expect_refused(der, len, -EINVAL, "invalid character", "a control character");
    ok(!strchr(err, '\x01'), "peer check: the error has no raw control bytes");

    /* every prefix of a real SVID fails cleanly; corruptions never crash */
    {
        time_t now = time(NULL);
        struct ca_root *root = ca_root_new("cluster.local", 1, now, err, sizeof(err));
        struct ca_leaf_req rq = {.ns = "shop", .sa = "cart", .hours = 1, .now = now};
        struct ca_pem leaf;
        uint8_t *good, *copy;
        size_t glen;
        int bad = 0, passed = 0;

        if (!root || ca_issue(root, &rq, &leaf, err, sizeof(err))) {
            ok(0, "prefix test setup: %s", err);
            ca_root_free(root);
            return;
        }
        good = pem_der(leaf.cert, &glen);
        for (size_t i = 0; i < glen; i++) {
            copy = malloc(i ? i : 1); /* exact size, so ASan sees any over-read */
            memcpy(copy, good, i);
            if (ca_svid_id(copy, i, id, sizeof(id), err, sizeof(err)) != -EBADMSG)
                bad++;
            free(copy);
        }
        is_int(bad, 0, "peer check: each of the SVID's prefixes is -EBADMSG");
        srand(7);
        copy = malloc(glen);
        for (int round = 0; round < 20000; round++) {
            memcpy(copy, good, glen);
            for (int k = 0; k < 1 + round % 3; k++)
                copy[(size_t)rand() % glen] ^= (uint8_t)(1 + rand() % 255);
            if (ca_svid_id(copy, glen, id, sizeof(id), err, sizeof(err)) == 0)
                passed += strncmp(id, "spiffe://", 9) == 0 ? 0 : 1000000;
        }
        ok(passed < 1000000, "peer check: 20000 corrupted SVIDs, no crash, no non-spiffe ID");
        free(copy);
        free(good);
        ca_pem_free(&leaf);
        ca_root_free(root);
    }
}

int main(void)
{
    wolfSSL_Init();
    test_names();
    test_spiffe_ids();
    test_root();
    test_issue();
    test_long_names();
    test_mtls();
    test_peer_check();
    wolfSSL_Cleanup();
    return tap_done();
}
