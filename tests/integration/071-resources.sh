#!/bin/sh
# 071-resources.sh: resource ceilings under sustained overload.  The real
# ferry-agent and ferry-forwarder, sampled from /proc/PID/status (RssAnon:
# the heap and stacks, not the spool's mapped file) and /proc/PID/fd
# every half second (tests/helpers/hostile.py sample).
#
#  1. 64 keep-alive connections (two client addresses) send NDJSON batches
#     of 100 events back to back for 22 s, ignoring Retry-After: more than
#     the agent can take.  For the first 10 s a forwarder (Avro files and
#     the test Kafka) drains and trims the 96 MiB spool; then it stops,
#     the spool fills, and the agent answers 503 for the rest.  Proves: the
#     agent's RssAnon stays under a bound derived from the configuration
#     (per connection: libmicrohttpd's pool, max_header + 32 KiB, three
#     body-sized buffers and the event array of max_events; the writer's
#     dirty pages; the dedup index of one window at the peak rate) and
#     does not grow from the first half of either phase (accepting, full)
#     to its second half;
#     only 200 or 503 (with Retry-After) is answered, no connection is
#     dropped; the dedup index holds about one [dedup] window of events,
#     not everything since the start; the fds come back to the baseline.
#  2. The forwarder drains the backlog the full spool left, first into Avro
#     files, then into Kafka: its RssAnon stays far under the backlog (it
#     reads in short batches; Kafka in flight is bounded by
#     queue.buffering.max.messages) and does not grow with it, its fds do
#     not grow with the files it rolls, the files hold every stored seq
#     exactly once, and the spool ends empty.
# The figures are printed as TAP comments ("# agent peak RssAnon ...").
# Under a sanitizer build (make SAN=1) the memory bounds are skipped:
# ASan's shadow and quarantine are not ferry's.
T=${FERRY_TESTS_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$T/lib.sh"
. "$T/agent-lib.sh"
. "$T/kafka/mock-lib.sh"
# Also clean up when the output pipe or the terminal goes away.
trap 'exit 1' HUP PIPE

HS="$PY $T/helpers/hostile.py"
FWD=$B/ferry-forwarder
AV=$TMP/avro
mkdir -p "$AV"
CONNS=64 BATCH=100 PAD=120 WINDOW=2
LOAD_A=10 LOAD_B=12		# seconds with and without the forwarder
MAX_BODY_K=64 MAX_HEADER_K=8 MAX_EVENTS=1000 MAX_SIZE_M=96
KAFKA_INFLIGHT=10000		# ferry's queue.buffering.max.messages
SAN=""
ldd "$B/ferry-agent" 2>/dev/null | grep -q -E 'libasan|libtsan' && SAN=yes

ms() { echo $(( $(date +%s%N) / 1000000 )); }
nfds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
anon() { sed -n 's/^RssAnon:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$1/status"; }
# memis NAME GOT WANT: "is", or a skip under a sanitizer.
memis() {
	if [ -n "$SAN" ]; then _result 0 "$1 # SKIP sanitizer build"; return 0; fi
	is "$@"
}
stat_py() {
	"$FS" -c "$CONF" stat --json 2>/dev/null | $PY -c '
import json, sys
s = json.load(sys.stdin)
print(eval(sys.argv[1]))' "$1"
}
lag() { stat_py 's["sinks"].get("'"$1"'", {}).get("lag", -1)'; }
# wait_lag SINK SECS: until SINK has delivered everything.
wait_lag() {
	_end=$(( $(date +%s) + $2 ))
	while [ "$(date +%s)" -le "$_end" ]; do
		[ "$(lag "$1")" = 0 ] && return 0
		sleep 0.2
	done
	echo "sink $1: lag $(lag "$1")"
	return 1
}
FPID=""
fwd_start() {
	"$FWD" -c "$1" >>"$TMP/fwd.log" 2>&1 &
	FPID=$!
	track $FPID
}
fwd_stop() {
	kill -TERM "$FPID" 2>/dev/null
	wait "$FPID"
	FWD_RC=$?
}
# sampler PID NAME EVERY: samples PID into $TMP/NAME.json until
# sampler_stop NAME.
sampler() {
	rm -f "$TMP/stop-$2"
	$HS sample "$1" --every "$3" --stop "$TMP/stop-$2" \
	    --out "$TMP/$2.json" &
	eval "SAMP_$2=$!"
	track $!
}
sampler_stop() { touch "$TMP/stop-$1"; eval "wait \$SAMP_$1"; }
# series NAME FROM HALF TO: figures of $TMP/NAME.json (kB, fds), with the
# halves [FROM, HALF) and [HALF, TO] in seconds; "key value" lines.
cat >"$TMP/series.py" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
lo, half, hi = (float(x) for x in sys.argv[2:5])
def mx(k, a, b):
    v = [x[k] for x in s if a <= x["t"] <= b and x[k] is not None]
    if not v:
        # No sample inside (a drain shorter than the sampling): the one
        # taken last before the window held through it.
        v = [x[k] for x in s if x["t"] < a and x[k] is not None][-1:]
    return max(v) if v else 0
print("samples", len(s))
print("peak_anon", mx("anon", 0, 1e9))
print("peak_rss", mx("rss", 0, 1e9))
print("hwm", mx("hwm", 0, 1e9))
print("first_anon", mx("anon", lo, half - 0.01))
print("second_anon", mx("anon", half, hi))
print("peak_fds", mx("fds", 0, 1e9))
print("last_fds", s[-1]["fds"] if s else -1)
# by second: the first sample at or after each whole second
sec, each = 0, []
for x in s:
    if x["t"] >= sec and x["anon"] is not None:
        each.append("%.1f" % (x["anon"] / 1024.0))
        sec = int(x["t"]) + 1
print("by_sec", " ".join(each))
EOF
series() { $PY "$TMP/series.py" "$TMP/$1.json" "$2" "$3" "$4" >"$TMP/$1.fig"; }
fig() { sed -n "s/^$2 //p" "$TMP/$1.fig"; }
mib() { awk "BEGIN { printf \"%.1f\", $1 / 1024 }"; }
# grows FIRST SECOND: 1 when SECOND exceeds FIRST by more than
# max(6 MiB, 15%): more than a step of the dedup index's doubling.
grows() { awk "BEGIN { s = $1 * 0.15; if (s < 6144) s = 6144
    print ($2 > $1 + s) ? 1 : 0 }"; }

# --- configuration ---------------------------------------------------------
mock_start -b 1 -p 4 -t ferry.load >"$TMP/mock.start" 2>&1
is "kafka-mock starts" "${BOOTSTRAP:+up}" up || { done_testing; exit 1; }
mkconf() {
	_f=$1; shift
	agent_conf "$_f" "max_body = ${MAX_BODY_K}KiB" \
	    "max_header = ${MAX_HEADER_K}KiB" "max_events = $MAX_EVENTS" \
	    "threads = 2" "idle_timeout = 5s" \
	    "[spool]" "max_size = ${MAX_SIZE_M}MiB" "retain = 0" \
	    "[dedup]" "window = ${WINDOW}s" "$@"
}
FILES_SINK="type = avro-files|dir = $AV|roll_count = 20000|roll_interval = 1s|codec = deflate"
KAFKA_SINK="type = kafka|brokers = $BOOTSTRAP|topic = ferry.{stream}"
# The lines of each sink's section, split at "|" into one argument each.
IFS_SAVE=$IFS
IFS='|'
mkconf "$TMP/fboth.conf" "[sink.files]" $FILES_SINK "[sink.kafka]" $KAFKA_SINK
mkconf "$TMP/ffiles.conf" "[sink.files]" $FILES_SINK "[spool]" "retain = 1h"
mkconf "$TMP/fkafka.conf" "[sink.kafka]" $KAFKA_SINK
IFS=$IFS_SAVE
mkconf "$TMP/a.conf"

# --- 1. the agent under overload, then full -----------------------------------
ok "agent starts" agent_start || { done_testing; exit 1; }
fwd_start "$TMP/fboth.conf"
sleep 1
A_FDS0=$(nfds "$APID")
A_ANON0=$(anon "$APID")
diag "agent idle: RssAnon $(mib "$A_ANON0") MiB, $A_FDS0 fds"
sampler "$APID" agent 0.5
sampler "$FPID" fwd1 0.5
L0=$(ms)
$HS load "$PORT" --out "$TMP/load.json" --secs $((LOAD_A + LOAD_B)) \
    --conns $CONNS --srcs 127.0.0.1,127.0.0.3 --batch $BATCH --pad $PAD \
    --stream load --tag L &
LP=$!
track $LP
sleep $((LOAD_A - 1))
DEDUP_AT=$(( $(ms) - L0 ))
DEDUP=$(stat_py 's["dedup_entries"]')
sleep 1
sampler_stop fwd1
fwd_stop
is "forwarder under overload: SIGTERM, exit 0" "$FWD_RC" 0
wait $LP
LOAD_END=$(( $(ms) - L0 ))
# the fds come back: at most 3 s after the load
i=0
while [ "$(nfds "$APID")" -gt "$A_FDS0" ] && [ $i -lt 30 ]; do
	sleep 0.1; i=$((i + 1))
done
A_FDS1=$(nfds "$APID")
sleep 1
sampler_stop agent

ld() { $PY -c 'import json,sys; r=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$TMP/load.json" "$1"; }
diag "load: $(ld '"%d requests, %s, %d events accepted, %d connections lost, max latency %.2f s" % (r["requests"], r["status"], r["accepted"], r["errors"], r["max_latency"])')"
diag "load per second [s, requests, accepted, 503s]: $(ld 'r["per_sec"]')"
PEAK_RATE=$(ld 'max(p[2] for p in r["per_sec"])')
is "overload: only 200 and 503 answered" \
    "$(ld 'sorted(set(r["status"]) - {"200", "503"})')" "[]"
like "overload: events accepted while the forwarder trimmed" \
    "$(ld 'r["status"].get("200", 0)')" '^[1-9][0-9]*$'
like "overload: 503 once the spool was full" \
    "$(ld 'r["status"].get("503", 0)')" '^[1-9][0-9]*$'
is "overload: every 503 carried Retry-After" \
    "$(ld 'r["retry_after"] == r["status"].get("503", 0)')" True
is "overload: no connection dropped by the agent" "$(ld 'r["errors"]')" 0
LAST=$(stat_py 's["last_seq"]')
is "overload: every accepted event got a seq (last_seq >= accepted)" \
    "$(ld "r['accepted'] <= $LAST")" True

# The dedup index: about one window of events, not all of them.
RECENT=$(ld "sum(p[2] for p in r['per_sec'] if $DEDUP_AT / 1000.0 - $WINDOW - 1 <= p[0] < $DEDUP_AT / 1000.0)")
TOTAL=$(ld "sum(p[2] for p in r['per_sec'] if p[0] < $DEDUP_AT / 1000.0)")
diag "dedup entries at ${DEDUP_AT} ms: $DEDUP; events accepted in the" \
    "$((WINDOW + 1)) s before: $RECENT; since the start: $TOTAL"
is "dedup entries under load <= 1.2 x the events of the last window + 1 s" \
    "$($PY -c "print($DEDUP <= 1.2 * $RECENT + 20000)")" True

# Halves of each phase: accepting [1, LOAD_A/2) and [LOAD_A/2, LOAD_A];
# full (from 4 s after the forwarder stopped) likewise.
series agent 1 $((LOAD_A / 2)).5 $LOAD_A
cp "$TMP/agent.fig" "$TMP/agent1.fig"
F0=$((LOAD_A + 4)) F1=$((LOAD_A + LOAD_B))
series agent $F0 $(( (F0 + F1) / 2 )) $F1
cp "$TMP/agent.fig" "$TMP/agent2.fig"
PER_CONN_K=$((MAX_HEADER_K + 32 + 3 * MAX_BODY_K + MAX_EVENTS * 128 / 1024))
DEDUP_K=$((46 * PEAK_RATE * (WINDOW + 2) / 1024))
BOUND_K=$((A_ANON0 + CONNS * PER_CONN_K + CONNS * 2 * MAX_BODY_K + DEDUP_K + 16384))
diag "agent peak RssAnon $(mib "$(fig agent peak_anon)") MiB" \
    "(accepting: $(mib "$(fig agent1 first_anon)") then" \
    "$(mib "$(fig agent1 second_anon)"); full: $(mib "$(fig agent2 first_anon)")" \
    "then $(mib "$(fig agent2 second_anon)")), peak VmRSS" \
    "$(mib "$(fig agent peak_rss)") MiB, VmHWM $(mib "$(fig agent hwm)") MiB"
diag "agent RssAnon by second (MiB): $(fig agent by_sec)"
diag "agent bound $(mib $BOUND_K) MiB = idle $(mib "$A_ANON0") + $CONNS conns x" \
    "${PER_CONN_K} KiB + writer $CONNS x 2 x max_body + dedup index" \
    "$(mib $DEDUP_K) (46 B x $PEAK_RATE/s x $((WINDOW + 2)) s) + 16 MiB"
diag "agent fds: $A_FDS0 idle, peak $(fig agent peak_fds), $A_FDS1 after"
memis "agent peak RssAnon under the configured bound" \
    "$(( $(fig agent peak_anon) <= BOUND_K ))" 1
memis "agent RssAnon does not grow from the first half of the accepting overload to the second" \
    "$(grows "$(fig agent1 first_anon)" "$(fig agent1 second_anon)")" 0
memis "agent RssAnon does not grow from the first half of the full-spool overload to the second" \
    "$(grows "$(fig agent2 first_anon)" "$(fig agent2 second_anon)")" 0
is "agent fds under overload <= idle + connections + 8" \
    "$(( $(fig agent peak_fds) <= A_FDS0 + CONNS + 8 ))" 1
is "agent fds back to idle within 3 s of the load" "$A_FDS1" "$A_FDS0"
series fwd1 1 $((LOAD_A / 2)) $LOAD_A
diag "forwarder (Avro + Kafka) during the overload: peak RssAnon" \
    "$(mib "$(fig fwd1 peak_anon)") MiB, by second: $(fig fwd1 by_sec)"
FWD_BOUND_F=24576
FWD_BOUND_K=$((24576 + KAFKA_INFLIGHT * (PAD + 1024 + 64) / 1024))
memis "forwarder during the overload: RssAnon under the Avro + Kafka bounds" \
    "$(( $(fig fwd1 peak_anon) <= FWD_BOUND_F + FWD_BOUND_K ))" 1

# --- 2. the forwarder drains the backlog the full spool left -------------------
# drain NAME CONF SINK: runs the forwarder on CONF until SINK's lag is 0,
# sampled every 0.1 s into $TMP/NAME.json (a drain can take under 0.5 s,
# and each half of it must hold a sample); then SIGTERM.
drain() {
	BACKLOG=$(lag "$3")
	fwd_start "$2"
	sampler "$FPID" "$1" 0.1
	_t0=$(ms)
	ok "forwarder to sink $3 drains a backlog of $BACKLOG events" \
	    wait_lag "$3" 60
	DRAIN_MS=$(( $(ms) - _t0 ))
	sleep 1
	F_FDS1=$(nfds "$FPID")
	sampler_stop "$1"
	# halves of the drain, after its first quarter (start-up)
	series "$1" $(awk "BEGIN { d = $DRAIN_MS / 1000
	    printf \"%.2f %.2f %.2f\", d / 4, d / 2, d }")
}
# backlog_mib EVENTS: the bodies' size, MiB
backlog_mib() { awk "BEGIN { printf \"%.0f\", $1 * ($PAD + 40) / 1048576 }"; }

drain fwdfiles "$TMP/ffiles.conf" files
diag "forwarder to Avro files: $BACKLOG events (~$(backlog_mib "$BACKLOG") MiB" \
    "of bodies) in $DRAIN_MS ms; peak RssAnon $(mib "$(fig fwdfiles peak_anon)")" \
    "MiB (bound $(mib $FWD_BOUND_F)), by second: $(fig fwdfiles by_sec);" \
    "fds peak $(fig fwdfiles peak_fds), $F_FDS1 after"
like "the full spool left a big backlog (> 100000 events)" "$BACKLOG" \
    '^[1-9][0-9]{5,}$'
memis "forwarder to Avro files: peak RssAnon under $(mib $FWD_BOUND_F) MiB" \
    "$(( $(fig fwdfiles peak_anon) <= FWD_BOUND_F ))" 1
memis "forwarder to Avro files: RssAnon does not grow with the backlog" \
    "$(grows "$(fig fwdfiles first_anon)" "$(fig fwdfiles second_anon)")" 0
is "forwarder to Avro files: fds do not grow with the files rolled" \
    "$(( $(fig fwdfiles peak_fds) <= F_FDS1 + 4 ))" 1
fwd_stop
is "forwarder (Avro files): SIGTERM, exit 0" "$FWD_RC" 0
is "the Avro files hold every stored seq once (1..$LAST, by their names)" \
    "$($PY - "$AV" <<'EOF'
import os, re, sys
rs = sorted((int(m.group(1)), int(m.group(2))) for m in
            (re.search(r"\.(\d{20})-(\d{20})\.avro$", f)
             for f in os.listdir(sys.argv[1])) if m)
n, nxt, gaps = 0, 1, []
for a, b in rs:
    if a != nxt:
        gaps.append((nxt, a))
    n += b - a + 1
    nxt = b + 1
print("1..%d %s" % (nxt - 1, gaps[:3]))
EOF
)" "1..$LAST []"

# The Kafka sink replays everything the spool holds (the files sink kept
# it: retain = 1h), so that its backlog is the full spool too.
FIRST=$(stat_py 's["first_seq"]')
"$FS" -c "$TMP/fkafka.conf" cursor kafka --set $((FIRST - 1)) >/dev/null
drain fwdkafka "$TMP/fkafka.conf" kafka
diag "forwarder to Kafka: $BACKLOG events (~$(backlog_mib "$BACKLOG") MiB" \
    "of bodies) in $DRAIN_MS ms; peak RssAnon $(mib "$(fig fwdkafka peak_anon)")" \
    "MiB (bound $(mib $FWD_BOUND_K)), by second: $(fig fwdkafka by_sec);" \
    "fds peak $(fig fwdkafka peak_fds), $F_FDS1 after"
memis "forwarder to Kafka: peak RssAnon under $(mib $FWD_BOUND_K) MiB" \
    "$(( $(fig fwdkafka peak_anon) <= FWD_BOUND_K ))" 1
memis "forwarder to Kafka: RssAnon does not grow with the backlog" \
    "$(grows "$(fig fwdkafka first_anon)" "$(fig fwdkafka second_anon)")" 0
is "forwarder to Kafka: fds do not grow" \
    "$(( $(fig fwdkafka peak_fds) <= F_FDS1 + 4 ))" 1
i=0
while [ "$(stat_py 's["events"]')" != 0 ] && [ $i -lt 50 ]; do
	sleep 0.1; i=$((i + 1))
done
is "both sinks have everything: the spool is trimmed empty" \
    "$(stat_py 's["events"]')" 0
fwd_stop
is "forwarder (Kafka): SIGTERM, exit 0" "$FWD_RC" 0
agent_stop
is "agent exits 0 on SIGTERM" "$AGENT_RC" 0
mock_stop
done_testing
