/* Token counts of every answer, read inside Envoy: an HTTP filter built as an Envoy dynamic module
 * (envoy/dynamic_module_abi.h) that takes the place of two of the bootstrap's filters under
 * `switchyard up` (filter/render/usage.py): the token-scan Lua (streamed answers) and
 * json_to_metadata (JSON answers). Both cost a fast-path request a large part of its throughput
 * (make bench BENCH_ARGS=--fast-path-costs); this filter reads each chunk where it lies, never
 * copying a JSON answer, and writes `switchyard.usage` once, when the answer ends — what the
 * access log, the metrics and the governance read.
 *
 * A JSON answer that does not declare a length within Envoy's buffer limit is held until it is
 * whole, as json_to_metadata held every one: Envoy buffers it, within that limit, so an answer
 * over it is Envoy's 500, in the client's API shape (the bootstrap's local replies), never a
 * truncated answer. One whose content-length is within the limit cannot outgrow it (Envoy's
 * codecs hold a body to its declared length): it passes on as it comes, as an event stream does,
 * and the client sees the same answer without the wait.
 *
 * What it reads, as those two filters did (envoy/bootstrap.template.yaml keeps them for
 * `switchyard render`, where Envoy cannot load a file of ours):
 * - an event stream (a content type holding text/event-stream): each `"<name>_tokens": <digits>`
 *   in a chunk that holds `"usage"` (with the tail of the chunk before it), the last of a kind
 *   counting — the token-scan Lua's reading, byte for byte;
 * - a JSON answer (content type application/json): the top-level object's `usage`, read by a
 *   streaming parser as strict as json_to_metadata's (an answer that is not valid JSON counts no
 *   tokens), with that filter's rules and their order: input from prompt_tokens then input_tokens,
 *   output from completion_tokens then output_tokens, cached from prompt_tokens_details.
 *   cached_tokens, cache_read_input_tokens, then input_tokens_details.cached_tokens, cache writes
 *   from cache_creation_input_tokens. A later duplicate key replaces the earlier one's value, as
 *   in the parsed object. Token counts are JSON numbers in both APIs; other values count nothing.
 * At the end, `prompt_tokens` is every prompt token, which Anthropic's input_tokens is not (its
 * cache reads and writes are apart): input + cached + cache writes when the provider's API is
 * Anthropic's (`switchyard.upstream_api`), input otherwise.
 *
 * Configuration (a string, rendered by filter/render/usage.py): Envoy's buffer limit, in bytes
 * (the listener's per_connection_buffer_limit_bytes).
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dynamic_module_unused.h"

#define BUF(s) ((dm_module_buffer){(s), sizeof(s) - 1})
#define SLICE(p, n) ((dm_module_buffer){(p), (n)})

/* What the answer said, by where it said it. */
enum slot { PROMPT, COMPLETION, INPUT, OUTPUT, CACHE_READ, CACHE_CREATION, PROMPT_CACHED, INPUT_CACHED, SLOTS };

/* The containers that matter, by depth (the top-level object is depth 1). */
enum context { NOWHERE, TOP, USAGE, PROMPT_DETAILS, INPUT_DETAILS };
/* What the value after the last key read is, for this filter. */
enum pending { P_NONE, P_USAGE, P_PROMPT_DETAILS, P_INPUT_DETAILS, P_SLOT /* + slot */ };

enum state {
  J_VALUE,          /* a value is due */
  J_VALUE_OR_CLOSE, /* after `[` */
  J_KEY_OR_CLOSE,   /* after `{` */
  J_KEY,            /* after `,` in an object */
  J_COLON,
  J_AFTER,          /* after a value: `,` or the container's close */
  J_STRING,
  J_ESCAPE,
  J_HEX,
  J_UTF8,
  J_NUMBER,
  J_LITERAL,
  J_DONE,           /* the top-level value is complete: whitespace only */
  J_ERROR,
};

#define MAX_DEPTH 8192 /* deeper answers are taken as not JSON: no provider nests so */
#define KEY_MAX 32     /* longer keys are none of ours */
#define NUMBER_MAX 64  /* longer numbers are no token count */

