#!/bin/sh
# 070-hostile.sh: hostile clients get a bounded, clear refusal, the agent
# keeps serving everyone else meanwhile, and nothing accepted is lost.
# Raw sockets (tests/helpers/hostile.py) send exactly the bytes a hostile
# client would; the spool is read back with `ferry-spool ls --json`.
#
# The agent runs with small limits (max_conns 48, max_conns_per_ip 8,
# idle_timeout 2 s, max_header 4 KiB, max_body 1 MiB) and trusts 127.0.0.2
# as a proxy.  Attackers connect from 127.0.0.1 and 127.0.0.3-8; the
# ordinary client from 127.0.0.9, so that per-address limits are not its
# problem.  A polite client posts an event every 0.2 s for the whole run.
# Proves that:
#  - slowloris (headers one byte a second; a chunked body one chunk a
#    second) and a connection flood: connections over max_conns_per_ip are
#    closed at once, the rest are closed within a bound of idle_timeout
#    (4 x idle_timeout + 1 s: a slow client is cut like an idle one), the
#    ordinary client is served within that bound even when the attackers
#    hold every one of max_conns, and the agent's fds come back;
#  - header blocks over max_header (ferry's JSON 431) and over
#    libmicrohttpd's buffer (its own 431, or a closed connection); a body
#    over max_body by Content-Length (413 before the body is read), chunked
#    (413), a chunked body that stalls (cut at idle_timeout), a gzip bomb
#    (413, limit after decompression, no memory spike);
#  - invalid UTF-8, 100000 nested "[", NUL bytes, huge numbers: 400 naming
#    the problem; a 10 MB string: 413;
#  - stream names with path characters: 400, nothing on disk but the spool;
#  - X-Forwarded-For: ignored from an untrusted peer, honoured from a
#    trusted proxy, also when the proxy adds its own header line after the
#    client's (haproxy's "option forwardfor"), never stored unless it is an
#    address;
#  - bad methods, absurd Content-Length values, two different
#    Content-Length headers (400: RFC 9112 6.3), Content-Length with
#    Transfer-Encoding (connection closed after the answer: RFC 9112 6.1),
#    an unknown transfer coding (400/501 at once), HTTP/1.0, pipelining;
#  - each hostile request stores nothing (streams h-*), every event the
#    polite and ordinary clients got 200 for is stored exactly once.
T=${FERRY_TESTS_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$T/lib.sh"
. "$T/agent-lib.sh"
# Also clean up when the output pipe or the terminal goes away.
trap 'exit 1' HUP PIPE

HS="$PY $T/helpers/hostile.py"
IDLE=2			# idle_timeout, seconds
SLOW_BOUND=$((4 * IDLE + 1))	# a slow or idle client is cut by then
LEGIT_IP=127.0.0.9
agent_conf "$TMP/a.conf" "max_body = 1MiB" "max_events = 1000" \
    "max_header = 4KiB" "max_conns = 48" "max_conns_per_ip = 8" \
    "idle_timeout = ${IDLE}s" "threads = 2" "trusted_proxies = 127.0.0.2"
ok "agent starts" agent_start || { done_testing; exit 1; }

ms() { echo $(( $(date +%s%N) / 1000000 )); }
# stored STREAM: how many events of STREAM the spool holds.
stored() { spool_ls && spool_py "sum(1 for e in evs if e['stream']=='$1')"; }
# fds: the agent's open file descriptors.
fds() { ls "/proc/$APID/fd" 2>/dev/null | wc -l; }
# sample_start NAME: notes the agent's fds in B0 and samples them every
# 0.2 s into $TMP/NAME-samp.json; sample_stop NAME: ends that and sets
# PEAK, the most fds seen.
sample_start() {
	B0=$(fds)
	rm -f "$TMP/stop-samp"
	$HS sample "$APID" --every 0.2 --stop "$TMP/stop-samp" \
	    --out "$TMP/$1-samp.json" &
	SP=$!
	track $SP
}
sample_stop() {
	touch "$TMP/stop-samp"; wait $SP
	PEAK=$(sj "$TMP/$1-samp.json" 'max(s["fds"] for s in r)')
}
sj() { $PY -c 'import json,sys; r=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$@"; }

# hreq NAME HEAD [hostile.py req options]: sends HEAD (escapes decoded,
# {CL} = length of --body) from a raw socket.  Sets ST (status of the
# first answer, or "none"), ERR (the "error" string of its JSON body, or
# ""), NANS (answers read), CLOSED (seconds until the agent closed the
# connection, or "open"), SECS (time taken).  Saved in $TMP/NAME.json.
hreq() {
	_hr=$1 _head=$2; shift 2
	$HS req "$PORT" "$_head" "$@" >"$TMP/$_hr.json" 2>"$TMP/$_hr.err"
	eval "$($PY - "$TMP/$_hr.json" <<'EOF'
import json, shlex, sys
try:
    r = json.load(open(sys.argv[1]))
except ValueError:
    r = {"answers": [], "closed": None, "secs": -1}
a = r["answers"]
err = ""
if a:
    try:
        e = json.loads(a[0]["body"]).get("error")
        err = e if isinstance(e, str) else ""
    except (ValueError, AttributeError):
        pass
print("ST=%s ERR=%s NANS=%d CLOSED=%s SECS=%s" % (
    a[0]["status"] if a else "none", shlex.quote(err), len(a),
    "open" if r["closed"] is None else r["closed"], r.get("secs", -1)))
EOF
)"
}
# status N: the status of answer N (from 0) of the last hreq.
status() { $PY -c 'import json,sys; a=json.load(open(sys.argv[1]))["answers"]
n=int(sys.argv[2]); print(a[n]["status"] if len(a) > n else "none")' \
    "$TMP/$_hr.json" "$1"; }
# refused NAME STATUS STREAM [REGEX]: ferry answered STATUS with a JSON
# error (matching REGEX), nothing stored in STREAM.
refused() {
	is "$1: $2" "$ST" "$2"
	like "$1: JSON error says why" "$ERR" "${4:-.}"
	is "$1: nothing stored" "$(stored "$3")" 0
}
# mhd_refused NAME REGEX STREAM: refused by libmicrohttpd itself (status
# matching REGEX; its body is HTML), nothing stored in STREAM.
mhd_refused() {
	like "$1: status $2" "$ST" "$2"
	is "$1: nothing stored" "$(stored "$3")" 0
}
# serving NAME [SECS]: an ordinary POST from $LEGIT_IP is answered 200
# within SECS (default 3), retried every 0.3 s until then.
_sn=0
serving() {
	_sn=$((_sn + 1)); _t0=$(ms); _end=$((_t0 + ${2:-3} * 1000))
	while :; do
		_left=$(( _end - $(ms) ))
		[ $_left -gt 2000 ] && _left=2000
		[ $_left -lt 100 ] && _left=100
		_c=$(curl -s -o /dev/null -w '%{http_code}' \
		    --max-time "$((_left / 1000)).$(printf %03d $((_left % 1000)))" \
		    --interface $LEGIT_IP -H 'Content-Type: application/json' \
		    -H "Idempotency-Key: serving-$_sn" \
		    --data-binary "{\"serving\":$_sn}" "$URL/v1/events/ok-serving")
		[ "$_c" = 200 ] && break
		[ "$(ms)" -ge $_end ] && break
		sleep 0.3
	done
	_el=$(( $(ms) - _t0 ))
	[ "$_c" = 200 ] && echo "serving-$_sn" >>"$TMP/serving.acked"
	[ $_el -gt 500 ] && diag "$1: answer $_c after $_el ms"
	[ "$_c" = 200 ] && [ $_el -gt $((${2:-3} * 1000 + 200)) ] && _c="200 too late"
	is "$1: an ordinary POST is served within ${2:-3} s" "$_c" 200
}
: >"$TMP/serving.acked"

# The polite client, for the whole run.
$HS sender "$PORT" --stream ok-polite --src $LEGIT_IP --interval 0.2 \
    --stop "$TMP/stop-polite" --secs 300 --out "$TMP/polite.json" &
POLITE=$!
track $POLITE
serving "at the start"

# --- slowloris ---------------------------------------------------------------
# A: 12 connections from 127.0.0.1 (4 over max_conns_per_ip = 8), header
# bytes one a second.  B: 8 from 127.0.0.3, a chunked body one chunk
# a second.  C: 5 x 8 from 127.0.0.4-8, headers.  Together they want every
# one of max_conns = 48.  They keep going for SLOW_BOUND + 3 s.
SLOW_SECS=$((SLOW_BOUND + 3))
sample_start slow
$HS trickle "$PORT" --src 127.0.0.1 --conns 12 --interval 1 --secs $SLOW_SECS \
    --mode header --stream h-slow >"$TMP/slowA.json" &
SA=$!
sleep 0.5
$HS trickle "$PORT" --src 127.0.0.3 --conns 8 --interval 1 --secs $SLOW_SECS \
    --mode chunked --stream h-slowbody >"$TMP/slowB.json" &
SB=$!
for ip in 4 5 6 7 8; do
	$HS trickle "$PORT" --src 127.0.0.$ip --conns 8 --interval 1 \
	    --secs $SLOW_SECS --mode header --stream h-slow >"$TMP/slowC$ip.json" &
	eval "SC$ip=$!"
done
track "$SA $SB $SC4 $SC5 $SC6 $SC7 $SC8"
sleep 1
# The ordinary client, while the attackers hold (or want) every slot.
serving "during slowloris on all of max_conns" $SLOW_BOUND
wait $SA $SB $SC4 $SC5 $SC6 $SC7 $SC8
sample_stop slow
is "slowloris A: exactly 4 of 12 over max_conns_per_ip closed at once" \
    "$(sj "$TMP/slowA.json" 'r["refused"]')" 4
is "slowloris A: no answer to an unfinished header block" \
    "$(sj "$TMP/slowA.json" '[a for a in r["answers"] if " 200 " in a]')" "[]"
diag "slowloris (refused at once / cut by the agent / open at the end):" \
    "$($PY - "$TMP" <<'EOF'
import json, sys
out = []
for g, fs in (("A", ["slowA"]), ("B", ["slowB"]),
              ("C", ["slowC%d" % i for i in range(4, 9)])):
    rs = [json.load(open("%s/%s.json" % (sys.argv[1], f))) for f in fs]
    cut = sorted(c for r in rs for c in r["closed"])
    out.append("%s %d/%d%s/%d" % (g, sum(r["refused"] for r in rs), len(cut),
               " (%.1f-%.1f s)" % (cut[0], cut[-1]) if cut else "",
               sum(r["open_at_end"] for r in rs)))
print(", ".join(out))
EOF
)"
is "slowloris headers (A): all 8 held connections cut within $SLOW_BOUND s" \
    "$(sj "$TMP/slowA.json" \
    'r["open_at_end"] + len([c for c in r["closed"] if c > '$SLOW_BOUND'])')" 0
is "slowloris chunked body (B): every connection cut within $SLOW_BOUND s" \
    "$(sj "$TMP/slowB.json" \
    'r["open_at_end"] + len([c for c in r["closed"] if c > '$SLOW_BOUND'])')" 0
is "slowloris chunked body: never answered 200" \
    "$(sj "$TMP/slowB.json" '[a for a in r["answers"] if " 200 " in a]')" "[]"
like "slowloris chunked body: the log says why each was closed" \
    "$(grep -c 'h-slowbody: body not received within idle_timeout' \
    "$TMP/agent.log")" '^[1-9]'
is "slowloris: nothing stored" "$(stored h-slow) $(stored h-slowbody)" "0 0"
diag "agent fds: $B0 before slowloris, peak $PEAK"
is "slowloris: agent fds never above baseline + max_conns" \
    "$((PEAK <= B0 + 48 + 2))" 1
serving "after slowloris"

# --- connection flood -------------------------------------------------------
# 20 silent connections from 127.0.0.1 (12 over max_conns_per_ip) and 8
# from each of 127.0.0.3-8: 68 in all, 20 over max_conns.
sample_start flood
$HS hold "$PORT" --srcs 127.0.0.1 --per-src 20 --secs $SLOW_BOUND \
    >"$TMP/floodA.json" &
FA=$!
sleep 0.3
$HS hold "$PORT" --srcs 127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6,127.0.0.7,127.0.0.8 \
    --per-src 8 --secs $SLOW_BOUND >"$TMP/floodB.json" &
FB=$!
track "$FA $FB"
sleep 0.5
serving "during the connection flood" $((IDLE + 3))
wait $FA $FB
diag "flood: $($PY - "$TMP" <<'EOF'
import json, sys
rs = [json.load(open("%s/flood%s.json" % (sys.argv[1], g))) for g in "AB"]
c = sorted(x for r in rs for x in r["closed"])
print("%d connections, %d closed at once, %d later (last at %.1f s), %d open"
      % (sum(r["opened"] for r in rs), len([x for x in c if x <= 0.9]),
         len([x for x in c if x > 0.9]), c[-1] if c else 0,
         sum(r["open_at_end"] for r in rs)))
EOF
)"
is "flood: at least the 12 over max_conns_per_ip closed at once" \
    "$(sj "$TMP/floodA.json" 'len([c for c in r["closed"] if c <= 0.9]) >= 12')" True
