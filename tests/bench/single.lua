-- single.lua: wrk script, one 300-byte JSON event per POST (keep-alive),
-- each with its own Idempotency-Key, so the agent stores every request.
--   wrk ... -s single.lua URL -- TAG
-- TAG (8 characters at most, default "w") keeps the keys of one run apart
-- from those of the others against the same spool.  Keys are
-- TAG-THREAD-COUNTER, fixed width, so every body is exactly 300 bytes.
-- The same script drives nginx, so both servers see the same requests.

local nthreads = 0

function setup(thread)
	nthreads = nthreads + 1
	thread:set("tid", nthreads)
end

local BODY_BYTES = 300
local tag, prefix, fmt, n
local hdrs = { ["Content-Type"] = "application/json" }

function init(args)
	tag = args[1] or "w"
	prefix = string.format("%-8s", tag):gsub(" ", "_") ..
	    string.format("-%02d-", tid)
	n = 0
	-- {"id":"KEY","source":"wrk","pad":"xxx..."} padded to BODY_BYTES
	local key = prefix .. string.format("%010d", 0)
	local head = '{"id":"' .. key .. '","source":"wrk","pad":"'
	local tail = '"}'
	local pad = BODY_BYTES - #head - #tail
	fmt = '{"id":"%s%010d","source":"wrk","pad":"' ..
	    string.rep("x", pad) .. tail
	assert(#string.format(fmt, prefix, 0) == BODY_BYTES)
end

function request()
	n = n + 1
	hdrs["Idempotency-Key"] = prefix .. string.format("%010d", n)
	return wrk.format("POST", nil, hdrs, string.format(fmt, prefix, n))
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
