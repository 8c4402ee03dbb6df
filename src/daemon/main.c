/*
 * main.c - gexecd: load the configuration, start the service, wait for a
 * signal, stop gracefully.
 *
 *   gexecd [--config FILE] [--check-config] [--print-config] [--version]
 *
 * SIGTERM/SIGINT: stop accepting, let running jobs finish within
 * shutdown_timeout, persist everything and exit 0. Queued jobs stay in the
 * store and are restored at the next start.
 *
 * SIGUSR2 from the service (a device lost: svc_restart.c): the same drain,
 * then execv of this program with the listening socket inherited, so the
 * restart keeps the pid and no client is refused a connection.
 *
 * SIGHUP and SIGUSR1: ignored with a warning. gexecd has no configuration
 * reload, and their default action would kill it without a drain (running
 * jobs re-run at the next start); a restart applies a changed config.
 * SIGPIPE: ignored (a client gone mid-response is an error on the write).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/http.h"
#include "api/jsonmem.h"
#include "api/service.h"
#include "gexec/gexec.h"
#include "gexec/gexec_config.h"
#include "log.h"

extern char **environ;

static void usage(FILE *f) {
    fprintf(f,
            "usage: gexecd [options]\n"
            "  -c, --config FILE   YAML configuration (default: $GEXEC_CONFIG, else none)\n"
            "      --check-config  validate the configuration and exit (0 ok, 2 error)\n"
            "      --print-config  print the effective configuration as YAML and exit\n"
            "      --sample-config print a commented sample configuration and exit\n"
            "      --version       print the version and exit\n"
            "  -h, --help          this text\n"
            "Every key can be set by a GEXEC_* environment variable (GEXEC_LISTEN,\n"
            "GEXEC_DATA_DIR, GEXEC_HTTP_THREADS, ...); see config/gexec.yaml.sample.\n");
}

static int needs_value(const char *option) {
    fprintf(stderr, "gexecd: option '%s' needs a value: the YAML configuration file\n", option);
    usage(stderr);
    return 2;
}

static void warn_env(void *ctx, const char *var, const char *message) {
    (void)ctx;
    fprintf(stderr, "gexecd: warning: %s: %s\n", var, message);
}

/* Where path (of key) is, or would be created: the path itself when it
 * exists, else the nearest part of it that does, must be a folder. What
 * cannot be seen (no permission) is left to the start. */
static int check_folder(const char *keyname, const char *path, gx_error *err) {
    char p[4096];
    snprintf(p, sizeof p, "%s", path);
    for (;;) {
        struct stat st;
        if (stat(p, &st) == 0) {
            if (S_ISDIR(st.st_mode)) return 0;
            if (!strcmp(p, path))
                return gx_error_set(err, GX_EINVAL, keyname, "%s: %s is not a folder", keyname, path);
            return gx_error_set(err, GX_EINVAL, keyname, "%s: %s is not a folder (%s would be in it)",
                                keyname, p, path);
        }
        if (errno != ENOENT && errno != ENOTDIR) return 0;
        char *slash = strrchr(p, '/');
        if (!slash) return 0;          /* relative: the working folder */
        if (slash == p) return 0;      /* the root */
        *slash = '\0';
    }
}

/* 1 when err's message names its key already ("tls.cert: ..."), or there
 * is no key to name. */
static int named(const gx_error *err) {
    size_t n = strlen(err->field);
    return !n || (!strncmp(err->message, err->field, n) && err->message[n] == ':');
}

/* What the start refuses although the configuration is well-formed: the
 * files and folders it names, and what this build lacks. Reads, never
 * creates, binds or writes anything. 0, or a GX_E* code with err naming the
 * key. */
static int preflight(const gx_config *c, gx_error *err) {
    if (c->store.backend == GX_CFG_STORE_POSTGRES) /* gx_store_open */
        return gx_error_set(err, GX_EUNSUPPORTED, "store.backend",
                            "store.backend: 'postgres' is not available in this build yet; use sqlite");
    int rc = check_folder("data_dir", c->data_dir, err);
    if (!rc) rc = check_folder("blobs.dir", c->blobs.dir, err);
    if (rc) return rc;
    struct stat st;
    if (!stat(c->store.path, &st) && S_ISDIR(st.st_mode))
        return gx_error_set(err, GX_EINVAL, "store.path", "store.path: %s is a folder, not a database file",
                            c->store.path);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", c->store.path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir && (rc = (*slash = '\0', check_folder("store.path", dir, err)))) return rc;
    if (c->tls.cert) { /* the files must be there and belong together */
        char *cp = NULL, *kp = NULL;
        rc = gx_http_tls_load(c->tls.cert, c->tls.key, &cp, &kp, err);
        free(cp);
        free(kp);
        if (rc) return rc;
    }
    return gx__svc_faults_check(c, err);
}

/* Replace this process by a fresh gexecd on the same listening socket.
 * Returns only on failure. */
static void reexec(char **argv, int lfd, const char *restarts) {
    /* nothing but the socket crosses the exec */
    DIR *dir = opendir("/proc/self/fd");
    for (struct dirent *de; dir && (de = readdir(dir));) {
        int fd = atoi(de->d_name);
        if (fd > 2 && fd != lfd && fd != dirfd(dir)) fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC);
    }
    if (dir) closedir(dir);
    char num[16];
    snprintf(num, sizeof num, "%d", lfd);
    if (lfd >= 0 && !fcntl(lfd, F_SETFD, fcntl(lfd, F_GETFD) & ~FD_CLOEXEC)) setenv("GEXEC_LISTEN_FD", num, 1);
    setenv("GEXEC_RESTARTS", restarts, 1);
    execv("/proc/self/exe", argv); /* the same binary, even if replaced on disk since; main() names it */
    gx_log(GX_LOG_ERROR, NULL, "re-exec failed: %s", strerror(errno));
}

