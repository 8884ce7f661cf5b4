#!/usr/bin/env bash
# A single-node SLURM cluster on localhost, with accounting (slurmdbd + MariaDB), every file under .slurm/:
#
#   scripts/slurm.sh up      install the Debian packages if missing, start what is not running, wait for an idle node
#   scripts/slurm.sh down    cancel our jobs, stop the daemons `up` started (by the PID files it wrote)
#   scripts/slurm.sh status  which daemons run, the node, the ports
#   scripts/slurm.sh env     prints `export SLURM_CONF=...`: eval "$(scripts/slurm.sh env)", then sbatch/sinfo/sacct work
#
# Daemons run as the invoking user (root in CI: slurmd must be root to run jobs as other users). Ports are picked
# free on the first `up` and kept in .slurm/etc/ports.env. SLURM_UP_TIMEOUT (seconds, default 90) bounds the wait.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR="$ROOT/.slurm"
ETC="$DIR/etc" RUN="$DIR/run" LOG="$DIR/log" MUNGE="$DIR/munge" DB="$DIR/mariadb"
CONF="$ETC/slurm.conf" DBD_CONF="$ETC/slurmdbd.conf" PORTS="$ETC/ports.env"
SOCKET="$MUNGE/munge.socket" DB_SOCKET="$RUN/mariadb.sock"
CLUSTER=rerank PARTITION=local NODE=$(hostname -s)
PACKAGES=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server)
TIMEOUT=${SLURM_UP_TIMEOUT:-90}
USER_NAME=$(id -un)
export SLURM_CONF="$CONF"

say() { echo "slurm.sh: $*" >&2; }
die() { say "error: $*"; exit 1; }

