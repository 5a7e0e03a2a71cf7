# common.mk - the build every chapter shares. A chapter Makefile sets
#   PKGS   pkg-config packages it links (nng has no .pc in Debian: LIBS += -lnng)
#   LIBS   extra libraries
#   PROGS  programs, one per cmd/<name>/ directory (built to $(BUILD)/<name>)
# and then includes this file. Everything it builds lands under build/.
#
# Sources:  internal/*/*.c          -> $(BUILD)/libplog.a   (minus *_test.c, *_bench.c, *_fuzz.c, *_testlib.c)
#           internal/*/*_testlib.c  -> $(BUILD)/libplogtest.a, with common/testing: code that only
#                                      tests and benchmarks link (test servers, simulated clusters)
#           api/v1/*.proto          -> $(BUILD)/gen/api/v1/*.pb-c.[ch] (protoc-c) -> libplog.a
#           cmd/<p>/*.c             -> $(BUILD)/<p>
#           <dir>/<name>_test.c     -> $(BUILD)/test/<dir>/<name>_test, one cmocka binary per file
#           <dir>/<name>_bench.c    -> $(BUILD)/test/<dir>/<name>_bench, run by `make bench`
# Targets every chapter answers (common/scripts/chapters-check.sh verifies it):
#   all test bench clean deps deps-test here; run, fuzz and check-long in the chapter
#   Makefile. `run` builds only $(PROG_BINS). deps installs what building and running
#   need, deps-test adds the test tools, deps-fuzz clang (a prerequisite of fuzz builds).
# `make test` first checks the includes against the README's dependency table
# (layers-check).
# Modes:    SAN=1 (ASan+UBSan) builds into build/san, TSAN=1 into build/tsan, so the modes
#           never mix objects.

.DEFAULT_GOAL := all
SHELL := /bin/bash
COMMON := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/..)

CC ?= cc
ifeq ($(origin CC),default)
CC := cc
endif

BUILD := build
ifdef SAN
BUILD := build/san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
endif
ifdef TSAN
BUILD := build/tsan
SANFLAGS := -fsanitize=thread -fno-omit-frame-pointer
endif

WARN := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Werror
CFLAGS ?= -O2 -g
ALL_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L $(CFLAGS) $(WARN) $(SANFLAGS) -MMD -MP \
	-I. -I$(BUILD)/gen -I$(COMMON) $(if $(PKGS),$(shell pkg-config --cflags $(PKGS)))
ALL_LDFLAGS := $(LDFLAGS) $(SANFLAGS)
ALL_LIBS := $(if $(PKGS),$(shell pkg-config --libs $(PKGS))) $(LIBS) -lpthread
# cmocka comes with deps-test; `make run` builds no test, so its absence stays quiet.
TEST_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null)

PROTOS   := $(wildcard api/v1/*.proto)
GEN_C    := $(patsubst %.proto,$(BUILD)/gen/%.pb-c.c,$(PROTOS))
GEN_H    := $(GEN_C:.c=.h)
LIB_SRCS := $(filter-out %_test.c %_bench.c %_fuzz.c %_testlib.c,$(wildcard internal/*/*.c))
LIB_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(LIB_SRCS)) $(GEN_C:.c=.o)
LIB      := $(BUILD)/libplog.a

TESTING_SRCS := $(filter-out %_test.c,$(wildcard $(COMMON)/testing/*.c))
TESTING_OBJS := $(patsubst $(COMMON)/testing/%.c,$(BUILD)/obj/testing/%.o,$(TESTING_SRCS)) \
	$(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard internal/*/*_testlib.c))
TESTING_LIB  := $(BUILD)/libplogtest.a

TEST_SRCS  := $(sort $(wildcard internal/*/*_test.c cmd/*/*_test.c))
TESTS      := $(patsubst %.c,$(BUILD)/test/%,$(TEST_SRCS))
BENCH_SRCS := $(sort $(wildcard internal/*/*_bench.c cmd/*/*_bench.c))
BENCHES    := $(patsubst %.c,$(BUILD)/test/%,$(BENCH_SRCS))
PROG_BINS  := $(addprefix $(BUILD)/,$(PROGS))

# Test binaries find the programs and the chapter through these variables.
export PLOG_BUILD := $(abspath $(BUILD))
export PLOG_CHAPTER := $(abspath .)

.PHONY: all test bench clean run deps deps-test deps-fuzz fuzz check-long layers-check
.SECONDARY:

all: $(PROG_BINS) $(TESTS) $(BENCHES)

# Generated headers must exist before anything that includes them compiles.
$(LIB_OBJS) $(TESTING_OBJS): | $(GEN_H)

$(BUILD)/gen/%.pb-c.c $(BUILD)/gen/%.pb-c.h: %.proto
	@mkdir -p $(BUILD)/gen
	protoc-c --c_out=$(BUILD)/gen $<

# Generated code is not ours to fix: keep the strict flags but not -Werror on it.
$(BUILD)/gen/%.pb-c.o: $(BUILD)/gen/%.pb-c.c
	$(CC) $(filter-out -Werror,$(ALL_CFLAGS)) -c -o $@ $<

$(BUILD)/obj/testing/%.o: $(COMMON)/testing/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/obj/%.o: %.c | $(GEN_H)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(LIB): $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(TESTING_LIB): $(TESTING_OBJS)
	@rm -f $@
	ar rcs $@ $^

define prog_rule
$(BUILD)/$(1): $(patsubst %.c,$(BUILD)/obj/%.o,$(filter-out %_test.c %_bench.c,$(wildcard cmd/$(1)/*.c))) $(LIB)
	$$(CC) $$(ALL_LDFLAGS) -o $$@ $$^ $$(ALL_LIBS)
endef
$(foreach p,$(PROGS),$(eval $(call prog_rule,$(p))))

define test_rule
$(BUILD)/test/$(1:.c=): $(BUILD)/obj/$(1:.c=.o) $(TESTING_LIB) $(LIB)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(ALL_LDFLAGS) -o $$@ $$^ $$(TEST_LIBS) $$(ALL_LIBS)
endef
$(foreach t,$(TEST_SRCS) $(BENCH_SRCS),$(eval $(call test_rule,$(t))))

# The includes between packages follow the README's dependency table.
layers-check:
	@$(COMMON)/scripts/layers-check.sh .

# Every test binary runs, even after a failure; the target fails if any did.
test: layers-check $(PROG_BINS) $(TESTS)
	@failed=""; for t in $(TESTS); do \
		echo "== $(notdir $(CURDIR)) $${t#$(BUILD)/}"; \
		"$$t" || failed="$$failed $${t##*/}"; \
	done; \
	if [ -n "$$failed" ]; then echo "FAILED in $(notdir $(CURDIR)):$$failed"; exit 1; fi

bench: $(PROG_BINS) $(BENCHES)
	@for b in $(BENCHES); do "$$b" || exit 1; done

deps:
	@$(COMMON)/scripts/deps.sh run

deps-test:
	@$(COMMON)/scripts/deps.sh run test

deps-fuzz:
	@$(COMMON)/scripts/deps.sh fuzz

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
