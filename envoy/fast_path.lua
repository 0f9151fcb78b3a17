-- Switchyard's fast path (gateway.fast_path: true), run by Envoy's Lua filter before ext_proc.
--
-- A request whose model is a literal or alias name that Envoy can serve alone — a route named
-- "fast:<api>:<name>" exists for it (filter/fast_path.py renders them) — is checked, rewritten
-- and sent without the Python filter. The check accepts only bodies that filter/inbound.py would
-- accept and forward unchanged except for `model`: strict JSON (UTF-8, escapes, numbers, depth),
-- a top-level object, unique keys in every object, `messages` a non-empty array of objects,
-- `stream` a boolean or null, `model` a plain string, and no per-request routing preferences.
-- Anything else, or any doubt, goes to the filter, which stays the authority on errors.
--
-- With gateway.client_keys, every request (fast or not) is authenticated here first, as the
-- filter would: the presented key's salted SHA-256 digest is compared in constant time with every
-- configured key's digest (the virtual host's metadata holds digests and names, never keys); a
-- miss is answered with the filter's own 401 body, in the client's API shape; a match names the
-- client (`client` metadata) for the access log, the metrics and rate limits. A fast route that
-- some keys may not use lists the keys that may (`clients`); the others go to the filter, which
-- answers their 403.
--
-- Every step mirrors the filter's: the body's model becomes the provider's id (only those bytes
-- change), client credentials are removed (the provider's key is added by the credential
-- injector of the provider's cluster), the path becomes the provider's, the W3C trace is
-- continued or started, and the decision metadata that the access log, the metrics and
-- `x-switchyard-model` read is set.

local FLAG = "x-switchyard-fast-model" -- matched by the fast routes; never trusted from a client
-- Set with FLAG for `"stream": true`: the stream twin of the fast route lets the filter relay the
-- answer, so that it can end it at the listener timeout (filter/stream_guard.py).
local STREAM_FLAG = "x-switchyard-fast-stream"
local NAMESPACE = "switchyard"
local PATHS = { ["/v1/chat/completions"] = true, ["/v1/messages"] = true }
-- Levels of nesting, the top-level object being the first: the filter's limit (MAX_JSON_DEPTH in
-- filter/inbound.py, what it can write back); deeper bodies get its 400.
local MAX_DEPTH = 254
local MAX_NUMBER = 15 -- longer numbers are re-encoded by the filter (as doubles): let it

local find, byte, sub, lower, format = string.find, string.byte, string.sub, string.lower, string.format
local random, concat = math.random, table.concat

-- One random generator per Envoy worker thread (each has its own Lua state): seeded apart.
math.randomseed(os.time() + os.clock() * 1e6 + (tonumber(tostring({}):match("0x(%x+)") or "0", 16) or 0) % 1e9)

-- ---------------------------------------------------------------- strict JSON, without values

local function ws(s, i) -- the index of the next non-whitespace byte, or nil at the end
  return find(s, "[^ \t\r\n]", i)
end

local function utf8_ok(s, i, j) -- bytes i .. j-1, all >= 0x80: well-formed UTF-8, no surrogates
  while i < j do
    local c, n = byte(s, i), nil
    if c >= 0xC2 and c <= 0xDF then n = 1
    elseif c >= 0xE0 and c <= 0xEF then n = 2
    elseif c >= 0xF0 and c <= 0xF4 then n = 3
    else return false end
    if i + n >= j then return false end
    local lo, hi = 0x80, 0xBF
    if c == 0xE0 then lo = 0xA0 elseif c == 0xED then hi = 0x9F elseif c == 0xF0 then lo = 0x90 elseif c == 0xF4 then hi = 0x8F end
    local c2 = byte(s, i + 1)
    if c2 < lo or c2 > hi then return false end
    for k = i + 2, i + n do
      local b = byte(s, k)
      if b < 0x80 or b > 0xBF then return false end
    end
    i = i + n + 1
  end
  return true
end

