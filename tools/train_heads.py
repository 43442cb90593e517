#!/usr/bin/env python3
"""Learned detection / segmentation heads on a frozen Glimpse captioning model.

    python tools/train_heads.py --model models/default --data runs/data/train-a.npz --heldout runs/heldout

Format (models/default/heads.json + heads.safetensors, F32), the same math as the Swift engine:
  A_w  = mean over heads of decoder layer `attention_layer`'s cross-attention at the decoder
         position whose next-token prediction is the shape word w, over patch tokens only
         (encoder index 1..G*G, CLS dropped), renormalized to sum 1; row-major (y, x), length G*G.
  f_w  = sum_p A_w[p] * E[1+p], E = encoder last_hidden_state (after ViT's final layernorm).
  x    = concat(G*G * A_w, f_w)                          (length G*G + H_enc)
  det  = det.fc2(relu(det.fc1(x)))                        (5 outputs)
         box = sigmoid(det[0:4]) = (cx, cy, w, h) as fractions of the image width/height
         score = sigmoid(det[4]), trained toward the IoU of the predicted box with the true box
  seg  = seg.fc2(relu(seg.fc1(x)))                        (M*M logits, row-major)
         an MxM mask over the object's box (the true box in training, the detection box at
         inference), upsampled bilinearly (align_corners=False) to the box's pixel size;
         a pixel is in the mask where the logit > 0. Trained with BCE against the true mask's
         coverage of each of the MxM cells of the true box.
  Version 2 adds a pixel refinement (CondInst-style dynamic filter) that reads the image itself:
  theta = refine.fc2(relu(refine.fc1(x)))                 (65 outputs: one tiny per-pixel MLP per object)
         region = the detection box grown by max(2, (size + 2) // 4) pixels each side, inside the image;
         for each pixel (px, py) of it, p = (r, g, b, u, v, c):
           r, g, b = value / 127.5 - 1
           u = (2 px + 1 - 2 x - w) / w, v = (2 py + 1 - 2 y - h) / h   (box x, y, w, h; +-1 at its edges)
           c = clamp(coarse, -10, 10) / 5, coarse = the seg logits at the pixel: bilinear with
               sx = clamp((px + 0.5 - x) * M / w - 0.5, 0, M - 1) (align_corners=False inside the box,
               the edge value beyond), sy likewise
         logit = w2 . relu(W1 p + b1) + b2,  theta = [W1 (8x6 row-major), b1 (8), w2 (8), b2]
         a pixel is in the mask where logit > 0; the detection's box becomes the mask's bounding box
         (the detection box when the mask is empty). Trained with per-pixel BCE on 24x24 points of the
         region around the detection head's own (jittered) boxes on the training scenes, re-rendered at
         full resolution.
Writes heads.safetensors + heads.json into --model and prints held-out box IoU>=0.5 rate and mask IoU.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenes  # noqa: E402
import train  # noqa: E402


class Heads(nn.Module):
    def __init__(self, din, hidden, m):
        super().__init__()
        self.det = nn.Module()
        self.det.fc1 = nn.Linear(din, hidden)
        self.det.fc2 = nn.Linear(hidden, 5)
        self.seg = nn.Module()
        self.seg.fc1 = nn.Linear(din, hidden)
        self.seg.fc2 = nn.Linear(hidden, m * m)

    def forward(self, x):
        return self.det.fc2(F.relu(self.det.fc1(x))), self.seg.fc2(F.relu(self.seg.fc1(x)))


PIXEL_INPUTS, PIXEL_HIDDEN = 6, 8
THETA = PIXEL_HIDDEN * PIXEL_INPUTS + 2 * PIXEL_HIDDEN + 1
SAMPLES = 24  # training points per region side


class Refine(nn.Module):
    """x -> theta, the weights of one object's per-pixel MLP."""

    def __init__(self, din, hidden):
        super().__init__()
        self.fc1 = nn.Linear(din, hidden)
        self.fc2 = nn.Linear(hidden, THETA)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


