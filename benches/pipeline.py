#!/usr/bin/env python3
"""Whole-pipeline benchmark: `botd flows` and `botd analyze` against Argus (argus + ra) and the
original detector's per-window pipeline (editcap, argus, ra per 300 s window every 150 s) on one
large tiled real capture.

    python3 benches/pipeline.py [--copies N] [--runs R] [--keep] [--botd PATH] [--rss-series]

Not a test: it prints figures. Steps:

1. Build (or reuse) target/bench/tiled-N.pcap with benches/tile_pcap.py: N copies (default 64, about
   4 M packets, 344 MiB) of one hour of real LAN traffic in disjoint address ranges, merged in time.
   Without --keep, captures that this run built are deleted at the end; with --keep they stay under
   target/bench/ and later runs reuse them.
2. Time, R times each (default 3), in this same invocation:
   (a) botd flows --format csv --output /dev/null CAPTURE
       (binary: --botd PATH, else target/release/botd, built with `cargo build --release` if missing);
   (b) argus -F argus-ctu.conf -r CAPTURE -w TMP.argus, then ra -F ra-ctu.rc -n -r TMP.argus > /dev/null
       (TMP.argus is deleted before every run: argus -w appends).
   For each child process: wall seconds (perf_counter around spawn..wait), user+sys CPU seconds from
   os.wait4's rusage, and peak RSS = the command's own ru_maxrss (KiB on Linux), taken through a small
   trampoline (GNU time, else python3 -S) because a child forked from this script would inherit the
   script's RSS as its high-water mark. argus+ra: wall and CPU summed, RSS = max of the two.
   The table reports the MEDIAN of the R runs for each figure (the best wall time is shown beside it).
3. --rss-series: botd flows, botd analyze (and argus, for reference) once each on captures of 8, 16,
   32 and 64 copies side by side (denser: more concurrent flows), then of 1, 2, 4 and 8 copies one
   after the other (longer: 1, 4, 16 and 32 hours of the same LAN), to show whether peak RSS depends on
   the capture's density or its length.
"""

import argparse
import os
import shutil
import statistics
import struct
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = os.path.normpath(os.path.join(ROOT, "..", "shared", "data", "_tools"))
BENCH_DIR = os.path.join(ROOT, "target", "bench")
TILE = os.path.join(ROOT, "benches", "tile_pcap.py")


def die(msg):
    print(f"pipeline.py: error: {msg}", file=sys.stderr)
    sys.exit(2)


def machine():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cores = os.cpu_count()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = cores
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kib = int(f.readline().split()[1])
            mem = f", {kib / 2**20:.1f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{model}, {cores} logical CPUs ({usable} usable){mem}"


