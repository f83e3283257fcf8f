#!/usr/bin/env bash
# A one-node Slurm on this machine for the Slurm launcher's end-to-end test: munged, slurmctld and
# slurmd (Debian's slurm-wlm) on localhost, all state under $SLURM_LOCAL_DIR. Needs root.
#   scripts/slurm-local.sh start   -> prints the directory holding bin wrappers' environment
#   scripts/slurm-local.sh stop
# The Slurm commands find this cluster through SLURM_CONF=$SLURM_LOCAL_DIR/slurm.conf.
set -euo pipefail
dir=${SLURM_LOCAL_DIR:-/tmp/ps-slurm}
cmd=${1:-start}
host=$(hostname -s)

stop() {
  for f in slurmd slurmctld munged; do
    if [ -f "$dir/$f.pid" ]; then
      pid=$(cat "$dir/$f.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$dir/$f.pid"
    fi
  done
}

if [ "$cmd" = stop ]; then stop; exit 0; fi
[ "$(id -u)" -eq 0 ] || { echo "slurm-local: needs root (munged and slurmd run as root)" >&2; exit 1; }
for b in munged slurmctld slurmd sbatch; do
  command -v "$b" >/dev/null || { echo "slurm-local: $b not found (apt-get install slurm-wlm munge)" >&2; exit 1; }
done
stop
mkdir -p "$dir"/{munge,spool/ctld,spool/d,log}
chmod 755 "$dir/munge"
# munge: its own key, socket and state under $dir (no system-wide daemon needed).
dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$dir/munge/munge.key"
munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
  --pid-file="$dir/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/seed"
cpus=$(nproc)
mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))
cat > "$dir/slurm.conf" <<CONF
ClusterName=ps-local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/spool/ctld
SlurmdSpoolDir=$dir/spool/d
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldPort=$(( 16817 ))
SlurmdPort=$(( 16818 ))
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
SchedulerType=sched/builtin
MinJobAge=600
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
rm -f "$dir/cgroup.conf"
export SLURM_CONF="$dir/slurm.conf"
slurmctld -f "$dir/slurm.conf"
slurmd -f "$dir/slurm.conf"
for _ in $(seq 100); do
  if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
    echo "$dir"
    exit 0
  fi
  sleep 0.2
done
echo "slurm-local: the node did not come up; logs in $dir/log" >&2
tail -5 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 || true
exit 1
