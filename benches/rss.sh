#!/usr/bin/env bash
# Peak memory of `botd analyze` with a configuration, as a router would see it:
#   benches/rss.sh BOTD CONFIG CAPTURE...
# Prints the peak resident set (/usr/bin/time's maximum RSS) with transparent huge pages off for
# the process (prctl PR_SET_THP_DISABLE, inherited across exec: OpenWrt's kernels have no THP,
# and botd's flow table asks for huge pages where there are some), and with the machine's THP
# setting (both without --json); then what the run gave up, from the JSON counters: flows closed early (evicted), home
# hosts not tracked, DNS answers and devices forgotten.
set -euo pipefail
BOTD="${1:?usage: benches/rss.sh BOTD CONFIG CAPTURE...}"
CONFIG="${2:?usage: benches/rss.sh BOTD CONFIG CAPTURE...}"
shift 2
json=$(mktemp)
trap 'rm -f "$json"' EXIT
# time inside the wrapper: its figure is botd's alone, not the Python that exec'd it.
no_thp=(python3 -c 'import ctypes, os, sys
if ctypes.CDLL(None).prctl(41, 1, 0, 0, 0) != 0:  # PR_SET_THP_DISABLE
    sys.exit("prctl(PR_SET_THP_DISABLE) failed")
os.execv(sys.argv[1], sys.argv[1:])')
peak() { # prints the maximum RSS in KiB of the command
    "$@" 2>&1 >/dev/null | tail -n 1
}
off=$(peak "${no_thp[@]}" /usr/bin/time -f '%M' "$BOTD" analyze --config "$CONFIG" "$@")
on=$(peak /usr/bin/time -f '%M' "$BOTD" analyze --config "$CONFIG" "$@")
# The counters from a third run: writing the JSON takes memory of its own.
"$BOTD" analyze --config "$CONFIG" --json "$json" "$@" >/dev/null
python3 - "$json" "$off" "$on" "$CONFIG" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
c = d["counters"]
print(f"{sys.argv[4]}: peak RSS {int(sys.argv[2]) / 1024:.1f} MiB without THP, "
      f"{int(sys.argv[3]) / 1024:.1f} MiB with this machine's THP; "
      f"{c['frames']} frames, {c['flows']} flows (table high water {c['flow_table_high_water']}), "
      f"{len(d['hosts'])} hosts; gave up: flows_evicted {c['flows_evicted']}, "
      f"hosts_not_tracked {c['hosts_not_tracked']}, hosts_dropped {c['detector']['hosts_dropped']}, "
      f"dns_view.evicted {c['dns_view']['evicted']}, devices.evicted {c['devices']['evicted']}")
EOF