def count_packets(path):
    """Packets in a classic pcap: read from the sidecar written at build time, else walk the records."""
    side = path + ".packets"
    try:
        if os.path.getmtime(side) >= os.path.getmtime(path):
            with open(side) as f:
                return int(f.read().strip())
    except (OSError, ValueError):
        pass
    n = 0
    with open(path, "rb", buffering=8 << 20) as f:
        hdr = f.read(24)
        e = "<" if hdr[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        rec = struct.Struct(e + "IIII")
        while True:
            h = f.read(16)
            if len(h) < 16:
                break
            f.seek(rec.unpack(h)[2], 1)
            n += 1
    with open(side, "w") as f:
        f.write(f"{n}\n")
    return n


# Copies one after the other in time, with the source's own addresses (the same LAN, for longer):
# the source is one hour; each copy starts 1 h 1 min 40 s after the previous one.
SEQUENTIAL_US = 3_700_000_000


def ensure_capture(copies, src, built, sequential=False):
    os.makedirs(BENCH_DIR, exist_ok=True)
    name = f"hours-{copies}.pcap" if sequential else f"tiled-{copies}.pcap"
    path = os.path.join(BENCH_DIR, name)
    if os.path.exists(path):
        print(f"reusing {os.path.relpath(path, ROOT)}")
    else:
        cmd = [sys.executable, TILE, path, "--copies", str(copies)]
        if sequential:
            cmd += ["--offset-us", str(SEQUENTIAL_US), "--same-addresses"]
        if src:
            cmd += ["--src", src]
        print("building:", " ".join(os.path.relpath(c, ROOT) if c.startswith(ROOT) else c for c in cmd))
        r = subprocess.run(cmd)
        if r.returncode != 0:
            die(f"tile_pcap.py failed with exit code {r.returncode}")
        built.append(path)
    return path, count_packets(path)


# Peak RSS: on Linux a child's ru_maxrss starts at its parent's RSS at fork (exec keeps the high-water
# mark of the mm it replaces), so wait4 on a child forked from this Python process would report at least
# this process's own RSS. The child is therefore started through a small trampoline that forks the real
# command and reports the command's own wait4 ru_maxrss: GNU time (-f %M, ~1 MiB floor) when present,
# else a minimal python3 -S trampoline (~5 MiB floor, said in the output).
TRAMPOLINE_PY = (
    "import os,sys\n"
    "pid=os.fork()\n"
    "if pid==0:\n"
    "    try: os.execvp(sys.argv[2],sys.argv[2:])\n"
    "    except OSError as e: sys.stderr.write(str(e)+'\\n'); os._exit(127)\n"
    "_,st,ru=os.wait4(pid,0)\n"
    "open(sys.argv[1],'w').write('%d\\n'%ru.ru_maxrss)\n"
    "sys.exit(os.waitstatus_to_exitcode(st) & 255)\n")


def _gnu_time():
    t = shutil.which("time") or ("/usr/bin/time" if os.path.exists("/usr/bin/time") else None)
    if not t:
        return None
    try:
        v = subprocess.run([t, "--version"], capture_output=True, text=True, timeout=5)
        return t if "GNU" in (v.stdout + v.stderr) else None
    except (OSError, subprocess.SubprocessError):
        return None


GNU_TIME = _gnu_time()
RSS_METHOD = ("GNU time %M of the command (floor ~1 MiB)" if GNU_TIME else
              "python3 -S trampoline's wait4 of the command (floor ~5 MiB: small RSS figures are upper bounds)")


def run_child(cmd, stdout=subprocess.DEVNULL):
    """Run cmd; return (wall s, user+sys CPU s, peak RSS KiB, exit status, stderr tail).

    Wall: perf_counter around spawn..wait4. CPU: ru_utime + ru_stime from os.wait4 on the trampoline,
    which includes the command it waited for. RSS: the command's own ru_maxrss (see above)."""
    rss_file = os.path.join(BENCH_DIR, ".maxrss")
    if os.path.exists(rss_file):
        os.remove(rss_file)
    if GNU_TIME:
        wrapped = [GNU_TIME, "-f", "%M", "-o", rss_file, "--"] + list(cmd)
    else:
        wrapped = [sys.executable, "-S", "-c", TRAMPOLINE_PY, rss_file] + list(cmd)
    errf = open(os.path.join(BENCH_DIR, ".stderr"), "w+b")
    t0 = time.perf_counter()
    try:
        p = subprocess.Popen(wrapped, stdin=subprocess.DEVNULL, stdout=stdout, stderr=errf)
    except OSError as e:
        errf.close()
        return None, None, None, 127, str(e)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = rc = os.waitstatus_to_exitcode(status)
    errf.seek(0)
    err = errf.read()[-2000:].decode(errors="replace")
    errf.close()
    rss = None
    try:
        with open(rss_file) as f:
            lines = [ln.strip() for ln in f if ln.strip()]
        rss = int(lines[-1])
    except (OSError, ValueError, IndexError):
        if rc == 0:
            rc = 125
            err += "\ncould not read the child's peak RSS"
    return wall, ru.ru_utime + ru.ru_stime, rss, rc, err


def run_botd(botd, capture):
    wall, cpu, rss, rc, err = run_child([botd, "flows", "--format", "csv", "--output", "/dev/null", capture])
    if rc != 0:
        raise RuntimeError(f"botd flows exited with {rc}: {err.strip()[-600:]}")
    return wall, cpu, rss


def run_argus(argus, ra, capture, conf, rc_file, out):
    if os.path.exists(out):
        os.remove(out)  # argus -w appends
    w1, c1, r1, rc, err = run_child([argus, "-F", conf, "-r", capture, "-w", out])
    if rc != 0:
        raise RuntimeError(f"argus exited with {rc}: {err.strip()[-600:]}")
    w2, c2, r2, rc, err = run_child([ra, "-F", rc_file, "-n", "-r", out])
    if rc != 0:
        raise RuntimeError(f"ra exited with {rc}: {err.strip()[-600:]}")
    return w1 + w2, c1 + c2, max(r1, r2), (w1, w2)


def run_botd_analyze(botd, capture):
    wall, cpu, rss, rc, err = run_child([botd, "analyze", "--models", os.path.join(ROOT, "models"), capture])
    if rc != 0:
        raise RuntimeError(f"botd analyze exited with {rc}: {err.strip()[-600:]}")
    return wall, cpu, rss


def capture_span(path):
    """First and last packet time (seconds, float) of a classic pcap, read with the standard library."""
    with open(path, "rb") as f:
        hdr = f.read(24)
        magic = struct.unpack("<I", hdr[:4])[0]
        endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
        nano = magic in (0xA1B23C4D, 0x4D3CB2A1)
        first = last = None
        while True:
            rec = f.read(16)
            if len(rec) < 16:
                break
            sec, frac, incl, _ = struct.unpack(endian + "IIII", rec)
            t = sec + frac / (1e9 if nano else 1e6)
            first = t if first is None else first
            last = t
            f.seek(incl, 1)
    return first, last


def run_original(argus, ra, capture, conf, rc_file, tmpdir, window=300, step=150):
    """The original detector's pipeline: per 300 s window starting every 150 s, editcap -A -B,
    then argus, then ra. Returns wall, CPU (all children summed) and the largest peak RSS."""
    editcap = shutil.which("editcap")
    if not editcap:
        raise RuntimeError("editcap not found (apt-get install tshark)")
    first, last = capture_span(capture)
    wall = cpu = 0.0
    rss = 0
    start = first
    cut = os.path.join(tmpdir, "window.pcap")
    out = os.path.join(tmpdir, "window.argus")
    fmt = lambda t: time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1e6):06d}"
    windows = 0
    while start <= last:
        for f in (cut, out):
            if os.path.exists(f):
                os.remove(f)
        os.environ["TZ"] = "UTC"
        w, c, r, rc, err = run_child([editcap, "-A", fmt(start), "-B", fmt(start + window), capture, cut])
        if rc != 0:
            raise RuntimeError(f"editcap exited with {rc}: {err.strip()[-300:]}")
        w2, c2, r2, (a, b) = run_argus(argus, ra, cut, conf, rc_file, out)
        wall += w + w2
        cpu += c + c2
        rss = max(rss, r, r2)
        windows += 1
        start += step
    for f in (cut, out):
        if os.path.exists(f):
            os.remove(f)
    return wall, cpu, rss, windows


