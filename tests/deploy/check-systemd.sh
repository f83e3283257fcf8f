#!/usr/bin/env bash
# `systemd-analyze verify` of a unit, failing on any warning (verify itself exits 0 on unknown
# keys and bad values). psd is not installed at /usr/local/bin here, so the unit is verified with
# ExecStart pointing at a stand-in executable; everything else is the unit as shipped.
# Usage: check-systemd.sh UNIT_FILE
set -euo pipefail
unit=$1
command -v systemd-analyze >/dev/null || { echo "systemd-analyze not found" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '#!/bin/sh\nexit 0\n' > "$work/psd" && chmod +x "$work/psd"
sed "s|/usr/local/bin/psd|$work/psd|" "$unit" > "$work/$(basename "$unit")"
if ! out=$(systemd-analyze verify "$work/$(basename "$unit")" 2>&1) || [ -n "$out" ]; then
  echo "systemd-analyze verify $unit:"; echo "$out"; exit 1
fi
echo "ok   $unit"
