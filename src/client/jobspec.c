/*
 * jobspec.c - a builder for job specs (the JSON body of POST /v1/jobs).
 *
 * The spec is a jansson object; setters replace keys in place, so a spec
 * loaded from a file keeps its key order and only the overridden values
 * change. Validation here is limited to what the builder can know (names
 * not empty, JSON well formed): the daemon checks the rest against the
 * kernel's schema and names the field when it refuses.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_int.h"

struct gx_jobspec {
    json_t *o; /* the spec object */
};

static int oom(gx_error *err) { return gx_error_set(err, GX_ENOMEM, NULL, "out of memory"); }

int gx_jobspec_new(const char *kernel, gx_jobspec **out, gx_error *err) {
    *out = NULL;
    gx_jobspec *s = calloc(1, sizeof *s);
    if (!s || !(s->o = json_object())) {
        free(s);
        return oom(err);
    }
    if (kernel) {
        int rc = gx_jobspec_set_kernel(s, kernel, err);
        if (rc) {
            gx_jobspec_free(s);
            return rc;
        }
    }
    *out = s;
    return 0;
}

int gx_jobspec_from_json(const char *json, gx_jobspec **out, gx_error *err) {
    *out = NULL;
    if (!json) return gx_error_set(err, GX_EINVAL, "spec", "spec is NULL");
    json_error_t je;
    json_t *o = json_loads(json, JSON_REJECT_DUPLICATES, &je);
    if (!o) {
        gx_error_set(err, GX_EFORMAT, NULL, "spec is not valid JSON: %s (line %d, column %d)",
                     je.text, je.line, je.column);
        if (err) err->pos = je.position;
        return GX_EFORMAT;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        return gx_error_set(err, GX_EINVAL, "spec", "spec must be a JSON object");
    }
    gx_jobspec *s = calloc(1, sizeof *s);
    if (!s) {
        json_decref(o);
        return oom(err);
    }
    s->o = o;
    *out = s;
    return 0;
}

int gx_jobspec_from_file(const char *path, gx_jobspec **out, gx_error *err) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return gx_error_set(err, GX_EIO, NULL, "cannot open %s: %s", path, strerror(errno));
    gx__buf b = {0};
    char chunk[8192];
    size_t n;
    int rc = 0;
    while (!rc && (n = fread(chunk, 1, sizeof chunk, f)) > 0) rc = gx__buf_add(&b, chunk, n);
    int bad = ferror(f);
    fclose(f);
    if (rc || bad) {
        gx__buf_free(&b);
        return rc ? oom(err) : gx_error_set(err, GX_EIO, NULL, "cannot read %s", path);
    }
    rc = gx_jobspec_from_json(b.p ? b.p : "", out, err);
    gx__buf_free(&b);
    if (rc) gx__error_prefix(err, path);
    return rc;
}

void gx_jobspec_free(gx_jobspec *s) {
    if (!s) return;
    json_decref(s->o);
    free(s);
}

/* Set key of the spec (steals v). */
static int set(gx_jobspec *s, const char *key, json_t *v, gx_error *err) {
    if (!v || json_object_set_new(s->o, key, v)) return oom(err);
    return 0;
}

/* The sub-object key of the spec, created when absent or not an object. */
static json_t *sub(gx_jobspec *s, const char *key) {
    json_t *m = json_object_get(s->o, key);
    if (json_is_object(m)) return m;
    m = json_object();
    if (!m || json_object_set_new(s->o, key, m)) return NULL;
    return m;
}

static int set_sub(gx_jobspec *s, const char *key, const char *name, json_t *v, gx_error *err) {
    if (!name || !*name) {
        json_decref(v);
        return gx_error_set(err, GX_EINVAL, key, "%s name is empty", key);
    }
    json_t *m = sub(s, key);
    if (!m || !v || json_object_set_new(m, name, v)) {
        if (!m) json_decref(v);
        return oom(err);
    }
    return 0;
}

