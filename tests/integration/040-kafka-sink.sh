#!/bin/sh
# 040-kafka-sink.sh: the Kafka sink (forwarder/sink_kafka.c) against the
# test Kafka (librdkafka's mock cluster, build/tests/kafka-mock), driven by
# build/tests/sink-kafka-drive (synthetic events, the drain loop in small),
# and checked with consume.py on python3-kafka, which shares no code with
# ferry.  Proves that:
#  - values, keys (idempotency key, none, json:FIELD) and the four ferry-*
#    headers arrive byte for byte, on the topic the template names;
#  - a keyed event lands on the partition python-kafka's murmur2
#    partitioner picks, and per-key order holds within it;
#  - all brokers down: the sink says down, nothing is lost, delivered does
#    not move; up again: everything arrives once and delivered advances;
#    also with a finite message.timeout.ms shorter than the outage (the
#    timed-out events are resent, none dropped or dead-lettered);
#  - the in-flight bound: send() says full, nothing is lost;
#  - produce errors the idempotent producer retries: nothing lost, no
#    duplicate; a fatal producer error: a fresh producer, resent from the
#    last delivered seq, nothing lost;
#  - an event over message.max.bytes or for a topic that does not exist is
#    a dead letter with the reason, the others are delivered around it;
#  - avro and confluent values, byte for byte (python3-avro decodes them);
#  - bad kafka.* properties are refused naming the property.
T=${FERRY_TESTS_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$T/lib.sh"
. "$T/kafka/mock-lib.sh"

DRIVE=${DRIVE:-$B/tests/sink-kafka-drive}
ENVELOPE=$T/../conf/envelope.avsc

# drive_start NAME ARGS...: a driver on the mock; fails unless it is ready.
drive_start() {
	_d=$1; shift
	coproc_start "$_d" "$DRIVE" -b "$BOOTSTRAP" "$@"
	_i=0
	until grep -qx ready "$TMP/$_d.out" 2>/dev/null; do
		_i=$((_i + 1))
		if [ $_i -gt 200 ] || grep -q failed "$TMP/$_d.out"; then
			cat "$TMP/$_d.out" "$TMP/$_d.err"
			return 1
		fi
		sleep 0.05
	done
}
d() { coproc_cmd "$@"; }
# delivered OUTPUT: the last "delivered N" of a driver's answer.
delivered() { printf '%s\n' "$1" | sed -n 's/^delivered //p' | tail -n 1; }
# msgs FILE EXPR: evaluates EXPR with ms = the consume.py lines of FILE
# (dicts, value and key_b64 decoded to bytes as v and kb), seqs = their
# sorted ferry-seq headers, and avro_of(B) = (the record decoded from
# bytes B by python3-avro with the schema $AVSC, by default the envelope,
# and the number of bytes it took); prints it.
msgs() {
	ENVELOPE=${AVSC:-$ENVELOPE} $PY - "$1" "$2" <<'EOF'
import base64, io, json, os, sys
def avro_of(b):
    import avro.io, avro.schema
    s = avro.schema.parse(open(os.environ["ENVELOPE"]).read())
    f = io.BytesIO(b)
    r = avro.io.DatumReader(s).read(avro.io.BinaryDecoder(f))
    return r, f.tell()
def ms_of(t):	# python-avro decodes timestamp-millis as a datetime
    return int(round(t.timestamp() * 1000))
ms = []
for line in open(sys.argv[1]):
    m = json.loads(line)
    m["v"] = None if m["value"] is None else base64.b64decode(m["value"])
    m["kb"] = None if m["key_b64"] is None else base64.b64decode(m["key_b64"])
    ms.append(m)
seqs = sorted(int(m["headers"]["ferry-seq"]) for m in ms)
print(eval(sys.argv[2]))
EOF
}

if [ ! -x "$DRIVE" ] || [ ! -x "$MOCK" ]; then
	_result 1 "test binaries built ($DRIVE, $MOCK)"
	done_testing
	exit 1
fi
ok "kafka-mock starts" mock_start -b 3 || { done_testing; exit 1; }

# --- raw values, keys and headers, byte for byte -------------------------
ok "driver starts (raw, key = idempotency)" \
    drive_start raw -t 'ferry.{stream}' -k idempotency
d raw 'ev alpha key-1 {"a":1}' >/dev/null
d raw 'ev alpha - \x00\xff\ttab \xc3\xa9 end\x00' >/dev/null
d raw 'ev beta k\xc3\xa9y:/=x {"b":"two"}' >/dev/null
d raw 'ev alpha - ' >/dev/null
OUT=$(d raw "drain 20000")
is "raw: all four delivered" "$(delivered "$OUT")" 4
consume ferry.alpha 3 >"$TMP/alpha.json"
consume ferry.beta 1 >"$TMP/beta.json"
is "raw: ferry.alpha holds seqs 1 2 4" "$(msgs "$TMP/alpha.json" seqs)" \
    "[1, 2, 4]"
is "raw: JSON body byte for byte" "$(msgs "$TMP/alpha.json" \
    '[m["v"] for m in ms if m["headers"]["ferry-seq"] == "1"][0]')" \
    "b'{\"a\":1}'"
is "raw: binary body byte for byte" "$(msgs "$TMP/alpha.json" \
    '[m["v"] for m in ms if m["headers"]["ferry-seq"] == "2"][0]')" \
    "b'\\x00\\xff\\ttab \\xc3\\xa9 end\\x00'"
is "raw: empty body is an empty value, not null" "$(msgs "$TMP/alpha.json" \
    '[m["v"] for m in ms if m["headers"]["ferry-seq"] == "4"][0]')" "b''"
is "raw: idempotency key as the message key" "$(msgs "$TMP/alpha.json" \
    '[m["kb"] for m in ms if m["headers"]["ferry-seq"] == "1"][0]')" \
    "b'key-1'"
is "raw: no idempotency key, no message key" "$(msgs "$TMP/alpha.json" \
    '[m["kb"] for m in ms if m["headers"]["ferry-seq"] == "2"][0]')" None
is "raw: key bytes exact (UTF-8, punctuation)" "$(msgs "$TMP/beta.json" \
    'ms[0]["kb"]')" "b'k\\xc3\\xa9y:/=x'"
is "raw: headers" "$(msgs "$TMP/beta.json" 'sorted(ms[0]["headers"].items())')" \
    "[('ferry-id', 'abababababababab0000000000000003'), ('ferry-received-ms', '1700000000003'), ('ferry-seq', '3'), ('ferry-stream', 'beta')]"
# (By seq: the three may sit on different partitions, read in that order.)
is "raw: message timestamp is the receive time (CreateTime)" \
    "$(msgs "$TMP/alpha.json" 'sorted((int(m["headers"]["ferry-seq"]),
    m["timestamp"], m["timestamp_type"]) for m in ms)')" \
    "[(1, 1700000000001, 0), (2, 1700000000002, 0), (4, 1700000000004, 0)]"
