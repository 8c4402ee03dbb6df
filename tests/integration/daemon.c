/*
 * daemon.c - see daemon.h.
 */
#include "daemon.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gexec/gexec_auth.h"
#include "gexec/gexec_client.h"

int gxd_find(const char *name, const char *env_override, char *out, size_t cap) {
    const char *o = env_override ? getenv(env_override) : NULL;
    if (o && *o) {
        snprintf(out, cap, "%s", o);
        return access(out, X_OK);
    }
    const char *b = getenv("GX_BUILD_DIR");
    if (b && *b) {
        snprintf(out, cap, "%s/%s", b, name);
        if (access(out, X_OK) == 0) return 0;
    }
    char self[1024];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        snprintf(out, cap, "%s/%s", dirname(self), name);
        if (access(out, X_OK) == 0) return 0;
    }
    return -1;
}

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || getsockname(fd, (struct sockaddr *)&a, &al)) {
        if (fd >= 0) close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static void print_log(const gxd *d) {
    FILE *f = fopen(d->log, "r");
    if (!f) return;
    fprintf(stderr, "---- %s ----\n", d->log);
    char line[1024];
    while (fgets(line, sizeof line, f)) fputs(line, stderr);
    fprintf(stderr, "---- end of log ----\n");
    fclose(f);
}

static void rm_rf(const char *dir) {
    if (!dir[0]) return;
    pid_t p = fork();
    if (p == 0) {
        execlp("rm", "rm", "-rf", dir, (char *)NULL);
        _exit(127);
    }
    if (p > 0) waitpid(p, NULL, 0);
}

int gxd_start(gxd *d, const char *const *extra_env) {
    memset(d, 0, sizeof *d);
    d->pid = -1;
    if (gxd_find("gexecd", "GEXECD", d->bin, sizeof d->bin)) {
        printf("skipped: gexecd not built\n");
        return GXD_SKIP;
    }
    snprintf(d->dir, sizeof d->dir, "/tmp/gexec-itest-XXXXXX");
    if (!mkdtemp(d->dir)) {
        perror("mkdtemp");
        return -1;
    }
    snprintf(d->log, sizeof d->log, "%s/gexecd.log", d->dir);
    if (gx_auth_key_generate(d->key, NULL, NULL)) return -1;
    /* a daemon given a certificate speaks https; the (self-signed)
     * certificate is its own CA for the health check */
    const char *cert = NULL;
    for (int i = 0; extra_env && extra_env[i]; i++)
        if (!strncmp(extra_env[i], "GEXEC_TLS_CERT=", 15)) cert = extra_env[i] + 15;
    for (int attempt = 0; attempt < 5; attempt++) {
        d->port = free_port();
        if (d->port <= 0) return -1;
        snprintf(d->url, sizeof d->url, "%s://127.0.0.1:%d", cert ? "https" : "http", d->port);
        d->pid = fork();
        if (d->pid < 0) return -1;
        if (d->pid == 0) {
            char listen[64];
            snprintf(listen, sizeof listen, "127.0.0.1:%d", d->port);
            unsetenv("GEXEC_SERVER");
            unsetenv("GEXEC_API_KEY");
            unsetenv("GEXEC_CONFIG");
            setenv("GEXEC_LISTEN", listen, 1);
            setenv("GEXEC_DATA_DIR", d->dir, 1);
            setenv("GEXEC_ADMIN_KEY", d->key, 1);
            for (int i = 0; extra_env && extra_env[i]; i++) putenv((char *)extra_env[i]);
            int fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (fd >= 0) {
                dup2(fd, 1);
                dup2(fd, 2);
                close(fd);
            }
            prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a failed test */
            execl(d->bin, d->bin, (char *)NULL);
            _exit(127);
        }
        gx_client_opts o;
        gx_client_opts_init(&o);
        o.server = d->url;
        o.api_key = d->key;
        o.ca_file = cert;
        o.timeout_ms = 2000;
        gx_client *c = NULL;
        if (gx_client_new(&o, &c, NULL)) return -1;
        int up = 0, dead = 0;
        for (int i = 0; i < 400 && !up && !dead; i++) {
            /* ready, not just alive: /healthz answers while the jobs are
             * restored, when everything else answers 503 */
            int ready = 0;
            up = gx_client_ready(c, &ready, NULL, NULL) == 0 && ready;
            if (!up) {
                int st;
                if (waitpid(d->pid, &st, WNOHANG) == d->pid) dead = 1;
                struct timespec ts = {0, 50 * 1000 * 1000};
                nanosleep(&ts, NULL);
            }
        }
        gx_client_free(c);
        if (up) return 0;
        if (!dead) {
            kill(d->pid, SIGKILL);
            waitpid(d->pid, NULL, 0);
        }
        d->pid = -1;
        print_log(d); /* maybe the port was taken meanwhile: try another */
    }
    fprintf(stderr, "gexecd did not come up\n");
    return -1;
}

int gxd_stop(gxd *d, int keep_log) {
    int rc = 0;
    if (d->pid > 0) {
        kill(d->pid, SIGTERM);
        int st = 0, done = 0;
        for (int i = 0; i < 200 && !done; i++) {
            if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
                done = 1;
                break;
            }
            struct timespec ts = {0, 50 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        if (!done) {
            kill(d->pid, SIGKILL);
            waitpid(d->pid, &st, 0);
            rc = -1;
        } else {
            rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        }
        d->pid = -1;
    }
    if (keep_log || rc != 0) print_log(d);
    rm_rf(d->dir);
    return rc;
}
