/* Switchyard's fast path as native code: an HTTP filter built as an Envoy dynamic module
 * (envoy/dynamic_module_abi.h) that `switchyard up` runs in place of envoy/fast_path.lua, which
 * `switchyard render` keeps (a team's own Envoy cannot load a file of ours). Same rules (but for
 * one refinement: keys compared decoded, below), same rewrite; the Lua's interpreter, its coroutine per request and its calls into Envoy cost a fast
 * request about a sixth of its throughput (make bench BENCH_ARGS=--fast-path-costs: the module is
 * 1.21× the Lua side by side).
 *
 * A request whose model is a literal or alias name that Envoy can serve alone — a route named
 * "fast:<api>:<name>" exists for it (filter/render/fast_path.py) — is checked, rewritten and sent
 * without the Python filter. The check accepts only bodies that filter/inbound.py would accept and
 * forward unchanged except for `model`: strict JSON (UTF-8, escapes, numbers, depth), a top-level
 * object, unique keys in every object (compared decoded, as the filter's parser compares them),
 * `messages` a non-empty array of objects, `stream` a boolean or null, `model` a plain string, and
 * no per-request routing preferences. Anything else, or any doubt, goes to the filter, which stays
 * the authority on errors.
 *
 * With gateway.client_keys, every request (fast or not) is authenticated here first, as the filter
 * would: the presented key's salted SHA-256 digest is compared in constant time with every
 * configured key's digest (the configuration holds digests and names, never keys); a miss gets the
 * filter's own 401 body, in the client's API shape; a match names the client (`client` metadata).
 * A fast route that some keys may not use lists the keys that may; the others go to the filter,
 * which answers their 403.
 *
 * Configuration: per route (DynamicModuleFilterPerRoute, parsed once per route update), one item
 * a line, "<name> <value>" (names hex-encoded where a configuration chose them):
 * - the virtual host's: `max_request_bytes N`, and with client keys `salt S`, `key DIGEST NAMEHEX`
 *   (one a key), `unauthorized_openai BODY`, `unauthorized_anthropic BODY`;
 * - a fast route's: `model_json "id"`, `upstream_path P`, `anthropic_version V` (an Anthropic
 *   provider), `spans 1` (span ids are exported), `meta NAME VALUE` (the decision metadata),
 *   `restricted 1` and `client NAMEHEX` (the keys that may use it).
 * filter/render/fast_path.py writes both from the tables the Lua reads.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#define DM_PER_ROUTE_CONFIG
#define DM_REQUEST_BODY
#define DM_REQUEST_TRAILERS
#include "dynamic_module_unused.h"

#define BUF(s) ((dm_module_buffer){(s), sizeof(s) - 1})
#define SLICE(p, n) ((dm_module_buffer){(p), (n)})
#define NULL_VALUE ((dm_module_buffer){NULL, 0})

static const char FLAG[] = "x-switchyard-fast-model"; /* matched by the fast routes; never trusted from a client */
static const char STREAM_FLAG[] = "x-switchyard-fast-stream";
/* Levels of nesting, the top-level object being the first: the filter's limit (MAX_JSON_DEPTH in
 * filter/inbound.py); deeper bodies get its 400. */
enum { MAX_DEPTH = 254, MAX_NUMBER = 15, MAX_MODEL_JSON = 258, MAX_METADATA = 16, MAX_UPSTREAM_PATH = 2048 };

/* ------------------------------------------------------------------ configuration */

typedef struct { char *ptr; size_t length; } text;

typedef struct {
  char digest[64]; /* lower-case hex */
  text name;
} client_key;

enum kind { VIRTUAL_HOST = 1, FAST_ROUTE = 2 };

typedef struct {
  enum kind kind;
  /* the virtual host's */
  unsigned long long max_request_bytes;
  text salt, unauthorized[2]; /* [0] OpenAI's shape, [1] Anthropic's */
  client_key *keys;
  size_t key_count;
  /* a fast route's */
  text model_json, upstream_path, anthropic_version;
  bool spans, restricted;
  text meta[MAX_METADATA * 2];
  size_t meta_count;
  text *clients;
  size_t client_count;
} route_config;

