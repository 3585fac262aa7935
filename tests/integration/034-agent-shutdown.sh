#!/bin/sh
# 034-agent-shutdown.sh: the lifecycle and the command line.  Proves that:
#  - on SIGTERM, for shutdown_delay, /ping and /ready answer 503 while POSTs
#    are still accepted; after it new connections are refused (or get 503);
#    the process exits 0 within delay + timeout + 1 s, not before the
#    delay, and every event acknowledged with 200 is in the spool;
#  - a request underway when intake stops still gets its answer (the
#    shutdown_timeout is there for it);
#  - a second SIGTERM (or a SIGINT) during the delay skips it;
#  - a second agent cannot take the port of a running one;
#  - --check-config says "configuration OK" (0) or names file:line (78),
#    --version prints the version, usage errors exit 64.
T=${FERRY_TESTS_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$T/lib.sh"
. "$T/agent-lib.sh"

A1='200 {"accepted":1,"duplicates":0}'
code() { echo "${1%% *}"; }
ms_since() { echo $(( $(now_ms) - $1 )); }

# --- the command line ----------------------------------------------------
agent_conf "$TMP/a.conf" "shutdown_delay = 2s" "shutdown_timeout = 3s"
"$AGENT" --check-config -c "$TMP/a.conf" >"$TMP/out" 2>"$TMP/err"
is "--check-config good: exit 0" "$?" 0
is "--check-config good: configuration OK" "$(cat "$TMP/out")" \
    "configuration OK"
printf '[agent]\nlisten = 127.0.0.1:1\nmax_body = lots\n[spool]\ndir = %s\n' \
    "$SPOOL" >"$TMP/bad.conf"
"$AGENT" --check-config -c "$TMP/bad.conf" >"$TMP/out" 2>"$TMP/err"
is "--check-config bad: exit 78" "$?" 78
like "--check-config bad: names file:line" "$(cat "$TMP/err")" \
    "bad\\.conf:3:.*max_body"
is "--check-config bad: no OK on stdout" "$(cat "$TMP/out")" ""
printf '[agent]\nlisten = 127.0.0.1:1\nfrobnicate = 1\n' >"$TMP/bad2.conf"
"$AGENT" -c "$TMP/bad2.conf" >"$TMP/out" 2>"$TMP/err"
is "starting with an unknown key: exit 78" "$?" 78
like "unknown key: names file:line and key" "$(cat "$TMP/err")" \
    "bad2\\.conf:3:.*frobnicate"
"$AGENT" --check-config -c "$TMP/nonexistent.conf" >"$TMP/out" 2>"$TMP/err"
is "--check-config missing file: exit 78" "$?" 78
like "missing file: named" "$(cat "$TMP/err")" 'nonexistent\.conf'
# The files the configuration names are loaded as a start would: a check
# that passes must not be followed by a start that fails.
for what in no-tokens no-key no-schema.avsc; do
	case $what in
	no-tokens) agent_conf "$TMP/files.conf" "tokens_file = $TMP/$what" ;;
	no-key) agent_conf "$TMP/files.conf" "[spool]" \
	    "encryption_key_file = $TMP/$what" ;;
	*) agent_conf "$TMP/files.conf" "[stream.s]" "schema = $TMP/$what" ;;
	esac
	"$AGENT" --check-config -c "$TMP/files.conf" >"$TMP/out" 2>"$TMP/err"
	is "--check-config, missing $what: exit 78" "$?" 78
	like "--check-config, missing $what: an error naming it" \
	    "$(cat "$TMP/err")" "error: .*$what"
	is "--check-config, missing $what: no OK" "$(cat "$TMP/out")" ""
	"$AGENT" -c "$TMP/files.conf" >"$TMP/out" 2>"$TMP/err"
	is "starting with $what missing: exit 78" "$?" 78
done
agent_conf "$TMP/files.conf" "tokens_file = $TMP/no-tokens" "[spool]" \
    "encryption_key_file = $TMP/no-key"
"$AGENT" --check-config -c "$TMP/files.conf" >"$TMP/out" 2>"$TMP/err"
is "--check-config, two files missing: both named" \
    "$(grep -c -e no-tokens -e no-key "$TMP/err")" 2
# An empty tokens file is valid, and locks every client out: said at start.
: >"$TMP/empty-tokens"
agent_conf "$TMP/files.conf" "tokens_file = $TMP/empty-tokens"
"$AGENT" -c "$TMP/files.conf" >"$TMP/out" 2>"$TMP/err" &
EPID=$!
i=0
while ! grep -q 'serving on' "$TMP/err" && [ $i -lt 100 ]; do
	sleep 0.05; i=$((i + 1))
done
kill -TERM $EPID; wait $EPID
like "an empty tokens file at start: a warning" "$(cat "$TMP/err")" \
    'warn: .*empty-tokens holds no token: every POST gets 401'
agent_conf "$TMP/a.conf" "shutdown_delay = 2s" "shutdown_timeout = 3s"
"$AGENT" --version >"$TMP/out" 2>&1
is "--version: exit 0" "$?" 0
like "--version: prints ferry-agent VERSION" "$(cat "$TMP/out")" \
    '^ferry-agent [0-9]+\.[0-9]+\.[0-9]+'
"$AGENT" --bogus >"$TMP/out" 2>"$TMP/err"
is "unknown option: exit 64" "$?" 64
like "unknown option: usage on stderr" "$(cat "$TMP/err")" 'usage: ferry-agent'
"$AGENT" -c "$TMP/a.conf" extra >"$TMP/out" 2>"$TMP/err"
is "extra argument: exit 64" "$?" 64

