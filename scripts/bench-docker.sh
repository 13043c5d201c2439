#!/usr/bin/env bash
# make bench-docker: the benchmark in containers (docker-compose.bench.yml).
# Results in bench/out/docker.json; BENCHMARKS.md's Docker section and its
# charts are regenerated from them.
#
# Usage: scripts/bench-docker.sh [preset]   (full by default; quick is short)
#
# On a machine with nothing but Go and an engine package (dockerd) this
# starts its own engine (as root), builds compose v2 once, builds every
# image from host binaries and needs no registry. Knobs:
#   SLUICEBENCH_PRESET      full or quick (the argument wins)
#   RATHOLE_BIN, FRPS_BIN, FRPC_BIN
#                           peer binaries for when their pinned images
#                           cannot be pulled (else looked up on PATH)
#   SLUICEBENCH_PULL=0      do not try to pull the peers' pinned images
#   SLUICEBENCH_KEEP=1      leave the containers running afterwards (only
#                           with an engine of your own)
set -euo pipefail
cd "$(dirname "$0")/.."

T0=$(date +%s)
say() { printf 'bench-docker [%3ss]: %s\n' "$(( $(date +%s) - T0 ))" "$*"; }
die() { printf 'bench-docker: %s\n' "$*" >&2; exit 1; }

. scripts/docker-engine.sh
. scripts/docker-compose-v2.sh
. scripts/docker-images.sh
. scripts/docker-cgroups.sh

export SLUICEBENCH_PRESET="${1:-${SLUICEBENCH_PRESET:-full}}"
case "$SLUICEBENCH_PRESET" in
  full|quick) ;;
  *) die "preset $SLUICEBENCH_PRESET: want full or quick" ;;
esac
command -v go >/dev/null 2>&1 || die "no Go toolchain on PATH: the images are made from binaries built on the host (https://go.dev/dl/)"

WORK="$(mktemp -d /tmp/sluice-bench-docker.XXXXXX)"
COMPOSE_UP=""
cleanup() {
  local rc=$?
  set +e
  if [ -n "$COMPOSE_UP" ]; then
    if [ "${SLUICEBENCH_KEEP:-0}" = 1 ] && [ -z "$ENGINE_PID" ]; then
      say "leaving the containers running (SLUICEBENCH_KEEP=1); remove them with: ${COMPOSE[*]} -f docker-compose.bench.yml --profile rathole --profile frp --profile loadgen down"
    else
      say "removing the containers and the network"
      "${COMPOSE[@]}" -f docker-compose.bench.yml --profile rathole --profile frp --profile loadgen down --remove-orphans --timeout 5 >"$WORK/down.log" 2>&1 ||
        { cat "$WORK/down.log" >&2; say "could not remove every container (log above)"; }
      cgroups_remove
    fi
  fi
  engine_down
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "preset $SLUICEBENCH_PRESET; every step prints what it does"
engine_up
compose_find
export SLUICEBENCH_ENGINE="$(engine_line), compose $COMPOSE_FOUND"
SLUICEBENCH_COMMIT="$(git rev-parse --short=12 HEAD 2>/dev/null || true)"
if [ -n "$SLUICEBENCH_COMMIT" ] && [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  SLUICEBENCH_COMMIT="$SLUICEBENCH_COMMIT-dirty"
fi
export SLUICEBENCH_COMMIT

images_context "$WORK/ctx"
images_sluice "$WORK/ctx"
peer_rathole "$WORK/ctx"
peer_frp "$WORK/ctx"

compose=("${COMPOSE[@]}" -f docker-compose.bench.yml)
for p in "${PROFILES[@]}"; do compose+=(--profile "$p"); done
mkdir -p bench/out
rm -f bench/out/docker.json

say "start: the target, sluice${PROFILES[*]:+ and ${PROFILES[*]}} (the limits of docker-compose.bench.yml, the same for every tunnel container)"
COMPOSE_UP=1
if ! "${compose[@]}" up -d --no-build --quiet-pull >"$WORK/up.log" 2>&1; then
  cat "$WORK/up.log" >&2
  die "start: compose up failed (log above)"
fi
cgroups_find sluice sluice-server
for p in "${PROFILES[@]}"; do
  case "$p" in
    rathole) cgroups_find rathole rathole-server ;;
    frp) cgroups_find frp frps ;;
  esac
done

say "run: the load generator (its progress follows)"
set +e
# As the invoking user, so that bench/out/docker.json is theirs to rewrite.
"${compose[@]}" run --rm -T --no-deps --user "$(id -u):$(id -g)" loadgen
rc=$?
set -e
if [ "$rc" != 0 ] || [ ! -s bench/out/docker.json ]; then
  say "run: the load generator exited with status $rc; the systems' last log lines:"
  "${compose[@]}" logs --no-color --tail 15 >&2 || true
  [ -s bench/out/docker.json ] || die "run: no bench/out/docker.json was written"
fi

notes=()
while IFS= read -r line; do
  [ -n "$line" ] || continue
  say "engine: $line"
  notes+=(-note "$line")
done < <(containers_incidents)
say "report: the table, then BENCHMARKS.md's Docker section and bench/charts/docker/"
go run ./cmd/sluice-bench report -table -results bench/out/docker.json
go run ./cmd/sluice-bench report -docker bench/out/docker.json "${notes[@]}"
say "done: results in bench/out/docker.json, Docker section of BENCHMARKS.md regenerated"
exit "$rc"
