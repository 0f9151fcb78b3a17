/* Measurement probes for `make bench BENCH_ARGS="--fast-path-costs --governance limits"`: a
 * Proxy-Wasm module in the governance filter's place that does none of its work, to split what
 * the filter costs per request into the Wasm filter itself (built plain: every callback the
 * governance exports, each returning at once) and the host calls its work needs (built with
 * -DHOST_CALLS: the same reads and writes envoy/switchyard_governance.c makes far from every
 * limit — the settings' version, the flag header, the request's metadata twice, the six
 * x-ratelimit-* headers, the served model's header — with nothing computed from them). The
 * Makefile builds both (build/bench/governance_floor*.wasm) when the bench asks. Never a
 * configuration Switchyard offers: it admits everything. */
#include <stdlib.h>
#include <string.h>

#include "proxy_wasm_abi.h"

#define UNUSED(x) (void)(x)

#ifdef HOST_CALLS
static void read_and_free(const char *path, size_t size) {
  char *value = NULL;
  size_t value_size = 0;
  proxy_get_property(path, size, &value, &value_size);
  free(value);
}
#endif

PROXY_EXPORT(proxy_abi_version_0_2_1) void proxy_abi_version_0_2_1(void) {}
PROXY_EXPORT(proxy_on_memory_allocate) void *proxy_on_memory_allocate(size_t size) { return malloc(size); }
PROXY_EXPORT(proxy_on_context_create) void proxy_on_context_create(uint32_t context_id, uint32_t parent_id) {
  UNUSED(context_id), UNUSED(parent_id);
}
PROXY_EXPORT(proxy_on_vm_start) uint32_t proxy_on_vm_start(uint32_t root_id, size_t size) {
  UNUSED(root_id), UNUSED(size);
  return 1;
}
PROXY_EXPORT(proxy_on_configure) uint32_t proxy_on_configure(uint32_t root_id, size_t size) {
  UNUSED(root_id), UNUSED(size);
  return 1;
}

PROXY_EXPORT(proxy_on_request_headers)
uint32_t proxy_on_request_headers(uint32_t context_id, size_t headers, uint32_t end_of_stream) {
  UNUSED(context_id), UNUSED(headers), UNUSED(end_of_stream);
#ifdef HOST_CALLS
  static const char version[] = "xds\0virtual_host_metadata\0filter_metadata\0switchyard.governance\0version";
  read_and_free(version, sizeof version - 1);
  proxy_remove_header_map_value(PROXY_MAP_REQUEST_HEADERS, "x-switchyard-limited", 20);
  read_and_free("metadata", 8);
#endif
  return PROXY_CONTINUE;
}

PROXY_EXPORT(proxy_on_request_body) uint32_t proxy_on_request_body(uint32_t context_id, size_t size, uint32_t end) {
  UNUSED(context_id), UNUSED(size), UNUSED(end);
  return PROXY_CONTINUE;
}

PROXY_EXPORT(proxy_on_response_headers)
uint32_t proxy_on_response_headers(uint32_t context_id, size_t headers, uint32_t end_of_stream) {
  UNUSED(context_id), UNUSED(headers), UNUSED(end_of_stream);
#ifdef HOST_CALLS
  static const char *const names[] = {"x-ratelimit-limit-requests", "x-ratelimit-remaining-requests",
                                      "x-ratelimit-reset-requests", "x-ratelimit-limit-tokens",
                                      "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    proxy_add_header_map_value(PROXY_MAP_RESPONSE_HEADERS, names[i], strlen(names[i]), "1000", 4);
#endif
  return PROXY_CONTINUE;
}

PROXY_EXPORT(proxy_on_log) void proxy_on_log(uint32_t context_id) {
  UNUSED(context_id);
#ifdef HOST_CALLS
  read_and_free("metadata", 8);
  char *value = NULL;
  size_t size = 0;
  proxy_get_header_map_value(PROXY_MAP_RESPONSE_HEADERS, "x-switchyard-model", 18, &value, &size);
  free(value);
#endif
}

PROXY_EXPORT(proxy_on_delete) void proxy_on_delete(uint32_t context_id) { UNUSED(context_id); }
