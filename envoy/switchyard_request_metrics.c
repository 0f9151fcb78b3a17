/* Switchyard's request metrics as native code: an HTTP filter built as an Envoy dynamic module
 * (envoy/dynamic_module_abi.h) that counts what envoy/switchyard_metrics.c (the Proxy-Wasm part of
 * the extension) counts, with the same labels and meaning, under `switchyard up`
 * (filter/render/request_metrics.py). Wasm costs every request a context in the VM, a call per
 * callback and the metadata copied out of Envoy; here each is a plain function call
 * (make bench BENCH_ARGS=--fast-path-costs says what that buys). `switchyard render` keeps the
 * Wasm extension: another container's Envoy cannot load a file of ours.
 *
 * For every finished request (its stream_complete, after the usage filter's has written the
 * answer's token counts) it reads the status, the decision metadata (`switchyard`), the token
 * counts (`switchyard.usage`) and the model that finally served (`x-switchyard-model`), and
 * increments Envoy's labelled counters (Envoy's stat `dynamicmodulescustom.<name>`; its
 * /stats/prometheus shows `envoy_dynamicmodulescustom_<name>{labels}`, which filter/envoy_stats.py
 * turns into today's families):
 *
 *   switchyard_requests_total{client_api,provider,model,decision,route,status_class,client}
 *   switchyard_streams_cut_total{client_api,model}
 *   gen_ai_client_operation_duration_seconds_{bin,sum}{gen_ai_provider_name,gen_ai_request_model,error_type[,le]}
 *   gen_ai_server_time_to_first_token_seconds_{bin,sum}{gen_ai_provider_name,gen_ai_request_model[,le]}
 *   gen_ai_client_token_usage_{bin,sum}{gen_ai_provider_name,gen_ai_request_model,gen_ai_token_type[,le]}
 *   switchyard_cost_usd_total{client,provider,model} (nano-USD), where the virtual host gives the
 *     filter the model table's prices: when no key or model has a limit or a budget, and Envoy then
 *     does not build the governance's Wasm filter (which counts the cost otherwise);
 *
 * Histograms are exact, as the Wasm part keeps them: a counter per bucket (the observations that
 * fell in it, not cumulative) and one for the sum, in nanoseconds for durations.
 *
 * Timings: the virtual host adds two response headers from Envoy's own stream timings (from the
 * request's start to the first byte sent upstream; from there to the first byte received), which
 * this filter reads and removes before the client sees them. The upstream duration is from the
 * first byte sent to the last received: the first-byte timing plus the time from the answer's
 * headers to its end, measured here (Envoy does not give a stream's durations to a dynamic module
 * at stream_complete). An answer that never ended (cut, reset) counts until the stream completed,
 * with error_type `incomplete`.
 *
 * Label values come from the configuration (models, routes, client key names, fixed words) or
 * from Envoy (the status class), so the number of label sets is bounded by the configuration.
 *
 * Configuration (a string, rendered by filter/render/request_metrics.py from filter/metrics.py):
 *   duration_seconds <bound> <bound> ...
 *   tokens <bound> <bound> ...
 * Per route (the virtual host's, rendered by filter/render/request_metrics.py; it changes on a
 * reload): the prices, a line per model, as the governance reads them:
 *   price <model, percent-encoded> <USD per input token> <per output token> <per cached input token>
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DM_PER_ROUTE_CONFIG
#include "dynamic_module_unused.h"

#define BUF(s) ((dm_module_buffer){(s), sizeof(s) - 1})
#define MAX_BOUNDS 32
#define SERVED_MAX 512 /* a longer model name is none of ours */

/* ------------------------------------------------------------------ configuration */

typedef struct {
  int64_t bound[MAX_BOUNDS]; /* nanoseconds for durations, tokens for token counts */
  char label[MAX_BOUNDS][24];
  int count;
} buckets;

enum counter { REQUESTS, CUT, DURATION_BIN, DURATION_SUM, FIRST_BIN, FIRST_SUM, TOKENS_BIN, TOKENS_SUM, COST, COUNTERS };

typedef struct {
  buckets durations, tokens;
  size_t id[COUNTERS];
} config;

