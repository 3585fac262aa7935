#!/bin/sh
# 060-packaging.sh: the RPM, the .deb, the source tarball and the example
# proxy and Kubernetes configurations are real and work.
#  - `make rpm deb` builds them; rpm -qp lists the programs, units,
#    sysusers/tmpfiles entries, config (noreplace), envelope and man pages,
#    and requires the RPM distributions' library packages;
#  - the programs extracted with rpm2cpio | cpio run and accept the shipped
#    /etc/ferry/ferry.conf; systemd-analyze verify finds nothing to say
#    about the units (pointed at the extracted programs and man pages);
#  - every maintainer script, RPM and Debian, run with stand-ins for
#    systemctl, systemd-sysusers and friends that record their arguments:
#    the user is created, no unit is ever enabled or started, an upgrade
#    try-restarts (running units only), an erase stops and disables;
#  - the .deb's Depends name the Debian package of every library the
#    programs link against;
#  - nginx -t and haproxy -c accept the examples (nginx with a throwaway
#    self-signed certificate); k8s.yaml's grace period exceeds the
#    ConfigMap's shutdown_delay + shutdown_timeout and its ferry.conf is
#    valid;
#  - `make dist` gives a tarball that builds with a bare `make`.
T=${FERRY_TESTS_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$T/lib.sh"

ROOT=$(cd "$T/.." && pwd)
cd "$ROOT" || exit 1
# A clean make: not a part of the `make check` that may have started us.
unset MAKEFLAGS MFLAGS MAKELEVEL
if grep -q '^[[:space:]]*-\{0,1\}include[[:space:]].*packaging/packaging\.mk' \
    Makefile; then
	MK="make --no-print-directory"
else
	MK="make --no-print-directory -f Makefile -f packaging/packaging.mk"
fi
V=$(sed -n 's/^VERSION[[:space:]]*=[[:space:]]*//p' Makefile)
PKGS="$ROOT/build"

# --- build ---------------------------------------------------------------
ok "make rpm deb" $MK rpm deb || { done_testing; exit 1; }
RPM=$(ls "$PKGS"/rpm/ferry-"$V"-*.rpm 2>/dev/null | grep -v '\.src\.rpm$' |
    head -n 1)
SRPM=$(ls "$PKGS"/rpm/ferry-"$V"-*.src.rpm 2>/dev/null | head -n 1)
DEB=$(ls "$PKGS"/deb/ferry_"$V"-*.deb 2>/dev/null | head -n 1)
ok "binary RPM built" test -f "$RPM"
ok "source RPM built" test -f "$SRPM"
ok "the .deb built" test -f "$DEB"
[ -f "$RPM" ] && [ -f "$DEB" ] || { done_testing; exit 1; }

# --- RPM: metadata --------------------------------------------------------
is "RPM version is the Makefile's" \
    "$(rpm -qp --qf '%{NAME} %{VERSION}' "$RPM" 2>/dev/null)" "ferry $V"
rpm -qpl "$RPM" >"$TMP/rpm.list" 2>/dev/null
for f in /usr/bin/ferry-agent /usr/bin/ferry-forwarder /usr/bin/ferry-spool \
    /usr/lib/systemd/system/ferry-agent.service \
    /usr/lib/systemd/system/ferry-forwarder.service \
    /usr/lib/sysusers.d/ferry.conf /usr/lib/tmpfiles.d/ferry.conf \
    /etc/ferry/ferry.conf /usr/share/ferry/envelope.avsc /var/lib/ferry; do
	ok "rpm -qpl: $f" grep -qx "$f" "$TMP/rpm.list"
done
for m in ferry-agent ferry-forwarder ferry-spool; do
	ok "rpm -qpl: man page $m(8)" \
	    grep -Eqx "/usr/share/man/man8/$m\.8(\.gz|\.bz2|\.xz|\.zst)?" \
	    "$TMP/rpm.list"
done
ok "rpm -qpl: the example configurations" \
    sh -c 'grep -q "/examples/nginx.conf$" "$1" &&
	grep -q "/examples/haproxy.cfg$" "$1" &&
	grep -q "/examples/k8s.yaml$" "$1"' sh "$TMP/rpm.list"
is "rpm -qp --configfiles" "$(rpm -qp --configfiles "$RPM" 2>/dev/null)" \
    /etc/ferry/ferry.conf
# %config(noreplace): flags c and n.  Mode 0640 root:ferry (may hold
# credentials); /var/lib/ferry belongs to ferry.
is "ferry.conf is %config(noreplace), 0640 root:ferry" \
    "$(rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILENAMES}\n]' \
    "$RPM" 2>/dev/null | grep ' /etc/ferry/ferry.conf$')" \
    "cn -rw-r----- root:ferry /etc/ferry/ferry.conf"
like "/var/lib/ferry is ferry's, 0750" \
    "$(rpm -qp --qf '[%{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILENAMES}\n]' \
    "$RPM" 2>/dev/null | grep ' /var/lib/ferry$')" '^drwxr-x--- ferry:ferry '
rpm -qp --requires "$RPM" >"$TMP/requires" 2>/dev/null
for r in lmdb-libs libmicrohttpd avro-c librdkafka libsodium inih jansson \
    zlib; do
	ok "rpm -qp --requires: $r" grep -qx "$r" "$TMP/requires"
done
like "source RPM holds the spec and the tarball" \
    "$(rpm -qpl "$SRPM" 2>/dev/null | tr '\n' ' ')" \
    "ferry-$V\.tar\.gz.*ferry\.spec|ferry\.spec.*ferry-$V\.tar\.gz"

# --- RPM: scriptlets, run against recording stand-ins ----------------------
rpm -qp --scripts "$RPM" >"$TMP/scripts" 2>/dev/null
like "rpm -qp --scripts: pre, post, preun, postun" \
    "$(grep -o '^[a-z]* scriptlet' "$TMP/scripts" | tr '\n' ,)" \
    '^preinstall scriptlet,postinstall scriptlet,preuninstall scriptlet,postuninstall scriptlet,$'
ok "no scriptlet enables, starts or presets a unit" \
    sh -c '! grep -Eq "systemctl([[:space:]]+-[^[:space:]]+)*[[:space:]]+(enable|start|restart|reenable|preset|preset-all)([[:space:]]|$)" "$1"' \
    sh "$TMP/scripts"

STUBS=$TMP/stubs RUNSD=$TMP/run-systemd
mkdir -p "$STUBS" "$RUNSD"
for c in systemctl systemd-sysusers systemd-tmpfiles useradd groupadd \
    adduser chown chmod install rmdir rm dpkg-statoverride deb-systemd-invoke \
    deb-systemd-helper; do
	cat >"$STUBS/$c" <<EOF
#!/bin/sh
echo "$c \$*" >>"$TMP/calls"
case $c in systemd-sysusers) [ -t 0 ] || sed 's/^/  stdin: /' >>"$TMP/calls" ;; esac
case $c in dpkg-statoverride) exit 1 ;; esac
exit 0
EOF
	chmod +x "$STUBS/$c"
