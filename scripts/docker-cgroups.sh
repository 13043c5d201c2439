# Sourced by scripts/bench-docker.sh: where each system's containers sit
# in the cgroup tree, so the load generator can read their memory and CPU.
#
# A cgroup_parent lands in different places by engine set-up (cgroupfs
# driver: below the engine's own cgroup, which on cgroup v1 can differ per
# controller; systemd driver: a slice), so the paths are read from a
# running container's /proc/PID/cgroup instead of guessed. cgroup v2 has
# one tree; v1 has one per controller, and memory and CPU time come from
# the memory and cpuacct trees. The load generator sees the host's
# /sys/fs/cgroup at /host-cgroup.

cgroup_v2() { [ -f /sys/fs/cgroup/cgroup.controllers ]; }

# cgroup_of PID CONTROLLER: PID's cgroup path in CONTROLLER's tree (v1), or
# in the one tree (v2).
cgroup_of() {
  if cgroup_v2; then
    awk -F: '$1 == "0" {print $3; exit}' "/proc/$1/cgroup"
  else
    awk -F: -v c="$2" '{n = split($2, cs, ","); for (i = 1; i <= n; i++) if (cs[i] == c) {print $3; exit}}' "/proc/$1/cgroup"
  fi
}

# cgroup_dir CONTROLLER PATH: the directory on the host.
cgroup_dir() {
  if cgroup_v2; then printf '/sys/fs/cgroup%s\n' "$2"; else printf '/sys/fs/cgroup/%s%s\n' "$1" "$2"; fi
}

# cgroups_find SYSTEM EDGE_SERVICE: exports SLUICEBENCH_<SYSTEM>_CGROUPS,
# the cgroup parts of the system's -external spec: memory and CPU of the
# parent all its containers share, and of the edge container alone.
cgroups_find() {
  local sys="$1" svc="$2" cid pid var c edge parent spec="" key
  var="SLUICEBENCH_$(printf '%s' "$sys" | tr '[:lower:]' '[:upper:]')_CGROUPS"
  cid="$("${compose[@]}" ps -q "$svc" 2>/dev/null | head -n 1)"
  pid="$( [ -n "$cid" ] && docker inspect -f '{{if .State.Running}}{{.State.Pid}}{{end}}' "$cid" 2>/dev/null || true)"
  if [ -z "$pid" ] || [ "$pid" = 0 ]; then
    say "cgroups: $svc is not running, so $sys gets no memory or CPU figures; its log:"
    "${compose[@]}" logs --no-color --tail 15 "$svc" >&2 || true
    return 0
  fi
  for c in memory cpuacct; do
    edge="$(cgroup_of "$pid" "$c")"
    parent="$(dirname "$edge")"
    if [ -z "$edge" ] || [ ! -d "$(cgroup_dir "$c" "$parent")" ]; then
      say "cgroups: cannot find $svc's $c cgroup (read '$edge' from /proc/$pid/cgroup, no $(cgroup_dir "$c" "$parent")); $sys gets no memory or CPU figures"
      return 0
    fi
    key=mem; [ "$c" = cpuacct ] && key=cpu
    spec="$spec${spec:+,}$key-cgroup=$(cgroup_dir "$c" "$parent" | sed 's|^/sys/fs/cgroup|/host-cgroup|'),edge-$key-cgroup=$(cgroup_dir "$c" "$edge" | sed 's|^/sys/fs/cgroup|/host-cgroup|')"
  done
  export "$var=$spec"
  # The limits as the engine applied them go into what the results call
  # the system, so a report shows what every system ran under.
  local limits ver="SLUICEBENCH_$(printf '%s' "$sys" | tr '[:lower:]' '[:upper:]')_VERSION"
  limits="$(cgroup_limits "$(cgroup_of "$pid" cpu)" "$(cgroup_of "$pid" memory)")"
  export "$ver=${!ver:-$sys}; $limits"
  say "cgroups: $sys in $(cgroup_dir memory "$(dirname "$(cgroup_of "$pid" memory)")") ($limits)"
}

# cgroup_limits CPUPATH MEMPATH: the limits the engine set on a container.
cgroup_limits() {
  local cpu mem q per
  if cgroup_v2; then
    read -r q per <"/sys/fs/cgroup$1/cpu.max" || true
    mem="$(cat "/sys/fs/cgroup$2/memory.max" 2>/dev/null || echo '?')"
  else
    q="$(cat "/sys/fs/cgroup/cpu$1/cpu.cfs_quota_us" 2>/dev/null || echo '?')"
    per="$(cat "/sys/fs/cgroup/cpu$1/cpu.cfs_period_us" 2>/dev/null || echo 100000)"
    mem="$(cat "/sys/fs/cgroup/memory$2/memory.limit_in_bytes" 2>/dev/null || echo '?')"
  fi
  case "$q" in
    max|-1) cpu="no CPU limit" ;;
    ''|*[!0-9]*) cpu="CPU limit unknown" ;;
    *) cpu="$(awk -v q="$q" -v p="${per:-100000}" 'BEGIN {printf "%.2f CPU", q/p}')" ;;
  esac
  case "$mem" in
    ''|*[!0-9]*) mem="memory limit $mem" ;;
    *) mem="$(awk -v m="$mem" 'BEGIN {printf "%d MiB memory", m/1048576}')" ;;
  esac
  printf 'limits %s and %s per container\n' "$cpu" "$mem"
}

# cgroups_remove: the empty parents the cgroupfs driver made and leaves
# behind (one per controller tree on v1); systemd removes its own slices.
# rmdir refuses a cgroup that still has processes or children.
cgroups_remove() {
  [ "$(docker info -f '{{.CgroupDriver}}' 2>/dev/null)" = cgroupfs ] || return 0
  find /sys/fs/cgroup -maxdepth 8 -type d -name 'sluicebench-*.slice' 2>/dev/null | sort -r |
    while read -r d; do rmdir "$d" 2>/dev/null || true; done
}

# containers_incidents: one line per container of the run that stopped,
# restarted or was killed at its memory limit; the load generator cannot
# see these, so they go into the results' notes.
containers_incidents() {
  local id line
  for id in $("${compose[@]}" ps -a -q 2>/dev/null); do
    line="$(docker inspect -f '{{index .Config.Labels "com.docker.compose.service"}} {{.State.Status}} {{.State.ExitCode}} {{.State.OOMKilled}} {{.RestartCount}}' "$id" 2>/dev/null)" || continue
    set -- $line
    local what=""
    [ "$2" != running ] && what="$2 (exit $3)"
    [ "$4" = true ] && what="killed by the kernel at its memory limit (OOM)${what:+, now $what}"
    [ "$5" -gt 0 ] && what="${what:+$what; }restarted $5 time(s) by its restart policy"
    [ -n "$what" ] && printf 'container %s: %s\n' "$1" "$what"
  done
  return 0
}

# engine_line: what the results call the engine.
engine_line() {
  docker info -f 'Docker Engine {{.ServerVersion}} (cgroup v{{.CgroupVersion}}, {{.CgroupDriver}} driver, {{.Driver}} storage, kernel {{.KernelVersion}})' 2>/dev/null
}
