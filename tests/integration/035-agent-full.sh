#!/bin/sh
# 035-agent-full.sh: a full spool refuses honestly and loses nothing.  With
# [spool] max_size = 1MiB, 1 KB events with distinct keys are sent (python
# http.client, keep-alive) until the answers turn 503.  Proves that:
#  - the 503 carries Retry-After and a JSON error saying the spool is full,
#    /ready turns 503 while /ping stays 200, and Backoff was sent first;
#  - every event answered 200 is in `ferry-spool ls --json` exactly once,
#    no event answered 503 is there, `ferry-spool check` passes;
#  - a retry of an event already stored is still answered as a duplicate;
#  - a restart with the same limit stays full and keeps everything; a
#    restart with max_size = 4MiB (data present) takes events again and
#    /ready is 200;
#  - the high watermark: Backoff appears above it and not below.
T=${FERRY_TESTS_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$T/lib.sh"
. "$T/agent-lib.sh"

A1='200 {"accepted":1,"duplicates":0}'
code() { echo "${1%% *}"; }
jerr() { printf '%s' "${1#* }" | $PY -c 'import json,sys
j=json.load(sys.stdin); e=j["error"]; assert isinstance(e,str) and e; print(e)'; }

agent_conf "$TMP/small.conf" "[spool]" "max_size = 1MiB"
ok "agent (max_size 1MiB) starts" agent_start || { done_testing; exit 1; }

cat >"$TMP/fill.py" <<'EOF'
# fill.py PORT OUT: 1 KB events, keys f-0, f-1, ... until 20 answers in a
# row are 503 (or 20000 requests).  Writes a JSON summary to OUT.
import http.client, json, sys
port, out = int(sys.argv[1]), sys.argv[2]
acked, refused, first503, backoff_before = [], [], None, False
c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
streak, i = 0, 0
while streak < 20 and i < 20000:
    key = "f-%d" % i
    body = json.dumps({"i": i, "pad": "x" * 1000})
    try:
        c.request("POST", "/v1/events/fill", body=body, headers={
            "Content-Type": "application/json", "Idempotency-Key": key})
        r = c.getresponse(); data = r.read()
    except (OSError, http.client.HTTPException):
        c.close(); continue            # same key again
    if r.status == 200:
        acked.append(key); streak = 0
        if r.getheader("Backoff") and not refused:
            backoff_before = True
    elif r.status == 503:
        refused.append(key); streak += 1
        if first503 is None:
            first503 = {"retry_after": r.getheader("Retry-After"),
                        "body": data.decode()}
    else:
        print("unexpected %d for %s: %s" % (r.status, key, data), file=sys.stderr)
        break
    i += 1
json.dump({"acked": acked, "refused": refused, "first503": first503,
           "backoff_before": backoff_before}, open(out, "w"))
EOF
$PY "$TMP/fill.py" "$PORT" "$TMP/fill.json"
f() { $PY -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$TMP/fill.json" "$1"; }
ACKED=$(f 'len(j["acked"])')
diag "filled: $ACKED acknowledged, $(f 'len(j["refused"])') refused"
like "some events fit in 1 MiB (200-1100)" "$ACKED" \
    '^([2-9][0-9]{2}|10[0-9]{2}|1100)$'
is "then 503s" "$(f 'len(j["refused"]) >= 20')" True
is "no 200 after the first 503 (refusals only at the end)" \
    "$(f 'j["acked"] == ["f-%d" % i for i in range(len(j["acked"]))]')" True
like "503: Retry-After in seconds" "$(f 'j["first503"]["retry_after"]')" \
    '^[1-9][0-9]*$'
R="503 $(f 'j["first503"]["body"]')"
ok "503: JSON error" jerr "$R"
like "503: error says the spool is full" "$(jerr "$R")" '[Ff]ull'
is "Backoff was sent before the spool was full" \
    "$(f 'j["backoff_before"]')" True
R=$(get /ready)
is "full: /ready 503" "$(code "$R")" 503
like "full: /ready says why" "$R" '[Ff]ull'
is "full: /ping 200" "$(get /ping)" "200 pong"
R=$(post fill application/json '{"late":1}' -H 'Idempotency-Key: late-1')
is "full: a new event 503" "$(code "$R")" 503
like "full: Retry-After on it" "$(hdr Retry-After)" '^[1-9][0-9]*$'
is "full: a retry of a stored event is still a duplicate (200)" \
    "$(post fill application/json \
    '{"i": 0, "pad": "retry"}' -H 'Idempotency-Key: f-0')" \
    '200 {"accepted":0,"duplicates":1}'
R=$(get /ready)
is "full: /ready still 503 after a commit of duplicates only" "$(code "$R")" 503

# check: every acked key once, no refused key, prints a verdict.
check_spool() {
	spool_ls || { echo "ls failed: $(cat "$TMP/ls.err")"; return; }
	$PY - "$TMP/fill.json" "$TMP/ls.json" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
keys = [json.loads(l)["key"] for l in open(sys.argv[2])]
count = {}
for k in keys:
    count[k] = count.get(k, 0) + 1
bad = [k for k in j["acked"] if count.get(k) != 1]
leaked = [k for k in j["refused"] + ["late-1"] if k in count]
twice = [k for k, n in count.items() if n > 1]
print("missing %s leaked %s twice %s" % (bad[:5], leaked[:5], twice[:5]))
EOF
}
OKV="missing [] leaked [] twice []"
is "every 200 stored once, no 503 stored" "$(check_spool)" "$OKV"
ok "ferry-spool check passes on the full spool" "$FS" -d "$SPOOL" check

# --- restart with the same limit: still full, nothing lost ---------------
agent_stop
is "SIGTERM on a full spool: exit 0" "$AGENT_RC" 0
ok "agent restarts on the full spool" agent_start
is "restart, same limit: /ready 503 before any POST" "$(code "$(get /ready)")" 503
is "restart, same limit: still 503" "$(code "$(post fill \
    application/json '{"late":2}' -H 'Idempotency-Key: late-1')")" 503
is "restart, same limit: /ready 503" "$(code "$(get /ready)")" 503
is "restart, same limit: everything still there" "$(check_spool)" "$OKV"

# --- drain cursor, then a larger limit with the data present -------------
LAST=$($FS -d "$SPOOL" --json stat | $PY -c 'import json,sys
j=json.load(sys.stdin); print(j.get("last_seq", j.get("next_seq", 0) - 1))')
ok "ferry-spool cursor drain --set $LAST" "$FS" -d "$SPOOL" cursor drain \
    --set "$LAST"
agent_stop
agent_conf "$TMP/big.conf" "[spool]" "max_size = 4MiB"
ok "agent restarts with max_size = 4MiB" agent_start
is "4MiB: a new event 200" "$(post fill application/json '{"new":1}' \
    -H 'Idempotency-Key: new-1')" "$A1"
is "4MiB, 1 of 4 MiB used, watermark 80: no Backoff" "$(hdr Backoff)" ""
is "4MiB: /ready 200" "$(code "$(get /ready)")" 200
is "4MiB: old events all still there" "$(check_spool)" "$OKV"
spool_ls
is "4MiB: the new event after the old ones" "$(spool_py \
    "[e['key'] for e in evs][-1] == 'new-1' and len(evs) == $ACKED + 1")" \
    True
ok "ferry-spool check passes" "$FS" -d "$SPOOL" check
agent_stop

# --- high watermark ------------------------------------------------------
agent_conf "$TMP/hw.conf" "[spool]" "max_size = 4MiB" "high_watermark = 1"
ok "agent with high_watermark = 1 starts" agent_start
is "above the watermark: 200" "$(post fill application/json '{"new":2}' \
    -H 'Idempotency-Key: new-2')" "$A1"
like "above the watermark: Backoff: SECONDS" "$(hdr Backoff)" '^[1-9][0-9]*$'
is "a duplicate above the watermark: 200" "$(post fill application/json \
    '{"new":2}' -H 'Idempotency-Key: new-2')" \
    '200 {"accepted":0,"duplicates":1}'
agent_stop

# --- reserve: zeros written ahead of the pages in use, never past max_size -
size_of() { stat -c %s "$SPOOL/data.mdb"; }
# Waits up to 5 s for data.mdb to reach $1 bytes; prints its size.
size_reaches() {
	_i=0
	while [ "$(size_of)" -lt "$1" ] && [ $_i -lt 50 ]; do
		sleep 0.1; _i=$((_i + 1))
	done
	size_of
}
file_bytes() { "$FS" -d "$SPOOL" stat --json | $PY -c \
    'import json,sys; print(json.load(sys.stdin)["file_bytes"])'; }
SPOOL=$TMP/rspool
agent_conf "$TMP/r1.conf" "[spool]" "max_size = 1MiB"
ok "max_size 1MiB, default reserve: starts" agent_start
is "the default reserve (64MiB) stops at max_size: data.mdb is 1 MiB" \
    "$(size_reaches 1048576)" 1048576
agent_stop
rm -rf "$SPOOL"
agent_conf "$TMP/r0.conf" "[spool]" "max_size = 64MiB" "reserve = 0"
ok "reserve = 0: starts" agent_start
is "reserve = 0: an event 200" "$(post fill application/json '{"r":0}' \
    -H 'Idempotency-Key: r-0')" "$A1"
sleep 0.3
is "reserve = 0: data.mdb ends at its last page" "$(size_of)" \
    "$(file_bytes)"
agent_stop
agent_conf "$TMP/r8.conf" "[spool]" "max_size = 64MiB" "reserve = 8MiB"
ok "reserve = 8MiB: starts" agent_start
want=$(( $(file_bytes) + 8388608 ))
is "reserve = 8MiB: data.mdb is 8 MiB past its last page" \
    "$(size_reaches $want)" "$want"
n=0
for i in $(seq 1 40); do
	r=$(post fill application/json "{\"r\":$i,\"pad\":\"$(printf '%0900d' 0)\"}" \
	    -H "Idempotency-Key: r-$i")
	[ "$r" = "$A1" ] && n=$((n + 1))
done
is "reserve = 8MiB: 40 events 200" "$n" 40
is "reserve = 8MiB: they went into the reserved blocks (size unchanged)" \
    "$(size_of)" "$want"
agent_stop
ok "reserve = 8MiB: ferry-spool check passes" "$FS" -d "$SPOOL" check
spool_ls
is "reserve = 8MiB: all 41 events listed once" "$(spool_py \
    "sorted(e['key'] for e in evs) == sorted(['r-%d' % i for i in range(41)])")" \
    True
done_testing
