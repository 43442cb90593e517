#!/usr/bin/env python3
"""Random-initialized checkpoints at the size of the published captioners, for benchmarks only.

    .venv/bin/python tools/make_bench_model.py                 # .bench/vit-gpt2  (~1 GB)
    .venv/bin/python tools/make_bench_model.py --blip          # also .bench/blip-base (~1 GB)
    .venv/bin/python tools/make_bench_model.py --only-blip

vit-gpt2: the architecture of nlpconnect/vit-gpt2-image-captioning — ViT-base (224 px, patch 16,
768 x 12 layers, 12 heads, 3072 ffn, gelu) + GPT-2 small (768 x 12, 12 heads, vocab 50257, n_positions
1024, gelu_new, cross-attention, tied lm_head), `<|endoftext|>` = 50256 as bos/eos/pad/decoder start,
ViTImageProcessor 224 bilinear, mean/std 0.5.  The tokenizer is synthetic but complete: the 256 byte
symbols in GPT-2's order (ids 0-255), 50000 merges (a byte-level BPE trained on caption text, topped up
with byte-pair merges) and `<|endoftext|>` = 50256, written as vocab.json + merges.txt + tokenizer.json.

blip-base: BlipForConditionalGeneration with BlipConfig's defaults, the shape of
Salesforce/blip-image-captioning-base (vision 768 x 12, 384 px, patch 16; BERT text decoder 768 x 12,
vocab 30524 = 30522 WordPiece lines + [DEC] + [ENC]), BlipImageProcessor 384 bicubic CLIP mean/std, a
synthetic vocab.txt in BERT's layout ([PAD]=0, [unused*], [UNK]=100, [CLS]=101, [SEP]=102, [MASK]=103).

Weights are random (seeded) and NOT committed: .bench/ is ignored by git.  The captions are
meaningless; the point is the compute and memory of the real sizes.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))

EOT = "<|endoftext|>"


def gpt2_tokenizer(out: Path):
    """vocab.json / merges.txt / tokenizer.json with exactly 50257 entries, GPT-2's id layout."""
    from tokenizers import ByteLevelBPETokenizer, Tokenizer, decoders, models, pre_tokenizers
    from transformers import GPT2TokenizerFast
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    import make_fixtures as mf

    n_merges = 50000
    # GPT-2's vocab.json starts with the 256 byte symbols in bytes_to_unicode()'s order ("!" = 0 ... "Ā" = 188)
    byte_syms = list(bytes_to_unicode().values())
    vocab = {s: i for i, s in enumerate(byte_syms)}
    merges: list[tuple[str, str]] = []
    trained = ByteLevelBPETokenizer(add_prefix_space=False)
    trained.train_from_iterator(mf.corpus_lines(), vocab_size=2000, min_frequency=2, show_progress=False,
                                special_tokens=[])
    tj = json.loads(trained.to_str())
    for m in tj["model"]["merges"]:
        a, b = m.split(" ") if isinstance(m, str) else m
        if a in vocab and b in vocab and a + b not in vocab:
            vocab[a + b] = len(vocab)
            merges.append((a, b))
    # top up with merges of two byte symbols (letters and space first), deterministic order
    pri = [bytes_to_unicode()[c] for c in b" abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"]
    order = pri + [s for s in byte_syms if s not in pri]
    for a, b in itertools.product(order, order):
        if len(merges) >= n_merges:
            break
        if a + b not in vocab:
            vocab[a + b] = len(vocab)
            merges.append((a, b))
    assert len(merges) == n_merges and len(vocab) == 50256, (len(merges), len(vocab))
    vocab[EOT] = 50256
    with open(out / "vocab.json", "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(out / "merges.txt", "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(f"{a} {b}\n")
    tk = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.add_special_tokens([EOT])
    tk.save(str(out / "tokenizer.tmp.json"))
    tok = GPT2TokenizerFast(tokenizer_file=str(out / "tokenizer.tmp.json"), bos_token=EOT, eos_token=EOT,
                            unk_token=EOT)
    tok.save_pretrained(str(out))
    (out / "tokenizer.tmp.json").unlink()
    assert len(tok) == 50257 and tok.convert_tokens_to_ids(EOT) == 50256
    return tok


def make_vit_gpt2(out: Path, seed: int):
    from transformers import (GenerationConfig, GPT2Config, ViTConfig, VisionEncoderDecoderConfig,
                              VisionEncoderDecoderModel)
    from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

    out.mkdir(parents=True, exist_ok=True)
    tok = gpt2_tokenizer(out)
    torch.manual_seed(seed)
    enc = ViTConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                    image_size=224, patch_size=16, hidden_act="gelu", layer_norm_eps=1e-12, qkv_bias=True)
    dec = GPT2Config(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12,
                     activation_function="gelu_new", add_cross_attention=True, is_decoder=True,
                     bos_token_id=50256, eos_token_id=50256, tie_word_embeddings=True)
    cfg = VisionEncoderDecoderConfig.from_encoder_decoder_configs(enc, dec)
    cfg.decoder_start_token_id = cfg.pad_token_id = cfg.eos_token_id = cfg.bos_token_id = 50256
    model = VisionEncoderDecoderModel(config=cfg).eval()
    model.generation_config = GenerationConfig(decoder_start_token_id=50256, bos_token_id=50256,
                                               eos_token_id=50256, pad_token_id=50256, max_length=16,
                                               num_beams=4)
    model.save_pretrained(str(out), safe_serialization=True)
    ViTImageProcessorPil(size={"height": 224, "width": 224}, resample=2, image_mean=[0.5] * 3,
                         image_std=[0.5] * 3).save_pretrained(str(out))
    n = sum(p.numel() for p in model.parameters())
    print(f"{out}: VisionEncoderDecoderModel, {n / 1e6:.1f} M parameters, vocab {len(tok)}")


