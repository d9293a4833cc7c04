# st: sentence-embedding training as small Unix programs. `make` builds bin/, `make test` runs every test.
# Every lib/*.c goes into build/libst.a; every tools/st-*.c becomes bin/st-*; every tests/unit/*.c becomes
# build/t/*.t; prove runs those and tests/*.t. New files need no edit here.

PREFIX ?= /usr/local
CC ?= cc
PKGS := openblas msgpack libzstd jansson libutf8proc libpcre2-8 libcurl libcrypto libzip
# Asked of pkg-config when a recipe runs, not when make reads this file: `make demo` installs the -dev
# packages first (deps), and flags read before that would stay empty for the rest of the run.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
# CFLAGS is the user's (make CFLAGS=... or SANITIZE flags are added to it); ST_CFLAGS is what st needs.
CFLAGS ?= -O2 -march=native -g
ST_CFLAGS = -std=gnu11 -Wall -Wextra -Wno-unused-parameter -Wno-sign-compare -fopenmp -Ilib $(PKG_CFLAGS)
ALL_CFLAGS = $(CFLAGS) $(ST_CFLAGS)
# --as-needed: a tool records only the libraries it calls (st-tokenize loads no OpenBLAS); start-up time is
# mostly dynamic linking (docs/performance.md, "Start-up").
LDLIBS = -Wl,--as-needed build/libst.a $(PKG_LIBS) -fopenmp -lm -lpthread $(LDFLAGS)

