#!/bin/sh
# 051-forwarder-kafka.sh: the real ferry-agent and ferry-forwarder with two
# sinks at once, [sink.kafka] on the test Kafka (librdkafka's mock cluster,
# 3 brokers, build/tests/kafka-mock) and [sink.files] (Avro object container
# files).  What arrives is read back with clients that share no code with
# ferry: python3-kafka (tests/kafka/consume.py) and python3-avro.  Proves:
#  1. a batch arrives in Kafka with the idempotency key as message key, the
#     body byte for byte as value, the ferry-* headers matching the spool;
#     each key on python-kafka's murmur2 partition and, within a partition,
#     offsets in seq order (so per-key order holds); both sinks' lag 0;
#     trimmed once both have the events (and not while Kafka lags);
#  2. kill -9 of the forwarder at random moments under load: every
#     acknowledged key in Kafka at least once, in the files exactly once;
#  3. every broker down for ~5 s: intake keeps answering 200, the outage is
#     logged once (down, up again), then everything arrives, no dead letter;
#  4. replay: the Kafka cursor moved back (retain = 1h): exactly the events
#     after it arrive again, the files get no duplicate;
#  5. an event over kafka.message.max.bytes: a dead letter for sink kafka
#     naming the size, the events after it delivered, the files have it;
#  6. SIGTERM (also with deliveries stuck in flight in an outage, followed
#     by a kill -9 still in the outage): exit 0 within shutdown_timeout,
#     nothing lost; idle restarts re-send nothing; ferry-spool check
#     passes; over the run the files hold every seq exactly once and Kafka
#     every seq but the dead letter.
T=${FERRY_TESTS_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$T/lib.sh"
. "$T/agent-lib.sh"
. "$T/kafka/mock-lib.sh"

FWD=$B/ferry-forwarder
AV=$TMP/avro
mkdir -p "$AV"
FPID=""
T0=$(date +%s)

fwd_start() {
	"$FWD" -c "$CONF" >>"$TMP/fwd.log" 2>&1 &
	FPID=$!
	track $FPID
}
fwd_stop() {	# SIGTERM; FWD_RC gets the exit status, FWD_MS the time taken
	_t=$(now_ms)
	kill -TERM "$FPID" 2>/dev/null
	wait "$FPID"
	FWD_RC=$?
	FWD_MS=$(( $(now_ms) - _t ))
}
# stat_py EXPR: EXPR on s = ferry-spool stat --json.
stat_py() {
	"$FS" -c "$CONF" stat --json 2>/dev/null | $PY -c '
import json, sys
s = json.load(sys.stdin)
print(eval(sys.argv[1]))' "$1"
}
lags() { stat_py '"%s %s" % (s["sinks"].get("kafka", {}).get("lag", -1),
    s["sinks"].get("files", {}).get("lag", -1))'; }
# Waits (at most $1 s) until both sinks have delivered everything.
wait_drained() {
	_end=$(( $(date +%s) + $1 ))
	while [ "$(date +%s)" -le "$_end" ]; do
		[ "$(lags)" = "0 0" ] && return 0
		sleep 0.2
	done
	echo "lags (kafka files): $(lags)"
	return 1
}
# kafka TOPIC OUT: every message of TOPIC (to the end) into OUT.
kafka() { consume "$1" >"$2" 2>"$2.err"; }
# avro_dump: every record of the published files into $TMP/av.json.
avro_dump() {
	$PY - "$AV" "$TMP/av.json" <<'PY'
import base64, glob, json, os, sys
from avro.datafile import DataFileReader
from avro.io import DatumReader
d, out = sys.argv[1], sys.argv[2]
with open(out, "w") as o:
    for f in sorted(glob.glob(d + "/*.avro")):
        with DataFileReader(open(f, "rb"), DatumReader()) as r:
            for rec in r:
                o.write(json.dumps({
                    "seq": rec["seq"], "id": rec["id"],
                    "stream": rec["stream"],
                    "received_ms": int(round(
                        rec["received_at"].timestamp() * 1000)),
                    "content_type": rec["content_type"],
                    "body": base64.b64encode(rec["body"]).decode(),
                    "file": os.path.basename(f)}) + "\n")
PY
}
# q EXPR [KAFKA_FILE...]: evaluates EXPR, prints it.  ms: the consume.py
# messages of the files (v, kb: value and key as bytes; seq: ferry-seq as
# int; bid: the body's "id"), av: the records of $TMP/av.json (b: body
# bytes, bid), evs: the events of $TMP/ls.json (b: body bytes).
cat >"$TMP/q.py" <<'PY'
import base64, collections, json, os, sys
def bid(b):
    try:
        return json.loads(b).get("id")
    except Exception:
        return None
def lines(p):
    return [json.loads(l) for l in open(p) if l.strip()] \
        if os.path.exists(p) else []
ms = []
for p in sys.argv[2:]:
    for m in lines(p):
        m["v"] = None if m["value"] is None else base64.b64decode(m["value"])
        m["kb"] = None if m["key_b64"] is None else \
            base64.b64decode(m["key_b64"])
        m["seq"] = int(m["headers"].get("ferry-seq", -1))
        m["bid"] = bid(m["v"])
        ms.append(m)
av = lines(os.environ["TMP"] + "/av.json")
for r in av:
    r["b"] = base64.b64decode(r["body"])
    r["bid"] = bid(r["b"])
evs = lines(os.environ["TMP"] + "/ls.json")
for e in evs:
    e["b"] = base64.b64decode(e["body_base64"]) if "body_base64" in e \
        else e["body"].encode()
def keys(p):
    return [l.strip() for l in open(p) if l.strip()]
C = collections.Counter
print(eval(sys.argv[1]))
PY
export TMP
q() { _e=$1; shift; $PY "$TMP/q.py" "$_e" "$@"; }

# The sender: NDJSON batches of 20 events with unique "id" keys on STREAM
# until the file STOP exists; writes the keys of every 2xx answer to OUT and
# every other status (or exception) to OUT.bad.
cat >"$TMP/send.py" <<'PY'
import http.client, json, os, sys, time
port, stream, stop, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], \
    sys.argv[4]
