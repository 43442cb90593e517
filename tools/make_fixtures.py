#!/usr/bin/env python3
"""Build tiny random Hugging Face captioning models and record what transformers computes.

Writes Tests/GlimpseTests/Fixtures/models/ (documented in the README.md kept there by hand):
  images/*.png                      fixture input images (made here, deterministic)
  <model>/                          a complete HF model directory (config, safetensors, tokenizer,
                                    preprocessor_config.json, generation_config.json)
  <model>/reference.safetensors     F32 reference tensors (pixel values, hidden states, logits,
                                    cross-attentions)
  <model>/reference.json            ids, generate() cases with exact kwargs, sequences, scores, text,
                                    tokenizer encode/decode cases
  florence2_tiny/                   Florence2ForConditionalGeneration + Florence2Processor as transformers 5
                                    saves them (processor_config.json with the image processor nested,
                                    no preprocessor_config.json), prompts, post-processing cases

Deterministic: running it twice gives byte-identical files (torch.manual_seed, sorted JSON,
single-threaded torch).  Usage:

    .venv/bin/python tools/make_fixtures.py [--only vit_gpt2_a,blip_tiny,florence2_tiny] [--out DIR]

Pinned versions: tools/requirements.txt.  The versions actually used are recorded in every
reference.json ("versions").
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

import PIL  # noqa: E402
import safetensors  # noqa: E402
import tokenizers  # noqa: E402
import transformers  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from tokenizers import ByteLevelBPETokenizer  # noqa: E402
from transformers import (  # noqa: E402
    AutoTokenizer,
    GenerationConfig,
    GPT2Config,
    GPT2TokenizerFast,
    ViTConfig,
    VisionEncoderDecoderConfig,
    VisionEncoderDecoderModel,
)

transformers.logging.set_verbosity_error()

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "Tests" / "GlimpseTests" / "Fixtures" / "models"

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

# ----------------------------------------------------------------------------------------------
# Text: a caption-like corpus (the scene world's grammar plus some ordinary captions) and tricky
# strings for tokenizer parity.
# ----------------------------------------------------------------------------------------------
SIZES = ["small", "large"]
COLORS = ["red", "green", "blue", "yellow", "purple", "orange", "black"]
SHAPES = ["circle", "square", "triangle", "star", "hexagon"]
EXTRA = [
    "a man riding a bike down the street",
    "two dogs playing with a ball in the park",
    "a woman holding an umbrella in the rain",
    "a plate of food with broccoli and rice",
    "a cat sitting on top of a wooden table",
    "a group of people standing next to a bus",
    "the train is stopped at the station",
    "a bowl of fruit on a kitchen counter",
    "a picture of a red car parked on the side of the road",
    "an airplane flying over the city",
    "A photo of a dog's toy; it isn't new, it's 3 years old!",
    "there are 12 apples and 7 oranges",
]

TRICKY = [
    "a large red circle",
    "A Large RED circle",
    "  leading and trailing spaces  ",
    "multiple   spaces\tand\ttabs\nand newlines\n\n",
    "don't won't it's we're they've I'm you'll he'd",
    "DON'T IT'S",
    "digits 0123456789 and 3.14 and 1,000,000",
    "punctuation!!! ?? ... --- (brackets) [x] {y}",
    "café naïve résumé Ångström",
    "日本語のテキスト and 中文",
    "emoji 🐶🐱 and 👍🏽 and 🏳️‍🌈",
    "a<|endoftext|>b",
    "",
    " ",
    "x",
]


def corpus_lines():
    lines = []
    for s in SIZES:
        for c in COLORS:
            for sh in SHAPES:
                lines.append(f"a {s} {c} {sh}")
    # a deterministic selection of two- and three-object captions
    rng = np.random.RandomState(1234)

    def phrase():
        return f"a {SIZES[rng.randint(2)]} {COLORS[rng.randint(7)]} {SHAPES[rng.randint(5)]}"

    for _ in range(120):
        lines.append(f"{phrase()} to the left of {phrase()}")
        lines.append(f"{phrase()} above {phrase()}")
        lines.append(f"{phrase()}, {phrase()} and {phrase()}")
    lines += EXTRA * 4
    return lines


# ----------------------------------------------------------------------------------------------
# Images
# ----------------------------------------------------------------------------------------------
def make_images(out: Path) -> dict[str, Path]:
    d = out / "images"
    d.mkdir(parents=True, exist_ok=True)
    paths = {}

    # 40x30 (non-square): light gradient background, a red circle left of a blue square.
    w, h = 40, 30
    x = np.linspace(0, 1, w)[None, :, None]
    y = np.linspace(0, 1, h)[:, None, None]
    bg = np.concatenate([200 + 40 * x + 0 * y, 230 - 30 * y + 0 * x, 190 + 50 * x * y], axis=2)
    img = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8), "RGB")
    dr = ImageDraw.Draw(img)
    dr.ellipse([3, 8, 15, 20], fill=(220, 40, 40))
    dr.rectangle([24, 5, 35, 16], fill=(40, 80, 220))
    p = d / "shapes_40x30.png"
    img.save(p, optimize=False)
    paths["shapes_40x30"] = p

    # 64x64: noisy light background, a yellow triangle above a small black hexagon, plus detail.
    rng = np.random.RandomState(7)
    bg = 180 + rng.randint(0, 60, size=(64, 64, 3))
    img = Image.fromarray(bg.astype(np.uint8), "RGB")
    dr = ImageDraw.Draw(img)
    dr.polygon([(32, 4), (50, 30), (14, 30)], fill=(240, 200, 30))
    dr.regular_polygon((32, 48, 9), 6, rotation=10, fill=(30, 30, 30))
    dr.line([(0, 63), (63, 40)], fill=(140, 60, 180), width=2)
    p = d / "scene_64x64.png"
    img.save(p, optimize=False)
    paths["scene_64x64"] = p
    return paths


# ----------------------------------------------------------------------------------------------
# Tokenizers
# ----------------------------------------------------------------------------------------------
EOT = "<|endoftext|>"


def train_bpe(vocab_size: int, workdir: Path) -> Path:
    """Byte-level BPE trained on the caption corpus; returns the path of its tokenizer.json."""
    tok = ByteLevelBPETokenizer(add_prefix_space=False)
    tok.train_from_iterator(
        corpus_lines(), vocab_size=vocab_size, min_frequency=2, special_tokens=[EOT], show_progress=False
    )
    p = workdir / f"bpe_{vocab_size}.json"
    tok.save(str(p))
    return p


def save_gpt2_tokenizer(tok_json: Path, model_dir: Path):
    tok = GPT2TokenizerFast(tokenizer_file=str(tok_json), bos_token=EOT, eos_token=EOT, unk_token=EOT)
    tok.save_pretrained(str(model_dir))
    # transformers 5 saves only tokenizer.json (+ tokenizer_config.json); published GPT-2 checkpoints
    # also carry vocab.json + merges.txt, so write them from the same model.
    tj = json.loads(tok_json.read_text())
    vocab = tj["model"]["vocab"]
    merges = tj["model"]["merges"]
    with open(model_dir / "vocab.json", "w", encoding="utf-8") as f:
        json.dump(dict(sorted(vocab.items(), key=lambda kv: kv[1])), f, ensure_ascii=False)
    with open(model_dir / "merges.txt", "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for m in merges:
            f.write((m if isinstance(m, str) else " ".join(m)) + "\n")
    # Reload from the directory exactly as a user would and check vocab.json/merges.txt give the
    # same tokenizer as tokenizer.json.
    loaded = AutoTokenizer.from_pretrained(str(model_dir))
    slow_dir = Path(tempfile.mkdtemp())
    shutil.copy(model_dir / "vocab.json", slow_dir / "vocab.json")
    shutil.copy(model_dir / "merges.txt", slow_dir / "merges.txt")
    from_files = GPT2TokenizerFast.from_pretrained(str(slow_dir))
    for s in TRICKY + corpus_lines()[:50]:
        a = loaded(s, add_special_tokens=False).input_ids
        b = from_files(s, add_special_tokens=False).input_ids
        assert a == b, (s, a, b)
    shutil.rmtree(slow_dir)
    return loaded


def tokenizer_cases(tok):
    cases = []
    for s in TRICKY:
        ids = tok(s, add_special_tokens=False).input_ids
        cases.append({
            "text": s,
            "ids": ids,
            "decoded": tok.decode(ids),
            "decoded_skip_special": tok.decode(ids, skip_special_tokens=True),
        })
    return cases


# ----------------------------------------------------------------------------------------------
# Model construction
# ----------------------------------------------------------------------------------------------
def scale_(t: torch.Tensor, s: float):
    with torch.no_grad():
        t.mul_(s)


VIT_GPT2_SPECS = {
    # (a) equal hidden sizes, gelu / gelu_new, untied lm_head, mean/std 0.5
    "vit_gpt2_a": dict(
        seed=11, vocab=384, eos=dict(amount=0.0, ramp=0.2),
        vit=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                 image_size=32, patch_size=8, hidden_act="gelu", layer_norm_eps=1e-12, qkv_bias=True),
        gpt2=dict(n_embd=32, n_layer=2, n_head=4, n_positions=64, activation_function="gelu_new",
                  tie_word_embeddings=False),
        mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5],
    ),
    # (b) different hidden sizes (enc_to_dec_proj), odd heads/layers, gelu_new in ViT, ImageNet mean/std
    "vit_gpt2_b": dict(
        seed=22, vocab=448, eos=dict(amount=0.0, ramp=0.2),
        vit=dict(hidden_size=48, num_hidden_layers=3, num_attention_heads=3, intermediate_size=80,
                 image_size=48, patch_size=16, hidden_act="gelu_new", layer_norm_eps=1e-6, qkv_bias=True),
        gpt2=dict(n_embd=36, n_layer=3, n_head=3, n_positions=64, activation_function="gelu",
                  n_inner=72, tie_word_embeddings=False),
        mean=IMAGENET_MEAN, std=IMAGENET_STD,
    ),
    # (c) scale_attn_by_inverse_layer_idx, tied lm_head, no qkv bias in ViT, gelu_pytorch_tanh
    "vit_gpt2_c": dict(
        seed=33, vocab=320, eos=dict(amount=0.0, ramp=0.05),
        vit=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=48,
                 image_size=40, patch_size=8, hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-12,
                 qkv_bias=False),
        gpt2=dict(n_embd=32, n_layer=2, n_head=2, n_positions=64, activation_function="gelu_new",
                  scale_attn_by_inverse_layer_idx=True, tie_word_embeddings=True),
        mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5],
        # tied: output scale from ln_f (not wte, which would make every token predict itself)
        scales=dict(wte=1.0, ln_f=5.0, mlp=3.0, cross=1.0, cross_q=1.0),
    ),
}


def build_vit_gpt2(name: str, spec: dict, tok_json: Path, model_dir: Path):
    torch.manual_seed(spec["seed"])
    tok_probe = GPT2TokenizerFast(tokenizer_file=str(tok_json), bos_token=EOT, eos_token=EOT, unk_token=EOT)
    vocab_size = len(tok_probe)
    eot = tok_probe.convert_tokens_to_ids(EOT)
    enc_cfg = ViTConfig(**spec["vit"], num_channels=3, initializer_range=0.1)
    dec_cfg = GPT2Config(vocab_size=vocab_size, **spec["gpt2"], add_cross_attention=True, is_decoder=True,
                         bos_token_id=eot, eos_token_id=eot, initializer_range=0.1)
    cfg = VisionEncoderDecoderConfig.from_encoder_decoder_configs(enc_cfg, dec_cfg)
    cfg.decoder_start_token_id = eot
    cfg.pad_token_id = eot
    cfg.eos_token_id = eot
    cfg.bos_token_id = eot
    model = VisionEncoderDecoderModel(config=cfg)
    model.eval()
    # Random init (std 0.1) gives near-uniform next-token distributions: beams tie and outputs become
    # sensitive to rounding.  Scale the output embedding so logits spread over several nats, and the
    # cross-attention so the image matters.
    dec = model.decoder
    tied = spec["gpt2"].get("tie_word_embeddings", True)
    sc = dict(wte=3.0, lm_head=3.0, ln_f=1.0, mlp=1.0, cross=3.0, cross_q=2.0)
    sc.update(spec.get("scales", {}))
    with torch.no_grad():
        scale_(dec.transformer.wte.weight, sc["wte"])
        if not tied:
            scale_(dec.lm_head.weight, sc["lm_head"])
        scale_(dec.transformer.ln_f.weight, sc["ln_f"])
        if tied:
            # With tied embeddings the residual stream carries wte[current token], whose dot product
            # with its own output row is large: a random tied model repeats its input forever.  Random
            # signs on ln_f's gain cancel that self-alignment.
            signs = torch.randint(0, 2, dec.transformer.ln_f.weight.shape).float() * 2 - 1
            dec.transformer.ln_f.weight.mul_(signs)
        for blk in dec.transformer.h:
            scale_(blk.crossattention.c_proj.weight, sc["cross"])
            scale_(blk.crossattention.q_attn.weight, sc["cross_q"])
            scale_(blk.mlp.c_proj.weight, sc["mlp"])
            scale_(blk.attn.c_proj.weight, sc.get("attn", 1.0))
        # Tokens that are not printable ASCII (raw bytes >= 0x80, control bytes) would make random
        # captions undecodable garbage: shrink their output rows so they are (almost) never chosen.
        w = dec.transformer.wte.weight if tied else dec.lm_head.weight
        for tid in non_ascii_token_ids(tok_probe):
            if tid != eot:
                w[tid].mul_(0.05)
    return model, eot


def non_ascii_token_ids(tok):
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    b2u = bytes_to_unicode()
    u2b = {u: b for b, u in b2u.items()}
    bad = []
    for token, tid in sorted(tok.get_vocab().items(), key=lambda kv: kv[1]):
        bs = [u2b.get(ch, -1) for ch in token]
        if any(b < 32 or b > 126 for b in bs):
            bad.append(tid)
    return bad


def eos_bias_(model, eot: int, amount: float, ramp: float = 0.0, offset: float = 0.0):
    """Make EOS reachable, more and more likely as the caption grows.  Pure weight edits, so the saved
    HF model carries them:
      - ln_f.bias += a vector along the EOS output row raising EOS's logit by `amount`;
      - wpe[p] += ramp * (p - offset) * u, u the zero-mean unit direction that ln_f maps onto the EOS row, so the
        EOS logit grows with the position."""
    dec = model.decoder
    w = dec.lm_head.weight
    with torch.no_grad():
        row = w[eot].clone()
        dec.transformer.ln_f.bias.add_(row / row.dot(row) * amount)
        if ramp:
            u = row * dec.transformer.ln_f.weight
            u = u - u.mean()
            u = u / u.norm()
            wpe = dec.transformer.wpe.weight
            pos = torch.arange(wpe.shape[0], dtype=wpe.dtype)[:, None]
            wpe.add_(ramp * (pos - offset) * u[None, :])


# ----------------------------------------------------------------------------------------------
# Reference computation helpers
# ----------------------------------------------------------------------------------------------
def f32(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to(torch.float32).contiguous().clone()


def run_generate(model, pixel_values, kwargs, extra_inputs=None):
    kw = dict(kwargs)
    kw.update(return_dict_in_generate=True, output_scores=True)
    inputs = dict(pixel_values=pixel_values)
    if extra_inputs:
        inputs.update(extra_inputs)
    with torch.no_grad():
        out = model.generate(**inputs, **kw)
    return out


def generate_cases(prompt_ids_full, eot, max_new=16):
    """List of (label, kwargs, extra_inputs-maker).  kwargs are passed verbatim to generate() (plus
    return_dict_in_generate=True, output_scores=True, which do not change the result)."""
    base = dict(do_sample=False, max_new_tokens=max_new)
    cases = [
        ("greedy", dict(base, num_beams=1)),
        ("beams3", dict(base, num_beams=3)),
        ("beams5", dict(base, num_beams=5)),
        ("beams3_lp0.5", dict(base, num_beams=3, length_penalty=0.5)),
        ("beams3_lp1.0", dict(base, num_beams=3, length_penalty=1.0)),
        ("beams3_lp2.0", dict(base, num_beams=3, length_penalty=2.0)),
        ("greedy_nrng2", dict(base, num_beams=1, no_repeat_ngram_size=2)),
        ("greedy_nrng3", dict(base, num_beams=1, no_repeat_ngram_size=3)),
        ("beams3_nrng2", dict(base, num_beams=3, no_repeat_ngram_size=2)),
        ("beams3_nrng3", dict(base, num_beams=3, no_repeat_ngram_size=3)),
        ("greedy_rep1.3", dict(base, num_beams=1, repetition_penalty=1.3)),
        ("beams3_rep1.3", dict(base, num_beams=3, repetition_penalty=1.3)),
        ("beams5_nrs3", dict(base, num_beams=5, num_return_sequences=3)),
        ("beams3_es_true", dict(base, num_beams=3, early_stopping=True)),
        ("beams3_es_false", dict(base, num_beams=3, early_stopping=False)),
        ("beams3_es_never", dict(base, num_beams=3, early_stopping="never")),
        ("beams3_es_never_lp2.0", dict(base, num_beams=3, early_stopping="never", length_penalty=2.0)),
        ("greedy_min12", dict(base, num_beams=1, min_new_tokens=12)),
        ("beams3_min12", dict(base, num_beams=3, min_new_tokens=12)),
        ("greedy_max4", dict(do_sample=False, num_beams=1, max_new_tokens=4)),
        ("beams3_max4", dict(do_sample=False, num_beams=3, max_new_tokens=4)),
        ("greedy_prompt", dict(base, num_beams=1), "prompt"),
        ("beams3_prompt", dict(base, num_beams=3), "prompt"),
        # no max_new_tokens: the length limit comes from generation_config.json / the model's defaults
        ("defaults", dict()),
        ("defaults_min30", dict(min_new_tokens=30)),
        ("defaults_beams3_min30", dict(num_beams=3, min_new_tokens=30)),
        ("defaults_prompt_min30", dict(min_new_tokens=30), "prompt"),
    ]
    return cases


def write_json(path: Path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, sort_keys=True, ensure_ascii=False)
        f.write("\n")


def versions():
    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "safetensors": safetensors.__version__,
        "pillow": PIL.__version__,
        "numpy": np.__version__,
    }


def cross_attn_steps(out, n_layers):
    """generate()'s cross_attentions: tuple over generate steps, each a tuple over layers of
    [batch*beams, heads, q_len, N]."""
    res = {}
    for step, per_layer in enumerate(out.cross_attentions):
        assert len(per_layer) == n_layers
        for layer, a in enumerate(per_layer):
            res[(step, layer)] = f32(a)
    return res


# ----------------------------------------------------------------------------------------------
# ViT + GPT-2
# ----------------------------------------------------------------------------------------------
TEACHER_TEXT = "a large red circle to the left of a small blue square"
PROMPT_TEXT = "a small"


def make_vit_gpt2(name: str, spec: dict, out: Path, images: dict[str, Path], workdir: Path):
    from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

    model_dir = out / name
    if model_dir.exists():
        shutil.rmtree(model_dir)
    model_dir.mkdir(parents=True)

    tok_json = train_bpe(spec["vocab"], workdir)
    model, eot = build_vit_gpt2(name, spec, tok_json, model_dir)
    eos_bias_(model, eot, **spec["eos"])
    model.generation_config = GenerationConfig(
        decoder_start_token_id=eot, bos_token_id=eot, eos_token_id=eot, pad_token_id=eot,
        max_length=20, num_beams=1,
    )
    model.save_pretrained(str(model_dir), safe_serialization=True)
    tok = save_gpt2_tokenizer(tok_json, model_dir)
    size = spec["vit"]["image_size"]
    proc = ViTImageProcessorPil(
        do_resize=True, size={"height": size, "width": size}, resample=2, do_rescale=True,
        rescale_factor=1 / 255, do_normalize=True, image_mean=spec["mean"], image_std=spec["std"],
    )
    proc.save_pretrained(str(model_dir))

    # Reload exactly as a user would: from the directory, eager attention (returns weights).
    model = VisionEncoderDecoderModel.from_pretrained(str(model_dir), attn_implementation="eager")
    model.eval()
    return record_reference(
        family="vit-gpt2", model=model, model_dir=model_dir, tok=tok, proc=proc, images=images,
        decoder_start=eot, eos=eot, pad=eot,
        n_dec_layers=spec["gpt2"]["n_layer"],
        teacher_ids=[eot] + tok(TEACHER_TEXT, add_special_tokens=False).input_ids[:9],
        prompt_ids=[eot] + tok(PROMPT_TEXT, add_special_tokens=False).input_ids,
        prompt_text=PROMPT_TEXT,
        spec=spec,
    )


def encoder_hidden(model, pixel_values):
    if hasattr(model, "encoder") and isinstance(model, VisionEncoderDecoderModel):
        return model.encoder(pixel_values=pixel_values).last_hidden_state
    return model.vision_model(pixel_values=pixel_values).last_hidden_state


def record_reference(*, family, model, model_dir, tok, proc, images, decoder_start, eos, pad,
                     n_dec_layers, teacher_ids, prompt_ids, prompt_text, spec, blip=False,
                     blip_prompt_input_ids=None, extra=None):
    tensors = {}
    ref = {
        "family": family,
        "versions": versions(),
        "decoder_start_token_id": decoder_start,
        "eos_token_id": eos,
        "pad_token_id": pad,
        "teacher_forced_ids": teacher_ids,
        "prompt_text": prompt_text,
        "prompt_ids": prompt_ids,
        "images": {},
        "cases": [],
        "tokenizer_cases": tokenizer_cases(tok),
    }
    ref.update(extra or {})
    for img_name, img_path in images.items():
        pil = Image.open(img_path).convert("RGB")
        pv = proc(images=pil, return_tensors="pt").pixel_values
        tensors[f"{img_name}.pixel_values"] = f32(pv)
        with torch.no_grad():
            enc = encoder_hidden(model, pv)
            tensors[f"{img_name}.encoder_hidden"] = f32(enc)
            dids = torch.tensor([teacher_ids])
            if blip:
                o = model.text_decoder(input_ids=dids, encoder_hidden_states=enc, output_attentions=True,
                                       return_dict=True)
                cross = o.cross_attentions
            else:
                o = model(pixel_values=pv, decoder_input_ids=dids, output_attentions=True, return_dict=True)
                cross = o.cross_attentions
            tensors[f"{img_name}.logits"] = f32(o.logits)
            for li, a in enumerate(cross):
                tensors[f"{img_name}.cross_attentions.{li}"] = f32(a)
        ref["images"][img_name] = {
            "file": f"images/{img_path.name}",
            "width": pil.width, "height": pil.height,
            "pixel_values_shape": list(pv.shape),
            "encoder_hidden_shape": list(enc.shape),
        }

        for case in generate_cases(prompt_ids, eos):
            label, kwargs = case[0], case[1]
            use_prompt = len(case) > 2
            extra = None
            if use_prompt:
                if blip:
                    extra = {"input_ids": torch.tensor([blip_prompt_input_ids]),
                             "attention_mask": torch.ones(1, len(blip_prompt_input_ids), dtype=torch.long)}
                else:
                    extra = {"decoder_input_ids": torch.tensor([prompt_ids])}
            want_attn = label in ("greedy", "greedy_prompt", "beams3") and not blip
            kw = dict(kwargs)
            if want_attn:
                kw["output_attentions"] = True
            # record the inputs before generate(): BLIP's generate() overwrites input_ids[:, 0] in place
            inputs_json = {k: v.tolist() for k, v in (extra or {}).items()}
            o = run_generate(model, pv, kw, extra)
            seqs = o.sequences.tolist()
            entry = {
                "label": label,
                "image": img_name,
                "kwargs": kwargs,
                "inputs": inputs_json,
                "sequences": seqs,
                "text": tok.batch_decode(o.sequences, skip_special_tokens=True),
            }
            if kwargs.get("num_beams", 1) > 1:
                entry["sequences_scores"] = o.sequences_scores.tolist()
                entry["beam_indices"] = o.beam_indices.tolist()
            else:
                # greedy: the processed score of each chosen token (what generate's `scores` holds)
                entry["token_scores"] = [
                    float(s[0, t]) for s, t in zip(o.scores, o.sequences[0, -len(o.scores):].tolist())
                ]
                # smallest gap between the chosen and the runner-up processed score (how robust the
                # greedy choice is to rounding)
                entry["min_top2_margin"] = min(
                    float(v[0, 0] - v[0, 1]) for v in (torch.topk(s, 2, dim=-1).values for s in o.scores)
                )
            if want_attn:
                steps = cross_attn_steps(o, n_dec_layers)
                entry["cross_attentions_steps"] = len(o.cross_attentions)
                prefix = f"{img_name}.{label}.cross_attentions"
                for (step, layer), a in steps.items():
                    tensors[f"{prefix}.{step}.{layer}"] = a
                entry["cross_attentions_prefix"] = prefix
            if blip and label in ("greedy", "greedy_prompt"):
                # BLIP's text decoder is decoder-only for generate(): it returns no cross-attentions.
                # Teacher-force the final sequence instead: row p of layer L is the attention of the
                # query at position p, i.e. while predicting token p + 1.
                with torch.no_grad():
                    tf = model.text_decoder(input_ids=o.sequences[:, :-1], encoder_hidden_states=enc,
                                            output_attentions=True, return_dict=True)
                prefix = f"{img_name}.{label}.cross_attentions"
                for li, a in enumerate(tf.cross_attentions):
                    tensors[f"{prefix}.{li}"] = f32(a)
                entry["cross_attentions_prefix"] = prefix
            ref["cases"].append(entry)

    save_file(dict(sorted(tensors.items())), str(model_dir / "reference.safetensors"), metadata={"format": "pt"})
    ref["tensors"] = {k: list(v.shape) for k, v in sorted(tensors.items())}
    write_json(model_dir / "reference.json", ref)
    return ref



# ----------------------------------------------------------------------------------------------
# BLIP
# ----------------------------------------------------------------------------------------------
BLIP_SPECS = {
    "blip_tiny": dict(
        seed=45, vocab=300,
        vision=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                    image_size=32, patch_size=8, layer_norm_eps=1e-5, hidden_act="gelu"),
        text=dict(hidden_size=24, intermediate_size=48, num_hidden_layers=2, num_attention_heads=3,
                  max_position_embeddings=64, hidden_act="gelu", layer_norm_eps=1e-12),
        sep_bias=2.5,
    ),
}
BLIP_PROMPT = "a picture of"
BLIP_TEACHER = "a picture of a large red circle to the left of a blue square"
BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def make_bert_vocab(vocab_size: int, model_dir: Path):
    """A tiny WordPiece vocab, built deterministically (the `tokenizers` WordPiece trainer breaks ties
    differently from run to run): [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4, then single characters,
    their ##continuations, a few ##suffixes, and the most frequent corpus words (some words are left out
    on purpose so they split into pieces: triangle -> tri ##angle, hexagon -> hex ##agon).  vocab.txt
    is written to model_dir; returns a BertTokenizer(Fast) with BLIP's special tokens ([DEC] as bos,
    [ENC] additional) added after the vocab, as in Salesforce/blip-image-captioning-base."""
    import collections
    import re as _re

    from transformers import BertTokenizerFast

    chars = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [str(d) for d in range(10)] + list(".,;:!?'\"()-")
    pieces = ["tri", "##angle", "hex", "##agon", "##ing", "##ed", "##er", "##le", "##ly"]
    left_out = {"triangle", "hexagon", "triangles", "hexagons"}
    counts = collections.Counter()
    for line in corpus_lines():
        for w in _re.findall(r"[a-z0-9]+", line.lower()):
            counts[w] += 1
    words = [w for w, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= 2 and len(w) > 1
             and w not in left_out]
    vocab = list(BERT_SPECIALS) + chars + ["##" + c for c in chars if c.isalnum()] + pieces
    for w in words:
        if len(vocab) >= vocab_size:
            break
        if w not in vocab:
            vocab.append(w)
    (model_dir / "vocab.txt").write_text("".join(t + "\n" for t in vocab), encoding="utf-8")
    tok = BertTokenizerFast(vocab={t: i for i, t in enumerate(vocab)}, do_lower_case=True,
                            bos_token="[DEC]", additional_special_tokens=["[ENC]"])
    assert tok.convert_tokens_to_ids("[DEC]") == len(vocab), (len(vocab), len(set(vocab)), tok.convert_tokens_to_ids("[DEC]"))
    return tok


def make_blip(name: str, spec: dict, out: Path, images: dict[str, Path], workdir: Path):
    from transformers import BlipConfig, BlipForConditionalGeneration, BlipProcessor
    from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil

    model_dir = out / name
    if model_dir.exists():
        shutil.rmtree(model_dir)
    model_dir.mkdir(parents=True)
    tok = make_bert_vocab(spec["vocab"], model_dir)
    dec_id = tok.convert_tokens_to_ids("[DEC]")
    sep_id, pad_id, cls_id = tok.sep_token_id, tok.pad_token_id, tok.cls_token_id
    torch.manual_seed(spec["seed"])
    cfg = BlipConfig(
        vision_config=dict(**spec["vision"], initializer_range=0.1),
        text_config=dict(**spec["text"], vocab_size=len(tok), encoder_hidden_size=spec["vision"]["hidden_size"],
                         bos_token_id=dec_id, eos_token_id=cls_id, sep_token_id=sep_id, pad_token_id=pad_id,
                         initializer_range=0.1),
        projection_dim=16, image_text_hidden_size=16,
    )
    model = BlipForConditionalGeneration(cfg).eval()
    td = model.text_decoder
    with torch.no_grad():
        scale_(td.bert.embeddings.word_embeddings.weight, spec.get("wte_scale", 1.0))
        # Tied output embedding: random signs on the head's LayerNorm gain (see build_vit_gpt2) spread the
        # logits without making every token predict itself.
        ln = td.cls.predictions.transform.LayerNorm.weight
        ln.mul_((torch.randint(0, 2, ln.shape).float() * 2 - 1) * spec.get("head_ln_scale", 5.0))
        bias = td.cls.predictions.bias
        # never generate [PAD] [UNK] [CLS] [MASK] [DEC] [ENC]; make [SEP] (eos) reachable
        for t in ["[PAD]", "[UNK]", "[CLS]", "[MASK]", "[DEC]", "[ENC]"]:
            bias[tok.convert_tokens_to_ids(t)] = -8.0
        bias[sep_id] += spec["sep_bias"]
        for layer in td.bert.encoder.layer:
            scale_(layer.crossattention.output.dense.weight, spec.get("cross_scale", 3.0))
    # Make [SEP] more likely as the caption grows: move the position embeddings along the direction that
    # raises [SEP]'s log-prob (its gradient, averaged over positions), proportionally to the position.
    if spec.get("sep_ramp"):
        pe = td.bert.embeddings.position_embeddings.weight
        ids = torch.tensor([[dec_id] + tok(BLIP_TEACHER, add_special_tokens=False).input_ids])
        enc = model.vision_model(pixel_values=torch.zeros(1, 3, spec["vision"]["image_size"],
                                                          spec["vision"]["image_size"])).last_hidden_state
        pe.grad = None
        logp = torch.log_softmax(td(input_ids=ids, encoder_hidden_states=enc.detach()).logits, -1)
        logp[0, :, sep_id].sum().backward()
        g = pe.grad[: ids.shape[1]].mean(0)
        with torch.no_grad():
            u = g / g.norm()
            pos = torch.arange(pe.shape[0], dtype=pe.dtype)[:, None]
            pe.add_(spec["sep_ramp"] * (pos - spec.get("sep_offset", 0.0)) * u[None, :])
        model.zero_grad(set_to_none=True)
    model.generation_config = GenerationConfig(
        bos_token_id=dec_id, eos_token_id=sep_id, pad_token_id=pad_id, sep_token_id=sep_id,
        decoder_start_token_id=dec_id, max_length=20,
    )
    model.save_pretrained(str(model_dir), safe_serialization=True)
    tok.save_pretrained(str(model_dir))
    size = spec["vision"]["image_size"]
    proc = BlipImageProcessorPil(size={"height": size, "width": size}, resample=3, do_rescale=True,
                                 rescale_factor=1 / 255, do_normalize=True, image_mean=CLIP_MEAN,
                                 image_std=CLIP_STD, do_convert_rgb=True)
    proc.save_pretrained(str(model_dir))

    model = BlipForConditionalGeneration.from_pretrained(str(model_dir), attn_implementation="eager").eval()
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    processor = BlipProcessor(image_processor=proc, tokenizer=tok)
    prompt_enc = processor(text=BLIP_PROMPT)
    # transformers 5 saves a processor as processor_config.json with the image processor nested
    # (and no preprocessor_config.json): kept beside the fixture for the loader's test of that layout.
    with tempfile.TemporaryDirectory() as saved:
        processor.save_pretrained(saved)
        layout = out.parent / "processor" / name
        layout.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(saved) / "processor_config.json", layout / "processor_config.json")
    teacher = [dec_id] + tok(BLIP_TEACHER, add_special_tokens=False).input_ids
    return record_reference(
        family="blip", model=model, model_dir=model_dir, tok=tok, proc=proc, images=images,
        decoder_start=dec_id, eos=sep_id, pad=pad_id,
        n_dec_layers=spec["text"]["num_hidden_layers"],
        teacher_ids=teacher[:12],
        prompt_ids=[dec_id] + list(prompt_enc["input_ids"])[1:-1],
        prompt_text=BLIP_PROMPT,
        spec=spec, blip=True,
        blip_prompt_input_ids=list(prompt_enc["input_ids"]),
        extra={"bos_token_id": dec_id, "sep_token_id": sep_id, "cls_token_id": cls_id,
               "text_config_eos_token_id": cls_id,
               "processor_prompt_input_ids": list(prompt_enc["input_ids"]),
               "processor_prompt_attention_mask": list(prompt_enc["attention_mask"])},
    )

# ----------------------------------------------------------------------------------------------
# ----------------------------------------------------------------------------------------------
# ViT image classification
# ----------------------------------------------------------------------------------------------
VIT_CLASSIFIER_SPECS = {
    # odd sizes: 3 heads of 12, grid 5 (26 rows), 7 labels with multi-word names, ImageNet mean/std
    "vit_cls_tiny": dict(
        seed=44,
        vit=dict(hidden_size=36, num_hidden_layers=3, num_attention_heads=3, intermediate_size=52,
                 image_size=40, patch_size=8, hidden_act="gelu", layer_norm_eps=1e-12, qkv_bias=True),
        labels=["tabby cat", "golden retriever", "red fox", "traffic light", "espresso", "daisy", "sports car"],
        mean=IMAGENET_MEAN, std=IMAGENET_STD,
    ),
}


def attention_rollout(attentions):
    """Abnar & Zuidema (2020): per layer the head-mean attention plus the identity (the residual),
    rows renormalized, multiplied from the first layer up; the class row over the patches."""
    rollout = None
    for a in attentions:
        a = a[0].double().mean(dim=0)
        a = 0.5 * a + 0.5 * torch.eye(a.shape[0], dtype=a.dtype)
        a = a / a.sum(dim=-1, keepdim=True)
        rollout = a if rollout is None else a @ rollout
    return rollout[0, 1:].float()


def make_vit_classifier(name: str, spec: dict, out: Path, images: dict[str, Path]):
    from transformers import ViTForImageClassification
    from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

    model_dir = out / name
    if model_dir.exists():
        shutil.rmtree(model_dir)
    model_dir.mkdir(parents=True)
    torch.manual_seed(spec["seed"])
    labels = spec["labels"]
    cfg = ViTConfig(**spec["vit"], num_labels=len(labels), initializer_range=0.1,
                    id2label={i: l for i, l in enumerate(labels)}, label2id={l: i for i, l in enumerate(labels)})
    model = ViTForImageClassification(cfg).eval()
    with torch.no_grad():
        # Spread the class probabilities (random init gives nearly uniform ones).
        scale_(model.classifier.weight, 8.0)
        # Peaked attention, so the rollout (and its test) tells patches apart.
        for layer in model.vit.layers:
            scale_(layer.attention.q_proj.weight, 6.0)
    model.save_pretrained(str(model_dir), safe_serialization=True)
    size = spec["vit"]["image_size"]
    proc = ViTImageProcessorPil(
        do_resize=True, size={"height": size, "width": size}, resample=2, do_rescale=True,
        rescale_factor=1 / 255, do_normalize=True, image_mean=spec["mean"], image_std=spec["std"],
    )
    proc.save_pretrained(str(model_dir))
    model = ViTForImageClassification.from_pretrained(str(model_dir), attn_implementation="eager").eval()

    tensors, ref = {}, {"family": "vit-image-classification", "versions": versions(), "images": {},
                        "id2label": {str(i): l for i, l in enumerate(labels)}}
    for img_name, img_path in images.items():
        pil = Image.open(img_path).convert("RGB")
        pv = proc(images=pil, return_tensors="pt").pixel_values
        with torch.no_grad():
            o = model(pixel_values=pv, output_attentions=True, output_hidden_states=True, return_dict=True)
            hidden = model.vit.layernorm(o.hidden_states[-1])
        probs = torch.softmax(o.logits[0].double(), dim=-1)
        order = torch.argsort(probs, descending=True, stable=True).tolist()
        tensors[f"{img_name}.pixel_values"] = f32(pv)
        tensors[f"{img_name}.encoder_hidden"] = f32(hidden)
        tensors[f"{img_name}.logits"] = f32(o.logits)
        for li, a in enumerate(o.attentions):
            tensors[f"{img_name}.attentions.{li}"] = f32(a)
        tensors[f"{img_name}.rollout"] = f32(attention_rollout(o.attentions))
        ref["images"][img_name] = {
            "file": f"images/{img_path.name}", "width": pil.width, "height": pil.height,
            "top": [{"id": i, "label": labels[i], "score": float(probs[i])} for i in order],
        }
    save_file(tensors, str(model_dir / "reference.safetensors"))
    ref["tensors"] = {k: list(v.shape) for k, v in sorted(tensors.items())}
    write_json(model_dir / "reference.json", ref)
    return ref


# ----------------------------------------------------------------------------------------------
# Florence-2 (transformers 5 native Florence2ForConditionalGeneration, model_type "florence2")
# ----------------------------------------------------------------------------------------------
FLORENCE2_SPECS = {
    # DaViT vision tower with 4 stages (96 px -> grids 24, 12, 6, 3; window 4, so stages 2 and 3 pad
    # their windows), BART 2+2 layers.  Image tokens = 1 + 3*3 = 10.
    "florence2_tiny": dict(
        seed=8, bpe_vocab=600, image_size=96,
        vision=dict(embed_dim=[8, 16, 24, 32], num_heads=[2, 2, 3, 4], num_groups=[2, 4, 3, 4],
                    depths=[1, 1, 2, 1], patch_size=[7, 3, 3, 3], patch_stride=[4, 2, 2, 2],
                    patch_padding=[3, 1, 1, 1], patch_prenorm=[False, True, True, True], window_size=4,
                    mlp_ratio=4.0, qkv_bias=True, activation_function="gelu", projection_dim=32,
                    max_position_embeddings=6, max_temporal_embeddings=10, drop_path_rate=0.1,
                    initializer_range=0.1),
        text=dict(d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                  decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64,
                  activation_function="gelu", max_position_embeddings=64, scale_embedding=False,
                  init_std=0.1),
        init=dict(weight=0.1, bias=0.05, norm=0.1),
        # see florence2_shape_
        shape=dict(ln_scale=3.0, cross=3.0, cross_q=2.0, shrink=0.05, loc_shift=-0.3, eos_ramp=0.1),
    ),
}

# Florence2Processor's task prompts in transformers 5.24 (checked against the processor below); the
# BPE corpus contains them so that their words are whole tokens.
FLORENCE2_PROMPTS = {
    "<OCR>": "What is the text in the image?",
    "<OCR_WITH_REGION>": "What is the text in the image, with regions?",
    "<CAPTION>": "What does the image describe?",
    "<DETAILED_CAPTION>": "Describe in detail what is shown in the image.",
    "<MORE_DETAILED_CAPTION>": "Describe with a paragraph what is shown in the image.",
    "<OD>": "Locate the objects with category name in the image.",
    "<DENSE_REGION_CAPTION>": "Locate the objects in the image, with their descriptions.",
    "<REGION_PROPOSAL>": "Locate the region proposals in the image.",
    "<CAPTION_TO_PHRASE_GROUNDING>": "Locate the phrases in the caption: {input}",
    "<REFERRING_EXPRESSION_SEGMENTATION>": "Locate {input} in the image with mask",
    "<REGION_TO_SEGMENTATION>": "What is the polygon mask of region {input}",
    "<OPEN_VOCABULARY_DETECTION>": "Locate {input} in the image.",
    "<REGION_TO_CATEGORY>": "What is the region {input}?",
    "<REGION_TO_DESCRIPTION>": "What does the region {input} describe?",
    "<REGION_TO_OCR>": "What text is in the region {input}?",
}
FLORENCE2_REGION = "<loc_100><loc_200><loc_300><loc_400>"
# The text that follows the task token in the examples (tasks with an input only).
FLORENCE2_TASK_INPUTS = {
    "<CAPTION_TO_PHRASE_GROUNDING>": "a red circle",
    "<REFERRING_EXPRESSION_SEGMENTATION>": "the blue square",
    "<REGION_TO_SEGMENTATION>": FLORENCE2_REGION,
    "<OPEN_VOCABULARY_DETECTION>": "a yellow triangle",
    "<REGION_TO_CATEGORY>": "<loc_5><loc_10><loc_995><loc_999>",
    "<REGION_TO_DESCRIPTION>": FLORENCE2_REGION,
    "<REGION_TO_OCR>": "<loc_0><loc_0><loc_500><loc_250>",
}
# generate() cases: every task for both images, with the checkpoint defaults and greedy.
FLORENCE2_GEN_TASKS = [
    ("<CAPTION>", ""),
    ("<OD>", ""),
    ("<CAPTION_TO_PHRASE_GROUNDING>", "a red circle"),
    ("<REGION_TO_DESCRIPTION>", FLORENCE2_REGION),
    ("<OCR_WITH_REGION>", ""),
]
# The forward pass stored as tensors (encoder states, teacher-forced logits, attentions): one per image.
FLORENCE2_FORWARD = {"shapes_40x30": ("<OD>", ""), "scene_64x64": ("<CAPTION_TO_PHRASE_GROUNDING>", "a red circle")}
FLORENCE2_TEACHER = ["a red circle", (120, 340, 560, 780), "blue square", (10, 20, 30, 40)]

# The tokens Florence-2 adds after BART's vocabulary, in its order (then "<image>").
FLORENCE2_ADDED = (["<od>", "</od>", "<ocr>", "</ocr>"] + [f"<loc_{i}>" for i in range(1000)] + [
    "<cap>", "</cap>", "<ncap>", "</ncap>", "<dcap>", "</dcap>", "<grounding>", "</grounding>", "<seg>",
    "</seg>", "<sep>", "<region_cap>", "</region_cap>", "<region_to_desciption>", "</region_to_desciption>",
    "<proposal>", "</proposal>", "<poly>", "</poly>", "<and>"])

# post_processor_config as the florence-community checkpoints carry it (transformers' conversion script,
# convert_florence2_original_pytorch_to_hf.py).  Florence2PostProcessor looks up every parse type it runs
# in this dict, so all eight keys must be present.
FLORENCE2_BANNED_GROUNDING = [
    "it", "I", "me", "mine", "you", "your", "yours", "he", "him", "his", "she", "her", "hers", "they", "them",
    "their", "theirs", "one", "oneself", "we", "us", "our", "ours", "you", "your", "yours", "they", "them",
    "their", "theirs", "mine", "yours", "his", "hers", "its", "ours", "yours", "theirs", "myself", "yourself",
    "himself", "herself", "itself", "ourselves", "yourselves", "themselves", "this", "that", "these", "those",
    "who", "whom", "whose", "which", "what", "who", "whom", "whose", "which", "that", "all", "another", "any",
    "anybody", "anyone", "anything", "each", "everybody", "everyone", "everything", "few", "many", "nobody",
    "none", "one", "several", "some", "somebody", "someone", "something", "each other", "one another",
    "myself", "yourself", "himself", "herself", "itself", "ourselves", "yourselves", "themselves", "the image",
    "image", "images", "the", "a", "an", "a group", "other objects", "lots", "a set",
]
FLORENCE2_POST_PROCESSOR_CONFIG = {
    "ocr": {
        "pattern": r"(.+?)<loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)>",
        "area_threshold": 0.0,
    },
    "phrase_grounding": {"banned_grounding_tokens": FLORENCE2_BANNED_GROUNDING},
    "pure_text": {},
    "description_with_bboxes": {},
    "description_with_polygons": {},
    "polygons": {},
    "bboxes": {},
    "description_with_bboxes_or_polygons": {},
}

# Hand-written generations run through processor.post_process_generation (parsers the random model's
# outputs do not reach).  (task, text with special tokens, image_size (width, height)).
FLORENCE2_POST_CASES = [
    ("<CAPTION>", "</s><s>A green car parked in front of a yellow building.</s>", (40, 30)),
    ("<CAPTION>", "<s>a red circle<loc_1></s><pad><pad>", (40, 30)),
    ("<OD>", "</s><s>car<loc_54><loc_375><loc_906><loc_707>door<loc_710><loc_276><loc_908><loc_537>"
             "wheel<loc_708><loc_531><loc_906><loc_704><loc_0><loc_0><loc_999><loc_999></s>", (640, 480)),
    ("<OD>", "</s><s><loc_1><loc_2><loc_3><loc_4>red circle<loc_10><loc_20><loc_30></s>", (40, 30)),
    # [^<]+ also matches the "loc_1>" left after a "<": a label "loc_1>" with the next four locations
    ("<OD>", "</s><s><loc_1><loc_2><loc_3><loc_4><loc_5></s>", (40, 30)),
    ("<DENSE_REGION_CAPTION>", "</s><s> a large red circle <loc_0><loc_100><loc_200><loc_300>a blue"
                               " square<loc_500><loc_600><loc_700><loc_800></s>", (64, 64)),
    ("<REGION_PROPOSAL>", "</s><s><loc_0><loc_100><loc_200><loc_300><loc_500><loc_600><loc_700><loc_800>"
                          "x<loc_1><loc_2><loc_3><loc_4></s>", (40, 30)),
    ("<CAPTION_TO_PHRASE_GROUNDING>", "</s><s>a red circle<loc_10><loc_20><loc_30><loc_40><loc_50><loc_60>"
                                      "<loc_70><loc_80> the image<loc_1><loc_2><loc_3><loc_4>blue square"
                                      "<loc_100><loc_200><loc_300><loc_400></s>", (40, 30)),
    ("<OCR>", "</s><s>HELLO WORLD</s>", (40, 30)),
    ("<OCR_WITH_REGION>", "</s><s>HELLO<loc_10><loc_20><loc_90><loc_20><loc_90><loc_60><loc_10><loc_60>"
                          "WORLD 2<loc_100><loc_200><loc_900><loc_200><loc_900><loc_600><loc_100><loc_600>"
                          "tail<loc_1></s>", (640, 480)),
    ("<REFERRING_EXPRESSION_SEGMENTATION>", "</s><s><loc_100><loc_200><loc_300><loc_200><loc_300><loc_400>"
                                            "<loc_100><loc_401><sep><loc_500><loc_500><loc_600><loc_500>"
                                            "<loc_600><loc_600></s>", (64, 64)),
    ("<REGION_TO_SEGMENTATION>", "</s><s><poly><loc_10><loc_20><loc_30><loc_40><loc_50><loc_60></poly>"
                                 "<poly><loc_1><loc_2><loc_3><loc_4><loc_5></poly></s>", (40, 30)),
    ("<OPEN_VOCABULARY_DETECTION>", "</s><s>a yellow triangle<loc_100><loc_200><loc_300><loc_400></s>",
     (64, 64)),
    ("<OPEN_VOCABULARY_DETECTION>", "</s><s>a yellow triangle<poly><loc_100><loc_200><loc_300><loc_400>"
                                    "<loc_500><loc_600></poly></s>", (64, 64)),
    ("<REGION_TO_CATEGORY>", "</s><s>circle<loc_1><loc_2><loc_3><loc_4></s>", (40, 30)),
    ("<REGION_TO_DESCRIPTION>", "</s><s>a red circle</s>", (40, 30)),
    ("<REGION_TO_OCR>", "</s><s>HELLO</s>", (40, 30)),
]


def florence2_corpus():
    lines = corpus_lines()
    fillers = ["a red circle", "the blue square", "a yellow triangle", "a small black hexagon", "the car"]
    for _ in range(4):
        for p in FLORENCE2_PROMPTS.values():
            for f in fillers:
                lines.append(p.format(input=f))
    return lines


def make_florence2_tokenizer(vocab_size: int, workdir: Path):
    """BART-style byte-level BPE: <s>=0 <pad>=1 </s>=2 <unk>=3, merges, <mask> last; then Florence-2's
    1024 added tokens (special) and <image> (the processor's image token, a named special token)."""
    from transformers import AddedToken, BartTokenizer

    bpe = ByteLevelBPETokenizer(add_prefix_space=False)
    bpe.train_from_iterator(florence2_corpus(), vocab_size=vocab_size, min_frequency=2,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>"], show_progress=False)
    p = workdir / f"florence2_bpe_{vocab_size}.json"
    bpe.save(str(p))
    tj = json.loads(p.read_text())
    vocab = dict(tj["model"]["vocab"])
    assert [vocab[t] for t in ["<s>", "<pad>", "</s>", "<unk>"]] == [0, 1, 2, 3]
    vocab["<mask>"] = len(vocab)
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in tj["model"]["merges"]]
    tok = BartTokenizer(vocab=vocab, merges=merges)
    tok.add_special_tokens({"extra_special_tokens": FLORENCE2_ADDED})
    tok.add_tokens(AddedToken("<image>", special=True, normalized=False), special_tokens=True)
    tok._set_model_specific_special_tokens({"image_token": "<image>"})
    assert tok.convert_tokens_to_ids("<od>") == len(vocab)
    assert tok.convert_tokens_to_ids("<image>") == len(vocab) + len(FLORENCE2_ADDED) == len(tok) - 1
    return tok


def florence2_init_(model, spec):
    """Every parameter random (so a weight the Swift side fails to load shows up): Linear/Conv/Embedding
    weights N(0, w), biases N(0, b), norm gains 1 + N(0, n), norm biases N(0, b).  Buffers (the
    temporal sinusoid table) untouched."""
    ini = spec["init"]
    with torch.no_grad():
        for name, mod in model.named_modules():
            if isinstance(mod, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.Embedding)):
                mod.weight.normal_(0.0, ini["weight"])
                if getattr(mod, "bias", None) is not None:
                    mod.bias.normal_(0.0, ini["bias"])
            elif isinstance(mod, torch.nn.LayerNorm):
                mod.weight.normal_(1.0, ini["norm"])
                mod.bias.normal_(0.0, ini["bias"])


