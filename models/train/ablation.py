#!/usr/bin/env python3
"""What each detector adds to host-level detection, and what it costs in false alarms.

Runs models/train/detection.py (models and folds that never saw the capture) once with every
detector on, then once per detector with that one switched off (`[rules] disable = [NAME]`), and
twice more with only the models and only the rules; prints a Markdown table of the totals.

    python3 models/train/ablation.py [--folds target/train-folds] [--markdown docs/ablation-table.md]

Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))


def detectors() -> list[str]:
    """The detector names `[rules] disable` takes: src/config.rs `DETECTORS`, so the table
    follows the code."""
    import re
    src = open(os.path.join(ROOT, "src", "config.rs")).read()
    body = re.search(r"pub const DETECTORS: &\[&str\] = &\[(.*?)\];", src, re.S)
    if not body:
        sys.exit("src/config.rs: DETECTORS not found")
    return re.findall(r'"([a-z0-9-]+)"', body.group(1))


DETECTORS = detectors()


def run(disable: list[str], folds: str, td: str) -> dict:
    cfg = os.path.join(td, "ablation.toml")
    with open(cfg, "w") as f:
        f.write("[rules]\ndisable = [%s]\n" % ", ".join(json.dumps(d) for d in disable))
    out = os.path.join(td, "out.json")
    subprocess.run([sys.executable, os.path.join(HERE, "detection.py"), "--folds", folds,
                    "--config", cfg, "--json", out], check=True, stdout=subprocess.DEVNULL)
    doc = json.load(open(out))
    t = doc["totals"]
    caught = {c["capture"] for c in doc["captures"] if c["malicious_red"]}
    flagged = {c["capture"] for c in doc["captures"] if c["benign_red"]}
    return dict(t=t, caught=caught, flagged=flagged)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folds", default=os.path.join(ROOT, "target", "train-folds"))
    ap.add_argument("--markdown", default=None)
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as td:
        full = run([], args.folds, td)
        variants = [("every detector", [])]
        variants += [(f"without {d}", [d]) for d in DETECTORS]
        variants += [("models only", [d for d in DETECTORS if d != "models"]),
                     ("rules only (no models)", ["models"])]
        for name, disable in variants:
            r = full if not disable else run(disable, args.folds, td)
            t = r["t"]
            lost = sorted(full["caught"] - r["caught"])
            spared = sorted(full["flagged"] - r["flagged"])
            rows.append((name, t, lost, spared))
            print(f"{name}: target {t['tr']}/{t['tt']}, all {t['mr']}/{t['mt']}, benign {t['br']}/{t['bt']}",
                  file=sys.stderr)
    lines = ["| variant | target kinds red | all malicious red | benign hosts red | captures lost | benign captures spared |",
             "|---|---|---|---|---|---|"]
    short = lambda caps: ", ".join(os.path.basename(c) for c in caps) or "-"
    for name, t, lost, spared in rows:
        lines.append(f"| {name} | {t['tr']}/{t['tt']} | {t['mr']}/{t['mt']} | {t['br']}/{t['bt']} "
                     f"| {short(lost)} | {short(spared)} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
