/*
 * yamldoc.h - reading a libyaml document (docs/openapi.yaml) in the tests
 * that check it: scalars, mapping lookups and local "$ref"s. Header-only;
 * the includer links libyaml.
 */
#ifndef GX_YAMLDOC_H
#define GX_YAMLDOC_H

#include <stdio.h>
#include <string.h>
#include <yaml.h>

/* The text of a scalar node, or NULL. */
static inline const char *yd_scalar(yaml_node_t *n) {
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* Value of key in a mapping node of doc, or NULL. */
static inline yaml_node_t *yd_get(yaml_document_t *doc, yaml_node_t *map, const char *key) {
    if (!map || map->type != YAML_MAPPING_NODE) return NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        const char *k = yd_scalar(yaml_document_get_node(doc, p->key));
        if (k && !strcmp(k, key)) return yaml_document_get_node(doc, p->value);
    }
    return NULL;
}

/* A local reference "#/a/b/c" (no ~ escapes needed in our files). */
static inline yaml_node_t *yd_resolve(yaml_document_t *doc, const char *ref) {
    if (!ref || strncmp(ref, "#/", 2)) return NULL;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", ref + 2);
    yaml_node_t *n = yaml_document_get_root_node(doc);
    char *save;
    for (char *t = strtok_r(buf, "/", &save); t && n; t = strtok_r(NULL, "/", &save)) n = yd_get(doc, n, t);
    return n;
}

/* Follow "$ref" (once or more) to the object it names. */
static inline yaml_node_t *yd_deref(yaml_document_t *doc, yaml_node_t *n) {
    for (int i = 0; i < 8 && n; i++) {
        const char *r = yd_scalar(yd_get(doc, n, "$ref"));
        if (!r) return n;
        n = yd_resolve(doc, r);
    }
    return n;
}

#endif
