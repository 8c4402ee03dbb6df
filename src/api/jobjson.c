/*
 * jobjson.c - decoding job requests and encoding job objects. See jobjson.h.
 *
 * Every problem names the field it is in, so a client can point at it:
 * "inputs.y.data: expected 4 numbers for shape [4], got 3".
 */
#include "jobjson.h"

#include "jsonw.h"
#include "str.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_ARGS 64
#define MAX_INPUTS 1024

/* The member name whose value ends at body[end] ("priority" in
 * {"priority":1e999}), for a number jansson cannot hold; "" when the
 * number is not a member's value (an array element) or no name is found. */
static void number_key(const char *body, size_t end, char *out, size_t cap) {
    out[0] = '\0';
    size_t i = end; /* jansson's position: just past the number */
    while (i > 0 && body[i - 1] && strchr("0123456789+-.eE", body[i - 1])) i--;
    while (i > 0 && body[i - 1] && strchr(" \t\r\n", body[i - 1])) i--;
    if (i == 0 || body[i - 1] != ':') return;
    i--;
    while (i > 0 && body[i - 1] && strchr(" \t\r\n", body[i - 1])) i--;
    if (i == 0 || body[i - 1] != '"') return;
    size_t close = --i;
    while (i > 0 && body[i - 1] != '"' && body[i - 1] != '\\') i--;
    /* a name with an escape in it is not named (its text is not its name) */
    if (i == 0 || body[i - 1] != '"' || close - i >= cap || close - i > 64) return;
    memcpy(out, body + i, close - i);
    out[close - i] = '\0';
}

json_t *gx_json_parse_body(const char *body, size_t len, gx_error *err) {
    json_error_t je;
    if (len == 0) {
        gx_error_set(err, GX_EINVAL, "body", "the request body is empty; expected a JSON object");
        return NULL;
    }
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        /* a number past what jansson holds is valid JSON: say which one and
         * what to send instead */
        int big = !strncmp(je.text, "too big", 7), huge = !strncmp(je.text, "real number overflow", 20);
        char key[72] = "", hint[200] = "";
        if (big || huge) {
            number_key(body, (size_t)je.position <= len ? (size_t)je.position : len, key, sizeof key);
            snprintf(hint, sizeof hint, "%s%s%s; %s", key[0] ? " (the value of \"" : "", key, key[0] ? "\")" : "",
                     big ? "integers must fit in 64 bits: send a larger u64 as a decimal string, other large "
                           "numbers as reals (1e19)"
                         : "numbers must fit in a double (about 1.8e308)");
        }
        gx_error_set(err, GX_EFORMAT, "body", "%s at line %d, column %d: %s%s",
                     big || huge ? "JSON number out of range" : "malformed JSON", je.line, je.column, je.text, hint);
        if (err) err->pos = je.position;
        return NULL;
    }
    return j;
}

json_t *gx_json_object_body(const char *body, size_t len, const char *const *allowed, gx_error *err) {
    json_t *j = gx_json_parse_body(body, len, err);
    if (!j) return NULL;
    if (!json_is_object(j)) {
        json_decref(j);
        gx_error_set(err, GX_EINVAL, "body", "the body must be a JSON object");
        return NULL;
    }
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v) {
        int known = 0;
        for (int i = 0; allowed[i] && !known; i++) known = !strcmp(key, allowed[i]);
        if (!known) {
            gx_error_set(err, GX_EINVAL, key, "unknown field '%.60s'", key);
            json_decref(j);
            return NULL;
        }
    }
    return j;
}

gx_job_id gx_job_id_parse(const char *s) {
    if (!s || !*s || strlen(s) > 19) return 0;
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') return 0;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (s[0] == '0' || v > (uint64_t)INT64_MAX) return 0;
    return v;
}

/* The text of gx_json_time for ns != 0; its length. */
static size_t time_text(int64_t ns, char buf[40]) { return gx_time_text(ns, 6, buf); }

json_t *gx_json_time(int64_t ns) {
    if (!ns) return json_null();
    char buf[40];
    time_text(ns, buf);
    return json_string(buf);
}

