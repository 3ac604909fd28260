#!/usr/bin/env bash
# Live capture benchmark (not a test): replays a large capture into a veth pair inside a private
# network namespace with tcpreplay, at top speed and at fixed rates, into `botd run` with the pnet
# capture and with the TPACKET_V3 ring, and reports per run: packets sent, the rate tcpreplay
# achieved, packets botd captured, kernel drops (PACKET_STATISTICS), loss, and botd's CPU time per
# packet (utime+stime from /proc/PID/stat, counted from after start-up to the end of the replay),
# and botd's peak RSS (VmHWM), which must not grow with the replay's length. botd runs as a sensor
# does while it scores: short windows (several close during each replay) and the state file
# written every second; the last columns are the windows closed and state files written during
# the run.
#
#   sudo bash benches/live_replay.sh [PACKETS] [RATES...]
#     PACKETS  packets per run (default 1000000), the first ones of the capture
#     RATES    packets/s, or "top" for tcpreplay --topspeed (default: top 50000 100000 200000 400000)
#   env: CAPTURE=target/bench/tiled-64.pcap (made by `python3 benches/tile_pcap.py` if missing)
#        BOTD=target/release/botd  METHODS="pnet ring"
#        BOTDS="LABEL=PATH ..."  several builds in one invocation, each run at every rate (e.g.
#                     BOTDS="before=/tmp/botd-old after=target/release/botd"); default: after=$BOTD
#        WINDOW=SECS  windows of SECS seconds every SECS/2 (default 2: a window closes every second
#                     of the replay; 0 keeps the configuration's 300 s, which a replay never closes)
#        STATE_SECS=N the state file's interval (default 1; 0: no state file)
#
# Needs root, iproute2, tcpreplay and editcap (wireshark-common, comes with tshark). Nothing leaves
# the machine: both veth ends live in the namespace, which is deleted at exit.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKETS=${1:-1000000}
shift || true
RATES=("$@")
((${#RATES[@]})) || RATES=(top 50000 100000 200000 400000)
CAPTURE=${CAPTURE:-target/bench/tiled-64.pcap}
BOTD=${BOTD:-target/release/botd}
BOTDS=${BOTDS:-"after=$BOTD"}
METHODS=${METHODS:-"pnet ring"}
WINDOW=${WINDOW:-2}
STATE_SECS=${STATE_SECS:-1}
NS=botd-bench-$$
WORK=$(mktemp -d /tmp/botd-live-bench.XXXXXX)

[[ $(id -u) -eq 0 ]] || { echo "run as root (network namespace, packet sockets)" >&2; exit 1; }
for t in ip tcpreplay editcap; do
    command -v $t >/dev/null || { echo "$t is missing (apt-get install iproute2 tcpreplay wireshark-common)" >&2; exit 1; }
done
for b in $BOTDS; do
    [[ -x ${b#*=} ]] || { [[ ${b#*=} == "$BOTD" ]] && cargo build --release; }
    [[ -x ${b#*=} ]] || { echo "${b#*=}: no such binary" >&2; exit 1; }
done
if [[ ! -f $CAPTURE ]]; then
    mkdir -p "$(dirname "$CAPTURE")"
    python3 benches/tile_pcap.py "$CAPTURE"
fi

cleanup() {
    [[ -n ${BOTD_PID:-} ]] && kill "$BOTD_PID" 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# The first PACKETS packets, preloaded into memory by tcpreplay (-K), so the disk is not measured.
SLICE=$WORK/slice.pcap
editcap -r "$CAPTURE" "$SLICE" "1-$PACKETS" >/dev/null

ip netns add "$NS"
ip netns exec "$NS" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
ip -n "$NS" link add vb0 type veth peer name vb1
ip -n "$NS" link set vb0 up
ip -n "$NS" link set vb1 up

cat >"$WORK/botd.toml" <<EOF
[capture]
interface = "vb0"
read_timeout_ms = 100
[network]
home = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
[models]
dir = "$PWD/models"
[alerts]
syslog = false
EOF
if ((WINDOW > 0)); then
    printf '[flows]\nwindow_secs = %d\noverlap_secs = %d\n' "$WINDOW" $((WINDOW / 2)) >>"$WORK/botd.toml"
fi
if ((STATE_SECS > 0)); then
    # Written by botd after it dropped privileges (to nobody by default; --allow-root keeps root).
    printf '[state]\nfile = "%s"\ninterval_secs = %d\n' "$WORK/state.json" "$STATE_SECS" >>"$WORK/botd.toml"
fi

clk=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
counter() { grep -o " $1=[0-9n/a]*" <<<"$2" | tail -1 | cut -d= -f2; }

# The state file's writes: each atomic replace makes a new file (inode and modification time).
state_ino() { stat -c '%i %y' "$WORK/state.json" 2>/dev/null || echo none; }

printf '%-7s %-5s %-8s %9s %10s %9s %9s %7s %10s %9s %7s %6s\n' build capture rate sent "sent pps" captured "k.drops" loss "cpu/pkt" "peak RSS" windows states
for build in $BOTDS; do
label=${build%%=*}
bin=${build#*=}
for method in $METHODS; do
    for rate in "${RATES[@]}"; do
        log=$WORK/botd-$label-$method-$rate.log
        rm -f "$WORK/state.json"
        ip netns exec "$NS" "$bin" run --config "$WORK/botd.toml" --capture "$method" --allow-root 2>"$log" &
        BOTD_PID=$!
        for _ in $(seq 200); do grep -qs "capturing on" "$log" && break; sleep 0.05; done
        grep -qs "capturing on" "$log" || { cat "$log" >&2; exit 1; }
        sleep 0.3
        cpu0=$(cpu_ticks "$BOTD_PID")
        if [[ $rate == top ]]; then speed=(--topspeed); else speed=(--pps="$rate"); fi
        # Count the state file's rewrites while tcpreplay runs (sampled every 0.2 s).
        (
            n=0 last=$(state_ino)
            while [[ ! -f $WORK/replay.done ]]; do
                cur=$(state_ino)
                [[ $cur != "$last" && $cur != none ]] && n=$((n + 1))
                last=$cur
                sleep 0.2
            done
            echo $n >"$WORK/states"
        ) &
        watcher=$!
        rm -f "$WORK/replay.done"
        out=$(ip netns exec "$NS" tcpreplay --intf1=vb1 -K "${speed[@]}" "$SLICE" 2>&1)
        sleep 1 # let botd drain its socket / ring
        touch "$WORK/replay.done"
        wait $watcher
        states=$(cat "$WORK/states")
        cpu1=$(cpu_ticks "$BOTD_PID")
        # Peak resident memory so far: flat whatever the replay's length (tables sized at start).
        hwm=$(awk '/^VmHWM:/ {printf "%.1f MiB", $2 / 1024}' "/proc/$BOTD_PID/status")
        kill -USR1 "$BOTD_PID"
        for _ in $(seq 100); do grep -q "counters:" "$log" && break; sleep 0.05; done
        line=$(grep "counters:" "$log" | tail -1)
        kill -TERM "$BOTD_PID"
        wait "$BOTD_PID" || true
        BOTD_PID=
        sent=$(awk '/Actual:/ {print $2; exit}' <<<"$out")
        pps=$(awk '/Rated:/ {for (i=1;i<=NF;i++) if ($i ~ /pps/) {print int($(i-1)); exit}}' <<<"$out")
        captured=$(counter captured "$line")
        drops=$(counter kernel_drops "$line")
        windows=$(counter windows "$line")
        loss=$(awk -v s="$sent" -v c="$captured" 'BEGIN {printf "%.2f%%", s ? 100 * (s - c) / s : 0}')
        cpu=$(awk -v t=$((cpu1 - cpu0)) -v k="$clk" -v c="$captured" 'BEGIN {printf "%.2f us", c ? t / k / c * 1e6 : 0}')
        printf '%-7s %-5s %-8s %9s %10s %9s %9s %7s %10s %9s %7s %6s\n' "$label" "$method" "$rate" "$sent" "$pps" "$captured" "$drops" "$loss" "$cpu" "$hwm" "$windows" "$states"
    done
done
done