def find_botd(path):
    if path:
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            die(f"--botd {path}: not an executable file")
        return path
    default = os.path.join(ROOT, "target", "release", "botd")
    if not os.path.exists(default):
        if not shutil.which("cargo"):
            die("target/release/botd is missing and cargo is not on PATH; pass --botd PATH")
        print("building botd: cargo build --release")
        r = subprocess.run(["cargo", "build", "--release"], cwd=ROOT)
        if r.returncode != 0 or not os.path.exists(default):
            die("cargo build --release failed")
    return default


def fmt_row(cols, widths):
    return "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(cols, widths)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--copies", type=int, default=64, help="copies of the source capture (default 64)")
    ap.add_argument("--runs", type=int, default=3, help="runs per tool; the median is reported (default 3)")
    ap.add_argument("--keep", action="store_true", help="keep the tiled capture(s) and TMP.argus under target/bench/")
    ap.add_argument("--botd", help="botd binary (default target/release/botd, built if missing)")
    ap.add_argument("--src", help="source capture for tile_pcap.py (default: its own, pathspider real.pcap)")
    ap.add_argument("--argus-conf", default=os.path.join(TOOLS, "argus-ctu.conf"))
    ap.add_argument("--ra-rc", default=os.path.join(TOOLS, "ra-ctu.rc"))
    ap.add_argument("--no-argus", action="store_true", help="time botd only")
    ap.add_argument("--original-runs", type=int, default=1,
                    help="runs of the original editcap+argus+ra per-window pipeline (slow; 0 to skip)")
    ap.add_argument("--no-botd", action="store_true", help="time argus+ra only")
    ap.add_argument("--rss-series", action="store_true",
                    help="peak RSS of botd (and argus) on 8, 16, 32, 64 copies instead of the timing table")
    args = ap.parse_args()
    if args.runs < 1 or args.copies < 1:
        die("--runs and --copies must be >= 1")

    argus = ra = None
    if not args.no_argus:
        argus, ra = shutil.which("argus") or (os.path.exists("/usr/sbin/argus") and "/usr/sbin/argus"), shutil.which("ra")
        if not argus or not ra:
            die("argus and/or ra not found on PATH: install them with "
                "`apt-get install argus-server argus-client` (or pass --no-argus)")
        for f in (args.argus_conf, args.ra_rc):
            if not os.path.exists(f):
                die(f"{f} not found (pass --argus-conf / --ra-rc)")
    botd = None if args.no_botd else find_botd(args.botd)

    os.makedirs(BENCH_DIR, exist_ok=True)
    built = []
    tmp_argus = os.path.join(BENCH_DIR, "TMP.argus")
    print(f"machine: {machine()}")
    print(f"peak RSS: {RSS_METHOD}")
    try:
        if args.rss_series:
            rss_series(args, botd, argus, ra, tmp_argus, built)
        else:
            timing(args, botd, argus, ra, tmp_argus, built)
    finally:
        if not args.keep:
            for p in built:
                for f in (p, p + ".packets"):
                    if os.path.exists(f):
                        os.remove(f)
            if os.path.exists(tmp_argus):
                os.remove(tmp_argus)
        for f in (os.path.join(BENCH_DIR, ".stderr"), os.path.join(BENCH_DIR, ".maxrss")):
            if os.path.exists(f):
                os.remove(f)