static int fail(gx_error *err, int code, const char *prefix, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int fail(gx_error *err, int code, const char *prefix, const char *field, const char *fmt, ...) {
    char full[96], msg[256];
    snprintf(full, sizeof full, "%s%s", prefix ? prefix : "", field);
    size_t fl = strlen(full);
    if (fl && full[fl - 1] == '.') full[fl - 1] = '\0'; /* "jobs[3]." names the item itself */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return gx_error_set(err, code, full, "%s: %s", full, msg);
}

static const char *jtype(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE: case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

/* Integer field within [lo, hi]. */
static int get_int(json_t *v, const char *prefix, const char *field, int64_t lo, int64_t hi, int64_t *out,
                   gx_error *err) {
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!(d >= (double)lo && d <= (double)hi))
            return fail(err, GX_EINVAL, prefix, field, "must be %lld..%lld; got %g", (long long)lo, (long long)hi, d);
        if (d != floor(d)) return fail(err, GX_EINVAL, prefix, field, "must be an integer; got %g", d);
        *out = (int64_t)d;
        return 0;
    } else if (json_is_integer(v)) {
        *out = json_integer_value(v);
    } else {
        return fail(err, GX_EINVAL, prefix, field, "must be an integer; got %s", jtype(v));
    }
    if (*out < lo || *out > hi)
        return fail(err, GX_EINVAL, prefix, field, "must be %lld..%lld; got %lld", (long long)lo, (long long)hi,
                    (long long)*out);
    return 0;
}

/* A decimal string "-?[0-9]+" as sign and magnitude; -1 if it is not one
 * or its magnitude is past 2^64 - 1. */
static int parse_dec(const char *s, int *neg, uint64_t *mag) {
    *neg = *s == '-';
    s += *neg;
    if (!*s) return -1;
    uint64_t m = 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9' || __builtin_mul_overflow(m, 10, &m) ||
            __builtin_add_overflow(m, (uint64_t)(*s - '0'), &m))
            return -1;
    *mag = m;
    return 0;
}

/* Store element i of an integer or bool array exactly, never through
 * double. v is a JSON integer; an integral real below 2^53 in magnitude
 * (from there on the parser may already have rounded the text: 2^53 + 1
 * written as 9007199254740993.0 reads as 2^53, so it is refused rather
 * than stored wrong); a decimal string, the form gx_array_json writes u64 values
 * past 2^63 - 1 in (jansson's integers are long long); or for bool, true or
 * false. The value is carried as sign and magnitude so that every i64 and
 * u64 fits, and is checked against the dtype's range. */
static int put_int_elem(gx_array *a, int64_t i, json_t *v, const char *prefix, const char *f, gx_error *err) {
    int neg;
    uint64_t mag;
    if (json_is_integer(v)) {
        json_int_t n = json_integer_value(v);
        neg = n < 0;
        mag = neg ? 0 - (uint64_t)n : (uint64_t)n;
    } else if (json_is_real(v)) {
        double x = json_real_value(v);
        if (x != floor(x)) return fail(err, GX_EINVAL, prefix, f, "dtype %s needs integers; got %g", gx_dtype_name(a->dtype), x);
        if (fabs(x) >= 9007199254740992.0)
            return fail(err, GX_EINVAL, prefix, f, "%g is 2^53 or more written as a real, so it may have been rounded; "
                        "write the integer without a fraction or exponent", x);
        neg = x < 0;
        mag = (uint64_t)fabs(x);
    } else if (json_is_string(v)) {
        if (parse_dec(json_string_value(v), &neg, &mag))
            return fail(err, GX_EINVAL, prefix, f, "'%.24s' is not a decimal integer within 64 bits", json_string_value(v));
    } else if (json_is_boolean(v) && a->dtype == GX_BOOL) {
        neg = 0;
        mag = json_is_true(v);
    } else {
        return fail(err, GX_EINVAL, prefix, f, "must be a number; got %s", jtype(v));
    }
    int64_t lo;
    uint64_t hi;
    gx_dtype_int_range(a->dtype, &lo, &hi);
    /* -lo as a magnitude, computed without overflowing at INT64_MIN */
    uint64_t lo_mag = lo ? (uint64_t)-(lo + 1) + 1 : 0;
    if (neg ? mag > lo_mag : mag > hi)
        return fail(err, GX_EINVAL, prefix, f, "%s%llu is outside the range of %s (%lld..%llu)", neg ? "-" : "",
                    (unsigned long long)mag, gx_dtype_name(a->dtype), (long long)lo, (unsigned long long)hi);
    if (neg)
        gx_array_set_i64(a, i, mag ? -(int64_t)(mag - 1) - 1 : 0);
    else
        gx_array_set_u64(a, i, mag);
    return 0;
}

/* Store element i of an f16, f32 or f64 array, rounded to nearest. v is a
 * JSON number or one of the strings "NaN", "Infinity" and "-Infinity" (JSON
 * has no numbers for them; gx_array_json writes them so). A finite number
 * that the dtype cannot hold (it would round to infinity: 1e39 in f32,
 * 65520 and up in f16) is refused rather than stored as infinity. */
