/*
 * xds_csr_test.c - xds/ca's signing path: a key and a PKCS#10 request made by ca_key_new and
 * ca_make_csr, signed by ca_sign_csr into a leaf whose SPIFFE ID is the one asked for (not
 * anything in the CSR), verified by wolfSSL's certificate manager against the root; refusals
 * of a tampered request (bad signature), garbage, a foreign trust domain, a bad lifetime.
 * Bootstrap tokens: made and checked, then refused when forged, tampered, expired, made with
 * another key, truncated.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn_public.h>

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

/* The leaf's DER from PEM. */
static int leaf_der(const char *pem, uint8_t *der, int cap)
{
    return wc_CertPemToDer((const byte *)pem, (int)strlen(pem), der, cap, CERT_TYPE);
}

static void test_csr(void)
{
    time_t now = time(NULL);
    struct ca_root *root = ca_root_new("cluster.local", 30, now, err, sizeof(err));
    struct ca_root *other = ca_root_new("cluster.local", 30, now, err, sizeof(err));
    char *key = NULL, *csr = NULL, *cert = NULL, id[CA_SPIFFE_ID_MAX + 1];
    uint8_t der[4096], *rder;
    size_t rlen;
    int n;

    ok(root && other, "roots made");
    is_int(ca_key_new(&key, err, sizeof(err)), 0, "ca_key_new");
    ok(key && has(key, "-----BEGIN EC PRIVATE KEY-----"), "the key is SEC 1 PEM");
    is_int(ca_make_csr(key, strlen(key), &csr, err, sizeof(err)), 0, "ca_make_csr");
    ok(csr && has(csr, "-----BEGIN CERTIFICATE REQUEST-----"), "the CSR is PEM PKCS#10");

    is_int(ca_sign_csr(root, csr, strlen(csr), "spiffe://cluster.local/ns/default/sa/web", 3600,
                       now, &cert, err, sizeof(err)),
           0, "ca_sign_csr");
    if (!cert)
        printf("#   %s\n", err);
    n = cert ? leaf_der(cert, der, sizeof(der)) : -1;
    ok(n > 0, "the leaf is a PEM certificate");
    is_int(ca_svid_id(der, (size_t)(n > 0 ? n : 0), id, sizeof(id), err, sizeof(err)), 0,
           "the leaf is an SVID");
    is_str(id, "spiffe://cluster.local/ns/default/sa/web", "with the SPIFFE ID asked for");

    /* the leaf's key is the CSR's: ca_check_key_pair compares the public points */
    is_int(ca_check_key_pair(cert, strlen(cert), key, strlen(key), err, sizeof(err)), 0,
           "the leaf carries the CSR's public key");

    /* chain: verifies against its root, not against another */
    {
        WOLFSSL_CERT_MANAGER *cm = wolfSSL_CertManagerNew(), *cm2 = wolfSSL_CertManagerNew();
        rder = (uint8_t *)ca_root_der(root, &rlen);
        ok(wolfSSL_CertManagerLoadCABuffer(cm, rder, (long)rlen, WOLFSSL_FILETYPE_ASN1) ==
               WOLFSSL_SUCCESS,
           "root loaded");
        is_int(wolfSSL_CertManagerVerifyBuffer(cm, der, n, WOLFSSL_FILETYPE_ASN1),
               WOLFSSL_SUCCESS, "the leaf verifies against its root");
        rder = (uint8_t *)ca_root_der(other, &rlen);
        wolfSSL_CertManagerLoadCABuffer(cm2, rder, (long)rlen, WOLFSSL_FILETYPE_ASN1);
        ok(wolfSSL_CertManagerVerifyBuffer(cm2, der, n, WOLFSSL_FILETYPE_ASN1) !=
               WOLFSSL_SUCCESS,
           "and not against another root");
        wolfSSL_CertManagerFree(cm);
        wolfSSL_CertManagerFree(cm2);
    }
    free(cert);
    cert = NULL;

    /* a flipped byte in the signature part of the request */
    {
        uint8_t cder[1024];
        int cn = wc_CertPemToDer((const byte *)csr, (int)strlen(csr), cder, sizeof(cder),
                                 CERTREQ_TYPE);
        ok(cn > 0, "CSR PEM decodes");
        cder[cn - 5] ^= 0x01;
        char pem[2048];
        int pn = wc_DerToPem(cder, (word32)cn, (byte *)pem, sizeof(pem) - 1, CERTREQ_TYPE);
        pem[pn > 0 ? pn : 0] = 0;
        is_int(ca_sign_csr(root, pem, strlen(pem), "spiffe://cluster.local/ns/a/sa/b", 3600, now,
                           &cert, err, sizeof(err)),
               -EINVAL, "a tampered CSR is refused");
        ok(has(err, "csr: "), "naming the CSR");
        ok(!cert, "and nothing issued");
    }
    is_int(ca_sign_csr(root, "garbage", 7, "spiffe://cluster.local/ns/a/sa/b", 3600, now, &cert,
                       err, sizeof(err)),
           -EINVAL, "garbage is refused");
    ok(has(err, "csr: not a PEM CERTIFICATE REQUEST"), "as not a CSR");
    is_int(ca_sign_csr(root, csr, strlen(csr), "spiffe://other.org/ns/a/sa/b", 3600, now, &cert,
                       err, sizeof(err)),
           -EINVAL, "a foreign trust domain is refused");
    ok(has(err, "trust domain"), "naming the trust domain");
    is_int(ca_sign_csr(root, csr, strlen(csr), "spiffe://cluster.local", 3600, now, &cert, err,
                       sizeof(err)),
           -EINVAL, "an ID without a path is refused");
    is_int(ca_sign_csr(root, csr, strlen(csr), "spiffe://cluster.local/ns/a/sa/b", 9, now, &cert,
                       err, sizeof(err)),
           -EINVAL, "a 9 s lifetime is refused (10 s is the least)");
    is_int(ca_sign_csr(root, csr, strlen(csr), "spiffe://cluster.local/ns/a/sa/b", 40 * 86400,
                       now, &cert, err, sizeof(err)),
           -EINVAL, "a leaf outliving the root is refused");
    ok(has(err, "outlives the root"), "saying so");
    {
        char *none = NULL;
        is_int(ca_make_csr("nope", 4, &none, err, sizeof(err)), -EINVAL, "a CSR needs a key");
        ok(!none, "and makes none");
    }
    ok(has(err, "key: "), "naming the key");

    free(key);
    free(csr);
    ca_root_free(root);
    ca_root_free(other);
}