static bool copy(text *out, const char *p, size_t n) {
  if (out->ptr) return false; /* given twice: not what the renderer writes */
  out->ptr = malloc(n + 1);
  if (!out->ptr) return false;
  memcpy(out->ptr, p, n);
  out->ptr[n] = 0;
  out->length = n;
  return true;
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static bool copy_hex(text *out, const char *p, size_t n) {
  if (n % 2 || out->ptr) return false;
  out->ptr = malloc(n / 2 + 1);
  if (!out->ptr) return false;
  for (size_t i = 0; i < n; i += 2) {
    int hi = hex_value(p[i]), lo = hex_value(p[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out->ptr[i / 2] = (char)(hi * 16 + lo);
  }
  out->length = n / 2;
  out->ptr[out->length] = 0;
  return true;
}

static void free_config(route_config *c) {
  if (!c) return;
  free(c->salt.ptr), free(c->unauthorized[0].ptr), free(c->unauthorized[1].ptr);
  for (size_t i = 0; i < c->key_count; i++) free(c->keys[i].name.ptr);
  free(c->keys);
  free(c->model_json.ptr), free(c->upstream_path.ptr), free(c->anthropic_version.ptr);
  for (size_t i = 0; i < c->meta_count * 2; i++) free(c->meta[i].ptr);
  for (size_t i = 0; i < c->client_count; i++) free(c->clients[i].ptr);
  free(c->clients);
  free(c);
}

static bool is(const char *name, size_t n, const char *want) { return n == strlen(want) && !memcmp(name, want, n); }

/* One line: its name, and the value after one space. */
static bool read_line(route_config *c, const char *line, size_t n) {
  const char *space = memchr(line, ' ', n);
  if (!space) return false;
  size_t name_n = (size_t)(space - line);
  const char *value = space + 1;
  size_t value_n = n - name_n - 1;
  if (is(line, name_n, "max_request_bytes")) {
    unsigned long long v = 0;
    if (value_n == 0 || value_n > 18 || c->max_request_bytes != (unsigned long long)-1) return false;
    for (size_t i = 0; i < value_n; i++) {
      if (value[i] < '0' || value[i] > '9') return false;
      v = v * 10 + (unsigned)(value[i] - '0');
    }
    c->max_request_bytes = v;
    return true;
  }
  if (is(line, name_n, "salt")) return copy(&c->salt, value, value_n);
  if (is(line, name_n, "unauthorized_openai")) return copy(&c->unauthorized[0], value, value_n);
  if (is(line, name_n, "unauthorized_anthropic")) return copy(&c->unauthorized[1], value, value_n);
  if (is(line, name_n, "key")) {
    if (value_n < 66 || value[64] != ' ') return false;
    client_key *more = realloc(c->keys, (c->key_count + 1) * sizeof *more);
    if (!more) return false;
    c->keys = more;
    client_key *k = &c->keys[c->key_count];
    memset(k, 0, sizeof *k);
    for (int i = 0; i < 64; i++)
      if (hex_value(value[i]) < 0 || (value[i] >= 'A' && value[i] <= 'F')) return false;
    memcpy(k->digest, value, 64);
    c->key_count++;
    return copy_hex(&k->name, value + 65, value_n - 65);
  }
  if (is(line, name_n, "model_json")) return copy(&c->model_json, value, value_n);
  if (is(line, name_n, "upstream_path")) return copy(&c->upstream_path, value, value_n);
  if (is(line, name_n, "anthropic_version")) return copy(&c->anthropic_version, value, value_n);
  if (is(line, name_n, "spans")) return is(value, value_n, "1") && !c->spans && (c->spans = true);
  if (is(line, name_n, "restricted")) return is(value, value_n, "1") && !c->restricted && (c->restricted = true);
  if (is(line, name_n, "meta")) {
    const char *gap = memchr(value, ' ', value_n);
    if (!gap || c->meta_count == MAX_METADATA) return false;
    size_t k = (size_t)(gap - value);
    text *pair = &c->meta[c->meta_count * 2];
    c->meta_count++;
    return copy(&pair[0], value, k) && copy(&pair[1], gap + 1, value_n - k - 1);
  }
  if (is(line, name_n, "client")) {
    text *more = realloc(c->clients, (c->client_count + 1) * sizeof *more);
    if (!more) return false;
    c->clients = more;
    c->clients[c->client_count] = (text){0};
    c->client_count++;
    return copy_hex(&c->clients[c->client_count - 1], value, value_n);
  }
  return false;
}

/* NULL for text Envoy must refuse: a route update that does not load keeps the old routes. */
static route_config *read_config(const char *p, size_t n) {
  route_config *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->max_request_bytes = (unsigned long long)-1;
  bool ok = true;
  while (ok && n) {
    const char *end = memchr(p, '\n', n);
    size_t line = end ? (size_t)(end - p) : n;
    if (line) ok = read_line(c, p, line);
    p += line + (end ? 1 : 0), n -= line + (end ? 1 : 0);
  }
  c->kind = c->upstream_path.ptr || c->model_json.ptr ? FAST_ROUTE : VIRTUAL_HOST;
  if (ok && c->kind == FAST_ROUTE && !(c->model_json.ptr && c->upstream_path.ptr && c->upstream_path.length &&
                                      c->upstream_path.length <= MAX_UPSTREAM_PATH))
    ok = false;
  if (ok && c->key_count && !(c->unauthorized[0].ptr && c->unauthorized[1].ptr)) ok = false;
  if (!ok) free_config(c), c = NULL;
  return c;
}

/* ------------------------------------------------------------------ strict JSON, without values
 *
 * The Lua's reading, byte for byte (envoy/fast_path.lua), except that the keys of an object are
 * compared decoded to UTF-8, as the filter's parser compares them. Indices are offsets into
 * the body; a function returns the offset after what it read, or -1. */

typedef struct {
  const unsigned char *s;
  long n;
  /* The keys of the objects being read, innermost last (decoded where escaped: into `arena`). */
  text *keys;
  size_t key_count, key_room;
  char *arena;
  size_t arena_used;
  bool failed; /* out of memory: the filter decides */
} scan;

static inline int at(const scan *sc, long i) { return i < sc->n ? sc->s[i] : -1; }

static long ws(const scan *sc, long i) { /* the next non-whitespace byte's offset, or -1 at the end */
  int c = at(sc, i);
  while (c == ' ' || c == '\n' || c == '\r' || c == '\t') c = at(sc, ++i);
  return c < 0 ? -1 : i;
}

/* The UTF-8 character whose lead byte c (>= 0x80) is at k: the offset after it, or -1 when it is
 * not well-formed (overlong, a surrogate, beyond U+10FFFF, cut). */
static long utf8_next(const scan *sc, long k, int c) {
  int n, lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) n = 1;
  else if (c >= 0xE0 && c <= 0xEF) n = 2;
  else if (c >= 0xF0 && c <= 0xF4) n = 3;
  else return -1;
  if (c == 0xE0) lo = 0xA0;
  else if (c == 0xED) hi = 0x9F;
  else if (c == 0xF0) lo = 0x90;
  else if (c == 0xF4) hi = 0x8F;
  int c2 = at(sc, k + 1);
  if (c2 < lo || c2 > hi) return -1;
  for (long m = k + 2; m <= k + n; m++) {
    int b = at(sc, m);
    if (b < 0x80 || b > 0xBF) return -1;
  }
  return k + n + 1;
}

static long hex4(const scan *sc, long k) { /* the value of 4 hex digits at k, or -1 */
  long v = 0;
  for (int i = 0; i < 4; i++) {
    int c = at(sc, k + i), d = c < 0 ? -1 : hex_value((char)c);
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

static bool is_high(long u) { return u >= 0xD800 && u <= 0xDBFF; }
static bool is_low(long u) { return u >= 0xDC00 && u <= 0xDFFF; }

/* s[i] is a quote: the offset after the closing quote, or -1; *escaped: the string held one. */
static long skip_string(const scan *sc, long i, bool *escaped) {
  long k = i + 1;
  *escaped = false;
  for (;;) {
    int c = at(sc, k);
    if (c < 0) return -1;
    if ((c > 34 && c < 128 && c != 92) || c == 32 || c == 33) {
      k++;
    } else if (c == 34) {
      return k + 1;
    } else if (c == 92) {
      *escaped = true;
      int e = at(sc, k + 1);
      if (e == 'u') { /* a surrogate only as a high-low pair (what JSON encoders write for emoji) */
        long u = hex4(sc, k + 2);
        if (u < 0 || is_low(u)) return -1;
        if (is_high(u)) {
          if (at(sc, k + 6) != 92 || at(sc, k + 7) != 'u' || !is_low(hex4(sc, k + 8))) return -1;
          k += 12;
        } else {
          k += 6;
        }
      } else if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' || e == 'r' || e == 't') {
        k += 2;
      } else {
        return -1;
      }
    } else if (c < 32) {
      return -1;
    } else {
      k = utf8_next(sc, k, c);
      if (k < 0) return -1;
    }
  }
}

/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9][0-9]?)? — at most two exponent digits (no
 * infinities) and MAX_NUMBER characters. */
static bool digit(int c) { return c >= '0' && c <= '9'; }
static long skip_number(const scan *sc, long i) {
  long j = i;
  if (at(sc, j) == '-') j++;
  int c = at(sc, j);
  if (c == '0') j++;
  else if (digit(c)) do j++; while (digit(at(sc, j)));
  else return -1;
  if (at(sc, j) == '.' && digit(at(sc, j + 1))) {
    j += 2;
    while (digit(at(sc, j))) j++;
  }
  c = at(sc, j);
  if (c == 'e' || c == 'E') {
    long k = j + 1;
    c = at(sc, k);
    if (c == '+' || c == '-') k++;
    if (digit(at(sc, k))) {
      k++;
      if (digit(at(sc, k))) k++;
      j = k;
    }
  }
  return j - i > MAX_NUMBER ? -1 : j;
}

/* Decoded keys never outgrow their escaped text, and the arena is a stack (an object's keys go
 * when it ends): the body's size is enough, taken once, never moved. */
static char *arena_take(scan *sc, size_t n) {
  if (!sc->arena && !(sc->arena = malloc((size_t)sc->n + 1))) return NULL;
  if (sc->arena_used + n > (size_t)sc->n + 1) return NULL; /* cannot happen (above): the filter decides */
  char *p = sc->arena + sc->arena_used;
  sc->arena_used += n;
  return p;
}

static size_t put_utf8(char *out, long u) {
  if (u < 0x80) return out[0] = (char)u, 1;
  if (u < 0x800) return out[0] = (char)(0xC0 | u >> 6), out[1] = (char)(0x80 | (u & 63)), 2;
  if (u < 0x10000)
    return out[0] = (char)(0xE0 | u >> 12), out[1] = (char)(0x80 | (u >> 6 & 63)), out[2] = (char)(0x80 | (u & 63)), 3;
  out[0] = (char)(0xF0 | u >> 18), out[1] = (char)(0x80 | (u >> 12 & 63));
  out[2] = (char)(0x80 | (u >> 6 & 63)), out[3] = (char)(0x80 | (u & 63));
  return 4;
}

/* The escaped string's text between offsets a and b (quotes excluded, checked by skip_string),
 * decoded into the arena. */
static bool decode(scan *sc, long a, long b, text *out) {
  char *o = arena_take(sc, (size_t)(b - a));
  if (!o) return false;
  size_t n = 0;
  for (long k = a; k < b;) {
    int c = sc->s[k];
    if (c != '\\') { o[n++] = (char)c, k++; continue; }
    int e = sc->s[k + 1];
    if (e != 'u') {
      o[n++] = e == 'b' ? '\b' : e == 'f' ? '\f' : e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : (char)e;
      k += 2;
      continue;
    }
    long u = hex4(sc, k + 2);
    k += 6;
    if (is_high(u)) u = 0x10000 + ((u - 0xD800) << 10) + (hex4(sc, k + 2) - 0xDC00), k += 6;
    n += put_utf8(o + n, u); /* never longer than its escape */
  }
  sc->arena_used -= (size_t)(b - a) - n;
  out->ptr = o, out->length = n;
  return true;
}

static bool push_key(scan *sc, text key) {
  if (sc->key_count == sc->key_room) {
    size_t room = sc->key_room ? sc->key_room * 2 : 64;
    text *more = realloc(sc->keys, room * sizeof *more);
    if (!more) return false;
    sc->keys = more, sc->key_room = room;
  }
  sc->keys[sc->key_count++] = key;
  return true;
}

static int compare_keys(const void *a, const void *b) {
  const text *x = a, *y = b;
  size_t n = x->length < y->length ? x->length : y->length;
  int c = memcmp(x->ptr, y->ptr, n);
  return c ? c : (x->length > y->length) - (x->length < y->length);
}

/* Whether the keys from `first` on are all different. */
static bool unique_keys(scan *sc, size_t first) {
  size_t n = sc->key_count - first;
  text *k = sc->keys + first;
  if (n < 2) return true;
  if (n == 2) return compare_keys(&k[0], &k[1]) != 0;
  qsort(k, n, sizeof *k, compare_keys);
  for (size_t i = 1; i < n; i++)
    if (!compare_keys(&k[i - 1], &k[i])) return false;
  return true;
}

static long skip_value(scan *sc, long i, int depth);

/* A key given twice is read one way by the filter (the last) and another by some providers (the
 * first, or a 400): such an object goes to the filter. */
static long skip_object(scan *sc, long i, int depth) {
  long j = ws(sc, i + 1);
  if (j < 0) return -1;
  if (at(sc, j) == '}') return j + 1;
  size_t first = sc->key_count, arena_mark = sc->arena_used;
  long result = -1;
  for (;;) {
    if (at(sc, j) != '"') break;
    bool escaped;
    long e = skip_string(sc, j, &escaped);
    if (e < 0) break;
    text key = {(char *)sc->s + j + 1, (size_t)(e - j - 2)};
    if (escaped && !decode(sc, j + 1, e - 1, &key)) { sc->failed = true; break; }
    if (!push_key(sc, key)) { sc->failed = true; break; }
    j = ws(sc, e);
    if (j < 0 || at(sc, j) != ':') break;
    j = ws(sc, j + 1);
    if (j >= 0) j = skip_value(sc, j, depth);
    if (j >= 0) j = ws(sc, j);
    if (j < 0) break;
    int c = at(sc, j);
    if (c == '}') { result = unique_keys(sc, first) ? j + 1 : -1; break; }
    if (c != ',') break;
    j = ws(sc, j + 1);
    if (j < 0) break;
  }
  sc->key_count = first, sc->arena_used = arena_mark;
  return result;
}

/* With `objects_only`, every element must be an object and there must be at least one. */
static long skip_array(scan *sc, long i, int depth, bool objects_only) {
  long j = ws(sc, i + 1);
  if (j < 0) return -1;
  if (at(sc, j) == ']') return objects_only ? -1 : j + 1;
  for (;;) {
    if (objects_only && at(sc, j) != '{') return -1;
    j = skip_value(sc, j, depth);
    if (j >= 0) j = ws(sc, j);
    if (j < 0) return -1;
    int c = at(sc, j);
    if (c == ']') return j + 1;
    if (c != ',') return -1;
    j = ws(sc, j + 1);
    if (j < 0) return -1;
  }
}

static bool word(const scan *sc, long i, const char *w) {
  for (size_t k = 0; w[k]; k++)
    if (at(sc, i + (long)k) != (unsigned char)w[k]) return false;
  return true;
}

static long skip_value(scan *sc, long i, int depth) {
  int c = at(sc, i);
  if (c == '"') {
    bool escaped;
    return skip_string(sc, i, &escaped);
  }
  if (c == '{' || c == '[') {
    if (depth + 2 > MAX_DEPTH) return -1; /* this container's level: depth + 2 */
    return c == '{' ? skip_object(sc, i, depth + 1) : skip_array(sc, i, depth + 1, false);
  }
  if (c == 't') return word(sc, i, "true") ? i + 4 : -1;
  if (c == 'f') return word(sc, i, "false") ? i + 5 : -1;
  if (c == 'n') return word(sc, i, "null") ? i + 4 : -1;
  return skip_number(sc, i);
}

static bool model_char(int c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '.' ||
         c == '_' || c == ':' || c == '/' || c == '@' || c == '+';
}

typedef struct {
  long model_at, model_end; /* the model's JSON string, quotes included: [model_at, model_end) */
  bool stream;
} verdict;

/* May this body skip the filter? True with the model's span and whether `stream` is true.
 * Exported for the unit tests, which hold it to the filter's parser. */
DM_EXPORT bool switchyard_fast_model(const char *body, size_t size, verdict *out) {
  scan sc = {.s = (const unsigned char *)body, .n = (long)size};
  bool ok = false, has_messages = false, stream = false;
  long model_at = -1, model_end = -1;
  long i = ws(&sc, 0);
  if (i < 0 || at(&sc, i) != '{') goto done;
  i = ws(&sc, i + 1);
  while (i >= 0 && at(&sc, i) == '"') {
    bool escaped;
    long e = skip_string(&sc, i, &escaped);
    if (e < 0 || escaped) goto done; /* an escaped key may decode to "model": the filter decides */
    text key = {(char *)sc.s + i + 1, (size_t)(e - i - 2)};
    if (!push_key(&sc, key)) goto done;
    i = ws(&sc, e);
    if (i < 0 || at(&sc, i) != ':') goto done;
    i = ws(&sc, i + 1);
    if (i < 0) goto done;
    long after;
    if (is(key.ptr, key.length, "messages")) {
      if (at(&sc, i) != '[') goto done;
      after = skip_array(&sc, i, 1, true);
      has_messages = after >= 0;
    } else if (is(key.ptr, key.length, "routing_preferences")) {
      goto done;
    } else {
      after = skip_value(&sc, i, 0);
      if (after < 0) goto done;
      if (is(key.ptr, key.length, "model")) {
        if (at(&sc, i) != '"' || after - i > MAX_MODEL_JSON || after - i < 3) goto done;
        for (long k = i + 1; k < after - 1; k++)
          if (!model_char(sc.s[k])) goto done;
        model_at = i, model_end = after;
      } else if (is(key.ptr, key.length, "stream")) { /* true, false or null */
        int c = at(&sc, i);
        if (c != 't' && c != 'f' && c != 'n') goto done;
        stream = c == 't';
      } else if (is(key.ptr, key.length, "metadata")) { /* per-request preferences live here, maybe escaped */
        if (memchr(sc.s + i, '\\', (size_t)(after - i)) ||
            memmem(sc.s + i, (size_t)(after - i), "_preference_config", 18))
          goto done;
      }
    }
    if (after < 0) goto done;
    i = ws(&sc, after);
    if (i < 0) goto done;
    int c = at(&sc, i);
    if (c == '}') {
      if (ws(&sc, i + 1) >= 0 || !has_messages || model_at < 0) goto done;
      ok = unique_keys(&sc, 0) && !sc.failed;
      break;
    }
    if (c != ',') goto done;
    i = ws(&sc, i + 1);
  }
done:
  free(sc.keys);
  free(sc.arena);
  if (ok && out) out->model_at = model_at, out->model_end = model_end, out->stream = stream;
  return ok;
}

/* ------------------------------------------------------------------ client keys */

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

typedef struct {
  uint32_t h[8];
  unsigned char block[64];
  size_t used;
  uint64_t length;
} sha256;

static uint32_t ror(uint32_t x, int n) { return x >> n | x << (32 - n); }

static void sha256_block(sha256 *c, const unsigned char *p) {
  uint32_t w[64], a = c->h[0], b = c->h[1], d3 = c->h[2], d = c->h[3], e = c->h[4], f = c->h[5], g = c->h[6],
                  h = c->h[7];
  for (int i = 0; i < 16; i++)
    w[i] = (uint32_t)p[i * 4] << 24 | (uint32_t)p[i * 4 + 1] << 16 | (uint32_t)p[i * 4 + 2] << 8 | p[i * 4 + 3];
  for (int i = 16; i < 64; i++) {
    uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ w[i - 15] >> 3;
    uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ w[i - 2] >> 10;
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  for (int i = 0; i < 64; i++) {
    uint32_t t1 = h + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
    uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & d3) ^ (b & d3));
    h = g, g = f, f = e, e = d + t1, d = d3, d3 = b, b = a, a = t1 + t2;
  }
  c->h[0] += a, c->h[1] += b, c->h[2] += d3, c->h[3] += d, c->h[4] += e, c->h[5] += f, c->h[6] += g, c->h[7] += h;
}

