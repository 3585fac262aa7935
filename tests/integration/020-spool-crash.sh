# 020-spool-crash: kill -9 a writer at random moments, many times.
# After each kill the spool opens and `ferry-spool check` passes; at the end
# every event whose append returned (logged by the writer after the commit)
# is in the spool exactly once under the seq it was given, duplicates came
# back as duplicates, and no sequence number was used twice.
. "$FERRY_TESTS_DIR/lib.sh"

ROUNDS=${CRASH_ROUNDS:-40}
D=$TMP/spool
LOG=$TMP/log
checks_ok=0
for r in $(seq 1 "$ROUNDS"); do
	"$B/tests/spool-crash" -d "$D" -l "$LOG" -r "$r" 2>"$TMP/crash.err" &
	pid=$!
	# between 5 and 120 ms: inside opens, appends, commits and log writes
	sleep "0.$(printf '%03d' $(( $(od -An -N2 -tu2 /dev/urandom) % 115 + 5 )))"
	kill -9 $pid 2>/dev/null
	wait $pid 2>/dev/null
	if [ ! -e "$D" ] && [ ! -s "$LOG" ]; then
		# Killed before it created the spool (slow starts, SAN=1):
		# nothing to check, and nothing was logged as committed.
		checks_ok=$((checks_ok + 1))
	elif "$B/ferry-spool" -d "$D" check >"$TMP/check.out" 2>&1; then
		checks_ok=$((checks_ok + 1))
	elif [ ! -s "$LOG" ] &&
	    grep -q 'no spool here (ferry-agent creates it)' "$TMP/check.out"; then
		# Killed inside the creation (directory made, meta not yet
		# committed): no spool yet, nothing promised; the next
		# round's open must finish the creation.
		checks_ok=$((checks_ok + 1))
	else
		diag "round $r: check failed:"; sed 's/^/# /' "$TMP/check.out"
	fi
done
is "ferry-spool check passes after each of $ROUNDS kills" "$checks_ok" "$ROUNDS"
like "the writer logged committed batches" "$(wc -l <"$LOG")" '^[1-9][0-9]+$'

ok "ls --json lists the spool" sh -c "'$B/ferry-spool' -d '$D' ls --json >'$TMP/ls.json'"
out=$($PY - "$LOG" "$TMP/ls.json" <<'PY'
import json, sys
log, ls = sys.argv[1], sys.argv[2]
spool = [json.loads(l) for l in open(ls) if l.strip()]
seqs = [e["seq"] for e in spool]
problems = []
if seqs != sorted(set(seqs)):
    problems.append("seqs not strictly increasing / reused")
bykey = {}
for e in spool:
    bykey.setdefault(e["key"], []).append(e["seq"])
twice = [k for k, v in bykey.items() if len(v) > 1]
if twice:
    problems.append("%d keys stored twice, e.g. %s" % (len(twice), twice[0]))
acked = dups = 0
for line in open(log):
    parts = line.split()
    if len(parts) != 3:
        continue        # blank, or torn by a kill inside the write(2)
    key, seq, dup = parts[0], int(parts[1]), parts[2] == "1"
    acked += 1
    dups += dup
    if bykey.get(key) != [seq]:
        problems.append("acked %s seq %d: spool has %s" % (key, seq, bykey.get(key)))
print("acked=%d dups=%d stored=%d problems=%d" % (acked, dups, len(spool), len(problems)))
for p in problems[:10]:
    print("#", p)
PY
)
diag "$out"
like "every acknowledged event is there exactly once, no seq reused" "$out" 'problems=0$'
like "duplicates were seen across kills" "$out" 'dups=[1-9]'
done_testing
