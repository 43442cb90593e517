#!/usr/bin/env python3
"""Record what transformers' Florence-2 processor does with task prompts and generated text.

Writes Tests/GlimpseTests/Fixtures/florence2/tasks.json for Tests/GlimpseTests/Model/Florence2TasksTests.swift:

  versions     transformers and torch used
  configs      named post_processor_config values ("published" is what transformers' conversion
               script writes into processor_config.json; null is a processor without one)
  bad_grounding  the error of a config whose phrase_grounding is no object (raised by the constructor)
  default_ocr_pattern  transformers' OCR pattern when the config gives none
  special_tokens, vocabulary
               the stand-in tokenizer's all_special_tokens and id -> token table (sequence cases)
  prompts      {"text", "prompt"} or {"text", "error", "message"}: Florence2Processor._construct_prompts
  tasks        {"task", "type"}: the answer type of each task token (and of unknown tasks)
  cases        {"config", "text", "image_size": [w, h], "answers": {task: answer | {"error", "message"}}}:
               Florence2Processor.post_process_generation(text=..., task=..., image_size=...)[task]
  sequences    {"ids", "task", "image_size", "text", "answer"}: post_process_generation(sequence=ids, ...)
               and the text decode_with_spans builds
  dequantize   {"size", "bins", "values"}: Florence2PostProcessor.dequantize, one axis
  quantize     {"size", "values", "bins"}: Florence2PostProcessor.quantize of float32 coordinates

Everything parsed is parsed by transformers' own code. The processor is built with stand-ins for the
tokenizer and image processor (only the attributes Florence2Processor.__init__ and the post-processor
read), skipping ProcessorMixin's type checks of those two. The extra "<DESCRIPTION_WITH_POLYGONS>"
task is added to the processor's task table so that post_process_generation reaches the
description_with_polygons type, which no real task uses.

Deterministic (seeded random texts, no set iteration). Usage:

    .venv/bin/python tools/make_florence2_task_fixtures.py [--out PATH]
"""
from __future__ import annotations

import argparse
import json
import random
import re
import struct
from pathlib import Path

import torch

torch.set_num_threads(1)

import transformers  # noqa: E402
from transformers.models.florence2.processing_florence2 import Florence2Processor  # noqa: E402
from transformers.processing_utils import ProcessorMixin  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "Tests" / "GlimpseTests" / "Fixtures" / "florence2" / "tasks.json"

DEFAULT_OCR_PATTERN = r"(.+?)<loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)>"

