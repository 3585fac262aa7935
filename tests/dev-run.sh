#!/bin/sh
# dev-run.sh BUILD: `make run`.  Starts ferry-agent and ferry-forwarder with
# conf/dev.conf, writing under ./var/ (spool in var/spool, Avro files in
# var/avro), and prints how to send an event.  Ctrl-C stops both.
#   make run KAFKA=host:port    also forwards to Kafka, topic "ferry.{stream}"
set -eu
B=${1:-build}
CONF=conf/dev.conf
mkdir -p var/avro
if [ -n "${KAFKA:-}" ]; then
	CONF=var/dev-kafka.conf
	{ cat conf/dev.conf; printf '\n[sink.kafka]\ntype = kafka\nbrokers = %s\ntopic = ferry.{stream}\n' "$KAFKA"; } >"$CONF"
fi
"$B/ferry-agent" -c "$CONF" --check-config >/dev/null
"$B/ferry-agent" -c "$CONF" &
agent=$!
"$B/ferry-forwarder" -c "$CONF" &
fwd=$!
trap 'kill -TERM $agent $fwd 2>/dev/null || :; wait; exit 0' INT TERM
trap 'kill -TERM $agent $fwd 2>/dev/null || :' EXIT
cat <<MSG
ferry is running with $CONF (spool in ./var/spool, Avro files in ./var/avro).
Send an event:

  curl -i -H 'Content-Type: application/json' -H 'Idempotency-Key: demo-1' \\
       -d '{"hello":"ferry"}' http://127.0.0.1:8290/v1/events/demo

Look at the spool:   $B/ferry-spool -c $CONF stat
                     $B/ferry-spool -c $CONF ls
Metrics:             curl -s http://127.0.0.1:8290/metrics
Avro files:          ls var/avro; avrocat var/avro/*.avro
Stop with Ctrl-C.
MSG
wait