is "flood: every connection closed by the agent within $SLOW_BOUND s" \
    "$(sj "$TMP/floodA.json" 'r["open_at_end"]') $(sj "$TMP/floodB.json" 'r["open_at_end"]')" \
    "0 0"
# fds back at the baseline within 3 s
i=0; while [ "$(fds)" -gt $((B0 + 1)) ] && [ $i -lt 30 ]; do sleep 0.1; i=$((i + 1)); done
sample_stop flood
diag "agent fds: $B0 before the flood, peak $PEAK, $(fds) after"
is "flood: agent fds never above baseline + max_conns" \
    "$((PEAK <= B0 + 48 + 2))" 1
is "flood: fds back to the baseline after" "$(($(fds) <= B0 + 1))" 1
serving "after the connection flood"

# --- headers -----------------------------------------------------------------
H='Host: x\r\nContent-Type: application/json\r\n'
PAD6K=$($PY -c 'print("p" * 6000)')
hreq hdr6k "POST /v1/events/h-hdr HTTP/1.1\r\n${H}X-Pad: $PAD6K\r\nContent-Length: {CL}\r\n\r\n{\"h\":1}"
refused "6 KB header (max_header 4 KiB)" 431 h-hdr 'max_header'
PAD60K=$($PY -c 'print("q" * 60000)')
hreq hdr60k "POST /v1/events/h-hdr HTTP/1.1\r\n${H}X-Pad: $PAD60K\r\nContent-Length: {CL}\r\n\r\n{\"h\":2}"
like "60 KB header (over libmicrohttpd's buffer): 431 or closed" \
    "$ST:$CLOSED" '^431:|^none:[0-9]'
