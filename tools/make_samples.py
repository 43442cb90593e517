#!/usr/bin/env python3
"""Pick a dozen varied scenes (seed 5000, never used in training) into samples/ with samples/truth.jsonl.

    python tools/make_samples.py --out samples [--expected models/default]

Each sample is chosen to fill a slot (objects, format, background, canvas shape, canvas size) and
kept under --max-kb. With --expected, also writes samples/expected.jsonl: the PyTorch model's output
(beam search + learned heads) in the CLI's JSON contract, via tools/eval.py.
"""
import argparse
import json
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenes  # noqa: E402

scenes.STRICT = True  # samples show the world exactly as specified

# name, objects, ext, background, canvas ("square" / "wide" / "tall"), (min side, max side)
SLOTS = [
    ("one-shape", 1, "png", "solid", "square", (200, 400)),
    ("one-small-shape-tiny-canvas", 1, "png", "gradient", "square", (96, 140)),
    ("one-shape-noise", 1, "jpg", "noise", "wide", (200, 480)),
    ("two-shapes-left-of", 2, "png", "solid", "wide", (240, 400)),
    ("two-shapes-above", 2, "png", "gradient", "tall", (200, 420)),
    ("two-shapes-jpeg-left-of", 2, "jpg", "solid", "square", (400, 640)),
    ("two-shapes-noise", 2, "jpg", "noise", "square", (150, 300)),
    ("three-shapes", 3, "png", "solid", "square", (300, 500)),
    ("three-shapes-gradient", 3, "jpg", "gradient", "wide", (400, 640)),
    ("three-shapes-tall", 3, "png", "gradient", "tall", (200, 400)),
    ("three-shapes-noise", 3, "jpg", "noise", "square", (300, 640)),
    ("three-shapes-small-canvas", 3, "png", "solid", "square", (96, 180)),
]


def canvas_kind(w, h):
    if w == h:
        return "square"
    if max(w, h) / min(w, h) < 1.15:
        return "nearly-square"
    return "wide" if w > h else "tall"


def relation_ok(name, caption):
    if "above" in name:
        return " above " in caption
    if "left" in name:
        return " to the left of " in caption
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="samples")
    ap.add_argument("--seed", type=int, default=5000)
    ap.add_argument("--max-kb", type=int, default=60)
    ap.add_argument("--expected", help="model directory: also write expected.jsonl from the PyTorch model")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    todo = list(SLOTS)
    rows = []
    i = 0
    while todo and i < 20000:
        img, info = scenes.sample_scene(a.seed, i)
        i += 1
        W, H = info["width"], info["height"]
        ext = "jpg" if info["jpeg_quality"] else "png"
        for slot in todo:
            name, n, sext, bg, kind, (lo, hi) = slot
            if (len(info["objects"]) == n and ext == sext and info["background"] == bg
                    and canvas_kind(W, H) == kind and relation_ok(name, info["caption"]) and lo <= min(W, H) and max(W, H) <= hi):
                path = os.path.join(a.out, f"{name}.{ext}")
                if ext == "jpg":
                    Image.fromarray(img).save(path, "JPEG", quality=info["jpeg_quality"])
                else:
                    Image.fromarray(img).save(path, "PNG", optimize=True)
                if os.path.getsize(path) > a.max_kb * 1024:
                    os.remove(path)
                    continue
                row = scenes.public_info(info, os.path.basename(path))
                row["index"] = i - 1
                row["seed"] = a.seed
                rows.append(row)
                todo.remove(slot)
                print(f"{path}: {W}x{H} {row['caption']}")
                break
    with open(os.path.join(a.out, "truth.jsonl"), "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    if todo:
        print("unfilled:", [s[0] for s in todo])
    if a.expected:
        import eval as ev
        import torch
        torch.set_num_threads(1)
        preds = ev.torch_predict(a.expected, rows, a.out)
        with open(os.path.join(a.out, "expected.jsonl"), "w") as f:
            for p in preds:
                p["file"] = os.path.join(a.out, p["file"])
                f.write(json.dumps(p) + "\n")
        rep = ev.score(preds, rows)
        print(json.dumps({k: rep[k] for k in ("exact_match", "error_types")}))


if __name__ == "__main__":
    main()
