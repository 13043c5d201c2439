# Sourced by scripts/bench-docker.sh: find a Docker engine, or start one of
# our own for the length of the run and stop it again afterwards.
#
# engine_up sets DOCKER_HOST when it starts an engine; engine_down stops
# only the engine engine_up started (by its PID) and removes its state.

ENGINE_PID=""
ENGINE_DIR=""

engine_up() {
  if ! command -v docker >/dev/null 2>&1; then
    die "no docker command. On Debian or Ubuntu: apt-get install -y docker.io (or install Docker Engine: https://docs.docker.com/engine/install/)."
  fi
  if docker info >/dev/null 2>&1; then
    say "engine: using the running Docker engine at ${DOCKER_HOST:-the default socket} (server $(docker version -f '{{.Server.Version}}' 2>/dev/null))"
    return 0
  fi
  say "engine: no Docker engine answers at ${DOCKER_HOST:-the default socket} (docker info failed); starting one for this run"
  if ! command -v dockerd >/dev/null 2>&1; then
    die "engine: dockerd is not installed, so none can be started. Install it (Debian: apt-get install -y docker.io) or start your Docker engine and set DOCKER_HOST."
  fi
  if [ "$(id -u)" != 0 ]; then
    die "engine: starting dockerd needs root. Start your Docker engine (e.g. systemctl start docker, or rootless Docker) and run again, or run as root."
  fi
  # Containers inherit the engine's hard open-file limit and may not be
  # able to raise it (no CAP_SYS_RESOURCE in some sandboxes): ask for no more.
  local hard
  hard="$(ulimit -Hn)"
  if [ "$hard" != unlimited ] && [ "$hard" -lt 65536 ]; then
    export SLUICEBENCH_NOFILE="$hard"
    say "engine: open-file limit per container $hard (this shell's hard limit; 65536 wanted)"
  fi
  ENGINE_DIR="$(mktemp -d /tmp/sluice-dockerd.XXXXXX)"
  # No iptables rules and no default bridge: the engine leaves the host's
  # network as it was; compose's own bridge network joins the containers.
  # vfs works on every filesystem (overlayfs does not nest everywhere).
  dockerd --iptables=false --ip6tables=false --bridge=none --storage-driver=vfs \
    --data-root "$ENGINE_DIR/data" --exec-root "$ENGINE_DIR/exec" \
    --pidfile "$ENGINE_DIR/dockerd.pid" -H "unix://$ENGINE_DIR/docker.sock" \
    >"$ENGINE_DIR/dockerd.log" 2>&1 &
  ENGINE_PID=$!
  export DOCKER_HOST="unix://$ENGINE_DIR/docker.sock"
  local i
  for i in $(seq 1 120); do
    if docker info >/dev/null 2>&1; then
      say "engine: dockerd $(docker version -f '{{.Server.Version}}') started (pid $ENGINE_PID, state in $ENGINE_DIR, log $ENGINE_DIR/dockerd.log)"
      return 0
    fi
    if ! kill -0 "$ENGINE_PID" 2>/dev/null; then
      tail -n 20 "$ENGINE_DIR/dockerd.log" >&2 || true
      ENGINE_PID=""
      die "engine: dockerd exited at start (its log is above). Another engine may hold /var/lib/docker's lock, or the kernel lacks cgroups; start Docker yourself and set DOCKER_HOST."
    fi
    sleep 0.5
  done
  tail -n 20 "$ENGINE_DIR/dockerd.log" >&2 || true
  die "engine: dockerd did not answer within 60 s (its log is above)."
}

engine_down() {
  [ -n "$ENGINE_PID" ] || return 0
  say "engine: stopping the dockerd this run started (pid $ENGINE_PID)"
  kill -TERM "$ENGINE_PID" 2>/dev/null || true
  local i
  for i in $(seq 1 60); do
    kill -0 "$ENGINE_PID" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$ENGINE_PID" 2>/dev/null; then
    say "engine: dockerd did not stop within 30 s; killing it"
    kill -KILL "$ENGINE_PID" 2>/dev/null || true
  fi
  wait "$ENGINE_PID" 2>/dev/null || true
  ENGINE_PID=""
  # dockerd unmounts what it mounted when it stops; anything left (after a
  # kill) is unmounted here, deepest first, before the state is removed.
  local m
  awk -v d="$ENGINE_DIR" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf "$ENGINE_DIR"
  ENGINE_DIR=""
}