is "60 KB header: nothing stored" "$(stored h-hdr)" 0
MANY=$($PY -c 'print("".join("X-H%d: v\\r\\n" % i for i in range(3000)))')
hreq hdrmany "POST /v1/events/h-hdr HTTP/1.1\r\n${H}${MANY}Content-Length: {CL}\r\n\r\n{\"h\":3}"
like "3000 header lines: 431 or closed" "$ST:$CLOSED" '^431:|^none:[0-9]'
is "3000 header lines: nothing stored" "$(stored h-hdr)" 0
serving "after the large headers"

# --- bodies ------------------------------------------------------------------
# Content-Length over max_body, no body sent: refused before reading it.
hreq cl2m "POST /v1/events/h-big HTTP/1.1\r\n${H}Content-Length: 2097152\r\n\r\n" \
    --timeout 5
refused "Content-Length 2 MiB, body not sent" 413 h-big 'max_body'
like "Content-Length 2 MiB: answered at once (< 2 s), before any body" \
    "$SECS" '^[01]\.'
# ... and with the body sent: 10 MB, one JSON string.
$PY -c 'import sys; sys.stdout.write("{\"s\":\"" + "x" * (10 << 20) + "\"}")' \
    >"$TMP/s10m"
hreq str10m "POST /v1/events/h-big HTTP/1.1\r\n${H}Content-Length: {CL}\r\n\r\n" \
    --body "$TMP/s10m"