# --- graceful shutdown ---------------------------------------------------
ok "agent starts" agent_start || { done_testing; exit 1; }
: >"$TMP/acked"
# send KEY: one POST; appends KEY to acked on 200; prints "CURLRC CODE".
send() {
	_c=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
	    -H 'Content-Type: application/json' -H "Idempotency-Key: $1" \
	    --data-binary "{\"k\":\"$1\"}" "$URL/v1/events/sd")
	_rc=$?
	[ "$_c" = 200 ] && echo "$1" >>"$TMP/acked"
	echo "$_rc $_c"
}
is "before SIGTERM: 200" "$(send k0)" "0 200"
# A slow client: headers now, the rest of its body after the delay.
cat >"$TMP/slow.py" <<'EOF'
import socket, sys, time
body = b'{"slow":1}'
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"POST /v1/events/sd HTTP/1.1\r\nHost: x\r\n"
          b"Content-Type: application/json\r\nIdempotency-Key: slow\r\n"
          b"Content-Length: %d\r\n\r\n" % len(body) + body[:4])
time.sleep(float(sys.argv[2]))
try:
    s.sendall(body[4:])
    print(s.recv(4096).split(b"\r\n")[0].decode() or "closed")
except OSError as e:
    print("error: %s" % e)
EOF
T0=$(now_ms)
kill -TERM "$APID"
$PY "$TMP/slow.py" "$PORT" 2.8 >"$TMP/slow.out" 2>&1 &
SPID=$!
sleep 0.3
is "draining: /ping 503" "$(code "$(get /ping)")" 503
is "draining: /ready 503" "$(code "$(get /ready)")" 503
is "draining: POST 200" "$(send k1)" "0 200"
# Keep sending until refused (503, or no listener: curl exit 7); remember
# when.  The agent may be gone by then: a refused connection is the answer.
i=2 first_refusal="" last_ok="" refusal=""
while [ $(ms_since "$T0") -lt 8000 ] && [ -z "$first_refusal" ]; do
	r=$(send "k$i")
	case $r in
	"0 200") last_ok=$(ms_since "$T0") ;;
	"7 000"|"0 503") first_refusal=$(ms_since "$T0"); refusal="$r" ;;
	*) diag "during shutdown: k$i got $r" ;;
	esac
	i=$((i + 1))
	sleep 0.1
done
_agent_wait 80
wait "$APID"; RC=$?
EXIT_MS=$(ms_since "$T0")
APID=""
diag "last 200 at ${last_ok}ms, first refusal ($refusal) at" \
    "${first_refusal}ms, exit at ${EXIT_MS}ms"
like "POSTs still 200 late in the delay (>= 1.5 s)" "${last_ok:-0}" \
    '^(1[5-9][0-9][0-9]|[2-9][0-9]{3})$'
like "refused after the delay (>= 1.9 s)" "${first_refusal:-none}" \
    '^(19[0-9][0-9]|[2-9][0-9]{3})$'
is "exit status 0" "$RC" 0
like "exited after the delay, within delay + timeout + 1 s" "$EXIT_MS" \
    '^(19[0-9][0-9]|[2-5][0-9]{3})$'
wait "$SPID"
like "request underway when intake stopped: answered 200" \
    "$(cat "$TMP/slow.out")" '^HTTP/1.1 200'
spool_ls
is "every acknowledged event is in the spool, once" "$($PY - \
    "$TMP/acked" "$TMP/ls.json" <<'EOF'
import json, sys
acked = [l.strip() for l in open(sys.argv[1]) if l.strip()]
keys = [json.loads(l)["key"] for l in open(sys.argv[2])]
missing = [k for k in acked if keys.count(k) != 1]
print("%d acked, missing or repeated: %s" % (len(acked), missing))
EOF
)" "$(wc -l <"$TMP/acked" | tr -d ' ') acked, missing or repeated: []"
like "log says why it stopped" "$(cat "$TMP/agent.log")" 'shutdown: Terminated'
like "log ends with stopped" "$(tail -n 1 "$TMP/agent.log")" 'stopped'

# --- a second signal skips the delay -------------------------------------
agent_conf "$TMP/long.conf" "shutdown_delay = 10s" "shutdown_timeout = 3s"
for sig in TERM INT; do
	ok "agent (delay 10 s) starts" agent_start || break
	T0=$(now_ms)
	kill -TERM "$APID"
	sleep 0.3
	is "first SIGTERM: /ping 503" "$(code "$(get /ping)")" 503
	kill -$sig "$APID"
	_agent_wait 100
	wait "$APID"; RC=$?
	EXIT_MS=$(ms_since "$T0")
	APID=""
	is "SIGTERM then SIG$sig: exit 0" "$RC" 0
	like "SIGTERM then SIG$sig: exit within 2 s, not 10 ($EXIT_MS ms)" \
	    "$EXIT_MS" '^[0-9]{1,3}$|^1[0-9]{3}$'
done

# --- one port, one agent -------------------------------------------------
agent_conf "$TMP/c.conf"
ok "agent starts" agent_start
mkdir -p "$TMP/spool2"
sed "s|^dir = .*|dir = $TMP/spool2|" "$TMP/c.conf" >"$TMP/second.conf"
"$AGENT" -c "$TMP/second.conf" >"$TMP/second.log" 2>&1 &
P2=$!
track $P2
sleep 1
if _alive $P2; then
	state="still running ($(ss -ltn 2>/dev/null | grep -c ":$PORT ") listeners)"
	kill -9 $P2; wait $P2
else
	wait $P2; rc=$?
	state="exited $([ $rc -ne 0 ] && echo non-zero || echo 0)"
fi
is "a second agent on the same port exits non-zero" "$state" \
    "exited non-zero"
agent_stop
done_testing
