#!/usr/bin/env bash
# Starts a single-node Slurm for the tests (as root): munged, slurmctld and slurmd, with the
# configuration of issue #11 written for this host (`hostname -s`, `nproc`). Records the pids of
# the daemons it started in $RUNNER_SLURM_STATE/pids (default /run/runner-slurm) for stop.sh;
# does nothing when a controller already answers. Waits until the node is idle.
set -euo pipefail
state=${RUNNER_SLURM_STATE:-/run/runner-slurm}
if scontrol ping 2>/dev/null | grep -q 'is UP'; then
    echo "slurm: a controller already answers, leaving it alone"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "slurm: start.sh must run as root" >&2
    exit 1
fi
mkdir -p "$state"
: >"$state/pids"
host=$(hostname -s)
cpus=$(nproc)
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /run/munge /var/log/munge /var/lib/munge
chown slurm:slurm /var/spool/slurmctld
chown munge:munge /run/munge /var/log/munge /var/lib/munge
cat >/etc/slurm/slurm.conf <<CONF
# written by tests/slurm/start.sh
ClusterName=ci
SlurmctldHost=$host
SlurmUser=slurm
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$state/slurmctld.log
SlurmdLogFile=$state/slurmd.log
NodeName=$host CPUs=$cpus RealMemory=2000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=128 status=none
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
fi
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 50); do [ -s /run/munge/munged.pid ] && break; sleep 0.1; done
    echo "munged $(cat /run/munge/munged.pid)" >>"$state/pids"
fi
/usr/sbin/slurmctld
for _ in $(seq 50); do [ -s /run/slurmctld.pid ] && break; sleep 0.1; done
echo "slurmctld $(cat /run/slurmctld.pid)" >>"$state/pids"
/usr/sbin/slurmd
for _ in $(seq 50); do [ -s /run/slurmd.pid ] && break; sleep 0.1; done
echo "slurmd $(cat /run/slurmd.pid)" >>"$state/pids"
for _ in $(seq 150); do
    if sinfo -h -o '%T' 2>/dev/null | grep -qx idle; then
        echo "slurm: node $host idle ($cpus CPUs)"
        exit 0
    fi
    sleep 0.2
done
echo "slurm: node $host did not become idle in 30 s:" >&2
sinfo >&2 || true
tail -20 "$state/slurmctld.log" "$state/slurmd.log" >&2 || true
exit 1