/* "0.025" → 25000000 (nanoseconds), exactly: decimal digits, no floating point. */
static bool parse_seconds(const char *text, size_t size, int64_t *out) {
  int64_t whole = 0, fraction = 0;
  int digits = 0;
  size_t i = 0;
  for (; i < size && text[i] >= '0' && text[i] <= '9'; i++) whole = whole * 10 + (text[i] - '0');
  if (i == 0 || whole > 1000000) return false;
  if (i < size && text[i] == '.') {
    for (i++; i < size && text[i] >= '0' && text[i] <= '9'; i++) {
      if (digits == 9) return false;
      fraction = fraction * 10 + (text[i] - '0');
      digits++;
    }
  }
  if (i != size) return false;
  for (; digits < 9; digits++) fraction *= 10;
  *out = whole * 1000000000LL + fraction;
  return true;
}

static bool parse_integer(const char *text, size_t size, int64_t *out) {
  int64_t value = 0;
  if (size == 0 || size > 18) return false;
  for (size_t i = 0; i < size; i++) {
    if (text[i] < '0' || text[i] > '9') return false;
    value = value * 10 + (text[i] - '0');
  }
  *out = value;
  return true;
}

/* Ascending bounds separated by spaces. */
static bool parse_bounds(const char *line, size_t size, buckets *into, bool seconds) {
  size_t i = 0;
  into->count = 0;
  while (i < size) {
    while (i < size && line[i] == ' ') i++;
    size_t start = i;
    while (i < size && line[i] != ' ') i++;
    if (i == start) break;
    int64_t value;
    size_t length = i - start;
    if (into->count == MAX_BOUNDS || length >= sizeof into->label[0]) return false;
    if (!(seconds ? parse_seconds(line + start, length, &value) : parse_integer(line + start, length, &value))) return false;
    if (into->count > 0 && value <= into->bound[into->count - 1]) return false;
    into->bound[into->count] = value;
    memcpy(into->label[into->count], line + start, length);
    into->label[into->count][length] = 0;
    into->count++;
  }
  return into->count > 0;
}

static bool configure(config *c, const char *text, size_t size) {
  static const char duration_key[] = "duration_seconds ", token_key[] = "tokens ";
  bool have_durations = false, have_tokens = false;
  size_t i = 0;
  while (i < size) {
    const char *newline = memchr(text + i, '\n', size - i);
    size_t end = newline ? (size_t)(newline - text) : size;
    const char *line = text + i;
    size_t length = end - i;
    if (length > sizeof duration_key - 1 && memcmp(line, duration_key, sizeof duration_key - 1) == 0) {
      have_durations = parse_bounds(line + sizeof duration_key - 1, length - (sizeof duration_key - 1), &c->durations, true);
    } else if (length > sizeof token_key - 1 && memcmp(line, token_key, sizeof token_key - 1) == 0) {
      have_tokens = parse_bounds(line + sizeof token_key - 1, length - (sizeof token_key - 1), &c->tokens, false);
    }
    i = end + 1;
  }
  return have_durations && have_tokens;
}

