#!/usr/bin/env python3
"""Side-by-side benchmark: the glimpse CLI vs transformers + PyTorch on the same checkpoint and image.

    .venv/bin/python tools/make_bench_model.py            # once: random weights at vit-gpt2 size
    swift build -c release --product glimpse
    .venv/bin/python tools/bench_vs_transformers.py [--model .bench/vit-gpt2] [--image IMG]
        [--threads 2] [--runs 5] [--warmup 1] [--modes greedy,beam3] [--new-tokens 16] [--json OUT]
        [--task '<CAPTION>'] [--text TEXT]                      # Florence-2 models only

Both sides: same model directory, same image, the same number of threads (torch.set_num_threads and
OMP/MKL/OpenBLAS env for transformers; OPENBLAS_NUM_THREADS/OMP_NUM_THREADS/GLIMPSE_THREADS for
glimpse), exactly N new tokens (min_new_tokens = max_new_tokens = N), greedy and beam 3.  Each side
runs in its own subprocess per mode; peak RSS is that child's ru_maxrss (os.wait4), i.e. the whole
process: interpreter/libraries + weights + activations.

Per side and mode (medians over --runs after --warmup runs, all in one process):
  latency   one image end to end once the model is loaded: file decode + preprocess + encoder +
            generation.  transformers: PIL open + image processor + model.generate(pixel_values)
            (generate runs the encoder itself).  glimpse: timing_ms decode + encode + generate.
  encoder   transformers: one model.encoder(pixel_values) forward (timed separately, no_grad);
            glimpse: timing_ms.encode.
  step      decoder time per generated token.  transformers: median interval between successive
            logits-processor calls inside generate() (one decoder forward + beam bookkeeping);
            glimpse: timing_ms.step when the CLI reports it, else timing_ms.generate / N.
            "gen/N" is shown for both sides too (generation time / N, incl. the prefill step).
  load      model load time (transformers: from_pretrained + processor; glimpse: timing_ms.load when
            reported).
  peak RSS  of the process (MiB).

Florence-2 (config.json model_type "florence2", e.g. .bench/florence2-base from `make_bench_model.py
--only-florence2`): the task prompt is part of the input on both sides.  transformers: inputs =
Florence2Processor(text=TASK + TEXT, images=image) (AutoProcessor), then model.generate(input_ids=...,
pixel_values=..., attention_mask=...) with the same exact-N settings; "image decode+prep" includes the
prompt's tokenization.  "encoder" is what generate() runs before the first decoder step, done as
Florence2Model.forward does it: the DaViT tower + multi-modal projector (model.get_image_features), the
prompt's token embeddings with the <image> rows (577 for -base) replaced by the image features
(masked_scatter), and the BART encoder (model.model.language_model.encoder) over that merged sequence;
the JSON also keeps the tower + projector part alone as "vision_ms".  glimpse: `--task TASK [--text TEXT]` is added to the command
line, and timing_ms.encode covers the same work.  Both sides apply the checkpoint's generation_config.json
(no_repeat_ngram_size 3, forced BOS 0 / forced EOS 2 for Florence-2-base): transformers by default, and the
script passes those values explicitly to generate() and no_repeat_ngram_size as --no-repeat-ngram to glimpse
so the two cannot drift apart; num_beams and the exact N new tokens (the last one the forced EOS) are set
by the mode as for the other families.

Glimpse is driven as
    glimpse caption IMG IMG ... --model DIR --json --beams B --min-tokens N --max-tokens N
(the image repeated warmup + runs times in one process, one JSON line per image with
"timing_ms": {"load"?, "decode", "encode", "generate"}).  If the binary is missing the script says how
to build it and, unless --skip-glimpse is given, exits with status 2 after printing transformers' side.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = REPO / ".bench" / "vit-gpt2"
DEFAULT_GLIMPSE = REPO / ".build" / "release" / "glimpse"

MODES = {"greedy": 1, "beam3": 3}


def thread_env(threads: int) -> dict:
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "GLIMPSE_THREADS",
              "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
        env[k] = str(threads)
    return env


def run_child_rss(cmd: list[str], env: dict) -> tuple[int, str, str, float, float]:
    """Like run_child but reaps with os.wait4 to read the child's own peak RSS."""
    import tempfile

    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as fo, tempfile.TemporaryFile("w+") as fe:
        p = subprocess.Popen(cmd, stdout=fo, stderr=fe, env=env, text=True)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        fo.seek(0)
        fe.seek(0)
        return p.returncode, fo.read(), fe.read(), wall, ru.ru_maxrss / 1024.0  # Linux: KiB