static int nonempty(const char *v, const char *field, gx_error *err) {
    if (!v || !*v) return gx_error_set(err, GX_EINVAL, field, "%s is empty", field);
    return 0;
}

int gx_jobspec_set_kernel(gx_jobspec *s, const char *kernel, gx_error *err) {
    int rc = nonempty(kernel, "kernel", err);
    return rc ? rc : set(s, "kernel", json_string(kernel), err);
}

int gx_jobspec_set_arg_double(gx_jobspec *s, const char *name, double v, gx_error *err) {
    if (!isfinite(v))
        return gx_error_set(err, GX_EINVAL, "args", "argument %s is not a finite number",
                            name ? name : "");
    return set_sub(s, "args", name, json_real(v), err);
}

int gx_jobspec_set_arg_int(gx_jobspec *s, const char *name, int64_t v, gx_error *err) {
    return set_sub(s, "args", name, json_integer((json_int_t)v), err);
}

int gx_jobspec_set_arg_bool(gx_jobspec *s, const char *name, int v, gx_error *err) {
    return set_sub(s, "args", name, json_boolean(v), err);
}

int gx_jobspec_set_arg_string(gx_jobspec *s, const char *name, const char *v, gx_error *err) {
    return set_sub(s, "args", name, json_string(v ? v : ""), err);
}

/* Split "key=value" into a NUL-terminated key copy (cap bytes) and value. */
static int split_eq(const char *text, char *key, size_t cap, const char **value,
                    const char *field, gx_error *err) {
    const char *eq = text ? strchr(text, '=') : NULL;
    if (!eq)
        return gx_error_set(err, GX_EINVAL, field, "expected name=value, got '%s'",
                            text ? text : "");
    size_t n = (size_t)(eq - text);
    if (n == 0) return gx_error_set(err, GX_EINVAL, field, "empty name in '%s'", text);
    if (n >= cap) return gx_error_set(err, GX_EINVAL, field, "name too long in '%s'", text);
    memcpy(key, text, n);
    key[n] = '\0';
    *value = eq + 1;
    return 0;
}

int gx_jobspec_set_arg_text(gx_jobspec *s, const char *text, gx_error *err) {
    char name[GX_CLIENT_NAME_MAX + 64];
    const char *v = NULL;
    int rc = split_eq(text, name, sizeof name, &v, "args", err);
    if (rc) return rc;
    size_t n = strlen(v);
    if (n >= 2 && (v[0] == '\'' || v[0] == '"') && v[n - 1] == v[0]) {
        json_t *str = json_stringn(v + 1, n - 2);
        return set_sub(s, "args", name, str, err);
    }
    if (!strcmp(v, "true") || !strcmp(v, "false"))
        return gx_jobspec_set_arg_bool(s, name, v[0] == 't', err);
    if (n && !isspace((unsigned char)v[0])) {
        char *end;
        const char *digits = v + (v[0] == '-' || v[0] == '+');
        int hex = digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X');
        char field[96];
        snprintf(field, sizeof field, "args.%.80s", name);
        errno = 0;
        long long iv = strtoll(v, &end, hex ? 16 : 10);
        if (isdigit((unsigned char)digits[0]) && !*end) {
            if (!errno) return gx_jobspec_set_arg_int(s, name, iv, err);
            /* (it went as a float, or as a string the server refused) */
            return gx_error_set(err, GX_EINVAL, field, "%s does not fit in a 64-bit integer", v);
        }
        errno = 0;
        double dv = strtod(v, &end);
        if ((isdigit((unsigned char)digits[0]) || digits[0] == '.') && !*end) {
            /* a subnormal result may set ERANGE too: it is still the value */
            if (isfinite(dv) && (!errno || dv != 0)) return gx_jobspec_set_arg_double(s, name, dv, err);
            return gx_error_set(err, GX_EINVAL, field, "%s is out of the range of a double", v);
        }
    }
    return gx_jobspec_set_arg_string(s, name, v, err);
}

