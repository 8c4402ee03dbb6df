/*
 * daemon.h - run a real gexecd for an integration test.
 *
 * The daemon binary is $GEXECD if set, else $GX_BUILD_DIR/gexecd, else
 * gexecd next to the test binary. It listens on a free port of 127.0.0.1
 * and keeps its data in a fresh temporary folder, removed at the end. When
 * no daemon is built the test prints "skipped: gexecd not built" and exits
 * 77, which CTest reports as skipped.
 */
#ifndef GX_ITEST_DAEMON_H
#define GX_ITEST_DAEMON_H

#include <sys/types.h>

#define GXD_SKIP 77

typedef struct gxd {
    pid_t pid;
    int port;
    char dir[256];  /* data folder (mkdtemp) */
    char log[300];  /* the daemon's stdout and stderr */
    char url[64];   /* "http://127.0.0.1:PORT" (https with a certificate) */
    char bin[1024]; /* gexecd used */
    char key[64];   /* its admin key (GEXEC_ADMIN_KEY) */
} gxd;

/* Path of a program of the build (gexecd, gexec) into out; 0 if it exists. */
int gxd_find(const char *name, const char *env_override, char *out, size_t cap);

/* Start a daemon and wait (up to 20 s) until /healthz answers. extra_env is
 * a NULL-terminated list of "NAME=value" for the daemon, or NULL; with
 * GEXEC_TLS_CERT among them the url is https and that certificate verifies
 * it. Returns 0,
 * GXD_SKIP when there is no daemon to run, or -1 (its log is printed). */
int gxd_start(gxd *d, const char *const *extra_env);

/* SIGTERM (SIGKILL after 10 s), reap, print the log if keep_log or the exit
 * was not clean, remove the data folder. Returns the exit status, or -1
 * when it had to be killed. */
int gxd_stop(gxd *d, int keep_log);

#endif