def model_type(model_dir) -> str | None:
    return json.loads((Path(model_dir) / "config.json").read_text()).get("model_type")


def florence2_generation_kwargs(model_dir) -> dict:
    """The checkpoint's generation_config.json settings that shape the tokens besides num_beams and the
    length: no_repeat_ngram_size and forced BOS/EOS (both sides apply them by default; passed explicitly
    so that the comparison stays like for like)."""
    p = Path(model_dir) / "generation_config.json"
    gc = json.loads(p.read_text()) if p.exists() else {}
    return {k: gc[k] for k in ("no_repeat_ngram_size", "forced_bos_token_id", "forced_eos_token_id")
            if gc.get(k) is not None}


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


# ----------------------------------------------------------------------------------------------
# transformers worker (runs in its own process)
# ----------------------------------------------------------------------------------------------
def transformers_worker(args):
    import torch

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    import transformers
    from PIL import Image
    from transformers import LogitsProcessor, LogitsProcessorList

    transformers.logging.set_verbosity_error()
    model_dir = Path(args.model)
    cfg = json.loads((model_dir / "config.json").read_text())
    florence2 = cfg.get("model_type") == "florence2"
    extra_gen = florence2_generation_kwargs(model_dir) if florence2 else {}
    vision_ms = None
    t0 = time.perf_counter()
    if florence2:
        from transformers import AutoProcessor, Florence2ForConditionalGeneration

        model = Florence2ForConditionalGeneration.from_pretrained(str(model_dir)).eval()
        fproc = AutoProcessor.from_pretrained(str(model_dir))
        prompt = args.task + (args.text or "")

        def proc(images, return_tensors):
            return fproc(text=prompt, images=images, return_tensors=return_tensors)

        def encoder(inputs):
            """Florence2Model.forward up to the encoder output: vision tower + projector, the prompt's
            embeddings with the image rows scattered in, the BART encoder over the merged sequence."""
            nonlocal vision_ms
            fm = model.model
            tv = time.perf_counter()
            image_features = fm.get_image_features(inputs.pixel_values).pooler_output
            vision_ms = (time.perf_counter() - tv) * 1000
            embeds = fm.get_input_embeddings()(inputs.input_ids)
            image_features = image_features.to(embeds.device, embeds.dtype)
            mask = fm.get_placeholder_mask(inputs.input_ids, inputs_embeds=embeds, image_features=image_features)
            embeds = embeds.masked_scatter(mask, image_features)
            return fm.language_model.encoder(attention_mask=inputs.attention_mask,
                                             inputs_embeds=embeds).last_hidden_state
    elif cfg.get("model_type") == "blip":
        from transformers import BlipForConditionalGeneration
        from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil as Proc

        model = BlipForConditionalGeneration.from_pretrained(str(model_dir)).eval()

        def encoder(pv):
            return model.vision_model(pixel_values=pv).last_hidden_state
    else:
        from transformers import VisionEncoderDecoderModel
        from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil as Proc

        model = VisionEncoderDecoderModel.from_pretrained(str(model_dir)).eval()

        def encoder(pv):
            return model.encoder(pixel_values=pv).last_hidden_state
    if not florence2:
        proc = Proc.from_pretrained(str(model_dir))
    load_ms = (time.perf_counter() - t0) * 1000

    class Stamp(LogitsProcessor):
        def __init__(self):
            self.t = []

        def __call__(self, input_ids, scores):
            self.t.append(time.perf_counter())
            return scores

    beams = MODES[args.mode]
    n = args.new_tokens
    records = []
    for i in range(args.warmup + args.runs):
        t_start = time.perf_counter()
        img = Image.open(args.image).convert("RGB")
        if florence2:
            inputs = proc(images=img, return_tensors="pt")
            gen_inputs = dict(input_ids=inputs.input_ids, pixel_values=inputs.pixel_values,
                              attention_mask=inputs.attention_mask)
            enc_input = inputs
        else:
            pv = proc(images=img, return_tensors="pt").pixel_values
            gen_inputs = dict(pixel_values=pv)
            enc_input = pv
        t_dec = time.perf_counter()
        stamp = Stamp()
        with torch.inference_mode():
            out = model.generate(**gen_inputs, num_beams=beams, do_sample=False, min_new_tokens=n,
                                 max_new_tokens=n, logits_processor=LogitsProcessorList([stamp]), **extra_gen)
        t_gen = time.perf_counter()
        with torch.inference_mode():
            te = time.perf_counter()
            encoder(enc_input)
            enc_ms = (time.perf_counter() - te) * 1000
        steps = [(b - a) * 1000 for a, b in zip(stamp.t, stamp.t[1:])]
        records.append({
            "decode": (t_dec - t_start) * 1000,
            "encode": enc_ms,
            "vision": vision_ms,
            "generate_incl_encoder": (t_gen - t_dec) * 1000,
            "latency": (t_gen - t_start) * 1000,
            "step_median": statistics.median(steps) if steps else None,
            "new_tokens": len(stamp.t),
            "tokens": out[0].tolist(),
        })
    runs = records[args.warmup:]
    res = {
        "side": "transformers",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "threads": torch.get_num_threads(),
        "load_ms": load_ms,
        "latency_ms": med([r["latency"] for r in runs]),
        "encode_ms": med([r["encode"] for r in runs]),
        "vision_ms": med([r["vision"] for r in runs]),
        "generation_kwargs": extra_gen,
        "decode_ms": med([r["decode"] for r in runs]),
        # generation time without the encoder pass (generate() runs the encoder once inside)
        "generate_ms": med([r["generate_incl_encoder"] - r["encode"] for r in runs]),
        "step_ms": med([r["step_median"] for r in runs]),
        "new_tokens": runs[-1]["new_tokens"],
        "tokens": runs[-1]["tokens"],
        "runs": runs,
    }
    print(json.dumps(res))


