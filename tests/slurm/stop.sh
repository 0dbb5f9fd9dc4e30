#!/bin/bash
# Stops the cluster tests/slurm/start.sh DIR started.
dir=$1
for pid in "$dir/ctld.pid" "$dir/d.pid" "$dir/munge/pid"; do
  [ -f "$pid" ] && kill "$(cat "$pid")" 2>/dev/null
done
exit 0