acked, bad = [], []
n = 0
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
while not os.path.exists(stop):
    n += 1
    keys = ["%s-%d-%d" % (stream, n, j) for j in range(20)]
    body = "".join(json.dumps({"id": k, "pad": "x" * (n % 17)}) + "\n"
                   for k in keys)
    while True:
        try:
            conn.request("POST", "/v1/events/" + stream, body=body,
                         headers={"Content-Type": "application/x-ndjson"})
            r = conn.getresponse(); r.read()
            if 200 <= r.status < 300:
                acked.extend(keys)
                break
            bad.append(str(r.status))
        except Exception as e:
            bad.append(repr(e))
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        time.sleep(0.05)
    time.sleep(0.02)
open(out, "w").write("".join(k + "\n" for k in acked))
open(out + ".bad", "w").write("".join(b + "\n" for b in bad))
PY

if [ ! -x "$MOCK" ] || [ ! -x "$FWD" ]; then
	_result 1 "binaries built ($MOCK, $FWD)"
	done_testing
	exit 1
fi
ok "kafka-mock starts (3 brokers)" mock_start -b 3 || { done_testing; exit 1; }

# conf FILE [LINE...]: the agent config with both sinks, and LINEs.
conf() {
	_f=$1; shift
	agent_conf "$_f" "shutdown_timeout = 3s" \
	    "[dedup]" "json_key = id" \
	    "[sink.kafka]" "type = kafka" "brokers = $BOOTSTRAP" \
	    "topic = ferry.{stream}" "key = idempotency" \
	    "kafka.message.max.bytes = 2000" \
	    "kafka.socket.timeout.ms = 2000" \
	    "[sink.files]" "type = avro-files" "dir = $AV" \
	    "roll_count = 200" "roll_interval = 1s" "$@"
}
conf "$TMP/a.conf"
ok "agent starts" agent_start || { done_testing; exit 1; }
ok "configuration with both sinks is valid" "$FWD" -c "$CONF" --check-config
# librdkafka checks some settings only together, when the producer is made:
# --check-config makes one, so that what it passes starts.
conf "$TMP/acks1.conf" "[sink.kafka]" "kafka.acks = 1"
"$FWD" -c "$TMP/acks1.conf" --check-config >"$TMP/out" 2>"$TMP/err"
is "--check-config, kafka.acks = 1 with idempotence: exit 78" "$?" 78
like "acks = 1: the error names acks" "$(cat "$TMP/err")" \
    'error: sink kafka: .*acks'
