#!/bin/sh
# 031-agent-dedup.sh: duplicates are answered as successes and stored once.
# Proves, with curl against the real agent and the spool read back by
# `ferry-spool ls --json`, that an event is deduplicated:
#  - by its Idempotency-Key (even when the body differs), and by stream +
#    body when it has no key, but never across streams;
#  - by [dedup] json_key inside an NDJSON batch and across batches;
#  - when 20 clients send one key at the same moment (exactly one stored);
#  - across a graceful restart and across a SIGKILL;
#  - only within [dedup] window: after it, the same key is stored again.
T=${FERRY_TESTS_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$T/lib.sh"
. "$T/agent-lib.sh"

A1='200 {"accepted":1,"duplicates":0}'
D1='200 {"accepted":0,"duplicates":1}'
# stored STREAM: how many events of STREAM the spool holds.
stored() { spool_ls && spool_py "sum(1 for e in evs if e['stream']=='$1')"; }
# bodies STREAM: the bodies of STREAM's events, in spool order.
code() { printf '%s' "${1%% *}"; }
bodies() { spool_ls && spool_py "[e['body'] for e in evs if e['stream']=='$1']"; }

agent_conf "$TMP/a.conf" "[dedup]" "json_key = id"
ok "agent starts" agent_start || { done_testing; exit 1; }

# --- Idempotency-Key -----------------------------------------------------
is "key k-1, first: accepted" \
    "$(post ik application/json '{"v":1}' -H 'Idempotency-Key: k-1')" "$A1"
is "key k-1 again: duplicate" \
    "$(post ik application/json '{"v":1}' -H 'Idempotency-Key: k-1')" "$D1"
is "key k-1, other body: still a duplicate" \
    "$(post ik application/json '{"v":2}' -H 'Idempotency-Key: k-1')" "$D1"
is "key k-2, same body: accepted" \
    "$(post ik application/json '{"v":1}' -H 'Idempotency-Key: k-2')" "$A1"
R=$(post ik application/json '{"v":3}' -H 'Idempotency-Key: k-7' \
    -H 'Idempotency-Key: k-8')
is "two different Idempotency-Keys: 400" "$(code "$R")" 400
like "two different Idempotency-Keys: says so" "$R" 'given twice'
is "the same Idempotency-Key twice: it is the key (k-1: duplicate)" \
    "$(post ik application/json '{"v":4}' -H 'Idempotency-Key: k-1' \
    -H 'Idempotency-Key: k-1')" "$D1"
is "key k-1 on another stream: accepted" \
    "$(post ik2 application/json '{"v":1}' -H 'Idempotency-Key: k-1')" "$A1"
# Where one stream's name ends and the key (or body) begins: stream "a"
# with key "kfoo" is not stream "ak" with key "foo", nor is stream "a" with
# key 'b{"x":9}' stream "ak" with the body '{"x":9}' and no key.
is "stream a, key kfoo: accepted" \
    "$(post a application/json '{"s":"a"}' -H 'Idempotency-Key: kfoo')" "$A1"
is "stream ak, key foo: accepted" \
    "$(post ak application/json '{"s":"ak"}' -H 'Idempotency-Key: foo')" "$A1"
is "stream a, key b{\"x\":9}: accepted" \
    "$(post a application/json '{"s":"a2"}' -H 'Idempotency-Key: b{"x":9}')" "$A1"
is "stream ak, body {\"x\":9}, no key: accepted" \
    "$(post ak application/json '{"x":9}')" "$A1"
is "streams a and ak: two events each" "$(spool_ls && spool_py \
    "[sum(e['stream'] == s for e in evs) for s in ('a', 'ak')]")" "[2, 2]"
is "stream ik: two events, the first bodies" "$(bodies ik)" \
    "['{\"v\":1}', '{\"v\":1}']"
is "stream ik: keys k-1, k-2" "$(spool_py \
    "[e['key'] for e in evs if e['stream']=='ik']")" "['k-1', 'k-2']"

# --- no key: by body -----------------------------------------------------
is "no key, first: accepted" "$(post nk application/json '{"b":1}')" "$A1"
is "no key, same body: duplicate" \
    "$(post nk application/json '{"b":1}')" "$D1"
is "no key, other body: accepted" \
    "$(post nk application/json '{"b":2}')" "$A1"
is "no key, same body, other stream: accepted" \
    "$(post nk2 application/json '{"b":1}')" "$A1"
is "stream nk: stored once each" "$(bodies nk)" \
    "['{\"b\":1}', '{\"b\":2}']"

# --- json_key = id, inside a batch and across batches --------------------
printf '{"id":"a","n":1}\n{"id":"b","n":2}\n{"id":"a","n":3}\n{"id":"c","n":4}\n' \
    >"$TMP/j1"
printf '{"id":"c","n":5}\n{"id":"d","n":6}\n{"id":7,"n":7}\n{"id":7,"n":8}\n' \
    >"$TMP/j2"
is "batch 1 (a b a c): 3 accepted, 1 duplicate" \
    "$(post jk application/x-ndjson "@$TMP/j1")" \
    '200 {"accepted":3,"duplicates":1}'
is "batch 2 (c d 7 7): 2 accepted, 2 duplicates" \
    "$(post jk application/x-ndjson "@$TMP/j2")" \
    '200 {"accepted":2,"duplicates":2}'
is "batch 1 again: all duplicates" \
    "$(post jk application/x-ndjson "@$TMP/j1")" \
    '200 {"accepted":0,"duplicates":4}'
is "json_key: first of each id stored, in order" "$(bodies jk)" \
    "['{\"id\":\"a\",\"n\":1}', '{\"id\":\"b\",\"n\":2}', '{\"id\":\"c\",\"n\":4}', '{\"id\":\"d\",\"n\":6}', '{\"id\":7,\"n\":7}']"
is "json_key: keys stored" "$(spool_py \
    "[e['key'] for e in evs if e['stream']=='jk']")" \
    "['a', 'b', 'c', 'd', '7']"
is "json_key on a single event: duplicate of the batch's b" \
    "$(post jk application/json '{"id":"b","n":9}')" "$D1"
# The json_key field comes before the Idempotency-Key, alone or in a batch:
# a batch retried one event at a time finds its duplicates.
is "single event, id b, with an Idempotency-Key: still b's duplicate" \
    "$(post jk application/json '{"id":"b","n":10}' -H 'Idempotency-Key: h-10')" "$D1"
is "single event without the field: keyed by its Idempotency-Key" \
    "$(post jk application/json '{"n":11}' -H 'Idempotency-Key: h-10')" "$A1"
is "the same Idempotency-Key again, no field: duplicate" \
    "$(post jk application/json '{"n":11.5}' -H 'Idempotency-Key: h-10')" "$D1"
is "NDJSON with a header: lines with an id by it, the others by header#line" \
    "$(post jk application/x-ndjson "$(printf '{"id":"a","n":12}\n{"n":13}\n')" \
    -H 'Idempotency-Key: h-10')" '200 {"accepted":1,"duplicates":1}'
is "stream jk: keys h-10 and h-10#2 stored" "$(spool_ls && spool_py \
    "[e['key'] for e in evs if e['stream']=='jk'][-2:]")" "['h-10', 'h-10#2']"
K1016=$(head -c 1016 /dev/zero | tr '\0' k)
is "NDJSON, Idempotency-Key of 1016 bytes: accepted" \
    "$(post jk application/x-ndjson '{"n":14}' -H "Idempotency-Key: $K1016")" "$A1"
R=$(post jk application/x-ndjson '{"n":15}' -H "Idempotency-Key: ${K1016}k")
is "NDJSON, Idempotency-Key of 1017 bytes: 400" "$(code "$R")" 400
like "1017 bytes: the message gives both limits" "$R" \
    'Idempotency-Key longer than 1016 bytes.*at most 1024 bytes'
K1024=$(head -c 1024 /dev/zero | tr '\0' k)
is "single event, Idempotency-Key of 1024 bytes: accepted" \
    "$(post jk application/json '{"n":16}' -H "Idempotency-Key: $K1024")" "$A1"
is "single event, Idempotency-Key of 1025 bytes: 400" \
    "$(code "$(post jk application/json '{"n":17}' -H "Idempotency-Key: ${K1024}k")")" 400

# --- while the in-memory index grows -------------------------------------
# The index doubles at 717 and at 1434 entries and moves its old table
# across a few slots a put (spool/dedup.c): after 1500 new ids it is
# halfway through the second move, and every one of them must still be
# found, whichever table holds it.
# (Two batches each: max_events is 1000.)
seq 1 750 | sed 's/.*/{"id":"g-&"}/' >"$TMP/g1"
seq 751 1500 | sed 's/.*/{"id":"g-&"}/' >"$TMP/g2"
sed 's/}$/,"again":1}/' "$TMP/g1" >"$TMP/g3"
sed 's/}$/,"again":1}/' "$TMP/g2" >"$TMP/g4"
is "750 new ids: all accepted" \
    "$(post grow application/x-ndjson "@$TMP/g1")" \
    '200 {"accepted":750,"duplicates":0}'
is "750 more: all accepted" \
    "$(post grow application/x-ndjson "@$TMP/g2")" \
    '200 {"accepted":750,"duplicates":0}'
is "the first 750 again: all duplicates" \
    "$(post grow application/x-ndjson "@$TMP/g3")" \
    '200 {"accepted":0,"duplicates":750}'
is "the next 750 again: all duplicates" \
    "$(post grow application/x-ndjson "@$TMP/g4")" \
    '200 {"accepted":0,"duplicates":750}'
is "stream grow: 1500 events" "$(stored grow)" 1500
curl -s --max-time 5 "$URL/metrics" >"$TMP/metrics"
is "/metrics: the index holds what the spool remembers" \
    "$(sed -n 's/^ferry_dedup_entries //p' "$TMP/metrics")" \
    "$("$FS" -d "$SPOOL" --json stat | $PY -c \
    'import json, sys; print(json.load(sys.stdin)["dedup_entries"])')"
is "/metrics: mid-growth, both tables counted (2048 + 4096 slots of 16 bytes)" \
    "$(sed -n 's/^ferry_dedup_index_bytes //p' "$TMP/metrics")" 98304

# --- 20 clients, one key, the same moment --------------------------------
i=0 cpids=""
while [ $i -lt 20 ]; do
	( while [ ! -e "$TMP/go" ]; do sleep 0.01; done
	  curl -s -o "$TMP/c.$i" -w '%{http_code}\n' --max-time 10 \
	      -H 'Content-Type: application/json' \
	      -H 'Idempotency-Key: race-1' --data-binary "{\"p\":$i}" \
	      "$URL/v1/events/race" >"$TMP/s.$i" ) &
	cpids="$cpids $!"
	i=$((i + 1))
done
sleep 0.3
touch "$TMP/go"
for p in $cpids; do wait "$p"; done
is "race: 20 answers 200" "$(cat "$TMP"/s.* | sort | uniq -c | tr -s ' ')" \
    " 20 200"
is "race: exactly one accepted" "$(grep -l '"accepted":1,"duplicates":0' "$TMP"/c.* | wc -l)" 1
is "race: 19 duplicates" "$(grep -l '"accepted":0,"duplicates":1' "$TMP"/c.* | wc -l)" 19
is "race: one event stored" "$(stored race)" 1
N=$(spool_py "[e['body'] for e in evs if e['stream']=='race'][0][5:-1]")
like "race: the stored body is the accepted one" \
    "$(cat "$TMP/c.$N")" '"accepted":1'

# --- across restarts -----------------------------------------------------
is "before restart: accepted" \
    "$(post rs application/json '{"r":1}' -H 'Idempotency-Key: rs-1')" "$A1"
agent_stop
is "SIGTERM: exit 0" "$AGENT_RC" 0
ok "agent restarts" agent_start
curl -s --max-time 5 "$URL/metrics" >"$TMP/metrics2"
DE=$("$FS" -d "$SPOOL" --json stat | $PY -c \
    'import json, sys; print(json.load(sys.stdin)["dedup_entries"])')
is "after restart, before any commit: /metrics counts the loaded index" \
    "$(sed -n 's/^ferry_dedup_entries //p' "$TMP/metrics2")" "$DE"
like "after restart: the log says how much of the index was loaded" \
    "$(grep "dedup index:" "$TMP/agent.log" | tail -n 1)" \
    "dedup index: $DE events of the window loaded in [0-9]+ ms"
is "after restart: duplicate" \
    "$(post rs application/json '{"r":1}' -H 'Idempotency-Key: rs-1')" "$D1"
is "after restart, no key: same body a duplicate" \
    "$(post nk application/json '{"b":2}')" "$D1"
is "before SIGKILL: accepted" \
    "$(post rs application/json '{"r":2}' -H 'Idempotency-Key: rs-2')" "$A1"
agent_kill
ok "agent restarts after SIGKILL" agent_start
is "after SIGKILL: duplicate" \
    "$(post rs application/json '{"r":2}' -H 'Idempotency-Key: rs-2')" "$D1"
is "stream rs: two events" "$(stored rs)" 2
agent_stop

# --- the window ----------------------------------------------------------
agent_conf "$TMP/w.conf" "[dedup]" "window = 2s"
ok "agent with window = 2s starts" agent_start
is "window: first: accepted" \
    "$(post win application/json '{"w":1}' -H 'Idempotency-Key: w-1')" "$A1"
is "window: again at once: duplicate" \
    "$(post win application/json '{"w":1}' -H 'Idempotency-Key: w-1')" "$D1"
sleep 3
is "window: 3 s later: accepted again" \
    "$(post win application/json '{"w":1}' -H 'Idempotency-Key: w-1')" "$A1"
is "window: again at once: duplicate" \
    "$(post win application/json '{"w":1}' -H 'Idempotency-Key: w-1')" "$D1"
is "window: stored twice" "$(stored win)" 2
agent_stop
is "final SIGTERM: exit 0" "$AGENT_RC" 0
done_testing
