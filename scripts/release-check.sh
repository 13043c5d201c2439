#!/usr/bin/env bash
# Checks that a release is reproducible: builds `make release` here, then
# again from a fresh clone of the same commit at another path, with an empty
# build cache, another time zone and umask, and compares SHA256SUMS.
# Usage: scripts/release-check.sh ["linux/amd64 windows/amd64 ..."]
set -euo pipefail
cd "$(dirname "$0")/.."
targets="${1:-linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64}"
say() { echo "release-check: $*"; }
if [ -n "$(git status --porcelain)" ]; then
  say "the tree has uncommitted changes; the check compares builds of HEAD: commit or stash them first" >&2
  git status --short >&2
  exit 2
fi
work="$(mktemp -d "${TMPDIR:-/tmp}/sluice-release-check.XXXXXX")"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
rev="$(git rev-parse HEAD)"

say "first build of $rev (${targets})"
make --no-print-directory release DIST="$work/a" RELEASE_TARGETS="$targets" >/dev/null

say "second build from a clone in $work/src with an empty build cache"
git clone -q --shared . "$work/src"
git -C "$work/src" checkout -q --detach "$rev"
(
  cd "$work/src"
  umask 077
  export TZ=Pacific/Chatham GOCACHE="$work/gocache"
  make --no-print-directory release DIST="$work/b" RELEASE_TARGETS="$targets" >/dev/null
)

if cmp -s "$work/a/SHA256SUMS" "$work/b/SHA256SUMS"; then
  say "the two builds are byte for byte the same:"
  cat "$work/a/SHA256SUMS"
else
  say "the two builds differ:" >&2
  diff "$work/a/SHA256SUMS" "$work/b/SHA256SUMS" >&2 || true
  exit 1
fi