# ----------------------------------------------------------------------------------------------
# driver
# ----------------------------------------------------------------------------------------------
def default_image() -> Path:
    """A deterministic 640x480 scene (the glimpse CLI and PIL both read PNG)."""
    p = REPO / ".bench" / "bench-640x480.png"
    if not p.exists():
        import numpy as np
        from PIL import Image, ImageDraw

        p.parent.mkdir(parents=True, exist_ok=True)
        rng = np.random.RandomState(3)
        bg = 190 + rng.randint(0, 50, size=(480, 640, 3))
        img = Image.fromarray(bg.astype(np.uint8), "RGB")
        d = ImageDraw.Draw(img)
        d.ellipse([80, 150, 230, 300], fill=(220, 40, 40))
        d.rectangle([380, 120, 560, 300], fill=(40, 80, 220))
        d.regular_polygon((320, 400, 50), 6, rotation=10, fill=(240, 200, 30))
        img.save(p)
    return p


def run_transformers(args, mode) -> dict:
    cmd = [sys.executable, __file__, "--worker", "transformers", "--mode", mode, "--model", str(args.model),
           "--image", str(args.image), "--threads", str(args.threads), "--runs", str(args.runs),
           "--warmup", str(args.warmup), "--new-tokens", str(args.new_tokens), "--task", args.task]
    if args.text:
        cmd += ["--text", args.text]
    rc, out, err, wall, rss = run_child_rss(cmd, thread_env(args.threads))
    if rc != 0:
        raise SystemExit(f"transformers worker failed (rc {rc}):\n{err[-4000:]}")
    res = json.loads(out.strip().splitlines()[-1])
    res["peak_rss_mib"] = rss
    res["wall_s"] = wall
    res["model"] = str(args.model)
    return res


