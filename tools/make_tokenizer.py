#!/usr/bin/env python3
"""Byte-level BPE tokenizer for the scene-world grammar (GPT-2 style).

    python tools/make_tokenizer.py --out DIR

Every word of the grammar, with and without its leading space, is one token; ","
is one token; `<|endoftext|>` (id 0) is bos, eos, pad and decoder start.
Writes vocab.json, merges.txt, tokenizer.json, tokenizer_config.json,
special_tokens_map.json (GPT2TokenizerFast.save_pretrained plus our own
vocab.json/merges.txt if transformers did not write them).
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenes  # noqa: E402

EOT = "<|endoftext|>"
WORDS = (["a", "small", "large", "to", "the", "left", "of", "above", "and"]
         + scenes.COLOR_NAMES + scenes.SHAPES)


def corpus():
    lines = []
    for w in WORDS:
        lines += [w, " " + w] * 50
    lines += [",", "a small red circle, a large blue star and a small green square"] * 20
    for s in range(3):
        for i in range(300):
            import numpy as np
            rng = np.random.default_rng([99, s, i])
            objs = [dict(size=scenes.SIZES[rng.integers(2)], color=scenes.COLOR_NAMES[rng.integers(7)],
                         shape=scenes.SHAPES[rng.integers(5)]) for _ in range(s + 1)]
            rel = "left" if rng.random() < 0.5 else "above"
            lines.append(scenes.make_caption(objs, rel))
    return lines


def build(out):
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers
    from transformers import GPT2TokenizerFast
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=420, min_frequency=1, special_tokens=[EOT],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus(), trainer)
    # verify: every word and " word" one token
    for w in WORDS + [","]:
        for v in (w, " " + w):
            if v == " ,":
                continue
            ids = tok.encode(v).ids
            assert len(ids) == 1, (v, ids, tok.encode(v).tokens)
    os.makedirs(out, exist_ok=True)
    fast = GPT2TokenizerFast(tokenizer_object=tok, bos_token=EOT, eos_token=EOT, pad_token=EOT,
                             unk_token=EOT, add_prefix_space=False)
    fast.model_max_length = 32
    fast.save_pretrained(out)
    # vocab.json + merges.txt straight from the trained model (the Swift engine reads them)
    tj = json.loads(tok.to_str())
    vocab = tj["model"]["vocab"]
    merges = tj["model"]["merges"]
    with open(os.path.join(out, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(out, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for m in merges:
            f.write((m if isinstance(m, str) else " ".join(m)) + "\n")
    # check the saved directory round-trips
    t2 = GPT2TokenizerFast.from_pretrained(out)
    cap = "a small red circle, a large purple star and a small blue square"
    ids = t2(cap, add_special_tokens=False)["input_ids"]
    assert t2.decode(ids) == cap, t2.decode(ids)
    assert len(ids) == len(cap.replace(",", " ,").split()), ids
    assert t2.convert_tokens_to_ids(EOT) == 0
    print(f"tokenizer: {len(vocab)} tokens, {len(merges)} merges -> {out}")
    return t2


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/tokenizer")
    build(ap.parse_args().out)