typedef struct {
  enum state state;
  unsigned depth;
  unsigned char objects[MAX_DEPTH / 8]; /* per depth: an object (1) or an array (0) */
  enum context context[4];              /* of depths 1..3 */
  unsigned pending;
  bool string_is_key;
  char key[KEY_MAX];
  unsigned key_size;
  bool key_long;
  unsigned hex_left, hex_value;
  bool want_low_surrogate;
  unsigned utf8_left;
  unsigned char utf8_lo, utf8_hi;
  int number_state;
  char number[NUMBER_MAX];
  unsigned number_size;
  const char *literal;
  unsigned literal_at;
  bool present[SLOTS];
  double value[SLOTS];
} json_reader;

/* The counts the access log reads, as the two filters named them. */
enum count { C_INPUT, C_OUTPUT, C_CACHED, C_CACHE_WRITE, COUNTS };
static const char *const COUNT_NAMES[COUNTS] = {"input_tokens", "output_tokens", "cached_tokens", "cache_write_tokens"};

typedef struct {
  unsigned long long buffer_limit; /* Envoy's, in bytes */
} config;

typedef struct {
  dm_filter_envoy envoy;
  const config *config;
  enum { NONE, SSE, JSON } kind;
  bool held;    /* a JSON answer held until whole (Envoy buffers it) */
  bool written;
  bool present[COUNTS];
  double value[COUNTS];
  /* SSE: the last bytes scanned (a usage field cut between two chunks) and a scratch copy */
  char tail[256];
  size_t tail_size;
  char *scan;
  size_t scan_capacity;
  json_reader *json;
} usage;

static bool equals(dm_envoy_buffer value, const char *text) {
  size_t size = strlen(text);
  return value.ptr && value.length == size && memcmp(value.ptr, text, size) == 0;
}

static void count(usage *u, enum count which, double value) {
  u->present[which] = true;
  u->value[which] = value;
}

/* ------------------------------------------------------------------ event streams */

static const char *const STREAM_NAMES[][2] = {
    {"prompt_tokens", "input_tokens"},        {"input_tokens", "input_tokens"},
    {"completion_tokens", "output_tokens"},   {"output_tokens", "output_tokens"},
    {"cached_tokens", "cached_tokens"},       {"cache_read_input_tokens", "cached_tokens"},
    {"cache_creation_input_tokens", "cache_write_tokens"}};

static int stream_count(const char *name, size_t size) {
  for (size_t i = 0; i < sizeof STREAM_NAMES / sizeof *STREAM_NAMES; i++)
    if (strlen(STREAM_NAMES[i][0]) == size && memcmp(STREAM_NAMES[i][0], name, size) == 0)
      for (int c = 0; c < COUNTS; c++)
        if (strcmp(COUNT_NAMES[c], STREAM_NAMES[i][1]) == 0) return c;
  return -1;
}