def refine_region(box, W, H):
    """[x0, y0, x1, y1): the pixels the refinement scores around an integer box [x, y, w, h]."""
    x, y, w, h = box
    px, py = max(2, (w + 2) // 4), max(2, (h + 2) // 4)
    return max(0, x - px), max(0, y - py), min(W, x + w + px), min(H, y + h + py)


def pixel_inputs(img, box, coarse, m, xs, ys):
    """p = (r, g, b, u, v, c) at the pixels (xs[j], ys[i]) of img (uint8 HxWx3): [len(ys) * len(xs), 6], float32."""
    x, y, w, h = box
    f32 = np.float32
    xs, ys = np.asarray(xs), np.asarray(ys)
    rgb = img[ys][:, xs].astype(f32) / f32(127.5) - f32(1)
    u = (2 * xs + 1 - 2 * x - w).astype(f32) / f32(w)
    v = (2 * ys + 1 - 2 * y - h).astype(f32) / f32(h)
    cm = np.asarray(coarse, f32).reshape(m, m)

    def axis(p, o, size):
        s = np.clip((p.astype(f32) + f32(0.5) - f32(o)) * f32(m) / f32(size) - f32(0.5), f32(0), f32(m - 1))
        i0 = np.floor(s).astype(np.int64)
        i1 = np.minimum(i0 + 1, m - 1)
        l1 = s - i0.astype(f32)
        return i0, i1, f32(1) - l1, l1
    x0, x1, wx0, wx1 = axis(xs, x, w)
    y0, y1, wy0, wy1 = axis(ys, y, h)
    top = wx0[None] * cm[y0][:, x0] + wx1[None] * cm[y0][:, x1]
    bottom = wx0[None] * cm[y1][:, x0] + wx1[None] * cm[y1][:, x1]
    c = wy0[:, None] * top + wy1[:, None] * bottom
    c = np.clip(c, f32(-10), f32(10)) / f32(5)
    uu, vv = np.meshgrid(u, v)
    return np.concatenate([rgb.reshape(-1, 3), uu.reshape(-1, 1), vv.reshape(-1, 1), c.reshape(-1, 1)], 1).astype(f32)


def pixel_logits(theta, p):
    """The per-pixel MLP: theta [n, THETA], p [n, P, 6] -> logits [n, P] (torch)."""
    n = theta.shape[0]
    k = PIXEL_HIDDEN * PIXEL_INPUTS
    w1 = theta[:, :k].reshape(n, PIXEL_HIDDEN, PIXEL_INPUTS)
    b1 = theta[:, k:k + PIXEL_HIDDEN]
    w2 = theta[:, k + PIXEL_HIDDEN:k + 2 * PIXEL_HIDDEN]
    b2 = theta[:, -1]
    hdn = F.relu(torch.einsum("npi,nji->npj", p, w1) + b1[:, None])
    return torch.einsum("npj,nj->np", hdn, w2) + b2[:, None]


def refined_mask(img, box, coarse, m, theta):
    """Full-canvas boolean mask of one object, and its bounding box [x, y, w, h] (None when empty)."""
    H, W = img.shape[:2]
    x0, y0, x1, y1 = refine_region(box, W, H)
    p = pixel_inputs(img, box, coarse, m, np.arange(x0, x1), np.arange(y0, y1))
    lg = pixel_logits(torch.as_tensor(theta, dtype=torch.float32)[None], torch.from_numpy(p)[None])[0]
    inside = (lg > 0).numpy().reshape(y1 - y0, x1 - x0)
    full = np.zeros((H, W), bool)
    full[y0:y1, x0:x1] = inside
    if not inside.any():
        return full, None
    rows, cols = np.nonzero(inside.any(1))[0], np.nonzero(inside.any(0))[0]
    return full, [x0 + int(cols[0]), y0 + int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)]