refused "a JSON event with a 10 MB string" 413 h-big 'max_body'
# Chunked, 2 MiB in 64 KiB chunks.
$PY - "$TMP/chunk2m" <<'EOF'
import sys
body = b'{"c":"' + b"y" * (2 << 20) + b'"}'
with open(sys.argv[1], "wb") as f:
    for i in range(0, len(body), 65536):
        c = body[i:i + 65536]
        f.write(b"%x\r\n" % len(c) + c + b"\r\n")
    f.write(b"0\r\n\r\n")
EOF
hreq chunk2m "POST /v1/events/h-chunk HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n" \
    --body "$TMP/chunk2m"
refused "chunked body of 2 MiB" 413 h-chunk 'max_body'
# 6 MiB: read to its end and dropped, then answered (libmicrohttpd cannot
# answer while a body arrives: an answer tried then was an empty reply).
# 24 MiB: past max_body + 8 MiB no answer can be sent; the connection is
# closed, and the log says why.
$PY - "$TMP" <<'EOF'
import sys
for mib in (6, 24):
    with open("%s/chunk%dm" % (sys.argv[1], mib), "wb") as f:
        c = b"z" * 65536
        for i in range(mib * 16):
            f.write(b"%x\r\n" % len(c) + c + b"\r\n")
        f.write(b"0\r\n\r\n")
EOF
hreq chunk6m "POST /v1/events/h-chunk HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n" \
    --body "$TMP/chunk6m"
refused "chunked body of 6 MiB" 413 h-chunk 'max_body'
n413() { curl -s --max-time 5 "$URL/metrics" |
    sed -n 's/^ferry_http_requests_total{code="413"} //p'; }
c413=$(n413)
hreq chunk24m "POST /v1/events/h-chunk HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n" \
    --body "$TMP/chunk24m" --close-wait 3
is "chunked body of 24 MiB: no 413 counted (none was sent)" "$(n413)" "$c413"
is "chunked body of 24 MiB: no answer, the connection closed" \
    "$ST:$([ "$CLOSED" = open ] && echo open || echo closed)" "none:closed"
like "chunked body of 24 MiB: the log says why" "$(cat "$TMP/agent.log")" \
    'h-chunk: body goes on far past max_body; connection closed'