static void sha256_add(sha256 *c, const char *data, size_t n) {
  const unsigned char *p = (const unsigned char *)data;
  c->length += n;
  while (n) {
    size_t take = 64 - c->used < n ? 64 - c->used : n;
    memcpy(c->block + c->used, p, take);
    c->used += take, p += take, n -= take;
    if (c->used == 64) sha256_block(c, c->block), c->used = 0;
  }
}

/* SHA-256 (FIPS 180-4) of salt and key, as 64 lower-case hex digits. Exported for the unit tests. */
DM_EXPORT void switchyard_sha256_hex(const char *salt, size_t salt_n, const char *key, size_t key_n, char out[64]) {
  sha256 c = {{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19}, {0},
              0, 0};
  sha256_add(&c, salt, salt_n);
  sha256_add(&c, key, key_n);
  uint64_t bits = c.length * 8;
  unsigned char pad = 0x80, zero = 0, length[8];
  sha256_add(&c, (const char *)&pad, 1);
  while (c.used != 56) sha256_add(&c, (const char *)&zero, 1);
  for (int i = 0; i < 8; i++) length[i] = (unsigned char)(bits >> (56 - 8 * i));
  sha256_add(&c, (const char *)length, 8);
  static const char digits[] = "0123456789abcdef";
  for (int i = 0; i < 32; i++) {
    unsigned char byte = (unsigned char)(c.h[i / 4] >> (24 - 8 * (i % 4)));
    out[i * 2] = digits[byte >> 4], out[i * 2 + 1] = digits[byte & 15];
  }
}

