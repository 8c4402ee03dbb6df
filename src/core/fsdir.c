/*
 * fsdir.c - folders that survive a crash (fsdir.h).
 */
#include "fsdir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int sys_err(gx_error *err, const char *field, const char *what, const char *path) {
    return gx_error_set(err, GX_ESTORE, field, "%s %s: %s", what, path, strerror(errno));
}

int gx__sync_dir(const char *dir, const char *field, gx_error *err) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return sys_err(err, field, "cannot open folder", dir);
    int rc = fsync(fd);
    close(fd);
    if (rc) return sys_err(err, field, "cannot fsync folder", dir);
    return 0;
}

int gx__make_dir(const char *dir, const char *field, gx_error *err) {
    if (mkdir(dir, 0700) == 0) { /* the data, the store's and the blobs' folders: gexecd's user only */
        char parent[4096];
        snprintf(parent, sizeof parent, "%s", dir);
        char *slash = strrchr(parent, '/');
        if (slash == parent)
            slash[1] = '\0';
        else if (slash)
            *slash = '\0';
        else
            snprintf(parent, sizeof parent, ".");
        return gx__sync_dir(parent, field, err);
    }
    if (errno != EEXIST) return sys_err(err, field, "cannot create folder", dir);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return gx_error_set(err, GX_ESTORE, field, "%s exists and is not a folder", dir);
    return 0;
}

int gx__make_dirs(const char *dir, const char *field, gx_error *err) {
    char p[4096];
    if (!dir || !*dir || strlen(dir) >= sizeof p - 80)
        return gx_error_set(err, GX_EINVAL, field, "%s is empty or too long", field);
    snprintf(p, sizeof p, "%s", dir);
    for (char *c = p + 1; *c; c++) {
        if (*c != '/') continue;
        *c = '\0';
        int rc = gx__make_dir(p, field, err);
        *c = '/';
        if (rc) return rc;
    }
    return gx__make_dir(p, field, err);
}
