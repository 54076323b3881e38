-- Shared by the wrk scripts: tokens from a file, per-status counts, a JSON summary line.
-- Tokens file (BENCH_TOKENS): one "<user_id> <access token>" per line, minted before the run.

local M = {}

function M.load_tokens(path)
  local list = {}
  for line in io.lines(path) do
    local id, token = line:match("^(%d+)%s+(%S+)$")
    if id then
      list[#list + 1] = { id = tonumber(id), auth = "Bearer " .. token }
    end
  end
  assert(#list > 0, "no tokens in " .. path)
  return list
end

local threads = {}

function M.setup(thread)
  thread:set("thread_id", #threads + 1)
  threads[#threads + 1] = thread
end

counts = {}
-- Named counters a script keeps besides the statuses (e.g. holds placed, captures sent): "extra" in the JSON.
extra = {}

function M.response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end

function M.count(name, n)
  extra[name] = (extra[name] or 0) + (n or 1)
end

function M.done(summary, latency, requests)
  local statuses = {}
  for _, thread in ipairs(threads) do
    local c = thread:get("counts")
    for status, n in pairs(c) do
      statuses[tostring(status)] = (statuses[tostring(status)] or 0) + n
    end
  end
  local extras = {}
  for _, thread in ipairs(threads) do
    for name, n in pairs(thread:get("extra") or {}) do
      extras[name] = (extras[name] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(statuses) do
    parts[#parts + 1] = string.format('"%s":%d', status, n)
  end
  local extra_parts = {}
  for name, n in pairs(extras) do
    extra_parts[#extra_parts + 1] = string.format('"%s":%d', name, n)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"latency_us":{"mean":%.1f,"p50":%d,"p90":%d,"p95":%d,"p99":%d,"p999":%d,"max":%d},'
      .. '"statuses":{%s},"extra":{%s}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(95),
    latency:percentile(99), latency:percentile(99.9), latency.max,
    table.concat(parts, ","), table.concat(extra_parts, ",")))
end

return M
