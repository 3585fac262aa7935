#!/bin/sh
# dev-run.sh BUILD: `make run`.  Starts ferry with conf/dev.conf, writing
# under ./var/, and prints how to send it an event.  Ctrl-C stops it.
set -eu
B=${1:-build}
CONF=${FERRY_CONF:-conf/dev.conf}
mkdir -p var
"$B/ferry-agent" -c "$CONF" --check-config >/dev/null
cat <<MSG
ferry is starting with $CONF (spool in ./var/spool).  Send an event:

  curl -i -H 'Content-Type: application/json' -H 'Idempotency-Key: demo-1' \\
       -d '{"hello":"ferry"}' http://127.0.0.1:8290/v1/events/demo

Look at the spool:   $B/ferry-spool -c $CONF stat
                     $B/ferry-spool -c $CONF ls
Metrics:             curl -s http://127.0.0.1:8290/metrics
Stop with Ctrl-C.
MSG
exec "$B/ferry-agent" -c "$CONF"
