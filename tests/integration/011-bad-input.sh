#!/bin/sh
# 011-bad-input.sh: ferry-spool faced with what an operator's disk can hold:
# a damaged config, a spool of a future format, a damaged or foreign data
# file, wrong or missing keys, no permission, no spool at all.  Each must
# give one clear line naming what is wrong, a non-zero exit, no crash, and
# leave everything as it was: data.mdb byte for byte, no file added.
# The future-format spool is made with LMDB's own mdb_dump/mdb_load.
T=${FERRY_TESTS_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$T/lib.sh"

FS=$B/ferry-spool
PUT=$B/tests/spool-put
NOW=1700000000123

run() { "$@" >"$TMP/out" 2>"$TMP/err"; echo $?; }
err() { cat "$TMP/err"; }
# snap DIR: data.mdb's checksum (or its absence), then the files present.
snap() { (cd "$1" 2>/dev/null && { sha256sum data.mdb 2>&1; ls -A | tr '\n' ' '; }); }
# one_line NAME REGEX: stderr is exactly one line and matches REGEX.
one_line() {
	is "$1: one line on stderr" "$(err | wc -l)" 1
	like "$1: says what is wrong" "$(err)" "^ferry-spool: .*$2"
}
# untouched NAME DIR BEFORE: DIR is as it was when snap gave BEFORE.
untouched() {
	_now=$(snap "$2")
	is "$1: data.mdb unchanged" "$(echo "$_now" | head -n 1)" \
	    "$(echo "$3" | head -n 1)"
	is "$1: no file appeared" "$(echo "$_now" | sed 1d)" \
	    "$(echo "$3" | sed 1d)"
}

mkspool() {	# DIR [spool-put options]: a small spool of three events
	_d=$1; shift
	printf '{"n":1}\n{"n":2}\n{"n":3}\n' | $PUT -d "$_d" -t $NOW "$@" >/dev/null
}

# --- a damaged configuration line ------------------------------------------
S=$TMP/plain
mkspool "$S"
before=$(snap "$S")
printf '[spool]\ndir = %s\nmax_size 64MiB\n' "$S" >"$TMP/noeq.conf"
is "config line without '=': exit 78" "$(run $FS -c "$TMP/noeq.conf" stat)" 78
is "config line without '=': one line" "$(err | wc -l)" 1
like "config line without '=': names file:line" "$(err)" "noeq.conf:3:"
untouched "config line without '='" "$S" "$before"
printf '[spool]\ndir = %s\n[dedup]\nwindow = soon\n' "$S" >"$TMP/badval.conf"
is "bad duration: exit 78" "$(run $FS -c "$TMP/badval.conf" ls)" 78
like "bad duration: names file:line and key" "$(err)" "badval.conf:4:.*window"
printf '[spool]\ndir = %s\nflavour = mint\n' "$S" >"$TMP/unknown.conf"
is "unknown key: exit 78" "$(run $FS -c "$TMP/unknown.conf" check)" 78
like "unknown key: names file:line and key" "$(err)" "unknown.conf:3:.*flavour"
untouched "bad config values" "$S" "$before"

# --- a spool of a future format ----------------------------------------------
# Dump every database with mdb_dump, set meta "format" (u32 BE) to 99, load
# into a fresh environment with mdb_load: no ferry code writes it.
F=$TMP/future
mkdir "$F"
mdb_dump -a "$S" >"$TMP/dump" 2>"$TMP/dump.err"
$PY - "$TMP/dump" "$TMP/dump99" <<'EOF'
import sys
out, db, fixed = [], None, 0
lines = open(sys.argv[1]).read().split("\n")
for i, l in enumerate(lines):
    if l.startswith("database="):
        db = l[len("database="):]
    if db == "meta" and i > 0 and lines[i - 1] == " " + b"format".hex():
        l, fixed = " 00000063", fixed + 1
    out.append(l)
assert fixed == 1, "no format key in meta"
open(sys.argv[2], "w").write("\n".join(out))
EOF
ok "mdb_load makes a format-99 spool" mdb_load -f "$TMP/dump99" "$F"
before=$(snap "$F")
is "future format: stat exit 1" "$(run $FS -d "$F" stat)" 1
one_line "future format" "format 99.*format 1"
is "future format: check exit 1" "$(run $FS -d "$F" check)" 1
is "future format: cursor --set exit 1" "$(run $FS -d "$F" cursor c --set 1)" 1
untouched "future format" "$F" "$before"

# --- a damaged data.mdb ----------------------------------------------------------
D=$TMP/big
seq 1 3000 | sed 's/.*/{"n":"MARK-&-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}/' |
    $PUT -d "$D" -t $NOW >/dev/null
# (a) one record's version byte: the record starts 58 bytes before its body
# (38-byte header, "test", "application/json"), body offset found by value.
cp -r "$D" "$TMP/rec"
off=$($PY -c 'import sys; print(open(sys.argv[1],"rb").read().index(b"{\"n\":\"MARK-1500-") - 58)' \
    "$TMP/rec/data.mdb")
printf '\007' | dd of="$TMP/rec/data.mdb" bs=1 seek="$off" conv=notrunc 2>/dev/null
before=$(snap "$TMP/rec")
is "damaged record: check exit 1" "$(run $FS -d "$TMP/rec" check)" 1
like "damaged record: check names event 1500" "$(cat "$TMP/out")" '^event 1500: .*version'
like "damaged record: check summary" "$(cat "$TMP/out")" 'check: 3000 events, 1 problems$'
is "damaged record: cat 1500 exit 1" "$(run $FS -d "$TMP/rec" cat 1500)" 1
one_line "damaged record: cat 1500" "event 1500"
is "damaged record: ls exit 1" "$(run $FS -d "$TMP/rec" ls)" 1
is "damaged record: ls printed the events before it" "$(wc -l <"$TMP/out")" 1499
is "damaged record: cat 1501 still works" "$(run $FS -d "$TMP/rec" cat 1501)" 0
untouched "damaged record" "$TMP/rec" "$before"

# (b) a whole page in the middle overwritten with dd: 0xaa bytes, then zeros.
pages=$(( $(stat -c %s "$D/data.mdb") / 4096 ))
for pat in aa 00; do
	X=$TMP/page$pat
	cp -r "$D" "$X"
	head -c 4096 /dev/zero | tr '\000' "\\$(printf '%03o' 0x$pat)" |
	    dd of="$X/data.mdb" bs=4096 seek=$((pages / 2)) count=1 conv=notrunc 2>/dev/null
	before=$(snap "$X")
	rc=$(run $FS -d "$X" check)
	is "page of 0x$pat: check exit 1 (damage found, no crash)" "$rc" 1
	like "page of 0x$pat: check names a problem" "$(head -n 1 "$TMP/out")$(err)" '.'
	for c in stat ls "tail -n 5" "cat 2999"; do
		rc=$(run $FS -d "$X" $c)
		ok "page of 0x$pat: $c does not crash (exit $rc)" test "$rc" -lt 128
	done
	untouched "page of 0x$pat" "$X" "$before"
done

# (c) garbage from byte 0, and an empty data.mdb: not a spool; no lock file
# left behind, nothing written into the data file.
G=$TMP/garbage
mkdir "$G"
head -c 65536 /dev/urandom >"$G/data.mdb"
before=$(snap "$G")
is "garbage data.mdb: exit 1" "$(run $FS -d "$G" stat)" 1
one_line "garbage data.mdb" "not .*LMDB"
untouched "garbage data.mdb" "$G" "$before"
E=$TMP/empty
mkdir "$E"
: >"$E/data.mdb"
before=$(snap "$E")
is "empty data.mdb: exit 1" "$(run $FS -d "$E" stat)" 1
like "empty data.mdb: says so" "$(err)" "^ferry-spool: spool $E: "
is "empty data.mdb: still 0 bytes" "$(stat -c %s "$E/data.mdb")" 0
untouched "empty data.mdb" "$E" "$before"

# --- keys ---------------------------------------------------------------------
printf '%064d\n' 0 | tr 0 a >"$TMP/keyA"
printf '%064d\n' 0 | tr 0 b >"$TMP/keyB"
printf 'short\n' >"$TMP/keyBad"
K=$TMP/enc
mkspool "$K" -k "$TMP/keyA"
before=$(snap "$K")
ok "the right key opens it" $FS -d "$K" -k "$TMP/keyA" stat
is "the right key: cat" "$(run $FS -d "$K" -k "$TMP/keyA" cat 2 >/dev/null; cat "$TMP/out")" '{"n":2}'
like "the right key: stat says encrypted" \
    "$(run $FS -d "$K" -k "$TMP/keyA" stat >/dev/null; cat "$TMP/out")" 'encrypted: +yes'
ok "the right key: check clean" $FS -d "$K" -k "$TMP/keyA" check
ok "no plaintext body in the encrypted data.mdb" sh -c "! grep -q '\"n\":2' '$K/data.mdb'"
printf '[spool]\ndir = %s\nencryption_key_file = %s\n' "$K" "$TMP/keyB" >"$TMP/keyB.conf"
is "wrong key: exit 1" "$(run $FS -c "$TMP/keyB.conf" ls)" 1
one_line "wrong key" "$K: wrong encryption key"
is "wrong key with -k: exit 1" "$(run $FS -d "$K" -k "$TMP/keyB" cat 1)" 1
one_line "wrong key with -k" "wrong encryption key"
is "encrypted, no key: exit 1" "$(run $FS -d "$K" stat)" 1
one_line "encrypted, no key" "$K: encrypted, and no key"
untouched "keys" "$K" "$before"
before=$(snap "$S")
is "plain, with a key: exit 1" "$(run $FS -d "$S" -k "$TMP/keyA" stat)" 1
one_line "plain, with a key" "$S: not encrypted, but a key"
is "unreadable key file: exit 78" "$(run $FS -d "$S" -k "$TMP/keyBad" stat)" 78
one_line "unreadable key file" "keyBad"
is "missing key file: exit 78" "$(run $FS -d "$S" -k "$TMP/nokey" stat)" 78
one_line "missing key file" "nokey"
untouched "key files" "$S" "$before"

# --- permissions (as nobody: root bypasses them) -----------------------------
chmod 755 "$TMP"
P=$TMP/perm
mkspool "$P"
chmod 755 "$P"
before=$(snap "$P")
asnobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }
chmod 000 "$P"
is "dir mode 000: exit 1" "$(run asnobody $FS -d "$P" stat)" 1
one_line "dir mode 000" "$P: Permission denied"
chmod 755 "$P"
is "read-only dir, root's data.mdb: exit 1" "$(run asnobody $FS -d "$P" ls)" 1
one_line "read-only dir, root's data.mdb" "$P.*Permission denied"
untouched "permissions" "$P" "$before"
printf '[spool]\ndir = %s\n' "$P" >"$TMP/private.conf"
chmod 600 "$TMP/private.conf"
is "unreadable config: exit 78" "$(run asnobody $FS -c "$TMP/private.conf" stat)" 78
like "unreadable config: names it" "$(err)" "private.conf.*Permission denied"