done
# getent: no ferry user yet.
printf '#!/bin/sh\nexit 2\n' >"$STUBS/getent"; chmod +x "$STUBS/getent"
# run_script FILE ARGS...: runs a maintainer script as if systemd were
# PID 1 (/run/systemd/system points at a directory of ours), with the
# stand-ins first in PATH; prints the calls it made.
run_script() {
	_f=$1; shift
	: >"$TMP/calls"
	sed "s|/run/systemd/system|$RUNSD|g" "$_f" >"$_f.run"
	PATH="$STUBS:$PATH" sh "$_f.run" "$@" </dev/null >/dev/null 2>&1
	_rc=$?
	cat "$TMP/calls"
	return $_rc
}
for s in PREIN POSTIN PREUN POSTUN; do
	rpm -qp --qf "%{$s}" "$RPM" >"$TMP/rpm.$s" 2>/dev/null
done
calls=$(run_script "$TMP/rpm.PREIN" 1)
like "%pre creates the ferry user through sysusers" \
    "$(echo "$calls" | tr '\n' ';')" \
    '^systemd-sysusers --replace=/usr/lib/sysusers.d/ferry.conf -;  stdin: u ferry - "[^"]*" /var/lib/ferry;$'
calls=$(run_script "$TMP/rpm.POSTIN" 1)
like "%post on install: tmpfiles and daemon-reload, nothing else" \
    "$(echo "$calls" | tr '\n' ';')" \
    '^systemd-tmpfiles --create /usr/lib/tmpfiles.d/ferry.conf;systemctl daemon-reload;$'
