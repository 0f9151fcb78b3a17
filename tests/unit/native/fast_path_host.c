/* A stand-in for Envoy's side of the dynamic-module ABI, enough to drive envoy/switchyard_fast_path.c
 * from a test (tests/unit/test_fast_path_parity.py) as Envoy would: request headers, a body in
 * chunks (buffered while the filter asks), trailers, routes matched by exact path (the query aside) and
 * exact header values — matched again after clear_route_cache, at the next look, as Envoy does —
 * each with its per-route configuration, the virtual host's under them, dynamic metadata, and the
 * local reply. Strings cross as NUL-free C strings except bodies, which carry their length. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../../envoy/dynamic_module_abi.h"

void *envoy_dynamic_module_on_http_filter_per_route_config_new(dm_envoy_buffer name, dm_envoy_buffer text);
void envoy_dynamic_module_on_http_filter_per_route_config_destroy(void *c);
void *envoy_dynamic_module_on_http_filter_new(void *configuration, dm_filter_envoy envoy);
int envoy_dynamic_module_on_http_filter_request_headers(dm_filter_envoy envoy, void *filter, bool end);
int envoy_dynamic_module_on_http_filter_request_body(dm_filter_envoy envoy, void *filter, bool end);
int envoy_dynamic_module_on_http_filter_request_trailers(dm_filter_envoy envoy, void *filter);
void envoy_dynamic_module_on_http_filter_destroy(void *filter);

enum { MAX_HEADERS = 32, MAX_ROUTES = 64, MAX_META = 32 };

typedef struct { char *ptr; size_t length; } bytes;

static bytes header_names[MAX_HEADERS], header_values[MAX_HEADERS];
static size_t header_count;

typedef struct {
  char *name, *path;
  char *match_names[4], *match_values[4];
  size_t match_count;
  void *config;
} route;
static route routes[MAX_ROUTES];
static size_t route_count;
static void *virtual_host;
static long matched = -1; /* the cached route: an index, -1 none */
static bool route_stale;

static bytes buffered, received;
static bytes meta_keys[MAX_META], meta_values[MAX_META];
static size_t meta_count;
static double started_ms;
static int reply_status;
static bytes reply_body;

static bytes dup(const char *p, size_t n) {
  bytes b = {malloc(n + 1), n};
  memcpy(b.ptr, p, n);
  b.ptr[n] = 0;
  return b;
}

static bool same(bytes a, const char *p, size_t n) { return a.length == n && !memcmp(a.ptr, p, n); }

static long find_header(const char *name, size_t n) {
  for (size_t i = 0; i < header_count; i++)
    if (same(header_names[i], name, n)) return (long)i;
  return -1;
}

static void match_route(void) {
  matched = -1;
  long at = find_header(":path", 5);
  if (at < 0) return;
  bytes path = header_values[at];
  const char *q = memchr(path.ptr, '?', path.length);
  size_t n = q ? (size_t)(q - path.ptr) : path.length;
  for (size_t r = 0; r < route_count; r++) {
    if (strlen(routes[r].path) != n || memcmp(routes[r].path, path.ptr, n)) continue;
    bool ok = true;
    for (size_t m = 0; ok && m < routes[r].match_count; m++) {
      long h = find_header(routes[r].match_names[m], strlen(routes[r].match_names[m]));
      ok = h >= 0 && same(header_values[h], routes[r].match_values[m], strlen(routes[r].match_values[m]));
    }
    if (ok) {
      matched = (long)r;
      return;
    }
  }
}

/* ---------------------------------------------------------------- the ABI, Envoy's side */

/* Repeated headers are kept apart, in order, as Envoy keeps them. */
bool envoy_dynamic_module_callback_http_get_header(dm_filter_envoy f, enum dm_header_type type, dm_module_buffer key,
                                                   dm_envoy_buffer *value, size_t index, size_t *count) {
  (void)f;
  size_t seen = 0;
  bool found = false;
  for (size_t i = 0; type == DM_REQUEST_HEADERS && i < header_count; i++) {
    if (!same(header_names[i], key.ptr, key.length)) continue;
    if (seen++ == index) *value = (dm_envoy_buffer){header_values[i].ptr, header_values[i].length}, found = true;
  }
  if (count) *count = seen;
  return found;
}

static void remove_all(const char *name, size_t n) {
  for (size_t i = 0; i < header_count;) {
    if (!same(header_names[i], name, n)) {
      i++;
      continue;
    }
    free(header_names[i].ptr), free(header_values[i].ptr);
    memmove(header_names + i, header_names + i + 1, (header_count - i - 1) * sizeof *header_names);
    memmove(header_values + i, header_values + i + 1, (header_count - i - 1) * sizeof *header_values);
    header_count--;
  }
}

