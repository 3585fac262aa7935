#!/bin/sh
# deps.sh: installs the Debian packages ferry needs, and only those missing.
#   deps.sh build   the libraries ferry links against (checked with pkg-config)
#   deps.sh test    build, plus the tools the tests and benchmarks talk to
# Says what it installs; installs nothing when everything is present.
set -eu

want=${1:-build}

# pkg-config module : Debian package
build_pkgs="lmdb:liblmdb-dev libmicrohttpd:libmicrohttpd-dev avro-c:libavro-dev
rdkafka:librdkafka-dev libsodium:libsodium-dev inih:libinih-dev
jansson:libjansson-dev zlib:zlib1g-dev"
# program or file that proves it : Debian package
test_pkgs="cmocka:libcmocka-dev
/usr/bin/curl:curl /usr/bin/kcat:kcat /usr/bin/mdb_stat:lmdb-utils
/usr/bin/avrocat:avro-bin /usr/lib/python3/dist-packages/kafka:python3-kafka
/usr/lib/python3/dist-packages/avro:python3-avro
/usr/lib/python3/dist-packages/lz4:python3-lz4
/usr/lib/python3/dist-packages/snappy:python3-snappy
/usr/bin/rpmbuild:rpm /usr/bin/rpm2cpio:rpm2cpio /usr/bin/cpio:cpio
/usr/sbin/haproxy:haproxy /usr/sbin/nginx:nginx-light /usr/bin/openssl:openssl
/usr/bin/systemd-analyze:systemd
/usr/lib/python3/dist-packages/yaml:python3-yaml
/usr/bin/clang:clang /usr/share/doc/libclang-rt-dev/copyright:libclang-rt-dev"
bench_pkgs="/usr/bin/wrk:wrk /usr/sbin/nginx:nginx-light"

missing=""
if ! command -v pkg-config >/dev/null 2>&1 || ! command -v cc >/dev/null 2>&1; then
	missing="pkg-config gcc make"
fi
check() {
	for pair in $1; do
		what=${pair%%:*}; pkg=${pair#*:}
		case $what in
		/*) [ -e "$what" ] || missing="$missing $pkg" ;;
		*) pkg-config --exists "$what" 2>/dev/null || missing="$missing $pkg" ;;
		esac
	done
}
check "$build_pkgs"
case $want in
test) check "$test_pkgs" ;;
bench) check "$test_pkgs"; check "$bench_pkgs" ;;
esac

[ -z "$missing" ] && exit 0

echo "deps: installing missing Debian packages:$missing"
if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing
