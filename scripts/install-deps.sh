#!/usr/bin/env bash
# Installs the Debian packages this project needs. Idempotent: when every package of the chosen set
# is already installed it does nothing (and needs no network).
#
#   install-deps.sh runtime   what the main job builds and runs with: compiler, LibTorch,
#                             gRPC/Protobuf, OpenMPI, the libraries psd/psctl/psworker/pstool link,
#                             gnuplot for the history plot (the default)
#   install-deps.sh test      runtime + the test tooling: GoogleTest, one-node Slurm and munge,
#                             Prometheus (promtool), Go (chart renderer), Node/npm (deploy
#                             checkers), kubectl, yamllint, shellcheck, curl/openssl
#
# Neither set leaves a system service running or enabled that the user did not ask for: while apt
# runs, a policy-rc.d that refuses every start is in place (Debian's mechanism, see
# /usr/share/doc/init-system-helpers/README.policy-rc.d), and units that packages enabled are
# disabled afterwards.
set -euo pipefail
set_name=${1:-runtime}
runtime=(
  build-essential cmake ninja-build pkg-config git
  libtorch-dev libopenblas0-openmp
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libopenmpi-dev openmpi-bin
  libsqlite3-dev libyaml-cpp-dev nlohmann-json3-dev libcpp-httplib-dev libcli11-dev libspdlog-dev
  libsentencepiece-dev libre2-dev zlib1g-dev libssl-dev libutf8proc-dev
  gnuplot-nox
)
testing=(
  libgtest-dev libgmock-dev clang-format sqlite3 ccache
  prometheus python3-yaml python3-kubernetes yamllint shellcheck
  golang-go golang-github-masterminds-sprig-dev golang-github-ghodss-yaml-dev
  slurm-wlm munge curl openssl
)
# kubectl: Debian's kubernetes-client, unless a kubectl is already installed (the two conflict).
command -v kubectl >/dev/null 2>&1 || testing+=(kubernetes-client)
# Node.js + npm for the deploy checkers (tests/deploy/npm), unless a Node.js is already installed.
command -v npm >/dev/null 2>&1 || testing+=(nodejs npm)
case "$set_name" in
  runtime) pkgs=("${runtime[@]}") ;;
  test) pkgs=("${runtime[@]}" "${testing[@]}") ;;
  *) echo "install-deps: unknown set '$set_name' (use 'runtime' or 'test')" >&2; exit 2 ;;
esac
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps ($set_name): installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
policy=/usr/sbin/policy-rc.d
placed_policy=0
if [ ! -e "$policy" ]; then
  # exit 101: "action forbidden by policy": invoke-rc.d/deb-systemd-invoke start nothing.
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod 755 "$policy"
  placed_policy=1
fi
cleanup() { [ "$placed_policy" -eq 1 ] && $SUDO rm -f "$policy"; return 0; }
trap cleanup EXIT
# Units enabled before the install are the user's; only those the install enabled are disabled.
list_enabled() {
  [ -d /etc/systemd/system ] || return 0
  find /etc/systemd/system -name '*.service' -path '*.wants/*' -printf '%f\n' 2>/dev/null | sort -u
}
before=$(list_enabled)
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
after=$(list_enabled)
added=$(comm -13 <(echo "$before") <(echo "$after") | grep -v '^$' || true)
if [ -n "$added" ]; then
  echo "install-deps: disabling services the install enabled: $(echo "$added" | tr '\n' ' ')" >&2
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    # shellcheck disable=SC2086
    $SUDO systemctl disable --now $added >/dev/null 2>&1 || true
  else
    for unit in $added; do $SUDO find /etc/systemd/system -path "*.wants/$unit" -delete; done
  fi
fi
