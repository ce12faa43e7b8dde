/* pattn-bench: text tables in the seeds' two styles: python-tabulate "grid" (+---+ rules,
 * === under the header) and markdown pipes. Widths count UTF-8 code points so ✓, ✗ and ±
 * line up. */
#include <stdlib.h>
#include <string.h>

#include "bench.h"

struct table {
  int    ncols, nrows, cap;
  char **cells; /* (nrows + 1) * ncols, row 0 = headers */
  int   *right;
};

static char *dup(const char *s) {
  size_t n = strlen(s ? s : "") + 1;
  char *p = malloc(n);
  if (p) memcpy(p, s ? s : "", n);
  return p;
}

static int width(const char *s) {
  int w = 0;
  for (; *s; s++)
    if (((unsigned char)*s & 0xC0) != 0x80) w++;
  return w;
}

table *table_new(int ncols, const char *const *headers, const int *right_align) {
  table *t = calloc(1, sizeof(*t));
  if (!t) return NULL;
  t->ncols = ncols;
  t->right = calloc((size_t)ncols, sizeof(int));
  if (!t->right) {
    free(t);
    return NULL;
  }
  for (int c = 0; c < ncols; c++) t->right[c] = right_align ? right_align[c] : 0;
  t->nrows = -1; /* the header row is added first */
  table_add(t, headers);
  return t;
}

void table_add(table *t, const char *const *cells) {
  if (!t) return;
  if (t->nrows + 1 == t->cap) {
    int cap = t->cap ? 2 * t->cap : 16;
    char **c = realloc(t->cells, (size_t)cap * (size_t)t->ncols * sizeof(char *));
    if (!c) return;
    t->cells = c;
    t->cap = cap;
  }
  char **row = t->cells + (size_t)(t->nrows + 1) * (size_t)t->ncols;
  for (int c = 0; c < t->ncols; c++) row[c] = dup(cells[c]);
  t->nrows++;
}

static void widths(const table *t, int *w) {
  for (int c = 0; c < t->ncols; c++) {
    w[c] = 0;
    for (int r = 0; r <= t->nrows; r++) {
      int x = width(t->cells[(size_t)r * (size_t)t->ncols + (size_t)c]);
      if (x > w[c]) w[c] = x;
    }
  }
}

static void rule(FILE *f, const int *w, int n, char ch) {
  for (int c = 0; c < n; c++) {
    fputc('+', f);
    for (int i = 0; i < w[c] + 2; i++) fputc(ch, f);
  }
  fputs("+\n", f);
}

static void cells(FILE *f, const table *t, const int *w, int r, const char *sep_l,
                  const char *sep, const char *sep_r) {
  fputs(sep_l, f);
  for (int c = 0; c < t->ncols; c++) {
    const char *s = t->cells[(size_t)r * (size_t)t->ncols + (size_t)c];
    int pad = w[c] - width(s);
    if (c) fputs(sep, f);
    if (t->right[c]) fprintf(f, "%*s%s", pad, "", s);
    else fprintf(f, "%s%*s", s, pad, "");
  }
  fputs(sep_r, f);
}

void table_print_grid(FILE *f, const table *t, int row_separators) {
  if (!t) return;
  int *w = malloc((size_t)t->ncols * sizeof(int));
  if (!w) return;
  widths(t, w);
  rule(f, w, t->ncols, '-');
  for (int r = 0; r <= t->nrows; r++) {
    cells(f, t, w, r, "| ", " | ", " |\n");
    if (r == 0) rule(f, w, t->ncols, '=');
    else if (row_separators || r == t->nrows) rule(f, w, t->ncols, '-');
  }
  free(w);
}

void table_print_markdown(FILE *f, const table *t) {
  if (!t) return;
  int *w = malloc((size_t)t->ncols * sizeof(int));
  if (!w) return;
  widths(t, w);
  for (int r = 0; r <= t->nrows; r++) {
    cells(f, t, w, r, "| ", " | ", " |\n");
    if (r == 0) {
      for (int c = 0; c < t->ncols; c++) {
        fputs("|", f);
        for (int i = 0; i < w[c] + 2; i++) fputc(t->right[c] && i == w[c] + 1 ? ':' : '-', f);
      }
      fputs("|\n", f);
    }
  }
  free(w);
}

void table_free(table *t) {
  if (!t) return;
  for (int r = 0; r <= t->nrows; r++)
    for (int c = 0; c < t->ncols; c++) free(t->cells[(size_t)r * (size_t)t->ncols + (size_t)c]);
  free(t->cells);
  free(t->right);
  free(t);
}
