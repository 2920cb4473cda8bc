#!/usr/bin/env bash
# The tray app's idle footprint (RSS, PSS and CPU of every process, window closed) side by side
# with an empty Tauri 2 tray app, on Xvfb, with one lab VM connected. Needs root (the lab).
# Usage: tests/footprint.sh [SECONDS]   (CPU window, default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || exec sudo --preserve-env=PATH,HOME,CARGO_HOME,RUSTUP_HOME bash "$0" "$@"
tests/lab/lab.sh install
if [ ! -f ui/dist/index.html ]; then (cd ui && npm install --no-save && npm run build); fi
cargo build --locked --release -p tether-cli -p tether-app --bin tether --bin tether-app --example empty_tray
cargo build --locked --release -p tether-e2e --bin footprint
if [ ! -S /run/tether-lab/vms/a/docker.sock ]; then
  trap 'tests/lab/lab.sh down >/dev/null 2>&1 || true' EXIT
  tests/lab/lab.sh up
fi
target/release/footprint "$@"
