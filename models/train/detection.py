#!/usr/bin/env python3
"""Host-level detection of `botd analyze`, judged only by models that never saw the capture.

For every capture of the evaluation set (the captures of truth.toml and the benign captures the
trainer uses), the capture is analysed with the fold models trained without it (from
`train.py --export-folds DIR`); captures no fold trained on are analysed with the shipped models,
which never saw them either. Prints the per-capture table (malicious hosts red, benign hosts red)
and writes it as Markdown with --markdown. Inbound-DDoS captures (no infected home host) and
`ignore_all` captures (roles unclear; truth.toml: "never for counting flagged hosts") are left out
of the table and the totals; the latter are summed on a line of their own.

    python3 models/train/detection.py [--folds target/train-folds] [--botd target/release/botd]
        [--data ../shared/data] [--config FILE] [--markdown docs/detection-table.md] [--json FILE]

Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
TARGET_KINDS = ("botnet", "rat", "worm", "trojan", "ransomware", "beacon", "miner", "spam", "tunnel")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folds", default=os.path.join(ROOT, "target", "train-folds"))
    ap.add_argument("--botd", default=os.path.join(ROOT, "target", "release", "botd"))
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--models", default=os.path.join(ROOT, "models"))
    ap.add_argument("--config", default=None)
    ap.add_argument("--markdown", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    folds_file = os.path.join(args.folds, "folds.json")
    if not os.path.exists(folds_file):
        print(f"{folds_file} missing: run models/train/train.py --export-folds {args.folds}", file=sys.stderr)
        return 2
    folds = json.load(open(folds_file))
    truth = os.path.join(args.data, "truth.toml")
    by_models: dict[str, list[str]] = {}
    for rel, fold in sorted(folds["folds"].items()):
        by_models.setdefault(os.path.join(args.folds, f"fold-{fold}"), []).append(rel)
    for rel in sorted(folds.get("not_trained_on", [])):
        by_models.setdefault(args.models, []).append(rel)

    evaluations = []
    with tempfile.TemporaryDirectory() as td:
        for models_dir, rels in sorted(by_models.items()):
            out = os.path.join(td, "out.json")
            cmd = [args.botd, "analyze", "--models", models_dir, "--truth", truth, "--json", out]
            if args.config:
                cmd += ["--config", args.config]
            cmd += [os.path.join(args.data, r) for r in rels]
            # Damaged captures make analyze exit non-zero after judging them; keep their rows.
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if not os.path.exists(out):
                print(f"botd analyze wrote nothing for {models_dir}", file=sys.stderr)
                return 1
            doc = json.load(open(out))
            for ev in doc.get("evaluation", []):
                ev["models"] = os.path.relpath(models_dir, ROOT)
                evaluations.append(ev)
    evaluations.sort(key=lambda e: e["capture"])

    # truth.toml: `ignore_all` captures (kind "unclear": roles unknown) are "never for counting
    # flagged hosts"; they are listed apart, outside the totals, like the inbound DDoS ones.
    with open(truth, "rb") as f:
        ignore_all = {e["path"] for e in tomllib.load(f).get("capture", []) if e.get("ignore_all")}
    rows = []
    unclear = []
    tot = dict(mr=0, mt=0, tr=0, tt=0, br=0, bt=0, bcap=0)
    for e in evaluations:
        if e["kind"] == "inbound-ddos":
            continue
        if e["capture"] in ignore_all:
            unclear.append(e)
            continue
        rows.append(e)
        tot["mr"] += e["malicious_red"]
        tot["mt"] += e["malicious_total"]
        tot["br"] += e["benign_red"]
        tot["bt"] += e["benign_total"]
        tot["bcap"] += 1 if e["benign_red"] else 0
        if e["kind"] in TARGET_KINDS:
            tot["tr"] += e["malicious_red"]
            tot["tt"] += e["malicious_total"]

    lines = ["| capture | kind | judged by | malicious red | benign red | missed | benign flagged |",
             "|---|---|---|---|---|---|---|"]
    for e in rows:
        lines.append(
            f"| {e['capture']} | {e['kind']} | {e['models']} | {e['malicious_red']}/{e['malicious_total']} "
            f"| {e['benign_red']}/{e['benign_total']} | {' '.join(e['malicious_missed']) or '-'} "
            f"| {' '.join(e['benign_flagged']) or '-'} |"
        )
    pct = lambda a, b: f"{100.0 * a / b:.1f}%" if b else "-"
    summary = (
        f"**Total**: malicious hosts red {tot['mr']}/{tot['mt']} ({pct(tot['mr'], tot['mt'])}); "
        f"of kinds {', '.join(TARGET_KINDS)}: {tot['tr']}/{tot['tt']} ({pct(tot['tr'], tot['tt'])}); "
        f"benign hosts red {tot['br']}/{tot['bt']} in {tot['bcap']} of {len(rows)} captures."
    )
    text = "\n".join(lines) + "\n\n" + summary + "\n"
    if unclear:
        flagged = ["%s (%s)" % (e["capture"], " ".join(e["benign_flagged"])) for e in unclear if e["benign_red"]]
        text += ("\nNot counted (`ignore_all` in truth.toml, roles unclear): %d captures, %d of their %d hosts "
                 "red%s.\n" % (len(unclear), sum(e["benign_red"] for e in unclear),
                                 sum(e["benign_total"] for e in unclear),
                                 ": " + "; ".join(flagged) if flagged else ""))
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"captures": rows, "not_counted": unclear, "totals": tot}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
