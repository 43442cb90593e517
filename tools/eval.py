#!/usr/bin/env python3
"""Score Glimpse captions / detections / masks against a truth scenes.jsonl (tools/scenes.py --out).

    python tools/eval.py --pred out.jsonl --truth runs/heldout/scenes.jsonl [--json report.json]
        out.jsonl: the Swift CLI's JSON lines ({"file", "captions": [{"text",...}], "detections": [...]}
        or {"file", "error"}); matched to the truth by file name.
    python tools/eval.py --torch models/default --truth runs/heldout/scenes.jsonl [--write-pred pred.jsonl]
        runs the PyTorch model directly (beam search from generation_config.json, learned heads
        from heads.safetensors when present) and scores it the same way.

Metrics: caption exact match (overall and by number of objects) with error types; BLEU-4 (corpus,
one reference, uniform weights, brevity penalty); CIDEr-D (n=1..4, tf-idf over the reference set,
sigma 6, x10, clipped counts); detection AP@0.5 per label ("{color} {shape}"), greedy matching by
score within an image, 101-point interpolated (COCO style), and their mean (mAP); mask mean IoU over
the true objects matched at box IoU >= 0.5 (and over all true objects, unmatched counting 0).
"""
import argparse
import collections
import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenes  # noqa: E402


# ----------------------------------------------------------------------------- text metrics

def ngrams(words, n):
    return collections.Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))


def tokenize(s):
    return s.replace(",", " ,").split()


def bleu4(cands, refs):
    match = [0] * 4
    total = [0] * 4
    c_len = r_len = 0
    for c, r in zip(cands, refs):
        cw, rw = tokenize(c), tokenize(r)
        c_len += len(cw)
        r_len += len(rw)
        for n in range(1, 5):
            cn, rn = ngrams(cw, n), ngrams(rw, n)
            match[n - 1] += sum(min(v, rn[k]) for k, v in cn.items())
            total[n - 1] += max(len(cw) - n + 1, 0)
    if min(match) == 0:
        return 0.0
    logp = sum(math.log(m / t) for m, t in zip(match, total)) / 4
    bp = 1.0 if c_len > r_len else math.exp(1 - r_len / max(c_len, 1))
    return bp * math.exp(logp)


def cider_d(cands, refs, sigma=6.0):
    N = len(refs)
    df = collections.Counter()
    ref_ng = []
    for r in refs:
        rw = tokenize(r)
        ng = [ngrams(rw, n) for n in range(1, 5)]
        ref_ng.append((ng, len(rw)))
        for n in range(4):
            for k in ng[n]:
                df[k] += 1
    log_n = math.log(float(N))

    def vec(ng):
        out = []
        norms = []
        for n in range(4):
            v = {k: c * (log_n - math.log(max(1.0, df[k]))) for k, c in ng[n].items()}
            out.append(v)
            norms.append(math.sqrt(sum(x * x for x in v.values())))
        return out, norms

    scores = []
    for c, (rng, rlen) in zip(cands, ref_ng):
        cw = tokenize(c)
        cng = [ngrams(cw, n) for n in range(1, 5)]
        vc, nc = vec(cng)
        vr, nr = vec(rng)
        s = 0.0
        for n in range(4):
            dot = sum(min(v, vr[n].get(k, 0.0)) * vr[n].get(k, 0.0) for k, v in vc[n].items())
            if nc[n] and nr[n]:
                s += dot / (nc[n] * nr[n]) * math.exp(-((len(cw) - rlen) ** 2) / (2 * sigma ** 2))
        scores.append(s / 4 * 10)
    return float(np.mean(scores)) if scores else 0.0


# ----------------------------------------------------------------------------- detection metrics

def iou_box(a, b):
    iw = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / max(1e-9, a[2] * a[3] + b[2] * b[3] - inter)


def average_precision(tp, scores, n_gt):
    if n_gt == 0:
        return None
    if not tp:
        return 0.0
    order = np.argsort(-np.array(scores), kind="stable")
    tp = np.array(tp, float)[order]
    ctp, cfp = np.cumsum(tp), np.cumsum(1 - tp)
    rec = ctp / n_gt
    prec = ctp / np.maximum(ctp + cfp, 1e-9)
    for i in range(len(prec) - 2, -1, -1):
        prec[i] = max(prec[i], prec[i + 1])
    ap = 0.0
    for t in np.linspace(0, 1, 101):
        k = np.searchsorted(rec, t, side="left")
        ap += prec[k] if k < len(prec) else 0.0
    return ap / 101


