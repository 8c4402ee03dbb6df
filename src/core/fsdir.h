/*
 * fsdir.h - folders that survive a crash: made with their parents, each new
 * name fsync'd into the folder that holds it.
 */
#ifndef GX_FSDIR_H
#define GX_FSDIR_H

#include "gexec/gexec_err.h"

/* fsync a folder so a name created in it survives a crash. GX_ESTORE with
 * field set on failure. */
int gx__sync_dir(const char *dir, const char *field, gx_error *err);
/* mkdir -p dir (0750), fsyncing the parent of each folder it made; a path
 * part that exists and is not a folder is GX_ESTORE naming it. */
int gx__make_dirs(const char *dir, const char *field, gx_error *err);
/* One folder (its parent must exist), as gx__make_dirs makes each. */
int gx__make_dir(const char *dir, const char *field, gx_error *err);

#endif
