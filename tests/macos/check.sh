#!/bin/bash
# `cargo check` of the engine and the CLI for both macOS architectures, from Linux, in one cargo
# run (the two targets' crates compile side by side): zig (from PyPI) is the C compiler that
# aws-lc-sys needs, through ./zigcc. Fails on the first error.
set -euo pipefail
cd "$(dirname "$0")/../.."
# zig lives in the machine's cache (tests/run.sh's TETHER_CACHE_DIR), not in the clone.
zig=${TETHER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tether}/zig
if [ ! -d "$zig/ziglang" ]; then
  python3 -m pip install --quiet --disable-pip-version-check --target "$zig" ziglang
fi
export PYTHONPATH="$zig${PYTHONPATH:+:$PYTHONPATH}"
# The compiler wrappers too, under a directory named by their hash: the C dependencies' builds
# (aws-lc-sys) are redone when CC_<target> names another path, so a path that is the same in
# every clone lets a new clone reuse them, and a changed wrapper gets a new path.
bin=$zig/bin-$(sha256sum tests/macos/zigcc | cut -c1-16)
if [ ! -x "$bin/zigcc" ]; then
  mkdir -p "$bin.new"
  cp tests/macos/zigcc "$bin.new/zigcc"
  for arch in aarch64 x86_64; do ln -sf zigcc "$bin.new/zigcc-$arch-macos"; done
  rm -rf "$bin" && mv "$bin.new" "$bin"
fi
targets=(aarch64-apple-darwin x86_64-apple-darwin)
args=()
for target in "${targets[@]}"; do
  rustup target list --installed | grep -qx "$target" || rustup target add "$target"
  export "CC_${target//-/_}=$bin/zigcc-${target%%-*}-macos"
  args+=(--target "$target")
done
cargo check --locked "${args[@]}" -p tether-core -p tether-cli
echo "macOS ${targets[*]}: tether-core and tether-cli check"
echo "macOS: tether-app is not checked: mac-notification-sys (the notification plugin's macOS" \
  "backend) builds Objective-C against Apple's Cocoa headers, which come only with Apple's SDK"