static int put_float_elem(gx_array *a, int64_t i, json_t *v, const char *prefix, const char *f, gx_error *err) {
    double x;
    if (json_is_string(v)) {
        if (gx_float_special_parse(json_string_value(v), &x))
            return fail(err, GX_EINVAL, prefix, f, "'%.24s' is not a number (the strings taken are \"NaN\", "
                        "\"Infinity\" and \"-Infinity\")", json_string_value(v));
    } else if (json_is_number(v)) {
        x = json_number_value(v);
    } else {
        return fail(err, GX_EINVAL, prefix, f, "must be a number; got %s (NaN and infinities are written \"NaN\", "
                    "\"Infinity\", \"-Infinity\")", jtype(v));
    }
    gx_array_set_f64(a, i, x);
    if (isfinite(x) && !isfinite(gx_array_get_f64(a, i)))
        return fail(err, GX_EINVAL, prefix, f, "%.9g does not fit in %s (the largest finite value is %.9g)", x,
                    gx_dtype_name(a->dtype), gx_dtype_float_max(a->dtype));
    return 0;
}

static int decode_inline(json_t *in, const char *name, const char *prefix, gx_array **out, gx_error *err) {
    char f[96];
    json_t *dt = json_object_get(in, "dtype"), *shape = json_object_get(in, "shape"), *data = json_object_get(in, "data");
    const char *key;
    json_t *v;
    json_object_foreach(in, key, v) {
        if (strcmp(key, "dtype") && strcmp(key, "shape") && strcmp(key, "data")) {
            snprintf(f, sizeof f, "inputs.%s.%.30s", name, key);
            return fail(err, GX_EINVAL, prefix, f, "unknown field (an input is {\"blob\"} or {\"dtype\",\"shape\",\"data\"})");
        }
    }
    snprintf(f, sizeof f, "inputs.%s.dtype", name);
    if (!json_is_string(dt)) return fail(err, GX_EINVAL, prefix, f, "must be a string such as \"f32\"");
    gx_dtype d = gx_dtype_from_name(json_string_value(dt));
    if (!d)
        return fail(err, GX_EINVAL, prefix, f, "unknown dtype '%.20s' (f32, f64, i32, i64, u8, ...)", json_string_value(dt));
    int64_t sh[GX_MAX_DIMS];
    int nd = 0;
    snprintf(f, sizeof f, "inputs.%s.shape", name);
    if (!shape) {
        if (data && !json_is_array(data)) { /* the data is what is wrong, not the missing shape */
            snprintf(f, sizeof f, "inputs.%s.data", name);
            return fail(err, GX_EINVAL, prefix, f, "must be an array of numbers; got %s", jtype(data));
        }
        if (!json_is_array(data)) return fail(err, GX_EINVAL, prefix, f, "is required");
        sh[0] = (int64_t)json_array_size(data);
        nd = 1;
    } else {
        if (!json_is_array(shape)) return fail(err, GX_EINVAL, prefix, f, "must be an array of sizes; got %s", jtype(shape));
        if (json_array_size(shape) > GX_MAX_DIMS)
            return fail(err, GX_EINVAL, prefix, f, "has %zu dimensions; at most %d", json_array_size(shape), GX_MAX_DIMS);
        size_t i;
        json_array_foreach(shape, i, v) {
            snprintf(f, sizeof f, "inputs.%s.shape[%zu]", name, i);
            if (get_int(v, prefix, f, 0, GX_ARRAY_MAX_ELEMS, &sh[i], err)) return err ? err->code : GX_EINVAL;
            nd++;
        }
    }
    int64_t count = 1;
    for (int i = 0; i < nd; i++) {
        if (sh[i] && count > GX_ARRAY_MAX_ELEMS / sh[i]) {
            snprintf(f, sizeof f, "inputs.%s.shape", name);
            return fail(err, GX_EOVERFLOW, prefix, f, "describes more than 2^34 elements");
        }
        count *= sh[i];
    }
    snprintf(f, sizeof f, "inputs.%s.data", name);
    if (!json_is_array(data)) return fail(err, GX_EINVAL, prefix, f, "must be a flat array of numbers; got %s", data ? jtype(data) : "nothing");
    if ((int64_t)json_array_size(data) != count)
        return fail(err, GX_EINVAL, prefix, f, "expected %lld numbers for the shape given; got %zu", (long long)count,
                    json_array_size(data));
    gx_array *a;
    int rc = gx_array_new(d, nd, sh, &a, err);
    if (rc) return rc;
    int is_int = d != GX_F16 && d != GX_F32 && d != GX_F64;
    size_t i;
    json_array_foreach(data, i, v) {
        snprintf(f, sizeof f, "inputs.%s.data[%zu]", name, i);
        rc = is_int ? put_int_elem(a, (int64_t)i, v, prefix, f, err) : put_float_elem(a, (int64_t)i, v, prefix, f, err);
        if (rc) {
            gx_array_unref(a);
            return rc;
        }
    }
    *out = a;
    return 0;
}

