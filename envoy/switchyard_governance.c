/* Switchyard's governance inside Envoy: rate limits, budgets and cost, as a Proxy-Wasm HTTP filter
 * (ABI v0.2.1): by default one part of envoy/switchyard_extension.c's module, with the metrics, just
 * before the router; alone (gateway.usage_metrics off) right after ext_proc. Either way it comes
 * after ext_proc, so it sees every forwarded request with its decision already made — by the fast
 * path's Lua or by the Python filter — in the `switchyard` dynamic
 * metadata (`client`: the key's name, `model`: the model that serves, `api`: the client's API).
 *
 * Per request, from memory Envoy's worker threads share (Proxy-Wasm shared data):
 *   - a request is refused when what is certainly counted — the shared store's totals as of the
 *     last sync, or this Envoy's own count — already reaches a limit: rpm (requests admitted this
 *     minute, + this one), tpm (input + output tokens of the requests that ended this minute) or
 *     the key's budget (USD spent this day or month);
 *   - it is admitted on its own when every limit is comfortably far (more than a tenth of it, and
 *     more than MIN_MARGIN_REQUESTS requests, left);
 *   - otherwise (close to a limit, or the first request of an entity this minute) it is confirmed:
 *     the request pauses, one gRPC call asks a filter worker, which counts it in the shared store
 *     (Redis across replicas) and answers admit or refuse from the store's exact totals.
 * Far from every limit of a key or model (its headroom, shared among Envoy's threads, leaves each
 * thread more than LOCAL_MIN_* of it), each thread judges and counts from its own copy of the
 * shared record and adds what it counted to the shared one on its next tick (0.1 s): no shared
 * data on such a request (`local_view`). Near a limit every request reads and writes the shared
 * record, as above.
 * Every few hundred milliseconds one thread of each Envoy pushes what it counted alone to the
 * workers and pulls the totals back (`proxy_on_tick`). Counts of one minute are counted in that
 * minute's counter (fixed windows, as the peers count); budgets in UTC days or months.
 *
 * When the store (or every worker) cannot be reached: admitted on this Envoy's own counts and
 * counted as unchecked (fail open), or refused with 503 (gateway.limits.fail_closed).
 *
 * Also per request, at its end: the cost from the token counts Envoy read from the answer
 * (`switchyard.usage`) and the model table's prices, counted in the Envoy counter
 * `switchyard_cost_usd_total{client,provider,model}` (nano-USD; /metrics shows USD).
 *
 * Configuration: the plugin's (static: the workers' cluster, sync period, call timeout) and the
 * virtual host's metadata `switchyard.governance` {version, config} (limits, prices, error bodies:
 * it changes on reload). Both are rendered by filter/render/governance.py; the wire format of the
 * calls is filter/governance/protocol.py's.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy_wasm_abi.h"
#include "wasm_support.h"

#define MARGIN_FRACTION 0.1
#define MIN_MARGIN_REQUESTS 10.0
#define WINDOW_MS 60000.0
#define STATUS_FRESH_MS 2000.0 /* a store outage known this recently skips confirmations */
/* Below these a thread's share of an entity's headroom is too small to count on its own. */
#define LOCAL_MIN_REQUESTS 100.0
#define LOCAL_MIN_TOKENS 100000.0
#define LOCAL_MIN_USD 1.0
#define VIEW_TICK_MS 100 /* how often a thread writes what it counted alone */
#define MAX_ENTITY 600

static bool slice_eq(slice a, slice b) { return a.size == b.size && (a.size == 0 || memcmp(a.data, b.data, a.size) == 0); }

static char *copy_of(slice s) {
  char *out = malloc(s.size + 1);
  if (out == NULL) return NULL;
  memcpy(out, s.data, s.size);
  out[s.size] = 0;
  return out;
}

/* Minutes and budget periods are the workers' (they name the store's counters): every answer
 * carries the worker's clock, and this Envoy keeps its offset from it (0 until one answers; in
 * a pod the two share a machine, so it stays near 0). */
static double clock_offset_ms;

static double own_clock_ms(void) {
  uint64_t ns = 0;
  proxy_get_current_time_nanoseconds(&ns);
  return (double)(ns / 1000000ULL);
}

static double now_ms(void) { return own_clock_ms() + clock_offset_ms; }

/* The offset the last answer on any thread set (shared data "clock"): read on every tick (an
 * answer on this thread sets it at once). */
static void refresh_clock(void) {
  char *shared = NULL;
  size_t size = 0;
  uint32_t cas;
  if (proxy_get_shared_data("clock", 5, &shared, &size, &cas) == PROXY_OK && shared != NULL &&
      size == sizeof clock_offset_ms) {
    memcpy(&clock_offset_ms, shared, sizeof clock_offset_ms);
  }
  free(shared);
}

static void log_at(uint32_t level, const char *message) { proxy_log(level, message, strlen(message)); }

/* ------------------------------------------------------------------ growable text */

typedef struct {
  char *data;
  size_t size, capacity;
  bool failed;
} text;

static void put(text *t, const char *data, size_t size) {
  if (t->failed) return;
  if (t->size + size + 1 > t->capacity) {
    size_t capacity = t->capacity ? t->capacity : 256;
    while (capacity < t->size + size + 1) capacity *= 2;
    char *grown = realloc(t->data, capacity);
    if (grown == NULL) {
      t->failed = true;
      return;
    }
    t->data = grown;
    t->capacity = capacity;
  }
  memcpy(t->data + t->size, data, size);
  t->size += size;
  t->data[t->size] = 0;
}

static void puts_(text *t, const char *s) { put(t, s, strlen(s)); }

static void putf(text *t, const char *format, double value) {
  char buffer[64];
  int n = snprintf(buffer, sizeof buffer, format, value);
  if (n > 0) put(t, buffer, (size_t)n < sizeof buffer ? (size_t)n : sizeof buffer - 1);
}

/* A name in the wire format: bytes outside [A-Za-z0-9._:/@+-] as %XX. */
static bool plain_byte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
         c == '.' || c == '/' || c == ':' || c == '@' || c == '+';
}