/* A value replaces every value the header had; a null value removes them. */
bool envoy_dynamic_module_callback_http_set_header(dm_filter_envoy f, enum dm_header_type type, dm_module_buffer key,
                                                   dm_module_buffer value) {
  (void)f;
  if (type != DM_REQUEST_HEADERS) return false;
  remove_all(key.ptr, key.length);
  if (!value.ptr) return true;
  if (header_count == MAX_HEADERS) return false;
  header_names[header_count] = dup(key.ptr, key.length);
  header_values[header_count++] = dup(value.ptr, value.length);
  return true;
}

static bytes *body_of(enum dm_body_type type) {
  return type == DM_BUFFERED_REQUEST_BODY ? &buffered : type == DM_RECEIVED_REQUEST_BODY ? &received : NULL;
}

/* Each body as Envoy may hold it: in pieces (here up to ten, each of about the same size). */
enum { MAX_PIECES = 10 };
static size_t pieces(const bytes *b) { return !b || !b->length ? 0 : b->length < MAX_PIECES ? b->length : MAX_PIECES; }

size_t envoy_dynamic_module_callback_http_get_body_chunks_size(dm_filter_envoy f, enum dm_body_type type) {
  (void)f;
  return pieces(body_of(type));
}

bool envoy_dynamic_module_callback_http_get_body_chunks(dm_filter_envoy f, enum dm_body_type type,
                                                        dm_envoy_buffer *chunks) {
  (void)f;
  bytes *b = body_of(type);
  size_t n = pieces(b), at = 0;
  if (!n) return false;
  for (size_t i = 0; i < n; i++) {
    size_t size = b->length / n + (i < b->length % n);
    chunks[i] = (dm_envoy_buffer){b->ptr + at, size};
    at += size;
  }
  return true;
}

bool envoy_dynamic_module_callback_http_drain_body(dm_filter_envoy f, enum dm_body_type type, size_t size) {
  (void)f;
  bytes *b = body_of(type);
  if (!b || !b->ptr) return false;
  if (size > b->length) size = b->length;
  memmove(b->ptr, b->ptr + size, b->length - size);
  b->length -= size;
  return true;
}

bool envoy_dynamic_module_callback_http_append_body(dm_filter_envoy f, enum dm_body_type type, dm_module_buffer data) {
  (void)f;
  bytes *b = body_of(type);
  if (!b) return false;
  b->ptr = realloc(b->ptr, b->length + data.length + 1);
  memcpy(b->ptr + b->length, data.ptr, data.length);
  b->length += data.length;
  return true;
}

bool envoy_dynamic_module_callback_http_received_buffered_request_body(dm_filter_envoy f) {
  (void)f;
  return false;
}

void envoy_dynamic_module_callback_http_clear_route_cache(dm_filter_envoy f) {
  (void)f;
  route_stale = true;
}

const void *envoy_dynamic_module_callback_get_most_specific_route_config(dm_filter_envoy f) {
  (void)f;
  if (route_stale) match_route(), route_stale = false;
  return matched >= 0 && routes[matched].config ? routes[matched].config : virtual_host;
}

void envoy_dynamic_module_callback_http_set_dynamic_metadata_string(dm_filter_envoy f, dm_module_buffer ns,
                                                                    dm_module_buffer key, dm_module_buffer value) {
  (void)f, (void)ns;
  for (size_t i = 0; i < meta_count; i++)
    if (same(meta_keys[i], key.ptr, key.length)) {
      free(meta_values[i].ptr);
      meta_values[i] = dup(value.ptr, value.length);
      return;
    }
  if (meta_count == MAX_META) return;
  meta_keys[meta_count] = dup(key.ptr, key.length);
  meta_values[meta_count++] = dup(value.ptr, value.length);
}

void envoy_dynamic_module_callback_http_set_dynamic_metadata_number(dm_filter_envoy f, dm_module_buffer ns,
                                                                    dm_module_buffer key, double value) {
  (void)f, (void)ns;
  if (key.length == 10 && !memcmp(key.ptr, "started_ms", 10)) started_ms = value;
}

void envoy_dynamic_module_callback_http_send_response(dm_filter_envoy f, uint32_t status, dm_module_header *headers,
                                                      size_t count, dm_module_buffer body, dm_module_buffer details) {
  (void)f, (void)headers, (void)count, (void)details;
  reply_status = (int)status;
  reply_body = dup(body.ptr, body.length);
}

/* ---------------------------------------------------------------- the test's side */

static void clear(void) {
  for (size_t i = 0; i < header_count; i++) free(header_names[i].ptr), free(header_values[i].ptr);
  for (size_t i = 0; i < meta_count; i++) free(meta_keys[i].ptr), free(meta_values[i].ptr);
  free(buffered.ptr), free(received.ptr), free(reply_body.ptr);
  header_count = meta_count = 0;
  buffered = received = reply_body = (bytes){0};
  reply_status = 0, started_ms = 0, matched = -1, route_stale = false;
}

