#!/bin/sh
# 061-loadbalancer.sh: Debian's haproxy, configured by
# packaging/examples/haproxy.cfg (addresses and check interval adapted), in
# front of two real agents on loopback with separate spools.  Proves:
#  - URI-hash routing: every event of one stream path lands on one agent,
#    and the streams are spread over both;
#  - a rolling restart loses nothing: while events flow through the proxy,
#    one agent gets SIGTERM (its /ping answers 503 for shutdown_delay, so
#    haproxy's /ping check takes it out before it stops listening), exits
#    0 and is started again.  Every request is answered 200, every
#    acknowledged event is in exactly one of the two spools, and the
#    streams of the agent that stayed never moved (consistent hashing);
#  - a retried event (same Idempotency-Key, same URI) reaches the same
#    agent's dedup even across that agent's restart: duplicates 1, stored
#    once in total.
T=${FERRY_TESTS_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$T/lib.sh"
. "$T/agent-lib.sh"

EX=$T/../packaging/examples/haproxy.cfg
STREAMS="s0 s1 s2 s3 s4 s5 s6 s7"
A1='200 {"accepted":1,"duplicates":0}'
D1='200 {"accepted":0,"duplicates":1}'

PA=$(free_port)
PB=$(free_port); while [ "$PB" = "$PA" ]; do PB=$(free_port); done
HP=$(free_port); while [ "$HP" = "$PA" ] || [ "$HP" = "$PB" ]; do
	HP=$(free_port); done
PROXY=http://127.0.0.1:$HP

# node_start NAME PORT: an agent with its own spool $TMP/NAME, taking
# X-Forwarded-For from the proxy, draining for 1 s on SIGTERM.
node_start() {
	SPOOL=$TMP/$1 PORT=$2
	agent_conf "$TMP/$1.conf" "shutdown_delay = 1s" \
	    "trusted_proxies = 127.0.0.1"
	agent_start "$TMP/$1.conf" || return 1
	eval "PID_$1=\$APID"
}
# node_stop NAME: SIGTERM, wait; AGENT_RC is its exit status.
node_stop() { eval "APID=\$PID_$1"; agent_stop; }
# count NAME EXPR: python EXPR over the events of NAME's spool.
count() {
	"$FS" -d "$TMP/$1" ls --json >"$TMP/ls.json" 2>"$TMP/ls.err" &&
	    spool_py "$2"
}
# ppost STREAM KEY: POST one JSON event through the proxy.
ppost() {
	_code=$(curl -s -o "${PRESP:-$TMP/presp}" -w '%{http_code}' --max-time 10 \
	    -H 'Content-Type: application/json' -H "Idempotency-Key: $2" \
	    --data-binary "{\"k\":\"$2\"}" "$PROXY/v1/events/$1")
	echo "$_code $(cat "${PRESP:-$TMP/presp}" 2>/dev/null)"
}
# hap_status: "agent1:UP agent2:UP" from haproxy's stats socket.
hap_status() {
	$PY - "$TMP/hap.sock" <<'EOF' 2>/dev/null
import csv, io, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(2)
s.connect(sys.argv[1])
s.sendall(b"show stat\n")
out = b""
while True:
    d = s.recv(65536)
    if not d:
        break
    out += d
rows = csv.DictReader(io.StringIO(out.decode().lstrip("# ")))
print(" ".join("%s:%s" % (r["svname"], r["status"].split()[0])
               for r in rows if r["pxname"] == "ferry_agents"
               and r["svname"].startswith("agent")))
EOF
}
# hap_wait WANT: up to 10 s for hap_status to be WANT.
hap_wait() {
	_i=0
	while [ $_i -lt 100 ]; do
		[ "$(hap_status)" = "$1" ] && return 0
		sleep 0.1; _i=$((_i + 1))
	done
	diag "haproxy: $(hap_status), wanted $1"
	return 1
}

ok "agent a starts" node_start a "$PA" || { done_testing; exit 1; }
ok "agent b starts" node_start b "$PB" || { done_testing; exit 1; }

# The example, adapted: loopback addresses, a stats socket to watch the
# checks, checks every 200 ms (2 failures: out within 0.4 s, well inside the
# agents' 1 s shutdown_delay, as the example's 2 s x 2 is inside 5 s).
sed -e "s|^\(\tbind\) :80$|\1 127.0.0.1:$HP|" \
    -e "s|^global$|global\n\tstats socket $TMP/hap.sock level admin|" \
    -e "s|inter 2s|inter 200ms|" \
    -e "s|10\.0\.0\.11:8290|127.0.0.1:$PA|" \
    -e "s|10\.0\.0\.12:8290|127.0.0.1:$PB|" \
    -e "/10\.0\.0\.13:8290/d" "$EX" >"$TMP/haproxy.cfg"
like "the adapted example keeps balance uri, consistent, httpchk /ping" \
    "$(grep -E '^[[:space:]]*(balance|hash-type|option httpchk|server|bind)' \
    "$TMP/haproxy.cfg" | tr -s '\t\n' '  ')" \
    "bind 127.0.0.1:$HP balance uri hash-type consistent option httpchk GET /ping server agent1 127.0.0.1:$PA check server agent2 127.0.0.1:$PB check"
ok "haproxy -c accepts it" haproxy -c -q -f "$TMP/haproxy.cfg"
haproxy -db -f "$TMP/haproxy.cfg" >"$TMP/haproxy.log" 2>&1 &
HPID=$!
track "$HPID"
ok "haproxy runs, both agents UP" hap_wait "agent1:UP agent2:UP" ||
    { tail -n 5 "$TMP/haproxy.log" | sed 's/^/# /'; done_testing; exit 1; }

# --- URI-hash routing ------------------------------------------------------
bad=0
for s in $STREAMS; do
	for i in 1 2 3 4 5; do
		r=$(ppost "$s" "first-$s-$i")
		[ "$r" = "$A1" ] || { bad=$((bad + 1)); diag "$s $i: $r"; }
	done
done
is "40 events through haproxy, all accepted" "$bad" 0
on_a="" on_b="" split=""
for s in $STREAMS; do
	na=$(count a "sum(1 for e in evs if e['stream']=='$s')")
	nb=$(count b "sum(1 for e in evs if e['stream']=='$s')")
	case "$na:$nb" in
	5:0) on_a="$on_a $s" ;;
	0:5) on_b="$on_b $s" ;;
	*) split="$split $s($na:$nb)" ;;
	esac
