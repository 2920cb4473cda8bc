#!/usr/bin/env bash
# Benchmarks Tether against OpenSSH `ssh -L` and `docker -H ssh://` on the lab, in one run.
# Needs root (the lab). Builds in release mode so the numbers mean something.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || exec sudo --preserve-env=PATH,HOME,CARGO_HOME,RUSTUP_HOME bash "$0" "$@"
tests/lab/lab.sh install
cargo build --locked --release -p tether-cli
cargo build --locked --release -p tether-e2e --bin bench
if [ ! -S /run/tether-lab/vms/a/docker.sock ]; then
  trap 'tests/lab/lab.sh down >/dev/null 2>&1 || true' EXIT
  tests/lab/lab.sh up
fi
target/release/bench
