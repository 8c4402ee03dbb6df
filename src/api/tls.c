/*
 * tls.c - the certificate and key of the HTTPS API: read both PEM files,
 * check that they parse and belong together, before libmicrohttpd (GnuTLS)
 * gets them. OpenSSL's libcrypto does the checking because gexecd links it
 * already (key hashes); the TLS itself is GnuTLS inside libmicrohttpd.
 * gexecd --check-config runs the same check. See http.h.
 */
#include <errno.h>
#include <microhttpd.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

#define MAX_PEM_BYTES (1u << 20) /* a certificate chain or key is small */

/* Read a whole PEM file, NUL-terminated, into *out (malloc'd). */
static int read_pem(const char *path, const char *key, char **out, gx_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return gx_error_set(err, GX_EIO, key, "%s: cannot read '%s': %s", key, path, strerror(errno));
    char *buf = malloc(MAX_PEM_BYTES + 1);
    size_t n = buf ? fread(buf, 1, MAX_PEM_BYTES + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (!buf) return gx_error_set(err, GX_ENOMEM, key, "out of memory");
    if (bad || n > MAX_PEM_BYTES) {
        free(buf);
        return gx_error_set(err, GX_EINVAL, key, "%s: '%s' is %s", key, path,
                            bad ? "unreadable" : "larger than 1 MiB (not a PEM file)");
    }
    buf[n] = '\0';
    *out = buf;
    return 0;
}

/* Never prompt for a passphrase: an encrypted key is refused. */
static int no_password(char *buf, int size, int rwflag, void *u) {
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

int gx_http_tls_load(const char *cert_path, const char *key_path, char **cert_pem, char **key_pem, gx_error *err) {
    *cert_pem = *key_pem = NULL;
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
        return gx_error_set(err, GX_EUNSUPPORTED, "tls.cert",
                            "tls.cert: this libmicrohttpd was built without TLS; unset tls.cert and tls.key "
                            "or install one with GnuTLS");
    char *cp = NULL, *kp = NULL;
    int rc = read_pem(cert_path, "tls.cert", &cp, err);
    if (!rc) rc = read_pem(key_path, "tls.key", &kp, err);
    if (rc) goto done;
    BIO *cb = BIO_new_mem_buf(cp, -1), *kb = BIO_new_mem_buf(kp, -1);
    X509 *x = cb ? PEM_read_bio_X509(cb, NULL, no_password, NULL) : NULL;
    EVP_PKEY *k = kb ? PEM_read_bio_PrivateKey(kb, NULL, no_password, NULL) : NULL;
    if (!cb || !kb)
        rc = gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
    else if (!x)
        rc = gx_error_set(err, GX_EINVAL, "tls.cert", "tls.cert: '%s' holds no PEM certificate", cert_path);
    else if (!k)
        rc = gx_error_set(err, GX_EINVAL, "tls.key",
                          "tls.key: '%s' holds no PEM private key (or one encrypted with a passphrase)", key_path);
    else if (X509_check_private_key(x, k) != 1)
        rc = gx_error_set(err, GX_EINVAL, "tls.key", "tls.key: '%s' is not the key of the certificate in '%s'",
                          key_path, cert_path);
    ERR_clear_error();
    X509_free(x);
    EVP_PKEY_free(k);
    BIO_free(cb);
    BIO_free(kb);
done:
    if (rc) {
        free(cp);
        if (kp) OPENSSL_cleanse(kp, strlen(kp));
        free(kp);
        return rc;
    }
    *cert_pem = cp;
    *key_pem = kp;
    return 0;
}
