#!/bin/sh
# 052-dead-retry.sh: `ferry-spool dead retry` puts a dead letter back in
# front of its Kafka sink.  An event too large for the producer becomes a
# dead letter; retried with the limit unchanged it is refused again (row
# kept, reason renewed, mark cleared); retried after the limit is raised it
# reaches Kafka (checked with python3-kafka) and the dead letter is gone.
T=${FERRY_TESTS_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$T/lib.sh"
. "$T/agent-lib.sh"
. "$T/kafka/mock-lib.sh"

FWD=$B/ferry-forwarder
FPID=""
fwd_start() { "$FWD" -c "$CONF" >>"$TMP/fwd.log" 2>&1 & FPID=$!; track $FPID; }
fwd_stop() { kill -TERM "$FPID" 2>/dev/null; wait "$FPID"; FWD_RC=$?; }
dead_json() { "$FS" -c "$CONF" --json dead ls 2>&1; }
# wait_for SECS CMD...: until CMD succeeds.
wait_for() {
	_end=$(( $(date +%s) + $1 )); shift
	while [ "$(date +%s)" -le "$_end" ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	return 1
}
no_dead() { [ -z "$(dead_json)" ]; }
one_dead() { [ "$(dead_json | wc -l)" = 1 ]; }
refused_again() { grep -q "0 delivered, 1 refused again" "$TMP/fwd.log"; }

ok "kafka-mock starts" mock_start -b 3 || { done_testing; exit 1; }
conf() {	# conf MAX_BYTES
	agent_conf "$TMP/a.conf" "[sink.kafka]" "type = kafka" \
	    "brokers = $BOOTSTRAP" "topic = ferry.{stream}" \
	    "kafka.message.max.bytes = $1"
}
conf 2000
ok "agent starts" agent_start || { done_testing; exit 1; }
fwd_start
$PY -c 'print("{\"id\":\"big\",\"pad\":\"%s\"}" % ("x" * 5000))' >"$TMP/big.json"
post r application/json '{"id":"small-1"}' -H 'Idempotency-Key: s1' >/dev/null
post r application/json "@$TMP/big.json" -H 'Idempotency-Key: big' >/dev/null
post r application/json '{"id":"small-2"}' -H 'Idempotency-Key: s2' >/dev/null
ok "the large event becomes a dead letter" wait_for 20 one_dead
like "its reason names the size" "$(dead_json)" '"reason": *"[^"]*([Ss]ize|too large)'

# Retry with the limit unchanged: refused again, the row stays, unmarked.
like "dead retry marks it" "$("$FS" -c "$CONF" dead retry kafka --all)" \
    '^marked 1 dead letters of sink kafka'
ok "the forwarder resends it and it is refused again" wait_for 20 refused_again
like "the dead letter is still there, mark cleared" "$(dead_json)" \
    '"retry": *false'

# Raise the limit, restart the forwarder, retry: delivered, row gone.
fwd_stop
is "forwarder exits 0" "$FWD_RC" 0
conf 1000000
fwd_start
like "dead retry by seq" "$("$FS" -c "$CONF" dead retry kafka \
    "$(dead_json | $PY -c 'import json,sys; print(json.load(sys.stdin)["seq"])')")" \
    '^marked 1 dead letters'
ok "delivered: no dead letter left" wait_for 20 no_dead
consume ferry.r 3 10 >"$TMP/k.json" 2>"$TMP/k.err"
is "Kafka has the two small events and the large one" "$($PY -c '
import base64, json, sys
vals = sorted(json.loads(base64.b64decode(json.loads(l)["value"]))["id"]
              for l in open(sys.argv[1]) if l.strip())
print(",".join(vals))' "$TMP/k.json")" "big,small-1,small-2"
fails "dead retry of a dead letter that is gone: exit 1" \
    "$FS" -c "$CONF" dead retry kafka 1
is "usage error: exit 64" "$("$FS" -c "$CONF" dead retry >/dev/null 2>&1; echo $?)" 64
printf '[spool]\ndir = %s\n[sink.files]\ntype = avro-files\ndir = %s/av\n' \
    "$SPOOL" "$TMP" >"$TMP/files.conf"
"$FS" -c "$TMP/files.conf" dead retry files --all >"$TMP/out" 2>"$TMP/err"
is "dead retry of an Avro file sink: exit 1" "$?" 1
like "dead retry of an Avro file sink: says it never resends" \
    "$(cat "$TMP/err")" 'writes Avro files, which never resend a dead letter'
fwd_stop
is "forwarder exits 0" "$FWD_RC" 0
done_testing
