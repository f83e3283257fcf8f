#!/usr/bin/env bash
# Compiler launcher: at most ${PS_MAX_COMPILES:-3} compiles run at once on this machine, across
# every build directory (LibTorch translation units take ~1 GB each: many parallel builds on a
# small machine would run out of memory). Goes through ccache when it is installed.
max=${PS_MAX_COMPILES:-3}
wrap=()
command -v ccache >/dev/null 2>&1 && wrap=(ccache)
while true; do
  for ((i = 1; i <= max; i++)); do
    exec 9>"/tmp/ps-compile-slot-$i"
    if flock -n 9; then
      exec "${wrap[@]}" "$@"  # fd 9, and with it the slot, stays held until the compiler exits
    fi
    exec 9>&-
  done
  sleep 0.3
done
