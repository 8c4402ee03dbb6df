/*
 * arrays.c - arrays in and out of the client: JSON inline form, blobs,
 * job results, and the "dtype[shape]:values" text form of the CLI.
 *
 * Inline JSON arrays are {"dtype":"f32","shape":[2,2],"data":[1,2,3,4]};
 * data is read flat or nested (row-major either way). Integers are converted
 * exactly (no trip through double), so i64/u64 values above 2^53 survive.
 * JSON has no numbers for NaN and infinity: float elements that are go as
 * the strings "NaN", "Infinity" and "-Infinity", as the server writes them
 * (and null, which older servers wrote for all three, reads as NaN).
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_int.h"

static int is_int_dtype(gx_dtype dt) {
    return dt != GX_F32 && dt != GX_F64 && dt != GX_F16 && dt != GX_BOOL;
}

static int is_unsigned(gx_dtype dt) {
    return dt == GX_U8 || dt == GX_U16 || dt == GX_U32 || dt == GX_U64;
}

/* Range of an integer dtype. */
static void int_range(gx_dtype dt, long double *lo, long double *hi) {
    switch (dt) {
    case GX_I8: *lo = INT8_MIN; *hi = INT8_MAX; break;
    case GX_I16: *lo = INT16_MIN; *hi = INT16_MAX; break;
    case GX_I32: *lo = INT32_MIN; *hi = INT32_MAX; break;
    case GX_I64: *lo = (long double)INT64_MIN; *hi = (long double)INT64_MAX; break;
    case GX_U8: *lo = 0; *hi = UINT8_MAX; break;
    case GX_U16: *lo = 0; *hi = UINT16_MAX; break;
    case GX_U32: *lo = 0; *hi = UINT32_MAX; break;
    default: *lo = 0; *hi = (long double)UINT64_MAX; break;
    }
}

/* Store an integer exactly (value already range-checked). */
static void set_int(gx_array *a, int64_t i, int64_t sv, uint64_t uv, int neg) {
    void *d = a->data;
    switch (a->dtype) {
    case GX_I8: ((int8_t *)d)[i] = (int8_t)sv; break;
    case GX_I16: ((int16_t *)d)[i] = (int16_t)sv; break;
    case GX_I32: ((int32_t *)d)[i] = (int32_t)sv; break;
    case GX_I64: ((int64_t *)d)[i] = sv; break;
    case GX_U8: ((uint8_t *)d)[i] = (uint8_t)uv; break;
    case GX_U16: ((uint16_t *)d)[i] = (uint16_t)uv; break;
    case GX_U32: ((uint32_t *)d)[i] = (uint32_t)uv; break;
    case GX_U64: ((uint64_t *)d)[i] = uv; break;
    default: (void)neg; break;
    }
}


/* ---- JSON -> array ----------------------------------------------------------- */

typedef struct {
    gx_array *a;
    int64_t next;
    const char *field;
    gx_error *err;
} fill_ctx;

/* An integer written as a decimal string: the form the server writes u64
 * values past 2^63 - 1 in, since jansson's integers stop there. */
static int fill_dec(fill_ctx *f, int64_t i, const char *s) {
    char *end = NULL;
    int neg = s[0] == '-';
    errno = 0;
    int64_t sv = neg ? strtoll(s, &end, 10) : 0;
    uint64_t uv = neg ? 0 : strtoull(s, &end, 10);
    long double lo, hi;
    int_range(f->a->dtype, &lo, &hi);
    if (!isdigit((unsigned char)s[neg]) || *end || errno || (neg ? (long double)sv < lo : (long double)uv > hi))
        return gx_error_set(f->err, GX_EFORMAT, f->field, "value %lld ('%.24s') is not an integer of %s",
                            (long long)i, s, gx_dtype_name(f->a->dtype));
    set_int(f->a, i, neg ? sv : uv <= (uint64_t)INT64_MAX ? (int64_t)uv : 0, uv, neg);
    return 0;
}

