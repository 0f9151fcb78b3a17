/* Switchyard's request metrics, computed inside Envoy: a Proxy-Wasm HTTP filter (ABI v0.2.1), run as
 * one part of envoy/switchyard_extension.c's module (built alone too, for its unit test).
 *
 * For every finished request it reads what Envoy knows — the status, the decision metadata the
 * fast path or the filter set (`switchyard`), the token counts Envoy read from the answer
 * (`switchyard.usage`), the model that finally served (`x-switchyard-model`), Envoy's upstream
 * timings — and counts it in Envoy counters. Histograms are kept exact: one counter per bucket
 * (the observations that fall in it, not cumulative) and one for the sum, in nanoseconds for
 * durations; Envoy's own histograms are approximate. The /metrics endpoint
 * (filter/envoy_stats.py) turns these counters into today's Prometheus families:
 *
 *   switchyard_requests_total{client_api,provider,model,decision,route,status_class,client}
 *   switchyard_streams_cut_total{client_api,model} (answers marked `stream_end: cut_timeout`)
 *   gen_ai_client_operation_duration_seconds{gen_ai_provider_name,gen_ai_request_model,error_type}
 *   gen_ai_server_time_to_first_token_seconds{gen_ai_provider_name,gen_ai_request_model}
 *   gen_ai_client_token_usage{gen_ai_provider_name,gen_ai_request_model,gen_ai_token_type}
 *
 * Counts are gathered in the module and added to Envoy's counters every 100 ms (a timer of the
 * plugin's root context on each Envoy worker thread): one host call per label set that moved.
 *
 * Stat names carry their labels as `;name=.=value;.;` (value percent-encoded outside a safe set),
 * so that the bootstrap's stats_tags turn them into labels and /metrics can read them back.
 *
 * Timings: the virtual host adds two internal response headers from Envoy's own stream timings
 * (first byte sent upstream, and from there to the first byte received), which this filter reads
 * and removes before the client sees them; the upstream duration is Envoy's `backend_latency`.
 *
 * Configuration (the plugin's configuration string, rendered by filter/render/bootstrap.py):
 *   duration_seconds <bound> <bound> ...
 *   tokens <bound> <bound> ...
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy_wasm_abi.h"
#include "wasm_support.h"

#define MAX_BOUNDS 32
#define MAX_NAME 1024

/* ------------------------------------------------------------------ bucket bounds */

typedef struct {
  int64_t bound[MAX_BOUNDS]; /* nanoseconds for durations, tokens for token counts */
  char label[MAX_BOUNDS][24];
  int count;
} buckets;

static buckets durations, tokens;

/* "0.025" → 25000000 (nanoseconds), exactly: decimal digits, no floating point. */
static bool parse_seconds(slice text, int64_t *out) {
  int64_t whole = 0, fraction = 0;
  int digits = 0;
  size_t i = 0;
  for (; i < text.size && text.data[i] >= '0' && text.data[i] <= '9'; i++) whole = whole * 10 + (text.data[i] - '0');
  if (i == 0 || whole > 1000000) return false;
  if (i < text.size && text.data[i] == '.') {
    for (i++; i < text.size && text.data[i] >= '0' && text.data[i] <= '9'; i++) {
      if (digits == 9) return false;
      fraction = fraction * 10 + (text.data[i] - '0');
      digits++;
    }
  }
  if (i != text.size) return false;
  for (; digits < 9; digits++) fraction *= 10;
  *out = whole * 1000000000LL + fraction;
  return true;
}

static bool parse_integer(slice text, int64_t *out) {
  int64_t value = 0;
  if (text.size == 0 || text.size > 18) return false;
  for (size_t i = 0; i < text.size; i++) {
    if (text.data[i] < '0' || text.data[i] > '9') return false;
    value = value * 10 + (text.data[i] - '0');
  }
  *out = value;
  return true;
}

