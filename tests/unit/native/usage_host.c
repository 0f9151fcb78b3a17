/* A stand-in for Envoy's side of the dynamic-module ABI, just enough to drive
 * envoy/switchyard_usage.c from a test (tests/unit/test_usage_module.py): one answer's content
 * type, its chunks and the metadata the filter writes. */
#include <stdio.h>
#include <string.h>

#include "../../../envoy/dynamic_module_abi.h"

void *envoy_dynamic_module_on_http_filter_new(void *configuration, dm_filter_envoy envoy);
int envoy_dynamic_module_on_http_filter_response_headers(dm_filter_envoy envoy, void *filter, bool end);
int envoy_dynamic_module_on_http_filter_response_body(dm_filter_envoy envoy, void *filter, bool end);
int envoy_dynamic_module_on_http_filter_response_trailers(dm_filter_envoy envoy, void *filter);
void envoy_dynamic_module_on_http_filter_stream_complete(dm_filter_envoy envoy, void *filter);
void envoy_dynamic_module_on_http_filter_destroy(void *filter);
void *envoy_dynamic_module_on_http_filter_config_new(dm_config_envoy c, dm_envoy_buffer name, dm_envoy_buffer text);
void envoy_dynamic_module_on_http_filter_config_destroy(void *c);

static const char *content_type, *content_length, *upstream_api;
static dm_envoy_buffer pieces[3];
static size_t pieces_count;
static int statuses[64]; /* what the filter's hooks returned: the headers', then each chunk's */
static size_t statuses_count;
static char *written;
static size_t written_size, written_capacity;

bool envoy_dynamic_module_callback_http_get_header(dm_filter_envoy f, enum dm_header_type type, dm_module_buffer key,
                                                   dm_envoy_buffer *value, size_t index, size_t *count) {
  (void)f, (void)index, (void)count;
  const char *found = NULL;
  if (type == DM_RESPONSE_HEADERS && key.length == 12 && memcmp(key.ptr, "content-type", 12) == 0) found = content_type;
  if (type == DM_RESPONSE_HEADERS && key.length == 14 && memcmp(key.ptr, "content-length", 14) == 0) found = content_length;
  if (!found) return false;
  *value = (dm_envoy_buffer){found, strlen(found)};
  return true;
}
size_t envoy_dynamic_module_callback_http_get_body_chunks_size(dm_filter_envoy f, enum dm_body_type type) {
  (void)f;
  return type == DM_RECEIVED_RESPONSE_BODY ? pieces_count : 0;
}
bool envoy_dynamic_module_callback_http_get_body_chunks(dm_filter_envoy f, enum dm_body_type type, dm_envoy_buffer *out) {
  (void)f;
  if (type != DM_RECEIVED_RESPONSE_BODY) return false;
  memcpy(out, pieces, pieces_count * sizeof *out);
  return true;
}
bool envoy_dynamic_module_callback_http_get_metadata_string(dm_filter_envoy f, enum dm_metadata_source s,
                                                            dm_module_buffer ns, dm_module_buffer key, dm_envoy_buffer *value) {
  (void)f, (void)s;
  if (!upstream_api || ns.length != 10 || memcmp(ns.ptr, "switchyard", 10) || key.length != 12 ||
      memcmp(key.ptr, "upstream_api", 12)) return false;
  *value = (dm_envoy_buffer){upstream_api, strlen(upstream_api)};
  return true;
}
void envoy_dynamic_module_callback_http_set_dynamic_metadata_number(dm_filter_envoy f, dm_module_buffer ns,
                                                                    dm_module_buffer key, double value) {
  (void)f;
  char line[256];
  int n = snprintf(line, sizeof line, "%.*s:%.*s=%.17g\n", (int)ns.length, ns.ptr, (int)key.length, key.ptr, value);
  if (n > 0 && written_size + (size_t)n < written_capacity) {
    memcpy(written + written_size, line, (size_t)n);
    written_size += (size_t)n;
  }
}

/* One answer under a filter configured with `settings`: chunks (each cut into up to 3 pieces at `cuts`), then its end or, with `ended` false,
 * the stream's completion without one (a reset). What the filter wrote, a line per write. */
size_t answer(const char *settings, const char *type, const char *length, const char *api, const char *const *chunks,
              const size_t *sizes, const size_t *cuts, size_t count, bool ended, char *out, size_t out_capacity) {
  content_type = type, content_length = length, upstream_api = api;
  written = out, written_size = 0, written_capacity = out_capacity;
  static dm_envoy_buffer empty;
  void *config = envoy_dynamic_module_on_http_filter_config_new(NULL, empty, (dm_envoy_buffer){settings, strlen(settings)});
  if (!config) return (size_t)-1; /* refused */
  void *filter = envoy_dynamic_module_on_http_filter_new(config, (dm_filter_envoy)1);
  statuses_count = 0;
  statuses[statuses_count++] = envoy_dynamic_module_on_http_filter_response_headers((dm_filter_envoy)1, filter,
                                                                                  count == 0 && ended);
  for (size_t i = 0; i < count; i++) {
    size_t a = cuts[2 * i] < sizes[i] ? cuts[2 * i] : sizes[i], b = cuts[2 * i + 1] < sizes[i] ? cuts[2 * i + 1] : sizes[i];
    if (b < a) b = a;
    pieces_count = 0;
    if (a) pieces[pieces_count++] = (dm_envoy_buffer){chunks[i], a};
    if (b > a) pieces[pieces_count++] = (dm_envoy_buffer){chunks[i] + a, b - a};
    if (sizes[i] > b) pieces[pieces_count++] = (dm_envoy_buffer){chunks[i] + b, sizes[i] - b};
    int status = envoy_dynamic_module_on_http_filter_response_body((dm_filter_envoy)1, filter, ended && i + 1 == count);
    if (statuses_count < sizeof statuses / sizeof *statuses) statuses[statuses_count++] = status;
  }
  envoy_dynamic_module_on_http_filter_stream_complete((dm_filter_envoy)1, filter);
  envoy_dynamic_module_on_http_filter_destroy(filter);
  envoy_dynamic_module_on_http_filter_config_destroy(config);
  return written_size;
}

/* The statuses of the last answer's hooks, as many as fit in out. */
size_t last_statuses(int *out, size_t capacity) {
  size_t n = statuses_count < capacity ? statuses_count : capacity;
  memcpy(out, statuses, n * sizeof *out);
  return n;
}
