#!/usr/bin/env python3
"""Batch throughput side by side: `glimpse batch` vs transformers' image-to-text pipeline.

    .venv/bin/python tools/bench_batch_vs_transformers.py [--images DIR] [--model models/default]
        [--glimpse .build/release/glimpse] [--batch-size 8] [--threads 2] [--limit N]

Both sides caption every JPEG/PNG of DIR (default: runs/eval, made by `make eval`) with the model's
own generation defaults (generation_config.json), in their own subprocess; transformers in batches of
--batch-size (PIL open + image processor + generate + decode, what its image-to-text pipeline does); reported: images/s over the
whole run (model load excluded for transformers: the pipeline is built before the clock starts;
included for glimpse, whose load is milliseconds) and the child's peak RSS (os.wait4).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def images_in(directory, limit):
    files = sorted(str(p) for p in Path(directory).rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    return files[:limit] if limit else files


def worker(args):
    # transformers 5's image-to-text pipeline wants a ProcessorMixin, which a ViT + GPT-2 checkpoint does
    # not ship; this loop does what the pipeline does: PIL open, image processor, generate, decode.
    import torch
    from PIL import Image
    from transformers import AutoImageProcessor, AutoTokenizer, VisionEncoderDecoderModel
    torch.set_num_threads(args.threads)
    files = images_in(args.images, args.limit)
    model = VisionEncoderDecoderModel.from_pretrained(args.model).eval()
    processor = AutoImageProcessor.from_pretrained(args.model)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    start = time.perf_counter()
    texts = []
    with torch.no_grad():
        for i in range(0, len(files), args.batch_size):
            images = [Image.open(f).convert("RGB") for f in files[i:i + args.batch_size]]
            pixel_values = processor(images, return_tensors="pt").pixel_values
            texts += tokenizer.batch_decode(model.generate(pixel_values), skip_special_tokens=True)
    seconds = time.perf_counter() - start
    print(json.dumps({"images": len(files), "seconds": seconds, "first": texts[0]}))


def run(cmd, env=None):
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    stdout = proc.stdout.read().decode()
    stderr = proc.stderr.read().decode()
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        sys.exit(f"{cmd[0]} failed:\n{stderr[-2000:]}")
    return stdout, seconds, usage.ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", default="runs/eval")
    ap.add_argument("--model", default="models/default")
    ap.add_argument("--glimpse", default=".build/release/glimpse")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    files = images_in(args.images, args.limit)
    if not files:
        sys.exit(f"no images in {args.images} (run `make eval` first, or pass --images)")
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), OPENBLAS_NUM_THREADS=str(args.threads))
    out, _, tf_rss = run([sys.executable, __file__, "--worker", "--images", args.images, "--model", args.model,
                          "--batch-size", str(args.batch_size), "--threads", str(args.threads), "--limit", str(args.limit)], env)
    tf = json.loads(out.strip().splitlines()[-1])
    # A fresh directory of our own for the listing and the output: never a fixed path another run
    # (or a user) may own.
    with tempfile.TemporaryDirectory(prefix="glimpse-batch-bench-") as scratch:
        listing = Path(scratch) / "images"
        listing.mkdir()
        for i, f in enumerate(files):
            os.symlink(os.path.abspath(f), listing / f"{i:06d}{Path(f).suffix}")
        _, gl_seconds, gl_rss = run([args.glimpse, "batch", str(listing), "--model", args.model, "--out",
                                     str(Path(scratch) / "out.jsonl"), "--quiet"], env)
    n = len(files)
    tf_ips, gl_ips = tf["images"] / tf["seconds"], n / gl_seconds
    print(f"{n} images, model {args.model}, {args.threads} threads, transformers batch_size {args.batch_size}")
    print(f"{'':14}{'transformers':>14}{'glimpse':>12}{'ratio':>9}")
    print(f"{'images/s':14}{tf_ips:>14.1f}{gl_ips:>12.1f}{gl_ips / tf_ips:>8.2f}x")
    print(f"{'peak RSS MiB':14}{tf_rss:>14.0f}{gl_rss:>12.0f}{gl_rss / tf_rss:>8.2f}x")


if __name__ == "__main__":
    main()
