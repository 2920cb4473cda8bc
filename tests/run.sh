#!/usr/bin/env bash
# Runs every Tether test on a Debian/Ubuntu machine: installs what is missing (Debian packages,
# the Rust toolchain), builds, lints, runs the unit tests, starts the lab (sshd and dockerd in
# network namespaces) and runs the end-to-end tests through the real `tether` binary.
# Needs root for the lab; re-runs itself with sudo when started as a normal user.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "tests/run.sh: run as root (the lab needs network namespaces)" >&2; exit 1; }
  exec sudo --preserve-env=PATH,HOME,CARGO_HOME,RUSTUP_HOME,CI bash "$0" "$@"
fi

step() { printf '\n==> %s\n' "$*"; }

step "packages"
missing=()
# Build tools, and the libraries the Tauri app links (WebKitGTK, tray, SVG, xdo, TLS).
# The app tests add a virtual display, WebKit's WebDriver, a D-Bus session and its Python bindings,
# and a real Secret Service (gnome-keyring) for the keychain tests.
# The Windows build cross-compiles with mingw-w64 (aws-lc-sys also wants nasm) and its tests run
# under Wine. The package test lists the .rpm (rpm2cpio, cpio) and validates the desktop entry.
for p in build-essential pkg-config util-linux libwebkit2gtk-4.1-dev libayatana-appindicator3-dev \
         librsvg2-dev libxdo-dev libssl-dev xvfb webkit2gtk-driver dbus python3-dbus python3-gi \
         gnome-keyring gcc-mingw-w64-x86-64 nasm wine wine64 rpm2cpio cpio desktop-file-utils; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
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
# the Windows target's standard library.
if command -v rustup >/dev/null; then
  for c in clippy rustfmt; do
    rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
  done
  rustup target list --installed | grep -qx x86_64-pc-windows-gnu || rustup target add x86_64-pc-windows-gnu
fi

# tauri-driver bridges WebDriver to WebKitWebDriver for the app's window.
command -v tauri-driver >/dev/null || [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/tauri-driver" ] ||
  cargo install --locked tauri-driver@2.1.0

results=$(mktemp)
step "web UI"
# The lock file pins versions; `npm ci` is not used because this npm records only this
# platform's optional packages and then rejects its own lock file.
(cd ui && npm install --no-save --no-audit --no-fund && npm run check && npm test 2>&1 | tee -a "$results" && npm run build)

# Incremental caches only speed up small edits and would double the target directory here.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

step "format"
# Fails fast, before the long build: rustfmt.toml holds the style, vendor/russh keeps upstream's.
cargo fmt --all --check

step "build"
# A full build fills about 2.5 GB of target/; say so up front rather than fail mid-link.
free_mb=$(df -Pm . | awk 'NR == 2 { print $4 }')
if [ "$free_mb" -lt 3072 ]; then
  echo "tests/run.sh: only ${free_mb} MB free on $(df -P . | awk 'NR == 2 { print $6 }'); the build needs about 3 GB (target/ and the lab). Free some space, or run 'cargo clean' on old builds." >&2
  exit 1
fi
cargo build --locked --workspace --all-targets

step "lint"
# vendor/russh is upstream's code with a small patch (vendor/russh/PATCHES.md): not ours to lint.
cargo clippy --locked --workspace --exclude russh --all-targets -- -D warnings

step "unit tests"
cargo test --locked --workspace --exclude tether-e2e --exclude russh 2>&1 | tee -a "$results"
# The patch carried in vendor/russh, tested in that crate.
cargo test --locked -p russh --lib flow_test 2>&1 | tee -a "$results"

step "windows"
# Everything built for Windows: core's unit tests run under Wine (named pipes for real) and
# tether.exe starts there; the end-to-end tests run tether.exe and tether-app.exe under Wine.
tests/wine/run.sh 2>&1 | tee -a "$results"
cargo build --locked --target x86_64-pc-windows-gnu -p tether-cli -p tether-app -p tether-pipe-client
tests/wine/run.sh --exe target/x86_64-pc-windows-gnu/debug/tether.exe --version

step "macos"
# The engine and the CLI checked for both Macs, with zig from PyPI as the C compiler.
tests/macos/check.sh

step "installers"
# The .deb and the .rpm from Tauri's bundler, in a release build; the end-to-end tests install the
# .deb, check it and remove it (tests/e2e/tests/package.rs).
installers/build.sh

step "lab"
trap 'tests/lab/lab.sh down >/dev/null 2>&1 || true' EXIT
tests/lab/lab.sh up

step "end-to-end tests"
# Every test runs even after a failure, so one run reports all of them.
set +e
cargo test --locked --no-fail-fast -p tether-e2e -- --test-threads="${TETHER_E2E_THREADS:-3}" 2>&1 | tee -a "$results"
e2e=${PIPESTATUS[0]}
set -e

step "benchmark, short"
# Proves the benchmark still runs end to end (tests/bench.sh is the real one); a debug build and
# small counts, so its numbers mean nothing here.
set +e
target/debug/bench --quick
bench=$?
set -e

# One closing line for the whole run, summed over every test binary.
echo
# Counts cargo's "test result:" lines and Vitest's "Tests  N passed | M failed" line.
sed 's/\x1b\[[0-9;]*m//g' "$results" |
awk '/^test result:|^ *Tests +[0-9]/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "%d passed, %d failed\n", p, f }'
rm -f "$results"
[ "$bench" = 0 ] || echo "the short benchmark failed (exit $bench)"
[ "$e2e" = 0 ] && exit "$bench"
exit "$e2e"
