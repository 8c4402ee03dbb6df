/*
 * log.h - structured logging for the daemon and the engine.
 *
 * One line per record to stderr, as text ("2026-11-23T03:40:00.123Z INFO
 * msg key=value") or JSON lines ({"ts":..,"level":..,"msg":..,"req":..}).
 * Thread-safe; a record is written with one write(2).
 */
#ifndef GX_LOG_H
#define GX_LOG_H

enum { GX_LOG_DEBUG = 0, GX_LOG_INFO = 1, GX_LOG_WARN = 2, GX_LOG_ERROR = 3 };

/* level: GX_LOG_*; json: 1 for JSON lines. */
void gx_log_setup(int level, int json);
int gx_log_level_from_name(const char *name); /* -1 if unknown */
int gx_log_enabled(int level);

/* Log a record. req may be NULL (request id). The message is printf-style;
 * in JSON mode it is escaped. */
void gx_log(int level, const char *req, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define GX_LOGI(...) gx_log(GX_LOG_INFO, NULL, __VA_ARGS__)
#define GX_LOGW(...) gx_log(GX_LOG_WARN, NULL, __VA_ARGS__)
#define GX_LOGE(...) gx_log(GX_LOG_ERROR, NULL, __VA_ARGS__)
#endif