def run_glimpse(args, mode) -> dict:
    """One `glimpse caption IMG` process per run, as a user captions one image: a process given
    several images pipelines them (the next image encodes while this one decodes), which is
    throughput, not latency. Warm-up runs bring the model file into the page cache."""
    n = args.new_tokens
    model = args.glimpse_model or args.model
    cmd = [str(args.glimpse), "caption", str(args.image), "--model", str(model), "--json",
           "--beams", str(MODES[mode]), "--min-tokens", str(n), "--max-tokens", str(n)]
    if model_type(args.model) == "florence2":
        cmd += ["--task", args.task]
        if args.text:
            cmd += ["--text", args.text]
        ngram = florence2_generation_kwargs(args.model).get("no_repeat_ngram_size")
        if ngram is not None:
            cmd += ["--no-repeat-ngram", str(ngram)]
    recs, rss, wall = [], 0, 0.0
    for _ in range(args.warmup + args.runs):
        rc, out, err, w, r = run_child_rss(cmd, thread_env(args.threads))
        if rc != 0:
            raise SystemExit(f"glimpse failed (rc {rc}): {' '.join(cmd[:3])} ...\n{err[-4000:]}")
        lines = [json.loads(line) for line in out.splitlines() if line.strip().startswith("{")]
        if len(lines) != 1 or "error" in lines[0]:
            raise SystemExit(f"glimpse printed {lines[:1]} for one image:\n{out[-2000:]}")
        recs.append(lines[0])
        rss, wall = max(rss, r), wall + w
    runs = recs[args.warmup:]
    t = [r.get("timing_ms", {}) for r in runs]

    def g(key):
        return med([x.get(key) for x in t])

    lat = med([sum(x.get(k, 0.0) for k in ("decode", "encode", "generate")) for x in t])
    gen = g("generate")
    step = g("step") if g("step") is not None else (gen / n if gen is not None else None)
    tokens = runs[-1]["captions"][0].get("tokens", [])
    return {
        "side": "glimpse", "load_ms": g("load"), "latency_ms": lat, "encode_ms": g("encode"), "decode_ms": g("decode"),
        "generate_ms": gen, "step_ms": step, "tokens": tokens, "new_tokens": None,
        "peak_rss_mib": rss, "wall_s": wall, "timing": t, "model": str(model), "command": cmd,
    }


def fmt(v, nd=1):
    if v is None:
        return "-"
    if nd == 1 and abs(v) < 10:
        nd = 2 if abs(v) >= 1 else 3
    return f"{v:.{nd}f}"


