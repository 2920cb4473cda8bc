#!/usr/bin/env bash
# Builds Tether and runs it. Installs the Rust toolchain if missing.
#   ./run.sh              build, install `tether` to ~/.local/bin, run the engine in the foreground
#   ./run.sh demo         (Linux, as root) also start a local demo VM from the test lab and connect it
#   ./run.sh -- ARGS      build, then run `tether ARGS`
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v cargo >/dev/null; then
  echo "installing the Rust toolchain with rustup" >&2
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
  # shellcheck disable=SC1091
  . "$HOME/.cargo/env"
fi
cargo build --locked --release -p tether-cli
bin_dir="$HOME/.local/bin"
mkdir -p "$bin_dir"
install -m 0755 target/release/tether "$bin_dir/tether"
echo "installed $bin_dir/tether"
case ":$PATH:" in *":$bin_dir:"*) ;; *) echo "add $bin_dir to your PATH to run \`tether\` from anywhere" ;; esac
tether="$bin_dir/tether"

case "${1:-}" in
  demo)
    [ "$(id -u)" = 0 ] || { echo "./run.sh demo starts a VM in a network namespace and needs root" >&2; exit 1; }
    tests/lab/lab.sh install
    tests/lab/lab.sh up
    eval "$(tests/lab/lab.sh env | sed 's/^/export /')"
    "$tether" vm list --json | grep -q '"demo"' || "$tether" vm add demo --host "$LAB_A_IP" --user "$LAB_USER" \
      --arch arm64 --identity "$LAB_KEY" --remote-socket "$LAB_A_SOCK" --accept-new
    "$tether" use demo
    "$tether" connect demo
    echo
    echo "Try:  eval \"\$($tether env)\" && docker run --rm $LAB_IMAGE echo hello"
    echo "Stop: $tether disconnect --all && tests/lab/lab.sh down"
    ;;
  --)
    shift
    exec "$tether" "$@"
    ;;
  "")
    echo "starting the Tether engine in the foreground (Ctrl-C stops it); use \`tether\` in another terminal"
    exec "$tether" daemon
    ;;
  *)
    sed -n '2,6p' "$0"; exit 2 ;;
esac