-- s[i] is a quote: the index after the closing quote, and whether the string held an escape.
local function skip_string(s, i)
  local j, escaped = i + 1, false
  while true do
    local k = find(s, '[%z\1-\31"\\\128-\255]', j)
    if not k then return nil end
    local c = byte(s, k)
    if c == 34 then return k + 1, escaped end
    if c == 92 then
      escaped = true
      local e = byte(s, k + 1)
      if e == 117 then -- \uXXXX; a surrogate only as a high-low pair (what JSON encoders write for emoji)
        if not find(s, "^%x%x%x%x", k + 2) then return nil end
        if find(s, "^[dD][89abAB]", k + 2) then
          if not find(s, "^\\u[dD][c-fC-F]%x%x", k + 6) then return nil end
          j = k + 12
        elseif find(s, "^[dD][c-fC-F]", k + 2) then
          return nil
        else
          j = k + 6
        end
      elseif e == 34 or e == 92 or e == 47 or e == 98 or e == 102 or e == 110 or e == 114 or e == 116 then
        j = k + 2
      else
        return nil
      end
    elseif c < 32 then
      return nil
    else
      local stop = find(s, "[^\128-\255]", k) or #s + 1
      if not utf8_ok(s, k, stop) then return nil end
      j = stop
    end
  end
end

local function skip_number(s, i)
  local _, e = find(s, "^-?0", i)
  if not e then _, e = find(s, "^-?[1-9]%d*", i) end
  if not e then return nil end
  local _, f = find(s, "^%.%d+", e + 1)
  if f then e = f end
  _, f = find(s, "^[eE][+-]?%d%d?", e + 1) -- at most two exponent digits: no infinities
  if f then e = f end
  if e - i + 1 > MAX_NUMBER then return nil end
  return e + 1
end

local skip_value

-- A key given twice is read one way by the filter (the last) and another by some providers (the
-- first, or a 400): such an object goes to the filter. Escaped keys are compared decoded (an
-- escape past ASCII kept as a marked \uxxxx in lower case); escaped and unescaped non-ASCII keys
-- in one object are doubtful.
local UNESCAPE = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t", u = "\0u" }
local function ascii(hex) return string.char(tonumber(hex, 16)) end

local function skip_object(s, i, depth)
  local j = ws(s, i + 1)
  if not j then return nil end
  if byte(s, j) == 125 then return j + 1 end
  local keys, escapes, raw = {}, false, false
  while true do
    if byte(s, j) ~= 34 then return nil end
    local e, escaped = skip_string(s, j)
    if not e then return nil end
    local key = sub(s, j + 1, e - 2)
    if escaped then
      key = key:gsub("\\(.)", UNESCAPE):gsub("%zu00([0-7]%x)", ascii):gsub("%zu%x%x%x%x", lower) -- raw keys hold no NUL
      escapes = escapes or find(key, "%zu%x%x%x%x") ~= nil
    end
    raw = raw or find(key, "[\128-\255]") ~= nil
    if keys[key] or (escapes and raw) then return nil end
    keys[key] = true
    j = ws(s, e)
    if not j or byte(s, j) ~= 58 then return nil end
    j = ws(s, j + 1)
    j = j and skip_value(s, j, depth)
    j = j and ws(s, j)
    if not j then return nil end
    local c = byte(s, j)
    if c == 125 then return j + 1 end
    if c ~= 44 then return nil end
    j = ws(s, j + 1)
    if not j then return nil end
  end
end

-- With `objects_only`, every element must be an object and there must be at least one.
local function skip_array(s, i, depth, objects_only)
  local j = ws(s, i + 1)
  if not j then return nil end
  if byte(s, j) == 93 then return (not objects_only) and j + 1 or nil end
  while true do
    if objects_only and byte(s, j) ~= 123 then return nil end
    j = skip_value(s, j, depth)
    j = j and ws(s, j)
    if not j then return nil end
    local c = byte(s, j)
    if c == 93 then return j + 1 end
    if c ~= 44 then return nil end
    j = ws(s, j + 1)
    if not j then return nil end
  end
end

skip_value = function(s, i, depth)
  local c = byte(s, i)
  if c == 34 then return (skip_string(s, i)) end
  if c == 123 or c == 91 then
    if depth + 2 > MAX_DEPTH then return nil end -- this container's level: depth + 2
    if c == 123 then return skip_object(s, i, depth + 1) end
    return skip_array(s, i, depth + 1, false)
  end
  if c == 116 then return sub(s, i, i + 3) == "true" and i + 4 or nil end
  if c == 102 then return sub(s, i, i + 4) == "false" and i + 5 or nil end
  if c == 110 then return sub(s, i, i + 3) == "null" and i + 4 or nil end
  return skip_number(s, i)
end

