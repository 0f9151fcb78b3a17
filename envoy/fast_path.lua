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

local find, byte, sub, lower = string.find, string.byte, string.sub, string.lower
local random, concat = math.random, table.concat
local bit = require("bit")

-- One random generator per Envoy worker thread (each has its own Lua state): seeded apart.
math.randomseed(os.time() + os.clock() * 1e6 + (tonumber(tostring({}):match("0x(%x+)") or "0", 16) or 0) % 1e9)

-- ---------------------------------------------------------------- strict JSON, without values
--
-- Byte loops over string.byte, which LuaJIT compiles (string.find with a pattern it does not: a
-- character-class search costs ~10 ns a byte in the interpreter's matcher). No value is built.

local HEX = {} -- the bytes of %x
for c = 48, 57 do HEX[c] = true end
for c = 65, 70 do HEX[c] = true end
for c = 97, 102 do HEX[c] = true end
local SIMPLE_ESCAPES = { [34] = true, [92] = true, [47] = true, [98] = true, [102] = true, [110] = true,
                         [114] = true, [116] = true } -- \" \\ \/ \b \f \n \r \t

local function ws(s, i) -- the index of the next non-whitespace byte, or nil at the end
  local c = byte(s, i)
  while c == 32 or c == 10 or c == 13 or c == 9 do
    i = i + 1
    c = byte(s, i)
  end
  return c and i
end

-- The UTF-8 character whose lead byte c (>= 0x80) is at s[k]: the index after it, or nil when
-- it is not well-formed (overlong, a surrogate, beyond U+10FFFF, cut).
local function utf8_next(s, k, c)
  local n, lo, hi = 1, 0x80, 0xBF
  if c >= 0xC2 and c <= 0xDF then n = 1
  elseif c >= 0xE0 and c <= 0xEF then n = 2
  elseif c >= 0xF0 and c <= 0xF4 then n = 3
  else return nil end
  if c == 0xE0 then lo = 0xA0 elseif c == 0xED then hi = 0x9F elseif c == 0xF0 then lo = 0x90 elseif c == 0xF4 then hi = 0x8F end
  local c2 = byte(s, k + 1)
  if not c2 or c2 < lo or c2 > hi then return nil end
  for m = k + 2, k + n do
    local b = byte(s, m)
    if not b or b < 0x80 or b > 0xBF then return nil end
  end
  return k + n + 1
end

local function hex4(s, k) -- s[k .. k+3] are hex digits
  return HEX[byte(s, k)] and HEX[byte(s, k + 1)] and HEX[byte(s, k + 2)] and HEX[byte(s, k + 3)]
end

-- s[i] is a quote: the index after the closing quote, and whether the string held an escape.
local function skip_string(s, i)
  local k, escaped = i + 1, false
  while true do
    local c = byte(s, k)
    if not c then return nil end
    if c > 34 and c < 128 and c ~= 92 then
      k = k + 1
    elseif c == 34 then
      return k + 1, escaped
    elseif c == 32 or c == 33 then
      k = k + 1
    elseif c == 92 then
      escaped = true
      local e = byte(s, k + 1)
      if e == 117 then -- \uXXXX; a surrogate only as a high-low pair (what JSON encoders write for emoji)
        if not hex4(s, k + 2) then return nil end
        local h1, h2 = byte(s, k + 2), byte(s, k + 3)
        if h1 == 100 or h1 == 68 then -- d, D
          if h2 == 56 or h2 == 57 or h2 == 97 or h2 == 98 or h2 == 65 or h2 == 66 then -- [89abAB]: high
            local l1, l2 = byte(s, k + 8), byte(s, k + 9)
            if byte(s, k + 6) ~= 92 or byte(s, k + 7) ~= 117 or not (l1 == 100 or l1 == 68)
               or not (l2 and ((l2 >= 99 and l2 <= 102) or (l2 >= 67 and l2 <= 70))) -- [c-fC-F]: low
               or not (HEX[byte(s, k + 10)] and HEX[byte(s, k + 11)]) then
              return nil
            end
            k = k + 12
          elseif (h2 >= 99 and h2 <= 102) or (h2 >= 67 and h2 <= 70) then -- a lone low surrogate
            return nil
          else
            k = k + 6
          end
        else
          k = k + 6
        end
      elseif SIMPLE_ESCAPES[e] then
        k = k + 2
      else
        return nil
      end
    elseif c < 32 then
      return nil
    else
      k = utf8_next(s, k, c)
      if not k then return nil end
    end
  end
end

local function digit(c)
  return c and c >= 48 and c <= 57
end

-- -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9][0-9]?)? — at most two exponent digits (no
-- infinities) and MAX_NUMBER characters; the index after it, or nil.
local function skip_number(s, i)
  local j = i
  if byte(s, j) == 45 then j = j + 1 end -- -
  local c = byte(s, j)
  if c == 48 then
    j = j + 1
  elseif digit(c) then
    repeat j = j + 1 until not digit(byte(s, j))
  else
    return nil
  end
  if byte(s, j) == 46 and digit(byte(s, j + 1)) then -- .
    j = j + 2
    while digit(byte(s, j)) do j = j + 1 end
  end
  c = byte(s, j)
  if c == 101 or c == 69 then -- e, E
    local k = j + 1
    c = byte(s, k)
    if c == 43 or c == 45 then k = k + 1 end
    if digit(byte(s, k)) then
      k = k + 1
      if digit(byte(s, k)) then k = k + 1 end
      j = k
    end
  end
  if j - i > MAX_NUMBER then return nil end
  return j
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
  if c == 116 then -- true
    return byte(s, i + 1) == 114 and byte(s, i + 2) == 117 and byte(s, i + 3) == 101 and i + 4 or nil
  end
  if c == 102 then -- false
    return byte(s, i + 1) == 97 and byte(s, i + 2) == 108 and byte(s, i + 3) == 115 and byte(s, i + 4) == 101
      and i + 5 or nil
  end
  if c == 110 then -- null
    return byte(s, i + 1) == 117 and byte(s, i + 2) == 108 and byte(s, i + 3) == 108 and i + 4 or nil
  end
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
      if key == "model" then
        if byte(s, i) ~= 34 or after - i > 258 then return nil end
        local raw = sub(s, i, after - 1)
        if not find(raw, '^"[%w%-%._:/@%+]+"$') then return nil end
        model, first, last = sub(raw, 2, -2), i, after - 1
      elseif key == "stream" then -- true, false or null: skip_value checked the letters after these
        local c = byte(s, i)
        if c ~= 116 and c ~= 102 and c ~= 110 then return nil end
        stream = c == 116
      elseif key == "metadata" then -- per-request preferences live here, maybe escaped
        local raw = sub(s, i, after - 1)
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

