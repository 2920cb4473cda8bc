#!/usr/bin/env bash
# Runs every Tether test on a Debian/Ubuntu machine: installs what is missing (Debian packages,
# the Rust toolchain, cargo-nextest), builds and lints in one pass, runs the unit tests, the
# Windows build under Wine, the macOS check and the packages, starts the lab (sshd and dockerd in
# network namespaces) and runs the end-to-end tests through the real `tether` binary. Ends with a
# table of each step's wall time.
# Needs root for the lab; re-runs itself with sudo when started as a normal user.
#
# Compiler passes, and why each exists (docs/testing.md has the measurements):
#   1. build: the workspace, every target, debug, for this machine; the workspace's own crates go
#      through clippy-driver (tests/tools/lint-rustc), so this one pass also lints them. The unit
#      and end-to-end tests run these binaries (nextest builds nothing more).
#   2. windows: the engine's unit tests and the binaries for x86_64-pc-windows-gnu, one cargo run.
#   3. macos: `cargo check` of the engine and the CLI for both Macs, one cargo run.
# The packages are made from pass 1's binaries; the release build (LTO, the size goal) belongs to
# installers/build.sh and tests/bench.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "tests/run.sh: run as root (the lab needs network namespaces)" >&2; exit 1; }
  exec sudo --preserve-env=PATH,HOME,CARGO_HOME,RUSTUP_HOME,CI bash "$0" "$@"
fi

