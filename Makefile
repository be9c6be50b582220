# Weft build. `make demo` and `make test` are the README's quick start.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X github.com/weftmesh/weft/internal/version.Version=$(VERSION) -X github.com/weftmesh/weft/internal/version.Commit=$(COMMIT)
BIN     := bin

.PHONY: all build demo test test-short vet fmt bench bench-smoke clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/weft ./cmd/weft
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/weft-proxy ./cmd/weft-proxy

# Weft's main job: a whole mesh on this machine (Ctrl-C stops it).
demo: build
	$(BIN)/weft demo $(DEMO_FLAGS)

vet:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# The test command CI runs (.ci/run). Builds the binaries first: end-to-end
# tests run the real processes from bin/.
test: build vet
	$(GO) test -race -timeout 25m ./...

test-short: build
	$(GO) test -short ./...

bench: build
	$(GO) run ./bench

bench-smoke: build
	$(GO) run ./bench -smoke

clean:
	rm -rf $(BIN)
