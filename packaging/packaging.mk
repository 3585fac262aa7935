# packaging.mk: release targets, included by the top-level Makefile.
#
#   make install-extra  what `make install` leaves out: systemd units,
#                       sysusers.d and tmpfiles.d entries, the envelope
#                       schema, man pages (same PREFIX, DESTDIR, BINDIR,
#                       SYSCONFDIR as install)
#   make dist           build/ferry-$(VERSION).tar.gz: the tree as git knows
#                       it, which builds with a bare `make`
#   make rpm            build/rpm/: binary and source RPM (rpmbuild)
#   make deb            build/deb/: the .deb (dpkg-deb; tree built by hand)
#
# Standalone use before the Makefile includes it:
#   make -f Makefile -f packaging/packaging.mk rpm
# The guard lets both forms (and the spec, which always names the file) work
# even when the Makefile includes this file too.

ifndef FERRY_PACKAGING_MK
FERRY_PACKAGING_MK := 1
# Included before the Makefile's first target, this file must not become
# the default goal: see the end.
FERRY_OUTER_GOAL := $(.DEFAULT_GOAL)

VERSION	?= 0.1.0
B	?= build
PREFIX	?= /usr/local
BINDIR	?= $(PREFIX)/bin
SYSCONFDIR ?= /etc
DATADIR	?= $(PREFIX)/share
MANDIR	?= $(DATADIR)/man
# systemd looks in /usr/lib and /usr/local/lib for these.
UNITDIR	?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d

PKGDIR	= packaging
MANPAGES = $(PKGDIR)/man/ferry-agent.8 $(PKGDIR)/man/ferry-forwarder.8 \
	   $(PKGDIR)/man/ferry-spool.8
SVCUNITS = $(PKGDIR)/systemd/ferry-agent.service \
	   $(PKGDIR)/systemd/ferry-forwarder.service
DEB_RUNTIME = libc6, liblmdb0, libmicrohttpd12, libavro23, librdkafka1, \
	      libsodium23, libinih1, libjansson4, zlib1g
DIST	= ferry-$(VERSION)
TARBALL	= $(B)/$(DIST).tar.gz

.PHONY: install-extra dist rpm deb