is "chunked body of 24 MiB: nothing stored" "$(stored h-chunk)" 0
# A chunked body that stalls: cut at the idle timeout, nothing stored.
hreq stall "POST /v1/events/h-stall HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n{\"s\":1}\n\r\n8\r\n{\"s\":2}\n\r\n" \
    --timeout $((IDLE + 4))
# Near: from 50 ms before (libmicrohttpd counts its timeout in whole
# milliseconds from when it read the last chunk, and cut at 1.999 s in two
# of our runs) to 2 s after.
like "chunked body that never ends: connection cut near idle_timeout" \
    "$CLOSED" "^($((IDLE - 1))\\.9[5-9]|$IDLE\\.|$((IDLE + 1))\\.)"
like "chunked body that never ends: never answered 200" "$ST" '^(none|4[0-9][0-9])$'
is "chunked body that never ends: nothing stored" "$(stored h-stall)" 0
# A gzip bomb: 100 MiB of blanks in one event, about 100 KB compressed.
$PY -c 'import gzip,sys; sys.stdout.buffer.write(gzip.compress(
    b"{\"bomb\":1" + b" " * (100 << 20) + b"}", 9))' >"$TMP/bomb.gz"
HWM0=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$APID/status")
hreq bomb "POST /v1/events/h-bomb HTTP/1.1\r\n${H}Content-Encoding: gzip\r\nContent-Length: {CL}\r\n\r\n" \
    --body "$TMP/bomb.gz"
HWM1=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$APID/status")
diag "gzip bomb: $(wc -c <"$TMP/bomb.gz") bytes; agent VmHWM $HWM0 -> $HWM1 kB"
refused "gzip bomb (100 MiB inflated)" 413 h-bomb 'limit|max_body'
is "gzip bomb: agent peak memory grew < 2 x max_body + 8 MiB" \
    "$((HWM1 - HWM0 < 10240))" 1
serving "after the large bodies"

# --- JSON that is not what it seems ------------------------------------------
# jpost NAME STREAM FILE [CTYPE]: one POST of FILE's bytes.
jpost() {
	hreq "$1" "POST /v1/events/$2 HTTP/1.1\r\nHost: x\r\nContent-Type: ${4:-application/json}\r\nContent-Length: {CL}\r\n\r\n" \
	    --body "$3"
}
printf '{"a":"\377\376"}' >"$TMP/u1"
printf '{"a":"\300\257"}' >"$TMP/u2"
printf '{"a":"\355\240\200"}' >"$TMP/u3"
printf '["\364\220\200\200"]' >"$TMP/u4"
for u in u1 u2 u3 u4; do
	jpost "utf$u" h-utf8 "$TMP/$u"
	refused "invalid UTF-8 ($u: $(od -An -tx1 "$TMP/$u" | tr -d '\n' | cut -c1-40))" \
	    400 h-utf8 'decode|UTF-8|utf-8'
done
$PY -c 'import sys; sys.stdout.write("[" * 100000)' >"$TMP/deep1"
jpost deep1 h-deep "$TMP/deep1"
refused "100000 unclosed [" 400 h-deep 'nested|deep'
$PY -c 'import sys; sys.stdout.write("[" * 100000 + "]" * 100000)' >"$TMP/deep2"
jpost deep2 h-deep "$TMP/deep2"
refused "100000 nested arrays" 400 h-deep 'nested|deep'
$PY -c 'import sys; sys.stdout.write("{\"a\":" * 5000 + "1" + "}" * 5000)' >"$TMP/deep3"
jpost deep3 h-deep "$TMP/deep3"
refused "5000 nested objects" 400 h-deep 'nested|deep'
printf '{"ok":1}\n{"ok":2}\n%s\n' "$($PY -c 'print("[" * 1000 + "]" * 1000)')" \
    >"$TMP/deep4"
jpost deep4 h-deep "$TMP/deep4" application/x-ndjson
refused "NDJSON, line 3 nested 1000 deep" 400 h-deep 'line 3.*(nested|deep)'
# (Test names must not hold a backslash: dash's echo would expand it.)
printf '{"a":"x\000y"}' >"$TMP/n1"
printf '{"a":1}\000' >"$TMP/n2"
printf '\000{"a":1}' >"$TMP/n3"
printf '{"a":"\\u0000"}' >"$TMP/n4"
for n in "n1 inside a string" "n2 after the value" "n3 before the value"; do
	jpost "nul${n%% *}" h-nul "$TMP/${n%% *}"
	refused "NUL byte ${n#* }" 400 h-nul 'invalid JSON'
