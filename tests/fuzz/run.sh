#!/bin/sh
# run.sh BUILD [SECONDS]: `make fuzz`.  Builds each libFuzzer target with
# clang (-fsanitize=fuzzer,address,undefined) and runs it for SECONDS (60)
# from its seed corpus in tests/fuzz/corpus/NAME, keeping what it finds in
# BUILD/fuzz/corpus-NAME.  Prints one line per target: executions, coverage,
# and whether it crashed.  Exit 1 on any crash.
set -u
mkdir -p "$1/fuzz"; B=$(cd "$1" && pwd)
SECS=${2:-60}
F=$(cd "$(dirname "$0")" && pwd)
R=$(cd "$F/../.." && pwd)
mkdir -p "$B/fuzz"
CF="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -std=c11 -D_GNU_SOURCE -I$R/agent -I$R/spool -I$R/conf"
status=0
build() {	# NAME SOURCES... LIBS
	name=$1; shift
	clang $CF -o "$B/fuzz/$name" "$@" || { echo "fuzz: $name: build failed"; status=1; return 1; }
}
build fuzz_intake "$F/fuzz_intake.c" "$R/agent/intake.c" \
    $(pkg-config --cflags --libs jansson zlib)
build fuzz_record "$F/fuzz_record.c" "$R/spool/record.c" \
    $(pkg-config --cflags --libs libsodium lmdb)
for name in intake record; do
	bin=$B/fuzz/fuzz_$name
	[ -x "$bin" ] || continue
	mkdir -p "$B/fuzz/corpus-$name"
	log=$B/fuzz/$name.log
	( cd "$B/fuzz" && "$bin" -max_total_time="$SECS" -max_len=65536 \
	    -print_final_stats=1 "corpus-$name" "$F/corpus/$name" ) >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
	if [ $rc -ne 0 ]; then
		status=1
		echo "fuzz $name: CRASH after $execs executions (see $log)"
		grep -E '^==[0-9]+==|SUMMARY|artifact' "$log" | head -n 5
	else
		echo "fuzz $name: $execs executions in ${SECS}s, $cov, no crash"
	fi
done
exit $status
