/* The fast path's stream guard, inside Envoy: an HTTP filter built as an Envoy dynamic module
 * (envoy/dynamic_module_abi.h), built by Envoy for the fast path's streams only (a choice of the
 * composite filter that builds ext_proc where needed, filter/render/fast_path.py).
 *
 * Envoy's route timeout resets an answer whose headers already went out: the client sees the
 * connection drop mid-event, with no terminal event. So, as filter/stream_guard.py does on the
 * filter path, this filter watches every SSE answer a fast-path stream gets: it passes each chunk
 * on as it arrives, holding back a partial event until its end arrives (so that the error it may
 * add always follows a whole event), and when the provider has not finished by the deadline (the
 * listener timeout from the request's start, less a margin), it adds the error event and the
 * terminal event of the client's API and ends the answer itself, marking it for the access log
 * and the metrics (`switchyard.stream_end: cut_timeout`).
 *
 * What the client gets is byte for byte what filter/stream_guard.py sends (the fast path serves
 * Chat Completions and Messages; Responses requests go through the filter):
 * - Chat Completions: `data: {"error": {...}}` then `data: [DONE]`;
 * - Messages: `event: error` with an `api_error`.
 *
 * The stream's token counts are read by envoy/switchyard_usage.c, which sees the answer before
 * this filter does (and so never the bytes a cut adds).
 *
 * Deadlines are kept by one timer thread per filter configuration, which posts a due stream's
 * cut to that stream's own worker thread (Envoy's scheduler); everything else runs on the worker.
 *
 * Configuration (a string, rendered by filter/render/stream_guard.py), one item per line:
 *   <listener timeout, seconds> <margin, seconds> <largest partial event held, bytes>
 *   <the error message, as a JSON string>
 */
#define _GNU_SOURCE
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dynamic_module_unused.h"

#define EXPORT DM_EXPORT
#define BUF(s) ((dm_module_buffer){(s), sizeof(s) - 1})
#define SLICE(p, n) ((dm_module_buffer){(p), (n)})

enum api { API_OTHER, API_CHAT, API_MESSAGES }; /* the fast path serves Chat Completions and Messages */

struct guard;

typedef struct {
  double timeout_s, margin_s;
  size_t hold_limit;
  char *message; /* the error message as a JSON string, quotes included */
  size_t message_size;
  /* The timer: guards waiting for their deadline, in no order (deadlines rarely come early). */
  pthread_mutex_t lock;
  pthread_cond_t wake;
  pthread_t thread;
  bool stopping;
  double next_wake; /* when the thread wakes next (INFINITY: when told) */
  struct guard *armed;
} config;

typedef struct { char *data; size_t size, capacity; } bytes;

typedef struct guard {
  config *config;
  dm_filter_envoy envoy;
  bool stream;   /* the request asked for a stream (the fast path's Lua flag) */
  bool active;   /* guarding this SSE answer */
  bool finished; /* the provider's terminal event went out: a cut then only ends the answer */
  bool ended;    /* the answer ended, by the provider or by this filter */
  enum api api;
  double deadline; /* monotonic seconds */
  dm_scheduler scheduler;
  struct guard *prev, *next;
  bool armed;
  bytes tail;    /* the partial event held back */
  bytes scratch; /* the chunk with the held tail before it */
} guard;

/* ------------------------------------------------------------------ small helpers */

static double monotonic(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)now.tv_sec + now.tv_nsec / 1e9;
}

static double wall(void) {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  return (double)now.tv_sec + now.tv_nsec / 1e9;
}

static bool reserve(bytes *b, size_t size) {
  if (size <= b->capacity) return true;
  size_t capacity = b->capacity ? b->capacity : 256;
  while (capacity < size) capacity *= 2;
  char *data = realloc(b->data, capacity);
  if (!data) return false;
  b->data = data;
  b->capacity = capacity;
  return true;
}