done
# Escaped, it is valid JSON (RFC 8259), and stored as sent.
jpost nuln4 esc-nul "$TMP/n4"
is "NUL escaped as u0000 in a string: 200" "$ST" 200
is "NUL escaped as u0000: stored byte for byte" "$(spool_ls && spool_py \
    "[e['body'] for e in evs if e['stream'] == 'esc-nul']")" "$($PY -c \
    'import sys; print([open(sys.argv[1]).read()])' "$TMP/n4")"
printf '{"n":123456789012345678901234567890}' >"$TMP/b1"
printf '{"n":1e999}' >"$TMP/b2"
printf '{"n":-1e999}' >"$TMP/b3"
$PY -c 'import sys; sys.stdout.write("{\"n\":" + "9" * 100000 + "}")' >"$TMP/b4"
for b in b1 b2 b3 b4; do
	jpost "num$b" h-num "$TMP/$b"
	refused "huge number ($b: $(cut -c1-30 "$TMP/$b"))" 400 h-num \
	    'too big|overflow|number'
done
serving "after the bad JSON"

# --- stream names --------------------------------------------------------------
touch "$TMP/files.before" "$TMP/files.after"
ls -A "$TMP" | sort >"$TMP/files.before"
for s in '../x' '..' '.' 'a/b' '%2e%2e' '%2e%2e%2fx' '..%2f..%2fetc' 'a%00b' \
    "$($PY -c 'print("s" * 65)')" '' 'x/../../../../tmp/evil' 'a\\b'; do
	hreq sname "POST /v1/events/$s HTTP/1.1\r\n${H}Content-Length: 12\r\n\r\n{\"evil\":123}"
	_l=$(printf %s "$s" | sed 's/\\/<backslash>/g' | cut -c1-24)
	like "stream '$_l': 400 or 404" "$ST" '^(400|404)$'
	like "stream '$_l': JSON error names the stream" "$ERR" 'stream'
done
hreq sname "POST /v1/events/.. HTTP/1.1\r\n${H}Content-Length: 2\r\n\r\n{}"
like "stream '..': the message says . and .. are not names" "$ERR" \
    'not \. or \.\.'

spool_ls
is "no event of a bad stream name stored" \
    "$(spool_py "[e['stream'] for e in evs if 'evil' in e.get('body', '')]")" "[]"
ls -A "$TMP" | sort >"$TMP/files.after"
is "no file created outside the spool" "$(comm -13 "$TMP/files.before" \
    "$TMP/files.after" | grep -v -E '^(sname\.(json|err)|ls\.(json|err)|\.out)$')" ""
is "the spool directory holds only LMDB's files" \
    "$(ls -A "$SPOOL" | sort | tr '\n' ' ')" "data.mdb lock.mdb writer.lock "
ok "nothing named evil anywhere under $TMP" sh -c "! find '$TMP' /tmp/evil -name 'evil*' 2>/dev/null | grep -q ."

# --- X-Forwarded-For -----------------------------------------------------------
# addr STREAM: the remote_addr of STREAM's events.
addr() { spool_ls && spool_py "[e.get('remote_addr', e.get('remote_addr_base64')) for e in evs if e['stream']=='$1']"; }
XH='Host: x\r\nContent-Type: application/json\r\nConnection: close\r\n'
hreq xff1 "POST /v1/events/ok-xff1 HTTP/1.1\r\n${XH}X-Forwarded-For: 6.6.6.6\r\nContent-Length: {CL}\r\n\r\n{\"x\":1}" \
    --src 127.0.0.1
is "forged X-Forwarded-For from an untrusted peer: 200" "$ST" 200
is "forged X-Forwarded-For from an untrusted peer: ignored" \
    "$(addr ok-xff1)" "['127.0.0.1']"
hreq xff2 "POST /v1/events/ok-xff2 HTTP/1.1\r\n${XH}X-Forwarded-For: 6.6.6.6, 5.6.7.8\r\nContent-Length: {CL}\r\n\r\n{\"x\":2}" \
    --src 127.0.0.2
is "X-Forwarded-For from the trusted proxy: 200" "$ST" 200
is "X-Forwarded-For from the trusted proxy: its last entry believed" \
    "$(addr ok-xff2)" "['5.6.7.8']"
# haproxy's option forwardfor adds its own header line after the client's.
hreq xff3 "POST /v1/events/ok-xff3 HTTP/1.1\r\n${XH}X-Forwarded-For: 9.9.9.9\r\nX-Forwarded-For: 8.8.8.8\r\nContent-Length: {CL}\r\n\r\n{\"x\":3}" \
    --src 127.0.0.2
is "two X-Forwarded-For lines via the trusted proxy: 200" "$ST" 200
is "two X-Forwarded-For lines: the proxy's (last) line believed, not the client's" \
    "$(addr ok-xff3)" "['8.8.8.8']"