OUT=$(d raw "flush 5000")
is "raw: flush with nothing in flight" "$(delivered "$OUT")" 4
coproc_stop raw

# --- partitions: murmur2 as python-kafka computes it, per-key order ------
ok "topic ferry.order with 5 partitions" mock topic ferry.order 5
ok "driver starts" drive_start ord -t ferry.order
d ord "gen 400 x 7" >/dev/null
OUT=$(d ord "drain 30000")
is "order: 400 delivered" "$(delivered "$OUT")" 400
consume ferry.order 400 >"$TMP/order.json"
is "order: 400 messages, seqs 1..400 once each" \
    "$(msgs "$TMP/order.json" 'seqs == list(range(1, 401))')" True
is "order: 5 partitions, all used" \
    "$(msgs "$TMP/order.json" 'len({m["partition"] for m in ms})')" 5
is "order: each key on python-kafka's murmur2 partition" \
    "$(msgs "$TMP/order.json" \
    'sum(m["partition"] != m["keyed_partition"] for m in ms)')" 0
is "order: per key, offsets follow the send order" \
    "$(msgs "$TMP/order.json" 'all(
    [json.loads(m["v"])["i"] for m in ms if m["key"] == k] ==
    sorted(json.loads(m["v"])["i"] for m in ms if m["key"] == k)
    for k in {m["key"] for m in ms})')" True