static int fill_value(fill_ctx *f, json_t *v) {
    gx_array *a = f->a;
    if (f->next >= a->count)
        return gx_error_set(f->err, GX_EFORMAT, f->field, "more values than the shape holds (%lld)",
                            (long long)a->count);
    int64_t i = f->next++;
    if (a->dtype == GX_BOOL) {
        if (json_is_boolean(v))
            ((uint8_t *)a->data)[i] = json_is_true(v);
        else if (json_is_number(v))
            ((uint8_t *)a->data)[i] = json_number_value(v) != 0;
        else
            return gx_error_set(f->err, GX_EFORMAT, f->field, "value %lld is not a bool",
                                (long long)i);
        return 0;
    }
    if (is_int_dtype(a->dtype)) {
        if (json_is_string(v)) return fill_dec(f, i, json_string_value(v));
        if (!json_is_integer(v)) {
            double d = json_is_real(v) ? json_real_value(v) : NAN;
            if (!(d == floor(d)) || fabs(d) > 9007199254740992.0)
                return gx_error_set(f->err, GX_EFORMAT, f->field,
                                    "value %lld is not an integer for %s", (long long)i,
                                    gx_dtype_name(a->dtype));
            v = NULL;
            long double lo, hi;
            int_range(a->dtype, &lo, &hi);
            if ((long double)d < lo || (long double)d > hi)
                return gx_error_set(f->err, GX_EFORMAT, f->field, "value %lld (%g) is out of range",
                                    (long long)i, d);
            set_int(a, i, (int64_t)d, (uint64_t)(d < 0 ? 0 : d), d < 0);
            return 0;
        }
        json_int_t n = json_integer_value(v);
        long double lo, hi;
        int_range(a->dtype, &lo, &hi);
        if ((long double)n < lo || (long double)n > hi)
            return gx_error_set(f->err, GX_EFORMAT, f->field, "value %lld (%lld) is out of range",
                                (long long)i, (long long)n);
        set_int(a, i, (int64_t)n, (uint64_t)n, n < 0);
        return 0;
    }
    double x = NAN; /* null: a server before "NaN"/"Infinity" wrote every non-finite so */
    if (json_is_number(v))
        x = json_number_value(v);
    else if (json_is_string(v) ? gx_float_special_parse(json_string_value(v), &x) : !json_is_null(v))
        return gx_error_set(f->err, GX_EFORMAT, f->field, "value %lld is not a number",
                            (long long)i);
    gx_array_set_f64(a, i, x);
    return 0;
}

static int fill(fill_ctx *f, json_t *v, int depth) {
    if (json_is_array(v)) {
        if (depth > GX_MAX_DIMS)
            return gx_error_set(f->err, GX_EFORMAT, f->field, "data is nested too deeply");
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) {
            int rc = fill(f, x, depth + 1);
            if (rc) return rc;
        }
        return 0;
    }
    return fill_value(f, v);
}

int gx__array_from_json(json_t *o, const char *field, gx_array **out, gx_error *err) {
    *out = NULL;
    const char *dts = json_string_value(json_object_get(o, "dtype"));
    gx_dtype dt = gx_dtype_from_name(dts);
    if (dt == GX_DT_INVALID)
        return gx_error_set(err, GX_EFORMAT, field, "unknown dtype '%s'", dts ? dts : "(none)");
    json_t *data = json_object_get(o, "data");
    json_t *shp = json_object_get(o, "shape");
    int64_t shape[GX_MAX_DIMS];
    int nd = 0;
    if (json_is_array(shp)) {
        if (json_array_size(shp) > GX_MAX_DIMS)
            return gx_error_set(err, GX_EFORMAT, field, "shape has more than %d dimensions",
                                GX_MAX_DIMS);
        size_t i;
        json_t *x;
        json_array_foreach(shp, i, x) {
            if (!json_is_integer(x) || json_integer_value(x) < 0)
                return gx_error_set(err, GX_EFORMAT, field, "shape[%zu] is not a size", i);
            shape[nd++] = json_integer_value(x);
        }
    } else if (json_is_array(data)) {
        shape[nd++] = (int64_t)json_array_size(data);
    } else if (!json_is_number(data) && !json_is_boolean(data)) {
        return gx_error_set(err, GX_EFORMAT, field, "no shape and no data");
    }
    gx_array *a = NULL;
    int rc = gx_array_new(dt, nd, shape, &a, err);
    if (rc) return rc;
    fill_ctx f = {a, 0, field, err};
    rc = data ? fill(&f, data, 0) : 0;
    if (!rc && f.next != a->count)
        rc = gx_error_set(err, GX_EFORMAT, field, "%lld values for a shape of %lld elements",
                          (long long)f.next, (long long)a->count);
    if (rc) {
        gx_array_unref(a);
        return rc;
    }
    *out = a;
    return 0;
}

