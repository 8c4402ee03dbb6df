/*
 * registry.c - the process-wide kernel registry and call binding.
 *
 * Kernels are kept sorted by (name, version) in a small array guarded by a
 * mutex; lookups happen at submit, so they take the lock only briefly. The
 * built-in catalog registers itself on first use. Implementations for other
 * device kinds (CUDA) are attached later by the backend through
 * gx_kernel_set_impl and kept beside the declaration.
 */
#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry_int.h"

#define MAX_KERNELS 256

typedef struct entry {
    const gx_kernel *k;
    gx_kernel_run_fn impl[GX_DEV_KIND_COUNT]; /* overrides / additions */
} entry;

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static entry reg[MAX_KERNELS];
static int nreg;

static int name_ok(const char *s) {
    if (!s || !*s || strlen(s) > 48) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_')) return 0;
    return 1;
}

int gx_kernel_default_attempts(const gx_kernel *k) {
    if (k->struct_size < offsetof(gx_kernel, default_max_attempts) + sizeof k->default_max_attempts) return 1;
    return k->default_max_attempts > 0 && k->default_max_attempts <= 100 ? k->default_max_attempts : 1;
}

/* Every name a declaration gives: set, and unique among its kind (args;
 * inputs and outputs); enum arguments have their choices. */
static int decl_ok(const gx_kernel *k, gx_error *err) {
    for (int i = 0; i < k->nargs; i++) {
        const gx_arg_spec *a = &k->args[i];
        if (!a->name || !*a->name) return gx_error_set(err, GX_EINVAL, "args", "args[%d] has no name", i);
        if (a->type == GX_ARG_ENUM && (!a->choices || !a->choices[0]))
            return gx_error_set(err, GX_EINVAL, "args", "enum argument '%.40s' has no choices", a->name);
        for (int j = 0; j < i; j++)
            if (!strcmp(k->args[j].name, a->name))
                return gx_error_set(err, GX_EINVAL, "args", "argument '%.40s' is declared twice", a->name);
    }
    const gx_io_spec *io[2] = {k->inputs, k->outputs};
    int nio[2] = {k->ninputs, k->noutputs};
    for (int w = 0; w < 2; w++)
        for (int i = 0; i < nio[w]; i++) {
            const char *nm = io[w][i].name;
            if (!nm || !*nm)
                return gx_error_set(err, GX_EINVAL, w ? "outputs" : "inputs", "%s[%d] has no name", w ? "outputs" : "inputs", i);
            for (int j = 0; j < i; j++)
                if (!strcmp(io[w][j].name, nm))
                    return gx_error_set(err, GX_EINVAL, w ? "outputs" : "inputs", "'%.40s' is declared twice", nm);
        }
    return 0;
}

int gx_kernel_register(const gx_kernel *k, gx_error *err) {
    /* the built-ins first: a user kernel of a built-in's name@version is
     * GX_EEXIST whenever it is registered, not a silent replacement when
     * it comes before anything loaded the catalog */
    gx__catalog_init();
    return gx__kernel_register(k, err);
}

