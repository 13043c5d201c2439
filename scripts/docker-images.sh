# Sourced by scripts/bench-docker.sh: the images of the run.
#
# sluice and the harness come from CGO_ENABLED=0 binaries built on the host
# and copied into FROM scratch images (Dockerfile.local): no base image to
# pull, so this works without a registry. The peers use their pinned images
# when those are present or can be pulled, else images made from the
# binaries given by RATHOLE_BIN / FRPS_BIN / FRPC_BIN (or found on PATH),
# else they are skipped with a line saying how to supply them.
#
# Each peer sets SLUICEBENCH_<PEER>_... variables that
# docker-compose.bench.yml reads, and adds its compose profile to PROFILES.

PROFILES=()

RATHOLE_IMAGE=rapiz1/rathole:v0.5.0
FRPS_IMAGE=snowdreamtech/frps:0.66.0
FRPC_IMAGE=snowdreamtech/frpc:0.66.0

# images_context DIR: the build context of Dockerfile.local.
images_context() {
  local ctx="$1"
  mkdir -p "$ctx/tmp" "$ctx/peer" "$ctx/state/sluice"
  chmod 1777 "$ctx/tmp"
  chmod 0700 "$ctx/state/sluice"
  cp Dockerfile.local "$ctx/Dockerfile"
  say "images: building static sluice and sluice-bench on the host (CGO_ENABLED=0, $(go env GOVERSION))"
  CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$ctx/sluice" ./cmd/sluice
  CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$ctx/sluice-bench" ./cmd/sluice-bench
  if [ -r /etc/ssl/certs/ca-certificates.crt ]; then
    cp /etc/ssl/certs/ca-certificates.crt "$ctx/ca-certificates.crt"
  else
    # The benchmark's tunnels do not use the system roots (--insecure).
    say "images: note: no /etc/ssl/certs/ca-certificates.crt on the host; the sluice image gets an empty CA bundle"
    : >"$ctx/ca-certificates.crt"
  fi
}

# image_build CTX TARGET TAG [PEERDIR]
image_build() {
  local ctx="$1" target="$2" tag="$3" peer="${4:-peer}" log
  log="$ctx/build-$target-${tag//[:\/]/_}.log"
  # The legacy builder is enough for these COPY-only images and is what an
  # engine without buildx has; it prints a deprecation notice, kept in the log.
  if ! DOCKER_BUILDKIT=0 docker build --target "$target" --build-arg "PEER=$peer" -t "$tag" "$ctx" >"$log" 2>&1; then
    tail -n 20 "$log" >&2 || true
    die "images: docker build of $tag failed (the log is above)"
  fi
  say "images: built $tag ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.1f MB", $1/1e6}'))"
}

images_sluice() {
  local ctx="$1"
  image_build "$ctx" bench sluice-bench:local
  image_build "$ctx" sluice sluice:local
  # The whole output, then its first line: `| head -n 1` may close the pipe
  # before sluice writes its second line, and under pipefail the SIGPIPE
  # that ends sluice then ends this script.
  local v
  v="$("$ctx/sluice" version 2>/dev/null || true)"
  v="${v%%$'\n'*}"
  SLUICEBENCH_SLUICE_VERSION="${v//,/}"
  export SLUICEBENCH_SLUICE_VERSION="${SLUICEBENCH_SLUICE_VERSION:-sluice}; image sluice:local from Dockerfile.local"
}

# image_present IMAGE: true when the engine has IMAGE or can pull it.
image_present() {
  local img="$1"
  docker image inspect "$img" >/dev/null 2>&1 && return 0
  [ "${SLUICEBENCH_PULL:-1}" = 0 ] && return 1
  say "images: pulling $img"
  local out
  if out="$(timeout 300 docker pull -q "$img" 2>&1)"; then
    return 0
  fi
  say "images: cannot pull $img: $(printf '%s' "$out" | tail -n 1)"
  return 1
}

