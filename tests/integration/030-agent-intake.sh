#!/bin/sh
# 030-agent-intake.sh: POST /v1/events/{stream} end to end.  The real agent
# on loopback, spoken to with curl; what it stored read back with
# `ferry-spool ls --json` and python's json module.  Proves that:
#  - a single JSON event and an NDJSON batch are stored exactly as sent
#    (bytes, content type, stream), a batch in order with consecutive seqs;
#  - every refusal stores nothing and says why in a JSON {"error": "..."}:
#    400 bad JSON (the NDJSON line named, the whole batch refused), empty
#    body, bad stream names; 413 body over max_body (also chunked and as a
#    gzip bomb), more than max_events; 415 unknown content type; 404 unknown
#    path or (strict_streams) stream; 405 + Allow; 431 large headers;
#  - the limits are exact: max_body and max_events themselves are accepted;
#  - gzip bodies are decompressed, opaque bodies stored byte for byte where
#    the stream allows them, and the agent keeps serving after all of it.
T=${FERRY_TESTS_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$T/lib.sh"
. "$T/agent-lib.sh"

agent_conf "$TMP/a.conf" "max_body = 4KiB" "max_events = 100" \
    "max_header = 2KiB" "[stream.opq]" "allow_opaque = yes"

code() { echo "${1%% *}"; }
# jerr RESULT: the "error" string of RESULT's JSON body; fails if none.
jerr() { printf '%s' "${1#* }" | $PY -c 'import json,sys
j=json.load(sys.stdin); e=j["error"]; assert isinstance(e,str) and e; print(e)'; }
# stored STREAM: how many events of STREAM the spool holds.
stored() { spool_ls && spool_py "sum(1 for e in evs if e['stream']=='$1')"; }
# refused NAME RESULT STATUS [STREAM]: that status, a JSON error, and
# nothing stored in STREAM.
refused() {
	is "$1: $3" "$(code "$2")" "$3"
	ok "$1: JSON error body" jerr "$2"
	[ -z "${4:-}" ] || is "$1: nothing stored" "$(stored "$4")" 0
}
# serving: the agent still answers an ordinary event.
serving() {
	is "$1: agent still serving" \
	    "$(post alive application/json "{\"after\":\"$1\"}")" \
	    '200 {"accepted":1,"duplicates":0}'
}

ok "agent starts" agent_start || { done_testing; exit 1; }
# LMDB holds a shared fcntl lock on lock.mdb while the environment is open:
# without it the next process to open the spool re-initialises the lock
# table under the agent (closing any other descriptor of the file drops it).
INO=$(stat -c %i "$SPOOL/lock.mdb")
like "the agent holds LMDB's shared lock on lock.mdb" "$(cat /proc/locks)" \
    "POSIX +ADVISORY +READ +$APID +[0-9a-f]+:[0-9a-f]+:$INO "

# --- health --------------------------------------------------------------
is "/ping: 200 pong" "$(get /ping)" "200 pong"
is "/ready: 200" "$(code "$(get /ready)")" 200
# One keep-alive connection for all of them (libmicrohttpd closes it when
# the answer is queued before the request is whole): curl's num_connects
# is 1 for the first transfer and 0 for each that reused it.
is "GET /ping /ready /metrics, a 404, a 405, HEAD: one connection" \
    "$(curl -s --max-time 10 -w '%{http_code}:%{num_connects} ' \
    -o /dev/null "$URL/ping" -o /dev/null "$URL/ready" \
    -o /dev/null "$URL/metrics" -o /dev/null "$URL/nowhere" \
    -o /dev/null "$URL/v1/events/x" -o /dev/null -I "$URL/ping")" \
    "200:1 200:0 200:0 404:0 405:0 200:0 "
is "GET with a body: answered, that connection closed" \
    "$(curl -s --max-time 10 -w '%{http_code}:%{num_connects} ' \
    -o /dev/null -X GET -d x "$URL/ping" -o /dev/null "$URL/ping")" \
    "200:1 200:1 "

# --- one JSON event, stored byte for byte --------------------------------
EV='{ "n" : 1, "s": "h\u00e9llo",  "u": "é" }'
is "single event: 200 accepted 1" "$(post one application/json "$EV")" \
    '200 {"accepted":1,"duplicates":0}'
is "single event: answer is application/json" "$(hdr Content-Type)" \
    application/json
spool_ls
is "single event: stored once" "$(spool_py \
    "len([e for e in evs if e['stream']=='one'])")" 1
is "single event: exact bytes" "$(spool_py \
    "[e['body'] for e in evs if e['stream']=='one'][0]")" "$EV"
is "single event: content type" "$(spool_py \
    "[e['content_type'] for e in evs if e['stream']=='one'][0]")" \
    application/json

# --- NDJSON: 100 events (= max_events) in order, consecutive seqs --------
$PY -c 'for i in range(100): print("{\"i\":%d}" % i)' >"$TMP/b100"
is "batch of 100: 200 accepted 100" \
    "$(post batch application/x-ndjson "@$TMP/b100")" \
    '200 {"accepted":100,"duplicates":0}'
spool_ls
is "batch: 100 stored, bodies in order" "$(spool_py \
    "[e['body'] for e in evs if e['stream']=='batch'] == \
    ['{\"i\":%d}' % i for i in range(100)]")" True
is "batch: consecutive seqs" "$(spool_py "(lambda s: s == \
    list(range(s[0], s[0] + 100)))([e['seq'] for e in evs \
    if e['stream']=='batch'])")" True
is "batch: content type" "$(spool_py "sorted(set(e['content_type'] \
    for e in evs if e['stream']=='batch'))")" "['application/x-ndjson']"

# --- max_events + 1: 413, nothing stored ---------------------------------
$PY -c 'for i in range(101): print("{\"j\":%d}" % i)' >"$TMP/b101"
R=$(post over101 application/x-ndjson "@$TMP/b101")
refused "101 events (max_events 100)" "$R" 413 over101

# --- a bad line in the middle of a batch: 400 naming it, nothing stored --
printf '{"k":1}\n{"k":2}\n{"k":3}\n{"k":4,}\n{"k":5}\n{"k":6}\n' \
    >"$TMP/bad4"
R=$(post badline application/x-ndjson "@$TMP/bad4")
refused "bad line 4 of 6" "$R" 400 badline
like "bad line: message names line 4" "$(jerr "$R")" 'line 4([^0-9]|$)'

# --- other bodies that are not events ------------------------------------
refused "invalid JSON" "$(post inv application/json '{"a":')" 400 inv
refused "two JSON values as application/json" \
    "$(post inv2 application/json '{"a":1} {"b":2}')" 400 inv2
refused "empty body" "$(post empty application/json '')" 400 empty
R=$(post bom application/json "$(printf '\357\273\277{"a":1}')")
refused "JSON after a byte order mark" "$R" 400 bom
like "byte order mark: the message says so" "$(jerr "$R")" \
    '^line 1: starts with a UTF-8 byte order mark'
R=$(post bom application/x-ndjson "$(printf '{"a":1}\n\357\273\277{"a":2}')")
refused "NDJSON line 2 after a byte order mark" "$R" 400 bom
like "byte order mark: NDJSON names line 2" "$(jerr "$R")" '^line 2: starts with'
refused "blank NDJSON" "$(post blank application/x-ndjson '

')" 400 blank

# --- gzip ----------------------------------------------------------------
printf '{"g":1}\n{"g":2}\n{"g":3}\n' | gzip -c >"$TMP/g.gz"
is "gzip NDJSON: 200 accepted 3" \
    "$(post gz application/x-ndjson "@$TMP/g.gz" \
    -H 'Content-Encoding: gzip')" '200 {"accepted":3,"duplicates":0}'
spool_ls
is "gzip: stored decompressed" "$(spool_py \
    "[e['body'] for e in evs if e['stream']=='gz']")" \
    "['{\"g\":1}', '{\"g\":2}', '{\"g\":3}']"
printf 'not gzip at all' >"$TMP/notgz"
refused "Content-Encoding gzip, body not gzip" \
    "$(post notgz application/json "@$TMP/notgz" \
    -H 'Content-Encoding: gzip')" 400 notgz
refused "Content-Encoding br" \
    "$(post br application/json '{"a":1}' -H 'Content-Encoding: br')" \
    415 br
# A bomb: 4 MiB of JSON whitespace in a valid event, ~4 KB compressed.
$PY -c 'import gzip,sys; sys.stdout.buffer.write(gzip.compress(
    b"{\"bomb\":1" + b" " * (4 << 20) + b"}", 9))' >"$TMP/bomb.gz"