static bool append(bytes *b, const char *data, size_t size) {
  if (!reserve(b, b->size + size)) return false;
  memcpy(b->data + b->size, data, size);
  b->size += size;
  return true;
}

#define APPEND_LITERAL(b, s) append((b), (s), sizeof(s) - 1)

static bool equals(dm_envoy_buffer value, const char *text) {
  size_t size = strlen(text);
  return value.ptr && value.length == size && memcmp(value.ptr, text, size) == 0;
}

static dm_envoy_buffer header(guard *g, enum dm_header_type type, const char *name) {
  dm_envoy_buffer value = {0};
  if (!envoy_dynamic_module_callback_http_get_header(g->envoy, type, SLICE(name, strlen(name)), &value, 0, NULL))
    value.ptr = NULL, value.length = 0;
  return value;
}

/* ------------------------------------------------------------------ SSE */

/* Where the last whole event in data ends (after its blank line); 0 if none does. */
static size_t after_last_event(const char *data, size_t size) {
  for (size_t i = size; i >= 2; i--) {
    if (data[i - 1] != '\n') continue;
    if (data[i - 2] == '\n') return i;
    if (i >= 4 && data[i - 2] == '\r' && data[i - 3] == '\n' && data[i - 4] == '\r') return i;
  }
  return 0;
}

static bool line_is(const char *line, size_t size, const char *text) {
  size_t n = strlen(text);
  if (size && line[size - 1] == '\r') size--;
  return size == n && memcmp(line, text, n) == 0;
}

/* A line that ends an answer, in either API: after it, nothing is added. */
static bool terminal_line(const char *line, size_t size) {
  static const char *const ends[] = {"data: [DONE]", "data:[DONE]", "event: message_stop", "event:message_stop",
                                     "event: error", "event:error"};
  for (size_t i = 0; i < sizeof ends / sizeof *ends; i++)
    if (line_is(line, size, ends[i])) return true;
  return false;
}

static bool has_terminal(const char *data, size_t size) {
  for (size_t start = 0; start < size;) {
    const char *newline = memchr(data + start, '\n', size - start);
    size_t end = newline ? (size_t)(newline - data) : size;
    if (terminal_line(data + start, end - start)) return true;
    start = end + 1;
  }
  return false;
}

/* ------------------------------------------------------------------ the cut */

