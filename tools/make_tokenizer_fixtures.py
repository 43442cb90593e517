#!/usr/bin/env python3
"""Tokenizer parity fixtures for Glimpse's Swift tokenizers.

Trains a small GPT-2-style byte-level BPE and a small BERT/BLIP-style WordPiece
vocabulary with the `tokenizers` package, saves each in two layouts that
transformers loads:

  gpt2-vocab-merges/   vocab.json + merges.txt + tokenizer_config.json + special_tokens_map.json
  gpt2-tokenizer-json/ tokenizer.json + tokenizer_config.json (what transformers 5 saves)
  bert-vocab-txt/      vocab.txt + tokenizer_config.json + special_tokens_map.json (BLIP-like, [DEC] bos)
  bert-tokenizer-json/ tokenizer.json + tokenizer_config.json

then loads every directory back with transformers' AutoTokenizer and records, for a
corpus of tricky strings, the ids of `tokenizer(text, add_special_tokens=False)` and the
decoded text with skip_special_tokens True and False, in `parity.json`.

Run with the pinned environment (tools/requirements.txt):
    python tools/make_tokenizer_fixtures.py [--out Tests/GlimpseTests/Fixtures/tokenizers]
"""
import argparse
import collections
import json
import os
import random
import shutil

import tokenizers
import transformers
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from tokenizers import AddedToken
from transformers import AutoTokenizer, BertTokenizer, GPT2Tokenizer

# A varied training corpus: prose, contractions, numbers, code, accents, CJK, emoji.
TRAIN_TEXT = """
A large green square to the left of a small orange triangle.
Two red circles above a blue rectangle; the rectangle isn't moving.
It's a dog. They're running. We've seen it. I'm sure you'll like it, he'd say.
The photo shows a man riding a horse on a beach at sunset, with waves behind him.
A cat sitting on top of a wooden table next to a laptop computer.
There are 3 apples, 12 oranges and 1,024 grapes in 2024 (or was it 2025?).
Prices: $4.99, €12,50, ¥300 and 50% off!!! Call 555-0100 now...
def encode(text: str) -> list[int]:\n    return [ord(c) for c in text]  # comment
if (x >= 10 && y != 3) { print("hello, world") }
Café, naïve, résumé, façade, Ångström, Straße, Übermaß, coöperate, São Paulo, Zürich.
Ελληνικά γράμματα, русский текст, עברית, العربية, हिन्दी, ภาษาไทย.
日本語のテキストと中文文本，还有한국어 문장도 있습니다。
Emoji: 😀 😃 🐶 🚀 👍🏽 👨‍👩‍👧 ❤️ 🇫🇷 ✨
Tabs\tand\tnewlines\nand   runs   of    spaces   and trailing spaces   
THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG. the quick brown fox jumps over the lazy dog.
a person holding an umbrella in the rain; a bus parked on the side of a street.
a plate of food with broccoli and rice; a group of people standing around a kitchen.
"""