/* One configuration line: a name, then ascending bounds separated by spaces. */
static bool parse_bounds(slice line, buckets *into, bool seconds) {
  size_t i = 0;
  into->count = 0;
  while (i < line.size) {
    while (i < line.size && line.data[i] == ' ') i++;
    size_t start = i;
    while (i < line.size && line.data[i] != ' ') i++;
    if (i == start) break;
    slice word = {line.data + start, i - start};
    int64_t value;
    if (into->count == MAX_BOUNDS || word.size >= sizeof into->label[0]) return false;
    if (!(seconds ? parse_seconds(word, &value) : parse_integer(word, &value))) return false;
    if (into->count > 0 && value <= into->bound[into->count - 1]) return false;
    into->bound[into->count] = value;
    memcpy(into->label[into->count], word.data, word.size);
    into->label[into->count][word.size] = 0;
    into->count++;
  }
  return into->count > 0;
}

static bool configure(slice config) {
  bool have_durations = false, have_tokens = false;
  size_t i = 0;
  while (i < config.size) {
    size_t end = i;
    while (end < config.size && config.data[end] != '\n') end++;
    slice line = {config.data + i, end - i};
    static const char duration_key[] = "duration_seconds ", token_key[] = "tokens ";
    if (line.size > sizeof duration_key - 1 && memcmp(line.data, duration_key, sizeof duration_key - 1) == 0) {
      slice rest = {line.data + sizeof duration_key - 1, line.size - (sizeof duration_key - 1)};
      have_durations = parse_bounds(rest, &durations, true);
    } else if (line.size > sizeof token_key - 1 && memcmp(line.data, token_key, sizeof token_key - 1) == 0) {
      slice rest = {line.data + sizeof token_key - 1, line.size - (sizeof token_key - 1)};
      have_tokens = parse_bounds(rest, &tokens, false);
    }
    i = end + 1;
  }
  return have_durations && have_tokens;
}

/* ------------------------------------------------------------------ stat names and their ids */

typedef struct {
  char text[MAX_NAME];
  size_t size;
  bool overflow;
} name_builder;

static void put(name_builder *b, const char *data, size_t size) {
  if (b->size + size >= MAX_NAME) {
    b->overflow = true;
    return;
  }
  memcpy(b->text + b->size, data, size);
  b->size += size;
}

static bool safe_byte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
         c == '.' || c == '/' || c == ':' || c == '@' || c == '+';
}

/* `;key=.=value;.;` with the value percent-encoded outside the safe bytes (never `;` or `=`). */
static void tag(name_builder *b, const char *key, slice value) {
  static const char hex[] = "0123456789ABCDEF";
  put(b, ";", 1);
  put(b, key, strlen(key));
  put(b, "=.=", 3);
  for (size_t i = 0; i < value.size; i++) {
    unsigned char c = (unsigned char)value.data[i];
    if (safe_byte(c)) {
      put(b, (const char *)&c, 1);
    } else {
      char escaped[3] = {'%', hex[c >> 4], hex[c & 15]};
      put(b, escaped, 3);
    }
  }
  put(b, ";.;", 3);
}

/* Metric ids by name, per VM (one per Envoy worker thread): Envoy's counter behind a name is
 * shared by all of them. Open addressing; the label sets are bounded by the configuration, and
 * past MAX_METRICS new names are dropped and counted rather than grown without bound. */
#define TABLE_SIZE 16384
#define MAX_METRICS 12288

typedef struct {
  uint32_t hash;
  uint32_t id;
  char *name;
  size_t size;
  int64_t pending;   /* counted here, not yet added to Envoy's counter */
  int32_t next_dirty; /* the next entry with a pending count, + 1 (0: none) */
  bool dirty;
} metric_entry;

static metric_entry table[TABLE_SIZE];
static int metric_count;
static uint32_t dropped_id;
static int64_t dropped_pending;
/* Entries with pending counts, as a list through next_dirty: each tick adds them to Envoy's
 * counters, one host call per label set that moved instead of one per observation. */
static int32_t first_dirty;
#define FLUSH_PERIOD_MS 100