def build_florence2(spec, tok):
    from transformers import Florence2Config, Florence2ForConditionalGeneration

    torch.manual_seed(spec["seed"])
    image_id = tok.convert_tokens_to_ids("<image>")
    text = dict(spec["text"], vocab_size=len(tok), pad_token_id=1, bos_token_id=0, eos_token_id=2,
                decoder_start_token_id=2, forced_eos_token_id=2)
    cfg = Florence2Config(vision_config=dict(spec["vision"]), text_config=dict(text, model_type="bart"),
                          image_token_id=image_id)
    model = Florence2ForConditionalGeneration(cfg).eval()
    florence2_init_(model, spec)
    return model


def make_florence2_processor(spec, tok):
    from transformers import Florence2Processor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    size = spec["image_size"]
    ip = CLIPImageProcessorPil(
        do_resize=True, size={"height": size, "width": size}, resample=3, do_center_crop=False,
        crop_size={"height": size, "width": size}, do_rescale=True, rescale_factor=1 / 255,
        do_normalize=True, image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD, do_convert_rgb=True,
        image_seq_length=florence2_num_image_tokens(spec),
    )
    return Florence2Processor(image_processor=ip, tokenizer=tok, post_processor_config=FLORENCE2_POST_PROCESSOR_CONFIG)