static bool space(int c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

static dm_envoy_buffer strip(dm_envoy_buffer v) {
  while (v.length && space((unsigned char)v.ptr[0])) v.ptr++, v.length--;
  while (v.length && space((unsigned char)v.ptr[v.length - 1])) v.length--;
  return v;
}

/* What a stream's filter allocated for it (joined header values), freed with it. */
typedef struct owned {
  struct owned *next;
  char data[];
} owned;

/* A request header's value as Envoy's Lua filter reads it (the Lua's rules are the reference):
 * repeated values joined with ",", in order; {NULL, 0} when absent. A joined value lives as long
 * as the stream (`*keep`). */
static dm_envoy_buffer request_header(dm_filter_envoy envoy, owned **keep, dm_module_buffer name) {
  dm_envoy_buffer value = {0};
  size_t count = 0;
  if (!envoy_dynamic_module_callback_http_get_header(envoy, DM_REQUEST_HEADERS, name, &value, 0, &count) || !value.ptr)
    return (dm_envoy_buffer){0};
  if (count <= 1) return value;
  size_t total = 0;
  for (size_t i = 0; i < count; i++) {
    dm_envoy_buffer v = {0};
    if (envoy_dynamic_module_callback_http_get_header(envoy, DM_REQUEST_HEADERS, name, &v, i, NULL) && v.ptr)
      total += v.length + 1;
  }
  owned *o = malloc(sizeof *o + total + 1);
  if (!o) return (dm_envoy_buffer){"\x01", 1}; /* out of memory: a value no check accepts */
  size_t used = 0;
  for (size_t i = 0; i < count; i++) {
    dm_envoy_buffer v = {0};
    if (!envoy_dynamic_module_callback_http_get_header(envoy, DM_REQUEST_HEADERS, name, &v, i, NULL) || !v.ptr) continue;
    if (used) o->data[used++] = ',';
    if (v.length) memcpy(o->data + used, v.ptr, v.length), used += v.length;
  }
  o->next = *keep, *keep = o;
  return (dm_envoy_buffer){o->data, used};
}

/* The configured key the client presented (as filter/inbound.py reads them: x-api-key, and
 * Authorization's token when the scheme is Bearer, in any case), or NULL. Every presented key
 * is compared with every configured digest over all 64 digits: no early exit that leaks which
 * one is close. */
static const text *client_of(dm_filter_envoy envoy, owned **keep, const route_config *vhost) {
  dm_envoy_buffer found[2];
  int count = 0;
  dm_envoy_buffer api_key = strip(request_header(envoy, keep, BUF("x-api-key")));
  if (api_key.length) found[count++] = api_key;
  dm_envoy_buffer authorization = strip(request_header(envoy, keep, BUF("authorization")));
  const char *gap = authorization.length ? memchr(authorization.ptr, ' ', authorization.length) : NULL;
  if (gap && gap - authorization.ptr == 6 && !strncasecmp(authorization.ptr, "bearer", 6)) {
    dm_envoy_buffer token = strip((dm_envoy_buffer){gap + 1, authorization.length - 7});
    if (token.length) found[count++] = token;
  }
  const text *matched = NULL;
  for (int p = 0; p < count; p++) {
    char digest[64];
    switchyard_sha256_hex(vhost->salt.ptr, vhost->salt.length, found[p].ptr, found[p].length, digest);
    for (size_t k = 0; k < vhost->key_count; k++) {
      unsigned char difference = 0;
      for (int j = 0; j < 64; j++) difference |= (unsigned char)(digest[j] ^ vhost->keys[k].digest[j]);
      if (difference == 0 && !matched) matched = &vhost->keys[k].name;
    }
  }
  return matched;
}

/* ------------------------------------------------------------------ traces */

static __thread uint64_t random_state[2]; /* xorshift128+, seeded apart on each worker thread */

static uint64_t next_random(void) {
  if (!random_state[0] && !random_state[1]) {
    if (getrandom(random_state, sizeof random_state, 0) != sizeof random_state || (!random_state[0] && !random_state[1])) {
      struct timespec now;
      clock_gettime(CLOCK_REALTIME, &now);
      random_state[0] = (uint64_t)now.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)(uintptr_t)&now;
      random_state[1] = (uint64_t)now.tv_sec | 1;
    }
  }
  uint64_t x = random_state[0], y = random_state[1];
  random_state[0] = y;
  x ^= x << 23;
  random_state[1] = x ^ y ^ (x >> 17) ^ (y >> 26);
  return random_state[1] + y;
}