void gx_jobreq_free(gx_jobreq *r) {
    if (!r) return;
    for (int i = 0; i < r->spec.ninputs; i++) gx_array_unref(r->inputs[i].array);
    free(r->args);
    free(r->inputs);
    free(r->labels);
    free(r->deps);
    free(r->batch_deps);
    free(r->canonical);
    json_decref(r->root);
    memset(r, 0, sizeof *r);
}

static const char *const top_keys[] = {"kernel", "args", "inputs", "priority", "depends_on", "timeout_ms",
                                       "queue_timeout_ms", "max_attempts", "device", "idempotency_key", "labels",
                                       "fallback", "memory_bytes", NULL};

int gx_jobreq_decode(json_t *obj, const char *tenant, gx_blob_loader load, void *load_ctx, int batch,
                     size_t batch_n, const char *prefix, gx_jobreq *r, gx_error *err) {
    memset(r, 0, sizeof *r);
    gx_job_spec_init(&r->spec);
    if (!prefix) prefix = "";
    if (!json_is_object(obj))
        return fail(err, GX_EINVAL, prefix, *prefix ? "" : "body", "must be a JSON object; got %s", jtype(obj));
    r->root = json_incref(obj);
    gx_job_spec *s = &r->spec;
    s->tenant = tenant;
    const char *key;
    json_t *v;
    int rc = 0;
    json_object_foreach(obj, key, v) {
        int known = 0;
        for (int i = 0; top_keys[i]; i++) known |= !strcmp(key, top_keys[i]);
        if (!known) {
            rc = fail(err, GX_EINVAL, prefix, key, "unknown field");
            goto out;
        }
    }
    v = json_object_get(obj, "kernel");
    if (!json_is_string(v)) {
        rc = fail(err, GX_EINVAL, prefix, "kernel", v ? "must be a string; got %s" : "is required%s", v ? jtype(v) : "");
        goto out;
    }
    s->kernel = json_string_value(v);
    /* args */
    json_t *args = json_object_get(obj, "args");
    if (args && !json_is_null(args)) {
        if (!json_is_object(args)) {
            rc = fail(err, GX_EINVAL, prefix, "args", "must be an object; got %s", jtype(args));
            goto out;
        }
        if (json_object_size(args) > MAX_ARGS) {
            rc = fail(err, GX_EINVAL, prefix, "args", "has more than %d entries", MAX_ARGS);
            goto out;
        }
        r->args = calloc(json_object_size(args) + 1, sizeof *r->args);
        if (!r->args) goto nomem;
        json_object_foreach(args, key, v) {
            gx_named_arg *a = &r->args[s->nargs++];
            a->name = key;
            char f[96];
            snprintf(f, sizeof f, "args.%.60s", key);
            if (json_is_number(v)) a->value = json_number_value(v);
            else if (json_is_boolean(v)) a->value = json_is_true(v), a->from_bool = 1;
            else if (json_is_string(v)) a->str = json_string_value(v);
            else {
                rc = fail(err, GX_EINVAL, prefix, f, "must be a number, boolean or string; got %s", jtype(v));
                goto out;
            }
        }
        s->args = r->args;
    }
    /* inputs */
    json_t *inputs = json_object_get(obj, "inputs");
    if (inputs && !json_is_null(inputs)) {
        if (!json_is_object(inputs)) {
            rc = fail(err, GX_EINVAL, prefix, "inputs", "must be an object of named arrays; got %s", jtype(inputs));
            goto out;
        }
        if (json_object_size(inputs) > MAX_INPUTS) {
            rc = fail(err, GX_EINVAL, prefix, "inputs", "has more than %d entries", MAX_INPUTS);
            goto out;
        }
        r->inputs = calloc(json_object_size(inputs) + 1, sizeof *r->inputs);
        if (!r->inputs) goto nomem;
        json_object_foreach(inputs, key, v) {
            char f[96];
            snprintf(f, sizeof f, "inputs.%.60s", key);
            if (!json_is_object(v)) {
                rc = fail(err, GX_EINVAL, prefix, f, "must be {\"blob\": id} or {\"dtype\",\"shape\",\"data\"}; got %s",
                          jtype(v));
                goto out;
            }
            gx_array *arr = NULL;
            json_t *blob = json_object_get(v, "blob");
            if (blob) {
                if (!json_is_string(blob) || json_object_size(v) != 1) {
                    snprintf(f, sizeof f, "inputs.%.60s.blob", key);
                    rc = fail(err, GX_EINVAL, prefix, f, "must be the only field, a string \"sha256:<hex>\"");
                    goto out;
                }
                if (!load) {
                    rc = fail(err, GX_EUNSUPPORTED, prefix, f, "blob inputs are not available here");
                    goto out;
                }
                gx_error le;
                gx_error_clear(&le);
                rc = load(load_ctx, tenant, json_string_value(blob), &arr, &le);
                if (rc) {
                    snprintf(f, sizeof f, "inputs.%.60s.blob", key);
                    rc = fail(err, rc, prefix, f, "%s", le.message);
                    goto out;
                }
            } else {
                rc = decode_inline(v, key, prefix, &arr, err);
                if (rc) goto out;
            }
            r->inputs[s->ninputs].name = key;
            r->inputs[s->ninputs++].array = arr;
        }
        s->inputs = r->inputs;
    }
    int64_t iv;
    if ((v = json_object_get(obj, "priority"))) {
        if ((rc = get_int(v, prefix, "priority", -100, 100, &iv, err))) goto out;
        s->priority = (int)iv;
    }
    if ((v = json_object_get(obj, "timeout_ms"))) {
        if ((rc = get_int(v, prefix, "timeout_ms", 0, INT64_C(2592000000), &iv, err))) goto out;
        s->timeout_ms = iv;
    }
    if ((v = json_object_get(obj, "queue_timeout_ms"))) {
        if ((rc = get_int(v, prefix, "queue_timeout_ms", 0, INT64_C(2592000000), &iv, err))) goto out;
        s->queue_timeout_ms = iv;
    }
    if ((v = json_object_get(obj, "memory_bytes"))) {
        /* up to 1 PiB, as the tenant memory quota */
        if ((rc = get_int(v, prefix, "memory_bytes", 0, INT64_C(1125899906842624), &iv, err))) goto out;
        s->mem_bytes = (uint64_t)iv;
    }
    if ((v = json_object_get(obj, "max_attempts"))) {
        if ((rc = get_int(v, prefix, "max_attempts", 1, 100, &iv, err))) goto out;
        s->max_attempts = (int)iv;
    }
    if ((v = json_object_get(obj, "device")) && !json_is_null(v)) {
        if (!json_is_string(v) || !json_string_length(v)) {
            /* (an empty one was taken as "any") */
            rc = fail(err, GX_EINVAL, prefix, "device", "must be a string (any, cpu, gpu, gpu:N); got %s",
                      json_is_string(v) ? "an empty string" : jtype(v));
            goto out;
        }
        s->device = json_string_value(v);
    }
    if ((v = json_object_get(obj, "fallback")) && !json_is_null(v)) {
        if (!json_is_string(v)) {
            rc = fail(err, GX_EINVAL, prefix, "fallback", "must be a string (cpu or none); got %s", jtype(v));
            goto out;
        }
        s->fallback = json_string_value(v);
    }
    if ((v = json_object_get(obj, "idempotency_key")) && !json_is_null(v)) {
        if (!json_is_string(v) || !json_string_length(v) || json_string_length(v) > 255) {
            rc = fail(err, GX_EINVAL, prefix, "idempotency_key", "must be a string of 1..255 bytes");
            goto out;
        }
        s->idempotency_key = json_string_value(v);
    }
    json_t *labels = json_object_get(obj, "labels");
    if (labels && !json_is_null(labels)) {
        if (!json_is_object(labels) || json_object_size(labels) > 32) {
            rc = fail(err, GX_EINVAL, prefix, "labels", "must be an object of at most 32 string values");
            goto out;
        }
        r->labels = calloc(json_object_size(labels) + 1, sizeof *r->labels);
        if (!r->labels) goto nomem;
        json_object_foreach(labels, key, v) {
            char f[96];
            snprintf(f, sizeof f, "labels.%.60s", key);
            if (!json_is_string(v)) {
                rc = fail(err, GX_EINVAL, prefix, f, "must be a string; got %s", jtype(v));
                goto out;
            }
            r->labels[s->nlabels].key = key;
            r->labels[s->nlabels++].value = json_string_value(v);
        }
        s->labels = r->labels;
    }
    json_t *deps = json_object_get(obj, "depends_on");
    if (deps && !json_is_null(deps)) {
        if (!json_is_array(deps) || json_array_size(deps) > 1024) {
            rc = fail(err, GX_EINVAL, prefix, "depends_on", "must be an array of at most 1024 job ids");
            goto out;
        }
        size_t n = json_array_size(deps);
        r->deps = calloc(n + 1, sizeof *r->deps);
        r->batch_deps = calloc(n + 1, sizeof *r->batch_deps);
        if (!r->deps || !r->batch_deps) goto nomem;
        size_t i;
        json_array_foreach(deps, i, v) {
            char f[48];
            snprintf(f, sizeof f, "depends_on[%zu]", i);
            const char *str = json_is_string(v) ? json_string_value(v) : NULL;
            if (str && str[0] == '@') {
                /* "@" and decimal digits, no sign, space or leading zero */
                size_t nd = strspn(str + 1, "0123456789");
                int form = nd && nd <= 9 && !str[1 + nd] && (str[1] != '0' || nd == 1);
                long k = form ? strtol(str + 1, NULL, 10) : -1;
                if (!batch) {
                    rc = fail(err, GX_EINVAL, prefix, f, "'%.20s': @N references work only in a batch", str);
                    goto out;
                }
                if (!form) {
                    rc = fail(err, GX_EINVAL, prefix, f,
                              "batch reference '%.20s' is not @N (N the index of a job in this batch, from 0)", str);
                    goto out;
                }
                if ((size_t)k >= batch_n) {
                    rc = fail(err, GX_EINVAL, prefix, f, "batch reference '%.20s' is outside @0..@%zu", str,
                              batch_n - 1);
                    goto out;
                }
                r->batch_deps[s->nbatch_deps++] = (int)k;
                continue;
            }
            gx_job_id id = str ? gx_job_id_parse(str)
                               : (json_is_integer(v) && json_integer_value(v) > 0 ? (gx_job_id)json_integer_value(v) : 0);
            if (!id) {
                rc = fail(err, GX_EINVAL, prefix, f, "must be a job id (a decimal string)");
                goto out;
            }
            r->deps[s->ndeps++] = id;
        }
        s->deps = r->deps;
        s->batch_deps = r->batch_deps;
    }
    return 0;
nomem:
    rc = fail(err, GX_ENOMEM, prefix, "body", "out of memory");
out:
    gx_jobreq_free(r);
    return rc;
}

