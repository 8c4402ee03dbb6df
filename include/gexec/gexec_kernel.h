/*
 * gexec_kernel.h - the kernel ABI: what a kernel declares and how it runs.
 *
 * A kernel is a named, versioned computation with an argument schema, named
 * input and output arrays, a memory need and one implementation per device
 * kind (CPU now, CUDA from the backend plugin). The built-in catalog and
 * plugins describe kernels with a gx_kernel struct; the registry checks
 * abi_version and struct_size before using one, and fields are only ever
 * appended.
 *
 * The registry validates a job against the declaration (argument names,
 * types and ranges; input names, dtypes and ranks) before the kernel's own
 * validate() checks the rules between shapes. Kernels report problems with
 * gx_error_set(call->err, code, "inputs.y.shape[0]", "...") so the message
 * reaches the user unchanged.
 */
#ifndef GEXEC_KERNEL_H
#define GEXEC_KERNEL_H

#include <stddef.h>
#include <stdint.h>

#include "gexec_array.h"
#include "gexec_err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GX_KERNEL_ABI_VERSION 1

typedef enum gx_arg_type {
    GX_ARG_FLOAT = 1, /* finite double within [min, max] */
    GX_ARG_INT = 2,   /* integer within [min, max] (|v| < 2^53) */
    GX_ARG_BOOL = 3,  /* 0 or 1 */
    GX_ARG_ENUM = 4   /* one of choices; stored as its index */
} gx_arg_type;

typedef struct gx_arg_spec {
    const char *name;            /* "a", "steps" */
    gx_arg_type type;
    int required;                /* 1: must be given; 0: def is used */
    double def;                  /* default value (enum: index) */
    double min, max;             /* inclusive bounds for FLOAT/INT */
    const char *const *choices;  /* ENUM: NULL-terminated names */
    const char *doc;             /* one line for the catalog */
} gx_arg_spec;

/* gx_io_spec.flags */
#define GX_IO_OPTIONAL 0x1u /* input may be absent */
#define GX_IO_SERIES 0x2u   /* name is a prefix: name0, name1, ... (>= 1) */

typedef struct gx_io_spec {
    const char *name;  /* "x"; for GX_IO_SERIES the prefix "w" */
    unsigned dtypes;   /* GX_DTM() mask of accepted dtypes */
    int rank;          /* required ndim, or -1 for any */
    unsigned flags;    /* GX_IO_* */
    const char *shape; /* shape rule for docs: "[n]", "[m,k]" */
    const char *doc;
} gx_io_spec;

/* Device kinds an implementation can be registered for. */
typedef enum gx_dev_kind { GX_DEV_CPU = 0, GX_DEV_CUDA = 1, GX_DEV_KIND_COUNT } gx_dev_kind;

/* gx_kernel.flags */
#define GX_KF_BATCHABLE 0x1u  /* many small jobs may be merged into one launch */
#define GX_KF_CHECKPOINT 0x2u /* saves state through gx_kcall.checkpoint */

struct gx_kernel;

/* One call of a kernel: everything an implementation sees. Built by the
 * engine; valid for the duration of the call only. */
typedef struct gx_kcall {
    const struct gx_kernel *kernel;
    const double *args;         /* by arg spec index (INT/BOOL/ENUM as double) */
    gx_array *const *in;        /* by input spec index; NULL when an optional
                                   input is absent; NULL for SERIES specs */
    int nin_all;                /* every input, series included, by name */
    const char *const *in_names;
    gx_array *const *in_all;
    gx_array **out;             /* by output spec index; the kernel stores new
                                   arrays here (the engine owns them after) */
    const volatile int *cancel; /* nonzero once the job is cancelled or timed
                                   out: long kernels poll it with
                                   gx_kcall_cancelled and return
                                   GX_ECANCELED */
    gx_error *err;              /* where a failing kernel says why */
    /* Checkpoints (GX_KF_CHECKPOINT kernels): save state after `step`; the
     * arrays are copied. May be NULL when nobody keeps checkpoints. */
    int (*checkpoint)(struct gx_kcall *c, int64_t step, gx_array *const *state,
                      int nstate);
    gx_array *const *resume; /* state of the last checkpoint, or NULL */
    int nresume;
    int64_t resume_step;     /* step that state was saved after */
    void *engine_priv;       /* for the engine's callbacks */
    int device;              /* device index the call runs on */
    void *dev_ctx;           /* device implementation context (CUDA stream...) */
} gx_kcall;

/* Look up an input by name (series members too: "w0", "b1"); NULL if absent. */
gx_array *gx_kcall_input(const gx_kcall *c, const char *name);

/* When an input of the call holds a NaN or an infinity: GX_EKERNEL with
 * c->err naming it and the element ("x holds NaN at element 3; " why),
 * field "inputs.<name>". 0 when every input is finite. For a kernel whose
 * result went non-finite, to blame the input rather than an argument. */
int gx_kcall_nonfinite_input(const gx_kcall *c, const char *why);

/* Nonzero once the call has been cancelled or timed out. The engine sets
 * the flag from another thread while the kernel runs: poll it with this
 * (an atomic load, relaxed: the kernel only needs to see it eventually)
 * rather than reading *cancel, which is a data race in C11 terms and shows
 * under ThreadSanitizer. */