# --- processes, by the PID files we wrote ----------------------------------------------------------------------------
# A PID file counts only if its process is alive and is the daemon we started (guards against a recycled PID).
pid_of() {  # pid_of NAME -> prints the PID of our running daemon NAME, or fails
    local file="$RUN/$1.pid" pid
    [[ -s $file ]] || return 1
    pid=$(tr -dc 0-9 <"$file")
    [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
    [[ $(tr '\0' '\n' <"/proc/$pid/cmdline" | head -n 1 | xargs -r basename) == "$1" ]] || return 1
    echo "$pid"
}

wait_for() {  # wait_for SECONDS WHAT COMMAND...: retry COMMAND every 0.5 s
    local seconds=$1 what=$2; shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.5
    done
}

stop() {  # stop NAME: SIGTERM our daemon, SIGKILL after 20 s
    local pid
    pid=$(pid_of "$1") || { rm -f "$RUN/$1.pid"; return 0; }
    say "stopping $1 (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_for 20 "$1 to exit" bash -c "! kill -0 $pid"; then
        say "$1 (pid $pid) ignored SIGTERM for 20 s; SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$RUN/$1.pid"
}

log_tail() { [[ -f $LOG/$1.log ]] && { say "last lines of $LOG/$1.log:"; tail -n 15 "$LOG/$1.log" >&2; }; return 0; }

# --- install -----------------------------------------------------------------------------------------------------
install_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    ((${#missing[@]} == 0)) && return 0
    [[ $(id -u) == 0 ]] || die "missing Debian packages: ${missing[*]}; install them as root (apt-get install ${missing[*]}) or run as root"
    say "installing ${missing[*]}"
    # Keep the packages' own services (system munge, MariaDB, SLURM) from starting: this script starts its own.
    local policy=/usr/sbin/policy-rc.d made_policy=
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && made_policy=1
    fi
    local status=0
    { DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } || status=$?
    [[ -n $made_policy ]] && rm -f "$policy"
    ((status == 0)) || die "apt-get install ${missing[*]} failed (exit $status)"
}

# --- configuration -------------------------------------------------------------------------------------------------
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pick_ports() {  # first up: free ports for slurmctld, slurmd, slurmdbd (consecutive) and MariaDB; kept for later ups
    [[ -s $PORTS ]] && return 0
    local base db
    for base in $(seq 6817 3 6917); do
        port_free "$base" && port_free $((base + 1)) && port_free $((base + 2)) && break
    done
    for db in $(seq 3307 3407); do port_free "$db" && break; done
    printf 'CTLD_PORT=%s\nSLURMD_PORT=%s\nDBD_PORT=%s\nDB_PORT=%s\n' "$base" $((base + 1)) $((base + 2)) "$db" >"$PORTS"
}

load_ports() { [[ -s $PORTS ]] && source "$PORTS"; return 0; }

write_if_changed() {  # write_if_changed FILE MODE: stdin -> FILE; returns 0 if FILE changed
    local new
    new=$(cat)
    if [[ -f $1 ]] && [[ $(cat "$1") == "$new" ]]; then return 1; fi
    printf '%s\n' "$new" >"$1"
    chmod "$2" "$1"
}

write_configs() {  # returns 0 if any config changed
    local cpus mem changed=1
    cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)  # nproc obeys OMP_NUM_THREADS (tests set it to 1)
    mem=$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.8}' /proc/meminfo)  # MB; slurmd drains a node that has less
    write_if_changed "$CONF" 644 <<EOF && changed=0
# Written by scripts/slurm.sh: a single-node cluster on localhost, every file under $DIR.
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=$USER_NAME
SlurmdUser=$USER_NAME
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCKET
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
# no cgroups here: processes tracked by parent PID, no CPU/memory enforcement
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# without a default, a job that asks no memory takes the whole node and jobs run one at a time
DefMemPerCPU=$((mem / cpus / 2))
MpiDefault=none
SwitchType=switch/none
MailProg=/bin/true
ReturnToService=2
KillWait=5
# accounting: sacct knows cancelled and timed-out jobs, so submitit reports them instead of waiting forever
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
AccountingStoragePass=$SOCKET
JobCompType=jobcomp/none
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
    write_if_changed "$DBD_CONF" 600 <<EOF && changed=0
# Written by scripts/slurm.sh. slurmdbd ignores AuthInfo for its own socket: slurm.conf's AccountingStoragePass.
AuthType=auth/munge
AuthInfo=socket=$SOCKET
DbdHost=$NODE
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=$USER_NAME
PidFile=$RUN/slurmdbd.pid
LogFile=$LOG/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
EOF
    return $changed
}

# --- daemons -------------------------------------------------------------------------------------------------------
start_munge() {
    pid_of munged >/dev/null && return 0
    if [[ ! -s $MUNGE/munge.key ]]; then
        mungekey --create --keyfile="$MUNGE/munge.key" >/dev/null
        chmod 600 "$MUNGE/munge.key"
    fi
    rm -f "$SOCKET" "$SOCKET.lock"
    # --force: munged also wants every directory above its socket world-executable (root does not need that)
    munged 8>&- --force --socket="$SOCKET" --key-file="$MUNGE/munge.key" --pid-file="$RUN/munged.pid" \
        --log-file="$LOG/munged.log" --seed-file="$MUNGE/munged.seed" ||
        { log_tail munged; die "munged did not start"; }
    wait_for 10 munge bash -c "munge -n -S '$SOCKET' | unmunge -S '$SOCKET'" || { log_tail munged; die "munge does not answer on $SOCKET"; }
}

db_sql() { mariadb --no-defaults --socket="$DB_SOCKET" -u "$USER_NAME" -e "$1"; }  # unix_socket login

start_mariadb() {
    if ! pid_of mariadbd >/dev/null; then
        if [[ ! -d $DB/mysql ]]; then
            say "creating the MariaDB data folder"
            mariadb-install-db --no-defaults --datadir="$DB" --user="$USER_NAME" --auth-root-authentication-method=socket \
                --auth-root-socket-user="$USER_NAME" --skip-test-db >"$LOG/mariadb-install.log" 2>&1 || { log_tail mariadb-install; die "mariadb-install-db failed"; }
        fi
        setsid mariadbd 8>&- --no-defaults --datadir="$DB" --user="$USER_NAME" --port="$DB_PORT" --bind-address=127.0.0.1 \
            --socket="$DB_SOCKET" --pid-file="$RUN/mariadbd.pid" --log-error="$LOG/mariadb.log" --skip-name-resolve \
            --innodb-buffer-pool-size=64M </dev/null >/dev/null 2>&1 &
        wait_for 60 MariaDB db_sql "SELECT 1" || { log_tail mariadb; die "MariaDB did not start on port $DB_PORT"; }
    fi
    db_sql "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
            CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
            GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';" || die "could not create the slurm database user"
}

start_slurmdbd() {
    pid_of slurmdbd >/dev/null && return 0
    slurmdbd 8>&- || { log_tail slurmdbd; die "slurmdbd did not start"; }
    wait_for 30 slurmdbd sacctmgr -n list cluster || { log_tail slurmdbd; die "slurmdbd does not answer on port $DBD_PORT"; }
}

register_cluster() {
    sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER" && return 0
    sacctmgr -i add cluster "$CLUSTER" >/dev/null || die "sacctmgr could not add cluster $CLUSTER"
}

start_slurm() {
    pid_of slurmctld >/dev/null || slurmctld -i 8>&- || { log_tail slurmctld; die "slurmctld did not start"; }
    wait_for 30 slurmctld scontrol ping || { log_tail slurmctld; die "slurmctld does not answer on port $CTLD_PORT"; }
    pid_of slurmd >/dev/null || slurmd 8>&- || { log_tail slurmd; die "slurmd did not start"; }
}

node_state() { sinfo -h -n "$NODE" -o %t 2>/dev/null | head -n 1; }

wait_idle() {
    local deadline=$((SECONDS + TIMEOUT)) state resumed=
    while :; do
        state=$(node_state)
        case $state in
            idle | mix | alloc | comp) return 0 ;;  # up (jobs may be running when `up` is called again)
            drain* | drng | down*)  # a drained node stays drained across restarts
                if [[ -z $resumed ]]; then
                    scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true
                    resumed=1
                fi ;;
        esac
        if ((SECONDS >= deadline)); then
            log_tail slurmctld; log_tail slurmd
            sinfo -N -l >&2 || true
            die "node $NODE not idle after ${TIMEOUT}s (state: '${state:-unknown}'); see $LOG/"
        fi
        sleep 0.5
    done
}