-- May this body skip the filter? Returns the model name, the byte span of its JSON string (quotes
-- included) and whether `stream` is true, or nil. Global: the unit tests call it.
function fast_model(s)
  local i = ws(s, 1)
  if not i or byte(s, i) ~= 123 then return nil end
  i = ws(s, i + 1)
  local seen, model, first, last, has_messages, stream = {}, nil, nil, nil, false, false
  while i and byte(s, i) == 34 do
    local e, escaped = skip_string(s, i)
    if not e or escaped then return nil end -- an escaped key may decode to "model": the filter decides
    local key = sub(s, i + 1, e - 2)
    if seen[key] then return nil end
    seen[key] = true
    i = ws(s, e)
    if not i or byte(s, i) ~= 58 then return nil end
    i = ws(s, i + 1)
    if not i then return nil end
    local after
    if key == "messages" then
      if byte(s, i) ~= 91 then return nil end
      after = skip_array(s, i, 1, true)
      has_messages = after ~= nil
    elseif key == "routing_preferences" then
      return nil
    else
      after = skip_value(s, i, 0)
      if not after then return nil end
      local raw = sub(s, i, after - 1)
      if key == "model" then
        if byte(s, i) ~= 34 or not find(raw, '^"[%w%-%._:/@%+]+"$') or #raw > 258 then return nil end
        model, first, last = sub(raw, 2, -2), i, after - 1
      elseif key == "stream" then
        if raw ~= "true" and raw ~= "false" and raw ~= "null" then return nil end
        stream = raw == "true"
      elseif key == "metadata" then -- per-request preferences live here, maybe escaped
        if find(raw, "\\", 1, true) or find(raw, "_preference_config", 1, true) then return nil end
      end
    end
    if not after then return nil end
    i = ws(s, after)
    if not i then return nil end
    local c = byte(s, i)
    if c == 125 then
      if ws(s, i + 1) or not has_messages then return nil end
      return model, first, last, stream
    end
    if c ~= 44 then return nil end
    i = ws(s, i + 1)
  end
  return nil
end


-- ---------------------------------------------------------------- client keys

local bit = require("bit")
local band, bor, bxor, bnot, rshift, lshift, ror, tobit = bit.band, bit.bor, bit.bxor, bit.bnot, bit.rshift, bit.lshift, bit.ror, bit.tobit
local char, rep = string.char, string.rep

local K = { -- the first 32 bits of the fractional parts of the cube roots of the first 64 primes
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}
local w = {} -- the message schedule, reused
-- SHA-256 (FIPS 180-4) of a string, as 64 lower-case hex digits. Global: the unit tests call it.
function sha256_hex(message)
  local length = #message
  local bits = length * 8
  local tail = char(128) .. rep("\0", (55 - length) % 64)
  local hi, lo = math.floor(bits / 4294967296), bits % 4294967296
  tail = tail .. char(band(rshift(hi, 24), 255), band(rshift(hi, 16), 255), band(rshift(hi, 8), 255), band(hi, 255),
                      band(rshift(lo, 24), 255), band(rshift(lo, 16), 255), band(rshift(lo, 8), 255), band(lo, 255))
  message = message .. tail
  local h0, h1, h2, h3, h4, h5, h6, h7 = 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19
  for block = 1, #message, 64 do
    for i = 0, 15 do
      local a, b, c, d = byte(message, block + i * 4, block + i * 4 + 3)
      w[i] = bor(lshift(a, 24), lshift(b, 16), lshift(c, 8), d)
    end
    for i = 16, 63 do
      local x, y = w[i - 15], w[i - 2]
      local s0 = bxor(ror(x, 7), ror(x, 18), rshift(x, 3))
      local s1 = bxor(ror(y, 17), ror(y, 19), rshift(y, 10))
      w[i] = tobit(w[i - 16] + s0 + w[i - 7] + s1)
    end
    local a, b, c, d, e, f, g, h = h0, h1, h2, h3, h4, h5, h6, h7
    for i = 0, 63 do
      local S1 = bxor(ror(e, 6), ror(e, 11), ror(e, 25))
      local ch = bxor(band(e, f), band(bnot(e), g))
      local t1 = tobit(h + S1 + ch + K[i + 1] + w[i])
      local S0 = bxor(ror(a, 2), ror(a, 13), ror(a, 22))
      local maj = bxor(band(a, b), band(a, c), band(b, c))
      local t2 = tobit(S0 + maj)
      h, g, f, e, d, c, b, a = g, f, e, tobit(d + t1), c, b, a, tobit(t1 + t2)
    end
    h0, h1, h2, h3 = tobit(h0 + a), tobit(h1 + b), tobit(h2 + c), tobit(h3 + d)
    h4, h5, h6, h7 = tobit(h4 + e), tobit(h5 + f), tobit(h6 + g), tobit(h7 + h)
  end
  return bit.tohex(h0) .. bit.tohex(h1) .. bit.tohex(h2) .. bit.tohex(h3) .. bit.tohex(h4) .. bit.tohex(h5) .. bit.tohex(h6) .. bit.tohex(h7)
