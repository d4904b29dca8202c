#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine: munge + slurmctld + slurmd, installed with apt when missing.
#
#   tests/workflow/slurm_cluster.sh start    install (if needed), configure, start, wait until `srun` works
#   tests/workflow/slurm_cluster.sh stop     stop the daemons this script started
#   tests/workflow/slurm_cluster.sh status   sinfo
#
# Exit status 77 means "cannot run here" (not root, or no apt-get to install SLURM): the pytest wrapper skips
# with a loud message. Any other failure is a real error. There is no accounting database, so `sacct` does not
# work; Snakemake's SLURM executor must be given `--slurm-status-command squeue` (shared/notes/environment.md).
set -euo pipefail

STATE=${SLURM_TEST_STATE:-/var/lib/neuroplastic-slurm-test}
CONF_DIR=/etc/slurm
HOST=$(hostname -s)
PARTITION=${SLURM_TEST_PARTITION:-debug}

log() { echo "slurm_cluster.sh: $*" >&2; }
cannot() {
    log "CANNOT RUN: $*"
    exit 77
}

install() {
    if command -v slurmctld > /dev/null && command -v slurmd > /dev/null && command -v munged > /dev/null \
        && command -v sbatch > /dev/null; then
        return
    fi
    [ "$(id -u)" -eq 0 ] || cannot "SLURM is not installed and installing it needs root (uid is $(id -u))"
    command -v apt-get > /dev/null || cannot "SLURM is not installed and there is no apt-get to install it"
    log "installing slurmctld slurmd slurm-client munge with apt-get (about a minute)"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends slurmctld slurmd slurm-client munge > "$STATE/apt.log" 2>&1; then
        apt-get update -q >> "$STATE/apt.log" 2>&1 || cannot "apt-get update failed (no package mirror?), see $STATE/apt.log"
        apt-get install -y -q --no-install-recommends slurmctld slurmd slurm-client munge >> "$STATE/apt.log" 2>&1 \
            || cannot "apt-get install of SLURM failed, see $STATE/apt.log"
    fi
}

# Not `nproc`: it obeys OMP_NUM_THREADS, which the test suite sets to 1, and a one-CPU node leaves a packed
# two-run job pending forever (reason PartitionConfig).
node_cpus() { getconf _NPROCESSORS_ONLN; }
configured_cpus() { scontrol show node "$HOST" 2> /dev/null | sed -n 's/.*CPUTot=\([0-9]*\).*/\1/p'; }

configure() {
    local cpus mem
    cpus=$(node_cpus)
    # RealMemory must not exceed what slurmd detects; leave 2 GiB to the system.
    mem=$(awk '/MemTotal/ {print int($2 / 1024) - 2048}' /proc/meminfo)
    mkdir -p "$CONF_DIR" "$STATE/ctld" "$STATE/d" /var/log/slurm /run/munge /var/lib/munge /var/log/munge
    cat > "$CONF_DIR/slurm.conf" << CONF
# Written by tests/workflow/slurm_cluster.sh: a one-node test cluster.
ClusterName=neuroplastic-test
SlurmctldHost=$HOST
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ReturnToService=2
MinJobAge=600
SchedulerParameters=bf_interval=5
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
NodeName=$HOST CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
    if [ ! -s /etc/munge/munge.key ]; then
        mkdir -p /etc/munge
        if command -v mungekey > /dev/null; then mungekey --create --keyfile /etc/munge/munge.key --force; else
            dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2> /dev/null
        fi
    fi
    chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2> /dev/null || true
    chmod 0700 /etc/munge && chmod 0400 /etc/munge/munge.key
}

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2> /dev/null; }

start() {
    mkdir -p "$STATE"
    install
    if running "$STATE/slurmctld.pid" && running "$STATE/slurmd.pid"; then
        if [ "$(configured_cpus)" = "$(node_cpus)" ] && srun --immediate=30 -N1 true 2> /dev/null; then
            log "already running"
            sinfo >&2
            return
        fi
        log "running with $(configured_cpus) CPUs instead of $(node_cpus), or not answering: restarting"
        stop
    fi
    configure
    if ! pgrep -x munged > /dev/null; then
        if id munge > /dev/null 2>&1; then
            runuser -u munge -- munged --force 2> "$STATE/munged.err" || munged --force
        else
            munged --force
        fi
    fi
    running "$STATE/slurmctld.pid" || slurmctld -i
    running "$STATE/slurmd.pid" || slurmd
    local i
    for i in $(seq 1 60); do
        if sinfo -h -o %T 2> /dev/null | grep -qE '^(idle|mixed|allocated)'; then break; fi
        [ "$i" -eq 10 ] && scontrol update NodeName="$HOST" State=RESUME 2> /dev/null || true
        sleep 1
    done
    if ! timeout 60 srun -N1 hostname > /dev/null; then
        log "srun does not work; last lines of the logs:"
        tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
        exit 1
    fi
    log "cluster up: partition $PARTITION on $HOST"
    sinfo >&2
}

stop() {
    local f pid i
    for f in "$STATE/slurmd.pid" "$STATE/slurmctld.pid"; do
        if running "$f"; then
            pid=$(cat "$f")
            kill "$pid" && log "stopped pid $pid"
            for i in $(seq 1 50); do kill -0 "$pid" 2> /dev/null || break; sleep 0.2; done
        fi
    done
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    status) sinfo ;;
    *)
        echo "usage: $0 start|stop|status" >&2
        exit 2
        ;;
esac
