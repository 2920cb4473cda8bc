#!/bin/bash
# `cargo check` of the engine and the CLI for both macOS architectures, from Linux, in one cargo
# run (the two targets' crates compile side by side): zig (from PyPI) is the C compiler that
# aws-lc-sys needs, through ./zigcc. Fails on the first error.
set -euo pipefail
cd "$(dirname "$0")/../.."
zig=$PWD/target/zig
if [ ! -d "$zig/ziglang" ]; then
  python3 -m pip install --quiet --disable-pip-version-check --target "$zig" ziglang
fi
export PYTHONPATH="$zig${PYTHONPATH:+:$PYTHONPATH}"
targets=(aarch64-apple-darwin x86_64-apple-darwin)
args=()
for target in "${targets[@]}"; do
  rustup target list --installed | grep -qx "$target" || rustup target add "$target"
  export "CC_${target//-/_}=$PWD/tests/macos/zigcc-${target%%-*}-macos"
  args+=(--target "$target")
done
cargo check --locked "${args[@]}" -p tether-core -p tether-cli
echo "macOS ${targets[*]}: tether-core and tether-cli check"
echo "macOS: tether-app is not checked: mac-notification-sys (the notification plugin's macOS" \
  "backend) builds Objective-C against Apple's Cocoa headers, which come only with Apple's SDK"
