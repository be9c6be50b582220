# Weft build. `make demo` and `make test` are the README's quick start.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X github.com/weftmesh/weft/internal/version.Version=$(VERSION) -X github.com/weftmesh/weft/internal/version.Commit=$(COMMIT)
BIN     := bin

# Optional Debian packages (`make deps`; .ci/run installs the same list):
# iproute2 and iptables for capture mode (demo --capture and its tests),
# nginx-light, haproxy and caddy as the bench's peers, curl for the README's
# tour, gcc and libc6-dev for the race detector, chromium for the API's
# cross-site test in a real browser. Without them the tests that
# need them skip, each with a one-line reason.
DEPS := iproute2 iptables nginx-light haproxy caddy curl gcc libc6-dev chromium containerd runc containernetworking-plugins

# -race needs cgo and a C compiler; without one the tests run without it.
RACE := $(shell [ "$$($(GO) env CGO_ENABLED)" = 1 ] && command -v "$$($(GO) env CC)" >/dev/null 2>&1 && echo -race)

.PHONY: all build demo deps images kube-bins kube-dev kube-e2e test test-short chaos vet fmt bench bench-smoke clean

all: build

# weft-proxy is built static (no libc mapped) and with gRPC's grpcnotrace tag:
# golang.org/x/net/trace pulls in html/template, whose reflection turns off the
# linker's dead-method elimination (26 -> 16 MB binary, 6.5 MiB less RSS; see
# docs/proxy-http.md). internal/images and test/e2e/kit build it the same way.
PROXY_TAGS := grpcnotrace

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/weft ./cmd/weft
	CGO_ENABLED=0 $(GO) build -trimpath -tags $(PROXY_TAGS) -ldflags '$(LDFLAGS)' -o $(BIN)/weft-proxy ./cmd/weft-proxy

# Weft's main job: a whole mesh on this machine (Ctrl-C stops it).
demo: build
	$(BIN)/weft demo $(DEMO_FLAGS)

vet:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# The test command CI runs (.ci/run). Builds the binaries first: end-to-end
# tests run the real processes from bin/.
test: build vet
	@[ -n "$(RACE)" ] || echo "note: no C compiler for cgo, so no -race (make deps installs gcc)"
	$(GO) test $(RACE) -timeout 25m ./...

# Installs the optional packages (root or sudo), stops the distro's
# nginx/haproxy/caddy services so they do not hold ports the tests use, and
# builds the Kubernetes test binaries (kube-bins), so nothing is skipped.
deps:
	@sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(DEPS) && \
	for s in nginx haproxy caddy; do ($$sudo systemctl stop $$s || $$sudo service $$s stop) >/dev/null 2>&1 || true; done
	$(MAKE) kube-bins

test-short: build
	$(GO) test -short ./...

# The chaos test with the issue's figures (about 2.5 minutes): the control
# plane down 60 s, 50 listener-touching config changes, rolling SIGTERM
# restarts of the server sidecars, a client sidecar restart, under load.
# `make test` runs a shorter variant (about 45 s).
chaos: build
	WEFT_CHAOS_FULL=1 $(GO) test -count=1 -v -timeout 10m -run TestChaos ./test/e2e/chaos/

bench: build
	$(GO) run ./bench

bench-smoke: build
	$(GO) run ./bench -smoke

clean:
	rm -rf $(BIN)

# Container images as OCI tarballs (one multi-arch index per image, for
# `ctr -n k8s.io images import`), from the static binaries: no registry, no
# container engine. IMAGE_ARCHES=amd64 builds one architecture.
IMAGE_ARCHES ?= amd64,arm64
images:
	$(GO) run ./tools/images -out out/images -arch $(IMAGE_ARCHES)

# kube-apiserver and etcd from the pinned modules in tools/kube, built once
# into .cache/kube/bin; the Kubernetes tests run on them (else they skip).
kube-bins:
	tools/kube/build.sh

# The real-node end-to-end suite (root; containerd, runc and the CNI plugins
# from Debian): a single-node cluster of real components on this machine,
# Bookinfo in injected pods, Istio's tasks applied with kubectl.
kube-e2e: kube-bins build
	WEFT_KUBE_E2E=1 $(GO) test -count=1 -v -timeout 30m ./test/e2e/node/

# A local API server with Istio's CRDs for trying `weft control-plane --kubeconfig`.
kube-dev: kube-bins build
	$(GO) run ./internal/kubetest/kubedev
