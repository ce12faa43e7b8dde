/* pattn-bench: a small JSON reader for --compare (peer rows). Enough JSON for what the
 * peers and pattn-bench write: objects, arrays, strings (with \u escapes), numbers,
 * true/false/null. */
#ifndef PATTN_BENCH_JSON_H
#define PATTN_BENCH_JSON_H

typedef enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } jtype;

typedef struct jval {
  jtype         t;
  double        num;   /* J_NUM, J_BOOL (0/1) */
  char         *str;   /* J_STR */
  int           n;     /* J_ARR, J_OBJ: number of items */
  struct jval  *items;
  char        **keys;  /* J_OBJ */
} jval;

/* parses text into *v; returns 0, or -1 with a message in err */
int         json_parse(const char *text, jval *v, char *err, size_t errn);
void        json_free(jval *v);
const jval *json_get(const jval *obj, const char *key); /* NULL if absent */
const char *json_str(const jval *obj, const char *key); /* NULL if absent or not a string */
double      json_num(const jval *obj, const char *key, double dflt);

#endif
