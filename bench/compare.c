/* pattn-bench --compare: read peer rows (bench/peers/run_peers.py writes them, and so does
 * pattn-bench --format json, so two backends can be compared too) and print pattn/peer
 * ratios for rows of the same suite, op, shape key and dtype. */
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "json.h"

static char *read_all(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  while (buf) {
    size_t got = fread(buf + n, 1, cap - n - 1, f);
    n += got;
    if (n + 1 < cap) break;
    char *b = realloc(buf, cap *= 2);
    if (!b) { free(buf); buf = NULL; break; }
    buf = b;
  }
  fclose(f);
  if (buf) buf[n] = 0;
  return buf;
}

/* "b=1 d=64 h=8": shape fields sorted by name, like row_finish_key */
static void key_from_shape(const jval *shape, char *key, size_t n) {
  int idx[32], m = 0;
  key[0] = 0;
  if (!shape || shape->t != J_OBJ) return;
  for (int i = 0; i < shape->n && m < 32; i++) idx[m++] = i;
  for (int i = 1; i < m; i++)
    for (int j = i; j > 0 && strcmp(shape->keys[idx[j - 1]], shape->keys[idx[j]]) > 0; j--) {
      int t = idx[j];
      idx[j] = idx[j - 1];
      idx[j - 1] = t;
    }
  size_t off = 0;
  for (int i = 0; i < m && off < n; i++)
    off += (size_t)snprintf(key + off, n - off, "%s%s=%lld", i ? " " : "", shape->keys[idx[i]],
                            (long long)shape->items[idx[i]].num);
}

static void copy(char *dst, size_t n, const char *s) { snprintf(dst, n, "%s", s ? s : ""); }

int peers_load(const char *path, peer_row **out, int *np, char *err, size_t errn) {
  char *text = read_all(path);
  jval root;
  *out = NULL;
  *np = 0;
  if (!text) {
    snprintf(err, errn, "cannot read %s", path);
    return -1;
  }
  int rc = json_parse(text, &root, err, errn);
  free(text);
  if (rc) return -1;
  const jval *arr = &root;
  if (root.t == J_OBJ) arr = json_get(&root, "rows"); /* {"rows": [...]} is accepted too */
  if (!arr || arr->t != J_ARR) {
    snprintf(err, errn, "%s: expected a JSON array of rows", path);
    json_free(&root);
    return -1;
  }
  peer_row *p = calloc((size_t)(arr->n ? arr->n : 1), sizeof(*p));
  if (!p) {
    json_free(&root);
    snprintf(err, errn, "out of memory");
    return -1;
  }
  int n = 0;
  for (int i = 0; i < arr->n; i++) {
    const jval *o = &arr->items[i];
    if (o->t != J_OBJ) continue;
    peer_row *r = &p[n++];
    copy(r->suite, sizeof(r->suite), json_str(o, "suite"));
    copy(r->op, sizeof(r->op), json_str(o, "op"));
    copy(r->impl, sizeof(r->impl), json_str(o, "impl"));
    copy(r->dtype, sizeof(r->dtype), json_str(o, "dtype"));
    copy(r->backend, sizeof(r->backend), json_str(o, "backend"));
    if (json_str(o, "key")) copy(r->key, sizeof(r->key), json_str(o, "key"));
    else key_from_shape(json_get(o, "shape"), r->key, sizeof(r->key));
    const jval *t = json_get(o, "time_ms");
    if (t && t->t == J_OBJ) {
      r->median = json_num(t, "median", 0);
      r->min = json_num(t, "min", r->median);
    } else if (t && t->t == J_NUM) {
      r->median = r->min = t->num;
    }
    r->memory_mb = json_num(o, "memory_mb", 0);
    r->err_max_abs = json_num(o, "max_abs_err", -1);
    r->err_rel_l2 = json_num(o, "rel_l2_err", -1);
    r->err_ref_norm = json_num(o, "ref_norm", -1);
    const char *st = json_str(o, "status");
    r->ok = (!st || !strcmp(st, "ok")) && r->median > 0;
    r->unsupported = st && !strcmp(st, "unsupported");
    copy(r->reason, sizeof(r->reason), json_str(o, "reason"));
  }
  json_free(&root);
  *out = p;
  *np = n;
  return 0;
}

const peer_row *peer_find(const bench_row *r, const peer_row *p, int np, const char *impl) {
  int idx[32], m = p ? peers_match(r, p, np, idx, 32) : 0;
  for (int k = 0; k < m; k++)
    if (!strcmp(p[idx[k]].impl, impl)) return &p[idx[k]];
  return NULL;
}

int peers_match(const bench_row *r, const peer_row *p, int np, int *idx, int max) {
  int m = 0;
  for (int i = 0; i < np && m < max; i++)
    if (!strcmp(p[i].suite, r->suite) && !strcmp(p[i].op, r->op) && !strcmp(p[i].key, r->key) &&
        !strcmp(p[i].dtype, r->dtype))
      idx[m++] = i;
  return m;
}

void peers_print_ratios(FILE *f, const bench_env *env, const peer_row *p, int np) {
  if (!p || np == 0) return;
  static const char *hdr[] = {"pattn impl", "op", "shape", "dtype", "pattn ms", "peer",
                              "peer ms", "pattn/peer time", "pattn/peer memory"};
  static const int right[] = {0, 0, 0, 0, 1, 0, 1, 1, 1};
  table *t = table_new(9, hdr, right);
  int matched = 0;
  for (int i = 0; i < env->nrows; i++) {
    const bench_row *r = &env->rows[i];
    int idx[32], m = peers_match(r, p, np, idx, 32);
    for (int k = 0; k < m; k++) {
      const peer_row *q = &p[idx[k]];
      char pm[32], qm[32], rt[32], rm[32], qn[96];
      fmt_time(pm, sizeof(pm), r, 3);
      if (q->ok) snprintf(qm, sizeof(qm), "%.3f", q->median);
      else snprintf(qm, sizeof(qm), "✗");
      if (q->ok && r->status == ROW_OK) snprintf(rt, sizeof(rt), "%.2fx", r->median / q->median);
      else snprintf(rt, sizeof(rt), "N/A");
      if (q->ok && r->status == ROW_OK && q->memory_mb > 0 && r->memory_mb > 0)
        snprintf(rm, sizeof(rm), "%.2fx", r->memory_mb / q->memory_mb);
      else snprintf(rm, sizeof(rm), "N/A");
      if (q->backend[0]) snprintf(qn, sizeof(qn), "%s [%s]", q->impl, q->backend);
      else snprintf(qn, sizeof(qn), "%s", q->impl);
      const char *cells[] = {r->impl, r->op, r->key, r->dtype, pm, qn, qm, rt, rm};
      table_add(t, cells);
      matched++;
    }
  }
  fprintf(f, "\nPeers side by side (pattn / peer: below 1.00x pattn is faster or smaller; "
             "same suite, op, shape and dtype)\n\n");
  if (matched) table_print_markdown(f, t);
  else fprintf(f, "(no peer row matches a row of this suite)\n");
  table_free(t);
}