local tohex = bit.tohex

local function span_id() -- 16 random hex digits
  return tohex(random(0, 0xFFFFFFFF), 8) .. tohex(random(0, 0xFFFFFFFF), 8)
end

-- The client's W3C trace when its traceparent is valid (the filter's rule), else a new one.
local function trace_of(given)
  if given then
    local version, trace, parent, flags = lower(given):match("^%s*(%x%x)%-(%x+)%-(%x+)%-(%x%x)%s*$")
    if version and version ~= "ff" and #trace == 32 and #parent == 16 and find(trace, "[^0]") and find(parent, "[^0]") then
      return trace, parent, flags
    end
  end
  return span_id() .. span_id(), "", "01"
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
  if not value or value == "application/json" then return true end -- no header: the filter's default too
  return lower(value:match("^[^;]*")):match("^%s*(.-)%s*$") == "application/json"
end

-- The body and its model when the request may skip the filter (method, path, content type and
-- encoding, size, then the body check), else nil.
local function eligible_model(handle, headers, path, max_request_bytes)
  local query = find(path, "?", 1, true)
  if headers:get(":method") ~= "POST" or not PATHS[query and sub(path, 1, query - 1) or path] then return nil end
  if not content_type_is_json(headers:get("content-type")) then return nil end
  local encoding = headers:get("content-encoding") -- gzip was decoded before
  if encoding and encoding ~= "" and lower(encoding) ~= "identity" then return nil end
  local body = handle:body()
  local length = body and body:length() or 0
  if length == 0 then return nil end
  -- Over gateway.max_request_bytes (Envoy buffers more, for large answers): the filter's 413.
  if length > (max_request_bytes or math.huge) then return nil end
  local raw = body:getBytes(0, length)
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
  metadata:set(NAMESPACE, "request_span", span_id())
  metadata:set(NAMESPACE, "trace_flags", flags)
  handle:respond({[":status"] = "401", ["content-type"] = "application/json"}, virtual_host:get("unauthorized_" .. api))