/* ---- array -> JSON ------------------------------------------------------------- */

/* One element; NULL only when out of memory. NaN and infinities go as the
 * strings "NaN", "Infinity" and "-Infinity" (JSON has no numbers for them),
 * u64 values past 2^63 - 1 as decimal strings; the server reads both back
 * exactly (a JSON number that large would not parse in jansson, and a real
 * would round). */
static json_t *elem_json(const gx_array *a, int64_t i) {
    switch (a->dtype) {
    case GX_BOOL: return json_boolean(((const uint8_t *)a->data)[i] != 0);
    case GX_U64: {
        uint64_t u = gx_array_get_u64(a, i);
        char dec[24];
        snprintf(dec, sizeof dec, "%llu", (unsigned long long)u);
        return u > (uint64_t)INT64_MAX ? json_string(dec) : json_integer((json_int_t)u);
    }
    case GX_F32: case GX_F64: case GX_F16: {
        double v = gx_array_get_f64(a, i);
        return isfinite(v) ? json_real(v) : json_string(gx_float_special_name(v));
    }
    default: return json_integer(gx_array_get_i64(a, i));
    }
}

json_t *gx__array_to_json(const gx_array *a) {
    json_t *o = json_object(), *shape = json_array(), *data = json_array();
    if (!o || !shape || !data) goto fail;
    for (int i = 0; i < a->ndim; i++)
        if (json_array_append_new(shape, json_integer(a->shape[i]))) goto fail;
    for (int64_t i = 0; i < a->count; i++) {
        json_t *v = elem_json(a, i);
        if (!v || json_array_append_new(data, v)) goto fail;
    }
    if (json_object_set_new(o, "dtype", json_string(gx_dtype_name(a->dtype))) ||
        json_object_set_new(o, "shape", shape) || json_object_set_new(o, "data", data)) {
        json_decref(o);
        return NULL;
    }
    return o;
fail:
    json_decref(o);
    json_decref(shape);
    json_decref(data);
    return NULL;
}

/* ---- blobs ---------------------------------------------------------------------- */

static int blob_post(gx_client *c, const void *buf, size_t len, char id[GX_CLIENT_BLOB_ID_MAX],
                     gx_error *err) {
    gx__buf resp = {0};
    int rc = gx__http(c, "POST", "/v1/blobs", buf, len, "application/octet-stream", &resp, err);
    if (rc == 0) {
        json_t *o = json_loadb(resp.p, resp.len, 0, NULL);
        gx__jstr(id, GX_CLIENT_BLOB_ID_MAX, o, "id");
        if (!id[0])
            rc = gx_error_set(err, GX_EFORMAT, "id", "server did not answer with a blob id");
        json_decref(o);
    }
    gx__buf_free(&resp);
    return rc;
}

int gx_client_blob_put(gx_client *c, const gx_array *a, char id[GX_CLIENT_BLOB_ID_MAX],
                       gx_error *err) {
    id[0] = '\0';
    void *buf = NULL;
    size_t len = 0;
    int rc = gx_npy_write_mem(a, &buf, &len, err);
    if (rc) return rc;
    rc = blob_post(c, buf, len, id, err);
    free(buf);
    return rc;
}

/* path for a message: a long one by its last 100 bytes, so that the
 * reason after it is not cut off (messages are GX_CLIENT_MSG_MAX bytes) */
static const char *msg_path(const char *path, char buf[128]) {
    size_t n = strlen(path);
    if (n <= 120) return path;
    snprintf(buf, 128, "...%s", path + n - 100);
    return buf;
}

