#!/usr/bin/env python3
r"""Train Glimpse's default captioning model (ViT encoder + GPT-2 decoder) on the scene world.

Reproduce (from the repository root, with the pinned venv `.venv`; 2 CPU cores; about 2 hours in all:
rendering ~6 min, training 85 min, heads ~5 min, evaluation ~3 min):

    # 1. render training data (full canvas -> 112x112 PIL bilinear, uint8) and held-out sets
    python tools/scenes.py --seed 1000 --count 30000 --prerender runs/data/train-a.npz --size 112 --grid 14 --procs 2
    python tools/scenes.py --seed 2000 --count 600 --prerender runs/data/heldout.npz --size 112 --grid 14 --procs 1
    python tools/scenes.py --seed 2001 --count 600 --out runs/heldout-strict     # files + scenes.jsonl, strict spec
    # 2. tokenizer
    python tools/make_tokenizer.py --out runs/tokenizer
    # 3. train: two single-thread data-parallel processes (on a busy 2-core machine one 2-thread process
    #    was 5x slower); time-based cosine schedule; exports models/default at every improving evaluation
    OMP_NUM_THREADS=1 nice -n 10 torchrun --nproc_per_node 2 tools/train.py --threads 1 --bf16 \
        --minutes 85 --eval-minutes 7 --out runs/ckpt --export models/default > runs/train.log 2>&1
    #    (a single process works too: python tools/train.py --bf16 ...; --resume continues from runs/ckpt/last.pt)
    # 4. learned detection / segmentation heads on the frozen model (writes heads.* into the model dir)
    python tools/train_heads.py --model models/default --data runs/data/train-a.npz --scenes 6000 --epochs 60 \
        --heldout runs/heldout-strict
    # 5. evaluate (PyTorch directly, or a Swift CLI output JSONL), samples, model card
    python tools/eval.py --torch models/default --truth runs/heldout-strict/scenes.jsonl --json runs/eval-final.json
    python tools/eval.py --pred out.jsonl --truth runs/heldout-strict/scenes.jsonl
    python tools/make_samples.py --out samples --expected models/default
    python tools/model_card.py --model models/default --eval runs/eval-final.json \
        --heads-eval models/default/heads_eval.json

Long runs, resumable across sessions (the recipe of the run that continues models/default):

    python tools/scenes.py --seed 1100 --count 6000 --prerender /work/train-runs/data/train-1100.npz \
        --size 112 --grid 14 --procs 2 --variety             # then seeds 1101..1106, --procs 1
    python tools/scenes.py --seed 2000 --count 600 --prerender /work/train-runs/data/heldout.npz --size 112 --grid 14
    OMP_NUM_THREADS=1 nohup nice -n 19 python -u tools/train.py --threads 1 \
        --init models/default --tokenizer models/default --steps 12000 --warmup 300 --lr 3e-4 \
        --hard-weight 3 --minutes 600 --eval-minutes 12 --ckpt-minutes 5 \
        --data '/work/train-runs/data/train-*.npz' --heldout /work/train-runs/data/heldout.npz \
        --out /work/train-runs/next --export /work/train-runs/next/export \
        --compact /work/train-runs/next/compact > /work/train-runs/next.log 2>&1 &
    (`make train-next` now runs the 160 px continuation that made the shipped weights: --image-size 160
    --init models/default on data prerendered with --size 160 --grid 20, see MODEL_CARD.md; a model
    trained at another grid starts from its own positions resampled; on a machine shared with many builds one single-thread
    process beat two gloo-synchronized ones, which spent their CPU waiting for each other; and no --bf16:
    on the 2026-12-02 machine bf16 autocast ran a 48-image step in 80-87 s, float32 in 12.5 s. Measure
    one step both ways before a long run.)

  A later session resumes it, in this order of preference:
    * /work/train-runs/next/last.pt survived: the same command with --resume instead of --init;
    * else from the committed point: --resume-compact training/resume instead of --init (copy
      OUT/compact to training/resume and commit it at the end of a session); render the data files
      listed in training/resume/state.json first (same seeds and counts: the scenes are deterministic).

  * OUT/last.pt (full state: float32 weights, AdamW moments, step, history, arguments; written every
    --ckpt-minutes) resumes a run exactly: same command plus --resume. The data position is the step:
    batch k is drawn from numpy's generator seeded with (seed, k, rank), so a resumed run draws the same
    batches it would have drawn (given the same data files, which --data lists in the state).
  * --compact DIR (committed in the repository, a few MB: weights.safetensors in float16 and state.json
    with step, schedule, data recipe and the held-out curve) is the cross-session resume point when OUT
    did not survive: rerun the command with --resume-compact DIR instead of --init; the AdamW moments are
    not stored (they would triple the size), so the learning rate re-warms over --rewarm steps.
  * The schedule is by step when --steps is given (warmup, cosine to --min-lr-frac over --steps), so it is
    the same however many sessions the run takes; --minutes then only limits one session's wall clock.

Model: VisionEncoderDecoderModel, ViT (112 px, patch 8 -> 14x14 grid, hidden 192) + GPT-2 decoder
(hidden 192, 3 layers, 4 heads, n_positions 32, cross-attention), trained from scratch with AdamW,
warmup then cosine decay over a wall-clock budget (--minutes), horizontal-flip augmentation (caption
rewritten: left/right relations swapped, 3-object lists reversed; --augment dihedral: any of the
square's eight symmetries, captions re-derived by the spec), and an auxiliary loss that pulls
the last decoder layer's cross-attention (mean over heads, patches only) at the step that emits an
object's shape word toward that object's mask pooled to the patch grid.
"""
import argparse
import functools
import glob
import json
import math
import os
import re
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenes  # noqa: E402

