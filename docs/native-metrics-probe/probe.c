/* A probe, not part of the gateway: what Envoy 1.40's dynamic-module ABI gives a native metrics
 * filter (docs/native-metrics-probe/FINDINGS.md says how to build and run it, and what it showed).
 * Two instances: "A" writes metadata at stream_complete, "B" (later in the chain) reads it; both
 * define labelled counters, read every int attribute, and time 100,000 increments. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "dynamic_module_unused.h"
#define BUF(s) ((dm_module_buffer){(s), sizeof(s) - 1})
int envoy_dynamic_module_callback_http_filter_config_define_counter(dm_config_envoy, dm_module_buffer, dm_module_buffer *, size_t, size_t *);
int envoy_dynamic_module_callback_http_filter_increment_counter(dm_filter_envoy, size_t, dm_module_buffer *, size_t, uint64_t);
bool envoy_dynamic_module_callback_http_filter_get_attribute_int(dm_filter_envoy, int, uint64_t *);
typedef struct { int role; size_t c3, c7; } cfg;
typedef struct { dm_filter_envoy e; cfg *c; } flt;
DM_EXPORT const char *envoy_dynamic_module_on_program_init(void) { return DM_ABI_VERSION; }
DM_EXPORT void *envoy_dynamic_module_on_http_filter_config_new(dm_config_envoy ec, dm_envoy_buffer name, dm_envoy_buffer text) {
  (void)name; cfg *c = calloc(1, sizeof *c); c->role = text.length && text.ptr[0]=='B';
  dm_module_buffer l[7] = {BUF("model"),BUF("status_class"),BUF("error_type"),BUF("a"),BUF("b"),BUF("c"),BUF("d")};
  int r1 = envoy_dynamic_module_callback_http_filter_config_define_counter(ec, c->role?BUF("probe_b_total"):BUF("probe_total"), l, 3, &c->c3);
  int r2 = envoy_dynamic_module_callback_http_filter_config_define_counter(ec, c->role?BUF("probe7_b_total"):BUF("probe7_total"), l, 7, &c->c7);
  fprintf(stderr, "PROBE define role=%d r1=%d id=%zu r2=%d id=%zu\n", c->role, r1, c->c3, r2, c->c7);
  return c;
}
DM_EXPORT void envoy_dynamic_module_on_http_filter_config_destroy(void *c) { free(c); }
DM_EXPORT void *envoy_dynamic_module_on_http_filter_new(void *c, dm_filter_envoy e) { flt *f = calloc(1,sizeof *f); f->e=e; f->c=c; return f; }
DM_EXPORT int envoy_dynamic_module_on_http_filter_request_headers(dm_filter_envoy e, void *f, bool end) { (void)e,(void)f,(void)end; return 0; }
DM_EXPORT int envoy_dynamic_module_on_http_filter_response_headers(dm_filter_envoy e, void *f, bool end) { (void)e,(void)f,(void)end; return 0; }
DM_EXPORT int envoy_dynamic_module_on_http_filter_response_body(dm_filter_envoy e, void *f, bool end) { (void)e,(void)f,(void)end; return 0; }
DM_EXPORT int envoy_dynamic_module_on_http_filter_response_trailers(dm_filter_envoy e, void *f) { (void)e,(void)f; return 0; }
DM_EXPORT void envoy_dynamic_module_on_http_filter_scheduled(dm_filter_envoy e, void *f, uint64_t ev) { (void)e,(void)f,(void)ev; }
DM_EXPORT void envoy_dynamic_module_on_http_filter_destroy(void *f) { free(f); }
DM_EXPORT void envoy_dynamic_module_on_http_filter_stream_complete(dm_filter_envoy e, void *fp) {
  flt *f = fp;
  if (!f->c->role) envoy_dynamic_module_callback_http_set_dynamic_metadata_number(e, BUF("probe.ns"), BUF("k"), 42);
  else { double v = -1; bool ok = envoy_dynamic_module_callback_http_get_metadata_number(e, DM_METADATA_DYNAMIC, BUF("probe.ns"), BUF("k"), &v); fprintf(stderr, "PROBE B sees A's stream_complete metadata ok=%d v=%g\n", ok, v); }
  for (int id = 0; id < 40; id++) { uint64_t v = 0; bool ok = envoy_dynamic_module_callback_http_filter_get_attribute_int(e, id, &v); if (ok) fprintf(stderr, "PROBE role=%d attr %d = %llu\n", f->c->role, id, (unsigned long long)v); }
  dm_module_buffer v3[3] = {BUF("gpt-4.1.mini/x"), BUF("2xx"), BUF("")};
  int r = envoy_dynamic_module_callback_http_filter_increment_counter(e, f->c->c3, v3, 3, 1);
  dm_module_buffer v7[7] = {BUF("m.a/b"),BUF("2xx"),BUF(""),BUF("x"),BUF("y"),BUF("z"),BUF("w")};
  struct timespec t0, t1; clock_gettime(CLOCK_MONOTONIC, &t0);
  int n = 100000; for (int i = 0; i < n; i++) envoy_dynamic_module_callback_http_filter_increment_counter(e, f->c->c7, v7, 7, 1);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  fprintf(stderr, "PROBE role=%d inc r=%d; 7-label increment %.1f ns each\n", f->c->role, r, ((t1.tv_sec-t0.tv_sec)*1e9+(t1.tv_nsec-t0.tv_nsec))/n);
}