# Strings whose tokenization is compared with transformers.
CORPUS = [
    "",
    " ",
    "a",
    "hello world",
    "Hello World",
    " hello world",
    "a large green square to the left of a small orange triangle",
    "A cat sitting on top of a wooden table.",
    "It's John's dog; they're sure we've seen I'm here, you'll see, he'd go.",
    "IT'S JOHN'S DOG THEY'RE WE'VE I'M YOU'LL HE'D",
    "don't can't won't isn't",
    "'s 't 're 've 'm 'll 'd",
    "''' ' ' 's's",
    "rock 'n' roll",
    "12345 1,234.56 3.14159 007 2024-11-26",
    "⅓ ½ ² ³ ٣ ໓",
    "!!! ??? ... --- (((brackets))) [x] {y} <z>",
    "hello, world! how are you? fine. thanks.",
    "\"quoted\" 'single' `back`",
    "tabs\tbetween\twords",
    "new\nlines\n\nand\r\nCRLF",
    "trailing spaces   ",
    "   leading spaces",
    "multiple     spaces   between",
    " \t \n mixed whitespace \n\t ",
    "\n",
    "\t\t",
    "nbsp\u00a0here and\u3000ideographic space",
    "Café naïve résumé façade Ångström",
    "Cafe\u0301 composed vs decomposed e\u0301",
    "\u212bngstrom sign vs \u00c5ngstrom",
    "Straße ÜBERMASS İstanbul ΣΊΣΥΦΟΣ",
    "日本語のテキスト",
    "中文文本，还有标点。",
    "한국어 문장",
    "mixed日本English中文",
    "Ελληνικά русский עברית العربية हिन्दी ภาษาไทย",
    "😀 😃 🐶 🚀",
    "👍🏽 👨‍👩‍👧 ❤️ 🇫🇷",
    "emoji😀inside",
    "zero\u200bwidth\u200djoiner\ufeffbom",
    "control\u0000chars\u0007here\u0085nel",
    "replacement \ufffd char",
    "def encode(text: str) -> list[int]:\n    return [ord(c) for c in text]",
    "if (x >= 10 && y != 3) { print(\"hello\") }",
    "https://example.com/path?query=1&b=2#frag",
    "user@example.com",
    "$4.99 €12,50 ¥300 50% off",
    "a" * 120,
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "UPPER lower MiXeD",
    "hello <|endoftext|> world",
    "<|endoftext|>",
    "text<|endoftext|>more",
    "[CLS] hello [SEP] world [MASK] [PAD] [UNK]",
    "[DEC] a picture of [ENC]",
    "a picture of",
    "hello world  .  ,  ! ?",
    "do not , do n't",
    "a photo of a cat",
    "<img>a photo of<img> a photo ofa photo of",
    "hello <mask> world  <mask>x<mask>",
    "kitty kittycat a kitty. (kitty)",
    "Blip-2 blip-2 BLIP-2",
]


def random_strings(count, seed=1234):
    """Deterministic random mixtures of the character classes the pre-tokenizers care about."""
    rng = random.Random(seed)
    pools = [
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "0123456789", " ", "   ", "\t", "\n", "\r\n", "\u00a0", "\u3000",
        "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S",
        "éèêëàâäôöüçñßøåæœÉÈÀÖÜ", "e\u0301a\u0308o\u0302", "αβγδΣσςπΩ", "абвгдЖЗИЙ",
        "日本語中文字漢", "ひらがなカタカナ", "한국어", "😀🐶🚀👍🏽❤️🇫🇷✨", "\u200b\u200d\ufeff\u00ad",
        "\u0000\u0007\u001f\u0085", "½²٣໓", "«»„“”‘’—–…·•", "\u0e20\u0e32\u0e29\u0e32", "\U0001f970\U0001fae0",
        "\u2e4f\u2e5d\u166d", "İıŉǅﬁ",
    ]
    out = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(1, 24)):
            pool = rng.choice(pools)
            if len(pool) <= 3 or pool.startswith("'"):
                parts.append(pool)
            else:
                parts.append("".join(rng.choice(pool) for _ in range(rng.randint(1, 6))))
        out.append("".join(parts))
    return out


CORPUS += random_strings(40)