static void put_encoded(text *t, slice s) {
  static const char hex[] = "0123456789ABCDEF";
  for (size_t i = 0; i < s.size; i++) {
    unsigned char c = (unsigned char)s.data[i];
    if (plain_byte(c)) {
      put(t, (const char *)&c, 1);
    } else {
      char escaped[3] = {'%', hex[c >> 4], hex[c & 15]};
      put(t, escaped, 3);
    }
  }
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* %XX decoded in place into `out` (at least s.size bytes); its length. */
static size_t decode(slice s, char *out) {
  size_t n = 0;
  for (size_t i = 0; i < s.size; i++) {
    int hi, lo;
    if (s.data[i] == '%' && i + 2 < s.size && (hi = hex_value(s.data[i + 1])) >= 0 &&
        (lo = hex_value(s.data[i + 2])) >= 0) {
      out[n++] = (char)(hi * 16 + lo);
      i += 2;
    } else {
      out[n++] = s.data[i];
    }
  }
  return n;
}

/* A JSON string's inside: quotes, backslashes and control bytes escaped. */
static void put_json(text *t, slice s) {
  static const char hex[] = "0123456789abcdef";
  for (size_t i = 0; i < s.size; i++) {
    unsigned char c = (unsigned char)s.data[i];
    if (c == '"' || c == '\\') {
      char escaped[2] = {'\\', (char)c};
      put(t, escaped, 2);
    } else if (c < 0x20) {
      char escaped[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      put(t, escaped, 6);
    } else {
      put(t, (const char *)&c, 1);
    }
  }
}

/* ------------------------------------------------------------------ words of a line */

typedef struct {
  slice words[12];
  int count;
} words;

static words split(slice line) {
  words w = {.count = 0};
  size_t i = 0;
  while (i < line.size && w.count < 12) {
    while (i < line.size && line.data[i] == ' ') i++;
    size_t start = i;
    while (i < line.size && line.data[i] != ' ') i++;
    if (i > start) w.words[w.count++] = (slice){line.data + start, i - start};
  }
  return w;
}

/* "-" is "no limit": -1. */
static double number(slice s) {
  if (s.size == 0 || s.size > 40 || slice_is(s, "-")) return -1;
  char buffer[48];
  memcpy(buffer, s.data, s.size);
  buffer[s.size] = 0;
  char *end = NULL;
  double value = strtod(buffer, &end);
  if (end == buffer || *end != 0 || !(value >= 0) || isinf(value)) return -1;
  return value;
}

/* Calls `visit` for each line of `s`. */
static void each_line(slice s, void (*visit)(slice line, void *into), void *into) {
  size_t i = 0;
  while (i < s.size) {
    size_t end = i;
    while (end < s.size && s.data[end] != '\n') end++;
    visit((slice){s.data + i, end - i}, into);
    i = end + 1;
  }
}

/* ------------------------------------------------------------------ calendar (UTC) */

/* Howard Hinnant's days_from_civil / civil_from_days: proleptic Gregorian, exact. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = (unsigned)(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = (unsigned)(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

enum period { NO_PERIOD = 0, DAY = 1, MONTH = 2 };

/* The end of the UTC day or month that holds `ms`, in Unix seconds: the period's name. */
static double period_end_s(double ms, int period) {
  int64_t day = (int64_t)floor(ms / 86400000.0);
  if (period == DAY) return (double)(day + 1) * 86400.0;
  int64_t y;
  unsigned m, d;
  civil_from_days(day, &y, &m, &d);
  if (m == 12) return (double)days_from_civil(y + 1, 1, 1) * 86400.0;
  return (double)days_from_civil(y, m + 1, 1) * 86400.0;
}

static void put_time(text *t, double unix_s) {
  int64_t seconds = (int64_t)unix_s, day = seconds >= 0 ? seconds / 86400 : -((-seconds + 86399) / 86400);
  int64_t rest = seconds - day * 86400, y;
  unsigned m, d;
  civil_from_days(day, &y, &m, &d);
  char buffer[40];
  int n = snprintf(buffer, sizeof buffer, "%04lld-%02u-%02uT%02lld:%02lld:%02lldZ", (long long)y, m, d,
                   (long long)(rest / 3600), (long long)(rest / 60 % 60), (long long)(rest % 60));
  if (n > 0) put(t, buffer, (size_t)n);
}

/* A whole number's digits. What every answer's headers need is written by hand: wasi-libc's
 * printf formats through long double, which wasm32 emulates in software (microseconds a number). */
static size_t whole_text(char *out, uint64_t value) {
  char reversed[24];
  size_t n = 0;
  do reversed[n++] = (char)('0' + value % 10); while ((value /= 10) != 0);
  for (size_t i = 0; i < n; i++) out[i] = reversed[n - 1 - i];
  out[n] = 0;
  return n;
}

static void put_whole(text *t, uint64_t value) {
  char digits[24];
  put(t, digits, whole_text(digits, value));
}

/* A duration as OpenAI's x-ratelimit-reset-* headers write it (Go's form): 250ms, 12.5s, 6m0s. */
static void put_duration(text *t, double ms) {
  if (ms < 0) ms = 0;
  uint64_t total = (uint64_t)ceil(ms);
  if (total < 1000) {
    put_whole(t, total);
    puts_(t, "ms");
    return;
  }
  uint64_t minutes = total / 60000, rest = total % 60000, millis = rest % 1000;
  if (minutes) {
    put_whole(t, minutes);
    puts_(t, "m");
  }
  put_whole(t, rest / 1000);
  if (millis) { /* 12.500 → 12.5, 0.000 → 0 */
    char fraction[5] = {'.', (char)('0' + millis / 100), (char)('0' + millis / 10 % 10), (char)('0' + millis % 10), 0};
    size_t len = 4;
    while (fraction[len - 1] == '0') len--;
    put(t, fraction, len);
  }
  puts_(t, "s");
}

/* ------------------------------------------------------------------ configuration */

typedef struct {
  char *entity; /* "c:<key name>" or "m:<provider/model>": the shared record's and the wire's name */
  size_t entity_size;
  double rpm, tpm, usd; /* -1: none */
  int period;
} policy;

typedef struct {
  char *model;
  size_t size;
  double input, output, cached; /* USD per token */
} price;

enum api { API_OPENAI = 0, API_ANTHROPIC = 1, API_RESPONSES = 2, API_COUNT = 3 };
enum body_kind { BODY_RATE = 0, BODY_QUOTA = 1, BODY_UNAVAILABLE = 2, BODY_KINDS = 3 };

typedef struct {
  char version[80];
  bool present;
  bool fail_closed;
  policy *policies;
  int policy_count;
  price *prices;
  int price_count;
  char *body_prefix[API_COUNT][BODY_KINDS], *body_suffix[API_COUNT][BODY_KINDS];
} settings;

static settings current;

typedef struct local_view local_view;
static local_view *views; /* this thread's copies of the shared records, one per policy (below) */
static int view_count;
static char cluster[128] = "switchyard_filter";
static uint32_t sync_ms = 200, timeout_ms = 500;

static void clear_settings(settings *s) {
  for (int i = 0; i < s->policy_count; i++) free(s->policies[i].entity);
  for (int i = 0; i < s->price_count; i++) free(s->prices[i].model);
  free(s->policies);
  free(s->prices);
  for (int a = 0; a < API_COUNT; a++)
    for (int k = 0; k < BODY_KINDS; k++) {
      free(s->body_prefix[a][k]);
      free(s->body_suffix[a][k]);
    }
  memset(s, 0, sizeof *s);
}

static char *decoded_copy(slice s, size_t *size) {
  char *out = malloc(s.size + 1);
  if (out == NULL) return NULL;
  size_t n = decode(s, out);
  out[n] = 0;
  if (size) *size = n;
  return out;
}

static int api_index(slice s) {
  if (slice_is(s, "anthropic")) return API_ANTHROPIC;
  if (slice_is(s, "responses")) return API_RESPONSES;
  return API_OPENAI;
}

static void settings_line(slice line, void *into) {
  settings *s = into;
  words w = split(line);
  if (w.count == 0) return;
  slice head = w.words[0];
  if (slice_is(head, "fail_closed") && w.count == 2) {
    s->fail_closed = slice_is(w.words[1], "1");
  } else if (slice_is(head, "limit") && w.count == 6) {
    policy *grown = realloc(s->policies, sizeof(policy) * (size_t)(s->policy_count + 1));
    if (grown == NULL) return;
    s->policies = grown;
    policy *p = &s->policies[s->policy_count];
    p->entity = decoded_copy(w.words[1], &p->entity_size);
    if (p->entity == NULL || p->entity_size == 0 || p->entity_size > MAX_ENTITY) {
      free(p->entity);
      return;
    }
    p->rpm = number(w.words[2]);
    p->tpm = number(w.words[3]);
    p->usd = number(w.words[4]);
    p->period = slice_is(w.words[5], "day") ? DAY : slice_is(w.words[5], "month") ? MONTH : NO_PERIOD;
    if (p->period == NO_PERIOD) p->usd = -1;
    s->policy_count++;
  } else if (slice_is(head, "price") && w.count == 5) {
    price *grown = realloc(s->prices, sizeof(price) * (size_t)(s->price_count + 1));
    if (grown == NULL) return;
    s->prices = grown;
    price *p = &s->prices[s->price_count];
    p->model = decoded_copy(w.words[1], &p->size);
    if (p->model == NULL) return;
    p->input = number(w.words[2]);
    p->output = number(w.words[3]);
    p->cached = number(w.words[4]);
    if (p->input < 0 || p->output < 0 || p->cached < 0) {
      free(p->model);
      return;
    }
    s->price_count++;
  } else if (slice_is(head, "body") && w.count == 5) {
    int api = api_index(w.words[1]);
    int kind = slice_is(w.words[2], "rate") ? BODY_RATE : slice_is(w.words[2], "quota") ? BODY_QUOTA
               : slice_is(w.words[2], "unavailable") ? BODY_UNAVAILABLE : -1;
    if (kind < 0) return;
    free(s->body_prefix[api][kind]);
    free(s->body_suffix[api][kind]);
    s->body_prefix[api][kind] = decoded_copy(w.words[3], NULL);
    s->body_suffix[api][kind] = decoded_copy(w.words[4], NULL);
  }
}

static void plugin_line(slice line, void *into) {
  (void)into;
  words w = split(line);
  if (w.count != 2) return;
  double value = number(w.words[1]);
  if (slice_is(w.words[0], "cluster") && w.words[1].size < sizeof cluster) {
    memcpy(cluster, w.words[1].data, w.words[1].size);
    cluster[w.words[1].size] = 0;
  } else if (slice_is(w.words[0], "sync_ms") && value >= 10 && value <= 60000) {
    sync_ms = (uint32_t)value;
  } else if (slice_is(w.words[0], "timeout_ms") && value >= 10 && value <= 60000) {
    timeout_ms = (uint32_t)value;
  }
}

static const policy *find_policy(const settings *s, slice entity) {
  for (int i = 0; i < s->policy_count; i++)
    if (slice_eq((slice){s->policies[i].entity, s->policies[i].entity_size}, entity)) return &s->policies[i];
  return NULL;
}

static const price *find_price(const settings *s, slice model) {
  for (int i = 0; i < s->price_count; i++)
    if (slice_eq((slice){s->prices[i].model, s->prices[i].size}, model)) return &s->prices[i];
  return NULL;
}

/* ------------------------------------------------------------------ host values */


/* The virtual host's governance settings, re-read when their version changes (a reload). */
static void drop_views(void);
static void new_views(void);

static void refresh_settings(void) {
  char *owned;
  slice version = PROPERTY("xds\0virtual_host_metadata\0filter_metadata\0switchyard.governance\0version", &owned);
  if (version.data == NULL) {
    free(owned);
    if (current.present) drop_views(), clear_settings(&current);
    return;
  }
  if (current.present && version.size < sizeof current.version && memcmp(current.version, version.data, version.size) == 0 &&
      current.version[version.size] == 0) {
    free(owned);
    return;
  }
  char *config_owned;
  slice config = PROPERTY("xds\0virtual_host_metadata\0filter_metadata\0switchyard.governance\0config", &config_owned);
  drop_views();
  clear_settings(&current);
  each_line(config, settings_line, &current);
  new_views();
  size_t n = version.size < sizeof current.version - 1 ? version.size : sizeof current.version - 1;
  memcpy(current.version, version.data, n);
  current.version[n] = 0;
  current.present = true;
  free(config_owned);
  free(owned);
}

/* ------------------------------------------------------------------ Envoy counters */

#define METRIC_TABLE 4096
#define MAX_METRICS 3072

typedef struct {
  uint32_t hash, id;
  char *name;
  size_t size;
} metric_entry;

static metric_entry metrics[METRIC_TABLE];
static int metric_count;

static void tag(text *t, const char *key, slice value) {
  puts_(t, ";");
  puts_(t, key);
  puts_(t, "=.=");
  put_encoded(t, value);
  puts_(t, ";.;");
}

static void count(const text *name, int64_t delta) {
  if (delta <= 0 || name->failed || name->size == 0) return;
  uint32_t hash = fnv1a(name->data, name->size);
  for (uint32_t i = hash & (METRIC_TABLE - 1);; i = (i + 1) & (METRIC_TABLE - 1)) {
    metric_entry *e = &metrics[i];
    if (e->hash == 0) {
      if (metric_count >= MAX_METRICS) return; /* label sets are config-bounded; never grow without bound */
      uint32_t id;
      char *copy = malloc(name->size);
      if (copy == NULL || proxy_define_metric(PROXY_METRIC_COUNTER, name->data, name->size, &id) != PROXY_OK) {
        free(copy);
        return;
      }
      memcpy(copy, name->data, name->size);
      *e = (metric_entry){hash, id, copy, name->size};
      metric_count++;
      proxy_increment_metric(id, delta);
      return;
    }
    if (e->hash == hash && e->size == name->size && memcmp(e->name, name->data, name->size) == 0) {
      proxy_increment_metric(e->id, delta);
      return;
    }
  }
}

static void count_limited(slice client, slice model, const char *limit) {
  text name = {0};
  puts_(&name, "switchyard_rate_limited_total");
  tag(&name, "client", client);
  tag(&name, "model", model);
  tag(&name, "limit", slice_of(limit));
  count(&name, 1);
  free(name.data);
}

static void count_unchecked(void) {
  text name = {0};
  puts_(&name, "switchyard_limits_unchecked_total");
  count(&name, 1);
  free(name.data);
}

/* ------------------------------------------------------------------ shared records */

/* What one Envoy knows of an entity (a key, or a model with limits), shared by its threads. */
enum field {
  WINDOW,       /* the minute (Unix ms / 60000) the request and token fields count */
  KNOWN,        /* 1: the store's totals of this minute were read at least once */
  SYNCED_REQ,   /* the store's totals as of the last answer */
  SYNCED_TOK,
  UNSENT_REQ,   /* counted here, not yet sent to the workers */
  UNSENT_TOK,
  INFLIGHT_REQ, /* sent, not yet answered */
  INFLIGHT_TOK,
  OWN_REQ,      /* everything this Envoy counted this minute */
  OWN_TOK,
  PERIOD,       /* the budget period's end (Unix s) the USD fields count */
  USD_KNOWN,
  SYNCED_USD,
  UNSENT_USD,
  INFLIGHT_USD,
  OWN_USD,
  FIELDS
};

typedef struct {
  double f[FIELDS];
} record;

static size_t record_key(slice entity, char *out) {
  out[0] = 'g';
  out[1] = ':';
  memcpy(out + 2, entity.data, entity.size);
  return entity.size + 2;
}

static void keep_copy(slice entity, const record *r); /* this thread's copies, below */

static bool load(slice entity, record *r, uint32_t *cas) {
  char key[MAX_ENTITY + 2];
  size_t key_size = record_key(entity, key);
  char *value = NULL;
  size_t size = 0;
  *cas = 0;
  memset(r, 0, sizeof *r);
  uint32_t status = proxy_get_shared_data(key, key_size, &value, &size, cas);
  bool found = status == PROXY_OK && value != NULL && size == sizeof *r;
  if (found) memcpy(r, value, sizeof *r);
  free(value);
  keep_copy(entity, r);
  return found;
}

static bool store_record(slice entity, const record *r, uint32_t cas) {
  char key[MAX_ENTITY + 2];
  size_t key_size = record_key(entity, key);
  if (proxy_set_shared_data(key, key_size, (const char *)r, sizeof *r, cas) != PROXY_OK) return false;
  keep_copy(entity, r);
  return true;
}

/* A new minute or a new budget period starts from zero (what an old one still had unsent only
 * counted for a window nobody reads any more). */
static void roll(record *r, double window, double period_end) {
  if (r->f[WINDOW] != window) {
    for (int i = KNOWN; i <= OWN_TOK; i++) r->f[i] = 0;
    r->f[WINDOW] = window;
  }
  if (r->f[PERIOD] != period_end) {
    for (int i = USD_KNOWN; i <= OWN_USD; i++) r->f[i] = 0;
    r->f[PERIOD] = period_end;
  }
}

static double max2(double a, double b) { return a > b ? a : b; }

/* What is certainly counted, and what may be. */
static double lower(const record *r, int synced, int own) { return max2(r->f[synced], r->f[own]); }
static double upper(const record *r, int synced, int inflight, int unsent, int own) {
  return max2(r->f[synced] + r->f[inflight] + r->f[unsent], r->f[own]);
}

typedef void (*record_change)(record *r, void *arg);

/* Read-modify-write a record under its CAS (other threads change it too). */
static void update(slice entity, double window, double period_end, record_change change, void *arg) {
  for (int attempt = 0; attempt < 64; attempt++) {
    record r;
    uint32_t cas;
    load(entity, &r, &cas);
    roll(&r, window, period_end);
    change(&r, arg);
    if (store_record(entity, &r, cas)) return;
  }
}

static double period_of(const policy *p, double now) { return p->period == NO_PERIOD ? 0 : period_end_s(now, p->period); }

/* ------------------------------------------------------------------ this thread's copies */

/* One per policy of the current settings (same index): the shared record as this thread last read
 * or wrote it, and what this thread counted since without writing it (for `window`, `period`). */
struct local_view {
  record shared;
  bool fresh;    /* `shared` was read or written since the last tick but one */
  bool used;     /* a request used it since the last tick */
  double req, tok, usd, window, period;
};

static double thread_count = 1; /* Envoy's VMs (one per thread), from shared data "vms" */

static local_view *view_of(slice entity) {
  const policy *p = find_policy(&current, entity);
  if (p == NULL || views == NULL) return NULL;
  int i = (int)(p - current.policies);
  return i < view_count ? &views[i] : NULL;
}

static void keep_copy(slice entity, const record *r) {
  local_view *v = view_of(entity);
  if (v == NULL) return;
  v->shared = *r;
  v->fresh = true;
}

/* What the shared record says plus what this thread has not written yet. */
static bool local_record(const policy *p, double window, double period, record *r) {
  local_view *v = view_of((slice){p->entity, p->entity_size});
  if (v == NULL || !v->fresh) return false;
  *r = v->shared;
  roll(r, window, period);
  if (v->window == window) {
    r->f[OWN_REQ] += v->req;
    r->f[UNSENT_REQ] += v->req;
    r->f[OWN_TOK] += v->tok;
    r->f[UNSENT_TOK] += v->tok;
  }
  if (v->period == period) {
    r->f[OWN_USD] += v->usd;
    r->f[UNSENT_USD] += v->usd;
  }
  v->used = true;
  return true;
}

static double local_room(double headroom, double minimum) {
  double share = headroom / (2.0 * thread_count); /* all threads' unwritten counts: half of it at most */
  return share >= minimum ? share : 0;
}

/* How much this thread may hold unwritten for an entity, from its copy (`r`, already holding it). */
static void allowance(const policy *p, const record *r, double *req, double *tok, double *usd) {
  *req = *tok = *usd = HUGE_VAL;
  if (p->rpm >= 0)
    *req = local_room(p->rpm - upper(r, SYNCED_REQ, INFLIGHT_REQ, UNSENT_REQ, OWN_REQ) -
                          max2(p->rpm * MARGIN_FRACTION, MIN_MARGIN_REQUESTS), LOCAL_MIN_REQUESTS);
  if (p->tpm >= 0)
    *tok = local_room(p->tpm - upper(r, SYNCED_TOK, INFLIGHT_TOK, UNSENT_TOK, OWN_TOK) - p->tpm * MARGIN_FRACTION,
                      LOCAL_MIN_TOKENS);
  if (p->usd >= 0)
    *usd = local_room(p->usd - upper(r, SYNCED_USD, INFLIGHT_USD, UNSENT_USD, OWN_USD) - p->usd * MARGIN_FRACTION,
                      LOCAL_MIN_USD);
}

/* This thread's copy of an entity with what it may still hold unwritten (`room`: requests, tokens,
 * USD beyond what it holds), or NULL when it has no fresh copy. */
static local_view *room_of(const policy *p, double now, double room[3]) {
  double window = floor(now / WINDOW_MS), period = period_of(p, now);
  record r;
  if (!local_record(p, window, period, &r)) return NULL;
  local_view *v = view_of((slice){p->entity, p->entity_size});
  if (v->window != window) v->req = v->tok = 0, v->window = window; /* an old minute's counts count for nothing */
  if (v->period != period) v->usd = 0, v->period = period;
  allowance(p, &r, &room[0], &room[1], &room[2]);
  room[0] -= v->req, room[1] -= v->tok, room[2] -= v->usd;
  return v;
}

/* Counts `tok` tokens and `usd` here when the entity's copy leaves room for them. */
static bool spend_locally(const policy *p, double now, double tok, double usd) {
  double room[3];
  local_view *v = room_of(p, now, room);
  if (v == NULL || tok > room[1] || usd > room[2]) return false;
  v->tok += tok;
  v->usd += usd;
  return true;
}

static void add_unwritten(record *r, void *arg) {
  const local_view *v = arg;
  if (r->f[WINDOW] == v->window) {
    r->f[OWN_REQ] += v->req;
    r->f[UNSENT_REQ] += v->req;
    r->f[OWN_TOK] += v->tok;
    r->f[UNSENT_TOK] += v->tok;
  }
  if (r->f[PERIOD] == v->period) {
    r->f[OWN_USD] += v->usd;
    r->f[UNSENT_USD] += v->usd;
  }
}

/* Writes what this thread counted for an entity into the shared record. */
static void write_unwritten(const policy *p, double now) {
  local_view *v = view_of((slice){p->entity, p->entity_size});
  if (v == NULL || (v->req == 0 && v->tok == 0 && v->usd == 0)) return;
  local_view held = *v;
  v->req = v->tok = v->usd = 0;
  update((slice){p->entity, p->entity_size}, floor(now / WINDOW_MS), period_of(p, now), add_unwritten, &held);
}

/* Before the settings change (a reload): what was counted here goes to shared data. */
static void drop_views(void) {
  double now = own_clock_ms() + clock_offset_ms;
  for (int i = 0; i < view_count && i < current.policy_count; i++) write_unwritten(&current.policies[i], now);
  free(views);
  views = NULL;
  view_count = 0;
}

static void new_views(void) {
  views = current.policy_count > 0 ? calloc((size_t)current.policy_count, sizeof *views) : NULL;
  view_count = views != NULL ? current.policy_count : 0;
}

/* On every tick: what was counted here goes to shared data; copies in use are read again, the
 * others go stale (the next request reads the shared record). */
static void refresh_views(double now) {
  for (int i = 0; i < view_count && i < current.policy_count; i++) {
    const policy *p = &current.policies[i];
    write_unwritten(p, now);
    local_view *v = &views[i];
    if (v->used) {
      record r;
      uint32_t cas;
      load((slice){p->entity, p->entity_size}, &r, &cas);
    } else {
      v->fresh = false;
    }
    v->used = false;
  }
}

/* The store's state as the last answer (or failed call) said: shared, so every thread skips
 * confirmations during an outage. */
static double known_status[2] = {1.0, 0.0}; /* this thread's copy of shared data "status", read on every tick */

static void read_store_status(void) {
  char *value = NULL;
  size_t size = 0;
  uint32_t cas;
  if (proxy_get_shared_data("status", 6, &value, &size, &cas) == PROXY_OK && value != NULL && size == sizeof known_status)
    memcpy(known_status, value, sizeof known_status);
  free(value);
}

static void set_store_status(bool ok, double now) {
  double value[2] = {ok ? 1.0 : 0.0, now};
  memcpy(known_status, value, sizeof value);
  for (int attempt = 0; attempt < 8; attempt++) {
    char *old = NULL;
    size_t size = 0;
    uint32_t cas = 0;
    proxy_get_shared_data("status", 6, &old, &size, &cas);
    bool was_ok = !(old != NULL && size == sizeof value && ((double *)old)[0] == 0.0);
    free(old);
    if (proxy_set_shared_data("status", 6, (const char *)value, sizeof value, cas) == PROXY_OK) {
      if (was_ok && !ok) log_at(PROXY_LOG_WARN, "switchyard governance: the shared store cannot be reached; limits "
                                                "count on this Envoy alone until it answers");
      if (!was_ok && ok) log_at(PROXY_LOG_WARN, "switchyard governance: the shared store answers again");
      return;
    }
  }
}

static bool store_down_recently(double now) { return known_status[0] == 0.0 && now - known_status[1] < STATUS_FRESH_MS; }

/* ------------------------------------------------------------------ the wire format */

static void put_delta_line(text *t, const char *head, slice entity, const record *r, bool sent) {
  puts_(t, head);
  puts_(t, " ");
  put_encoded(t, entity);
  putf(t, " %.0f", r->f[WINDOW]);
  putf(t, " %.17g", sent ? r->f[INFLIGHT_REQ] : 0);
  putf(t, " %.17g", sent ? r->f[INFLIGHT_TOK] : 0);
  putf(t, " %.0f", r->f[PERIOD]);
  putf(t, " %.17g", sent ? r->f[INFLIGHT_USD] : 0);
  puts_(t, "\n");
}

typedef struct {
  double req, tok, usd;
} amounts;

/* unsent → in flight; returns what moved. */
static void move_unsent(record *r, void *arg) {
  amounts *moved = arg;
  moved->req = r->f[UNSENT_REQ];
  moved->tok = r->f[UNSENT_TOK];
  moved->usd = r->f[UNSENT_USD];
  r->f[INFLIGHT_REQ] += moved->req;
  r->f[INFLIGHT_TOK] += moved->tok;
  r->f[INFLIGHT_USD] += moved->usd;
  r->f[UNSENT_REQ] = r->f[UNSENT_TOK] = r->f[UNSENT_USD] = 0;
}

typedef struct {
  amounts sent;
  double window, period;
  bool applied; /* the store took them: drop; else back to unsent */
  bool have_totals;
  double req, tok, usd;
} answer_change;

static void apply_answer(record *r, void *arg) {
  answer_change *a = arg;
  if (r->f[WINDOW] == a->window) {
    r->f[INFLIGHT_REQ] = max2(0, r->f[INFLIGHT_REQ] - a->sent.req);
    r->f[INFLIGHT_TOK] = max2(0, r->f[INFLIGHT_TOK] - a->sent.tok);
    if (!a->applied) {
      r->f[UNSENT_REQ] += a->sent.req;
      r->f[UNSENT_TOK] += a->sent.tok;
    }
    if (a->have_totals) {
      r->f[SYNCED_REQ] = max2(r->f[SYNCED_REQ], a->req);
      r->f[SYNCED_TOK] = max2(r->f[SYNCED_TOK], a->tok);
      r->f[KNOWN] = 1;
    }
  }
  if (r->f[PERIOD] == a->period) {
    r->f[INFLIGHT_USD] = max2(0, r->f[INFLIGHT_USD] - a->sent.usd);
    if (!a->applied) r->f[UNSENT_USD] += a->sent.usd;
    if (a->have_totals) {
      r->f[SYNCED_USD] = max2(r->f[SYNCED_USD], a->usd);
      r->f[USD_KNOWN] = 1;
    }
  }
}

/* One call's entities: what each sent, and what the answer said of it. */
#define MAX_CALL_ENTITIES 4096

typedef struct {
  char *entity;
  size_t size;
  double window, period;
  amounts sent;
  bool answered;
  double req, tok, usd;
} call_entity;

typedef struct {
  call_entity *items;
  int count;
} call_entities;

static void free_call(call_entities *c) {
  for (int i = 0; i < c->count; i++) free(c->items[i].entity);
  free(c->items);
  c->items = NULL;
  c->count = 0;
}

static bool add_call_entity(call_entities *c, slice entity, double window, double period, amounts sent) {
  if (c->count >= MAX_CALL_ENTITIES) return false;
  call_entity *grown = realloc(c->items, sizeof(call_entity) * (size_t)(c->count + 1));
  if (grown == NULL) return false;
  c->items = grown;
  char *copy = copy_of(entity);
  if (copy == NULL) return false;
  c->items[c->count++] = (call_entity){copy, entity.size, window, period, sent, false, 0, 0, 0};
  return true;
}

/* Moves an entity's unsent amounts into a call and writes its line. */
static void enlist(text *message, call_entities *c, slice entity, double window, double period) {
  amounts moved = {0, 0, 0};
  update(entity, window, period, move_unsent, &moved);
  if (!add_call_entity(c, entity, window, period, moved)) {
    answer_change undo = {moved, window, period, false, false, 0, 0, 0};
    update(entity, window, period, apply_answer, &undo);
    return;
  }
  record r;
  memset(&r, 0, sizeof r);
  r.f[WINDOW] = window;
  r.f[PERIOD] = period;
  r.f[INFLIGHT_REQ] = moved.req;
  r.f[INFLIGHT_TOK] = moved.tok;
  r.f[INFLIGHT_USD] = moved.usd;
  put_delta_line(message, "e", entity, &r, true);
}

typedef struct {
  bool store_ok;
  double worker_now; /* 0: not told */
  bool verdict_admit;
  bool verdict_refuse;
  char refused_entity[MAX_ENTITY + 1];
  size_t refused_size;
  char refused_limit[16];
  call_entities *entities;
} parsed_answer;

static void answer_line(slice line, void *into) {
  parsed_answer *a = into;
  words w = split(line);
  if (w.count == 0) return;
  if (slice_is(w.words[0], "store") && w.count == 2) {
    a->store_ok = slice_is(w.words[1], "ok");
  } else if (slice_is(w.words[0], "now") && w.count == 2) {
    a->worker_now = number(w.words[1]);
  } else if (slice_is(w.words[0], "verdict") && w.count >= 2) {
    if (slice_is(w.words[1], "admit")) a->verdict_admit = true;
    if (slice_is(w.words[1], "refuse") && w.count == 4 && w.words[2].size <= MAX_ENTITY && w.words[3].size < 16) {
      a->verdict_refuse = true;
      a->refused_size = decode(w.words[2], a->refused_entity);
      memcpy(a->refused_limit, w.words[3].data, w.words[3].size);
      a->refused_limit[w.words[3].size] = 0;
    }
  } else if (slice_is(w.words[0], "t") && w.count == 7 && w.words[1].size <= MAX_ENTITY) {
    char name[MAX_ENTITY + 1];
    size_t n = decode(w.words[1], name);
    double window = number(w.words[2]), period = number(w.words[5]);
    for (int i = 0; i < a->entities->count; i++) {
      call_entity *e = &a->entities->items[i];
      if (e->size == n && memcmp(e->entity, name, n) == 0 && e->window == window && e->period == period) {
        e->answered = true;
        e->req = number(w.words[3]);
        e->tok = number(w.words[4]);
        e->usd = number(w.words[6]);
      }
    }
  }
}

static bool read_answer(size_t size, parsed_answer *a) {
  char *body = NULL;
  size_t body_size = 0;
  if (proxy_get_buffer_bytes(PROXY_BUFFER_GRPC_RECEIVE, 0, size, &body, &body_size) != PROXY_OK || body == NULL) {
    free(body);
    return false;
  }
  slice all = {body, body_size};
  static const char magic[] = "switchyard-governance 1\n";
  bool ok = all.size >= sizeof magic - 1 && memcmp(all.data, magic, sizeof magic - 1) == 0;
  if (ok) each_line((slice){all.data + sizeof magic - 1, all.size - (sizeof magic - 1)}, answer_line, a);
  free(body);
  if (ok && a->worker_now > 0) {
    clock_offset_ms = a->worker_now - own_clock_ms();
    proxy_set_shared_data("clock", 5, (const char *)&clock_offset_ms, sizeof clock_offset_ms, 0);
  }
  return ok;
}

/* Settle what a call sent: dropped where the store took it, back to unsent where it did not. */
static void settle(call_entities *c, bool applied) {
  for (int i = 0; i < c->count; i++) {
    call_entity *e = &c->items[i];
    answer_change change = {e->sent, e->window, e->period, applied, applied && e->answered && e->req >= 0,
                            e->req, max2(e->tok, 0), max2(e->usd, 0)};
    update((slice){e->entity, e->size}, e->window, e->period, apply_answer, &change);
  }
}

static bool call(const text *message, uint32_t *token) {
  static const char service[] = "switchyard.governance.v1.Governance", method[] = "Sync";
  if (message->failed) return false;
  return proxy_grpc_call(cluster, strlen(cluster), service, sizeof service - 1, method, sizeof method - 1, NULL, 0,
                         message->data, message->size, timeout_ms, token) == PROXY_OK;
}

static void start_message(text *t, double now) {
  puts_(t, "switchyard-governance 1\n");
  putf(t, "now %.0f\n", now);
}

/* ------------------------------------------------------------------ per-request state */

enum limit_kind { LIMIT_NONE, LIMIT_REQUESTS, LIMIT_TOKENS, LIMIT_BUDGET };

typedef struct {
  bool have;
  double limit, remaining, reset_ms;
} header_numbers;

typedef struct stream {
  uint32_t context_id;
  struct stream *next;
  bool paused;   /* waiting for a confirmation */
  bool replied;  /* refused here: no headers to add */
  uint32_t token;
  int api;
  char *client, *model; /* copies: the answer may come after a reload */
  size_t client_size, model_size;
  char *entities[2];
  size_t entity_sizes[2];
  int entity_count;
  double window, now;
  call_entities call;
  header_numbers requests, tokens;
} stream;

#define STREAM_BUCKETS 1024
static stream *streams[STREAM_BUCKETS];

static stream **find_stream(uint32_t context_id) {
  stream **at = &streams[context_id & (STREAM_BUCKETS - 1)];
  while (*at != NULL && (*at)->context_id != context_id) at = &(*at)->next;
  return at;
}

static stream *new_stream(uint32_t context_id) {
  stream **at = find_stream(context_id);
  if (*at == NULL) {
    *at = calloc(1, sizeof(stream));
    if (*at != NULL) (*at)->context_id = context_id;
  }
  return *at;
}

static void free_stream(stream *s) {
  free(s->client);
  free(s->model);
  for (int i = 0; i < s->entity_count; i++) free(s->entities[i]);
  free_call(&s->call);
  free(s);
}

/* Which stream waits for which call (the host may answer on the root context). */
#define MAX_PENDING 4096
typedef struct {
  uint32_t token, context_id;
} pending_call;
static pending_call pending[MAX_PENDING];

static void remember_call(uint32_t token, uint32_t context_id) {
  for (int i = 0; i < MAX_PENDING; i++)
    if (pending[i].token == 0) {
      pending[i] = (pending_call){token, context_id};
      return;
    }
}

static uint32_t forget_call(uint32_t token) {
  for (int i = 0; i < MAX_PENDING; i++)
    if (pending[i].token == token && token != 0) {
      uint32_t context_id = pending[i].context_id;
      pending[i] = (pending_call){0, 0};
      return context_id;
    }
  return 0;
}

/* ------------------------------------------------------------------ answers to the client */

static void put_header(text *h, int *count, const char *key, const char *value) {
  /* pairs are serialized after the loop: collect "key\0value\0" */
  put(h, key, strlen(key) + 1);
  put(h, value, strlen(value) + 1);
  (*count)++;
}

static void header_pairs(const text *collected, int count, text *out) {
  uint32_t n = (uint32_t)count;
  put(out, (const char *)&n, 4);
  size_t at = 0;
  for (int i = 0; i < count; i++) {
    uint32_t sizes[2];
    for (int j = 0; j < 2; j++) {
      sizes[j] = (uint32_t)strlen(collected->data + at);
      at += sizes[j] + 1;
    }
    put(out, (const char *)sizes, 8);
  }
  put(out, collected->data, collected->size);
}

/* `out` holds 24 bytes at least. */
static void number_text(char *out, double value) {
  double whole = value < 0 ? 0 : floor(value);
  whole_text(out, whole < 1e19 ? (uint64_t)whole : (uint64_t)1e19);
}

static void add_limit_headers(text *h, int *count, const header_numbers *n, const char *kind) {
  if (!n->have) return;
  char key[48], value[48];
  text reset = {0};
  size_t kind_size = strlen(kind) + 1;
  memcpy(key, "x-ratelimit-limit-", 18), memcpy(key + 18, kind, kind_size);
  number_text(value, n->limit);
  put_header(h, count, key, value);
  memcpy(key, "x-ratelimit-remaining-", 22), memcpy(key + 22, kind, kind_size);
  number_text(value, n->remaining);
  put_header(h, count, key, value);
  memcpy(key, "x-ratelimit-reset-", 18), memcpy(key + 18, kind, kind_size);
  put_duration(&reset, n->reset_ms);
  put_header(h, count, key, reset.data ? reset.data : "0ms");
  free(reset.data);
}

static const char *limit_label(bool client, int kind) {
  if (kind == LIMIT_BUDGET) return "budget";
  if (client) return kind == LIMIT_REQUESTS ? "key_requests" : "key_tokens";
  return kind == LIMIT_REQUESTS ? "model_requests" : "model_tokens";
}

/* 429 (a limit or the budget) or 503 (fail closed), in the client's API format, with
 * retry-after and the x-ratelimit-* headers; `x-switchyard-limited` tells the filter's response
 * phase that the body is the gateway's own (nothing to translate). */
static void refuse(stream *s, const policy *p, int kind, double used, double reset_ms) {
  bool client = p != NULL && p->entity[0] == 'c';
  int body_kind = p == NULL ? BODY_UNAVAILABLE : kind == LIMIT_BUDGET ? BODY_QUOTA : BODY_RATE;
  slice name = p == NULL ? slice_of("") : (slice){p->entity + 2, p->entity_size - 2};
  text message = {0};
  char seconds[32];
  double wait_ms = reset_ms;
  snprintf(seconds, sizeof seconds, "%.0f", ceil(wait_ms / 1000.0) < 1 ? 1 : ceil(wait_ms / 1000.0));
  if (p == NULL) {
    puts_(&message, "rate limits cannot be checked right now (the gateway's shared store is unreachable) and "
                    "gateway.limits.fail_closed is set; try again shortly");
    snprintf(seconds, sizeof seconds, "1");
    wait_ms = 1000;
  } else if (kind == LIMIT_BUDGET) {
    puts_(&message, "budget reached for key '");
    put(&message, name.data, name.size);
    putf(&message, "': USD %g per ", p->usd);
    puts_(&message, p->period == DAY ? "day" : "month");
    putf(&message, " (spent USD %.4f); it resets at ", used);
    put_time(&message, s->now / 1000.0 + reset_ms / 1000.0);
  } else {
    puts_(&message, client ? "rate limit reached for key '" : "rate limit reached for model '");
    put(&message, name.data, name.size);
    puts_(&message, client ? "': " : "' (all keys together): ");
    putf(&message, "%.0f", kind == LIMIT_REQUESTS ? p->rpm : p->tpm);
    puts_(&message, kind == LIMIT_REQUESTS ? " requests per minute" : " tokens per minute (input + output)");
    puts_(&message, "; try again in ");
    put_duration(&message, reset_ms);
  }
  text body = {0};
  const char *prefix = current.body_prefix[s->api][body_kind], *suffix = current.body_suffix[s->api][body_kind];
  puts_(&body, prefix ? prefix : "{\"error\": {\"message\": \"");
  put_json(&body, (slice){message.data ? message.data : "", message.size});
  puts_(&body, suffix ? suffix : "\"}}");

  text collected = {0};
  int n = 0;
  char value[48];
  put_header(&collected, &n, "content-type", "application/json");
  put_header(&collected, &n, "retry-after", seconds);
  snprintf(value, sizeof value, "%.0f", ceil(wait_ms));
  put_header(&collected, &n, "retry-after-ms", value);
  put_header(&collected, &n, "x-switchyard-limited", p == NULL ? "unavailable" : limit_label(client, kind));
  if (kind == LIMIT_BUDGET) put_header(&collected, &n, "x-should-retry", "false"); /* SDKs would retry a 429 */
  if (p != NULL) {
    add_limit_headers(&collected, &n, &s->requests, "requests");
    add_limit_headers(&collected, &n, &s->tokens, "tokens");
  }
  text pairs = {0};
  header_pairs(&collected, n, &pairs);

  count_limited((slice){s->client ? s->client : "", s->client_size}, (slice){s->model ? s->model : "", s->model_size},
                p == NULL ? "unavailable" : limit_label(client, kind));
  static const char details[] = "switchyard_rate_limited";
  s->replied = true;
  /* Envoy's local-reply mappers rewrite 5xx bodies; the bootstrap's first mapper keeps a reply
   * whose request carries this header (set here only, removed from what clients send). */
  proxy_add_header_map_value(PROXY_MAP_REQUEST_HEADERS, "x-switchyard-limited", 20, "1", 1);
  proxy_send_local_response(p == NULL ? 503 : 429, details, sizeof details - 1, body.data ? body.data : "", body.size,
                            pairs.data, pairs.size, -1);
  free(message.data);
  free(body.data);
  free(collected.data);
  free(pairs.data);
}

/* ------------------------------------------------------------------ admission */

typedef struct {
  int verdict; /* 0 admit, 1 refuse, 2 confirm */
  const policy *refused_by;
  int refused_kind;
  double used, reset_ms;
} admission;

static void consider_headers(header_numbers *n, double limit, double remaining, double reset_ms) {
  if (!n->have || remaining < n->remaining) *n = (header_numbers){true, limit, remaining, reset_ms};
}

/* `local`: from this thread's copies (a policy without a fresh one makes it a confirmation). */
static admission judge(stream *s, const policy *const *policies, int count_of, double now, bool local) {
  admission a = {0, NULL, LIMIT_NONE, 0, 0};
  double window = floor(now / WINDOW_MS), window_reset = (window + 1) * WINDOW_MS - now;
  s->requests.have = s->tokens.have = false;
  /* Refusals in this order: the budget (the longest wait), then the key's limits, the model's. */
  for (int pass = 0; pass < 2; pass++) {
    for (int i = 0; i < count_of; i++) {
      const policy *p = policies[i];
      double period = period_of(p, now);
      record r;
      uint32_t cas;
      if (local) {
        if (!local_record(p, window, period, &r)) return (admission){2, NULL, LIMIT_NONE, 0, 0};
      } else {
        load((slice){p->entity, p->entity_size}, &r, &cas);
        roll(&r, window, period);
      }
      if (pass == 0) {
        if (p->usd >= 0 && lower(&r, SYNCED_USD, OWN_USD) >= p->usd && a.verdict != 1) {
          a = (admission){1, p, LIMIT_BUDGET, lower(&r, SYNCED_USD, OWN_USD), period * 1000.0 - now};
        }
        continue;
      }
      double req_low = lower(&r, SYNCED_REQ, OWN_REQ), req_high = upper(&r, SYNCED_REQ, INFLIGHT_REQ, UNSENT_REQ, OWN_REQ);
      double tok_low = lower(&r, SYNCED_TOK, OWN_TOK), tok_high = upper(&r, SYNCED_TOK, INFLIGHT_TOK, UNSENT_TOK, OWN_TOK);
      double usd_high = upper(&r, SYNCED_USD, INFLIGHT_USD, UNSENT_USD, OWN_USD);
      if (p->rpm >= 0) {
        consider_headers(&s->requests, p->rpm, p->rpm - req_high - 1, window_reset);
        if (req_low + 1 > p->rpm && a.verdict != 1) a = (admission){1, p, LIMIT_REQUESTS, req_low, window_reset};
        if (r.f[KNOWN] == 0 || p->rpm - req_high <= max2(p->rpm * MARGIN_FRACTION, MIN_MARGIN_REQUESTS)) {
          if (a.verdict == 0) a.verdict = 2;
        }
      }
      if (p->tpm >= 0) {
        consider_headers(&s->tokens, p->tpm, p->tpm - tok_high, window_reset);
        if (tok_low >= p->tpm && a.verdict != 1) a = (admission){1, p, LIMIT_TOKENS, tok_low, window_reset};
        if (r.f[KNOWN] == 0 || p->tpm - tok_high <= p->tpm * MARGIN_FRACTION) {
          if (a.verdict == 0) a.verdict = 2;
        }
      }
      if (p->usd >= 0 && (r.f[USD_KNOWN] == 0 || p->usd - usd_high <= p->usd * MARGIN_FRACTION)) {
        if (a.verdict == 0) a.verdict = 2;
      }
    }
  }
  return a;
}

static void count_admitted(record *r, void *arg) {
  bool unsent = *(bool *)arg;
  r->f[OWN_REQ] += 1;
  if (unsent) r->f[UNSENT_REQ] += 1;
}

static void admit_here(stream *s, const policy *const *policies, int n, double now, bool unsent) {
  double window = floor(now / WINDOW_MS);
  for (int i = 0; i < n; i++)
    update((slice){policies[i]->entity, policies[i]->entity_size}, window, period_of(policies[i], now), count_admitted,
           &unsent);
  (void)s;
}

/* Far from every limit: judged and counted from this thread's copies, no shared data. Every
 * limit must leave room: near any of them the shared record is read (what the other threads
 * wrote at once), not this thread's copy. */
static bool admit_locally(stream *s, const policy *const *policies, int n, double now) {
  if (current.fail_closed && store_down_recently(now)) return false;
  if (judge(s, policies, n, now, true).verdict != 0) return false;
  local_view *held[2];
  for (int i = 0; i < n; i++) {
    double room[3];
    held[i] = room_of(policies[i], now, room);
    if (held[i] == NULL || room[0] < 1 || room[1] <= 0 || room[2] <= 0) return false;
  }
  for (int i = 0; i < n; i++) held[i]->req += 1;
  return true;
}

static int stream_policies(const stream *s, const policy **out) {
  int n = 0;
  for (int i = 0; i < s->entity_count; i++) {
    const policy *p = find_policy(&current, (slice){s->entities[i], s->entity_sizes[i]});
    if (p != NULL) out[n++] = p;
  }
  return n;
}

/* A confirmation: this request's entities, their unsent counts, one call. */
static bool confirm(stream *s, const policy *const *policies, int n, double now) {
  text message = {0};
  start_message(&message, now);
  double window = floor(now / WINDOW_MS);
  for (int i = 0; i < n; i++) {
    puts_(&message, "check ");
    put_encoded(&message, (slice){policies[i]->entity, policies[i]->entity_size});
    puts_(&message, "\n");
  }
  for (int i = 0; i < n; i++)
    enlist(&message, &s->call, (slice){policies[i]->entity, policies[i]->entity_size}, window, period_of(policies[i], now));
  uint32_t token = 0;
  bool sent = call(&message, &token);
  free(message.data);
  if (!sent) {
    settle(&s->call, false);
    free_call(&s->call);
    return false;
  }
  s->token = token;
  remember_call(token, s->context_id);
  return true;
}

static void entity_name(text *t, char prefix, slice name) {
  char head[2] = {prefix, ':'};
  put(t, head, 2);
  put(t, name.data, name.size);
}

static bool keep_entity(stream *s, const text *name) {
  if (s->entity_count >= 2 || name->failed) return false;
  s->entities[s->entity_count] = copy_of((slice){name->data, name->size});
  if (s->entities[s->entity_count] == NULL) return false;
  s->entity_sizes[s->entity_count++] = name->size;
  return true;
}

/* ------------------------------------------------------------------ callbacks */

static uint32_t vm_id; /* tells this VM (one per Envoy worker thread) from the others */

PROXY_EXPORT(proxy_abi_version_0_2_1) void proxy_abi_version_0_2_1(void) {}

PROXY_EXPORT(proxy_on_memory_allocate) void *proxy_on_memory_allocate(size_t size) { return malloc(size); }

PROXY_EXPORT(proxy_on_context_create) void proxy_on_context_create(uint32_t context_id, uint32_t parent_id) {
  (void)context_id;
  (void)parent_id;
}

PROXY_EXPORT(proxy_on_vm_start) uint32_t proxy_on_vm_start(uint32_t root_id, size_t size) {
  (void)root_id;
  (void)size;
  for (int attempt = 0; attempt < 64 && vm_id == 0; attempt++) {
    char *value = NULL;
    size_t value_size = 0;
    uint32_t cas = 0, next = 1;
    if (proxy_get_shared_data("vms", 3, &value, &value_size, &cas) == PROXY_OK && value != NULL && value_size == 4) {
      memcpy(&next, value, 4);
      next++;
    }
    free(value);
    if (proxy_set_shared_data("vms", 3, (const char *)&next, 4, cas) == PROXY_OK) vm_id = next;
  }
  return 1;
}

PROXY_EXPORT(proxy_on_configure) uint32_t proxy_on_configure(uint32_t root_id, size_t size) {
  (void)root_id;
  char *config = NULL;
  size_t config_size = 0;
  if (proxy_get_buffer_bytes(PROXY_BUFFER_PLUGIN_CONFIGURATION, 0, size, &config, &config_size) == PROXY_OK) {
    each_line((slice){config, config_size}, plugin_line, NULL);
  }
  free(config);
  /* Ticks write this thread's counts (every 0.1 s) and sync every sync_ms (proxy_on_tick). */
  proxy_set_tick_period_milliseconds(sync_ms < VIEW_TICK_MS ? sync_ms : VIEW_TICK_MS);
  return 1;
}

PROXY_EXPORT(proxy_on_request_headers)
uint32_t proxy_on_request_headers(uint32_t context_id, size_t headers, uint32_t end_of_stream) {
  (void)headers;
  (void)end_of_stream;
  refresh_settings();
  if (!current.present || current.policy_count == 0) return PROXY_CONTINUE;
  proxy_remove_header_map_value(PROXY_MAP_REQUEST_HEADERS, "x-switchyard-limited", 20);
  char *owned;
  decision_fields d = {0};
  each_struct_field(namespace_of(PROPERTY("metadata", &owned), "switchyard"), read_decision, &d);
  if (d.model.size == 0) {
    free(owned);
    return PROXY_CONTINUE;
  }
  const policy *policies[2];
  int n = 0;
  text client_entity = {0}, model_entity = {0};
  if (d.client.size > 0) {
    entity_name(&client_entity, 'c', d.client);
    const policy *p = find_policy(&current, (slice){client_entity.data, client_entity.size});
    if (p != NULL) policies[n++] = p;
  }
  entity_name(&model_entity, 'm', d.model_label.size ? d.model_label : d.model);
  const policy *mp = find_policy(&current, (slice){model_entity.data, model_entity.size});
  if (mp != NULL) policies[n++] = mp;
  if (n == 0) {
    free(client_entity.data);
    free(model_entity.data);
    free(owned);
    return PROXY_CONTINUE;
  }
  stream *s = new_stream(context_id);
  if (s == NULL) {
    free(client_entity.data);
    free(model_entity.data);
    free(owned);
    return PROXY_CONTINUE;
  }
  s->api = api_index(d.api);
  s->client = copy_of(d.client);
  s->client_size = d.client.size;
  s->model = copy_of(d.model_label.size ? d.model_label : d.model);
  s->model_size = d.model_label.size ? d.model_label.size : d.model.size;
  for (int i = 0; i < n; i++) {
    text name = {0};
    put(&name, policies[i]->entity, policies[i]->entity_size);
    keep_entity(s, &name);
    free(name.data);
  }
  free(client_entity.data);
  free(model_entity.data);
  free(owned);

  double now = now_ms(); /* the clock offset as of this thread's last tick: a local admission's */
  s->now = now;
  if (admit_locally(s, policies, n, now)) return PROXY_CONTINUE;
  refresh_clock(); /* exact from here: the shared offset and records */
  now = s->now = now_ms();
  for (int i = 0; i < n; i++) write_unwritten(policies[i], now);
  admission a = judge(s, policies, n, now, false);
  if (a.verdict == 1) {
    refuse(s, a.refused_by, a.refused_kind, a.used, a.reset_ms);
    return PROXY_PAUSE;
  }
  bool down = store_down_recently(now);
  if (down && current.fail_closed) { /* limits that cannot be checked refuse, near them or not */
    refuse(s, NULL, LIMIT_NONE, 0, 0);
    return PROXY_PAUSE;
  }
  if (a.verdict == 2) {
    if (!down && confirm(s, policies, n, now)) {
      s->paused = true;
      return PROXY_PAUSE;
    }
    if (current.fail_closed) {
      refuse(s, NULL, LIMIT_NONE, 0, 0);
      return PROXY_PAUSE;
    }
    count_unchecked();
  }
  admit_here(s, policies, n, now, true);
  return PROXY_CONTINUE;
}

PROXY_EXPORT(proxy_on_request_body)
uint32_t proxy_on_request_body(uint32_t context_id, size_t size, uint32_t end_of_stream) {
  (void)size;
  (void)end_of_stream;
  stream *s = *find_stream(context_id);
  return s != NULL && (s->paused || s->replied) ? PROXY_PAUSE : PROXY_CONTINUE;
}

/* The answer to a confirmation. */
static void confirmed(stream *s, bool answered, parsed_answer *a) {
  const policy *policies[2];
  int n = stream_policies(s, policies);
  s->paused = false;
  bool store_ok = answered && a->store_ok;
  settle(&s->call, store_ok);
  double now = now_ms(); /* the answer may have brought the workers' clock */
  s->now = now;
  if (!answered || !store_ok) {
    set_store_status(false, now);
    if (current.fail_closed && n > 0) {
      refuse(s, NULL, LIMIT_NONE, 0, 0);
    } else {
      count_unchecked();
      admit_here(s, policies, n, s->now, true);
      proxy_continue_stream(PROXY_STREAM_REQUEST);
    }
    free_call(&s->call);
    return;
  }
  set_store_status(true, now);
  /* The headers from the store's totals (the call counted this request when it admitted it). */
  for (int i = 0; i < s->call.count; i++) {
    call_entity *e = &s->call.items[i];
    const policy *p = find_policy(&current, (slice){e->entity, e->size});
    if (p == NULL || !e->answered) continue;
    double window_reset = (e->window + 1) * WINDOW_MS - s->now;
    if (p->rpm >= 0) consider_headers(&s->requests, p->rpm, p->rpm - e->req, window_reset);
    if (p->tpm >= 0) consider_headers(&s->tokens, p->tpm, p->tpm - e->tok, window_reset);
  }
  if (a->verdict_refuse) {
    const policy *p = find_policy(&current, (slice){a->refused_entity, a->refused_size});
    int kind = strcmp(a->refused_limit, "budget") == 0 ? LIMIT_BUDGET
               : strcmp(a->refused_limit, "tokens") == 0 ? LIMIT_TOKENS : LIMIT_REQUESTS;
    double used = 0, reset = (floor(s->now / WINDOW_MS) + 1) * WINDOW_MS - s->now;
    for (int i = 0; i < s->call.count; i++) {
      call_entity *e = &s->call.items[i];
      if (e->size == a->refused_size && memcmp(e->entity, a->refused_entity, e->size) == 0) {
        used = kind == LIMIT_BUDGET ? e->usd : kind == LIMIT_TOKENS ? e->tok : e->req;
        if (kind == LIMIT_BUDGET) reset = e->period * 1000.0 - s->now;
      }
    }
    if (kind == LIMIT_REQUESTS && s->requests.have) s->requests.remaining = 0;
    if (p != NULL) {
      free_call(&s->call);
      refuse(s, p, kind, used, reset);
      return;
    }
  }
  free_call(&s->call);
  admit_here(s, policies, n, s->now, false);
  proxy_continue_stream(PROXY_STREAM_REQUEST);
}

/* ------------------------------------------------------------------ the sync (one thread) */

static bool syncing;
static uint32_t sync_token;
static double sync_started;
static call_entities sync_entities;

static void read_thread_count(void) {
  char *value = NULL;
  size_t size = 0;
  uint32_t cas, count = 0;
  if (proxy_get_shared_data("vms", 3, &value, &size, &cas) == PROXY_OK && value != NULL && size == 4) memcpy(&count, value, 4);
  free(value);
  if (count > 0) thread_count = count;
}

static bool own_the_sync(double now) {
  for (int attempt = 0; attempt < 8; attempt++) {
    char *value = NULL;
    size_t size = 0;
    uint32_t cas = 0;
    double owner[2] = {0, 0};
    if (proxy_get_shared_data("owner", 5, &value, &size, &cas) == PROXY_OK && value != NULL && size == sizeof owner) {
      memcpy(owner, value, sizeof owner);
    }
    free(value);
    bool mine = owner[0] == (double)vm_id;
    if (!mine && now - owner[1] < 5.0 * sync_ms && owner[0] != 0) return false;
    double claim[2] = {(double)vm_id, now};
    if (proxy_set_shared_data("owner", 5, (const char *)claim, sizeof claim, cas) == PROXY_OK) return true;
  }
  return false;
}

PROXY_EXPORT(proxy_on_tick) void proxy_on_tick(uint32_t root_id) {
  (void)root_id;
  /* In the combined module the timer ticks at the metrics' pace: a sync every sync_ms still. */
  static double last_tick;
  double tick = own_clock_ms();
  refresh_clock();
  read_store_status();
  read_thread_count();
  refresh_views(now_ms());
  if (tick - last_tick < 0.9 * sync_ms) return;
  last_tick = tick;
  double now = now_ms();
  if (syncing && now - sync_started < 4.0 * timeout_ms) return;
  if (syncing) { /* never answered: count it again next time */
    settle(&sync_entities, false);
    free_call(&sync_entities);
    syncing = false;
  }
  /* The settings this thread last saw on a request (the virtual host's metadata exists only there):
   * a thread that has served no request with limits does not claim the sync. */
  if (!current.present || current.policy_count == 0 || !own_the_sync(now)) return;
  double window = floor(now / WINDOW_MS);
  text message = {0};
  start_message(&message, now);
  for (int i = 0; i < current.policy_count; i++) {
    const policy *p = &current.policies[i];
    slice entity = {p->entity, p->entity_size};
    record r;
    uint32_t cas;
    if (!load(entity, &r, &cas)) continue;
    double period = period_of(p, now);
    bool active = r.f[WINDOW] == window || (p->usd >= 0 && r.f[PERIOD] == period);
    if (active) enlist(&message, &sync_entities, entity, window, period);
  }
  if (sync_entities.count == 0) {
    free(message.data);
    return;
  }
  uint32_t token = 0;
  if (call(&message, &token)) {
    syncing = true;
    sync_token = token;
    sync_started = now;
  } else {
    settle(&sync_entities, false);
    free_call(&sync_entities);
    set_store_status(false, now);
  }
  free(message.data);
}

static void answer_arrived(uint32_t token, bool answered, size_t size) {
  uint32_t context_id = forget_call(token);
  if (context_id != 0) {
    stream *s = *find_stream(context_id);
    if (s == NULL || !s->paused) return;
    parsed_answer a = {.store_ok = false, .entities = &s->call};
    bool ok = answered && read_answer(size, &a);
    proxy_set_effective_context(context_id);
    confirmed(s, ok, &a);
    return;
  }
  if (syncing && token == sync_token) {
    parsed_answer a = {.store_ok = false, .entities = &sync_entities};
    bool ok = answered && read_answer(size, &a);
    settle(&sync_entities, ok && a.store_ok);
    set_store_status(ok && a.store_ok, now_ms());
    free_call(&sync_entities);
    syncing = false;
  }
}

PROXY_EXPORT(proxy_on_grpc_receive_initial_metadata)
void proxy_on_grpc_receive_initial_metadata(uint32_t context_id, uint32_t token, uint32_t headers) {
  (void)context_id;
  (void)token;
  (void)headers;
}

PROXY_EXPORT(proxy_on_grpc_receive_trailing_metadata)
void proxy_on_grpc_receive_trailing_metadata(uint32_t context_id, uint32_t token, uint32_t trailers) {
  (void)context_id;
  (void)token;
  (void)trailers;
}

PROXY_EXPORT(proxy_on_grpc_receive) void proxy_on_grpc_receive(uint32_t context_id, uint32_t token, size_t size) {
  (void)context_id;
  answer_arrived(token, true, size);
}

PROXY_EXPORT(proxy_on_grpc_close) void proxy_on_grpc_close(uint32_t context_id, uint32_t token, uint32_t status) {
  (void)context_id;
  (void)status;
  answer_arrived(token, false, 0); /* a call already answered was forgotten: nothing happens */
}

/* ------------------------------------------------------------------ the answer's way back */

PROXY_EXPORT(proxy_on_response_headers)
uint32_t proxy_on_response_headers(uint32_t context_id, size_t headers, uint32_t end_of_stream) {
  (void)headers;
  (void)end_of_stream;
  stream *s = *find_stream(context_id);
  if (s == NULL || s->replied) return PROXY_CONTINUE;
  text collected = {0};
  int n = 0;
  add_limit_headers(&collected, &n, &s->requests, "requests");
  add_limit_headers(&collected, &n, &s->tokens, "tokens");
  size_t at = 0;
  for (int i = 0; i < n; i++) {
    const char *key = collected.data + at;
    at += strlen(key) + 1;
    const char *value = collected.data + at;
    at += strlen(value) + 1;
    proxy_add_header_map_value(PROXY_MAP_RESPONSE_HEADERS, key, strlen(key), value, strlen(value));
  }
  free(collected.data);
  return PROXY_CONTINUE;
}

typedef struct {
  double tokens, usd;
} spent;

static void count_spent(record *r, void *arg) {
  spent *x = arg;
  r->f[OWN_TOK] += x->tokens;
  r->f[UNSENT_TOK] += x->tokens;
  r->f[OWN_USD] += x->usd;
  r->f[UNSENT_USD] += x->usd;
}

/* At the end of every request (streams included): tokens and cost. */
PROXY_EXPORT(proxy_on_log) void proxy_on_log(uint32_t context_id) {
  const log_reads *reads = read_at_log(context_id);
  slice metadata = reads->metadata_value;
  usage_fields u = {0};
  each_struct_field(namespace_of(metadata, "switchyard.usage"), read_usage, &u);
  if (!u.any) return; /* nothing was read from an answer: nothing to count */
  if (!current.present) refresh_settings(); /* this thread's request phase normally read them */
  if (!current.present) return;
  decision_fields d = {0};
  each_struct_field(namespace_of(metadata, "switchyard"), read_decision, &d);
  slice model = d.model_label.size ? d.model_label : d.model;
  /* With failover the model that answered may be a fallback: the attempt's header says which. */
  slice served = reads->served_value;
  if (served.size > 0 && d.model.size > 0 && !slice_eq(served, d.model)) model = served;
  double prompt = u.input;
  /* Anthropic's input_tokens leaves out cache reads and writes: every prompt token counts. */
  if (slice_is(d.upstream_api, "anthropic")) prompt += u.cached + u.cache_write;
  double cached = u.cached < prompt ? u.cached : prompt;
  double tokens = prompt + u.output, usd = 0;
  const price *p = find_price(&current, model);
  if (p != NULL) usd = (prompt - cached) * p->input + cached * p->cached + u.output * p->output;
  if (usd > 0 && model.size > 0) {
    size_t slash = 0;
    while (slash < model.size && model.data[slash] != '/') slash++;
    text name = {0};
    puts_(&name, "switchyard_cost_usd_total");
    tag(&name, "client", d.client);
    tag(&name, "provider", (slice){model.data, slash});
    tag(&name, "model", model);
    count(&name, (int64_t)llround(usd * 1e9));
    free(name.data);
  }
  double now = now_ms(), window = floor(now / WINDOW_MS);
  spent x = {tokens, usd};
  if (tokens > 0 || usd > 0) {
    text entity = {0};
    if (d.client.size > 0) {
      entity_name(&entity, 'c', d.client);
      const policy *cp = find_policy(&current, (slice){entity.data, entity.size});
      if (cp != NULL && !spend_locally(cp, now, tokens, usd)) {
        refresh_clock();
        now = now_ms(), window = floor(now / WINDOW_MS);
        update((slice){entity.data, entity.size}, window, period_of(cp, now), count_spent, &x);
      }
      entity.size = 0;
    }
    entity_name(&entity, 'm', model);
    const policy *mp = find_policy(&current, (slice){entity.data, entity.size});
    spent tokens_only = {tokens, 0};
    if (mp != NULL && !spend_locally(mp, now, tokens, 0)) {
      refresh_clock();
      now = now_ms(), window = floor(now / WINDOW_MS);
      update((slice){entity.data, entity.size}, window, 0, count_spent, &tokens_only);
    }
    free(entity.data);
  }
}

PROXY_EXPORT(proxy_on_delete) void proxy_on_delete(uint32_t context_id) {
  forget_log_reads(context_id);
  stream **at = find_stream(context_id);
  stream *gone = *at;
  if (gone != NULL) {
    *at = gone->next;
    if (gone->paused) forget_call(gone->token);
    free_stream(gone);
  }
}