EOT_ID = 0
MAXLEN = 16


# ----------------------------------------------------------------------------- model

def build_model(args, vocab_size):
    from transformers import ViTConfig, GPT2Config, VisionEncoderDecoderConfig, VisionEncoderDecoderModel
    enc = ViTConfig(image_size=args.image_size, patch_size=args.patch, hidden_size=args.hidden,
                    num_hidden_layers=args.enc_layers, num_attention_heads=args.heads,
                    intermediate_size=args.enc_inter, hidden_act="gelu", hidden_dropout_prob=0.0,
                    attention_probs_dropout_prob=0.0, qkv_bias=True, layer_norm_eps=1e-12)
    dec = GPT2Config(vocab_size=vocab_size, n_positions=32, n_embd=args.hidden, n_layer=args.dec_layers,
                     n_head=args.heads, activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0,
                     attn_pdrop=0.0, add_cross_attention=True, is_decoder=True,
                     bos_token_id=EOT_ID, eos_token_id=EOT_ID, pad_token_id=EOT_ID)
    cfg = VisionEncoderDecoderConfig.from_encoder_decoder_configs(enc, dec)
    cfg.decoder_start_token_id = EOT_ID
    cfg.pad_token_id = EOT_ID
    cfg.bos_token_id = EOT_ID
    cfg.eos_token_id = EOT_ID
    cfg.tie_word_embeddings = True
    model = VisionEncoderDecoderModel(config=cfg)
    set_eager_decoder(model)
    return model


def set_eager_decoder(model):
    model.decoder.config._attn_implementation = "eager"
    model.config.decoder._attn_implementation = "eager"


def forward(model, pixel_values, dec_in, dec_mask, need_attn=True):
    enc = model.encoder(pixel_values=pixel_values).last_hidden_state
    out = model.decoder(input_ids=dec_in, attention_mask=dec_mask, encoder_hidden_states=enc,
                        output_attentions=need_attn, use_cache=False)
    return enc, out


# ----------------------------------------------------------------------------- data

