# ringmesh build. GNU make + pkg-config; objects under build/, programs in bin/.
#   make            build everything
#   make deps       install the Debian packages the build, tests and demo need
#   make test       every test layer; ends with "N passed, N failed, N skipped"
#   make asan       build with ASan + UBSan into build/asan and run the tests there
#   make demo       a small netns mesh with real traffic (needs root)
#   make bench      the benchmarks (by hand, never in CI); BENCH=all|l4|http|tls|xds
#   make fmt        clang-format every C file
#   V=1             show full commands
#   WOLFSSL=fast    link a wolfSSL built here from Debian's source with x86-64 assembly
#                   (AES-NI, AVX2, SP P-256); see "WOLFSSL=fast" below. Default: system

SAN      ?=
ifeq ($(SAN),1)
BUILD    ?= build/asan
CSAN      = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT       = -O1
else
BUILD    ?= build
CSAN      =
OPT       = -O2
endif
BIN      ?= $(if $(filter 1,$(SAN)),$(BUILD)/bin,bin)

# WOLFSSL=fast: wolfSSL 5.5.4 built once from Debian's own source package (apt-get source
# wolfssl; the configure flags of its debian/rules) plus the x86-64 assembly Debian's generic
# build leaves out: AES-NI (AES-GCM), AVX/AVX2 (ChaCha20, Poly1305, SHA-2), SP maths in
# assembly (P-256 ECDHE and ECDSA). Built into build/wolfssl-fast/prefix (make clean keeps it,
# make distclean removes it) and linked statically: the programs need no LD_LIBRARY_PATH.
# Its options.h is checked to define everything Debian's does. The default, WOLFSSL=system,
# is Debian's libwolfssl-dev. $(BUILD)/wolfssl.env records which one $(BUILD) was compiled
# against: switching rebuilds every object, and bench/run.sh tls links the same one.
WOLFSSL  ?= system
WOLFSSL_DIR        := build/wolfssl-fast
WOLFSSL_PKGS       := dpkg-dev autoconf automake libtool
WOLFSSL_DEB_FLAGS  := --enable-distro --enable-pkcs11 --disable-examples --disable-silent-rules
WOLFSSL_FAST_FLAGS := --enable-intelasm --enable-aesni --enable-sp --enable-sp-asm
WOLFSSL_LIB        := $(CURDIR)/$(WOLFSSL_DIR)/prefix/lib/libwolfssl.a
ifeq ($(WOLFSSL),fast)
WOLFSSL_A  := $(WOLFSSL_LIB)
TLS_CFLAGS := -I$(CURDIR)/$(WOLFSSL_DIR)/prefix/include
else ifeq ($(WOLFSSL),system)
WOLFSSL_A  :=
TLS_CFLAGS :=
else
$(error WOLFSSL=$(WOLFSSL): use system (the default) or fast)
endif

CC       ?= cc
CFLAGS   ?= $(OPT) -g
CFLAGS   += -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
            -D_GNU_SOURCE -pthread $(TLS_CFLAGS) -Icommon -MMD -MP $(CSAN)
LDFLAGS  += -pthread $(CSAN)
URING_LIBS := $(shell pkg-config --libs liburing 2>/dev/null || echo -luring)
MODEL_LIBS := $(shell pkg-config --libs yaml-0.1 libcjson 2>/dev/null || echo -lyaml -lcjson)
MODEL_LIBS += $(shell pkg-config --libs libpcre2-8 2>/dev/null || echo -lpcre2-8)
MODEL_LIBS += $(shell pkg-config --libs libnghttp2 2>/dev/null || echo -lnghttp2)
ifeq ($(WOLFSSL),fast)
TLS_LIBS   := $(WOLFSSL_A) -lm
else
TLS_LIBS   := $(shell pkg-config --libs wolfssl 2>/dev/null || echo -lwolfssl)
endif
CURL_LIBS  := $(shell pkg-config --libs libcurl 2>/dev/null || echo -lcurl)
LIBS        = $(URING_LIBS) $(MODEL_LIBS) $(TLS_LIBS) $(CURL_LIBS)

# $(BUILD)/wolfssl.env: the wolfSSL $(BUILD) is compiled against, (re)written as make starts
# when it changes; every object depends on it, and bench/run.sh tls reads it. Left alone by
# make -n and by goals that compile nothing into $(BUILD) (asan builds into build/asan).
WOLFSSL_ENV := $(BUILD)/wolfssl.env
ifeq ($(if $(MAKECMDGOALS),$(if $(filter-out clean distclean deps fmt asan,$(MAKECMDGOALS)),,skip))$(findstring n,$(firstword -$(MAKEFLAGS))),)
$(shell mkdir -p $(BUILD) && printf "# written by make: the wolfSSL $(BUILD) was compiled against\nWOLFSSL='%s'\nTLS_CFLAGS='%s'\nTLS_LIBS='%s'\n" \
  '$(WOLFSSL)' '$(TLS_CFLAGS)' '$(TLS_LIBS)' >$(WOLFSSL_ENV).tmp && \
  { cmp -s $(WOLFSSL_ENV).tmp $(WOLFSSL_ENV) && rm -f $(WOLFSSL_ENV).tmp || mv $(WOLFSSL_ENV).tmp $(WOLFSSL_ENV); })
