# smtpguard — hand-written Makefile: one object list for the library, one main per binary.

PREFIX	?= /usr/local
SBINDIR	?= $(PREFIX)/sbin
SYSCONFDIR ?= /etc
DESTDIR	?=

CC	?= cc
CLANG	?= clang
PKGS	= libnftnl libmnl libnetfilter_queue jansson inih libseccomp libcap-ng zlib
WARN	= -Wall -Wextra -Wshadow -Wformat=2 -Wimplicit-fallthrough \
	  -Wmissing-prototypes -Werror
CFLAGS	?= -O2 -g
SGFLAGS	= -std=c17 -D_GNU_SOURCE $(WARN) $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# libmilter (the mail gate, gate.c) ships no pkg-config file; it brings its own threads.
MILTER_LIBS = -lmilter -pthread
LIBS	= $(shell pkg-config --libs $(PKGS) 2>/dev/null) $(MILTER_LIBS)
SANFLAGS = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
	  -fno-sanitize-recover=undefined

MAINS	= guard/smtpguardd.c guard/smtpguard.c
LIBSRC	= $(filter-out $(MAINS),$(wildcard guard/*.c))
LIBOBJ	= $(LIBSRC:guard/%.c=build/obj/%.o)
ASANOBJ	= $(LIBSRC:guard/%.c=build/asan/%.o)
FUZZOBJ	= $(LIBSRC:guard/%.c=build/fuzzobj/%.o)
HDRS	= $(wildcard guard/*.h)

UNITSRC	= $(wildcard tests/unit/test_*.c)
UNITBIN	= $(UNITSRC:tests/unit/%.c=build/tests/%)
UNITASAN = $(UNITSRC:tests/unit/%.c=build/tests/asan/%)
FUZZSRC	= $(wildcard tests/fuzz/fuzz_*.c)
FUZZBIN	= $(FUZZSRC:tests/fuzz/%.c=build/fuzz/%)

BINS	= build/smtpguardd build/smtpguard
TOOLSRC	= $(wildcard tests/tools/*.c)
TOOLBIN	= $(TOOLSRC:tests/tools/%.c=build/tools/%)
MANSRC	= $(wildcard doc/*.scd)
MANPAGES = $(MANSRC:doc/%.scd=build/man/%)
BENCHSRC = $(wildcard tests/bench/*.c)
BENCHBIN = $(BENCHSRC:tests/bench/%.c=build/bench/%)

.PHONY: all deps tests check fuzz bench install uninstall harden demo clean deb

all: $(BINS) $(MANPAGES)

# smtpguard(8), smtpguardd(8), smtpguard.conf(5) from their scdoc sources.
build/man/%: doc/%.scd
	@mkdir -p $(@D)
	scdoc < $< > $@

deps:
	scripts/deps check

build/obj/%.o: guard/%.c $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(SGFLAGS) $(CFLAGS) -c -o $@ $<

build/asan/%.o: guard/%.c $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(SGFLAGS) $(SANFLAGS) -c -o $@ $<

build/libguard.a: $(LIBOBJ)
	rm -f $@ && ar rcs $@ $^

build/libguard-asan.a: $(ASANOBJ)
	rm -f $@ && ar rcs $@ $^

build/smtpguardd: build/obj/smtpguardd.o build/libguard.a
	$(CC) $(CFLAGS) -o $@ $^ $(LIBS)

# The CLI writes the documented default config; it is compiled in from conf/.
build/gen/default_conf.inc: conf/smtpguard.conf
	@mkdir -p $(@D)
	sed 's/\\/\\\\/g; s/"/\\"/g; s/^/"/; s/$$/\\n"/' $< > $@

build/obj/smtpguard.o: guard/smtpguard.c build/gen/default_conf.inc $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(SGFLAGS) $(CFLAGS) -Ibuild/gen -c -o $@ $<

build/smtpguard: build/obj/smtpguard.o build/libguard.a
	$(CC) $(CFLAGS) -o $@ $^ $(LIBS)

build/tests/%: tests/unit/%.c build/libguard.a $(HDRS) $(wildcard tests/fuzz/*.h tests/unit/*.h)
	@mkdir -p $(@D)
	$(CC) $(SGFLAGS) $(CFLAGS) -Iguard -o $@ $< build/libguard.a $(LIBS) -lcmocka

build/tests/asan/%: tests/unit/%.c build/libguard-asan.a $(HDRS) $(wildcard tests/fuzz/*.h tests/unit/*.h)
	@mkdir -p $(@D)
	$(CC) $(SGFLAGS) $(SANFLAGS) -Iguard -o $@ $< build/libguard-asan.a $(LIBS) -lcmocka

# The fuzz targets share one instrumented copy of the library, compiled once.
FUZZFLAGS = -O1 -g -fsanitize=address,undefined
build/fuzzobj/%.o: guard/%.c $(HDRS)
	@mkdir -p $(@D)
	$(CLANG) $(SGFLAGS) $(FUZZFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

build/libguard-fuzz.a: $(FUZZOBJ)
	rm -f $@ && ar rcs $@ $^

build/fuzz/%: tests/fuzz/%.c build/libguard-fuzz.a $(HDRS) $(wildcard tests/fuzz/*.h)
	@mkdir -p $(@D)
	$(CLANG) $(SGFLAGS) -Wno-missing-prototypes $(FUZZFLAGS) -fsanitize=fuzzer \
	  -Iguard -o $@ $< build/libguard-fuzz.a $(LIBS)

# Test helpers (the probe client/server, the ruleset driver) use the library too.
build/tools/%: tests/tools/%.c build/libguard.a $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(SGFLAGS) $(CFLAGS) -Iguard -o $@ $< build/libguard.a $(LIBS)

# The benchmark's load generator is plain C with threads, no library code.
build/bench/%: tests/bench/%.c
	@mkdir -p $(@D)
	$(CC) $(SGFLAGS) $(CFLAGS) -pthread -o $@ $<

tests: all $(UNITBIN) $(UNITASAN) $(FUZZBIN) $(TOOLBIN) $(BENCHBIN)

# Installs what the tests need, builds everything, runs every suite, and
# ends with one "N passed, N failed" line.
check:
	scripts/deps check
	$(MAKE) -j$$(nproc) tests
	tests/run

# Each libFuzzer target for FUZZ_SECONDS on a copy of its committed corpus.
FUZZ_SECONDS ?= 300
fuzz: $(FUZZBIN)
	FUZZ_SMOKE_SECONDS=$(FUZZ_SECONDS) tests/run fuzz

# Every measurement of the issue-8 table, in namespaces of its own; prints the
# table and writes it as JSON under bench/results/. BENCH_SCALE=0.01 is the smoke run.
bench: all $(TOOLBIN) $(BENCHBIN)
	scripts/deps bench
	scripts/bench

MANDIR	?= $(PREFIX)/share/man
COMPDIR	?= $(PREFIX)/share/bash-completion/completions
DATADIR	?= $(PREFIX)/share/smtpguard

install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(SYSCONFDIR)/smtpguard \
	  $(DESTDIR)$(SYSCONFDIR)/systemd/system $(DESTDIR)$(SYSCONFDIR)/logrotate.d \
	  $(DESTDIR)$(COMPDIR) $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 \
	  $(DESTDIR)$(DATADIR)
	install -m 0755 build/smtpguardd build/smtpguard $(DESTDIR)$(SBINDIR)/
	install -m 0644 build/man/smtpguard.8 build/man/smtpguardd.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 build/man/smtpguard.conf.5 $(DESTDIR)$(MANDIR)/man5/
	[ -e $(DESTDIR)$(SYSCONFDIR)/smtpguard/smtpguard.conf ] || \
	  install -m 0644 conf/smtpguard.conf $(DESTDIR)$(SYSCONFDIR)/smtpguard/smtpguard.conf
	sed 's|@SBINDIR@|$(SBINDIR)|g' conf/smtpguard.service > \
	  $(DESTDIR)$(SYSCONFDIR)/systemd/system/smtpguard.service
	install -m 0644 conf/smtpguard.logrotate $(DESTDIR)$(SYSCONFDIR)/logrotate.d/smtpguard
	install -m 0644 conf/smtpguard.bash-completion $(DESTDIR)$(COMPDIR)/smtpguard
	# For other programs, never read by smtpguard: Prometheus alert rules, the
	# rsyslog forwarder and collector, Exim's ACL snippets, an Ansible play.
	install -d $(DESTDIR)$(DATADIR)/rsyslog $(DESTDIR)$(DATADIR)/ansible \
	  $(DESTDIR)$(DATADIR)/exim4/conf.d/main $(DESTDIR)$(DATADIR)/exim4/conf.d/acl
	install -m 0644 conf/smtpguard.rules.yml $(DESTDIR)$(DATADIR)/
	install -m 0644 conf/rsyslog-smtpguard-forward.conf conf/rsyslog-smtpguard-collector.conf \
	  $(DESTDIR)$(DATADIR)/rsyslog/
	install -m 0644 conf/ansible/smtpguard.yml $(DESTDIR)$(DATADIR)/ansible/
	install -m 0644 conf/exim4/smtpguard_acl $(DESTDIR)$(DATADIR)/exim4/
	install -m 0644 conf/exim4/conf.d/main/00_smtpguard $(DESTDIR)$(DATADIR)/exim4/conf.d/main/
	install -m 0644 conf/exim4/conf.d/acl/45_smtpguard_not_smtp \
	  $(DESTDIR)$(DATADIR)/exim4/conf.d/acl/
	if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi

# Everything install put in place except the configuration (smtpguard disable --purge).
uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/smtpguardd $(DESTDIR)$(SBINDIR)/smtpguard \
	  $(DESTDIR)$(SYSCONFDIR)/systemd/system/smtpguard.service \
	  $(DESTDIR)$(SYSCONFDIR)/logrotate.d/smtpguard $(DESTDIR)$(COMPDIR)/smtpguard \
	  $(DESTDIR)$(MANDIR)/man8/smtpguard.8 $(DESTDIR)$(MANDIR)/man8/smtpguardd.8 \
	  $(DESTDIR)$(MANDIR)/man5/smtpguard.conf.5
	cd $(DESTDIR)$(DATADIR) 2>/dev/null && rm -f smtpguard.rules.yml \
	  rsyslog/rsyslog-smtpguard-forward.conf rsyslog/rsyslog-smtpguard-collector.conf \
	  ansible/smtpguard.yml exim4/smtpguard_acl exim4/conf.d/main/00_smtpguard \
	  exim4/conf.d/acl/45_smtpguard_not_smtp || true
	for d in rsyslog ansible exim4/conf.d/main exim4/conf.d/acl exim4/conf.d exim4 .; do \
	  rmdir $(DESTDIR)$(DATADIR)/$$d 2>/dev/null || true; done

harden:
	scripts/harden

# build/smtpguard_<version>_<arch>.deb (scripts/deb; packaging files in conf/deb/).
# Its binaries are built apart, with Debian's hardening flags (fortify, stack
# protector, relro + bindnow), so the test build's flags stay as they are.
# Fortify marks read() and friends warn_unused_result, which gcc reports even
# through the (void) casts the code uses where a result is deliberately unused.
DEB_ENV	= DEB_BUILD_MAINT_OPTIONS=hardening=+all
DEB_CFLAGS = $(shell $(DEB_ENV) dpkg-buildflags --get CFLAGS 2>/dev/null) \
	  $(shell $(DEB_ENV) dpkg-buildflags --get CPPFLAGS 2>/dev/null) -Wno-unused-result
DEB_LDFLAGS = $(shell $(DEB_ENV) dpkg-buildflags --get LDFLAGS 2>/dev/null)
DEBOBJ	= $(LIBSRC:guard/%.c=build/debobj/%.o)

build/debobj/%.o: guard/%.c $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(SGFLAGS) $(DEB_CFLAGS) -c -o $@ $<

build/debobj/smtpguard.o: guard/smtpguard.c build/gen/default_conf.inc $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(SGFLAGS) $(DEB_CFLAGS) -Ibuild/gen -c -o $@ $<

build/libguard-deb.a: $(DEBOBJ)
	rm -f $@ && ar rcs $@ $^

build/debbin/smtpguardd: build/debobj/smtpguardd.o build/libguard-deb.a
	@mkdir -p $(@D)
	$(CC) $(DEB_CFLAGS) $(DEB_LDFLAGS) -o $@ $^ $(LIBS)

build/debbin/smtpguard: build/debobj/smtpguard.o build/libguard-deb.a
	@mkdir -p $(@D)
	$(CC) $(DEB_CFLAGS) $(DEB_LDFLAGS) -o $@ $^ $(LIBS)

deb: all build/debbin/smtpguardd build/debbin/smtpguard
	+scripts/deb

# The whole story in throwaway namespaces; nothing on the host changes.
demo: all $(TOOLBIN)
	scripts/demo

clean:
	rm -rf build