# --- commands ------------------------------------------------------------------------------------------------------
up() {
    install_packages
    mkdir -p "$ETC" "$RUN" "$LOG" "$MUNGE" "$DB" "$DIR/state" "$DIR/spool"
    chmod 755 "$DIR" "$ETC" "$RUN" "$LOG" "$DIR/state" "$DIR/spool"
    chmod 711 "$MUNGE"  # munged: not writable by others; traversable so jobs reach the socket
    ((${#SOCKET} < 100)) || die "the munge socket path is too long for a unix socket: $SOCKET"
    pick_ports
    load_ports
    if write_configs && pid_of slurmctld >/dev/null; then
        say "configuration changed: restarting SLURM"
        stop slurmd && stop slurmctld && stop slurmdbd
    fi
    start_munge
    start_mariadb
    start_slurmdbd
    register_cluster
    start_slurm
    wait_idle
    say "up: node $NODE $(node_state), partition $PARTITION; export SLURM_CONF=$CONF"
}

down_daemons() {
    local name
    for name in slurmd slurmctld slurmdbd mariadbd munged; do stop "$name"; done
}

down() {
    if pid_of slurmctld >/dev/null; then  # jobs of this cluster only: ours
        squeue -h -o %i 2>/dev/null | xargs -r scancel 2>/dev/null || true
    fi
    down_daemons
    say "down"
}

status() {
    local name pid rc=0
    for name in munged mariadbd slurmdbd slurmctld slurmd; do
        if pid=$(pid_of "$name"); then echo "$name: running (pid $pid)"; else echo "$name: stopped"; rc=1; fi
    done
    [[ -s $PORTS ]] && tr '\n' ' ' <"$PORTS" && echo
    ((rc == 0)) && sinfo -N -l
    return $rc
}

lock() {  # one up/down at a time (fd 8; the daemons are started without it)
    mkdir -p "$DIR"
    exec 8>"$DIR/lock"
    flock -w 600 8 || die "another scripts/slurm.sh up/down still holds $DIR/lock after 600 s"
}

load_ports
case ${1:-} in
    up) lock && up ;;
    down) lock && down ;;
    status) status ;;
    env) echo "export SLURM_CONF=$CONF" ;;
    *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
