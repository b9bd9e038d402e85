/*
 * ca.c - the mesh CA (roots, workload SVIDs) and the X.509-SVID peer check, on wolfCrypt.
 *
 * Certificates are made with wolfCrypt's certificate generator (wc_MakeCert_ex +
 * wc_SignCert_ex). Three things it has no setter for are written into struct Cert directly:
 * the subjectAltName (altNames, raw GeneralNames with one URI), the validity dates
 * (beforeDate/afterDate as DER Times: wolfSSL's own daysValid counts whole days and backdates
 * notBefore by a day, where an SVID lives hours from now - CA_CLOCK_SKEW_S) and CA:false
 * (basicConstSet; otherwise a leaf has no basicConstraints at all). wolfSSL 5.5.4 writes
 * basicConstraints non-critical, so the unsigned tbsCertificate is rebuilt with the critical
 * flag before it is signed (tbs_bc_critical()).
 *
 * Reading certificates (a root's dates, key and trust domain; a peer's SPIFFE ID) goes
 * through the small strict DER walker below rather than wolfSSL's DecodedCert
 * (wolfcrypt/asn.h, an internal header whose struct follows the build options), so the
 * rules and their error messages are ours on any wolfSSL build. The walker only reads what
 * it is asked for; signatures and chains are the TLS stack's business.
 *
 * A struct ca_root keeps its key as SEC 1 DER and decodes a private ecc_key for each
 * signature, so one root may be shared by threads without locks. Key material is wiped with
 * explicit_bzero() when freed.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/hmac.h>
#include <wolfssl/wolfcrypt/random.h>

#include "ca.h"
#include "model.h"

#define CERT_DER_MAX 8192 /* our certificates are under 1 KiB; foreign roots may be larger */
#define SERIAL_LEN   16
#define TD_MAX       253