static bool define_counters(config *c, dm_config_envoy envoy) {
  dm_module_buffer requests[] = {BUF("client_api"), BUF("provider"), BUF("model"), BUF("decision"),
                                 BUF("route"), BUF("status_class"), BUF("client")};
  dm_module_buffer cut[] = {BUF("client_api"), BUF("model")};
  dm_module_buffer duration[] = {BUF("gen_ai_provider_name"), BUF("gen_ai_request_model"), BUF("error_type"), BUF("le")};
  dm_module_buffer first[] = {BUF("gen_ai_provider_name"), BUF("gen_ai_request_model"), BUF("le")};
  dm_module_buffer tokens[] = {BUF("gen_ai_provider_name"), BUF("gen_ai_request_model"), BUF("gen_ai_token_type"), BUF("le")};
  dm_module_buffer cost[] = {BUF("client"), BUF("provider"), BUF("model")};
  struct { dm_module_buffer name, *labels; size_t count; } wanted[COUNTERS] = {
      [REQUESTS] = {BUF("switchyard_requests_total"), requests, 7},
      [CUT] = {BUF("switchyard_streams_cut_total"), cut, 2},
      [DURATION_BIN] = {BUF("gen_ai_client_operation_duration_seconds_bin"), duration, 4},
      [DURATION_SUM] = {BUF("gen_ai_client_operation_duration_seconds_sum"), duration, 3},
      [FIRST_BIN] = {BUF("gen_ai_server_time_to_first_token_seconds_bin"), first, 3},
      [FIRST_SUM] = {BUF("gen_ai_server_time_to_first_token_seconds_sum"), first, 2},
      [TOKENS_BIN] = {BUF("gen_ai_client_token_usage_bin"), tokens, 4},
      [TOKENS_SUM] = {BUF("gen_ai_client_token_usage_sum"), tokens, 3},
      [COST] = {BUF("switchyard_cost_usd_total"), cost, 3},
  };
  for (int i = 0; i < COUNTERS; i++) {
    if (envoy_dynamic_module_callback_http_filter_config_define_counter(envoy, wanted[i].name, wanted[i].labels,
                                                                        wanted[i].count, &c->id[i]) != 0)
      return false;
  }
  return true;
}

/* ------------------------------------------------------------------ prices (per route) */

typedef struct {
  char *model;
  size_t size;
  double input, output, cached; /* USD per token */
} price;

typedef struct {
  price *items;
  size_t count;
} prices;

