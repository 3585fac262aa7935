#!/bin/sh
# run.sh BUILD [SECONDS]: the chaos test (make chaos CHAOS_SECS=...).
#
# ferry-agent, ferry-forwarder and the test Kafka (3 mock brokers) run on
# loopback under a steady load of unique, retried events while, for SECONDS
# (default 120), the agent and the forwarder are killed with SIGKILL and
# restarted, brokers go down and come back, Produce requests fail, and the
# spool is driven full.  Then the load stops, the spool drains, and what
# arrived is checked with tools that share no code with ferry: every
# acknowledged event is in the Avro files exactly once (python3-avro) and
# in Kafka at least once (python3-kafka), `ferry-spool check` passes, and
# neither daemon leaks memory, threads or file descriptors.
#
# The work is done by chaos.py (its header says exactly what is done and
# checked), with loadgen.py as the clients, kconsume.py reading Kafka and
# verify.py judging the outcome.  Prints figures, one per line, and
# "chaos: PASS" (exit 0) or "chaos: FAIL: <what failed>" (exit 1).
# mockprobe.py (with mockprobe.c) is not run here: it is the control
# experiment that shows what the test Kafka loses by itself (chaos.py,
# KAFKA_INFLIGHT).
#
# Short form for the test suite: tests/chaos/run.sh build 20 (about 20 s
# of chaos, well under a minute with the drain and the checks).
# Environment: CHAOS_RATE (events/s, default 1000), CHAOS_SEED (to replay
# the same random schedule), CHAOS_KEEP=1 (keep the work directory).
set -u
B=${1:?usage: run.sh BUILD [SECONDS]}
SECS=${2:-120}
T=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3

case $SECS in
''|*[!0-9]*) echo "run.sh: SECONDS must be a whole number: $SECS" >&2; exit 64 ;;
esac
for f in ferry-agent ferry-forwarder ferry-spool tests/kafka-mock; do
	if [ ! -x "$B/$f" ]; then
		echo "run.sh: $B/$f is missing: make all $B/tests/kafka-mock" >&2
		exit 1
	fi
done
if ! $PY -c 'import avro.datafile, kafka' 2>/dev/null; then
	echo "run.sh: $PY lacks python3-avro or python3-kafka" \
	    "(packaging/deps.sh test installs them)" >&2
	exit 1
fi

# chaos.py ends every process it starts (they also die with it); this
# trap ends chaos.py itself when run.sh is interrupted.
CPID=""
trap '[ -n "$CPID" ] && kill -TERM "$CPID" 2>/dev/null; wait' EXIT
trap 'exit 1' INT TERM HUP
$PY "$T/chaos.py" "$B" "$SECS" &
CPID=$!
wait "$CPID"
rc=$?
CPID=""
exit $rc