static bool lua_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }
static bool name_char(char c) { return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

/* The Lua's `"([%a_]+_tokens)"%s*:%s*(%d+)`, every match in order. */
static void scan_stream_text(usage *u, const char *text, size_t size) {
  static const char suffix[] = "_tokens\"";
  for (const char *p = text, *end = text + size; (p = memmem(p, end - p, suffix, sizeof suffix - 1)); ) {
    const char *name_end = p + sizeof suffix - 2, *name = p; /* name_end: at the closing quote */
    p += sizeof suffix - 1;
    while (name > text && name_char(name[-1])) name--;
    if (name == text || name[-1] != '"') continue;
    const char *q = p;
    while (q < end && lua_space(*q)) q++;
    if (q >= end || *q != ':') continue;
    for (q++; q < end && lua_space(*q); q++) {}
    double value = 0;
    const char *digits = q;
    for (; q < end && *q >= '0' && *q <= '9'; q++) value = value * 10 + (*q - '0');
    int which = q > digits ? stream_count(name, name_end - name) : -1;
    if (which >= 0) count(u, which, value);
  }
}

/* One received chunk, in pieces as Envoy holds it, scanned with the tail of the one before. */
static void scan_stream(usage *u, const dm_envoy_buffer *pieces, size_t pieces_count) {
  size_t size = u->tail_size;
  for (size_t i = 0; i < pieces_count; i++) size += pieces[i].length;
  if (size > u->scan_capacity) {
    char *grown = realloc(u->scan, size);
    if (!grown) return; /* out of memory: this chunk's counts are lost, the answer is not */
    u->scan = grown, u->scan_capacity = size;
  }
  memcpy(u->scan, u->tail, u->tail_size);
  size_t at = u->tail_size;
  for (size_t i = 0; i < pieces_count; i++) {
    memcpy(u->scan + at, pieces[i].ptr, pieces[i].length);
    at += pieces[i].length;
  }
  if (memmem(u->scan, size, "\"usage\"", 7)) scan_stream_text(u, u->scan, size);
  u->tail_size = size < sizeof u->tail ? size : sizeof u->tail;
  memcpy(u->tail, u->scan + size - u->tail_size, u->tail_size);
}

/* ------------------------------------------------------------------ JSON answers */

static bool json_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static void set_object(json_reader *r, unsigned depth, bool object) {
  unsigned char bit = (unsigned char)(1u << (depth % 8));
  if (object) r->objects[depth / 8] |= bit; else r->objects[depth / 8] &= (unsigned char)~bit;
}

static bool in_object(const json_reader *r) { return (r->objects[r->depth / 8] >> (r->depth % 8)) & 1; }

/* A key of the object at the current depth has been read: what its value is to us. A key read
 * again replaces what it held, so what it covers is forgotten first. */
static void key_read(json_reader *r) {
  static const struct { enum context where; const char *key; unsigned pending; } KEYS[] = {
      {TOP, "usage", P_USAGE},
      {USAGE, "prompt_tokens_details", P_PROMPT_DETAILS},
      {USAGE, "input_tokens_details", P_INPUT_DETAILS},
      {USAGE, "prompt_tokens", P_SLOT + PROMPT},
      {USAGE, "completion_tokens", P_SLOT + COMPLETION},
      {USAGE, "input_tokens", P_SLOT + INPUT},
      {USAGE, "output_tokens", P_SLOT + OUTPUT},
      {USAGE, "cache_read_input_tokens", P_SLOT + CACHE_READ},
      {USAGE, "cache_creation_input_tokens", P_SLOT + CACHE_CREATION},
      {PROMPT_DETAILS, "cached_tokens", P_SLOT + PROMPT_CACHED},
      {INPUT_DETAILS, "cached_tokens", P_SLOT + INPUT_CACHED},
  };
  r->pending = P_NONE;
  enum context where = r->depth <= 3 ? r->context[r->depth] : NOWHERE;
  if (where == NOWHERE || r->key_long) return;
  for (size_t i = 0; i < sizeof KEYS / sizeof *KEYS; i++) {
    if (KEYS[i].where != where || strlen(KEYS[i].key) != r->key_size || memcmp(KEYS[i].key, r->key, r->key_size))
      continue;
    r->pending = KEYS[i].pending;
    if (r->pending == P_USAGE) memset(r->present, 0, sizeof r->present);
    else if (r->pending == P_PROMPT_DETAILS) r->present[PROMPT_CACHED] = false;
    else if (r->pending == P_INPUT_DETAILS) r->present[INPUT_CACHED] = false;
    else r->present[r->pending - P_SLOT] = false;
    return;
  }
}

/* A value ended: what follows is `,` or a close, or nothing at the top. */
static void value_done(json_reader *r) {
  r->pending = P_NONE;
  r->state = r->depth ? J_AFTER : J_DONE;
}

static void open_container(json_reader *r, bool object) {
  if (++r->depth >= MAX_DEPTH) {
    r->state = J_ERROR;
    return;
  }
  set_object(r, r->depth, object);
  if (r->depth <= 3) {
    enum context context = NOWHERE;
    if (object && r->depth == 1) context = TOP;
    else if (object && r->pending == P_USAGE) context = USAGE;
    else if (object && r->pending == P_PROMPT_DETAILS) context = PROMPT_DETAILS;
    else if (object && r->pending == P_INPUT_DETAILS) context = INPUT_DETAILS;
    r->context[r->depth] = context;
  }
  r->pending = P_NONE;
  r->state = object ? J_KEY_OR_CLOSE : J_VALUE_OR_CLOSE;
}

static void number_done(json_reader *r) {
  if (r->pending >= P_SLOT && r->number_size < NUMBER_MAX) {
    r->number[r->number_size] = 0;
    r->present[r->pending - P_SLOT] = true;
    r->value[r->pending - P_SLOT] = strtod(r->number, NULL);
  }
  value_done(r);
}

/* The number grammar: 0 after `-`, 1 a leading 0, 2 integer digits, 3 after `.`, 4 fraction
 * digits, 5 after e/E, 6 after its sign, 7 exponent digits. Whether c continues the number. */
static bool number_step(json_reader *r, unsigned char c) {
  bool digit = c >= '0' && c <= '9';
  int s = r->number_state, next = -1;
  if (s == 0) next = c == '0' ? 1 : digit ? 2 : -1;
  else if (s == 1 || s == 2) next = (s == 2 && digit) ? 2 : c == '.' ? 3 : (c == 'e' || c == 'E') ? 5 : -1;
  else if (s == 3 || s == 4) next = digit ? 4 : (s == 4 && (c == 'e' || c == 'E')) ? 5 : -1;
  else if (s == 5) next = (c == '+' || c == '-') ? 6 : digit ? 7 : -1;
  else if (s == 6 || s == 7) next = digit ? 7 : -1;
  if (next < 0) return false;
  r->number_state = next;
  if (r->number_size < NUMBER_MAX) r->number[r->number_size++] = (char)c;
  return true;
}

static void key_char(json_reader *r, unsigned char c) {
  if (!r->string_is_key) return;
  if (r->key_size < KEY_MAX) r->key[r->key_size++] = (char)c;
  else r->key_long = true;
}

/* A value starts with c (state J_VALUE or J_VALUE_OR_CLOSE). */
static void value_start(json_reader *r, unsigned char c) {
  if (c == '{' || c == '[') {
    open_container(r, c == '{');
  } else if (c == '"') {
    r->string_is_key = false;
    r->state = J_STRING;
  } else if (c == '-' || (c >= '0' && c <= '9')) {
    r->number_size = 0;
    r->number_state = 0;
    r->state = J_NUMBER;
    if (c != '-') number_step(r, c);
    else r->number[r->number_size++] = '-';
  } else if (c == 't' || c == 'f' || c == 'n') {
    r->literal = c == 't' ? "true" : c == 'f' ? "false" : "null";
    r->literal_at = 1;
    r->state = J_LITERAL;
  } else {
    r->state = J_ERROR;
  }
}

static void close_container(json_reader *r, unsigned char c) {
  if ((c == '}') != in_object(r)) {
    r->state = J_ERROR;
    return;
  }
  r->depth--;
  value_done(r);
}

/* The lead byte of a UTF-8 character (>= 0x80): how many bytes follow, and the first one's range. */
static bool utf8_lead(json_reader *r, unsigned char c) {
  r->utf8_lo = 0x80, r->utf8_hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) r->utf8_left = 1;
  else if (c >= 0xE0 && c <= 0xEF) r->utf8_left = 2;
  else if (c >= 0xF0 && c <= 0xF4) r->utf8_left = 3;
  else return false;
  if (c == 0xE0) r->utf8_lo = 0xA0;
  else if (c == 0xED) r->utf8_hi = 0x9F;
  else if (c == 0xF0) r->utf8_lo = 0x90;
  else if (c == 0xF4) r->utf8_hi = 0x8F;
  return true;
}

