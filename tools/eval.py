#!/usr/bin/env python3
"""Score Glimpse output on tools/scenes.py scenes: a thin wrapper around `glimpse eval` that adds the
scene world's caption error types.

    python tools/eval.py --pred out.jsonl --truth runs/eval/scenes.jsonl [--json report.json]
        out.jsonl: the Swift CLI's JSON lines; scored by `glimpse eval` (--glimpse, default the release
        build) against the scenes' captions.json / instances.json (written next to scenes.jsonl when
        absent), plus error types (order, relation, shape, color, size, count, syntax).
    python tools/eval.py --torch models/default --truth runs/heldout/scenes.jsonl [--write-pred pred.jsonl]
        runs the PyTorch model directly (beam search from generation_config.json, learned heads
        from heads.safetensors when present), writes its predictions in the CLI's contract and scores
        them the same way.

Metrics are `glimpse eval`'s (pycocoevalcap's BLEU/ROUGE-L/CIDEr-D on PTB tokens, COCOeval bbox/segm,
box recall@0.5, mask mIoU of box-matched objects; see `glimpse eval --help`).
"""
import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenes  # noqa: E402


def score(preds, truths):
    """Exact match (overall, by objects) and error types of predictions aligned with truth rows."""
    from train import error_types
    by_n = collections.defaultdict(lambda: [0, 0])
    errs = collections.Counter()
    for p, t in zip(preds, truths):
        c = p["captions"][0]["text"].strip() if p and "error" not in p and p.get("captions") else ""
        n = len(t["objects"])
        by_n[n][0] += c == t["caption"]
        by_n[n][1] += 1
        for e in error_types(c, t["caption"]):
            errs[e] += 1
    return {"images": len(truths), "exact_match": sum(v[0] for v in by_n.values()) / max(1, len(truths)),
            "exact_match_by_objects": {str(k): v[0] / v[1] for k, v in sorted(by_n.items())},
            "error_types": dict(errs)}


def glimpse_eval(glimpse, pred_path, truth_path):
    """`glimpse eval --json` on the scenes' COCO files (written from scenes.jsonl when absent)."""
    d = os.path.dirname(os.path.abspath(truth_path))
    caps, inst = os.path.join(d, "captions.json"), os.path.join(d, "instances.json")
    if not (os.path.exists(caps) and os.path.exists(inst)):
        rows = [json.loads(l) for l in open(truth_path) if l.strip()]
        c, i = scenes.coco_files(rows, range(len(rows)))
        for path, obj in ((caps, c), (inst, i)):
            with open(path, "w") as f:
                json.dump(obj, f)
    out = subprocess.run([glimpse, "eval", pred_path, "--references", caps, "--instances", inst, "--json"],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def torch_predict(model_dir, truths, truth_dir, limit=None):
    import torch
    from PIL import Image
    import train
    import train_heads
    model, tok = train_heads.load_model(model_dir)
    size = model.config.encoder.image_size
    heads = refine = None
    loaded = train_heads.load_heads(model_dir)
    if loaded is not None:
        heads, refine, cfg = loaded
        M = cfg["mask_size"]
    shape_ids = {tok.convert_tokens_to_ids("Ġ" + s): s for s in scenes.SHAPES}
    color_ids = {tok.convert_tokens_to_ids("Ġ" + c): c for c in scenes.COLOR_NAMES}
    preds = []
    for s in range(0, len(truths), 50):
        chunk = truths[s:s + 50]
        ims = [Image.open(os.path.join(truth_dir, t["file"])).convert("RGB") for t in chunk]
        full = [np.asarray(im) for im in ims]
        px = torch.from_numpy(np.stack([np.asarray(im.resize((size, size), Image.BILINEAR)) for im in ims]))
        px = px.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
        with torch.no_grad():
            out = model.generate(pixel_values=px, return_dict_in_generate=True, output_scores=True)
        seqs = out.sequences
        sc = out.sequences_scores if getattr(out, "sequences_scores", None) is not None else torch.zeros(len(seqs))
        for r, t in enumerate(chunk):
            ids = seqs[r].tolist()
            end = next((i for i in range(1, len(ids)) if ids[i] == train.EOT_ID), len(ids))
            toks = ids[:end]
            text = tok.decode(toks[1:]).strip()
            p = {"file": t["file"], "width": t["width"], "height": t["height"],
                 "captions": [{"text": text, "score": float(sc[r]), "tokens": ids[:end + 1]}]}
            if heads is not None:
                dets = []
                pos = [i for i in range(1, len(toks)) if toks[i] in shape_ids]
                if pos:
                    n_in = len(toks)
                    dec = torch.tensor([toks + [0] * (train.MAXLEN * 2 - n_in)])[:, :32]
                    msk = torch.tensor([[1] * n_in + [0] * (dec.shape[1] - n_in)])
                    x = train_heads.features(model, px[r:r + 1], dec, msk, torch.zeros(len(pos), dtype=torch.long),
                                             torch.tensor([i - 1 for i in pos]))
                    with torch.no_grad():
                        det, seg = heads(x)
                        theta = refine(x) if refine is not None else None
                    for q, i in enumerate(pos):
                        col = next((color_ids[toks[j]] for j in range(i - 1, 0, -1) if toks[j] in color_ids), "")
                        W, H = t["width"], t["height"]
                        box = train_heads.pixel_box(torch.sigmoid(det[q, :4]), W, H)
                        if theta is not None:
                            m, refined = train_heads.refined_mask(full[r], box, seg[q].numpy(), M, theta[q].numpy())
                            box = refined or box
                        else:
                            m = train_heads.mask_from_logits(seg[q], box, W, H, M)
                        dets.append({"label": f"{col} {shape_ids[toks[i]]}".strip(), "word": shape_ids[toks[i]],
                                     "token_index": i, "box": box, "score": float(torch.sigmoid(det[q, 4])),
                                     "mask": scenes.rle_encode(m)})
                p["detections"] = dets
            preds.append(p)
    return preds


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--truth", required=True, help="scenes.jsonl written by tools/scenes.py --out")
    ap.add_argument("--pred", help="JSONL from the Swift CLI")
    ap.add_argument("--torch", metavar="MODEL_DIR", help="run the PyTorch model instead of reading --pred")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--write-pred", help="with --torch: write its predictions as JSONL (the CLI's contract)")
    ap.add_argument("--glimpse", default=".build/release/glimpse", help="the glimpse executable")
    ap.add_argument("--json", help="write the report here")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    truth_dir = os.path.dirname(os.path.abspath(a.truth))
    truths = [json.loads(l) for l in open(a.truth) if l.strip()][:a.limit]
    if a.torch:
        import torch
        torch.set_num_threads(a.threads)
        preds = torch_predict(a.torch, truths, truth_dir)
        pred_path = a.write_pred or tempfile.mkstemp(suffix=".jsonl")[1]
        with open(pred_path, "w") as f:
            for p in preds:
                f.write(json.dumps(p) + "\n")
    else:
        pred_path = a.pred
        byname = {}
        for l in open(a.pred):
            if l.strip():
                p = json.loads(l)
                byname[os.path.basename(p.get("file", ""))] = p
        preds = [byname.get(os.path.basename(t["file"])) for t in truths]
    rep = glimpse_eval(a.glimpse, pred_path, a.truth)
    rep.update(score(preds, truths))
    print(json.dumps(rep, indent=1))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rep, f, indent=1)


if __name__ == "__main__":
    main()
