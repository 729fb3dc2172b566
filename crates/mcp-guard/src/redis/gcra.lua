-- GCRA over all of one request's buckets, atomically: every bucket is tested
-- first, and only if all pass is the request's cost spent from each. The same
-- decision as governor's (mcp_guard_layers::rate_limit), with the Redis
-- server's clock, so the replicas' clocks never matter.
--
-- KEYS[i]        bucket i; all of one caller's buckets share one hash tag,
--                hence one cluster slot.
-- ARGV[3i-2]     bucket i's emission interval T: microseconds per unit.
-- ARGV[3i-1]     its delay tolerance tau = T * (burst - 1), microseconds.
-- ARGV[3i]       this request's cost n, in units.
--
-- A bucket's value is its theoretical arrival time (TAT) in microseconds;
-- no key means a full bucket. A key expires when its bucket would be full
-- again, so nothing accumulates.
--
-- Returns {1, 0, 0} when admitted (and spent), else {0, i, wait}: the bucket
-- that frees up last and the microseconds until the request could pass.

-- Redis < 5 replicates the script itself unless told otherwise, and a script
-- that read TIME must be replicated by its effects. A no-op since Redis 7.
if redis.replicate_commands then
  redis.replicate_commands()
end

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])

local next_tat = {}
local worst, worst_wait = 0, 0
for i = 1, #KEYS do
  local t = tonumber(ARGV[3 * i - 2])
  local tau = tonumber(ARGV[3 * i - 1])
  local extra = t * (tonumber(ARGV[3 * i]) - 1)
  local tat = tonumber(redis.call('GET', KEYS[i])) or now
  if tat < now then
    tat = now
  end
  local wait
  if extra > tau then
    -- More than the burst at once never passes: report a full refill.
    wait = tau + t
  else
    wait = tat + extra - tau - now
  end
  if wait > 0 then
    if wait > worst_wait then
      worst, worst_wait = i, wait
    end
  else
    next_tat[i] = tat + t + extra
  end
end

if worst > 0 then
  return {0, worst, worst_wait}
end
for i = 1, #KEYS do
  -- '%.0f': Lua numbers are doubles; a bare number argument could be sent
  -- in exponent notation and lose digits.
  local ttl = math.ceil((next_tat[i] - now) / 1000)
  redis.call('SET', KEYS[i], string.format('%.0f', next_tat[i]), 'PX', string.format('%.0f', ttl))
end
return {1, 0, 0}