def load_heads(model_dir):
    """(heads, refine or None, heads.json) of a model directory, or None when it has no heads."""
    hj = os.path.join(model_dir, "heads.json")
    if not os.path.exists(hj):
        return None
    from safetensors.torch import load_file
    cfg = json.load(open(hj))
    sd = load_file(os.path.join(model_dir, "heads.safetensors"))
    din = cfg["grid"][0] ** 2 + cfg["encoder_hidden_size"]
    heads = Heads(din, cfg["hidden_size"], cfg["mask_size"])
    heads.load_state_dict({k: v for k, v in sd.items() if not k.startswith("refine.")})
    refine = None
    if cfg.get("version", 1) >= 2:
        assert cfg["pixel_hidden_size"] == PIXEL_HIDDEN, "pixel_hidden_size other than this script's"
        refine = Refine(din, cfg["refine_hidden_size"])
        refine.load_state_dict({k[len("refine."):]: v for k, v in sd.items() if k.startswith("refine.")})
    return heads, refine, cfg


def load_model(path):
    from transformers import VisionEncoderDecoderModel, GPT2TokenizerFast
    model = VisionEncoderDecoderModel.from_pretrained(path)
    train.set_eager_decoder(model)
    model.eval()
    tok = GPT2TokenizerFast.from_pretrained(path)
    return model, tok


@torch.no_grad()
def features(model, px, dec_in, dmask, ob, op, layer=-1):
    """x = concat(G*G*A_w, f_w) for objects (batch row ob, decoder position op)."""
    enc, out = train.forward(model, px, dec_in, dmask, need_attn=True)
    ca = out.cross_attentions[layer].mean(1)[:, :, 1:]  # [B, T, GG]
    a = ca[ob, op]
    a = a / a.sum(-1, keepdim=True)
    f = torch.einsum("np,nph->nh", a, enc[ob, 1:])
    return torch.cat([a.shape[-1] * a, f], -1)


