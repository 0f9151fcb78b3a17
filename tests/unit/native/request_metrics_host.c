/* A stand-in for Envoy's side of the dynamic-module ABI, just enough to drive
 * envoy/switchyard_request_metrics.c from a test (tests/unit/test_request_metrics_module.py): one
 * finished request's status, metadata, response headers and clock, and the counters the filter
 * defines and increments. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../../../envoy/dynamic_module_abi.h"

void *envoy_dynamic_module_on_http_filter_new(void *configuration, dm_filter_envoy envoy);
int envoy_dynamic_module_on_http_filter_response_headers(dm_filter_envoy envoy, void *filter, bool end);
int envoy_dynamic_module_on_http_filter_response_body(dm_filter_envoy envoy, void *filter, bool end);
void envoy_dynamic_module_on_http_filter_stream_complete(dm_filter_envoy envoy, void *filter);
void envoy_dynamic_module_on_http_filter_destroy(void *filter);
void *envoy_dynamic_module_on_http_filter_config_new(dm_config_envoy c, dm_envoy_buffer name, dm_envoy_buffer text);
void *envoy_dynamic_module_on_http_filter_per_route_config_new(dm_envoy_buffer name, dm_envoy_buffer text);
void envoy_dynamic_module_on_http_filter_per_route_config_destroy(void *configuration);

#define MAX_ITEMS 32
typedef struct { const char *key, *value; } pair;
static pair headers[MAX_ITEMS], decision[MAX_ITEMS];
static size_t headers_count, decision_count;
static const char *usage_keys[MAX_ITEMS];
static double usage_values[MAX_ITEMS];
static size_t usage_count;
static uint64_t status;
static int64_t clock_ns;
static char *log_out; /* what the filter did: definitions and increments, a line each */
static size_t log_size, log_capacity;

/* The filter's clock, hidden so that the module's calls bind here rather than to libc's. */
__attribute__((visibility("hidden"))) int clock_gettime(clockid_t id, struct timespec *t) {
  (void)id;
  t->tv_sec = clock_ns / 1000000000LL;
  t->tv_nsec = clock_ns % 1000000000LL;
  return 0;
}

static bool key_is(dm_module_buffer key, const char *text) {
  return key.length == strlen(text) && memcmp(key.ptr, text, key.length) == 0;
}

/* Fields separated by \x1f, a line per call. */
static void say(const char *kind, size_t id, uint64_t value, const dm_module_buffer *items, size_t count) {
  char line[4096];
  int n = snprintf(line, sizeof line, "%s\x1f%zu\x1f%llu", kind, id, (unsigned long long)value);
  for (size_t i = 0; i < count && n > 0 && (size_t)n < sizeof line; i++)
    n += snprintf(line + n, sizeof line - (size_t)n, "\x1f%.*s", (int)items[i].length, items[i].ptr ? items[i].ptr : "");
  if (n > 0 && (size_t)n + 1 < sizeof line && log_size + (size_t)n + 1 < log_capacity) {
    memcpy(log_out + log_size, line, (size_t)n);
    log_size += (size_t)n;
    log_out[log_size++] = '\n';
  }
}

bool envoy_dynamic_module_callback_http_get_header(dm_filter_envoy f, enum dm_header_type type, dm_module_buffer key,
                                                   dm_envoy_buffer *value, size_t index, size_t *count) {
  (void)f, (void)index, (void)count;
  if (type != DM_RESPONSE_HEADERS) return false;
  for (size_t i = 0; i < headers_count; i++)
    if (headers[i].key && key_is(key, headers[i].key)) {
      *value = (dm_envoy_buffer){headers[i].value, strlen(headers[i].value)};
      return true;
    }
  return false;
}
bool envoy_dynamic_module_callback_http_set_header(dm_filter_envoy f, enum dm_header_type type, dm_module_buffer key,
                                                   dm_module_buffer value) {
  (void)f;
  if (type != DM_RESPONSE_HEADERS || value.ptr != NULL) return false; /* the filter only removes */
  for (size_t i = 0; i < headers_count; i++)
    if (headers[i].key && key_is(key, headers[i].key)) headers[i].key = NULL;
  return true;
}
bool envoy_dynamic_module_callback_http_get_metadata_string(dm_filter_envoy f, enum dm_metadata_source s,
                                                            dm_module_buffer ns, dm_module_buffer key, dm_envoy_buffer *value) {
  (void)f, (void)s;
  if (!key_is(ns, "switchyard")) return false;
  for (size_t i = 0; i < decision_count; i++)
    if (key_is(key, decision[i].key)) {
      *value = (dm_envoy_buffer){decision[i].value, strlen(decision[i].value)};
      return true;
    }
  return false;
}
bool envoy_dynamic_module_callback_http_get_metadata_number(dm_filter_envoy f, enum dm_metadata_source s,
                                                            dm_module_buffer ns, dm_module_buffer key, double *value) {
  (void)f, (void)s;
  if (!key_is(ns, "switchyard.usage")) return false;
  for (size_t i = 0; i < usage_count; i++)
    if (key_is(key, usage_keys[i])) {
      *value = usage_values[i];
      return true;
    }
  return false;
}
bool envoy_dynamic_module_callback_http_filter_get_attribute_int(dm_filter_envoy f, int id, uint64_t *value) {
  (void)f;
  if (id != DM_ATTRIBUTE_RESPONSE_CODE) return false;
  *value = status;
  return true;
}
int envoy_dynamic_module_callback_http_filter_config_define_counter(dm_config_envoy c, dm_module_buffer name,
                                                                    dm_module_buffer *labels, size_t count, size_t *id) {
  (void)c;
  static size_t next;
  *id = ++next;
  char named[256];
  snprintf(named, sizeof named, "define %.*s", (int)name.length, name.ptr);
  say(named, *id, 0, labels, count);
  return 0;
}
int envoy_dynamic_module_callback_http_filter_increment_counter(dm_filter_envoy f, size_t id, dm_module_buffer *values,
                                                                size_t count, uint64_t value) {
  (void)f;
  say("increment", id, value, values, count);
  return 0;
}

