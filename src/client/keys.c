/*
 * keys.c - the listing of API keys (GET /v1/keys), a page at a time.
 *
 * Creating and revoking keys are one request each with nothing to parse
 * but the answer, so the CLI sends them with gx_client_request; the listing
 * has pages to follow and objects to read, so it has its call. Key objects
 * are parsed leniently, as jobs are: a missing or null member leaves the
 * struct's "none" value.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_int.h"

static int64_t jns(json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

static void key_from_json(json_t *o, void *item) {
    gx_client_key *k = item;
    memset(k, 0, sizeof *k);
    gx__jstr(k->id, sizeof k->id, o, "id");
    gx__jstr(k->tenant, sizeof k->tenant, o, "tenant");
    gx__jstr(k->role, sizeof k->role, o, "role");
    gx__jstr(k->label, sizeof k->label, o, "label");
    k->created_ns = jns(o, "created_ns");
    k->expires_ns = jns(o, "expires_ns");
    k->revoked = json_is_true(json_object_get(o, "revoked"));
    k->last_used_ns = jns(o, "last_used_ns");
}

int gx_client_keys(gx_client *c, const gx_client_key_list_opts *o, gx_client_key_list *out, char **raw,
                   gx_error *err) {
    memset(out, 0, sizeof *out);
    gx__call_begin(c);
    gx__buf q = {0};
    int rc = gx__buf_add(&q, "/v1/keys", 8);
    if (o && !rc) {
        char n[24] = "";
        if (o->limit > 0) snprintf(n, sizeof n, "%d", o->limit);
        rc = gx__query_add(&q, "tenant", o->tenant);
        if (!rc) rc = gx__query_add(&q, "revoked", o->revoked ? (o->revoked > 0 ? "true" : "false") : NULL);
        if (!rc) rc = gx__query_add(&q, "limit", n);
        if (!rc) rc = gx__query_add(&q, "cursor", o->cursor);
    }
    void *items = NULL;
    rc = gx__get_page(c, &q, rc, "keys", sizeof *out->keys, key_from_json, &items, &out->n, out->next_cursor,
                      sizeof out->next_cursor, raw, err);
    out->keys = items;
    return rc;
}

void gx_client_key_list_free(gx_client_key_list *l) {
    if (!l) return;
    free(l->keys);
    l->keys = NULL;
    l->n = 0;
}
