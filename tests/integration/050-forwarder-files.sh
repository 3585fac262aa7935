#!/bin/sh
# 050-forwarder-files.sh: ferry-forwarder drains the spool into Avro object
# container files, exactly once, also when it is killed with SIGKILL at
# random moments under load.  Files are read back with Debian's python3-avro
# (Apache's implementation, no code shared with ferry) and avro-bin's
# avrocat.  Also: trim after delivery, retain, clean shutdown.
T=${FERRY_TESTS_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$T/lib.sh"
. "$T/agent-lib.sh"

FWD=$B/ferry-forwarder
AV=$TMP/avro
mkdir -p "$AV"
FPID=""
fwd_start() {
	"$FWD" -c "$CONF" >>"$TMP/fwd.log" 2>&1 &
	FPID=$!
	track $FPID
}
fwd_stop() {	# SIGTERM; FWD_RC gets the exit status
	kill -TERM "$FPID" 2>/dev/null
	wait "$FPID"
	FWD_RC=$?
}
# Waits (at most $1 s) until the sink "files" has delivered everything.
wait_drained() {
	_end=$(( $(date +%s) + $1 ))
	while [ "$(date +%s)" -le "$_end" ]; do
		lag=$("$FS" -c "$CONF" stat --json 2>/dev/null | $PY -c '
import json, sys
s = json.load(sys.stdin)
print(s["sinks"].get("files", {}).get("lag", -1))')
		[ "$lag" = 0 ] && return 0
		sleep 0.2
	done
	return 1
}
# Reads every published file: prints "records unique_seqs dup_seqs" and
# writes the body keys, one per line, to $TMP/keys.files.
read_files() {
	$PY - "$AV" "$TMP/keys.files" <<'PY'
import glob, json, sys
from avro.datafile import DataFileReader
from avro.io import DatumReader
d, out = sys.argv[1], sys.argv[2]
seqs, keys = [], []
for f in sorted(glob.glob(d + "/*.avro")):
    with DataFileReader(open(f, "rb"), DatumReader()) as r:
        for rec in r:
            seqs.append(rec["seq"])
            keys.append(json.loads(rec["body"].decode())["id"])
open(out, "w").write("".join(k + "\n" for k in keys))
print(len(seqs), len(set(seqs)), len(seqs) - len(set(seqs)))
PY
}

agent_conf "$TMP/a.conf" "[spool]" "max_size = 128MiB" \
    "[dedup]" "json_key = id" \
    "[sink.files]" "type = avro-files" "dir = $AV" "roll_count = 100" \
    "roll_interval = 1s" "codec = deflate"
ok "agent starts" agent_start || { done_testing; exit 1; }
fwd_start

# --- 1000 events, drained, trimmed -------------------------------------------
for b in $(seq 1 10); do
	$PY -c "
import json
for i in range(100):
    print(json.dumps({'id': 'a-$b-%d' % i, 'n': i}))" >"$TMP/batch"
	post t application/x-ndjson "@$TMP/batch" >/dev/null
done
ok "the forwarder delivers everything (lag 0)" wait_drained 20
out=$(read_files)
is "1000 records in the files, each seq once" "$out" "1000 1000 0"
is "the files hold exactly the keys sent" \
    "$(sort "$TMP/keys.files" | uniq | wc -l)" 1000
like "file names carry the seq range" "$(ls "$AV" | head -n 1)" \
    '^t\.[0-9]{20}-[0-9]{20}\.avro$'
f=$(ls "$AV"/*.avro | head -n 1)
like "avrocat reads a file" "$(avrocat "$f" 2>&1 | head -n 1)" '"seq"'
sleep 1.5	# one trim tick
is "trimmed once delivered (retain 0)" \
    "$("$FS" -c "$CONF" stat --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["events"])')" 0
fwd_stop
is "forwarder exits 0 on SIGTERM" "$FWD_RC" 0
is "no in-progress file left" "$(ls -a "$AV" | grep -c '\.tmp$')" 0

# --- kill -9 under load: exactly once ----------------------------------------
cat >"$TMP/send.py" <<'PY'
import http.client, json, os, sys, time
port, stop, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
acked = []
n = 0
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
while not os.path.exists(stop):
    n += 1
    keys = ["k-%d-%d" % (n, j) for j in range(20)]
    body = "".join(json.dumps({"id": k}) + "\n" for k in keys)
    while True:
        try:
            conn.request("POST", "/v1/events/t", body=body,
                         headers={"Content-Type": "application/x-ndjson"})
            r = conn.getresponse(); r.read()
            if r.status == 200:
                acked.extend(keys)
                break
        except Exception:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        time.sleep(0.05)
    time.sleep(0.01)
open(out, "w").write("".join(k + "\n" for k in acked))
PY
fwd_start
$PY "$TMP/send.py" "$PORT" "$TMP/stop" "$TMP/acked" &
spid=$!
kills=0
for i in $(seq 1 12); do
	sleep "0.$(( $(od -An -N1 -tu1 /dev/urandom) % 7 + 3 ))"
	kill -9 "$FPID" 2>/dev/null && kills=$((kills + 1))
	wait "$FPID" 2>/dev/null
	fwd_start
done
touch "$TMP/stop"
wait $spid
ok "drained after $kills kills" wait_drained 30
out=$(read_files)
acked=$(wc -l <"$TMP/acked")
diag "kills=$kills acked=$acked files: $out"
is "no seq twice in the files" "$(echo "$out" | cut -d' ' -f3)" 0
is "every acknowledged key is in the files exactly once" \
    "$(sort "$TMP/acked" "$TMP/keys.files" | uniq -c | awk '$1 != 2' | grep -c ' k-')" 0
fwd_stop
is "forwarder exits 0" "$FWD_RC" 0
ok "ferry-spool check passes" "$FS" -c "$CONF" check

# --- retain keeps delivered events for replay ---------------------------------
agent_stop
agent_conf "$TMP/a.conf" "[spool]" "max_size = 128MiB" "retain = 1h" \
    "[dedup]" "json_key = id" \
    "[sink.files]" "type = avro-files" "dir = $AV" "roll_count = 100" \
    "roll_interval = 1s"
agent_start
fwd_start
post t application/json '{"id":"kept"}' >/dev/null
ok "delivered with retain" wait_drained 20
sleep 1.5
like "retained events stay in the spool" \
    "$("$FS" -c "$CONF" stat --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["events"])')" '^[1-9]'
fwd_stop
is "forwarder exits 0" "$FWD_RC" 0
done_testing
