#!/bin/sh
# run.sh BUILD: runs every unit test program and integration script, each of
# which speaks TAP ("ok N - name" / "not ok N - name", a "1..N" plan), and
# ends with one line: "N passed, N failed".  A program that dies before its
# plan is complete counts its missing tests, or at least one, as failed.
# FERRY_TESTS="pattern ..." runs only the files matching a pattern.
set -u
B=$(cd "${1:-build}" && pwd)
T=$(cd "$(dirname "$0")" && pwd)
export FERRY_BUILD="$B" FERRY_TESTS_DIR="$T" CMOCKA_MESSAGE_OUTPUT=TAP
# One log directory per run, so that runs side by side keep their logs;
# build/test-logs/latest points at the newest.
LOGDIR="$B/test-logs/run-$$"
rm -rf "$LOGDIR"; mkdir -p "$LOGDIR"
ln -sfn "run-$$" "$B/test-logs/latest"
passed=0; failed=0

selected() {
	[ -z "${FERRY_TESTS:-}" ] && return 0
	for p in $FERRY_TESTS; do
		case $1 in *$p*) return 0 ;; esac
	done
	return 1
}

run_one() {	# name command...
	name=$1; shift
	log="$LOGDIR/$name.log"
	start=$(date +%s)
	timeout -k 10 "${FERRY_TEST_TIMEOUT:-600}" "$@" >"$log" 2>&1
	rc=$?
	ok=$(grep -c '^ok ' "$log")
	nok=$(grep -c '^not ok ' "$log")
	plan=$(sed -n 's/^1\.\.\([0-9][0-9]*\).*/\1/p' "$log" | tail -n 1)
	missing=0
	if [ -n "$plan" ] && [ $((ok + nok)) -lt "$plan" ]; then
		missing=$((plan - ok - nok))
	fi
	if [ $rc -ne 0 ] && [ $nok -eq 0 ] && [ $missing -eq 0 ]; then
		missing=1
	fi
	if [ -z "$plan" ] && [ $missing -eq 0 ] && [ $((ok + nok)) -eq 0 ]; then
		missing=1	# ran nothing: that is a failure, not a pass
	fi
	nok=$((nok + missing))
	passed=$((passed + ok)); failed=$((failed + nok))
	secs=$(( $(date +%s) - start ))
	if [ $nok -gt 0 ]; then
		echo "FAIL $name: $ok passed, $nok failed (exit $rc, ${secs}s)"
		grep -E '^not ok|^# ' "$log" | head -n 40 | sed 's/^/    /'
		[ $missing -gt 0 ] && tail -n 15 "$log" | sed 's/^/    | /'
	else
		echo "ok   $name: $ok passed (${secs}s)"
	fi
}

for t in "$B"/tests/test_*; do
	[ -x "$t" ] || continue
	n=$(basename "$t")
	selected "$n" && run_one "$n" "$t"
done
for t in "$T"/integration/*.sh; do
	[ -f "$t" ] || continue
	n=$(basename "$t" .sh)
	selected "$n" && run_one "$n" sh "$t"
done

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