end

local function strip(value)
  return value:match("^%s*(.-)%s*$")
end

-- The keys a client presents, as filter/inbound.py's client_credentials reads them: x-api-key,
-- and Authorization's token when the scheme is Bearer (in any case).
local function credentials(headers)
  local found = {}
  local api_key = strip(headers:get("x-api-key") or "")
  if api_key ~= "" then found[#found + 1] = api_key end
  local authorization = strip(headers:get("authorization") or "")
  local space = find(authorization, " ", 1, true)
  if space and lower(sub(authorization, 1, space - 1)) == "bearer" then
    local token = strip(sub(authorization, space + 1))
    if token ~= "" then found[#found + 1] = token end
  end
  return found
end

-- The configured digests, rebuilt only when the routes' version of them changes (a reload).
local keys_version, key_digests, key_names, key_salt = nil, {}, {}, ""

local function load_keys(virtual_host, version)
  local entries = virtual_host:get("client_keys") or {}
  key_digests, key_names = {}, {}
  for i, entry in ipairs(entries) do
    key_digests[i], key_names[i] = entry.sha256, entry.name
  end
  key_salt, keys_version = virtual_host:get("client_key_salt") or "", version
end

-- The name of the client key presented, or nil. Every presented key is compared with every
-- configured digest over all 64 digits: no early exit that leaks which one is close.
local function client_of(headers)
  local matched = nil
  for _, presented in ipairs(credentials(headers)) do
    local digest = sha256_hex(key_salt .. presented)
    for i = 1, #key_digests do
      local expected, difference = key_digests[i], 0
      for j = 1, 64 do difference = bor(difference, bxor(byte(digest, j), byte(expected, j) or 0)) end
      if difference == 0 and matched == nil then matched = key_names[i] end
    end
  end
  return matched
end

local function api_of(path)
  if find(path, "^/v1/messages") or find(path, "^/routing/v1/messages") then return "anthropic" end
  return "openai"
end

-- ---------------------------------------------------------------- the request

local function random_hex(digits)
  local parts = {}
  for k = 1, digits / 4 do parts[k] = format("%04x", random(0, 65535)) end
  return concat(parts)
end

-- The client's W3C trace when its traceparent is valid (the filter's rule), else a new one.
local function trace_of(given)
  if given then
    local version, trace, parent, flags = lower(given):match("^%s*(%x%x)%-(%x+)%-(%x+)%-(%x%x)%s*$")
    if version and version ~= "ff" and #trace == 32 and #parent == 16 and find(trace, "[^0]") and find(parent, "[^0]") then
      return trace, parent, flags
    end
  end
  return random_hex(32), "", "01"
end

-- The client's query parameters Anthropic knows (Claude Code's ?beta=true), as sent; never
-- anything else (?key=… for another provider). filter/upstream.py keeps the same.
local ANTHROPIC_QUERY_PARAMS = { beta = true }
local function anthropic_query(path)
  local kept = {}
  for part in (path:match("%?(.*)$") or ""):gmatch("[^&]+") do
    if ANTHROPIC_QUERY_PARAMS[part:match("^[^=]*")] then kept[#kept + 1] = part end
  end
  return #kept > 0 and "?" .. concat(kept, "&") or ""
end

local function content_type_is_json(value)
  if not value then return true end -- the filter's default too
  return lower(value:match("^[^;]*")):match("^%s*(.-)%s*$") == "application/json"
end

local function eligible_model(handle, headers)
  local path = headers:get(":path") or ""
  if headers:get(":method") ~= "POST" or not PATHS[path:match("^[^?]*")] then return nil end
  if not content_type_is_json(headers:get("content-type")) then return nil end
  local encoding = lower(headers:get("content-encoding") or "identity") -- gzip was decoded before
  if encoding ~= "identity" and encoding ~= "" then return nil end
  local body = handle:body()
  if not body or body:length() == 0 then return nil end
  -- Over gateway.max_request_bytes (Envoy buffers more, for large answers): the filter's 413.
  if body:length() > (handle:virtualHost():metadata():get("max_request_bytes") or math.huge) then return nil end
  local raw = body:getBytes(0, body:length())
  local model, first, last, stream = fast_model(raw)
  return model, raw, first, last, stream
end

-- The filter's 401 (its bytes are rendered into the virtual host's metadata), with the
-- metadata the filter would set for the access log and the request's span.
local function refuse(handle, headers, virtual_host)
  local path = headers:get(":path") or "/"
  local api = api_of(path)
  local trace, parent, flags = trace_of(headers:get("traceparent"))
  local metadata = handle:streamInfo():dynamicMetadata()
  metadata:set(NAMESPACE, "api", api)
  metadata:set(NAMESPACE, "path", path:match("^[^?]*")) -- logged: never the query, which may hold a key
  metadata:set(NAMESPACE, "trace_id", trace)
  metadata:set(NAMESPACE, "parent_span", parent)
  metadata:set(NAMESPACE, "request_span", random_hex(16))
  metadata:set(NAMESPACE, "trace_flags", flags)
  handle:respond({[":status"] = "401", ["content-type"] = "application/json"}, virtual_host:get("unauthorized_" .. api))