class Data:
    def __init__(self, paths, tok):
        self.tok = tok
        self.shape_ids = {tok.convert_tokens_to_ids("Ġ" + s) for s in scenes.SHAPES}
        parts = [np.load(p) for p in paths]
        self.images = np.concatenate([p["images"] for p in parts])
        self.nobj = np.concatenate([p["nobj"] for p in parts])
        self.attrs = np.concatenate([p["attrs"] for p in parts])
        self.boxes = np.concatenate([p["boxes"] for p in parts])
        self.grids = np.concatenate([p["grids"] for p in parts]).astype(np.float32)
        self.segs = np.concatenate([p["segs"] for p in parts])
        self.captions = [str(c) for p in parts for c in p["captions"]]
        self.paths = list(paths)
        self.N = len(self.captions)
        self.grid = self.grids.shape[-1]
        # token sequences and shape-word positions of the stored captions; those of transformed
        # scenes (see transformed_caption) are made when first drawn
        self.seq = [self._encode(c) for c in self.captions]
        self._tseq = {}

    def transformed(self, i, code):
        """((token ids, shape-word positions), object order) of scene i under transform `code`."""
        if not code:
            return self.seq[i], list(range(self.nobj[i]))
        key = (i, code)
        if key not in self._tseq:
            cap, order = transformed_caption(self, i, code)
            self._tseq[key] = (self._encode(cap), order)
        return self._tseq[key]

    def sample_probs(self, above_weight, hard_weight=1.0, far=0.0):
        key = (above_weight, hard_weight, far)
        if getattr(self, "_probs_for", None) != key:
            w = np.array([above_weight if " above " in c else 1.0 for c in self.captions])
            w = w * np.where(self.hard(far=far), hard_weight, 1.0)
            self._probs, self._probs_for = w / w.sum(), key
        return self._probs

    def hard(self, diagonal=0.12, close_x=0.1, far=0.0):
        """Scenes whose caption hinges on a fine geometric decision (the remaining errors): 2 objects
        with | |dx| - |dy| | < `diagonal` (canvas fractions), or, when `far` > 0, both |dx| and |dy|
        above `far` (far apart on a diagonal: 'above' read as 'to the left of'), or 3 objects with two
        box centers closer than `close_x` in x."""
        cx = self.boxes[:, :, 0] + self.boxes[:, :, 2] / 2
        cy = self.boxes[:, :, 1] + self.boxes[:, :, 3] / 2
        adx, ady = np.abs(cx[:, 0] - cx[:, 1]), np.abs(cy[:, 0] - cy[:, 1])
        two = (self.nobj == 2) & ((np.abs(adx - ady) < diagonal) | ((far > 0) & (np.minimum(adx, ady) > far)))
        xs = np.sort(cx, axis=1)
        three = (self.nobj == 3) & (np.minimum(xs[:, 1] - xs[:, 0], xs[:, 2] - xs[:, 1]) < close_x)
        return two | three

    def _encode(self, cap):
        ids = self.tok(cap, add_special_tokens=False)["input_ids"]
        pos = [j for j, t in enumerate(ids) if t in self.shape_ids]
        return ids, pos

    def batch(self, idx, transform=None):
        """Tensors for scenes idx; transform[r] is scene r's TRANSFORM code (0 or None: as stored)."""
        B = len(idx)
        G = self.grid
        imgs = self.images[idx]
        dec_in = np.full((B, MAXLEN), EOT_ID, np.int64)
        labels = np.full((B, MAXLEN), -100, np.int64)
        mask = np.zeros((B, MAXLEN), np.int64)
        obj_b, obj_pos, obj_grid = [], [], []
        imgs = imgs.copy()
        for r, i in enumerate(idx):
            code = int(transform[r]) if transform is not None else 0
            (ids, pos), order = self.transformed(i, code)
            imgs[r] = transform_grid(imgs[r], code)
            n = len(ids)
            dec_in[r, 1:n + 1] = ids
            labels[r, :n] = ids
            labels[r, n] = EOT_ID
            mask[r, :n + 1] = 1
            for k, p in zip(order, pos):
                g = transform_grid(self.grids[i, k], code)
                obj_b.append(r)
                obj_pos.append(p)
                obj_grid.append(g.reshape(-1))
        px = torch.from_numpy(imgs).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
        return (px, torch.from_numpy(dec_in), torch.from_numpy(mask), torch.from_numpy(labels),
                torch.tensor(obj_b), torch.tensor(obj_pos), torch.from_numpy(np.stack(obj_grid)))


# Transforms of the square training image that keep every caption derivable: bit 0 mirrors left-right,
# bit 1 mirrors top-bottom, bit 2 transposes (applied first). Codes 0-7 are the eight symmetries of the
# square; 0 and 1 alone are the horizontal-flip augmentation of the shipped recipe.
HFLIP, VFLIP, TRANSPOSE = 1, 2, 4


def transform_grid(a, code):
    """An [H, W, ...] image or [G, G] grid under transform `code`."""
    if code & TRANSPOSE:
        a = a.swapaxes(0, 1)
    if code & HFLIP:
        a = a[:, ::-1]
    if code & VFLIP:
        a = a[::-1]
    return a


