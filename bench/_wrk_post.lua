-- wrk script of bench/backend.py: POST /v1/aggregates, every request a distinct valid upload.
--
-- Arguments (after "--"): the tokens file (one bearer token a line), the bodies file (one
-- JSON upload a line, with the placeholder UPLOAD_ID_PLACEHOLDER where its upload_id goes)
-- and an 8-hex-digit run id. Request n of thread t (both from 1) carries
--   upload_id = run id .. %08x(t) .. "00000000" .. %08x(n)
--   token     = tokens[((t - 1) * 7919 + n) % #tokens + 1]
--   body      = bodies[n % #bodies + 1]
-- so the Python side can rebuild any request. Run it with one connection per thread
-- (-t N -c N): each thread then waits for a response before its next request, so a response
-- belongs to the thread's latest request, and done() prints, per thread, which requests got
-- which status and which were never answered (in flight when wrk stopped, or cut by an error).

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_id", #threads)
end

function init(args)
  tokens = {}
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  prefixes, suffixes = {}, {}
  for line in io.lines(args[2]) do
    local first, last = line:find("UPLOAD_ID_PLACEHOLDER", 1, true)
    prefixes[#prefixes + 1] = line:sub(1, first - 1)
    suffixes[#suffixes + 1] = line:sub(last + 1)
  end
  id_prefix = args[3] .. string.format("%08x", thread_id) .. "00000000"
  sent, answered = 0, true
  statuses, odd, unanswered = {}, {}, {}
end

function request()
  if not answered then unanswered[#unanswered + 1] = sent end
  sent, answered = sent + 1, false
  local token = tokens[((thread_id - 1) * 7919 + sent) % #tokens + 1]
  local b = sent % #prefixes + 1
  return wrk.format("POST", "/v1/aggregates", {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
  }, prefixes[b] .. id_prefix .. string.format("%08x", sent) .. suffixes[b])
end

function response(status, headers, body)
  answered = true
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
  if status ~= 201 then odd[#odd + 1] = sent .. ":" .. status end
end

function done(summary, latency, requests)
  local parts = {}
  for i, thread in ipairs(threads) do
    local counts = {}
    for status, n in pairs(thread:get("statuses")) do
      counts[#counts + 1] = string.format('"%s": %d', status, n)
    end
    local unanswered = thread:get("unanswered")
    if not thread:get("answered") then unanswered[#unanswered + 1] = thread:get("sent") end
    local odd = {}
    for _, entry in ipairs(thread:get("odd")) do odd[#odd + 1] = '"' .. entry .. '"' end
    parts[#parts + 1] = string.format(
      '{"thread": %d, "sent": %d, "statuses": {%s}, "unanswered": [%s], "not_201": [%s]}',
      i, thread:get("sent"), table.concat(counts, ", "), table.concat(unanswered, ", "),
      table.concat(odd, ", "))
  end
  io.write(string.format(
    'WRK_JSON {"duration_us": %d, "requests": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"threads": [%s]}\n',
    summary.duration, summary.requests, latency:percentile(50), latency:percentile(99),
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.status,
    summary.errors.timeout, table.concat(parts, ", ")))
end