static void span_id(char out[16]) { /* 16 random hex digits */
  static const char digits[] = "0123456789abcdef";
  uint64_t r = next_random();
  for (int i = 0; i < 16; i++) out[i] = digits[r >> (60 - 4 * i) & 15];
}

typedef struct {
  char trace[32], parent[16], flags[2];
  bool has_parent;
} trace_context;

static bool all_hex(const char *p, size_t n, bool *nonzero) {
  *nonzero = false;
  for (size_t i = 0; i < n; i++) {
    if (hex_value(p[i]) < 0) return false;
    if (p[i] != '0') *nonzero = true;
  }
  return true;
}

/* The client's W3C trace when its traceparent is valid (the filter's rule), else a new one. */
static trace_context trace_of(dm_envoy_buffer given) {
  trace_context t;
  given = strip(given);
  bool trace_set, parent_set, flags_set, version_set;
  const char *p = given.ptr;
  if (given.length == 55 && p[2] == '-' && p[35] == '-' && p[52] == '-' && all_hex(p, 2, &version_set) &&
      all_hex(p + 3, 32, &trace_set) && all_hex(p + 36, 16, &parent_set) && all_hex(p + 53, 2, &flags_set) &&
      trace_set && parent_set && !((p[0] == 'f' || p[0] == 'F') && (p[1] == 'f' || p[1] == 'F'))) {
    for (int i = 0; i < 32; i++) t.trace[i] = (char)(p[3 + i] | 0x20); /* lower case (digits keep) */
    for (int i = 0; i < 16; i++) t.parent[i] = (char)(p[36 + i] | 0x20);
    t.flags[0] = (char)(p[53] | 0x20), t.flags[1] = (char)(p[54] | 0x20);
    t.has_parent = true;
    return t;
  }
  span_id(t.trace), span_id(t.trace + 16);
  t.flags[0] = '0', t.flags[1] = '1';
  t.has_parent = false;
  return t;
}

