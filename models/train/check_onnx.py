#!/usr/bin/env python3
"""Scores feature rows with onnxruntime, single-threaded, to compare against botd's Rust evaluator.

    check_onnx.py MODEL.onnx ROWS.csv            # one line per row: P(normal),P(botnet) (%.9g)
    check_onnx.py MODEL.onnx ROWS.csv --bench N  # also time N rows (ROWS repeated) at batch 1024

ROWS.csv: float features in schema order, comma separated, no header (`#` lines ignored).
`--meta` prints the model's botd.* metadata and its input/output names first.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import onnxruntime as ort


def session(path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def load_rows(path, n_features):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            rows.append([float(v) for v in line.split(",")])
    X = np.asarray(rows, dtype=np.float32).reshape(-1, n_features) if rows else np.zeros((0, n_features), np.float32)
    return X


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("rows")
    ap.add_argument("--bench", type=int, default=0, metavar="N", help="time scoring N rows at batch 1024")
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--meta", action="store_true", help="print metadata and I/O first")
    ap.add_argument("--quiet", action="store_true", help="do not print the probabilities")
    args = ap.parse_args(argv)

    sess = session(args.model)
    inp = sess.get_inputs()[0]
    n_features = inp.shape[1]
    if args.meta:
        meta = sess.get_modelmeta().custom_metadata_map
        for k in sorted(meta):
            print("# %s = %s" % (k, meta[k]))
        print("# input %s %s %s" % (inp.name, inp.type, inp.shape))
        for o in sess.get_outputs():
            print("# output %s %s %s" % (o.name, o.type, o.shape))
    out_names = [o.name for o in sess.get_outputs()]
    prob_name = "probabilities" if "probabilities" in out_names else out_names[-1]

    X = load_rows(args.rows, n_features)
    if not args.quiet and len(X):
        (proba,) = sess.run([prob_name], {inp.name: X})
        w = sys.stdout.write
        for p in proba:
            w("%.9g,%.9g\n" % (p[0], p[1]))

    if args.bench:
        if not len(X):
            raise SystemExit("--bench needs at least one row")
        reps = -(-args.bench // len(X))
        big = np.ascontiguousarray(np.tile(X, (reps, 1))[: args.bench])
        batches = [big[i:i + args.batch] for i in range(0, len(big), args.batch)]
        sess.run([prob_name], {inp.name: batches[0]})  # warm-up
        t0 = time.perf_counter()
        for b in batches:
            sess.run([prob_name], {inp.name: b})
        secs = time.perf_counter() - t0
        print("bench: %d rows, batch %d, 1 thread: %.3f s, %.0f rows/s" %
              (len(big), args.batch, secs, len(big) / secs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
