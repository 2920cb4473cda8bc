#!/usr/bin/env bash
# The full churn soak against the lab: 100,000 short Docker API connections, 1,000 tunnel adds and
# removes, 30 link cuts and 200 containers started and stopped with automatic forwarding on. It
# prints the engine's RSS, open files and live tasks at start and end, and fails on growth beyond
# 10 MiB or any leaked file or task. Then the flow-control tests at full size: a 1.09 GiB save into
# a 30 MB/s reader and 32 stalled saves of 287 MB. Takes minutes. Needs root (the lab). The suite
# (tests/run.sh) runs a one-minute size of the same soak, and the flow-control tests on less data.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || exec sudo --preserve-env=PATH,HOME,CARGO_HOME,RUSTUP_HOME bash "$0" "$@"
tests/lab/lab.sh install
cargo build --locked -p tether-cli
if [ ! -S /run/tether-lab/vms/a/docker.sock ]; then
  trap 'tests/lab/lab.sh down >/dev/null 2>&1 || true' EXIT
  tests/lab/lab.sh up
fi
cargo test --locked -p tether-e2e --test e2e -- --ignored --nocapture soak::full_churn_leaks_nothing
TETHER_E2E_FULL=1 cargo test --locked -p tether-e2e --test e2e -- --nocapture flowcontrol::