int gx_jobreq_canonical(gx_jobreq *r, gx_error *err) {
    if (r->canonical) return 0;
    r->canonical = json_dumps(r->root, JSON_COMPACT | JSON_SORT_KEYS);
    return r->canonical ? 0 : gx_error_set(err, GX_ENOMEM, "body", "out of memory");
}

/* One element: floats (f16 included) as numbers, and NaN and infinities,
 * which JSON has no numbers for, as the strings "NaN", "Infinity" and
 * "-Infinity" (null would lose which one it was); integers exactly, and
 * u64 values past 2^63 - 1 as decimal strings, since jansson's integers
 * (and those of many other parsers) stop there. The decoder takes all of
 * these back. */
static json_t *elem_json(const gx_array *a, int64_t i) {
    int64_t lo;
    uint64_t hi;
    if (!gx_dtype_int_range(a->dtype, &lo, &hi)) {
        double x = gx_array_get_f64(a, i);
        return isfinite(x) ? json_real(x) : json_string(gx_float_special_name(x));
    }
    if (lo < 0) return json_integer(gx_array_get_i64(a, i));
    uint64_t u = gx_array_get_u64(a, i);
    if (u <= (uint64_t)INT64_MAX) return json_integer((json_int_t)u);
    char dec[24];
    snprintf(dec, sizeof dec, "%llu", (unsigned long long)u);
    return json_string(dec);
}