static void test_tokens(void)
{
    uint8_t key[CA_TOKEN_KEY_LEN], key2[CA_TOKEN_KEY_LEN];
    char hexkey[2 * CA_TOKEN_KEY_LEN + 1], tok[CA_TOKEN_MAX], bad[CA_TOKEN_MAX + 64], ns[64],
        sa[254];
    time_t now = 1800000000;

    is_int(ca_token_key_new(hexkey), 0, "token key made");
    is_int(strlen(hexkey), 64, "64 hex digits");
    is_int(ca_token_key_parse(hexkey, 64, key), 0, "and parsed back");
    ca_token_key_new(hexkey);
    ca_token_key_parse(hexkey, 64, key2);
    is_int(ca_token_key_parse("12zz", 4, key2), -EINVAL, "a bad key file is refused");

    is_int(ca_token_make(key, "default", "web.front", now + 3600, tok, sizeof(tok), err,
                         sizeof(err)),
           0, "token made");
    ok(!strncmp(tok, "rm1_default_web.front_1800003600_", 33), "token text: %s", tok);
    is_int(ca_token_check(key, tok, now, ns, sizeof(ns), sa, sizeof(sa), err, sizeof(err)), 0,
           "token checks");
    is_str(ns, "default", "names the namespace");
    is_str(sa, "web.front", "and the service account");
    is_int(ca_token_check(key2, tok, now, ns, sizeof(ns), sa, sizeof(sa), err, sizeof(err)),
           -EACCES, "another key's token is refused");
    ok(has(err, "bad signature"), "bad signature");
    is_int(ca_token_check(key, tok, now + 3600, ns, sizeof(ns), sa, sizeof(sa), err, sizeof(err)),
           -EACCES, "an expired token is refused");
    ok(has(err, "expired"), "as expired");
    /* the identity changed, the MAC kept: forged */
    snprintf(bad, sizeof(bad), "rm1_kube-system_web.front%s", tok + strlen("rm1_default_web.front"));
    is_int(ca_token_check(key, bad, now, ns, sizeof(ns), sa, sizeof(sa), err, sizeof(err)),
           -EACCES, "a token with another namespace is refused");
    snprintf(bad, sizeof(bad), "%.*s", (int)strlen(tok) - 1, tok);
    is_int(ca_token_check(key, bad, now, ns, sizeof(ns), sa, sizeof(sa), err, sizeof(err)),
           -EACCES, "a truncated token is refused");
    is_int(ca_token_check(key, "rm1____", now, ns, sizeof(ns), sa, sizeof(sa), err, sizeof(err)),
           -EACCES, "an empty token is refused");
    is_int(ca_token_check(key, "Bearer x", now, ns, sizeof(ns), sa, sizeof(sa), err, sizeof(err)),
           -EACCES, "garbage is refused");
    is_int(ca_token_make(key, "Bad_NS", "web", now, tok, sizeof(tok), err, sizeof(err)), -EINVAL,
           "a token for a bad namespace is not made");
}

int main(void)
{
    wolfSSL_Init();
    test_csr();
    test_tokens();
    wolfSSL_Cleanup();
    return tap_done();
}
