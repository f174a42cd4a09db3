#!/usr/bin/env bash
# Stop a cluster started by scripts/ceph/start-rgw.sh and delete its directory.
# Usage: stop-rgw.sh [--keep] DIR   (--keep: leave the directory, e.g. to read its logs)
set -uo pipefail
KEEP=0
if [ "${1:-}" = "--keep" ]; then KEEP=1; shift; fi
DIR="${1:?usage: stop-rgw.sh [--keep] DIR}"
[ -f "$DIR/ceph.conf" ] || { echo "stop-rgw.sh: $DIR is not a cluster dir of start-rgw.sh (no ceph.conf)" >&2; exit 2; }
# the daemons' own pid files: only the processes this cluster started
pids=()
for f in "$DIR"/run/*.pid; do
  [ -f "$f" ] || continue
  p="$(cat "$f")"
  [ -n "$p" ] && kill -0 "$p" 2>/dev/null && pids+=("$p")
done
for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
# up to 10 s for a clean exit, then -9
for _ in $(seq 1 50); do
  alive=0
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
  [ $alive = 0 ] && break
  sleep 0.2
done
# running: the pid exists and is not a zombie (a daemon reparented to a slow reaper lingers as Z)
running() { [ -e "/proc/$1" ] && ! grep -q '^[0-9]* (.*) Z' "/proc/$1/stat" 2>/dev/null; }
for p in "${pids[@]}"; do running "$p" && kill -KILL "$p" 2>/dev/null; done
# SIGKILL is asynchronous: wait until they are gone, so "stopped" means stopped (a loaded machine
# took longer than the 10 s above and a caller saw the daemon still alive); up to 10 s more
for _ in $(seq 1 50); do
  alive=0
  for p in "${pids[@]}"; do running "$p" && alive=1; done
  [ $alive = 0 ] && break
  sleep 0.2
done
[ $KEEP = 1 ] || rm -rf "$DIR"
exit 0
