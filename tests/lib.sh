# lib.sh: helpers for integration tests, sourced by tests/integration/*.sh.
# Each test prints TAP; tests/run.sh counts it.  Every check can fail: it
# compares what a real program did against what was expected.
#
#   ok "name" command...        passes when the command exits 0
#   fails "name" command...     passes when the command exits non-zero
#   is "name" GOT WANT          passes when the strings are equal
#   like "name" GOT REGEX       passes when GOT matches the extended REGEX
#   done_testing                prints the plan; call once at the end
set -u
B=${FERRY_BUILD:?run through tests/run.sh or set FERRY_BUILD}
T=${FERRY_TESTS_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
PY=/usr/bin/python3
TMP=$(mktemp -d "${TMPDIR:-/tmp}/ferry-test.XXXXXX")
_n=0
_pids=""

_cleanup() {
	for p in $_pids; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$TMP"
}
trap _cleanup EXIT
trap 'exit 1' INT TERM

_result() {	# rc name
	_n=$((_n + 1))
	if [ "$1" -eq 0 ]; then echo "ok $_n - $2"; else echo "not ok $_n - $2"; fi
}
ok() { _name=$1; shift; "$@" >"$TMP/.out" 2>&1; _rc=$?
	_result $_rc "$_name"
	[ $_rc -eq 0 ] || sed 's/^/# /' "$TMP/.out" | head -n 20; return $_rc; }
fails() { _name=$1; shift; "$@" >"$TMP/.out" 2>&1; _rc=$?
	if [ $_rc -ne 0 ]; then _result 0 "$_name"; return 0; fi
	_result 1 "$_name"; echo "# expected failure, got exit 0"
	sed 's/^/# /' "$TMP/.out" | head -n 20; return 1; }
is() { if [ "$2" = "$3" ]; then _result 0 "$1"; return 0; fi
	_result 1 "$1"; printf '#   got: %s\n# want: %s\n' "$2" "$3"; return 1; }
like() { if printf '%s' "$2" | grep -Eq -- "$3"; then _result 0 "$1"; return 0; fi
	_result 1 "$1"; printf '#   got: %s\n# want match: %s\n' "$2" "$3"; return 1; }
diag() { echo "# $*"; }
done_testing() { echo "1..$_n"; }

# A TCP port on 127.0.0.1 that nobody listens on now.
free_port() {
	$PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Remember a background pid so that it is killed when the test ends.
track() { _pids="$_pids $1"; }

# Milliseconds since the epoch.
now_ms() { $PY -c 'import time; print(int(time.time()*1000))'; }

# log_lines FILE REGEX N: waits (10 s at most) until FILE has N lines
# matching REGEX (grep basic syntax); fails if it never does.
log_lines() {
	_w=0
	while [ "$(grep -c -- "$2" "$1" 2>/dev/null)" -lt "$3" ]; do
		[ $_w -ge 100 ] && return 1
		sleep 0.1
		_w=$((_w + 1))
	done
}