# A spool of the agent's user restored without lock.mdb, then checked by
# root: the lock.mdb LMDB creates goes to data.mdb's owner, and that user
# can open the spool afterwards.
R=$TMP/restored
mkspool "$R"
chown -R nobody:nogroup "$R"
rm -f "$R/lock.mdb"
is "restored spool, checked by root: exit 0" "$(run $FS -d "$R" check)" 0
is "restored spool: lock.mdb owned like data.mdb" \
    "$(stat -c %U:%G "$R/lock.mdb")" "nobody:nogroup"
is "restored spool: its user can read it afterwards" \
    "$(run asnobody $FS -d "$R" ls)" 0
is "root moves a cursor: exit 0" "$(run $FS -d "$R" cursor c --set 1)" 0
is "the forwarder.lock it took is owned like data.mdb" \
    "$(stat -c %U:%G "$R/forwarder.lock")" "nobody:nogroup"
# lock.mdb replaced by a symlink (the directory is the service user's):
# root's check must not give the link's target away.
: >"$TMP/root-owned"
rm -f "$R/lock.mdb"
ln -s "$TMP/root-owned" "$R/lock.mdb"
run $FS -d "$R" check >/dev/null
is "a symlinked lock.mdb: its target keeps its owner" \
    "$(stat -c %U "$TMP/root-owned")" root

# --- no spool -------------------------------------------------------------------
is "missing dir: exit 1" "$(run $FS -d "$TMP/none" stat)" 1
one_line "missing dir" "$TMP/none: no such directory"
ok "missing dir: not created" test ! -e "$TMP/none"
printf '[spool]\ndir = %s\n' "$TMP/none" >"$TMP/none.conf"
is "missing dir from the config: exit 1" "$(run $FS -c "$TMP/none.conf" ls)" 1
ok "missing dir from the config: not created" test ! -e "$TMP/none"
is "missing dir, cursor --set: exit 1" "$(run $FS -d "$TMP/none" cursor c --set 1)" 1
ok "missing dir, cursor --set: not created" test ! -e "$TMP/none"
mkdir "$TMP/hollow"
is "empty dir: exit 1" "$(run $FS -d "$TMP/hollow" stat)" 1
one_line "empty dir" "$TMP/hollow: no spool here \\(ferry-agent creates it\\)"
is "empty dir: still empty" "$(ls -A "$TMP/hollow")" ""
: >"$TMP/afile"
is "a file, not a dir: exit 1" "$(run $FS -d "$TMP/afile" stat)" 1
one_line "a file, not a dir" "$TMP/afile: not a directory"

done_testing