static void json_byte(json_reader *r, unsigned char c) {
  switch (r->state) {
  case J_VALUE:
    if (!json_space(c)) value_start(r, c);
    return;
  case J_VALUE_OR_CLOSE:
    if (json_space(c)) return;
    if (c == ']') close_container(r, c);
    else value_start(r, c);
    return;
  case J_KEY_OR_CLOSE:
  case J_KEY:
    if (json_space(c)) return;
    if (c == '}' && r->state == J_KEY_OR_CLOSE) {
      close_container(r, c);
    } else if (c == '"') {
      r->string_is_key = true;
      r->key_size = 0;
      r->key_long = false;
      r->state = J_STRING;
    } else {
      r->state = J_ERROR;
    }
    return;
  case J_COLON:
    if (json_space(c)) return;
    r->state = c == ':' ? J_VALUE : J_ERROR;
    return;
  case J_AFTER:
    if (json_space(c)) return;
    if (c == ',') r->state = in_object(r) ? J_KEY : J_VALUE;
    else if (c == '}' || c == ']') close_container(r, c);
    else r->state = J_ERROR;
    return;
  case J_STRING:
    if (r->want_low_surrogate && c != '\\') {
      r->state = J_ERROR;
    } else if (c == '"') {
      if (r->string_is_key) {
        key_read(r);
        r->state = J_COLON;
      } else {
        value_done(r);
      }
    } else if (c == '\\') {
      r->state = J_ESCAPE;
    } else if (c < 0x20) {
      r->state = J_ERROR;
    } else if (c < 0x80) {
      key_char(r, c);
    } else if (utf8_lead(r, c)) {
      key_char(r, 0xFF); /* no key of ours holds one */
      r->state = J_UTF8;
    } else {
      r->state = J_ERROR;
    }
    return;
  case J_UTF8:
    if (c < r->utf8_lo || c > r->utf8_hi) {
      r->state = J_ERROR;
      return;
    }
    r->utf8_lo = 0x80, r->utf8_hi = 0xBF;
    if (--r->utf8_left == 0) r->state = J_STRING;
    return;
  case J_ESCAPE: {
    static const char simple[] = "\"\\/bfnrt", decoded[] = "\"\\/\b\f\n\r\t";
    const char *at = c ? strchr(simple, c) : NULL;
    if (r->want_low_surrogate && c != 'u') {
      r->state = J_ERROR;
    } else if (c == 'u') {
      r->hex_left = 4, r->hex_value = 0;
      r->state = J_HEX;
    } else if (at) {
      key_char(r, (unsigned char)decoded[at - simple]);
      r->state = J_STRING;
    } else {
      r->state = J_ERROR;
    }
    return;
  }
  case J_HEX: {
    int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (digit < 0) {
      r->state = J_ERROR;
      return;
    }
    r->hex_value = r->hex_value * 16 + (unsigned)digit;
    if (--r->hex_left) return;
    unsigned v = r->hex_value;
    bool high = v >= 0xD800 && v <= 0xDBFF, low = v >= 0xDC00 && v <= 0xDFFF;
    if (r->want_low_surrogate ? !low : low) { /* a surrogate pair, whole, or nothing */
      r->state = J_ERROR;
      return;
    }
    r->want_low_surrogate = high;
    if (!high && !low) key_char(r, v < 0x80 ? (unsigned char)v : 0xFF);
    r->state = J_STRING;
    return;
  }
  case J_NUMBER:
    if (number_step(r, c)) return;
    if (r->number_state == 0 || r->number_state == 3 || r->number_state == 5 || r->number_state == 6) {
      r->state = J_ERROR; /* a number cut short: `-`, `1.`, `1e`, `1e+` */
      return;
    }
    number_done(r);
    json_byte(r, c); /* the byte after the number is the structure's */
    return;
  case J_LITERAL:
    if (c != (unsigned char)r->literal[r->literal_at]) {
      r->state = J_ERROR;
      return;
    }
    if (r->literal[++r->literal_at] == 0) value_done(r);
    return;
  case J_DONE:
    if (!json_space(c)) r->state = J_ERROR;
    return;
  case J_ERROR:
    return;
  }
}

static void read_json(json_reader *r, const dm_envoy_buffer *pieces, size_t pieces_count) {
  for (size_t i = 0; i < pieces_count && r->state != J_ERROR; i++)
    for (size_t k = 0; k < pieces[i].length && r->state != J_ERROR; k++)
      json_byte(r, (unsigned char)pieces[i].ptr[k]);
}

/* The whole answer was read: json_to_metadata's rules, in its order, the last present winning. */
static void json_counts(usage *u) {
  json_reader *r = u->json;
  if (r->state == J_NUMBER && r->depth == 0 && r->number_state != 0 && r->number_state != 3 &&
      r->number_state != 5 && r->number_state != 6)
    r->state = J_DONE; /* a bare number at the top: valid, and no usage */
  if (r->state != J_DONE) return;
  static const struct { enum slot from; enum count to; } RULES[] = {
      {PROMPT, C_INPUT},         {COMPLETION, C_OUTPUT},      {PROMPT_CACHED, C_CACHED}, {INPUT, C_INPUT},
      {OUTPUT, C_OUTPUT},        {CACHE_READ, C_CACHED},      {INPUT_CACHED, C_CACHED},  {CACHE_CREATION, C_CACHE_WRITE},
  };
  for (size_t i = 0; i < sizeof RULES / sizeof *RULES; i++)
    if (r->present[RULES[i].from]) count(u, RULES[i].to, r->value[RULES[i].from]);
}