hreq xff4 "POST /v1/events/ok-xff4 HTTP/1.1\r\n${XH}X-Forwarded-For: 1.2.3.4, <script>\xff\xfe\r\nContent-Length: {CL}\r\n\r\n{\"x\":4}" \
    --src 127.0.0.2
is "X-Forwarded-For ending in junk via the trusted proxy: 200" "$ST" 200
is "X-Forwarded-For ending in junk: the stored address is an IP address" \
    "$(spool_ls && $PY - "$TMP/ls.json" <<'EOF'
import ipaddress, json, sys
for l in open(sys.argv[1]):
    e = json.loads(l)
    if e["stream"] == "ok-xff4":
        try:
            ipaddress.ip_address(e.get("remote_addr", "?"))
            print("address")
        except ValueError:
            print("not an address: %r" % e.get("remote_addr",
                  e.get("remote_addr_base64")))
EOF
)" address

# --- methods ---------------------------------------------------------------
for m in FOO TRACE PUT DELETE post PATCH; do
	hreq meth "$m /v1/events/h-meth HTTP/1.1\r\n${H}Content-Length: {CL}\r\n\r\n{\"m\":1}"
	refused "method $m on /v1/events/STREAM" 405 h-meth 'POST'
done
hreq meth "CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: x\r\n\r\n"
like "CONNECT: 4xx" "$ST" '^4[0-9][0-9]$'
M5K=$($PY -c 'print("P" * 5000)')
hreq meth "$M5K /v1/events/h-meth HTTP/1.1\r\n${H}Content-Length: {CL}\r\n\r\n{\"m\":2}"
like "a 5000-character method: 4xx" "$ST" '^4[0-9][0-9]$'
is "odd methods: nothing stored" "$(stored h-meth)" 0

# --- Content-Length and framing -------------------------------------------------
for cl in -1 abc +2 0x2 '2 2' '2, 12' 99999999999999999999999; do
	hreq cl "POST /v1/events/h-cl HTTP/1.1\r\n${H}Content-Length: $cl\r\n\r\n{}" \
	    --timeout 5
	mhd_refused "Content-Length: $cl" '^(400|413)$' h-cl
done
for cl in 9223372036854775808 18446744073709551615 9223372036854775807; do
	hreq cl "POST /v1/events/h-cl HTTP/1.1\r\n${H}Content-Length: $cl\r\n\r\n{}" \
	    --timeout 5
	refused "Content-Length: $cl (2^63 and beyond)" 413 h-cl 'max_body'
done
# Two different lengths: the framing is unknowable (RFC 9112 6.3): 400.
hreq cl2 "POST /v1/events/h-cl2 HTTP/1.1\r\n${H}Content-Length: 2\r\nContent-Length: 12\r\n\r\n{}" \
    --timeout 5
is "two different Content-Length headers (2, 12): 400" "$ST" 400
hreq cl2 "POST /v1/events/h-cl2 HTTP/1.1\r\n${H}Content-Length: 12\r\nContent-Length: 2\r\n\r\n{\"cl2\":1234}" \
    --timeout 5
is "two different Content-Length headers (12, 2): 400" "$ST" 400
is "two different Content-Length headers: nothing stored" "$(stored h-cl2)" 0
# Both Content-Length and chunked: chunked wins or 400, then the
# connection is closed (RFC 9112 6.1: request smuggling).
hreq clte "POST /v1/events/ok-clte HTTP/1.1\r\n${H}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n{\"te\":1}\r\n0\r\n\r\n" \
    --timeout 5 --close-wait 1
like "Content-Length + chunked: 200 or 400" "$ST" '^(200|400)$'
like "Content-Length + chunked: connection closed after the answer" \
    "$CLOSED" '^[0-9]'
like "Content-Length + chunked: at most the chunked body stored" \
    "$(spool_ls && spool_py "[e['body'] for e in evs if e['stream']=='ok-clte']")" \
    '^\[\]$|^\[.\{"te":1\}.\]$'
# A transfer coding nobody knows: the body length cannot be determined.
hreq teg "POST /v1/events/h-te HTTP/1.1\r\n${H}Transfer-Encoding: gzip\r\n\r\n{}" \
    --timeout $((IDLE + 3))
like "Transfer-Encoding: gzip (not chunked): 400 or 501" "$ST" '^(400|501)$'
like "Transfer-Encoding: gzip: answered at once, not at the idle timeout" \
    "$SECS" '^0\.'
is "Transfer-Encoding: gzip: nothing stored" "$(stored h-te)" 0
hreq garbage '\x00\x01\x02\xff garbage\r\n\r\n' --timeout 5
like "garbage request line: 400, or closed by idle_timeout" "$ST:$CLOSED" \
    "^400:|^none:[0-$IDLE]\\."
