#!/usr/bin/env python3
"""Scene generator for Glimpse's default model (spec: docs/scene-world.md).

Deterministic by seed: scene i of seed S is always the same (numpy
SeedSequence([S, i])), whatever --count or the number of processes.

    python tools/scenes.py --seed S --count N --out DIR
        writes DIR/scene-00000.png|jpg ... and DIR/scenes.jsonl, one line per scene:
        {"file", "width", "height", "caption", "background", "jpeg_quality",
         "objects": [{"shape", "color", "size", "rgb", "box": [x,y,w,h],
                      "mask": {"size": [h, w], "counts": [...]},   # COCO RLE, column-major, uncompressed
                      "word_index", "char_span"}]}
        objects are listed in caption order; word_index is the index of the shape
        word in caption.split(" ") and char_span its [start, end) in the caption.

        and the same scenes as COCO files any COCO tool reads (`glimpse eval` among them):
        DIR/captions.json   {"images": [{"id", "file_name", "width", "height"}], "annotations":
                             [{"id", "image_id", "caption"}]}              (one caption per image)
        DIR/instances.json  {"images", "categories": [{"id", "name": "{color} {shape}",
                             "supercategory": "{shape}"}] (35, ids 1..35 by shape then color),
                             "annotations": [{"id", "image_id", "category_id", "bbox": [x,y,w,h],
                             "area" (mask pixels), "segmentation": COCO RLE with compressed counts,
                             "iscrowd": 0}]}
        image ids are the scene index + 1.

    python tools/scenes.py --seed S --count N --prerender OUT.npz --size 112 --grid 14 --procs 2
        renders without writing image files and stores what training needs: the
        full canvas resized to SIZExSIZE with PIL BILINEAR (what ViTImageProcessor
        does), captions and per-object attributes, boxes (fractions), masks pooled
        to the GRIDxGRID patch grid and masks cropped to their box at 16x16.

--strict (default: on for --out, off for --prerender) keeps every rotation inside the spec. Off, 15% of
triangles are drawn at any angle: training variety that never changes a caption. Other variety that is
always on and within the spec: triangle height/base 0.8-1.05, star inner radius 0.36-0.52, hexagons at
any angle (flat-top and pointy-top +-15 degrees cover every angle), 15% of scenes without anti-aliasing.

--variety (what a second, independently written renderer may do differently, none of it
changing a caption): 30% of canvases at the edges of the spec (shorter side 96-128 or longer side
560-640, aspect exactly 3:4, 4:3 or 1), another 20% of scenes without anti-aliasing, striped, checkered
or dotted light textures, JPEG at quality 25-95 with 4:2:0 or 4:4:4 chroma on half of the PNG scenes.
It draws from its own random stream (SeedSequence([S, i, 1])), so strict scenes (--out, the samples and
every evaluation set) are the same without it; with --out it writes a variety evaluation set.
"""
import argparse
import json
import math
import os
import sys

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ["circle", "square", "triangle", "star", "hexagon"]
COLORS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 200, 30),
    "purple": (140, 60, 180),
    "orange": (245, 130, 30),
    "black": (30, 30, 30),
}
COLOR_NAMES = list(COLORS)
SIZES = ["small", "large"]
SIZE_RANGE = {"small": (0.12, 0.20), "large": (0.28, 0.40)}
# sampled targets stay a little inside the spec's ranges; the rendered box is checked against the spec
SIZE_TARGET = {"small": (0.125, 0.195), "large": (0.285, 0.395)}
SS = 4  # supersampling factor for anti-aliasing
SEG_M = 16


# ----------------------------------------------------------------------------- caption grammar

def phrase(o):
    return f"a {o['size']} {o['color']} {o['shape']}"


def order_objects(objs, width, height):
    """Return (ordered objects, relation) per the grammar. objs need 'box' [x,y,w,h] in pixels
    (or fractions with width=height=1)."""
    def center(o):
        x, y, w, h = o["box"]
        return (x + w / 2.0) / width, (y + h / 2.0) / height
    if len(objs) == 1:
        return list(objs), None
    if len(objs) == 2:
        (ax, ay), (bx, by) = center(objs[0]), center(objs[1])
        dx, dy = bx - ax, by - ay
        if abs(dx) >= abs(dy):
            return (list(objs) if dx > 0 else [objs[1], objs[0]]), "left"
        return (list(objs) if dy > 0 else [objs[1], objs[0]]), "above"
    keyed = sorted(objs, key=lambda o: (center(o)[0], center(o)[1]))
    return keyed, None