is "acks = 1: no OK" "$(cat "$TMP/out")" ""
# The check makes its producer offline: an unreachable cluster is no wait.
conf "$TMP/far.conf" "[sink.kafka]" "brokers = 192.0.2.1:9092"
t0=$(now_ms)
is "--check-config, brokers unreachable: configuration OK" \
    "$(timeout 20 "$FWD" -c "$TMP/far.conf" --check-config 2>&1)" \
    "configuration OK"
is "--check-config, brokers unreachable: within 2 s" \
    "$(( $(now_ms) - t0 < 2000 ))" 1
conf "$TMP/a.conf"

# --- 1. a batch: keys, values, headers, order, lag, trim ---------------------
# Posted before the forwarder runs, so the spool can be listed first.
$PY - "$TMP/a.ndjson" <<'PY'
import json, sys
with open(sys.argv[1], "wb") as f:
    for i in range(300):
        s = {"id": "a-%d" % i, "n": i,
             "s": "\u00e9\u4e2d \\\" \t \u0001 %s" % ("y" * (i % 13))}
        # separators vary, so a re-encoding would show
        f.write(json.dumps(s, separators=(",", ":") if i % 2 else (", ", ": "),
                           ensure_ascii=bool(i % 3)).encode() + b"\n")
PY
t_before=$(now_ms)
like "batch of 300 accepted" \
    "$(post a application/x-ndjson "@$TMP/a.ndjson")" '^200 .*"accepted": *300'
like "one event with an Idempotency-Key header accepted" \
    "$(post a application/json '{"one":1}' -H 'Idempotency-Key: hdr/k:1=x')" \
    '^200 '
t_after=$(now_ms)
spool_ls
is "301 events in the spool" "$(q 'len(evs)')" 301
is "bodies in the spool are the lines sent, byte for byte" \
    "$(q '[e["b"] for e in evs[:300]] == open(os.environ["TMP"] +
    "/a.ndjson", "rb").read().split(b"\n")[:300]')" True
ok "topic ferry.a with 4 partitions" mock topic ferry.a 4
fwd_start
ok "both sinks drain (lag 0 0 in stat --json)" wait_drained 20
kafka ferry.a "$TMP/k-a.json"
is "Kafka ferry.a: 301 messages, the spool's seqs once each" \
    "$(q 'sorted(m["seq"] for m in ms) == [e["seq"] for e in evs]' \
    "$TMP/k-a.json")" True
is "value = body byte for byte" "$(q 'sum(
    {e["seq"]: e["b"] for e in evs}[m["seq"]] != m["v"] for m in ms)' \
    "$TMP/k-a.json")" 0
is "message key = idempotency key (JSON id, or the header)" "$(q 'sum(
    {e["seq"]: e["key"].encode() for e in evs}[m["seq"]] != m["kb"]
    for m in ms)' "$TMP/k-a.json")" 0
is "the header's key arrives as the message key" "$(q '[m["kb"] for m in ms
    if m["v"] == b"{\"one\":1}"]' "$TMP/k-a.json")" "[b'hdr/k:1=x']"
is "headers ferry-id/-stream/-seq/-received-ms = the spool's" "$(q 'sum(
    m["headers"] != {"ferry-id": e["id"], "ferry-stream": "a",
    "ferry-seq": str(e["seq"]), "ferry-received-ms": str(e["received_ms"])}
    for m in ms for e in evs if e["seq"] == m["seq"])' "$TMP/k-a.json")" 0
is "ferry-received-ms within the time of the posts" "$(q "all($t_before <=
    int(m['headers']['ferry-received-ms']) <= $t_after for m in ms)" \
    "$TMP/k-a.json")" True
is "each key on python-kafka's murmur2 partition" "$(q 'sum(
    m["partition"] != m["keyed_partition"] for m in ms)' "$TMP/k-a.json")" 0
is "all 4 partitions used" "$(q 'sorted({m["partition"] for m in ms})' \
    "$TMP/k-a.json")" "[0, 1, 2, 3]"
