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
    X, boxes, segs = [], [], []
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
        if log and (s // bs) % 50 == 0:
            print(f"{log}: {s + len(idx)}/{len(idx_all)} ({time.time() - t:.0f}s)", flush=True)
    return torch.cat(X), torch.tensor(np.array(boxes), dtype=torch.float32), \
        torch.tensor(np.array(segs), dtype=torch.float32)


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


def evaluate_heads(model, tok, heads, heldout_dir, size, m, limit=None):
    """Teacher-forced on the true captions of the held-out scenes: box IoU>=0.5 rate, mean box IoU,
    mask IoU (mean over objects), by object size."""
    from PIL import Image
    rows = [json.loads(l) for l in open(os.path.join(heldout_dir, "scenes.jsonl"))][:limit]
    shape_ids = {tok.convert_tokens_to_ids("Ġ" + s) for s in scenes.SHAPES}
    res = {"box_iou": [], "mask_iou": [], "size": []}
    for s in range(0, len(rows), 50):
        chunk = rows[s:s + 50]
        imgs, dec_in, dmask, ob, op = [], [], [], [], []
        for r, row in enumerate(chunk):
            im = Image.open(os.path.join(heldout_dir, row["file"])).convert("RGB").resize((size, size), Image.BILINEAR)
            imgs.append(np.asarray(im))
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
        box = torch.sigmoid(det[:, :4])
        n = 0
        for r, row in enumerate(chunk):
            W, H = row["width"], row["height"]
            for o in row["objects"]:
                pb = pixel_box(box[n], W, H)
                res["box_iou"].append(iou_px(pb, o["box"]))
                pm = mask_from_logits(seg[n], pb, W, H, m)
                gm = scenes.rle_decode(o["mask"])
                res["mask_iou"].append((pm & gm).sum() / max(1, (pm | gm).sum()))
                res["size"].append(o["size"])
                n += 1
    bi = np.array(res["box_iou"])
    mi = np.array(res["mask_iou"])
    sz = np.array(res["size"])
    out = {"objects": int(len(bi)), "box_iou_ge_0.5": float((bi >= 0.5).mean()), "box_iou_mean": float(bi.mean()),
           "mask_iou_mean": float(mi.mean())}
    for z in ("small", "large"):
        sel = sz == z
        out[f"{z}_box_iou_ge_0.5"] = float((bi[sel] >= 0.5).mean())
        out[f"{z}_mask_iou_mean"] = float(mi[sel].mean())
    return out


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
    X, B, S = extract(model, data, idx, flip, log="features")
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
            loss = lbox + lscore + lseg
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot += loss.item() * len(j)
        if ep % 5 == 4 or ep == args.epochs - 1:
            with torch.no_grad():
                det, seg = heads(Xva)
                iou = box_iou_cxcywh(torch.sigmoid(det[:, :4]), Bva)
                pm, gm = seg > 0, Sva >= 0.5
                miou = ((pm & gm).sum(1) / (pm | gm).sum(1).clamp_min(1)).mean()
            print(f"epoch {ep + 1}: loss {tot / len(Xtr):.4f} val box IoU>=0.5 {(iou >= 0.5).float().mean():.3f} "
                  f"mean IoU {iou.mean():.3f} cell-mask IoU {miou:.3f}", flush=True)
    out = args.out or args.model
    from safetensors.torch import save_file
    sd = {k: v.detach().float().contiguous() for k, v in heads.state_dict().items()}
    save_file(sd, os.path.join(out, "heads.safetensors"), metadata={"format": "glimpse-heads"})
    cfg = {"format": "glimpse-heads", "version": 1, "grid": [G, G], "encoder_hidden_size": H_enc,
           "attention_layer": L, "hidden_size": args.hidden, "mask_size": args.mask_size,
           "object_words": scenes.SHAPES, "attribute_words": scenes.COLOR_NAMES,
           "score": "sigmoid(det[4]): predicted IoU of the box with the true object box",
           "box": "sigmoid(det[0:4]) = (cx, cy, w, h), fractions of the image width/height"}
    with open(os.path.join(out, "heads.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    print(f"wrote {out}/heads.safetensors, heads.json", flush=True)
    if args.heldout and os.path.exists(os.path.join(args.heldout, "scenes.jsonl")):
        r = evaluate_heads(model, tok, heads, args.heldout, model.config.encoder.image_size, args.mask_size,
                           args.heldout_limit)
        print("HELDOUT heads (teacher-forced on true captions):", json.dumps(r), flush=True)
        with open(os.path.join(out, "heads_eval.json"), "w") as f:
            json.dump(r, f, indent=2)


if __name__ == "__main__":
    main()
