#!/usr/bin/env python3
"""Writes the safetensors fixtures for Tests/GlimpseTests/Weights (run from the repository root).

    python tools/make_safetensors_fixtures.py

Needs torch and safetensors (the project pins them in tools/requirements.txt; the committed files were
made with torch 2.15.0 and safetensors 0.8.0, whose file layout is the same as the pinned 0.7.0's).
The files are a few hundred bytes each and committed, so the Swift tests need no Python.

- valid.safetensors      F32, F16 and BF16 tensors (plus a scalar and an empty tensor) and metadata,
                         written by the reference writer; valid.json holds each tensor's dtype, shape
                         and expected Float32 values (F16/BF16 widened exactly, as torch does).
                         Its two metadata keys come out in hash order, so reruns may reorder them
                         in the header; the content is the same.
- writer_reference.safetensors   F32 tensors with one metadata key, for a byte-for-byte comparison
                         with Glimpse's writer (one key, because the reference orders several keys
                         by hash).
- nonfinite.safetensors  finite tensors plus an F32 tensor with NaN and an F16 tensor with infinity,
                         for the opt-in finiteness check.
Malformed files are built by the Swift tests themselves, each next to the rule it breaks.
"""
import json
import os

import torch
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "GlimpseTests", "Fixtures", "safetensors")


def expected(tensors):
    return {
        name: {
            "dtype": {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}[t.dtype],
            "shape": list(t.shape),
            "values": [float(v) for v in t.float().flatten().tolist()],
        }
        for name, t in tensors.items()
    }


def main():
    os.makedirs(OUT, exist_ok=True)
    g = torch.Generator().manual_seed(7)

    valid = {
        "encoder.layer.0.weight": torch.randn(2, 3, generator=g, dtype=torch.float32),
        "encoder.layer.0.bias": torch.tensor([0.5, -1.25, 3.0], dtype=torch.float32),
        # F16 edge cases: smallest subnormal, a larger subnormal, smallest normal, max, -0, rounding.
        "decoder.half": torch.tensor([5.960464477539063e-08, -3.0e-05, 6.103515625e-05, 65504.0, -0.0, 0.1, -2.5, 1.0],
                                     dtype=torch.float16),
        "decoder.brain": torch.tensor([[1.0, -0.1], [3.3895313892515355e38, 1e-40]], dtype=torch.bfloat16),
        "scalar": torch.tensor(42.0, dtype=torch.float32),
        "empty": torch.zeros(0, 4, dtype=torch.float32),
    }
    save_file(valid, os.path.join(OUT, "valid.safetensors"), metadata={"format": "pt", "note": "glimpse fixture"})
    with open(os.path.join(OUT, "valid.json"), "w") as f:
        json.dump({"metadata": {"format": "pt", "note": "glimpse fixture"}, "tensors": expected(valid)}, f, indent=1, sort_keys=True)

    writer = {
        "b.weight": torch.arange(6, dtype=torch.float32).reshape(2, 3) / 4 - 0.5,
        "a.bias": torch.tensor([1.5, -2.0], dtype=torch.float32),
        'odd "name"\t\\': torch.tensor([[7.0]], dtype=torch.float32),
        "scalar": torch.tensor(-3.25, dtype=torch.float32),
    }
    save_file(writer, os.path.join(OUT, "writer_reference.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(OUT, "writer_reference.json"), "w") as f:
        json.dump({"metadata": {"format": "pt"}, "tensors": expected(writer)}, f, indent=1, sort_keys=True)

    nonfinite = {
        "fine": torch.ones(3, dtype=torch.float32),
        "has_nan": torch.tensor([1.0, float("nan"), 2.0, float("nan")], dtype=torch.float32),
        "half_inf": torch.tensor([0.0, float("-inf")], dtype=torch.float16),
    }
    save_file(nonfinite, os.path.join(OUT, "nonfinite.safetensors"))


if __name__ == "__main__":
    main()