json_t *gx_array_json(const gx_array *a) {
    json_t *shape = json_array(), *data = json_array();
    for (int i = 0; i < a->ndim; i++) json_array_append_new(shape, json_integer(a->shape[i]));
    for (int64_t i = 0; i < a->count; i++) json_array_append_new(data, elem_json(a, i));
    return json_pack("{s:s,s:o,s:o}", "dtype", gx_dtype_name(a->dtype), "shape", shape, "data", data);
}

/* ---- the job object as text ------------------------------------------------ */

static int jt_key(gx_jbuf *b, const char *k) { /* ,"k": (k needs no escaping) */
    return (b->len > 1 ? gx_jbuf_put(b, ",\"", 2) : gx_jbuf_put(b, "\"", 1)) || gx_jbuf_puts(b, k) ||
           gx_jbuf_put(b, "\":", 2);
}

static int jt_time(gx_jbuf *b, int64_t ns) {
    if (!ns) return gx_jbuf_put(b, "null", 4);
    char t[40];
    size_t n = time_text(ns, t);
    return gx_jbuf_put(b, "\"", 1) || gx_jbuf_put(b, t, n) || gx_jbuf_put(b, "\"", 1);
}

/* The writer of both: in's numbers and names; error and fallback as given
 * (a stored job's may be longer than in's buffers); labels_json a stored
 * job's labels (a JSON object of strings the store was given), or NULL:
 * the engine's labels of in->id, and *gone set if the engine no longer
 * holds the job. */