coproc_stop ord

# --- key = json:FIELD and key = none -------------------------------------
ok "driver starts (key = json:user)" \
    drive_start jk -t ferry.jkey -k json:user
d jk 'ev s ik {"user":"ann","n":1}' >/dev/null
d jk 'ev s ik {"user":42}' >/dev/null
d jk 'ev s ik {"user":1.5}' >/dev/null
d jk 'ev s ik {"other":"x"}' >/dev/null
d jk 'ev s ik not json' >/dev/null
d jk 'ev s ik {"user":true}' >/dev/null
d jk 'ev s ik {"user":"\u00e9\u0000z"}' >/dev/null
OUT=$(d jk "drain 20000")
is "json key: 7 delivered" "$(delivered "$OUT")" 7
consume ferry.jkey 7 >"$TMP/jk.json"
is "json key: string, integer, real, absent, not JSON, bool, escapes" \
    "$(msgs "$TMP/jk.json" '[m["kb"] for m in sorted(ms,
    key=lambda m: int(m["headers"]["ferry-seq"]))]')" \
    "[b'ann', b'42', b'1.5', None, None, None, b'\\xc3\\xa9\\x00z']"
coproc_stop jk
ok "driver starts (key = none)" drive_start nk -t ferry.nokey -k none
d nk 'ev s ikey {"user":"ann"}' >/dev/null
d nk "drain 20000" >/dev/null
consume ferry.nokey 1 >"$TMP/nk.json"
is "key none: no key despite an idempotency key" \
    "$(msgs "$TMP/nk.json" 'ms[0]["kb"]')" None
coproc_stop nk

# --- every broker down, then up ------------------------------------------
ok "topic ferry.out with 3 partitions" mock topic ferry.out 3
ok "driver starts" drive_start out -t ferry.out
d out "gen 10 x 3" >/dev/null
is "outage: 10 delivered before" "$(delivered "$(d out 'drain 20000')")" 10
ok "all brokers down" mock down -1
d out "gen 60 x 5" >/dev/null
d out "send" >/dev/null
OUT=$(d out "poll 1500")
like "outage: poll says down, naming the cause" "$OUT" \
    '^down all brokers down \(.*\); 60 events in flight'
OUT=$(d out "poll 2000")
is "outage: delivered stays at 10" "$(delivered "$OUT")" 10
ok "brokers up again" mock up -1
OUT=$(d out "drain 30000")
is "outage: delivered advances to 70" "$(delivered "$OUT")" 70
consume ferry.out 70 >"$TMP/out.json"
is "outage: 70 messages, each seq once" \
    "$(msgs "$TMP/out.json" 'seqs == list(range(1, 71))')" True
coproc_stop out

# One broker down: its partition has no leader.  Down once the oldest
# event has waited socket.timeout.ms, naming it; all delivered after.
part_topic() {
	mock topic ferry.part 2 && mock leader ferry.part 0 1 &&
	    mock leader ferry.part 1 2
}
ok "topic ferry.part, partition 0 led by broker 1, 1 by 2" part_topic
ok "driver starts (socket.timeout.ms = 2000)" drive_start part \
    -t ferry.part -P socket.timeout.ms=2000 -P reconnect.backoff.max.ms=500
d part "gen 4 x 7" >/dev/null
is "partition: 4 delivered before" "$(delivered "$(d part 'drain 20000')")" 4
ok "broker 1 down" mock down 1
d part "gen 20 x 7" >/dev/null
d part "send" >/dev/null
OUT="$(d part 'poll 2500')
$(d part 'poll 2500')"
like "partition: down, naming the first event not acknowledged" "$OUT" \
    '^down event [0-9]+ not acknowledged after 2 s \(.*\); [0-9]+ events in flight'
ok "broker 1 up again" mock up 1
is "partition: all 24 delivered" "$(delivered "$(d part 'drain 30000')")" 24
consume ferry.part 24 >"$TMP/part.json"
is "partition: 24 messages, each seq once" \
    "$(msgs "$TMP/part.json" 'seqs == list(range(1, 25))')" True
coproc_stop part