def make_caption(ordered, relation):
    if len(ordered) == 1:
        return phrase(ordered[0])
    if len(ordered) == 2:
        rel = " to the left of " if relation == "left" else " above "
        return phrase(ordered[0]) + rel + phrase(ordered[1])
    return f"{phrase(ordered[0])}, {phrase(ordered[1])} and {phrase(ordered[2])}"


def shape_word_positions(caption):
    """Word indices (in caption.split(' ')) and char spans of the shape words, in order."""
    out = []
    pos = 0
    for i, w in enumerate(caption.split(" ")):
        core = w.rstrip(",")
        if core in SHAPES:
            out.append((i, [pos, pos + len(core)]))
        pos += len(w) + 1
    return out


# ----------------------------------------------------------------------------- geometry

def unit_polygon(shape, rng):
    """Vertices (unrotated, centered at 0) of a shape; None for circle."""
    if shape == "square":
        return np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], float)
    if shape == "triangle":
        hr = rng.uniform(0.8, 1.05)  # height / base: equilateral 0.866, "triangle in a box" 1.0
        return np.array([[0, -hr], [1, hr], [-1, hr]], float) * [1, 1]
    if shape == "hexagon":
        a = np.arange(6) * math.pi / 3
        return np.stack([np.cos(a), np.sin(a)], 1)
    if shape == "star":
        inner = rng.uniform(0.36, 0.52)
        a = -math.pi / 2 + np.arange(10) * math.pi / 5
        r = np.where(np.arange(10) % 2 == 0, 1.0, inner)
        return np.stack([r * np.cos(a), r * np.sin(a)], 1)
    raise ValueError(shape)


STRICT = False  # True: only the rotations the spec names (no out-of-spec training variety)
VARIETY = False  # True (prerender --variety): second-renderer variety from its own random stream


def rotation_for(shape, rng):
    if shape == "star":
        return rng.uniform(0, 360)
    if shape == "hexagon":
        # flat-top or pointy-top are both "a hexagon"; +-15 around either covers every angle
        return rng.uniform(0, 60)
    if shape == "triangle":
        # training variety: some triangles at any angle (never changes the caption); strict: +-15 only
        if rng.random() < 0.85:
            return rng.uniform(-15, 15)
        r = rng.uniform(0, 360)
        return (r % 30) - 15 if STRICT else r
    if shape == "square":
        return rng.uniform(-15, 15)
    return 0.0


# ----------------------------------------------------------------------------- background

def sample_light(rng, lo=170):
    base = rng.uniform(lo + 20, 255)
    c = np.clip(base + rng.normal(0, 18, 3), lo, 255)
    return c


def make_background(rng, W, H):
    kind = rng.choice(["solid", "gradient", "noise"], p=[0.4, 0.3, 0.3])
    if kind == "solid":
        c = np.round(sample_light(rng)).astype(np.uint8)
        return np.broadcast_to(c, (H, W, 3)).astype(np.float32), "solid"
    if kind == "gradient":
        c0, c1 = sample_light(rng), sample_light(rng)
        ang = rng.uniform(0, 2 * math.pi)
        # broadcast rows/columns: the same float32 values as a full mgrid, without building it
        xs, ys = np.arange(W, dtype=np.float32)[None, :], np.arange(H, dtype=np.float32)[:, None]
        t = (xs / max(W - 1, 1) - 0.5) * math.cos(ang) + (ys / max(H - 1, 1) - 0.5) * math.sin(ang)
        t = (t - t.min()) / max(t.max() - t.min(), 1e-6)
        img = c0[None, None, :] * (1 - t[..., None]) + c1[None, None, :] * t[..., None]
        return img.astype(np.float32), "gradient"
    # noise / texture: smooth low-frequency blobs plus fine grain
    c = sample_light(rng, 185)
    gh, gw = int(rng.integers(3, 12)), int(rng.integers(3, 12))
    amp = rng.uniform(4, 22)
    low = rng.normal(0, amp, (gh, gw, 3)).astype(np.float32)
    low = np.asarray(Image.fromarray(low[..., 0]).resize((W, H), Image.BICUBIC))[..., None] * [1.0, 1.0, 1.0] \
        if rng.random() < 0.5 else np.stack(
            [np.asarray(Image.fromarray(low[..., k]).resize((W, H), Image.BICUBIC)) for k in range(3)], -1)
    grain = rng.normal(0, rng.uniform(1, 8), (H, W, 1 if rng.random() < 0.6 else 3)).astype(np.float32)
    img = c[None, None, :] + low + grain
    return np.clip(img, 170, 255).astype(np.float32), "noise"


