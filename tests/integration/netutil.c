/*
 * netutil.c - see netutil.h. OpenSSL is the test's own TLS stack, a second
 * implementation next to the daemon's GnuTLS.
 */
#include "netutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int add_ext(X509 *x, int nid, const char *value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!e) return -1;
    int ok = X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    return ok ? 0 : -1;
}

int tu_make_cert(const char *cert_path, const char *key_path) {
    int rc = -1;
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    FILE *cf = NULL, *kf = NULL;
    if (!k || !x) goto out;
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), (long)time(NULL));
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 24 * 3600);
    X509_set_pubkey(x, k);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1, 0);
    X509_set_issuer_name(x, n);
    if (add_ext(x, NID_basic_constraints, "critical,CA:TRUE") ||
        add_ext(x, NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost") ||
        add_ext(x, NID_subject_key_identifier, "hash"))
        goto out;
    if (!X509_sign(x, k, EVP_sha256())) goto out;
    cf = fopen(cert_path, "w");
    kf = fopen(key_path, "w");
    if (!cf || !kf) goto out;
    if (PEM_write_X509(cf, x) && PEM_write_PrivateKey(kf, k, NULL, NULL, 0, NULL, NULL)) rc = 0;
out:
    if (cf) fclose(cf);
    if (kf) fclose(kf);
    X509_free(x);
    EVP_PKEY_free(k);
    return rc;
}

int tu_connect(int port, int timeout_ms) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        return -1;
    }
    return fd;
}

int tu_tls_get(int port, int min_ver, int max_ver, const char *ca_file, const char *path, int *version) {
    int status = -1;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = NULL;
    int fd = -1;
    if (!ctx) return -1;
    /* level 0 lets this side offer TLS 1.0/1.1: only the server may refuse */
    SSL_CTX_set_security_level(ctx, 0);
    SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0");
    SSL_CTX_set_min_proto_version(ctx, min_ver);
    SSL_CTX_set_max_proto_version(ctx, max_ver);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (!SSL_CTX_load_verify_locations(ctx, ca_file, NULL)) goto out;
    if ((fd = tu_connect(port, 5000)) < 0) goto out;
    ssl = SSL_new(ctx);
    if (!ssl || !SSL_set_fd(ssl, fd)) goto out;
    SSL_set1_host(ssl, "127.0.0.1");
    if (SSL_connect(ssl) != 1) goto out;
    if (version) *version = SSL_version(ssl);
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
    if (SSL_write(ssl, req, n) != n) goto out;
    char buf[512];
    int got = 0, r;
    while (got < (int)sizeof buf - 1 && (r = SSL_read(ssl, buf + got, (int)sizeof buf - 1 - got)) > 0) got += r;
    buf[got] = '\0';
    int st;
    if (sscanf(buf, "HTTP/1.%*d %d", &st) == 1) status = st;
out:
    ERR_clear_error();
    if (ssl) SSL_free(ssl);
    if (fd >= 0) close(fd);
    SSL_CTX_free(ctx);
    return status;
}

long tu_raw_exchange(int port, const char *send_buf, size_t send_len, char *out, size_t cap, int timeout_ms) {
    int fd = tu_connect(port, timeout_ms);
    if (fd < 0) return -1;
    if (send_len && send(fd, send_buf, send_len, MSG_NOSIGNAL) < 0) {
        close(fd);
        return -1;
    }
    size_t got = 0;
    for (;;) {
        if (got + 1 >= cap) break;
        ssize_t r = recv(fd, out + got, cap - 1 - got, 0);
        if (r <= 0) break; /* closed, reset or timed out */
        got += (size_t)r;
    }
    out[got] = '\0';
    close(fd);
    return (long)got;
}

int tu_http_on(int fd, const char *req, char *out, size_t cap) {
    size_t n = strlen(req);
    if (send(fd, req, n, MSG_NOSIGNAL) != (ssize_t)n) return -1;
    size_t got = 0;
    out[0] = '\0';
    for (;;) {
        char *end = strstr(out, "\r\n\r\n");
        if (end) {
            const char *cl = strstr(out, "Content-Length:");
            if (!cl) cl = strstr(out, "content-length:");
            size_t want = (size_t)(end + 4 - out) + (cl && cl < end ? strtoul(cl + 15, NULL, 10) : 0);
            if (got >= want || got + 1 >= cap) break;
        }
        if (got + 1 >= cap) break;
        ssize_t r = recv(fd, out + got, cap - 1 - got, 0);
        if (r <= 0) return -1;
        got += (size_t)r;
        out[got] = '\0';
    }
    int st;
    return sscanf(out, "HTTP/1.%*d %d", &st) == 1 ? st : -1;
}

int tu_peer_closed(int fd) {
    char c;
    ssize_t r = recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK);
    if (r == 0) return 1;
    if (r < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : 1;
    return 0;
}