# An outage longer than a finite message.timeout.ms: resent, not dropped.
ok "driver starts (message.timeout.ms = 1000)" \
    drive_start tmo -t ferry.tmo -P message.timeout.ms=1000
ok "all brokers down" mock down -1
d tmo "gen 30 x 3" >/dev/null
d tmo "send" >/dev/null
OUT="$(d tmo 'poll 2500')
$(d tmo 'poll 1500')"
like "timeout: the sink rewinds with a fresh producer" "$OUT" \
    '^rewind delivery failed \(.*timed out\)'
ok "brokers up again" mock up -1
OUT=$(d tmo "drain 30000")
is "timeout: all 30 delivered" "$(delivered "$OUT")" 30
is "timeout: no dead letter" "$(printf '%s\n' "$OUT" | grep -c '^dead')" 0
consume ferry.tmo 30 >"$TMP/tmo.json"
is "timeout: 30 messages, each seq once" \
    "$(msgs "$TMP/tmo.json" 'seqs == list(range(1, 31))')" True
coproc_stop tmo

# --- the in-flight bound -------------------------------------------------
ok "driver starts (queue.buffering.max.messages = 10)" \
    drive_start full -t ferry.full -P queue.buffering.max.messages=10
ok "all brokers down" mock down -1
d full "gen 25 x 0" >/dev/null
OUT=$(d full "send")
like "bound: send says full" "$OUT" '^full'
ok "brokers up again" mock up -1
OUT=$(d full "drain 30000")
is "bound: all 25 delivered" "$(delivered "$OUT")" 25
consume ferry.full 25 >"$TMP/full.json"
is "bound: 25 messages, each seq once" \
    "$(msgs "$TMP/full.json" 'seqs == list(range(1, 26))')" True
coproc_stop full

# --- produce errors: retried by the idempotent producer ------------------
ok "topic ferry.err with 3 partitions" mock topic ferry.err 3
ok "driver starts" drive_start err -t ferry.err
n=0
for code in 6 7 19 20; do
	ok "inject 5 produce errors $code" mock produce-errors 5 $code
	d err "gen 50 x 4" >/dev/null
	n=$((n + 50))
	is "errors $code: delivered $n" "$(delivered "$(d err 'drain 30000')")" $n
done
consume ferry.err 200 >"$TMP/err.json"
is "errors: 200 messages, each seq once, none lost, no duplicate" \
    "$(msgs "$TMP/err.json" 'seqs == list(range(1, 201))')" True

# A fatal producer error (sequence desynchronised): a fresh producer and a
# resend from the last delivered seq; duplicates allowed, losses not.
ok "inject a fatal produce error (45 OUT_OF_ORDER_SEQUENCE_NUMBER)" \
    mock produce-errors 1 45
d err "gen 50 x 4" >/dev/null
OUT=$(d err "drain 30000")
like "fatal: the sink rewinds" "$OUT" '^rewind fatal producer error'
is "fatal: delivered 250" "$(delivered "$OUT")" 250
consume ferry.err >"$TMP/err.json"
is "fatal: every seq 1..250 arrived" \
    "$(msgs "$TMP/err.json" 'sorted(set(seqs)) == list(range(1, 251))')" True
coproc_stop err

# --- refused for good: dead letters, the rest delivered ------------------
ok "topic ferry.gone does not exist" mock topic-error ferry.gone 3
ok "driver starts (message.max.bytes = 10000)" \
    drive_start big -t 'ferry.{stream}' -P message.max.bytes=10000 \
    -P topic.metadata.propagation.max.ms=500
d big "ev big - small1" >/dev/null
d big "big big 20000" >/dev/null
d big "ev big - small2" >/dev/null
d big "ev gone - lost?" >/dev/null
d big "ev big - small3" >/dev/null
OUT=$(d big "drain 30000")
like "too large: dead letter with the reason" "$OUT" \
    '^dead 2 .*[Mm]essage size too large'
like "unknown topic: dead letter with the reason" "$OUT" \
    '^dead 4 .*[Uu]nknown topic'
is "dead letters: delivered passes them" "$(delivered "$OUT")" 5
consume ferry.big 3 >"$TMP/big.json"
is "dead letters: the others arrived" "$(msgs "$TMP/big.json" seqs)" \
    "[1, 3, 5]"
