# ringmesh build. GNU make + pkg-config; objects under build/, programs in bin/.
#   make            build everything
#   make deps       install the Debian packages the build, tests and demo need
#   make test       every test layer; ends with "N passed, N failed, N skipped"
#   make asan       build with ASan + UBSan into build/asan and run the tests there
#   make demo       a small netns mesh with real traffic (needs root)
#   make bench      the benchmarks (by hand, never in CI)
#   make fmt        clang-format every C file
#   V=1             show full commands

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

CC       ?= cc
CFLAGS   ?= $(OPT) -g
CFLAGS   += -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
            -D_GNU_SOURCE -pthread -Icommon -MMD -MP $(CSAN)
LDFLAGS  += -pthread $(CSAN)
URING_LIBS := $(shell pkg-config --libs liburing 2>/dev/null || echo -luring)
MODEL_LIBS := $(shell pkg-config --libs yaml-0.1 libcjson 2>/dev/null || echo -lyaml -lcjson)
MODEL_LIBS += $(shell pkg-config --libs libpcre2-8 2>/dev/null || echo -lpcre2-8)
MODEL_LIBS += $(shell pkg-config --libs libnghttp2 2>/dev/null || echo -lnghttp2)
TLS_LIBS   := $(shell pkg-config --libs wolfssl 2>/dev/null || echo -lwolfssl)
CURL_LIBS  := $(shell pkg-config --libs libcurl 2>/dev/null || echo -lcurl)
LIBS        = $(URING_LIBS) $(MODEL_LIBS) $(TLS_LIBS) $(CURL_LIBS)

Q := $(if $(V),,@)

COMMON_SRC  := $(wildcard common/*.c)
SIDECAR_SRC := $(filter-out sidecar/main.c,$(wildcard sidecar/*.c))
INIT_SRC    := $(filter-out init/main.c,$(wildcard init/*.c))
XDS_SRC     := $(filter-out xds/main_%.c,$(wildcard xds/*.c))
FUZZ_SRC    := $(wildcard tests/fuzz/*_fuzz.c)
UNIT_SRC    := $(wildcard tests/unit/*_test.c)
TOOL_SRC    := $(wildcard tests/tools/*.c)
BENCH_SRC   := $(wildcard bench/*.c)

obj = $(patsubst %.c,$(BUILD)/%.o,$(1))

LIBCOMMON  := $(BUILD)/libcommon.a
LIBSIDECAR := $(BUILD)/libsidecar.a
LIBINIT    := $(BUILD)/libinit.a
LIBXDS     := $(BUILD)/libxds.a

PROGS := $(BIN)/ringmesh-sidecar $(BIN)/ringmesh-init $(BIN)/ringmeshctl $(BIN)/ringmesh-xds
UNITS := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(UNIT_SRC))
TOOLS := $(patsubst tests/tools/%.c,$(BUILD)/tools/%,$(TOOL_SRC))
BENCHES := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))
FUZZERS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRC)) # defined before `all` uses it

.PHONY: all deps test test-only asan demo bench fmt clean fuzzers
all: $(PROGS) $(UNITS) $(TOOLS) $(BENCHES) $(if $(SAN),,$(FUZZERS))

$(BUILD)/%.o: %.c
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

# Unit tests link whatever module they test out of the program archives.
$(BUILD)/tests/unit/%.o: CFLAGS += -Isidecar -Iinit -Ixds
$(BUILD)/tests/unit/%: $(BUILD)/tests/unit/%.o $(LIBSIDECAR) $(LIBINIT) $(LIBXDS) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# libFuzzer targets (clang): tests/fuzz/NAME_fuzz.c with every library source, built with
# ASan + UBSan; tests/fuzz/*.sh runs them briefly in CI.
FUZZ_CC     ?= clang
FUZZ_CFLAGS  = -g -O1 -std=gnu11 -D_GNU_SOURCE -pthread -Icommon -Isidecar -Iinit -Ixds \
               -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_LIB_SRC = $(COMMON_SRC) $(SIDECAR_SRC) $(XDS_SRC)
fuzzers: $(FUZZERS)
$(BUILD)/fuzz/%: tests/fuzz/%.c $(FUZZ_LIB_SRC) $(wildcard common/*.h sidecar/*.h xds/*.h)
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
            libcurl4-openssl-dev
deps:
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "deps: need root to apt-get install$$missing" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "deps: all installed"; fi

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

bench: deps
	$(MAKE) all
	$(Q)RINGMESH_BIN=$(BIN) bench/run.sh

fmt:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build bin

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