static char *job_text(gx_engine *e, const gx_job_info *in, const char *error, const char *fallback,
                      const char *labels_json, size_t *len, int *gone) {
    gx_jbuf b = {0};
    const size_t any = (size_t)-1;
    int bad = gx_jbuf_put(&b, "{", 1);
    bad |= jt_key(&b, "id") || gx_jbuf_put(&b, "\"", 1) || gx_jbuf_int(&b, (int64_t)in->id) || gx_jbuf_put(&b, "\"", 1);
    bad |= jt_key(&b, "tenant") || gx_jbuf_str(&b, in->tenant_name, any);
    bad |= jt_key(&b, "kernel") || gx_jbuf_str(&b, in->kernel, any);
    bad |= jt_key(&b, "state") || gx_jbuf_str(&b, gx_job_state_name(in->state), any);
    bad |= jt_key(&b, "priority") || gx_jbuf_int(&b, in->priority);
    bad |= jt_key(&b, "attempts") || gx_jbuf_int(&b, in->attempts);
    bad |= jt_key(&b, "max_attempts") || gx_jbuf_int(&b, in->max_attempts);
    bad |= jt_key(&b, "device") ||
           (in->device >= 0 && in->device_name[0] ? gx_jbuf_str(&b, in->device_name, any) : gx_jbuf_put(&b, "null", 4));
    bad |= jt_key(&b, "submitted_at") || jt_time(&b, in->submit_ns);
    bad |= jt_key(&b, "started_at") || jt_time(&b, in->start_ns);
    bad |= jt_key(&b, "finished_at") || jt_time(&b, in->end_ns);
    bad |= jt_key(&b, "queue_seconds") || gx_jbuf_secs(&b, in->queue_ns);
    bad |= jt_key(&b, "run_seconds") || gx_jbuf_secs(&b, in->run_ns);
    bad |= jt_key(&b, "error");
    if (in->error_code && in->state != GX_JOB_SUCCEEDED)
        bad |= gx_jbuf_puts(&b, "{\"code\":") || gx_jbuf_str(&b, gx_err_name(in->error_code), any) ||
               gx_jbuf_puts(&b, ",\"message\":") ||
               gx_jbuf_str(&b, error && error[0] ? error : gx_strerror(in->error_code), any) || gx_jbuf_put(&b, "}", 1);
    else
        bad |= gx_jbuf_put(&b, "null", 4);
    bad |= jt_key(&b, "wait");
    if (in->wait_reason) {
        bad |= gx_jbuf_puts(&b, "{\"reason\":") || gx_jbuf_str(&b, gx_wait_reason_name(in->wait_reason), any) ||
               gx_jbuf_puts(&b, ",\"position\":") || gx_jbuf_int(&b, (int64_t)in->position) ||
               gx_jbuf_puts(&b, ",\"waiting_on\":");
        if (in->wait_on)
            bad |= gx_jbuf_put(&b, "\"", 1) || gx_jbuf_int(&b, (int64_t)in->wait_on) || gx_jbuf_put(&b, "\"", 1);
        else
            bad |= gx_jbuf_put(&b, "null", 4);
        bad |= gx_jbuf_puts(&b, ",\"estimated_start_s\":");
        if (in->wait_reason == GX_WAIT_QUEUE && in->start_in_s >= 0)
            bad |= gx_jbuf_secs(&b, (int64_t)(in->start_in_s * 1e9 + 0.5));
        else
            bad |= gx_jbuf_put(&b, "null", 4);
        bad |= gx_jbuf_puts(&b, ",\"message\":") || gx_jbuf_str(&b, in->reason, any) || gx_jbuf_put(&b, "}", 1);
    } else {
        bad |= gx_jbuf_put(&b, "null", 4);
    }
    bad |= jt_key(&b, "labels") || gx_jbuf_put(&b, "{", 1);
    if (labels_json) {
        /* the store's text, member by member through the same writer (so
         * the two read alike, and nothing but strings is written) */
        json_t *l = json_loads(labels_json, 0, NULL);
        const char *key;
        json_t *v;
        int k = 0;
        json_object_foreach(l, key, v) {
            if (!json_is_string(v)) continue;
            bad |= (k++ ? gx_jbuf_put(&b, ",", 1) : 0) || gx_jbuf_str(&b, key, any) || gx_jbuf_put(&b, ":", 1) ||
                   gx_jbuf_str(&b, json_string_value(v), any);
        }
        json_decref(l);
    }
    for (int i = 0, k = 0; !labels_json && e && i < in->nlabels; i++) {
        char key[64], v[256];
        if (gx_job_label(e, in->id, i, key, sizeof key, v, sizeof v)) {
            /* forgotten since the snapshot (it ended and its end is
             * stored): its labels went with it; not an object without them */
            if (gone) *gone = 1;
            free(b.p);
            return NULL;
        }
        bad |= (k++ ? gx_jbuf_put(&b, ",", 1) : 0) || gx_jbuf_str(&b, key, any) || gx_jbuf_put(&b, ":", 1) ||
               gx_jbuf_str(&b, v, any);
    }
    bad |= gx_jbuf_put(&b, "}", 1);
    bad |= jt_key(&b, "fallback") ||
           (fallback && fallback[0] ? gx_jbuf_str(&b, fallback, any) : gx_jbuf_put(&b, "null", 4));
    bad |= gx_jbuf_put(&b, "}", 1);
    if (bad) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}

