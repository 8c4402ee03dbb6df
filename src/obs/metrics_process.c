/*
 * metrics_process.c - the process collector: memory, CPU time, open file
 * descriptors and start time of this process, read from /proc at each
 * render (a few small reads; no sampling thread).
 *
 * The start time never changes, so it is computed once at registration
 * from the process's start tick (/proc/self/stat) and the boot time
 * (/proc/stat btime). On a system without /proc the families exist and
 * stay at zero.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gexec/gexec_metrics.h"

#define RSS_NAME "gexec_process_resident_memory_bytes"
#define CPU_NAME "gexec_process_cpu_seconds_total"
#define FDS_NAME "gexec_process_open_fds"
#define START_NAME "gexec_process_start_time_seconds"

/* Fields of /proc/self/stat that we use (see proc(5)). */
typedef struct proc_stat {
    unsigned long long utime, stime; /* clock ticks in user and kernel mode */
    unsigned long long starttime;    /* clock ticks after boot */
    long long rss;                   /* resident pages */
} proc_stat;

static int read_proc_stat(proc_stat *ps) {
    char buf[1024];
    FILE *fp = fopen("/proc/self/stat", "r");
    if (!fp) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    /* The command name (field 2) is in parentheses and may hold spaces or
     * parentheses itself; the fields after the last ')' start at field 3. */
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    /* Fields 3 to 24: state ppid pgrp session tty_nr tpgid flags minflt
     * cminflt majflt cmajflt utime stime cutime cstime priority nice
     * num_threads itrealvalue starttime vsize rss. */
    if (sscanf(p + 1,
               " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d"
               " %llu %*u %lld",
               &ps->utime, &ps->stime, &ps->starttime, &ps->rss) != 4)
        return -1;
    return 0;
}

static long long boot_time(void) {
    FILE *fp = fopen("/proc/stat", "r");
    if (!fp) return -1;
    char line[512];
    long long bt = -1;
    while (fgets(line, sizeof line, fp))
        if (!strncmp(line, "btime ", 6)) {
            bt = strtoll(line + 6, NULL, 10);
            break;
        }
    fclose(fp);
    return bt;
}

static int count_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - 1; /* the descriptor opendir holds */
}

static void collect(gx_metrics *reg, void *ctx) {
    (void)ctx;
    proc_stat ps;
    if (read_proc_stat(&ps) == 0) {
        long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
        if (tick > 0)
            gx_counter_set(gx_metrics_series(gx_metrics_find(reg, CPU_NAME)),
                           (double)(ps.utime + ps.stime) / (double)tick);
        if (page > 0)
            gx_gauge_set(gx_metrics_series(gx_metrics_find(reg, RSS_NAME)),
                         (double)ps.rss * (double)page);
    }
    int fds = count_fds();
    if (fds >= 0) gx_gauge_set(gx_metrics_series(gx_metrics_find(reg, FDS_NAME)), fds);
}

int gx_metrics_process_collector(gx_metrics *reg, gx_error *err) {
    static const gx_metric_desc descs[] = {
        {GX_METRIC_GAUGE, RSS_NAME, "Resident memory size in bytes.", {NULL}, NULL, 0},
        {GX_METRIC_COUNTER,
         CPU_NAME,
         "Total user and system CPU time spent in seconds.",
         {NULL},
         NULL,
         0},
        {GX_METRIC_GAUGE, FDS_NAME, "Number of open file descriptors.", {NULL}, NULL, 0},
        {GX_METRIC_GAUGE,
         START_NAME,
         "Start time of the process since unix epoch in seconds.",
         {NULL},
         NULL,
         0},
    };
    gx_metric_family *start = NULL;
    for (size_t i = 0; i < sizeof descs / sizeof descs[0]; i++) {
        int rc = gx_metrics_register(reg, &descs[i], i == 3 ? &start : NULL, err);
        if (rc) return rc;
    }
    proc_stat ps;
    long long bt = boot_time();
    long tick = sysconf(_SC_CLK_TCK);
    if (bt >= 0 && tick > 0 && read_proc_stat(&ps) == 0)
        gx_gauge_set(gx_metrics_series(start), (double)bt + (double)ps.starttime / (double)tick);
    int rc = gx_metrics_on_collect(reg, collect, NULL);
    if (rc) return gx_error_set(err, rc, NULL, "out of memory adding the process collector");
    return 0;
}