# peer_rootfs DIR BIN DEST: BIN at DEST inside DIR, with the shared
# libraries ldd lists for it (none for a static binary).
peer_rootfs() {
  local dir="$1" bin="$2" dest="$3" lib
  mkdir -p "$dir$(dirname "$dest")" "$dir/tmp"
  chmod 1777 "$dir/tmp"
  cp -L "$bin" "$dir$dest"
  chmod 0755 "$dir$dest"
  if ! ldd "$bin" >/dev/null 2>&1; then
    return 0 # "not a dynamic executable": static, nothing to add
  fi
  if ldd "$bin" | grep -q 'not found'; then
    die "images: $bin needs shared libraries this host lacks: $(ldd "$bin" | grep 'not found' | tr -s ' \t' ' ' | paste -sd ';')"
  fi
  for lib in $(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
    mkdir -p "$dir$(dirname "$lib")"
    cp -L "$lib" "$dir$lib"
  done
}

# peer_binary VAR NAME: the binary VAR names, else NAME on PATH, else "".
peer_binary() {
  local var="$1" name="$2" bin
  bin="${!var:-}"
  if [ -n "$bin" ]; then
    [ -x "$bin" ] || die "images: $var=$bin is not an executable file"
    printf '%s\n' "$bin"
    return 0
  fi
  command -v "$name" 2>/dev/null || true
}

# Versions go into the loadgen's -external specs, where a comma separates parts.
first_line() { "$@" 2>&1 | head -n 1 | tr -d ',' || true; }

peer_rathole() {
  local ctx="$1" bin
  if image_present "$RATHOLE_IMAGE"; then
    export SLUICEBENCH_RATHOLE_IMAGE="$RATHOLE_IMAGE" SLUICEBENCH_RATHOLE_VERSION="rathole 0.5.0; image $RATHOLE_IMAGE"
  elif bin="$(peer_binary RATHOLE_BIN rathole)" && [ -n "$bin" ]; then
    peer_rootfs "$ctx/peer-rathole" "$bin" /app/rathole
    image_build "$ctx" peer sluicebench-rathole:local peer-rathole
    export SLUICEBENCH_RATHOLE_IMAGE=sluicebench-rathole:local
    export SLUICEBENCH_RATHOLE_VERSION="$(first_line "$bin" --version); image sluicebench-rathole:local from $bin"
  else
    export SLUICEBENCH_SKIP_RATHOLE="no $RATHOLE_IMAGE image (cannot pull) and no rathole binary; set RATHOLE_BIN=/path/to/rathole (0.5.0; cargo install rathole --version 0.5.0) or docker load the image"
    say "peers: rathole skipped: $SLUICEBENCH_SKIP_RATHOLE"
    return 0
  fi
  PROFILES+=(rathole)
  say "peers: rathole: $SLUICEBENCH_RATHOLE_VERSION"
}

peer_frp() {
  local ctx="$1" frps frpc
  if image_present "$FRPS_IMAGE" && image_present "$FRPC_IMAGE"; then
    export SLUICEBENCH_FRPS_IMAGE="$FRPS_IMAGE" SLUICEBENCH_FRPC_IMAGE="$FRPC_IMAGE"
    export SLUICEBENCH_FRP_VERSION="frp 0.66.0; images $FRPS_IMAGE and $FRPC_IMAGE"
  elif frps="$(peer_binary FRPS_BIN frps)" && frpc="$(peer_binary FRPC_BIN frpc)" && [ -n "$frps" ] && [ -n "$frpc" ]; then
    peer_rootfs "$ctx/peer-frp" "$frps" /usr/bin/frps
    peer_rootfs "$ctx/peer-frp" "$frpc" /usr/bin/frpc
    image_build "$ctx" peer sluicebench-frp:local peer-frp
    export SLUICEBENCH_FRPS_IMAGE=sluicebench-frp:local SLUICEBENCH_FRPC_IMAGE=sluicebench-frp:local
    export SLUICEBENCH_FRP_VERSION="frp $(first_line "$frps" --version); image sluicebench-frp:local from $frps and $frpc"
  else
    export SLUICEBENCH_SKIP_FRP="no $FRPS_IMAGE / $FRPC_IMAGE images (cannot pull) and no frps and frpc binaries; set FRPS_BIN and FRPC_BIN (frp 0.66.0 from its GitHub releases; or go build github.com/fatedier/frp/cmd/frps and cmd/frpc at v0.66.0 in a scratch module) or docker load the images"
    say "peers: frp skipped: $SLUICEBENCH_SKIP_FRP"
    return 0
  fi
  PROFILES+=(frp)
  say "peers: frp: $SLUICEBENCH_FRP_VERSION"
}