def extract(model, data, idx_all, flip_all=None, bs=64, log=""):
    """Features, true boxes (cx, cy, w, h), true MxM box masks, and (scene, object, flipped) of every object."""
    X, boxes, segs, meta = [], [], [], []
    t = time.time()
    for s in range(0, len(idx_all), bs):
        idx = idx_all[s:s + bs]
        flip = None if flip_all is None else flip_all[s:s + bs]
        px, dec_in, dmask, labels, ob, op, og = data.batch(idx, flip)
        X.append(features(model, px, dec_in, dmask, ob, op))
        # targets in the same order as data.batch lists objects
        for r, i in enumerate(idx):
            f = flip is not None and flip[r]
            order = data.transformed(i, int(f))[1]
            for k in order:
                x, y, w, h = data.boxes[i, k]
                sg = data.segs[i, k].astype(np.float32) / 255.0
                if f:
                    x = 1.0 - x - w
                    sg = sg[:, ::-1]
                boxes.append([x + w / 2, y + h / 2, w, h])
                segs.append(sg.reshape(-1))
                meta.append((int(i), int(k), bool(f)))
        if log and (s // bs) % 50 == 0:
            print(f"{log}: {s + len(idx)}/{len(idx_all)} ({time.time() - t:.0f}s)", flush=True)
    return torch.cat(X), torch.tensor(np.array(boxes), dtype=torch.float32), \
        torch.tensor(np.array(segs), dtype=torch.float32), meta


def _region_samples(job):
    """SAMPLES x SAMPLES refinement inputs and true mask values around each given box of one scene,
    re-rendered at full resolution (a Pool worker; scenes.VARIETY set by the parent)."""
    seed, i, flip, objs = job
    img, info = scenes.rendered_scene(seed, i)
    if flip:
        img = np.ascontiguousarray(img[:, ::-1])
    H, W = img.shape[:2]
    out = []
    for k, frac, coarse, m in objs:
        mask = info["objects"][k]["_mask"]
        if flip:
            mask = mask[:, ::-1]
        box = pixel_box(frac, W, H)
        x0, y0, x1, y1 = refine_region(box, W, H)
        xs = x0 + ((np.arange(SAMPLES) + 0.5) * (x1 - x0) / SAMPLES).astype(np.int64)
        ys = y0 + ((np.arange(SAMPLES) + 0.5) * (y1 - y0) / SAMPLES).astype(np.int64)
        out.append((pixel_inputs(img, box, coarse, m, xs, ys), mask[ys][:, xs].reshape(-1)))
    return info["caption"], out


def region_samples(seed, meta, boxes, coarse, m, procs, log="regions"):
    """Refinement training inputs [n, SAMPLES^2, 6] and targets [n, SAMPLES^2] for objects `meta`
    (scene, object, flipped) around `boxes` (cx, cy, w, h fractions) with coarse logits `coarse`."""
    from multiprocessing import Pool
    by_scene = {}
    for r, (i, k, f) in enumerate(meta):
        by_scene.setdefault((i, f), []).append((r, k))
    jobs = [(seed, i, f, [(k, boxes[r].tolist(), coarse[r].tolist(), m) for r, k in objs])
            for (i, f), objs in by_scene.items()]
    P = np.zeros((len(meta), SAMPLES * SAMPLES, PIXEL_INPUTS), np.float32)
    T = np.zeros((len(meta), SAMPLES * SAMPLES), np.float32)
    captions = {}
    t = time.time()
    with Pool(procs) as pool:
        for n, (((i, f), objs), (caption, out)) in enumerate(zip(by_scene.items(), pool.imap(_region_samples, jobs, chunksize=8))):
            captions[i] = caption
            for (r, _), (p, tm) in zip(objs, out):
                P[r], T[r] = p, tm
            if n % 1000 == 0:
                print(f"{log}: {n}/{len(jobs)} scenes ({time.time() - t:.0f}s)", flush=True)
    return torch.from_numpy(P), torch.from_numpy(T), captions


def box_iou_cxcywh(a, b):
    ax0, ay0, ax1, ay1 = a[:, 0] - a[:, 2] / 2, a[:, 1] - a[:, 3] / 2, a[:, 0] + a[:, 2] / 2, a[:, 1] + a[:, 3] / 2
    bx0, by0, bx1, by1 = b[:, 0] - b[:, 2] / 2, b[:, 1] - b[:, 3] / 2, b[:, 0] + b[:, 2] / 2, b[:, 1] + b[:, 3] / 2
    iw = (torch.minimum(ax1, bx1) - torch.maximum(ax0, bx0)).clamp_min(0)
    ih = (torch.minimum(ay1, by1) - torch.maximum(ay0, by0)).clamp_min(0)
    inter = iw * ih
    return inter / (a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter).clamp_min(1e-9)


def pixel_box(b, W, H):
    """(cx, cy, w, h) fractions -> integer [x, y, w, h] inside the image (the engine's rounding)."""
    cx, cy, w, h = [float(v) for v in b]
    x0 = max(0, min(W - 1, int(round((cx - w / 2) * W))))
    y0 = max(0, min(H - 1, int(round((cy - h / 2) * H))))
    x1 = max(x0 + 1, min(W, int(round((cx + w / 2) * W))))
    y1 = max(y0 + 1, min(H, int(round((cy + h / 2) * H))))
    return [x0, y0, x1 - x0, y1 - y0]


def mask_from_logits(logits, box, W, H, m):
    """MxM logits over box [x,y,w,h] -> full-canvas boolean mask (bilinear, align_corners=False, > 0)."""
    x, y, w, h = box
    lg = torch.as_tensor(logits, dtype=torch.float32).reshape(1, 1, m, m)
    up = F.interpolate(lg, size=(h, w), mode="bilinear", align_corners=False)[0, 0] > 0
    full = np.zeros((H, W), bool)
    full[y:y + h, x:x + w] = up.numpy()
    return full


def iou_px(a, b):
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0, min(ax1, bx1) - max(a[0], b[0]))
    ih = max(0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    return inter / max(1e-9, a[2] * a[3] + b[2] * b[3] - inter)


def evaluate_heads(model, tok, heads, heldout_dir, size, m, limit=None, refine=None):
    """Teacher-forced on the true captions of the held-out scenes: box IoU>=0.5 rate, mean box IoU,
    mask IoU (mean over objects), by object size; with `refine`, the refined masks and boxes (and
    the detection head's own box and coarse mask as `det_box_iou_mean`, `coarse_mask_iou_mean`)."""
    from PIL import Image
    rows = [json.loads(l) for l in open(os.path.join(heldout_dir, "scenes.jsonl"))][:limit]
    shape_ids = {tok.convert_tokens_to_ids("Ġ" + s) for s in scenes.SHAPES}
    res = {"box_iou": [], "mask_iou": [], "size": [], "det_box_iou": [], "coarse_mask_iou": []}
    for s in range(0, len(rows), 50):
        chunk = rows[s:s + 50]
        imgs, full, dec_in, dmask, ob, op = [], [], [], [], [], []
        for r, row in enumerate(chunk):
            im = Image.open(os.path.join(heldout_dir, row["file"])).convert("RGB")
            full.append(np.asarray(im))
            imgs.append(np.asarray(im.resize((size, size), Image.BILINEAR)))
            ids = tok(row["caption"], add_special_tokens=False)["input_ids"]
            d = [train.EOT_ID] + ids + [train.EOT_ID] * (train.MAXLEN - 1 - len(ids))
            dec_in.append(d)
            dmask.append([1] * (len(ids) + 1) + [0] * (train.MAXLEN - 1 - len(ids)))
            pos = [j for j, t in enumerate(ids) if t in shape_ids]
            for p in pos:
                ob.append(r)
                op.append(p)
        px = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
        x = features(model, px, torch.tensor(dec_in), torch.tensor(dmask), torch.tensor(ob), torch.tensor(op))
        with torch.no_grad():
            det, seg = heads(x)
            theta = refine(x) if refine is not None else None
        box = torch.sigmoid(det[:, :4])
        n = 0
        for r, row in enumerate(chunk):
            W, H = row["width"], row["height"]
            for o in row["objects"]:
                pb = pixel_box(box[n], W, H)
                gm = scenes.rle_decode(o["mask"])
                pm = mask_from_logits(seg[n], pb, W, H, m)
                res["det_box_iou"].append(iou_px(pb, o["box"]))
                res["coarse_mask_iou"].append((pm & gm).sum() / max(1, (pm | gm).sum()))
                if theta is not None:
                    pm, rb = refined_mask(full[r], pb, seg[n].numpy(), m, theta[n].numpy())
                    pb = rb or pb
                res["box_iou"].append(iou_px(pb, o["box"]))
                res["mask_iou"].append((pm & gm).sum() / max(1, (pm | gm).sum()))
                res["size"].append(o["size"])
                n += 1
    bi = np.array(res["box_iou"])
    mi = np.array(res["mask_iou"])
    sz = np.array(res["size"])
    out = {"objects": int(len(bi)), "box_iou_ge_0.5": float((bi >= 0.5).mean()), "box_iou_mean": float(bi.mean()),
           "mask_iou_mean": float(mi.mean())}
    if refine is not None:
        out["det_box_iou_mean"] = float(np.mean(res["det_box_iou"]))
        out["coarse_mask_iou_mean"] = float(np.mean(res["coarse_mask_iou"]))
    for z in ("small", "large"):
        sel = sz == z
        out[f"{z}_box_iou_ge_0.5"] = float((bi[sel] >= 0.5).mean())
        out[f"{z}_mask_iou_mean"] = float(mi[sel].mean())
    return out


def optimize(opt, sched, loss):
    """One optimizer and schedule step on `loss`; returns its value."""
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()
    return loss.item()


def train_refine(args, heads, X, meta, nval):
    """Stage 2: the pixel refinement, on full-resolution re-renders of the training scenes around the
    detection head's own boxes (jittered on the training part, so it learns to fix their errors)."""
    seed = int(np.load(args.data)["seed"])
    with torch.no_grad():
        det, seg = heads(X)
    boxes = torch.sigmoid(det[:, :4]).numpy().astype(np.float64)
    rng = np.random.default_rng(1)
    jit = boxes[nval:]
    jit[:, 0] += rng.normal(0, 0.03, len(jit)) * jit[:, 2]
    jit[:, 1] += rng.normal(0, 0.03, len(jit)) * jit[:, 3]
    jit[:, 2:] *= np.exp(rng.normal(0, 0.06, (len(jit), 2)))
    # The npz does not say whether it was rendered with --variety: the re-rendered captions tell.
    data_captions = [str(c) for c in np.load(args.data)["captions"]]
    first = meta[0][0]
    for variety in (True, False):
        scenes.VARIETY = variety
        if scenes.rendered_scene(seed, first)[1]["caption"] == data_captions[first]:
            break
    else:
        sys.exit(f"{args.data}: its scenes do not re-render from seed {seed}")
    P, T, captions = region_samples(seed, meta, boxes, seg.numpy(), args.mask_size, args.procs)
    wrong = [i for i, c in captions.items() if c != data_captions[i]]
    if wrong:
        sys.exit(f"{args.data}: {len(wrong)} scenes re-render differently (first: {wrong[0]})")
    refine = Refine(X.shape[1], args.refine_hidden)
    opt = torch.optim.AdamW(refine.parameters(), lr=2e-3, weight_decay=1e-4)
    ntr = len(X) - nval
    total = args.refine_epochs * ((ntr + 255) // 256)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=total)
    for ep in range(args.refine_epochs):
        perm = nval + torch.randperm(ntr)
        tot = 0.0
        for s in range(0, ntr, 256):
            j = perm[s:s + 256]
            loss = F.binary_cross_entropy_with_logits(pixel_logits(refine(X[j]), P[j]), T[j])
            tot += optimize(opt, sched, loss) * len(j)
        if ep % 5 == 4 or ep == args.refine_epochs - 1:
            with torch.no_grad():
                pm, gm = pixel_logits(refine(X[:nval]), P[:nval]) > 0, T[:nval] > 0.5
                cm = P[:nval, :, 5] > 0
                iou = lambda a: ((a & gm).sum(1) / (a | gm).sum(1).clamp_min(1)).mean()  # noqa: E731
            print(f"refine epoch {ep + 1}: loss {tot / ntr:.4f} val point-mask IoU {iou(pm):.3f} "
                  f"(coarse {iou(cm):.3f})", flush=True)
    return refine


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/default")
    ap.add_argument("--data", default="runs/data/train-a.npz", help="prerendered training scenes (.npz)")
    ap.add_argument("--scenes", type=int, default=16000, help="training scenes used (each also flipped at random)")
    ap.add_argument("--heldout", default="runs/heldout", help="directory with scenes.jsonl + images (other seed)")
    ap.add_argument("--heldout-limit", type=int, default=None, help="score only the first N held-out scenes")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--mask-size", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--refine-hidden", type=int, default=128,
                    help="hidden size of the pixel refinement's controller (0: version-1 heads without it)")
    ap.add_argument("--refine-epochs", type=int, default=30)
    ap.add_argument("--procs", type=int, default=2, help="processes re-rendering training scenes for the refinement")
    ap.add_argument("--out", default=None, help="write heads here (default: --model)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, tok = load_model(args.model)
    data = train.Data([args.data], tok)
    G = data.grid
    assert args.mask_size == data.segs.shape[-1]
    H_enc = model.config.encoder.hidden_size
    L = model.config.decoder.n_layer - 1
    rng = np.random.default_rng(0)
    idx = rng.permutation(data.N)[:args.scenes]
    flip = rng.random(len(idx)) < 0.5
    X, B, S, meta = extract(model, data, idx, flip, log="features")
    print(f"features {tuple(X.shape)}", flush=True)
    nval = len(X) // 20
    Xtr, Btr, Str, Xva, Bva, Sva = X[nval:], B[nval:], S[nval:], X[:nval], B[:nval], S[:nval]
    heads = Heads(X.shape[1], args.hidden, args.mask_size)
    opt = torch.optim.AdamW(heads.parameters(), lr=2e-3, weight_decay=1e-4)
    steps_per_epoch = (len(Xtr) + 255) // 256
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=args.epochs * steps_per_epoch)
    for ep in range(args.epochs):
        perm = torch.randperm(len(Xtr))
        tot = 0
        for s in range(0, len(Xtr), 256):
            j = perm[s:s + 256]
            det, seg = heads(Xtr[j])
            pb = torch.sigmoid(det[:, :4])
            iou = box_iou_cxcywh(pb, Btr[j])
            lbox = F.l1_loss(pb, Btr[j]) * 5 + (1 - iou).mean()
            lscore = F.binary_cross_entropy_with_logits(det[:, 4], iou.detach())
            lseg = F.binary_cross_entropy_with_logits(seg, Str[j])
            tot += optimize(opt, sched, lbox + lscore + lseg) * len(j)
        if ep % 5 == 4 or ep == args.epochs - 1:
            with torch.no_grad():
                det, seg = heads(Xva)
                iou = box_iou_cxcywh(torch.sigmoid(det[:, :4]), Bva)
                pm, gm = seg > 0, Sva >= 0.5
                miou = ((pm & gm).sum(1) / (pm | gm).sum(1).clamp_min(1)).mean()
            print(f"epoch {ep + 1}: loss {tot / len(Xtr):.4f} val box IoU>=0.5 {(iou >= 0.5).float().mean():.3f} "
                  f"mean IoU {iou.mean():.3f} cell-mask IoU {miou:.3f}", flush=True)
    refine = None
    if args.refine_hidden > 0:
        refine = train_refine(args, heads, X, meta, nval)
    out = args.out or args.model
    from safetensors.torch import save_file
    sd = {k: v.detach().float().contiguous() for k, v in heads.state_dict().items()}
    if refine is not None:
        sd.update({"refine." + k: v.detach().float().contiguous() for k, v in refine.state_dict().items()})
    save_file(sd, os.path.join(out, "heads.safetensors"), metadata={"format": "glimpse-heads"})
    cfg = {"format": "glimpse-heads", "version": 1, "grid": [G, G], "encoder_hidden_size": H_enc,
           "attention_layer": L, "hidden_size": args.hidden, "mask_size": args.mask_size,
           "object_words": scenes.SHAPES, "attribute_words": scenes.COLOR_NAMES,
           "score": "sigmoid(det[4]): predicted IoU of the box with the true object box",
           "box": "sigmoid(det[0:4]) = (cx, cy, w, h), fractions of the image width/height"}
    if refine is not None:
        cfg.update(version=2, refine_hidden_size=args.refine_hidden, pixel_hidden_size=PIXEL_HIDDEN,
                   refine="per-pixel MLP over (r, g, b, u, v, coarse) around the box, weights from refine.fc2; "
                          "see tools/train_heads.py")
    with open(os.path.join(out, "heads.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    print(f"wrote {out}/heads.safetensors, heads.json", flush=True)
    if args.heldout and os.path.exists(os.path.join(args.heldout, "scenes.jsonl")):
        r = evaluate_heads(model, tok, heads, args.heldout, model.config.encoder.image_size, args.mask_size,
                           args.heldout_limit, refine)
        print("HELDOUT heads (teacher-forced on true captions):", json.dumps(r), flush=True)
        with open(os.path.join(out, "heads_eval.json"), "w") as f:
            json.dump(r, f, indent=2)


if __name__ == "__main__":
    main()