like "gzip bomb is small compressed" "$(wc -c <"$TMP/bomb.gz")" \
    '^ *[0-9]{1,4}$'
refused "gzip bomb" "$(post bomb application/json "@$TMP/bomb.gz" \
    -H 'Content-Encoding: gzip')" 413 bomb
serving "after the gzip bomb"

# --- max_body = 4096 exactly ---------------------------------------------
$PY -c 'import sys; sys.stdout.write("\"" + "x" * 4094 + "\"")' >"$TMP/b4096"
$PY -c 'import sys; sys.stdout.write("\"" + "x" * 4095 + "\"")' >"$TMP/b4097"
is "body of max_body bytes: 200" \
    "$(post atmax application/json "@$TMP/b4096")" \
    '200 {"accepted":1,"duplicates":0}'
spool_ls
is "body of max_body bytes: stored whole" "$(spool_py \
    "[e['body_len'] for e in evs if e['stream']=='atmax']")" "[4096]"
refused "body of max_body + 1 bytes" \
    "$(post overmax application/json "@$TMP/b4097")" 413 overmax
refused "max_body + 1, chunked (no Content-Length)" \
    "$(post overchunk application/json "@$TMP/b4097" \
    -H 'Transfer-Encoding: chunked')" 413 overchunk
refused "64 KiB body" "$(post big application/json \
    "\"$($PY -c 'print("y"*65536)')\"")" 413 big
