#!/usr/bin/env python3
"""A fuller forest for the scoring benchmark: 100 trees of depth 12 grown on jittered copies of
real feature rows with random labels, so the trees fill out (about 640 leaves each, against ~214
for the shipped argus-rf). It carries argus-rf's metadata, so botd loads it.

    models/train/.venv/bin/python benches/deep_forest.py ROWS.csv OUT.onnx

ROWS.csv: `botd features --schema argus` output (e.g. of real.pcap and test7-malicious.pcap).
Then compare, on the same rows:
    target/release/botd score OUT.onnx ROWS.csv --bench 200000
    models/train/.venv/bin/python models/train/check_onnx.py OUT.onnx ROWS.csv --bench 200000 --quiet
"""

import os
import sys

import numpy as np
import onnx
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.ensemble import RandomForestClassifier

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    rows, out = sys.argv[1], sys.argv[2]
    X = np.loadtxt(rows, delimiter=",", dtype=np.float32, comments="#")
    rng = np.random.default_rng(42)
    X = np.concatenate([X * rng.uniform(0.5, 1.5, X.shape).astype(np.float32) for _ in range(20)])
    y = rng.integers(0, 2, len(X))
    clf = RandomForestClassifier(n_estimators=100, max_depth=12, random_state=42, n_jobs=2).fit(X, y)
    leaves = [e.tree_.n_leaves for e in clf.estimators_]
    print(f"{len(X)} rows; leaves per tree: mean {np.mean(leaves):.0f}, max {max(leaves)}")
    model = convert_sklearn(clf, initial_types=[("input", FloatTensorType([None, X.shape[1]]))],
                            options={id(clf): {"zipmap": False}},
                            target_opset={"": 17, "ai.onnx.ml": 3})
    shipped = onnx.load(os.path.join(ROOT, "models", "argus-rf.onnx"))
    onnx.helper.set_model_props(model, {p.key: p.value for p in shipped.metadata_props})
    onnx.save(model, out)


if __name__ == "__main__":
    main()