is "per partition, offsets follow seq order (per-key order holds)" "$(q 'all(
    [m["seq"] for m in ms if m["partition"] == p] ==
    sorted(m["seq"] for m in ms if m["partition"] == p)
    for p in {m["partition"] for m in ms})' "$TMP/k-a.json")" True
avro_dump
is "Avro files: the 301 events once each, bodies byte for byte" "$(q 'sorted(
    (r["seq"], r["b"], r["id"]) for r in av) == [(e["seq"], e["b"], e["id"])
    for e in evs]')" True
sleep 1.5	# one trim tick after both cursors moved
is "trimmed once both sinks have them" "$(stat_py 's["events"]')" 0

# --- 2. kill -9 of the forwarder under load ----------------------------------
$PY "$TMP/send.py" "$PORT" k "$TMP/stop.k" "$TMP/acked.k" &
spid=$!
track $spid
kills=0
for i in $(seq 1 10); do
	sleep "0.$(( $(od -An -N1 -tu1 /dev/urandom) % 8 + 3 ))"
	kill -9 "$FPID" 2>/dev/null && kills=$((kills + 1))
	wait "$FPID" 2>/dev/null
	fwd_start
done
sleep 0.5
touch "$TMP/stop.k"
wait $spid
is "sender: every request answered 2xx" "$(cat "$TMP/acked.k.bad")" ""
ok "drained after $kills kills" wait_drained 30
kafka ferry.k "$TMP/k-k.json"
avro_dump
acked=$(wc -l <"$TMP/acked.k")
nk=$(q 'len(ms)' "$TMP/k-k.json")
dupk=$(q 'len(ms) - len({m["seq"] for m in ms})' "$TMP/k-k.json")
diag "kill -9: acked=$acked kills=$kills kafka_messages=$nk kafka_duplicates=$dupk"
is "10 kills" "$kills" 10
is "every acked key is in Kafka at least once" "$(q 'len(set(keys(
    os.environ["TMP"] + "/acked.k")) - {m["bid"] for m in ms})' \
    "$TMP/k-k.json")" 0
is "Kafka: a message's key, ferry-id and body agree across duplicates" \
    "$(q 'max(C((m["seq"], m["kb"], m["headers"]["ferry-id"], m["v"])
    for m in ms).values()) == max(C(m["seq"] for m in ms).values())' \
    "$TMP/k-k.json")" True
is "every acked key is in the Avro files exactly once" "$(q '(lambda c:
    sum(c[k] != 1 for k in keys(os.environ["TMP"] + "/acked.k")))(
    C(r["bid"] for r in av if r["stream"] == "k"))')" 0
is "no seq twice in the Avro files" "$(q 'len(av) - len({r["seq"] for r in av})')" 0

# --- 3. every broker down for ~5 s -------------------------------------------
l0=$(wc -l <"$TMP/fwd.log")
ok "all 3 brokers down" mock down -1
tdown=$(now_ms)
$PY "$TMP/send.py" "$PORT" o "$TMP/stop.o" "$TMP/acked.o" &
spid=$!
track $spid
sleep 3.5
touch "$TMP/stop.o"
wait $spid
# The files keep up while Kafka waits (once a file rolls, within 1 s):
# nothing is trimmed that Kafka lacks.
files_caught_up() {
	_i=0
	until lags | grep -Eq '^[1-9][0-9]* 0$'; do
		_i=$((_i + 1)); [ $_i -gt 15 ] && { lags; return 1; }
		sleep 0.2
	done
}
ok "during the outage: kafka lags, the files catch up" files_caught_up
like "during the outage: the events Kafka lacks stay in the spool" \
    "$(stat_py 's["events"]')" '^[1-9]'
sleep 0.5
diag "brokers down for $(( $(now_ms) - tdown )) ms"
ok "brokers up again" mock up -1
is "intake answered 2xx to every request during the outage" \
    "$(cat "$TMP/acked.o.bad")" ""
like "events were acked during the outage" "$(wc -l <"$TMP/acked.o")" '[1-9]'
ok "everything drains after the outage" wait_drained 30
kafka ferry.o "$TMP/k-o.json"
is "every acked key of the outage is in Kafka" "$(q 'len(set(keys(
    os.environ["TMP"] + "/acked.o")) - {m["bid"] for m in ms})' \
    "$TMP/k-o.json")" 0
