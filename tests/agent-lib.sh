# agent-lib.sh: helpers for the ferry-agent integration tests, sourced after
# lib.sh.  They start the real binary on a free loopback port with a spool
# under $TMP and talk to it with curl.
#
#   agent_conf FILE [LINE...]   writes a config; LINEs are INI lines merged
#                               into the defaults ("[spool]" switches the
#                               section, "key = value" overrides or adds a
#                               key; lines before any header go to [agent]).
#                               Exports CONF, PORT (kept if already set, so
#                               a restart listens where clients expect it),
#                               URL and SPOOL ($TMP/spool unless set).
#   agent_start [FILE]          starts build/ferry-agent -c FILE (default
#                               $CONF) in the background, exports APID,
#                               waits (10 s at most) until GET /ping is 200.
#                               Logs go to $TMP/agent.log.  Fails if not up.
#   agent_stop                  SIGTERM, then waits (20 s at most, then
#                               SIGKILL); sets AGENT_RC to the exit status.
#   agent_kill                  SIGKILL, reaped.
#   post STREAM CTYPE BODY [curl args...]
#                               POSTs BODY (curl --data-binary, so @FILE
#                               works; CTYPE "" sends no Content-Type) to
#                               /v1/events/STREAM and prints "STATUS BODY".
#                               Headers of the answer are in $TMP/hdr.
#   get PATH [curl args...]     GET, prints "STATUS BODY", headers in $TMP/hdr
#   hdr NAME                    the value of header NAME in $TMP/hdr
#   spool_ls                    ferry-spool -d $SPOOL ls --json > $TMP/ls.json
#   spool_py EXPR               evaluates the python EXPR with evs = the
#                               events of $TMP/ls.json (a list of dicts:
#                               seq, stream, content_type, key, remote_addr,
#                               body, ...), prints the result.
FS=$B/ferry-spool
AGENT=$B/ferry-agent
SPOOL=${SPOOL:-$TMP/spool}
APID=""
AGENT_RC=""

agent_conf() {
	CONF=$1; shift
	PORT=${PORT:-$(free_port)}
	URL=http://127.0.0.1:$PORT
	export CONF PORT URL SPOOL
	mkdir -p "$SPOOL"
	$PY - "$CONF" "$PORT" "$SPOOL" "$@" <<'EOF'
import sys
path, port, spool, extra = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
sections = {
    "agent": [("listen", "127.0.0.1:" + port), ("shutdown_delay", "0"),
              ("shutdown_timeout", "5s"), ("threads", "4"),
              ("log_level", "info")],
    "spool": [("dir", spool), ("max_size", "64MiB")],
    "dedup": [("window", "1h")],
}
order = ["agent", "spool", "dedup"]
cur = "agent"
for line in extra:
    line = line.strip()
    if not line:
        continue
    if line.startswith("["):
        cur = line.strip("[]").strip()
        if cur not in sections:
            sections[cur] = []
            order.append(cur)
        continue
    k, _, v = line.partition("=")
    k, v = k.strip(), v.strip()
    kv = sections[cur]
    for i, (kk, _) in enumerate(kv):
        if kk == k:
            kv[i] = (k, v)
            break
    else:
        kv.append((k, v))
with open(path, "w") as f:
    for s in order:
        f.write("[%s]\n" % s)
        for k, v in sections[s]:
            f.write("%s = %s\n" % (k, v))
        f.write("\n")
EOF
}

# Is PID running (and not a zombie waiting to be reaped)?
_alive() {
	[ -r "/proc/$1/stat" ] || return 1
	! sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | grep -q '^Z'
}

agent_start() {
	_conf=${1:-$CONF}
	"$AGENT" -c "$_conf" >>"$TMP/agent.log" 2>&1 &
	APID=$!
	export APID
	track "$APID"
	_i=0
	while [ $_i -lt 100 ]; do
		if ! _alive "$APID"; then
			wait "$APID" 2>/dev/null
			diag "ferry-agent exited during start-up (status $?):"
			tail -n 5 "$TMP/agent.log" | sed 's/^/#   /'
			return 1
		fi
		_c=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 \
		    "$URL/ping" 2>/dev/null)
		[ "$_c" = 200 ] && return 0
		sleep 0.1
		_i=$((_i + 1))
	done
	diag "ferry-agent did not answer /ping with 200 within 10 s"
	return 1
}

# Waits up to $1 tenths of a second for APID to end; 0 when it did.
_agent_wait() {
	_i=0
	while _alive "$APID"; do
		[ $_i -ge "$1" ] && return 1
		sleep 0.1
		_i=$((_i + 1))
	done
	return 0
}

agent_stop() {
	[ -n "$APID" ] || return 0
	kill -TERM "$APID" 2>/dev/null
	if ! _agent_wait 200; then
		diag "ferry-agent ignored SIGTERM for 20 s: killing it"
		kill -9 "$APID" 2>/dev/null
	fi
	wait "$APID" 2>/dev/null
	AGENT_RC=$?
	APID=""
	return 0
}

agent_kill() {
	[ -n "$APID" ] || return 0
	kill -9 "$APID" 2>/dev/null
	wait "$APID" 2>/dev/null
	AGENT_RC=$?
	APID=""
}

post() {
	_stream=$1 _ctype="Content-Type: $2" _body=$3
	[ -n "$2" ] || _ctype="Content-Type:"
	shift 3
	_code=$(curl -s -o "$TMP/resp" -D "$TMP/hdr" -w '%{http_code}' \
	    --max-time 10 -H "$_ctype" --data-binary "$_body" \
	    "$@" "$URL/v1/events/$_stream")
	echo "$_code $(cat "$TMP/resp" 2>/dev/null)"
}

get() {
	_path=$1; shift
	_code=$(curl -s -o "$TMP/resp" -D "$TMP/hdr" -w '%{http_code}' \
	    --max-time 10 "$@" "$URL$_path")
	echo "$_code $(cat "$TMP/resp" 2>/dev/null)"
}

hdr() {
	tr -d '\r' <"$TMP/hdr" | sed -n "s/^$1: *//Ip" | tail -n 1
}

spool_ls() {
	"$FS" -d "$SPOOL" ls --json >"$TMP/ls.json" 2>"$TMP/ls.err"
}

spool_py() {
	$PY -c 'import json,sys
evs=[json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(eval(sys.argv[2]))' "$TMP/ls.json" "$1"
}
