#!/usr/bin/env bash
# Installs the Debian packages this project builds and tests with. Idempotent: when every package
# is already installed it does nothing (and needs no network).
set -euo pipefail
pkgs=(
  build-essential cmake ninja-build pkg-config git clang-format
  libtorch-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libopenmpi-dev openmpi-bin
  libsqlite3-dev sqlite3 libyaml-cpp-dev nlohmann-json3-dev libcpp-httplib-dev libcli11-dev
  libsentencepiece-dev libre2-dev zlib1g-dev libssl-dev
  libutf8proc-dev
  libgtest-dev libgmock-dev
  gnuplot-nox
  libopenblas0-openmp
  prometheus python3-yaml python3-kubernetes yamllint shellcheck
  golang-go golang-github-masterminds-sprig-dev golang-github-ghodss-yaml-dev
)
pkgs+=(slurm-wlm munge curl openssl)  # service tests: one-node Slurm, Prometheus scrape, TLS
# kubectl: Debian's kubernetes-client, unless a kubectl is already installed (the two conflict).
command -v kubectl >/dev/null 2>&1 || pkgs+=(kubernetes-client)
# Node.js + npm for the deploy checkers (tests/deploy/npm), unless a Node.js is already installed.
command -v npm >/dev/null 2>&1 || pkgs+=(nodejs npm)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
