/*
 * log.c - see log.h.
 */
#include "log.h"

#include "jsonw.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int g_level = GX_LOG_INFO;
static int g_json;
static const char *const names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void gx_log_setup(int level, int json) {
    g_level = level;
    g_json = json;
}

int gx_log_level_from_name(const char *name) {
    static const char *const lower[] = {"debug", "info", "warn", "error"};
    for (int i = 0; name && i < 4; i++)
        if (!strcmp(name, lower[i])) return i;
    return -1;
}

int gx_log_enabled(int level) { return level >= g_level; }

/* Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlong
 * forms, surrogates or code points past U+10FFFF), 0 if there is none. */
static size_t utf8_len(const unsigned char *s) {
    unsigned char c = s[0];
    size_t n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (!n) return 0;
    unsigned char lo = c == 0xe0 ? 0xa0 : c == 0xf0 ? 0x90 : 0x80, hi = c == 0xed ? 0x9f : c == 0xf4 ? 0x8f : 0xbf;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf) return 0;
    return n;
}

static size_t json_escape(char *dst, size_t cap, const char *s) {
    size_t o = 0;
    for (; *s && o + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            dst[o++] = '\\';
            dst[o++] = (char)c;
        } else if (c < 0x20) {
            o += (size_t)snprintf(dst + o, cap - o, "\\u%04x", c);
        } else if (c >= 0x80) { /* JSON is UTF-8: bytes that are not (a request's %ff) become U+FFFD */
            size_t n = utf8_len((const unsigned char *)s);
            if (!n) {
                memcpy(dst + o, "\\ufffd", 6);
                o += 6;
            } else {
                memcpy(dst + o, s, n);
                o += n;
                s += n - 1;
            }
        } else {
            dst[o++] = (char)c;
        }
    }
    dst[o] = '\0';
    return o;
}

void gx_log(int level, const char *req, const char *fmt, ...) {
    if (level < g_level) return;
    if (level < 0) level = 0;
    if (level > 3) level = 3;
    char msg[2048], line[4608], ts[40];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    gx_time_text((int64_t)now.tv_sec * 1000000000 + now.tv_nsec, 3, ts);
    int len;
    if (g_json) {
        char esc[4200];
        json_escape(esc, sizeof esc, msg);
        len = snprintf(line, sizeof line, "{\"ts\":\"%s\",\"level\":\"%s\",%s%s%s\"msg\":\"%s\"}\n", ts,
                       names[level], req ? "\"req\":\"" : "", req ? req : "", req ? "\"," : "", esc);
    } else {
        /* one record, one line: control bytes from requests cannot forge more */
        for (char *c = msg; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
        len = snprintf(line, sizeof line, "%s %-5s %s%s%s%s\n", ts, names[level], req ? "[" : "", req ? req : "",
                       req ? "] " : "", msg);
    }
    if (len > (int)sizeof line - 1) {
        len = (int)sizeof line - 1;
        line[len - 1] = '\n';
    }
    ssize_t w = write(2, line, (size_t)len);
    (void)w;
}