calls=$(run_script "$TMP/rpm.POSTUN" 1)
like "%postun on upgrade: try-restart (running units only)" \
    "$(echo "$calls" | tr '\n' ';')" \
    'systemctl try-restart ferry-agent.service ferry-forwarder.service;$'
calls=$(run_script "$TMP/rpm.POSTUN" 0)
is "%postun on erase: daemon-reload only" "$calls" "systemctl daemon-reload"
calls=$(run_script "$TMP/rpm.PREUN" 1)
is "%preun on upgrade: nothing" "$calls" ""
calls=$(run_script "$TMP/rpm.PREUN" 0)
is "%preun on erase: stop and disable" "$calls" \
    "systemctl --no-reload disable --now ferry-agent.service ferry-forwarder.service"

# --- RPM: the extracted programs and units --------------------------------
X=$TMP/rpmroot
mkdir -p "$X"
ok "rpm2cpio | cpio -idm" sh -c 'cd "$1" && rpm2cpio "$2" | cpio -idm --quiet' \
    sh "$X" "$RPM"
is "extracted ferry-agent --version" \
    "$("$X/usr/bin/ferry-agent" --version 2>&1)" "ferry-agent $V"
for p in ferry-agent ferry-forwarder ferry-spool; do
	is "extracted $p --check-config on the packaged ferry.conf" \
	    "$("$X/usr/bin/$p" --check-config -c "$X/etc/ferry/ferry.conf" 2>&1)" \
	    "configuration OK"
done
like "packaged ferry.conf: spool in /var/lib/ferry/spool" \
    "$(grep '^dir' "$X/etc/ferry/ferry.conf")" '^dir = /var/lib/ferry/spool$'
U=$X/usr/lib/systemd/system
for u in ferry-agent ferry-forwarder; do
	like "$u.service: Type=notify, User=ferry" \
	    "$(grep -E '^(Type|User)=' "$U/$u.service" | tr '\n' ' ')" \
	    '^Type=notify User=ferry $'
	like "$u.service: no restart after exit 64 or 78" \
	    "$(grep '^RestartPreventExitStatus=' "$U/$u.service")" \
	    '^RestartPreventExitStatus=64 78$'
	like "$u.service: Restart=on-failure, StateDirectory=ferry" \
	    "$(grep -E '^(Restart|StateDirectory)=' "$U/$u.service" | tr '\n' ' ')" \
	    '^Restart=on-failure StateDirectory=ferry $'
	for h in NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes \
	    PrivateTmp=yes ReadWritePaths=/var/lib/ferry; do
		ok "$u.service: $h" grep -qx "$h" "$U/$u.service"
	done
	ok "$u.service: no [Install] alias that would start it by itself" \
	    sh -c '! grep -Eq "^(Alias|Also)=" "$1"' sh "$U/$u.service"
done
# TimeoutStopSec must leave room for the agent's shutdown_delay +
# shutdown_timeout (the defaults in the packaged ferry.conf).
secs() { sed -n "s/^$1 *= *\([0-9]*\)s$/\1/p" "$X/etc/ferry/ferry.conf"; }
need=$(( $(secs shutdown_delay) + $(secs shutdown_timeout) ))
stop=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s*$/\1/p' "$U/ferry-agent.service")
ok "TimeoutStopSec=${stop}s > shutdown_delay + shutdown_timeout = ${need}s" \
    test "${stop:-0}" -gt "$need" -a "$need" -gt 0