static bool define(const char *name, size_t size, uint32_t *id) {
  return proxy_define_metric(PROXY_METRIC_COUNTER, name, size, id) == PROXY_OK;
}

static void count_dropped(void) { dropped_pending++; }

static void pend(metric_entry *e, int64_t delta) {
  e->pending += delta;
  if (!e->dirty) {
    e->dirty = true;
    e->next_dirty = first_dirty;
    first_dirty = (int32_t)(e - table) + 1;
  }
}

/* Adds every pending count to its Envoy counter. */
static void flush(void) {
  while (first_dirty != 0) {
    metric_entry *e = &table[first_dirty - 1];
    first_dirty = e->next_dirty;
    e->dirty = false;
    e->next_dirty = 0;
    if (e->pending > 0) proxy_increment_metric(e->id, e->pending);
    e->pending = 0;
  }
  if (dropped_pending > 0 && (dropped_id != 0 || define("switchyard_metrics_dropped_total",
                                                          strlen("switchyard_metrics_dropped_total"), &dropped_id))) {
    proxy_increment_metric(dropped_id, dropped_pending);
    dropped_pending = 0;
  }
}

static void add(const name_builder *b, int64_t delta) {
  if (delta <= 0) return; /* Envoy's counters only grow; a zero adds nothing */
  if (b->overflow) {
    count_dropped();
    return;
  }
  uint32_t hash = fnv1a(b->text, b->size);
  for (uint32_t i = hash & (TABLE_SIZE - 1);; i = (i + 1) & (TABLE_SIZE - 1)) {
    metric_entry *e = &table[i];
    if (e->hash == 0) {
      if (metric_count >= MAX_METRICS) {
        count_dropped();
        return;
      }
      char *copy = malloc(b->size);
      uint32_t id;
      if (copy == NULL || !define(b->text, b->size, &id)) {
        free(copy);
        return;
      }
      memcpy(copy, b->text, b->size);
      *e = (metric_entry){.hash = hash, .id = id, .name = copy, .size = b->size};
      metric_count++;
      pend(e, delta);
      return;
    }
    if (e->hash == hash && e->size == b->size && memcmp(e->name, b->text, b->size) == 0) {
      pend(e, delta);
      return;
    }
  }
}

/* One observation of an exact histogram: its bucket's counter and the sum's. */
static void observe(const char *family, const name_builder *labels, const buckets *in, int64_t value) {
  int bucket = 0;
  while (bucket < in->count && value > in->bound[bucket]) bucket++;
  name_builder b = {.size = 0, .overflow = false};
  put(&b, family, strlen(family));
  put(&b, "_bin", 4);
  put(&b, labels->text, labels->size);
  b.overflow |= labels->overflow;
  tag(&b, "le", slice_of(bucket < in->count ? in->label[bucket] : "+Inf"));
  add(&b, 1);
  b = (name_builder){.size = 0, .overflow = labels->overflow};
  put(&b, family, strlen(family));
  put(&b, "_sum", 4);
  put(&b, labels->text, labels->size);
  add(&b, value);
}

/* ------------------------------------------------------------------ host values */

static bool int64_of(slice value, int64_t *out) {
  if (value.size != 8) return false;
  memcpy(out, value.data, 8);
  return true;
}

static slice response_header(const char *key, char **owned) {
  char *value = NULL;
  size_t value_size = 0;
  *owned = NULL;
  if (proxy_get_header_map_value(PROXY_MAP_RESPONSE_HEADERS, key, strlen(key), &value, &value_size) != PROXY_OK ||
      value == NULL) {
    free(value);
    return (slice){NULL, 0};
  }
  *owned = value;
  return (slice){value, value_size};
}

/* ------------------------------------------------------------------ per-stream state */

#define SENT_HEADER "x-switchyard-t-sent"
#define FIRST_HEADER "x-switchyard-t-first"

typedef struct stream {
  uint32_t context_id;
  bool have_sent, have_first;
  int64_t sent_ns;  /* from the request's start to its first byte sent upstream */
  int64_t first_ns; /* from there to the first byte received */
  struct stream *next;
} stream;