# transformers' convert_florence2_original_pytorch_to_hf.py writes this post_processor_config
# (lowercase "pattern" / "area_threshold", which the post-processor, reading "PATTERN" and
# "AREA_THRESHOLD", never sees).
BANNED = [
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
TYPES = {"pure_text": {}, "description_with_bboxes": {}, "description_with_polygons": {}, "polygons": {},
         "bboxes": {}, "description_with_bboxes_or_polygons": {}}
PUBLISHED = {"ocr": {"pattern": DEFAULT_OCR_PATTERN, "area_threshold": 0.0},
             "phrase_grounding": {"banned_grounding_tokens": BANNED}, **TYPES}


def with_ocr(ocr):
    return {"ocr": ocr, "phrase_grounding": {"banned_grounding_tokens": BANNED}, **TYPES}


CONFIGS = {
    "published": PUBLISHED,
    "uppercase": with_ocr({"PATTERN": DEFAULT_OCR_PATTERN, "AREA_THRESHOLD": 0.0}),
    "threshold": with_ocr({"AREA_THRESHOLD": 0.01}),
    "threshold_high": with_ocr({"AREA_THRESHOLD": 0.25}),
    "pattern_null": with_ocr({"PATTERN": None}),
    "custom_space": with_ocr({"PATTERN": r"\s*(.+?)\s*" + r"<loc_(\d+)>" * 8}),
    "custom_named": with_ocr({"PATTERN": r"(?P<text>[^<>]+)<loc_(\d+)><loc_(\d+)>"}),
    "custom_named_area": with_ocr({"PATTERN": r"(?P<text>[^<>]+)<loc_(\d+)><loc_(\d+)>", "AREA_THRESHOLD": 0.1}),
    "custom_end": with_ocr({"PATTERN": r"^(.+?)<loc_(\d+)><loc_(\d+)>$"}),
    "custom_braces": with_ocr({"PATTERN": r"(\w+?)x{,2}{<loc_(\d+)><loc_(\d+)>"}),
    "custom_odd": with_ocr({"PATTERN": r"(.+?)<loc_(\d+)>"}),
    "custom_invalid": with_ocr({"PATTERN": r"(.+?<loc_(\d+)>"}),
    "threshold_null": with_ocr({"AREA_THRESHOLD": None}),
    "missing_ocr": {k: v for k, v in PUBLISHED.items() if k != "ocr"},
    "pure_text_only": {"pure_text": {}},
    "null_entry": {**PUBLISHED, "bboxes": None},
    "empty": {},
    "none": None,
}
# Fails in Florence2PostProcessor's constructor ('str' object has no attribute 'get').
BAD_GROUNDING = {"phrase_grounding": "it"}

SPECIAL_TOKENS = ["<s>", "</s>", "<pad>", "<unk>", "<mask>", "<image>"]
VOCABULARY = ["<s>", "<pad>", "</s>", "<unk>", "car", "Ġdoor", "<loc_52>", "<loc_333>", "<loc_932>", "<loc_774>",
              "Ġwheel", "<poly>", "</poly>", "<sep>", "é", "Ġ", "<image>", "<mask>", "Ġthe", "Ġimage", "<loc_0>",
              "<loc_999>", "ĠA", "Ġgreen"]


class TokenizerStandIn:
    """What Florence2Processor.__init__ and Florence2PostProcessor read of a tokenizer."""

    all_special_tokens = SPECIAL_TOKENS
    image_token = "<image>"
    image_token_id = VOCABULARY.index("<image>")
    bos_token_id = 0

    def convert_ids_to_tokens(self, ids, skip_special_tokens=False):
        return [VOCABULARY[i] for i in ids]

    def convert_tokens_to_string(self, tokens):
        # Byte-level BPE's space marker; the Swift test's closure does the same.
        return "".join(tokens).replace("Ġ", " ")


class ImageProcessorStandIn:
    image_seq_length = 577


def make_processor(config):
    """Florence2Processor.__init__ as written, but without ProcessorMixin's checks of the stand-ins."""
    original = ProcessorMixin.__init__

    def bare_init(self, image_processor=None, tokenizer=None, **kwargs):
        self.image_processor = image_processor
        self.tokenizer = tokenizer

    ProcessorMixin.__init__ = bare_init
    try:
        processor = Florence2Processor(image_processor=ImageProcessorStandIn(), tokenizer=TokenizerStandIn(),
                                       post_processor_config=config)
    finally:
        ProcessorMixin.__init__ = original
    processor.tasks_answer_post_processing_type["<DESCRIPTION_WITH_POLYGONS>"] = "description_with_polygons"
    return processor


def error_kind(error):
    message = str(error)
    if isinstance(error, re.error):
        return "invalid_pattern"
    if isinstance(error, ValueError):
        if message.startswith("Task token"):
            return "task_token_not_alone"
        if message.startswith("Unsupported parse task"):
            return "unsupported_parse_task"
        if "Overflow" in message:
            return "invalid_location"
        if "unpack" in message:
            return "invalid_pattern"
    if isinstance(error, (AttributeError, TypeError)):
        return "invalid_config"
    if isinstance(error, (RuntimeError, IndexError)):  # reshape(-1, 2) of an odd count; a 1-point area
        return "invalid_pattern"
    raise error


def attempt(function):
    try:
        return function()
    except Exception as error:  # noqa: BLE001 - recorded as the expected error
        return {"error": error_kind(error), "message": str(error)}


# ---------------------------------------------------------------------------------------------
# Prompts

TASKS = ["<OCR>", "<OCR_WITH_REGION>", "<CAPTION>", "<DETAILED_CAPTION>", "<MORE_DETAILED_CAPTION>", "<OD>",
         "<DENSE_REGION_CAPTION>", "<REGION_PROPOSAL>", "<CAPTION_TO_PHRASE_GROUNDING>",
         "<REFERRING_EXPRESSION_SEGMENTATION>", "<REGION_TO_SEGMENTATION>", "<OPEN_VOCABULARY_DETECTION>",
         "<REGION_TO_CATEGORY>", "<REGION_TO_DESCRIPTION>", "<REGION_TO_OCR>"]


def make_prompts(processor):
    texts = list(TASKS)
    texts += [t + " a dog" for t in TASKS]                        # extra text: error for tasks without input
    texts += [t + "  \t a green car \n" for t in TASKS[8:]]      # stripped input
    texts += [
        "", "a plain caption prompt", "  spaced  ", "<od>lowercase</od>", "<OD", "OD>",
        "<OD><OD>", " <OD>", "<OD> ", "x<OCR>", "<CAPTION><OD>",
        "<CAPTION_TO_PHRASE_GROUNDING>a dog<OD>",                   # the no-input table is tried first
        "a dog <CAPTION_TO_PHRASE_GROUNDING> and a cat",             # token anywhere, text around it
        "<CAPTION_TO_PHRASE_GROUNDING>a<CAPTION_TO_PHRASE_GROUNDING>b",  # every occurrence removed
        "<REGION_TO_CATEGORY><loc_1><loc_2><loc_3><loc_4>",
        "<REGION_TO_DESCRIPTION><REGION_TO_OCR>x",                   # the first in table order wins
        "<REGION_TO_OCR><REGION_TO_DESCRIPTION>x",
        "<OPEN_VOCABULARY_DETECTION>{input} {0}",                   # braces in the input stay
        "<REFERRING_EXPRESSION_SEGMENTATION>\u00a0café\u3000",        # Unicode whitespace stripped
        "<REFERRING_EXPRESSION_SEGMENTATION>\x1ca\x1f",              # \x1c-\x1f are whitespace to Python
        "<REGION_TO_SEGMENTATION>",                                   # empty input
        "<OCR_WITH_REGION>", "<OCR_WITH_REGION>x",
        "<DETAILED_CAPTION>\u0301",                                   # a combining mark after the token
        "e\u0301<CAPTION_TO_PHRASE_GROUNDING>\u00e9",                 # decomposed vs precomposed kept apart
    ]
    cases = []
    for text in texts:
        result = attempt(lambda: processor._construct_prompts(text)[0])
        case = {"text": text}
        if isinstance(result, dict):
            case.update(result)
        else:
            case["prompt"] = result
        cases.append(case)
    # A list is handled one string at a time.
    assert processor._construct_prompts(["<OD>", "<CAPTION_TO_PHRASE_GROUNDING> x "]) == [
        processor._construct_prompts("<OD>")[0], processor._construct_prompts("<CAPTION_TO_PHRASE_GROUNDING> x ")[0]]
    return cases


# ---------------------------------------------------------------------------------------------
# Generated texts

def locs(*bins):
    return "".join(f"<loc_{b}>" for b in bins)


OD_TEXTS = [
    "</s><s>car" + locs(52, 333, 932, 774) + "door" + locs(710, 276, 908, 537) + "wheel" + locs(708, 531, 906, 704)
    + "wheel" + locs(208, 535, 379, 702) + "</s>",
    "</s><s>person" + locs(1, 2, 3, 4, 5, 6, 7, 8) + "dog" + locs(0, 0, 999, 999) + "</s>",   # two boxes, one phrase
    "cat" + locs(1, 2, 3, 4, 5),                                          # 5 locations: one box
    "cat" + locs(1, 2, 3, 4, 5, 6, 7),                                    # 7: one box
    "cat" + locs(1, 2, 3),                                                # 3: no box
    "", "</s><s></s>", "<pad><pad>", "no boxes at all",
    locs(10, 20, 30, 40) + locs(50, 60, 70, 80),                          # no phrase
    "<loc_1>abc" + locs(2, 3, 4, 5),                                      # label "loc_1>abc"
    "a <od>dog</od>" + locs(100, 200, 300, 400),                          # label "/od>"
    "<ground>tree<obj>" + locs(1, 1, 2, 2),
    "ca<s>r" + locs(5, 6, 7, 8) + "bus</s>" + locs(9, 10, 11, 12),
    "<<s>/s>x" + locs(1, 2, 3, 4),                                        # replace order
    "café" + locs(1, 2, 3, 4) + "狗" + locs(5, 6, 7, 8) + " é dog " + locs(9, 9, 9, 9) + "naïve" + locs(0, 1, 2, 3),
    "car\ndoor" + locs(1, 2, 3, 4),                                       # "\n" inside: no match
    "\n car" + locs(1, 2, 3, 4) + "\r\nbus\r" + locs(5, 6, 7, 8),
    "\x1cdog\x1f" + locs(1, 2, 3, 4) + "\u2028cat\u3000" + locs(4, 3, 2, 1),
    "  the dog  " + locs(999, 999, 999, 999),
    "car" + locs("٣", 12, "٤٥", "𝟗"),                                     # Unicode digits are \d to Python
    "car" + locs("007", "0000", 1000, 99999),
    "car" + locs(16777217, 123456, 0, 1),
    "car<loc_1><loc_2 ><loc_3><loc_4><loc_5><loc_6><loc_7><loc_8>",       # broken token splits the run
    "car<loc_><loc_1><loc_2><loc_3><loc_4>",
    "car<loc_1><loc_2><loc_3><loc_4><loc_5",
    "a<b" + locs(1, 2, 3, 4),
    "<box>car</box>" + locs(1, 2, 3, 4),
    "car<bbox>" + locs(1, 2, 3, 4) + "</bbox>",
    "car" + locs(1, 2, 3, 4) + "<poly>" + locs(5, 6, 7, 8) + "</poly>",
    "x" * 50 + locs(1, 2, 3, 4) + "\n" * 3 + "y" + locs(5, 6, 7, 8),
]
OVERFLOW_TEXT = "car" + locs(99999999999999999999, 1, 2, 3)

OCR_TEXTS = [
    "</s><s>HELLO" + locs(10, 20, 30, 20, 30, 40, 10, 40) + "WORLD" + locs(100, 100, 900, 100, 900, 300, 100, 300) + "</s>",
    "</s><s>Reversed" + locs(900, 300, 100, 300, 100, 100, 900, 100) + "</s>",
    "tiny" + locs(1, 1, 2, 1, 2, 2, 1, 2) + "big" + locs(0, 0, 999, 0, 999, 999, 0, 999),
    "half" + locs(0, 0, 999, 0, 999, 500, 0, 500) + "tri" + locs(0, 0, 999, 0, 0, 999, 0, 999),
    "seven" + locs(1, 2, 3, 4, 5, 6, 7),
    "line one\nline two" + locs(1, 2, 3, 4, 5, 6, 7, 8),                  # lazy text cannot cross "\n"
    "\n" + locs(1, 2, 3, 4, 5, 6, 7, 8) + "A" + locs(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16),
    locs(1, 2, 3, 4, 5, 6, 7, 8, 9),                                      # the text is the first location
    "<text>  spaced  </text>" + locs(5, 5, 50, 5, 50, 50, 5, 50) + "<pad>é<pad>" + locs(1, 1, 1, 1, 1, 1, 1, 1),
    "ab{" + locs(10, 20) + "cd" + locs(30, 40) + "\nef" + locs(1, 2) + "\n",
    "x" + locs("٣", 2, 3, 4, 5, 6, 7, 8),
    "", "</s><s></s>", "just text",
]

GROUNDING_TEXTS = [
    "</s><s>A green car" + locs(52, 333, 932, 774) + "a yellow building" + locs(0, 0, 999, 600, 10, 10, 20, 20)
    + "the image" + locs(0, 0, 999, 999) + "it" + locs(1, 2, 3, 4) + "</s>",
    "The image" + locs(0, 0, 999, 999) + "  it  " + locs(1, 2, 3, 4) + "ït" + locs(5, 6, 7, 8),
    "a group" + locs(1, 2, 3, 4) + "a groups" + locs(1, 2, 3, 4) + "each other" + locs(4, 3, 2, 1),
    "一个" + locs(1, 2, 3, 4), "", "nothing grounded",
]

POLYGON_TEXTS = [
    "</s><s>" + locs(100, 200, 300, 200, 300, 400, 100, 400) + "</s>",
    locs(1, 2, 3, 4) + "<sep>" + locs(5, 6, 7, 8, 9) + "<sep>" + locs(9),        # odd counts, an empty polygon
    "car<poly>" + locs(1, 2, 3, 4, 5, 6) + "</poly><poly>" + locs(7, 8, 9, 10) + "<sep>" + locs(11, 12, 13, 14) + "</poly>",
    "car<poly>" + locs(1, 2, 3, 4, 5, 6),                                     # <poly> without </poly>
    "car" + locs(1, 2, 3, 4) + "</poly>" + locs(5, 6, 7, 8),
    "<poly>" + locs(1, 2, 3, 4) + "</poly>dog<poly>" + locs(5, 6, 7, 8) + "</poly>",
    locs(1) + "<sep>" + locs(2, 3, 4, 5),                                     # label "<sep>"
    "<sep><sep><sep><sep>", "<poly></poly><poly></poly>",
    "é car " + locs(1, 2, 3, 4, 5, 6),                                        # polygon labels keep non-ASCII
    "cat" + locs(1, 2, 3, 4) + "<sep>\n" + locs(5, 6),
    "cat<poly>" + locs(1, 2) + "\n" + locs(3, 4) + "</poly>",
    "a\nb" + locs(1, 2, 3, 4), "", "</s><s></s>", "plain",
]

OPEN_VOCABULARY_TEXTS = [
    "</s><s>car" + locs(52, 333, 932, 774) + "</s>",
    "</s><s>car<poly>" + locs(52, 333, 932, 333, 932, 774) + "</poly></s>",
    "car" + locs(1, 2, 3, 4) + "bus<poly>" + locs(5, 6, 7, 8) + "</poly>",
    "<po<s>ly>car" + locs(1, 2, 3, 4, 5, 6),                                 # "<poly>" only once cleaned
    "car<poly>" + locs(1, 2, 3, 4),
]

PURE_TEXTS = [
    "</s><s>A green car parked in front of a yellow building.</s>",
    " <s> spaced </s> ", "<pad>text<pad>", "\x1c text \x1f", "\u3000全角\u3000", "", "</s>",
    "a" + locs(1, 2, 3, 4), "<s><s>x</s></s>", "e\u0301\n",
]

# (144, 688): float32 truncates (312 + 0.5) * 0.144 to 44 and (312 + 0.5) * 0.688 to 215, exact math to 45 and 214.
SIZES = [(1, 1), (7, 3), (640, 480), (1023, 767), (4000, 3000), (333, 999), (1, 4000), (12345, 17), (144, 688)]

# One task per answer type, and the extra one that reaches description_with_polygons.
REPRESENTATIVE = ["<CAPTION>", "<OCR_WITH_REGION>", "<CAPTION_TO_PHRASE_GROUNDING>", "<OD>",
                  "<REFERRING_EXPRESSION_SEGMENTATION>", "<OPEN_VOCABULARY_DETECTION>", "<REGION_PROPOSAL>",
                  "<DESCRIPTION_WITH_POLYGONS>"]


def random_text(rng):
    pieces = ["car", "a dog", " ", "  ", "\n", "é", "狗", "<", ">", "loc_", "<loc_", "_", "٣", "\x1c", "\t",
              "<s>", "</s>", "<pad>", "<od>", "</od>", "<box>", "</box>", "<bbox>", "<ground>", "<obj>",
              "<sep>", "<poly>", "</poly>", "the image", "it", "{", "x"]
    out = []
    for _ in range(rng.randint(0, 14)):
        r = rng.random()
        if r < 0.45:
            out.append(locs(*[rng.randint(0, 999) for _ in range(rng.choice([1, 2, 3, 4, 4, 4, 6, 8, 8]))]))
        elif r < 0.6:
            out.append(rng.choice(["car", "wheel", "a green car", "person", "the image", "it", "café"]))
        else:
            out.append(rng.choice(pieces))
    return "".join(out)


def make_cases(processors):
    cases = []

    def add(config, text, size, tasks):
        processor = processors[config]
        answers = {}
        for task in tasks:
            answers[task] = attempt(lambda: processor.post_process_generation(text=text, task=task, image_size=size)[task])
        cases.append({"config": config, "text": text, "image_size": list(size), "answers": answers})

    for i, text in enumerate(OD_TEXTS):
        for size in SIZES[i % 3::3] if i % 2 else SIZES[:3]:
            add("published", text, size, ["<OD>", "<DENSE_REGION_CAPTION>", "<REGION_PROPOSAL>",
                                          "<CAPTION_TO_PHRASE_GROUNDING>", "<OPEN_VOCABULARY_DETECTION>"])
    add("published", OVERFLOW_TEXT, (640, 480), ["<OD>", "<REGION_PROPOSAL>", "<CAPTION>"])
    # float32 rounding decides the pixel: see SIZES.
    add("published", "box" + locs(312, 312, 562, 562) + "</s>", (144, 688), ["<OD>", "<REGION_PROPOSAL>"])
    for text in OCR_TEXTS:
        for config in ["published", "uppercase", "threshold", "threshold_high", "pattern_null", "custom_space",
                       "custom_named", "custom_named_area", "custom_end", "custom_braces", "custom_odd",
                       "custom_invalid", "threshold_null"]:
            add(config, text, (640, 480), ["<OCR_WITH_REGION>"])
        add("published", text, (1023, 767), ["<OCR_WITH_REGION>", "<OCR>"])
    for text in GROUNDING_TEXTS:
        for size in [(640, 480), (7, 3)]:
            add("published", text, size, ["<CAPTION_TO_PHRASE_GROUNDING>", "<OD>"])
    for text in POLYGON_TEXTS:
        for size in [(640, 480), (1023, 767), (1, 1)]:
            add("published", text, size, ["<REFERRING_EXPRESSION_SEGMENTATION>", "<REGION_TO_SEGMENTATION>",
                                          "<DESCRIPTION_WITH_POLYGONS>", "<OPEN_VOCABULARY_DETECTION>"])
    for text in OPEN_VOCABULARY_TEXTS:
        add("published", text, (4000, 3000), ["<OPEN_VOCABULARY_DETECTION>"])
    for text in PURE_TEXTS:
        add("published", text, (640, 480), ["<CAPTION>", "<OCR>", "<REGION_TO_OCR>", "<NOT_A_TASK>", "caption"])
    # Every task token on one text, and configs that lack entries.
    everything = "</s><s>car" + locs(52, 333, 932, 774) + "<poly>" + locs(1, 2, 3, 4) + "</poly></s>"
    for config in ["published", "missing_ocr", "pure_text_only", "null_entry", "empty", "none"]:
        add(config, everything, (640, 480), TASKS + ["<DESCRIPTION_WITH_POLYGONS>", "<NOT_A_TASK>"])
    rng = random.Random(20250)
    for i in range(160):
        add("published", random_text(rng), SIZES[i % len(SIZES)], REPRESENTATIVE)
    return cases


def make_sequences(processor):
    v = {token: i for i, token in enumerate(VOCABULARY)}
    sequences = [
        [v[t] for t in ["<s>", "car", "<loc_52>", "<loc_333>", "<loc_932>", "<loc_774>", "Ġdoor", "<loc_0>", "<loc_0>",
                        "<loc_999>", "<loc_999>", "</s>"]],
        [v[t] for t in ["car", "<loc_52>", "<loc_333>", "<loc_932>", "<loc_774>", "</s>", "<pad>", "<pad>"]],
        [v[t] for t in ["<s>", "<s>", "ĠA", "Ġgreen", "Ġ", "é", "<mask>", "<image>", "<unk>", "</s>"]],
        [v[t] for t in ["</s>", "<s>", "Ġthe", "Ġimage", "<loc_0>", "<loc_0>", "<loc_999>", "<loc_999>", "</s>"]],
        [v["<s>"]],
    ]
    cases = []
    for ids in sequences:
        text, spans = processor.post_processor.decode_with_spans(ids[1:] if ids[0] == 0 else ids)
        for task in ["<OD>", "<CAPTION>", "<CAPTION_TO_PHRASE_GROUNDING>"]:
            answer = processor.post_process_generation(sequence=ids, task=task, image_size=(640, 480))[task]
            cases.append({"ids": ids, "task": task, "image_size": [640, 480], "text": text, "answer": answer})
    return cases


def make_dequantize(processor):
    post = processor.post_processor
    cases = []
    for size in [1, 3, 7, 144, 333, 480, 640, 688, 767, 999, 1001, 1023, 1040, 1136, 3000, 4000, 12345, 65535]:
        bins = list(range(1000)) if size in (7, 144, 688, 767, 1023, 1136, 3000) else list(range(0, 1000, 37)) + [999]
        bins += [1000, 4095, 16777215, 16777217, 123456] + ([123456789] if size <= 4000 else [])
        bins += [0] * (len(bins) % 2)
        values = post.dequantize(torch.tensor(bins).reshape(-1, 2), size=(size, size)).flatten().tolist()
        cases.append({"size": size, "bins": bins, "values": values})
    return cases


def make_quantize(processor):
    post = processor.post_processor
    rng = random.Random(7)
    cases = []
    for size in [1, 7, 640, 767, 1023, 4000]:
        values = [0.0, -0.0, -3.5, size / 1000, size / 1000 * 3, size / 2, size - 0.001, float(size), size + 25.0]
        values += [rng.uniform(-10, size + 10) for _ in range(40)]
        # float32 values, written as the doubles they are exactly.
        values = [struct.unpack("f", struct.pack("f", x))[0] for x in values]
        if len(values) % 2:
            values.append(0.0)
        tensor = torch.tensor(values, dtype=torch.float32).reshape(-1, 2)
        bins = post.quantize(tensor, size=(size, size)).flatten().tolist()
        cases.append({"size": size, "values": values, "bins": bins})
    return cases


def compact(value):
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def write(path, document):
    lines = ["{"]
    items = list(document.items())
    for i, (key, value) in enumerate(items):
        comma = "," if i < len(items) - 1 else ""
        if isinstance(value, list):
            lines.append(f" {compact(key)}: [")
            lines += [f"  {compact(item)}" + ("," if j < len(value) - 1 else "") for j, item in enumerate(value)]
            lines.append(f" ]{comma}")
        elif isinstance(value, dict) and key == "configs":
            lines.append(f" {compact(key)}: {{")
            entries = list(value.items())
            lines += [f"  {compact(k)}: {compact(v)}" + ("," if j < len(entries) - 1 else "") for j, (k, v) in enumerate(entries)]
            lines.append(f" }}{comma}")
        else:
            lines.append(f" {compact(key)}: {compact(value)}{comma}")
    lines.append("}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    processors = {name: make_processor(config) for name, config in CONFIGS.items()}
    bad_grounding = attempt(lambda: make_processor(BAD_GROUNDING))
    assert isinstance(bad_grounding, dict) and bad_grounding["error"] == "invalid_config", bad_grounding
    published = processors["published"]
    document = {
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__},
        "configs": {**CONFIGS, "bad_grounding": BAD_GROUNDING},
        "bad_grounding": bad_grounding,
        "special_tokens": SPECIAL_TOKENS,
        "vocabulary": VOCABULARY,
        "default_ocr_pattern": DEFAULT_OCR_PATTERN,
        "tasks": [{"task": t, "type": published.tasks_answer_post_processing_type.get(t, "pure_text")}
                  for t in TASKS + ["<NOT_A_TASK>", "<od>", ""]],
        "prompts": make_prompts(published),
        "cases": make_cases(processors),
        "sequences": make_sequences(published),
        "dequantize": make_dequantize(published),
        "quantize": make_quantize(published),
    }
    write(args.out, document)
    answers = sum(len(c["answers"]) for c in document["cases"])
    print(f"wrote {args.out}: {len(document['prompts'])} prompts, {len(document['cases'])} texts with "
          f"{answers} answers, {len(document['sequences'])} sequences")


if __name__ == "__main__":
    main()