int gx__kernel_register(const gx_kernel *k, gx_error *err) {
    if (!k) return gx_error_set(err, GX_EINVAL, "kernel", "kernel is NULL");
    if (k->abi_version != GX_KERNEL_ABI_VERSION || k->struct_size < GX_KERNEL_SIZE_V1)
        return gx_error_set(err, GX_EABI, "abi_version",
                            "kernel ABI %u (struct size %u) does not match %u (%zu)",
                            k->abi_version, k->struct_size, GX_KERNEL_ABI_VERSION, sizeof(gx_kernel));
    if (k->struct_size > GX_KERNEL_SIZE_V1 && (k->default_max_attempts < 0 || k->default_max_attempts > 100))
        return gx_error_set(err, GX_EINVAL, "default_max_attempts", "default_max_attempts must be 0..100; got %d",
                            k->default_max_attempts);

    if (!name_ok(k->name))
        return gx_error_set(err, GX_EINVAL, "name", "kernel name must be 1-48 of [a-z0-9_]");
    if (k->version < 1) return gx_error_set(err, GX_EINVAL, "version", "version must be >= 1");
    if (k->nargs < 0 || k->ninputs < 0 || k->noutputs < 0 || (k->nargs && !k->args) ||
        (k->ninputs && !k->inputs) || (k->noutputs && !k->outputs))
        return gx_error_set(err, GX_EINVAL, "args", "malformed argument or io declaration");
    int drc = decl_ok(k, err);
    if (drc) return drc;
    pthread_mutex_lock(&reg_lock);
    int pos = 0;
    while (pos < nreg) {
        int c = strcmp(reg[pos].k->name, k->name);
        if (c > 0 || (c == 0 && reg[pos].k->version > k->version)) break;
        if (c == 0 && reg[pos].k->version == k->version) {
            pthread_mutex_unlock(&reg_lock);
            return gx_error_set(err, GX_EEXIST, "name", "kernel %s@%d is already registered",
                                k->name, k->version);
        }
        pos++;
    }
    if (nreg == MAX_KERNELS) {
        pthread_mutex_unlock(&reg_lock);
        return gx_error_set(err, GX_ELIMIT, NULL, "registry full (%d kernels)", MAX_KERNELS);
    }
    memmove(&reg[pos + 1], &reg[pos], (size_t)(nreg - pos) * sizeof reg[0]);
    memset(&reg[pos], 0, sizeof reg[pos]);
    reg[pos].k = k;
    nreg++;
    pthread_mutex_unlock(&reg_lock);
    return 0;
}

/* Parse "name" or "name@N"; returns the entry index or -1. Lock held. */
static int find_locked(const char *spec) {
    char name[64];
    const char *at = strchr(spec, '@');
    long ver = 0;
    size_t len = at ? (size_t)(at - spec) : strlen(spec);
    if (len == 0 || len >= sizeof name) return -1;
    memcpy(name, spec, len);
    name[len] = '\0';
    if (at) { /* decimal digits only, no sign, space or leading 0 ("spin@+1" was spin@1) */
        const char *d = at + 1;
        if (*d < '1' || *d > '9' || strspn(d, "0123456789") != strlen(d) || strlen(d) > 9) return -1;
        ver = strtol(d, NULL, 10);
    }
    int best = -1;
    for (int i = 0; i < nreg; i++) {
        if (strcmp(reg[i].k->name, name)) continue;
        if (at ? reg[i].k->version == ver : 1) best = i; /* sorted: last is highest */
    }
    return best;
}

const gx_kernel *gx_kernel_find(const char *name) {
    if (!name) return NULL;
    gx__catalog_init();
    pthread_mutex_lock(&reg_lock);
    int i = find_locked(name);
    const gx_kernel *k = i >= 0 ? reg[i].k : NULL;
    pthread_mutex_unlock(&reg_lock);
    return k;
}

int gx_kernel_count(void) {
    gx__catalog_init();
    pthread_mutex_lock(&reg_lock);
    int n = nreg;
    pthread_mutex_unlock(&reg_lock);
    return n;
}

const gx_kernel *gx_kernel_at(int i) {
    gx__catalog_init();
    pthread_mutex_lock(&reg_lock);
    const gx_kernel *k = (i >= 0 && i < nreg) ? reg[i].k : NULL;
    pthread_mutex_unlock(&reg_lock);
    return k;
}

int gx_kernel_set_impl(const char *name, int version, gx_dev_kind kind, gx_kernel_run_fn fn,
                       gx_error *err) {
    if ((unsigned)kind >= GX_DEV_KIND_COUNT)
        return gx_error_set(err, GX_EINVAL, "kind", "unknown device kind %d", (int)kind);
    char spec[80];
    snprintf(spec, sizeof spec, "%s@%d", name ? name : "", version);
    gx__catalog_init();
    pthread_mutex_lock(&reg_lock);
    int i = find_locked(spec);
    if (i >= 0) reg[i].impl[kind] = fn;
    pthread_mutex_unlock(&reg_lock);
    if (i < 0) return gx_error_set(err, GX_ENOTFOUND, "name", "no kernel %s", spec);
    return 0;
}

