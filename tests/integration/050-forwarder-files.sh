#!/bin/sh
# 050-forwarder-files.sh: ferry-forwarder drains the spool into Avro object
# container files, exactly once, also when it is killed with SIGKILL at
# random moments under load.  Files are read back with Debian's python3-avro
# (Apache's implementation, no code shared with ferry) and avro-bin's
# avrocat.  Also: trim after delivery, retain, clean shutdown, and each
# codec (null, deflate at levels 1 and 9, snappy) with and without
# compressor threads, rolled by size, count and interval.
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
# held_after_trim: the events the spool holds once a trim had its chance
# (the forwarder trims once a second): polled up to 5 s for 0.
held_after_trim() {
	_i=0
	while :; do
		_n=$("$FS" -c "$CONF" stat --json | $PY -c \
		    'import json,sys; print(json.load(sys.stdin)["events"])')
		[ "$_n" = 0 ] || [ $_i -ge 25 ] && break
		sleep 0.2
		_i=$((_i + 1))
	done
	echo "$_n"
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
    "roll_interval = 1s" "codec = deflate" "compress_threads = 2"
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
is "trimmed once delivered (retain 0)" "$(held_after_trim)" 0
fwd_stop
is "forwarder exits 0 on SIGTERM" "$FWD_RC" 0
is "no in-progress file left" "$(ls -a "$AV" | grep -c '\.tmp$')" 0

# --- one forwarder per spool; cursors beside it ------------------------------
started() { log_lines "$TMP/fwd.log" 'forwarding spool' "$1"; }
N=$(grep -c 'forwarding spool' "$TMP/fwd.log")
fwd_start
ok "forwarder started" started $((N + 1))
like "the forwarder holds LMDB's shared lock on lock.mdb" "$(cat /proc/locks)" \
    "POSIX +ADVISORY +READ +$FPID +[0-9a-f]+:[0-9a-f]+:$(stat -c %i "$SPOOL/lock.mdb") "
"$FWD" -c "$CONF" >"$TMP/fwd2.log" 2>&1
is "a second forwarder on the same spool: exit 1" "$?" 1
like "a second forwarder: says why" "$(cat "$TMP/fwd2.log")" \
    'error: .*another ferry-forwarder drains this spool'
C0=$("$FS" -c "$CONF" cursor files --json | $PY -c \
    'import json,sys; print(json.load(sys.stdin)["cursor"])' 2>&1)
"$FS" -c "$CONF" cursor files --set 1 >"$TMP/cur.out" 2>"$TMP/cur.err"
is "cursor --set while the forwarder runs: exit 1" "$?" 1
like "cursor --set while the forwarder runs: says to stop it" \
    "$(cat "$TMP/cur.err")" 'ferry-forwarder is running on this spool'
is "cursor --set while the forwarder runs: cursor unchanged" \
    "$("$FS" -c "$CONF" cursor files --json | $PY -c \
    'import json,sys; print(json.load(sys.stdin)["cursor"])')" "$C0"
fwd_stop
"$FS" -c "$CONF" cursor typo --set 1 >"$TMP/cur.out" 2>"$TMP/cur.err"
is "cursor --set of a sink not in the configuration: exit 1" "$?" 1
like "a sink not in the configuration: the message lists the sinks" \
    "$(cat "$TMP/cur.err")" 'has no \[sink.typo\].*the sinks: files\)'
ok "without the configuration (-d), any cursor may be set" \
    "$FS" -d "$SPOOL" cursor gone --set 500
# A cursor of a sink that is no longer configured holds nothing back.
fwd_start
ok "forwarder started again" started $((N + 2))
$PY -c "
import json
for i in range(100):
    print(json.dumps({'id': 'g-%d' % i}))" >"$TMP/batch"
post t application/x-ndjson "@$TMP/batch" >/dev/null
ok "delivered with a stale cursor at 500" wait_drained 20
is "trimmed all the same" "$(held_after_trim)" 0
like "the forwarder says it ignores the stale cursor" "$(cat "$TMP/fwd.log")" \
    'cursor of sink gone \(at seq 500\).*ignored.*cursor gone --delete'
# Caught up and idle, the cursor stands and its time is kept current (every
# 5 s), so that its age says how long the sink has been behind.
cur() { "$FS" -c "$CONF" cursor files --json | $PY -c \
    'import json,sys; j=json.load(sys.stdin); print(j["cursor"], j["updated_ms"])'; }
c1=$(cur)
sleep 6
c2=$(cur)
is "idle: the cursor stands" "${c2% *}" "${c1% *}"
is "idle: its time refreshed within 6 s" "$(( ${c2#* } > ${c1#* } ))" 1
fwd_stop
ok "ferry-spool cursor gone --delete" "$FS" -d "$SPOOL" cursor gone --delete

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

# --- each codec, with and without compressor threads ------------------------
# Checks the files of DIR against the events of SENT (NDJSON): prints "ok"
# or what is wrong.  Every record is an event sent, each once, in seq
# order, its body intact; the header names CODEC; names tell the seqs;
# no file is larger than MAX bytes (0: no limit); avrocat agrees.
check_files() {
	$PY - "$@" <<'PY'
import glob, json, os, subprocess, sys
from avro.datafile import DataFileReader
from avro.io import DatumReader
d, codec, mx, sent = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
want = {}
for line in open(sent):
    ev = json.loads(line)
    want[ev["id"]] = ev
got, seqs, bad = {}, set(), []
for f in sorted(glob.glob(d + "/*.avro")):
    name = os.path.basename(f)
    first, last = (int(x) for x in name.split(".")[1].split("-"))
    with DataFileReader(open(f, "rb"), DatumReader()) as r:
        if r.get_meta("avro.codec").decode() != codec:
            bad.append(name + ": codec " + r.get_meta("avro.codec").decode())
        recs = list(r)
    s = [rec["seq"] for rec in recs]
    if s != sorted(s) or s[0] != first or s[-1] != last:
        bad.append(name + ": seqs %d..%d" % (s[0], s[-1]))
    if mx and os.path.getsize(f) > mx:
        bad.append(name + ": %d bytes" % os.path.getsize(f))
    cat = subprocess.run(["avrocat", f], capture_output=True, text=True)
    if cat.returncode != 0 or cat.stdout.count("\n") != len(recs):
        bad.append(name + ": avrocat " + cat.stderr[:80])
    for rec in recs:
        ev = json.loads(rec["body"].decode())
        if rec["seq"] in seqs or ev["id"] in got:
            bad.append("twice: %d %s" % (rec["seq"], ev["id"]))
        seqs.add(rec["seq"])
        got[ev["id"]] = ev
if got != want:
    bad.append("%d of %d events, %d differ" % (len(got), len(want),
        sum(1 for k in want if got.get(k) != want[k])))
print("ok" if not bad else "; ".join(bad[:5]))
PY
}
# codec_run NAME PAUSE KEY...: [sink.files] with KEY... into
# $TMP/avro-NAME; posts 2000 events in 4 requests, PAUSE seconds between
# the 2nd and the 3rd, and waits until they are delivered, the last file
# published by roll_interval.  Leaves the forwarder stopped.
codec_run() {
	_name=$1 _pause=$2; shift 2
	agent_stop
	agent_conf "$TMP/a.conf" "[spool]" "max_size = 128MiB" \
	    "[dedup]" "json_key = id" "[sink.files]" "type = avro-files" \
	    "dir = $TMP/avro-$_name" "$@"
	agent_start
	fwd_start
	$PY -c "
import json, random
r = random.Random('$_name')
for i in range(2000):
    pad = ''.join(r.choice('abcdef ') for _ in range(r.randrange(400)))
    print(json.dumps({'id': 'c-$_name-%d' % i,
                      'page': '/p/%d' % r.randrange(99), 'pad': pad}))
" >"$TMP/sent.$_name"
	for b in 1 2 3 4; do
		sed -n "$((b * 500 - 499)),$((b * 500))p" "$TMP/sent.$_name" \
		    >"$TMP/batch"
		post t application/x-ndjson "@$TMP/batch" >/dev/null
		[ $b = 2 ] && sleep "$_pause"
	done
	ok "$_name: delivered" wait_drained 30
	fwd_stop
	is "$_name: forwarder exits 0" "$FWD_RC" 0
}
nfiles() { ls "$TMP/avro-$1" | grep -c '\.avro$'; }
codec_run null 0 "codec = null" "roll_count = 300" "compress_threads = 0" \
    "roll_interval = 3s"
is "null: every event once, intact, in order" \
    "$(check_files "$TMP/avro-null" null 0 "$TMP/sent.null")" ok
is "null: rolled by count" "$(nfiles null)" 7
codec_run deflate9 0 "codec = deflate" "deflate_level = 9" \
    "compress_threads = 2" "roll_size = 64KiB" "roll_interval = 3s"
is "deflate level 9, 2 threads: every event once, intact, in order" \
    "$(check_files "$TMP/avro-deflate9" deflate 65536 "$TMP/sent.deflate9")" ok
like "deflate level 9: rolled by size" "$(nfiles deflate9)" \
    '^([4-9]|[1-9][0-9])$'
codec_run deflate1 1.5 "codec = deflate" "compress_threads = 0" \
    "roll_interval = 1s"
is "deflate level 1, no thread: every event once, intact, in order" \
    "$(check_files "$TMP/avro-deflate1" deflate 0 "$TMP/sent.deflate1")" ok
like "deflate level 1: rolled by interval" "$(nfiles deflate1)" '^[2-9]$'
codec_run snappy 0 "codec = snappy" "roll_count = 700" \
    "compress_threads = 4" "roll_interval = 3s"
is "snappy: every event once, intact, in order" \
    "$(check_files "$TMP/avro-snappy" snappy 0 "$TMP/sent.snappy")" ok
is "snappy: rolled by count" "$(nfiles snappy)" 3

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