static inline int gx_kcall_cancelled(const gx_kcall *c) {
    return c->cancel && __atomic_load_n(c->cancel, __ATOMIC_RELAXED);
}

typedef int (*gx_kernel_run_fn)(gx_kcall *c);

typedef struct gx_kernel {
    uint32_t abi_version; /* GX_KERNEL_ABI_VERSION */
    uint32_t struct_size; /* sizeof(gx_kernel) as compiled */
    const char *name;     /* registry name, [a-z0-9_]+ */
    int version;          /* >= 1; "name@version" selects one */
    const char *summary;
    const gx_arg_spec *args;
    int nargs;
    const gx_io_spec *inputs;
    int ninputs;
    const gx_io_spec *outputs;
    int noutputs;
    unsigned flags; /* GX_KF_* */
    /* Checks beyond the declaration (shapes agree, values sane). Inputs and
     * args are already type-checked. Returns 0 or a GX_E* code with c->err
     * set. May be NULL. */
    int (*validate)(const gx_kcall *c);
    /* Bytes of device memory the call needs (inputs, outputs, scratch). */
    uint64_t (*mem_bytes)(const gx_kcall *c);
    /* Expected CPU run time in microseconds, or < 0 when unknown (then the
     * engine uses its measured average; before the kernel's first run, one
     * batch quantum). Infinite values count as unknown; larger than an hour
     * counts as an hour. The engine places and batches by it: a worker's
     * batch ends at one quantum of it. May be NULL. */
    double (*cost_us)(const gx_kcall *c);
    /* Implementations by device kind; NULL where none. */
    gx_kernel_run_fn run[GX_DEV_KIND_COUNT];
    /* ---- appended; read only when struct_size covers them ---- */
    /* Attempts a job of this kernel gets when it sets no max_attempts
     * (1..100; 0 = 1): a kernel that knows its failures are often transient
     * (device OOM under load) asks for retries by default. */
    int default_max_attempts;
} gx_kernel;

/* sizeof(gx_kernel) before default_max_attempts was appended: the smallest
 * struct_size the registry accepts. */
#define GX_KERNEL_SIZE_V1 offsetof(gx_kernel, default_max_attempts)

/* ---- registry (process-wide, thread-safe) -------------------------------- */

/* Register a kernel. The struct must stay valid for the process lifetime.
 * GX_EABI for a wrong version/size, GX_EEXIST for a name@version already
 * present, GX_EINVAL for a malformed declaration. */
int gx_kernel_register(const gx_kernel *k, gx_error *err);

/* Kernel plugins: a shared object that exports
 *     int gx_kernel_plugin_init(gx_error *err);
 * which registers its kernels with gx_kernel_register (their CPU and, with
 * run[GX_DEV_CUDA], GPU implementations) and returns 0, or a GX_E* code
 * with err set. It resolves gx_* against the program that loads it (gexecd
 * exports them), so it does not link libgexec. gexecd loads the plugins of
 * kernels.plugins at start, before its jobs are restored. */
#define GX_KERNEL_PLUGIN_INIT "gx_kernel_plugin_init"
typedef int (*gx_kernel_plugin_init_fn)(gx_error *err);
/* Load one plugin and run its gx_kernel_plugin_init; it stays loaded for
 * the life of the process. 0, or GX_EINVAL (cannot be loaded, no such
 * function: the message says which) or the plugin's own code. */
int gx_kernel_plugin_load(const char *path, gx_error *err);

/* Add an implementation for a device kind to a registered kernel (used by
 * the CUDA backend). */
int gx_kernel_set_impl(const char *name, int version, gx_dev_kind kind,
                       gx_kernel_run_fn fn, gx_error *err);

/* Find "name" (highest version) or "name@N". NULL if unknown. */
const gx_kernel *gx_kernel_find(const char *name);

/* Number of registered kernels and the i-th (ordered by name, version). */
int gx_kernel_count(void);
const gx_kernel *gx_kernel_at(int i);

/* Attempts a job of k gets when it sets no max_attempts: its
 * default_max_attempts when its struct_size covers the field and it is
 * 1..100, else 1. */
int gx_kernel_default_attempts(const gx_kernel *k);

/* Run function for a device kind (registered impls included); NULL if none. */
gx_kernel_run_fn gx_kernel_impl(const gx_kernel *k, gx_dev_kind kind);

/* Validate a call against the kernel's declaration and validate(); fills
 * c->err. Used at submit; kernels need not repeat these checks. */
int gx_kernel_validate_call(const gx_kcall *c);

/* Run a kernel synchronously on the CPU outside any engine (tests, tools):
 * resolves args by name (unknown names refused), validates, runs, and
 * returns outputs in out[] by output spec index (caller unrefs each). */
typedef struct gx_named_arg {
    const char *name;
    double value;    /* FLOAT/INT/BOOL */
    const char *str; /* ENUM choice name, or NULL to use value as index */
    int from_bool;   /* the value was written as a boolean: only BOOL args take it */
} gx_named_arg;
typedef struct gx_named_input {
    const char *name;
    gx_array *array;
} gx_named_input;
int gx_kernel_run_direct(const gx_kernel *k, const gx_named_arg *args, int nargs,
                         const gx_named_input *inputs, int ninputs,
                         gx_array **out, gx_error *err);

#ifdef __cplusplus
}
#endif
#endif