/* Routes in Envoy's order; `config` may be NULL (a route without the filter's configuration).
 * False when the module refuses a configuration, as Envoy would refuse the routes. */
bool add_route(const char *name, const char *path, const char **names, const char **values, size_t count,
               const char *config) {
  route *r = &routes[route_count];
  if (route_count == MAX_ROUTES || count > 4) return false;
  r->name = strdup(name), r->path = strdup(path), r->match_count = count, r->config = NULL;
  for (size_t i = 0; i < count; i++) r->match_names[i] = strdup(names[i]), r->match_values[i] = strdup(values[i]);
  if (config) {
    r->config = envoy_dynamic_module_on_http_filter_per_route_config_new((dm_envoy_buffer){"fast_path", 9},
                                                                        (dm_envoy_buffer){config, strlen(config)});
    if (!r->config) return false;
  }
  route_count++;
  return true;
}

bool set_virtual_host(const char *config) {
  if (virtual_host) envoy_dynamic_module_on_http_filter_per_route_config_destroy(virtual_host);
  virtual_host = envoy_dynamic_module_on_http_filter_per_route_config_new((dm_envoy_buffer){"fast_path", 9},
                                                                         (dm_envoy_buffer){config, strlen(config)});
  return virtual_host != NULL;
}

void reset_routes(void) {
  for (size_t r = 0; r < route_count; r++) {
    free(routes[r].name), free(routes[r].path);
    for (size_t i = 0; i < routes[r].match_count; i++) free(routes[r].match_names[i]), free(routes[r].match_values[i]);
    if (routes[r].config) envoy_dynamic_module_on_http_filter_per_route_config_destroy(routes[r].config);
  }
  route_count = 0;
}

typedef struct {
  int status;          /* the local reply's, 0 when the request went on */
  const char *route;   /* the route it went on by ("" none) */
  const char *body;    /* the body that went on, or the reply's */
  size_t body_length;
  const char *path;    /* the :path that went on */
  const char *model;   /* `model` metadata ("" none) */
  const char *client;  /* `client` metadata ("" none) */
  const char *traceparent;
  double started_ms;
} outcome;

static const char *meta(const char *key) {
  for (size_t i = 0; i < meta_count; i++)
    if (same(meta_keys[i], key, strlen(key))) return meta_values[i].ptr;
  return "";
}

static const char *header(const char *name) {
  long at = find_header(name, strlen(name));
  return at >= 0 ? header_values[at].ptr : "";
}

/* One request: headers as name, value pairs; its body sent in chunks of `chunk` bytes (0: one). */
outcome request(const char **names, const char **values, size_t count, const char *body, size_t length, size_t chunk,
                bool trailers) {
  clear();
  for (size_t i = 0; i < count && i < MAX_HEADERS; i++) {
    header_names[header_count] = dup(names[i], strlen(names[i]));
    header_values[header_count++] = dup(values[i], strlen(values[i]));
  }
  match_route(); /* Envoy matches the route before the filters run */
  int filter_state = 0;
  void *filter = envoy_dynamic_module_on_http_filter_new(&filter_state, (dm_filter_envoy)&filter_state);
  int status = envoy_dynamic_module_on_http_filter_request_headers((dm_filter_envoy)&filter_state, filter, length == 0);
  if (!reply_status) {
    size_t sent = 0;
    if (!chunk) chunk = length ? length : 1;
    while (sent < length) {
      size_t n = length - sent < chunk ? length - sent : chunk;
      free(received.ptr);
      received = dup(body + sent, n);
      sent += n;
      status = envoy_dynamic_module_on_http_filter_request_body((dm_filter_envoy)&filter_state, filter,
                                                                sent == length && !trailers);
      /* Envoy keeps a chunk the filter buffers (and sends the next); one it lets go, or the last,
       * goes on after what it kept: either way, in order, after the buffered body */
      buffered.ptr = realloc(buffered.ptr, buffered.length + received.length + 1);
      if (received.length) memcpy(buffered.ptr + buffered.length, received.ptr, received.length);
      buffered.length += received.length;
      received.length = 0;
      if (status != DM_CONTINUE && status != DM_STOP_ITERATION_AND_BUFFER) break;
    }
    if (trailers) envoy_dynamic_module_on_http_filter_request_trailers((dm_filter_envoy)&filter_state, filter);
  }
  envoy_dynamic_module_on_http_filter_destroy(filter);
  if (route_stale) match_route(), route_stale = false;
  outcome o = {reply_status, matched >= 0 ? routes[matched].name : "", reply_status ? reply_body.ptr : buffered.ptr,
               reply_status ? reply_body.length : buffered.length, header(":path"), meta("model"), meta("client"),
               header("traceparent"), started_ms};
  if (!o.body) o.body = "";
  return o;
}
