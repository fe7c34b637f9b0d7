-- wrk script of bench/backend.py: GET /v1/models/current revalidated with If-None-Match.
--
-- Arguments (after "--"): the tokens file (one bearer token a line) and the ETag (quoted, as
-- the server sent it). Requests rotate over the devices; done() prints the status counts.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_id", #threads)
end

function init(args)
  tokens = {}
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  etag = args[2]
  sent = 0
  statuses = {}
end

function request()
  sent = sent + 1
  return wrk.format("GET", "/v1/models/current", {
    ["Authorization"] = "Bearer " .. tokens[((thread_id - 1) * 7919 + sent) % #tokens + 1],
    ["If-None-Match"] = etag,
  })
end

function response(status, headers, body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
end

function done(summary, latency, requests)
  local totals = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do totals[status] = (totals[status] or 0) + n end
  end
  local counts = {}
  for status, n in pairs(totals) do counts[#counts + 1] = string.format('"%s": %d', status, n) end
  io.write(string.format(
    'WRK_JSON {"duration_us": %d, "requests": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"statuses": {%s}}\n',
    summary.duration, summary.requests, latency:percentile(50), latency:percentile(99),
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.status,
    summary.errors.timeout, table.concat(counts, ", ")))
end