def florence2_grids(spec):
    v, g, out = spec["vision"], spec["image_size"], []
    for k, s, p in zip(v["patch_size"], v["patch_stride"], v["patch_padding"]):
        g = (g + 2 * p - k) // s + 1
        out.append(g)
    return out


def florence2_num_image_tokens(spec):
    return 1 + florence2_grids(spec)[-1] ** 2


def florence2_shape_(model, spec, tok, proc, image: Image.Image):
    """Random init gives near-uniform, input-independent next-token distributions, and with the tied
    output embedding every token predicts itself.  Weight edits (all saved in the checkpoint):
      - the last decoder layer's final_layer_norm gain x ln_scale with random signs (spreads the logits and
        cancels the self-alignment of the tied embedding, as for vit_gpt2_c);
      - cross-attention out_proj x cross, q_proj x cross_q (the image and the prompt matter);
      - rows of <pad> <unk> <mask> <image> <s> and of non-printable byte tokens x shrink (rarely chosen);
      - loc_shift * d added to the 1000 <loc_N> rows (d a random unit vector): with 1000 of the ~1600
        rows being locations a random model emits almost only <loc_N>; the shift balances words and
        locations;
      - decoder position embeddings += eos_ramp * position * u, u the direction that raises log p(</s>)
        (gradient of the summed EOS log-prob over a teacher-forced sequence, averaged over positions), so
        that generation ends on its own after ~5-15 tokens."""
    sh = spec["shape"]
    g = torch.Generator().manual_seed(spec["seed"] + 1)
    lm = model.model.language_model
    emb = lm.shared.weight
    dec = lm.decoder
    fln = dec.layers[-1].final_layer_norm
    loc0 = tok.convert_tokens_to_ids("<loc_0>")
    with torch.no_grad():
        signs = torch.randint(0, 2, fln.weight.shape, generator=g).float() * 2 - 1
        fln.weight.mul_(signs * sh["ln_scale"])
        for layer in dec.layers:
            layer.encoder_attn.out_proj.weight.mul_(sh["cross"])
            layer.encoder_attn.q_proj.weight.mul_(sh["cross_q"])
        shrink = [tok.convert_tokens_to_ids(t) for t in ["<pad>", "<unk>", "<mask>", "<image>", "<s>"]]
        shrink += [i for i in non_ascii_token_ids(tok) if i > 3]
        for t in sorted(set(shrink)):
            emb[t].mul_(sh["shrink"])
        d = torch.randn(emb.shape[1], generator=g)
        emb[loc0:loc0 + 1000] += sh["loc_shift"] * d / d.norm()
    enc = proc(text="<CAPTION>", images=image, return_tensors="pt")
    ids = [2, 0] + tok("a red circle blue square", add_special_tokens=False).input_ids
    ids += [loc0 + 5, loc0 + 50, loc0 + 500, loc0 + 900] * 2
    pe = dec.embed_positions.weight
    model.zero_grad(set_to_none=True)
    logp = torch.log_softmax(model(**enc, decoder_input_ids=torch.tensor([ids])).logits, -1)
    logp[0, :, 2].sum().backward()
    grad = pe.grad[2:2 + len(ids)].mean(0)  # rows 0, 1 are BART's position offset
    with torch.no_grad():
        u = grad / grad.norm()
        pos = torch.arange(pe.shape[0], dtype=pe.dtype)[:, None] - 2
        pe.add_(sh["eos_ramp"] * pos * u[None, :])
    model.zero_grad(set_to_none=True)


