-- wrk script: POST one JSON-RPC message (WRK_BODY, default tools/call echo)
-- on every request; count as errors the non-2xx answers and the 2xx answers
-- whose body carries no JSON-RPC "result" (JSON or SSE alike). Headers come
-- from wrk's -H flags. done() prints one JSON line on stdout.
local body = os.getenv("WRK_BODY") or
  '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}'
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  wrk.method = "POST"
  wrk.body = body
  no_result = 0
  non_2xx = 0
end

function response(status, headers, resp_body)
  if status < 200 or status > 299 then
    non_2xx = non_2xx + 1
  elseif resp_body == nil or not string.find(resp_body, '"result"', 1, true) then
    no_result = no_result + 1
  end
end

function done(summary, latency, requests)
  local nr, n2 = 0, 0
  for _, t in ipairs(threads) do
    nr = nr + (t:get("no_result") or 0)
    n2 = n2 + (t:get("non_2xx") or 0)
  end
  local e = summary.errors
  local socket_errors = e.connect + e.read + e.write + e.timeout
  local secs = summary.duration / 1e6
  io.write(string.format(
    '{"requests_per_sec":%.1f,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,' ..
    '"requests":%d,"errors":%d,"non_2xx":%d,"no_result":%d,"socket_errors":%d}\n',
    summary.requests / secs, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean, summary.requests, n2 + nr + socket_errors, n2, nr, socket_errors))
end
