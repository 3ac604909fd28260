#!/usr/bin/env python3
"""Writes tests/data/small-forest.onnx: a 5-tree, depth-4 random forest over the 36 `argus`
features, trained on seeded random data, with botd's metadata. Small enough for tract's slow
tree walk, so a test can compare botd's forest evaluator with tract on the same file.

Run with the trainer's venv: models/train/.venv/bin/python tests/data/make_small_forest.py
"""
import os
import sys

import numpy as np
import onnx
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.ensemble import RandomForestClassifier

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "models", "train"))
import features  # noqa: E402  (the trainer's schema mirror)

names = features.ARGUS_FEATURES
rng = np.random.default_rng(7)
x = rng.normal(size=(2000, len(names))).astype(np.float32) * 100
y = ((x[:, 2] > 10) ^ (x[:, 19] < -50) | (x[:, 24] > 120)).astype(np.int64)
clf = RandomForestClassifier(n_estimators=5, max_depth=4, random_state=7).fit(x, y)
model = convert_sklearn(
    clf,
    initial_types=[("input", FloatTensorType([None, len(names)]))],
    options={id(clf): {"zipmap": False}},
    target_opset={"": 17, "ai.onnx.ml": 3},
)
props = {
    "botd.schema": "argus",
    "botd.schema_version": "1",
    "botd.schema_hash": features.ARGUS.hash(),
    "botd.features": ",".join(names),
    "botd.class_labels": "0:normal,1:botnet",
    "botd.window_secs": "300",
    "botd.overlap_secs": "150",
    "botd.threshold": "0.5",
    "botd.training_summary": '{"data": "seeded random rows, test fixture only"}',
    "botd.metrics": "{}",
    "botd.trainer_version": "1",
    "botd.trained_at": "fixture",
}
onnx.helper.set_model_props(model, props)
out = os.path.join(here, "small-forest.onnx")
onnx.save(model, out)
print(out, os.path.getsize(out))
