#!/bin/sh
# 037-agent-schema.sh: a stream with "schema = FILE.avsc" has its JSON events
# checked against the schema at intake: a mismatch is a 400 naming the
# field (and the NDJSON line), and nothing of that request is stored.
T=${FERRY_TESTS_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$T/lib.sh"
. "$T/agent-lib.sh"

cat >"$TMP/user.avsc" <<'EOF2'
{"type": "record", "name": "User", "namespace": "test",
 "fields": [
   {"name": "name", "type": "string"},
   {"name": "age", "type": "int"},
   {"name": "email", "type": ["null", "string"], "default": null}
 ]}
EOF2
agent_conf "$TMP/a.conf" "[stream.users]" "schema = $TMP/user.avsc"
ok "agent starts with a schema" agent_start || { done_testing; exit 1; }

r=$(post users application/json '{"name":"ann","age":31}')
is "a matching event: 200" "${r%% *}" 200
r=$(post users application/json '{"name":"bob","age":"old"}')
is "a mismatch: 400" "${r%% *}" 400
like "the error names the field" "$r" 'age'
r=$(post users application/json '{"age":3}')
is "a missing field without default: 400" "${r%% *}" 400
like "the error names the missing field" "$r" 'name'
printf '{"name":"c","age":1}\n{"name":"d","age":true}\n{"name":"e","age":2}\n' >"$TMP/b.ndjson"
r=$(post users application/x-ndjson "@$TMP/b.ndjson")
is "an NDJSON batch with a bad line: 400" "${r%% *}" 400
like "the error names the line and the field" "$r" 'line 2: .*age'
r=$(post other application/json '{"anything":["goes"]}')
is "a stream without a schema takes any JSON" "${r%% *}" 200
spool_ls
is "only the valid events were stored" \
    "$(spool_py '",".join(sorted(e["stream"] + ":" + e["body"] for e in evs))')" \
    'other:{"anything":["goes"]},users:{"name":"ann","age":31}'

printf '{"type": "record", "name": "X", "fields": [{"name": "a", "type": "nope"}]}' >"$TMP/bad.avsc"
agent_conf "$TMP/bad.conf" "[stream.bad]" "schema = $TMP/bad.avsc"
"$AGENT" -c "$TMP/bad.conf" >"$TMP/out" 2>&1
is "an invalid .avsc stops the agent with exit 78" "$?" 78
like "and names the file" "$(cat "$TMP/out")" 'bad\.avsc'
done_testing
