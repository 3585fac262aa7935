#!/bin/sh
# run.sh BUILD: `make bench`.  Measures ferry-agent's HTTP intake against two
# ceilings taken in the same run on the same machine: nginx answering 204
# (the HTTP ceiling) and raw LMDB appends with fsync per commit (the disk
# ceiling).  See tests/bench/README.md for what each figure means.
#
# Prints the machine, a table, and one line per figure:
#   BENCH name value unit
# Everything it writes lives under BUILD/bench/ (override: BENCH_DIR), on the
# repository's disk, not tmpfs: fsync is the point.  Logs and results stay
# there; the spool and the LMDB files are removed at the end.
# Knobs (environment): BENCH_SECS (10), BENCH_CONNS (64).
# Exit status: 0 all ran and the spool holds every acknowledged event;
# 1 something failed (said above the table).
set -eu

B=${1:-build}
HERE=$(cd "$(dirname "$0")" && pwd)
W=${BENCH_DIR:-$B/bench}
SECS=${BENCH_SECS:-10}
CONNS=${BENCH_CONNS:-64}
WARM=2
PY=/usr/bin/python3
HZ=$(getconf CLK_TCK)
STREAM=bench

mkdir -p "$W"
W=$(cd "$W" && pwd)
AGENT=$B/ferry-agent
SPOOLTOOL=$B/ferry-spool
NG=$W/nginx
SPOOL=$W/spool
LM=$W/lmdb
CONF=$W/agent.conf
RES=$W/results.txt
NGPID=""
APID=""
FAILED=""

fail() {
	echo "bench: FAIL: $*" >&2
	FAILED="$FAILED
  - $*"
}

cleanup() {
	if [ -n "$NGPID" ]; then kill "$NGPID" 2>/dev/null || true; fi
	if [ -n "$APID" ]; then kill "$APID" 2>/dev/null || true; fi
	if [ -n "$NGPID" ]; then wait "$NGPID" 2>/dev/null || true; fi
	if [ -n "$APID" ]; then wait "$APID" 2>/dev/null || true; fi
	rm -rf "$SPOOL" "$LM"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

free_port() {
	$PY -c 'import socket; s = socket.socket()
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# kv KEY LINE: the value of KEY=value in LINE.
kv() {
	printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n 1
}

# calc EXPR: awk arithmetic, printed with FMT (default %.0f).
calc() {
	awk "BEGIN { v = $1; printf \"${2:-%.0f}\", v }"
}

bench_line() {	# name value unit
	echo "BENCH $1 $2 $3" >>"$RES"
}

# wait_http URL CODE SECONDS: waits until URL answers CODE.
wait_http() {
	i=0
	while [ "$i" -lt $(($3 * 10)) ]; do
		c=$(curl -s -o /dev/null -w '%{http_code}' "$1" 2>/dev/null) || c=000
		[ "$c" = "$2" ] && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

# run_wrk NAME SCRIPT URL TAG SECS: runs wrk, keeps its output in
# $W/NAME.wrk, sets RPS and WRKLINE.
run_wrk() {
	out=$W/$1.wrk
	echo "\$ wrk -t2 -c$CONNS -d${5}s --latency -s $2 $3 -- $4" >"$out"
	wrk -t2 -c"$CONNS" -d"${5}s" --latency -s "$HERE/$2" "$3" -- "$4" \
	    >>"$out" 2>&1 || true
	RPS=$(sed -n 's/^Requests\/sec: *//p' "$out")
	WRKLINE=$(grep '^WRK ' "$out" || true)
	if [ -z "$RPS" ] || [ -z "$WRKLINE" ]; then
		fail "wrk $1: no result (see $out)"
		RPS=0
		WRKLINE="WRK requests=0 non2xx=0 sockerr=0 ok=0"
	fi
}

# snap: the agent's CPU ticks and bytes written to storage so far.
snap() {
	t=$(awk '{ print $14 + $15 }' "/proc/$APID/stat" 2>/dev/null) || t=0
	b=$(sed -n 's/^write_bytes: //p' "/proc/$APID/io" 2>/dev/null) || b=0
	echo "${t:-0} ${b:-0}"
}

# agent_usage SNAP0 SNAP1 SECS EVENTS: sets CORES (CPU cores the agent used on
# average) and WPE (bytes it wrote to storage per event).
agent_usage() {
	# shellcheck disable=SC2086 # each snapshot is two numbers
	set -- $1 $2 "$3" "$4"
	CORES=$(calc "($3 - $1) / $HZ / $5" %.2f)
	WPE=$(calc "$6 > 0 ? ($4 - $2) / $6 : 0")
}

agent_alive() {
	if [ -n "$APID" ] && kill -0 "$APID" 2>/dev/null; then
		return 0
	fi
	fail "ferry-agent is gone ($1); last lines of $W/agent.log:"
	tail -n 20 "$W/agent.log" >&2 || true
	APID=""
	return 1
}

: >"$RES"
rm -rf "$SPOOL" "$LM"

# --- the machine ----------------------------------------------------------
FSTYPE=$(df -T "$W" | awk 'NR == 2 { print $2 }')
FSDEV=$(df -T "$W" | awk 'NR == 2 { print $1 " on " $7 }')
CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
REV=$(git -C "$HERE" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$HERE" status --porcelain 2>/dev/null | head -n 1)" ]; then
	REV="$REV+uncommitted"
fi
echo "== ferry bench =="
echo "date:     $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "kernel:   $(uname -sr)"
echo "cpus:     $(nproc)  ($CPU)"
echo "memory:   $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
echo "disk:     $W: $FSTYPE ($FSDEV)"
echo "source:   $REV"
echo "tools:    $(wrk --version 2>&1 | head -n 1 | cut -d' ' -f1-2)," \
    "$(nginx -v 2>&1 | sed 's/^nginx version: //'), $($PY --version)"
echo "load:     wrk -t2 -c$CONNS -d${SECS}s (after ${WARM}s warm-up), loopback"
case $FSTYPE in
tmpfs|ramfs) fail "$W is on $FSTYPE: fsync costs nothing there; set BENCH_DIR" ;;
esac
echo

# --- 1. the disk ceiling: raw LMDB appends --------------------------------
echo "-- raw LMDB appends, 300-byte values, fsync per commit (5 s each)"
# shellcheck disable=SC2046 # pkg-config's flags are words
cc -std=c11 -O2 -Wall -Wextra -o "$W/lmdb-ceiling" "$HERE/lmdb-ceiling.c" \
    $(pkg-config --cflags --libs lmdb)
for n in 1 64 1000; do
	rm -rf "$LM"
	mkdir -p "$LM"
	if line=$("$W/lmdb-ceiling" "$LM" "$n" 5); then
		echo "   $line"
		eval "LM_C_$n=$(kv commits_per_s "$line")"
		eval "LM_V_$n=$(kv values_per_s "$line")"
		eval "LM_W_$n=$(kv write_bytes_per_value "$line")"
	else
		fail "lmdb-ceiling $n failed"
		eval "LM_C_$n=0 LM_V_$n=0 LM_W_$n=0"
	fi
done
rm -rf "$LM"

# --- 2. the HTTP ceiling: nginx return 204 --------------------------------
# nginx stays up until the paced runs are done: paced.py is run against it
# too, at the same rate, to show the latency the generator itself adds.
echo "-- nginx, return 204, same requests as the agent's single-event run"
rm -rf "$NG"
mkdir -p "$NG/tmp"
NGPORT=$(free_port)
cat >"$NG/nginx.conf" <<EOC
worker_processes auto;
pid $NG/nginx.pid;
error_log $NG/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	keepalive_requests 10000000;
	keepalive_timeout 60s;
	client_body_temp_path $NG/tmp/body;
	proxy_temp_path $NG/tmp/proxy;
	server {
		listen 127.0.0.1:$NGPORT;
		location / { return 204; }
	}
}
EOC
nginx -e stderr -p "$NG/" -c "$NG/nginx.conf" -g 'daemon off;' \
    >"$NG/stderr.log" 2>&1 &
NGPID=$!
NG_RPS=0
NGURL=http://127.0.0.1:$NGPORT/v1/events/$STREAM
if wait_http "http://127.0.0.1:$NGPORT/" 204 10; then
	run_wrk nginx-warm single.lua "$NGURL" nw "$WARM"
	run_wrk nginx single.lua "$NGURL" n1 "$SECS"
	NG_RPS=$RPS
	echo "   $NG_RPS req/s   $WRKLINE"
else
	fail "nginx did not start (see $NG/stderr.log)"
	cat "$NG/stderr.log" >&2 || true
	kill "$NGPID" 2>/dev/null || true
	wait "$NGPID" 2>/dev/null || true
	NGPID=""
fi

# --- 3. ferry-agent --------------------------------------------------------
A_RPS=0 A_LINE="" P_LINE="" PN_LINE="" BA_RPS=0 BA_LINE="" HWM_KB=0 ACKED=0
STORED="" A_CORES=0 A_WPE=0 BA_CORES=0 BA_WPE=0 RSS_NOTE=""
if [ ! -x "$AGENT" ]; then
	fail "$AGENT is not built"
else
	APORT=$(free_port)
	mkdir -p "$SPOOL"
	cat >"$CONF" <<EOC
# ferry-agent configuration written by tests/bench/run.sh
[agent]
listen = 127.0.0.1:$APORT
shutdown_delay = 0
shutdown_timeout = 10s
max_conns = 4096
max_conns_per_ip = 4096
log_level = warn

[spool]
dir = $SPOOL
max_size = 4GiB

[dedup]
window = 1h
json_key = id
EOC
	"$AGENT" -c "$CONF" >"$W/agent.log" 2>&1 &
	APID=$!
	if ! wait_http "http://127.0.0.1:$APORT/ready" 200 20; then
		fail "ferry-agent did not become ready (see $W/agent.log)"
		tail -n 20 "$W/agent.log" >&2 || true
		kill "$APID" 2>/dev/null || true
		wait "$APID" 2>/dev/null || true
		APID=""
	fi
fi
URL=http://127.0.0.1:${APORT:-0}/v1/events/$STREAM

if [ -n "$APID" ]; then
	echo "-- ferry-agent, single-event POSTs (application/json, unique Idempotency-Key)"
	run_wrk agent-warm single.lua "$URL" sw "$WARM"
	ACKED=$((ACKED + $(kv ok "$WRKLINE")))
	s0=$(snap)
	run_wrk agent single.lua "$URL" s1 "$SECS"
	s1=$(snap)
	A_RPS=$RPS A_LINE=$WRKLINE
	ACKED=$((ACKED + $(kv ok "$A_LINE")))
	agent_usage "$s0" "$s1" "$(kv secs "$A_LINE")" "$(kv requests "$A_LINE")"
	A_CORES=$CORES A_WPE=$WPE
	echo "   $A_RPS req/s   $A_LINE"
	echo "   agent used $A_CORES cores, wrote $A_WPE bytes to storage per event"
	agent_alive "after single-event run" || true
fi

# paced RUN TAG URL: paced.py at RATE; sets PLINE ("" on failure).
paced() {
	if PLINE=$($PY "$HERE/paced.py" --conns "$CONNS" --procs 2 --tag "$2" \
	    "$3" "$RATE" "$SECS" 2>"$W/$1.log"); then
		sed 's/^/   /' "$W/$1.log"
		echo "   $PLINE"
	else
		fail "paced.py against $1 failed (see $W/$1.log)"
		cat "$W/$1.log" >&2
		PLINE=""
	fi
}

if [ -n "$APID" ]; then
	RATE=$(calc "$A_RPS / 2")
	echo "-- ferry-agent, paced at half its peak: $RATE req/s for ${SECS}s (paced.py)"
	paced paced-agent p1 "$URL"
	P_LINE=$PLINE
	[ -z "$P_LINE" ] || ACKED=$((ACKED + $(kv ok "$P_LINE")))
	agent_alive "after paced run" || true
	if [ -n "$NGPID" ]; then
		echo "-- nginx, paced at the same rate (what the generator adds)"
		paced paced-nginx pn "$NGURL"
		PN_LINE=$PLINE
	fi
fi
if [ -n "$NGPID" ]; then
	kill "$NGPID" 2>/dev/null || true
	wait "$NGPID" 2>/dev/null || true
	NGPID=""
fi

if [ -n "$APID" ]; then
	echo "-- ferry-agent, NDJSON batches of 100 x 300-byte events (json_key = id)"
	run_wrk batch-warm ndjson.lua "$URL" bw "$WARM"
	ACKED=$((ACKED + 100 * $(kv ok "$WRKLINE")))
	s0=$(snap)
	run_wrk batch ndjson.lua "$URL" b1 "$SECS"
	s1=$(snap)
	BA_RPS=$RPS BA_LINE=$WRKLINE
	ACKED=$((ACKED + 100 * $(kv ok "$BA_LINE")))
	agent_usage "$s0" "$s1" "$(kv secs "$BA_LINE")" \
	    "$((100 * $(kv requests "$BA_LINE")))"
	BA_CORES=$CORES BA_WPE=$WPE
	echo "   $BA_RPS req/s   $BA_LINE"
	echo "   agent used $BA_CORES cores, wrote $BA_WPE bytes to storage per event"
	agent_alive "after batch run" || true
fi

if [ -n "$APID" ]; then
	HWM_KB=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' \
	    "/proc/$APID/status")
	RSS_NOTE=$(awk '/^(RssAnon|RssFile|RssShmem):/ {
	    printf "%s%s %.0f MiB", sep, $1, $2 / 1024; sep = ", " }' \
	    "/proc/$APID/status" | tr -d :)
	curl -s "http://127.0.0.1:$APORT/metrics" >"$W/metrics.txt" || true
	kill -TERM "$APID"
	i=0
	while kill -0 "$APID" 2>/dev/null && [ "$i" -lt 300 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	if kill -0 "$APID" 2>/dev/null; then
		fail "ferry-agent still running 30 s after SIGTERM; killed"
		kill -KILL "$APID" 2>/dev/null || true
	fi
	rc=0
	wait "$APID" || rc=$?
	APID=""
	[ "$rc" -eq 0 ] || fail "ferry-agent exited with status $rc after SIGTERM"
fi

# --- 4. did the spool keep what was acknowledged? --------------------------
if [ -f "$CONF" ] && [ -x "$AGENT" ]; then
	if "$SPOOLTOOL" -c "$CONF" --json stat >"$W/stat.json" 2>"$W/stat.err"
	then
		STORED=$($PY -c 'import json, sys
print(json.load(open(sys.argv[1]))["events"])' "$W/stat.json")
		echo "-- spool: $STORED events stored, $ACKED acknowledged (2xx)"
		[ "$STORED" -ge "$ACKED" ] ||
		    fail "the spool holds $STORED events but $ACKED were acknowledged"
	else
		fail "ferry-spool stat failed: $(cat "$W/stat.err")"
	fi
	ERRS=$(grep -ci 'error\|fatal\|assert' "$W/agent.log" || true)
	[ "$ERRS" -eq 0 ] ||
	    fail "agent.log has $ERRS error lines (see $W/agent.log)"
fi
rm -rf "$SPOOL"

# --- the table -------------------------------------------------------------
wrkv() {	# KEY LINE: KEY's value in LINE, 0 when absent
	v=$(kv "$1" "$2")
	echo "${v:-0}"
}
row() {		# FIGURE VALUE NOTE
	printf '%-40s %22s  %s\n' "$1" "$2" "$3"
}
# paced_rows LINE: the rows of one paced.py run
paced_rows() {
	row "  target / achieved rate" \
	    "$(kv target_rate "$1")/$(kv achieved_rate "$1") req/s" \
	    "non-2xx $(kv non2xx "$1"), errors $(kv errors "$1")"
	row "  p50/p99/p999 from due time" \
	    "$(kv p50_ms "$1")/$(kv p99_ms "$1")/$(kv p999_ms "$1") ms" \
	    "includes queueing and generator lag"
	row "  p50/p99/p999 from send" \
	    "$(kv svc_p50_ms "$1")/$(kv svc_p99_ms "$1")/$(kv svc_p999_ms "$1") ms" \
	    "server service time"
	row "  generator send lag p50/p99/max" \
	    "$(kv lag_p50_ms "$1")/$(kv lag_p99_ms "$1")/$(kv lag_max_ms "$1") ms" \
	    "large: paced.py fell behind"
}
A_P99=$(calc "$(wrkv p99_us "$A_LINE") / 1000" %.2f)
BA_P99=$(calc "$(wrkv p99_us "$BA_LINE") / 1000" %.2f)
BA_EPS=$(calc "$BA_RPS * 100")
BA_MBS=$(calc "$BA_RPS * 100 * 301 / 1000000" %.1f)
R_NG=$(calc "$NG_RPS > 0 ? $A_RPS / $NG_RPS : 0" %.2f)
R_64=$(calc "$LM_V_64 > 0 ? $A_RPS / $LM_V_64 : 0" %.2f)
R_1000=$(calc "$LM_V_1000 > 0 ? $BA_EPS / $LM_V_1000 : 0" %.2f)
HWM_MB=$(calc "${HWM_KB:-0} / 1024" %.1f)
c="" v="" wb=""

echo
echo "== results: ${SECS}s runs, $CONNS connections, 300-byte events, $FSTYPE =="
row "figure" "value" "goal / note"
row "1 nginx return 204 (HTTP ceiling)" "$(calc "$NG_RPS") req/s" \
    "p99 $(calc "$(wrkv p99_us "$(grep -h '^WRK ' "$W/nginx.wrk" 2>/dev/null)") / 1000" %.2f) ms"
row "2 agent single-event POSTs" "$(calc "$A_RPS") req/s" \
    "p99 $A_P99 ms (closed loop); non-2xx $(wrkv non2xx "$A_LINE"), socket errors $(wrkv sockerr "$A_LINE")"
row "  ratio to nginx" "$R_NG" "goal >= 0.5"
row "  agent CPU / storage writes" "$A_CORES cores" "$A_WPE bytes written per event"
if [ -n "$P_LINE" ]; then
	row "3 agent paced at half its peak" "" "goal p99 < 5 ms"
	paced_rows "$P_LINE"
fi
if [ -n "$PN_LINE" ]; then
	row "  control: nginx at the same rate" "" ""
	paced_rows "$PN_LINE"
fi
row "4 agent NDJSON batches of 100" "$BA_EPS ev/s" \
    "goal >= 500000; $(calc "$BA_RPS") req/s, p99 $BA_P99 ms"
row "  request bodies" "$BA_MBS MB/s" \
    "non-2xx $(wrkv non2xx "$BA_LINE"), socket errors $(wrkv sockerr "$BA_LINE")"
row "  agent CPU / storage writes" "$BA_CORES cores" "$BA_WPE bytes written per event"
row "5 agent peak RSS (VmHWM)" "$HWM_MB MiB" "at exit: ${RSS_NOTE:-?}"
for n in 1 64 1000; do
	eval "c=\$LM_C_$n v=\$LM_V_$n wb=\$LM_W_$n"
	row "6 raw LMDB, $n per txn" "$v val/s" \
	    "$c commits/s; $wb bytes written per value"
done
row "  agent single / LMDB 64 per txn" "$R_64" ""
row "  agent batch / LMDB 1000 per txn" "$R_1000" ""
row "spool events stored / acknowledged" "${STORED:-?}/$ACKED" \
    "stored must be >= acknowledged"
echo

bench_line nginx_rps "$(calc "$NG_RPS")" req/s
bench_line agent_single_rps "$(calc "$A_RPS")" req/s
bench_line agent_single_vs_nginx "$R_NG" ratio
bench_line agent_single_p99_closed_loop "$A_P99" ms
bench_line agent_single_non2xx "$(wrkv non2xx "$A_LINE")" requests
bench_line agent_single_cpu "$A_CORES" cores
bench_line agent_single_write_bytes "$A_WPE" bytes/event
if [ -n "$P_LINE" ]; then
	bench_line paced_target_rate "$(kv target_rate "$P_LINE")" req/s
	bench_line paced_achieved_rate "$(kv achieved_rate "$P_LINE")" req/s
	bench_line paced_p50 "$(kv p50_ms "$P_LINE")" ms
	bench_line paced_p99 "$(kv p99_ms "$P_LINE")" ms
	bench_line paced_p999 "$(kv p999_ms "$P_LINE")" ms
	bench_line paced_service_p99 "$(kv svc_p99_ms "$P_LINE")" ms
	bench_line paced_send_lag_p99 "$(kv lag_p99_ms "$P_LINE")" ms
fi
if [ -n "$PN_LINE" ]; then
	bench_line paced_nginx_p99 "$(kv p99_ms "$PN_LINE")" ms
fi
bench_line agent_batch_events_per_s "$BA_EPS" events/s
bench_line agent_batch_mb_per_s "$BA_MBS" MB/s
bench_line agent_batch_p99_closed_loop "$BA_P99" ms
bench_line agent_batch_non2xx "$(wrkv non2xx "$BA_LINE")" requests
bench_line agent_batch_cpu "$BA_CORES" cores
bench_line agent_batch_write_bytes "$BA_WPE" bytes/event
bench_line agent_peak_rss "$HWM_MB" MiB
for n in 1 64 1000; do
	eval "c=\$LM_C_$n v=\$LM_V_$n wb=\$LM_W_$n"
	bench_line "lmdb_n${n}_commits_per_s" "$c" commits/s
	bench_line "lmdb_n${n}_values_per_s" "$v" values/s
	bench_line "lmdb_n${n}_write_bytes" "$wb" bytes/value
done
bench_line agent_single_vs_lmdb_n64 "$R_64" ratio
bench_line agent_batch_vs_lmdb_n1000 "$R_1000" ratio
bench_line spool_stored "${STORED:-0}" events
bench_line spool_acknowledged "$ACKED" events
cat "$RES"
echo "(quote these with the machine above and the command, make bench;"
echo " wrk output, logs and the agent's /metrics are in $W/)"

if [ -n "$FAILED" ]; then
	echo
	echo "bench: FAILED:$FAILED"
	exit 1
fi
