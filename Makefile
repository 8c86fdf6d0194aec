# codemachine — the two commands a new user needs: `make demo` and `make test`.

GO      ?= go
BIN     := bin/codemachine
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
# urfave_cli_no_docs leaves out the cli package's man-page and markdown
# writers (md2man, blackfriday): codemachine never uses them, and every
# linked package is initialised at start-up (docs/benchmarks.md).
TAGS    := urfave_cli_no_docs
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
GOCYCLO     := github.com/fzipp/gocyclo/cmd/gocyclo@v0.6.0
FUZZTIME ?= 60s

.PHONY: all build install test terminal-tools demo bench lint fuzz clis clean

all: build

## build: the static binary at bin/codemachine
# Linked to a side file, then copied into place: the linker writes through a
# shared mapping, and the same bytes written by cp start 1.2-1.3x faster
# (docs/benchmarks.md); the rename also keeps a running bin/codemachine whole.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -tags $(TAGS) -ldflags "$(LDFLAGS)" -o $(BIN).link ./cmd/codemachine
	cp $(BIN).link $(BIN).new && rm -f $(BIN).link && mv -f $(BIN).new $(BIN)

## install: codemachine into $(go env GOPATH)/bin
install:
	CGO_ENABLED=0 $(GO) install -trimpath -tags $(TAGS) -ldflags "$(LDFLAGS)" ./cmd/codemachine

## clis: the pinned agent CLIs from the npm registry, into a cache outside the repo
clis:
	$(GO) run ./internal/testenv/cmd/install-clis

## test: every test, with the race detector, the real git and the real agent CLIs (offline)
test: terminal-tools
	$(GO) mod download
	$(GO) vet ./...
	$(MAKE) --no-print-directory clis
	scripts/test.sh

## terminal-tools: the terminal (tmux) and shells (zsh, fish) the dashboard, progress and completion tests drive, from Debian's packages when missing
TERMINAL_TOOLS := tmux zsh fish
terminal-tools:
	@missing=""; for t in $(TERMINAL_TOOLS); do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then echo "installing$$missing (apt-get)"; \
		sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		$$sudo apt-get update -qq && $$sudo apt-get install -y -qq $$missing; fi

## demo: a built-in workflow (TEMPLATE=spec-to-code, the default, migrate or feature) landing one commit per step in a scratch repository, offline
demo: build
	TEMPLATE=$(TEMPLATE) scripts/demo.sh

## bench: the performance targets, as ratios to baselines measured in the same run (see docs/benchmarks.md)
bench: clis
	scripts/bench.sh

## lint: gofmt, go vet, staticcheck, and no function of the product over cyclomatic complexity 24
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	@out=$$($(GO) run $(GOCYCLO) -over 24 -ignore _test .); if [ -n "$$out" ]; then echo "too complex (split them):"; echo "$$out"; exit 1; fi

## fuzz: every fuzz target of every package (found in the *_test.go files) for FUZZTIME each (default 60s), minimizing nothing
fuzz:
	@set -e; for f in $$(grep -l '^func Fuzz' $$(git ls-files '*_test.go')); do \
		pkg=./$$(dirname $$f); \
		for t in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
			echo "== $$pkg $$t"; \
			$(GO) test $$pkg -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 0; \
		done; \
	done

clean:
	rm -rf bin