/* ------------------------------------------------------------------ the counts, written once */

static void write_counts(usage *u) {
  if (u->written) return;
  u->written = true;
  if (u->kind == JSON) json_counts(u);
  for (int c = 0; c < COUNTS; c++)
    if (u->present[c])
      envoy_dynamic_module_callback_http_set_dynamic_metadata_number(
          u->envoy, BUF("switchyard.usage"), SLICE(COUNT_NAMES[c], strlen(COUNT_NAMES[c])), u->value[c]);
  if (!u->present[C_INPUT]) return;
  double prompt = u->value[C_INPUT];
  dm_envoy_buffer upstream = {0};
  if (envoy_dynamic_module_callback_http_get_metadata_string(u->envoy, DM_METADATA_DYNAMIC, BUF("switchyard"),
                                                             BUF("upstream_api"), &upstream) &&
      equals(upstream, "anthropic"))
    prompt += (u->present[C_CACHED] ? u->value[C_CACHED] : 0) + (u->present[C_CACHE_WRITE] ? u->value[C_CACHE_WRITE] : 0);
  envoy_dynamic_module_callback_http_set_dynamic_metadata_number(u->envoy, BUF("switchyard.usage"),
                                                                 BUF("prompt_tokens"), prompt);
}

/* ------------------------------------------------------------------ Envoy's hooks */

DM_EXPORT const char *envoy_dynamic_module_on_program_init(void) { return DM_ABI_VERSION; }

/* A decimal count of bytes, whole (no sign, no spaces, at most 18 digits), or false. */
static bool byte_count(const char *text, size_t size, unsigned long long *out) {
  unsigned long long value = 0;
  if (size == 0 || size > 18) return false;
  for (size_t i = 0; i < size; i++) {
    if (text[i] < '0' || text[i] > '9') return false;
    value = value * 10 + (unsigned)(text[i] - '0');
  }
  *out = value;
  return true;
}

DM_EXPORT void *envoy_dynamic_module_on_http_filter_config_new(dm_config_envoy envoy_config, dm_envoy_buffer name,
                                                               dm_envoy_buffer text) {
  (void)envoy_config, (void)name;
  config *c = calloc(1, sizeof *c);
  if (c && !(text.ptr && byte_count(text.ptr, text.length, &c->buffer_limit) && c->buffer_limit > 0)) {
    free(c); /* refused: Envoy does not start with a configuration it cannot run */
    c = NULL;
  }
  return c;
}

DM_EXPORT void envoy_dynamic_module_on_http_filter_config_destroy(void *c) { free(c); }

DM_EXPORT void *envoy_dynamic_module_on_http_filter_new(void *c, dm_filter_envoy envoy) {
  usage *u = calloc(1, sizeof *u);
  if (u) u->envoy = envoy, u->config = c;
  return u;
}

DM_EXPORT int envoy_dynamic_module_on_http_filter_request_headers(dm_filter_envoy e, void *f, bool end) {
  (void)e, (void)f, (void)end;
  return DM_CONTINUE;
}