int gx_client_blob_put_file(gx_client *c, const char *path, char id[GX_CLIENT_BLOB_ID_MAX],
                            gx_error *err) {
    id[0] = '\0';
    /* a file at fault is no answer: status 0 (the status of an earlier
     * upload made it look like a server's refusal) */
    gx__call_begin(c);
    char pb[128];
    FILE *f = fopen(path, "rb");
    if (!f) return gx_error_set(err, GX_EIO, "path", "cannot open %s: %s", msg_path(path, pb), strerror(errno));
    gx__buf b = {0};
    char chunk[65536];
    size_t n;
    int rc = 0;
    while (!rc && (n = fread(chunk, 1, sizeof chunk, f)) > 0) rc = gx__buf_add(&b, chunk, n);
    int bad = ferror(f), eno = errno;
    fclose(f);
    if (rc) {
        gx__buf_free(&b);
        return gx_error_set(err, GX_ENOMEM, NULL, "out of memory reading %s", msg_path(path, pb));
    }
    if (bad) {
        gx__buf_free(&b);
        return gx_error_set(err, GX_EIO, "path", "cannot read %s: %s", msg_path(path, pb), strerror(eno));
    }
    gx_array *a = NULL;
    rc = gx_npy_read_mem(b.p ? b.p : "", b.len, &a, err);
    gx_array_unref(a);
    if (rc) {
        char pre[160];
        snprintf(pre, sizeof pre, "%s is not a usable .npy file", msg_path(path, pb));
        gx__error_prefix(err, pre);
        if (err && rc != GX_ENOMEM) snprintf(err->field, sizeof err->field, "path");
        gx__buf_free(&b);
        return rc;
    }
    rc = blob_post(c, b.p, b.len, id, err);
    gx__buf_free(&b);
    return rc;
}

static int blob_fetch(gx_client *c, const char *path, gx_array **out, gx_error *err) {
    gx__buf resp = {0};
    int rc = gx__http(c, "GET", path, NULL, 0, NULL, &resp, err);
    if (rc == 0) rc = gx_npy_read_mem(resp.p ? resp.p : "", resp.len, out, err);
    gx__buf_free(&resp);
    return rc;
}

int gx_client_blob_get(gx_client *c, const char *blob_id, gx_array **out, gx_error *err) {
    *out = NULL;
    gx__call_begin(c);
    if (!blob_id || !*blob_id) return gx_error_set(err, GX_EINVAL, "blob", "blob id is empty");
    char *e = gx__escape(blob_id);
    if (!e) return gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
    size_t n = strlen(e) + 16;
    char *p = malloc(n);
    if (!p) {
        free(e);
        return gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
    }
    snprintf(p, n, "/v1/blobs/%s", e);
    free(e);
    int rc = blob_fetch(c, p, out, err);
    free(p);
    return rc;
}

/* ---- results ----------------------------------------------------------------------- */

void gx_client_outputs_free(gx_client_outputs *r) {
    if (!r) return;
    for (size_t i = 0; i < r->n; i++) gx_array_unref(r->outputs[i].array);
    free(r->outputs);
    r->outputs = NULL;
    r->n = 0;
}

const gx_client_output *gx_client_outputs_find(const gx_client_outputs *r, const char *name) {
    for (size_t i = 0; r && name && i < r->n; i++)
        if (!strcmp(r->outputs[i].name, name)) return &r->outputs[i];
    return NULL;
}

int gx_client_result(gx_client *c, const char *id, gx_client_outputs *out, char **raw,
                     gx_error *err) {
    memset(out, 0, sizeof *out);
    if (raw) *raw = NULL;
    gx__call_begin(c);
    if (!id || !*id) return gx_error_set(err, GX_EINVAL, "id", "job id is empty");
    char *e = gx__escape(id);
    if (!e) return gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
    size_t pn = strlen(e) + 24;
    char *path = malloc(pn);
    if (!path) {
        free(e);
        return gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
    }
    snprintf(path, pn, "/v1/jobs/%s/result", e);
    free(e);
    json_t *root = NULL;
    int rc = gx__http_json(c, "GET", path, NULL, &root, raw, err);
    free(path);
    if (rc) return rc;
    gx__jstr(out->id, sizeof out->id, root, "id");
    gx__jstr(out->state_name, sizeof out->state_name, root, "state");
    json_t *outs = json_object_get(root, "outputs");
    if (!json_is_object(outs)) { /* a result always has it ({} without outputs) */
        json_decref(root);
        return gx_error_set(err, GX_EFORMAT, "outputs", "the server's answer has no \"outputs\" object");
    }
    size_t n = json_object_size(outs);
    out->outputs = calloc(n ? n : 1, sizeof *out->outputs);
    if (!out->outputs) {
        json_decref(root);
        return gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
    }
    const char *name;
    json_t *v;
    json_object_foreach(outs, name, v) {
        gx_client_output *o = &out->outputs[out->n];
        char field[96];
        snprintf(field, sizeof field, "outputs.%s", name);
        snprintf(o->name, sizeof o->name, "%s", name);
        const char *blob = json_string_value(json_object_get(v, "blob"));
        if (blob) {
            snprintf(o->blob, sizeof o->blob, "%s", blob);
            const char *url = json_string_value(json_object_get(v, "url"));
            rc = url && url[0] == '/' ? blob_fetch(c, url, &o->array, err)
                                      : gx_client_blob_get(c, blob, &o->array, err);
        } else {
            rc = gx__array_from_json(v, field, &o->array, err);
        }
        if (rc) {
            gx_client_outputs_free(out);
            json_decref(root);
            return rc;
        }
        out->n++;
    }
    json_decref(root);
    return 0;
}

