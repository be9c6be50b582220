#!/usr/bin/env bash
# Builds kube-apiserver and etcd from the pinned modules in tools/kube/go.mod
# into .cache/kube/bin (or $WEFT_KUBE_BIN). A stamp of go.mod+go.sum skips
# the build when the binaries are already there for these pins.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${WEFT_KUBE_BIN:-$root/.cache/kube/bin}"
stamp="$(cat "$root/tools/kube/go.mod" "$root/tools/kube/go.sum" "$0" | sha256sum | cut -c1-16)"
if [ -x "$bin/kube-apiserver" ] && [ -x "$bin/etcd" ] && [ "$(cat "$bin/.stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "kube binaries up to date in $bin"
  exit 0
fi
mkdir -p "$bin"
cd "$root/tools/kube"
start=$(date +%s)
# k8s.io/kubernetes is not in the checksum database's usual path for every
# staging module; -mod=mod lets the replace lines resolve.
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=mod"
# The release the binary reports (/version), as the official build stamps it.
kv=$(go list -m -f '{{.Version}}' k8s.io/kubernetes)
minor=$(echo "$kv" | cut -d. -f2)
vpkg=k8s.io/component-base/version
go build -trimpath -ldflags="-s -w -X $vpkg.gitVersion=$kv -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$minor -X $vpkg.gitTreeState=clean" \
  -o "$bin/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
go build -trimpath -ldflags='-s -w' -o "$bin/etcd" go.etcd.io/etcd/server/v3
echo "$stamp" > "$bin/.stamp"
echo "built kube-apiserver and etcd into $bin in $(( $(date +%s) - start ))s"
