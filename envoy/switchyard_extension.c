/* Switchyard's Envoy extension: the metrics (envoy/switchyard_metrics.c) and the governance
 * (envoy/switchyard_governance.c) in one Proxy-Wasm module, one HTTP filter. Envoy pays for every
 * Wasm filter on every request — a context in the VM, a call per callback, the metadata read
 * again — about as much as for the work itself (make bench BENCH_ARGS=--fast-path-costs), so
 * the default configuration runs one filter that calls both. Each part is compiled apart with its
 * callbacks renamed (`-DSWITCHYARD_PART -Dproxy_on_log=metrics_proxy_on_log`, see the Makefile);
 * this file exports the callbacks Envoy calls and hands each to the parts that define it, metrics
 * first (it removes Envoy's timing headers before anything else reads the answer).
 *
 * Where it sits: last before the router, as the metrics filter did; governance's request checks
 * need only the decision metadata, which the fast path or ext_proc set before it. With
 * gateway.usage_metrics off, the governance module runs alone (filter/render/bootstrap.py).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "proxy_wasm_abi.h"
#define EXPORT(name) PROXY_EXPORT(name)

#define BOTH_DECLARED(ret, name, ...) ret metrics_##name(__VA_ARGS__); ret governance_##name(__VA_ARGS__);
BOTH_DECLARED(void, proxy_on_context_create, uint32_t, uint32_t)
BOTH_DECLARED(uint32_t, proxy_on_vm_start, uint32_t, size_t)
BOTH_DECLARED(uint32_t, proxy_on_configure, uint32_t, size_t)
BOTH_DECLARED(void, proxy_on_tick, uint32_t)
BOTH_DECLARED(uint32_t, proxy_on_response_headers, uint32_t, size_t, uint32_t)
BOTH_DECLARED(void, proxy_on_log, uint32_t)
BOTH_DECLARED(void, proxy_on_delete, uint32_t)
uint32_t governance_proxy_on_request_headers(uint32_t, size_t, uint32_t);
uint32_t governance_proxy_on_request_body(uint32_t, size_t, uint32_t);
void governance_proxy_on_grpc_receive_initial_metadata(uint32_t, uint32_t, uint32_t);
void governance_proxy_on_grpc_receive_trailing_metadata(uint32_t, uint32_t, uint32_t);
void governance_proxy_on_grpc_receive(uint32_t, uint32_t, size_t);
void governance_proxy_on_grpc_close(uint32_t, uint32_t, uint32_t);

#define METRICS_TICK_MS 100 /* the metrics' flush period; governance syncs on every few ticks */

EXPORT(proxy_abi_version_0_2_1) void proxy_abi_version_0_2_1(void) {}
EXPORT(proxy_on_memory_allocate) void *proxy_on_memory_allocate(size_t size) { return malloc(size); }

EXPORT(proxy_on_context_create) void proxy_on_context_create(uint32_t context_id, uint32_t parent_id) {
  metrics_proxy_on_context_create(context_id, parent_id);
  governance_proxy_on_context_create(context_id, parent_id);
}

EXPORT(proxy_on_vm_start) uint32_t proxy_on_vm_start(uint32_t root_id, size_t size) {
  return metrics_proxy_on_vm_start(root_id, size) & governance_proxy_on_vm_start(root_id, size);
}

EXPORT(proxy_on_configure) uint32_t proxy_on_configure(uint32_t root_id, size_t size) {
  /* One configuration for both (each reads its own lines); each sets its timer, the faster wins. */
  uint32_t ok = governance_proxy_on_configure(root_id, size) & metrics_proxy_on_configure(root_id, size);
  proxy_set_tick_period_milliseconds(METRICS_TICK_MS);
  return ok;
}

EXPORT(proxy_on_tick) void proxy_on_tick(uint32_t root_id) {
  metrics_proxy_on_tick(root_id);
  governance_proxy_on_tick(root_id);
}

EXPORT(proxy_on_request_headers) uint32_t proxy_on_request_headers(uint32_t context_id, size_t headers, uint32_t end) {
  return governance_proxy_on_request_headers(context_id, headers, end);
}

EXPORT(proxy_on_request_body) uint32_t proxy_on_request_body(uint32_t context_id, size_t size, uint32_t end) {
  return governance_proxy_on_request_body(context_id, size, end);
}

EXPORT(proxy_on_response_headers) uint32_t proxy_on_response_headers(uint32_t context_id, size_t headers, uint32_t end) {
  uint32_t metrics = metrics_proxy_on_response_headers(context_id, headers, end);
  uint32_t governance = governance_proxy_on_response_headers(context_id, headers, end);
  return metrics | governance;
}

EXPORT(proxy_on_log) void proxy_on_log(uint32_t context_id) {
  metrics_proxy_on_log(context_id);
  governance_proxy_on_log(context_id);
}

EXPORT(proxy_on_delete) void proxy_on_delete(uint32_t context_id) {
  metrics_proxy_on_delete(context_id);
  governance_proxy_on_delete(context_id);
}

EXPORT(proxy_on_grpc_receive_initial_metadata)
void proxy_on_grpc_receive_initial_metadata(uint32_t context_id, uint32_t token, uint32_t headers) {
  governance_proxy_on_grpc_receive_initial_metadata(context_id, token, headers);
}

EXPORT(proxy_on_grpc_receive_trailing_metadata)
void proxy_on_grpc_receive_trailing_metadata(uint32_t context_id, uint32_t token, uint32_t trailers) {
  governance_proxy_on_grpc_receive_trailing_metadata(context_id, token, trailers);
}

EXPORT(proxy_on_grpc_receive) void proxy_on_grpc_receive(uint32_t context_id, uint32_t token, size_t size) {
  governance_proxy_on_grpc_receive(context_id, token, size);
}

EXPORT(proxy_on_grpc_close) void proxy_on_grpc_close(uint32_t context_id, uint32_t token, uint32_t status) {
  governance_proxy_on_grpc_close(context_id, token, status);
}