#define STREAM_BUCKETS 1024
static stream *streams[STREAM_BUCKETS];

static stream **find_stream(uint32_t context_id) {
  stream **at = &streams[context_id & (STREAM_BUCKETS - 1)];
  while (*at != NULL && (*at)->context_id != context_id) at = &(*at)->next;
  return at;
}

static bool timing_header(const char *key, int64_t *out) {
  char *owned;
  slice value = response_header(key, &owned);
  bool found = value.data != NULL;
  bool ok = found && parse_integer(value, out);
  free(owned);
  if (found) proxy_remove_header_map_value(PROXY_MAP_RESPONSE_HEADERS, key, strlen(key));
  return ok;
}

/* ------------------------------------------------------------------ callbacks */

PROXY_EXPORT(proxy_abi_version_0_2_1) void proxy_abi_version_0_2_1(void) {}

PROXY_EXPORT(proxy_on_memory_allocate) void *proxy_on_memory_allocate(size_t size) { return malloc(size); }

PROXY_EXPORT(proxy_on_context_create) void proxy_on_context_create(uint32_t context_id, uint32_t parent_id) {
  (void)context_id;
  (void)parent_id;
}

PROXY_EXPORT(proxy_on_vm_start) uint32_t proxy_on_vm_start(uint32_t root_id, size_t size) {
  (void)root_id;
  (void)size;
  return 1;
}

PROXY_EXPORT(proxy_on_configure) uint32_t proxy_on_configure(uint32_t root_id, size_t size) {
  (void)root_id;
  char *config = NULL;
  size_t config_size = 0;
  if (proxy_get_buffer_bytes(PROXY_BUFFER_PLUGIN_CONFIGURATION, 0, size, &config, &config_size) != PROXY_OK) {
    return 0;
  }
  bool ok = configure((slice){config, config_size});
  free(config);
  proxy_set_tick_period_milliseconds(FLUSH_PERIOD_MS);
  if (!ok) {
    static const char message[] = "switchyard metrics: bad configuration (duration_seconds and tokens bounds)";
    proxy_log(PROXY_LOG_ERROR, message, sizeof message - 1);
  }
  return ok;
}

PROXY_EXPORT(proxy_on_tick) void proxy_on_tick(uint32_t root_id) {
  (void)root_id;
  flush();
}

PROXY_EXPORT(proxy_on_response_headers)
uint32_t proxy_on_response_headers(uint32_t context_id, size_t headers, uint32_t end_of_stream) {
  (void)headers;
  (void)end_of_stream;
  int64_t sent, first;
  bool have_sent = timing_header(SENT_HEADER, &sent);
  bool have_first = timing_header(FIRST_HEADER, &first);
  if (!have_sent && !have_first) return PROXY_CONTINUE;
  stream **at = find_stream(context_id);
  if (*at == NULL) {
    *at = calloc(1, sizeof(stream));
    if (*at == NULL) return PROXY_CONTINUE;
    (*at)->context_id = context_id;
  }
  (*at)->have_sent = have_sent;
  (*at)->sent_ns = sent;
  (*at)->have_first = have_first;
  (*at)->first_ns = first;
  return PROXY_CONTINUE;
}

static name_builder model_labels(slice provider, slice model) {
  name_builder b = {.size = 0, .overflow = false};
  tag(&b, "gen_ai_provider_name", provider);
  tag(&b, "gen_ai_request_model", model);
  return b;
}

