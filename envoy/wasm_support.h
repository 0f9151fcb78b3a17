/* What both Proxy-Wasm extensions (switchyard_metrics.c, switchyard_governance.c) need to read
 * what Envoy hands them: byte slices, properties, and the request's dynamic metadata as one
 * serialized protobuf message. Static inline, so an extension that uses less compiles without
 * unused-function warnings. */
#ifndef SWITCHYARD_WASM_SUPPORT_H
#define SWITCHYARD_WASM_SUPPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy_wasm_abi.h"

typedef struct {
  const char *data;
  size_t size;
} slice;

static inline slice slice_of(const char *text) { return (slice){text, strlen(text)}; }
static inline bool slice_is(slice s, const char *text) { return s.size == strlen(text) && memcmp(s.data, text, s.size) == 0; }

static inline uint32_t fnv1a(const char *data, size_t size) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < size; i++) h = (h ^ (unsigned char)data[i]) * 16777619u;
  return h ? h : 1;
}


/* A property's raw value (the caller frees `*owned`), or an empty slice. */
static inline slice property(const char *path, size_t size, char **owned) {
  char *value = NULL;
  size_t value_size = 0;
  *owned = NULL;
  if (proxy_get_property(path, size, &value, &value_size) != PROXY_OK || value == NULL) {
    free(value);
    return (slice){NULL, 0};
  }
  *owned = value;
  return (slice){value, value_size};
}

#define PROPERTY(literal, owned) property(literal, sizeof(literal) - 1, owned)

/* What a part reads in proxy_on_log that another reads too (the metadata, the header naming the
 * model that served), read once per stream: in the combined module the metrics and the governance
 * run one after the other on the same finished stream. Weak, so that every part that includes
 * this shares one; freed when the next stream's log reads it, or at the stream's proxy_on_delete. */
typedef struct {
  uint32_t context_id;
  bool held;
  char *metadata, *served;
  slice metadata_value, served_value;
} log_reads;

__attribute__((weak)) log_reads at_log;

static inline void forget_log_reads(uint32_t context_id) {
  if (!at_log.held || at_log.context_id != context_id) return;
  free(at_log.metadata);
  free(at_log.served);
  memset(&at_log, 0, sizeof at_log);
}

static inline const log_reads *read_at_log(uint32_t context_id) {
  if (at_log.held && at_log.context_id == context_id) return &at_log;
  forget_log_reads(at_log.context_id);
  at_log.context_id = context_id;
  at_log.held = true;
  at_log.metadata_value = PROPERTY("metadata", &at_log.metadata);
  char *value = NULL;
  size_t value_size = 0;
  static const char served[] = "x-switchyard-model";
  if (proxy_get_header_map_value(PROXY_MAP_RESPONSE_HEADERS, served, sizeof served - 1, &value, &value_size) == PROXY_OK &&
      value != NULL) {
    at_log.served = value;
    at_log.served_value = (slice){value, value_size};
  } else {
    free(value);
  }
  return &at_log;
}


/* The request's whole dynamic metadata comes as one serialized envoy.config.core.v3.Metadata
 * (one host call; reading the namespaces as maps costs Envoy several times more). A minimal
 * protobuf reader: Metadata{1: map<string, Struct> filter_metadata}, Struct{1: map<string,
 * Value> fields}, Value{2: double number_value, 3: string string_value} (map entries are
 * {1: key, 2: value}); everything else is skipped. */
static inline bool varint(slice *in, uint64_t *out) {
  uint64_t value = 0;
  for (int shift = 0; shift < 64 && in->size > 0; shift += 7) {
    unsigned char c = (unsigned char)in->data[0];
    in->data++, in->size--;
    value |= (uint64_t)(c & 0x7f) << shift;
    if (c < 0x80) {
      *out = value;
      return true;
    }
  }
  return false;
}