def texture_background(vrng, W, H):
    """Light stripes, checks or dots of two light colors (every channel >= 170)."""
    c0, c1 = sample_light(vrng), sample_light(vrng)
    period = vrng.uniform(4, 40)
    xs, ys = np.arange(W, dtype=np.float32)[None, :], np.arange(H, dtype=np.float32)[:, None]
    kind = int(vrng.integers(3))
    if kind == 0:
        ang = vrng.uniform(0, math.pi)
        t = ((xs * math.cos(ang) + ys * math.sin(ang)) / period) % 1.0 < 0.5
    elif kind == 1:
        t = ((xs // period) + (ys // period)) % 2 == 0
    else:
        t = ((xs % period - period / 2) ** 2 + (ys % period - period / 2) ** 2) < (period / 4) ** 2
    img = np.where(t[..., None], c0[None, None, :], c1[None, None, :])
    return np.clip(img, 170, 255).astype(np.float32)


# ----------------------------------------------------------------------------- rendering

def render_alpha(shape, verts_px, center, radius, W, H, aa):
    """Coverage (float32 in [0,1]) of the shape over a window; returns (alpha, x0, y0)."""
    if shape == "circle":
        x0, y0 = int(math.floor(center[0] - radius)) - 1, int(math.floor(center[1] - radius)) - 1
        x1, y1 = int(math.ceil(center[0] + radius)) + 2, int(math.ceil(center[1] + radius)) + 2
    else:
        x0, y0 = int(math.floor(verts_px[:, 0].min())) - 1, int(math.floor(verts_px[:, 1].min())) - 1
        x1, y1 = int(math.ceil(verts_px[:, 0].max())) + 2, int(math.ceil(verts_px[:, 1].max())) + 2
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, W), min(y1, H)
    f = SS if aa else 1
    im = Image.new("L", ((x1 - x0) * f, (y1 - y0) * f), 0)
    d = ImageDraw.Draw(im)
    if shape == "circle":
        cx, cy = (center[0] - x0) * f, (center[1] - y0) * f
        r = radius * f
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    else:
        pts = [((x - x0) * f, (y - y0) * f) for x, y in verts_px]
        d.polygon(pts, fill=255)
    if aa:
        im = im.reduce(SS)
    return np.asarray(im, np.float32) / 255.0, x0, y0


def sample_scene(seed, index):
    """Sample and render scene `index` of `seed`. Returns (uint8 HxWx3 image, info dict with
    per-object full-canvas boolean masks under '_mask')."""
    rng = np.random.default_rng([seed, index])
    vrng = np.random.default_rng([seed, index, 1]) if VARIETY else None
    for _attempt in range(100):
        r = rng.random()
        if vrng is not None and vrng.random() < 0.3:
            W, H = edge_canvas(vrng)
        elif r < 0.55:
            W = H = int(rng.integers(96, 641))
        else:
            W = int(rng.integers(96, 641))
            aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
            H = int(round(W / aspect))
            if H < 96 or H > 640 or not (3 / 4 <= W / H <= 4 / 3):
                continue
        res = _try_scene(rng, W, H, vrng)
        if res is not None:
            return res
    raise RuntimeError("could not place scene")


def edge_canvas(vrng):
    """A canvas at the edges of the spec: shorter side 96-128 or longer side 560-640, aspect 3:4, 4:3 or 1."""
    aspect = [3 / 4, 1.0, 4 / 3][int(vrng.integers(3))]
    if vrng.random() < 0.5:
        short = int(vrng.integers(96, 129))
        W, H = (short, int(short / aspect)) if aspect < 1 else (int(short * aspect), short)
    else:
        long = int(vrng.integers(560, 641))
        # the dependent side rounded up keeps the aspect inside 3:4..4:3
        W, H = (math.ceil(long * aspect), long) if aspect < 1 else (long, math.ceil(long / aspect))
    return max(96, min(640, W)), max(96, min(640, H))


def _try_scene(rng, W, H, vrng=None):
    short = min(W, H)
    n = int(rng.choice([1, 2, 3], p=[0.25, 0.4, 0.35]))
    gap = 0.04 * short
    objs = []
    for k in range(n):
        shape = SHAPES[int(rng.integers(5))]
        color = COLOR_NAMES[int(rng.integers(7))]
        size = SIZES[int(rng.integers(2))]
        lo, hi = SIZE_TARGET[size]
        L = rng.uniform(lo, hi) * short
        rot = rotation_for(shape, rng)
        if shape == "circle":
            verts = None
            ext = np.array([L, L])
            radius = L / 2
        else:
            v = unit_polygon(shape, rng)
            t = math.radians(rot)
            R = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
            v = v @ R.T
            span = v.max(0) - v.min(0)
            scale = L / span.max()
            v = (v - (v.max(0) + v.min(0)) / 2) * scale
            verts = v
            ext = span * scale
            radius = None
        placed = False
        for _ in range(60):
            cx = rng.uniform(ext[0] / 2 + 1, W - ext[0] / 2 - 1)
            cy = rng.uniform(ext[1] / 2 + 1, H - ext[1] / 2 - 1)
            box = (cx - ext[0] / 2, cy - ext[1] / 2, cx + ext[0] / 2, cy + ext[1] / 2)
            ok = True
            for o in objs:
                b = o["_abox"]
                if not (box[2] + gap + 2 <= b[0] or b[2] + gap + 2 <= box[0]
                        or box[3] + gap + 2 <= b[1] or b[3] + gap + 2 <= box[1]):
                    ok = False
                    break
            if ok:
                placed = True
                break
        if not placed:
            return None
        rgb = np.clip(np.array(COLORS[color]) + rng.integers(-20, 21, 3), 0, 255)
        objs.append(dict(shape=shape, color=color, size=size, rgb=rgb, _abox=box, rotation=float(rot),
                         _verts=None if verts is None else verts + [cx, cy], _center=(cx, cy), _radius=radius))
    bg, bgkind = make_background(rng, W, H)
    if vrng is not None and vrng.random() < 0.25:
        bg, bgkind = texture_background(vrng, W, H), "texture"
    aa = rng.random() < 0.85
    if vrng is not None and vrng.random() < 0.2:
        aa = False
    img = bg.copy()
    for o in objs:
        alpha, x0, y0 = render_alpha(o["shape"], o["_verts"], o["_center"], o["_radius"], W, H, aa)
        h, w = alpha.shape
        reg = img[y0:y0 + h, x0:x0 + w]
        reg[:] = reg * (1 - alpha[..., None]) + o["rgb"][None, None, :].astype(np.float32) * alpha[..., None]
        win = alpha >= 0.5
        m = np.zeros((H, W), bool)
        m[y0:y0 + h, x0:x0 + w] = win
        rows, cols = np.flatnonzero(win.any(1)), np.flatnonzero(win.any(0))
        if len(cols) == 0:
            return None
        bx, by = x0 + int(cols[0]), y0 + int(rows[0])
        bw, bh = int(cols[-1]) - int(cols[0]) + 1, int(rows[-1]) - int(rows[0]) + 1
        lo, hi = SIZE_RANGE[o["size"]]
        if not (lo * short <= max(bw, bh) <= hi * short):
            return None
        o["box"] = [bx, by, bw, bh]
        o["_mask"] = m
    # spec checks on the real boxes: >= 4% of the shorter side apart, inside the canvas
    for i in range(n):
        for j in range(i + 1, n):
            a, b = objs[i]["box"], objs[j]["box"]
            sep_x = max(b[0] - (a[0] + a[2]), a[0] - (b[0] + b[2]))
            sep_y = max(b[1] - (a[1] + a[3]), a[1] - (b[1] + b[3]))
            if max(sep_x, sep_y) < gap:
                return None
    img = np.clip(np.round(img), 0, 255).astype(np.uint8)
    ordered, relation = order_objects(objs, W, H)
    caption = make_caption(ordered, relation)
    words = shape_word_positions(caption)
    for o, (wi, span) in zip(ordered, words):
        o["word_index"], o["char_span"] = wi, span
    jpeg_q = int(rng.integers(40, 96)) if rng.random() < 0.4 else None
    subsampling = None
    if vrng is not None:
        if jpeg_q is None and vrng.random() < 0.5:
            jpeg_q = int(vrng.integers(25, 96))
        if jpeg_q is not None:
            subsampling = int(vrng.choice([0, 2]))  # PIL: 0 = 4:4:4, 2 = 4:2:0
    info = dict(jpeg_subsampling=subsampling, width=W, height=H, caption=caption, background=bgkind, antialias=bool(aa),
                jpeg_quality=jpeg_q, objects=ordered)
    return img, info


def encode_jpeg_roundtrip(img, q, subsampling=None):
    import io
    buf = io.BytesIO()
    extra = {} if subsampling is None else {"subsampling": subsampling}
    Image.fromarray(img).save(buf, "JPEG", quality=q, **extra)
    data = buf.getvalue()
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), data