endif

Q := $(if $(V),,@)

COMMON_SRC  := $(wildcard common/*.c)
SIDECAR_SRC := $(filter-out sidecar/main.c,$(wildcard sidecar/*.c))
INIT_SRC    := $(filter-out init/main.c,$(wildcard init/*.c))
XDS_SRC     := $(filter-out xds/main_%.c,$(wildcard xds/*.c))
FUZZ_SRC    := $(wildcard tests/fuzz/*_fuzz.c)
UNIT_SRC    := $(wildcard tests/unit/*_test.c)
TOOL_SRC    := $(wildcard tests/tools/*.c)
# bench/loadgen.c, hist.c and lg_h1.c are ringmesh-loadgen (a program of its own, in $(BIN)).
LOADGEN_SRC := bench/loadgen.c bench/hist.c bench/lg_h1.c
BENCH_SRC   := $(filter-out $(LOADGEN_SRC),$(wildcard bench/*.c))

obj = $(patsubst %.c,$(BUILD)/%.o,$(1))

LIBCOMMON  := $(BUILD)/libcommon.a
LIBSIDECAR := $(BUILD)/libsidecar.a
LIBINIT    := $(BUILD)/libinit.a
LIBXDS     := $(BUILD)/libxds.a

PROGS := $(BIN)/ringmesh-sidecar $(BIN)/ringmesh-init $(BIN)/ringmeshctl $(BIN)/ringmesh-xds \
         $(BIN)/ringmesh-loadgen
UNITS := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(UNIT_SRC))
TOOLS := $(patsubst tests/tools/%.c,$(BUILD)/tools/%,$(TOOL_SRC))
BENCHES := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))
FUZZERS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRC)) # defined before `all` uses it

.PHONY: all deps test test-only asan demo bench fmt clean distclean fuzzers
all: $(PROGS) $(UNITS) $(TOOLS) $(BENCHES) $(if $(SAN),,$(FUZZERS))

$(BUILD)/%.o: %.c $(WOLFSSL_ENV) | $(WOLFSSL_A)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC  $<")
	$(Q)$(CC) $(CFLAGS) -c -o $@ $<

$(LIBCOMMON): $(call obj,$(COMMON_SRC))
$(LIBSIDECAR): $(call obj,$(SIDECAR_SRC))
$(LIBINIT): $(call obj,$(INIT_SRC))
$(LIBXDS): $(call obj,$(XDS_SRC))
$(BUILD)/sidecar/%.o: CFLAGS += -Ixds
# ringmesh-xds's connections reuse the sidecar's buffered socket (sidecar/sock.c).
$(BUILD)/xds/server%.o $(BUILD)/xds/main_xds.o: CFLAGS += -Isidecar
$(BUILD)/lib%.a:
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^ $(if $^,,&& true)

$(BIN)/ringmeshctl: $(call obj,xds/main_ringmeshctl.c) $(LIBXDS) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD  $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) $(CURL_LIBS)

# sock.o (libsidecar) pulls tls.o, which uses ca.o (libxds): libxds is named twice.
$(BIN)/ringmesh-xds: $(call obj,xds/main_xds.c) $(LIBXDS) $(LIBSIDECAR) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD  $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $(call obj,xds/main_xds.c) $(LIBXDS) $(LIBSIDECAR) $(LIBXDS) \
	  $(LIBCOMMON) $(LIBS)

$(BIN)/ringmesh-sidecar: $(call obj,sidecar/main.c) $(LIBSIDECAR) $(LIBXDS) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD  $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BIN)/ringmesh-init: $(call obj,init/main.c) $(LIBINIT) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD  $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^

# The load generator: HTTP/1.1 and HTTP/2 (nghttp2) over TCP or TLS (wolfSSL).
$(BIN)/ringmesh-loadgen: $(call obj,$(LOADGEN_SRC)) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD  $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) -lm

# Unit tests link whatever module they test out of the program archives.
$(BUILD)/tests/unit/%.o: CFLAGS += -Isidecar -Iinit -Ixds
# ringmesh-loadgen's pure modules (bench/hist.c, bench/lg_h1.c) are in no archive.
$(BUILD)/tests/unit/hist_test.o $(BUILD)/tests/unit/lg_h1_test.o: CFLAGS += -Ibench
$(BUILD)/tests/unit/hist_test: $(call obj,bench/hist.c)
$(BUILD)/tests/unit/hist_test: LIBS += -lm
$(BUILD)/tests/unit/lg_h1_test: $(call obj,bench/lg_h1.c)
$(BUILD)/tests/unit/%: $(BUILD)/tests/unit/%.o $(LIBSIDECAR) $(LIBINIT) $(LIBXDS) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# libFuzzer targets (clang): tests/fuzz/NAME_fuzz.c with every library source, built with
# ASan + UBSan; tests/fuzz/*.sh runs them briefly in CI.
FUZZ_CC     ?= clang
FUZZ_CFLAGS  = -g -O1 -std=gnu11 -D_GNU_SOURCE -pthread $(TLS_CFLAGS) -Icommon -Isidecar -Iinit -Ixds \
               -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_LIB_SRC = $(COMMON_SRC) $(SIDECAR_SRC) $(XDS_SRC)
fuzzers: $(FUZZERS)
$(BUILD)/fuzz/%: tests/fuzz/%.c $(FUZZ_LIB_SRC) $(wildcard common/*.h sidecar/*.h xds/*.h) $(WOLFSSL_ENV) | $(WOLFSSL_A)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZ $@")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_LIB_SRC) $(LIBS)

$(BUILD)/tools/%: $(BUILD)/tests/tools/%.o $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/bench/%.o: CFLAGS += -Isidecar -Ixds
$(BUILD)/bench/%: $(BUILD)/bench/%.o $(LIBSIDECAR) $(LIBXDS) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# Debian packages: build, tests (clients, iptables, netns), demo and bench peers.
DEB_PKGS := build-essential pkg-config liburing-dev libyaml-dev libcjson-dev libpcre2-dev libnghttp2-dev \
            clang libclang-rt-14-dev iptables iproute2 procps curl python3 socat clang-format \
            nghttp2-client python3-h2 python3-grpcio haproxy wrk libwolfssl-dev openssl \
            libcurl4-openssl-dev python3-prometheus-client
# $(call apt_install,PACKAGES): apt-get install those not installed (root only)
define apt_install
missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "deps: need root to apt-get install$$missing" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "deps: all installed"; fi
endef
# WOLFSSL=fast adds what apt-get source and wolfSSL's autotools build need.
deps:
	@$(call apt_install,$(DEB_PKGS) $(if $(WOLFSSL_A),$(WOLFSSL_PKGS)))

test: deps
	$(MAKE) all
	$(Q)RINGMESH_BIN=$(BIN) RINGMESH_BUILD=$(BUILD) tests/run

test-only: all
	$(Q)RINGMESH_BIN=$(BIN) RINGMESH_BUILD=$(BUILD) tests/run $(T)

# Sanitizer reports go to files (sidecars run in the background as uid 1337, so the
# directory is world-writable); tests/run counts each report as a failure.
SANDIR := /tmp/ringmesh-sanitizer
asan: deps
	$(MAKE) SAN=1 all
	$(Q)rm -rf $(SANDIR) && mkdir -p $(SANDIR) && chmod 1777 $(SANDIR)
	$(Q)RINGMESH_BIN=build/asan/bin RINGMESH_BUILD=build/asan RINGMESH_SANITIZER_DIR=$(SANDIR) \
	  ASAN_OPTIONS=detect_leaks=1:log_path=$(SANDIR)/asan \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$(SANDIR)/ubsan \
	  tests/run $(T)

demo: deps
	$(MAKE) all
	$(Q)RINGMESH_BIN=$(BIN) deploy/demo.sh

# make bench: bench/run.sh compare (ringmesh against direct, HAProxy and nghttpx pairs, about
# 20 minutes); BENCH=all|l4|http|tls|xds runs the others. BENCH_PKGS: what only the bench needs.
BENCH ?= compare
BENCH_PKGS := gnuplot-nox nghttp2-proxy linux-perf
bench: deps
	@$(call apt_install,$(BENCH_PKGS))
	$(MAKE) all
	$(Q)RINGMESH_BIN=$(BIN) bench/run.sh $(BENCH)

fmt:
	clang-format -i $$(git ls-files '*.c' '*.h')

# ---- WOLFSSL=fast (see the top) --------------------------------------------------------
# Once: Debian's source package (deb-src lines needed; the version of the installed
# libwolfssl-dev when the archive still has it), autoreconf as dh does, configure with
# debian/rules' flags (checked to be still there), Debian's hardening flags and the
# assembly ones, build (with make's own -j: make -j2 WOLFSSL=fast; built.flags marks a
# finished build), install into prefix (with options.h, which a distro build leaves to
# debian/libwolfssl-dev.install), and check options.h against /usr/include/wolfssl/options.h
# (on failure prefix is removed).
$(WOLFSSL_LIB):
	@$(call apt_install,$(WOLFSSL_PKGS))
	@mkdir -p $(WOLFSSL_DIR)/src
	$(Q)cd $(WOLFSSL_DIR)/src && if ! ls -d wolfssl-*/debian >/dev/null 2>&1; then \
	  apt-cache showsrc wolfssl 2>/dev/null | grep -q '^Package: wolfssl' || { \
	    echo "wolfssl-fast: apt has no source packages: add a deb-src line for bookworm (e.g. a copy" \
	         "of /etc/apt/sources.list.d/debian.sources with 'Types: deb-src'), then apt-get update" >&2; \
	    exit 1; }; \
	  v=$$(dpkg-query -W -f='$${source:Version}' libwolfssl-dev 2>/dev/null); \
	  echo "wolfssl-fast: apt-get source wolfssl$${v:+=$$v} into $(WOLFSSL_DIR)/src"; \
	  apt-get source -qq wolfssl$${v:+=$$v} || { [ -n "$$v" ] && apt-get source -qq wolfssl; } || exit 1; \
	fi
	$(Q)src=$$(ls -d $(CURDIR)/$(WOLFSSL_DIR)/src/wolfssl-*/ | head -n 1) && cd "$$src" && \
	for f in $(WOLFSSL_DEB_FLAGS); do grep -q -- "$$f" debian/rules || \
	  { echo "wolfssl-fast: $$f is no longer in $${src}debian/rules: update WOLFSSL_DEB_FLAGS" >&2; exit 1; }; done && \
	want="$(WOLFSSL_DEB_FLAGS) $(WOLFSSL_FAST_FLAGS)" && \
	if [ "$$(cat built.flags 2>/dev/null)" = "$$want" ]; then echo "wolfssl-fast: $$src already built"; else \
	echo "wolfssl-fast: building $$src: configure $$want" && \
	{ [ -x configure ] || autoreconf -fi >autoreconf.log 2>&1 || { cat autoreconf.log; exit 1; }; } && \
	export DEB_BUILD_MAINT_OPTIONS=hardening=+all && \
	{ ./configure --prefix=$(CURDIR)/$(WOLFSSL_DIR)/prefix --disable-dependency-tracking $$want \
	  CFLAGS="$$(dpkg-buildflags --get CFLAGS)" CPPFLAGS="$$(dpkg-buildflags --get CPPFLAGS)" \
	  LDFLAGS="$$(dpkg-buildflags --get LDFLAGS)" >configure.log 2>&1 || { tail -n 30 configure.log; exit 1; }; } && \
	{ MAKEFLAGS="$${MAKEFLAGS%%-- *}" $(MAKE) --no-print-directory >build.log 2>&1 || \
	  { tail -n 30 build.log; echo "wolfssl-fast: build failed, see $${src}build.log" >&2; exit 1; }; } && \
	echo "$$want" >built.flags; fi
	$(Q)rm -rf $(WOLFSSL_DIR)/prefix && src=$$(ls -d $(WOLFSSL_DIR)/src/wolfssl-*/ | head -n 1) && \
	{ MAKEFLAGS="$${MAKEFLAGS%%-- *}" $(MAKE) --no-print-directory -C "$$src" install >/dev/null && \
	  install -m 644 "$$src"wolfssl/options.h $(WOLFSSL_DIR)/prefix/include/wolfssl/ && \
	  install -m 644 "$$src"cyassl/options.h $(WOLFSSL_DIR)/prefix/include/cyassl/; } || \
	  { rm -rf $(WOLFSSL_DIR)/prefix; exit 1; }; \
	opts=$(WOLFSSL_DIR)/prefix/include/wolfssl/options.h && \
	missing=$$(awk '$$1 == "#define" { print $$2 }' /usr/include/wolfssl/options.h 2>/dev/null | sort -u | \
	  while read -r d; do grep -q "^#define $$d\b" $$opts || echo "$$d"; done) && \
	if [ -n "$$missing" ]; then rm -rf $(WOLFSSL_DIR)/prefix; \
	  echo "wolfssl-fast: its options.h lacks Debian's" $$missing >&2; exit 1; fi && \
	echo "wolfssl-fast: installed into $(WOLFSSL_DIR)/prefix; options.h defines every one of" \
	  "Debian's $$(grep -c '^#define' /usr/include/wolfssl/options.h) and" \
	  $$(grep -ow -e WOLFSSL_AESNI -e USE_INTEL_SPEEDUP -e WOLFSSL_HAVE_SP_ECC -e WOLFSSL_SP_X86_64_ASM $$opts | sort -u)

# clean keeps the wolfSSL build (minutes to redo); distclean removes it too.
clean:
	rm -rf bin $(filter-out $(WOLFSSL_DIR),$(wildcard build/*))
distclean:
	rm -rf build bin

-include $(shell find $(BUILD) -path $(WOLFSSL_DIR) -prune -o -name '*.d' -print 2>/dev/null)
