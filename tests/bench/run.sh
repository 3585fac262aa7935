#!/bin/sh
# run.sh BUILD: `make bench`.  Measures ferry-agent's HTTP intake against two
# ceilings taken in the same run on the same machine: nginx answering 204
# (the HTTP ceiling) and raw LMDB appends with fsync per commit (the disk
# ceiling).  Then ferry-forwarder's drain rates: to the test Kafka (kcat on
# the same mock cluster is the ceiling) and to Avro files (the intake's
# batch rate is the bar).  See tests/bench/README.md for each figure.
#
# Prints the machine, a table, and one line per figure:
#   BENCH name value unit
# Everything it writes lives under BUILD/bench/ (override: BENCH_DIR), on the
# repository's disk, not tmpfs: fsync is the point.  Logs and results stay
# there; the spool and the LMDB files are removed at the end.
# Knobs (environment): BENCH_SECS (10), BENCH_CONNS (64), BENCH_FWD_EVENTS
# (200000), BENCH_FWD_ROUNDS (3), BENCH_FWD_TIMEOUT (30 s a drain).
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
FAPID=""
MOCKPID=""
FAILED=""

fail() {
	echo "bench: FAIL: $*" >&2
	FAILED="$FAILED
  - $*"
}

cleanup() {
	if [ -n "$NGPID" ]; then kill "$NGPID" 2>/dev/null || true; fi
	if [ -n "$APID" ]; then kill "$APID" 2>/dev/null || true; fi
	if [ -n "$FAPID" ]; then kill "$FAPID" 2>/dev/null || true; fi
	if [ -n "$MOCKPID" ]; then kill "$MOCKPID" 2>/dev/null || true; fi
	if [ -n "$NGPID" ]; then wait "$NGPID" 2>/dev/null || true; fi
	if [ -n "$APID" ]; then wait "$APID" 2>/dev/null || true; fi
	if [ -n "$FAPID" ]; then wait "$FAPID" 2>/dev/null || true; fi
	if [ -n "$MOCKPID" ]; then wait "$MOCKPID" 2>/dev/null || true; fi
	rm -rf "$SPOOL" "$LM" "$W/fwd-src" "$W/fwd-spool" "$W/fwd-avro" \
	    "$W/fwd-events.ndjson" "$W/fwd-events.kv" "$W/kmock.in"
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
    "$(nginx -v 2>&1 | sed 's/^nginx version: //'), $($PY --version),"
echo "          kcat $(kcat -V 2>&1 | sed -n 's/^Version \([^ ]*\) .*librdkafka \([^ ]*\) .*/\1 (librdkafka \2)/p')"
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

# --- 5. ferry-forwarder: drain rates to Kafka and to Avro files -------------
# One spool of FN events is filled through a fresh agent (NDJSON, json_key =
# id, so that every event has its idempotency key), kept in $FSRC and copied
# afresh for every drain.  Kafka is the test Kafka (librdkafka's mock
# cluster, 3 brokers); its ceiling is kcat producing the same messages to
# it, in the same rounds.  See README.md, figures 7-9.
FWD=$B/ferry-forwarder
MOCK=$B/tests/kafka-mock
FN=${BENCH_FWD_EVENTS:-200000}
FR=${BENCH_FWD_ROUNDS:-5}
FT=${BENCH_FWD_TIMEOUT:-30}
FSRC=$W/fwd-src
FSPOOL=$W/fwd-spool
FAV=$W/fwd-avro
FEV=$W/fwd-events
# The Avro files roll every FROLL events (roll_count), so that the last one
# is published, and the cursor reaches the last seq, as soon as the last
# event is written.  roll_size stays 64MiB: a file of at most 150,000
# events (~400 bytes each in the envelope, before compression) stays below.
FFILES=$(((FN + 149999) / 150000))
[ "$FFILES" -ge 4 ] || FFILES=4
FN=$((FN / FFILES * FFILES))
FROLL=$((FN / FFILES))
FILLED="" BOOT="" FILL_LINE=""
K_SECS="" K_FIRST="" K_STEADY="" K_CPU=0 K_TSECS=0 K_HWM=0 K_ANON=0 K_OK=0
KC_SECS="" KC_CPU=0 KC_TSECS=0 KC_RSS=0 KC_OK=0
FWD_T0=$(date +%s)

kvn() {		# KEY LINE: KEY's value in LINE, 0 when absent
	v=$(kv "$1" "$2")
	echo "${v:-0}"
}
maxof() { calc "$1 > $2 ? $1 : $2"; }
# med LIST: the median of the numbers in LIST (0 when empty).
med() {
	# shellcheck disable=SC2086 # a list of numbers
	printf '%s\n' $1 | sort -n |
	    awk 'NF { a[++n] = $1 } END { print n ? a[int((n + 1) / 2)] : 0 }'
}
# rates LIST: FN / each time in LIST, in thousands a second.
rates() {
	for _s in $1; do
		printf '%sk ' "$(calc "$FN / $_s / 1000")"
	done | sed 's/ $//'
}

# fwd_copy: a fresh copy of the filled spool, written to disk.
fwd_copy() {
	rm -rf "$FSPOOL"
	cp -a "$FSRC" "$FSPOOL"
	sync "$FSPOOL"/*.mdb 2>/dev/null || sync
}

# fwd_conf FILE LINES...: a forwarder configuration with the sink LINES.
fwd_conf() {
	_f=$1
	shift
	{
		echo "# ferry-forwarder configuration written by tests/bench/run.sh"
		echo "[agent]"
		echo "shutdown_timeout = 10s"
		echo "[spool]"
		echo "dir = $FSPOOL"
		echo "max_size = 4GiB"
		printf '%s\n' "$@"
	} >"$_f"
}

# fwd_drain NAME SINK CONF ROUND: one drain of a fresh copy by fwd.py; sets
# DLINE (its FWD line) and DOK (1 when it ran clean).
fwd_drain() {
	fwd_copy
	_log=$W/fwd-$1-$4.log
	rm -f "$_log" "$_log.progress"
	DLINE=$($PY "$HERE/fwd.py" drain --forwarder "$FWD" \
	    --spool-tool "$SPOOLTOOL" --conf "$3" --sink "$2" --last "$FN" \
	    --timeout "$FT" --log "$_log") || DLINE="FWD ok=0 why=fwd.py_failed"
	DOK=$(kvn ok "$DLINE")
	_s=$(kvn secs "$DLINE")
	printf '   %-13s round %s: %6.3f s %7s ev/s (first move %5.3f s, then %7s ev/s)  cpu %5s s  VmHWM %5s MiB  RssAnon %5s MiB\n' \
	    "$1" "$4" "$_s" "$(calc "$_s > 0 ? $FN / $_s : 0")" \
	    "$(kvn first_s "$DLINE")" "$(kvn steady "$DLINE")" \
	    "$(kvn cpu_s "$DLINE")" "$(calc "$(kvn hwm_kb "$DLINE") / 1024" %.1f)" \
	    "$(calc "$(kvn anon_kb "$DLINE") / 1024" %.1f)"
	if [ "$DOK" != 1 ]; then
		fail "ferry-forwarder ($1, round $4): $(kv why "$DLINE" | tr _ ' ') (see $_log and $_log.progress)"
		tail -n 20 "$_log" >&2 || true
		DOK=0
	fi
	_bad=$(grep -Ec ': (warn|error): ' "$_log" || true)
	if [ "$_bad" -gt 0 ]; then
		fail "ferry-forwarder ($1, round $4): $_bad warn/error lines in $_log"
		grep -E ': (warn|error): ' "$_log" | head -n 10 >&2
		DOK=0
	fi
}

# fwd_avro CODEC: FR drains to Avro files with CODEC; sets A_SECS, A_FIRST,
# A_STEADY (lists over the clean rounds), A_OK, A_CPU and A_TSECS (sums),
# A_HWM, A_ANON (KiB, the largest), A_BYTES, A_FILES and A_RECORDS (of the
# last round's files).
fwd_avro() {
	A_SECS="" A_FIRST="" A_STEADY="" A_OK=0 A_CPU=0 A_TSECS=0 A_HWM=0
	A_ANON=0 A_BYTES=0 A_FILES=0 A_RECORDS=0
	fwd_conf "$W/fwd-avro-$1.conf" "[sink.files]" "type = avro-files" \
	    "dir = $FAV" "codec = $1" "roll_size = 64MiB" \
	    "roll_count = $FROLL"
	r=1
	while [ "$r" -le "$FR" ]; do
		rm -rf "$FAV"
		mkdir -p "$FAV"
		fwd_drain "avro-$1" files "$W/fwd-avro-$1.conf" "$r"
		# Exactly once: the published names cover 1..FN, and avrocat
		# counts the records of the last round's files.
		if [ "$r" -eq "$FR" ]; then
			_a=$($PY "$HERE/fwd.py" avrocheck "$FAV" 1 "$FN" --count)
			A_FILES=$(kvn files "$_a") A_BYTES=$(kvn bytes "$_a")
			A_RECORDS=$(kvn records "$_a")
		else
			_a=$($PY "$HERE/fwd.py" avrocheck "$FAV" 1 "$FN")
		fi
		if [ "$DOK" = 1 ] && [ "$(kv ok "$_a")" != 1 ]; then
			fail "avro-files ($1, round $r): $(kv why "$_a" | tr _ ' ')"
			DOK=0
		fi
		if [ "$DOK" = 1 ]; then
			A_SECS="$A_SECS $(kvn secs "$DLINE")" A_OK=$((A_OK + 1))
			A_FIRST="$A_FIRST $(kvn first_s "$DLINE")"
			A_STEADY="$A_STEADY $(kvn steady "$DLINE")"
			A_CPU=$(calc "$A_CPU + $(kvn cpu_s "$DLINE")" %.2f)
			A_TSECS=$(calc "$A_TSECS + $(kvn secs "$DLINE")" %.3f)
		fi
		A_HWM=$(maxof "$A_HWM" "$(kvn hwm_kb "$DLINE")")
		A_ANON=$(maxof "$A_ANON" "$(kvn anon_kb "$DLINE")")
		r=$((r + 1))
	done
	echo "   avro-files $1: last round $A_FILES files," \
	    "$(calc "$A_BYTES / 1000000" %.1f) MB, $A_RECORDS records (avrocat)"
}

echo "-- ferry-forwarder: $FN events of 300 bytes, $FR rounds of each drain"
if [ ! -x "$FWD" ] || [ ! -x "$MOCK" ] || [ ! -x "$AGENT" ]; then
	fail "$FWD, $MOCK or $AGENT is not built"
elif ! $PY "$HERE/fwd.py" gen "$FN" "$FEV.ndjson" "$FEV.kv"; then
	fail "fwd.py gen failed"
else
	rm -rf "$FSRC"
	mkdir -p "$FSRC"
	FPORT=$(free_port)
	cat >"$W/fwd-fill.conf" <<EOC
# ferry-agent configuration written by tests/bench/run.sh (forwarder fill)
[agent]
listen = 127.0.0.1:$FPORT
shutdown_delay = 0
log_level = warn
[spool]
dir = $FSRC
max_size = 4GiB
[dedup]
window = 1h
json_key = id
EOC
	"$AGENT" -c "$W/fwd-fill.conf" >"$W/fwd-fill.log" 2>&1 &
	FAPID=$!
	if ! wait_http "http://127.0.0.1:$FPORT/ready" 200 20; then
		fail "ferry-agent (forwarder fill) did not become ready (see $W/fwd-fill.log)"
	elif ! FILL_LINE=$($PY "$HERE/fwd.py" fill \
	    "http://127.0.0.1:$FPORT/v1/events/$STREAM" "$FEV.ndjson" 1000); then
		fail "filling the forwarder's spool failed"
	else
		echo "   filled through the agent, batches of 1000: $FILL_LINE"
	fi
	kill -TERM "$FAPID" 2>/dev/null || true
	rc=0
	wait "$FAPID" || rc=$?
	FAPID=""
	[ "$rc" -eq 0 ] || fail "ferry-agent (forwarder fill) exited with status $rc"
	st=$("$SPOOLTOOL" -d "$FSRC" --json stat 2>&1) || true
	got=$(printf '%s' "$st" | $PY -c 'import json, sys
s = json.load(sys.stdin)
print(s["events"], s["first_seq"], s["last_seq"])' 2>/dev/null) || true
	if [ "$got" = "$FN 1 $FN" ]; then
		FILLED=1
	else
		fail "the forwarder's spool does not hold seqs 1..$FN ($got)"
	fi
fi

if [ -n "$FILLED" ]; then
	rm -f "$W/kmock.in"
	mkfifo "$W/kmock.in"
	# Empty now: the mock's own ">" happens only once the FIFO opens, so a
	# kmock.out left by an earlier run would look like its address.
	: >"$W/kmock.out"
	"$MOCK" -b 3 -p 4 -t bench.fwd -t bench.kcat <"$W/kmock.in" \
	    >"$W/kmock.out" 2>"$W/kmock.err" &
	MOCKPID=$!
	# fd 9 holds the FIFO open: the mock sees no end of input until quit.
	exec 9>"$W/kmock.in"
	i=0
	while [ ! -s "$W/kmock.out" ] && [ "$i" -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	BOOT=$(head -n 1 "$W/kmock.out")
	case $BOOT in
	127.0.0.1:*)
		echo "   kafka-mock: 3 brokers ($BOOT)," \
		    "topics bench.fwd and bench.kcat of 4 partitions" ;;
	*)
		fail "kafka-mock did not start: $(cat "$W/kmock.err")"
		BOOT="" ;;
	esac
fi
# The mock picks each partition's leader at random, so the two topics could
# differ: all four partitions on one broker (one producer thread compressing
# everything) for one, spread over three for the other.  Both get the same
# leaders, partition P on broker P % 3 + 1, and the layout is checked.
if [ -n "$BOOT" ]; then
	for t in bench.fwd bench.kcat; do
		for p in 0 1 2 3; do
			echo "leader $t $p $((p % 3 + 1))" >&9
		done
	done
	i=0
	while [ "$(grep -c '^ok$' "$W/kmock.out")" -lt 8 ] && [ "$i" -lt 50 ]
	do
		sleep 0.1
		i=$((i + 1))
	done
	for t in bench.fwd bench.kcat; do
		l=$(kcat -L -b "$BOOT" -t "$t" 2>>"$W/kcat.log" |
		    awk '$1 == "partition" { printf "%s", $4 }' | tr -d ,)
		if [ "$l" = 1231 ]; then
			echo "   topic $t: partitions 0-3 led by brokers 1 2 3 1"
		else
			fail "topic $t: leaders \"$l\", not 1231 (see $W/kmock.out)"
			BOOT=""
		fi
	done
fi

if [ -n "$BOOT" ]; then
	fwd_conf "$W/fwd-kafka.conf" "[sink.kafka]" "type = kafka" \
	    "brokers = $BOOT" "topic = bench.fwd" "format = raw" \
	    "key = idempotency"
	: >"$W/kcat.log"
	r=1
	while [ "$r" -le "$FR" ]; do
		# The ceiling: kcat -P exits once every message is delivered
		# (it flushes before it exits).  The same messages: keys,
		# values, and the four headers the forwarder adds (ferry-id,
		# -stream, -received-ms, -seq), with values of the same
		# lengths; the same partitioner and producer settings.
		line=$($PY "$HERE/fwd.py" time "$FEV.kv" kcat -P -b "$BOOT" \
		    -t bench.kcat -X acks=all -X enable.idempotence=true \
		    -X compression.codec=lz4 -X partitioner=murmur2_random \
		    -H "ferry-id=$(printf '%032x' 7)" \
		    -H "ferry-stream=$STREAM" \
		    -H "ferry-received-ms=$(date +%s%3N)" \
		    -H "ferry-seq=$FN" \
		    -K: 2>>"$W/kcat.log") || line="TIME rc=1"
		_s=$(kvn secs "$line")
		printf '   %-13s round %s: %6.3f s %7s ev/s  cpu %5s s  maxrss %5s MiB\n' \
		    kcat "$r" "$_s" "$(calc "$_s > 0 ? $FN / $_s : 0")" \
		    "$(kvn cpu_s "$line")" "$(calc "$(kvn maxrss_kb "$line") / 1024" %.1f)"
		if [ "$(kv rc "$line")" = 0 ]; then
			KC_SECS="$KC_SECS $_s" KC_OK=$((KC_OK + 1))
			KC_CPU=$(calc "$KC_CPU + $(kvn cpu_s "$line")" %.2f)
			KC_TSECS=$(calc "$KC_TSECS + $_s" %.3f)
			KC_RSS=$(maxof "$KC_RSS" "$(kvn maxrss_kb "$line")")
		else
			fail "kcat -P (round $r) failed (see $W/kcat.log)"
		fi
		fwd_drain kafka kafka "$W/fwd-kafka.conf" "$r"
		if [ "$DOK" = 1 ]; then
			K_SECS="$K_SECS $(kvn secs "$DLINE")" K_OK=$((K_OK + 1))
			K_FIRST="$K_FIRST $(kvn first_s "$DLINE")"
			K_STEADY="$K_STEADY $(kvn steady "$DLINE")"
			K_CPU=$(calc "$K_CPU + $(kvn cpu_s "$DLINE")" %.2f)
			K_TSECS=$(calc "$K_TSECS + $(kvn secs "$DLINE")" %.3f)
		fi
		K_HWM=$(maxof "$K_HWM" "$(kvn hwm_kb "$DLINE")")
		K_ANON=$(maxof "$K_ANON" "$(kvn anon_kb "$DLINE")")
		r=$((r + 1))
	done
	# Every run delivered each message once: the end offsets of a topic
	# add up to the messages produced to it.
	for t in bench.fwd bench.kcat; do
		n=$(kcat -Q -b "$BOOT" -t "$t:0:-1" -t "$t:1:-1" -t "$t:2:-1" \
		    -t "$t:3:-1" 2>>"$W/kcat.log" |
		    awk '$3 == "offset" { s += $4 } END { print s + 0 }')
		if [ "$t" = bench.fwd ]; then ok=$K_OK; else ok=$KC_OK; fi
		echo "   topic $t: $n messages (end offsets), $ok clean runs of $FN"
		if [ "$ok" -eq "$FR" ] && [ "$n" -ne $((FN * FR)) ]; then
			fail "topic $t holds $n messages, not $((FN * FR))"
		fi
	done
fi

AD_SECS="" AD_FIRST="" AD_STEADY="" AD_OK=0 AD_CPU=0 AD_TSECS=0 AD_HWM=0
AD_ANON=0 AD_BYTES=0
AN_SECS="" AN_FIRST="" AN_STEADY="" AN_OK=0 AN_CPU=0 AN_TSECS=0 AN_HWM=0
AN_ANON=0 AN_BYTES=0
if [ -n "$FILLED" ]; then
	fwd_avro deflate
	AD_SECS=$A_SECS AD_FIRST=$A_FIRST AD_STEADY=$A_STEADY AD_OK=$A_OK
	AD_CPU=$A_CPU AD_TSECS=$A_TSECS AD_HWM=$A_HWM AD_ANON=$A_ANON
	AD_BYTES=$A_BYTES
	fwd_avro null
	AN_SECS=$A_SECS AN_FIRST=$A_FIRST AN_STEADY=$A_STEADY AN_OK=$A_OK
	AN_CPU=$A_CPU AN_TSECS=$A_TSECS AN_HWM=$A_HWM AN_ANON=$A_ANON
	AN_BYTES=$A_BYTES
fi

if [ -n "$MOCKPID" ]; then
	echo quit >&9 2>/dev/null || true
	exec 9>&-
	i=0
	while kill -0 "$MOCKPID" 2>/dev/null && [ "$i" -lt 50 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	kill "$MOCKPID" 2>/dev/null || true
	wait "$MOCKPID" 2>/dev/null || true
	MOCKPID=""
fi
rm -rf "$FSRC" "$FSPOOL" "$FAV" "$FEV.ndjson" "$FEV.kv" "$W/kmock.in"
FWD_SECS=$(($(date +%s) - FWD_T0))
echo "   (forwarder part: $FWD_SECS s)"

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
# the forwarder's figures: medians over the clean rounds, N x 300 bytes
eps() { calc "$1 > 0 ? $FN / $1 : 0"; }
mbs() { calc "$1 > 0 ? $FN * 300 / $1 / 1000000 : 0" %.1f; }
K_MED=$(med "$K_SECS") KC_MED=$(med "$KC_SECS")
AD_MED=$(med "$AD_SECS") AN_MED=$(med "$AN_SECS")
K_EPS=$(eps "$K_MED") K_MBS=$(mbs "$K_MED")
KC_EPS=$(eps "$KC_MED") KC_MBS=$(mbs "$KC_MED")
AD_EPS=$(eps "$AD_MED") AD_MBS=$(mbs "$AD_MED")
AN_EPS=$(eps "$AN_MED") AN_MBS=$(mbs "$AN_MED")
R_KC=$(calc "$KC_EPS > 0 ? $K_EPS / $KC_EPS : 0" %.2f)
K_FIRST_MED=$(med "$K_FIRST") K_STEADY_MED=$(med "$K_STEADY")
AD_FIRST_MED=$(med "$AD_FIRST") AD_STEADY_MED=$(med "$AD_STEADY")
AN_FIRST_MED=$(med "$AN_FIRST") AN_STEADY_MED=$(med "$AN_STEADY")
R_AD=$(calc "$BA_EPS > 0 ? $AD_EPS / $BA_EPS : 0" %.2f)
R_AN=$(calc "$BA_EPS > 0 ? $AN_EPS / $BA_EPS : 0" %.2f)
K_CORES=$(calc "$K_TSECS > 0 ? $K_CPU / $K_TSECS : 0" %.2f)
KC_CORES=$(calc "$KC_TSECS > 0 ? $KC_CPU / $KC_TSECS : 0" %.2f)
AD_CORES=$(calc "$AD_TSECS > 0 ? $AD_CPU / $AD_TSECS : 0" %.2f)
AN_CORES=$(calc "$AN_TSECS > 0 ? $AN_CPU / $AN_TSECS : 0" %.2f)
K_HWM_MB=$(calc "$K_HWM / 1024" %.1f) K_ANON_MB=$(calc "$K_ANON / 1024" %.1f)
KC_RSS_MB=$(calc "$KC_RSS / 1024" %.1f)
AD_HWM_MB=$(calc "$AD_HWM / 1024" %.1f) AD_ANON_MB=$(calc "$AD_ANON / 1024" %.1f)
AN_HWM_MB=$(calc "$AN_HWM / 1024" %.1f) AN_ANON_MB=$(calc "$AN_ANON / 1024" %.1f)
AD_FMB=$(calc "$AD_BYTES / 1000000" %.1f) AN_FMB=$(calc "$AN_BYTES / 1000000" %.1f)

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
row "7 forwarder -> Kafka (mock, 3 brokers)" "$K_EPS msg/s" \
    "$K_MBS MB/s of values; median of $K_OK: $(rates "$K_SECS")"
row "  first cursor move / rate after it" "$K_FIRST_MED s" \
    "then $K_STEADY_MED msg/s (past the first 10%)"
row "  kcat -P, same messages (ceiling)" "$KC_EPS msg/s" \
    "$KC_MBS MB/s; median of $KC_OK: $(rates "$KC_SECS")"
row "  ratio forwarder / kcat" "$R_KC" "goal >= 1.0"
row "  CPU forwarder / kcat" "$K_CORES/$KC_CORES cores" \
    "kcat maxrss $KC_RSS_MB MiB"
row "8 forwarder -> Avro files, deflate" "$AD_EPS ev/s" \
    "$AD_MBS MB/s; median of $AD_OK: $(rates "$AD_SECS"); files $AD_FMB MB"
row "  ratio to agent NDJSON batches (4)" "$R_AD" "goal >= 1.0"
row "  first cursor move / rate after it" "$AD_FIRST_MED s" \
    "then $AD_STEADY_MED ev/s (past the first file)"
row "  forwarder CPU" "$AD_CORES cores" ""
row "  forwarder -> Avro files, null" "$AN_EPS ev/s" \
    "$AN_MBS MB/s; median of $AN_OK: $(rates "$AN_SECS"); files $AN_FMB MB"
row "  ratio to agent NDJSON batches (4)" "$R_AN" "goal >= 1.0"
row "  first cursor move / rate after it" "$AN_FIRST_MED s" \
    "then $AN_STEADY_MED ev/s (past the first file)"
row "  forwarder CPU" "$AN_CORES cores" ""
row "9 forwarder peak RSS (VmHWM), Kafka" "$K_HWM_MB MiB" \
    "peak RssAnon $K_ANON_MB MiB (the rest: spool pages)"
row "  Avro deflate / null" "$AD_HWM_MB/$AN_HWM_MB MiB" \
    "peak RssAnon $AD_ANON_MB/$AN_ANON_MB MiB"
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
bench_line fwd_events "$FN" events
bench_line fwd_kafka_msgs_per_s "$K_EPS" msgs/s
bench_line fwd_kafka_mb_per_s "$K_MBS" MB/s
bench_line kcat_msgs_per_s "$KC_EPS" msgs/s
bench_line kcat_mb_per_s "$KC_MBS" MB/s
bench_line fwd_kafka_vs_kcat "$R_KC" ratio
bench_line fwd_kafka_first_move "$K_FIRST_MED" s
bench_line fwd_kafka_steady_msgs_per_s "$K_STEADY_MED" msgs/s
bench_line fwd_kafka_cpu "$K_CORES" cores
bench_line kcat_cpu "$KC_CORES" cores
bench_line fwd_kafka_peak_rss "$K_HWM_MB" MiB
bench_line fwd_kafka_peak_anon "$K_ANON_MB" MiB
bench_line fwd_avro_deflate_events_per_s "$AD_EPS" events/s
bench_line fwd_avro_deflate_mb_per_s "$AD_MBS" MB/s
bench_line fwd_avro_deflate_vs_agent_batch "$R_AD" ratio
bench_line fwd_avro_deflate_steady_events_per_s "$AD_STEADY_MED" events/s
bench_line fwd_avro_deflate_cpu "$AD_CORES" cores
bench_line fwd_avro_deflate_file_mb "$AD_FMB" MB
bench_line fwd_avro_deflate_peak_rss "$AD_HWM_MB" MiB
bench_line fwd_avro_deflate_peak_anon "$AD_ANON_MB" MiB
bench_line fwd_avro_null_events_per_s "$AN_EPS" events/s
bench_line fwd_avro_null_mb_per_s "$AN_MBS" MB/s
bench_line fwd_avro_null_vs_agent_batch "$R_AN" ratio
bench_line fwd_avro_null_steady_events_per_s "$AN_STEADY_MED" events/s
bench_line fwd_avro_null_cpu "$AN_CORES" cores
bench_line fwd_avro_null_file_mb "$AN_FMB" MB
bench_line fwd_avro_null_peak_rss "$AN_HWM_MB" MiB
bench_line fwd_avro_null_peak_anon "$AN_ANON_MB" MiB
cat "$RES"
echo "(quote these with the machine above and the command, make bench;"
echo " wrk output, logs, the agent's /metrics and the forwarder's logs are in"
echo " $W/)"

if [ -n "$FAILED" ]; then
	echo
	echo "bench: FAILED:$FAILED"
	exit 1
fi
