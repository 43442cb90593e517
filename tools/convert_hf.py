#!/usr/bin/env python3
"""Convert a Hugging Face checkpoint published as pytorch_model.bin into the directory Glimpse reads.

    .venv/bin/python tools/convert_hf.py SRC_DIR DST_DIR

SRC_DIR is a downloaded model directory (e.g. nlpconnect/vit-gpt2-image-captioning or
Salesforce/blip-image-captioning-base) holding pytorch_model.bin (or sharded pytorch_model-*.bin
with an index) plus config.json, preprocessor_config.json and tokenizer files. DST_DIR receives
model.safetensors (F32, tied tensors stored once) and copies of every JSON/text side file. Needs
torch and safetensors (tools/requirements.txt), not transformers. Loading uses weights_only=True, so
a pickle cannot run code.
"""
import argparse
import json
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

SIDE_FILES = ["config.json", "preprocessor_config.json", "generation_config.json", "vocab.json", "merges.txt",
              "vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"]


def load_state_dict(src: Path) -> dict:
    index = src / "pytorch_model.bin.index.json"
    if index.exists():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    elif (src / "pytorch_model.bin").exists():
        shards = ["pytorch_model.bin"]
    else:
        sys.exit(f"{src}: no pytorch_model.bin (or index) found")
    state = {}
    for shard in shards:
        state.update(torch.load(src / shard, map_location="cpu", weights_only=True))
    return state


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    ap.add_argument("--keep-buffers", action="store_true",
                    help="keep legacy buffers such as attn.bias / attn.masked_bias (Glimpse ignores them anyway)")
    args = ap.parse_args()
    state = load_state_dict(args.src)
    out, seen = {}, {}
    # lm_head last, so a tie keeps the embedding's name (which the loader requires) and drops lm_head.
    for name, tensor in sorted(state.items(), key=lambda kv: "lm_head" in kv[0] or "predictions.decoder" in kv[0]):
        if not args.keep_buffers and (name.endswith(".attn.bias") or name.endswith(".attn.masked_bias")
                                      or name.endswith("crossattention.bias") or name.endswith("crossattention.masked_bias")):
            continue
        tensor = tensor.detach().to(torch.float32).contiguous()
        key = tensor.data_ptr(), tuple(tensor.shape)
        if key in seen:  # a tied tensor (lm_head = wte): safetensors stores it once
            print(f"tied: {name} = {seen[key]} (omitted; Glimpse ties lm_head to wte when absent)")
            continue
        seen[key] = name
        out[name] = tensor.clone()
    args.dst.mkdir(parents=True, exist_ok=True)
    save_file(out, str(args.dst / "model.safetensors"), metadata={"format": "pt"})
    for f in SIDE_FILES:
        if (args.src / f).exists() and args.src.resolve() != args.dst.resolve():
            shutil.copy2(args.src / f, args.dst / f)
    print(f"wrote {args.dst / 'model.safetensors'}: {len(out)} tensors")


if __name__ == "__main__":
    main()
