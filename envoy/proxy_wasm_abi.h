/* The few Proxy-Wasm ABI v0.2.1 host functions and types Switchyard's Envoy extensions use,
 * declared from the specification (github.com/proxy-wasm/spec, abi-versions/v0.2.1). Host
 * functions are imported from the "env" module; callbacks are exported by name. Every value the
 * host returns through a `char **` is allocated with proxy_on_memory_allocate (malloc here) and
 * belongs to the caller, which frees it. */
#ifndef SWITCHYARD_PROXY_WASM_ABI_H
#define SWITCHYARD_PROXY_WASM_ABI_H

#include <stddef.h>
#include <stdint.h>

#define PROXY_IMPORT(name) __attribute__((import_module("env"), import_name(#name)))
#ifdef SWITCHYARD_PART
/* Compiled as one part of envoy/switchyard_extension.c's module: its callbacks are renamed by the
 * build (proxy_on_log → <part>_proxy_on_log) and the module's dispatcher exports the real ones. */
#define PROXY_EXPORT(name)
#else
#define PROXY_EXPORT(name) __attribute__((export_name(#name)))
#endif

enum proxy_status { PROXY_OK = 0, PROXY_NOT_FOUND = 1, PROXY_BAD_ARGUMENT = 2, PROXY_CAS_MISMATCH = 8 };
enum proxy_action { PROXY_CONTINUE = 0, PROXY_PAUSE = 1 };
enum proxy_log_level { PROXY_LOG_TRACE, PROXY_LOG_DEBUG, PROXY_LOG_INFO, PROXY_LOG_WARN, PROXY_LOG_ERROR };
enum proxy_buffer_type { PROXY_BUFFER_GRPC_RECEIVE = 5, PROXY_BUFFER_PLUGIN_CONFIGURATION = 7 };
enum proxy_map_type { PROXY_MAP_REQUEST_HEADERS = 0, PROXY_MAP_RESPONSE_HEADERS = 2 };
enum proxy_stream_type { PROXY_STREAM_REQUEST = 0 };
enum proxy_metric_type { PROXY_METRIC_COUNTER = 0 };

PROXY_IMPORT(proxy_log) uint32_t proxy_log(uint32_t level, const char *message, size_t size);
PROXY_IMPORT(proxy_get_buffer_bytes)
uint32_t proxy_get_buffer_bytes(uint32_t buffer, size_t start, size_t max_size, char **data, size_t *size);
PROXY_IMPORT(proxy_get_property)
uint32_t proxy_get_property(const char *path, size_t path_size, char **value, size_t *value_size);
PROXY_IMPORT(proxy_get_header_map_value)
uint32_t proxy_get_header_map_value(uint32_t map, const char *key, size_t key_size, char **value, size_t *value_size);
PROXY_IMPORT(proxy_remove_header_map_value)
uint32_t proxy_remove_header_map_value(uint32_t map, const char *key, size_t key_size);
PROXY_IMPORT(proxy_define_metric)
uint32_t proxy_define_metric(uint32_t type, const char *name, size_t name_size, uint32_t *metric_id);
PROXY_IMPORT(proxy_increment_metric) uint32_t proxy_increment_metric(uint32_t metric_id, int64_t delta);
PROXY_IMPORT(proxy_set_tick_period_milliseconds) uint32_t proxy_set_tick_period_milliseconds(uint32_t period);

/* A property that is a protobuf message (the request's `metadata`, for one) comes serialized;
 * integers and durations as 8 little-endian bytes, as Wasm's memory is. */

/* Used by the governance extension (envoy/switchyard_governance.c). */
PROXY_IMPORT(proxy_get_current_time_nanoseconds) uint32_t proxy_get_current_time_nanoseconds(uint64_t *nanoseconds);
PROXY_IMPORT(proxy_get_shared_data)
uint32_t proxy_get_shared_data(const char *key, size_t key_size, char **value, size_t *value_size, uint32_t *cas);
PROXY_IMPORT(proxy_set_shared_data)
uint32_t proxy_set_shared_data(const char *key, size_t key_size, const char *value, size_t value_size, uint32_t cas);
PROXY_IMPORT(proxy_add_header_map_value)
uint32_t proxy_add_header_map_value(uint32_t map, const char *key, size_t key_size, const char *value, size_t value_size);
PROXY_IMPORT(proxy_send_local_response)
uint32_t proxy_send_local_response(uint32_t status, const char *details, size_t details_size, const char *body,
                                   size_t body_size, const char *headers, size_t headers_size, int32_t grpc_status);
PROXY_IMPORT(proxy_continue_stream) uint32_t proxy_continue_stream(uint32_t stream_type);
PROXY_IMPORT(proxy_set_effective_context) uint32_t proxy_set_effective_context(uint32_t context_id);
/* `service` is a cluster name (or a serialized GrpcService); the message bytes go out as they are. */
PROXY_IMPORT(proxy_grpc_call)
uint32_t proxy_grpc_call(const char *service, size_t service_size, const char *service_name, size_t service_name_size,
                         const char *method, size_t method_size, const char *initial_metadata, size_t metadata_size,
                         const char *message, size_t message_size, uint32_t timeout_ms, uint32_t *token);

/* Maps (a property holding a protobuf Struct, for one) are serialized as: a 32-bit count N, N
 * pairs of 32-bit (key size, value size), then each key and each value followed by a NUL byte.
 * Integers are little-endian, as Wasm's memory is. */

#endif