/* ------------------------------------------------------------------ the request */

typedef struct {
  dm_filter_envoy envoy;
  owned *keep; /* joined header values */
  bool candidate;          /* its body is read for the check */
  unsigned long long seen; /* bytes of it so far */
  unsigned long long max_request_bytes;
  text client;
  double started_ms;
} stream;

static void set_metadata(dm_filter_envoy envoy, const char *key, const char *value, size_t n) {
  envoy_dynamic_module_callback_http_set_dynamic_metadata_string(envoy, BUF("switchyard"), SLICE(key, strlen(key)),
                                                                 SLICE(value, n));
}

static void set_header(dm_filter_envoy envoy, dm_module_buffer name, const char *value, size_t n) {
  envoy_dynamic_module_callback_http_set_header(envoy, DM_REQUEST_HEADERS, name, SLICE(value, n));
}

static void remove_header(dm_filter_envoy envoy, dm_module_buffer name) {
  envoy_dynamic_module_callback_http_set_header(envoy, DM_REQUEST_HEADERS, name, NULL_VALUE);
}

static bool starts(dm_envoy_buffer v, const char *prefix) {
  size_t n = strlen(prefix);
  return v.length >= n && !memcmp(v.ptr, prefix, n);
}

static size_t path_length(dm_envoy_buffer path) { /* without the query */
  const char *q = path.length ? memchr(path.ptr, '?', path.length) : NULL;
  return q ? (size_t)(q - path.ptr) : path.length;
}

/* The filter's 401 (its bytes rendered into the configuration), with the metadata the filter
 * would set for the access log and the request's span. */
static void refuse(dm_filter_envoy envoy, owned **keep, const route_config *vhost) {
  dm_envoy_buffer path = request_header(envoy, keep, BUF(":path"));
  bool anthropic = starts(path, "/v1/messages") || starts(path, "/routing/v1/messages");
  set_metadata(envoy, "api", anthropic ? "anthropic" : "openai", anthropic ? 9 : 6);
  if (path.ptr) set_metadata(envoy, "path", path.ptr, path_length(path)); /* never the query, which may hold a key */
  else set_metadata(envoy, "path", "/", 1);
  trace_context t = trace_of(request_header(envoy, keep, BUF("traceparent")));
  char span[16];
  span_id(span);
  set_metadata(envoy, "trace_id", t.trace, 32);
  set_metadata(envoy, "parent_span", t.parent, t.has_parent ? 16 : 0);
  set_metadata(envoy, "request_span", span, 16);
  set_metadata(envoy, "trace_flags", t.flags, 2);
  dm_module_header type = {"content-type", 12, "application/json", 16};
  const text *body = &vhost->unauthorized[anthropic ? 1 : 0];
  envoy_dynamic_module_callback_http_send_response(envoy, 401, &type, 1, SLICE(body->ptr, body->length),
                                                   BUF("switchyard_unauthorized"));
}

static bool json_content_type(dm_envoy_buffer v) {
  if (!v.ptr) return true; /* no header: the filter's default too */
  const char *semi = memchr(v.ptr, ';', v.length);
  dm_envoy_buffer type = strip((dm_envoy_buffer){v.ptr, semi ? (size_t)(semi - v.ptr) : v.length});
  return type.length == 16 && !strncasecmp(type.ptr, "application/json", 16);
}

/* Whether the request may skip the filter, by what its headers say (method, path, content type
 * and encoding; a body follows). */
static bool eligible(dm_filter_envoy envoy, owned **keep) {
  dm_envoy_buffer method = request_header(envoy, keep, BUF(":method")), path = request_header(envoy, keep, BUF(":path"));
  if (!(method.length == 4 && !memcmp(method.ptr, "POST", 4))) return false;
  size_t n = path_length(path);
  if (!((n == 20 && !memcmp(path.ptr, "/v1/chat/completions", 20)) || (n == 12 && !memcmp(path.ptr, "/v1/messages", 12))))
    return false;
  if (!json_content_type(request_header(envoy, keep, BUF("content-type")))) return false;
  dm_envoy_buffer encoding = request_header(envoy, keep, BUF("content-encoding")); /* gzip was decoded before */
  return !encoding.length || (encoding.length == 8 && !strncasecmp(encoding.ptr, "identity", 8));
}

static double wall_ms(void) {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  return (double)now.tv_sec * 1000 + (double)(now.tv_nsec / 1000000);
}

DM_EXPORT const char *envoy_dynamic_module_on_program_init(void) { return DM_ABI_VERSION; }

DM_EXPORT void *envoy_dynamic_module_on_http_filter_config_new(dm_config_envoy envoy_config, dm_envoy_buffer name,
                                                               dm_envoy_buffer text_config) {
  (void)envoy_config, (void)name, (void)text_config;
  static int nothing;
  return &nothing; /* everything is per route */
}

DM_EXPORT void envoy_dynamic_module_on_http_filter_config_destroy(void *c) { (void)c; }

DM_EXPORT void *envoy_dynamic_module_on_http_filter_per_route_config_new(dm_envoy_buffer name, dm_envoy_buffer text) {
  (void)name;
  return read_config(text.ptr ? text.ptr : "", text.ptr ? text.length : 0);
}

DM_EXPORT void envoy_dynamic_module_on_http_filter_per_route_config_destroy(void *c) { free_config(c); }

DM_EXPORT void *envoy_dynamic_module_on_http_filter_new(void *c, dm_filter_envoy envoy) {
  (void)c;
  stream *s = calloc(1, sizeof *s);
  if (s) s->envoy = envoy;
  return s;
}

DM_EXPORT void envoy_dynamic_module_on_http_filter_destroy(void *filter) {
  stream *s = filter;
  if (s) {
    free(s->client.ptr);
    for (owned *o = s->keep, *next; o; o = next) next = o->next, free(o);
  }
  free(s);
}

static const route_config *current(dm_filter_envoy envoy, enum kind kind) {
  const route_config *c = envoy_dynamic_module_callback_get_most_specific_route_config(envoy);
  return c && c->kind == kind ? c : NULL;
}