LIB_SRC := $(filter-out lib/dist.c,$(wildcard lib/*.c))
LIB_OBJ := $(LIB_SRC:lib/%.c=build/lib/%.o)
TOOLS := $(patsubst tools/%.c,bin/%,$(wildcard tools/st-*.c))
SCRIPTS := $(patsubst tools/%,bin/%,$(filter-out %.c,$(wildcard tools/st-*)))
UNIT := $(patsubst tests/unit/%.c,build/t/%.t,$(wildcard tests/unit/*.c))
HEADERS := $(wildcard lib/*.h)

all: $(TOOLS) $(SCRIPTS)

build/lib/%.o: lib/%.c $(HEADERS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# AdamW's vector square roots (lib/optim.c): sqrtf of a value never negative sets no errno
build/lib/optim.o: ST_CFLAGS += -fno-math-errno

build/libst.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

bin/%: tools/%.c build/libst.a $(HEADERS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(LDLIBS)

# Only st-step talks to other ranks (data-parallel training): lib/dist.c is built apart from libst, with Open
# MPI when its ompi-c is installed, else as a one-process stub; no other program links MPI.
MPI_CFLAGS = $(shell pkg-config --exists ompi-c 2>/dev/null && echo -DST_MPI $$(pkg-config --cflags ompi-c))
MPI_LIBS = $(shell pkg-config --libs ompi-c 2>/dev/null)
build/dist.o: lib/dist.c lib/dist.h lib/st.h
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(MPI_CFLAGS) -c -o $@ $<
bin/st-step: tools/st-step.c build/dist.o build/libst.a $(HEADERS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $< build/dist.o $(LDLIBS) $(MPI_LIBS)

# Tools written in a scripting language are copied as they are.
$(SCRIPTS): bin/%: tools/%
	@mkdir -p $(@D)
	cp $< $@ && chmod +x $@

build/t/%.t: tests/unit/%.c tests/unit/tap.h build/libst.a $(HEADERS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Itests/unit -o $@ $< $(LDLIBS)

check-build: all $(UNIT)

# Unit tests are compiled programs and the pipeline tests carry their own #! line, so prove runs each file
# directly (--exec ''). ST_FAST=1 is the default test size; `make test-long` runs the long variants.
# `make test` on a machine without the packages installs them first (deps-check), then builds and runs the tests
# in a new make that reads the flags of what was just installed; `make check` only builds and tests.
test: deps-check
	$(MAKE) check

check: all $(UNIT)
	prove --exec '' -j2 $(UNIT) $(sort $(wildcard tests/*.t))

test-long: deps-check
	$(MAKE) check-long

check-long: all $(UNIT)
	ST_LONG=1 prove --exec '' $(UNIT) $(sort $(wildcard tests/*.t))

# The hostile-input campaign (docs/reliability.md): tests/hostile.t (also part of make test), its slow part, and
# the fault-injection harness (tests/fault.t) with 100 runs when present.
check-hostile: all
	ST_HOSTILE_SLOW=1 prove --exec '' tests/hostile.t
	@if [ -f tests/fault.t ]; then FAULT_RUNS=100 prove --exec '' tests/fault.t; fi
	MPI_FAULTS=1 prove --exec '' tests/mpi.t

# The whole suite under AddressSanitizer + UndefinedBehaviorSanitizer, in a copy of the tree (build-san/tree)
# so that bin/ and build/ keep the normal build. The flags are appended to CFLAGS, not put in its place.
# Leaks are not reported here (tools that die() keep their memory; the fuzzers check leaks). .ci/run runs it after
# `make test`. Measured 2026-12-02 on an idle 2-core machine: 72 test files, 3877 checks, 12.5 min in all (build
# and prove -j2).
SAN_FLAGS = -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
sanitize:
	rm -rf build-san && mkdir -p build-san/tree
	tar -cf - --exclude=./build --exclude=./bin --exclude=./build-san --exclude=./.git . | tar -xf - -C build-san/tree
	if [ -d ../shared ]; then ln -s ../../shared build-san/shared; fi
	$(MAKE) -C build-san/tree CFLAGS="$(CFLAGS) $(SAN_FLAGS)" check-build
	cd build-san/tree && ST_SANITIZE=1 ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		prove --exec '' -j2 $(UNIT) $(sort $(wildcard tests/*.t))

bench: all
	@for b in bench/*.sh; do echo "== $$b"; sh $$b || exit 1; done

fuzz: all
	@for f in fuzz/*.sh; do [ -f "$$f" ] && sh $$f; done; true

# deps first, then a new make that reads the flags of the packages deps has just installed.
demo: deps
	$(MAKE) all
	$(MAKE) -C pipelines -f demo.mk

# Debian packages that building and testing need; does nothing when they are present.
# deps-check: the same, but quiet and without apt-get when nothing is missing, and a hint instead of apt-get on
# a machine without dpkg (install the packages of DEB_PKGS with its own package manager).
DEB_PKGS := build-essential pkg-config libopenblas-dev libmsgpack-dev libzstd-dev zstd libjansson-dev \
	libutf8proc-dev libpcre2-dev libcurl4-openssl-dev libssl-dev libzip-dev sentencepiece python3-sentencepiece python3-torch python3-numpy python3-scipy python3-msgpack python3-yaml gnuplot-nox bc wordnet-base \
	git git-lfs jq perl openmpi-bin libopenmpi-dev
deps-check:
	@command -v dpkg-query >/dev/null || { echo "make: not a Debian system; install the equivalents of: $(DEB_PKGS)"; exit 0; }; \
	missing=$$(for p in $(DEB_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ] || ! command -v npm >/dev/null; then $(MAKE) deps; fi

deps:
	@missing=$$(for p in $(DEB_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "installing:" $$missing; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; fi
	@# Node.js may come from elsewhere than Debian (with its own npm): install Debian's only when there is none.
	@command -v npm >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm; }
	@# the npm packages are anchors of some tests (they skip without them): a failed download is a warning
	@if [ -f tests/js/package.json ] && ! (cd tests/js && npm ls --depth=0 > /dev/null 2>&1); then \
	  (cd tests/js && npm install --ignore-scripts --no-audit --no-fund --loglevel=error) || \
	  { rm -rf tests/js/node_modules; echo "make: npm install failed in tests/js: the tests that use it will skip"; }; fi

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/doc/st $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 755 $(TOOLS) $(SCRIPTS) $(DESTDIR)$(PREFIX)/bin
	install -m 644 docs/*.md $(DESTDIR)$(PREFIX)/share/doc/st

clean:
	rm -rf build bin build-san

.PHONY: all test check test-long check-long bench fuzz demo deps deps-check install clean check-build check-hostile sanitize
.SECONDARY:
