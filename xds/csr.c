/*
 * csr.c - see csr.h. wolfSSL 5.5.4 (Debian 12) exports wc_MakeCertReq_ex and
 * wc_SignCert_ex (built with WOLFSSL_CERT_REQ and WOLFSSL_CERT_GEN); a CSR is a Cert
 * struct with only the subject set, its body made by the first and signed by the second.
 */
#include "csr.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/random.h>

#define CSR_DER_MAX 2048

static char *to_pem(const uint8_t *der, size_t len, int type)
{
    size_t cap = len * 2 + 128;
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

int csr_make(const char *ns, const char *sa, char **key_pem, char **csr_pem, char *err,
             size_t errlen)
{
    WC_RNG rng;
    ecc_key key;
    Cert *req = NULL;
    uint8_t *der = NULL, kder[256];
    const char *step = "wc_InitRng";
    int rc = -EIO, wrc = 0, n;
    bool have_rng = false, have_key = false;

    *key_pem = *csr_pem = NULL;
    if ((wrc = wc_InitRng(&rng)))
        goto wolf;
    have_rng = true;
    step = "wc_ecc_init";
    if ((wrc = wc_ecc_init(&key)))
        goto wolf;
    have_key = true;
    step = "wc_ecc_make_key_ex";
    if ((wrc = wc_ecc_make_key_ex(&rng, 32, &key, ECC_SECP256R1)))
        goto wolf;
    if (!(req = wc_CertNew(NULL)) || !(der = malloc(CSR_DER_MAX))) {
        snprintf(err, errlen, "out of memory");
        rc = -ENOMEM;
        goto out;
    }
    req->version = 0; /* PKCS#10 v1 */
    req->sigType = CTC_SHA256wECDSA;
    snprintf(req->subject.org, sizeof(req->subject.org), "ringmesh");
    snprintf(req->subject.commonName, sizeof(req->subject.commonName), "%.30s.%.30s", sa, ns);
    step = "wc_MakeCertReq_ex";
    if ((wrc = wc_MakeCertReq_ex(req, der, CSR_DER_MAX, ECC_TYPE, &key)) < 0)
        goto wolf;
    step = "wc_SignCert_ex";
    if ((wrc = wc_SignCert_ex(req->bodySz, req->sigType, der, CSR_DER_MAX, ECC_TYPE, &key, &rng)) <
        0)
        goto wolf;
    n = wrc;
    step = "wc_EccKeyToDer";
    if ((wrc = wc_EccKeyToDer(&key, kder, sizeof(kder))) <= 0)
        goto wolf;
    *csr_pem = to_pem(der, (size_t)n, CERTREQ_TYPE);
    *key_pem = to_pem(kder, (size_t)wrc, ECC_PRIVATEKEY_TYPE);
    explicit_bzero(kder, sizeof(kder));
    if (!*csr_pem || !*key_pem) {
        free(*csr_pem);
        if (*key_pem)
            explicit_bzero(*key_pem, strlen(*key_pem));
        free(*key_pem);
        *csr_pem = *key_pem = NULL;
        snprintf(err, errlen, "PEM encoding failed");
        goto out;
    }
    rc = 0;
    goto out;
wolf:
    snprintf(err, errlen, "%s: %s (%d)", step, wc_GetErrorString(wrc), wrc);
out:
    if (req)
        wc_CertFree(req);
    free(der);
    if (have_key)
        wc_ecc_free(&key);
    if (have_rng)
        wc_FreeRng(&rng);
    return rc;
}
