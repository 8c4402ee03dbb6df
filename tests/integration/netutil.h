/*
 * netutil.h - network helpers for integration tests that need more than a
 * polite HTTP client: a self-signed certificate made at test time
 * (OpenSSL), a raw TLS client whose protocol versions the test chooses, and
 * raw TCP connections that send what the test wants, when it wants.
 */
#ifndef GX_ITEST_NETUTIL_H
#define GX_ITEST_NETUTIL_H

#include <stddef.h>

/* Write a fresh P-256 key and a self-signed certificate for 127.0.0.1 and
 * localhost (valid one day) to cert_path and key_path. 0 or -1. */
int tu_make_cert(const char *cert_path, const char *key_path);

/* GET path over TLS to 127.0.0.1:port offering only the versions
 * min_ver..max_ver (TLS1_VERSION...: OpenSSL's constants; old versions are
 * allowed on our side so that only the server can refuse them), verifying
 * the server with ca_file. Returns the HTTP status, or -1 when the
 * handshake failed; *version (optional) gets the negotiated version. */
int tu_tls_get(int port, int min_ver, int max_ver, const char *ca_file, const char *path, int *version);

/* Send raw bytes to 127.0.0.1:port and read what comes back (at most
 * cap - 1 bytes, NUL-terminated) until the peer closes or timeout_ms
 * passes. Returns the bytes read, or -1 when it could not connect. */
long tu_raw_exchange(int port, const char *send_buf, size_t send_len, char *out, size_t cap, int timeout_ms);

/* Open a TCP connection to 127.0.0.1:port (receive timeout timeout_ms).
 * The descriptor, or -1. */
int tu_connect(int port, int timeout_ms);

/* Send a request on fd and read one response: the head and a body of its
 * Content-Length. out gets the whole response (NUL-terminated, cap bytes
 * at most). Returns the status, or -1 when the peer closed or timed out
 * first. */
int tu_http_on(int fd, const char *req, char *out, size_t cap);

/* 1 when the peer has closed fd (EOF or reset), 0 when it is open and has
 * nothing to read. Does not wait. */
int tu_peer_closed(int fd);

#endif