/* What ends the answer in the client's API, or nothing after the provider's own terminal event. */
static void cut_bytes(guard *g, bytes *out) {
  const config *c = g->config;
  if (g->finished) return;
  switch (g->api) {
  case API_CHAT:
    APPEND_LITERAL(out, "data: {\"error\":{\"message\":");
    append(out, c->message, c->message_size);
    APPEND_LITERAL(out, ",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\ndata: [DONE]\n\n");
    return;
  case API_MESSAGES:
    APPEND_LITERAL(out, "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":");
    append(out, c->message, c->message_size);
    APPEND_LITERAL(out, "}}\n\n");
    return;
  default:
    return;
  }
}

/* ------------------------------------------------------------------ the timer */

static void disarm(guard *g) {
  config *c = g->config;
  pthread_mutex_lock(&c->lock);
  if (g->armed) {
    if (g->prev) g->prev->next = g->next; else c->armed = g->next;
    if (g->next) g->next->prev = g->prev;
    g->armed = false;
  }
  pthread_mutex_unlock(&c->lock);
}

static void arm(guard *g) {
  config *c = g->config;
  pthread_mutex_lock(&c->lock);
  g->prev = NULL;
  g->next = c->armed;
  if (c->armed) c->armed->prev = g;
  c->armed = g;
  g->armed = true;
  if (g->deadline < c->next_wake) pthread_cond_signal(&c->wake);
  pthread_mutex_unlock(&c->lock);
}

static void *timer_main(void *argument) {
  config *c = argument;
  pthread_mutex_lock(&c->lock);
  while (!c->stopping) {
    double now = monotonic(), next = INFINITY;
    for (guard *g = c->armed, *following; g; g = following) {
      following = g->next;
      if (g->deadline <= now) { /* due: its cut runs on its own worker thread */
        if (g->prev) g->prev->next = g->next; else c->armed = g->next;
        if (g->next) g->next->prev = g->prev;
        g->armed = false;
        envoy_dynamic_module_callback_http_filter_scheduler_commit(g->scheduler, 1);
      } else if (g->deadline < next) {
        next = g->deadline;
      }
    }
    c->next_wake = next;
    if (isinf(next)) {
      pthread_cond_wait(&c->wake, &c->lock);
    } else {
      double whole = floor(next);
      struct timespec until = {(time_t)whole, (long)((next - whole) * 1e9)};
      pthread_cond_timedwait(&c->wake, &c->lock, &until);
    }
  }
  pthread_mutex_unlock(&c->lock);
  return NULL;
}

/* ------------------------------------------------------------------ Envoy's hooks */

EXPORT const char *envoy_dynamic_module_on_program_init(void) { return DM_ABI_VERSION; }

EXPORT void *envoy_dynamic_module_on_http_filter_config_new(dm_config_envoy envoy_config, dm_envoy_buffer name,
                                                            dm_envoy_buffer text) {
  (void)envoy_config, (void)name;
  char settings[128];
  const char *newline = text.ptr ? memchr(text.ptr, '\n', text.length) : NULL;
  if (!newline || (size_t)(newline - text.ptr) >= sizeof settings) return NULL;
  memcpy(settings, text.ptr, newline - text.ptr);
  settings[newline - text.ptr] = 0;
  config *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  unsigned long long hold = 0;
  size_t message_size = text.length - (newline + 1 - text.ptr);
  while (message_size && (newline[message_size] == '\n' || newline[message_size] == '\r')) message_size--;
  if (sscanf(settings, "%lf %lf %llu", &c->timeout_s, &c->margin_s, &hold) != 3 || !(c->timeout_s > 0) ||
      !(c->margin_s >= 0) || hold == 0 || message_size < 2 || newline[1] != '"' || !(c->message = malloc(message_size))) {
    free(c);
    return NULL;
  }
  memcpy(c->message, newline + 1, message_size);
  c->message_size = message_size;
  c->hold_limit = hold;
  c->next_wake = INFINITY;
  pthread_condattr_t attributes;
  pthread_condattr_init(&attributes);
  pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC);
  pthread_cond_init(&c->wake, &attributes);
  pthread_condattr_destroy(&attributes);
  pthread_mutex_init(&c->lock, NULL);
  if (pthread_create(&c->thread, NULL, timer_main, c) != 0) {
    free(c->message);
    free(c);
    return NULL;
  }
  return c;
}

EXPORT void envoy_dynamic_module_on_http_filter_config_destroy(void *configuration) {
  config *c = configuration;
  pthread_mutex_lock(&c->lock);
  c->stopping = true;
  pthread_cond_signal(&c->wake);
  pthread_mutex_unlock(&c->lock);
  pthread_join(c->thread, NULL);
  pthread_mutex_destroy(&c->lock);
  pthread_cond_destroy(&c->wake);
  free(c->message);
  free(c);
}

EXPORT void *envoy_dynamic_module_on_http_filter_new(void *configuration, dm_filter_envoy envoy) {
  guard *g = calloc(1, sizeof *g);
  if (!g) return NULL;
  g->config = configuration;
  g->envoy = envoy;
  return g;
}

EXPORT int envoy_dynamic_module_on_http_filter_request_headers(dm_filter_envoy envoy, void *filter, bool end) {
  (void)envoy, (void)end;
  guard *g = filter;
  g->stream = equals(header(g, DM_REQUEST_HEADERS, "x-switchyard-fast-stream"), "1");
  return DM_CONTINUE;
}