/* ---- text form: "dtype[shape]:v,v,v" ---------------------------------------------------- */

static int parse_err(gx_error *err, const char *text, const char *at, const char *fmt,
                     const char *detail) {
    gx_error_set(err, GX_EINVAL, "inline", fmt, detail);
    if (err) err->pos = (long)(at - text);
    return GX_EINVAL;
}

int gx_client_parse_inline(const char *text, gx_array **out, gx_error *err) {
    *out = NULL;
    if (!text) return gx_error_set(err, GX_EINVAL, "inline", "inline array is NULL");
    const char *p = text;
    if (!strncmp(p, "@inline:", 8)) p += 8;
    const char *dt_end = p;
    while (isalnum((unsigned char)*dt_end)) dt_end++;
    char dts[16];
    size_t dl = (size_t)(dt_end - p);
    if (dl == 0 || dl >= sizeof dts)
        return parse_err(err, text, p, "expected a dtype (f32, i64, ...) at '%.20s'", p);
    memcpy(dts, p, dl);
    dts[dl] = '\0';
    gx_dtype dt = gx_dtype_from_name(dts);
    if (dt == GX_DT_INVALID) return parse_err(err, text, p, "unknown dtype '%s'", dts);
    p = dt_end;
    int64_t shape[GX_MAX_DIMS];
    int nd = -1; /* -1: 1-D, size from the values */
    if (*p == '[') {
        nd = 0;
        p++;
        while (isspace((unsigned char)*p)) p++;
        while (*p != ']') {
            if (nd == GX_MAX_DIMS)
                return parse_err(err, text, p, "more than 8 dimensions at '%.20s'", p);
            char *end;
            errno = 0;
            long long v = strtoll(p, &end, 10);
            if (end == p || v < 0 || errno)
                return parse_err(err, text, p, "expected a size at '%.20s'", p);
            shape[nd++] = v;
            p = end;
            while (isspace((unsigned char)*p)) p++;
            if (*p == ',') {
                p++;
                while (isspace((unsigned char)*p)) p++;
            } else if (*p != ']') {
                return parse_err(err, text, p, "expected ',' or ']' at '%.20s'", p);
            }
        }
        p++;
    }
    if (*p != ':') return parse_err(err, text, p, "expected ':' before the values at '%.20s'", p);
    p++;
    /* count values: commas + 1, none for an empty list */
    const char *vals = p;
    while (isspace((unsigned char)*vals)) vals++;
    int64_t n = 0;
    if (*vals) {
        n = 1;
        for (const char *q = vals; *q; q++) n += *q == ',';
    }
    if (nd < 0) {
        nd = 1;
        shape[0] = n;
    }
    /* check the count against the shape before allocating anything */
    int64_t want = 1;
    int huge = 0;
    for (int d = 0; d < nd; d++) {
        if (shape[d] && want > GX_ARRAY_MAX_ELEMS / shape[d]) huge = 1;
        want = huge ? 0 : want * shape[d];
    }
    if (!huge && want != n) {
        gx_error_set(err, GX_EINVAL, "inline", "%lld values for a shape of %lld elements",
                     (long long)n, (long long)want);
        if (err) err->pos = (long)(vals - text);
        return GX_EINVAL;
    }
    gx_array *a = NULL;
    int rc = gx_array_new(dt, nd, shape, &a, err);
    if (rc) return rc;
    p = vals;
    for (int64_t i = 0; i < n; i++) {
        while (isspace((unsigned char)*p)) p++;
        const char *start = p;
        char *end;
        errno = 0;
        if (dt == GX_BOOL && (!strncmp(p, "true", 4) || !strncmp(p, "false", 5))) {
            ((uint8_t *)a->data)[i] = *p == 't';
            end = (char *)p + (*p == 't' ? 4 : 5);
        } else if (dt == GX_BOOL || is_int_dtype(dt)) {
            int neg = *p == '-';
            if (is_unsigned(dt) && neg) {
                gx_array_unref(a);
                return parse_err(err, text, start, "negative value for an unsigned dtype at '%.20s'",
                                 start);
            }
            long double lo, hi;
            int_range(dt == GX_BOOL ? GX_U8 : dt, &lo, &hi);
            const char *q = p + (*p == '+' || *p == '-');
            if (!isdigit((unsigned char)*q)) goto bad_value;
            /* decimal only: 010 is ten, as for -a, not octal eight */
            if (neg) {
                long long v = strtoll(p, &end, 10);
                if (end == p || errno || (long double)v < lo) goto bad_value;
                set_int(a, i, v, 0, 1);
            } else {
                unsigned long long v = strtoull(q, &end, 10);
                if (end == q || errno || (long double)v > hi || (dt == GX_BOOL && v > 1))
                    goto bad_value;
                if (dt == GX_BOOL)
                    ((uint8_t *)a->data)[i] = (uint8_t)v;
                else
                    set_int(a, i, (int64_t)v, (uint64_t)v, 0);
            }
        } else {
            /* nan, inf, infinity (any case, signed) are taken; hex floats
             * (0x10) are not, so that every number reads as decimal */
            double v = strtod(p, &end);
            int overflow = errno == ERANGE && fabs(v) > 1; /* past every double: 1e400 */
            if (end == p || memchr(p, 'x', (size_t)(end - p)) || memchr(p, 'X', (size_t)(end - p)))
                goto bad_value;
            gx_array_set_f64(a, i, v);
            /* a finite value never turns into infinity on the way */
            if (overflow || (isfinite(v) && !isfinite(gx_array_get_f64(a, i)))) {
                char what[48];
                snprintf(what, sizeof what, "%.*s", (int)(end - p < 24 ? end - p : 24), p);
                gx_array_unref(a);
                gx_error_set(err, GX_EINVAL, "inline", "%s does not fit in %s (the largest finite value is %.9g)",
                             what, gx_dtype_name(dt), gx_dtype_float_max(dt));
                if (err) err->pos = (long)(start - text);
                return GX_EINVAL;
            }
        }
        p = end;
        while (isspace((unsigned char)*p)) p++;
        if (i + 1 < n) {
            if (*p != ',') goto bad_value;
            p++;
        } else if (*p) {
            goto bad_value;
        }
        continue;
    bad_value:
        gx_array_unref(a);
        return parse_err(err, text, start, "bad value at '%.20s'", start);
    }
    *out = a;
    return 0;
}

