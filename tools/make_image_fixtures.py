#!/usr/bin/env python3
"""Writes the image decoding and preprocessing fixtures under Tests/GlimpseTests/Fixtures/images.

Reference: PIL (what transformers' load_image + ViTImageProcessorPil see):
    ImageOps.exif_transpose(Image.open(f)).convert("RGB")
and transformers' ViTImageProcessorPil for pixel values.

Pinned versions (the venv at /work/main/.venv): Pillow 13.0.0, numpy 2.4.6, transformers 5.24.0.
Needs a C compiler and libjpeg headers for the one YCCK JPEG (PIL cannot write YCCK).

Layout written:
    images/<name>                 valid and bad input files
    images/expected/<name>.rgb    PIL's RGB bytes (row-major, interleaved) for every valid file
    images/expected.json          per file: what the decoder must report, or the error it must throw
    images/preprocess/*.rgb|.f32  PIL-resized uint8 and transformers pixel_values (float32 LE, CHW)
    images/preprocess.json        the preprocessing cases
"""
import hashlib
import io
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib

import numpy as np
import PIL
from PIL import Image, ImageOps

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "GlimpseTests", "Fixtures", "images")


def pattern(w, h, seed=0, noise=10):
    """A photo-ish RGB test card: gradients, a red block top-left (shows orientation), noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), ((x + 2 * y) * 9) % 256], -1)
    img = img.astype(np.int32)
    img[1 : max(2, h // 3), 1 : max(2, w // 4)] = [230, 30, 40]
    img[h // 2 :, w - max(2, w // 5) :] = [20, 200, 240]
    img += rng.integers(-noise, noise + 1, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- a small PNG writer
# PIL cannot write Adam7, 2-bit gray, or 16-bit gray+alpha, so PNGs are written by hand
# (filter type 0 rows, zlib) and PIL only reads them back.

def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def pack_row(samples, depth):
    if depth == 16:
        return b"".join(struct.pack(">H", int(v)) for v in samples)
    if depth == 8:
        return bytes(int(v) for v in samples)
    per = 8 // depth
    out = bytearray()
    for i in range(0, len(samples), per):
        byte = 0
        group = list(samples[i : i + per]) + [0] * (per - len(samples[i : i + per]))
        for v in group:
            byte = (byte << depth) | int(v)
        out.append(byte)
    return bytes(out)


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def png_bytes(samples, color_type, depth, palette=None, trns=None, interlace=False, exif=None, exif_after_idat=False):
    """samples: array (h, w, channels) of sample values at `depth` bits."""
    h, w = samples.shape[:2]
    raw = bytearray()
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    for x0, y0, dx, dy in passes:
        sub = samples[y0::dy, x0::dx]
        if sub.shape[0] == 0 or sub.shape[1] == 0:
            continue
        for row in sub:
            raw.append(0)
            raw += pack_row(row.reshape(-1), depth)
    out = b"\x89PNG\r\n\x1a\n"
    out += chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 1 if interlace else 0))
    if palette is not None:
        out += chunk(b"PLTE", bytes(np.asarray(palette, np.uint8).reshape(-1)))
    if trns is not None:
        out += chunk(b"tRNS", trns)
    if exif is not None and not exif_after_idat:
        out += chunk(b"eXIf", exif)
    out += chunk(b"IDAT", zlib.compress(bytes(raw), 9))
    if exif is not None and exif_after_idat:
        out += chunk(b"eXIf", exif)
    out += chunk(b"IEND", b"")
    return out


def tiff_exif(orientation, big_endian, with_other_tags=True):
    """A TIFF block (no "Exif\\0\\0" prefix) whose IFD0 holds the orientation tag, written by hand
    so both byte orders are covered. Other tags come first so the parser has to walk the IFD."""
    e = ">" if big_endian else "<"
    entries = []
    if with_other_tags:
        entries.append((0x010F, 2, 4, b"Cam\0"))                       # Make, ASCII, inline
        entries.append((0x0110, 2, 12, b"Glimpse Cam\0"))              # Model, ASCII, at an offset
    if orientation is not None:
        entries.append((0x0112, 3, 1, struct.pack(e + "HH", orientation, 0)))
    entries.append((0x011A, 5, 1, struct.pack(e + "II", 72, 1)))      # XResolution, RATIONAL, offset
    head = (b"MM" if big_endian else b"II") + struct.pack(e + "HI", 42, 8)
    ifd_size = 2 + 12 * len(entries) + 4
    data_offset = 8 + ifd_size
    ifd = struct.pack(e + "H", len(entries))
    extra = b""
    for tag, typ, count, value in entries:
        if len(value) <= 4:
            ifd += struct.pack(e + "HHI", tag, typ, count) + value.ljust(4, b"\0")
        else:
            ifd += struct.pack(e + "HHII", tag, typ, count, data_offset + len(extra))
            extra += value
    ifd += struct.pack(e + "I", 0)
    return head + ifd + extra


def jpeg_bytes(img, **kw):
    buf = io.BytesIO()
    img.save(buf, "JPEG", **kw)
    return buf.getvalue()


# ---------------------------------------------------------------- the cases

def valid_files():
    """(name, bytes, expected info) for every decodable variant."""
    files = []
    rgb = Image.fromarray(pattern(48, 32, 1))
    odd = Image.fromarray(pattern(33, 17, 2))

    def jpeg_info(w, h, layout, orientation=1, progressive=False):
        return dict(format="jpeg", width=w, height=h, layout=layout, bit_depth=8,
                    orientation=orientation, interlaced=progressive)

    files.append(("jpeg_baseline_420.jpg", jpeg_bytes(rgb, quality=85), jpeg_info(48, 32, "rgb")))
    files.append(("jpeg_baseline_422.jpg", jpeg_bytes(rgb, quality=85, subsampling=1), jpeg_info(48, 32, "rgb")))
    files.append(("jpeg_baseline_444.jpg", jpeg_bytes(rgb, quality=95, subsampling=0), jpeg_info(48, 32, "rgb")))
    files.append(("jpeg_odd_size.jpg", jpeg_bytes(odd, quality=80), jpeg_info(33, 17, "rgb")))
    files.append(("jpeg_progressive.jpg", jpeg_bytes(rgb, quality=85, progressive=True),
                  jpeg_info(48, 32, "rgb", progressive=True)))
    files.append(("jpeg_restart_markers.jpg", jpeg_bytes(rgb, quality=85, restart_marker_blocks=2),
                  jpeg_info(48, 32, "rgb")))
    files.append(("jpeg_gray.jpg", jpeg_bytes(rgb.convert("L"), quality=85), jpeg_info(48, 32, "gray")))
    files.append(("jpeg_gray_progressive.jpg", jpeg_bytes(odd.convert("L"), quality=85, progressive=True),
                  jpeg_info(33, 17, "gray", progressive=True)))
    cmyk = rgb.convert("CMYK")
    files.append(("jpeg_cmyk.jpg", jpeg_bytes(cmyk, quality=90), jpeg_info(48, 32, "cmyk")))
    # A CMYK image with real black so K matters: K = min(C, M, Y) moved out of C, M, Y.
    c = np.asarray(cmyk).astype(np.int32)
    k = c[..., :3].min(-1, keepdims=True)
    ucr = np.concatenate([c[..., :3] - k, k], -1).astype(np.uint8)
    files.append(("jpeg_cmyk_black.jpg", jpeg_bytes(Image.fromarray(ucr, "CMYK"), quality=90),
                  jpeg_info(48, 32, "cmyk")))
    files.append(("jpeg_ycck.jpg", ycck_jpeg(ucr), jpeg_info(48, 32, "ycck")))

    # EXIF orientation: all 8 little-endian, a few big-endian; 5-8 swap width and height.
    asym = Image.fromarray(pattern(40, 24, 3))
    for n in range(1, 9):
        w, h = (24, 40) if n >= 5 else (40, 24)
        files.append((f"jpeg_orientation_{n}_le.jpg",
                      jpeg_bytes(asym, quality=90, exif=b"Exif\0\0" + tiff_exif(n, False)),
                      jpeg_info(w, h, "rgb", orientation=n)))
    for n in (3, 6, 8):
        w, h = (24, 40) if n >= 5 else (40, 24)
        files.append((f"jpeg_orientation_{n}_be.jpg",
                      jpeg_bytes(asym, quality=90, exif=b"Exif\0\0" + tiff_exif(n, True)),
                      jpeg_info(w, h, "rgb", orientation=n)))
    files.append(("jpeg_exif_without_orientation.jpg",
                  jpeg_bytes(asym, quality=90, exif=b"Exif\0\0" + tiff_exif(None, True)),
                  jpeg_info(40, 24, "rgb")))
    files.append(("jpeg_orientation_6_progressive.jpg",
                  jpeg_bytes(asym, quality=90, progressive=True, exif=b"Exif\0\0" + tiff_exif(6, False)),
                  jpeg_info(24, 40, "rgb", orientation=6, progressive=True)))

    # PNG: every color type and depth, hand-written.
    rng = np.random.default_rng(7)
    W, H = 37, 23
    base = pattern(W, H, 4).astype(np.int64)
    gray8 = (base.sum(-1) // 3)[..., None]

    def png_info(layout, depth, w=W, h=H, interlaced=False, trns=False, orientation=1):
        return dict(format="png", width=w, height=h, layout=layout, bit_depth=depth,
                    orientation=orientation, interlaced=interlaced, has_transparency=trns)

    for depth in (1, 2, 4, 8):
        g = gray8 >> (8 - depth)
        files.append((f"png_gray{depth}.png", png_bytes(g, 0, depth), png_info("gray", depth)))
        files.append((f"png_gray{depth}_adam7.png", png_bytes(g, 0, depth, interlace=True),
                      png_info("gray", depth, interlaced=True)))
    # 16-bit gray spanning the whole range, some values below 256 (PIL clips, so those survive).
    g16 = gray8 * 257
    g16[: H // 2, : W // 2] = gray8[: H // 2, : W // 2]
    files.append(("png_gray16.png", png_bytes(g16, 0, 16), png_info("gray", 16)))
    files.append(("png_gray8_trns.png", png_bytes(gray8, 0, 8, trns=struct.pack(">H", 128)),
                  png_info("gray", 8, trns=True)))
    alpha = rng.integers(0, 256, (H, W, 1))
    files.append(("png_gray_alpha8.png", png_bytes(np.concatenate([gray8, alpha], -1), 4, 8),
                  png_info("gray+alpha", 8)))
    files.append(("png_gray_alpha16.png",
                  png_bytes(np.concatenate([np.minimum(gray8 * 257 + 3, 65535), alpha * 257], -1), 4, 16),
                  png_info("gray+alpha", 16)))
    files.append(("png_rgb8.png", png_bytes(base, 2, 8), png_info("rgb", 8)))
    files.append(("png_rgb8_trns.png", png_bytes(base, 2, 8, trns=struct.pack(">HHH", 20, 200, 240)),
                  png_info("rgb", 8, trns=True)))
    rgb16 = np.minimum(base * 257 + rng.integers(0, 257, base.shape), 65535)
    files.append(("png_rgb16.png", png_bytes(rgb16, 2, 16), png_info("rgb", 16)))
    rgba = np.concatenate([base, alpha], -1)
    files.append(("png_rgba8.png", png_bytes(rgba, 6, 8), png_info("rgba", 8)))
    files.append(("png_rgba16.png", png_bytes(np.concatenate([rgb16, alpha * 257], -1), 6, 16),
                  png_info("rgba", 16)))
    files.append(("png_rgba8_adam7.png", png_bytes(rgba, 6, 8, interlace=True),
                  png_info("rgba", 8, interlaced=True)))
    files.append(("png_rgb16_adam7.png", png_bytes(rgb16, 2, 16, interlace=True),
                  png_info("rgb", 16, interlaced=True)))
    for depth in (1, 2, 4, 8):
        n = 1 << depth
        palette = rng.integers(0, 256, (n, 3))
        index = (gray8 >> (8 - depth))
        files.append((f"png_palette{depth}.png", png_bytes(index, 3, depth, palette=palette),
                      png_info("palette", depth)))
        trns = bytes(rng.integers(0, 256, max(1, n // 2)).astype(np.uint8))
        files.append((f"png_palette{depth}_trns.png", png_bytes(index, 3, depth, palette=palette, trns=trns),
                      png_info("palette", depth, trns=True)))
    files.append(("png_palette4_adam7.png",
                  png_bytes(gray8 >> 4, 3, 4, palette=rng.integers(0, 256, (16, 3)), interlace=True),
                  png_info("palette", 4, interlaced=True)))
    tiny = pattern(3, 2, 5)
    files.append(("png_tiny_adam7.png", png_bytes(tiny, 2, 8, interlace=True),
                  png_info("rgb", 8, w=3, h=2, interlaced=True)))
    files.append(("png_1x1.png", png_bytes(tiny[:1, :1], 2, 8), png_info("rgb", 8, w=1, h=1)))
    files.append(("png_orientation_6.png", png_bytes(base, 2, 8, exif=tiff_exif(6, True)),
                  png_info("rgb", 8, w=H, h=W, orientation=6)))
    files.append(("png_orientation_8_after_idat.png",
                  png_bytes(base, 2, 8, exif=tiff_exif(8, False), exif_after_idat=True),
                  png_info("rgb", 8, w=H, h=W, orientation=8)))
    # All pixels present but the IEND chunk cut off: PIL decodes it, so do we.
    files.append(("png_missing_iend.png", png_bytes(base, 2, 8)[:-12], png_info("rgb", 8)))
    # A zTXt chunk inflating to 24 MB (a decompression bomb in metadata): the decoder must skip
    # it (libpng's chunk size limit) and still return the image. PIL itself refuses it
    # (MAX_TEXT_CHUNK), so its reference is taken with that limit raised.
    ztxt = b"Comment\0\0" + zlib.compress(b"A" * (24 << 20), 9)
    bomb = png_bytes(base, 2, 8)
    files.append(("png_ztxt_bomb.png", bomb[:33] + chunk(b"zTXt", ztxt) + bomb[33:], png_info("rgb", 8)))
    # PIL's own writer, for good measure.
    buf = io.BytesIO()
    Image.fromarray(base.astype(np.uint8)).save(buf, "PNG", optimize=True)
    files.append(("png_pil_rgb.png", buf.getvalue(), png_info("rgb", 8)))
    return files


def ycck_jpeg(cmyk):
    h, w = cmyk.shape[:2]
    src = os.path.join(ROOT, "tools", "make_ycck_jpeg.c")
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "make_ycck_jpeg")
        subprocess.run(["cc", "-O1", "-o", exe, src, "-ljpeg"], check=True)
        # Stored Adobe-style (inverted), as PIL would write CMYK.
        run = subprocess.run([exe, str(w), str(h)], input=(255 - cmyk).tobytes(), capture_output=True, check=True)
        return run.stdout


def bad_files(valid):
    """(name, bytes, expected error kind)."""
    jpeg = dict((n, b) for n, b, _ in valid)["jpeg_baseline_420.jpg"]
    prog = dict((n, b) for n, b, _ in valid)["jpeg_progressive.jpg"]
    png = dict((n, b) for n, b, _ in valid)["png_rgb8.png"]
    bad = [("bad_empty.jpg", b"", "notAnImage"),
           ("bad_text.png", b"hello, this is not an image\n", "notAnImage"),
           ("bad_gif_magic.jpg", b"GIF89a" + bytes(40), "notAnImage"),
           ("bad_jpeg_soi_only.jpg", jpeg[:2], "truncated")]
    sos = jpeg.index(b"\xff\xda")
    for cut in (4, 100, sos + 4, sos + 60, len(jpeg) // 2, len(jpeg) - 30):
        bad.append((f"bad_jpeg_truncated_{cut}.jpg", jpeg[:cut], "truncated"))
    bad.append((f"bad_jpeg_progressive_truncated.jpg", prog[: len(prog) * 2 // 3], "truncated"))
    # All-ones entropy data ("FF 00" is a stuffed 0xFF): no valid Huffman code is all ones.
    corrupt = bytearray(jpeg)
    start = sos + 2 + struct.unpack(">H", jpeg[sos + 2 : sos + 4])[0]
    corrupt[start + 10 : start + 90] = b"\xff\x00" * 40
    bad.append(("bad_jpeg_huffman.jpg", bytes(corrupt), "corrupt"))
    # A DHT segment whose code counts exceed its length.
    dht = jpeg.index(b"\xff\xc4")
    broken = bytearray(jpeg)
    broken[dht + 5 : dht + 21] = b"\xff" * 16
    bad.append(("bad_jpeg_dht.jpg", bytes(broken), "corrupt"))
    # SOF claiming 65000 x 65000 (JPEG cannot say 100000: its fields are 16-bit).
    sof = jpeg.index(b"\xff\xc0")
    huge = bytearray(jpeg)
    huge[sof + 5 : sof + 9] = struct.pack(">HH", 65000, 65000)
    bad.append(("bad_jpeg_huge.jpg", bytes(huge), "tooLarge"))
    # 12-bit samples (SOF precision byte) and a lossless (SOF3) frame: valid JPEG, not decoded here.
    twelve = bytearray(jpeg)
    twelve[sof + 4] = 12
    bad.append(("bad_jpeg_12bit.jpg", bytes(twelve), "unsupported"))
    lossless = bytearray(jpeg)
    lossless[sof + 1] = 0xC3
    bad.append(("bad_jpeg_lossless.jpg", bytes(lossless), "unsupported"))

    bad.append(("bad_png_signature_only.png", png[:8], "truncated"))
    bad.append(("bad_png_short_signature.png", png[:5], "truncated"))
    for cut in (20, 40, len(png) // 2, len(png) - 40):
        bad.append((f"bad_png_truncated_{cut}.png", png[:cut], "truncated"))
    crc = bytearray(png)
    crc[29] ^= 0xFF  # last CRC byte of IHDR (8 signature + 4 length + 4 type + 13 data)
    bad.append(("bad_png_ihdr_crc.png", bytes(crc), "corrupt"))
    idat = png.index(b"IDAT")
    zbad = bytearray(png)
    for i in range(idat + 8, idat + 40):
        zbad[i] ^= 0x5A
    # Keep the CRC right so the failure is the zlib stream itself.
    length = struct.unpack(">I", png[idat - 4 : idat])[0]
    body = bytes(zbad[idat : idat + 4 + length])
    zbad[idat + 4 + length : idat + 8 + length] = struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    bad.append(("bad_png_zlib.png", bytes(zbad), "corrupt"))
    # 100000 x 100000 RGB: a valid header over a tiny IDAT (a decompression bomb's first step).
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0))
    bomb += chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b"")
    bad.append(("bad_png_huge.png", bomb, "tooLarge"))
    # 10001 x 10000: just over the default 100 MP limit.
    over = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 10001, 10000, 8, 0, 0, 0, 0))
    over += chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b"")
    bad.append(("bad_png_over_limit.png", over, "tooLarge"))
    bad.append(("bad_png_bad_color_type.png",
                b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 5, 0, 0, 0))
                + chunk(b"IEND", b""), "corrupt"))
    return bad


def pil_reference(data, text_limit=None):
    from PIL import PngImagePlugin
    saved = PngImagePlugin.MAX_TEXT_CHUNK
    if text_limit:
        PngImagePlugin.MAX_TEXT_CHUNK = text_limit
    try:
        im = Image.open(io.BytesIO(data))
        im.load()
    finally:
        PngImagePlugin.MAX_TEXT_CHUNK = saved
    mode = im.mode
    im = ImageOps.exif_transpose(im)
    return mode, im.convert("RGB")


# ---------------------------------------------------------------- preprocessing

def preprocess_cases():
    from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil
    from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

    imagenet = ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5])
    clip = ([0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711])
    cases = [
        # name, source size, target (w, h), resample, mean/std, store full pixel values
        ("down_bilinear", (97, 75), (32, 24), "bilinear", imagenet, True),
        ("up_bilinear", (19, 13), (48, 40), "bilinear", imagenet, True),
        ("down_bicubic", (97, 75), (40, 30), "bicubic", clip, True),
        ("up_bicubic", (19, 13), (33, 29), "bicubic", clip, True),
        ("odd_bilinear", (61, 17), (7, 45), "bilinear", imagenet, True),
        ("down_lanczos", (97, 75), (29, 31), "lanczos", imagenet, True),
        ("up_hamming", (19, 13), (25, 40), "hamming", imagenet, True),
        ("down_box", (97, 75), (30, 20), "box", imagenet, True),
        ("vit_224", (320, 240), (224, 224), "bilinear", imagenet, False),
        ("blip_384", (200, 150), (384, 384), "bicubic", clip, False),
        # Pillow 13 runs the vertical pass first when the height shrinks by more than twice as many
        # pixels as the width (python-pillow/Pillow#9549); the uint8 rounding between passes differs.
        ("tall_bilinear", (50, 80), (32, 32), "bilinear", imagenet, True),
        ("tall_bicubic", (40, 100), (30, 30), "bicubic", clip, True),
        ("tall_up_bicubic", (20, 90), (33, 40), "bicubic", clip, True),
    ]
    filters = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC,
               "lanczos": Image.Resampling.LANCZOS, "hamming": Image.Resampling.HAMMING,
               "box": Image.Resampling.BOX}
    os.makedirs(os.path.join(OUT, "preprocess"), exist_ok=True)
    out = []
    for name, (sw, sh), (tw, th), resample, (mean, std), full in cases:
        src = pattern(sw, sh, 11 + len(out), noise=10 if full else 2)
        # Sharp edges stress the filter's negative lobes (bicubic overshoot is clipped).
        src[sh // 3 : sh // 2, :] = 255
        src[:, sw // 2 : sw // 2 + 2] = 0
        src_name = f"preprocess/{name}_source.png"
        Image.fromarray(src).save(os.path.join(OUT, src_name))
        resized = np.asarray(Image.fromarray(src).resize((tw, th), resample=filters[resample]))
        if name.startswith("blip"):
            proc = BlipImageProcessorPil()  # its defaults: 384 x 384, bicubic, CLIP mean/std
        else:
            proc = ViTImageProcessorPil(size={"height": th, "width": tw}, resample=filters[resample],
                                        image_mean=mean, image_std=std)
        pv = np.asarray(proc(images=Image.fromarray(src), return_tensors="np")["pixel_values"][0], np.float32)
        assert pv.shape == (3, th, tw), pv.shape
        case = dict(name=name, processor=type(proc).__name__, source=src_name, width=tw, height=th, resample=resample,
                    resample_id=int(filters[resample]), mean=mean, std=std,
                    rescale_factor=1 / 255, resized_sha256=hashlib.sha256(resized.tobytes()).hexdigest())
        if full:
            with open(os.path.join(OUT, f"preprocess/{name}_resized.rgb"), "wb") as f:
                f.write(resized.tobytes())
            with open(os.path.join(OUT, f"preprocess/{name}_pixel_values.f32"), "wb") as f:
                f.write(pv.astype("<f4").tobytes())
            case.update(resized=f"preprocess/{name}_resized.rgb", pixel_values=f"preprocess/{name}_pixel_values.f32")
        else:
            # Too big to store whole: every 101st value of the flattened CHW tensor.
            stride = 101
            with open(os.path.join(OUT, f"preprocess/{name}_pixel_values_every{stride}.f32"), "wb") as f:
                f.write(pv.reshape(-1)[::stride].astype("<f4").tobytes())
            case.update(pixel_values_sampled=f"preprocess/{name}_pixel_values_every{stride}.f32",
                        sample_stride=stride)
        out.append(case)
    return out


# ---------------------------------------------------------------- files through the processors

def processor_cases():
    """Image files as transformers' image-to-text pipeline sees them (load_image: EXIF transpose,
    convert("RGB")), through the processors of the fixture models (AutoImageProcessor on their
    preprocessor_config.json), so the committed pixel_values cover decoding, orientation,
    transparency handling (do_convert_rgb) and resampling together."""
    from transformers import AutoImageProcessor
    from transformers.image_utils import load_image
    models = os.path.join(ROOT, "Tests", "GlimpseTests", "Fixtures", "models")
    os.makedirs(os.path.join(OUT, "processor"), exist_ok=True)
    files = {}
    small = pattern(20, 14, 21)
    small[5:7] = 255
    small[:, 9:11] = 0
    files["up_small.png"] = png_bytes(small, 2, 8)                           # upscaled to 32x32
    card = Image.fromarray(pattern(50, 80, 22))
    for n in (6, 8):                                                          # non-square, rotated
        files[f"exif_{n}_50x80.jpg"] = jpeg_bytes(card, quality=90, exif=b"Exif\0\0" + tiff_exif(n, False))
    files["plain_50x80.jpg"] = jpeg_bytes(card, quality=90)
    rng = np.random.default_rng(23)
    palette = rng.integers(0, 256, (16, 3))
    index = (pattern(20, 14, 24)[..., 0] >> 4).astype(np.uint8)
    # One fully transparent index: PIL keeps its colour as info["transparency"] (BLIP paints it white).
    simple = bytes([255] * 3 + [0] + [255] * 12)
    files["palette_trns_simple.png"] = png_bytes(index[..., None], 3, 8, palette=palette, trns=simple)
    # Partial alphas: PIL drops the transparency in convert("RGB").
    files["palette_trns_alphas.png"] = png_bytes(index[..., None], 3, 8, palette=palette, trns=bytes(range(0, 256, 16)))
    rgb = pattern(20, 14, 25)
    rgb[2:6, 3:9] = [10, 20, 30]
    files["rgb_trns.png"] = png_bytes(rgb, 2, 8, trns=struct.pack(">HHH", 10, 20, 30))
    cases = []
    for name, data in files.items():
        with open(os.path.join(OUT, "processor", name), "wb") as f:
            f.write(data)
        for model in ("blip_tiny", "vit_gpt2_a"):
            proc = AutoImageProcessor.from_pretrained(os.path.join(models, model))
            pv = np.asarray(proc(images=load_image(os.path.join(OUT, "processor", name)), return_tensors="np")["pixel_values"][0],
                            np.float32)
            out = f"processor/{name}.{model}.f32"
            with open(os.path.join(OUT, out), "wb") as f:
                f.write(pv.astype("<f4").tobytes())
            cases.append(dict(file=f"processor/{name}", model=model, processor=type(proc).__name__,
                              shape=list(pv.shape), pixel_values=out))
    return cases


def main():
    os.makedirs(os.path.join(OUT, "expected"), exist_ok=True)
    valid = valid_files()
    entries = []
    for name, data, info in valid:
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
        mode, rgb = pil_reference(data, text_limit=(32 << 20) if "bomb" in name else None)
        assert rgb.size == (info["width"], info["height"]), (name, rgb.size, info)
        pixels = np.asarray(rgb).tobytes()
        with open(os.path.join(OUT, "expected", name + ".rgb"), "wb") as f:
            f.write(pixels)
        entries.append(dict(file=name, pil_mode=mode, rgb=f"expected/{name}.rgb",
                            sha256=hashlib.sha256(pixels).hexdigest(), **info))
    for name, data, kind in bad_files(valid):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
        try:
            pil_reference(data)
            pil_fails = False
        except Exception:
            pil_fails = True
        entries.append(dict(file=name, error=kind, pil_fails=pil_fails))
    meta = dict(generator="tools/make_image_fixtures.py", pillow=PIL.__version__, numpy=np.__version__)
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(dict(meta=meta, files=entries), f, indent=1)
    import transformers
    meta["transformers"] = transformers.__version__
    with open(os.path.join(OUT, "preprocess.json"), "w") as f:
        json.dump(dict(meta=meta, cases=preprocess_cases()), f, indent=1)
    with open(os.path.join(OUT, "processor.json"), "w") as f:
        json.dump(dict(meta=meta, cases=processor_cases()), f, indent=1)
    print(f"{len(entries)} image fixtures, preprocessing cases written to {OUT}")


if __name__ == "__main__":
    sys.exit(main())
