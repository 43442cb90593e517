#!/usr/bin/env python3
"""Reference values for Glimpse's element-wise kernels, computed by torch (float32) on seeded inputs.

    .venv/bin/python tools/make_kernel_fixtures.py   # writes Tests/GlimpseTests/Fixtures/kernels/kernels.json
"""
import json
from pathlib import Path

import torch

torch.manual_seed(0)
rows, dim = 5, 37
x = (torch.randn(rows, dim) * 3).float()
gamma, beta = torch.randn(dim).float(), torch.randn(dim).float()
out = {
    "rows": rows, "dim": dim,
    "x": x.flatten().tolist(), "gamma": gamma.tolist(), "beta": beta.tolist(),
    "layer_norm_eps": 1e-5,
    "layer_norm": torch.nn.functional.layer_norm(x, (dim,), gamma, beta, 1e-5).flatten().tolist(),
    "gelu": torch.nn.functional.gelu(x).flatten().tolist(),
    "gelu_tanh": torch.nn.functional.gelu(x, approximate="tanh").flatten().tolist(),
    "quick_gelu": (x * torch.sigmoid(1.702 * x)).flatten().tolist(),
    "silu": torch.nn.functional.silu(x).flatten().tolist(),
    "softmax": torch.softmax(x, dim=-1).flatten().tolist(),
    "log_softmax_row0": torch.log_softmax(x[0], dim=-1).tolist(),
}
path = Path("Tests/GlimpseTests/Fixtures/kernels/kernels.json")
path.write_text(json.dumps(out))
print(f"wrote {path}")
