/*
 * registry_int.h - binding a call's named args and inputs to a kernel's
 * declaration. Shared by the engine (at submit) and gx_kernel_run_direct.
 */
#ifndef GX_REGISTRY_INT_H
#define GX_REGISTRY_INT_H

#include "gexec/gexec_kernel.h"

/* A call's arguments and inputs resolved against the declaration, held in
 * one malloc'd block (args, arrays, names). Inputs hold references. */
typedef struct gx__bound {
    double *args;        /* [kernel->nargs] by spec index */
    gx_array **in;       /* [kernel->ninputs] by spec index (NULL for series) */
    int nall;            /* every input */
    const char **names;  /* [nall], copied names */
    gx_array **all;      /* [nall] */
    void *block;         /* the allocation holding the above */
} gx__bound;

/* Resolve and type-check named args/inputs, then run validate(). On success
 * *b holds references to the inputs; release with gx__bound_free. */
int gx__bind(const gx_kernel *k, const gx_named_arg *args, int nargs,
             const gx_named_input *inputs, int ninputs, gx__bound *b, gx_error *err);
void gx__bound_free(gx__bound *b);

/* Fill a gx_kcall's argument/input fields from a binding. */
void gx__kcall_init(gx_kcall *c, const gx_kernel *k, const gx__bound *b, gx_array **out,
                    gx_error *err);

/* Register the built-in catalog (idempotent, thread-safe). */
void gx__catalog_init(void);
/* gx_kernel_register without loading the catalog first (the catalog's
 * own registrations, from inside gx__catalog_init). */
int gx__kernel_register(const gx_kernel *k, gx_error *err);


#endif
