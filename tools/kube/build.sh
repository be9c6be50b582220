#!/usr/bin/env bash
# Builds the Kubernetes test binaries from the pinned modules into
# .cache/kube/bin (or $WEFT_KUBE_BIN): kube-apiserver and etcd (the API
# tests), and for the real-node tests one multi-call binary, `node`
# (tools/kube/node: kubelet, kube-controller-manager, kube-scheduler,
# kube-proxy, kubectl, linked once and symlinked under each name), and
# CoreDNS (tools/coredns, its own module). A stamp of the pins and sources
# skips the build when the binaries are already there for them.
# WEFT_KUBE_NODE=0 builds only kube-apiserver and etcd.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${WEFT_KUBE_BIN:-$root/.cache/kube/bin}"
node="${WEFT_KUBE_NODE:-1}"
want=(kube-apiserver etcd)
node_cmds=(kubelet kube-controller-manager kube-scheduler kube-proxy kubectl)
if [ "$node" = 1 ]; then want+=(node coredns "${node_cmds[@]}"); fi
stamp="$(cat "$root/tools/kube/go.mod" "$root/tools/kube/go.sum" "$root/tools/kube/node/main.go" \
  "$root/tools/coredns/go.mod" "$root/tools/coredns/go.sum" "$root/tools/coredns/main.go" "$0" | sha256sum | cut -c1-16)-$node"
uptodate=1
for b in "${want[@]}"; do [ -x "$bin/$b" ] || uptodate=0; done
if [ "$uptodate" = 1 ] && [ "$(cat "$bin/.stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "kube binaries up to date in $bin"
  exit 0
fi
mkdir -p "$bin"
cd "$root/tools/kube"
start=$(date +%s)
# k8s.io/kubernetes is not in the checksum database's usual path for every
# staging module; -mod=mod lets the replace lines resolve.
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=mod"
# The release the binaries report (/version), as the official build stamps it.
kv=$(go list -m -f '{{.Version}}' k8s.io/kubernetes)
minor=$(echo "$kv" | cut -d. -f2)
vpkg=k8s.io/component-base/version
ldflags="-s -w -X $vpkg.gitVersion=$kv -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$minor -X $vpkg.gitTreeState=clean"
go build -trimpath -ldflags="$ldflags" -o "$bin/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
go build -trimpath -ldflags='-s -w' -o "$bin/etcd" go.etcd.io/etcd/server/v3
if [ "$node" = 1 ]; then
  go build -trimpath -ldflags="$ldflags" -o "$bin/node" ./node
  for c in "${node_cmds[@]}"; do ln -sf node "$bin/$c"; done
  (cd "$root/tools/coredns" && go build -trimpath -ldflags='-s -w' -o "$bin/coredns" .)
fi
echo "$stamp" > "$bin/.stamp"
echo "built ${want[*]} into $bin in $(( $(date +%s) - start ))s"