int gx_client_parse_duration(const char *text, long *ms, gx_error *err) {
    if (!text || !*text) return gx_error_set(err, GX_EINVAL, "duration", "empty duration");
    if (!strcmp(text, "-1") || !strcmp(text, "inf") || !strcmp(text, "none")) {
        *ms = -1;
        return 0;
    }
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || errno || !isfinite(v) || v < 0 || isspace((unsigned char)text[0]))
        return gx_error_set(err, GX_EINVAL, "duration",
                            "bad duration '%s' (examples: 30, 1.5s, 250ms, 2m, 1h)", text);
    double scale;
    if (!*end || !strcmp(end, "s"))
        scale = 1000;
    else if (!strcmp(end, "ms"))
        scale = 1;
    else if (!strcmp(end, "m"))
        scale = 60000;
    else if (!strcmp(end, "h"))
        scale = 3600000;
    else
        return gx_error_set(err, GX_EINVAL, "duration",
                            "bad duration unit in '%s' (use ms, s, m or h)", text);
    double r = v * scale;
    if (r > 1e15) return gx_error_set(err, GX_EINVAL, "duration", "duration '%s' is too long", text);
    /* it would round to 0, which is no limit for a job's timeout */
    if (r > 0 && r < 0.5)
        return gx_error_set(err, GX_EINVAL, "duration", "duration '%s' is under 1 ms (the shortest is 1ms)", text);
    *ms = (long)(r + 0.5);
    return 0;
}