static int hex_value(char c) {
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* A percent-encoded word, decoded into a new string (its size in *size), or NULL. */
static char *decoded(const char *word, size_t length, size_t *size) {
  char *out = malloc(length + 1);
  size_t n = 0;
  for (size_t i = 0; out && i < length; i++) {
    int high, low;
    if (word[i] == '%' && i + 2 < length && (high = hex_value(word[i + 1])) >= 0 &&
        (low = hex_value(word[i + 2])) >= 0) {
      out[n++] = (char)(high * 16 + low);
      i += 2;
    } else {
      out[n++] = word[i];
    }
  }
  *size = n;
  return out;
}

/* A USD amount per token: a finite number, not negative. */
static bool amount(const char *word, size_t length, double *out) {
  char text[64];
  if (length == 0 || length >= sizeof text) return false;
  memcpy(text, word, length);
  text[length] = 0;
  char *end;
  *out = strtod(text, &end);
  return end == text + length && isfinite(*out) && *out >= 0;
}

/* `price <model> <input> <output> <cached>` lines; other lines are not ours, a bad one is left out. */
static prices *read_prices(const char *text, size_t size) {
  prices *p = calloc(1, sizeof *p);
  size_t i = 0;
  while (p && i < size) {
    const char *newline = memchr(text + i, '\n', size - i);
    size_t end = newline ? (size_t)(newline - text) : size;
    const char *words[6];
    size_t lengths[6], count = 0, at = i;
    while (at < end && count < 6) {
      while (at < end && text[at] == ' ') at++;
      size_t start = at;
      while (at < end && text[at] != ' ') at++;
      if (at > start) words[count] = text + start, lengths[count++] = at - start;
    }
    price item = {0};
    if (count == 5 && lengths[0] == 5 && memcmp(words[0], "price", 5) == 0 &&
        amount(words[2], lengths[2], &item.input) && amount(words[3], lengths[3], &item.output) &&
        amount(words[4], lengths[4], &item.cached) && (item.model = decoded(words[1], lengths[1], &item.size))) {
      price *grown = realloc(p->items, (p->count + 1) * sizeof *grown);
      if (grown) p->items = grown, p->items[p->count++] = item;
      else free(item.model);
    }
    i = end + 1;
  }
  return p;
}

static const price *find_price(const prices *p, dm_module_buffer model) {
  for (size_t i = 0; p && i < p->count; i++)
    if (p->items[i].size == model.length && memcmp(p->items[i].model, model.ptr, model.length) == 0) return &p->items[i];
  return NULL;
}

/* ------------------------------------------------------------------ per stream */

typedef struct {
  const config *config;
  bool have_sent, have_first, ended;
  int64_t first_ns;   /* from the first byte sent upstream to the first received (Envoy's) */
  int64_t headers_at; /* this filter's clock when the answer's headers passed, and its end */
  int64_t ended_at;
  size_t served_size;
  char served[SERVED_MAX];
} stream;

static int64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static dm_module_buffer view(dm_envoy_buffer b) { return (dm_module_buffer){b.ptr, b.ptr ? b.length : 0}; }

static bool same(dm_module_buffer a, dm_module_buffer b) {
  return a.length == b.length && (a.length == 0 || memcmp(a.ptr, b.ptr, a.length) == 0);
}

static bool is(dm_module_buffer a, const char *text) { return same(a, (dm_module_buffer){text, strlen(text)}); }

/* A response header's value as a whole number, removed either way: a provider's header of the
 * same name never reaches the client (the virtual host removes those before adding its own). */
static bool timing_header(dm_filter_envoy envoy, dm_module_buffer key, int64_t *out) {
  dm_envoy_buffer value = {0};
  bool found = envoy_dynamic_module_callback_http_get_header(envoy, DM_RESPONSE_HEADERS, key, &value, 0, NULL) &&
               value.ptr != NULL;
  bool ok = found && parse_integer(value.ptr, value.length, out);
  if (found) envoy_dynamic_module_callback_http_set_header(envoy, DM_RESPONSE_HEADERS, key, (dm_module_buffer){NULL, 0});
  return ok;
}

static void increment(dm_filter_envoy envoy, const config *c, enum counter which, dm_module_buffer *values,
                      size_t count, int64_t by) {
  if (by > 0) envoy_dynamic_module_callback_http_filter_increment_counter(envoy, c->id[which], values, count, (uint64_t)by);
}

/* One observation of an exact histogram: its bucket's counter and the sum's. `labels` has room
 * for one more value, the bucket's `le`. */
static void observe(dm_filter_envoy envoy, const config *c, enum counter bin, const buckets *in,
                    dm_module_buffer *labels, size_t count, int64_t value) {
  int bucket = 0;
  while (bucket < in->count && value > in->bound[bucket]) bucket++;
  const char *le = bucket < in->count ? in->label[bucket] : "+Inf";
  labels[count] = (dm_module_buffer){le, strlen(le)};
  increment(envoy, c, bin, labels, count + 1, 1);
  increment(envoy, c, bin + 1, labels, count, value);
}

static dm_module_buffer decision(dm_filter_envoy envoy, dm_module_buffer key) {
  dm_envoy_buffer value = {0};
  if (!envoy_dynamic_module_callback_http_get_metadata_string(envoy, DM_METADATA_DYNAMIC, BUF("switchyard"), key, &value))
    return (dm_module_buffer){"", 0};
  return view(value);
}

/* A `switchyard.usage` count: a whole number under 1e15, as the Wasm part reads it. */
static bool usage_count(dm_filter_envoy envoy, dm_module_buffer key, int64_t *out) {
  double number;
  if (!envoy_dynamic_module_callback_http_get_metadata_number(envoy, DM_METADATA_DYNAMIC, BUF("switchyard.usage"), key,
                                                              &number) ||
      !(number >= 0 && number < 1e15))
    return false;
  *out = (int64_t)number;
  return true;
}

typedef struct {
  bool any;
  int64_t prompt, output, cached; /* prompt: every prompt token */
} usage;

static usage read_usage(dm_filter_envoy envoy) {
  usage u = {0};
  int64_t cache_write = 0;
  u.any = usage_count(envoy, BUF("input_tokens"), &u.prompt);
  u.any |= usage_count(envoy, BUF("output_tokens"), &u.output);
  u.any |= usage_count(envoy, BUF("cached_tokens"), &u.cached);
  u.any |= usage_count(envoy, BUF("cache_write_tokens"), &cache_write);
  /* Anthropic's input_tokens leaves out cache reads and writes: count every prompt token. */
  if (is(decision(envoy, BUF("upstream_api")), "anthropic")) u.prompt += u.cached + cache_write;
  return u;
}

/* The answer's cost at the route's prices, as the governance counts it: under the entry's name
 * for a wildcard entry, under the model that served for a fallback. */
static void count_cost(dm_filter_envoy envoy, const config *c, const usage *u, dm_module_buffer requested,
                       dm_module_buffer label, dm_module_buffer served) {
  const prices *table = envoy_dynamic_module_callback_get_most_specific_route_config(envoy);
  if (table == NULL || !u->any) return;
  dm_module_buffer model = label.length > 0 ? label : requested;
  if (served.length > 0 && requested.length > 0 && !same(served, requested)) model = served;
  const price *p = find_price(table, model);
  if (p == NULL || model.length == 0) return;
  double prompt = (double)u->prompt, cached = u->cached < u->prompt ? (double)u->cached : prompt;
  double usd = (prompt - cached) * p->input + cached * p->cached + (double)u->output * p->output;
  const char *slash = memchr(model.ptr, '/', model.length);
  dm_module_buffer labels[] = {decision(envoy, BUF("client")),
                               {model.ptr, slash ? (size_t)(slash - model.ptr) : model.length}, model};
  if (usd > 0) increment(envoy, c, COST, labels, 3, llround(usd * 1e9));
}

static void count_stream(dm_filter_envoy envoy, stream *s) {
  const config *c = s->config;
  uint64_t status = 0;
  envoy_dynamic_module_callback_http_filter_get_attribute_int(envoy, DM_ATTRIBUTE_RESPONSE_CODE, &status);

  dm_module_buffer api = decision(envoy, BUF("api")), provider = decision(envoy, BUF("provider")),
                   model = decision(envoy, BUF("model")), kind = decision(envoy, BUF("decision"));
  dm_module_buffer served = {s->served, s->served_size}, label = decision(envoy, BUF("model_label"));
  usage u = read_usage(envoy);
  count_cost(envoy, c, &u, model, label, served);
  /* With failover the model that answered may be a fallback: the attempt's header says which. */
  if (model.length > 0 && served.length > 0 && !same(served, model)) {
    model = served;
    kind = BUF("fallback");
    const char *slash = memchr(served.ptr, '/', served.length);
    provider = (dm_module_buffer){served.ptr, slash ? (size_t)(slash - served.ptr) : served.length};
  } else if (label.length > 0) {
    model = label; /* a wildcard entry (openai/ + star) counts under its own name */
  }

  char status_class[4] = {(char)('0' + (status / 100) % 10), 'x', 'x', 0};
  dm_module_buffer requests[] = {api, provider, model, kind, decision(envoy, BUF("route")),
                                 {status_class, 3}, decision(envoy, BUF("client"))};
  increment(envoy, c, REQUESTS, requests, 7, 1);
  if (is(decision(envoy, BUF("stream_end")), "cut_timeout")) { /* an SSE answer ended at the listener timeout */
    dm_module_buffer cut[] = {api, model};
    increment(envoy, c, CUT, cut, 2, 1);
  }
  if (!s->have_sent || model.length == 0) return; /* no upstream answer: no upstream timings */

  int64_t operation_ns = (s->have_first ? s->first_ns : 0) + ((s->ended ? s->ended_at : now_ns()) - s->headers_at);
  if (operation_ns < 0) operation_ns = 0;
  char error_type[16] = "";
  if (status >= 400) {
    int length = 0;
    for (uint64_t v = status; v > 0 && length < 6; v /= 10) length++;
    for (uint64_t v = status, i = (uint64_t)length; i > 0; v /= 10, i--) error_type[i - 1] = (char)('0' + v % 10);
    error_type[length] = 0;
  } else if (!s->ended) {
    strcpy(error_type, "incomplete");
  }
  dm_module_buffer labels[4] = {provider, model, {error_type, strlen(error_type)}};
  observe(envoy, c, DURATION_BIN, &c->durations, labels, 3, operation_ns);
  if (status >= 400) return;
  if (s->have_first) observe(envoy, c, FIRST_BIN, &c->durations, labels, 2, s->first_ns);
  if (!u.any) return;
  const char *types[3] = {"input", "output", "cached_input"};
  int64_t counts[3] = {u.prompt, u.output, u.cached};
  for (int i = 0; i < 3; i++) {
    labels[2] = (dm_module_buffer){types[i], strlen(types[i])};
    observe(envoy, c, TOKENS_BIN, &c->tokens, labels, 3, counts[i]);
  }
}

/* ------------------------------------------------------------------ Envoy's hooks */

DM_EXPORT const char *envoy_dynamic_module_on_program_init(void) { return DM_ABI_VERSION; }

DM_EXPORT void *envoy_dynamic_module_on_http_filter_config_new(dm_config_envoy envoy_config, dm_envoy_buffer name,
                                                               dm_envoy_buffer text) {
  (void)name;
  config *c = calloc(1, sizeof *c);
  if (c && !(text.ptr && configure(c, text.ptr, text.length) && define_counters(c, envoy_config))) {
    free(c); /* refused: Envoy does not start with a configuration it cannot run */
    c = NULL;
  }
  return c;
}

DM_EXPORT void envoy_dynamic_module_on_http_filter_config_destroy(void *c) { free(c); }

DM_EXPORT void *envoy_dynamic_module_on_http_filter_per_route_config_new(dm_envoy_buffer name, dm_envoy_buffer text) {
  (void)name;
  return read_prices(text.ptr ? text.ptr : "", text.ptr ? text.length : 0);
}

DM_EXPORT void envoy_dynamic_module_on_http_filter_per_route_config_destroy(void *configuration) {
  prices *p = configuration;
  for (size_t i = 0; p && i < p->count; i++) free(p->items[i].model);
  if (p) free(p->items);
  free(p);
}

DM_EXPORT void *envoy_dynamic_module_on_http_filter_new(void *c, dm_filter_envoy envoy) {
  (void)envoy;
  stream *s = malloc(sizeof *s);
  if (s) memset(s, 0, offsetof(stream, served)), s->config = c;
  return s;
}

DM_EXPORT int envoy_dynamic_module_on_http_filter_request_headers(dm_filter_envoy e, void *f, bool end) {
  (void)e, (void)f, (void)end;
  return DM_CONTINUE;
}

DM_EXPORT int envoy_dynamic_module_on_http_filter_response_headers(dm_filter_envoy envoy, void *filter, bool end) {
  stream *s = filter;
  s->headers_at = now_ns();
  int64_t sent;
  s->have_sent = timing_header(envoy, BUF("x-switchyard-t-sent"), &sent);
  s->have_first = timing_header(envoy, BUF("x-switchyard-t-first"), &s->first_ns);
  dm_envoy_buffer served = {0};
  if (envoy_dynamic_module_callback_http_get_header(envoy, DM_RESPONSE_HEADERS, BUF("x-switchyard-model"), &served, 0,
                                                    NULL) &&
      served.ptr && served.length <= SERVED_MAX) {
    memcpy(s->served, served.ptr, served.length);
    s->served_size = served.length;
  }
  if (end) s->ended = true, s->ended_at = s->headers_at;
  return DM_CONTINUE;
}

DM_EXPORT int envoy_dynamic_module_on_http_filter_response_body(dm_filter_envoy envoy, void *filter, bool end) {
  (void)envoy;
  stream *s = filter;
  if (end && !s->ended) s->ended = true, s->ended_at = now_ns();
  return DM_CONTINUE;
}

DM_EXPORT int envoy_dynamic_module_on_http_filter_response_trailers(dm_filter_envoy envoy, void *filter) {
  (void)envoy;
  stream *s = filter;
  if (!s->ended) s->ended = true, s->ended_at = now_ns();
  return DM_CONTINUE;
}

DM_EXPORT void envoy_dynamic_module_on_http_filter_stream_complete(dm_filter_envoy envoy, void *filter) {
  count_stream(envoy, filter);
}

DM_EXPORT void envoy_dynamic_module_on_http_filter_destroy(void *filter) { free(filter); }

DM_EXPORT void envoy_dynamic_module_on_http_filter_scheduled(dm_filter_envoy e, void *f, uint64_t event) {
  (void)e, (void)f, (void)event;
}
