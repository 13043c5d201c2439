#!/usr/bin/env bash
# make bench-docker: the benchmark in containers (docker-compose.bench.yml),
# results in bench/out/docker.json, then the table.
# Usage: scripts/bench-docker.sh [preset]   (full by default; quick is faster)
set -euo pipefail
cd "$(dirname "$0")/.."
export SLUICEBENCH_PRESET="${1:-${SLUICEBENCH_PRESET:-full}}"
if ! docker info >/dev/null 2>&1; then
  echo "bench-docker: no Docker engine reachable (docker info failed). Install Docker Engine with the compose plugin (2.23+), or run the process-based benchmark with 'make bench'." >&2
  exit 1
fi
if ! docker compose version >/dev/null 2>&1; then
  echo "bench-docker: the docker compose plugin is missing; install docker-compose-plugin (2.23+)." >&2
  exit 1
fi
# Where the containers' cgroup parents appear inside the load generator.
if [ "$(docker info -f '{{.CgroupDriver}}')" = "systemd" ]; then
  export SLUICEBENCH_CGROUP=/host-cgroup/sluicebench.slice
else
  export SLUICEBENCH_CGROUP=/host-cgroup
fi
if [ "$(docker info -f '{{.CgroupVersion}}')" != "2" ]; then
  echo "bench-docker: note: cgroup v1 host; memory figures need cgroup v2 and will be missing." >&2
fi
mkdir -p bench/out
compose=(docker compose -f docker-compose.bench.yml)
trap '"${compose[@]}" down --remove-orphans >/dev/null 2>&1 || true' EXIT
"${compose[@]}" build
"${compose[@]}" up --abort-on-container-exit --exit-code-from loadgen
go run ./cmd/sluice-bench report -table -results bench/out/docker.json
echo "bench-docker: results in bench/out/docker.json (regenerate a report from it with: go run ./cmd/sluice-bench report -results bench/out/docker.json -md <file>)"
