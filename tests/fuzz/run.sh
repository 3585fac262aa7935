#!/bin/sh
# run.sh BUILD [SECONDS [NAME...]]: `make fuzz`.  Builds each libFuzzer
# target with clang (-fsanitize=fuzzer,address,undefined) and runs it for
# SECONDS (60) from its seed corpus in tests/fuzz/corpus/NAME, keeping what
# it finds in BUILD/fuzz/corpus-NAME.  NAMEs pick targets (default: all):
#
#   intake   agent/intake.c: request bodies (JSON, NDJSON, gzip, keys)
#   record   spool/record.c: event records as a damaged spool holds them
#   http     agent/httpreq.c, auth.c, intake.c: path, headers, tokens
#   avro     forwarder/avroenc.c: JSON events against .avsc schemas, and
#            the schemas themselves
#   conf     conf/conf.c: ferry.conf, spool key files
#   tokens   agent/auth.c: the tokens file and the Authorization check
#   agent    the agent whole (libmicrohttpd, handlers, writer, spool on
#            /dev/shm): raw bytes of a TCP connection on loopback
#
# Compilers run two at a time, targets one at a time.  Prints one line per
# target, "fuzz NAME: ..." with executions, coverage and whether it
# crashed (or failed to build); exit 1 on any crash or build failure.
# FUZZ_FLAGS adds libFuzzer flags (e.g. -jobs=2).
set -u
mkdir -p "$1/fuzz"; B=$(cd "$1" && pwd)/fuzz
SECS=${2:-60}
[ $# -ge 2 ] && shift 2 || shift $#
NAMES=${*:-intake record http avro conf tokens agent}
F=$(cd "$(dirname "$0")" && pwd)
R=$(cd "$F/../.." && pwd)
CF="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
    -std=c11 -D_GNU_SOURCE -DFERRY_VERSION=\"fuzz\" -Wall -Wextra -pthread
    -I$R/agent -I$R/spool -I$R/conf -I$R/forwarder"
PKG_CFLAGS=$(pkg-config --cflags lmdb libmicrohttpd avro-c rdkafka libsodium \
    inih jansson zlib)
SPOOL=$(ls "$R"/spool/*.c | grep -v '/ferry-spool\.c$')
AGENT=$(ls "$R"/agent/*.c | grep -v '/main\.c$')
status=0

sources() {	# NAME: the sources and pkg-config modules of its target
	case $1 in
	intake)	echo "$R/agent/intake.c" jansson zlib ;;
	record)	echo "$R/spool/record.c" libsodium lmdb ;;
	http)	echo "$R/agent/httpreq.c $R/agent/auth.c $R/agent/intake.c" \
		    "$R/spool/record.c" jansson zlib libsodium lmdb ;;
	avro)	echo "$R/forwarder/avroenc.c" $SPOOL avro-c jansson libsodium \
		    lmdb ;;
	conf)	echo "$R/conf/conf.c $R/conf/log.c" inih rdkafka avro-c ;;
	tokens)	echo "$R/agent/auth.c" libsodium ;;
	agent)	echo $AGENT "$R/forwarder/avroenc.c" $SPOOL "$R"/conf/*.c \
		    lmdb libmicrohttpd avro-c rdkafka libsodium inih jansson \
		    zlib ;;
	*)	return 1 ;;
	esac
}

obj() {	# SOURCE: its object file
	o=${1#"$R"/}
	echo "$B/obj/$(echo "${o%.c}" | tr / _).o"
}

link_target() {	# NAME: links the target from the objects built
	objs="" mods=""
	for w in $(sources "$1"); do
		case $w in /*) objs="$objs $(obj "$w")" ;; *) mods="$mods $w" ;; esac
	done
	# shellcheck disable=SC2086
	clang $CF -o "$B/fuzz_$1" "$(obj "$F/fuzz_$1.c")" $objs \
	    $(pkg-config --libs $mods) >"$B/$1.build.log" 2>&1
}

for name in $NAMES; do
	if ! sources "$name" >/dev/null; then
		echo "fuzz $name: no such target"; exit 64
	fi
done
if ! command -v clang >/dev/null; then
	echo "fuzz: clang not found (packaging/deps.sh test installs it)"
	exit 1
fi

# Each source once, two compilers at a time; then the links, two at a time.
rm -rf "$B/obj"; mkdir -p "$B/obj"
for name in $NAMES; do
	rm -f "$B/fuzz_$name"
	echo "$F/fuzz_$name.c"
	for w in $(sources "$name"); do
		case $w in /*) echo "$w" ;; esac
	done
done | sort -u | while read -r src; do
	printf '%s\n%s\n' "$src" "$(obj "$src")"
done | xargs -n 2 -P 2 sh -c 'clang $0 -c -o "$2" "$1" \
    >"$2.log" 2>&1 || { cat "$2.log"; rm -f "$2"; }' "$CF $PKG_CFLAGS" \
    >"$B/compile.log" 2>&1
n=0
for name in $NAMES; do
	{ link_target "$name" || cat "$B/compile.log" >>"$B/$name.build.log"; } &
	n=$((n + 1))
	[ $((n % 2)) -eq 0 ] && wait
done
wait

for name in $NAMES; do
	bin=$B/fuzz_$name
	if [ ! -x "$bin" ]; then
		status=1
		echo "fuzz $name: build failed (see $B/$name.build.log)"
		head -n 5 "$B/$name.build.log"
		continue
	fi
	mkdir -p "$B/corpus-$name"
	log=$B/$name.log
	# shellcheck disable=SC2086
	( cd "$B" && "$bin" -max_total_time="$SECS" -max_len=65536 \
	    -timeout=30 -print_final_stats=1 ${FUZZ_FLAGS:-} \
	    "corpus-$name" "$F/corpus/$name" ) >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
	if [ $rc -ne 0 ]; then
		status=1
		echo "fuzz $name: CRASH after ${execs:-?} executions (see $log)"
		grep -E '^==[0-9]+==|^fuzz_|SUMMARY|artifact' "$log" | head -n 5
	else
		echo "fuzz $name: $execs executions in ${SECS}s, $cov, no crash"
	fi
done
exit $status