def timing(args, botd, argus, ra, tmp_argus, built):
    capture, packets = ensure_capture(args.copies, args.src, built)
    size = os.path.getsize(capture)
    print(f"capture: {os.path.relpath(capture, ROOT)}: {packets} packets, {size / 2**20:.1f} MiB; "
          f"{args.runs} run(s) per tool, median reported")
    # Runs are interleaved (flows, argus+ra, analyze, the original pipeline, then again), so that
    # a machine whose speed drifts during the benchmark (shared vCPUs) slows every tool alike.
    # The original pipeline runs in the first --original-runs rounds only (it is slow).
    rows = {}
    flows_ok = analyze_ok = bool(botd)
    for i in range(args.runs):
        if flows_ok:
            try:
                rows.setdefault("botd flows", []).append(run_botd(botd, capture))
                r = rows["botd flows"][-1]
                print(f"  botd flows run {i + 1}: wall {r[0]:.2f} s, cpu {r[1]:.2f} s, rss {r[2] / 1024:.1f} MiB")
            except RuntimeError as e:
                print(f"botd: {e}", file=sys.stderr)
                flows_ok = False
        if argus:
            w, c, r, (w1, w2) = run_argus(argus, ra, capture, args.argus_conf, args.ra_rc, tmp_argus)
            rows.setdefault("argus+ra", []).append((w, c, r))
            print(f"  argus+ra run {i + 1}: wall {w:.2f} s (argus {w1:.2f} + ra {w2:.2f}), cpu {c:.2f} s, "
                  f"rss {r / 1024:.1f} MiB")
        if analyze_ok:
            try:
                rows.setdefault("botd analyze", []).append(run_botd_analyze(botd, capture))
                r = rows["botd analyze"][-1]
                print(f"  botd analyze run {i + 1}: wall {r[0]:.2f} s, cpu {r[1]:.2f} s, rss {r[2] / 1024:.1f} MiB")
            except RuntimeError as e:
                print(f"botd analyze: {e}", file=sys.stderr)
                analyze_ok = False
        if argus and i < args.original_runs:
            w, c, r, n = run_original(argus, ra, capture, args.argus_conf, args.ra_rc, BENCH_DIR)
            rows.setdefault("original", []).append((w, c, r))
            print(f"  original pipeline run {i + 1}: {n} windows, wall {w:.2f} s, cpu {c:.2f} s, "
                  f"rss {r / 1024:.1f} MiB")

    med = {k: tuple(statistics.median(r[j] for r in v) for j in range(3)) for k, v in rows.items()}
    best = {k: min(r[0] for r in v) for k, v in rows.items()}
    widths = (13, 9, 8, 8, 8, 12, 9, 22)
    print()
    print(fmt_row(("tool", "packets", "wall s", "best s", "CPU s", "packets/s", "RSS MiB",
                   "ratio (tool / botd)"), widths))
    ref = med.get("botd flows")
    ana = med.get("botd analyze")
    for k, (w, c, r) in med.items():
        ratios = []
        if ref and not k.startswith("botd"):
            ratios.append(f"{w / ref[0]:.1f}x flows")
        if ana and not k.startswith("botd"):
            ratios.append(f"{w / ana[0]:.1f}x analyze")
        print(fmt_row((k, packets, f"{w:.2f}", f"{best[k]:.2f}", f"{c:.2f}", f"{packets / w:,.0f}",
                       f"{r / 1024:.1f}", ", ".join(ratios) or "-"), widths))
    if ref and "argus+ra" in med:
        a = med["argus+ra"]
        print(f"\nratio (argus+ra / botd flows): wall {a[0] / ref[0]:.2f}x, CPU {a[1] / ref[1]:.2f}x "
              f"(> 1 means botd is faster)")
    elif "botd flows" not in med and botd:
        print("\nbotd did not complete a run (does it implement `botd flows` yet?); only argus+ra was timed")
    for other in ("argus+ra", "original"):
        if ana and other in med:
            o = med[other]
            print(f"ratio ({other} / botd analyze): wall {o[0] / ana[0]:.2f}x, CPU {o[1] / ana[1]:.2f}x")


