#!/usr/bin/env python3
"""botd against nDPI's flow risks, judged the same way on the same captures.

nDPI (Debian's `libndpi-bin`: `ndpiReader -i FILE -v 2`) prints every flow with its risks and a
risk score (`[Risk Score: N]`, the sum of the scores of the flow's risks by severity; in nDPI 4.2:
low 10, medium 50, high 100, severe 250). Here a home host is flagged by nDPI at threshold T when
one of its flows, the host at either end, has a risk score >= T. The judging is
that of models/train/detection.py: a malicious host (truth.toml `malicious`) counts as detected when
flagged; a benign host (a home host that is neither malicious nor `ignore`d) counts as a false
alarm when flagged. botd's figures are read from a `detection.py --json` file, and exactly its list
of captures is judged here, so both tools are judged on the same set.

Benign host sets differ: botd counts the home hosts botd tracked (a flow counts for the home host
that started it, and for its home destination only when it came from outside); nDPI's benign hosts
are the home addresses at either end of an nDPI flow (multicast, unspecified, and a home prefix's
network and broadcast addresses left out, as botd does).
The summary also gives nDPI's false alarms counting only the home hosts that started a flow (as
nDPI orients it) or received one from outside.

    python3 models/train/ndpi_compare.py --captures-from /tmp/det.json [--data ../shared/data]
        [--thresholds 10,50,100] [--markdown OUT.md] [--ndpireader /usr/bin/ndpiReader] [--jobs 2]

ndpiReader outputs are cached in target/ndpi-cache/ (keyed by capture path and size). Gzipped
captures are decompressed to a temporary file; a capture libpcap cannot read (to the end) is
converted with `editcap -F pcap` and read again. Standard library only.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import gzip
import hashlib
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
TARGET_KINDS = ("botnet", "rat", "worm", "trojan", "ransomware", "beacon", "miner", "spam", "tunnel")
DEFAULT_HOME = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
NDPI_FLAGS = ["-v", "2"]
CACHE_FORMAT = 2

# `\t<id>\t<PROTO> <src>:<port> <->|-> <dst>:<port> [VLAN: n][proto: ...]...` (IPv6 addresses in
# brackets; [VLAN: n] only on tagged flows).
FLOW_RE = re.compile(r"^\t\d+\t(\S+) (\S+) (<->|->) (\S+) \[(?:VLAN: \d+\]\[)?proto:")
SCORE_RE = re.compile(r"\[Risk Score: (\d+)\]")
RISK_RE = re.compile(r"\[Risk: ((?:\*\* .*? \*\*)+)\]")
READ_ERRORS = ("Error while reading pcap file", "could not open pcap file")


def endpoint_addr(s: str):
    """`1.2.3.4:80` or `[fe80::1]:80` -> ip_address, None when unparsable."""
    if s.startswith("["):
        host = s[1:s.rfind("]")]
    else:
        host = s.rsplit(":", 1)[0]
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def parse_flows(text: str):
    """[(src, dst, score, risks)] of the flows ndpiReader printed."""
    flows = []
    for line in text.splitlines():
        m = FLOW_RE.match(line)
        if not m:
            continue
        src, dst = endpoint_addr(m.group(2)), endpoint_addr(m.group(4))
        s = SCORE_RE.search(line)
        score = int(s.group(1)) if s else 0
        r = RISK_RE.search(line)
        risks = [x.strip() for x in r.group(1).split("**") if x.strip()] if r else []
        flows.append((src, dst, score, risks))
    return flows


def read_errors(text: str) -> list[str]:
    return [l.strip() for l in text.splitlines() if any(e in l for e in READ_ERRORS)]


def ndpi_version(ndpireader: str) -> str:
    try:
        p = subprocess.run([ndpireader, "-h"], capture_output=True, text=True, timeout=30)
    except OSError as e:
        return f"unavailable ({e})"
    m = re.search(r"nDPI (\S+)", p.stdout + p.stderr)
    return m.group(1) if m else "unknown"


def run_ndpi(ndpireader: str, path: str) -> tuple[str, str]:
    """(stdout, how it was read): decompressing .gz, converting with editcap on a read error."""
    notes = []
    with tempfile.TemporaryDirectory(prefix="ndpi-") as td:
        src = path
        # libpcap reads no gzip: decompress, as often as it takes (some captures are gzipped twice).
        layers = 0
        while True:
            with open(src, "rb") as f:
                if f.read(2) != b"\x1f\x8b":
                    break
            out_path = os.path.join(td, f"gunzipped-{layers}.pcap")
            with gzip.open(src, "rb") as fi, open(out_path, "wb") as fo:
                shutil.copyfileobj(fi, fo)
            src, layers = out_path, layers + 1
        if layers:
            notes.append("gunzipped" + (f" {layers} times" if layers > 1 else ""))

        def run(f):
            p = subprocess.run([ndpireader, "-i", f] + NDPI_FLAGS, capture_output=True, text=True,
                               errors="replace", timeout=1800)
            return p.stdout + p.stderr

        out = run(src)
        errs = read_errors(out)
        if errs:
            conv = os.path.join(td, "converted.pcap")
            editcap = shutil.which("editcap")
            p = subprocess.run([editcap, "-F", "pcap", src, conv], capture_output=True, text=True) \
                if editcap else None
            if p is not None and p.returncode == 0 and os.path.exists(conv):
                out2 = run(conv)
                errs2 = read_errors(out2)
                if len(parse_flows(out2)) >= len(parse_flows(out)) and not errs2:
                    out = out2
                    notes.append("converted with editcap -F pcap")
                else:
                    notes.append("read error: %s; editcap -F pcap copy: %s" % (errs[0], (errs2 or ["no better"])[0]))
            else:
                why = (p.stderr.strip().splitlines() or ["failed"])[-1] if p is not None else "editcap missing"
                why = re.sub(r' of file "[^"]*"', "", why.replace(src, "FILE"))
                notes.append("read error: %s; editcap -F pcap: %s" % (errs[0], why))
    return out, "; ".join(notes)


def cached_ndpi(ndpireader: str, version: str, data: str, rel: str, cache_dir: str):
    path = os.path.join(data, rel)
    size = os.path.getsize(path)
    key = hashlib.sha1(rel.encode()).hexdigest()[:10]
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", rel)[-120:]
    cache = os.path.join(cache_dir, f"{name}.{key}.{size}.json")
    meta = {"format": CACHE_FORMAT, "ndpi": version, "flags": NDPI_FLAGS, "capture": rel, "size": size}
    if os.path.exists(cache):
        try:
            doc = json.load(open(cache))
            if all(doc.get(k) == v for k, v in meta.items()):
                return doc["stdout"], doc["note"], True
        except (OSError, ValueError, KeyError):
            pass
    out, note = run_ndpi(ndpireader, path)
    tmp = cache + ".tmp"
    with open(tmp, "w") as f:
        json.dump(dict(meta, note=note, stdout=out), f)
    os.replace(tmp, cache)
    return out, note, False


class Judged:
    """nDPI's view of one capture: per host the highest score of its flows."""

    def __init__(self, entry: dict | None, flows):
        home = (entry or {}).get("home") or list(DEFAULT_HOME)
        self.nets = [ipaddress.ip_network(h, strict=False) for h in home]
        self.malicious = [ipaddress.ip_address(a) for a in (entry or {}).get("malicious", [])]
        self.ignore = {ipaddress.ip_address(a) for a in (entry or {}).get("ignore", [])}
        self.max_score: dict = {}  # host -> highest score of a flow it is at either end of
        self.risks: dict = {}  # host -> risks of that flow
        self.botd_like: set = set()  # home hosts that started a flow or received one from outside
        for src, dst, score, risks in flows:
            for a in (src, dst):
                if a is None:
                    continue
                if score > self.max_score.get(a, -1):
                    self.max_score[a] = score
                    self.risks[a] = risks
            if self.is_home(src):
                self.botd_like.add(src)
            elif self.is_home(dst) and src is not None and not self.in_nets(src):
                self.botd_like.add(dst)
        mal = set(self.malicious)
        self.benign = sorted((a for a in self.max_score if self.is_home(a) and a not in mal and a not in self.ignore),
                             key=lambda a: (a.version, a))
        self.benign_botd_like = [a for a in self.benign if a in self.botd_like]

    def in_nets(self, a) -> bool:
        return any(a.version == n.version and a in n for n in self.nets)

    def is_home(self, a) -> bool:
        """A home host as botd's detector counts one (src/detect.rs `is_scored_host`): inside a
        home prefix, not multicast or unspecified, not the network or broadcast address of an
        IPv4 home prefix of /30 or wider."""
        if a is None or a.is_multicast or a.is_unspecified:
            return False
        for n in self.nets:
            if a.version == n.version and a in n:
                if n.version == 4 and n.prefixlen <= 30 and a in (n.network_address, n.broadcast_address):
                    continue
                return True
        return False

    def flagged(self, a, t: int) -> bool:
        return self.max_score.get(a, -1) >= t


