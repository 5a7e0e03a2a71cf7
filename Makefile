# proglog-c - top level. Every target loops over the chapters in order; `run`
# runs the last chapter. SAN=1 / TSAN=1 pass through to the chapters.
# Every chapter answers all, test, bench, fuzz, check-long, run, deps, deps-test
# and clean (chapters-check verifies it; docs/ARCHITECTURE.md, "Targets").
CHAPTERS := $(sort $(wildcard ch[0-9][0-9]-*))
LAST     := $(lastword $(CHAPTERS))
SCRIPTS  := common/scripts

.PHONY: all deps deps-test test run bench fuzz check-long chapters-check layers-check \
	links-check chapter-sync fmt fmt-check clean help

all: deps-test
	@set -e; for c in $(CHAPTERS); do $(MAKE) -C $$c all; done

# What building and running need; deps-test adds the tools only tests use.
# clang for fuzzing comes with each chapter's fuzz target (deps-fuzz).
deps:
	@$(SCRIPTS)/deps.sh run

deps-test:
	@$(SCRIPTS)/deps.sh run test

# Every chapter's tests run even after one fails; the target fails if any did. A
# chapter builds on all CPUs (JOBS) and then runs its tests one after the other.
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
test: deps-test chapters-check links-check fmt-check
	@$(SCRIPTS)/chapters_test.sh
	@$(SCRIPTS)/layers_test.sh
	@$(SCRIPTS)/links_test.sh
	@failed=""; for c in $(CHAPTERS); do \
		$(MAKE) -C $$c -j$(JOBS) test || failed="$$failed $$c"; \
	done; \
	if [ -n "$$failed" ]; then echo "make test: FAILED in:$$failed"; exit 1; fi; \
	echo "make test: all chapters passed ($(CHAPTERS))"

# Builds only the last chapter's programs, then serves.
run: deps
	$(MAKE) -C $(LAST) run

bench: deps-test
	@set -e; for c in $(CHAPTERS); do $(MAKE) -C $$c bench; done

fuzz: deps-test
	@set -e; for c in $(CHAPTERS); do $(MAKE) -C $$c fuzz; done

check-long: deps-test
	@set -e; for c in $(CHAPTERS); do $(MAKE) -C $$c check-long; done

chapters-check:
	@$(SCRIPTS)/chapters-check.sh .

# Each chapter's includes follow the dependency table in its README.
layers-check:
	@$(SCRIPTS)/layers-check.sh $(CHAPTERS)

links-check:
	@$(SCRIPTS)/links-check.sh .

# make chapter-sync FILE=ch02-log/internal/log/store.c
chapter-sync:
	@test -n "$(FILE)" || { echo "usage: make chapter-sync FILE=chNN-name/path" >&2; exit 2; }
	@$(SCRIPTS)/chapter-sync.sh $(FILE)

# Formats every C file in place with the checked-in .clang-format.
fmt:
	@git ls-files '*.c' '*.h' | xargs clang-format -i

# Fails, naming the lines, when a C file is not as `make fmt` would leave it.
fmt-check:
	@git ls-files '*.c' '*.h' | xargs clang-format --dry-run --Werror && echo "fmt-check: ok (clang-format $$(clang-format --version | grep -o '[0-9][0-9.]*' | head -1))"

clean:
	@for c in $(CHAPTERS); do $(MAKE) -C $$c clean; done

help:
	@echo "make run | test | test SAN=1 | test TSAN=1 | bench | fuzz | check-long | deps | deps-test | chapters-check | layers-check | links-check | chapter-sync FILE=... | fmt | fmt-check | clean"