DM_EXPORT int envoy_dynamic_module_on_http_filter_request_headers(dm_filter_envoy envoy, void *filter, bool end) {
  stream *s = filter;
  if (!s) return DM_CONTINUE; /* out of memory: the filter decides */
  s->started_ms = wall_ms(); /* a stream's deadline counts from the request's start */
  owned **keep = &s->keep;
  if (request_header(envoy, keep, BUF(FLAG)).ptr || request_header(envoy, keep, BUF(STREAM_FLAG)).ptr) {
    remove_header(envoy, BUF(FLAG));
    remove_header(envoy, BUF(STREAM_FLAG));
    envoy_dynamic_module_callback_http_clear_route_cache(envoy);
  }
  const route_config *vhost = current(envoy, VIRTUAL_HOST);
  s->max_request_bytes = vhost ? vhost->max_request_bytes : 0;
  if (vhost && vhost->key_count) { /* gateway.client_keys: every request presents one, fast or not */
    const text *client = client_of(envoy, keep, vhost);
    if (!client) {
      refuse(envoy, keep, vhost);
      return DM_STOP_ITERATION;
    }
    set_metadata(envoy, "client", client->ptr, client->length);
    copy(&s->client, client->ptr, client->length);
  }
  s->candidate = vhost && !end && eligible(envoy, keep);
  return s->candidate ? DM_STOP_ITERATION : DM_CONTINUE;
}

/* The whole body, as one piece: Envoy's (one chunk) or a copy in *owned. */
static bool whole_body(dm_filter_envoy envoy, dm_envoy_buffer *body, char **owned, bool in_trailers) {
  dm_envoy_buffer few[8], *parts[2] = {NULL, NULL};
  size_t counts[2] = {0, 0};
  enum dm_body_type types[2] = {DM_BUFFERED_REQUEST_BODY, DM_RECEIVED_REQUEST_BODY};
  bool one = !in_trailers && envoy_dynamic_module_callback_http_received_buffered_request_body(envoy);
  size_t total = 0, pieces = 0, used = 0;
  for (int t = one ? 1 : 0; t < (in_trailers ? 1 : 2); t++)
    counts[t] = envoy_dynamic_module_callback_http_get_body_chunks_size(envoy, types[t]);
  dm_envoy_buffer *all = counts[0] + counts[1] <= 8 ? few : malloc((counts[0] + counts[1]) * sizeof *all);
  if (!all) return false;
  for (int t = 0; t < 2; t++) {
    if (!counts[t]) continue;
    parts[t] = all + used;
    if (!envoy_dynamic_module_callback_http_get_body_chunks(envoy, types[t], parts[t])) counts[t] = 0;
    used += counts[t];
  }
  for (size_t i = 0; i < used; i++)
    if (all[i].length) total += all[i].length, pieces++;
  *owned = NULL;
  if (pieces <= 1) {
    *body = (dm_envoy_buffer){"", 0};
    for (size_t i = 0; i < used; i++)
      if (all[i].length) *body = all[i];
  } else if ((*owned = malloc(total))) {
    size_t at_ = 0;
    for (size_t i = 0; i < used; i++)
      if (all[i].length) memcpy(*owned + at_, all[i].ptr, all[i].length), at_ += all[i].length;
    *body = (dm_envoy_buffer){*owned, total};
  }
  if (all != few) free(all);
  return pieces <= 1 || *owned;
}

static bool listed(const route_config *fast, const text *client) {
  for (size_t i = 0; client->ptr && i < fast->client_count; i++)
    if (fast->clients[i].length == client->length && !memcmp(fast->clients[i].ptr, client->ptr, client->length))
      return true;
  return false;
}

/* The client's query parameters Anthropic knows (Claude Code's ?beta=true), as sent; never
 * anything else (?key=… for another provider). filter/upstream.py keeps the same. */
static size_t anthropic_query(dm_envoy_buffer path, char *out, size_t room) {
  size_t at_ = path_length(path) + 1, used = 0; /* after the '?' */
  while (at_ < path.length) {
    const char *p = path.ptr + at_;
    const char *amp = memchr(p, '&', path.length - at_);
    size_t part = amp ? (size_t)(amp - p) : path.length - at_;
    const char *eq = memchr(p, '=', part);
    size_t name = eq ? (size_t)(eq - p) : part;
    if (part && name == 4 && !memcmp(p, "beta", 4) && used + part + 1 <= room) { /* past the room: dropped */
      out[used] = used ? '&' : '?';
      used++;
      memcpy(out + used, p, part), used += part;
    }
    at_ += part + 1;
  }
  return used;
}

/* False, having changed nothing, when it cannot (out of memory): the filter decides then.
 * `in_trailers`: the whole body is Envoy's buffered one (the request's trailers came). */