def score_detections(preds, truths, iou_thr=0.5):
    """preds/truths: lists aligned per image. Returns per-label AP, mAP, mask IoUs."""
    per_label = collections.defaultdict(lambda: {"tp": [], "scores": [], "n_gt": 0})
    mask_ious, mask_ious_all = [], []
    for p, t in zip(preds, truths):
        gts = t["objects"]
        dets = p.get("detections", []) if p and "error" not in p else []
        for o in gts:
            per_label[f"{o['color']} {o['shape']}"]["n_gt"] += 1
        matched = {}
        gt_masks = {}
        for d_i in sorted(range(len(dets)), key=lambda i: -float(dets[i].get("score", 0))):
            d = dets[d_i]
            lab = d.get("label", "")
            best, bj = iou_thr, -1
            for j, o in enumerate(gts):
                if j in matched or f"{o['color']} {o['shape']}" != lab:
                    continue
                iou = iou_box(d["box"], o["box"])
                if iou >= best:
                    best, bj = iou, j
            per_label[lab]["scores"].append(float(d.get("score", 0)))
            per_label[lab]["tp"].append(1 if bj >= 0 else 0)
            if bj >= 0:
                matched[bj] = d
        for j, o in enumerate(gts):
            if j in matched and "mask" in matched[j]:
                gm = scenes.rle_decode(o["mask"])
                pm = scenes.rle_decode(matched[j]["mask"])
                if pm.shape != gm.shape:
                    iou = 0.0
                else:
                    iou = float((pm & gm).sum() / max(1, (pm | gm).sum()))
                mask_ious.append(iou)
                mask_ious_all.append(iou)
            else:
                mask_ious_all.append(0.0)
    aps = {}
    for lab, v in sorted(per_label.items()):
        ap = average_precision(v["tp"], v["scores"], v["n_gt"])
        if ap is not None:
            aps[lab] = ap
    return {"mAP@0.5": float(np.mean(list(aps.values()))) if aps else 0.0,
            "AP@0.5_per_label": {k: round(v, 4) for k, v in aps.items()},
            "mask_mIoU_matched": float(np.mean(mask_ious)) if mask_ious else 0.0,
            "mask_mIoU_all": float(np.mean(mask_ious_all)) if mask_ious_all else 0.0,
            "matched_objects": len(mask_ious), "true_objects": len(mask_ious_all)}


# ----------------------------------------------------------------------------- report

def score(preds, truths):
    from train import error_types
    texts, refs = [], []
    by_n = collections.defaultdict(lambda: [0, 0])
    errs = collections.Counter()
    n_err = 0
    for p, t in zip(preds, truths):
        if not p or "error" in p or not p.get("captions"):
            c = ""
            n_err += 1
        else:
            c = p["captions"][0]["text"].strip()
        texts.append(c)
        refs.append(t["caption"])
        n = len(t["objects"])
        by_n[n][0] += c == t["caption"]
        by_n[n][1] += 1
        for e in error_types(c, t["caption"]):
            errs[e] += 1
    em = sum(v[0] for v in by_n.values()) / max(1, len(truths))
    rep = {"images": len(truths), "failed": n_err, "exact_match": em,
           "exact_match_by_objects": {str(k): v[0] / v[1] for k, v in sorted(by_n.items())},
           "error_types": dict(errs), "BLEU-4": bleu4(texts, refs), "CIDEr-D": cider_d(texts, refs)}
    if any(p and p.get("detections") is not None for p in preds):
        rep["detection"] = score_detections(preds, truths)
    return rep


def torch_predict(model_dir, truths, truth_dir, limit=None):
    import torch
    from PIL import Image
    import train
    import train_heads
    model, tok = train_heads.load_model(model_dir)
    size = model.config.encoder.image_size
    heads = None
    hj = os.path.join(model_dir, "heads.json")
    if os.path.exists(hj):
        from safetensors.torch import load_file
        cfg = json.load(open(hj))
        sd = load_file(os.path.join(model_dir, "heads.safetensors"))
        G = cfg["grid"][0]
        heads = train_heads.Heads(G * G + cfg["encoder_hidden_size"], cfg["hidden_size"], cfg["mask_size"])
        heads.load_state_dict(sd)
        M = cfg["mask_size"]
    shape_ids = {tok.convert_tokens_to_ids("Ġ" + s): s for s in scenes.SHAPES}
    color_ids = {tok.convert_tokens_to_ids("Ġ" + c): c for c in scenes.COLOR_NAMES}
    preds = []
    for s in range(0, len(truths), 50):
        chunk = truths[s:s + 50]
        ims = [Image.open(os.path.join(truth_dir, t["file"])).convert("RGB") for t in chunk]
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
                    for q, i in enumerate(pos):
                        col = next((color_ids[toks[j]] for j in range(i - 1, 0, -1) if toks[j] in color_ids), "")
                        W, H = t["width"], t["height"]
                        box = train_heads.pixel_box(torch.sigmoid(det[q, :4]), W, H)
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
    ap.add_argument("--json", help="write the report here")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    truth_dir = os.path.dirname(os.path.abspath(a.truth))
    truths = [json.loads(l) for l in open(a.truth) if l.strip()][:a.limit]
    if a.torch:
        import torch
        torch.set_num_threads(a.threads)
        preds = torch_predict(a.torch, truths, truth_dir)
        if a.write_pred:
            with open(a.write_pred, "w") as f:
                for p in preds:
                    f.write(json.dumps(p) + "\n")
    else:
        byname = {}
        for l in open(a.pred):
            if l.strip():
                p = json.loads(l)
                byname[os.path.basename(p.get("file", ""))] = p
        preds = [byname.get(os.path.basename(t["file"])) for t in truths]
    rep = score(preds, truths)
    print(json.dumps(rep, indent=1))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rep, f, indent=1)


if __name__ == "__main__":
    main()
