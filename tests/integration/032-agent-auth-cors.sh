#!/bin/sh
# 032-agent-auth-cors.sh: who may send, from where.  Against the real agent
# with curl and python's http.client, the spool read back with
# `ferry-spool ls --json`.  Proves that:
#  - with a tokens file, a POST without a token or with an unknown one gets
#    401 + WWW-Authenticate, a token limited to other streams gets 403, and
#    none of them stores anything; the right token gets 200;
#  - SIGHUP after rewriting the tokens file swaps the tokens (old 401, new
#    200) without dropping a keep-alive connection opened before it;
#  - CORS: a preflight from an allowed origin gets 204 with the Allow-*
#    headers (no token needed), from another origin 403; answers to allowed
#    origins, errors included, carry Access-Control-Allow-Origin;
#  - X-Forwarded-For gives remote_addr only when the peer is in
#    trusted_proxies, and then its last entry.
T=${FERRY_TESTS_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$T/lib.sh"
. "$T/agent-lib.sh"

A1='200 {"accepted":1,"duplicates":0}'
code() { echo "${1%% *}"; }
jerr() { printf '%s' "${1#* }" | $PY -c 'import json,sys
j=json.load(sys.stdin); e=j["error"]; assert isinstance(e,str) and e; print(e)'; }
stored() { spool_ls && spool_py "sum(1 for e in evs if e['stream']=='$1')"; }
sha() { printf %s "$1" | sha256sum | cut -d' ' -f1; }

TOK_A=alpha-$$-token-1
TOK_B=bravo-$$-token-2
TOK_C=charlie-$$-token-3
cat >"$TMP/tokens" <<EOF
# test tokens
$(sha "$TOK_A")  alpha
$(sha "$TOK_B")  bravo  b1,b2
EOF
agent_conf "$TMP/a.conf" "tokens_file = $TMP/tokens" \
    "cors_origins = https://ok.example https://app.example" \
    "trusted_proxies = 127.0.0.1"
ok "agent starts" agent_start || { done_testing; exit 1; }

# --- bearer tokens -------------------------------------------------------
R=$(post s1 application/json '{"t":0}')
is "no token: 401" "$(code "$R")" 401
ok "no token: JSON error" jerr "$R"
like "no token: WWW-Authenticate: Bearer" "$(hdr WWW-Authenticate)" '^Bearer'
R=$(post s1 application/json '{"t":1}' -H "Authorization: Bearer wrong-$TOK_A")
is "wrong token: 401" "$(code "$R")" 401
like "wrong token: WWW-Authenticate" "$(hdr WWW-Authenticate)" '^Bearer'
is "token as Basic: 401" "$(code "$(post s1 application/json '{"t":2}' \
    -H "Authorization: Basic $TOK_A")")" 401
is "token prefix only: 401" "$(code "$(post s1 application/json '{"t":3}' \
    -H "Authorization: Bearer ${TOK_A%?}")")" 401
is "nothing stored by 401s" "$(stored s1)" 0
is "token A: 200" "$(post s1 application/json '{"t":4}' \
    -H "Authorization: Bearer $TOK_A")" "$A1"
is "token A with whitespace after it: 200" "$(post s1 application/json \
    '{"t":4.5}' -H "Authorization: Bearer $TOK_A  ")" "$A1"
is "token B on its stream b2: 200" "$(post b2 application/json '{"t":5}' \
    -H "Authorization: Bearer $TOK_B")" "$A1"
R=$(post s1 application/json '{"t":6}' -H "Authorization: Bearer $TOK_B")
is "token B on stream s1: 403" "$(code "$R")" 403
ok "403: JSON error" jerr "$R"
like "403: names the stream" "$R" 'may not write to stream s1'
is "token B on stream b: 403 (no prefix match)" "$(code "$(post b \
    application/json '{"t":7}' -H "Authorization: Bearer $TOK_B")")" 403
spool_ls
is "stored: only the three authorised events" "$(spool_py \
    "sorted(e['body'] for e in evs)")" \
    "['{\"t\":4.5}', '{\"t\":4}', '{\"t\":5}']"
is "/ping needs no token" "$(get /ping)" "200 pong"

# --- SIGHUP: new tokens, old connection kept -----------------------------
# The client opens its connection and uses it before the reload, waits,
# then sends on the same socket: the new token must pass, the old fail.
cat >"$TMP/ka.py" <<'EOF'
import http.client, json, os, sys, time
port, tmp, old, new = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
def post(tok, body):
    c.request("POST", "/v1/events/ka", body=body, headers={
        "Content-Type": "application/json", "Authorization": "Bearer " + tok})
    r = c.getresponse(); r.read()
    return r.status
out = [post(old, '{"ka":1}')]
sock = c.sock.getsockname()
open(tmp + "/ka.ready", "w").close()
while not os.path.exists(tmp + "/ka.go"):
    time.sleep(0.02)
out.append(post(new, '{"ka":2}'))
out.append(c.sock is not None and c.sock.getsockname() == sock)
print(json.dumps(out))
EOF
$PY "$TMP/ka.py" "$PORT" "$TMP" "$TOK_A" "$TOK_C" >"$TMP/ka.out" 2>&1 &
KPID=$!
i=0; while [ ! -e "$TMP/ka.ready" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
ok "keep-alive client made its first request" test -e "$TMP/ka.ready"
cat >"$TMP/tokens" <<EOF
$(sha "$TOK_C")  charlie
$(sha "$TOK_B")  bravo  b1,b2
EOF
kill -HUP "$APID"
i=0
while [ $i -lt 50 ] && [ "$(code "$(post s2 application/json '{"h":1}' \
    -H "Authorization: Bearer $TOK_C")")" != 200 ]; do
	sleep 0.1; i=$((i + 1))
done
touch "$TMP/ka.go"
wait "$KPID"
is "after SIGHUP: agent still running" "$(get /ping)" "200 pong"
R=$(post s2 application/json '{"h":2}' -H "Authorization: Bearer $TOK_A")
is "after SIGHUP: old token 401" "$(code "$R")" 401
is "after SIGHUP: new token 200" "$(post s2 application/json '{"h":3}' \
    -H "Authorization: Bearer $TOK_C")" "$A1"
is "keep-alive: old token before, new token after, same socket" \
    "$(cat "$TMP/ka.out")" "[200, 200, true]"
is "keep-alive: both events stored" "$(stored ka)" 2
curl -sv -o /dev/null -o /dev/null -H 'Content-Type: application/json' \
    -H "Authorization: Bearer $TOK_C" --data-binary '{"two":1}' \
    "$URL/v1/events/two1" "$URL/v1/events/two2" 2>"$TMP/two.err"
like "curl with two URLs reuses the connection" "$(cat "$TMP/two.err")" \
    '[Rr]e-?using existing connection'
is "two URLs: both stored" "$(($(stored two1) + $(stored two2)))" 2
printf 'garbage\n' >"$TMP/tokens"
kill -HUP "$APID"
sleep 0.5
is "bad tokens file on SIGHUP: old tokens kept" "$(post s3 \
    application/json '{"h":4}' -H "Authorization: Bearer $TOK_C")" "$A1"
like "bad tokens file on SIGHUP: logged" "$(cat "$TMP/agent.log")" \
    'reload: .*keeping the old tokens'
like "SIGHUP: the reload logged with the count and the level" \
    "$(cat "$TMP/agent.log")" 'reloaded .*: 2 tokens from .*, log level info'
reloaded() { log_lines "$TMP/agent.log" 'info: reloaded' "$1"; }
: >"$TMP/tokens"
R0=$(grep -c 'info: reloaded' "$TMP/agent.log")
kill -HUP "$APID"
reloaded $((R0 + 1))
like "an empty tokens file on SIGHUP: a warning" "$(cat "$TMP/agent.log")" \
    'warn: .*tokens holds no token: every POST gets 401'
is "an empty tokens file: 401" "$(code "$(post s3 application/json \
    '{"h":5}' -H "Authorization: Bearer $TOK_C")")" 401
cat >"$TMP/tokens" <<EOF
$(sha "$TOK_C")  charlie
$(sha "$TOK_B")  bravo  b1,b2
EOF
kill -HUP "$APID"
reloaded $((R0 + 2))

# --- CORS ----------------------------------------------------------------
R=$(get /v1/events/s1 -X OPTIONS -H 'Origin: https://app.example' \
    -H 'Access-Control-Request-Method: POST' \
    -H 'Access-Control-Request-Headers: content-type, authorization')
is "preflight, allowed origin, no token: 204" "$(code "$R")" 204
is "preflight: Allow-Origin is the origin" \
    "$(hdr Access-Control-Allow-Origin)" https://app.example
like "preflight: Allow-Methods has POST" \
    "$(hdr Access-Control-Allow-Methods)" 'POST'
like "preflight: Allow-Headers has Content-Type" \
    "$(hdr Access-Control-Allow-Headers)" '[Cc]ontent-[Tt]ype'
like "preflight: Allow-Headers has Authorization" \
    "$(hdr Access-Control-Allow-Headers)" '[Aa]uthorization'
like "preflight: Allow-Headers has Idempotency-Key" \
    "$(hdr Access-Control-Allow-Headers)" '[Ii]dempotency-[Kk]ey'
is "preflight then its POST: one connection" "$(curl -s --max-time 10 \
    -w '%{http_code}:%{num_connects} ' -H 'Origin: https://app.example' \
    -o /dev/null -X OPTIONS -H 'Access-Control-Request-Method: POST' \
    "$URL/v1/events/cors" --next -s -w '%{http_code}:%{num_connects}' \
    -o /dev/null -H 'Origin: https://app.example' \
    -H 'Content-Type: application/json' -H "Authorization: Bearer $TOK_C" \
    --data-binary '{"p":1}' "$URL/v1/events/cors")" "204:1 200:0"
R=$(get /v1/events/s1 -X OPTIONS -H 'Origin: https://evil.example' \
    -H 'Access-Control-Request-Method: POST')
is "preflight, other origin: 403" "$(code "$R")" 403
ok "preflight 403: JSON error" jerr "$R"
is "preflight 403: no Allow-Origin" "$(hdr Access-Control-Allow-Origin)" ""
R=$(get /v1/events/s1 -X OPTIONS -H 'Origin: https://ok.example.evil' \
    -H 'Access-Control-Request-Method: POST')
is "preflight, origin with allowed prefix: 403" "$(code "$R")" 403
is "POST with allowed Origin: 200" "$(post cors application/json \
    '{"c":1}' -H 'Origin: https://ok.example' \
    -H "Authorization: Bearer $TOK_C")" "$A1"
is "POST with allowed Origin: Allow-Origin" \
    "$(hdr Access-Control-Allow-Origin)" https://ok.example
R=$(post cors application/json '{"c":2}' -H 'Origin: https://ok.example')
is "401 to an allowed Origin: Allow-Origin (browser can read it)" \
    "$(hdr Access-Control-Allow-Origin)" https://ok.example
R=$(post cors application/json '{"c":3}' -H 'Origin: https://evil.example' \
    -H "Authorization: Bearer $TOK_C")
is "POST with other Origin: no Allow-Origin" \
    "$(hdr Access-Control-Allow-Origin)" ""

# --- X-Forwarded-For from a trusted proxy --------------------------------
post xff application/json '{"x":1}' -H "Authorization: Bearer $TOK_C" \
    -H 'X-Forwarded-For: 198.51.100.1, 203.0.113.9' >/dev/null
post xff application/json '{"x":2}' -H "Authorization: Bearer $TOK_C" \
    -H 'X-Forwarded-For: 2001:db8::7' >/dev/null
post xff application/json '{"x":3}' -H "Authorization: Bearer $TOK_C" \
    >/dev/null
spool_ls
is "trusted proxy: remote_addr from X-Forwarded-For (last entry)" \
    "$(spool_py "[e['remote_addr'] for e in evs if e['stream']=='xff']")" \
    "['203.0.113.9', '2001:db8::7', '127.0.0.1']"
agent_stop
is "SIGTERM: exit 0" "$AGENT_RC" 0

agent_conf "$TMP/b.conf"
ok "agent without trusted_proxies starts" agent_start
is "untrusted peer, X-Forwarded-For: 200" "$(post xff2 application/json \
    '{"x":4}' -H 'X-Forwarded-For: 203.0.113.9')" "$A1"
spool_ls
is "untrusted peer: remote_addr is the peer" "$(spool_py \
    "[e['remote_addr'] for e in evs if e['stream']=='xff2']")" \
    "['127.0.0.1']"
is "no tokens file: no token needed" "$(post open application/json \
    '{"o":1}')" "$A1"
R=$(get /v1/events/s1 -X OPTIONS -H 'Origin: https://ok.example')
is "no cors_origins: preflight 403" "$(code "$R")" 403
agent_stop
done_testing