# ----------------------------------------------------------------------------- RLE

def rle_encode(mask):
    """COCO RLE (column-major), uncompressed counts starting with a run of zeros."""
    h, w = mask.shape
    flat = np.asarray(mask, np.uint8).flatten(order="F")
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0] == 1:
        counts = [0] + counts
    return {"size": [int(h), int(w)], "counts": [int(c) for c in counts]}


def rle_string_encode(counts):
    """COCO compressed RLE string (pycocotools maskApi.c rleToString) of uncompressed counts."""
    out = []
    for i, c in enumerate(counts):
        x = int(c) - (int(counts[i - 2]) if i > 2 else 0)
        more = True
        while more:
            ch = x & 0x1f
            x >>= 5
            more = x != -1 if ch & 0x10 else x != 0
            if more:
                ch |= 0x20
            out.append(chr(ch + 48))
    return "".join(out)


def rle_string_decode(s):
    """Decode a COCO compressed RLE string into counts."""
    counts = []
    p = 0
    while p < len(s):
        x = 0
        k = 0
        more = True
        while more:
            c = ord(s[p]) - 48
            x |= (c & 0x1f) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def rle_decode(rle):
    h, w = rle["size"]
    counts = rle["counts"]
    if isinstance(counts, str):
        counts = rle_string_decode(counts)
    flat = np.zeros(h * w, np.uint8)
    pos, val = 0, 0
    for c in counts:
        if val:
            flat[pos:pos + c] = 1
        pos += c
        val ^= 1
    return flat.reshape((w, h)).T.astype(bool)


