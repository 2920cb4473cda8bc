#!/usr/bin/env bash
# Benchmarks Tether against OpenSSH `ssh -L` (alone and over a ControlMaster), `docker -H ssh://`
# and the direct socket on the lab, at 0, 20 and 100 ms RTT in one run, and prints ratios.
# Needs root (the lab). Builds in release mode so the numbers mean something. `--quick`: the
# short version the test run uses.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || exec sudo --preserve-env=PATH,HOME,CARGO_HOME,RUSTUP_HOME bash "$0" "$@"
tests/lab/lab.sh install
cargo build --locked --release -p tether-cli -p tether-e2e --bins
if [ ! -S /run/tether-lab/vms/a/docker.sock ]; then
  trap 'tests/lab/lab.sh down >/dev/null 2>&1 || true' EXIT
  tests/lab/lab.sh up
fi
target/release/bench "$@"
