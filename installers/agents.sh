#!/usr/bin/env bash
# Builds tether-agent, the VM's side of shared folders, for both VM architectures (static musl
# binaries, so any Linux VM runs them) and puts them in DIR as tether-agent-x86_64 and
# tether-agent-aarch64, where the engine looks for them (beside its own binary, or in
# ../lib/tether from it).
#
#   installers/agents.sh PROFILE DIR     PROFILE: debug or release
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${1:?usage: installers/agents.sh debug|release DIR}
dir=${2:?usage: installers/agents.sh debug|release DIR}
flag=()
out=$profile
# Release agents use the size-tuned profile in Cargo.toml.
[ "$profile" = release ] && { flag=(--profile agent); out=agent; }
mkdir -p "$dir"
for arch in x86_64 aarch64; do
  target=$arch-unknown-linux-musl
  # rust-lld links a static musl binary with the target's own C runtime objects. Debug info is
  # most of a debug build: the VM gets the code only.
  env "CARGO_TARGET_$(echo "$target" | tr a-z- A-Z_)_LINKER=rust-lld" \
    "CARGO_PROFILE_$(echo "$out" | tr a-z A-Z | sed 's/DEBUG/DEV/')_STRIP=debuginfo" \
    cargo build --locked -p tether-agent --target "$target" "${flag[@]}"
  cp "target/$target/$out/tether-agent" "$dir/tether-agent-$arch.tmp"
  mv -f "$dir/tether-agent-$arch.tmp" "$dir/tether-agent-$arch"
done
ls -l "$dir"/tether-agent-*