def pct(a: int, b: int) -> str:
    return f"{a}/{b} ({100.0 * a / b:.1f}%)" if b else f"{a}/{b}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--captures-from", required=True, help="JSON written by detection.py --json")
    ap.add_argument("--thresholds", default="10,50,100")
    ap.add_argument("--markdown", default=None)
    ap.add_argument("--ndpireader", default=shutil.which("ndpiReader") or "/usr/bin/ndpiReader")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--cache", default=os.path.join(ROOT, "target", "ndpi-cache"))
    args = ap.parse_args(argv)

    started = time.monotonic()
    thresholds = sorted({int(t) for t in args.thresholds.split(",") if t.strip()})
    det = json.load(open(args.captures_from))
    rows = det["captures"]
    with open(os.path.join(args.data, "truth.toml"), "rb") as f:
        truth = {e["path"]: e for e in tomllib.load(f).get("capture", [])}
    if not os.path.exists(args.ndpireader):
        print(f"{args.ndpireader} missing: apt-get install libndpi-bin", file=sys.stderr)
        return 2
    version = ndpi_version(args.ndpireader)
    os.makedirs(args.cache, exist_ok=True)

    outputs = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as ex:
        futs = {ex.submit(cached_ndpi, args.ndpireader, version, args.data, r["capture"], args.cache): r["capture"]
                for r in rows}
        for fut in concurrent.futures.as_completed(futs):
            outputs[futs[fut]] = fut.result()
    cached = sum(1 for o in outputs.values() if o[2])

    judged = {}
    notes: dict[str, list[str]] = {}  # how a capture was read -> captures
    for r in rows:
        rel = r["capture"]
        out, note, _ = outputs[rel]
        flows = parse_flows(out)
        judged[rel] = Judged(truth.get(rel), flows)
        if note:
            notes.setdefault(note, []).append(f"{rel} ({len(flows)} flows)")
        elif not flows:
            notes.setdefault("read as it is, no flow", []).append(rel)

    # botd totals, summed from the per-capture rows exactly as detection.py does.
    b = dict(tr=0, tt=0, mr=0, mt=0, br=0, bt=0, bcap=0)
    for r in rows:
        b["mr"] += r["malicious_red"]
        b["mt"] += r["malicious_total"]
        b["br"] += r["benign_red"]
        b["bt"] += r["benign_total"]
        b["bcap"] += 1 if r["benign_red"] else 0
        if r["kind"] in TARGET_KINDS:
            b["tr"] += r["malicious_red"]
            b["tt"] += r["malicious_total"]

    def ndpi_totals(t: int) -> dict:
        n = dict(tr=0, tt=0, mr=0, mt=0, br=0, bt=0, bcap=0, blr=0, blt=0)
        for r in rows:
            j = judged[r["capture"]]
            red = sum(1 for m in j.malicious if j.flagged(m, t))
            n["mr"] += red
            n["mt"] += len(j.malicious)
            if r["kind"] in TARGET_KINDS:
                n["tr"] += red
                n["tt"] += len(j.malicious)
            br = sum(1 for a in j.benign if j.flagged(a, t))
            n["br"] += br
            n["bt"] += len(j.benign)
            n["bcap"] += 1 if br else 0
            n["blr"] += sum(1 for a in j.benign_botd_like if j.flagged(a, t))
            n["blt"] += len(j.benign_botd_like)
        return n

    # The lowest threshold at which nDPI flags no benign host: one above the highest score of a
    # benign host's flows.
    def clean_threshold(skip=()):
        return 1 + max((j.max_score[a] for rel, j in judged.items() if rel not in skip for a in j.benign), default=0)

    clean_t = clean_threshold()
    top_hosts = sorted(f"{rel} ({a})" for rel, j in judged.items() for a in j.benign
                       if j.max_score[a] == clean_t - 1 and clean_t > 1)
    top_caps = sorted({h.rsplit(" (", 1)[0] for h in top_hosts})
    # How much hangs on the capture(s) that set it: the same without them.
    next_t = clean_threshold(set(top_caps)) if top_caps else clean_t
    all_t = sorted(set(thresholds) | {clean_t})

    n_caps = len(rows)
    head = ["| tool | malicious red, target kinds | malicious red, all | benign hosts red | captures with a benign host red |",
            "|---|---|---|---|---|"]
    lines = list(head)
    lines.append(f"| botd | {pct(b['tr'], b['tt'])} | {pct(b['mr'], b['mt'])} | {b['br']}/{b['bt']} | {b['bcap']}/{n_caps} |")
    tot_by_t = {t: ndpi_totals(t) for t in sorted(set(all_t) | {next_t})}
    for t in all_t:
        n = tot_by_t[t]
        mark = " (lowest with no benign host red)" if t == clean_t else ""
        lines.append(f"| nDPI risk >= {t}{mark} | {pct(n['tr'], n['tt'])} | {pct(n['mr'], n['mt'])} "
                     f"| {n['br']}/{n['bt']} | {n['bcap']}/{n_caps} |")
    c = tot_by_t[clean_t]
    verdict = "more" if b["tr"] > c["tr"] else ("as many" if b["tr"] == c["tr"] else "fewer")
    hist: dict[int, int] = {}
    for j in judged.values():
        for a in j.benign:
            hist[j.max_score[a]] = hist.get(j.max_score[a], 0) + 1
    first = tot_by_t[all_t[0]]
    summary = [
        f"{n_caps} captures (the list of `{os.path.basename(args.captures_from)}`: detection.py's judged set, "
        f"`inbound-ddos` and `ignore_all` captures left out); nDPI {version}, `ndpiReader -i FILE {' '.join(NDPI_FLAGS)}`, "
        f"a host flagged when a flow it is at either end of has `Risk Score` >= T.",
        "",
        f"**Lowest nDPI threshold with no benign host red: {clean_t}** (the highest score of a benign host's flows is "
        f"{clean_t - 1}" + (f": {', '.join(top_hosts[:6])}{' ...' if len(top_hosts) > 6 else ''}" if top_hosts else "")
        + f"). There nDPI catches {pct(c['tr'], c['tt'])} infected hosts of the target kinds and {pct(c['mr'], c['mt'])} "
        f"malicious hosts in all; botd catches {pct(b['tr'], b['tt'])} and {pct(b['mr'], b['mt'])} "
        f"with {b['br']} benign hosts red: botd catches {verdict} infected hosts.",
    ]
    if next_t < clean_t:
        n2 = tot_by_t[next_t]
        summary.append(
            f"Without {', '.join(top_caps)} (where that score is) the lowest would be {next_t}: there nDPI catches "
            f"{pct(n2['tr'], n2['tt'])} of the target kinds ({pct(n2['mr'], n2['mt'])} in all), with {n2['br']} benign "
            f"hosts red, all in {', '.join(top_caps)}.")
    summary += [
        "",
        "Benign hosts by the highest risk score of their flows (score: hosts): "
        + ", ".join(f"{k}: {v}" for k, v in sorted(hist.items())) + ".",
        "",
        f"Benign hosts: botd's totals count the home hosts botd tracked ({b['bt']}; its hosts also come from ARP, "
        f"which nDPI does not see); nDPI's count the home addresses at either end of an nDPI flow, not malicious, not "
        f"ignored, leaving out multicast, unspecified and a home prefix's network and broadcast addresses as botd does "
        f"({first['bt']}). Counting only the home hosts that started a flow (as nDPI orients it) or received one from "
        f"outside ({first['blt']} hosts), nDPI's benign hosts red are "
        + ", ".join(f"{tot_by_t[t]['blr']} at >= {t}" for t in all_t) + ".",
    ]

    # Per capture: the target-kind captures, which tool caught the infected host(s).
    per = ["| capture | kind | malicious | botd | " + " | ".join(f"nDPI >= {t}" for t in all_t)
           + " | nDPI top score of the malicious host: risks |",
           "|---|---|---|---|" + "---|" * len(all_t) + "---|"]
    overlap = {t: [0, 0, 0, 0] for t in all_t}  # both, botd only, nDPI only, neither (infected hosts)
    for r in rows:
        if r["kind"] not in TARGET_KINDS:
            continue
        j = judged[r["capture"]]
        if not j.malicious:
            continue
        missed = set(r.get("malicious_missed", []))
        botd = sum(1 for m in j.malicious if str(m) not in missed)
        n = len(j.malicious)
        cells = []
        for t in all_t:
            k = sum(1 for m in j.malicious if j.flagged(m, t))
            cells.append(f"{k}/{n}" + (" **caught**" if k else ""))
            for m in j.malicious:
                by_botd, by_ndpi = str(m) not in missed, j.flagged(m, t)
                overlap[t][0 if by_botd and by_ndpi else 1 if by_botd else 2 if by_ndpi else 3] += 1
        tops = []
        for m in j.malicious:
            s = j.max_score.get(m)
            if s is None:
                tops.append(f"{m}: not in nDPI's flows")
            else:
                tops.append(f"{m}: {s}" + (f" ({', '.join(j.risks[m])})" if j.risks.get(m) else ""))
        per.append(f"| {r['capture']} | {r['kind']} | {n} | {botd}/{n}{' **caught**' if botd else ''} | "
                   + " | ".join(cells) + f" | {'; '.join(tops)} |")

    per.append("")
    per.append("Infected hosts of the target kinds, botd against nDPI: " + "; ".join(
        f"at >= {t} both caught {o[0]}, only botd {o[1]}, only nDPI {o[2]}, neither {o[3]}"
        for t, o in overlap.items()) + ".")

    elapsed = time.monotonic() - started
    text = "\n".join(lines) + "\n\n" + "\n".join(summary) + "\n\n" + "\n".join(per) + "\n"
    if notes:
        text += "\nHow nDPI read the captures (the others: as they are, with flows):\n\n" + "".join(
            f"* {note}: {', '.join(caps)}\n" for note, caps in sorted(notes.items(), key=lambda kv: kv[0]))
    print(text)
    print(f"[{len(rows)} captures, {cached} ndpiReader outputs from {os.path.relpath(args.cache, os.getcwd())}, "
          f"{elapsed:.1f} s]", file=sys.stderr)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
