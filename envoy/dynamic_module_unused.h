/* The event hooks of Envoy's dynamic-module ABI (envoy/dynamic_module_abi.h) that Switchyard's
 * HTTP filters have no use for: Envoy resolves every hook by name when it loads a module, so each
 * module defines these as doing nothing. None makes callouts or opens streams of its own; one with a
 * per-route configuration defines DM_PER_ROUTE_CONFIG first, one that reads
 * request bodies DM_REQUEST_BODY (and DM_REQUEST_TRAILERS). Include once, in the module's own file. */
#ifndef SWITCHYARD_DYNAMIC_MODULE_UNUSED_H
#define SWITCHYARD_DYNAMIC_MODULE_UNUSED_H

#include "dynamic_module_abi.h"

#define DM_EXPORT __attribute__((visibility("default")))
#define DM_UNUSED_HOOK(name) \
  DM_EXPORT void envoy_dynamic_module_on_http_filter_##name(void) {}
DM_UNUSED_HOOK(http_callout_done)
DM_UNUSED_HOOK(http_stream_headers)
DM_UNUSED_HOOK(http_stream_data)
DM_UNUSED_HOOK(http_stream_trailers)
DM_UNUSED_HOOK(http_stream_complete)
DM_UNUSED_HOOK(http_stream_reset)
DM_UNUSED_HOOK(downstream_above_write_buffer_high_watermark)
DM_UNUSED_HOOK(downstream_below_write_buffer_low_watermark)
DM_UNUSED_HOOK(config_scheduled)
DM_UNUSED_HOOK(config_http_callout_done)
DM_UNUSED_HOOK(config_http_stream_headers)
DM_UNUSED_HOOK(config_http_stream_data)
DM_UNUSED_HOOK(config_http_stream_trailers)
DM_UNUSED_HOOK(config_http_stream_complete)
DM_UNUSED_HOOK(config_http_stream_reset)
#ifndef DM_PER_ROUTE_CONFIG /* a module with a per-route configuration defines these two */
DM_UNUSED_HOOK(per_route_config_destroy)
DM_EXPORT void *envoy_dynamic_module_on_http_filter_per_route_config_new(void) { return NULL; }
#endif
DM_EXPORT int envoy_dynamic_module_on_http_filter_local_reply(void) { return DM_CONTINUE; }
#ifndef DM_REQUEST_BODY /* a module that reads request bodies defines this one */
DM_EXPORT int envoy_dynamic_module_on_http_filter_request_body(dm_filter_envoy e, void *f, bool end) {
  (void)e, (void)f, (void)end;
  return DM_CONTINUE;
}
#endif
#ifndef DM_REQUEST_TRAILERS /* a module that reads request bodies to their end defines this one too */
DM_EXPORT int envoy_dynamic_module_on_http_filter_request_trailers(dm_filter_envoy e, void *f) {
  (void)e, (void)f;
  return DM_CONTINUE;
}
#endif

#endif