# Each step's wall time, printed as a table when the run ends, however it ends.
step_names=()
step_secs=()
step_name=
step_t0=
run_t0=$EPOCHREALTIME
end_step() {
  if [ -n "$step_name" ]; then
    step_names+=("$step_name")
    step_secs+=("$(awk -v a="$step_t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')")
    step_name=
  fi
}
step() {
  end_step
  step_name=$*
  step_t0=$EPOCHREALTIME
  printf '\n==> %s\n' "$*"
}
lab_up=0
on_exit() {
  local rc=$?
  end_step
  [ "$lab_up" = 0 ] || tests/lab/lab.sh down >/dev/null 2>&1 || true
  printf '\n%-22s %8s\n' "step" "wall"
  local i
  for i in "${!step_names[@]}"; do
    awk -v n="${step_names[$i]}" -v s="${step_secs[$i]}" 'BEGIN { printf "%-22s %5d:%02d\n", n, s / 60, s % 60 }'
  done
  awk -v a="$run_t0" -v b="$EPOCHREALTIME" 'BEGIN { s = b - a; printf "%-22s %5d:%02d\n", "total", s / 60, s % 60 }'
  exit "$rc"
}
trap on_exit EXIT

step "setup"
# Whether Debian package $1 is installed: `dpkg -s` also succeeds for a removed package whose
# configuration files remain, which is not installed.
installed() { [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null)" = "ii " ]; }
missing=()
# Build tools, and the libraries the Tauri app links (WebKitGTK, tray, SVG, xdo, TLS).
# The app tests add a virtual display, WebKit's WebDriver, a D-Bus session and its Python bindings,
# and a real Secret Service (gnome-keyring) for the keychain tests.
# The Windows build cross-compiles with mingw-w64 (aws-lc-sys also wants nasm) and its tests run
# under Wine. The package test lists the .rpm (rpm2cpio, cpio), validates the desktop entry, reads
# the man page (man-db) and parses the completions with each shell (zsh, fish).
for p in build-essential pkg-config util-linux libwebkit2gtk-4.1-dev libayatana-appindicator3-dev \
         librsvg2-dev libxdo-dev libssl-dev xvfb webkit2gtk-driver dbus python3-dbus python3-gi \
         gnome-keyring gcc-mingw-w64-x86-64 nasm wine wine64 rpm2cpio cpio desktop-file-utils qemu-user \
         man-db zsh fish; do
  installed "$p" || missing+=("$p")
done
# The UI builds with Node 18 or newer.
if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 18 ]; then
  missing+=(nodejs npm)
fi
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
tests/lab/lab.sh install
if ! command -v cargo >/dev/null; then
  echo "installing the Rust toolchain with rustup" >&2
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --component clippy,rustfmt
  # shellcheck disable=SC1091
  . "$HOME/.cargo/env"
fi
# Toolchains installed without them (rustup's minimal profile) get the two linters here, and
# the other targets' standard libraries.
if command -v rustup >/dev/null; then
  for c in clippy rustfmt; do
    rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
  done
  for t in x86_64-pc-windows-gnu aarch64-apple-darwin x86_64-apple-darwin x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
    rustup target list --installed | grep -qx "$t" || rustup target add "$t"
  done
fi
# nextest runs the tests: every test in a process of its own, all binaries' tests in one queue on
# both cores, a time per test and a deadline for a hung one (.config/nextest.toml).
command -v cargo-nextest >/dev/null || [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo-nextest" ] ||
  cargo install --locked cargo-nextest
# tauri-driver bridges WebDriver to WebKitWebDriver for the app's window.
command -v tauri-driver >/dev/null || [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/tauri-driver" ] ||
  cargo install --locked tauri-driver@2.1.0

results=$(mktemp)
step "web UI"
# The lock file pins versions; `npm ci` is not used because this npm records only this
# platform's optional packages and then rejects its own lock file.
(cd ui && npm install --no-save --no-audit --no-fund && npm run check && npm test 2>&1 | tee -a "$results" && npm run build)

# Incremental caches only speed up small edits and would double the build directory here.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
# Compiled dependencies live in this machine's cache, not in the clone, so a new clone (CI's)
# starts warm. Cargo keys every artefact by its inputs (the crate's source, version, features,
# profile and compiler; for the workspace's own crates, their path and files too), so a stale
# artefact is never used; a machine without the cache builds it. Final binaries stay in target/.
export TETHER_CACHE_DIR=${TETHER_CACHE_DIR:-$(getent passwd "$(id -u)" | cut -d: -f6)/.cache/tether}
export CARGO_BUILD_BUILD_DIR="${CARGO_BUILD_BUILD_DIR:-$TETHER_CACHE_DIR/build}"
# Every clone adds its own crates' artefacts; past 40 GB the cache starts over.
if [ -d "$CARGO_BUILD_BUILD_DIR" ] && [ "$(du -sm "$CARGO_BUILD_BUILD_DIR" | cut -f1)" -gt 40960 ]; then
  echo "the build cache $CARGO_BUILD_BUILD_DIR is over 40 GB: starting it over"
  rm -rf "$CARGO_BUILD_BUILD_DIR"
fi
# One pass builds and lints (see the top of this file). vendor/russh is upstream's code with a
# small patch (vendor/russh/PATCHES.md): compiled, not linted as ours.
export RUSTC_WORKSPACE_WRAPPER="$PWD/tests/tools/lint-rustc"
CLIPPY_DRIVER=$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver)
export CLIPPY_DRIVER
export CLIPPY_ARGS="-Dwarnings__CLIPPY_HACKERY__"

step "format"
# Fails fast, before the long build: rustfmt.toml holds the style, vendor/russh keeps upstream's.
cargo fmt --all --check

step "build and lint"
# A cold build fills about 5 GB of the cache and 1 GB of target/; say so up front rather than
# fail mid-link.
mkdir -p "$CARGO_BUILD_BUILD_DIR"
for d in . "$CARGO_BUILD_BUILD_DIR"; do
  free_mb=$(df -Pm "$d" | awk 'NR == 2 { print $4 }')
  if [ "$free_mb" -lt 6144 ]; then
    echo "tests/run.sh: only ${free_mb} MB free on $(df -P "$d" | awk 'NR == 2 { print $6 }'); the build needs about 6 GB (the build cache, target/ and the lab). Free some space, or remove $CARGO_BUILD_BUILD_DIR." >&2
    exit 1
  fi
done
cargo build --locked --workspace --all-targets

step "vm agents"
# The VM's side of shared folders, static for any Linux VM, one per architecture, beside the
# binaries that upload it (share::agent finds it there). rust-lld links both: no C toolchain
# per target.
installers/agents.sh debug target/debug

step "unit tests"
# The same packages and targets as the build, so nothing is compiled again. The end-to-end tests
# wait for the lab; of vendor/russh only the patch's own tests run (vendor/russh/PATCHES.md).
cargo nextest run --locked --workspace --all-targets --no-fail-fast --profile unit \
  -E 'not package(tether-e2e) and (not package(russh) or test(flow_test))' 2>&1 | tee -a "$results"

step "windows"
# Everything built for Windows in one cargo run: core's unit tests run under Wine (named pipes for
# real) and tether.exe starts there; the end-to-end tests run tether.exe and tether-app.exe.
tests/wine/run.sh 2>&1 | tee -a "$results"
tests/wine/run.sh --exe target/x86_64-pc-windows-gnu/debug/tether.exe --version

step "macos"
# The engine and the CLI checked for both Macs, with zig from PyPI as the C compiler.
tests/macos/check.sh

step "installers"
# The .deb and the .rpm from Tauri's bundler, made of the build's debug binaries; the end-to-end
# tests install the .deb, check it and remove it (tests/e2e/tests/package.rs). The release
# packages and their size goal are installers/build.sh's.
installers/build.sh --debug
export TETHER_BUNDLE_DIR="$PWD/target/debug/bundle"

step "lab"
lab_up=1
tests/lab/lab.sh up

step "end-to-end tests"
# Every test runs even after a failure, so one run reports all of them.
set +e
cargo nextest run --locked --workspace --all-targets --no-fail-fast --profile e2e \
  -E 'package(tether-e2e)' 2>&1 | tee -a "$results"
e2e=${PIPESTATUS[0]}
set -e

step "benchmark, short"
# Proves the benchmark still runs end to end (tests/bench.sh is the real one); a debug build and
# small counts, so its numbers mean nothing here.
set +e
target/debug/bench --quick
bench=$?
set -e
end_step

# One closing line for the whole run, summed over every test binary.
echo
# Counts nextest's "Summary [...] N tests run: P passed, F failed" lines, libtest's "test result:"
# lines (the Windows run) and Vitest's "Tests  N passed | M failed" line.
sed 's/\x1b\[[0-9;]*m//g' "$results" |
awk '/^test result:|^ *Tests +[0-9]/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     /^ *Summary \[/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "%d passed, %d failed\n", p, f }'
rm -f "$results"
[ "$bench" = 0 ] || echo "the short benchmark failed (exit $bench)"
[ "$e2e" = 0 ] && exit "$bench"
exit "$e2e"