int gx_jobspec_set_input_blob(gx_jobspec *s, const char *name, const char *blob_id,
                              gx_error *err) {
    int rc = nonempty(blob_id, "inputs", err);
    if (rc) return rc;
    return set_sub(s, "inputs", name, json_pack("{ss}", "blob", blob_id), err);
}

int gx_jobspec_set_input_array(gx_jobspec *s, const char *name, const gx_array *a,
                               gx_error *err) {
    if (!a) return gx_error_set(err, GX_EINVAL, "inputs", "array is NULL");
    /* NaN and infinities go as "NaN", "Infinity", "-Infinity", so only
     * memory can fail here */
    json_t *j = gx__array_to_json(a);
    if (!j) return oom(err);
    return set_sub(s, "inputs", name, j, err);
}

int gx_jobspec_set_priority(gx_jobspec *s, int priority, gx_error *err) {
    return set(s, "priority", json_integer(priority), err);
}

int gx_jobspec_set_device(gx_jobspec *s, const char *device, gx_error *err) {
    int rc = nonempty(device, "device", err);
    return rc ? rc : set(s, "device", json_string(device), err);
}

int gx_jobspec_set_timeout_ms(gx_jobspec *s, int64_t ms, gx_error *err) {
    return set(s, "timeout_ms", json_integer((json_int_t)ms), err);
}

int gx_jobspec_set_queue_timeout_ms(gx_jobspec *s, int64_t ms, gx_error *err) {
    return set(s, "queue_timeout_ms", json_integer((json_int_t)ms), err);
}

int gx_jobspec_set_fallback(gx_jobspec *s, const char *fallback, gx_error *err) {
    int rc = nonempty(fallback, "fallback", err);
    return rc ? rc : set(s, "fallback", json_string(fallback), err);
}

int gx_jobspec_set_max_attempts(gx_jobspec *s, int n, gx_error *err) {
    return set(s, "max_attempts", json_integer(n), err);
}

int gx_jobspec_set_memory_bytes(gx_jobspec *s, uint64_t bytes, gx_error *err) {
    if (bytes > (UINT64_C(1) << 50))
        return gx_error_set(err, GX_EINVAL, "memory_bytes", "memory_bytes must be 0..2^50 (1 PiB), not %llu",
                            (unsigned long long)bytes);
    return set(s, "memory_bytes", json_integer((json_int_t)bytes), err);
}

int gx_jobspec_set_idempotency_key(gx_jobspec *s, const char *key, gx_error *err) {
    int rc = nonempty(key, "idempotency_key", err);
    return rc ? rc : set(s, "idempotency_key", json_string(key), err);
}

int gx_jobspec_add_dep(gx_jobspec *s, const char *job_id, gx_error *err) {
    int rc = nonempty(job_id, "depends_on", err);
    if (rc) return rc;
    json_t *d = json_object_get(s->o, "depends_on");
    if (!json_is_array(d)) {
        d = json_array();
        if (!d || json_object_set_new(s->o, "depends_on", d)) return oom(err);
    }
    return json_array_append_new(d, json_string(job_id)) ? oom(err) : 0;
}

int gx_jobspec_set_label(gx_jobspec *s, const char *key, const char *value, gx_error *err) {
    return set_sub(s, "labels", key, json_string(value ? value : ""), err);
}

int gx_jobspec_set_label_text(gx_jobspec *s, const char *text, gx_error *err) {
    char key[GX_CLIENT_NAME_MAX + 64];
    const char *v = NULL;
    int rc = split_eq(text, key, sizeof key, &v, "labels", err);
    return rc ? rc : gx_jobspec_set_label(s, key, v, err);
}

int gx_jobspec_to_json(const gx_jobspec *s, char **json, gx_error *err) {
    *json = NULL;
    if (!s) return gx_error_set(err, GX_EINVAL, "spec", "job spec is NULL");
    json_t *k = json_object_get(s->o, "kernel");
    if (!json_is_string(k) || !*json_string_value(k))
        return gx_error_set(err, GX_EINVAL, "kernel", "no kernel given");
    *json = json_dumps(s->o, JSON_COMPACT);
    return *json ? 0 : oom(err);
}