hreq h09 'GET /ping\r\n\r\n' --timeout 5
like "HTTP/0.9-style request: 4xx or closed" "$ST:$CLOSED" '^4[0-9][0-9]:|^none:[0-9]'
hreq badver "POST /v1/events/h-ver HTTP/9.9\r\n${H}Content-Length: 2\r\n\r\n{}" --timeout 5
like "HTTP/9.9: 505 or 400" "$ST" '^(505|400)$'
is "HTTP/9.9: nothing stored" "$(stored h-ver)" 0

# --- HTTP/1.0 and pipelining ---------------------------------------------------
hreq h10 "POST /v1/events/ok-h10 HTTP/1.0\r\nContent-Type: application/json\r\nIdempotency-Key: h10\r\nContent-Length: 9\r\n\r\n{\"h10\":1}" \
    --close-wait 2
is "HTTP/1.0 POST: 200" "$ST" 200
like "HTTP/1.0 POST: connection closed after the answer" "$CLOSED" '^[0-9]'
is "HTTP/1.0 POST: stored once" "$(stored ok-h10)" 1
# pipe BODY...: requests for ok-pipe, one per BODY, the last with
# Connection: close, as one string.
pipe() {
	$PY - "$@" <<'EOF'
import sys
bs = sys.argv[1:]
print("".join("POST /v1/events/ok-pipe HTTP/1.1\\r\\nHost: x\\r\\n"
    "Content-Type: application/json\\r\\nContent-Length: %d\\r\\n%s\\r\\n%s"
    % (len(b), "Connection: close\\r\\n" if i == len(bs) - 1 else "", b)
    for i, b in enumerate(bs)))
EOF
}
P3=$(pipe '{"p":1}' '{"p":2' '{"p":3}')
hreq pipe "$P3" --responses 3
is "pipelined good, bad JSON, good: three answers in order" \
    "$(status 0) $(status 1) $(status 2)" "200 400 200"
is "pipelined: exactly the two good events stored, in order" \
    "$(spool_ls && spool_py "[e['body'] for e in evs if e['stream']=='ok-pipe']")" \
    "['{\"p\":1}', '{\"p\":3}']"
PIPE=$($PY -c 'print("".join(
    "POST /v1/events/ok-pipe50 HTTP/1.1\\r\\nHost: x\\r\\nContent-Type: application/json\\r\\nContent-Length: %d\\r\\n\\r\\n%s" % (len(b), b)
    for b in ["{\"q\":%d}" % i for i in range(50)]))')
hreq pipe50 "$PIPE" --responses 50
is "50 pipelined requests in one write: 50 answers 200" \
    "$($PY -c 'import json,sys; a=json.load(open(sys.argv[1]))["answers"]
print(len(a), set(x["status"] for x in a))' "$TMP/pipe50.json")" "50 {200}"
is "50 pipelined requests: 50 events stored" "$(stored ok-pipe50)" 50
serving "at the end"

# --- nothing accepted lost, nothing hostile stored ------------------------------
touch "$TMP/stop-polite"
wait $POLITE
spool_ls
is "the agent is still running" "$(_alive "$APID" && echo yes)" yes
$PY - "$TMP/polite.json" "$TMP/serving.acked" "$TMP/ls.json" >"$TMP/verdict" <<'EOF'
import json, sys
p = json.load(open(sys.argv[1]))
acked = p["acked"] + [l.strip() for l in open(sys.argv[2]) if l.strip()]
evs = [json.loads(l) for l in open(sys.argv[3])]
keys = {}
for e in evs:
    keys[e["key"]] = keys.get(e["key"], 0) + 1
print("missing", [k for k in acked if keys.get(k) != 1][:5])
print("failed", len(p["failed"]), p["failed"][:3])
print("acked", len(acked))
print("worst", p["worst"][:3])
print("hostile", sorted(set(e["stream"] for e in evs
                            if e["stream"].startswith("h-"))))
EOF
v() { sed -n "s/^$1 //p" "$TMP/verdict"; }
diag "polite client: $(v acked) acknowledged, worst latencies $(v worst)"
is "every event acknowledged to the polite and ordinary clients is stored once" \
    "$(v missing)" "[]"
is "the polite client (0.2 s apart, from its own address) was never refused" \
    "$(v failed)" "0 []"
is "no hostile request stored anything (streams h-*)" "$(v hostile)" "[]"
ok "ferry-spool check passes" "$FS" -d "$SPOOL" check
agent_stop
is "agent exits 0 on SIGTERM" "$AGENT_RC" 0
done_testing
