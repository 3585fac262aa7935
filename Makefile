# ferry: durable spool-and-forward edge agent.
#
#   make            build the three programs into build/
#   make test       install missing packages, build, run every test (plain
#                   build, then again under ASan+UBSan+LSan in build-san)
#   make run        install missing packages, build, run agent + forwarder
#   make bench      benchmarks (not part of make test)
#   make fuzz       libFuzzer targets, FUZZ_SECS each (not part of make test)
#   make chaos      kills, outages and a full spool under load, CHAOS_SECS long
#   make install    PREFIX=/usr/local DESTDIR=
#   make SAN=1 ...  build with AddressSanitizer + UndefinedBehaviorSanitizer
#   make dist rpm deb   source tarball, RPM + SRPM, .deb (build/, build/rpm,
#                   build/deb); packaging/packaging.mk

VERSION	= 0.1.0
CC	?= cc
PREFIX	?= /usr/local
BINDIR	?= $(PREFIX)/bin
SYSCONFDIR ?= /etc
DESTDIR	?=
CFLAGS	?= -O2 -g
LDFLAGS	?=
B	= build

PKGS	= lmdb libmicrohttpd avro-c rdkafka libsodium inih jansson zlib
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null)

WARN	= -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes \
	  -Wmissing-prototypes -Wformat=2 -Wno-format-nonliteral -Wvla \
	  -Wimplicit-fallthrough
XCFLAGS	= -std=c11 -D_GNU_SOURCE -DFERRY_VERSION=\"$(VERSION)\" \
	  -Iconf -Ispool -Iagent -Iforwarder $(WARN) -pthread $(PKG_CFLAGS)
XLDFLAGS = -pthread
ifeq ($(SAN),1)
XCFLAGS	+= -fsanitize=address,undefined -fno-omit-frame-pointer \
	   -fno-sanitize-recover=undefined
XLDFLAGS += -fsanitize=address,undefined
endif

# The library: everything the programs share and the unit tests link.
LIB_SRC	= $(wildcard conf/*.c) $(filter-out $(TOOL_SRC),$(wildcard spool/*.c)) \
	  agent/intake.c $(FWD_LIB_SRC)
FWD_LIB_SRC = $(wildcard forwarder/avroenc.c forwarder/avroblk.c \
	      forwarder/sink_*.c)
AGENT_SRC = $(filter-out agent/intake.c,$(wildcard agent/*.c))
FWD_SRC	= $(filter-out $(FWD_LIB_SRC),$(wildcard forwarder/*.c))
TOOL_SRC = spool/ferry-spool.c
UNIT_SRC = $(wildcard tests/unit/test_*.c)
HELPER_SRC = $(wildcard tests/helpers/*.c tests/kafka/*.c)

LIB	= $(B)/libferry.a
PROGS	= $(B)/ferry-spool $(if $(AGENT_SRC),$(B)/ferry-agent) \
	  $(if $(FWD_SRC),$(B)/ferry-forwarder)
UNITS	= $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)
HELPERS	= $(patsubst %.c,$(B)/tests/%,$(notdir $(HELPER_SRC)))

.PHONY: all deps test testbin check run bench fuzz chaos install clean
all: $(PROGS)

$(B)/%.o: %.c $(wildcard */*.h)
	@mkdir -p $(dir $@)
	$(CC) $(XCFLAGS) $(CFLAGS) -c -o $@ $<

$(LIB): $(LIB_SRC:%.c=$(B)/%.o)
	rm -f $@
	ar rcs $@ $^

$(B)/ferry-spool: $(TOOL_SRC:%.c=$(B)/%.o) $(LIB)
	$(CC) $(XLDFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)
$(B)/ferry-agent: $(AGENT_SRC:%.c=$(B)/%.o) $(LIB)
	$(CC) $(XLDFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)
$(B)/ferry-forwarder: $(FWD_SRC:%.c=$(B)/%.o) $(LIB)
	$(CC) $(XLDFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(B)/tests/%: tests/unit/%.c $(LIB) $(wildcard */*.h)
	@mkdir -p $(dir $@)
	$(CC) $(XCFLAGS) $(CFLAGS) $(XLDFLAGS) $(LDFLAGS) -o $@ $< $(LIB) \
	    $(PKG_LIBS) $(CMOCKA_LIBS)
$(B)/tests/%: tests/helpers/%.c $(LIB) $(wildcard */*.h)
	@mkdir -p $(dir $@)
	$(CC) $(XCFLAGS) $(CFLAGS) $(XLDFLAGS) $(LDFLAGS) -o $@ $< $(LIB) \
	    $(PKG_LIBS)
$(B)/tests/%: tests/kafka/%.c $(LIB) $(wildcard */*.h)
	@mkdir -p $(dir $@)
	$(CC) $(XCFLAGS) $(CFLAGS) $(XLDFLAGS) $(LDFLAGS) -o $@ $< $(LIB) \
	    $(PKG_LIBS)

deps:
	@packaging/deps.sh $(DEPS)

# Installs what is missing, then builds and runs in a fresh make so that
# pkg-config sees the packages just installed.
# `make test` runs every test twice: against the plain build, then against
# a sanitizer build (build-san: ASan, UBSan, LeakSanitizer), one summary.
test:
	@packaging/deps.sh test
	@$(MAKE) --no-print-directory testbin
	@$(MAKE) --no-print-directory B=build-san SAN=1 testbin
	@tests/run.sh $(B) build-san

testbin: $(PROGS) $(UNITS) $(HELPERS)

# The plain build only (FERRY_TESTS="pattern ..." picks files).
check: testbin
	@tests/run.sh $(B)

run:
	@packaging/deps.sh build
	@$(MAKE) --no-print-directory all
	@tests/dev-run.sh $(B)

bench:
	@packaging/deps.sh bench
	@$(MAKE) --no-print-directory all $(HELPERS)
	@tests/bench/run.sh $(B)

# libFuzzer targets (clang): FUZZ_SECS per target, default 60.
fuzz:
	@tests/fuzz/run.sh $(B) $(FUZZ_SECS)

# Chaos under load (tests/chaos): CHAOS_SECS of kills and outages, default 120.
chaos:
	@packaging/deps.sh test
	@$(MAKE) --no-print-directory all $(HELPERS)
	@tests/chaos/run.sh $(B) $(CHAOS_SECS)

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SYSCONFDIR)/ferry
	install -m 0755 $(PROGS) $(DESTDIR)$(BINDIR)/
	install -m 0644 conf/ferry.conf $(DESTDIR)$(SYSCONFDIR)/ferry/ferry.conf

clean:
	rm -rf $(B)

include packaging/packaging.mk
