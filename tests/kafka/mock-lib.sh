# mock-lib.sh: the test Kafka for integration tests, sourced after lib.sh.
# Runs build/tests/kafka-mock (librdkafka's mock cluster on loopback) as a
# coprocess fed through a FIFO, and reads topics back with consume.py
# (python3-kafka: no code shared with ferry).
#
#   mock_start [ARGS...]   starts kafka-mock ARGS (-b BROKERS, -p PARTS,
#                          -t TOPIC...), exports BOOTSTRAP; fails if it does
#                          not print its address within 10 s
#   mock CMD...            sends one command ("down 1", "topic t 3", ...),
#                          prints the answer, succeeds if it is "ok"
#   mock_stop              quit, reaped
#   consume TOPIC [N] [SECS]
#                          consume.py: one JSON object per message, in
#                          partition then offset order (see consume.py)
#   coproc_start NAME CMD...  / coproc_cmd NAME LINE / coproc_stop NAME
#                          the same plumbing for any program that answers
#                          each input line with output ending in "end"
MOCK=${MOCK:-$B/tests/kafka-mock}
CONSUME="$PY $T/kafka/consume.py"

# _wait_lines FILE N SECS: waits until FILE has more than N lines.
_wait_lines() {
	_i=0
	while [ "$(wc -l <"$1")" -le "$2" ]; do
		_i=$((_i + 1))
		[ $_i -gt $(($3 * 20)) ] && return 1
		sleep 0.05
	done
	return 0
}

# coproc_start NAME CMD...: CMD reads $TMP/NAME.in (a FIFO held open on a
# file descriptor) and writes $TMP/NAME.out.
coproc_start() {
	_name=$1; shift
	rm -f "$TMP/$_name.in"
	mkfifo "$TMP/$_name.in"
	: >"$TMP/$_name.out"
	"$@" <"$TMP/$_name.in" >"$TMP/$_name.out" 2>"$TMP/$_name.err" &
	eval "${_name}_pid=$!"
	track $!
	# Keep a writer open so the program sees no end of input between
	# commands: sleep holds the FIFO until coproc_stop.
	sleep 100000 >"$TMP/$_name.in" &
	eval "${_name}_hold=$!"
	track $!
}

# coproc_cmd NAME LINE [SECS]: sends LINE, prints the answer up to "end"
# (the "end" itself left out).  Fails on a timeout (default 60 s).
coproc_cmd() {
	_f=$TMP/$1.out
	_n0=$(wc -l <"$_f")
	printf '%s\n' "$2" >"$TMP/$1.in"
	_i=0
	while ! tail -n +$((_n0 + 1)) "$_f" | grep -qx end; do
		_i=$((_i + 1))
		if [ $_i -gt $((${3:-60} * 20)) ]; then
			tail -n +$((_n0 + 1)) "$_f"
			echo "timeout waiting for '$2'"
			return 1
		fi
		sleep 0.05
	done
	tail -n +$((_n0 + 1)) "$_f" | sed '/^end$/,$d'
}

coproc_stop() {
	printf 'quit\n' >"$TMP/$1.in" 2>/dev/null
	eval "kill \$${1}_hold 2>/dev/null; wait \$${1}_pid 2>/dev/null"
}

mock_start() {
	coproc_start kmock "$MOCK" "$@"
	if ! _wait_lines "$TMP/kmock.out" 0 10; then
		cat "$TMP/kmock.err"
		return 1
	fi
	BOOTSTRAP=$(head -n 1 "$TMP/kmock.out")
	export BOOTSTRAP
}

mock() {
	_n0=$(wc -l <"$TMP/kmock.out")
	printf '%s\n' "$*" >"$TMP/kmock.in"
	_wait_lines "$TMP/kmock.out" "$_n0" 10 || { echo "no answer"; return 1; }
	_a=$(tail -n +$((_n0 + 1)) "$TMP/kmock.out" | head -n 1)
	echo "$_a"
	[ "$_a" = ok ]
}

mock_stop() { coproc_stop kmock; }

consume() {
	if [ -n "${2:-}" ]; then
		$CONSUME -b "$BOOTSTRAP" -t "$1" -n "$2" -w "${3:-20}"
	else
		$CONSUME -b "$BOOTSTRAP" -t "$1" -w "${3:-20}"
	fi
}