int main(int argc, char **argv) {
    gx_json_mem_install(); /* before anything uses jansson */
    /* the process's name is its program's, not "exe" after a self-restart
     * (execv of /proc/self/exe): pgrep gexecd and top find it again */
    const char *prog = argv[0] ? strrchr(argv[0], '/') : NULL;
    prog = prog ? prog + 1 : argv[0];
    if (prog && *prog) prctl(PR_SET_NAME, prog, 0, 0, 0);
    const char *path = getenv("GEXEC_CONFIG");
    if (path && !*path) path = NULL; /* empty is unset, as for every GEXEC_ variable */
    const char *env_path = path;
    int check = 0, print = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-c") || !strcmp(a, "--config")) {
            /* "-c --check-config": the file name was forgotten */
            if (i + 1 >= argc || !argv[i + 1][0] || argv[i + 1][0] == '-') return needs_value(a);
            path = argv[++i];
        } else if (!strncmp(a, "--config=", 9)) {
            if (!a[9]) return needs_value("--config");
            path = a + 9;
        } else if (!strcmp(a, "--check-config")) check = 1;
        else if (!strcmp(a, "--print-config")) print = 1;
        else if (!strcmp(a, "--sample-config")) return gx_config_write_sample(stdout) ? 1 : 0;
        else if (!strcmp(a, "--version")) {
            printf("gexecd %s\n", GX_VERSION_STRING);
            return 0;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "gexecd: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    gx_config cfg;
    gx_error err;
    gx_error_clear(&err);
    if (gx_config_load(&cfg, path, environ, warn_env, NULL, &err)) {
        fprintf(stderr, "gexecd: %s%s%s%s\n", path && err.pos > 0 ? path : "", path && err.pos > 0 ? ": " : "",
                err.message, err.code == GX_EIO && path && path == env_path ? " (the file GEXEC_CONFIG names)" : "");
        gx_config_free(&cfg);
        /* a file that cannot be read yet (a volume not mounted) exits 1, as
         * an unreadable TLS file does: the service manager tries again. A
         * mistake in it exits 2: no restart loop */
        return err.code == GX_EIO ? 1 : 2;
    }
    /* what the start would refuse, --check-config refuses, and the start
     * refuses it before anything runs (exit 2: no restart loop) */
    if (!print && preflight(&cfg, &err)) {
        /* the key, and the file's line or the variable that set it */
        const char *msg = err.message;
        if (err.field[0] && named(&err)) msg += strlen(err.field) + 1 + (err.message[strlen(err.field) + 1] == ' ');
        char where[80];
        int o = gx_config_origin(&cfg, err.field, where, sizeof where);
        if (o == 1 && path) fprintf(stderr, "gexecd: %s: %s: %s: %s\n", path, where, err.field, msg);
        else if (o == 2) fprintf(stderr, "gexecd: %s: %s: %s\n", where, err.field, msg);
        else if (err.field[0]) fprintf(stderr, "gexecd: %s: %s\n", err.field, msg);
        else fprintf(stderr, "gexecd: %s\n", msg);
        gx_config_free(&cfg);
        /* exit 2 (no restart) for what a restart cannot fix; a file that
         * could not be read (a volume not mounted yet, a certificate being
         * renewed) at a start, or anything at the re-exec after a device
         * loss (the configuration passed at the first start), exits 1 */
        int later = !check && (err.code == GX_EIO || err.code == GX_ENOMEM || getenv("GEXEC_LISTEN_FD"));
        return later ? 1 : 2;
    }
    if (check) {
        printf("gexecd: configuration %s is valid\n", path ? path : "(defaults and environment)");
        gx_config_free(&cfg);
        return 0;
    }
    if (print) {
        gx_config_dump(&cfg, stdout);
        gx_config_free(&cfg);
        return 0;
    }
    gx_log_setup(cfg.log.level, cfg.log.format == GX_CFG_LOG_JSON);
    signal(SIGPIPE, SIG_IGN);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGUSR2);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* every thread inherits this */
    gx_service *svc;
    if (gx_service_start(&cfg, &svc, &err)) {
        gx_log(GX_LOG_ERROR, NULL, "cannot start: %s%s%s", named(&err) ? "" : err.field, named(&err) ? "" : ": ",
               err.message);
        gx_config_free(&cfg);
        return 1;
    }
    gx_log(GX_LOG_INFO, NULL, "gexecd %s listening on %s://%s (port %d), data in %s", GX_VERSION_STRING,
           cfg.tls.cert ? "https" : "http", cfg.listen, gx_service_port(svc), cfg.data_dir);
    int sig = 0;
    char reason[256];
    for (;;) {
        sigwait(&set, &sig);
        if (sig == SIGHUP || sig == SIGUSR1) {
            gx_log(GX_LOG_WARN, NULL,
                   "%s ignored: gexecd does not reload its configuration; restart it to apply "
                   "configuration changes",
                   sig == SIGHUP ? "SIGHUP" : "SIGUSR1");
            continue;
        }
        if (sig != SIGUSR2) break;
        if (!gx_service_restart_pending(svc, reason, sizeof reason)) continue; /* not ours */
        char restarts[256];
        gx_log(GX_LOG_WARN, NULL, "%s: draining for a restart", reason);
        int lfd = gx_service_stop_for_exec(svc, restarts, sizeof restarts);
        reexec(argv, lfd, restarts);
        gx_config_free(&cfg);
        return 1;
    }
    gx_log(GX_LOG_INFO, NULL, "signal %d: draining", sig);
    gx_service_stop(svc);
    gx_log(GX_LOG_INFO, NULL, "stopped cleanly");
    gx_config_free(&cfg);
    return 0;
}