def bert_vocab_lines(n: int = 30522) -> list[str]:
    lines = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = [chr(c) for c in range(33, 127)] + [chr(c) for c in range(0xA1, 0x250)]
    lines += chars
    lines += ["##" + c for c in chars if c.isalnum()]
    import make_fixtures as mf
    import re

    seen = set(lines)
    for w in sorted({w for line in mf.corpus_lines() for w in re.findall(r"[a-z0-9]+", line.lower())}):
        if w not in seen:
            lines.append(w)
            seen.add(w)
    letters = "abcdefghijklmnopqrstuvwxyz"
    for k in itertools.count(2):
        for t in itertools.product(letters, repeat=k):
            w = "".join(t)
            for cand in (w, "##" + w):
                if len(lines) >= n:
                    return lines
                if cand not in seen:
                    lines.append(cand)
                    seen.add(cand)


def make_blip_base(out: Path, seed: int):
    from transformers import BertTokenizerFast, BlipConfig, BlipForConditionalGeneration
    from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil

    out.mkdir(parents=True, exist_ok=True)
    lines = bert_vocab_lines()
    (out / "vocab.txt").write_text("".join(t + "\n" for t in lines), encoding="utf-8")
    tok = BertTokenizerFast(vocab={t: i for i, t in enumerate(lines)}, do_lower_case=True, bos_token="[DEC]",
                            additional_special_tokens=["[ENC]"])
    assert len(tok) == 30524 and tok.convert_tokens_to_ids("[DEC]") == 30522
    tok.save_pretrained(str(out))
    torch.manual_seed(seed)
    cfg = BlipConfig(
        vision_config=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                           image_size=384, patch_size=16, layer_norm_eps=1e-5, initializer_range=0.02),
        text_config=dict(vocab_size=30524, hidden_size=768, encoder_hidden_size=768, intermediate_size=3072,
                         num_hidden_layers=12, num_attention_heads=12, max_position_embeddings=512,
                         bos_token_id=30522, eos_token_id=2, pad_token_id=0, sep_token_id=102),
        projection_dim=512, image_text_hidden_size=256,
    )
    model = BlipForConditionalGeneration(cfg).eval()
    model.save_pretrained(str(out), safe_serialization=True)
    BlipImageProcessorPil(size={"height": 384, "width": 384}, resample=3).save_pretrained(str(out))
    n = sum(p.numel() for p in model.parameters())
    print(f"{out}: BlipForConditionalGeneration, {n / 1e6:.1f} M parameters, vocab {len(tok)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(REPO / ".bench"))
    ap.add_argument("--blip", action="store_true", help="also write blip-base")
    ap.add_argument("--only-blip", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    import transformers

    transformers.logging.set_verbosity_error()
    out = Path(args.out)
    if not args.only_blip:
        make_vit_gpt2(out / "vit-gpt2", args.seed)
    if args.blip or args.only_blip:
        make_blip_base(out / "blip-base", args.seed)


if __name__ == "__main__":
    main()
