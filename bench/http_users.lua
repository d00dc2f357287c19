-- wrk script for bench/http_load.sh: GET /v1/recommendations for users drawn
-- uniformly (fixed seed per wrk thread) from a file of user ids, one a line.
--   wrk -s bench/http_users.lua http://127.0.0.1:8080 -- USERS_FILE [N] [THINK_MS]
-- THINK_MS (default 0): each connection waits that long before each request,
-- so C connections offer at most C * 1000 / THINK_MS requests/s whatever
-- the answers' latency (the overload phases of --shed-factors).
-- done() prints one JSON line with the request count and latency
-- percentiles (wrk measures latency in microseconds).

local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("thread_id", counter)
  table.insert(threads, thread)
end

local users = {}
local n = 10
local think_ms = 0

local function urlencode(s)
  return (s:gsub("[^%w%-%._~]", function(c)
    return string.format("%%%02X", string.byte(c))
  end))
end

function init(args)
  local path = args[1]
  if args[2] then n = tonumber(args[2]) end
  if args[3] then think_ms = tonumber(args[3]) end
  -- wrk looks for delay() after init, so closed-loop runs keep none.
  if think_ms > 0 then
    delay = function() return think_ms end
  end
  local f = assert(io.open(path, "r"), "cannot open users file " .. tostring(path))
  for line in f:lines() do
    if #line > 0 then table.insert(users, urlencode(line)) end
  end
  f:close()
  assert(#users > 0, "no users in " .. path)
  math.randomseed(42 + (thread_id or 0))
end

function request()
  local user = users[math.random(#users)]
  return wrk.format("GET", "/v1/recommendations?user_id=" .. user .. "&n=" .. n)
end

function done(summary, latency, requests)
  local s = summary
  local seconds = s.duration / 1e6
  local non2xx = s.errors.status
  io.write(string.format(
    '{"requests":%d,"duration_s":%.3f,"qps":%.1f,' ..
    '"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,' ..
    '"non_2xx":%d,"socket_errors":%d}\n',
    s.requests, seconds, s.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000, non2xx,
    s.errors.connect + s.errors.read + s.errors.write + s.errors.timeout))
end