# ----------------------------------------------------------------------------- outputs

def public_info(info, fname):
    objs = []
    for o in info["objects"]:
        objs.append(dict(shape=o["shape"], color=o["color"], size=o["size"], rgb=[int(c) for c in o["rgb"]],
                         rotation=round(o["rotation"], 2),
                         box=o["box"], mask=rle_encode(o["_mask"]), word_index=o["word_index"],
                         char_span=o["char_span"]))
    return dict(file=fname, width=info["width"], height=info["height"], caption=info["caption"],
                background=info["background"], antialias=info["antialias"], jpeg_quality=info["jpeg_quality"],
                objects=objs)


CATEGORIES = [dict(id=1 + si * len(COLOR_NAMES) + ci, name=f"{c} {sh}", supercategory=sh)
              for si, sh in enumerate(SHAPES) for ci, c in enumerate(COLOR_NAMES)]
CATEGORY_ID = {c["name"]: c["id"] for c in CATEGORIES}


def coco_files(rows, indices):
    """(captions, instances) COCO dictionaries for scenes.jsonl rows with their scene indices."""
    images, caps, anns = [], [], []
    for row, index in zip(rows, indices):
        iid = index + 1
        images.append(dict(id=iid, file_name=row["file"], width=row["width"], height=row["height"]))
        caps.append(dict(id=len(caps) + 1, image_id=iid, caption=row["caption"]))
        for o in row["objects"]:
            counts = o["mask"]["counts"]
            anns.append(dict(id=len(anns) + 1, image_id=iid, category_id=CATEGORY_ID[f"{o['color']} {o['shape']}"],
                             bbox=list(o["box"]), area=int(sum(counts[1::2])),
                             segmentation=dict(size=o["mask"]["size"], counts=rle_string_encode(counts)),
                             iscrowd=0))
    info = dict(description="Glimpse scene world (tools/scenes.py)")
    return (dict(info=info, images=images, annotations=caps),
            dict(info=info, images=images, categories=CATEGORIES, annotations=anns))


def write_scene(seed, index, out, name=None):
    img, info = sample_scene(seed, index)
    base = name or f"scene-{seed}-{index:05d}"
    if info["jpeg_quality"] is not None:
        fname = base + ".jpg"
        extra = {} if info.get("jpeg_subsampling") is None else {"subsampling": info["jpeg_subsampling"]}
        Image.fromarray(img).save(os.path.join(out, fname), "JPEG", quality=info["jpeg_quality"], **extra)
    else:
        fname = base + ".png"
        Image.fromarray(img).save(os.path.join(out, fname), "PNG", optimize=False, compress_level=6)
    return public_info(info, fname)


