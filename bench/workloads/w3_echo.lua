-- W3's wrk script: POST tools/call `echo` in one MCP session, each request
-- with its own JSON-RPC id (bridges route answers by id, so concurrent
-- duplicates would collide). Reads from the environment (set by w3.sh):
--   W3_HEADERS  newline-separated "Name: value" lines (session id, protocol
--               version, the contender's own headers)
-- Counts per thread: non-2xx answers, and 2xx answers whose body (JSON or
-- SSE) carries no JSON-RPC "result". done() prints one line:
--   W3RESULT {"requests":…,"non_2xx":…,"no_result":…,"socket_errors":…,…}

local threads = {}
local next_thread = 0

function setup(thread)
  thread:set("tid", next_thread)
  next_thread = next_thread + 1
  table.insert(threads, thread)
end

function init(args)
  counter = 0
  non2xx = 0
  noresult = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Accept"] = "application/json, text/event-stream"
  for line in string.gmatch(os.getenv("W3_HEADERS") or "", "[^\n]+") do
    local name, value = string.match(line, "^%s*([^:]+):%s*(.-)%s*$")
    if name then wrk.headers[name] = value end
  end
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"jsonrpc":"2.0","id":"w3-%d-%d","method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}',
    tid, counter)
  return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  elseif not string.find(body, '"result"', 1, true) then
    noresult = noresult + 1
  end
end

function done(summary, latency, requests)
  local non, nores = 0, 0
  for _, t in ipairs(threads) do
    non = non + (t:get("non2xx") or 0)
    nores = nores + (t:get("noresult") or 0)
  end
  local e = summary.errors
  local socket = e.connect + e.read + e.write + e.timeout
  local secs = summary.duration / 1e6
  io.write(string.format(
    'W3RESULT {"requests":%d,"duration_s":%.3f,"requests_per_sec":%.1f,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,'
      .. '"non_2xx":%d,"no_result":%d,"socket_errors":%d,"timeouts":%d,"errors":%d}\n',
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    non, nores, socket, e.timeout, non + nores + socket))
end