def florence2_task_key(task: str) -> str:
    return task.strip("<>")


def florence2_generation_config():
    # Florence-2's generation defaults (florence-community/Florence-2-*), max_length shortened to 20.
    return GenerationConfig(
        num_beams=3, no_repeat_ngram_size=3, early_stopping=False, forced_bos_token_id=0, forced_eos_token_id=2,
        decoder_start_token_id=2, bos_token_id=0, eos_token_id=2, pad_token_id=1, max_length=20,
    )


FLORENCE2_TOKENIZER_EXTRA = [
    "a red circle<loc_1><loc_999>",
    "<s>What does the image describe?</s>",
    "<od>car</od><loc_0><loc_10><loc_200><loc_999>",
    " <loc_5> spaced <image> tokens <and> ",
    "What does the region <loc_100><loc_200><loc_300><loc_400> describe?",
    "<loc_1000> is not a token, <LOC_1> neither",
    "<pad><unk><mask><poly><sep></poly>",
]


def make_florence2(name: str, spec: dict, out: Path, images: dict[str, Path], workdir: Path):
    from transformers import AutoProcessor, Florence2ForConditionalGeneration
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    model_dir = out / name
    if model_dir.exists():
        shutil.rmtree(model_dir)
    model_dir.mkdir(parents=True)
    pils = {n: Image.open(p).convert("RGB") for n, p in images.items()}

    tok = make_florence2_tokenizer(spec["bpe_vocab"], workdir)
    proc = make_florence2_processor(spec, tok)
    assert {**proc.task_prompts_without_inputs, **proc.task_prompts_with_input} == FLORENCE2_PROMPTS
    assert set(proc.tasks_answer_post_processing_type) == set(FLORENCE2_PROMPTS)
    model = build_florence2(spec, tok)
    florence2_shape_(model, spec, tok, proc, pils["shapes_40x30"])
    model.generation_config = florence2_generation_config()
    model.save_pretrained(str(model_dir), safe_serialization=True)
    proc.save_pretrained(str(model_dir))

    # Reload exactly as a user would.
    model = Florence2ForConditionalGeneration.from_pretrained(str(model_dir), attn_implementation="eager").eval()
    proc = AutoProcessor.from_pretrained(str(model_dir))
    tok = proc.tokenizer
    assert type(proc).__name__ == "Florence2Processor", type(proc)
    assert isinstance(proc.image_processor, CLIPImageProcessorPil), type(proc.image_processor)
    assert type(tok).__name__ == "RobertaTokenizer", type(tok)  # = BartTokenizer in transformers 5
    image_id = tok.convert_tokens_to_ids("<image>")
    assert proc.image_token == "<image>" and proc.image_token_id == image_id == model.config.image_token_id
    n_img = proc.num_image_tokens
    assert n_img == florence2_num_image_tokens(spec)
    vt = model.model.vision_tower
    lm = model.model.language_model

    tensors = {}
    special = {t: tok.convert_tokens_to_ids(t) for t in
               ["<s>", "<pad>", "</s>", "<unk>", "<mask>", "<image>"] + FLORENCE2_ADDED[:5] +
               ["<loc_999>"] + FLORENCE2_ADDED[-20:]}
    ref = {
        "family": "florence2",
        "versions": versions(),
        "special_tokens": special,
        "bos_token_id": 0, "pad_token_id": 1, "eos_token_id": 2, "decoder_start_token_id": 2,
        "image_token_id": image_id,
        "num_image_tokens": n_img,
        "vision_grids": florence2_grids(spec),
        "base_vocab_size": special["<mask>"] + 1,
        "vocab_size": len(tok),
        "generation_config": json.loads((model_dir / "generation_config.json").read_text()),
        "images": {},
        "task_prompts": {},
        "prompt_construction": [],
        "cases": [],
        "post_process_cases": [],
        "tokenizer_cases": tokenizer_cases(tok) + [
            {"text": s, "ids": (ids := tok(s, add_special_tokens=False).input_ids), "decoded": tok.decode(ids),
             "decoded_skip_special": tok.decode(ids, skip_special_tokens=True)}
            for s in FLORENCE2_TOKENIZER_EXTRA],
    }

    # Prompt construction and tokenization for every task (the shapes image; ids do not depend on it).
    for task in FLORENCE2_PROMPTS:
        text = task + FLORENCE2_TASK_INPUTS.get(task, "")
        prompt = proc._construct_prompts(text)[0]
        full = proc(text=text, images=pils["shapes_40x30"])
        ref["task_prompts"][task] = {
            "text": text,
            "prompt": prompt,
            "prompt_ids": tok(prompt, add_special_tokens=False).input_ids,
            "input_ids": list(full["input_ids"][0]),
            "attention_mask": list(full["attention_mask"][0]),
            "post_processing_type": proc.tasks_answer_post_processing_type[task],
        }
    for text in ["<CAPTION_TO_PHRASE_GROUNDING>  a red circle  ", "a photo of", "", "<OD> x",
                 "x <REGION_TO_CATEGORY> y", "<CAPTION><OD>"]:
        try:
            entry = {"text": text, "prompt": proc._construct_prompts(text)[0]}
        except ValueError as e:
            entry = {"text": text, "error": str(e)}
        ref["prompt_construction"].append(entry)

    teacher = [2, 0] + tok("a red circle", add_special_tokens=False).input_ids
    teacher += [tok.convert_tokens_to_ids(f"<loc_{i}>") for i in FLORENCE2_TEACHER[1]]
    teacher += tok("blue square", add_special_tokens=False).input_ids
    teacher += [tok.convert_tokens_to_ids(f"<loc_{i}>") for i in FLORENCE2_TEACHER[3]]
    ref["teacher_forced_ids"] = teacher

    for img_name, pil in pils.items():
        task, inp = FLORENCE2_FORWARD[img_name]
        key = f"{img_name}.{florence2_task_key(task)}"
        enc = proc(text=task + inp, images=pil, return_tensors="pt")
        pv = enc["pixel_values"]
        tensors[f"{img_name}.pixel_values"] = f32(pv)
        with torch.no_grad():
            h = pv
            for i, (conv, blocks) in enumerate(zip(vt.convs, vt.blocks)):
                h = conv(h)
                tensors[f"{img_name}.vision_conv{i}"] = f32(h)
                for blk in blocks:
                    h = blk(h)
                tensors[f"{img_name}.vision_stage{i}"] = f32(h)
            vis = vt(pv).last_hidden_state
            assert torch.equal(vis, h)
            feats = model.model.get_image_features(pv).pooler_output
            embeds = lm.get_input_embeddings()(enc["input_ids"])
            mask = enc["input_ids"] == image_id
            merged = embeds.masked_scatter(mask[..., None], feats)
            eo = lm.encoder(inputs_embeds=merged, attention_mask=enc["attention_mask"], output_attentions=True)
            o = model(**enc, decoder_input_ids=torch.tensor([teacher]), output_attentions=True)
            assert torch.equal(o.encoder_last_hidden_state, eo.last_hidden_state)
        tensors[f"{img_name}.vision_hidden"] = f32(vis)
        tensors[f"{img_name}.image_features"] = f32(feats)
        tensors[f"{key}.inputs_embeds"] = f32(merged)
        tensors[f"{key}.encoder_hidden"] = f32(eo.last_hidden_state)
        for li, a in enumerate(eo.attentions):
            tensors[f"{key}.encoder_attentions.{li}"] = f32(a)
        tensors[f"{key}.logits"] = f32(o.logits)
        for li, a in enumerate(o.decoder_attentions):
            tensors[f"{key}.decoder_attentions.{li}"] = f32(a)
        for li, a in enumerate(o.cross_attentions):
            tensors[f"{key}.cross_attentions.{li}"] = f32(a)
        ref["images"][img_name] = {
            "file": f"images/{images[img_name].name}", "width": pil.width, "height": pil.height,
            "pixel_values_shape": list(pv.shape),
            "vision_hidden_shape": list(vis.shape),
            "image_features_shape": list(feats.shape),
            "forward": {
                "task": task, "text": task + inp, "key": key,
                "input_ids": enc["input_ids"][0].tolist(),
                "attention_mask": enc["attention_mask"][0].tolist(),
                "decoder_input_ids": teacher,
            },
        }

        for task, inp in FLORENCE2_GEN_TASKS:
            enc = proc(text=task + inp, images=pil, return_tensors="pt")
            for label, kwargs in [("defaults", {"max_new_tokens": 16}),
                                  ("greedy", {"num_beams": 1, "max_new_tokens": 16})]:
                with torch.no_grad():
                    o = model.generate(**enc, **kwargs, return_dict_in_generate=True, output_scores=True)
                text = proc.batch_decode(o.sequences, skip_special_tokens=False)[0]
                entry = {
                    "image": img_name, "label": label, "task": task, "task_input": inp, "text_input": task + inp,
                    "kwargs": kwargs,
                    "input_ids": enc["input_ids"][0].tolist(),
                    "sequences": o.sequences.tolist(),
                    "text": text,
                    "text_skip_special": proc.batch_decode(o.sequences, skip_special_tokens=True)[0],
                    "parsed": proc.post_process_generation(text, task=task, image_size=(pil.width, pil.height)),
                }
                if o.sequences.shape[0] > 1 or kwargs.get("num_beams", 3) > 1:
                    entry["sequences_scores"] = o.sequences_scores.tolist()
                    entry["beam_indices"] = o.beam_indices.tolist()
                else:
                    seq = o.sequences[0, -len(o.scores):].tolist()
                    entry["token_scores"] = [float(s[0, t]) for s, t in zip(o.scores, seq)]
                    # top1 - top2 of the processed scores, over the steps that were not forced (forced
                    # bos / eos leave a single finite score)
                    gaps = [float(v[0, 0] - v[0, 1]) for v in (torch.topk(s, 2, dim=-1).values for s in o.scores)]
                    entry["forced_steps"] = [i for i, x in enumerate(gaps) if x == float("inf")]
                    entry["min_top2_margin"] = min(x for x in gaps if x != float("inf"))
                    assert entry["min_top2_margin"] > 1e-3, entry
                ref["cases"].append(entry)

    # Robustness: the same cases in float64 give the same sequences (nothing hinges on float32 rounding).
    m64 = Florence2ForConditionalGeneration.from_pretrained(str(model_dir)).eval().double()
    for c in ref["cases"]:
        enc = proc(text=c["text_input"], images=pils[c["image"]], return_tensors="pt")
        enc["pixel_values"] = enc["pixel_values"].double()
        with torch.no_grad():
            o = m64.generate(**enc, **c["kwargs"])
        assert o.tolist() == c["sequences"], (c["image"], c["task"], c["label"])
    del m64

    for task, text, size in FLORENCE2_POST_CASES:
        ref["post_process_cases"].append({
            "task": task, "text": text, "image_size": list(size),
            "result": proc.post_process_generation(text, task=task, image_size=size),
        })

    save_file(dict(sorted(tensors.items())), str(model_dir / "reference.safetensors"), metadata={"format": "pt"})
    ref["tensors"] = {k: list(v.shape) for k, v in sorted(tensors.items())}
    write_json(model_dir / "reference.json", ref)
    return ref


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    ap.add_argument("--only", default="", help="comma-separated model names")
    ap.add_argument("--summary", action="store_true", help="print the generated texts")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    only = set(filter(None, args.only.split(",")))
    workdir = Path(tempfile.mkdtemp(prefix="glimpse_fx_"))
    images = make_images(out)
    refs = {}
    for name, spec in VIT_GPT2_SPECS.items():
        if only and name not in only:
            continue
        refs[name] = make_vit_gpt2(name, spec, out, images, workdir)
    for name, spec in BLIP_SPECS.items():
        if only and name not in only:
            continue
        refs[name] = make_blip(name, spec, out, images, workdir)
    for name, spec in VIT_CLASSIFIER_SPECS.items():
        if only and name not in only:
            continue
        make_vit_classifier(name, spec, out, images)
    for name, spec in FLORENCE2_SPECS.items():
        if only and name not in only:
            continue
        refs[name] = make_florence2(name, spec, out, images, workdir)
    shutil.rmtree(workdir)
    if args.summary:
        for name, ref in refs.items():
            print(f"== {name}")
            for c in ref.get("cases", []):
                lens = [len(s) for s in c["sequences"]]
                print(f"  {c['image']:14s} {c['label']:22s} lens={lens} {c.get('sequences_scores', '')} "
                      f"{c['text']}")


if __name__ == "__main__":
    main()