tail -n +$((l0 + 1)) "$TMP/fwd.log" >"$TMP/fwd.outage.log"
is "the outage is logged once: one 'sink kafka: down' line" \
    "$(grep -c 'sink kafka: down' "$TMP/fwd.outage.log")" 1
is "and one 'sink kafka: up again' line" \
    "$(grep -c 'sink kafka: up again' "$TMP/fwd.outage.log")" 1
diag "librdkafka lines during the outage: $(grep -c 'kafka ferry' \
    "$TMP/fwd.outage.log")"
is "no dead letter (dead ls --json empty)" \
    "$("$FS" -c "$CONF" --json dead ls 2>&1)" ""

# --- 4. replay a window to Kafka by moving its cursor back -------------------
fwd_stop
is "forwarder exits 0 on SIGTERM" "$FWD_RC" 0
conf "$TMP/r.conf" "[spool]" "retain = 1h"
fwd_start
$PY -c "
import json
for i in range(100):
    print(json.dumps({'id': 'r-%d' % i}))" >"$TMP/r.ndjson"
like "100 events on stream r accepted" \
    "$(post r application/x-ndjson "@$TMP/r.ndjson")" '^200 .*"accepted": *100'
ok "drained (retain = 1h)" wait_drained 20
kafka ferry.r "$TMP/k-r1.json"
is "Kafka ferry.r: 100 messages" "$(q 'len(ms)' "$TMP/k-r1.json")" 100
sleep 1.5
"$FS" -c "$CONF" --json ls --stream r >"$TMP/ls.json"
is "retained: the 100 events stay in the spool" "$(q 'len(evs)')" 100
fwd_stop
is "forwarder exits 0" "$FWD_RC" 0
last=$(q 'evs[-1]["seq"]')
SEQ=$(q 'evs[39]["seq"]')
like "ferry-spool cursor kafka --set $SEQ (forwarder stopped)" \
    "$("$FS" -c "$CONF" cursor kafka --set "$SEQ" 2>&1)" "-> $SEQ\$"
fcur=$(stat_py 's["sinks"]["files"]["cursor"]')
fwd_start
ok "drained again" wait_drained 20
kafka ferry.r "$TMP/k-r2.json"
is "replay: the count grows by exactly last-SEQ ($last-$SEQ)" \
    "$(q 'len(ms)' "$TMP/k-r2.json")" $((100 + last - SEQ))
is "replay: exactly the seqs after SEQ arrive again" "$(q "sorted(s for s, n in
    C(m['seq'] for m in ms).items() if n == 2) == list(range($SEQ + 1,
    $last + 1)) and max(C(m['seq'] for m in ms).values()) == 2" \
    "$TMP/k-r2.json")" True
is "replay: the files sink's cursor did not move back" \
    "$(stat_py 's["sinks"]["files"]["cursor"]')" "$fcur"
avro_dump
is "replay: no duplicate in the Avro files" \
    "$(q 'len(av) - len({r["seq"] for r in av}), C(r["stream"] for r in av)["r"]')" \
    "(0, 100)"

# --- 5. a poison message: too large for Kafka --------------------------------
big=$($PY -c 'import base64, os
print("{\"id\":\"p-big\",\"pad\":\"%s\"}" % base64.b64encode(os.urandom(3750)).decode())')
printf '%s' "$big" >"$TMP/big.json"
like "small event p-1" "$(post p application/json '{"id":"p-1"}' \
    -H 'Idempotency-Key: p-1')" '^200 '
like "a 5000-byte event accepted by the agent" "$(post p application/json \
    "@$TMP/big.json" -H 'Idempotency-Key: p-big')" '^200 '
for i in 2 3 4; do
	post p application/json "{\"id\":\"p-$i\"}" -H "Idempotency-Key: p-$i" \
	    >/dev/null
done
ok "drained past the poison message" wait_drained 20
"$FS" -c "$CONF" --json ls --stream p >"$TMP/ls.json"
bseq=$(q '[e["seq"] for e in evs if e["key"] == "p-big"][0]')
"$FS" -c "$CONF" --json dead ls >"$TMP/dead.json" 2>&1
is "one dead letter, for sink kafka, the big event" "$($PY -c '
import json, sys
print([(d["sink"], d["seq"], d.get("body_len")) for d in map(json.loads, open(sys.argv[1]))])' \
    "$TMP/dead.json")" "[('kafka', $bseq, $(wc -c <"$TMP/big.json"))]"
like "the reason names the size" "$(cat "$TMP/dead.json")" \
    '"reason": *"[^"]*([Ss]ize|too large)'
is "stat counts the dead letter" "$(stat_py 's["deadletters"]')" 1
is "the forwarder logs the refusal once, naming the event" \
    "$(grep -c "sink kafka: event $bseq refused for good" "$TMP/fwd.log")" 1
kafka ferry.p "$TMP/k-p.json"
is "Kafka ferry.p: the events around it delivered, it not" \
    "$(q 'sorted(m["bid"] for m in ms)' "$TMP/k-p.json")" \
    "['p-1', 'p-2', 'p-3', 'p-4']"
sleep 1.2	# the files roll after 1 s
avro_dump
is "the Avro files have the large event, byte for byte" \
    "$(q '[r["b"] == open(os.environ["TMP"] + "/big.json", "rb").read()
    for r in av if r["bid"] == "p-big"]')" "[True]"

# --- 6. SIGTERM with deliveries stuck in flight, then the end ----------------
ok "all brokers down" mock down -1
for i in $(seq 1 5); do
	post s application/json "{\"id\":\"s-$i\"}" -H "Idempotency-Key: s-$i" \
	    >/dev/null
done
sleep 1.5
fwd_stop
is "SIGTERM during an outage: exit 0" "$FWD_RC" 0
like "within shutdown_timeout (3 s) and a second (${FWD_MS} ms)" "$FWD_MS" \
    '^([0-9]{1,3}|[0-3][0-9]{3})$'
fwd_start	# still down: restarted, then killed with events in flight
sleep 1.5
kill -9 "$FPID"; wait "$FPID" 2>/dev/null
fwd_start
ok "brokers up again" mock up -1
ok "drained after the restarts" wait_drained 20
kafka ferry.s "$TMP/k-s.json"
is "the in-flight events arrive after SIGTERM and kill -9 in the outage" \
    "$(q 'sorted(set(m["bid"] for m in ms))' "$TMP/k-s.json")" \
    "['s-1', 's-2', 's-3', 's-4', 's-5']"
sleep 1.2
fwd_stop
is "forwarder exits 0 on SIGTERM" "$FWD_RC" 0
like "promptly when idle (${FWD_MS} ms)" "$FWD_MS" '^[0-9]{1,4}$'
# Nothing is re-sent by restarts with nothing new (Beats #32560).
nfiles=$(ls "$AV" | wc -l)
for i in 1 2; do
	fwd_start
	sleep 0.7
	fwd_stop
done
is "idle restarts exit 0" "$FWD_RC" 0
kafka ferry.s "$TMP/k-s2.json"
is "idle restarts re-send nothing to Kafka" \
    "$(q 'len(ms)' "$TMP/k-s2.json")" "$(q 'len(ms)' "$TMP/k-s.json")"
is "idle restarts publish no Avro file" "$(ls "$AV" | wc -l)" "$nfiles"
agent_stop
is "agent exits 0" "$AGENT_RC" 0
ok "ferry-spool check passes" "$FS" -c "$CONF" check
# Over the whole run: the files hold every seq ever assigned exactly once,
# Kafka every one but the dead letter at least once.
"$FS" -c "$CONF" --json ls >"$TMP/ls.json"
avro_dump
last=$(stat_py 's["last_seq"]')
is "Avro files: seqs 1..$last, each exactly once" \
    "$(q "sorted(r['seq'] for r in av) == list(range(1, $last + 1))")" True
is "Kafka: every seq but the dead letter at least once" "$(q "sorted(set(range(1,
    $last + 1)) - {m['seq'] for m in ms})" "$TMP"/k-[akop].json "$TMP/k-s2.json" \
    "$TMP/k-r2.json")" "[$bseq]"
is "no in-progress Avro file left" "$(ls -a "$AV" | grep -c '\.tmp$')" 0
mock_stop
is "no sanitizer report" \
    "$(cat "$TMP"/*.err "$TMP/fwd.log" "$TMP/agent.log" 2>/dev/null |
    grep -c 'Sanitizer\|runtime error')" 0
diag "runtime $(( $(date +%s) - T0 )) s"
done_testing