/* json_to_metadata's test: the media type, its parameters and surrounding spaces aside. */
static bool json_type(dm_envoy_buffer type) {
  static const char want[] = "application/json";
  const char *end = memchr(type.ptr, ';', type.length);
  size_t size = end ? (size_t)(end - type.ptr) : type.length, start = 0;
  while (start < size && type.ptr[start] == ' ') start++;
  while (size > start && type.ptr[size - 1] == ' ') size--;
  return size - start == sizeof want - 1 && memcmp(type.ptr + start, want, sizeof want - 1) == 0;
}

DM_EXPORT int envoy_dynamic_module_on_http_filter_response_headers(dm_filter_envoy envoy, void *filter, bool end) {
  usage *u = filter;
  if (end) return DM_CONTINUE;
  dm_envoy_buffer type = {0};
  if (!envoy_dynamic_module_callback_http_get_header(envoy, DM_RESPONSE_HEADERS, BUF("content-type"), &type, 0, NULL) ||
      !type.ptr)
    return DM_CONTINUE;
  if (memmem(type.ptr, type.length, "text/event-stream", 17)) u->kind = SSE; /* as the Lua tells */
  else if (json_type(type) && (u->json = calloc(1, sizeof *u->json))) u->kind = JSON;
  if (u->kind != JSON) return DM_CONTINUE;
  dm_envoy_buffer length = {0};
  unsigned long long declared = 0;
  u->held = !(envoy_dynamic_module_callback_http_get_header(envoy, DM_RESPONSE_HEADERS, BUF("content-length"), &length,
                                                            0, NULL) &&
              length.ptr && byte_count(length.ptr, length.length, &declared) && declared <= u->config->buffer_limit);
  return u->held ? DM_STOP_ITERATION : DM_CONTINUE; /* a held answer goes on whole */
}

DM_EXPORT int envoy_dynamic_module_on_http_filter_response_body(dm_filter_envoy envoy, void *filter, bool end) {
  usage *u = filter;
  if (u->kind == NONE || u->written) return DM_CONTINUE;
  dm_envoy_buffer one, *pieces = &one;
  size_t pieces_count = envoy_dynamic_module_callback_http_get_body_chunks_size(envoy, DM_RECEIVED_RESPONSE_BODY);
  if (pieces_count > 1 && !(pieces = malloc(pieces_count * sizeof *pieces))) {
    if (u->kind == JSON) u->json->state = J_ERROR; /* out of memory: this answer counts no tokens */
    pieces = &one, pieces_count = 0;
  }
  if (pieces_count && envoy_dynamic_module_callback_http_get_body_chunks(envoy, DM_RECEIVED_RESPONSE_BODY, pieces)) {
    if (u->kind == SSE) scan_stream(u, pieces, pieces_count);
    else read_json(u->json, pieces, pieces_count);
  }
  if (pieces != &one) free(pieces);
  if (end) write_counts(u);
  return u->held && !end ? DM_STOP_ITERATION_AND_BUFFER : DM_CONTINUE;
}

DM_EXPORT int envoy_dynamic_module_on_http_filter_response_trailers(dm_filter_envoy envoy, void *filter) {
  (void)envoy;
  write_counts(filter);
  return DM_CONTINUE;
}

/* An answer that did not end (reset, or cut by the stream guard, which ends it after this filter):
 * what it said so far counts, as the Lua's writes as it read did. */
DM_EXPORT void envoy_dynamic_module_on_http_filter_stream_complete(dm_filter_envoy envoy, void *filter) {
  (void)envoy;
  usage *u = filter;
  if (u->kind == JSON && !u->written) u->json->state = J_ERROR; /* not the whole JSON: no counts */
  write_counts(u);
}

DM_EXPORT void envoy_dynamic_module_on_http_filter_destroy(void *filter) {
  usage *u = filter;
  free(u->scan);
  free(u->json);
  free(u);
}

DM_EXPORT void envoy_dynamic_module_on_http_filter_scheduled(dm_filter_envoy e, void *f, uint64_t event) {
  (void)e, (void)f, (void)event;
}