if command -v systemd-analyze >/dev/null 2>&1; then
	mkdir -p "$TMP/units"
	for u in ferry-agent ferry-forwarder; do
		sed -e "s|/usr/bin/|$X/usr/bin/|g" -e "s|/etc/ferry/|$X/etc/ferry/|g" \
		    "$U/$u.service" >"$TMP/units/$u.service"
	done
	out=$(cd "$TMP/units" && MANPATH=$X/usr/share/man systemd-analyze \
	    verify ./ferry-agent.service ./ferry-forwarder.service 2>&1)
	rc=$?
	is "systemd-analyze verify: both units, silent" "$rc:$out" "0:"
	# Exposure 0 (locked down) to 10 (none): at most 3, "OK".
	for u in ferry-agent ferry-forwarder; do
		ok "systemd-analyze security: $u exposure <= 3.0" sh -c \
		    'cd "$1" && systemd-analyze security --offline=yes \
		    --threshold=30 --no-pager "./$2.service"' sh "$TMP/units" "$u"
	done
else
	diag "systemd-analyze not installed (Debian package systemd): units not verified"
fi

# --- .deb -----------------------------------------------------------------
dpkg-deb -I "$DEB" >"$TMP/deb.info" 2>&1
dpkg-deb -c "$DEB" >"$TMP/deb.list" 2>&1
dpkg-deb -f "$DEB" Depends >"$TMP/deb.depends" 2>&1
is "dpkg-deb -f: Package Version" \
    "$(dpkg-deb -f "$DEB" Package Version | tr '\n' ' ')" \
    "Package: ferry Version: $V-1 "
for d in liblmdb0 libmicrohttpd12 libavro23 librdkafka1 libsodium23 libinih1 \
    libjansson4 zlib1g; do
	ok "Depends: $d" grep -Eq "(^|, )$d(,| |\$)" "$TMP/deb.depends"
done
ok "dpkg-deb -I: conffiles, postinst, prerm, postrm" sh -c '
	for f in conffiles postinst prerm postrm; do
		grep -q " $f" "$1" || exit 1
	done' sh "$TMP/deb.info"
for f in ./usr/bin/ferry-agent ./usr/bin/ferry-forwarder ./usr/bin/ferry-spool \
    ./usr/lib/systemd/system/ferry-agent.service \
    ./usr/lib/systemd/system/ferry-forwarder.service \
    ./usr/lib/sysusers.d/ferry.conf ./usr/lib/tmpfiles.d/ferry.conf \
    ./etc/ferry/ferry.conf ./usr/share/ferry/envelope.avsc \
    ./usr/share/man/man8/ferry-agent.8.gz ./usr/share/doc/ferry/copyright; do
	ok "dpkg-deb -c: $f" grep -q " $f\$" "$TMP/deb.list"
done
DX=$TMP/debroot
mkdir -p "$DX/DEBIAN"
dpkg-deb -x "$DEB" "$DX" && dpkg-deb -e "$DEB" "$DX/DEBIAN"
is ".deb conffiles" "$(cat "$DX/DEBIAN/conffiles" 2>&1)" /etc/ferry/ferry.conf
is "extracted (.deb) ferry-agent --version" \
    "$("$DX/usr/bin/ferry-agent" --version 2>&1)" "ferry-agent $V"
# Every library a program links against comes from a package in Depends.
missing=""
for lib in $(for p in "$DX"/usr/bin/ferry-*; do
	objdump -p "$p" | sed -n 's/^ *NEEDED *//p'; done | sort -u); do
	path=$(ldconfig -p | sed -n "s|^[[:space:]]*$lib (.*x86-64.*) => ||p" |
	    head -n 1)
	[ -n "$path" ] || path=$(ldconfig -p | sed -n "s|^[[:space:]]*$lib .* => ||p" |
	    head -n 1)
	pkg=$(dpkg -S "$(readlink -f "$path")" 2>/dev/null | head -n 1 |
	    cut -d: -f1)
	[ -z "$pkg" ] && pkg=$(dpkg -S "$path" 2>/dev/null | head -n 1 | cut -d: -f1)
	grep -Eq "(^|, )$pkg(,| |\$)" "$TMP/deb.depends" ||
	    missing="$missing $lib($pkg)"