PROXY_EXPORT(proxy_on_log) void proxy_on_log(uint32_t context_id) {
  char *code_owned;
  int64_t status = 0;
  int64_of(PROPERTY("response\0code", &code_owned), &status);
  free(code_owned);

  decision_fields d = {0};
  const log_reads *reads = read_at_log(context_id);
  slice metadata = reads->metadata_value;
  each_struct_field(namespace_of(metadata, "switchyard"), read_decision, &d);
  slice model = d.model, provider = d.provider, kind = d.decision;
  /* With failover the model that answered may be a fallback: the attempt's header says which. */
  slice served = reads->served_value;
  if (model.size > 0 && served.size > 0 && !(served.size == model.size && memcmp(served.data, model.data, model.size) == 0)) {
    model = served;
    kind = slice_of("fallback");
    size_t slash = 0;
    while (slash < served.size && served.data[slash] != '/') slash++;
    provider = (slice){served.data, slash};
  } else if (d.model_label.size > 0) {
    model = d.model_label; /* a wildcard entry (openai/ + star) counts under its own name */
  }

  char status_class[8] = {'0' + (char)((status / 100) % 10), 'x', 'x', 0};
  name_builder requests = {.size = 0, .overflow = false};
  put(&requests, "switchyard_requests_total", strlen("switchyard_requests_total"));
  tag(&requests, "client_api", d.api);
  tag(&requests, "provider", provider);
  tag(&requests, "model", model);
  tag(&requests, "decision", kind);
  tag(&requests, "route", d.route);
  tag(&requests, "status_class", slice_of(status_class));
  tag(&requests, "client", d.client);
  add(&requests, 1);
  if (slice_is(d.stream_end, "cut_timeout")) { /* an SSE answer the gateway ended at the listener timeout */
    name_builder cut = {.size = 0, .overflow = false};
    put(&cut, "switchyard_streams_cut_total", strlen("switchyard_streams_cut_total"));
    tag(&cut, "client_api", d.api);
    tag(&cut, "model", model);
    add(&cut, 1);
  }

  stream **at = find_stream(context_id);
  stream *timing = *at;
  if (timing != NULL && timing->have_sent && model.size > 0) {
    char *owned;
    int64_t operation_ns = 0, duration_ns = 0;
    bool finished = int64_of(PROPERTY("response\0backend_latency", &owned), &operation_ns);
    free(owned);
    if (!finished) { /* no last byte from upstream: the stream was cut, count until it ended */
      if (int64_of(PROPERTY("request\0duration", &owned), &duration_ns)) operation_ns = duration_ns - timing->sent_ns;
      free(owned);
    }
    if (operation_ns < 0) operation_ns = 0;

    char error_type[16] = "";
    if (status >= 400) {
      int length = 0;
      for (int64_t v = status; v > 0 && length < 6; v /= 10) length++;
      for (int64_t v = status, i = length - 1; i >= 0; v /= 10, i--) error_type[i] = (char)('0' + v % 10);
      error_type[length] = 0;
    } else if (!finished) {
      strcpy(error_type, "incomplete");
    }
    name_builder labels = model_labels(provider, model);
    name_builder with_error = labels;
    tag(&with_error, "error_type", slice_of(error_type));
    observe("gen_ai_client_operation_duration_seconds", &with_error, &durations, operation_ns);
    if (status < 400 && timing->have_first) {
      observe("gen_ai_server_time_to_first_token_seconds", &labels, &durations, timing->first_ns);
    }
    if (status < 400) {
      usage_fields u = {0};
      each_struct_field(namespace_of(metadata, "switchyard.usage"), read_usage, &u);
      if (u.any) {
        int64_t prompt = u.input;
        /* Anthropic's input_tokens leaves out cache reads and writes: count every prompt token. */
        if (slice_is(d.upstream_api, "anthropic")) prompt += u.cached + u.cache_write;
        const char *kinds[3] = {"input", "output", "cached_input"};
        int64_t counts[3] = {prompt, u.output, u.cached};
        for (int i = 0; i < 3; i++) {
          name_builder typed = labels;
          tag(&typed, "gen_ai_token_type", slice_of(kinds[i]));
          observe("gen_ai_client_token_usage", &typed, &tokens, counts[i]);
        }
      }
    }
  }
}

PROXY_EXPORT(proxy_on_delete) void proxy_on_delete(uint32_t context_id) {
  forget_log_reads(context_id);
  stream **at = find_stream(context_id);
  stream *gone = *at;
  if (gone != NULL) {
    *at = gone->next;
    free(gone);
  }
}
