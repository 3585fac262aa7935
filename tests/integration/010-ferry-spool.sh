#!/bin/sh
# 010-ferry-spool.sh: the operator's tool against spools filled by
# tests/helpers/spool-put, its output checked field by field; JSON parsed
# with Debian's python3, backups read back by LMDB's own mdb_stat.
T=${FERRY_TESTS_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$T/lib.sh"

FS=$B/ferry-spool
PUT=$B/tests/spool-put
S=$TMP/spool
NOW=1700000000123		# 2023-11-14T22:13:20.123Z

# run CMD...: output to $TMP/out and $TMP/err, prints the exit status.
run() { "$@" >"$TMP/out" 2>"$TMP/err"; echo $?; }
out() { cat "$TMP/out"; }
err() { cat "$TMP/err"; }
# js EXPR: evaluates EXPR on the JSON object in $TMP/out (as j).
js() { $PY -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$TMP/out" "$1"; }
# nd EXPR: EXPR for each line of the NDJSON in $TMP/out (as j), one per line.
nd() { $PY -c 'import json,sys
for l in open(sys.argv[1]): j=json.loads(l); print(eval(sys.argv[2]))' "$TMP/out" "$1"; }

cat >"$TMP/good.conf" <<EOF
[spool]
dir = $S
max_size = 8MiB

[dedup]
window = 1h
EOF
printf '[spool]\ndir = %s\nmax_size = lots\n' "$S" >"$TMP/bad.conf"

# --- usage, version, help: nothing opened, exit 64 for usage errors -------
is "no command: exit 64" "$(run $FS)" 64
like "no command: usage on stderr" "$(err)" '^usage: ferry-spool '
is "unknown command: exit 64" "$(run $FS -d "$S" frobnicate)" 64
like "unknown command named" "$(err)" 'unknown command: frobnicate'
is "unknown global option: exit 64" "$(run $FS --bogus stat)" 64
is "ls --bogus: exit 64" "$(run $FS -d "$S" ls --bogus)" 64
like "ls --bogus: command usage" "$(err)" 'usage: ferry-spool ls '
is "ls --from x: exit 64" "$(run $FS -d "$S" ls --from x)" 64
like "ls --from x: names the option" "$(err)" -- '--from: not a number: x'
is "ls --limit 0: exit 64" "$(run $FS -d "$S" ls --limit 0)" 64
is "cat without SEQ: exit 64" "$(run $FS -d "$S" cat)" 64
is "cat 1x: exit 64" "$(run $FS -d "$S" cat 1x)" 64
is "cat -1: exit 64" "$(run $FS -d "$S" cat -- -1)" 64
is "tail -n x: exit 64" "$(run $FS -d "$S" tail -n x)" 64
is "stat extra arg: exit 64" "$(run $FS -d "$S" stat foo)" 64
is "backup without DIR: exit 64" "$(run $FS -d "$S" backup)" 64
is "cursor --set without SINK: exit 64" "$(run $FS -d "$S" cursor --set 1)" 64
is "cursor --set and --delete: exit 64" \
    "$(run $FS -d "$S" cursor c --set 1 --delete)" 64
is "dead drop without SEQ: exit 64" "$(run $FS -d "$S" dead drop c)" 64
is "dead drop SEQ and --all: exit 64" "$(run $FS -d "$S" dead drop c 1 --all)" 64
is "dead frob: exit 64" "$(run $FS -d "$S" dead frob)" 64
ok "usage errors created no spool dir" test ! -e "$S"

is "--version: exit 0" "$(run $FS --version)" 0
like "--version prints name and version" "$(out)" '^ferry-spool [0-9]+\.[0-9]+\.[0-9]+$'
is "--help: exit 0" "$(run $FS --help)" 0
for c in stat ls cat tail check backup cursor dead; do
	like "--help lists $c" "$(out)" "^ [ *] $c( |$)"
done
like "--help names the default config" "$(out)" '/etc/ferry/ferry.conf'

# --- --check-config --------------------------------------------------------
is "--check-config good: exit 0" "$(run $FS -c "$TMP/good.conf" --check-config)" 0
is "--check-config good: message" "$(out)" "configuration OK"
is "--check-config bad: exit 78" "$(run $FS -c "$TMP/bad.conf" --check-config)" 78
like "--check-config bad: names file:line" "$(err)" "bad.conf:3:"
like "--check-config bad: names the key" "$(err)" "max_size"
is "--check-config bad: nothing on stdout" "$(out)" ""
is "--check-config missing file: exit 78" \
    "$(run $FS -c "$TMP/nope.conf" --check-config)" 78
like "--check-config missing file: named" "$(err)" "nope.conf"
is "a command with a bad config: exit 78" "$(run $FS -c "$TMP/bad.conf" stat)" 78

# --- an empty spool ----------------------------------------------------------
ok "spool-put creates an empty spool" sh -c "$PUT -d '$S' </dev/null"
is "stat empty: exit 0" "$(run $FS -c "$TMP/good.conf" stat)" 0
like "stat empty: events 0" "$(out)" '^events: +0$'
like "stat empty: first seq 0" "$(out)" '^first seq: +0$'
like "stat empty: spool dir from the config" "$(out)" "spool: +$S"
is "stat --json empty: exit 0" "$(run $FS -c "$TMP/good.conf" --json stat)" 0
is "stat --json empty: fields" \
    "$(js '[j["events"], j["first_seq"], j["last_seq"], j["dedup_entries"], j["deadletters"], j["sinks"]]')" \
    "[0, 0, 0, 0, 0, {}]"
is "stat --json empty: max_bytes from the config" "$(js 'j["max_bytes"]')" 8388608
is "stat --json empty: not encrypted, format 1" \
    "$(js '[j["encrypted"], j["format"], len(j["spool_id"])]')" "[False, 1, 32]"
is "ls empty: exit 0, no output" "$(run $FS -d "$S" ls)$(out)" 0
is "tail empty: exit 0, no output" "$(run $FS -d "$S" tail)$(out)" 0

# --- a filled spool ------------------------------------------------------------
# seq 1-3 stream a (3 with a key and a control byte in it), 4-5 stream b, 6 a
# binary body with a NUL, 7 a body that is not UTF-8.
printf '{"a":1}\n{"a":2}\n' | $PUT -d "$S" -s a -t $NOW >"$TMP/put" 2>&1
is "spool-put: two events in one batch" "$(cat "$TMP/put")" "1 0
2 0"
printf '{"a":3}\n' | $PUT -d "$S" -s a -t $NOW -a 10.0.0.7 \
    -i "$(printf 'key\033x')" >/dev/null
printf 'b1\nb2\n' | $PUT -d "$S" -s b -c text/plain -t $((NOW + 1000)) -b 1 \
    >/dev/null
printf 'a\000b\n' | $PUT -d "$S" -s bin -c application/octet-stream \
    -t $((NOW + 2000)) >/dev/null
printf '\377\376z\n' | $PUT -d "$S" -s bin -c application/octet-stream \
    -t $((NOW + 3000)) >/dev/null
printf '{"a":1}\n' | $PUT -d "$S" -s a -t $NOW >"$TMP/put" 2>&1
is "spool-put: a duplicate is reported as one" "$(cat "$TMP/put")" "1 1"

is "stat: exit 0" "$(run $FS -d "$S" stat)" 0
like "stat: events 7" "$(out)" '^events: +7$'
like "stat: first seq 1" "$(out)" 'first seq: +1'
like "stat: last seq 7" "$(out)" 'last seq: +7'
like "stat: oldest event time" "$(out)" 'oldest event: +2023-11-14T22:13:20.123Z'
like "stat: dedup entries 7" "$(out)" 'dedup entries: +7'
is "stat --json: exit 0" "$(run $FS -c "$TMP/good.conf" stat --json)" 0
is "stat --json: events, first, last" \
    "$(js '[j["events"], j["first_seq"], j["last_seq"], j["next_seq"]]')" \
    "[7, 1, 7, 8]"
is "stat --json: dedup, dead letters, sinks" \
    "$(js '[j["dedup_entries"], j["deadletters"], j["sinks"]]')" "[7, 0, {}]"
is "stat --json: used_bytes within max_bytes" \
    "$(js '0 < j["used_bytes"] <= j["max_bytes"] == 8388608')" True
is "stat --json: oldest_ms" "$(js 'j["oldest_ms"]')" $NOW
is "stat --json: file_size is data.mdb's size" "$(js 'j["file_size"]')" \
    "$(stat -c %s "$S/data.mdb")"
is "stat --json: the extent (file_bytes) within the file" \
    "$(js '0 < j["used_bytes"] <= j["file_bytes"] <= j["file_size"]')" True
like "stat: file size line" "$($FS -d "$S" stat)" \
    "^file size: +$(stat -c %s "$S/data.mdb")\$"
is "stat --json: oldest_age_ms" "$(js 'j["oldest_age_ms"] > 0')" True
is "-d overrides the config's dir" \
    "$(run $FS -c "$TMP/good.conf" -d "$TMP/other" stat)" 1
like "-d overrides: names the dir" "$(err)" "$TMP/other"

# ls
is "ls: exit 0" "$(run $FS -d "$S" ls)" 0
is "ls: seven lines" "$(out | wc -l)" 7
is "ls: seqs in order" "$(out | awk '{print $1}' | tr '\n' ' ')" "1 2 3 4 5 6 7 "
like "ls: line 1" "$(out | sed -n 1p)" \
    '^1 2023-11-14T22:13:20\.123Z a application/json 7 [0-9a-f]{32} -$'
like "ls: a key with a control byte is escaped" "$(out | sed -n 3p)" \
    '^3 2023-11-14T22:13:20\.123Z a application/json 7 [0-9a-f]{32} key\\x1bx$'
like "ls: line 4" "$(out | sed -n 4p)" \
    '^4 2023-11-14T22:13:21\.123Z b text/plain 2 [0-9a-f]{32} -$'
like "ls: binary body length" "$(out | sed -n 6p)" \
    '^6 2023-11-14T22:13:22\.123Z bin application/octet-stream 3 '
is "ls: ids are distinct" "$(out | awk '{print $6}' | sort -u | wc -l)" 7
out | awk '{print $1, $6}' >"$TMP/ids"
is "ls --stream b" \
    "$(run $FS -d "$S" ls --stream b >/dev/null; out | awk '{print $1}' | tr '\n' ' ')" "4 5 "
is "ls --stream none" "$(run $FS -d "$S" ls --stream none; out)" 0
is "ls --from 2 --to 4" \
    "$(run $FS -d "$S" ls --from 2 --to 4 >/dev/null; out | awk '{print $1}' | tr '\n' ' ')" "2 3 4 "
is "ls --limit 2" "$(run $FS -d "$S" ls --limit 2 >/dev/null; out | awk '{print $1}' | tr '\n' ' ')" "1 2 "
is "ls --stream bin --from 2 --limit 1" \
    "$(run $FS -d "$S" ls --stream bin --from 2 --limit 1 >/dev/null; out | awk '{print $1}')" 6
is "ls --stream bin --to 6" \
    "$(run $FS -d "$S" ls --to 6 --stream bin >/dev/null; out | awk '{print $1}')" 6
is "ls --from past the end" "$(run $FS -d "$S" ls --from 100; out)" 0

# ls --json
is "ls --json: exit 0" "$(run $FS -d "$S" ls --json)" 0
is "ls --json: seven objects" "$(nd 'j["seq"]' | tr '\n' ' ')" "1 2 3 4 5 6 7 "
is "ls --json: event 1" \
    "$(nd '[j["received_ms"], j["stream"], j["content_type"], j["key"], j["remote_addr"], j["body_len"], j.get("body")]' | sed -n 1p)" \
    "[$NOW, 'a', 'application/json', None, None, 7, '{\"a\":1}']"
is "ls --json: event 3 key and address" "$(nd '[j["key"], j["remote_addr"]]' | sed -n 3p)" \
    "['key\\x1bx', '10.0.0.7']"
is "ls --json: received is ISO-8601" "$(nd 'j["received"]' | sed -n 4p)" \
    "2023-11-14T22:13:21.123Z"
is "ls --json: a NUL in a UTF-8 body" "$(nd 'repr(j.get("body", "").encode())' | sed -n 6p)" \
    "b'a\\x00b'"
is "ls --json: a non-UTF-8 body is base64" \
    "$(nd '"body" in j, __import__("base64").b64decode(j.get("body_base64", ""))' | sed -n 7p)" \
    "(False, b'\\xff\\xfez')"
is "ls --json: ids match ls" "$(nd '"%d %s" % (j["seq"], j["id"])')" "$(cat "$TMP/ids")"
is "ls --json --stream b --limit 1" \
    "$(run $FS -d "$S" --json ls --stream b --limit 1 >/dev/null; nd 'j["body"]')" b1

# cat
printf '{"a":1}' >"$TMP/want1"
printf 'a\000b' >"$TMP/want6"
printf '\377\376z' >"$TMP/want7"
printf '{"a":1}b1a\000b' >"$TMP/want146"
is "cat 1: exit 0" "$(run $FS -d "$S" cat 1)" 0
ok "cat 1: bytes exact" cmp "$TMP/out" "$TMP/want1"
run $FS -d "$S" cat 6 >/dev/null
ok "cat 6: a NUL byte exact" cmp "$TMP/out" "$TMP/want6"
run $FS -d "$S" cat 7 >/dev/null
ok "cat 7: non-UTF-8 bytes exact" cmp "$TMP/out" "$TMP/want7"
run $FS -d "$S" cat 1 4 6 >/dev/null
ok "cat 1 4 6: concatenated" cmp "$TMP/out" "$TMP/want146"
is "cat 1 99 4 6: exit 1" "$(run $FS -d "$S" cat 1 99 4 6)" 1
ok "cat 1 99 4 6: the others printed" cmp "$TMP/out" "$TMP/want146"
like "cat 1 99 4 6: names 99" "$(err)" '^ferry-spool: spool .*: no event 99$'
is "cat 99: one line on stderr" "$(run $FS -d "$S" cat 99 >/dev/null; err | wc -l)" 1
printf 'x\n\n' | $PUT -d "$TMP/short" >/dev/null
is "cat: a one-byte body" "$(run $FS -d "$TMP/short" cat 1 >/dev/null; out)" x
is "cat: an empty body" "$(run $FS -d "$TMP/short" cat 2; wc -c <"$TMP/out")" "0
0"
is "ls: an empty body's length" \
    "$(run $FS -d "$TMP/short" ls --from 2 >/dev/null; out | awk '{print $5}')" 0

# tail
is "tail -n 2: exit 0" "$(run $FS -d "$S" tail -n 2)" 0
is "tail -n 2: last two" "$(out | awk '{print $1}' | tr '\n' ' ')" "6 7 "
is "tail: ten or all" "$(run $FS -d "$S" tail >/dev/null; out | wc -l)" 7
is "tail -n 0: nothing" "$(run $FS -d "$S" tail -n 0; out)" 0
is "tail -n 3 --json" "$(run $FS -d "$S" tail -n 3 --json >/dev/null; nd 'j["seq"]' | tr '\n' ' ')" "5 6 7 "

# tail -f: sees an event appended while it runs, stops on SIGTERM
$FS -d "$S" tail -f -n 1 >"$TMP/follow" 2>&1 &
fpid=$!
track $fpid
sleep 0.5
printf 'late\n' | $PUT -d "$S" -s late >/dev/null
i=0
while [ $i -lt 20 ] && ! grep -q ' late ' "$TMP/follow"; do
	sleep 0.1
	i=$((i + 1))
done
kill -TERM $fpid 2>/dev/null
wait $fpid
frc=$?
is "tail -f: the last event, then the new one" \
    "$(awk '{print $1, $3}' "$TMP/follow" | tr '\n' ' ')" "7 bin 8 late "
is "tail -f: SIGTERM ends it with exit 0" "$frc" 0

# check
is "check: exit 0" "$(run $FS -d "$S" check)" 0
is "check: summary" "$(out)" "check: 8 events, 0 problems"
is "check --json" "$(run $FS -d "$S" check --json >/dev/null; js '[j["events"], j["problems"]]')" \
    "[8, []]"

# backup
is "backup: exit 0" "$(run $FS -d "$S" backup "$TMP/copy")" 0
like "backup: says where" "$(out)" "$TMP/copy"
is "backup: data.mdb mode 0640, like the spool's" \
    "$(stat -c %a "$TMP/copy/data.mdb")" 640
run $FS -d "$S" stat --json >/dev/null
js '[j["events"], j["first_seq"], j["last_seq"], j["spool_id"]]' >"$TMP/orig"
is "backup: the copy reads the same" \
    "$(run $FS -d "$TMP/copy" stat --json >/dev/null; js '[j["events"], j["first_seq"], j["last_seq"], j["spool_id"]]')" \
    "$(cat "$TMP/orig")"
$FS -d "$S" ls --json >"$TMP/ls.orig"
$FS -d "$TMP/copy" ls --json >"$TMP/ls.copy"
ok "backup: same events, same bodies" cmp "$TMP/ls.orig" "$TMP/ls.copy"
like "mdb_stat reads the copy: 8 events" \
    "$(mdb_stat -s events "$TMP/copy" 2>&1)" 'Entries: 8'
like "mdb_stat reads the copy: 8 dedup entries" \
    "$(mdb_stat -s dedup "$TMP/copy" 2>&1)" 'Entries: 8'
is "backup onto a spool: exit 1" "$(run $FS -d "$S" backup "$TMP/copy")" 1
like "backup onto a spool: says why" "$(err)" "$TMP/copy.*already holds a spool"

# cursors and lag
is "cursor: none yet" "$(run $FS -d "$S" cursor; out)" 0
is "cursor --set: exit 0" "$(run $FS -d "$S" cursor central --set 2)" 0
is "cursor --set: none -> 2" "$(out)" "cursor central: none -> 2"
is "cursor --set again" "$(run $FS -d "$S" cursor central --set 5 >/dev/null; out)" \
    "cursor central: 2 -> 5"
run $FS -d "$S" cursor files --set 8 >/dev/null
is "cursor: lists both" "$(run $FS -d "$S" cursor >/dev/null; out | sed 's/, updated.*//' | sort)" \
    "sink central: cursor 5, lag 3
sink files: cursor 8, lag 0"
is "cursor SINK" "$(run $FS -d "$S" cursor central >/dev/null; out | sed 's/, updated.*//')" \
    "sink central: cursor 5, lag 3"
is "cursor --json" "$(run $FS -d "$S" --json cursor central >/dev/null; nd '[j["sink"], j["cursor"], j["lag"]]')" \
    "['central', 5, 3]"
is "stat --json: sinks, cursor and lag" \
    "$(run $FS -d "$S" stat --json >/dev/null; js 'sorted((k, v["cursor"], v["lag"]) for k, v in j["sinks"].items())')" \
    "[('central', 5, 3), ('files', 8, 0)]"
like "stat: sink lines" "$(run $FS -d "$S" stat >/dev/null; out)" \
    'sink central: cursor 5, lag 3'
is "cursor --set past the last seq: exit 1" "$(run $FS -d "$S" cursor central --set 100)" 1
like "cursor --set past the last seq: says why" "$(err)" 'central.*100'
is "cursor --set past the last seq: unchanged" \
    "$(run $FS -d "$S" cursor central >/dev/null; out | sed 's/, updated.*//')" "sink central: cursor 5, lag 3"
is "cursor --delete: exit 0" "$(run $FS -d "$S" cursor files --delete)" 0
is "cursor --delete: says so" "$(out)" "cursor files: 8 -> deleted"
is "cursor --delete: gone from stat" \
    "$(run $FS -d "$S" stat --json >/dev/null; js 'sorted(j["sinks"])')" "['central']"
is "cursor of a deleted sink: exit 1" "$(run $FS -d "$S" cursor files)" 1
like "cursor of a deleted sink: names it" "$(err)" 'no cursor for sink files'
is "cursor --delete unknown: exit 1" "$(run $FS -d "$S" cursor nope --delete)" 1

# dead letters
ok "spool-put -D adds dead letters" $PUT -d "$S" -D "central:2:message too large" \
    -D "central:4:rejected" -D "files:6:bad schema"
is "dead: exit 0" "$(run $FS -d "$S" dead)" 0
is "dead: three" "$(out | wc -l)" 3
like "dead: a line" "$(out | grep '^2 ')" \
    '^2 central [0-9T:.-]+Z a 7 message too large$'
is "stat: dead letters 3" "$(run $FS -d "$S" stat --json >/dev/null; js 'j["deadletters"]')" 3
is "dead ls --sink central" \
    "$(run $FS -d "$S" dead ls --sink central >/dev/null; out | awk '{print $1}' | tr '\n' ' ')" "2 4 "
is "dead --json" \
    "$(run $FS -d "$S" --json dead --sink files >/dev/null; nd '[j["seq"], j["sink"], j["reason"], j["stream"], j["body_len"]]')" \
    "[6, 'files', 'bad schema', 'bin', 3]"
is "dead drop: exit 0" "$(run $FS -d "$S" dead drop files 6)" 0
is "dead drop: gone" "$(run $FS -d "$S" dead ls --sink files; out)" 0
is "dead drop again: exit 1" "$(run $FS -d "$S" dead drop files 6)" 1
like "dead drop again: names it" "$(err)" 'no dead letter 6 for sink files'
is "dead drop --all: exit 0" "$(run $FS -d "$S" dead drop central --all)" 0
like "dead drop --all: count" "$(out)" 'dropped 2 dead letters of sink central'
is "dead: none left" "$(run $FS -d "$S" dead; out)" 0
is "the events stay" "$(run $FS -d "$S" stat --json >/dev/null; js '[j["events"], j["deadletters"]]')" \
    "[8, 0]"

# a bigger spool: ls pages through it in short reads, none lost or repeated
# at a page boundary, and a reader of our stdout that stalls holds no
# read transaction open (reader table empty while ls waits on the pipe).
BIG=$TMP/big
pad=$(printf '%01000d' 0)
seq 1 3000 | sed "s/.*/{\"n\":&,\"pad\":\"$pad\"}/" | $PUT -d "$BIG" -b 500 >/dev/null
is "big: ls --json: every seq once, in order" \
    "$(run $FS -d "$BIG" ls --json >/dev/null; nd 'j["seq"]' | $PY -c 'import sys; print([int(l) for l in sys.stdin] == list(range(1, 3001)))')" \
    True
is "big: ls --json bodies intact" \
    "$(nd 'json.loads(j["body"])["n"] == j["seq"] and len(j["body"]) == j["body_len"]' | sort -u)" True
is "big: tail -n 1500" \
    "$(run $FS -d "$BIG" tail -n 1500 >/dev/null; out | sed -n '1p;$p' | awk '{print $1}' | tr '\n' ' ')" "1501 3000 "
($FS -d "$BIG" ls --json; echo "ls exit $?") | (sleep 2; cat >"$TMP/slow") &
spid=$!
track $spid
sleep 0.7
run $FS -d "$BIG" stat -r >/dev/null
like "big: a stalled ls holds no reader slot" "$(out)" '\(no active readers\)'
wait $spid
is "big: the stalled ls finished" "$(tail -n 1 "$TMP/slow")" "ls exit 0"
is "big: the stalled ls printed all" "$(wc -l <"$TMP/slow")" 3001

# readers
is "stat -r: exit 0" "$(run $FS -d "$S" stat -r)" 0
like "stat -r: the reader table" "$(out)" 'reader table:'
is "stat -rr: exit 0" "$(run $FS -d "$S" stat -rr)" 0
like "stat -rr: stale readers cleared" "$(out)" '[0-9]+ stale readers cleared'
is "stat -rr --json" "$(run $FS -d "$S" stat -rr --json >/dev/null; js '[type(j["reader_table"]).__name__, j["stale_readers_cleared"]]')" \
    "['list', 0]"

# --- a stalled sink: lag, and a cursor that has not moved for a minute -----
W=$TMP/stall
printf '{"n":1}\n{"n":2}\n{"n":3}\n' | $PUT -d "$W" >/dev/null
$PUT -d "$W" -C old:1 -t $(( $(date +%s) * 1000 - 120000 )) </dev/null
$PUT -d "$W" -C fresh:1 </dev/null
$PUT -d "$W" -C done:3 -t $(( $(date +%s) * 1000 - 120000 )) </dev/null
st=$($FS -d "$W" stat)
like "stat flags a sink idle 2 min with a lag as STALLED" \
    "$(echo "$st" | grep '^sink old:')" 'STALLED: no progress for 2m0[0-9]s while events wait'
like "a sink that moved just now is not flagged" \
    "$(echo "$st" | grep '^sink fresh:')" '^sink fresh: cursor 1, lag 2, updated [^ ]+$'
like "an idle sink with nothing to do is not flagged" \
    "$(echo "$st" | grep '^sink done:')" '^sink done: cursor 3, lag 0, updated [^ ]+$'
is "stat --json: stalled per sink" "$($FS -d "$W" stat --json | $PY -c '
import json, sys
s = json.load(sys.stdin)["sinks"]
print(s["old"]["stalled"], s["fresh"]["stalled"], s["done"]["stalled"], s["old"]["idle_ms"] >= 120000)')" \
    "True False False True"
# An Avro file sink moves its cursor when it publishes a file: with the
# configuration, stat allows it roll_interval on top of the minute.
printf '[spool]\ndir = %s\n[sink.old]\ntype = avro-files\ndir = %s\nroll_interval = 5m\n' \
    "$W" "$TMP/stall-avro" >"$TMP/stall.conf"
like "an Avro file sink 2 min idle, roll_interval 5m: not flagged" \
    "$($FS -c "$TMP/stall.conf" stat | grep '^sink old:')" \
    '^sink old: cursor 1, lag 2, updated [^ ]+$'
sed 's/roll_interval = 5m/roll_interval = 30s/' "$TMP/stall.conf" \
    >"$TMP/stall30.conf"
like "the same with roll_interval 30s: STALLED" \
    "$($FS -c "$TMP/stall30.conf" stat | grep '^sink old:')" 'STALLED'

done_testing