static enum api api_of(guard *g) {
  dm_envoy_buffer value = {0};
  if (!envoy_dynamic_module_callback_http_get_metadata_string(g->envoy, DM_METADATA_DYNAMIC, BUF("switchyard"),
                                                              BUF("api"), &value)) return API_OTHER;
  if (equals(value, "openai")) return API_CHAT;
  if (equals(value, "anthropic")) return API_MESSAGES;
  return API_OTHER;
}

/* A 2xx answer whose content type is text/event-stream (parameters aside). */
static bool event_stream(guard *g, dm_envoy_buffer type) {
  dm_envoy_buffer status = header(g, DM_RESPONSE_HEADERS, ":status");
  if (status.length != 3 || status.ptr[0] != '2') return false;
  static const char want[] = "text/event-stream";
  size_t i = 0;
  while (i < type.length && type.ptr[i] == ' ') i++;
  if (type.length - i < sizeof want - 1 || strncasecmp(type.ptr + i, want, sizeof want - 1) != 0) return false;
  for (i += sizeof want - 1; i < type.length && type.ptr[i] == ' '; i++) {}
  return i == type.length || type.ptr[i] == ';';
}

EXPORT int envoy_dynamic_module_on_http_filter_response_headers(dm_filter_envoy envoy, void *filter, bool end) {
  (void)envoy;
  guard *g = filter;
  if (!g->stream || end) return DM_CONTINUE;
  dm_envoy_buffer type = header(g, DM_RESPONSE_HEADERS, "content-type");
  if (!type.ptr || !event_stream(g, type) || (g->api = api_of(g)) == API_OTHER) return DM_CONTINUE;
  /* The deadline counts from the request's start (the Lua filter's wall clock); a start ahead of
   * now, or older than the timeout, means a clock was stepped: it then counts from now. */
  const config *c = g->config;
  double now = monotonic(), elapsed = 0, started_ms = 0;
  if (envoy_dynamic_module_callback_http_get_metadata_number(g->envoy, DM_METADATA_DYNAMIC, BUF("switchyard"),
                                                             BUF("started_ms"), &started_ms))
    elapsed = wall() - started_ms / 1000;
  if (!(elapsed >= 0 && elapsed < c->timeout_s)) elapsed = 0;
  g->deadline = now - elapsed + c->timeout_s - c->margin_s;
  g->scheduler = envoy_dynamic_module_callback_http_filter_scheduler_new(g->envoy);
  if (!g->scheduler) return DM_CONTINUE;
  g->active = true;
  arm(g);
  return DM_CONTINUE;
}

/* The received chunk as Envoy holds it: *pieces is `one` or an array the caller frees. */
static size_t received(guard *g, dm_envoy_buffer *one, dm_envoy_buffer **pieces) {
  size_t count = envoy_dynamic_module_callback_http_get_body_chunks_size(g->envoy, DM_RECEIVED_RESPONSE_BODY);
  *pieces = count <= 1 ? one : malloc(count * sizeof **pieces);
  if (!*pieces || (count && !envoy_dynamic_module_callback_http_get_body_chunks(g->envoy, DM_RECEIVED_RESPONSE_BODY,
                                                                                 *pieces))) {
    if (*pieces != one) free(*pieces);
    *pieces = one;
    return 0;
  }
  return count;
}

/* The chunk as one piece, the held tail first. */
static bool take_chunk(guard *g, const dm_envoy_buffer *pieces, size_t count, const char **data, size_t *size) {
  if (count == 1 && !g->tail.size) {
    *data = pieces[0].ptr, *size = pieces[0].length;
    return true;
  }
  g->scratch.size = 0;
  bool ok = append(&g->scratch, g->tail.data, g->tail.size);
  for (size_t i = 0; ok && i < count; i++) ok = append(&g->scratch, pieces[i].ptr, pieces[i].length);
  *data = g->scratch.data, *size = g->scratch.size;
  return ok;
}