static void *route_configuration; /* the virtual host's, as the module made it, or NULL */
const void *envoy_dynamic_module_callback_get_most_specific_route_config(dm_filter_envoy f) {
  (void)f;
  return route_configuration;
}

/* The virtual host's per-filter configuration from now on (NULL: none). */
void set_route_configuration(const char *text) {
  if (route_configuration) envoy_dynamic_module_on_http_filter_per_route_config_destroy(route_configuration);
  static dm_envoy_buffer empty;
  route_configuration = text ? envoy_dynamic_module_on_http_filter_per_route_config_new(
                                   empty, (dm_envoy_buffer){text, strlen(text)})
                             : NULL;
}

/* The rest of the ABI the module links against; none is called here. */
size_t envoy_dynamic_module_callback_http_get_body_chunks_size(dm_filter_envoy f, enum dm_body_type t) { (void)f, (void)t; return 0; }

static void *configuration;

/* The filter's configuration; false if it refused the settings. */
bool configure(const char *settings, char *out, size_t capacity) {
  log_out = out, log_size = 0, log_capacity = capacity;
  static dm_envoy_buffer empty;
  configuration = envoy_dynamic_module_on_http_filter_config_new(NULL, empty, (dm_envoy_buffer){settings, strlen(settings)});
  if (log_size < capacity) out[log_size] = 0;
  return configuration != NULL;
}

/* One request that Envoy answered with `code`: its decision metadata and token counts, the
 * answer's headers (key, value, ...), then (if `finished`) its end `end_after` ns after the
 * headers, and the stream's completion `complete_after` ns after them. Returns what the filter
 * logged; `headers_out` receives the response headers the client would see, a line each. */
size_t request(uint64_t code, const char *const *meta, size_t meta_count, const char *const *keys, const double *values,
               size_t values_count, const char *const *answer, size_t answer_count, bool finished, int64_t end_after,
               int64_t complete_after, char *out, size_t capacity, char *headers_out, size_t headers_capacity) {
  status = code;
  decision_count = meta_count < MAX_ITEMS ? meta_count : MAX_ITEMS;
  for (size_t i = 0; i < decision_count; i++) decision[i] = (pair){meta[2 * i], meta[2 * i + 1]};
  usage_count = values_count < MAX_ITEMS ? values_count : MAX_ITEMS;
  for (size_t i = 0; i < usage_count; i++) usage_keys[i] = keys[i], usage_values[i] = values[i];
  headers_count = answer_count < MAX_ITEMS ? answer_count : MAX_ITEMS;
  for (size_t i = 0; i < headers_count; i++) headers[i] = (pair){answer[2 * i], answer[2 * i + 1]};
  log_out = out, log_size = 0, log_capacity = capacity;

  dm_filter_envoy envoy = (dm_filter_envoy)1;
  void *filter = envoy_dynamic_module_on_http_filter_new(configuration, envoy);
  clock_ns = 5000000000000LL;
  int64_t start = clock_ns;
  envoy_dynamic_module_on_http_filter_response_headers(envoy, filter, false);
  if (finished) {
    clock_ns = start + end_after;
    envoy_dynamic_module_on_http_filter_response_body(envoy, filter, true);
  }
  clock_ns = start + complete_after;
  envoy_dynamic_module_on_http_filter_stream_complete(envoy, filter);
  envoy_dynamic_module_on_http_filter_destroy(filter);

  size_t at = 0;
  for (size_t i = 0; i < headers_count; i++) {
    if (!headers[i].key) continue;
    int n = snprintf(headers_out + at, headers_capacity - at, "%s\n", headers[i].key);
    if (n < 0 || (size_t)n >= headers_capacity - at) break;
    at += (size_t)n;
  }
  if (at < headers_capacity) headers_out[at] = 0;
  return log_size;
}