def rss_series(args, botd, argus, ra, tmp_argus, built):
    """Peak RSS as the capture grows: denser (copies side by side in time, more concurrent flows)
    and longer (copies one after the other: same density, more hours)."""
    widths = (12, 10, 8, 11, 10, 13, 8, 12)
    print(fmt_row(("capture", "packets", "flows s", "flows MiB", "analyze s", "analyze MiB",
                   "argus s", "argus MiB"), widths))
    for sequential, sizes in ((False, (8, 16, 32, 64)), (True, (1, 4, 16, 32))):
        for n in sizes:
            capture, packets = ensure_capture(n, args.src, built, sequential)
            bw = br = nw = nr = aw = ar = None
            if botd:
                try:
                    bw, _, br = run_botd(botd, capture)
                    nw, _, nr = run_botd_analyze(botd, capture)
                except RuntimeError as e:
                    print(f"botd: {e}", file=sys.stderr)
            if argus:
                aw, _, ar, _ = run_argus(argus, ra, capture, args.argus_conf, args.ra_rc, tmp_argus)
            f = lambda x, d=1024: "-" if x is None else f"{x / d:.1f}" if d != 1 else f"{x:.2f}"
            label = f"{n} h" if sequential else f"{n} copies"
            print(fmt_row((label, packets, f(bw, 1), f(br), f(nw, 1), f(nr), f(aw, 1), f(ar)), widths))
            if not args.keep and capture in built:
                os.remove(capture)
                if os.path.exists(capture + ".packets"):
                    os.remove(capture + ".packets")


if __name__ == "__main__":
    main()