end

-- Each call into Envoy costs far more than Lua's own work: the fast route carries everything the
-- rewrite needs in one table (read with one call), and removes the client's credentials and the
-- other API family's headers itself (the route's request_headers_to_remove).
function envoy_on_request(handle)
  local headers = handle:headers()
  local started = handle:timestamp() -- ms; a stream's deadline counts from the request's start
  local spoofed = headers:get(FLAG) ~= nil or headers:get(STREAM_FLAG) ~= nil
  if spoofed then
    headers:remove(FLAG)
    headers:remove(STREAM_FLAG)
  end
  local virtual_host = handle:virtualHost():metadata()
  local version = virtual_host:get("client_keys_version")
  local client = nil
  if version then -- gateway.client_keys: every request presents one, fast or not
    if version ~= keys_version then load_keys(virtual_host, version) end
    client = client_of(headers)
    if not client then return refuse(handle, headers, virtual_host) end
    handle:streamInfo():dynamicMetadata():set(NAMESPACE, "client", client)
  end
  local path = headers:get(":path") or ""
  local model, raw, first, last, stream = eligible_model(handle, headers, path, virtual_host:get("max_request_bytes"))
  headers = handle:headers() -- handles do not outlive the wait for the body
  if model then headers:add(FLAG, model) end
  if model and stream then headers:add(STREAM_FLAG, "1") end
  if model or spoofed then handle:clearRouteCache() end
  if not model then return end
  local fast = handle:metadata():get("fast") -- the fast route's, when one matched this model
  if not fast then -- no fast route for this name: the filter decides, and never sees the flags
    headers:remove(FLAG)
    headers:remove(STREAM_FLAG)
    return
  end
  local clients = fast.clients -- set when some keys may not use this model
  if clients and not (client and clients[client]) then
    headers:remove(FLAG) -- the filter answers the key's 403 in the client's format
    headers:remove(STREAM_FLAG)
    handle:clearRouteCache()
    return
  end

  -- A client that sent the provider's own id: nothing to change, unless the body has no
  -- content-length (a gzip body Envoy decoded): setBytes sets it, as the filter's rewrite does,
  -- for providers that refuse a chunked request body.
  if sub(raw, first, last) ~= fast.model_json or not headers:get("content-length") then
    handle:body():setBytes(sub(raw, 1, first - 1) .. fast.model_json .. sub(raw, last + 1))
  end
  local anthropic_version = fast.anthropic_version -- an Anthropic provider: the query's known parameters travel
  headers:replace(":path", fast.upstream_path .. (anthropic_version and anthropic_query(path) or ""))
  if anthropic_version and (headers:get("anthropic-version") or "") == "" then
    headers:replace("anthropic-version", anthropic_version)
  end

  local trace, parent, flags = trace_of(headers:get("traceparent"))
  local upstream_span = span_id()
  headers:replace("traceparent", "00-" .. trace .. "-" .. upstream_span .. "-" .. flags)

  local metadata = handle:streamInfo():dynamicMetadata()
  local decision = fast.metadata -- api, path, model, decision, provider, upstream_api: name, value, ...
  for k = 1, #decision, 2 do metadata:set(NAMESPACE, decision[k], decision[k + 1]) end
  if fast.spans then -- only the span export reads them (gateway.tracing)
    metadata:set(NAMESPACE, "trace_id", trace)
    metadata:set(NAMESPACE, "parent_span", parent)
    metadata:set(NAMESPACE, "request_span", span_id())
    metadata:set(NAMESPACE, "upstream_span", upstream_span)
    metadata:set(NAMESPACE, "trace_flags", flags)
  end
  if stream then metadata:set(NAMESPACE, "started_ms", started) end
end