# The units name /usr/bin and /etc/ferry; an install elsewhere gets units
# that point at where the programs and the configuration really are.
install-extra:
	install -d $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) \
	    $(DESTDIR)$(TMPFILESDIR) $(DESTDIR)$(DATADIR)/ferry \
	    $(DESTDIR)$(MANDIR)/man8
	for u in $(SVCUNITS); do \
		sed -e 's|/usr/bin/|$(BINDIR)/|g' \
		    -e 's|/etc/ferry/|$(SYSCONFDIR)/ferry/|g' $$u \
		    >$(DESTDIR)$(UNITDIR)/$${u##*/} && \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$${u##*/} || exit 1; \
	done
	install -m 0644 $(PKGDIR)/systemd/ferry.sysusers \
	    $(DESTDIR)$(SYSUSERSDIR)/ferry.conf
	install -m 0644 $(PKGDIR)/systemd/ferry.tmpfiles \
	    $(DESTDIR)$(TMPFILESDIR)/ferry.conf
	install -m 0644 conf/envelope.avsc $(DESTDIR)$(DATADIR)/ferry/
	install -m 0644 $(MANPAGES) $(DESTDIR)$(MANDIR)/man8/

# Tracked files plus new ones not yet committed (but never ignored ones such
# as build/), as they are in the work tree.  Release from a clean checkout.
# Owners, order and times are fixed, so one tree gives one tarball.
dist:
	@command -v git >/dev/null && git rev-parse --git-dir >/dev/null 2>&1 \
	    || { echo "make dist: needs git and a git work tree" >&2; exit 1; }
	rm -rf $(B)/dist && mkdir -p $(B)/dist/$(DIST)
	git ls-files -z --cached --others --exclude-standard | \
	    xargs -0 sh -c 'for f; do [ -f "$$f" ] && printf "%s\0" "$$f"; done' sh | \
	    xargs -0 cp --parents -p -t $(B)/dist/$(DIST)
	tar -C $(B)/dist -czf $(TARBALL) --sort=name --owner=0 --group=0 \
	    --numeric-owner --mtime=@$$(git log -1 --format=%ct 2>/dev/null || date +%s) \
	    $(DIST)
	rm -rf $(B)/dist
	@echo "$(TARBALL)"

# rpmbuild works under build/rpm/work and leaves the two packages in
# build/rpm/.  --nodeps: the build dependencies are Debian packages here,
# which the rpm database does not know.
RPMTOP	= $(abspath $(B)/rpm)
rpm: dist
	@command -v rpmbuild >/dev/null || \
	    { echo "make rpm: needs rpmbuild (Debian package rpm)" >&2; exit 1; }
	rm -rf $(RPMTOP) && mkdir -p $(RPMTOP)/work/SOURCES
	cp $(TARBALL) $(RPMTOP)/work/SOURCES/
	rpmbuild -ba --nodeps --quiet \
	    --define '_topdir $(RPMTOP)/work' \
	    --define '_rpmdir $(RPMTOP)' --define '_srcrpmdir $(RPMTOP)' \
	    --define '_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm' \
	    --define 'ferry_version $(VERSION)' \
	    $(PKGDIR)/ferry.spec
	rm -rf $(RPMTOP)/work
	@ls $(RPMTOP)/*.rpm

# The .deb: installed into a staging tree, binaries stripped, man pages and
# changelog compressed as Debian policy asks, maintainer scripts and
# control written, then packed by dpkg-deb with root ownership.
DEBARCH	= $(shell dpkg --print-architecture 2>/dev/null || echo amd64)
DEBVER	= $(VERSION)-1
DEBROOT	= $(B)/deb/ferry_$(DEBVER)_$(DEBARCH)
deb: all
	rm -rf $(B)/deb && mkdir -p $(DEBROOT)/DEBIAN
	$(MAKE) --no-print-directory -f Makefile -f $(PKGDIR)/packaging.mk \
	    install install-extra \
	    DESTDIR=$(abspath $(DEBROOT)) PREFIX=/usr SYSCONFDIR=/etc \
	    BINDIR=/usr/bin >/dev/null
	strip --strip-unneeded --remove-section=.comment \
	    --remove-section=.note $(DEBROOT)/usr/bin/ferry-*
	gzip -9n $(DEBROOT)/usr/share/man/man8/*.8
	install -d $(DEBROOT)/usr/share/doc/ferry/examples
	install -m 0644 $(PKGDIR)/examples/* $(DEBROOT)/usr/share/doc/ferry/examples/
	install -m 0644 README.md $(DEBROOT)/usr/share/doc/ferry/
	{ echo "Files: *"; echo "License: ISC"; echo; cat LICENSE; } \
	    >$(DEBROOT)/usr/share/doc/ferry/copyright
	printf 'ferry (%s) unstable; urgency=medium\n\n  * Release %s.\n\n -- %s  %s\n' \
	    '$(DEBVER)' '$(VERSION)' 'ferry developers <ferry@example.org>' \
	    "$$(date -R -d @$$(git log -1 --format=%ct 2>/dev/null || date +%s))" | \
	    gzip -9n >$(DEBROOT)/usr/share/doc/ferry/changelog.Debian.gz
	install -m 0755 $(PKGDIR)/deb/postinst $(PKGDIR)/deb/prerm \
	    $(PKGDIR)/deb/postrm $(DEBROOT)/DEBIAN/
	echo /etc/ferry/ferry.conf >$(DEBROOT)/DEBIAN/conffiles
	sed -e 's/@VERSION@/$(DEBVER)/' -e 's/@ARCH@/$(DEBARCH)/' \
	    -e 's/@DEPENDS@/$(DEB_RUNTIME)/' \
	    -e "s/@SIZE@/$$(du -sk --exclude=DEBIAN $(DEBROOT) | cut -f1)/" \
	    $(PKGDIR)/deb/control >$(DEBROOT)/DEBIAN/control
	cd $(DEBROOT) && find usr -type f -exec md5sum {} + >DEBIAN/md5sums
	dpkg-deb --root-owner-group -Zxz --build $(DEBROOT) $(B)/deb/ >/dev/null
	@ls $(B)/deb/*.deb

ifeq ($(FERRY_OUTER_GOAL),)
.DEFAULT_GOAL :=
endif
endif
