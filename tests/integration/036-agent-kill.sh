#!/bin/sh
# 036-agent-kill.sh: kill -9 at random moments loses nothing acknowledged
# and stores nothing twice.  8 concurrent senders (python http.client
# threads) send single events with unique Idempotency-Keys and NDJSON
# batches of 10 (keys in the "id" field, [dedup] json_key = id), remember
# every key answered 2xx, and retry whatever failed with the same keys.
# Meanwhile the agent is SIGKILLed every 0.3-1.0 s and restarted, 15
# times.  Then:
#  - every key that got a 2xx is in `ferry-spool ls --json` exactly once;
#  - no key is there twice, none that was never sent;
#  - every 2xx said accepted + duplicates = events sent;
#  - `ferry-spool check` passes and seqs only grow.
# Requests cut off by a kill may or may not have been stored: their retry
# with the same keys must then be a duplicate, not a second copy.
T=${FERRY_TESTS_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$T/lib.sh"
. "$T/agent-lib.sh"

KILLS=15
agent_conf "$TMP/a.conf" "[spool]" "max_size = 256MiB" "[dedup]" "json_key = id"
ok "agent starts" agent_start || { done_testing; exit 1; }

cat >"$TMP/senders.py" <<'EOF'
# senders.py PORT STOPFILE OUT: 8 threads until STOPFILE exists.
import http.client, json, os, random, sys, threading, time
port, stopfile, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
lock = threading.Lock()
acked, sent, anomalies = set(), set(), []
stats = {"requests": 0, "errors": 0, "retries": 0, "abandoned": 0,
         "dup_on_retry": 0}

def sender(w):
    conn = None
    n = 0
    while not os.path.exists(stopfile):
        n += 1
        time.sleep(0.002)
        if n % 2:
            keys = ["s%d-%d" % (w, n)]
            body = json.dumps({"w": w, "n": n})
            hdrs = {"Content-Type": "application/json",
                    "Idempotency-Key": keys[0]}
        else:
            keys = ["b%d-%d-%d" % (w, n, j) for j in range(10)]
            body = "".join(json.dumps({"id": k, "w": w}) + "\n" for k in keys)
            hdrs = {"Content-Type": "application/x-ndjson"}
        with lock:
            sent.update(keys)
        tries = 0
        while True:
            tries += 1
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", port,
                                                      timeout=5)
                conn.request("POST", "/v1/events/kill", body=body,
                             headers=hdrs)
                r = conn.getresponse()
                data = r.read()
                status = r.status
            except (OSError, http.client.HTTPException):
                status, data = None, b""
                if conn is not None:
                    conn.close()
                conn = None
            with lock:
                stats["requests"] += 1
                if tries > 1:
                    stats["retries"] += 1
                if status is None:
                    stats["errors"] += 1
            if status is not None and 200 <= status < 300:
                j = json.loads(data)
                with lock:
                    acked.update(keys)
                    if tries > 1 and j["duplicates"] > 0:
                        stats["dup_on_retry"] += 1
                    if j["accepted"] + j["duplicates"] != len(keys):
                        anomalies.append("%s: %s" % (keys[0], j))
                break
            if status is not None and status not in (503,):
                with lock:
                    anomalies.append("%s: HTTP %s %s" % (keys[0], status,
                                                         data[:100]))
            if os.path.exists(stopfile) and tries > 100:
                with lock:
                    stats["abandoned"] += 1
                break
            time.sleep(random.uniform(0.02, 0.1))

ts = [threading.Thread(target=sender, args=(w,)) for w in range(8)]
for t in ts:
    t.start()
for t in ts:
    t.join()
json.dump({"acked": sorted(acked), "sent": sorted(sent),
           "anomalies": anomalies, "stats": stats}, open(out, "w"))
EOF
$PY "$TMP/senders.py" "$PORT" "$TMP/stop" "$TMP/senders.json" \
    2>"$TMP/senders.err" &
SPID=$!
track $SPID

# The killer: KILLS times, after 0.3-1.0 s, SIGKILL and restart.
DELAYS=$($PY -c "import random; print(' '.join('%.2f' % random.uniform(0.3, 1.0) for _ in range($KILLS)))")
kills=0 restarts_ok=0
for d in $DELAYS; do
	sleep "$d"
	agent_kill
	kills=$((kills + 1))
	agent_start && restarts_ok=$((restarts_ok + 1))
done
sleep 0.5
touch "$TMP/stop"
i=0; while _alive $SPID && [ $i -lt 150 ]; do sleep 0.1; i=$((i + 1)); done
wait $SPID
is "senders finished" "$?" 0
is "every restart came up" "$restarts_ok" $KILLS
agent_stop
is "final SIGTERM: exit 0" "$AGENT_RC" 0

spool_ls
ok "ferry-spool ls --json" test -s "$TMP/ls.json"
ok "ferry-spool check passes after $KILLS kills" "$FS" -d "$SPOOL" check
$PY - "$TMP/senders.json" "$TMP/ls.json" >"$TMP/verdict" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
evs = [json.loads(l) for l in open(sys.argv[2])]
keys = [e["key"] for e in evs]
count = {}
for k in keys:
    count[k] = count.get(k, 0) + 1
acked, sent = set(s["acked"]), set(s["sent"])
seqs = [e["seq"] for e in evs]
print("missing", sorted(k for k in acked if count.get(k, 0) == 0)[:5])
print("twice", sorted(k for k, n in count.items() if n > 1)[:5])
print("unsent", sorted(k for k in count if k not in sent)[:5])
print("anomalies", s["anomalies"][:3])
print("seqs", seqs == sorted(set(seqs)))
print("acked", len(acked))
print("stored", len(keys))
print("stats", " ".join("%s=%d" % kv for kv in sorted(s["stats"].items())))
EOF
v() { sed -n "s/^$1 //p" "$TMP/verdict"; }
is "every acknowledged key is in the spool" "$(v missing)" "[]"
is "no key is in the spool twice" "$(v twice)" "[]"
is "no key in the spool that was never sent" "$(v unsent)" "[]"
is "every 2xx counted all its events" "$(v anomalies)" "[]"
is "seqs strictly increasing" "$(v seqs)" True
like "the senders got many answers (> 200 keys)" "$(v acked)" \
    '^([2-9][0-9]{2}|[0-9]{4,})$'
diag "acknowledged $(v acked), kills $kills, stored $(v stored);" \
    "$(v stats)"
done_testing