def train_bpe(out_root):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1000,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(TRAIN_TEXT.splitlines() * 4 + CORPUS, trainer=trainer)

    # Layout 1: vocab.json + merges.txt + configs, as transformers 4.x published GPT-2 models.
    legacy = os.path.join(out_root, "gpt2-vocab-merges")
    os.makedirs(legacy)
    tok.model.save(legacy)
    eot = tok.token_to_id("<|endoftext|>")
    config = {
        "add_prefix_space": False,
        "added_tokens_decoder": {
            str(eot): {"content": "<|endoftext|>", "lstrip": False, "normalized": True,
                       "rstrip": False, "single_word": False, "special": True},
        },
        "bos_token": "<|endoftext|>",
        "clean_up_tokenization_spaces": True,
        "eos_token": "<|endoftext|>",
        "errors": "replace",
        "model_max_length": 1024,
        "pad_token": None,
        "tokenizer_class": "GPT2Tokenizer",
        "unk_token": "<|endoftext|>",
    }
    with open(os.path.join(legacy, "tokenizer_config.json"), "w") as f:
        json.dump(config, f, indent=2, ensure_ascii=False)
    with open(os.path.join(legacy, "special_tokens_map.json"), "w") as f:
        json.dump({"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>",
                   "unk_token": "<|endoftext|>"}, f, indent=2)

    # Layout 2: tokenizer.json only (+ tokenizer_config.json), as transformers 5 saves,
    # with a pad token and a non-special added token added on top.
    hf = GPT2Tokenizer.from_pretrained(legacy)
    hf.add_special_tokens({"pad_token": "<pad>"})
    hf.add_tokens(["a photo of", "<img>", AddedToken("kitty", single_word=True)])
    hf.add_special_tokens({"mask_token": AddedToken("<mask>", lstrip=True, rstrip=False)})
    modern = os.path.join(out_root, "gpt2-tokenizer-json")
    hf.save_pretrained(modern)
    for name in os.listdir(modern):
        if name not in ("tokenizer.json", "tokenizer_config.json"):
            os.remove(os.path.join(modern, name))
    return [legacy, modern]