struct ca_root {
    uint8_t *cert_der; /* owned */
    size_t cert_len;
    uint8_t *key_der; /* owned: SEC 1 ECPrivateKey with its public key; wiped on free */
    size_t key_len;
    char td[TD_MAX + 1]; /* "" = the certificate names no trust domain */
    time_t not_before, not_after;
};

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Copies untrusted bytes (a peer's URI) into a short printable form for error messages. */
static const char *printable(const uint8_t *s, size_t len, char *buf, size_t cap)
{
    size_t i, n = 0;
    for (i = 0; i < len && n + 4 < cap; i++)
        buf[n++] = (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"') ? (char)s[i] : '?';
    if (i < len) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

static void fmt_time(time_t t, char *buf, size_t cap)
{
    struct tm tm;
    if (!gmtime_r(&t, &tm) || !strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(buf, cap, "%lld", (long long)t);
}

/* ---- DER reading ------------------------------------------------------------------- */

struct der_it {
    const uint8_t *p, *end;
};

struct tlv {
    uint8_t tag;
    const uint8_t *v; /* the value */
    size_t len;
    const uint8_t *tlv; /* the whole element, tag and length included */
    size_t tlv_len;
};

/* Reads one element: single-byte tags (all a certificate uses), definite minimal lengths
 * (DER, X.690 10.1). Returns 0, or -1 on anything else or a short buffer. */
static int der_get(struct der_it *it, struct tlv *t)
{
    const uint8_t *start = it->p;
    size_t len, n, i;

    if (it->end - it->p < 2 || (it->p[0] & 0x1f) == 0x1f)
        return -1;
    t->tag = *it->p++;
    len = *it->p++;
    if (len & 0x80) {
        n = len & 0x7f;
        if (n == 0 || n > 3 || (size_t)(it->end - it->p) < n || it->p[0] == 0)
            return -1;
        for (len = 0, i = 0; i < n; i++)
            len = len << 8 | *it->p++;
        if (len < 0x80)
            return -1;
    }
    if ((size_t)(it->end - it->p) < len)
        return -1;
    t->v = it->p;
    t->len = len;
    t->tlv = start;
    t->tlv_len = (size_t)(it->p + len - start);
    it->p += len;
    return 0;
}

static int der_want(struct der_it *it, uint8_t tag, struct tlv *t)
{
    return der_get(it, t) == 0 && t->tag == tag ? 0 : -1;
}

static struct der_it der_inside(const struct tlv *t)
{
    return (struct der_it){t->v, t->v + t->len};
}

static bool der_at_end(const struct der_it *it)
{
    return it->p == it->end;
}

#define TAG_BOOLEAN   0x01
#define TAG_INTEGER   0x02
#define TAG_BITSTRING 0x03
#define TAG_OCTETS    0x04
#define TAG_OID       0x06
#define TAG_UTCTIME   0x17
#define TAG_GENTIME   0x18
#define TAG_SEQUENCE  0x30
#define TAG_CTX0      0xa0 /* [0] EXPLICIT, constructed */
#define TAG_CTX3      0xa3
#define TAG_GN_URI    0x86 /* GeneralName uniformResourceIdentifier [6] IMPLICIT IA5String */
#define TAG_GN_DNS    0x82 /* GeneralName dNSName [2] IMPLICIT IA5String */

/* id-ce OIDs (RFC 5280 4.2.1), the bytes after tag and length. */
static const uint8_t OID_KU[] = {0x55, 0x1d, 0x0f};
static const uint8_t OID_SAN[] = {0x55, 0x1d, 0x11};
static const uint8_t OID_BC[] = {0x55, 0x1d, 0x13};

/* keyUsage bits, numbered as in RFC 5280 (bit 0 is the first bit of the BIT STRING). */
#define KU_DIGITAL_SIGNATURE (1u << 0)
#define KU_KEY_CERT_SIGN     (1u << 5)
#define KU_CRL_SIGN          (1u << 6)

/* What the CA and the peer check read from a certificate; pointers borrow the DER. */
struct cert_info {
    struct tlv spki;
    time_t not_before, not_after;
    bool has_bc, is_ca;
    bool has_ku;
    unsigned ku;
    bool has_san;
    int n_uri;      /* URI SANs, over every subjectAltName extension */
    struct tlv uri; /* the first */
};

static int two_digits(const uint8_t *s, int *out)
{
    if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
        return -1;
    *out = (s[0] - '0') * 10 + (s[1] - '0');
    return 0;
}

/* UTCTime YYMMDDHHMMSSZ or GeneralizedTime YYYYMMDDHHMMSSZ (RFC 5280 4.1.2.5). */
static int der_time_parse(const struct tlv *t, time_t *out)
{
    const uint8_t *s = t->v;
    int cc, yy, mo, dd, hh, mi, ss, year;
    struct tm tm;

    if (t->tag == TAG_UTCTIME && t->len == 13) {
        if (two_digits(s, &yy))
            return -1;
        year = yy >= 50 ? 1900 + yy : 2000 + yy;
        s += 2;
    } else if (t->tag == TAG_GENTIME && t->len == 15) {
        if (two_digits(s, &cc) || two_digits(s + 2, &yy))
            return -1;
        year = cc * 100 + yy;
        s += 4;
    } else {
        return -1;
    }
    if (two_digits(s, &mo) || two_digits(s + 2, &dd) || two_digits(s + 4, &hh) ||
        two_digits(s + 6, &mi) || two_digits(s + 8, &ss) || s[10] != 'Z')
        return -1;
    if (mo < 1 || mo > 12 || dd < 1 || dd > 31 || hh > 23 || mi > 59 || ss > 60)
        return -1;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = year - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = dd;
    tm.tm_hour = hh;
    tm.tm_min = mi;
    tm.tm_sec = ss;
    *out = timegm(&tm);
    return 0;
}

static bool oid_is(const struct tlv *t, const uint8_t *oid, size_t len)
{
    return t->len == len && memcmp(t->v, oid, len) == 0;
}

/* One extension's value (the OCTET STRING's content). Returns NULL or what is wrong. */
static const char *ext_parse(struct cert_info *ci, const struct tlv *oid, const struct tlv *val)
{
    struct der_it it = der_inside(val), in;
    struct tlv t, b;

    if (oid_is(oid, OID_BC, sizeof(OID_BC))) {
        if (ci->has_bc)
            return "two basicConstraints extensions";
        ci->has_bc = true;
        if (der_want(&it, TAG_SEQUENCE, &t) || !der_at_end(&it))
            return "bad basicConstraints";
        in = der_inside(&t);
        if (!der_at_end(&in) && in.p[0] == TAG_BOOLEAN) {
            if (der_get(&in, &b) || b.len != 1)
                return "bad basicConstraints";
            ci->is_ca = b.v[0] != 0;
        }
    } else if (oid_is(oid, OID_KU, sizeof(OID_KU))) {
        size_t i;
        if (ci->has_ku)
            return "two keyUsage extensions";
        ci->has_ku = true;
        if (der_want(&it, TAG_BITSTRING, &t) || !der_at_end(&it) || t.len < 1 || t.v[0] > 7)
            return "bad keyUsage";
        for (i = 0; i + 1 < t.len && i < 2; i++)
            for (int bit = 0; bit < 8; bit++)
                if (t.v[1 + i] & (0x80 >> bit))
                    ci->ku |= 1u << (i * 8 + bit);
    } else if (oid_is(oid, OID_SAN, sizeof(OID_SAN))) {
        /* RFC 5280 4.2: an extension appears at most once; counting URIs over every copy
         * still catches a second URI smuggled into a second copy. */
        if (ci->has_san)
            return "two subjectAltName extensions";
        ci->has_san = true;
        if (der_want(&it, TAG_SEQUENCE, &t) || !der_at_end(&it))
            return "bad subjectAltName";
        in = der_inside(&t);
        while (!der_at_end(&in)) {
            if (der_get(&in, &b))
                return "bad subjectAltName";
            if (b.tag == TAG_GN_URI && ci->n_uri++ == 0)
                ci->uri = b;
        }
    }
    return NULL;
}

/* Parses the parts of a certificate we read. Returns 0, or -EBADMSG for DER that is not a
 * certificate, -EINVAL for a certificate that breaks RFC 5280 in a way we care about; err
 * says which. */
static int cert_parse(const uint8_t *der, size_t len, struct cert_info *ci, char *err,
                      size_t errlen)
{
    struct der_it it = {der, der + len}, c, tbs, v, exts, e;
    struct tlv cert, t, tbs_t, nb, na, oid, val;
    const char *what = "certificate";
    const char *bad;

    memset(ci, 0, sizeof(*ci));
    if (der_want(&it, TAG_SEQUENCE, &cert) || !der_at_end(&it))
        goto malformed;
    c = der_inside(&cert);
    what = "tbsCertificate";
    if (der_want(&c, TAG_SEQUENCE, &tbs_t) || der_want(&c, TAG_SEQUENCE, &t) ||
        der_want(&c, TAG_BITSTRING, &t) || !der_at_end(&c))
        goto malformed;
    tbs = der_inside(&tbs_t);
    if (!der_at_end(&tbs) && tbs.p[0] == TAG_CTX0 && der_get(&tbs, &t))
        goto malformed;
    what = "serialNumber";
    if (der_want(&tbs, TAG_INTEGER, &t))
        goto malformed;
    what = "signature algorithm";
    if (der_want(&tbs, TAG_SEQUENCE, &t))
        goto malformed;
    what = "issuer";
    if (der_want(&tbs, TAG_SEQUENCE, &t))
        goto malformed;
    what = "validity";
    if (der_want(&tbs, TAG_SEQUENCE, &t))
        goto malformed;
    v = der_inside(&t);
    if (der_get(&v, &nb) || der_get(&v, &na) || !der_at_end(&v) ||
        der_time_parse(&nb, &ci->not_before) || der_time_parse(&na, &ci->not_after))
        goto malformed;
    what = "subject";
    if (der_want(&tbs, TAG_SEQUENCE, &t))
        goto malformed;
    what = "subjectPublicKeyInfo";
    if (der_want(&tbs, TAG_SEQUENCE, &ci->spki))
        goto malformed;
    /* issuerUniqueID [1] and subjectUniqueID [2], then extensions [3] */
    what = "extensions";
    while (!der_at_end(&tbs)) {
        if (der_get(&tbs, &t))
            goto malformed;
        if (t.tag != TAG_CTX3)
            continue;
        e = der_inside(&t);
        if (der_want(&e, TAG_SEQUENCE, &t) || !der_at_end(&e))
            goto malformed;
        exts = der_inside(&t);
        while (!der_at_end(&exts)) {
            if (der_want(&exts, TAG_SEQUENCE, &t))
                goto malformed;
            e = der_inside(&t);
            if (der_want(&e, TAG_OID, &oid))
                goto malformed;
            if (!der_at_end(&e) && e.p[0] == TAG_BOOLEAN && der_get(&e, &val))
                goto malformed;
            if (der_want(&e, TAG_OCTETS, &val) || !der_at_end(&e))
                goto malformed;
            if ((bad = ext_parse(ci, &oid, &val))) {
                seterr(err, errlen, "%s", bad);
                return -EINVAL;
            }
        }
    }
    return 0;

malformed:
    seterr(err, errlen, "not a DER X.509 certificate (bad %s)", what);
    return -EBADMSG;
}

/* ---- DER writing --------------------------------------------------------------------- */

/* Tag and length of an element of len bytes; returns the header's size (at most 4). */
static size_t der_hdr(uint8_t tag, size_t len, uint8_t *out)
{
    out[0] = tag;
    if (len < 0x80) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xff) {
        out[1] = 0x81;
        out[2] = (uint8_t)len;
        return 3;
    }
    out[1] = 0x82;
    out[2] = (uint8_t)(len >> 8);
    out[3] = (uint8_t)len;
    return 4;
}

/* GeneralNames holding one URI and then n_dns DNS names, into cap bytes; returns the size
 * or 0 if it does not fit. */
static size_t der_san(const char *uri, const char *const *dns, size_t n_dns, uint8_t *out,
                      size_t cap)
{
    uint8_t body[2048];
    size_t len = 0;
    for (size_t i = 0; i <= n_dns; i++) {
        const char *name = i == 0 ? uri : dns[i - 1];
        size_t nl = strlen(name);
        if (nl > 1024 || len + nl + 4 > sizeof(body))
            return 0;
        len += der_hdr(i == 0 ? TAG_GN_URI : TAG_GN_DNS, nl, body + len);
        memcpy(body + len, name, nl);
        len += nl;
    }
    if (len + 4 > cap)
        return 0;
    size_t oh = der_hdr(TAG_SEQUENCE, len, out);
    memcpy(out + oh, body, len);
    return oh + len;
}

/* A Time for t: UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 4.1.2.5). */
static int der_time(time_t t, uint8_t *out, size_t cap)
{
    struct tm tm;
    char s[32];
    int n, year;

    if (!gmtime_r(&t, &tm))
        return -1;
    year = tm.tm_year + 1900;
    if (year < 1950 || year > 9999)
        return -1;
    if (year < 2050)
        n = snprintf(s, sizeof(s), "%02d%02d%02d%02d%02d%02dZ", year % 100, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    else
        n = snprintf(s, sizeof(s), "%04d%02d%02d%02d%02d%02dZ", year, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec);
    if (n < 0 || (size_t)n + 2 > cap)
        return -1;
    out[0] = year < 2050 ? TAG_UTCTIME : TAG_GENTIME;
    out[1] = (uint8_t)n;
    memcpy(out + 2, s, (size_t)n);
    return n + 2;
}

/* ---- names --------------------------------------------------------------------------- */

bool ca_is_trust_domain(const char *s)
{
    return s && model_is_dns_subdomain(s);
}

static bool td_char(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

static bool path_char(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_';
}

/* The reason a character outside the allowed set is there, for the error. */
static const char *why_char(uint8_t c, bool in_td)
{
    switch (c) {
    case '?':
        return "has a query";
    case '#':
        return "has a fragment";
    case '%':
        return "has percent-encoding";
    case ':':
        return in_td ? "has a port" : "has an invalid character in its path";
    case '@':
        return in_td ? "has userinfo" : "has an invalid character in its path";
    }
    if (in_td && c >= 'A' && c <= 'Z')
        return "has an uppercase trust domain";
    return in_td ? "has an invalid character in its trust domain"
                 : "has an invalid character in its path";
}

int ca_spiffe_id_check(const char *id, size_t len, bool want_path, char *err, size_t errlen)
{
    static const char scheme[] = "spiffe://";
    const uint8_t *s = (const uint8_t *)id;
    size_t i, td_start = sizeof(scheme) - 1, seg;
    char show[80];

    if (len > CA_SPIFFE_ID_MAX) {
        seterr(err, errlen, "SPIFFE ID longer than %d bytes", CA_SPIFFE_ID_MAX);
        return -EINVAL;
    }
    if (len < td_start || memcmp(id, scheme, td_start) != 0) {
        seterr(err, errlen, "not a spiffe URI: \"%s\"", printable(s, len, show, 64));
        return -EINVAL;
    }
    for (i = td_start; i < len && s[i] != '/'; i++)
        if (!td_char(s[i]))
            goto bad_char;
    if (i == td_start) {
        seterr(err, errlen, "SPIFFE ID \"%s\" has no trust domain", printable(s, len, show, 64));
        return -EINVAL;
    }
    if (i - td_start > 255) {
        seterr(err, errlen, "SPIFFE ID's trust domain is longer than 255 bytes");
        return -EINVAL;
    }
    if (i == len) {
        if (!want_path) {
            return 0;
        }
        seterr(err, errlen,
               "SPIFFE ID \"%s\" has no path (it names a trust domain, not a workload)",
               printable(s, len, show, 64));
        return -EINVAL;
    }
    if (!want_path) {
        seterr(err, errlen, "SPIFFE ID \"%s\" has a path (a trust domain's ID has none)",
               printable(s, len, show, 64));
        return -EINVAL;
    }
    /* SPIFFE-ID.md 2.2: segments of [A-Za-z0-9._-], none empty, none "." or "..". */
    while (i < len) {
        seg = ++i; /* past the '/' */
        for (; i < len && s[i] != '/'; i++)
            if (!path_char(s[i]))
                goto bad_char;
        if (i == seg) {
            seterr(err, errlen, "SPIFFE ID \"%s\" has an empty path segment",
                   printable(s, len, show, 64));
            return -EINVAL;
        }
        if ((i - seg == 1 && s[seg] == '.') ||
            (i - seg == 2 && s[seg] == '.' && s[seg + 1] == '.')) {
            seterr(err, errlen, "SPIFFE ID \"%s\" has a dot segment", printable(s, len, show, 64));
            return -EINVAL;
        }
    }
    return 0;

bad_char:
    seterr(err, errlen, "SPIFFE ID \"%s\" %s", printable(s, len, show, 64),
           why_char(s[i], !memchr(s + td_start, '/', i - td_start)));
    return -EINVAL;
}

int ca_mesh_id(const char *td, const char *ns, const char *sa, char *out, size_t outlen, char *err,
               size_t errlen)
{
    int n;

    if (!ca_is_trust_domain(td)) {
        seterr(err, errlen, "trust domain \"%s\": want a lowercase DNS name (RFC 1123 subdomain)",
               td ? td : "");
        return -EINVAL;
    }
    if (!ns || !model_is_dns_label(ns)) {
        seterr(err, errlen, "namespace \"%s\": want a DNS label (lowercase RFC 1123, at most 63)",
               ns ? ns : "");
        return -EINVAL;
    }
    if (!sa || !model_is_dns_subdomain(sa)) {
        seterr(err, errlen,
               "service account \"%s\": want a DNS subdomain (lowercase RFC 1123, at most 253)",
               sa ? sa : "");
        return -EINVAL;
    }
    n = snprintf(out, outlen, "spiffe://%s/ns/%s/sa/%s", td, ns, sa);
    if (n < 0 || (size_t)n >= outlen) {
        seterr(err, errlen, "SPIFFE ID does not fit in %zu bytes", outlen);
        return -ENOSPC;
    }
    return 0;
}

/* ---- the peer check ---------------------------------------------------------------- */

int ca_svid_id(const uint8_t *der, size_t len, char *id, size_t idlen, char *err, size_t errlen)
{
    struct cert_info ci;
    int rc;

    if (idlen)
        id[0] = '\0';
    if ((rc = cert_parse(der, len, &ci, err, errlen)))
        return rc;
    /* X509-SVID.md 5.2: a leaf is not a CA and signs no certificates or CRLs. */
    if (ci.is_ca) {
        seterr(err, errlen, "a CA certificate (basicConstraints cA=true), not a workload SVID");
        return -EINVAL;
    }
    if (ci.has_ku && (ci.ku & (KU_KEY_CERT_SIGN | KU_CRL_SIGN))) {
        seterr(err, errlen, "keyUsage has %s, which a workload SVID never has",
               ci.ku & KU_KEY_CERT_SIGN ? "keyCertSign" : "cRLSign");
        return -EINVAL;
    }
    if (ci.n_uri == 0) {
        seterr(err, errlen, ci.has_san ? "no URI SAN (only other names)" : "no URI SAN");
        return -EINVAL;
    }
    if (ci.n_uri > 1) {
        seterr(err, errlen, "%d URI SANs (an SVID has exactly one)", ci.n_uri);
        return -EINVAL;
    }
    if ((rc = ca_spiffe_id_check((const char *)ci.uri.v, ci.uri.len, true, err, errlen)))
        return rc;
    if (ci.uri.len + 1 > idlen) {
        seterr(err, errlen, "SPIFFE ID of %zu bytes does not fit in %zu", ci.uri.len, idlen);
        return -ENOSPC;
    }
    memcpy(id, ci.uri.v, ci.uri.len);
    id[ci.uri.len] = '\0';
    return 0;
}

int ca_svid_id_x509(struct WOLFSSL_X509 *x509, char *id, size_t idlen, char *err, size_t errlen)
{
    const unsigned char *der;
    int len = 0;

    if (idlen)
        id[0] = '\0';
    if (!x509 || !(der = wolfSSL_X509_get_der(x509, &len)) || len <= 0) {
        seterr(err, errlen, "no certificate");
        return -EINVAL;
    }
    return ca_svid_id(der, (size_t)len, id, idlen, err, errlen);
}

/* ---- making certificates ------------------------------------------------------------- */

/* wolfSSL 5.5.4 writes basicConstraints without the critical flag, which RFC 5280 4.2.1.9
 * requires on a CA (leaves get the same), and has no setter for it. So the unsigned
 * tbsCertificate wc_MakeCert_ex() leaves in der[0..len) is rebuilt with the flag in that one
 * extension; wc_SignCert_ex() signs whatever body it is given. Returns the new length or -1. */
static int tbs_bc_critical(uint8_t *der, size_t cap, size_t len)
{
    static const uint8_t crit[] = {TAG_BOOLEAN, 1, 0xff};
    struct der_it it = {der, der + len}, tbs, x, exts, e;
    struct tlv t, tbs_t, ext, oid;
    uint8_t *buf = malloc(cap), *ex, *p;
    size_t ex_len = 0, head_len, h;
    int rc = -1;

    if (!buf)
        return -1;
    if (der_want(&it, TAG_SEQUENCE, &tbs_t) || !der_at_end(&it))
        goto out;
    tbs = der_inside(&tbs_t);
    /* everything up to the extensions stays; [3] is the last field of a v3 tbsCertificate */
    for (;;) {
        const uint8_t *at = tbs.p;
        if (der_get(&tbs, &t))
            goto out;
        if (t.tag == TAG_CTX3) {
            head_len = (size_t)(at - tbs_t.v);
            break;
        }
    }
    x = der_inside(&t);
    if (!der_at_end(&tbs) || der_want(&x, TAG_SEQUENCE, &t) || !der_at_end(&x))
        goto out;
    /* the new extensions' content goes at the end of buf, built forwards */
    ex = buf + cap / 2;
    exts = der_inside(&t);
    while (!der_at_end(&exts)) {
        if (der_want(&exts, TAG_SEQUENCE, &ext))
            goto out;
        e = der_inside(&ext);
        if (der_want(&e, TAG_OID, &oid) || ext.tlv_len + sizeof(crit) + 4 > cap / 2 - ex_len)
            goto out;
        if (oid_is(&oid, OID_BC, sizeof(OID_BC)) && !der_at_end(&e) && e.p[0] != TAG_BOOLEAN) {
            size_t rest = (size_t)(e.end - e.p);
            ex_len += der_hdr(TAG_SEQUENCE, oid.tlv_len + sizeof(crit) + rest, ex + ex_len);
            memcpy(ex + ex_len, oid.tlv, oid.tlv_len);
            memcpy(ex + ex_len + oid.tlv_len, crit, sizeof(crit));
            memcpy(ex + ex_len + oid.tlv_len + sizeof(crit), e.p, rest);
            ex_len += oid.tlv_len + sizeof(crit) + rest;
        } else {
            memcpy(ex + ex_len, ext.tlv, ext.tlv_len);
            ex_len += ext.tlv_len;
        }
    }
    /* tbsCertificate { head, [3] { SEQUENCE { extensions } } } */
    {
        uint8_t seq_h[4], ctx_h[4], tbs_h[4];
        size_t seq_hl = der_hdr(TAG_SEQUENCE, ex_len, seq_h);
        size_t ctx_hl = der_hdr(TAG_CTX3, seq_hl + ex_len, ctx_h);
        size_t body = head_len + ctx_hl + seq_hl + ex_len;
        h = der_hdr(TAG_SEQUENCE, body, tbs_h);
        if (h + body > cap / 2)
            goto out;
        p = buf;
        memcpy(p, tbs_h, h);
        memcpy(p += h, tbs_t.v, head_len);
        memcpy(p += head_len, ctx_h, ctx_hl);
        memcpy(p += ctx_hl, seq_h, seq_hl);
        memcpy(p += seq_hl, ex, ex_len);
        memcpy(der, buf, h + body);
        rc = (int)(h + body);
    }
out:
    free(buf);
    return rc;
}

/* What make_cert() signs. */
struct cert_spec {
    bool is_ca;
    const char *ku;  /* wc_SetKeyUsage() list */
    const char *eku; /* wc_SetExtKeyUsage() list, or NULL */
    const char *org; /* subject O */
    const char *cn;  /* subject CN, or NULL */
    const char *uri; /* the one URI SAN */
    const char *const *dns; /* then these DNS SANs */
    size_t n_dns;
    time_t not_before, not_after;
    ecc_key *key;              /* the subject's key */
    ecc_key *issuer_key;       /* signs */
    const uint8_t *issuer_der; /* NULL: self-signed */
    size_t issuer_len;
};

/* Makes and signs a certificate into a malloc'd DER buffer. Returns 0, -ENOMEM, -EINVAL
 * (dates wolfSSL cannot hold) or -EIO (wolfCrypt refused; err has its code). */
static int make_cert(const struct cert_spec *s, WC_RNG *rng, uint8_t **out, size_t *out_len,
                     char *err, size_t errlen)
{
    Cert *c = wc_CertNew(NULL); /* allocated and wc_InitCert()ed: 24 KiB, too big for stacks */
    uint8_t *der = malloc(CERT_DER_MAX);
    const char *step = "";
    int rc = -EIO, n, wrc;

    if (!c || !der) {
        seterr(err, errlen, "out of memory");
        rc = -ENOMEM;
        goto out;
    }
    c->sigType = CTC_SHA256wECDSA;
    c->isCA = s->is_ca;
    /* A leaf says CA:false explicitly, which wolfSSL writes only when asked this way. */
    c->basicConstSet = 1;
    snprintf(c->subject.org, sizeof(c->subject.org), "%s", s->org);
    if (s->cn)
        snprintf(c->subject.commonName, sizeof(c->subject.commonName), "%s", s->cn);

    step = "serial";
    if ((wrc = wc_RNG_GenerateBlock(rng, c->serial, SERIAL_LEN)))
        goto wolf;
    /* positive, and minimal with no leading zero byte (RFC 5280 4.1.2.2) */
    c->serial[0] = (uint8_t)((c->serial[0] & 0x7f) | 0x40);
    c->serialSz = SERIAL_LEN;

    if ((n = der_time(s->not_before, c->beforeDate, sizeof(c->beforeDate))) < 0) {
        seterr(err, errlen, "notBefore out of range");
        rc = -EINVAL;
        goto out;
    }
    c->beforeDateSz = n;
    if ((n = der_time(s->not_after, c->afterDate, sizeof(c->afterDate))) < 0) {
        seterr(err, errlen, "notAfter out of range");
        rc = -EINVAL;
        goto out;
    }
    c->afterDateSz = n;
    if (!(c->altNamesSz =
              (int)der_san(s->uri, s->dns, s->n_dns, c->altNames, sizeof(c->altNames)))) {
        seterr(err, errlen, "subjectAltName too long");
        rc = -EINVAL;
        goto out;
    }

    step = "wc_SetKeyUsage";
    if ((wrc = wc_SetKeyUsage(c, s->ku)))
        goto wolf;
    step = "wc_SetExtKeyUsage";
    if (s->eku && (wrc = wc_SetExtKeyUsage(c, s->eku)))
        goto wolf;
    step = "wc_SetSubjectKeyIdFromPublicKey_ex";
    if ((wrc = wc_SetSubjectKeyIdFromPublicKey_ex(c, ECC_TYPE, s->key)))
        goto wolf;
    if (s->issuer_der) {
        step = "wc_SetIssuerBuffer";
        if ((wrc = wc_SetIssuerBuffer(c, s->issuer_der, (int)s->issuer_len)))
            goto wolf;
        step = "wc_SetAuthKeyIdFromCert";
        if ((wrc = wc_SetAuthKeyIdFromCert(c, s->issuer_der, (int)s->issuer_len)))
            goto wolf;
    } else {
        step = "wc_SetAuthKeyIdFromPublicKey_ex";
        if ((wrc = wc_SetAuthKeyIdFromPublicKey_ex(c, ECC_TYPE, s->key)))
            goto wolf;
    }

    step = "wc_MakeCert_ex";
    if ((wrc = wc_MakeCert_ex(c, der, CERT_DER_MAX, ECC_TYPE, s->key, rng)) < 0)
        goto wolf;
    if ((n = tbs_bc_critical(der, CERT_DER_MAX, (size_t)c->bodySz)) < 0) {
        seterr(err, errlen, "marking basicConstraints critical failed");
        goto out;
    }
    step = "wc_SignCert_ex";
    if ((wrc = wc_SignCert_ex(n, c->sigType, der, CERT_DER_MAX, ECC_TYPE, s->issuer_key, rng)) < 0)
        goto wolf;
    *out = der;
    *out_len = (size_t)wrc;
    der = NULL;
    rc = 0;
    goto out;

wolf:
    seterr(err, errlen, "%s: %s (%d)", step, wc_GetErrorString(wrc), wrc);
out:
    wc_CertFree(c);
    free(der);
    return rc;
}

/* PEM of der as a NUL-terminated malloc'd string; NULL on failure. */
static char *to_pem(const uint8_t *der, size_t len, int type)
{
    size_t cap = len * 2 + 128; /* base64 (4/3), a newline per 64, header and footer */
    char *pem = malloc(cap);
    int n;

    if (!pem)
        return NULL;
    n = wc_DerToPem(der, (word32)len, (byte *)pem, (word32)cap - 1, type);
    if (n <= 0) {
        free(pem);
        return NULL;
    }
    pem[n] = '\0';
    return pem;
}

/* SEC 1 DER of key (private and public); malloc'd. */
static int key_to_der(ecc_key *key, uint8_t **out, size_t *out_len)
{
    uint8_t buf[256];
    int n = wc_EccKeyToDer(key, buf, sizeof(buf));
    if (n <= 0)
        return -EIO;
    if (!(*out = malloc((size_t)n))) {
        explicit_bzero(buf, sizeof(buf));
        return -ENOMEM;
    }
    memcpy(*out, buf, (size_t)n);
    *out_len = (size_t)n;
    explicit_bzero(buf, sizeof(buf));
    return 0;
}

static int key_from_der(const uint8_t *der, size_t len, ecc_key *key)
{
    word32 idx = 0;
    if (wc_ecc_init(key))
        return -EIO;
    if (wc_EccPrivateKeyDecode(der, &idx, key, (word32)len)) {
        wc_ecc_free(key);
        return -EINVAL;
    }
    return 0;
}

static int key_pem(const uint8_t *key_der, size_t key_len, char **out)
{
    *out = to_pem(key_der, key_len, ECC_PRIVATEKEY_TYPE);
    return *out ? 0 : -ENOMEM;
}

/* ---- roots --------------------------------------------------------------------------- */

struct ca_root *ca_root_new(const char *trust_domain, unsigned days, time_t now, char *err,
                            size_t errlen)
{
    struct ca_root *root = NULL;
    struct cert_spec spec;
    char uri[sizeof("spiffe://") + TD_MAX];
    WC_RNG rng;
    ecc_key key;
    int wrc;

    if (!ca_is_trust_domain(trust_domain)) {
        seterr(err, errlen, "trust domain \"%s\": want a lowercase DNS name (RFC 1123 subdomain)",
               trust_domain ? trust_domain : "");
        return NULL;
    }
    if (days < 1 || days > CA_ROOT_MAX_DAYS) {
        seterr(err, errlen, "lifetime of %u days: want 1..%d", days, CA_ROOT_MAX_DAYS);
        return NULL;
    }
    if (wc_InitRng(&rng)) {
        seterr(err, errlen, "wc_InitRng failed");
        return NULL;
    }
    if (wc_ecc_init(&key)) {
        seterr(err, errlen, "wc_ecc_init failed");
        wc_FreeRng(&rng);
        return NULL;
    }
    if ((wrc = wc_ecc_make_key_ex(&rng, 32, &key, ECC_SECP256R1))) {
        seterr(err, errlen, "wc_ecc_make_key_ex: %s", wc_GetErrorString(wrc));
        goto fail;
    }
    if (!(root = calloc(1, sizeof(*root)))) {
        seterr(err, errlen, "out of memory");
        goto fail;
    }
    snprintf(uri, sizeof(uri), "spiffe://%s", trust_domain);
    snprintf(root->td, sizeof(root->td), "%s", trust_domain);
    spec = (struct cert_spec){
        .is_ca = true,
        .ku = "keyCertSign,cRLSign",
        .org = "ringmesh",
        /* X.520 ub-common-name is 64 */
        .cn = strlen(trust_domain) < CTC_NAME_SIZE ? trust_domain : "ringmesh root CA",
        .uri = uri,
        .not_before = now - CA_CLOCK_SKEW_S,
        .not_after = now + (time_t)days * 86400,
        .key = &key,
        .issuer_key = &key,
    };
    if (make_cert(&spec, &rng, &root->cert_der, &root->cert_len, err, errlen))
        goto fail;
    if (key_to_der(&key, &root->key_der, &root->key_len)) {
        seterr(err, errlen, "wc_EccKeyToDer failed");
        goto fail;
    }
    root->not_before = spec.not_before;
    root->not_after = spec.not_after;
    wc_ecc_free(&key);
    wc_FreeRng(&rng);
    return root;

fail:
    ca_root_free(root);
    wc_ecc_free(&key);
    wc_FreeRng(&rng);
    return NULL;
}

/* The uncompressed public point of key, computing it when the DER held only the private
 * scalar (PKCS#8 and SEC 1 both make the public key optional). */
static int key_public(ecc_key *key, uint8_t *out, word32 *len)
{
    word32 cap = *len;
    if (wc_ecc_export_x963(key, out, len) == 0)
        return 0;
    *len = cap;
    if (wc_ecc_make_pub(key, NULL))
        return -1;
    return wc_ecc_export_x963(key, out, len) ? -1 : 0;
}

/* The first certificate of a PEM text as malloc'd DER, or NULL. */
static uint8_t *pem_cert(const char *pem, size_t len, size_t *der_len)
{
    char *text = malloc(len + 1);
    uint8_t *der = malloc(len + 1);
    int n = -1;

    if (text && der) {
        memcpy(text, pem, len); /* wolfSSL's PEM scanner wants a NUL at the end */
        text[len] = '\0';
        n = wc_CertPemToDer((const byte *)text, (int)len, der, (int)len + 1, CERT_TYPE);
    }
    free(text);
    if (n <= 0) {
        free(der);
        return NULL;
    }
    *der_len = (size_t)n;
    return der;
}

/* A P-256 private key from PEM (SEC 1 or unencrypted PKCS#8) into *key, which the caller
 * then wc_ecc_free()s. Returns 0 or -EINVAL with *why set. Key bytes are wiped. */
static int pem_key(const char *pem, size_t len, ecc_key *key, const char **why)
{
    char *text = malloc(len + 1);
    uint8_t *der = malloc(len + 1);
    int n, rc = -EINVAL;

    *why = "out of memory";
    if (!text || !der)
        goto out;
    memcpy(text, pem, len);
    text[len] = '\0';
    *why = "encrypted keys are not supported";
    if (strstr(text, "ENCRYPTED"))
        goto out;
    *why = "no PEM private key in it";
    if ((n = wc_KeyPemToDer((const byte *)text, (int)len, der, (int)len + 1, NULL)) <= 0)
        goto out;
    *why = "not an EC private key";
    if (key_from_der(der, (size_t)n, key))
        goto out;
    if (!key->dp || key->dp->id != ECC_SECP256R1) {
        *why = "not a P-256 key";
        wc_ecc_free(key);
        goto out;
    }
    rc = 0;
out:
    if (text)
        explicit_bzero(text, len + 1);
    if (der)
        explicit_bzero(der, len + 1);
    free(text);
    free(der);
    return rc;
}

/* Whether key is the private half of the certificate public key spki. 0, or -EINVAL with
 * *why. wolfSSL 5.5.4's wolfSSL_CTX_check_private_key() passes any P-256 key with any P-256
 * certificate, so this compares the public points itself. */
static int key_matches(ecc_key *key, const struct tlv *spki, const char **why)
{
    uint8_t kpub[80], cpub[80];
    word32 kpub_len = sizeof(kpub), cpub_len = sizeof(cpub), idx = 0;
    ecc_key pub;
    int rc = -EINVAL;

    *why = "cannot derive the key's public key";
    if (key_public(key, kpub, &kpub_len))
        return rc;
    if (wc_ecc_init(&pub)) {
        *why = "wc_ecc_init failed";
        return rc;
    }
    *why = "the certificate's public key is not an EC key";
    if (wc_EccPublicKeyDecode(spki->tlv, &idx, &pub, (word32)spki->tlv_len) == 0 &&
        wc_ecc_export_x963(&pub, cpub, &cpub_len) == 0) {
        *why = "not the certificate's key";
        if (kpub_len == cpub_len && memcmp(kpub, cpub, kpub_len) == 0)
            rc = 0;
    }
    wc_ecc_free(&pub);
    return rc;
}

int ca_check_key_pair(const char *cert_pem, size_t cert_len, const char *key_pem, size_t key_len,
                      char *err, size_t errlen)
{
    struct cert_info ci;
    const char *why;
    char reason[256];
    size_t der_len;
    uint8_t *der = pem_cert(cert_pem, cert_len, &der_len);
    ecc_key key;
    int rc;

    if (!der) {
        seterr(err, errlen, "certificate: no PEM CERTIFICATE in it");
        return -EINVAL;
    }
    if (cert_parse(der, der_len, &ci, reason, sizeof(reason))) {
        seterr(err, errlen, "certificate: %s", reason);
        free(der);
        return -EINVAL;
    }
    if ((rc = pem_key(key_pem, key_len, &key, &why))) {
        seterr(err, errlen, "key: %s", why);
        free(der);
        return rc;
    }
    if ((rc = key_matches(&key, &ci.spki, &why)))
        seterr(err, errlen, "key: %s", why);
    wc_ecc_free(&key);
    free(der);
    return rc;
}

struct ca_root *ca_root_load(const char *cert_pem, size_t cert_len, const char *key_pem,
                             size_t key_len, char *err, size_t errlen)
{
    struct ca_root *root = calloc(1, sizeof(*root));
    struct cert_info ci;
    const char *why;
    char reason[256];
    ecc_key key;

    if (!root) {
        seterr(err, errlen, "out of memory");
        return NULL;
    }
    if (!(root->cert_der = pem_cert(cert_pem, cert_len, &root->cert_len))) {
        seterr(err, errlen, "root-cert.pem: no PEM CERTIFICATE in it");
        goto fail;
    }
    if (cert_parse(root->cert_der, root->cert_len, &ci, reason, sizeof(reason))) {
        seterr(err, errlen, "root-cert.pem: %s", reason);
        goto fail;
    }
    if (!ci.is_ca || (ci.has_ku && !(ci.ku & KU_KEY_CERT_SIGN))) {
        seterr(err, errlen, "root-cert.pem: not a CA certificate (%s)",
               !ci.is_ca ? "basicConstraints cA is not true" : "keyUsage lacks keyCertSign");
        goto fail;
    }
    root->not_before = ci.not_before;
    root->not_after = ci.not_after;
    if (ci.n_uri == 1 && ci.uri.len > 9 && memcmp(ci.uri.v, "spiffe://", 9) == 0) {
        size_t td_len = ci.uri.len - 9;
        const uint8_t *slash = memchr(ci.uri.v + 9, '/', td_len);
        if (slash)
            td_len = (size_t)(slash - (ci.uri.v + 9));
        if (td_len > TD_MAX) {
            seterr(err, errlen, "root-cert.pem: the trust domain of its URI SAN is too long");
            goto fail;
        }
        memcpy(root->td, ci.uri.v + 9, td_len);
        root->td[td_len] = '\0';
        if (!ca_is_trust_domain(root->td)) {
            seterr(err, errlen, "root-cert.pem: URI SAN names an invalid trust domain \"%s\"",
                   printable((const uint8_t *)root->td, td_len, reason, 80));
            goto fail;
        }
    }

    if (pem_key(key_pem, key_len, &key, &why)) {
        seterr(err, errlen, "root-key.pem: %s", why);
        goto fail;
    }
    if (key_matches(&key, &ci.spki, &why)) {
        seterr(err, errlen, "root-key.pem: %s",
               !strcmp(why, "not the certificate's key") ? "not the key of root-cert.pem" : why);
        wc_ecc_free(&key);
        goto fail;
    }
    if (key_to_der(&key, &root->key_der, &root->key_len)) {
        seterr(err, errlen, "root-key.pem: cannot re-encode the key");
        wc_ecc_free(&key);
        goto fail;
    }
    wc_ecc_free(&key);
    return root;

fail:
    ca_root_free(root);
    return NULL;
}

void ca_root_free(struct ca_root *root)
{
    if (!root)
        return;
    if (root->key_der)
        explicit_bzero(root->key_der, root->key_len);
    free(root->key_der);
    free(root->cert_der);
    free(root);
}

const char *ca_root_trust_domain(const struct ca_root *root)
{
    return root->td;
}

time_t ca_root_not_after(const struct ca_root *root)
{
    return root->not_after;
}

const uint8_t *ca_root_der(const struct ca_root *root, size_t *len)
{
    *len = root->cert_len;
    return root->cert_der;
}

int ca_root_pem(const struct ca_root *root, struct ca_pem *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (!(out->cert = to_pem(root->cert_der, root->cert_len, CERT_TYPE)) ||
        key_pem(root->key_der, root->key_len, &out->key)) {
        ca_pem_free(out);
        seterr(err, errlen, "out of memory");
        return -ENOMEM;
    }
    return 0;
}

void ca_pem_free(struct ca_pem *pem)
{
    if (!pem)
        return;
    if (pem->key)
        explicit_bzero(pem->key, strlen(pem->key));
    free(pem->key);
    free(pem->cert);
    memset(pem, 0, sizeof(*pem));
}

/* ---- issuing ------------------------------------------------------------------------- */

int ca_issue(const struct ca_root *root, const struct ca_leaf_req *req, struct ca_pem *out,
             char *err, size_t errlen)
{
    const char *td = req->trust_domain && req->trust_domain[0] ? req->trust_domain : root->td;
    char id[CA_SPIFFE_ID_MAX + 1], t1[32], t2[32];
    struct cert_spec spec;
    uint8_t *der = NULL, *key_der = NULL;
    size_t der_len = 0, key_len = 0;
    ecc_key key, rkey;
    bool key_ok = false, rkey_ok = false;
    WC_RNG rng;
    int rc, wrc;

    memset(out, 0, sizeof(*out));
    if (!td[0]) {
        seterr(err, errlen, "trust domain: the root names none, so one must be given");
        return -EINVAL;
    }
    if (root->td[0] && strcmp(td, root->td) != 0) {
        seterr(err, errlen, "trust domain \"%s\" is not the root's (\"%s\")", td, root->td);
        return -EINVAL;
    }
    if ((rc = ca_mesh_id(td, req->ns, req->sa, id, sizeof(id), err, errlen)))
        return rc;
    for (size_t i = 0; i < req->n_dns; i++)
        if (!model_is_dns_subdomain(req->dns[i])) {
            seterr(err, errlen, "DNS name \"%s\": want a DNS subdomain", req->dns[i]);
            return -EINVAL;
        }
    if (req->hours < 1 || req->hours > CA_LEAF_MAX_HOURS) {
        seterr(err, errlen, "lifetime of %u hours: want 1..%d", req->hours, CA_LEAF_MAX_HOURS);
        return -EINVAL;
    }
    fmt_time(root->not_after, t1, sizeof(t1));
    if (req->now >= root->not_after) {
        seterr(err, errlen, "the root expired at %s", t1);
        return -EINVAL;
    }
    if (req->now + (time_t)req->hours * 3600 > root->not_after) {
        fmt_time(req->now + (time_t)req->hours * 3600, t2, sizeof(t2));
        seterr(err, errlen, "lifetime of %u hours (to %s) outlives the root, which expires at %s",
               req->hours, t2, t1);
        return -EINVAL;
    }

    if (wc_InitRng(&rng)) {
        seterr(err, errlen, "wc_InitRng failed");
        return -EIO;
    }
    rc = -EIO;
    if (key_from_der(root->key_der, root->key_len, &rkey)) {
        seterr(err, errlen, "the root's key does not decode");
        goto out;
    }
    rkey_ok = true;
    if (wc_ecc_init(&key)) {
        seterr(err, errlen, "wc_ecc_init failed");
        goto out;
    }
    key_ok = true;
    if ((wrc = wc_ecc_make_key_ex(&rng, 32, &key, ECC_SECP256R1))) {
        seterr(err, errlen, "wc_ecc_make_key_ex: %s", wc_GetErrorString(wrc));
        goto out;
    }
    spec = (struct cert_spec){
        .is_ca = false,
        .ku = "digitalSignature",
        .eku = "serverAuth,clientAuth",
        .org = "ringmesh",
        .uri = id,
        .dns = req->dns,
        .n_dns = req->n_dns,
        .not_before = req->now - CA_CLOCK_SKEW_S,
        .not_after = req->now + (time_t)req->hours * 3600,
        .key = &key,
        .issuer_key = &rkey,
        .issuer_der = root->cert_der,
        .issuer_len = root->cert_len,
    };
    if ((rc = make_cert(&spec, &rng, &der, &der_len, err, errlen)))
        goto out;
    rc = -ENOMEM;
    if (key_to_der(&key, &key_der, &key_len) || !(out->cert = to_pem(der, der_len, CERT_TYPE)) ||
        key_pem(key_der, key_len, &out->key)) {
        seterr(err, errlen, "encoding the SVID failed");
        ca_pem_free(out);
        goto out;
    }
    rc = 0;

out:
    if (key_der)
        explicit_bzero(key_der, key_len);
    free(key_der);
    free(der);
    if (key_ok)
        wc_ecc_free(&key);
    if (rkey_ok)
        wc_ecc_free(&rkey);
    wc_FreeRng(&rng);
    return rc;
}

/* ---- certificate signing requests ------------------------------------------------------ */

#define CSR_DER_MAX 2048 /* a P-256 request with a short subject is under 300 bytes */

int ca_key_new(char **out, char *err, size_t errlen)
{
    uint8_t *der = NULL;
    size_t der_len = 0;
    WC_RNG rng;
    ecc_key key;
    int rc = -EIO, wrc;

    *out = NULL;
    if (wc_InitRng(&rng)) {
        seterr(err, errlen, "wc_InitRng failed");
        return -EIO;
    }
    if (wc_ecc_init(&key)) {
        seterr(err, errlen, "wc_ecc_init failed");
        wc_FreeRng(&rng);
        return -EIO;
    }
    if ((wrc = wc_ecc_make_key_ex(&rng, 32, &key, ECC_SECP256R1))) {
        seterr(err, errlen, "wc_ecc_make_key_ex: %s", wc_GetErrorString(wrc));
        goto out;
    }
    if ((rc = key_to_der(&key, &der, &der_len)) || (rc = key_pem(der, der_len, out)))
        seterr(err, errlen, "encoding the key failed");
out:
    if (der)
        explicit_bzero(der, der_len);
    free(der);
    wc_ecc_free(&key);
    wc_FreeRng(&rng);
    return rc;
}

int ca_make_csr(const char *key_pem_text, size_t key_len, char **csr_pem, char *err, size_t errlen)
{
    Cert *c = NULL;
    uint8_t *der = NULL;
    const char *why, *step = "";
    bool key_ok = false;
    WC_RNG rng;
    ecc_key key;
    int rc = -EIO, wrc;

    *csr_pem = NULL;
    if (pem_key(key_pem_text, key_len, &key, &why)) {
        seterr(err, errlen, "key: %s", why);
        return -EINVAL;
    }
    key_ok = true;
    if (wc_InitRng(&rng)) {
        seterr(err, errlen, "wc_InitRng failed");
        wc_ecc_free(&key);
        return -EIO;
    }
    if (!(c = wc_CertNew(NULL)) || !(der = malloc(CSR_DER_MAX))) {
        seterr(err, errlen, "out of memory");
        rc = -ENOMEM;
        goto out;
    }
    c->sigType = CTC_SHA256wECDSA;
    snprintf(c->subject.org, sizeof(c->subject.org), "ringmesh");
    step = "wc_MakeCertReq_ex";
    if ((wrc = wc_MakeCertReq_ex(c, der, CSR_DER_MAX, ECC_TYPE, &key)) < 0)
        goto wolf;
    step = "wc_SignCert_ex";
    if ((wrc = wc_SignCert_ex(c->bodySz, c->sigType, der, CSR_DER_MAX, ECC_TYPE, &key, &rng)) < 0)
        goto wolf;
    if (!(*csr_pem = to_pem(der, (size_t)wrc, CERTREQ_TYPE))) {
        seterr(err, errlen, "out of memory");
        rc = -ENOMEM;
        goto out;
    }
    rc = 0;
    goto out;
wolf:
    seterr(err, errlen, "%s: %s (%d)", step, wc_GetErrorString(wrc), wrc);
out:
    wc_CertFree(c);
    free(der);
    if (key_ok)
        wc_ecc_free(&key);
    wc_FreeRng(&rng);
    return rc;
}

/* The P-256 public key of a PEM PKCS#10 request whose self-signature verifies, into *pub
 * (initialized here; the caller wc_ecc_free()s it on success). wolfSSL 5.5.4 parses requests
 * with wolfSSL_X509_REQ_load_certificate_buffer (ParseCert with CERTREQ_TYPE underneath) and
 * checks their signature with wolfSSL_X509_REQ_verify. 0 or -EINVAL with *why. */
static int csr_public_key(const char *pem, size_t len, ecc_key *pub, const char **why)
{
    WOLFSSL_X509 *req = NULL;
    WOLFSSL_EVP_PKEY *pkey = NULL;
    uint8_t spki[256];
    int spki_len = sizeof(spki), rc = -EINVAL;
    word32 idx = 0;
    char *text = malloc(len + 1);

    *why = "out of memory";
    if (!text)
        return -ENOMEM;
    memcpy(text, pem, len);
    text[len] = '\0';
    *why = "not a PEM CERTIFICATE REQUEST";
    if (!strstr(text, "-----BEGIN CERTIFICATE REQUEST-----") ||
        !(req = wolfSSL_X509_REQ_load_certificate_buffer((const unsigned char *)text, (int)len,
                                                         WOLFSSL_FILETYPE_PEM)))
        goto out;
    *why = "its public key does not decode";
    if (!(pkey = wolfSSL_X509_get_pubkey(req)))
        goto out;
    *why = "its signature does not verify with its public key";
    if (wolfSSL_X509_REQ_verify(req, pkey) != WOLFSSL_SUCCESS)
        goto out;
    /* wolfSSL_X509_get_pubkey_buffer() re-parses the DER as a certificate and fails on a
     * request; the EVP key re-encodes as a SubjectPublicKeyInfo */
    *why = "its public key does not encode";
    {
        unsigned char *p = NULL;
        int n = wolfSSL_i2d_PUBKEY(pkey, &p);
        if (n <= 0 || n > spki_len) {
            free(p);
            goto out;
        }
        memcpy(spki, p, (size_t)n);
        spki_len = n;
        XFREE(p, NULL, DYNAMIC_TYPE_OPENSSL);
    }
    if (wc_ecc_init(pub))
        goto out;
    *why = "its public key is not an EC key";
    if (wc_EccPublicKeyDecode(spki, &idx, pub, (word32)spki_len)) {
        wc_ecc_free(pub);
        goto out;
    }
    if (!pub->dp || pub->dp->id != ECC_SECP256R1) {
        *why = "its public key is not P-256";
        wc_ecc_free(pub);
        goto out;
    }
    rc = 0;
out:
    wolfSSL_EVP_PKEY_free(pkey);
    wolfSSL_X509_free(req);
    free(text);
    return rc;
}

int ca_sign_csr(const struct ca_root *root, const char *csr_pem, size_t csr_len,
                const char *spiffe_id, unsigned ttl_s, time_t now, char **cert_pem, char *err,
                size_t errlen)
{
    char reason[256], t1[32], t2[32];
    struct cert_spec spec;
    const char *why;
    uint8_t *der = NULL;
    size_t der_len = 0, td_len;
    ecc_key pub, rkey;
    WC_RNG rng;
    int rc;

    *cert_pem = NULL;
    if (!spiffe_id || ca_spiffe_id_check(spiffe_id, strlen(spiffe_id), true, reason,
                                         sizeof(reason))) {
        seterr(err, errlen, "SPIFFE ID: %s", spiffe_id ? reason : "missing");
        return -EINVAL;
    }
    td_len = strcspn(spiffe_id + 9, "/");
    if (root->td[0] && (strlen(root->td) != td_len || memcmp(spiffe_id + 9, root->td, td_len))) {
        seterr(err, errlen, "SPIFFE ID %s is not in the root's trust domain %s", spiffe_id,
               root->td);
        return -EINVAL;
    }
    if (ttl_s < 10 || ttl_s > (unsigned)CA_LEAF_MAX_HOURS * 3600) {
        seterr(err, errlen, "lifetime of %u s: want 10..%d", ttl_s, CA_LEAF_MAX_HOURS * 3600);
        return -EINVAL;
    }
    fmt_time(root->not_after, t1, sizeof(t1));
    if (now + (time_t)ttl_s > root->not_after) {
        fmt_time(now + (time_t)ttl_s, t2, sizeof(t2));
        seterr(err, errlen, "lifetime of %u s (to %s) outlives the root, which expires at %s",
               ttl_s, t2, t1);
        return -EINVAL;
    }
    if ((rc = csr_public_key(csr_pem, csr_len, &pub, &why))) {
        seterr(err, errlen, "csr: %s", why);
        return rc;
    }
    if (wc_InitRng(&rng)) {
        seterr(err, errlen, "wc_InitRng failed");
        wc_ecc_free(&pub);
        return -EIO;
    }
    if (key_from_der(root->key_der, root->key_len, &rkey)) {
        seterr(err, errlen, "the root's key does not decode");
        rc = -EIO;
        goto out_rng;
    }
    spec = (struct cert_spec){
        .is_ca = false,
        .ku = "digitalSignature",
        .eku = "serverAuth,clientAuth",
        .org = "ringmesh",
        .uri = spiffe_id,
        .not_before = now - CA_CLOCK_SKEW_S,
        .not_after = now + (time_t)ttl_s,
        .key = &pub,
        .issuer_key = &rkey,
        .issuer_der = root->cert_der,
        .issuer_len = root->cert_len,
    };
    if (!(rc = make_cert(&spec, &rng, &der, &der_len, err, errlen)) &&
        !(*cert_pem = to_pem(der, der_len, CERT_TYPE))) {
        seterr(err, errlen, "out of memory");
        rc = -ENOMEM;
    }
    free(der);
    wc_ecc_free(&rkey);
out_rng:
    wc_FreeRng(&rng);
    wc_ecc_free(&pub);
    return rc;
}

/* ---- bootstrap tokens ------------------------------------------------------------------ */

static void hex(const uint8_t *p, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[p[i] >> 4];
        out[2 * i + 1] = d[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static int token_mac(const uint8_t key[CA_TOKEN_KEY_LEN], const char *msg, size_t len,
                     uint8_t mac[WC_SHA256_DIGEST_SIZE])
{
    Hmac h;
    int rc = -EIO;
    if (wc_HmacInit(&h, NULL, INVALID_DEVID))
        return -EIO;
    if (!wc_HmacSetKey(&h, WC_SHA256, key, CA_TOKEN_KEY_LEN) &&
        !wc_HmacUpdate(&h, (const byte *)msg, (word32)len) && !wc_HmacFinal(&h, mac))
        rc = 0;
    wc_HmacFree(&h);
    return rc;
}

int ca_token_make(const uint8_t key[CA_TOKEN_KEY_LEN], const char *ns, const char *sa,
                  time_t expires, char *out, size_t outlen, char *err, size_t errlen)
{
    uint8_t mac[WC_SHA256_DIGEST_SIZE];
    char mac_hex[2 * WC_SHA256_DIGEST_SIZE + 1];
    int n;

    if (!ns || !model_is_dns_label(ns)) {
        seterr(err, errlen, "namespace \"%s\": want a DNS label", ns ? ns : "");
        return -EINVAL;
    }
    if (!sa || !model_is_dns_subdomain(sa)) {
        seterr(err, errlen, "service account \"%s\": want a DNS subdomain", sa ? sa : "");
        return -EINVAL;
    }
    n = snprintf(out, outlen, "rm1_%s_%s_%lld", ns, sa, (long long)expires);
    if (n < 0 || (size_t)n + 1 + sizeof(mac_hex) > outlen) {
        seterr(err, errlen, "token buffer too small");
        return -EINVAL;
    }
    if (token_mac(key, out, (size_t)n, mac)) {
        seterr(err, errlen, "HMAC-SHA256 failed");
        return -EIO;
    }
    hex(mac, sizeof(mac), mac_hex);
    snprintf(out + n, outlen - (size_t)n, "_%s", mac_hex);
    return 0;
}

int ca_token_check(const uint8_t key[CA_TOKEN_KEY_LEN], const char *token, time_t now, char *ns,
                   size_t nslen, char *sa, size_t salen, char *err, size_t errlen)
{
    uint8_t mac[WC_SHA256_DIGEST_SIZE];
    char want[2 * WC_SHA256_DIGEST_SIZE + 1], when[32];
    const char *p[4], *last;
    size_t len = token ? strnlen(token, CA_TOKEN_MAX) : 0, body_len, diff = 0;
    long long exp = 0;

    if (!token || len >= CA_TOKEN_MAX || strncmp(token, "rm1_", 4) != 0)
        goto malformed;
    /* rm1 _ ns _ sa _ expires _ mac */
    p[0] = token + 4;
    for (int i = 1; i < 4; i++)
        if (!(p[i] = strchr(p[i - 1], '_')) || !*++p[i])
            goto malformed;
    if (strchr(p[3], '_') || strlen(p[3]) != 2 * WC_SHA256_DIGEST_SIZE)
        goto malformed;
    last = p[3] - 1;
    body_len = (size_t)(last - token);
    if ((size_t)(p[1] - 1 - p[0]) >= nslen || (size_t)(p[2] - 1 - p[1]) >= salen)
        goto malformed;
    if (token_mac(key, token, body_len, mac)) {
        seterr(err, errlen, "HMAC-SHA256 failed");
        return -EACCES;
    }
    hex(mac, sizeof(mac), want);
    for (size_t i = 0; i < sizeof(want) - 1; i++) /* constant time */
        diff |= (size_t)(want[i] ^ p[3][i]);
    if (diff) {
        seterr(err, errlen, "bad signature (not made with this CA's token key)");
        return -EACCES;
    }
    memcpy(ns, p[0], (size_t)(p[1] - 1 - p[0]));
    ns[p[1] - 1 - p[0]] = '\0';
    memcpy(sa, p[1], (size_t)(p[2] - 1 - p[1]));
    sa[p[2] - 1 - p[1]] = '\0';
    for (const char *q = p[2]; q < last; q++) {
        if (*q < '0' || *q > '9' || exp > (1LL << 40))
            goto malformed;
        exp = exp * 10 + (*q - '0');
    }
    if (!model_is_dns_label(ns) || !model_is_dns_subdomain(sa))
        goto malformed;
    if ((time_t)exp <= now) {
        fmt_time((time_t)exp, when, sizeof(when));
        seterr(err, errlen, "token expired at %s", when);
        return -EACCES;
    }
    return 0;
malformed:
    seterr(err, errlen, "malformed token (want rm1_<ns>_<sa>_<expiry>_<mac>)");
    return -EACCES;
}

int ca_token_key_parse(const char *text, size_t len, uint8_t key[CA_TOKEN_KEY_LEN])
{
    size_t i = 0, n = 0;
    while (i < len && strchr(" \t\r\n", text[i]))
        i++;
    for (; n < 2 * CA_TOKEN_KEY_LEN; n++, i++) {
        int v;
        if (i >= len)
            return -EINVAL;
        char ch = text[i];
        if (ch >= '0' && ch <= '9')
            v = ch - '0';
        else if (ch >= 'a' && ch <= 'f')
            v = ch - 'a' + 10;
        else if (ch >= 'A' && ch <= 'F')
            v = ch - 'A' + 10;
        else
            return -EINVAL;
        if (n % 2 == 0)
            key[n / 2] = (uint8_t)(v << 4);
        else
            key[n / 2] |= (uint8_t)v;
    }
    while (i < len && strchr(" \t\r\n", text[i]))
        i++;
    return i == len ? 0 : -EINVAL;
}

int ca_token_key_new(char key_hex[2 * CA_TOKEN_KEY_LEN + 1])
{
    uint8_t key[CA_TOKEN_KEY_LEN];
    WC_RNG rng;
    int rc = -EIO;
    if (wc_InitRng(&rng))
        return -EIO;
    if (!wc_RNG_GenerateBlock(&rng, key, sizeof(key))) {
        hex(key, sizeof(key), key_hex);
        rc = 0;
    }
    explicit_bzero(key, sizeof(key));
    wc_FreeRng(&rng);
    return rc;
}
