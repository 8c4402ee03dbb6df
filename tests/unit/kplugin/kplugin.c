/*
 * kplugin.c - a kernel plugin for tests: "plug_scale" (y = a * x, f32 and
 * f64, CPU), registered through gx_kernel_plugin_init as gexecd's
 * kernels.plugins loads it. Like any kernel plugin it does not link
 * libgexec: gx_* resolve against gexecd, which exports them.
 * GX_KPLUGIN_FAIL set makes its init fail (the start must stop).
 */
#include <stdlib.h>

#include "gexec/gexec_kernel.h"

static int scale_run(gx_kcall *c) {
    const gx_array *x = c->in[0];
    int rc = gx_array_new(x->dtype, x->ndim, x->shape, &c->out[0], c->err);
    if (rc) return rc;
    size_t n = (size_t)x->count;
    double a = c->args[0];
    if (x->dtype == GX_F32)
        for (size_t i = 0; i < n; i++) ((float *)c->out[0]->data)[i] = (float)(a * ((const float *)x->data)[i]);
    else
        for (size_t i = 0; i < n; i++) ((double *)c->out[0]->data)[i] = a * ((const double *)x->data)[i];
    return 0;
}

static const gx_arg_spec scale_args[] = {{.name = "a", .type = GX_ARG_FLOAT, .min = -1e30, .max = 1e30, .doc = "factor"}};
static const gx_io_spec scale_in[] = {{.name = "x", .dtypes = GX_DTM_FLOAT, .rank = 1, .doc = "vector"}};
static const gx_io_spec scale_out[] = {{.name = "y", .dtypes = GX_DTM_FLOAT, .rank = 1, .doc = "a * x"}};

static const gx_kernel k_scale = {
    .abi_version = GX_KERNEL_ABI_VERSION,
    .struct_size = sizeof(gx_kernel),
    .name = "plug_scale",
    .version = 1,
    .summary = "y = a * x (a test kernel plugin)",
    .args = scale_args,
    .nargs = 1,
    .inputs = scale_in,
    .ninputs = 1,
    .outputs = scale_out,
    .noutputs = 1,
    .run = {[GX_DEV_CPU] = scale_run},
};

int gx_kernel_plugin_init(gx_error *err) {
    if (getenv("GX_KPLUGIN_FAIL")) return gx_error_set(err, GX_EINVAL, NULL, "asked to fail (GX_KPLUGIN_FAIL)");
    return gx_kernel_register(&k_scale, err);
}