def transformed_caption(d, i, code):
    """Caption of scene i under transform `code`, derived by the spec's rules (docs/scene-world.md) from
    the transformed box centers; returns (caption, order), order listing the stored object indices in
    the caption's order."""
    n = int(d.nobj[i])
    objs = []
    for k in range(n):
        x, y, w, h = (float(v) for v in d.boxes[i, k])
        cx, cy = x + w / 2.0, y + h / 2.0
        if code & TRANSPOSE:
            cx, cy = cy, cx
        if code & HFLIP:
            cx = 1.0 - cx
        if code & VFLIP:
            cy = 1.0 - cy
        s, c, z = d.attrs[i, k]
        objs.append(dict(k=k, shape=scenes.SHAPES[s], color=scenes.COLOR_NAMES[c], size=scenes.SIZES[z],
                         cx=cx, cy=cy))
    if n == 1:
        return d.captions[i], [0]
    if n == 2:
        a, b = objs
        rel = "left" if " to the left of " in d.captions[i] else "above"  # mirrors keep |dx| and |dy|
        if code & TRANSPOSE:  # swaps |dx| and |dy|: the relation turns, except on a tie (left)
            tie = abs(abs(a["cx"] - b["cx"]) - abs(a["cy"] - b["cy"])) < 1e-6
            rel = "left" if tie or rel == "above" else "above"
        key = "cx" if rel == "left" else "cy"
        order = [a, b] if a[key] <= b[key] else [b, a]
        return scenes.make_caption(order, rel), [o["k"] for o in order]
    # left to right; centers equal in x (to the float32 noise of the stored fractions): upper first
    order = sorted(objs, key=functools.cmp_to_key(
        lambda p, q: (p["cy"] > q["cy"]) - (p["cy"] < q["cy"]) if abs(p["cx"] - q["cx"]) < 1e-6
        else (p["cx"] > q["cx"]) - (p["cx"] < q["cx"])))
    return scenes.make_caption(order, None), [o["k"] for o in order]


# ----------------------------------------------------------------------------- evaluation

PHRASE = r"a (small|large) (red|green|blue|yellow|purple|orange|black) (circle|square|triangle|star|hexagon)"


def parse_caption(c):
    m = re.fullmatch(PHRASE, c)
    if m:
        return [m.groups()], None
    m = re.fullmatch(PHRASE + " (to the left of|above) " + PHRASE, c)
    if m:
        g = m.groups()
        return [g[0:3], g[4:7]], ("left" if g[3] == "to the left of" else "above")
    m = re.fullmatch(PHRASE + ", " + PHRASE + " and " + PHRASE, c)
    if m:
        g = m.groups()
        return [g[0:3], g[3:6], g[6:9]], None
    return None, None


def error_types(pred, truth):
    """Set of error kinds for a wrong caption: syntax, count, order, relation, shape, color, size."""
    if pred == truth:
        return set()
    po, pr = parse_caption(pred)
    to, tr = parse_caption(truth)
    if po is None:
        return {"syntax"}
    if len(po) != len(to):
        return {"count"}
    errs = set()
    if pr != tr:
        errs.add("relation")
    if sorted(po) == sorted(to) and po != to:
        errs.add("order")
        return errs
    for a, b in zip(po, to):
        if a[0] != b[0]:
            errs.add("size")
        if a[1] != b[1]:
            errs.add("color")
        if a[2] != b[2]:
            errs.add("shape")
    if not errs:
        errs.add("other")
    return errs


@torch.no_grad()
def greedy_captions(model, tok, px, bs=100, maxlen=MAXLEN):
    model.eval()
    caps = []
    for s in range(0, px.shape[0], bs):
        out = model.generate(pixel_values=px[s:s + bs], num_beams=1, do_sample=False, max_new_tokens=maxlen,
                             decoder_start_token_id=EOT_ID, eos_token_id=EOT_ID, pad_token_id=EOT_ID)
        caps += [tok.decode([t for t in seq.tolist()[1:] if t != EOT_ID]).strip() for seq in out]
    model.train()
    return caps


def evaluate(model, tok, held, count=None):
    count = count or held.N
    px = torch.from_numpy(held.images[:count]).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
    caps = greedy_captions(model, tok, px)
    by_n = {1: [0, 0], 2: [0, 0], 3: [0, 0]}
    errs = {}
    for c, t, n in zip(caps, held.captions, held.nobj):
        ok = c == t
        by_n[int(n)][0] += ok
        by_n[int(n)][1] += 1
        for e in error_types(c, t):
            errs[e] = errs.get(e, 0) + 1
    em = sum(v[0] for v in by_n.values()) / max(1, sum(v[1] for v in by_n.values()))
    return em, {k: v[0] / max(v[1], 1) for k, v in by_n.items()}, errs, caps


# ----------------------------------------------------------------------------- export