serving "after the large bodies"

# --- content types -------------------------------------------------------
refused "text/plain on a plain stream" \
    "$(post plain text/plain 'hello')" 415 plain
refused "no Content-Type" "$(post noct '' '{"a":1}')" 415 noct
$PY -c 'import sys; sys.stdout.buffer.write(bytes(range(256)) * 2)' \
    >"$TMP/bin"
is "opaque binary on allow_opaque stream: 200" \
    "$(post opq application/octet-stream "@$TMP/bin")" \
    '200 {"accepted":1,"duplicates":0}'
spool_ls
is "opaque: stored byte for byte" "$($PY -c 'import json,sys,base64
evs=[json.loads(l) for l in open(sys.argv[1])]
e=[e for e in evs if e["stream"]=="opq"]
print(len(e)==1 and base64.b64decode(e[0]["body_base64"]) ==
    open(sys.argv[2],"rb").read())' "$TMP/ls.json" "$TMP/bin")" True
is "opaque: content type as sent" "$(spool_py \
    "[e['content_type'] for e in evs if e['stream']=='opq']")" \
    "['application/octet-stream']"
is "JSON with charset parameter: 200" \
    "$(post cs 'application/json; charset=utf-8' '{"cs":1}')" \
    '200 {"accepted":1,"duplicates":0}'

# --- stream names --------------------------------------------------------
S64=$($PY -c 'print("s" * 64)')
S65=$($PY -c 'print("s" * 65)')
is "64-char stream: 200" "$(post "$S64" application/json '{"s":64}')" \
    '200 {"accepted":1,"duplicates":0}'
is "64-char stream: stored under that name" "$(stored "$S64")" 1
refused "65-char stream" "$(post "$S65" application/json '{"s":65}')" 400
refused "stream a:b" "$(post 'a:b' application/json '{"s":1}')" 400
for s in 'a%2Fb' '..%2f' '..%2F..%2Fetc' '%2e%2e' 'a%00b'; do
	R=$(post "$s" application/json '{"evil":1}' --path-as-is)
	like "stream $s: 400 or 404" "$(code "$R")" '^(400|404)$'
	ok "stream $s: JSON error body" jerr "$R"
done
R=$(curl -s -o "$TMP/resp" -w '%{http_code}' --path-as-is \
    -H 'Content-Type: application/json' --data-binary '{"evil":2}' \
    "$URL/v1/events/../x")
like "path /v1/events/../x: 400 or 404" "$R" '^(400|404)$'
refused "empty stream name" "$(post '' application/json '{"s":0}')" 400
spool_ls
is "no evil event stored" "$(spool_py \
    "[e['stream'] for e in evs if 'evil' in e.get('body','')]")" "[]"

# --- paths and methods ---------------------------------------------------
refused "GET unknown path" "$(get /nope)" 404
refused "POST unknown path" "$(curl -s -o "$TMP/resp" -w '%{http_code}' \
    -H 'Content-Type: application/json' --data-binary '{}' \
    "$URL/v2/events/x") $(cat "$TMP/resp")" 404
refused "GET /v1/events/x" "$(get /v1/events/x)" 405
like "GET /v1/events/x: Allow names POST" "$(hdr Allow)" 'POST'
refused "PUT /v1/events/x" "$(get /v1/events/x -X PUT)" 405
like "PUT /v1/events/x: Allow names POST" "$(hdr Allow)" 'POST'
refused "POST /ping" "$(get /ping -X POST)" 405
like "POST /ping: Allow names GET" "$(hdr Allow)" 'GET'
refused "DELETE /ready" "$(get /ready -X DELETE)" 405
like "DELETE /ready: Allow names GET" "$(hdr Allow)" 'GET'

# --- headers larger than max_header (2 KiB) ------------------------------
PAD3=$($PY -c 'print("p" * 3000)')
refused "3 KB header on POST (max_header 2 KiB)" \
    "$(post hdr3k application/json '{"h":3}' -H "X-Pad: $PAD3")" 431 hdr3k
PAD60=$($PY -c 'print("q" * 60000)')
R=$(post hdr60k application/json '{"h":60}' -H "X-Pad: $PAD60")
like "60 KB header (over libmicrohttpd's buffer): 4xx" "$(code "$R")" \
    '^4[0-9][0-9]$'
diag "60 KB header answered: $R"
is "60 KB header: nothing stored" "$(stored hdr60k)" 0
serving "after the large headers"

# --- strict_streams: a new agent on the same spool -----------------------
agent_stop
is "agent exits 0 on SIGTERM" "$AGENT_RC" 0
agent_conf "$TMP/b.conf" "strict_streams = yes" "[stream.known]"
ok "strict agent starts" agent_start || { done_testing; exit 1; }
is "strict: known stream 200" "$(post known application/json '{"k":1}')" \
    '200 {"accepted":1,"duplicates":0}'
refused "strict: unknown stream" \
    "$(post unknown application/json '{"k":1}')" 404 unknown
is "strict: earlier events still there" "$(stored batch)" 100
agent_stop
done_testing
