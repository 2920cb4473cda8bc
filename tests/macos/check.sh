#!/bin/bash
# `cargo check` of the engine and the CLI for both macOS architectures, from Linux: zig (from
# PyPI) is the C compiler that aws-lc-sys needs, through ./zigcc. Fails on the first error.
set -euo pipefail
cd "$(dirname "$0")/../.."
zig=$PWD/target/zig
if [ ! -d "$zig/ziglang" ]; then
  python3 -m pip install --quiet --disable-pip-version-check --target "$zig" ziglang
fi
export PYTHONPATH="$zig${PYTHONPATH:+:$PYTHONPATH}"
for target in aarch64-apple-darwin x86_64-apple-darwin; do
  rustup target list --installed | grep -qx "$target" || rustup target add "$target"
  cc_var="CC_${target//-/_}"
  env "$cc_var=$PWD/tests/macos/zigcc-${target%%-*}-macos" \
    cargo check --locked --target "$target" -p tether-core -p tether-cli
  echo "macOS $target: tether-core and tether-cli check"
done
echo "macOS: tether-app is not checked: mac-notification-sys (the notification plugin's macOS" \
  "backend) builds Objective-C against Apple's Cocoa headers, which come only with Apple's SDK"
