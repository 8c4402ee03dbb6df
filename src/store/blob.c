/*
 * blob.c - the content-addressed blob folder.
 *
 * A blob's bytes live in <dir>/<hex[0:2]>/<hex>, where hex is the SHA-256 of
 * the bytes, so equal bytes are stored once whoever uploads them. A file is
 * written under a temporary name in the same folder, fsync'd, renamed into
 * place and the folder fsync'd, so a file under its final name is always
 * complete. Ids are checked (gx_store_blob_id_valid) before they become
 * paths: only 64 lowercase hex digits reach the file system.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "fsdir.h"
#include "gexec/gexec_fault.h"
#include "store_int.h"

static int sys_err(gx_error *err, const char *what, const char *path) {
    return gx_error_set(err, GX_ESTORE, "blob", "%s %s: %s", what, path, strerror(errno));
}

int gx__blob_hash(const void *bytes, size_t len, char id[GX_STORE_BLOB_ID_LEN], gx_error *err) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(bytes, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
        return gx_error_set(err, GX_ESTORE, "blob", "SHA-256 failed (OpenSSL EVP_Digest)");
    static const char hx[] = "0123456789abcdef";
    memcpy(id, "sha256:", 7);
    for (int i = 0; i < 32; i++) {
        id[7 + 2 * i] = hx[md[i] >> 4];
        id[8 + 2 * i] = hx[md[i] & 15];
    }
    id[71] = '\0';
    return 0;
}

int gx__blob_path(const char *dir, const char *id, char *path, size_t cap) {
    if (!gx_store_blob_id_valid(id)) return GX_EINVAL;
    const char *hex = id + 7;
    int n = snprintf(path, cap, "%s/%.2s/%s", dir, hex, hex);
    if (n < 0 || (size_t)n >= cap) return GX_EOVERFLOW;
    return 0;
}

static int write_all(int fd, const unsigned char *b, size_t len) {
    while (len) {
        ssize_t w = write(fd, b, len > (1u << 30) ? (1u << 30) : len);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        b += w;
        len -= (size_t)w;
    }
    return 0;
}

/* 1 when the file at path holds exactly bytes (len of them). */
static int same_bytes(const char *path, const void *bytes, size_t len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    unsigned char buf[65536];
    size_t off = 0;
    int same = 1;
    while (same && off < len) {
        size_t want = len - off < sizeof buf ? len - off : sizeof buf;
        ssize_t r = read(fd, buf, want);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0 || memcmp(buf, (const unsigned char *)bytes + off, (size_t)r)) same = 0;
        else off += (size_t)r;
    }
    close(fd);
    return same;
}

int gx__blob_write(const char *dir, const char *id, const void *bytes, size_t len, int reuse,
                   gx_error *err) {
    char path[4200], sub[4200], tmp[4300];
    if (gx__blob_path(dir, id, path, sizeof path))
        return gx_error_set(err, GX_EINVAL, "blob_dir", "blob path too long");
    struct stat st;
    if (reuse && stat(path, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size == len &&
        same_bytes(path, bytes, len))
        return 0; /* already stored: content addressed (and not damaged: else written again) */
    snprintf(sub, sizeof sub, "%s/%.2s", dir, id + 7);
    int rc = gx__make_dir(sub, "blob", err);
    if (rc) return rc;
    snprintf(tmp, sizeof tmp, "%s/.tmp-%s-XXXXXX", sub, id + 7);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) return sys_err(err, "cannot create", tmp);
    int full = gx_fault_take(GX_FAULT_STORE_FULL, -1, NULL); /* injected ENOSPC */
    if (full || write_all(fd, bytes, len) != 0 || fsync(fd) != 0) {
        if (full) errno = ENOSPC;
        rc = sys_err(err, "cannot write", tmp);
        close(fd);
        unlink(tmp);
        return rc;
    }
    if (close(fd) != 0) {
        rc = sys_err(err, "cannot close", tmp);
        unlink(tmp);
        return rc;
    }
    /* A concurrent put of the same bytes may rename first; replacing a file
     * with identical content is harmless. */
    if (rename(tmp, path) != 0) {
        rc = sys_err(err, "cannot rename into", path);
        unlink(tmp);
        return rc;
    }
    return gx__sync_dir(sub, "blob", err);
}

int gx__blob_damaged(gx_error *err, const char *id, const char *why) {
    return gx_error_set(err, GX_ESTORE, "blob",
                        "the bytes of blob %s on disk are damaged (%s); upload the file again to repair it", id, why);
}

int gx__blob_check_fd(int fd, const char *path, const char *id, int64_t size, gx_error *err) {
    enum { CHUNK = 1 << 18 };
    unsigned char *buf = malloc(CHUNK);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int rc = 0;
    if (!buf || !md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        rc = gx_error_set(err, GX_ENOMEM, "blob", "cannot start a SHA-256 (OpenSSL)");
    int64_t got = 0;
    while (rc == 0) { /* pread: the caller's offset stays where it was */
        ssize_t r = pread(fd, buf, CHUNK, (off_t)got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) rc = sys_err(err, "cannot read", path);
        if (r <= 0) break;
        got += r;
        if (EVP_DigestUpdate(md, buf, (size_t)r) != 1) rc = gx_error_set(err, GX_ESTORE, "blob", "SHA-256 failed");
    }
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    if (rc == 0 && (EVP_DigestFinal_ex(md, d, &dlen) != 1 || dlen != 32))
        rc = gx_error_set(err, GX_ESTORE, "blob", "SHA-256 failed");
    EVP_MD_CTX_free(md);
    free(buf);
    if (rc) return rc;
    if (got != size) {
        char why[96];
        snprintf(why, sizeof why, "%lld bytes, not %lld", (long long)got, (long long)size);
        return gx__blob_damaged(err, id, why);
    }
    static const char hx[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++)
        if (id[7 + 2 * i] != hx[d[i] >> 4] || id[8 + 2 * i] != hx[d[i] & 15])
            return gx__blob_damaged(err, id, "their SHA-256 is not the id's");
    return 0;
}

int gx__blob_load(const char *path, int64_t size, void **bytes, gx_error *err) {
    *bytes = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return sys_err(err, "cannot open", path);
    unsigned char *buf = malloc(size > 0 ? (size_t)size : 1);
    if (!buf) {
        close(fd);
        return gx_error_set(err, GX_ENOMEM, "blob", "out of memory for %lld bytes",
                            (long long)size);
    }
    size_t got = 0;
    while (got < (size_t)size) {
        ssize_t r = read(fd, buf + got, (size_t)size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (got != (size_t)size) {
        free(buf);
        return gx_error_set(err, GX_ESTORE, "blob", "%s: read %zu of %lld bytes", path, got,
                            (long long)size);
    }
    *bytes = buf;
    return 0;
}
