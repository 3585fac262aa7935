#!/bin/sh
# 090-fuzz-smoke.sh: a short run of every libFuzzer target in the test
# suite.  tests/fuzz/run.sh builds each tests/fuzz/fuzz_NAME.c with clang
# (-fsanitize=fuzzer,address,undefined) and runs it FERRY_FUZZ_SECS (8)
# seconds from its seed corpus, tests/fuzz/corpus/NAME, which holds the
# inputs of crashes found before.  One test per target proves that:
#  - it builds (a harness left behind by a change of API fails here, not
#    in the next campaign);
#  - no seed crashes it, nor anything mutation finds in those seconds.
# Every fuzz_NAME.c must be a target of run.sh.  The run is kept in
# BUILD/fuzz-smoke (crash inputs, logs) until the next one; `make fuzz
# FUZZ_SECS=N` is the long campaign.
T=${FERRY_TESTS_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$T/lib.sh"

SECS=${FERRY_FUZZ_SECS:-8}
D=$B/fuzz-smoke
rm -rf "$D"
sh "$T/fuzz/run.sh" "$D" "$SECS" >"$TMP/fuzz.out" 2>&1
diag "tests/fuzz/run.sh exited $?"

for src in "$T"/fuzz/fuzz_*.c; do
	name=${src##*/fuzz_}; name=${name%.c}
	line=$(grep "^fuzz $name: " "$TMP/fuzz.out")
	like "fuzz $name: builds, no crash in ${SECS}s" "$line" \
	    '^fuzz [a-z]+: [0-9]+ executions in .*, no crash$'
done
sed 's/^/# /' "$TMP/fuzz.out"
done_testing