def export(model, tok, args, out, extra=None):
    from transformers import GenerationConfig
    os.makedirs(out, exist_ok=True)
    tmp = out.rstrip("/") + ".tmp"
    os.makedirs(tmp, exist_ok=True)
    model.save_pretrained(tmp, safe_serialization=True)
    for f in ("config.json", "model.safetensors"):
        os.replace(os.path.join(tmp, f), os.path.join(out, f))
    for f in os.listdir(tmp):
        os.remove(os.path.join(tmp, f))
    os.rmdir(tmp)
    tok.save_pretrained(out)
    tdir = args.tokenizer
    for f in ("vocab.json", "merges.txt"):
        with open(os.path.join(tdir, f), "rb") as src, open(os.path.join(out, f), "wb") as dst:
            dst.write(src.read())
    pre = {"do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": [0.5, 0.5, 0.5],
           "image_processor_type": "ViTImageProcessor", "image_std": [0.5, 0.5, 0.5], "resample": 2,
           "rescale_factor": 1 / 255, "size": {"height": args.image_size, "width": args.image_size}}
    with open(os.path.join(out, "preprocessor_config.json"), "w") as f:
        json.dump(pre, f, indent=2)
    gen = GenerationConfig(decoder_start_token_id=EOT_ID, bos_token_id=EOT_ID, eos_token_id=EOT_ID,
                           pad_token_id=EOT_ID, num_beams=3, max_new_tokens=30)
    gen.save_pretrained(out)
    if extra:
        with open(os.path.join(out, "training_state.json"), "w") as f:
            json.dump(extra, f, indent=2)


# ----------------------------------------------------------------------------- resume points

def load_weights(model, path):
    """Weights from an exported model directory (model.safetensors) or a --compact directory
    (weights.safetensors, float16), cast to the model's float32."""
    from safetensors.torch import load_file
    f = os.path.join(path, "weights.safetensors")
    if os.path.exists(f):
        sd = {k: v.float() for k, v in load_file(f).items()}
    else:  # an exported model: from_pretrained maps checkpoint names to this transformers' module names
        from transformers import VisionEncoderDecoderModel
        f = os.path.join(path, "model.safetensors")
        sd = VisionEncoderDecoderModel.from_pretrained(path).state_dict()
    key = "encoder.embeddings.position_embeddings"
    if key in sd and sd[key].shape != model.state_dict()[key].shape:
        sd[key] = resize_position_embeddings(sd[key], model.state_dict()[key].shape[1] - 1)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    # tied lm_head / legacy attention buffers are the only keys allowed to differ
    bad = [k for k in missing if "lm_head" not in k and not k.endswith(".attn.bias")]
    if bad:
        raise SystemExit(f"{f}: missing tensors {bad[:5]}")


def resize_position_embeddings(pos, patches):
    """A ViT's learned positions for another patch grid: the [CLS] row kept, the grid rows resampled
    bicubically (what transformers' interpolate_pos_encoding does at run time), so a model trained at
    one resolution starts a finer-grid run from its own positions."""
    import torch.nn.functional as F
    cls, grid = pos[:, :1], pos[:, 1:]
    old, new = int(round(grid.shape[1] ** 0.5)), int(round(patches ** 0.5))
    if old * old != grid.shape[1] or new * new != patches:
        raise SystemExit(f"position embeddings: {grid.shape[1]} -> {patches} patches is not square to square")
    g = grid.reshape(1, old, old, -1).permute(0, 3, 1, 2)
    g = F.interpolate(g, size=(new, new), mode="bicubic", align_corners=False)
    print(f"position embeddings resampled {old}x{old} -> {new}x{new}", flush=True)
    return torch.cat([cls, g.permute(0, 2, 3, 1).reshape(1, new * new, -1)], dim=1)


def save_compact(model, out, state):
    """The small cross-session resume point: float16 weights (every tensor is small in magnitude, well
    inside float16's range) and a JSON of the schedule, data recipe and curve."""
    from safetensors.torch import save_file
    os.makedirs(out, exist_ok=True)
    sd = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()
          if "lm_head" not in k}  # tied to wte
    save_file(sd, os.path.join(out, "weights.safetensors.tmp"), metadata={"format": "glimpse-train-resume"})
    os.replace(os.path.join(out, "weights.safetensors.tmp"), os.path.join(out, "weights.safetensors"))
    with open(os.path.join(out, "state.json.tmp"), "w") as f:
        json.dump(state, f, indent=1)
    os.replace(os.path.join(out, "state.json.tmp"), os.path.join(out, "state.json"))


