#!/usr/bin/env python3
"""Fixtures for the Swift heads and renderers (Tests/GlimpseTests/Fixtures/heads/), from the references:

  rle.json           pycocotools.mask.encode of small masks: compressed strings and run counts
  interpolate.json   torch.nn.functional.interpolate(mode="bilinear", align_corners=False) of small planes
  learned_heads.json the learned heads' math (tools/train_heads.py) in PyTorch on random weights, end to end
                     from captured cross-attention to boxes, scores and RLE masks, and the version-2
                     pixel refinement of those masks and boxes on a small image
  heads.json, heads.safetensors  the same random heads as a model directory would hold them

    pip install pycocotools==2.0.11 torch==2.15.0 safetensors==0.7.0 numpy
    python tools/make_heads_fixtures.py

Deterministic (fixed seeds); rerun only when the math changes.
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from pycocotools import mask as coco
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_heads import THETA, PIXEL_HIDDEN, pixel_box, refined_mask  # noqa: E402  (the heads' own math)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "GlimpseTests", "Fixtures", "heads")


def runs(m):
    """Run counts of a [h, w] bool mask in column-major order, starting with zeros (COCO)."""
    flat = np.asarray(m, dtype=np.uint8).flatten(order="F")
    counts, cur, n = [], 0, 0
    for v in flat:
        if v != cur:
            counts.append(n)
            n, cur = 0, v
        n += 1
    counts.append(n)
    return counts


def rle_case(name, m):
    m = np.asfortranarray(np.asarray(m, dtype=np.uint8))
    enc = coco.encode(m)
    counts = runs(m)
    # pycocotools agrees with our run counts: compressing them gives the same string
    again = coco.frPyObjects({"size": list(m.shape), "counts": counts}, m.shape[0], m.shape[1])
    assert again["counts"] == enc["counts"], name
    assert (coco.decode(enc) == m).all()
    case = {"name": name, "height": int(m.shape[0]), "width": int(m.shape[1]), "counts": counts,
            "compressed": enc["counts"].decode("ascii"), "area": int(coco.area(enc))}
    if m.size <= 100_000:   # row-major '0'/'1' string; the largest case is checked through its counts only
        case["bits"] = "".join(str(int(v)) for v in m.flatten(order="C"))
    return case


def make_rle():
    rng = np.random.default_rng(1)
    cases = [
        rle_case("empty 3x4", np.zeros((3, 4))),
        rle_case("full 3x4", np.ones((3, 4))),
        rle_case("first pixel", np.eye(2)),
        rle_case("row 2x3", [[1, 1, 1], [0, 0, 0]]),
        rle_case("random 5x7", rng.random((5, 7)) < 0.4),
        rle_case("random 9x6", rng.random((9, 6)) < 0.7),
    ]
    yy, xx = np.mgrid[0:240, 0:320]
    disc = (xx - 100) ** 2 + (yy - 130) ** 2 < 45 ** 2
    rect = (xx >= 200) & (xx < 290) & (yy >= 20) & (yy < 70)
    cases.append(rle_case("disc and rect 240x320", disc | rect))
    big = np.zeros((700, 900), bool)
    big[5:690, 3:890] = True        # long runs: multi-group counts
    big[300, 400] = False
    cases.append(rle_case("long runs 700x900", big))
    return cases


def make_interpolate():
    rng = np.random.default_rng(2)
    cases = []
    for (hi, wi), (ho, wo) in [((3, 3), (7, 5)), ((2, 2), (4, 4)), ((4, 5), (9, 13)), ((14, 14), (23, 37)),
                               ((8, 8), (3, 5)), ((5, 4), (1, 1)), ((1, 1), (3, 2)), ((6, 6), (6, 6))]:
        x = rng.standard_normal((hi, wi)).astype(np.float32)
        y = F.interpolate(torch.from_numpy(x)[None, None], size=(ho, wo), mode="bilinear", align_corners=False)[0, 0]
        cases.append({"in_height": hi, "in_width": wi, "out_height": ho, "out_width": wo,
                      "input": x.flatten().tolist(), "output": y.numpy().flatten().tolist()})
    return cases


def make_learned():
    torch.manual_seed(3)
    G, Henc, hidden, M, layers, heads, offset = 3, 5, 7, 4, 2, 3, 1
    L = 1
    W, H = 50, 40
    din = G * G + Henc
    lin = lambda i, o: (torch.randn(o, i) * 0.8, torch.randn(o) * 0.5)  # noqa: E731
    w = {}
    w["det.fc1.weight"], w["det.fc1.bias"] = lin(din, hidden)
    w["det.fc2.weight"], w["det.fc2.bias"] = lin(hidden, 5)
    w["seg.fc1.weight"], w["seg.fc1.bias"] = lin(din, hidden)
    w["seg.fc2.weight"], w["seg.fc2.bias"] = lin(hidden, M * M)
    refine_hidden = 6
    w["refine.fc1.weight"], w["refine.fc1.bias"] = lin(din, refine_hidden)
    w["refine.fc2.weight"], w["refine.fc2.bias"] = lin(refine_hidden, THETA)
    # captured cross-attention of 4 generated tokens: [layers, heads, offset + G*G], softmax rows
    tokens = 4
    att = torch.softmax(torch.randn(tokens, layers, heads, offset + G * G) * 2, -1)
    E = torch.randn(offset + G * G, Henc)
    words = [[1], [2, 3]]                 # generated-token groups of the grounded words

    def aggregate(t, layer):
        a = att[t, layer].mean(0)[offset:]
        return a / a.sum()

    maps = []
    for ws in words:
        a = torch.stack([aggregate(t, L) for t in ws]).mean(0)
        maps.append(a / a.sum())
    A = torch.stack(maps)
    f = A @ E[offset:]
    x = torch.cat([G * G * A, f], -1)
    det = F.linear(F.relu(F.linear(x, w["det.fc1.weight"], w["det.fc1.bias"])), w["det.fc2.weight"], w["det.fc2.bias"])
    seg = F.linear(F.relu(F.linear(x, w["seg.fc1.weight"], w["seg.fc1.bias"])), w["seg.fc2.weight"], w["seg.fc2.bias"])
    theta = F.linear(F.relu(F.linear(x, w["refine.fc1.weight"], w["refine.fc1.bias"])),
                     w["refine.fc2.weight"], w["refine.fc2.bias"])
    box = torch.sigmoid(det[:, :4])
    # An image with two colored blobs on light noise, so the per-pixel MLP has edges to find.
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[0:H, 0:W]
    image = rng.integers(170, 256, (H, W, 3)).astype(np.uint8)
    image[(xx - 18) ** 2 + (yy - 20) ** 2 < 81] = [200, 30, 40]
    image[(abs(xx - 36) < 7) & (abs(yy - 14) < 5)] = [20, 60, 210]
    results = []
    for i in range(len(words)):
        pb = pixel_box(box[i], W, H)
        bx, by, bw, bh = pb
        up = F.interpolate(seg[i].reshape(1, 1, M, M), size=(bh, bw), mode="bilinear", align_corners=False)[0, 0] > 0
        full = np.zeros((H, W), np.uint8)
        full[by:by + bh, bx:bx + bw] = up.numpy()
        enc = coco.encode(np.asfortranarray(full))
        rmask, rbox = refined_mask(image, pb, seg[i].numpy(), M, theta[i].numpy())
        renc = coco.encode(np.asfortranarray(rmask.astype(np.uint8)))
        results.append({"map": A[i].tolist(), "features": x[i].tolist(), "det": det[i].tolist(),
                        "seg": seg[i].tolist(), "box_fractions": box[i].tolist(), "box": pb,
                        "score": torch.sigmoid(det[i, 4]).item(),
                        "mask": {"size": [H, W], "counts": enc["counts"].decode("ascii")},
                        "theta": theta[i].tolist(), "refined_box": rbox or pb, "refined_area": int(rmask.sum()),
                        "refined_mask": {"size": [H, W], "counts": renc["counts"].decode("ascii")}})
    config = {"format": "glimpse-heads", "version": 2, "grid": [G, G], "encoder_hidden_size": Henc,
              "attention_layer": L, "hidden_size": hidden, "mask_size": M,
              "object_words": ["circle", "star"], "attribute_words": ["red", "blue"],
              "refine_hidden_size": refine_hidden, "pixel_hidden_size": PIXEL_HIDDEN}
    fixture = {"config": config, "layers": layers, "heads": heads, "patch_offset": offset,
               "image_width": W, "image_height": H, "image": image.flatten().tolist(),
               "attention": [att[t].flatten().tolist() for t in range(tokens)],
               "encoder_states": E.flatten().tolist(), "words": words,
               "weights": {k: {"shape": list(v.shape), "values": v.flatten().tolist()} for k, v in w.items()},
               "results": results}
    save_file({k: v.contiguous() for k, v in w.items()}, os.path.join(OUT, "heads.safetensors"),
              metadata={"format": "glimpse-heads"})
    with open(os.path.join(OUT, "heads.json"), "w") as fh:
        json.dump(config, fh, indent=2)
    return fixture


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in [("rle.json", make_rle()), ("interpolate.json", make_interpolate()),
                       ("learned_heads.json", make_learned())]:
        with open(os.path.join(OUT, name), "w") as fh:
            json.dump(data, fh)
        print("wrote", os.path.normpath(os.path.join(OUT, name)), os.path.getsize(os.path.join(OUT, name)), "bytes")


if __name__ == "__main__":
    main()