gx_kernel_run_fn gx_kernel_impl(const gx_kernel *k, gx_dev_kind kind) {
    if (!k || (unsigned)kind >= GX_DEV_KIND_COUNT) return NULL;
    gx_kernel_run_fn fn = NULL;
    pthread_mutex_lock(&reg_lock);
    for (int i = 0; i < nreg; i++)
        if (reg[i].k == k) {
            fn = reg[i].impl[kind];
            break;
        }
    pthread_mutex_unlock(&reg_lock);
    return fn ? fn : k->run[kind];
}

gx_array *gx_kcall_input(const gx_kcall *c, const char *name) {
    for (int i = 0; i < c->nin_all; i++)
        if (!strcmp(c->in_names[i], name)) return c->in_all[i];
    return NULL;
}

int gx_kcall_nonfinite_input(const gx_kcall *c, const char *why) {
    for (int i = 0; i < c->nin_all; i++) {
        int64_t at = gx_array_find_nonfinite(c->in_all[i]);
        if (at < 0) continue;
        double v = gx_array_get_f64(c->in_all[i], at);
        char field[80];
        snprintf(field, sizeof field, "inputs.%s", c->in_names[i]);
        return gx_error_set(c->err, GX_EKERNEL, field, "%s holds %s at element %lld; %s", c->in_names[i],
                            isnan(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity", (long long)at, why);
    }
    return 0;
}

/* ---- binding ---------------------------------------------------------- */

static int arg_index(const gx_kernel *k, const char *name) {
    for (int i = 0; i < k->nargs; i++)
        if (!strcmp(k->args[i].name, name)) return i;
    return -1;
}

/* Which input spec a name belongs to; *series_idx gets the member number. */
static int input_spec(const gx_kernel *k, const char *name, long *series_idx) {
    for (int i = 0; i < k->ninputs; i++) {
        const gx_io_spec *s = &k->inputs[i];
        if (!(s->flags & GX_IO_SERIES)) {
            if (!strcmp(s->name, name)) return i;
            continue;
        }
        size_t pl = strlen(s->name);
        if (strncmp(s->name, name, pl) || !name[pl]) continue;
        const char *p = name + pl;
        if (*p == '0' && p[1]) continue; /* no leading zeros */
        long v = 0;
        for (; *p; p++) {
            if (*p < '0' || *p > '9' || v > 100000) { v = -1; break; }
            v = v * 10 + (*p - '0');
        }
        if (v < 0) continue;
        *series_idx = v;
        return i;
    }
    return -1;
}

static int check_array(const gx_io_spec *s, const char *name, const gx_array *a, gx_error *err) {
    char field[96];
    if (!a) {
        snprintf(field, sizeof field, "inputs.%s", name);
        return gx_error_set(err, GX_EINVAL, field, "input '%s' has no array", name);
    }
    if (!(s->dtypes & GX_DTM(a->dtype))) {
        char list[128] = "";
        for (int d = 1; d < GX_DT_COUNT; d++)
            if (s->dtypes & GX_DTM(d)) {
                if (list[0]) strncat(list, ", ", sizeof list - strlen(list) - 1);
                strncat(list, gx_dtype_name((gx_dtype)d), sizeof list - strlen(list) - 1);
            }
        snprintf(field, sizeof field, "inputs.%s.dtype", name);
        return gx_error_set(err, GX_EINVAL, field, "input '%s' has dtype %s; expected one of: %s",
                            name, gx_dtype_name(a->dtype), list);
    }
    if (s->rank >= 0 && a->ndim != s->rank) {
        snprintf(field, sizeof field, "inputs.%s.shape", name);
        return gx_error_set(err, GX_EINVAL, field, "input '%s' must have %d dimension%s %s; got %d",
                            name, s->rank, s->rank == 1 ? "" : "s", s->shape ? s->shape : "",
                            a->ndim);
    }
    return 0;
}

int gx__bind(const gx_kernel *k, const gx_named_arg *args, int nargs,
             const gx_named_input *inputs, int ninputs, gx__bound *b, gx_error *err) {
    memset(b, 0, sizeof *b);
    gx_error_clear(err);
    if (k->nargs > 256) return gx_error_set(err, GX_ELIMIT, "args", "kernel declares more than 256 arguments");
    if (nargs < 0 || (nargs && !args)) return gx_error_set(err, GX_EINVAL, "args", "bad argument list");
    if (ninputs < 0 || (ninputs && !inputs))
        return gx_error_set(err, GX_EINVAL, "inputs", "bad input list");
    if (ninputs > 4096) return gx_error_set(err, GX_ELIMIT, "inputs", "more than 4096 inputs");
    size_t namebytes = 0;
    for (int i = 0; i < ninputs; i++) {
        if (!inputs[i].name || !inputs[i].name[0] || strlen(inputs[i].name) > 63)
            return gx_error_set(err, GX_EINVAL, "inputs", "input %d has an empty or over-long name", i);
        namebytes += strlen(inputs[i].name) + 1;
    }
    size_t sz = (size_t)k->nargs * sizeof(double) + (size_t)k->ninputs * sizeof(gx_array *) +
                (size_t)ninputs * (sizeof(char *) + sizeof(gx_array *)) + namebytes;
    char *blk = malloc(sz ? sz : 1);
    if (!blk) return gx_error_set(err, GX_ENOMEM, NULL, "out of memory binding a call");
    b->block = blk;
    b->args = (double *)blk;
    b->in = (gx_array **)(blk + (size_t)k->nargs * sizeof(double));
    b->names = (const char **)(b->in + k->ninputs);
    b->all = (gx_array **)(b->names + ninputs);
    char *np = (char *)(b->all + ninputs);
    memset(b->in, 0, (size_t)k->ninputs * sizeof(gx_array *));

    /* arguments */
    unsigned char seen[256] = {0};
    for (int i = 0; i < k->nargs && i < 256; i++) b->args[i] = k->args[i].def;
    for (int i = 0; i < nargs; i++) {
        char field[96];
        const char *an = args[i].name ? args[i].name : "";
        snprintf(field, sizeof field, "args.%s", an);
        int ai = arg_index(k, an);
        if (ai < 0) {
            gx_error_set(err, GX_EINVAL, field, "kernel %s has no argument '%s'", k->name, an);
            goto fail;
        }
        if (seen[ai]) {
            gx_error_set(err, GX_EINVAL, field, "argument '%s' is given twice", an);
            goto fail;
        }
        seen[ai] = 1;
        const gx_arg_spec *s = &k->args[ai];
        double v = args[i].value;
        if (s->type == GX_ARG_ENUM) {
            char list[160] = "";
            int nch = 0;
            for (; s->choices && s->choices[nch]; nch++) {
                if (nch) strncat(list, ", ", sizeof list - strlen(list) - 1);
                strncat(list, s->choices[nch], sizeof list - strlen(list) - 1);
            }
            if (args[i].str) {
                int found = -1;
                for (int c = 0; c < nch; c++)
                    if (!strcmp(s->choices[c], args[i].str)) found = c;
                if (found < 0) {
                    gx_error_set(err, GX_EINVAL, field, "'%.40s' is not one of: %s", args[i].str, list);
                    goto fail;
                }
                v = found;
            } else if (args[i].from_bool) { /* true was taken for choice 1 */
                gx_error_set(err, GX_EINVAL, field, "argument '%s' takes one of: %s; not a boolean", an, list);
                goto fail;
            } else if (!(v >= 0 && v < nch && v == floor(v))) {
                /* a number is the choice's index (the C API's form) */
                gx_error_set(err, GX_EINVAL, field, "argument '%s' takes one of: %s (or its index, 0..%d); got %g",
                             an, list, nch - 1, v);
                goto fail;
            }
        } else {
            if (args[i].str) {
                gx_error_set(err, GX_EINVAL, field, "argument '%s' takes %s, not a string", an,
                             s->type == GX_ARG_BOOL ? "true or false" : "a number");
                goto fail;
            }
            if (args[i].from_bool && s->type != GX_ARG_BOOL) {
                gx_error_set(err, GX_EINVAL, field, "argument '%s' takes a number, not a boolean", an);
                goto fail;
            }
            if (!isfinite(v)) {
                gx_error_set(err, GX_EINVAL, field, "argument '%s' must be a finite number", an);
                goto fail;
            }
            if ((s->type == GX_ARG_INT || s->type == GX_ARG_BOOL) && v != floor(v)) {
                gx_error_set(err, GX_EINVAL, field, "argument '%s' must be an integer; got %.15g", an, v);
                goto fail;
            }
            double lo = s->type == GX_ARG_BOOL ? 0 : s->min, hi = s->type == GX_ARG_BOOL ? 1 : s->max;
            if (v < lo || v > hi) {
                gx_error_set(err, GX_EINVAL, field, "argument '%s' is %.15g; allowed range is [%.15g, %.15g]",
                             an, v, lo, hi);
                goto fail;
            }
        }
        b->args[ai] = v;
    }
    for (int i = 0; i < k->nargs; i++)
        if (k->args[i].required && !seen[i]) {
            char field[96];
            snprintf(field, sizeof field, "args.%s", k->args[i].name);
            gx_error_set(err, GX_EINVAL, field, "required argument '%s' is missing", k->args[i].name);
            goto fail;
        }

    /* inputs */
    for (int i = 0; i < ninputs; i++) {
        const char *in = inputs[i].name;
        char field[96];
        snprintf(field, sizeof field, "inputs.%s", in);
        long sidx = -1;
        int si = input_spec(k, in, &sidx);
        if (si < 0) {
            gx_error_set(err, GX_EINVAL, field, "kernel %s has no input '%s'", k->name, in);
            goto fail;
        }
        for (int j = 0; j < i; j++)
            if (!strcmp(inputs[j].name, in)) {
                gx_error_set(err, GX_EINVAL, field, "input '%s' is given twice", in);
                goto fail;
            }
        if (check_array(&k->inputs[si], in, inputs[i].array, err)) goto fail;
        if (!(k->inputs[si].flags & GX_IO_SERIES)) b->in[si] = inputs[i].array;
        size_t l = strlen(in) + 1;
        memcpy(np, in, l);
        b->names[b->nall] = np;
        np += l;
        b->all[b->nall++] = inputs[i].array;
    }
    for (int i = 0; i < k->ninputs; i++) {
        const gx_io_spec *s = &k->inputs[i];
        char field[96];
        if (s->flags & GX_IO_SERIES) {
            /* members must run 0..n-1 without gaps, at least one */
            long count = 0;
            for (int j = 0; j < b->nall; j++) {
                long sidx = -1;
                if (input_spec(k, b->names[j], &sidx) == i) count++;
            }
            for (long m = 0; m < count || (m == 0 && !(s->flags & GX_IO_OPTIONAL)); m++) {
                char nm[80];
                snprintf(nm, sizeof nm, "%s%ld", s->name, m);
                int found = 0;
                for (int j = 0; j < b->nall; j++) found |= !strcmp(b->names[j], nm);
                if (!found) {
                    snprintf(field, sizeof field, "inputs.%s", nm);
                    gx_error_set(err, GX_EINVAL, field, "input '%s' is missing (%s inputs are numbered from 0 without gaps)",
                                 nm, s->name);
                    goto fail;
                }
            }
        } else if (!b->in[i] && !(s->flags & GX_IO_OPTIONAL)) {
            snprintf(field, sizeof field, "inputs.%s", s->name);
            gx_error_set(err, GX_EINVAL, field, "required input '%s' %s is missing", s->name,
                         s->shape ? s->shape : "");
            goto fail;
        }
    }
    if (k->validate) {
        gx_kcall c;
        gx_error tmp;
        gx_error_clear(&tmp);
        gx__kcall_init(&c, k, b, NULL, err ? err : &tmp);
        int rc = k->validate(&c);
        if (rc) {
            if (err && !err->message[0]) gx_error_set(err, rc, NULL, "kernel %s refused the call", k->name);
            if (err) err->code = rc;
            free(b->block);
            memset(b, 0, sizeof *b);
            return rc;
        }
    }
    for (int i = 0; i < b->nall; i++) gx_array_ref(b->all[i]);
    return 0;
fail:
    free(b->block);
    memset(b, 0, sizeof *b);
    return err ? err->code : GX_EINVAL;
}

void gx__bound_free(gx__bound *b) {
    if (!b || !b->block) return;
    for (int i = 0; i < b->nall; i++) gx_array_unref(b->all[i]);
    free(b->block);
    memset(b, 0, sizeof *b);
}

void gx__kcall_init(gx_kcall *c, const gx_kernel *k, const gx__bound *b, gx_array **out,
                    gx_error *err) {
    static const int never = 0;
    memset(c, 0, sizeof *c);
    c->kernel = k;
    c->args = b->args;
    c->in = b->in;
    c->nin_all = b->nall;
    c->in_names = b->names;
    c->in_all = b->all;
    c->out = out;
    c->cancel = &never;
    c->err = err;
    c->device = -1;
}

int gx_kernel_validate_call(const gx_kcall *c) {
    if (!c || !c->kernel) return GX_EINVAL;
    const gx_kernel *k = c->kernel;
    for (int i = 0; i < k->ninputs; i++) {
        const gx_io_spec *s = &k->inputs[i];
        if (s->flags & GX_IO_SERIES) continue;
        if (!c->in[i]) {
            if (s->flags & GX_IO_OPTIONAL) continue;
            char field[96];
            snprintf(field, sizeof field, "inputs.%s", s->name);
            return gx_error_set(c->err, GX_EINVAL, field, "required input '%s' is missing", s->name);
        }
        int rc = check_array(s, s->name, c->in[i], c->err);
        if (rc) return rc;
    }
    return k->validate ? k->validate(c) : 0;
}

int gx_kernel_run_direct(const gx_kernel *k, const gx_named_arg *args, int nargs,
                         const gx_named_input *inputs, int ninputs, gx_array **out,
                         gx_error *err) {
    gx_error_clear(err);
    if (!k) return gx_error_set(err, GX_EINVAL, "kernel", "kernel is NULL");
    if (k->noutputs && !out) return gx_error_set(err, GX_EINVAL, "out", "out must hold %d outputs", k->noutputs);
    gx_kernel_run_fn fn = gx_kernel_impl(k, GX_DEV_CPU);
    if (!fn) return gx_error_set(err, GX_EUNSUPPORTED, "device", "kernel %s has no CPU implementation", k->name);
    gx__bound b;
    int rc = gx__bind(k, args, nargs, inputs, ninputs, &b, err);
    if (rc) return rc;
    for (int i = 0; i < k->noutputs; i++) out[i] = NULL;
    gx_kcall c;
    gx_error tmp;
    gx_error_clear(&tmp);
    gx__kcall_init(&c, k, &b, out, err ? err : &tmp);
    c.device = 0;
    rc = fn(&c);
    if (rc) {
        for (int i = 0; i < k->noutputs; i++) {
            gx_array_unref(out[i]);
            out[i] = NULL;
        }
        if (err && !err->message[0]) gx_error_set(err, rc, NULL, "kernel %s failed: %s", k->name, gx_strerror(rc));
        if (err) err->code = rc;
    }
    gx__bound_free(&b);
    return rc;
}

/* ---- kernel plugins -------------------------------------------------------- */

int gx_kernel_plugin_load(const char *path, gx_error *err) {
    gx_error_clear(err);
    if (!path || !*path) return gx_error_set(err, GX_EINVAL, "kernels.plugins", "a kernel plugin path is empty");
    /* NODELETE: its kernels stay registered, their code must stay mapped */
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!dl) {
        const char *why = dlerror();
        return gx_error_set(err, GX_EINVAL, "kernels.plugins", "kernel plugin %.200s cannot be loaded: %.200s", path,
                            why ? why : "unknown error");
    }
    gx_kernel_plugin_init_fn init;
    *(void **)&init = dlsym(dl, GX_KERNEL_PLUGIN_INIT);
    if (!init) {
        dlclose(dl);
        return gx_error_set(err, GX_EINVAL, "kernels.plugins", "%.200s is no kernel plugin: it exports no %s()", path,
                            GX_KERNEL_PLUGIN_INIT);
    }
    gx_error e;
    gx_error_clear(&e);
    int rc = init(&e);
    if (rc)
        return gx_error_set(err, rc, "kernels.plugins", "kernel plugin %.200s failed to start: %.300s", path,
                            e.message[0] ? e.message : gx_strerror(rc));
    return 0;
}
