#!/bin/sh
# 033-agent-metrics.sh: GET /metrics tells the truth.  After a known mix of
# requests (N events, M duplicates, a 400, a 404) the Prometheus text,
# parsed by python, must hold exactly those figures: requests by status
# (as deltas against a first scrape), events accepted and duplicate, the
# commit histograms (consistent with each other), the spool's event count,
# last seq and limit, and the per-sink lag after `ferry-spool cursor web
# --set 3` moved a cursor while the agent runs.
T=${FERRY_TESTS_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$T/lib.sh"
. "$T/agent-lib.sh"

N=7
M=3
agent_conf "$TMP/a.conf" "[spool]" "max_size = 8MiB"
ok "agent starts" agent_start || { done_testing; exit 1; }

# scrape FILE: GET /metrics into FILE; fails unless 200 text/plain.
scrape() {
	[ "$(curl -s -o "$1" -D "$1.hdr" -w '%{http_code}' --max-time 5 \
	    "$URL/metrics")" = 200 ]
}
# m FILE SERIES: the value of SERIES (name{labels} exactly as rendered,
# label values in double quotes) in FILE, or "absent".
m() {
	$PY - "$1" "$2" <<'EOF'
import re, sys
vals = {}
for l in open(sys.argv[1]):
    l = l.rstrip("\n")
    if not l or l.startswith("#"):
        continue
    mo = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})?) (\S+)$', l)
    if not mo:
        print("unparsable line: " + l); sys.exit(1)
    vals[mo.group(1)] = mo.group(3)
v = vals.get(sys.argv[2], "absent")
if v != "absent" and float(v) == int(float(v)):
    v = str(int(float(v)))
print(v)
EOF
}

ok "first scrape" scrape "$TMP/m0"
like "Content-Type is Prometheus text" "$(tr -d '\r' <"$TMP/m0.hdr" | \
    sed -n 's/^Content-Type: //Ip')" '^text/plain; version=0\.0\.4'
C200=$(m "$TMP/m0" 'ferry_http_requests_total{code="200"}')
C400=$(m "$TMP/m0" 'ferry_http_requests_total{code="400"}')
[ "$C400" = absent ] && C400=0
is "before: no event accepted" \
    "$(m "$TMP/m0" ferry_events_accepted_total)" 0
is "before: the dedup index is not built yet" \
    "$(m "$TMP/m0" ferry_dedup_index_bytes)" 0

i=1
while [ $i -le $N ]; do
	R=$(post met application/json "{\"n\":$i}" -H "Idempotency-Key: met-$i")
	[ "$R" = '200 {"accepted":1,"duplicates":0}' ] || diag "event $i: $R"
	i=$((i + 1))
done
i=1
while [ $i -le $M ]; do
	R=$(post met application/json "{\"n\":$i}" -H "Idempotency-Key: met-$i")
	[ "$R" = '200 {"accepted":0,"duplicates":1}' ] || diag "dup $i: $R"
	i=$((i + 1))
done
is "a bad event: 400" "$(post met application/json '{"n":' | cut -c1-3)" 400
is "an unknown path: 404" "$(get /nope | cut -c1-3)" 404

ok "second scrape" scrape "$TMP/m1"
is "ferry_http_requests_total{code=200}: + N + M + the first scrape" \
    "$(m "$TMP/m1" 'ferry_http_requests_total{code="200"}')" \
    $((C200 + N + M + 1))
is "ferry_http_requests_total{code=400}: + 1" \
    "$(m "$TMP/m1" 'ferry_http_requests_total{code="400"}')" $((C400 + 1))
is "ferry_http_requests_total{code=404}: 1" \
    "$(m "$TMP/m1" 'ferry_http_requests_total{code="404"}')" 1
is "ferry_events_accepted_total = N" \
    "$(m "$TMP/m1" ferry_events_accepted_total)" $N
is "ferry_events_duplicate_total = M" \
    "$(m "$TMP/m1" ferry_events_duplicate_total)" $M
CC=$(m "$TMP/m1" ferry_commit_seconds_count)
like "ferry_commit_seconds_count > 0" "$CC" '^[1-9][0-9]*$'
is "ferry_commit_seconds +Inf bucket = count" \
    "$(m "$TMP/m1" 'ferry_commit_seconds_bucket{le="+Inf"}')" "$CC"
is "ferry_commit_events +Inf bucket = commits" \
    "$(m "$TMP/m1" 'ferry_commit_events_bucket{le="+Inf"}')" "$CC"
is "ferry_commit_events_count = commits" \
    "$(m "$TMP/m1" ferry_commit_events_count)" "$CC"
is "ferry_commit_events_sum = N (duplicates commit nothing)" \
    "$(m "$TMP/m1" ferry_commit_events_sum)" $N
is "histogram buckets never decrease" "$($PY - "$TMP/m1" <<'EOF'
import re, sys
b = {}
for l in open(sys.argv[1]):
    mo = re.match(r'^(\w+)_bucket\{le="([^"]+)"\} (\S+)$', l)
    if mo:
        b.setdefault(mo.group(1), []).append(float(mo.group(3)))
print(sorted(b) == ["ferry_commit_events", "ferry_commit_seconds"] and
      all(v == sorted(v) for v in b.values()))
EOF
)" True
is "ferry_spool_events = N" "$(m "$TMP/m1" ferry_spool_events)" $N
is "ferry_spool_last_seq = N" "$(m "$TMP/m1" ferry_spool_last_seq)" $N
is "ferry_spool_limit_bytes = max_size" \
    "$(m "$TMP/m1" ferry_spool_limit_bytes)" 8388608
like "ferry_spool_used_bytes > 0" "$(m "$TMP/m1" ferry_spool_used_bytes)" \
    '^[1-9][0-9]*$'
is "ferry_dedup_entries = N (remembered within the window)" \
    "$(m "$TMP/m1" ferry_dedup_entries)" $N
is "ferry_dedup_index_bytes: the smallest table, 1024 slots of 16 bytes" \
    "$(m "$TMP/m1" ferry_dedup_index_bytes)" 16384
is "no sink yet: no lag series" \
    "$(m "$TMP/m1" 'ferry_sink_lag_events{sink="web"}')" absent

ok "ferry-spool cursor web --set 3" "$FS" -d "$SPOOL" cursor web --set 3
ok "third scrape" scrape "$TMP/m2"
is "ferry_sink_lag_events{sink=web} = N - 3" \
    "$(m "$TMP/m2" 'ferry_sink_lag_events{sink="web"}')" $((N - 3))
is "ferry_sink_cursor{sink=web} = 3" \
    "$(m "$TMP/m2" 'ferry_sink_cursor{sink="web"}')" 3
post met application/json '{"n":99}' >/dev/null
ok "fourth scrape" scrape "$TMP/m3"
is "one more event: lag N - 2" \
    "$(m "$TMP/m3" 'ferry_sink_lag_events{sink="web"}')" $((N - 2))
is "one more event: spool events N + 1" \
    "$(m "$TMP/m3" ferry_spool_events)" $((N + 1))
is "every scrape line parses" "$(m "$TMP/m3" nothing)" absent
agent_stop
done_testing