coproc_stop big

# --- avro and confluent values -------------------------------------------
ok "driver starts (format = confluent, id 42)" \
    drive_start cf -t ferry.cf -f confluent -i 42
d cf 'ev cs ck {"x":"\xc3\xa9"}' >/dev/null
is "confluent: delivered" "$(delivered "$(d cf 'drain 20000')")" 1
consume ferry.cf 1 >"$TMP/cf.json"
is "confluent: magic byte 0, schema id 42 big-endian" \
    "$(msgs "$TMP/cf.json" 'ms[0]["v"][:5].hex()')" 000000002a
is "confluent: the envelope in Avro binary after it, nothing more" \
    "$(msgs "$TMP/cf.json" '(sorted((k, ms_of(v) if k == "received_at"
    else v) for k, v in avro_of(ms[0]["v"][5:])[0].items()),
    avro_of(ms[0]["v"][5:])[1] == len(ms[0]["v"]) - 5)')" \
    "([('body', b'{\"x\":\"\\xc3\\xa9\"}'), ('content_type', 'application/json'), ('id', 'abababababababab0000000000000001'), ('received_at', 1700000000001), ('remote_addr', '127.0.0.1'), ('seq', 1), ('stream', 'cs')], True)"
coproc_stop cf
ok "driver starts (format = avro)" drive_start av -t ferry.av -f avro
d av 'ev as - body' >/dev/null
d av "drain 20000" >/dev/null
consume ferry.av 1 >"$TMP/av.json"
is "avro: the value is the bare Avro binary of the envelope" \
    "$(msgs "$TMP/av.json" '(avro_of(ms[0]["v"])[0]["body"],
    avro_of(ms[0]["v"])[0]["seq"], avro_of(ms[0]["v"])[1] == len(ms[0]["v"]))')" \
    "(b'body', 1, True)"
coproc_stop av

# A stream with its own schema: its record, and a dead letter naming the
# field for an event that does not fit.
cat >"$TMP/user.avsc" <<'EOF'
{"type": "record", "name": "User", "fields": [
  {"name": "name", "type": "string"},
  {"name": "age", "type": ["null", "int"], "default": null}]}
EOF
ok "driver starts (format = confluent, stream users has a schema)" \
    drive_start sch -t ferry.users -f confluent -i 7 -A "users=$TMP/user.avsc"
d sch 'ev users - {"name":"ann","age":41,"extra":1}' >/dev/null
d sch 'ev users - {"name":"bob","age":"old"}' >/dev/null
d sch 'ev users - {"name":"cy"}' >/dev/null
OUT=$(d sch "drain 20000")
like "schema: a misfit is a dead letter naming the field" "$OUT" \
    '^dead 2 .*age'
is "schema: delivered passes it" "$(delivered "$OUT")" 3
consume ferry.users 2 >"$TMP/users.json"
is "schema: records of the stream's schema after the framing, no more" \
    "$(AVSC=$TMP/user.avsc msgs "$TMP/users.json" '[(m["v"][:5].hex(),
    avro_of(m["v"][5:])[0], avro_of(m["v"][5:])[1] == len(m["v"]) - 5)
    for m in sorted(ms, key=lambda m: int(m["headers"]["ferry-seq"]))]')" \
    "[('0000000007', {'name': 'ann', 'age': 41}, True), ('0000000007', {'name': 'cy', 'age': None}, True)]"
coproc_stop sch

# --- configuration errors ------------------------------------------------
OUT=$("$DRIVE" -b "$BOOTSTRAP" -P no.such.thing=1 </dev/null 2>&1)
like "bad property: refused, named" "$OUT" \
    '^open failed: .*kafka\.no\.such\.thing: .*No such configuration'
OUT=$("$DRIVE" -b "$BOOTSTRAP" -P acks=1 </dev/null 2>&1)
like "idempotence with acks=1: refused by librdkafka" "$OUT" \
    '^open failed: librdkafka: .*acks'

mock_stop
is "no sanitizer report from the sink or the mock (make SAN=1)" \
    "$(cat "$TMP"/*.err | grep -c 'Sanitizer\|runtime error')" 0
done_testing