char *gx_job_json_text(gx_engine *e, const gx_job_info *in, size_t *len, int *gone) {
    if (gone) *gone = 0;
    return job_text(e, in, in->error, in->fallback, NULL, len, gone);
}

char *gx_store_job_text(gx_engine *e, const gx_store_job *sj, size_t *len) {
    gx_job_info in;
    memset(&in, 0, sizeof in);
    in.id = sj->id;
    gx_str_copy(in.tenant_name, sizeof in.tenant_name, sj->tenant ? sj->tenant : "");
    gx_str_copy(in.kernel, sizeof in.kernel, sj->kernel ? sj->kernel : "");
    in.state = sj->state;
    in.priority = sj->priority;
    in.attempts = sj->attempt;
    json_t *spec = sj->spec_json ? json_loads(sj->spec_json, 0, NULL) : NULL;
    json_t *ma = json_object_get(spec, "max_attempts");
    const gx_kernel *k = json_is_integer(ma) ? NULL : gx_kernel_find(in.kernel);
    json_int_t max = json_is_integer(ma) ? json_integer_value(ma) : k ? gx_kernel_default_attempts(k) : 1;
    json_decref(spec);
    /* the spec's max_attempts is the budget of one run; a job re-queued (by
     * an operator, or by a restart while it ran) got more on top of the
     * attempts it had made, as the engine reports while it holds it: never
     * fewer than the attempts made (every reader of a stored job, the
     * answer to an idempotent repeat included) */
    in.max_attempts = max < sj->attempt ? sj->attempt : (int)max;
    gx_device_info di;
    in.device = -1;
    if (e && sj->device >= 0 && !gx_device_get(e, sj->device, &di)) {
        in.device = sj->device;
        gx_str_copy(in.device_name, sizeof in.device_name, di.name);
    }
    in.submit_ns = sj->submit_ns;
    in.start_ns = sj->start_ns;
    in.end_ns = sj->end_ns;
    int64_t qend = sj->start_ns ? sj->start_ns : sj->end_ns;
    in.queue_ns = qend > sj->submit_ns ? qend - sj->submit_ns : 0;
    in.run_ns = sj->start_ns && sj->end_ns > sj->start_ns ? sj->end_ns - sj->start_ns : 0;
    in.error_code = sj->error_code;
    /* a job that ran on a CPU in place of a GPU keeps the note (code 0) */
    int note = !sj->error_code && sj->error && !strncmp(sj->error, "fallback: ", 10);
    return job_text(e, &in, sj->error, note ? sj->error + 10 : NULL, sj->labels_json ? sj->labels_json : "{}", len,
                    NULL);
}

/* The objects, parsed from the text (the text is the source: jansson's
 * json_pack drops a member whose string is not valid UTF-8, e.g. a message
 * cut inside a character; the text writer puts U+FFFD there). */
static json_t *text_json(char *t, size_t len) {
    json_t *j = t ? json_loadb(t, len, 0, NULL) : NULL;
    free(t);
    return j;
}

json_t *gx_job_json(gx_engine *e, const gx_job_info *in) {
    size_t len = 0;
    char *t = gx_job_json_text(e, in, &len, NULL);
    return text_json(t, len);
}

json_t *gx_store_job_json(gx_engine *e, const gx_store_job *sj) {
    size_t len = 0;
    char *t = gx_store_job_text(e, sj, &len);
    return text_json(t, len);
}
