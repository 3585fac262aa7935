-- ndjson.lua: wrk script, batches of 100 JSON events of 300 bytes each, one
-- per line (application/x-ndjson), keep-alive.  Every line has its own "id"
-- (the agent's [dedup] json_key), TAG-THREAD-COUNTER-LINE, fixed width.
--   wrk ... -s ndjson.lua URL -- TAG
-- The body is assembled from pieces prepared once, so that building it costs
-- wrk as little CPU as possible (wrk shares the machine with the agent).

local nthreads = 0

function setup(thread)
	nthreads = nthreads + 1
	thread:set("tid", nthreads)
end

local EVENTS, EVENT_BYTES = 100, 300
local prefix, n, parts
local hdrs = { ["Content-Type"] = "application/x-ndjson" }

function init(args)
	local tag = args[1] or "b"
	prefix = string.format("%-8s", tag):gsub(" ", "_") ..
	    string.format("-%02d-", tid)
	n = 0
	-- line i: {"id":"PREFIX<counter>-<iii>","source":"wrk","pad":"xx"}\n
	-- parts = { '{"id":"PREFIX', COUNTER, '-001","source"...}\n', ... }
	local tail = '","source":"wrk","pad":"'
	local head = '{"id":"' .. prefix
	local pad = EVENT_BYTES - #head - 10 - 4 - #tail - 2
	parts = {}
	for i = 1, EVENTS do
		parts[#parts + 1] = head
		parts[#parts + 1] = "0000000000"
		parts[#parts + 1] = string.format("-%03d", i) .. tail ..
		    string.rep("x", pad) .. '"}\n'
	end
	assert(#table.concat(parts) == EVENTS * (EVENT_BYTES + 1))
end

function request()
	n = n + 1
	local c = string.format("%010d", n)
	for i = 2, 3 * EVENTS, 3 do
		parts[i] = c
	end
	return wrk.format("POST", nil, hdrs, table.concat(parts))
end

function done(summary, latency, requests)
	local e = summary.errors
	local sockerr = e.connect + e.read + e.write + e.timeout
	io.write(string.format("WRK requests=%d non2xx=%d sockerr=%d " ..
	    "connect=%d read=%d write=%d timeout=%d ok=%d secs=%.3f " ..
	    "p50_us=%d p99_us=%d p999_us=%d max_us=%d\n",
	    summary.requests, e.status, sockerr, e.connect, e.read, e.write,
	    e.timeout, summary.requests - e.status, summary.duration / 1e6,
	    latency:percentile(50), latency:percentile(99),
	    latency:percentile(99.9), latency.max))
end