/* The next field of a message: its number, wire type and (for length-delimited) its bytes. */
static inline bool pb_field(slice *in, uint32_t *number, uint32_t *type, slice *bytes) {
  uint64_t tag, length;
  if (in->size == 0 || !varint(in, &tag)) return false;
  *number = (uint32_t)(tag >> 3), *type = (uint32_t)(tag & 7);
  switch (*type) {
    case 0: return varint(in, &length);
    case 1:
      if (in->size < 8) return false;
      *bytes = (slice){in->data, 8};
      in->data += 8, in->size -= 8;
      return true;
    case 2:
      if (!varint(in, &length) || length > in->size) return false;
      *bytes = (slice){in->data, (size_t)length};
      in->data += length, in->size -= length;
      return true;
    case 5:
      if (in->size < 4) return false;
      in->data += 4, in->size -= 4;
      return true;
    default: return false;
  }
}

/* A map entry {1: key, 2: value} (both length-delimited). */
static inline bool map_entry(slice entry, slice *key, slice *value) {
  uint32_t number, type;
  slice bytes = {0};
  *key = *value = (slice){NULL, 0};
  while (pb_field(&entry, &number, &type, &bytes)) {
    if (type == 2 && number == 1) *key = bytes;
    else if (type == 2 && number == 2) *value = bytes;
  }
  return key->data != NULL;
}

/* Calls `visit` with each field of a Struct: a string's bytes, or a number's 8 bytes. */
static inline void each_struct_field(slice fields, void (*visit)(slice key, slice value, void *into), void *into) {
  uint32_t number, type;
  slice entry;
  while (pb_field(&fields, &number, &type, &entry)) {
    slice key, value;
    if (number != 1 || type != 2 || !map_entry(entry, &key, &value)) continue;
    uint32_t value_number, value_type;
    slice bytes;
    while (pb_field(&value, &value_number, &value_type, &bytes)) {
      if ((value_number == 2 && value_type == 1) || (value_number == 3 && value_type == 2)) visit(key, bytes, into);
    }
  }
}

/* The Struct of one namespace of the request's metadata, or an empty slice. */
static inline slice namespace_of(slice metadata, const char *name) {
  uint32_t number, type;
  slice entry;
  while (pb_field(&metadata, &number, &type, &entry)) {
    slice key, value;
    if (number == 1 && type == 2 && map_entry(entry, &key, &value) && slice_is(key, name)) return value;
  }
  return (slice){NULL, 0};
}

/* The `switchyard` metadata's fields the extensions read (strings). */
typedef struct {
  slice api, provider, model, model_label, decision, route, upstream_api, client, stream_end;
} decision_fields;

static inline void read_decision(slice key, slice value, void *into) {
  decision_fields *d = into;
  if (slice_is(key, "api")) d->api = value;
  else if (slice_is(key, "provider")) d->provider = value;
  else if (slice_is(key, "model")) d->model = value;
  else if (slice_is(key, "model_label")) d->model_label = value;
  else if (slice_is(key, "decision")) d->decision = value;
  else if (slice_is(key, "route")) d->route = value;
  else if (slice_is(key, "upstream_api")) d->upstream_api = value;
  else if (slice_is(key, "client")) d->client = value;
  else if (slice_is(key, "stream_end")) d->stream_end = value;
}

typedef struct {
  bool any;
  int64_t input, output, cached, cache_write;
} usage_fields;

/* The `switchyard.usage` token counts: numbers in the metadata (a double's 8 bytes), whole, under 1e15. */
static inline void read_usage(slice key, slice value, void *into) {
  usage_fields *u = into;
  double number;
  if (value.size != 8) return;
  memcpy(&number, value.data, 8);
  if (!(number >= 0 && number < 1e15)) return;
  int64_t count = (int64_t)number;
  if (slice_is(key, "input_tokens")) u->input = count;
  else if (slice_is(key, "output_tokens")) u->output = count;
  else if (slice_is(key, "cached_tokens")) u->cached = count;
  else if (slice_is(key, "cache_write_tokens")) u->cache_write = count;
  else return;
  u->any = true;
}

#endif
