#!/bin/bash
# tether-core's unit tests built for Windows (x86_64-pc-windows-gnu, Debian's mingw-w64), run
# under Debian's Wine. Prints the test binary's own summary and exits with its status.
# The same cargo run builds tether.exe, tether-app.exe and the pipe client that the end-to-end
# tests drive: one feature set, so the engine's dependencies compile once for Windows.
# `--exe PATH ARGS…` runs another Windows executable in the same prefix instead.
set -euo pipefail
cd "$(dirname "$0")/../.."
target=x86_64-pc-windows-gnu
dir=target/$target
mkdir -p "$dir"

# Rust's std imports ProcessPrng, which Wine 8 lacks: a test-only stand-in goes beside the .exe.
x86_64-w64-mingw32-gcc -shared -O2 -o "$dir/bcryptprimitives.dll" tests/wine/bcryptprimitives.c -ladvapi32 -Wl,--kill-at

if [ "${1:-}" = --exe ]; then
  exe=$2
  shift 2
else
  # From cargo's own report of what it built: the unit-test executable of tether-core's library,
  # and the WebView2 loader that webview2-com-sys's build script unpacks, which tether-app.exe
  # loads at start (the installer ships it beside the app). Cargo keeps the loader with the
  # intermediate files (CARGO_BUILD_BUILD_DIR), so it is put beside the executables here.
  built=$(cargo build --locked --target "$target" --message-format=json-render-diagnostics \
      -p tether-core -p tether-cli -p tether-app -p tether-pipe-client --lib --bins --tests |
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    t = m.get("target", {})
    if m.get("reason") == "compiler-artifact" and t.get("name") == "tether_core" and "lib" in t.get("kind", []) and m["profile"]["test"]:
        print("exe", m["executable"])
    if m.get("reason") == "build-script-executed" and "webview2-com-sys" in m.get("package_id", ""):
        print("loader", m["out_dir"] + "/x64/WebView2Loader.dll")')
  exe=$(sed -n "s/^exe //p" <<<"$built" | tail -1)
  loader=$(sed -n "s/^loader //p" <<<"$built" | tail -1)
  if [ -z "$loader" ] || [ ! -f "$loader" ]; then
    echo "tests/wine/run.sh: the build did not report WebView2Loader.dll (webview2-com-sys), which tether-app.exe needs" >&2
    exit 1
  fi
  cp "$loader" "$dir/debug/"
  # Every Windows program here needs the ProcessPrng stand-in beside it.
  cp "$dir/bcryptprimitives.dll" "$dir/debug/"
fi
if [ -z "$exe" ] || [ ! -f "$exe" ]; then
  echo "tests/wine/run.sh: no Windows executable to run (${exe:-the unit tests did not build})" >&2
  exit 1
fi
cp "$dir/bcryptprimitives.dll" "$(dirname "$exe")/"

# A Wine prefix of its own, made once, so nothing of the user's Wine is touched.
export WINEPREFIX="$PWD/$dir/wine"
export WINEDEBUG=-all
if [ ! -d "$WINEPREFIX" ]; then
  wineboot --init >/dev/null 2>&1 || true
fi
wine "$exe" "$@"
