#!/usr/bin/env python3
"""Random-initialized checkpoints at the size of the published captioners, for benchmarks only.

    .venv/bin/python tools/make_bench_model.py                 # .bench/vit-gpt2  (~1 GB)
    .venv/bin/python tools/make_bench_model.py --blip          # also .bench/blip-base (~1 GB)
    .venv/bin/python tools/make_bench_model.py --only-blip
    .venv/bin/python tools/make_bench_model.py --florence2     # also .bench/florence2-base (~0.9 GB)
    .venv/bin/python tools/make_bench_model.py --only-florence2

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

florence2-base: Florence2ForConditionalGeneration (transformers 5 native, model_type "florence2") with the
shape of florence-community/Florence-2-base: DaViT with Florence2VisionConfig's defaults (embed_dim 128/256/
512/1024, heads 4/8/16/32, groups 4/8/16/32, depths 1/1/9/1, window 12, 768 px -> 24x24 grid, 577 image
tokens), projection_dim 768, BART 768 x (6 encoder + 6 decoder layers), 12 heads, ffn 3072, gelu,
max_position_embeddings 1024.  vocab_size 51328: the tokenizer has 51290 entries (BART's 50265 = 50264 +
<mask>, Florence-2's 1024 added tokens, <image> = 51289) and the embeddings are padded to a multiple of 64,
as transformers' convert_florence2_original_pytorch_to_hf.py does (resize_token_embeddings(len(tokenizer),
64)).  The tokenizer is synthetic but complete: <s>=0 <pad>=1 </s>=2 <unk>=3, the 256 byte symbols, 50004
merges (trained on caption + Florence-2 prompt text, topped up with byte-pair merges), <mask>=50264, then
'<od>' ... '<and>' and '<image>' exactly as tools/make_fixtures.py's florence2 path adds them; saved with
Florence2Processor.save_pretrained (CLIPImageProcessor PIL 768x768 bicubic, no crop, ImageNet mean/std).
generation_config.json as published for Florence-2-base (florence-community / ducviet00/Florence-2-base-hf):
num_beams 3, no_repeat_ngram_size 3, early_stopping true, forced_bos 0, forced_eos 2, decoder_start 2, no
max_length (so transformers' default 20).  Weights: transformers' own init (init_std 0.02), seeded.

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


# ----------------------------------------------------------------------------------------------
# Florence-2-base
# ----------------------------------------------------------------------------------------------
FLORENCE2_BASE = dict(
    image_size=768,
    vision=dict(embed_dim=[128, 256, 512, 1024], num_heads=[4, 8, 16, 32], num_groups=[4, 8, 16, 32],
                depths=[1, 1, 9, 1], patch_size=[7, 3, 3, 3], patch_stride=[4, 2, 2, 2], patch_padding=[3, 1, 1, 1],
                patch_prenorm=[False, True, True, True], window_size=12, mlp_ratio=4.0, qkv_bias=True,
                activation_function="gelu", projection_dim=768, max_position_embeddings=50,
                max_temporal_embeddings=100, drop_path_rate=0.1, initializer_range=0.02),
    text=dict(d_model=768, encoder_layers=6, decoder_layers=6, encoder_attention_heads=12,
              decoder_attention_heads=12, encoder_ffn_dim=3072, decoder_ffn_dim=3072, activation_function="gelu",
              max_position_embeddings=1024, scale_embedding=False, init_std=0.02, dropout=0.1,
              attention_dropout=0.1, activation_dropout=0.1),
)
BART_BASE_VOCAB = 50264  # <s> <pad> </s> <unk> + 256 bytes + 50004 merges; then <mask> = 50264


def bart_vocab_merges(n_vocab: int = BART_BASE_VOCAB):
    """BART's id layout: <s>=0 <pad>=1 </s>=2 <unk>=3, the 256 byte symbols, then merges (a byte-level BPE
    trained on caption and Florence-2 prompt text, topped up with byte-pair merges) up to n_vocab entries."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    import make_fixtures as mf

    b2u = bytes_to_unicode()
    byte_syms = list(b2u.values())
    vocab = {t: i for i, t in enumerate(["<s>", "<pad>", "</s>", "<unk>"])}
    for s in byte_syms:
        vocab[s] = len(vocab)
    merges: list[tuple[str, str]] = []
    trained = ByteLevelBPETokenizer(add_prefix_space=False)
    trained.train_from_iterator(mf.florence2_corpus(), vocab_size=3000, min_frequency=2, show_progress=False,
                                special_tokens=[])
    for m in json.loads(trained.to_str())["model"]["merges"]:
        a, b = m.split(" ") if isinstance(m, str) else m
        if a in vocab and b in vocab and a + b not in vocab:
            vocab[a + b] = len(vocab)
            merges.append((a, b))
    pri = [b2u[c] for c in b" abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"]
    order = pri + [s for s in byte_syms if s not in pri]
    for a, b in itertools.product(order, order):
        if len(vocab) >= n_vocab:
            break
        if a + b not in vocab:
            vocab[a + b] = len(vocab)
            merges.append((a, b))
    assert len(vocab) == n_vocab and len(merges) == n_vocab - 4 - 256, (len(vocab), len(merges))
    return vocab, merges