def rendered_scene(seed, index):
    """Scene `index` of `seed` as the prerendered data saw it: after its JPEG round trip, if any."""
    img, info = sample_scene(seed, index)
    if info["jpeg_quality"] is not None:
        img, _ = encode_jpeg_roundtrip(img, info["jpeg_quality"], info.get("jpeg_subsampling"))
    return img, info


def prerender_one(args):
    seed, index, size, grid = args
    img, info = rendered_scene(seed, index)
    W, H = info["width"], info["height"]
    small = np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR))
    objs = []
    for o in info["objects"]:
        m = o["_mask"].astype(np.float32)
        gm = np.asarray(Image.fromarray(m).resize((grid, grid), Image.BOX), np.float32)
        x, y, w, h = o["box"]
        crop = m[y:y + h, x:x + w]
        sm = np.asarray(Image.fromarray(crop).resize((SEG_M, SEG_M), Image.BOX), np.float32)
        objs.append(dict(shape=SHAPES.index(o["shape"]), color=COLOR_NAMES.index(o["color"]),
                         size=SIZES.index(o["size"]),
                         box=[x / W, y / H, w / W, h / H], grid=gm, seg=sm))
    return small, info["caption"], objs


def prerender(seed, count, size, grid, procs, path):
    from multiprocessing import Pool
    N = count
    images = np.zeros((N, size, size, 3), np.uint8)
    nobj = np.zeros(N, np.int8)
    attrs = np.full((N, 3, 3), -1, np.int8)  # shape, color, size
    boxes = np.zeros((N, 3, 4), np.float32)  # x, y, w, h as fractions of width/height
    grids = np.zeros((N, 3, grid, grid), np.float16)
    segs = np.zeros((N, 3, SEG_M, SEG_M), np.uint8)
    captions = []
    jobs = [(seed, i, size, grid) for i in range(N)]
    with Pool(procs) as pool:
        for i, (small, cap, objs) in enumerate(pool.imap(prerender_one, jobs, chunksize=16)):
            images[i] = small
            captions.append(cap)
            nobj[i] = len(objs)
            for k, o in enumerate(objs):
                attrs[i, k] = [o["shape"], o["color"], o["size"]]
                boxes[i, k] = o["box"]
                grids[i, k] = o["grid"]
                segs[i, k] = np.round(o["seg"] * 255)
            if (i + 1) % 2000 == 0:
                print(f"prerender {path}: {i + 1}/{N}", file=sys.stderr, flush=True)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".tmp.npz"
    np.savez(tmp, images=images, nobj=nobj, attrs=attrs, boxes=boxes, grids=grids, segs=segs,
             captions=np.array(captions), seed=seed, size=size, grid=grid)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--start", type=int, default=0, help="first scene index")
    ap.add_argument("--out", help="directory for images + scenes.jsonl")
    ap.add_argument("--prerender", help="write a training .npz instead of files")
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--grid", type=int, default=14)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--variety", action="store_true", help="second-renderer variety (see top)")
    ap.add_argument("--strict", choices=["auto", "yes", "no"], default="auto",
                    help="only the spec's rotations (yes) or also out-of-spec triangle rotations as training "
                         "variety (no); auto: strict for --out, variety for --prerender")
    a = ap.parse_args()
    global STRICT, VARIETY
    STRICT = a.strict == "yes" or (a.strict == "auto" and not a.prerender)
    VARIETY = bool(a.variety)
    if a.prerender:
        prerender(a.seed, a.count, a.size, a.grid, a.procs, a.prerender)
        return
    os.makedirs(a.out, exist_ok=True)
    rows = []
    with open(os.path.join(a.out, "scenes.jsonl"), "w") as f:
        for i in range(a.start, a.start + a.count):
            rows.append(write_scene(a.seed, i, a.out))
            f.write(json.dumps(rows[-1]) + "\n")
    captions, instances = coco_files(rows, range(a.start, a.start + a.count))
    for name, d in (("captions.json", captions), ("instances.json", instances)):
        with open(os.path.join(a.out, name), "w") as f:
            json.dump(d, f)


if __name__ == "__main__":
    main()