def print_table(results, n):
    print()
    hdr = f"{'mode':7s} {'metric':24s} {'transformers':>13s} {'glimpse':>10s} {'gl/tf':>7s} {'speedup':>8s}"
    print(hdr)
    print("-" * len(hdr))
    rows = [
        ("latency/image (ms)", "latency_ms"),
        ("encoder (ms)", "encode_ms"),
        ("decoder step (ms)", "step_ms"),
        (f"generate/{n} (ms)", "gen_per_token"),
        ("image decode+prep (ms)", "decode_ms"),
        ("load (ms)", "load_ms"),
        ("peak RSS (MiB)", "peak_rss_mib"),
    ]
    for mode, r in results.items():
        tf, gl = r.get("transformers"), r.get("glimpse")
        for side in (tf, gl):
            if side and side.get("generate_ms") is not None:
                side["gen_per_token"] = side["generate_ms"] / n
        for i, (label, key) in enumerate(rows):
            a = tf.get(key) if tf else None
            b = gl.get(key) if gl else None
            ratio = (b / a) if (a and b) else None
            speed = (a / b) if (a and b and key != "peak_rss_mib") else None
            print(f"{mode if i == 0 else '':7s} {label:24s} {fmt(a):>13s} {fmt(b):>10s} {fmt(ratio, 2):>7s} "
                  f"{(fmt(speed, 2) + 'x') if speed else '-':>8s}")
        if tf and gl:
            a, b = tf["tokens"], gl["tokens"]
            # glimpse's "tokens" may or may not include the decoder start token
            same = bool(b) and (a == b or a[1:] == b)
            reduced = gl.get("model") != tf.get("model")
            verdict = "yes" if same else ("differ (reduced precision)" if reduced else "NO")
            print(f"{'':7s} {'same tokens':24s} {verdict:>13s}")
        print()
    print("gl/tf: glimpse / transformers (lower is better for every row); speedup = transformers / glimpse.")
    print("Targets (issue 11, vit-gpt2 size, 2 threads): fp32 greedy and beam3 >= 3x, encoder gl/tf <= 0.5; "
          "int8 beam3 >= 6x with peak RSS gl/tf <= 0.3; BLIP-base beam3 >= 3x.")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--image", default=None)
    ap.add_argument("--glimpse", default=str(DEFAULT_GLIMPSE))
    ap.add_argument("--glimpse-model", default=None,
                    help="model directory glimpse runs (e.g. a `glimpse quantize` copy); default --model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--modes", default="greedy,beam3")
    ap.add_argument("--json", default=None, help="also write all results to this file")
    ap.add_argument("--task", default="<CAPTION>",
                    help="Florence-2 models only: the task token (both sides), e.g. '<OD>' (default <CAPTION>)")
    ap.add_argument("--text", default="",
                    help="Florence-2 models only: the task's text input (phrase, region as <loc_..> x4)")
    ap.add_argument("--skip-glimpse", action="store_true")
    ap.add_argument("--skip-transformers", action="store_true")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--mode", default="greedy", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker == "transformers":
        transformers_worker(args)
        return

    args.model = Path(args.model)
    if not (args.model / "config.json").exists():
        raise SystemExit(f"no model at {args.model}: run `.venv/bin/python tools/make_bench_model.py` first")
    args.image = Path(args.image) if args.image else default_image()
    glimpse_missing = not Path(args.glimpse).is_file() or not os.access(args.glimpse, os.X_OK)
    if glimpse_missing and not args.skip_glimpse:
        print(f"glimpse binary not found at {args.glimpse}: build it with `swift build -c release --product "
              f"glimpse` (or `make build`), or pass --glimpse PATH / --skip-glimpse.", file=sys.stderr)
    modes = [m for m in args.modes.split(",") if m]
    for m in modes:
        if m not in MODES:
            raise SystemExit(f"unknown mode {m}; known: {', '.join(MODES)}")
    print(f"model {args.model}  image {args.image}  threads {args.threads}  runs {args.runs} (+{args.warmup} warmup)"
          f"  new tokens {args.new_tokens}  cores {os.cpu_count()}")
    if model_type(args.model) == "florence2":
        print(f"florence2: task {args.task}" + (f"  text {args.text!r}" if args.text else "") +
              f"  generation_config on both sides: {florence2_generation_kwargs(args.model)}")
    results = {}
    for m in modes:
        results[m] = {}
        if not args.skip_transformers:
            print(f"[{m}] transformers ...", flush=True)
            results[m]["transformers"] = run_transformers(args, m)
        if not args.skip_glimpse and not glimpse_missing:
            print(f"[{m}] glimpse ...", flush=True)
            results[m]["glimpse"] = run_glimpse(args, m)
    print_table(results, args.new_tokens)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                               "results": results}, indent=1))
    if glimpse_missing and not args.skip_glimpse:
        sys.exit(2)


if __name__ == "__main__":
    main()
