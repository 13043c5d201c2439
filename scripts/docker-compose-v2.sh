# Sourced by scripts/bench-docker.sh: find docker compose v2 (2.23 or later,
# for inline configs), or build it from the Go module proxy once and keep
# it in the cache for the next run.
#
# compose_find sets the array COMPOSE to the command that runs compose.

COMPOSE_VERSION=2.40.3
COMPOSE_MIN=2.23
COMPOSE_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/sluice/docker-compose-v$COMPOSE_VERSION"
COMPOSE=()
COMPOSE_FOUND=""

# compose_new_enough VERSION: true for 2.23 or later ("v2.40.3", "2.40.3").
compose_new_enough() {
  local v="${1#v}" major minor
  major="${v%%.*}"
  minor="${v#*.}"
  minor="${minor%%.*}"
  case "$major$minor" in *[!0-9]*|"") return 1 ;; esac
  [ "$major" -gt 2 ] || { [ "$major" -eq 2 ] && [ "$minor" -ge "${COMPOSE_MIN#2.}" ]; }
}

compose_find() {
  local v
  if v="$(docker compose version --short 2>/dev/null)" && compose_new_enough "$v"; then
    COMPOSE=(docker compose)
  elif v="$(docker-compose version --short 2>/dev/null)" && compose_new_enough "$v"; then
    COMPOSE=(docker-compose)
  elif [ -x "$COMPOSE_CACHE/docker-compose" ]; then
    COMPOSE=("$COMPOSE_CACHE/docker-compose")
    v="$("${COMPOSE[@]}" version --short)"
  else
    compose_build
    COMPOSE=("$COMPOSE_CACHE/docker-compose")
    v="$("${COMPOSE[@]}" version --short)"
  fi
  COMPOSE_FOUND="${v#v}"
  say "compose: ${COMPOSE[*]} (version $COMPOSE_FOUND)"
}

compose_build() {
  if ! command -v go >/dev/null 2>&1; then
    die "compose: no docker compose 2.23+ found and no Go toolchain to build one. Install the docker-compose-plugin package (Docker's apt repository) or put a compose v2 binary at $COMPOSE_CACHE/docker-compose."
  fi
  say "compose: no docker compose 2.23+ found (Debian's docker-compose is v1); building v$COMPOSE_VERSION from the Go module proxy into $COMPOSE_CACHE (about 2 minutes, once; later runs reuse it)"
  local work
  # Inside the run's scratch directory when there is one, so an interrupted
  # build leaves nothing behind.
  work="$(mktemp -d "${WORK:-/tmp}/sluice-compose-build.XXXXXX")"
  # go install pkg@version refuses a module with exclude directives, so the
  # build happens inside a scratch module that requires it.
  if ! (cd "$work" && go mod init sluice.local/compose-build >/dev/null 2>&1 &&
        GOFLAGS=-mod=mod go get "github.com/docker/compose/v2/cmd@v$COMPOSE_VERSION" >"$work/build.log" 2>&1 &&
        CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath \
          -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=v$COMPOSE_VERSION" \
          -o "$work/docker-compose" github.com/docker/compose/v2/cmd >>"$work/build.log" 2>&1); then
    tail -n 20 "$work/build.log" >&2 || true
    rm -rf "$work"
    die "compose: building docker compose v$COMPOSE_VERSION failed (the log is above). It needs the Go module proxy (GOPROXY); or install the docker-compose-plugin package."
  fi
  mkdir -p "$COMPOSE_CACHE"
  mv "$work/docker-compose" "$COMPOSE_CACHE/docker-compose"
  rm -rf "$work"
}