done
is "Depends covers every NEEDED library" "${missing:-none}" none

calls=$(run_script "$DX/DEBIAN/postinst" configure "")
like "postinst (install): user through sysusers, tmpfiles" \
    "$(echo "$calls" | tr '\n' ';')" \
    '^systemd-sysusers /usr/lib/sysusers.d/ferry.conf;systemd-tmpfiles --create /usr/lib/tmpfiles.d/ferry.conf;'
ok "postinst (install): restarts nothing" \
    sh -c '! echo "$1" | grep -q restart' sh "$calls"
calls=$(run_script "$DX/DEBIAN/postinst" configure "0.0.9-1")
like "postinst (upgrade): try-restart (running units only)" \
    "$(echo "$calls" | tr '\n' ';')" \
    'deb-systemd-invoke try-restart ferry-agent.service ferry-forwarder.service;$'
calls=$(run_script "$DX/DEBIAN/prerm" upgrade "$V-1")
is "prerm (upgrade): nothing" "$calls" ""
calls=$(run_script "$DX/DEBIAN/prerm" remove)
is "prerm (remove): stop" "$calls" \
    "deb-systemd-invoke stop ferry-agent.service ferry-forwarder.service"
calls=$(run_script "$DX/DEBIAN/postrm" remove)
is "postrm (remove): daemon-reload" "$calls" "systemctl --system daemon-reload"
calls=$(run_script "$DX/DEBIAN/postrm" purge)
like "postrm (purge): forgets the units, keeps a spool" \
    "$(echo "$calls" | tr '\n' ';')" \
    '^systemctl --system daemon-reload;deb-systemd-helper purge ferry-agent.service ferry-forwarder.service;rm -f /etc/systemd/system/multi-user.target.wants/ferry-agent.service;rm -f /etc/systemd/system/multi-user.target.wants/ferry-forwarder.service;rmdir /var/lib/ferry/spool /var/lib/ferry;$'
ok "no Debian maintainer script enables, starts or presets a unit" \
    sh -c '! cat "$1"/postinst "$1"/prerm "$1"/postrm | grep -Eq "(systemctl|deb-systemd-invoke|deb-systemd-helper)([[:space:]]+-[^[:space:]]+)*[[:space:]]+(enable|start|restart|reenable|preset|unmask)([[:space:]]|\$)"' \
    sh "$DX/DEBIAN"

if command -v lintian >/dev/null 2>&1; then
	lintian --allow-root "$DEB" >"$TMP/lintian" 2>&1
	is "lintian: no errors" "$(grep '^E:' "$TMP/lintian" | head -n 5)" ""
	grep '^[WI]:' "$TMP/lintian" | sed 's/^/# lintian: /'
else
	diag "lintian not installed (optional): the .deb was not linted"
fi

# --- example configurations ------------------------------------------------
E=$ROOT/packaging/examples
if openssl req -x509 -newkey rsa:2048 -nodes -days 1 \
    -subj /CN=events.example.com -keyout "$TMP/tls.key" -out "$TMP/tls.crt" \
    >/dev/null 2>&1; then
	sed -e "s|/etc/ssl/ferry/events.example.com.crt|$TMP/tls.crt|" \
	    -e "s|/etc/ssl/ferry/events.example.com.key|$TMP/tls.key|" \
	    "$E/nginx.conf" >"$TMP/nginx.conf"
	ok "nginx -t -c nginx.conf (throwaway certificate)" \
	    nginx -t -q -e stderr -c "$TMP/nginx.conf" -g "pid $TMP/nginx.pid;"
else
	ok "openssl makes a self-signed certificate" false
fi
ok "nginx.conf: hash \$request_uri consistent; X-Forwarded-For; max_fails" \
    sh -c 'grep -q "hash \$request_uri consistent;" "$1" &&
	grep -q "X-Forwarded-For \$proxy_add_x_forwarded_for" "$1" &&
	grep -q "max_fails=" "$1" && grep -q "listen 443 ssl" "$1"' sh "$E/nginx.conf"