static bool apply(dm_filter_envoy envoy, stream *s, const route_config *fast, dm_envoy_buffer body, verdict v,
                  bool in_trailers) {
  owned **keep = &s->keep;
  /* A client that sent the provider's own id: nothing to change, unless the body has no
   * content-length (a gzip body Envoy decoded): providers may refuse a chunked request body. */
  size_t model_n = (size_t)(v.model_end - v.model_at);
  bool same = model_n == fast->model_json.length && !memcmp(body.ptr + v.model_at, fast->model_json.ptr, model_n);
  if (!same || !request_header(envoy, keep, BUF("content-length")).ptr) {
    size_t size = body.length - model_n + fast->model_json.length;
    char *rewritten = malloc(size ? size : 1);
    if (!rewritten) return false;
    memcpy(rewritten, body.ptr, (size_t)v.model_at);
    memcpy(rewritten + v.model_at, fast->model_json.ptr, fast->model_json.length);
    memcpy(rewritten + v.model_at + fast->model_json.length, body.ptr + v.model_end, body.length - (size_t)v.model_end);
    /* what earlier chunks Envoy buffered, then this one: the new body goes on as this one (or,
     * at the trailers, as the buffered one) */
    if (!envoy_dynamic_module_callback_http_received_buffered_request_body(envoy) || in_trailers)
      envoy_dynamic_module_callback_http_drain_body(envoy, DM_BUFFERED_REQUEST_BODY, SIZE_MAX);
    if (!in_trailers) envoy_dynamic_module_callback_http_drain_body(envoy, DM_RECEIVED_REQUEST_BODY, SIZE_MAX);
    envoy_dynamic_module_callback_http_append_body(envoy, in_trailers ? DM_BUFFERED_REQUEST_BODY : DM_RECEIVED_REQUEST_BODY,
                                                   SLICE(rewritten, size));
    free(rewritten);
    char length[24];
    int n = snprintf(length, sizeof length, "%zu", size);
    set_header(envoy, BUF("content-length"), length, (size_t)n);
  }
  dm_envoy_buffer path = request_header(envoy, keep, BUF(":path"));
  char upstream[MAX_UPSTREAM_PATH + 1024]; /* the configured path (its length checked at load), then the query kept */
  size_t n = fast->upstream_path.length;
  memcpy(upstream, fast->upstream_path.ptr, n);
  if (fast->anthropic_version.ptr) n += anthropic_query(path, upstream + n, sizeof upstream - n);
  set_header(envoy, BUF(":path"), upstream, n);
  if (fast->anthropic_version.ptr && !request_header(envoy, keep, BUF("anthropic-version")).length)
    set_header(envoy, BUF("anthropic-version"), fast->anthropic_version.ptr, fast->anthropic_version.length);

  trace_context t = trace_of(request_header(envoy, keep, BUF("traceparent")));
  char traceparent[55], upstream_span[16];
  span_id(upstream_span);
  memcpy(traceparent, "00-", 3);
  memcpy(traceparent + 3, t.trace, 32);
  traceparent[35] = '-';
  memcpy(traceparent + 36, upstream_span, 16);
  traceparent[52] = '-';
  memcpy(traceparent + 53, t.flags, 2);
  set_header(envoy, BUF("traceparent"), traceparent, 55);

  for (size_t i = 0; i < fast->meta_count; i++) /* api, path, model, decision, provider, upstream_api */
    set_metadata(envoy, fast->meta[2 * i].ptr, fast->meta[2 * i + 1].ptr, fast->meta[2 * i + 1].length);
  if (fast->spans) { /* only the span export reads them (gateway.tracing) */
    char span[16];
    span_id(span);
    set_metadata(envoy, "trace_id", t.trace, 32);
    set_metadata(envoy, "parent_span", t.parent, t.has_parent ? 16 : 0);
    set_metadata(envoy, "request_span", span, 16);
    set_metadata(envoy, "upstream_span", upstream_span, 16);
    set_metadata(envoy, "trace_flags", t.flags, 2);
  }
  if (v.stream)
    envoy_dynamic_module_callback_http_set_dynamic_metadata_number(envoy, BUF("switchyard"), BUF("started_ms"),
                                                                   s->started_ms);
  return true;
}

/* The whole body is here: the check, then the fast route or the filter. */
static void decide(dm_filter_envoy envoy, stream *s, bool in_trailers) {
  s->candidate = false;
  dm_envoy_buffer body;
  char *owned_body;
  verdict v;
  if (!whole_body(envoy, &body, &owned_body, in_trailers)) return;
  if (body.length > s->max_request_bytes || !switchyard_fast_model(body.ptr, body.length, &v)) {
    free(owned_body);
    return;
  }
  char model[MAX_MODEL_JSON];
  size_t model_n = (size_t)(v.model_end - v.model_at - 2);
  memcpy(model, body.ptr + v.model_at + 1, model_n);
  set_header(envoy, BUF(FLAG), model, model_n);
  if (v.stream) set_header(envoy, BUF(STREAM_FLAG), "1", 1);
  envoy_dynamic_module_callback_http_clear_route_cache(envoy);
  const route_config *fast = current(envoy, FAST_ROUTE); /* the fast route's, when one matched this model */
  /* no fast route for this name, or this key may not use it (the filter answers its 403), or
   * out of memory: the filter decides */
  if (!fast || (fast->restricted && !listed(fast, &s->client)) || !apply(envoy, s, fast, body, v, in_trailers)) {
    remove_header(envoy, BUF(FLAG));
    remove_header(envoy, BUF(STREAM_FLAG));
    if (fast) envoy_dynamic_module_callback_http_clear_route_cache(envoy);
  }
  free(owned_body);
}

DM_EXPORT int envoy_dynamic_module_on_http_filter_request_body(dm_filter_envoy envoy, void *filter, bool end) {
  stream *s = filter;
  if (!s || !s->candidate) return DM_CONTINUE;
  dm_envoy_buffer few[8], *chunks = few;
  size_t count = envoy_dynamic_module_callback_http_get_body_chunks_size(envoy, DM_RECEIVED_REQUEST_BODY);
  if (count > 8 && !(chunks = malloc(count * sizeof *chunks))) {
    s->candidate = false; /* out of memory: the filter decides */
    return DM_CONTINUE;
  }
  if (count && envoy_dynamic_module_callback_http_get_body_chunks(envoy, DM_RECEIVED_REQUEST_BODY, chunks))
    for (size_t i = 0; i < count; i++) s->seen += chunks[i].length;
  if (chunks != few) free(chunks);
  /* Over gateway.max_request_bytes (Envoy buffers more, for large answers): the filter's 413. */
  if (s->seen > s->max_request_bytes) {
    s->candidate = false;
    return DM_CONTINUE;
  }
  if (!end) return DM_STOP_ITERATION_AND_BUFFER;
  decide(envoy, s, false);
  return DM_CONTINUE;
}

/* A body followed by trailers: it is whole (and buffered) when they come. */
DM_EXPORT int envoy_dynamic_module_on_http_filter_request_trailers(dm_filter_envoy envoy, void *filter) {
  stream *s = filter;
  if (s && s->candidate) decide(envoy, s, true);
  return DM_CONTINUE;
}

/* The answer is not this filter's. */
DM_EXPORT int envoy_dynamic_module_on_http_filter_response_headers(dm_filter_envoy e, void *f, bool end) {
  (void)e, (void)f, (void)end;
  return DM_CONTINUE;
}
DM_EXPORT int envoy_dynamic_module_on_http_filter_response_body(dm_filter_envoy e, void *f, bool end) {
  (void)e, (void)f, (void)end;
  return DM_CONTINUE;
}
DM_EXPORT int envoy_dynamic_module_on_http_filter_response_trailers(dm_filter_envoy e, void *f) {
  (void)e, (void)f;
  return DM_CONTINUE;
}
DM_EXPORT void envoy_dynamic_module_on_http_filter_stream_complete(dm_filter_envoy e, void *f) { (void)e, (void)f; }
DM_EXPORT void envoy_dynamic_module_on_http_filter_scheduled(dm_filter_envoy e, void *f, uint64_t event) {
  (void)e, (void)f, (void)event;
}
