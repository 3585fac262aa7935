#!/bin/sh
# run.sh BUILD [SAN_BUILD]: runs every unit test program and integration
# script, each of which speaks TAP ("ok N - name" / "not ok N - name", a
# "1..N" plan), and ends with one line: "N passed, N failed".  A program
# that dies before its plan is complete counts its missing tests, or at
# least one, as failed.  FERRY_TESTS="pattern ..." runs only the files
# matching a pattern.
#
# With SAN_BUILD (a `make SAN=1` build: ASan + UBSan + LeakSanitizer), the
# same files run a second time against it, named "san:FILE", except those
# that test the plain build itself (packaging, its memory ceilings) or
# bring their own sanitizers (fuzz).  Each sanitizer report is written to a file in the
# log directory; a file that leaves one fails, whatever its TAP said.
# A test reported as skipped ("ok N # SKIP") counts as failed: a test that
# could not run is not a pass.
set -u
B=$(cd "${1:-build}" && pwd)
SANB=""
[ -n "${2:-}" ] && SANB=$(cd "$2" && pwd)
SAN_EXCLUDE="060-packaging 071-resources 090-fuzz-smoke"
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
	if [ -n "${SANLOG:-}" ]; then	# reports of this file's processes
		for f in "$SANLOG".*; do
			[ -f "$f" ] || continue
			{ echo "not ok - sanitizer report $(basename "$f"):"
			  head -n 30 "$f" | sed 's/^/# /'; } >>"$log"
			mv "$f" "$LOGDIR/"
		done
	fi
	# A skipped test is not a pass: "ok N # SKIP" counts as failed.
	ok=$(grep '^ok ' "$log" | grep -vci '# *skip')
	nskip=$(grep '^ok ' "$log" | grep -ci '# *skip')
	nok=$(grep -c '^not ok ' "$log")	# sanitizer reports too
	nok=$((nok + nskip))
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

# run_all BUILD PREFIX EXCLUDE: every unit test of BUILD and every
# integration script (against FERRY_BUILD), but those named in EXCLUDE.
run_all() {
	for t in "$1"/tests/test_*; do
		[ -x "$t" ] || continue
		n=$(basename "$t")
		selected "$n" && run_one "$2$n" "$t"
	done
	for t in "$T"/integration/*.sh; do
		[ -f "$t" ] || continue
		n=$(basename "$t" .sh)
		case " $3 " in *" $n "*) continue ;; esac
		selected "$n" && run_one "$2$n" sh "$t"
	done
}

run_all "$B" "" ""
if [ -n "$SANB" ]; then
	# Sanitizer reports go to files, one per process; run_one looks.
	export FERRY_BUILD="$SANB"
	export ASAN_OPTIONS="log_path=$LOGDIR/san/report:detect_leaks=1:abort_on_error=0"
	export UBSAN_OPTIONS="log_path=$LOGDIR/san/report:print_stacktrace=1"
	export LSAN_OPTIONS="log_path=$LOGDIR/san/report"
	mkdir -p "$LOGDIR/san"
	SANLOG=$LOGDIR/san/report
	run_all "$SANB" "san:" "$SAN_EXCLUDE"
fi

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