ok "haproxy -c -f haproxy.cfg" haproxy -c -q -f "$E/haproxy.cfg"
ok "haproxy.cfg: balance uri, consistent, httpchk GET /ping" \
    sh -c 'grep -qx "[[:space:]]*balance uri" "$1" &&
	grep -qx "[[:space:]]*hash-type consistent" "$1" &&
	grep -qx "[[:space:]]*option httpchk GET /ping" "$1"' sh "$E/haproxy.cfg"

$PY - "$E/k8s.yaml" "$TMP/k8s.conf" >"$TMP/k8s.out" 2>&1 <<'EOF'
import re, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
kinds = {d["kind"]: d for d in docs}
conf = kinds["ConfigMap"]["data"]["ferry.conf"]
open(sys.argv[2], "w").write(conf)
def secs(key):
    m = re.search(r"^%s\s*=\s*(\d+)s\s*$" % key, conf, re.M)
    return int(m.group(1))
ss = kinds["StatefulSet"]["spec"]
pod = ss["template"]["spec"]
c = {x["name"]: x for x in pod["containers"]}
agent, fwd = c["agent"], c["forwarder"]
grace = pod["terminationGracePeriodSeconds"]
need = secs("shutdown_delay") + secs("shutdown_timeout")
print("grace", grace, ">", need, grace > need)
print("liveness", agent["livenessProbe"]["httpGet"]["path"])
print("readiness", agent["readinessProbe"]["httpGet"]["path"])
print("startup", agent["startupProbe"]["httpGet"]["path"])
print("prestop", "lifecycle" in agent)
mounts = lambda x: {m["name"]: m["mountPath"] for m in x["volumeMounts"]}
print("spool", mounts(agent)["spool"], mounts(fwd)["spool"],
      [t["metadata"]["name"] for t in ss["volumeClaimTemplates"]])
print("cmd", agent["command"][0], fwd["command"][0])
EOF
k8s=$(cat "$TMP/k8s.out")
like "k8s.yaml: grace period > shutdown_delay + shutdown_timeout" "$k8s" \
    'grace [0-9]+ > [0-9]+ True'
like "k8s.yaml: probes /ping (liveness, startup), /ready (readiness)" \
    "$(echo "$k8s" | grep -E '^(liveness|readiness|startup)' | tr '\n' ' ')" \
    '^liveness /ping readiness /ready startup /ping $'
like "k8s.yaml: no preStop hook" "$k8s" 'prestop False'
like "k8s.yaml: agent and forwarder share the claimed spool volume" "$k8s" \
    "spool /var/lib/ferry /var/lib/ferry \\['spool'\\]"
like "k8s.yaml: agent and forwarder containers" "$k8s" \
    'cmd ferry-agent ferry-forwarder'
is "k8s.yaml: the ConfigMap's ferry.conf is valid" \
    "$("$B/ferry-agent" --check-config -c "$TMP/k8s.conf" 2>&1)" \
    "configuration OK"

# --- source tarball ------------------------------------------------------
ok "make dist" $MK dist
TGZ=$PKGS/ferry-$V.tar.gz
ok "tarball: ferry-$V/ with Makefile, spec, no build output" sh -c '
	tar -tzf "$1" >"$2" || exit 1
	grep -qx "ferry-$3/Makefile" "$2" &&
	grep -qx "ferry-$3/packaging/ferry.spec" "$2" &&
	! grep -Eq "^ferry-$3/build/|\\.o\$" "$2" &&
	! grep -qv "^ferry-$3/" "$2"' sh "$TGZ" "$TMP/tgz.list" "$V"
mkdir -p "$TMP/dist"
ok "the tarball builds with a bare make" sh -c '
	cd "$1" && tar -xzf "$2" && cd "ferry-$3" && make -j2 >make.log 2>&1 ||
	{ tail -n 20 make.log; exit 1; }' sh "$TMP/dist" "$TGZ" "$V"
is "its ferry-agent --version" \
    "$("$TMP/dist/ferry-$V/build/ferry-agent" --version 2>&1)" "ferry-agent $V"

done_testing
