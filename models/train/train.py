#!/usr/bin/env python3
"""Trains botd's random-forest flow models and exports them to ONNX with model cards.

Run from the repository root (after `sh models/train/setup.sh`):

    models/train/.venv/bin/python models/train/train.py --schema all

Flows come from `botd flows --window 300 --overlap 150 --format csv` on every capture of truth.toml
and on the benign captures (cached under target/train-cache/); optional `--binetflow` files feed
the `ctu` schema only. Labels, validation and the host rule are described in docs/features.md and
in each model card. Deterministic: same seed and same data give the same metrics.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import ipaddress
import json
import os
import subprocess
import sys
import time
import tomllib
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))
import features as F  # noqa: E402

TRAINER_VERSION = "1"
WINDOW_SECS = 300
OVERLAP_SECS = 150
K_FOLDS = 5
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".trace", ".cap", ".pcap.gz", ".pcapng.gz")
# Benign captures: every capture file under these folders that has no truth entry ...
BENIGN_DIRS = ("debian-registry/", "malcolm-pcap/protocols/", "chrissanders-packets/")
# ... except these (deliberately corrupted files).
BENIGN_EXCLUDE = ("debian-registry/pcapfix/",)
# Host rule: a home host is flagged when, in some window, at least HOST_MIN_FLOWS of its flows are
# predicted botnet and they are at least HOST_MIN_FRACTION of its flows in that window.
HOST_MIN_FLOWS = 3
HOST_MIN_FRACTION = 0.5
RECALL_TARGET = 0.90
THRESHOLD_RULES = {
    "maxf1": "highest out-of-fold flow F1",
    "recall90": "highest threshold with out-of-fold flow recall >= %.2f" % RECALL_TARGET,
}
RF_PARAMS = dict(n_estimators=100, max_depth=12, min_samples_leaf=2,
                 class_weight="balanced_subsample")

T0 = time.time()


def log(msg):
    print("[%6.1fs] %s" % (time.time() - T0, msg), flush=True)


# ---------------------------------------------------------------------------------------------------
# Addresses


_IP_CACHE: dict = {}


def ip(text):
    v = _IP_CACHE.get(text)
    if v is None and text not in _IP_CACHE:
        try:
            v = ipaddress.ip_address(text.strip())
        except ValueError:
            v = None
        _IP_CACHE[text] = v
    return v


class Truth:
    """One [[capture]] entry of truth.toml."""

    def __init__(self, entry):
        self.path = entry["path"]
        self.kind = entry.get("kind", "")
        self.family = entry.get("family", "")
        self.home = [ipaddress.ip_network(c, strict=False) for c in entry.get("home", [])]
        self.malicious = set(entry.get("malicious", []))
        self.ignore = set(entry.get("ignore", []))
        self.ignore_all = bool(entry.get("ignore_all", False))

    @property
    def trainable(self):
        return not (self.kind == "inbound-ddos" or self.ignore_all)

    def in_home(self, addr):
        a = ip(addr)
        return a is not None and any(a.version == n.version and a in n for n in self.home)

    def is_benign_home(self, addr):
        return addr not in self.malicious and addr not in self.ignore and self.in_home(addr)

    def is_home_host(self, addr):
        """Home hosts counted at host level: inside home, not ignore, not network/broadcast/multicast."""
        if addr in self.ignore or not self.in_home(addr):
            return False
        a = ip(addr)
        if a.is_multicast or a.is_unspecified:
            return False
        for n in self.home:
            if a.version == n.version and a in n and n.num_addresses > 2 and (
                    a == n.network_address or a == n.broadcast_address):
                return False
        return True

    def label(self, src, dst):
        """1 botnet, 0 normal, -1 left out."""
        if not self.trainable:
            return -1
        if src in self.malicious or dst in self.malicious:
            return 1
        if src in self.ignore or dst in self.ignore:
            return -1
        if self.is_benign_home(src) or self.is_benign_home(dst):
            return 0
        return -1


def binetflow_label(text):
    """CTU-13 labels: From-Botnet (and MCFP/Stratosphere `Malware`) -> 1; From-Normal / Normal -> 0."""
    t = text or ""
    if "From-Botnet" in t or "Botnet" in t or "Malware" in t:
        return 1
    if "From-Normal" in t or "Normal" in t:
        return 0
    return -1


def is_plain_host(addr):
    a = ip(addr)
    return a is not None and not (a.is_multicast or a.is_unspecified or str(a) == "255.255.255.255")


# ---------------------------------------------------------------------------------------------------
# Loading flows


class Capture:
    """One group (never split across folds): a capture file or a binetflow file."""

    def __init__(self, name, source, truth=None):
        self.name = name          # capture path relative to the data dir (or binetflow path)
        self.source = source      # "truth" | "benign" | "binetflow"
        self.truth = truth
        self.X = {}               # schema name -> float32 matrix (all rows)
        self.y = None             # int8, -1 = left out
        self.src = []
        self.dst = []
        self.win = None           # window id per row (host rule)
        self.fold = None

    @property
    def kind(self):
        if self.source == "truth":
            return self.truth.kind
        return "benign" if self.source == "benign" else "binetflow"

    @property
    def n_pos(self):
        return int((self.y == 1).sum())

    @property
    def n_neg(self):
        return int((self.y == 0).sum())

    @property
    def labelled(self):
        return self.y >= 0


def list_captures(data: Path, truth_entries):
    truth_paths = {t.path for t in truth_entries}
    benign = []
    for root, dirs, files in os.walk(data):
        dirs.sort()
        for f in sorted(files):
            rel = str((Path(root) / f).relative_to(data)).replace(os.sep, "/")
            if not rel.lower().endswith(CAPTURE_SUFFIXES):
                continue
            if rel in truth_paths or not rel.startswith(BENIGN_DIRS) or rel.startswith(BENIGN_EXCLUDE):
                continue
            benign.append(rel)
    return benign


def botd_csv(botd: Path, capture: Path, rel: str, cache: Path):
    """Runs `botd flows` (windowed CSV) on a capture, cached by capture path + botd mtime."""
    st = botd.stat()
    cst = capture.stat()
    key = "|".join([rel, str(st.st_mtime_ns), str(st.st_size), str(cst.st_size), str(cst.st_mtime_ns),
                    str(WINDOW_SECS), str(OVERLAP_SECS), "app"])
    digest = hashlib.sha1(key.encode()).hexdigest()[:16]
    out = cache / ("%s-%s.csv" % (rel.replace("/", "__"), digest))
    if not out.exists():
        tmp = out.with_suffix(".tmp")
        # --app: the application columns the `proto` schema reads (the others ignore them).
        cmd = [str(botd), "flows", "--window", str(WINDOW_SECS), "--overlap", str(OVERLAP_SECS),
               "--format", "csv", "--app", "-o", str(tmp), str(capture)]
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600)
        if r.returncode != 0:
            log("  ! botd failed on %s (rc %d): %s" % (rel, r.returncode, r.stderr.strip()[-300:]))
            tmp.unlink(missing_ok=True)
            return None
        tmp.replace(out)
    return out


def load_botd_capture(cap: Capture, csv_path: Path, schemas):
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    for s in schemas:
        cap.X[s.name] = F.matrix(s, rows)
    cap.src = [r["SrcAddr"] for r in rows]
    cap.dst = [r["DstAddr"] for r in rows]
    cap.win = np.array([int(r.get("Window") or 0) for r in rows], dtype=np.int64)
    if cap.truth is not None:
        cap.y = np.array([cap.truth.label(s, d) for s, d in zip(cap.src, cap.dst)], dtype=np.int8)
    else:
        cap.y = np.zeros(len(rows), dtype=np.int8)


def parse_time(text):
    t = (text or "").strip()
    for fmt in ("%Y/%m/%d %H:%M:%S.%f", "%Y/%m/%d %H:%M:%S", "%Y-%m-%d %H:%M:%S.%f"):
        try:
            return dt.datetime.strptime(t, fmt).replace(tzinfo=dt.timezone.utc).timestamp()
        except ValueError:
            pass
    return 0.0


def load_binetflow(cap: Capture, path: Path):
    """CTU-13 / Argus binetflow: comma or tab separated, extra columns ignored, `man` rows dropped."""
    rows, labels = [], []
    with open(path, newline="", errors="replace") as f:
        header = f.readline().rstrip("\r\n")
        sep = "\t" if header.count("\t") > header.count(",") else ","
        cols = [c.strip() for c in header.split(sep)]
        has_label = "Label" in cols
        li = cols.index("Label") if has_label else -1
        for rec in csv.reader(f, delimiter=sep, quoting=csv.QUOTE_NONE):
            if not rec:
                continue
            row = dict(zip(cols, rec))
            if (row.get("Proto") or "").strip() == "man":
                continue
            lab = ""
            if has_label:
                # Extra payload columns may hold separators: the Label is then the last field.
                lab = rec[li] if len(rec) == len(cols) or li != len(cols) - 1 else rec[-1]
            rows.append(row)
            labels.append(binetflow_label(lab))
    cap.X["ctu"] = F.matrix(F.CTU, rows)
    cap.src = [(r.get("SrcAddr") or "").strip() for r in rows]
    cap.dst = [(r.get("DstAddr") or "").strip() for r in rows]
    cap.win = np.array([int(parse_time(r.get("StartTime")) // WINDOW_SECS) for r in rows], dtype=np.int64)
    cap.y = np.array(labels, dtype=np.int8)


# ---------------------------------------------------------------------------------------------------
# Folds, metrics, host rule


def assign_folds(caps, k, seed):
    """Deterministic grouped k-fold: each capture (group) goes whole into one fold (with `--group family`
    the units are groups of captures, see assign_folds_grouped).

    Captures holding botnet rows are spread first (each to the fold with the fewest such captures,
    ties by fewest botnet rows, then lowest index), then the normal-only captures the same way by
    normal rows; the order within each size is a seeded shuffle.
    """
    rng = np.random.RandomState(seed)
    groups = sorted((c for c in caps if c.labelled.any()), key=lambda c: c.name)
    perm = rng.permutation(len(groups))
    shuffled = [groups[i] for i in perm]
    count = [[0] * k, [0] * k]
    load = [[0] * k, [0] * k]
    pos = sorted((c for c in shuffled if c.n_pos > 0), key=lambda c: -c.n_pos)
    neg = sorted((c for c in shuffled if c.n_pos == 0), key=lambda c: -c.n_neg)
    for cls, lst in ((0, pos), (1, neg)):
        for c in lst:
            f = min(range(k), key=lambda i: (count[cls][i], load[cls][i], i))
            c.fold = f
            count[cls][f] += 1
            load[cls][f] += c.n_pos if cls == 0 else c.n_neg
    return groups


def family_groups(caps):
    """Fold groups for `--group family`: captures of one malware family (the truth `family` up to its
    first " (", case-folded) or of one infected host (same folder and a shared `malicious` address)
    share a group; every other capture is a group of its own. Returns {capture name: group name}."""
    parent = {c.name: c.name for c in caps}

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    def union(a, b):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    seen = {}
    for c in sorted(caps, key=lambda c: c.name):
        if c.source != "truth" or not c.truth.malicious:
            continue
        keys = ["family:" + c.truth.family.split(" (")[0].strip().casefold()]
        folder = os.path.dirname(c.name)
        keys += ["host:%s:%s" % (folder, m) for m in sorted(c.truth.malicious)]
        for key in keys:
            if key in seen:
                union(seen[key], c.name)
            else:
                seen[key] = c.name
    return {c.name: find(c.name) for c in caps}


class _Group:
    """Several captures assigned to one fold together (`--group family`)."""

    def __init__(self, name, members):
        self.name = name
        self.members = members
        self.n_pos = sum(c.n_pos for c in members)
        self.n_neg = sum(c.n_neg for c in members)
        self.fold = None


def assign_folds_grouped(caps, k, seed, group_of):
    """assign_folds over groups of captures (each group whole into one fold)."""
    labelled = [c for c in caps if c.labelled.any()]
    by = defaultdict(list)
    for c in labelled:
        by[group_of[c.name]].append(c)
    groups = [_Group(g, sorted(m, key=lambda c: c.name)) for g, m in by.items()]
    groups.sort(key=lambda g: g.name)
    for g in groups:
        g.labelled = np.ones(1, dtype=bool)
    assign_folds(groups, k, seed)
    for g in groups:
        for c in g.members:
            c.fold = g.fold
    return labelled


def prf(y, p):
    tp = int(((p == 1) & (y == 1)).sum())
    fp = int(((p == 1) & (y == 0)).sum())
    fn = int(((p == 0) & (y == 1)).sum())
    tn = int(((p == 0) & (y == 0)).sum())
    prec = tp / (tp + fp) if tp + fp else None
    rec = tp / (tp + fn) if tp + fn else None
    f1 = 2 * prec * rec / (prec + rec) if prec and rec else (0.0 if prec is not None and rec is not None else None)
    return dict(tp=tp, fp=fp, fn=fn, tn=tn, precision=prec, recall=rec, f1=f1)


def choose_threshold(y, prob, rule="maxf1"):
    """Threshold on the pooled out-of-fold probabilities.

    rule "maxf1": the threshold with the highest flow F1 (the highest such threshold on ties);
    rule "recall90": the highest threshold whose flow recall is >= RECALL_TARGET.
    Returns (chosen, recall-rule threshold, max-F1 threshold, max F1).
    """
    cands = np.unique(np.concatenate([prob, [0.5]]))
    best_t, best = 0.5, None
    f1_t, f1_best = 0.5, -1.0
    for t in cands[::-1]:
        m = prf(y, (prob >= t).astype(np.int8))
        if m["recall"] is not None and m["recall"] >= RECALL_TARGET and best is None:
            best_t, best = float(t), m
        if m["f1"] is not None and m["f1"] > f1_best:
            f1_best, f1_t = m["f1"], float(t)
    # Round down to 4 decimals so the stored text keeps every flow the exact threshold kept.
    best_t = float(np.floor(best_t * 1e4) / 1e4)
    f1_t = float(np.floor(f1_t * 1e4) / 1e4)
    chosen = f1_t if rule == "maxf1" else best_t
    return chosen, best_t, f1_t, f1_best


def host_eval(cap: Capture, flagged_rows):
    """Host rule on one capture. Returns dict with malicious/benign flagged and totals (or None)."""
    if cap.source == "truth":
        if not cap.truth.trainable:
            return None
        home = {a for a in set(cap.src) | set(cap.dst) if cap.truth.is_home_host(a)}
        mal = set(cap.truth.malicious)
        ben = home - mal
        rows = np.ones(len(cap.src), dtype=bool)
    elif cap.source == "benign":
        mal = set()
        ben = {a for a in set(cap.src) if is_plain_host(a)}
        rows = np.ones(len(cap.src), dtype=bool)
    else:  # binetflow: hosts from labels, only labelled rows count
        rows = cap.labelled
        mal = {s for s, yy in zip(cap.src, cap.y) if yy == 1}
        ben = {s for s, yy in zip(cap.src, cap.y) if yy == 0} - mal
    hosts = mal | ben
    total = Counter()
    bad = Counter()
    for i in np.flatnonzero(rows):
        w = cap.win[i]
        ends = {cap.src[i], cap.dst[i]}
        for h in ends:
            if h in hosts:
                total[(h, w)] += 1
                if flagged_rows[i]:
                    bad[(h, w)] += 1
    flagged = set()
    for (h, w), n in total.items():
        b = bad[(h, w)]
        if b >= HOST_MIN_FLOWS and b >= HOST_MIN_FRACTION * n:
            flagged.add(h)
    return dict(mal_flagged=len(flagged & mal), mal_total=len(mal),
                ben_flagged=len(flagged & ben), ben_total=len(ben),
                flagged_benign_hosts=sorted(flagged & ben))


# ---------------------------------------------------------------------------------------------------
# Model, ONNX


def make_rf(seed, n_jobs):
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(random_state=seed, n_jobs=n_jobs, **RF_PARAMS)


def stack(caps, schema, only_labelled=True):
    Xs, ys = [], []
    for c in caps:
        m = c.labelled if only_labelled else np.ones(len(c.y), dtype=bool)
        Xs.append(c.X[schema][m])
        ys.append(c.y[m])
    if not Xs:
        return np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
    return np.concatenate(Xs), np.concatenate(ys).astype(np.int64)


def capture_weights(caps, mode):
    """Per-row sample weights: "none" (all 1) or "sqrt" (a capture's rows weigh 1/sqrt(its labelled rows),
    so one long capture does not drown the short ones); normalised to mean 1."""
    if mode == "none":
        return None
    w = np.concatenate([np.full(int(c.labelled.sum()), 1.0 / np.sqrt(max(1, int(c.labelled.sum()))))
                        for c in caps])
    return w * (len(w) / w.sum())


def to_onnx(clf, schema: F.Schema, props: dict):
    import onnx
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    model = convert_sklearn(
        clf,
        initial_types=[("input", FloatTensorType([None, len(schema)]))],
        options={id(clf): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    model.doc_string = "botd %s random forest (schema %s %s)" % (schema.name, schema.name, schema.hash())
    onnx.helper.set_model_props(model, {k: str(v) for k, v in props.items()})
    onnx.checker.check_model(model)
    return model


def verify_onnx(model_bytes, clf, X):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])
    outs = sess.get_outputs()
    names = [o.name for o in outs]
    label, proba = sess.run(None, {sess.get_inputs()[0].name: X})
    ref = clf.predict_proba(X)
    diff = float(np.abs(proba - ref).max()) if len(X) else 0.0
    if diff > 1e-5:
        raise SystemExit("ONNX probabilities differ from sklearn by %.3g (> 1e-5)" % diff)
    io = dict(
        input=[(i.name, i.type, i.shape) for i in sess.get_inputs()],
        outputs=[(o.name, o.type, o.shape) for o in outs],
    )
    return diff, names, io


# ---------------------------------------------------------------------------------------------------
# Report


def fmt(v, nd=3):
    return "-" if v is None else ("%.*f" % (nd, v))


def card(schema, out_name, ctx):
    s = ctx
    lines = []
    A = lines.append
    A("# %s — botd random-forest flow model (`%s` schema)" % (out_name, schema.name))
    A("")
    A("Generated by `models/train/train.py` (trainer version %s) on %s. Do not edit by hand: rerun the "
      "trainer." % (TRAINER_VERSION, s["trained_at"]))
    A("")
    A("## What it is")
    A("")
    A("A scikit-learn `RandomForestClassifier` (%s, random_state=%d) exported to ONNX "
      "(opset 17, ai.onnx.ml 3) with skl2onnx. It scores one flow record of one %d s window "
      "(windows every %d s) as normal (0) or botnet (1); botd turns flow scores into host alerts." %
      (", ".join("%s=%r" % kv for kv in RF_PARAMS.items()), s["seed"], WINDOW_SECS, WINDOW_SECS - OVERLAP_SECS))
    A("")
    A("- File: `models/%s.onnx` (%s bytes)" % (out_name, s["size"]))
    A("- Input `%s`: float32 `[N, %d]`, features in schema order." % (s["io"]["input"][0][0], len(schema)))
    for name, typ, shape in s["io"]["outputs"]:
        A("- Output `%s`: %s %s" % (name, typ, shape))
    A("- Class labels: `0:normal,1:botnet`; decision: probability of class 1 >= threshold.")
    A("- Threshold: **%.4f** (`botd.threshold`)." % s["threshold"])
    A("")
    A("## Schema")
    A("")
    A("`%s` version %d, hash `%s` (FNV-1a 64 over the canonical text; see docs/features.md). "
      "Features, in order:" % (schema.name, schema.version, schema.hash()))
    A("")
    A("`" + ", ".join(schema.features) + "`")
    A("")
    A("## Training data")
    A("")
    A("Flows: `botd flows --window %d --overlap %d --format csv CAPTURE` on every capture of "
      "`truth.toml` and on the benign captures (captures with no truth entry under %s, except %s)%s. "
      "One row per flow per window (a flow in two overlapping windows gives two rows)." %
      (WINDOW_SECS, OVERLAP_SECS, ", ".join("`%s`" % d for d in BENIGN_DIRS),
       ", ".join("`%s`" % d for d in BENIGN_EXCLUDE),
       "; plus binetflow files: " + ", ".join("`%s`" % b for b in s["binetflows"]) if s["binetflows"] else ""))
    A("")
    A("Rows used for training: **%d botnet, %d normal** from %d captures (%d with botnet rows); "
      "%d rows left out by the label rules." % (s["n_pos"], s["n_neg"], s["n_groups"], s["n_pos_groups"],
                                                 s["n_left_out"]))
    A("")
    if s["capture_weight"] == "sqrt":
        A("Sample weights (`--capture-weight sqrt`, the default): each row of a capture weighs 1/sqrt(the "
          "capture's labelled rows), normalised to mean 1, so one long capture (thousands of rows of one SYN "
          "scan, hundreds of one HTTPS beacon) does not outweigh the short ones (docs/detection.md compares "
          "it with unweighted rows).")
    else:
        A("Sample weights: none (every labelled row weighs 1).")
    A("")
    A("### Label rules")
    A("")
    A("- Capture with a truth entry: a flow whose SrcAddr or DstAddr is a `malicious` host is **botnet (1)**; "
      "else a flow touching an `ignore` host is left out; else a flow with an endpoint among the benign home "
      "hosts (inside a `home` CIDR, neither malicious nor ignore) is **normal (0)**; every other flow (no home "
      "endpoint) is left out.")
    A("- `kind = \"inbound-ddos\"` and `ignore_all = true` captures: left out entirely (no infected home host).")
    A("- Capture without a truth entry (benign): every flow is **normal (0)**.")
    A("- binetflow (`--binetflow`, schema `ctu` only): Label containing `From-Botnet`/`Botnet`/`Malware` -> 1, "
      "`From-Normal`/`Normal` -> 0, anything else (`Background`, empty) left out; `man` rows dropped.")
    A("")
    A("## Validation")
    A("")
    A("Grouped %d-fold cross-validation with %s as the group (a capture's rows are never split): "
      "groups with botnet rows are spread over the folds first, then the normal-only ones, each to the "
      "fold with the fewest such groups (ties: fewest rows); the order within equal sizes is a shuffle "
      "seeded with %d. Every capture is scored by the fold model that never saw it (out-of-fold); the "
      "metrics below are those out-of-fold predictions at the stored threshold." % (
          K_FOLDS, "the capture" if s["group"] == "capture" else
          "the malware family (captures of one family or of one infected host form one group)", s["seed"]))
    A("")
    A("**Trainer's host rule** (a quick check of the flow model alone; botd's own host scoring, with the "
      "behaviour rules, is in docs/detection.md): a home host is flagged when, in some %d s window, at least "
      "%d of its flows (as SrcAddr "
      "or DstAddr) are predicted botnet and they are at least %d%% of its flows in that window. Hosts: in a "
      "truth capture, the addresses inside `home` seen in its flows (not `ignore`, not the network/broadcast/"
      "multicast address); in a benign capture, every unicast address that originates a flow (all benign); "
      "in a binetflow, the SrcAddr of labelled flows. Host counts use all of the capture's flows, labelled "
      "or not." % (WINDOW_SECS, HOST_MIN_FLOWS, int(HOST_MIN_FRACTION * 100)))
    A("")
    o = s["overall"]
    A("**Overall (out-of-fold, threshold %.4f)**: flow precision %s, recall %s, F1 %s (TP %d, FP %d, FN %d, "
      "TN %d); hosts: malicious flagged %d/%d, benign flagged %d/%d." %
      (s["threshold"], fmt(o["precision"]), fmt(o["recall"]), fmt(o["f1"]), o["tp"], o["fp"], o["fn"], o["tn"],
       s["hosts"]["mal_flagged"], s["hosts"]["mal_total"], s["hosts"]["ben_flagged"], s["hosts"]["ben_total"]))
    A("")
    A("At threshold 0.5: flow precision %s, recall %s, F1 %s; hosts: malicious %d/%d, benign %d/%d." %
      (fmt(s["at05"]["precision"]), fmt(s["at05"]["recall"]), fmt(s["at05"]["f1"]),
       s["hosts05"]["mal_flagged"], s["hosts05"]["mal_total"], s["hosts05"]["ben_flagged"],
       s["hosts05"]["ben_total"]))
    A("")
    A("### Threshold")
    A("")
    A("Chosen on the pooled out-of-fold probabilities of the labelled flows (rule `%s`: %s), rounded down "
      "to 4 decimals: **%.4f**." % (s["rule"], THRESHOLD_RULES[s["rule"]], s["threshold"]))
    A("")
    A("| rule | threshold | flow P | flow R | flow F1 |")
    A("|---|---|---|---|---|")
    A("| max F1 | %.4f | %s | %s | %.3f |" % (s["f1_threshold"], fmt(s["overall"]["precision"] if s["rule"] == "maxf1" else None), fmt(s["overall"]["recall"] if s["rule"] == "maxf1" else None), s["f1_best"]))
    A("| recall >= %.2f | %.4f | %s | %s | %s |" % (RECALL_TARGET, s["r90_threshold"], fmt(s["at_r90"]["precision"]), fmt(s["at_r90"]["recall"]), fmt(s["at_r90"]["f1"])))
    A("| fixed 0.5 | 0.5000 | %s | %s | %s |" % (fmt(s["at05"]["precision"]), fmt(s["at05"]["recall"]), fmt(s["at05"]["f1"])))
    A("")
    A("Why: on this data the recall >= %.2f rule forces the threshold so low that most normal flows of the "
      "benign LAN captures are flagged (precision collapses); max F1 balances the two at flow level, and the "
      "host rule then needs several botnet-scored flows per window." % RECALL_TARGET)
    A("")
    A("### Per held-out capture")
    A("")
    A("| capture | kind | fold | botnet rows | normal rows | P | R | F1 | FP | malicious hosts flagged | "
      "benign hosts flagged |")
    A("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in s["per_capture"]:
        h = r["hosts"]
        A("| `%s` | %s | %d | %d | %d | %s | %s | %s | %d | %s | %s |" % (
            r["name"], r["kind"], r["fold"], r["n_pos"], r["n_neg"], fmt(r["m"]["precision"]),
            fmt(r["m"]["recall"]), fmt(r["m"]["f1"]), r["m"]["fp"],
            "%d/%d" % (h["mal_flagged"], h["mal_total"]) if h and h["mal_total"] else "-",
            "%d/%d" % (h["ben_flagged"], h["ben_total"]) if h and h["ben_total"] else "-"))
    A("")
    if s["unused"]:
        A("Captures processed but not used (no labelled flow: inbound DDoS, unclear, no home endpoint, or "
          "empty): " + ", ".join("`%s`" % u for u in s["unused"]) + ".")
        A("")
    fb = [(r["name"], r["hosts"]["flagged_benign_hosts"]) for r in s["per_capture"]
          if r["hosts"] and r["hosts"]["flagged_benign_hosts"]]
    if fb:
        A("Benign hosts flagged (out-of-fold): " + "; ".join("`%s`: %s" % (n, ", ".join(h)) for n, h in fb) + ".")
        A("")
    A("## Reproduce")
    A("")
    A("```sh")
    A("sh models/train/setup.sh")
    A("cargo build --release")
    A(s["command"])
    A("```")
    A("")
    A("Training summary and metrics are also in the ONNX metadata (`botd.training_summary`, `botd.metrics`). "
      "Same seed and same data (same botd flows) give the same metrics.")
    A("")
    A("## Known limitations")
    A("")
    A("- Small, heterogeneous training set: a few dozen public captures, each seconds to an hour long, most "
      "malicious ones from sandboxes; per-capture numbers rest on a handful of flows and hosts.")
    A("- Labels are per host, not per flow: every flow of an infected host counts as botnet, including its "
      "benign background traffic (DNS, NTP, updates), so flow-level precision is understated and the model "
      "learns some host-specific habits.")
    A("- Benign traffic is dominated by one capture (`debian-registry/pathspider/real.pcap`, one hour of an "
      "anonymised LAN in 2012) and short teaching/protocol captures; real home networks will differ.")
    A("- Features come from `botd flows` CSV (values printed with 6 decimals); botd's in-engine vectors agree "
      "up to float32 rounding.")
    A("- Out-of-fold figures measure generalisation to unseen captures of similar origin, not to new "
      "families or networks.")
    A("- At the max-F1 threshold about half the malicious hosts are flagged out-of-fold (see the table: "
      "the RATs and TCP scanners generalise best; the ARP/ICMP scans, WannaCry and captures with very few "
      "malicious flows are the usual misses); a lower threshold (`--threshold-rule recall90`) flags more of them at the "
      "cost of many benign hosts. The host rule needs >= %d botnet-scored flows in one window, so hosts "
      "with fewer flows can never be flagged." % HOST_MIN_FLOWS)
    if schema.name == "ctu":
        A("- `ctu` sees only the 14 binetflow columns: no TTL, packet sizes or timing; weaker than `argus`.")
    if schema.name == "proto":
        A("- `proto`'s PeerNamed is only meaningful where the capture holds the hosts' DNS lookups; on the "
          "shared captures most benign ones do not (docs/detection.md, \"A protocol-aware schema\").")
    A("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------


def train_schema(schema: F.Schema, caps, args, out_dir: Path, folds_dir, command):
    import onnx

    log("== schema %s (hash %s), %d features" % (schema.name, schema.hash(), len(schema)))
    groups = [c for c in caps if schema.name in c.X and c.labelled.any()]
    unused = [c.name for c in caps if schema.name in c.X and not c.labelled.any()]
    n_pos = sum(c.n_pos for c in groups)
    n_neg = sum(c.n_neg for c in groups)
    n_left = sum(int((~c.labelled).sum()) for c in caps if schema.name in c.X)
    log("%d captures with labelled rows (%d botnet rows, %d normal rows), %d unused" %
        (len(groups), n_pos, n_neg, len(unused)))

    # Out-of-fold predictions.
    oof = {}
    fold_models = {}
    for k in range(K_FOLDS):
        train = [c for c in groups if c.fold != k]
        test = [c for c in groups if c.fold == k]
        if not test:
            continue
        X, y = stack(train, schema.name)
        clf = make_rf(args.seed, args.jobs)
        clf.fit(X, y, sample_weight=capture_weights(train, args.capture_weight))
        for c in test:
            oof[c.name] = clf.predict_proba(c.X[schema.name])[:, 1]
        fold_models[k] = clf
        log("fold %d: trained on %d rows (%d captures), held out %d captures" %
            (k, len(y), len(train), len(test)))

    y_all = np.concatenate([c.y[c.labelled] for c in groups]).astype(np.int8)
    p_all = np.concatenate([oof[c.name][c.labelled] for c in groups])
    thr, r90_t, f1_t, f1_best = choose_threshold(y_all, p_all, args.threshold_rule)
    overall = prf(y_all, (p_all >= thr).astype(np.int8))
    at05 = prf(y_all, (p_all >= 0.5).astype(np.int8))
    at_r90 = prf(y_all, (p_all >= r90_t).astype(np.int8))
    log("threshold %.4f (%s): P %s R %s F1 %s; recall>=%.2f threshold %.4f (P %s R %s)" %
        (thr, THRESHOLD_RULES[args.threshold_rule], fmt(overall["precision"]), fmt(overall["recall"]),
         fmt(overall["f1"]), RECALL_TARGET, r90_t, fmt(at_r90["precision"]), fmt(at_r90["recall"])))

    per_capture = []
    tot = Counter()
    tot05 = Counter()
    for c in sorted(groups, key=lambda c: (c.source != "truth", c.name)):
        p = oof[c.name]
        m = prf(c.y[c.labelled], (p[c.labelled] >= thr).astype(np.int8))
        h = host_eval(c, p >= thr)
        h05 = host_eval(c, p >= 0.5)
        if h:
            for key in ("mal_flagged", "mal_total", "ben_flagged", "ben_total"):
                tot[key] += h[key]
                tot05[key] += h05[key]
        per_capture.append(dict(name=c.name, kind=c.kind, fold=c.fold, n_pos=c.n_pos, n_neg=c.n_neg, m=m,
                                hosts=h))
    hosts = {k: tot[k] for k in ("mal_flagged", "mal_total", "ben_flagged", "ben_total")}
    hosts05 = {k: tot05[k] for k in ("mal_flagged", "mal_total", "ben_flagged", "ben_total")}
    log("hosts: malicious flagged %d/%d, benign flagged %d/%d" %
        (hosts["mal_flagged"], hosts["mal_total"], hosts["ben_flagged"], hosts["ben_total"]))

    # Final model on every labelled row.
    X, y = stack(groups, schema.name)
    clf = make_rf(args.seed, args.jobs)
    clf.fit(X, y, sample_weight=capture_weights(groups, args.capture_weight))
    log("final model trained on %d rows" % len(y))

    trained_at = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    binetflows = [c.name for c in groups if c.source == "binetflow"]
    summary = dict(captures=[c.name for c in groups], rows={"botnet": n_pos, "normal": n_neg},
                   left_out_rows=n_left, unused_captures=unused, seed=args.seed, folds=K_FOLDS,
                   rf=RF_PARAMS, window_secs=WINDOW_SECS, overlap_secs=OVERLAP_SECS, binetflows=binetflows)
    metrics = dict(threshold=thr, threshold_rule=THRESHOLD_RULES[args.threshold_rule], validation="grouped %d-fold by %s, out-of-fold" % (K_FOLDS, args.group),
                   capture_weight=args.capture_weight,
                   flow=dict(precision=overall["precision"], recall=overall["recall"], f1=overall["f1"],
                             tp=overall["tp"], fp=overall["fp"], fn=overall["fn"], tn=overall["tn"]),
                   hosts=hosts, host_rule="flagged if in some window >= %d flows predicted botnet and >= %d%% "
                   "of its flows" % (HOST_MIN_FLOWS, int(HOST_MIN_FRACTION * 100)))

    def props(extra=None):
        p = {
            "botd.schema": schema.name,
            "botd.schema_version": schema.version,
            "botd.schema_hash": schema.hash(),
            "botd.features": ",".join(schema.features),
            "botd.class_labels": "0:normal,1:botnet",
            "botd.window_secs": WINDOW_SECS,
            "botd.overlap_secs": OVERLAP_SECS,
            "botd.threshold": "%.4f" % thr,
            "botd.training_summary": json.dumps(summary, sort_keys=True),
            "botd.metrics": json.dumps(metrics, sort_keys=True),
            "botd.trainer_version": TRAINER_VERSION,
            "botd.trained_at": trained_at,
        }
        p.update(extra or {})
        return p

    name = "%s-rf" % schema.name
    model = to_onnx(clf, schema, props())
    data = model.SerializeToString()
    diff, out_names, io = verify_onnx(data, clf, X)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / (name + ".onnx")
    path.write_bytes(data)
    nodes = sum(e.tree_.node_count for e in clf.estimators_)
    log("wrote %s (%d bytes, %d nodes); onnxruntime vs sklearn max |diff| %.2e; outputs %s" %
        (path, len(data), nodes, diff, io["outputs"]))
    onnx.load(str(path))

    if folds_dir is not None:
        for k, fclf in sorted(fold_models.items()):
            held = [c.name for c in groups if c.fold == k]
            fm = to_onnx(fclf, schema, props({
                "botd.fold": str(k),
                "botd.fold_held_out": json.dumps(held),
            }))
            fdata = fm.SerializeToString()
            Xf, _ = stack([c for c in groups if c.fold != k], schema.name)
            verify_onnx(fdata, fclf, Xf)
            d = folds_dir / ("fold-%d" % k)
            d.mkdir(parents=True, exist_ok=True)
            (d / (name + ".onnx")).write_bytes(fdata)
        log("wrote %d fold models under %s" % (len(fold_models), folds_dir))

    ctx = dict(trained_at=trained_at, seed=args.seed, group=args.group, capture_weight=args.capture_weight,
               size=len(data), io=io, threshold=thr, f1_threshold=f1_t,
               r90_threshold=r90_t, at_r90=at_r90, rule=args.threshold_rule, nodes=nodes,
               f1_best=f1_best, binetflows=binetflows, n_pos=n_pos, n_neg=n_neg, n_groups=len(groups),
               n_pos_groups=sum(1 for c in groups if c.n_pos), n_left_out=n_left, overall=overall,
               at05=at05, hosts=hosts, hosts05=hosts05, per_capture=per_capture, unused=unused, command=command)
    (out_dir / (name + ".md")).write_text(card(schema, name, ctx))
    log("wrote %s" % (out_dir / (name + ".md")))
    print_table(schema, ctx)
    return dict(name=name, path=str(path), size=len(data), threshold=thr, overall=overall, hosts=hosts,
                outputs=io["outputs"])


def print_table(schema, s):
    print("\n%s: per held-out capture (threshold %.4f)" % (schema.name, s["threshold"]))
    print("%-78s %-12s %2s %6s %6s %6s %6s %6s %5s %6s %6s" %
          ("capture", "kind", "f", "pos", "neg", "P", "R", "F1", "FP", "mal", "ben"))
    for r in s["per_capture"]:
        h = r["hosts"]
        print("%-78s %-12s %2d %6d %6d %6s %6s %6s %5d %6s %6s" % (
            r["name"][-78:], r["kind"][:12], r["fold"], r["n_pos"], r["n_neg"], fmt(r["m"]["precision"]),
            fmt(r["m"]["recall"]), fmt(r["m"]["f1"]), r["m"]["fp"],
            "%d/%d" % (h["mal_flagged"], h["mal_total"]) if h and h["mal_total"] else "-",
            "%d/%d" % (h["ben_flagged"], h["ben_total"]) if h and h["ben_total"] else "-"))
    o = s["overall"]
    print("overall: P %s R %s F1 %s; hosts malicious %d/%d benign %d/%d\n" % (
        fmt(o["precision"]), fmt(o["recall"]), fmt(o["f1"]), s["hosts"]["mal_flagged"], s["hosts"]["mal_total"],
        s["hosts"]["ben_flagged"], s["hosts"]["ben_total"]))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--truth", default=None, help="default: DATA/truth.toml")
    ap.add_argument("--botd", default=str(REPO / "target" / "release" / "botd"))
    ap.add_argument("--schema", default=["all"], nargs="+", choices=["argus", "ctu", "proto", "all"],
                    help="schemas to train (default all: argus and ctu, the shipped ones)")
    ap.add_argument("--binetflow", nargs="*", default=[], metavar="FILE",
                    help="labelled binetflow files (CTU-13 style labels), schema ctu only")
    ap.add_argument("--out", default=str(REPO / "models"))
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--export-folds", default=None, metavar="DIR")
    ap.add_argument("--cache", default=str(REPO / "target" / "train-cache"))
    ap.add_argument("--jobs", type=int, default=2, help="sklearn n_jobs (default 2)")
    ap.add_argument("--threshold-rule", default="maxf1", choices=sorted(THRESHOLD_RULES))
    ap.add_argument("--capture-weight", default="sqrt", choices=["none", "sqrt"],
                    help="per-capture sample weighting (default sqrt: a capture's rows weigh 1/sqrt(its rows))")
    ap.add_argument("--group", default="capture", choices=["capture", "family"],
                    help="fold groups: each capture (default), or captures of one malware family / "
                         "infected host together")
    ap.add_argument("--max-depth", type=int, default=None, help="override max_depth (experiments)")
    ap.add_argument("--min-samples-leaf", type=int, default=None, help="override min_samples_leaf")
    args = ap.parse_args(argv)
    if args.max_depth is not None:
        RF_PARAMS["max_depth"] = args.max_depth
    if args.min_samples_leaf is not None:
        RF_PARAMS["min_samples_leaf"] = args.min_samples_leaf

    data = Path(args.data).resolve()
    truth_path = Path(args.truth).resolve() if args.truth else data / "truth.toml"
    botd = Path(args.botd).resolve()
    cache = Path(args.cache).resolve()
    out_dir = Path(args.out).resolve()
    folds_dir = Path(args.export_folds).resolve() if args.export_folds else None
    if not botd.exists():
        raise SystemExit("botd binary not found: %s (cargo build --release)" % botd)
    cache.mkdir(parents=True, exist_ok=True)
    names = []
    for n in args.schema:
        for m in (["argus", "ctu"] if n == "all" else [n]):
            if m not in names:
                names.append(m)
    schemas = [F.SCHEMAS[n] for n in names]

    cmd = ["models/train/.venv/bin/python", "models/train/train.py", "--schema"] + args.schema + [
        "--seed", str(args.seed)]
    if args.threshold_rule != "maxf1":
        cmd += ["--threshold-rule", args.threshold_rule]
    if args.capture_weight != "sqrt":
        cmd += ["--capture-weight", args.capture_weight]
    if args.group != "capture":
        cmd += ["--group", args.group]
    if args.max_depth is not None:
        cmd += ["--max-depth", str(args.max_depth)]
    if args.min_samples_leaf is not None:
        cmd += ["--min-samples-leaf", str(args.min_samples_leaf)]
    if args.binetflow:
        cmd += ["--binetflow"] + [os.path.relpath(Path(b).resolve(), REPO) for b in args.binetflow]
    command = " ".join(cmd)

    with open(truth_path, "rb") as f:
        truth = [Truth(e) for e in tomllib.load(f).get("capture", [])]
    benign = list_captures(data, truth)
    log("%d truth captures, %d benign captures; botd %s" % (len(truth), len(benign), botd))

    caps = []
    for t in truth:
        caps.append(Capture(t.path, "truth", t))
    for b in benign:
        caps.append(Capture(b, "benign"))
    loaded = []
    for c in caps:
        p = data / c.name
        if not p.exists():
            log("  ! missing %s" % c.name)
            continue
        csv_path = botd_csv(botd, p, c.name, cache)
        if csv_path is None:
            continue
        load_botd_capture(c, csv_path, [F.ARGUS, F.CTU] + ([F.PROTO] if F.PROTO in schemas else []))
        loaded.append(c)
    log("flows: %d rows from %d captures (%d botnet, %d normal labelled)" % (
        sum(len(c.y) for c in loaded), len(loaded), sum(c.n_pos for c in loaded), sum(c.n_neg for c in loaded)))
    for b in args.binetflow:
        bp = Path(b).resolve()
        c = Capture(rel_name(bp, data), "binetflow")
        load_binetflow(c, bp)
        log("binetflow %s: %d rows (%d botnet, %d normal)" % (c.name, len(c.y), c.n_pos, c.n_neg))
        loaded.append(c)

    # Folds are assigned once over the capture groups: pcap captures first (identical for both schemas,
    # with or without binetflows), then binetflow files.
    pc = [c for c in loaded if c.source != "binetflow"]
    bf = [c for c in loaded if c.source == "binetflow"]
    if args.group == "family":
        assign_folds_grouped(pc, K_FOLDS, args.seed, family_groups(pc))
    else:
        assign_folds(pc, K_FOLDS, args.seed)
    if bf:
        assign_folds(bf, K_FOLDS, args.seed)

    results = []
    for s in schemas:
        use = [c for c in loaded if s.name in c.X]
        results.append(train_schema(s, use, args, out_dir, folds_dir, command))

    if folds_dir is not None:
        fold_map = {c.name: c.fold for c in loaded if c.labelled.any()}
        not_trained = sorted(c.name for c in loaded if not c.labelled.any())
        folds_dir.mkdir(parents=True, exist_ok=True)
        (folds_dir / "folds.json").write_text(json.dumps({
            "k": K_FOLDS, "seed": args.seed, "schemas": [s.name for s in schemas], "group": args.group,
            "capture_weight": args.capture_weight,
            "note": "fold-K/*.onnx were trained without the captures of fold K; captures in "
                    "not_trained_on had no labelled flow, so no model saw them",
            "folds": dict(sorted(fold_map.items())), "not_trained_on": not_trained,
        }, indent=1) + "\n")
        log("wrote %s" % (folds_dir / "folds.json"))

    log("done")
    for r in results:
        print("%s: %s, %d bytes, threshold %.4f, flow P %s R %s F1 %s, hosts mal %d/%d ben %d/%d" % (
            r["name"], r["path"], r["size"], r["threshold"], fmt(r["overall"]["precision"]),
            fmt(r["overall"]["recall"]), fmt(r["overall"]["f1"]), r["hosts"]["mal_flagged"],
            r["hosts"]["mal_total"], r["hosts"]["ben_flagged"], r["hosts"]["ben_total"]))
    return 0


def rel_name(p: Path, data: Path):
    p = p.resolve()
    try:
        return str(p.relative_to(data)).replace(os.sep, "/")
    except ValueError:
        return str(p)


if __name__ == "__main__":
    sys.exit(main())