end

function envoy_on_request(handle)
  local headers = handle:headers()
  local started = handle:timestamp() -- ms; a stream's deadline counts from the request's start
  local spoofed = headers:get(FLAG) ~= nil or headers:get(STREAM_FLAG) ~= nil
  headers:remove(FLAG)
  local virtual_host = handle:virtualHost():metadata()
  local version = virtual_host:get("client_keys_version")
  local client = nil
  if version then -- gateway.client_keys: every request presents one, fast or not
    if version ~= keys_version then load_keys(virtual_host, version) end
    client = client_of(headers)
    if not client then return refuse(handle, headers, virtual_host) end
    handle:streamInfo():dynamicMetadata():set(NAMESPACE, "client", client)
  end
  headers:remove(STREAM_FLAG)
  local model, raw, first, last, stream = eligible_model(handle, headers)
  headers = handle:headers() -- handles do not outlive the wait for the body
  if model then headers:add(FLAG, model) end
  if model and stream then headers:add(STREAM_FLAG, "1") end
  if model or spoofed then handle:clearRouteCache() end
  if not model then return end
  local route = handle:metadata() -- the fast route's, when one matched this model
  local served = route:get("model")
  if not served then -- no fast route for this name: the filter decides, and never sees the flags
    headers:remove(FLAG)
    headers:remove(STREAM_FLAG)
    return
  end
  local clients = route:get("clients") -- set when some keys may not use this model
  if clients and not (client and clients[client]) then
    headers:remove(FLAG) -- the filter answers the key's 403 in the client's format
    handle:clearRouteCache()
    return
  end

  handle:body():setBytes(sub(raw, 1, first - 1) .. route:get("model_json") .. sub(raw, last + 1))
  local path = headers:get(":path")
  headers:replace(":path", route:get("upstream_path") .. (route:get("keep_query") and anthropic_query(path) or ""))
  for name in route:get("remove_headers"):gmatch("[^,]+") do headers:remove(name) end
  local version = route:get("anthropic_version")
  if version and (headers:get("anthropic-version") or "") == "" then headers:replace("anthropic-version", version) end

  local trace, parent, flags = trace_of(headers:get("traceparent"))
  local request_span, upstream_span = random_hex(16), random_hex(16)
  headers:replace("traceparent", "00-" .. trace .. "-" .. upstream_span .. "-" .. flags)

  local metadata = handle:streamInfo():dynamicMetadata()
  metadata:set(NAMESPACE, "api", route:get("api"))
  metadata:set(NAMESPACE, "path", path:match("^[^?]*")) -- logged: never the query, which may hold a key
  metadata:set(NAMESPACE, "model", served)
  metadata:set(NAMESPACE, "decision", route:get("decision"))
  metadata:set(NAMESPACE, "provider", route:get("provider"))
  metadata:set(NAMESPACE, "upstream_api", route:get("upstream_api"))
  if route:get("spans") then -- only the span export reads them (gateway.tracing)
    metadata:set(NAMESPACE, "trace_id", trace)
    metadata:set(NAMESPACE, "parent_span", parent)
    metadata:set(NAMESPACE, "request_span", request_span)
    metadata:set(NAMESPACE, "upstream_span", upstream_span)
    metadata:set(NAMESPACE, "trace_flags", flags)
  end
  if stream then metadata:set(NAMESPACE, "started_ms", started) end
end
