/* The few parts of Envoy's dynamic-module ABI (the `envoy.filters.http.dynamic_modules` HTTP
 * filter, Envoy 1.40: ABI v0.2) that envoy/switchyard_stream_guard.c, switchyard_usage.c and
 * switchyard_request_metrics.c use,
 * declared from Envoy's documentation of that ABI. Envoy resolves the module's event hooks
 * (envoy_dynamic_module_on_*) by name when it loads the module; the callbacks (envoy_dynamic_module_callback_*) are Envoy's
 * own symbols, bound when the module is loaded. Buffers are passed as {pointer, length}. */
#ifndef SWITCHYARD_DYNAMIC_MODULE_ABI_H
#define SWITCHYARD_DYNAMIC_MODULE_ABI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DM_ABI_VERSION "v0.2.0"

typedef struct { const char *ptr; size_t length; } dm_envoy_buffer;  /* owned by Envoy */
typedef struct { const char *ptr; size_t length; } dm_module_buffer; /* owned by the module */
typedef void *dm_config_envoy;   /* Envoy's filter configuration */
typedef void *dm_filter_envoy;   /* Envoy's filter, one per HTTP stream */
typedef void *dm_scheduler;      /* posts an event to the filter's worker thread */

enum dm_header_type { DM_REQUEST_HEADERS = 0, DM_RESPONSE_HEADERS = 2 };
enum dm_body_type { DM_RECEIVED_REQUEST_BODY = 0, DM_BUFFERED_REQUEST_BODY = 1, DM_RECEIVED_RESPONSE_BODY = 2,
                    DM_BUFFERED_RESPONSE_BODY = 3 };
enum dm_metadata_source { DM_METADATA_DYNAMIC = 0 };
enum dm_status { DM_CONTINUE = 0 }; /* every on_* hook's "continue" */
/* Envoy's FilterHeadersStatus::StopIteration and FilterDataStatus::StopIterationAndBuffer: the
 * headers wait for the body, which Envoy buffers (within its buffer limit) until it goes on. */
enum { DM_STOP_ITERATION = 1, DM_STOP_ITERATION_AND_BUFFER = 1 };

/* Callbacks (Envoy's). */
bool envoy_dynamic_module_callback_http_get_header(dm_filter_envoy filter, enum dm_header_type type,
                                                   dm_module_buffer key, dm_envoy_buffer *value,
                                                   size_t index, size_t *count);
size_t envoy_dynamic_module_callback_http_get_body_chunks_size(dm_filter_envoy filter, enum dm_body_type type);
bool envoy_dynamic_module_callback_http_get_body_chunks(dm_filter_envoy filter, enum dm_body_type type,
                                                        dm_envoy_buffer *chunks);
bool envoy_dynamic_module_callback_http_drain_body(dm_filter_envoy filter, enum dm_body_type type, size_t size);
bool envoy_dynamic_module_callback_http_append_body(dm_filter_envoy filter, enum dm_body_type type,
                                                    dm_module_buffer data);
/* Data the filter itself adds to the response, as a filter that answers on its own does. */
void envoy_dynamic_module_callback_http_send_response_data(dm_filter_envoy filter, dm_module_buffer data,
                                                           bool end_stream);
bool envoy_dynamic_module_callback_http_get_metadata_string(dm_filter_envoy filter, enum dm_metadata_source source,
                                                            dm_module_buffer ns, dm_module_buffer key,
                                                            dm_envoy_buffer *value);
bool envoy_dynamic_module_callback_http_get_metadata_number(dm_filter_envoy filter, enum dm_metadata_source source,
                                                            dm_module_buffer ns, dm_module_buffer key,
                                                            double *value);
void envoy_dynamic_module_callback_http_set_dynamic_metadata_string(dm_filter_envoy filter, dm_module_buffer ns,
                                                                    dm_module_buffer key, dm_module_buffer value);
void envoy_dynamic_module_callback_http_set_dynamic_metadata_number(dm_filter_envoy filter, dm_module_buffer ns,
                                                                    dm_module_buffer key, double value);
/* Thread-safe: commit may be called from any thread; the event runs on the filter's worker
 * thread (envoy_dynamic_module_on_http_filter_scheduled), and not at all once the stream is gone. */
dm_scheduler envoy_dynamic_module_callback_http_filter_scheduler_new(dm_filter_envoy filter);
void envoy_dynamic_module_callback_http_filter_scheduler_commit(dm_scheduler scheduler, uint64_t event_id);
void envoy_dynamic_module_callback_http_filter_scheduler_delete(dm_scheduler scheduler);

/* A header set to a null value is removed. */
bool envoy_dynamic_module_callback_http_set_header(dm_filter_envoy filter, enum dm_header_type type,
                                                   dm_module_buffer key, dm_module_buffer value);
/* Attributes by Envoy's published enum (request.path = 0, ...); response.code is 15. */
enum { DM_ATTRIBUTE_RESPONSE_CODE = 15 };
bool envoy_dynamic_module_callback_http_filter_get_attribute_int(dm_filter_envoy filter, int id, uint64_t *value);
/* Labelled counters: defined with their label names when the configuration loads, incremented
 * per stream with one value per label (Envoy's stat `dynamicmodulescustom.<name>`). 0 = success. */
int envoy_dynamic_module_callback_http_filter_config_define_counter(dm_config_envoy config, dm_module_buffer name,
                                                                    dm_module_buffer *label_names, size_t count,
                                                                    size_t *id);
int envoy_dynamic_module_callback_http_filter_increment_counter(dm_filter_envoy filter, size_t id,
                                                                dm_module_buffer *label_values, size_t count,
                                                                uint64_t value);
/* The most specific per-route configuration (route, then virtual host) the module made of the
 * filter's `DynamicModuleFilterPerRoute` (envoy_dynamic_module_on_http_filter_per_route_config_new),
 * or NULL. */
const void *envoy_dynamic_module_callback_get_most_specific_route_config(dm_filter_envoy filter);

/* The route is matched again at the next look (the route's per-filter configuration included). */
void envoy_dynamic_module_callback_http_clear_route_cache(dm_filter_envoy filter);
/* Whether the request body just received is the one an earlier filter buffered (then the
 * buffered and the received body are one). */
bool envoy_dynamic_module_callback_http_received_buffered_request_body(dm_filter_envoy filter);
/* A local reply: Envoy's sendLocalReply (the bootstrap's local reply mappers see it). */
typedef struct { const char *key; size_t key_length; const char *value; size_t value_length; } dm_module_header;
void envoy_dynamic_module_callback_http_send_response(dm_filter_envoy filter, uint32_t status,
                                                      dm_module_header *headers, size_t count,
                                                      dm_module_buffer body, dm_module_buffer details);

#endif
