#!/usr/bin/env bash
# Builds Tether and runs it, installing what it needs (Debian/Ubuntu packages, Rust, the UI's
# npm packages).
#   ./run.sh            build the tray app and the CLI, install them to ~/.local/bin, start the app
#   ./run.sh daemon     headless: build the CLI and run the engine in the foreground
#   sudo ./run.sh demo  (Linux) also start a local demo VM from the test lab and connect to it
set -euo pipefail
cd "$(dirname "$0")"
mode=${1:-app}

sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
# Whether Debian package $1 is installed: `dpkg -s` also succeeds for a removed package whose
# configuration files remain, which is not installed.
installed() { [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null)" = "ii " ]; }

need=()
for p in build-essential pkg-config curl; do installed "$p" || need+=("$p"); done
if [ "$mode" != daemon ]; then
  for p in libwebkit2gtk-4.1-dev libayatana-appindicator3-dev librsvg2-dev libxdo-dev libssl-dev; do
    installed "$p" || need+=("$p")
  done
  if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 18 ]; then
    need+=(nodejs npm)
  fi
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}"
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
if ! command -v cargo >/dev/null; then
  echo "installing the Rust toolchain with rustup" >&2
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
  # shellcheck disable=SC1091
  . "$HOME/.cargo/env"
fi

bin_dir="$HOME/.local/bin"
mkdir -p "$bin_dir"
cargo build --locked --release -p tether-cli
install -m 0755 target/release/tether "$bin_dir/tether"
if [ "$mode" != daemon ]; then
  (cd ui && npm install --no-save --no-audit --no-fund && npm run build)
  cargo build --locked --release -p tether-app
  install -m 0755 target/release/tether-app "$bin_dir/tether-app"
fi
echo "installed into $bin_dir"
case ":$PATH:" in *":$bin_dir:"*) ;; *) echo "add $bin_dir to your PATH to run \`tether\` from anywhere" ;; esac

case "$mode" in
  app)
    echo "starting Tether in the tray; the \`tether\` CLI talks to it"
    exec "$bin_dir/tether-app" ;;
  daemon)
    echo "starting the Tether engine in the foreground (Ctrl-C stops it); use \`tether\` in another terminal"
    exec "$bin_dir/tether" daemon ;;
  demo)
    [ "$(id -u)" = 0 ] || { echo "./run.sh demo starts a VM in a network namespace and needs root" >&2; exit 1; }
    tests/lab/lab.sh install
    tests/lab/lab.sh up
    eval "$(tests/lab/lab.sh env | sed 's/^/export /')"
    "$bin_dir/tether-app" &
    for _ in $(seq 1 100); do "$bin_dir/tether" status >/dev/null 2>&1 && break; sleep 0.1; done
    "$bin_dir/tether" vm list --json | grep -q '"demo"' || "$bin_dir/tether" vm add demo --host "$LAB_A_IP" \
      --user "$LAB_USER" --arch x86_64 --identity "$LAB_KEY" --remote-socket "$LAB_A_SOCK" --accept-new
    "$bin_dir/tether" use demo
    "$bin_dir/tether" connect demo
    echo
    echo "Try:  eval \"\$(tether env)\" && docker run --rm $LAB_IMAGE echo hello"
    echo "Stop: Quit Tether from the tray, then tests/lab/lab.sh down"
    wait ;;
  *) sed -n '2,7p' "$0"; exit 2 ;;
esac