def learning_rate(args, step, frac, base_step=0):
    """Warmup then cosine to min_lr_frac; by step with --steps, else by wall-clock fraction `frac`.
    After a compact resume at base_step, the rate re-warms over --rewarm steps."""
    if args.steps:
        frac = min(step / args.steps, 1.0)
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    lr = args.lr * (args.min_lr_frac + (1 - args.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * frac)))
    if base_step and step - base_step < args.rewarm:
        lr *= (step - base_step + 1) / args.rewarm
    return lr


# ----------------------------------------------------------------------------- main

def save_state(args, model, opt, step, elapsed, best, history, base_step, data):
    """OUT/last.pt (exact resume) and, with --compact, the small committed resume point."""
    state = dict(model=model.state_dict(), opt=opt.state_dict(), step=step, elapsed=elapsed, best=best,
                 history=history, args=vars(args), base_step=base_step, data=data.paths)
    torch.save(state, os.path.join(args.out, "last.pt.tmp"))
    os.replace(os.path.join(args.out, "last.pt.tmp"), os.path.join(args.out, "last.pt"))
    if args.compact:
        save_compact(model, args.compact, dict(
            step=step, elapsed=round(elapsed, 1), steps=args.steps, schedule=dict(
                lr=args.lr, warmup=args.warmup, min_lr_frac=args.min_lr_frac, rewarm=args.rewarm,
                lr_now=learning_rate(args, step, 0.0, base_step)),
            data=[os.path.basename(p) for p in data.paths], train_scenes=data.N, args=vars(args),
            history=history))
    with open(os.path.join(args.out, "history.json"), "w") as f:
        json.dump(history, f, indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="runs/data/train-*.npz", help="glob of prerendered training .npz files; "
                    "files matching it that appear during training are loaded at the next evaluation")
    ap.add_argument("--heldout", default="runs/data/heldout.npz", help="prerendered held-out set (other seed)")
    ap.add_argument("--tokenizer", default="runs/tokenizer", help="directory written by make_tokenizer.py")
    ap.add_argument("--out", default="runs/ckpt", help="checkpoint directory (last.pt, best/)")
    ap.add_argument("--export", default="models/default", help="export the best model here at each evaluation")
    ap.add_argument("--minutes", type=float, default=95, help="wall-clock budget (evaluations included); the "
                    "cosine schedule runs over it")
    ap.add_argument("--eval-minutes", type=float, default=6, help="evaluate / checkpoint / export this often")
    ap.add_argument("--eval-count", type=int, default=300, help="held-out scenes scored at interim evaluations "
                    "(all of them at the end)")
    ap.add_argument("--image-size", type=int, default=112)
    ap.add_argument("--patch", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=192)
    ap.add_argument("--enc-layers", type=int, default=4)
    ap.add_argument("--enc-inter", type=int, default=384)
    ap.add_argument("--dec-layers", type=int, default=3)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--batch", type=int, default=48)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--min-lr-frac", type=float, default=0.03)
    ap.add_argument("--warmup", type=int, default=300, help="warmup steps")
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--oversample-above", type=float, default=1.0, help="sampling weight of 2-object 'above' "
                    "scenes (the first object must be the upper one; the hardest decision to learn)")
    ap.add_argument("--augment", choices=["hflip", "dihedral"], default="hflip",
                    help="hflip: mirror half the scenes left-right; dihedral: any of the square's eight "
                    "symmetries (transposes turn 'above' into 'to the left of', so both relations and "
                    "the 3-object order see the same geometry); captions are re-derived by the spec")
    ap.add_argument("--attn-weight", type=float, default=0.3, help="weight of the cross-attention loss")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process (1: see --help top)")
    ap.add_argument("--bf16", action="store_true", help="bfloat16 autocast for the forward pass (AMX CPUs); "
                    "weights, optimizer and the exported checkpoint stay float32")
    ap.add_argument("--hard-weight", type=float, default=1.0, help="sampling weight of scenes whose caption "
                    "hinges on a fine decision (near-diagonal 2-object pairs, 3 objects close in x; Data.hard)")
    ap.add_argument("--hard-far", type=float, default=0.0, help="with --hard-weight: also 2-object scenes whose "
                    "centers differ by more than this (canvas fractions) in both x and y (0: off)")
    ap.add_argument("--steps", type=int, default=0, help="total optimizer steps: the schedule is by step "
                    "(survives sessions); training stops there or at --minutes, whichever comes first")
    ap.add_argument("--init", help="start from these weights (an exported model directory)")
    ap.add_argument("--resume-compact", help="start from a --compact directory: its weights and step, "
                    "fresh AdamW moments, learning rate re-warmed over --rewarm steps")
    ap.add_argument("--rewarm", type=int, default=100)
    ap.add_argument("--compact", help="also write the small resume point (float16 weights + state.json) "
                    "here at every checkpoint; commit it to resume in a later session")
    ap.add_argument("--ckpt-minutes", type=float, default=5, help="write OUT/last.pt (and --compact) this often")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resume", action="store_true", help="continue from OUT/last.pt (elapsed time included)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    # data parallel over single-threaded processes (torchrun --nproc_per_node N): on a busy 2-core
    # machine two 1-thread processes beat one 2-thread process by far (no OpenMP barrier stalls)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        import torch.distributed as dist
        dist.init_process_group("gloo")
    main_proc = rank == 0
    log = print if main_proc else (lambda *a, **k: None)
    from transformers import GPT2TokenizerFast
    tok = GPT2TokenizerFast.from_pretrained(args.tokenizer)
    paths = sorted(p for p in glob.glob(args.data) if not p.endswith(".tmp.npz"))
    data = Data(paths, tok)
    held = Data([args.heldout], tok) if main_proc else None
    log(f"data: {data.N} scenes from {paths}; held-out {held.N if held else 0}", flush=True)
    model = build_model(args, len(tok))
    nparam = sum(p.numel() for p in model.parameters())
    log(f"model: {nparam / 1e6:.2f}M parameters", flush=True)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embeddings" not in n and "wte" not in n
             and "wpe" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "embeddings" not in n
                                                                and "wte" not in n and "wpe" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.98))
    os.makedirs(args.out, exist_ok=True)
    step, elapsed0, best, history, base_step = 0, 0.0, -1.0, [], 0
    if args.init:
        load_weights(model, args.init)
        log(f"initialized from {args.init}", flush=True)
    if args.resume_compact and not (args.resume and os.path.exists(os.path.join(args.out, "last.pt"))):
        load_weights(model, args.resume_compact)
        with open(os.path.join(args.resume_compact, "state.json")) as f:
            cst = json.load(f)
        step = base_step = cst["step"]
        elapsed0, history = cst.get("elapsed", 0.0), cst.get("history", [])
        best = max([h["exact_match"] for h in history], default=-1.0)
        log(f"resumed from compact {args.resume_compact} at step {step}", flush=True)
    if args.resume and os.path.exists(os.path.join(args.out, "last.pt")):
        st = torch.load(os.path.join(args.out, "last.pt"), weights_only=False)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step, elapsed0, best, history = st["step"], st["elapsed"], st["best"], st["history"]
        base_step = st.get("base_step", 0)
        log(f"resumed at step {step}, {elapsed0 / 60:.1f} min", flush=True)
    budget = args.minutes * 60
    bsz = args.batch // world
    t0 = time.time() - elapsed0
    session_t0 = time.time()
    last_eval = last_ckpt = time.time()
    run_loss = run_attn = run_n = 0
    tput_t, tput_n = time.time(), 0
    model.train()
    while True:
        elapsed = time.time() - t0
        frac = min(elapsed / budget, 1.0)
        lr = learning_rate(args, step, frac, base_step)
        if args.steps:  # the step count ends the run; --minutes bounds this session
            done = step >= args.steps or time.time() - session_t0 >= budget
        else:
            done = elapsed >= budget
        do_eval = done or time.time() - last_eval >= args.eval_minutes * 60 or (step + 1 == 200 and not args.init
                                                                                and not base_step)
        do_ckpt = do_eval or time.time() - last_ckpt >= args.ckpt_minutes * 60
        if world > 1:  # rank 0's clock decides for everyone
            ctrl = torch.tensor([lr, float(done), float(do_eval), elapsed, float(do_ckpt)], dtype=torch.float64)
            dist.broadcast(ctrl, 0)
            lr, done, do_eval, elapsed = float(ctrl[0]), bool(ctrl[1]), bool(ctrl[2]), float(ctrl[3])
            do_ckpt = bool(ctrl[4])
        if do_ckpt and main_proc and not do_eval:
            save_state(args, model, opt, step, elapsed, best, history, base_step, data)
            last_ckpt = time.time()
        for g in opt.param_groups:
            g["lr"] = lr
        rng = np.random.default_rng([args.seed, step, rank])  # the data position is the step
        if args.oversample_above != 1.0 or args.hard_weight != 1.0:
            idx = rng.choice(data.N, bsz, p=data.sample_probs(args.oversample_above, args.hard_weight, args.hard_far))
        else:
            idx = rng.integers(0, data.N, bsz)
        if args.augment == "dihedral":
            transform = rng.integers(0, 8, bsz)
        else:
            transform = (rng.random(bsz) < 0.5).astype(np.int64)
        px, dec_in, dmask, labels, ob, op, og = data.batch(idx, transform)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            enc, out = forward(model, px, dec_in, dmask, need_attn=args.attn_weight > 0)
        logits = out.logits.float()
        ce = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                               ignore_index=-100)
        loss = ce
        if args.attn_weight > 0:
            ca = out.cross_attentions[-1].float().mean(1)[:, :, 1:]  # [B, T, G*G]
            a = ca[ob, op]
            a = a / a.sum(-1, keepdim=True).clamp_min(1e-8)
            tgt = og / og.sum(-1, keepdim=True).clamp_min(1e-8)
            attn_loss = -(tgt * torch.log(a + 1e-8)).sum(-1).mean()
            loss = loss + args.attn_weight * attn_loss
            run_attn += attn_loss.item()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if world > 1:
            ps = [p for p in model.parameters() if p.grad is not None]
            flat = torch.cat([p.grad.reshape(-1) for p in ps])
            dist.all_reduce(flat)
            flat /= world
            o = 0
            for p in ps:
                n = p.numel()
                p.grad.copy_(flat[o:o + n].view_as(p.grad))
                o += n
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        run_loss += ce.item()
        run_n += 1
        tput_n += bsz * world
        if step % 50 == 0 and main_proc:
            dt = time.time() - tput_t
            print(f"step {step} t={elapsed / 60:.1f}m lr={lr:.2e} ce={run_loss / run_n:.4f} "
                  f"attn={run_attn / run_n:.3f} {tput_n / dt:.1f} img/s", flush=True)
            run_loss = run_attn = run_n = 0
            tput_t, tput_n = time.time(), 0
        if do_eval and not main_proc:
            new = sorted(p for p in set(glob.glob(args.data)) - set(data.paths) if not p.endswith(".tmp.npz"))
            if new:
                try:
                    data = Data(data.paths + new, tok)
                except Exception:
                    pass
            if done:
                break
        if do_eval and main_proc:
            te = time.time()
            em, by_n, errs, caps = evaluate(model, tok, held, None if done else args.eval_count)
            history.append(dict(step=step, minutes=round(elapsed / 60, 1), exact_match=round(em, 4),
                                by_objects={str(k): round(v, 4) for k, v in by_n.items()}, errors=errs))
            print(f"EVAL step {step} t={elapsed / 60:.1f}m exact={em * 100:.1f}% by_n="
                  f"{ {k: round(v * 100, 1) for k, v in by_n.items()} } errors={errs} ({time.time() - te:.0f}s)",
                  flush=True)
            for c, t in list(zip(caps, held.captions))[:0]:
                print("   ", c, "|", t)
            prev_best = best
            save_state(args, model, opt, step, elapsed, max(best, em), history, base_step, data)
            last_ckpt = time.time()
            if em >= prev_best or done:  # the end of the schedule is always exported
                best = max(em, best)
                extra = dict(step=step, minutes=round(elapsed / 60, 1), exact_match_greedy=em, history=history,
                             args=vars(args), train_scenes=data.N, data=data.paths)
                export(model, tok, args, os.path.join(args.out, "best"), extra)
                if args.export:
                    export(model, tok, args, args.export, extra)
                print(f"exported (best {em * 100:.1f}%)", flush=True)
            with open(os.path.join(args.out, "history.json"), "w") as f:
                json.dump(history, f, indent=1)
            # pick up newly rendered data
            new = sorted(p for p in set(glob.glob(args.data)) - set(data.paths) if not p.endswith(".tmp.npz"))
            if new:
                try:
                    data = Data(data.paths + new, tok)
                    print(f"data: now {data.N} scenes from {data.paths}", flush=True)
                except Exception as e:  # half-written file: try next time
                    print(f"could not load {new}: {e}", flush=True)
            last_eval = time.time()
            if done:
                break
    log("done", flush=True)
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
