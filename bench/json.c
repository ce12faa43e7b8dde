/* pattn-bench: recursive-descent JSON reader (see json.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

typedef struct jp {
  const char *s;
  char       *err;
  size_t      errn;
  int         depth;
} jp;

static int fail(jp *p, const char *what) {
  snprintf(p->err, p->errn, "JSON: %s near '%.20s'", what, p->s);
  return -1;
}

static void ws(jp *p) {
  while (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r') p->s++;
}

static int put_utf8(char *o, unsigned cp) {
  if (cp < 0x80) { o[0] = (char)cp; return 1; }
  if (cp < 0x800) { o[0] = (char)(0xC0 | cp >> 6); o[1] = (char)(0x80 | (cp & 63)); return 2; }
  o[0] = (char)(0xE0 | cp >> 12);
  o[1] = (char)(0x80 | ((cp >> 6) & 63));
  o[2] = (char)(0x80 | (cp & 63));
  return 3;
}

static int parse_string(jp *p, char **out) {
  const char *s = ++p->s; /* after the quote */
  size_t cap = 16, n = 0;
  char *o = malloc(cap);
  if (!o) return fail(p, "out of memory");
  for (;;) {
    if (n + 4 >= cap) {
      char *q = realloc(o, cap *= 2);
      if (!q) { free(o); return fail(p, "out of memory"); }
      o = q;
    }
    char c = *s++;
    if (c == 0) { free(o); p->s = s - 1; return fail(p, "unterminated string"); }
    if (c == '"') break;
    if (c != '\\') { o[n++] = c; continue; }
    c = *s++;
    switch (c) {
    case 'n': o[n++] = '\n'; break;
    case 't': o[n++] = '\t'; break;
    case 'r': o[n++] = '\r'; break;
    case 'b': o[n++] = '\b'; break;
    case 'f': o[n++] = '\f'; break;
    case 'u': {
      unsigned cp = 0;
      for (int i = 0; i < 4; i++) {
        char h = *s++;
        cp <<= 4;
        if (h >= '0' && h <= '9') cp |= (unsigned)(h - '0');
        else if (h >= 'a' && h <= 'f') cp |= (unsigned)(h - 'a' + 10);
        else if (h >= 'A' && h <= 'F') cp |= (unsigned)(h - 'A' + 10);
        else { free(o); p->s = s; return fail(p, "bad \\u escape"); }
      }
      n += (size_t)put_utf8(o + n, cp); /* surrogate pairs are not needed by our rows */
      break;
    }
    case 0: free(o); p->s = s - 1; return fail(p, "unterminated string");
    default: o[n++] = c; break;
    }
  }
  o[n] = 0;
  *out = o;
  p->s = s;
  return 0;
}

static int parse_value(jp *p, jval *v);

static int grow(jval *v, int *cap, int obj) {
  if (v->n < *cap) return 0;
  int c = *cap ? 2 * *cap : 8;
  jval *it = realloc(v->items, (size_t)c * sizeof(jval));
  if (!it) return -1;
  v->items = it;
  if (obj) {
    char **k = realloc(v->keys, (size_t)c * sizeof(char *));
    if (!k) return -1;
    v->keys = k;
  }
  *cap = c;
  return 0;
}

static int parse_container(jp *p, jval *v, int obj) {
  int cap = 0;
  char close = obj ? '}' : ']';
  v->t = obj ? J_OBJ : J_ARR;
  p->s++;
  if (++p->depth > 64) return fail(p, "nesting too deep");
  ws(p);
  if (*p->s == close) { p->s++; p->depth--; return 0; }
  for (;;) {
    if (grow(v, &cap, obj)) return fail(p, "out of memory");
    jval *it = &v->items[v->n];
    memset(it, 0, sizeof(*it));
    if (obj) {
      ws(p);
      if (*p->s != '"') return fail(p, "expected a key");
      if (parse_string(p, &v->keys[v->n])) return -1;
      ws(p);
      if (*p->s != ':') { free(v->keys[v->n]); return fail(p, "expected ':'"); }
      p->s++;
    }
    if (parse_value(p, it)) {
      if (obj) free(v->keys[v->n]);
      json_free(it);
      return -1;
    }
    v->n++;
    ws(p);
    if (*p->s == ',') { p->s++; continue; }
    if (*p->s == close) { p->s++; p->depth--; return 0; }
    return fail(p, obj ? "expected ',' or '}'" : "expected ',' or ']'");
  }
}

static int parse_value(jp *p, jval *v) {
  ws(p);
  memset(v, 0, sizeof(*v));
  switch (*p->s) {
  case '{': return parse_container(p, v, 1);
  case '[': return parse_container(p, v, 0);
  case '"': v->t = J_STR; return parse_string(p, &v->str);
  case 't': if (!strncmp(p->s, "true", 4)) { v->t = J_BOOL; v->num = 1; p->s += 4; return 0; } break;
  case 'f': if (!strncmp(p->s, "false", 5)) { v->t = J_BOOL; p->s += 5; return 0; } break;
  case 'n': if (!strncmp(p->s, "null", 4)) { v->t = J_NULL; p->s += 4; return 0; } break;
  case 'N': if (!strncmp(p->s, "NaN", 3)) { v->t = J_NULL; p->s += 3; return 0; } break; /* Python's json */
  default: {
    char *end;
    v->num = strtod(p->s, &end);
    if (end != p->s) { v->t = J_NUM; p->s = end; return 0; }
  }
  }
  return fail(p, "unexpected value");
}

int json_parse(const char *text, jval *v, char *err, size_t errn) {
  jp p = {text, err, errn, 0};
  if (parse_value(&p, v)) { json_free(v); return -1; }
  ws(&p);
  if (*p.s) { json_free(v); return fail(&p, "trailing text"); }
  return 0;
}

void json_free(jval *v) {
  if (!v) return;
  free(v->str);
  for (int i = 0; i < v->n; i++) {
    json_free(&v->items[i]);
    if (v->keys) free(v->keys[i]);
  }
  free(v->items);
  free(v->keys);
  memset(v, 0, sizeof(*v));
}

const jval *json_get(const jval *obj, const char *key) {
  if (!obj || obj->t != J_OBJ) return NULL;
  for (int i = 0; i < obj->n; i++)
    if (!strcmp(obj->keys[i], key)) return &obj->items[i];
  return NULL;
}

const char *json_str(const jval *obj, const char *key) {
  const jval *v = json_get(obj, key);
  return v && v->t == J_STR ? v->str : NULL;
}

double json_num(const jval *obj, const char *key, double dflt) {
  const jval *v = json_get(obj, key);
  return v && v->t == J_NUM ? v->num : dflt;
}