def build_wordpiece_vocab():
    """A deterministic WordPiece vocabulary (the `tokenizers` WordPiece trainer breaks ties by hash order).

    Specials, then every character of the normalized training text (alone and as `##` continuation),
    then the most frequent words and word pieces; characters seen only in the test corpus stay
    out, so [UNK] is exercised.
    """
    normalizer = normalizers.BertNormalizer(lowercase=True)
    splitter = pre_tokenizers.BertPreTokenizer()
    words = collections.Counter()
    for line in TRAIN_TEXT.splitlines():
        for word, _ in splitter.pre_tokenize_str(normalizer.normalize_str(line)):
            words[word] += 1
    chars = sorted({c for w in words for c in w})
    pieces, prefixes = collections.Counter(), collections.Counter()
    for word, count in words.items():
        for n in range(2, 5):
            if len(word) > n:
                pieces["##" + word[-n:]] += count
                prefixes[word[:n]] += count
    by_count = lambda counter, k: [t for t, _ in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars + ["##" + c for c in chars]
    for token in by_count(words, 260) + by_count(prefixes, 80) + by_count(pieces, 120):
        if token not in vocab:
            vocab.append(token)
    return vocab


def train_wordpiece(out_root):
    vocab = [(token, i) for i, token in enumerate(build_wordpiece_vocab())]

    # Layout 1: vocab.txt + configs in the style of Salesforce/blip-image-captioning-base
    # (BertTokenizer, [DEC] as bos_token and [ENC] as an additional special token after the vocab).
    legacy = os.path.join(out_root, "bert-vocab-txt")
    os.makedirs(legacy)
    with open(os.path.join(legacy, "vocab.txt"), "w", encoding="utf-8") as f:
        for token, _ in vocab:
            f.write(token + "\n")
    n = len(vocab)

    def added(content):
        return {"content": content, "lstrip": False, "normalized": False,
                "rstrip": False, "single_word": False, "special": True}

    ids = dict(vocab)
    config = {
        "added_tokens_decoder": {
            str(ids[t]): added(t) for t in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        } | {str(n): added("[DEC]"), str(n + 1): added("[ENC]")},
        "additional_special_tokens": ["[ENC]"],
        "bos_token": "[DEC]",
        "clean_up_tokenization_spaces": True,
        "cls_token": "[CLS]",
        "do_basic_tokenize": True,
        "do_lower_case": True,
        "mask_token": "[MASK]",
        "model_max_length": 512,
        "never_split": None,
        "pad_token": "[PAD]",
        "processor_class": "BlipProcessor",
        "sep_token": "[SEP]",
        "strip_accents": None,
        "tokenize_chinese_chars": True,
        "tokenizer_class": "BertTokenizer",
        "unk_token": "[UNK]",
    }
    with open(os.path.join(legacy, "tokenizer_config.json"), "w") as f:
        json.dump(config, f, indent=2, ensure_ascii=False)
    with open(os.path.join(legacy, "special_tokens_map.json"), "w") as f:
        json.dump({"additional_special_tokens": ["[ENC]"], "bos_token": "[DEC]", "cls_token": "[CLS]",
                   "mask_token": "[MASK]", "pad_token": "[PAD]", "sep_token": "[SEP]",
                   "unk_token": "[UNK]"}, f, indent=2)

    # Layout 2: the same tokenizer as transformers 5 saves it (tokenizer.json).
    hf = BertTokenizer.from_pretrained(legacy)
    modern = os.path.join(out_root, "bert-tokenizer-json")
    hf.save_pretrained(modern)
    for name in os.listdir(modern):
        if name not in ("tokenizer.json", "tokenizer_config.json"):
            os.remove(os.path.join(modern, name))
    return [legacy, modern]


# Config variants over a base layout's vocabulary files: how transformers fills in class defaults,
# explicit nulls, special_tokens_map.json, add_prefix_space, casing and the clean-up flags.
VARIANTS = [
    ("gpt2-vocab-merges", ["vocab.json", "merges.txt"], {
        "tokenizer_config.json": {"tokenizer_class": "GPT2Tokenizer"}}),
    ("gpt2-vocab-merges", ["vocab.json", "merges.txt"], {
        "tokenizer_config.json": {"tokenizer_class": "GPT2Tokenizer", "bos_token": None, "pad_token": "<|endoftext|>"}}),
    ("gpt2-vocab-merges", ["vocab.json", "merges.txt"], {
        "tokenizer_config.json": {"tokenizer_class": "GPT2Tokenizer", "add_prefix_space": True}}),
    ("gpt2-vocab-merges", ["vocab.json", "merges.txt"], {
        "tokenizer_config.json": {"tokenizer_class": "GPT2Tokenizer", "clean_up_tokenization_spaces": True,
                                  "clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output": True}}),
    ("bert-vocab-txt", ["vocab.txt"], {
        "tokenizer_config.json": {"tokenizer_class": "BertTokenizer"},
        "special_tokens_map.json": {"bos_token": "[DEC]", "additional_special_tokens": ["[ENC]"]}}),
    ("bert-vocab-txt", ["vocab.txt"], {
        "tokenizer_config.json": {"tokenizer_class": "BertTokenizer", "do_lower_case": False}}),
    ("bert-vocab-txt", ["vocab.txt"], {
        "tokenizer_config.json": {"tokenizer_class": "BertTokenizer", "strip_accents": False,
                                  "clean_up_tokenization_spaces": True}}),
    ("bert-vocab-txt", ["vocab.txt"], {
        "tokenizer_config.json": {"tokenizer_class": "BertTokenizer", "tokenize_chinese_chars": False}}),
    # Added tokens matched after normalization (lower-cased) and before it (raw), with rstrip.
    ("bert-vocab-txt", ["vocab.txt"], {
        "tokenizer_config.json": {"tokenizer_class": "BertTokenizer", "added_tokens_decoder": {
            "637": {"content": "Blip-2", "lstrip": False, "normalized": True, "rstrip": False,
                    "single_word": False, "special": False},
            "638": {"content": "<Img>", "lstrip": False, "normalized": False, "rstrip": True,
                    "single_word": False, "special": False}}}}),
    ("gpt2-vocab-merges", ["vocab.json", "merges.txt"], {
        "tokenizer_config.json": {"tokenizer_class": "GPT2Tokenizer", "added_tokens_decoder": {
            "1000": {"content": "<R>", "lstrip": False, "normalized": False, "rstrip": True,
                     "single_word": False, "special": True},
            "1001": {"content": " photo", "lstrip": False, "normalized": True, "rstrip": False,
                     "single_word": False, "special": False}}}}),
]

VARIANT_CORPUS = [
    "Hello World", " hello", "It's a CAT , isn't it ?", "Café naïve ÅNGSTRÖM", "日本語のテキスト 中文",
    "hello <|endoftext|> world", "[CLS] a [DEC] b [ENC] [SEP]", "tabs\tand  spaces  ", "do n't go !",
    "Blip-2 BLIP-2 blip-2s <Img>   x <img> <R>  a photo, photos<R>",
]


def variants(out_root):
    import tempfile
    results = []
    for base, files, configs in VARIANTS:
        with tempfile.TemporaryDirectory() as d:
            for name in files:
                shutil.copy(os.path.join(out_root, base, name), d)
            for name, content in configs.items():
                with open(os.path.join(d, name), "w") as f:
                    json.dump(content, f)
            ref = reference(d, VARIANT_CORPUS)
        results.append({"base": base, "files": files, "configs": configs, "expected": ref})
    return results


def reference(directory, corpus=None):
    tok = AutoTokenizer.from_pretrained(directory)
    cases = []
    for text in corpus or CORPUS:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        cases.append({"text": text, "ids": ids})
    decodes = []

    def add_decode(ids):
        skip = tok.decode(ids, skip_special_tokens=True)
        keep = tok.decode(ids, skip_special_tokens=False)
        # keep_special is left out where it equals skip_special.
        decodes.append({"ids": ids, "skip_special": skip} | ({"keep_special": keep} if keep != skip else {}))

    for case in cases:
        add_decode(case["ids"])
    special = [i for i in [tok.bos_token_id, tok.cls_token_id] if i is not None][:1]
    closing = [i for i in [tok.sep_token_id, tok.eos_token_id] if i is not None][:1]
    for case in cases[3:12] if corpus is None else []:
        add_decode(special + case["ids"] + closing)
        if tok.pad_token_id is not None:
            add_decode(case["ids"] + [tok.pad_token_id] * 2)
    # Partial byte sequences (invalid UTF-8 for byte-level BPE), every id alone, unknown ids dropped.
    for text in ["😀 😃 🐶 🚀", "日本語のテキスト", "Café"] if corpus is None else []:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        for k in range(1, min(len(ids), 6)):
            add_decode(ids[:k])
            add_decode(ids[k:])
    if type(tok).__name__ == "GPT2Tokenizer" and corpus is None:
        # Every id in one sequence: byte tokens out of context decode to U+FFFD as HF does.
        # (Only the first layout has it all; the others add their last ids, the added tokens.)
        if "gpt2-vocab-merges" in directory:
            add_decode(list(range(len(tok))))
        else:
            add_decode(list(range(len(tok) - 12, len(tok))) + list(range(100, 140)))

    return {
        "class": type(tok).__name__,
        "vocab_size": len(tok),
        "special": {
            "bos": tok.bos_token_id, "eos": tok.eos_token_id, "pad": tok.pad_token_id,
            "unk": tok.unk_token_id, "sep": tok.sep_token_id, "cls": tok.cls_token_id,
            "mask": tok.mask_token_id,
        },
        "all_special_ids": sorted(tok.all_special_ids),
        # What decode(skip_special_tokens=True) drops: added tokens flagged special.
        "special_added_ids": sorted(i for i, t in tok.added_tokens_decoder.items() if t.special),
        "encode": cases,
        "decode": decodes,
    }


def ranges(codepoints):
    """Sorted code points as [first, last] runs."""
    out = []
    for c in sorted(codepoints):
        if out and out[-1][1] == c - 1:
            out[-1][1] = c
        else:
            out.append([c, c])
    return out


def unicode_classes():
    """How the Rust pre-tokenizers and normalizers classify every code point above ASCII.

    The Swift implementation uses Swift's Unicode tables plus rules for the older tables in
    `tokenizers`; this file lets a test check every code point against the reference.
    """
    cps = [c for c in range(0x80, 0x110000) if not (0xD800 <= c < 0xE000)]
    chars = [chr(c) for c in cps]
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)

    def gpt2_class(lead):
        # In lead + c, c starts a new pre-token unless it belongs to lead's class.
        text = "".join(lead + c + " " for c in chars)
        starts = {s for _, (s, _) in byte_level.pre_tokenize_str(text)}
        return {cp for k, cp in enumerate(cps) if 3 * k + 1 not in starts}

    letters, numbers, others = gpt2_class("A"), gpt2_class("1"), gpt2_class("!")
    spaces = [cp for cp in cps if cp not in letters and cp not in numbers and cp not in others]

    bert_pre = pre_tokenizers.BertPreTokenizer()
    text = "".join("a" + c + "b " for c in chars)
    spans = {span for _, span in bert_pre.pre_tokenize_str(text)}
    punct = [cp for k, cp in enumerate(cps) if (4 * k + 1, 4 * k + 2) in spans]
    pre_space = [cp for k, cp in enumerate(cps)
                 if (4 * k, 4 * k + 1) in spans and (4 * k + 2, 4 * k + 3) in spans and (4 * k + 1, 4 * k + 2) not in spans]

    clean = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=False, strip_accents=False, lowercase=False)
    strip = normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=False, strip_accents=True, lowercase=False)
    lower = normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=False, strip_accents=False, lowercase=True)
    removed, to_space, stripped, lowered = [], [], {}, {}
    for cp, c in zip(cps, chars):
        r = clean.normalize_str(c)
        if r == "":
            removed.append(cp)
        elif r == " ":
            to_space.append(cp)
        # Skipped (and not checked): Hangul syllables, which decompose algorithmically, and CJK
        # compatibility ideographs, whose decompositions are singletons; both are plain NFD.
        if not (0xAC00 <= cp <= 0xD7A3 or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F):
            r = strip.normalize_str(c)
            if r != c:
                stripped[str(cp)] = r
        r = lower.normalize_str(c)
        if r != c:
            lowered[str(cp)] = r
    return {
        "gpt2_letter": ranges(letters), "gpt2_number": ranges(numbers), "gpt2_space": ranges(spaces),
        "bert_punctuation": ranges(punct), "bert_pre_space": ranges(pre_space),
        "bert_removed": ranges(removed), "bert_to_space": ranges(to_space),
        "bert_strip_accents": stripped, "bert_lowercase": lowered,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="Tests/GlimpseTests/Fixtures/tokenizers")
    args = parser.parse_args()
    if os.path.isdir(args.out):
        shutil.rmtree(args.out)
    os.makedirs(args.out)
    dirs = train_bpe(args.out) + train_wordpiece(args.out)
    result = {
        "generator": "tools/make_tokenizer_fixtures.py",
        "versions": {"transformers": transformers.__version__, "tokenizers": tokenizers.__version__},
        "tokenizers": {},
    }
    # A layout whose results equal an earlier layout's refers to it instead of repeating them.
    for d in dirs:
        ref = reference(d)
        same = [name for name, r in result["tokenizers"].items() if r == ref]
        result["tokenizers"][os.path.basename(d)] = {"same_as": same[0]} if same else ref
    result["variants"] = variants(args.out)
    with open(os.path.join(args.out, "unicode_classes.json"), "w") as f:
        json.dump(unicode_classes(), f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    with open(os.path.join(args.out, "parity.json"), "w") as f:
        json.dump(result, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(r, n)) for r, _, ns in os.walk(args.out) for n in ns)
    print(f"wrote {args.out} ({total / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
