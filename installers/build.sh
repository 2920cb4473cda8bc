#!/usr/bin/env bash
# Builds Tether's packages for the platform it runs on, with Tauri's bundler, and prints their
# sizes: .deb and .rpm on Linux, .app and .dmg on macOS, the NSIS setup.exe on Windows (Git Bash).
# Needs ui's npm packages (the bundler is @tauri-apps/cli) and builds the UI if it is missing.
# Signing is read from the environment (installers/README.md) and skipped, with a line, without it.
#
#   installers/build.sh           release packages (LTO, sized for the 15 MB goal)
#   installers/build.sh --debug   packages of the debug binaries a `cargo build` already made, for
#                                 the test run: the same files in the same places, built in seconds
#                                 rather than by a second, optimised compile of everything
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
case "${1:-}" in
  --debug) profile=debug ;;
  "") ;;
  *) echo "installers/build.sh: unknown argument '$1' (only --debug is known)" >&2; exit 2 ;;
esac

case "$(uname -s)" in
  Linux) bundles=deb,rpm ;;
  Darwin) bundles=app,dmg ;;
  MINGW* | MSYS* | CYGWIN*) bundles=nsis ;;
  *) echo "installers/build.sh: no packages are made for $(uname -s)" >&2; exit 1 ;;
esac

case "$bundles" in
  deb,rpm)
    echo "signing: Linux packages are not signed (apt and dnf verify the repository that serves them)" ;;
  app,dmg)
    if [ -z "${APPLE_SIGNING_IDENTITY:-}" ]; then
      echo "signing: APPLE_SIGNING_IDENTITY is not set, so the app is not signed or notarized; Gatekeeper will ask users to allow it"
    elif [ -z "${APPLE_ID:-}" ] || [ -z "${APPLE_PASSWORD:-}" ] || [ -z "${APPLE_TEAM_ID:-}" ]; then
      echo "signing: signed as $APPLE_SIGNING_IDENTITY; not notarized (set APPLE_ID, APPLE_PASSWORD and APPLE_TEAM_ID)"
    else
      echo "signing: signed as $APPLE_SIGNING_IDENTITY and notarized as $APPLE_ID"
    fi ;;
  nsis)
    if [ -z "${TAURI_WINDOWS_SIGNTOOL_PATH:-}" ]; then
      echo "signing: TAURI_WINDOWS_SIGNTOOL_PATH is not set, so setup.exe is not signed; SmartScreen will warn users"
    else
      echo "signing: setup.exe is signed with $TAURI_WINDOWS_SIGNTOOL_PATH"
    fi ;;
esac

[ -x ui/node_modules/.bin/tauri ] || (cd ui && npm install --no-save --no-audit --no-fund)
[ -f ui/dist/index.html ] || (cd ui && npm run build)
extra=()
if [ "$profile" = release ]; then
  # One cargo run for both binaries: the engine they share is compiled once, with one feature set.
  cargo build --release --locked -p tether-cli -p tether-app
  # The VM agents the packages carry (share::agent finds them in ../lib/tether, or Resources).
  installers/agents.sh release target/release
else
  for b in tether tether-app; do
    [ -x "target/debug/$b" ] || { echo "installers/build.sh --debug: target/debug/$b is missing; build it first (cargo build --workspace)" >&2; exit 1; }
  done
  # The config names target/release/tether for /usr/bin/tether; the debug package takes the
  # debug one.
  for a in x86_64 aarch64; do
    [ -x "target/debug/tether-agent-$a" ] || { echo "installers/build.sh --debug: target/debug/tether-agent-$a is missing; build it first (installers/agents.sh debug target/debug)" >&2; exit 1; }
  done
  files='{"/usr/bin/tether":"../target/debug/tether","/usr/lib/tether/tether-agent-x86_64":"../target/debug/tether-agent-x86_64","/usr/lib/tether/tether-agent-aarch64":"../target/debug/tether-agent-aarch64","/usr/share/man/man1/tether.1.gz":"../target/debug/share/tether.1.gz","/usr/share/bash-completion/completions/tether":"../target/debug/share/tether.bash","/usr/share/zsh/vendor-completions/_tether":"../target/debug/share/tether.zsh","/usr/share/fish/vendor_completions.d/tether.fish":"../target/debug/share/tether.fish"}'
  extra+=(--debug --config "{\"bundle\":{\"linux\":{\"deb\":{\"files\":$files},\"rpm\":{\"files\":$files}},\"macOS\":{\"files\":{\"MacOS/tether\":\"../target/debug/tether\"}}}}")
fi
# The man page and the shells' completions, made by the binary the packages carry, from its own
# command tree; the packages install them where man and the shells look.
share="target/$profile/share"
mkdir -p "$share"
"target/$profile/tether" man | gzip -9n >"$share/tether.1.gz"
for sh in bash zsh fish; do "target/$profile/tether" completion "$sh" >"$share/tether.$sh"; done
rm -rf "target/$profile/bundle"
# tether.exe goes into the installer as a resource; named only here, because the app's build
# script insists that every resource exists, and a cross-build of the app has no tether.exe.
[ "$bundles" = nsis ] && extra+=(--config installers/windows/tauri.conf.json)
ui/node_modules/.bin/tauri bundle --ci --bundles "$bundles" "${extra[@]}"

# The goal is at most 15 MB (10^6 bytes) per package.
find "target/$profile/bundle" -maxdepth 2 -type f \( -name '*.deb' -o -name '*.rpm' -o -name '*.dmg' -o -name '*-setup.exe' \) |
  sort | while read -r f; do
    bytes=$(wc -c <"$f")
    verdict="within the 15 MB goal"
    [ "$bytes" -le 15000000 ] || verdict="OVER the 15 MB goal"
    [ "$profile" = release ] || verdict="a debug build: the goal is for release packages"
    awk -v f="$f" -v b="$bytes" -v v="$verdict" 'BEGIN { printf "package %s: %.1f MB (%d bytes), %s\n", f, b / 1e6, b, v }'
  done
