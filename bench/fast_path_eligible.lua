-- Design study (make bench): may this chat-completions body skip the Python filter? It checks the
-- shape filter/inbound.py would accept — a JSON object whose `messages` is a non-empty array of
-- objects, `stream` a boolean or null, no per-request routing preferences — without building any
-- value. Conservative: any doubt answers no, and the filter, the authority on errors, sees the
-- request. A client cannot set the answer: the header is removed first.
local find, byte, sub = string.find, string.byte, string.sub

local function ws(s, i) return find(s, "[^ \t\r\n]", i) end

local function skip_string(s, i)
  local j = i + 1
  while true do
    local q = find(s, '["\\]', j)
    if not q then return nil end
    if byte(s, q) == 92 then j = q + 2 else return q + 1 end
  end
end

local function skip_value(s, i)
  local c = byte(s, i)
  if c == 34 then return skip_string(s, i) end
  if c == 123 or c == 91 then
    local depth, j = 0, i
    while true do
      j = find(s, '[%[%]{}"]', j)
      if not j then return nil end
      local b = byte(s, j)
      if b == 34 then
        j = skip_string(s, j)
        if not j then return nil end
      else
        depth = (b == 123 or b == 91) and depth + 1 or depth - 1
        j = j + 1
        if depth == 0 then return j end
      end
    end
  end
  return find(s, "[,}%] \t\r\n]", i)
end

local function messages_ok(s, i)  -- a non-empty array of objects
  if byte(s, i) ~= 91 then return nil end
  local j = ws(s, i + 1)
  if not j or byte(s, j) ~= 123 then return nil end
  while true do
    if byte(s, j) ~= 123 then return nil end
    j = skip_value(s, j); if not j then return nil end
    j = ws(s, j); if not j then return nil end
    local b = byte(s, j)
    if b == 93 then return j + 1 end
    if b ~= 44 then return nil end
    j = ws(s, j + 1); if not j then return nil end
  end
end

function eligible(s)  -- global: the request hook below calls it
  local i = ws(s, 1)
  if not i or byte(s, i) ~= 123 then return false end
  i = ws(s, i + 1)
  local has_messages = false
  while i and byte(s, i) == 34 do
    local e = skip_string(s, i); if not e then return false end
    local key = sub(s, i + 1, e - 2)
    i = ws(s, e); if not i or byte(s, i) ~= 58 then return false end
    i = ws(s, i + 1); if not i then return false end
    local after
    if key == "messages" then
      after = messages_ok(s, i); has_messages = after ~= nil
    else
      after = skip_value(s, i)
      if key == "stream" then
        local v = after and sub(s, i, after - 1)
        if v ~= "true" and v ~= "false" and v ~= "null" then return false end
      elseif key == "routing_preferences" then return false
      elseif key == "metadata" and after and find(s, "archgw_preference_config", i, true) and find(s, "archgw_preference_config", i, true) < after then return false
      end
    end
    if not after then return false end
    i = ws(s, after); if not i then return false end
    local b = byte(s, i)
    if b == 125 then return has_messages and ws(s, i + 1) == nil end
    if b ~= 44 then return false end
    i = ws(s, i + 1)
  end
  return false
end

function envoy_on_request(handle)
  local headers = handle:headers()
  headers:remove("x-fast-path")
  if headers:get(":path") ~= "/v1/chat/completions" then return end
  local body = handle:body()
  -- handles do not outlive the wait for the body: fetch the headers again
  if body and eligible(body:getBytes(0, body:length())) then handle:headers():add("x-fast-path", "1") end
end