EXPORT int envoy_dynamic_module_on_http_filter_response_body(dm_filter_envoy envoy, void *filter, bool end) {
  (void)envoy;
  guard *g = filter;
  if (g->ended || !g->active) return DM_CONTINUE; /* after the end: the guard's own cut */
  dm_envoy_buffer one, *pieces;
  size_t count = received(g, &one, &pieces);
  const char *data = NULL;
  size_t size = 0;
  bool held = g->tail.size > 0, taken = take_chunk(g, pieces, count, &data, &size);
  if (pieces != &one) free(pieces);
  if (!taken) { /* out of memory: stop guarding, let the answer flow */
    g->active = false;
    disarm(g);
    return DM_CONTINUE;
  }
  size_t ready = size;
  if (!end) {
    ready = after_last_event(data, size);
    if (!ready && size >= g->config->hold_limit) ready = size; /* too big to be an event worth holding */
  }
  if (ready && !g->finished) g->finished = has_terminal(data, ready);
  if (held || ready < size) { /* what goes on is not the chunk as it came: ready, and the rest is held */
    bytes rest = {0};
    if (ready < size && !append(&rest, data + ready, size - ready)) {
      g->active = false;
      disarm(g);
      return DM_CONTINUE;
    }
    if (data != g->scratch.data) { /* the chunk is Envoy's, and is about to be drained */
      g->scratch.size = 0;
      if (!append(&g->scratch, data, ready)) ready = 0;
      data = g->scratch.data;
    }
    envoy_dynamic_module_callback_http_drain_body(g->envoy, DM_RECEIVED_RESPONSE_BODY, (size_t)-1);
    if (ready) envoy_dynamic_module_callback_http_append_body(g->envoy, DM_RECEIVED_RESPONSE_BODY, SLICE(data, ready));
    free(g->tail.data);
    g->tail = rest;
  }
  if (end) {
    g->ended = true;
    disarm(g);
  }
  return DM_CONTINUE;
}

EXPORT int envoy_dynamic_module_on_http_filter_response_trailers(dm_filter_envoy envoy, void *filter) {
  (void)envoy;
  guard *g = filter;
  if (g->active && !g->ended) {
    g->ended = true; /* the provider's end, with trailers; what was held goes before them */
    disarm(g);
    if (g->tail.size)
      envoy_dynamic_module_callback_http_append_body(g->envoy, DM_BUFFERED_RESPONSE_BODY, SLICE(g->tail.data, g->tail.size));
    g->tail.size = 0;
  }
  return DM_CONTINUE;
}

EXPORT void envoy_dynamic_module_on_http_filter_scheduled(dm_filter_envoy envoy, void *filter, uint64_t event) {
  (void)envoy, (void)event;
  guard *g = filter;
  if (!g->active || g->ended) return;
  g->ended = true;
  g->tail.size = 0; /* the partial event held back is dropped: the error follows a whole event */
  bytes out = {0};
  cut_bytes(g, &out);
  envoy_dynamic_module_callback_http_set_dynamic_metadata_string(g->envoy, BUF("switchyard"), BUF("stream_end"),
                                                                 BUF("cut_timeout"));
  envoy_dynamic_module_callback_http_send_response_data(g->envoy, SLICE(out.data ? out.data : "", out.size), true);
  free(out.data);
}

EXPORT void envoy_dynamic_module_on_http_filter_stream_complete(dm_filter_envoy envoy, void *filter) {
  (void)envoy;
  disarm(filter);
}

EXPORT void envoy_dynamic_module_on_http_filter_destroy(void *filter) {
  guard *g = filter;
  disarm(g);
  if (g->scheduler) envoy_dynamic_module_callback_http_filter_scheduler_delete(g->scheduler);
  free(g->tail.data);
  free(g->scratch.data);
  free(g);
}