def florence2_tokenizer():
    """The BART vocabulary above + <mask>, then Florence-2's 1024 added tokens and <image>, added exactly as
    make_fixtures.make_florence2_tokenizer adds them."""
    from transformers import AddedToken, BartTokenizer

    import make_fixtures as mf

    vocab, merges = bart_vocab_merges()
    vocab["<mask>"] = len(vocab)
    tok = BartTokenizer(vocab=vocab, merges=merges)
    tok.add_special_tokens({"extra_special_tokens": mf.FLORENCE2_ADDED})
    tok.add_tokens(AddedToken("<image>", special=True, normalized=False), special_tokens=True)
    tok._set_model_specific_special_tokens({"image_token": "<image>"})
    assert [tok.convert_tokens_to_ids(t) for t in ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]] == [0, 1, 2, 3, 50264]
    assert tok.convert_tokens_to_ids("<od>") == 50265 and tok.convert_tokens_to_ids("<and>") == 51288
    assert tok.convert_tokens_to_ids("<image>") == 51289 and len(tok) == 51290, len(tok)
    return tok


def make_florence2_base(out: Path, seed: int):
    from transformers import (AutoProcessor, Florence2Config, Florence2ForConditionalGeneration,
                              GenerationConfig)

    import make_fixtures as mf

    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.safetensors*"):
        old.unlink()
    tok = florence2_tokenizer()
    spec = FLORENCE2_BASE
    proc = mf.make_florence2_processor(spec, tok)  # CLIPImageProcessorPil 768, image_seq_length 577
    image_id = tok.convert_tokens_to_ids("<image>")
    vocab_size = (len(tok) + 63) // 64 * 64  # 51290 -> 51328, as the conversion script pads
    assert image_id < vocab_size
    torch.manual_seed(seed)
    text = dict(spec["text"], model_type="bart", vocab_size=vocab_size, pad_token_id=1, bos_token_id=0,
                eos_token_id=2, decoder_start_token_id=2, forced_eos_token_id=2)
    cfg = Florence2Config(vision_config=dict(spec["vision"]), text_config=text, image_token_id=image_id)
    model = Florence2ForConditionalGeneration(cfg).eval()
    # Florence-2-base's published generation_config.json (no max_length: transformers' default 20)
    model.generation_config = GenerationConfig(
        num_beams=3, no_repeat_ngram_size=3, early_stopping=True, forced_bos_token_id=0, forced_eos_token_id=2,
        decoder_start_token_id=2, bos_token_id=0, eos_token_id=2, pad_token_id=1)
    model.save_pretrained(str(out), safe_serialization=True)
    proc.save_pretrained(str(out))
    n = sum(p.numel() for p in model.parameters())
    del model

    # reload as a user would
    model = Florence2ForConditionalGeneration.from_pretrained(str(out)).eval()
    proc = AutoProcessor.from_pretrained(str(out))
    assert type(proc).__name__ == "Florence2Processor", type(proc)
    assert proc.image_token_id == image_id == model.config.image_token_id
    assert model.config.text_config.vocab_size == vocab_size and len(proc.tokenizer) == len(tok)
    assert proc.num_image_tokens == mf.florence2_num_image_tokens(spec) == 577, proc.num_image_tokens
    size = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    print(f"{out}: Florence2ForConditionalGeneration, {n / 1e6:.1f} M parameters, vocab_size {vocab_size} "
          f"(tokenizer {len(tok)}, <image> = {image_id}), {proc.num_image_tokens} image tokens, "
          f"{size / 2**20:.0f} MiB on disk")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(REPO / ".bench"))
    ap.add_argument("--blip", action="store_true", help="also write blip-base")
    ap.add_argument("--only-blip", action="store_true")
    ap.add_argument("--florence2", action="store_true", help="also write florence2-base")
    ap.add_argument("--only-florence2", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    import transformers

    transformers.logging.set_verbosity_error()
    out = Path(args.out)
    only = args.only_blip or args.only_florence2
    if not only:
        make_vit_gpt2(out / "vit-gpt2", args.seed)
    if args.blip or args.only_blip:
        make_blip_base(out / "blip-base", args.seed)
    if args.florence2 or args.only_florence2:
        make_florence2_base(out / "florence2-base", args.seed)


if __name__ == "__main__":
    main()