done
diag "streams on agent a:$on_a; on agent b:$on_b"
is "each stream's events all on one agent" "${split:-none}" none
ok "the streams are spread over both agents" \
    test -n "$on_a" -a -n "$on_b"

# The restarted node is the one holding s0; the other keeps its streams.
set -- $on_a
if [ "${1:-}" = s0 ]; then OWN=a OTH=b OPORT=$PA OSTREAMS=$on_b OSRV=agent1
else OWN=b OTH=a OPORT=$PB OSTREAMS=$on_a OSRV=agent2; fi

is "event retry-1 on s0: accepted" "$(ppost s0 retry-1)" "$A1"

# --- rolling restart under load --------------------------------------------
# The sender: every other request to s0 (the restarted node's stream), the
# rest over the others; one line "N CODE BODY" per answer.
: >"$TMP/sent"
(
	n=0 PRESP=$TMP/presp.bg
	set -- $STREAMS
	while [ ! -e "$TMP/stop" ]; do
		n=$((n + 1))
		if [ $((n % 2)) -eq 0 ]; then s=s0; else
			i=$(( (n / 2) % 7 + 2 )); eval "s=\${$i}"; fi
		echo "$n $s $(ppost "$s" "bg-$n")" >>"$TMP/sent"
	done
) &
SPID=$!
track "$SPID"
# wait_sent N: until the sender has N more answers (10 s at most).
wait_sent() {
	_want=$(( $(wc -l <"$TMP/sent") + $1 )); _i=0
	while [ "$(wc -l <"$TMP/sent")" -lt "$_want" ] && [ $_i -lt 100 ]; do
		sleep 0.1; _i=$((_i + 1))
	done
}
wait_sent 20
SENT_UP=$(wc -l <"$TMP/sent")
node_stop "$OWN"
is "agent $OWN: SIGTERM, exit 0" "$AGENT_RC" 0
SENT_STOPPED=$(wc -l <"$TMP/sent")
like "haproxy took agent $OWN out" "$(hap_status)" "$OSRV:DOWN"
wait_sent 20
PORT=$OPORT
ok "agent $OWN starts again" node_start "$OWN" "$OPORT"
ok "haproxy puts it back" hap_wait "agent1:UP agent2:UP"
wait_sent 20
touch "$TMP/stop"
wait "$SPID" 2>/dev/null
diag "sent $(wc -l <"$TMP/sent") events: $SENT_UP before the SIGTERM," \
    "$SENT_STOPPED by the exit"

is "every request through haproxy answered 200, accepted" \
    "$(awk -v a="$A1" '{ r = $3 " " $4 } r != a' "$TMP/sent" | head -n 3)" ""
count a "json.dumps([e['key'] for e in evs])" >"$TMP/keys.a" 2>/dev/null
count b "json.dumps([e['key'] for e in evs])" >"$TMP/keys.b" 2>/dev/null
res=$($PY - "$TMP/sent" "$TMP/keys.a" "$TMP/keys.b" <<'EOF'
import json, sys
acked = ["bg-" + l.split()[0] for l in open(sys.argv[1])
         if l.split()[2:3] == ["200"] and '"accepted":1' in l]
ka, kb = (json.loads(open(p).read()) for p in sys.argv[2:4])
both = ka + kb
lost = [k for k in acked if k not in both]
twice = sorted({k for k in both if both.count(k) > 1})
print("acked=%d lost=%d twice=%d %s %s" % (len(acked), len(lost), len(twice),
      lost[:5], twice[:5]))
EOF
)
like "every acknowledged event is in one spool, none twice" "$res" \
    '^acked=[0-9]{2,} lost=0 twice=0 '
moved=$(count "$OWN" "sorted({e['stream'] for e in evs} & set('$OSTREAMS'.split()))")
is "the streams of agent $OTH never went to agent $OWN" "$moved" "[]"
n_oth=$(count "$OTH" "sum(1 for e in evs if e['stream']=='s0')")
ok "while agent $OWN was out, s0 went to agent $OTH ($n_oth events)" \
    test "${n_oth:-0}" -gt 0

# --- a retry reaches the same node's dedup -----------------------------------
is "retry-1 again through haproxy: duplicate" "$(ppost s0 retry-1)" "$D1"
is "retry-1 stored once in total, on agent $OWN" \
    "$(count a "sum(1 for e in evs if e['key']=='retry-1')")$(count b \
    "sum(1 for e in evs if e['key']=='retry-1')")" \
    "$([ "$OWN" = a ] && echo 10 || echo 01)"

node_stop a; node_stop b
kill -TERM "$HPID" 2>/dev/null
wait "$HPID" 2>/dev/null
done_testing
