# proglog-c - top level. Every target loops over the chapters in order; `run`
# runs the last chapter. SAN=1 / TSAN=1 pass through to the chapters.
CHAPTERS := $(sort $(wildcard ch[0-9][0-9]-*))
LAST     := $(lastword $(CHAPTERS))
SCRIPTS  := common/scripts

.PHONY: all deps test run bench check-long chapters-check layers-check chapter-sync fmt clean help

all: deps
	@set -e; for c in $(CHAPTERS); do $(MAKE) -C $$c all; done

deps:
	@$(SCRIPTS)/deps.sh

# Every chapter's tests run even after one fails; the target fails if any did.
test: deps chapters-check
	@$(SCRIPTS)/chapters_test.sh
	@$(SCRIPTS)/layers_test.sh
	@failed=""; for c in $(CHAPTERS); do \
		$(MAKE) -C $$c test || failed="$$failed $$c"; \
	done; \
	if [ -n "$$failed" ]; then echo "make test: FAILED in:$$failed"; exit 1; fi; \
	echo "make test: all chapters passed ($(CHAPTERS))"

run: deps
	$(MAKE) -C $(LAST) run

bench: deps
	@set -e; for c in $(CHAPTERS); do $(MAKE) -C $$c bench; done

check-long: deps
	@set -e; for c in $(CHAPTERS); do $(MAKE) -C $$c check-long; done

chapters-check:
	@$(SCRIPTS)/chapters-check.sh .

# Each chapter's includes follow the dependency table in its README.
layers-check:
	@$(SCRIPTS)/layers-check.sh $(CHAPTERS)

# make chapter-sync FILE=ch02-log/internal/log/store.c
chapter-sync:
	@test -n "$(FILE)" || { echo "usage: make chapter-sync FILE=chNN-name/path" >&2; exit 2; }
	@$(SCRIPTS)/chapter-sync.sh $(FILE)

# Formats every C file in place with the checked-in .clang-format.
fmt:
	@git ls-files '*.c' '*.h' | xargs clang-format -i

clean:
	@for c in $(CHAPTERS); do $(MAKE) -C $$c clean; done

help:
	@echo "make run | test | test SAN=1 | test TSAN=1 | bench | check-long | chapters-check | layers-check | chapter-sync FILE=... | fmt | clean"
