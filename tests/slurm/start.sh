#!/bin/bash
# Starts a one-node Slurm cluster for tests, all of its state in DIR:
# munged (Debian's munge, for authentication), slurmctld and slurmd on
# 127.0.0.1 at the given ports. Prints nothing; DIR/slurm.conf is the
# configuration for sbatch and squeue (SLURM_CONF). tests/slurm/stop.sh DIR
# stops it. Needs root and Debian's slurmctld, slurmd, slurm-client and
# munge (scripts/test.sh installs them).
set -euo pipefail
dir=$1 ctld_port=$2 d_port=$3
for tool in munged slurmctld slurmd sbatch sinfo; do
  command -v "$tool" >/dev/null || { echo "start.sh: $tool is not installed (apt-get install slurmctld slurmd slurm-client munge)" >&2; exit 1; }
done
chmod 755 "$dir"
mkdir -p "$dir/munge" "$dir/ctld" "$dir/d" "$dir/log"
# munged runs as its own user and wants a key only it can read.
dd if=/dev/urandom of="$dir/munge/key" bs=1 count=1024 status=none
chown -R munge:munge "$dir/munge"
chmod 711 "$dir/munge"
chmod 400 "$dir/munge/key"
runuser -u munge -- munged --key-file="$dir/munge/key" --socket="$dir/munge/socket" \
  --pid-file="$dir/munge/pid" --log-file="$dir/munge/log" --seed-file="$dir/munge/seed"
node=$(hostname)
cat > "$dir/slurm.conf" <<CONF
ClusterName=advxtest
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
AuthType=auth/munge
AuthInfo=socket=$dir/munge/socket
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$dir/ctld
SlurmdSpoolDir=$dir/d
SlurmctldPidFile=$dir/ctld.pid
SlurmdPidFile=$dir/d.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
NodeName=$node NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=advx Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$dir/slurm.conf
slurmctld -c
slurmd
for _ in $(seq 60); do
  if sinfo --noheader --format=%t 2>/dev/null | grep -q idle; then exit 0; fi
  sleep 0.5
done
echo "start.sh: the node did not come up; the logs:" >&2
tail -n 20 "$dir/log/"*.log "$dir/munge/log" >&2 || true
exit 1
