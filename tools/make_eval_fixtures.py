#!/usr/bin/env python3
"""Fixtures for `glimpse eval`: the reference caption and detection metrics on small COCO files.

    python tools/make_eval_fixtures.py [--out Tests/GlimpseTests/Fixtures/eval]

References: pycocoevalcap and pycocotools, pinned in tools/requirements.txt; METEOR and the PTB
tokenizer run through java, as pycocoevalcap runs them. Writes into --out:

  ptb_tokenizer.json  {"sentences": [...], "tokenized": [...]}: a caption corpus (scene-world captions,
                      COCO-style human captions, punctuation, quotes, contractions, numbers, abbreviations)
                      through pycocoevalcap's PTBTokenizer (Stanford CoreNLP 3.4.1, -preserveLines
                      -lowerCase, then its punctuation tokens removed)
  images/             nothing: the metrics never read pixels
  captions.json       COCO captions references: scene-world captions plus paraphrases (1-4 per image)
  instances.json      COCO instances: the scenes' objects (RLE masks) plus hand-made polygon and crowd
                      annotations
  predictions.jsonl   Glimpse batch records (captions + detections), one error record, file names under
                      a batch root "batch/" and one only by base name
  expected.json       {"captions": pycocoevalcap's COCOEvalCap.evaluate without SPICE (Bleu_1..4, METEOR,
                      ROUGE_L, CIDEr, overall and per image), "bbox"/"segm": COCOeval stats (12 values),
                      "box_recall_50": matched / all non-crowd true objects at IoU 0.5 (area all, 100 dets)}

Scenes come from tools/scenes.py (seed 9100, strict); predictions perturb the truth with a fixed
random generator (boxes jittered, masks shifted, labels swapped, objects missed, false positives).
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenes  # noqa: E402

scenes.STRICT = True

CORPUS = [
    "A man riding a wave on top of a surfboard.",
    "A group of people standing around a kitchen.",
    "Two dogs playing with a frisbee in the park",
    "a cat sitting on a laptop's keyboard.",
    "The man's hat is red, and the woman's coat isn't.",
    "A giraffe (very tall) eating leaves from a tree.",
    "A bus that says \"Downtown\" on the front.",
    "A sign reading 'STOP' at a 4-way intersection.",
    "There are 3 pizzas, 2 sodas and 1,000 napkins.",
    "A plate with 2.5 slices of cake... yum!",
    "Is this a dog? No, it's a wolf!",
    "People can't wait; they won't stop talking: it's noisy.",
    "I'm sure we've seen they're gonna win, you'll see, he'd agree.",
    "A black-and-white photo of a 19th-century train.",
    "Mr. Smith and Dr. Jones at the U.S. embassy.",
    "A clock shows 10:30 a.m. on the tower",
    "The price is $5.99 (about 50% off) #sale",
    "A bowl of fruit -- apples, pears & bananas.",
    "A man - wearing a tie - stands next to a car",
    "Kids on a see-saw; mom's watching.",
    "  Extra   spaces    between words  ",
    "UPPER CASE CAPTION OF A STREET",
    "a small red circle",
    "a large green square to the left of a small orange triangle",
    "a small black hexagon above a large yellow circle",
    "a small red circle, a large purple star and a small blue square",
    "A red circle, a blue square, and a green star.",
    "An e-mail on a computer screen/monitor with a web-page",
    "A {curly} [square] <angle> bracket test",
    "A dog's toy and the dogs' bowls",
    "Well... that's it?!",
    "The 1990s were cool, weren't they?",
    "A woman holding an umbrella in the rain.",
    "A tennis player swinging a racket at a ball .",
    "Two zebras standing next to each other in a field",
    "A traffic light at night; cars pass by.",
    "A man with a cell phone, talking.",
    "A kitchen with stainless-steel appliances!",
    "\"Quoted\" caption at the start",
    "`Back` ticks and 'single' quotes",
    "Airplane flying over the city at 5 p.m.",
    "A toddler 's birthday cake",
    "A vase of flowers on a table .",
    "no punctuation at all here",
    "A skier -- mid-air -- over the snow",
    "A cat & a dog & a bird",
    "What's on the menu: soup, salad, etc.",
    "A sandwich cut in 1/2 on a plate",
    "A boy wearing a #10 jersey",
    "A laptop, a mouse, and a cup of coffee.",
    "J. Smith at St. Louis with Acme Inc. and No. 5 vs. them",
    "don't y'all know o'clock rock'n'roll '90s ma'am cannot gotta wanna lemme",
    "end? a--b word- -word 5-year-old 3:1 1.5m $1,000.00 100%",
    "e.g. this i.e. that U.S.A. A. b.",
    "it\u2019s a \u201cquoted\u201d thing\u2026 caf\u00e9 na\u00efve 2nd a,b 1,2,3 3x4 a/b/c + = a=b 50 km/h",
    "ok!!! really?? yes.no Mr. Dr.",
    "Sam's and James' and the Smiths'.",
    "He said 'hi' and left.",
    "a \"b\" c \"d\"",
    "'90s 'tis 'em",
    "mr. smith dr. who st. louis inc. no. 5 jan. feb. mon. etc. jr. ave. corp. co. ltd. fig. approx. ca. ft. "
    "lbs. oz. min. sec. vs. cf. mt. gen. sept. calif. tel.",
    "a b. c d. x. yes. no. ok. u.s u.s. usa. u.k. a.b.c.d. ab.cd.",
    "5. 10.5. 3.14.",
    "the end..",
    "wait....",
]


def grammar_corpus(n=60):
    out = []
    for i in range(n):
        _, info = scenes.sample_scene(9200, i)
        out.append(info["caption"])
    return out


def ptb_fixture():
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    sentences = CORPUS + grammar_corpus()
    caps = {i: [{"caption": s}] for i, s in enumerate(sentences)}
    tok = PTBTokenizer().tokenize(caps)
    return {"sentences": sentences, "tokenized": [tok[i][0] for i in range(len(sentences))]}


PARAPHRASES = [
    lambda c: c + ".",
    lambda c: c.replace(" to the left of ", " left of "),
    lambda c: "There is " + c + " in the picture.",
    lambda c: c.capitalize(),
    lambda c: c.replace("a ", "one ", 1),
]


def mutate(rng, caption):
    w = caption.split(" ")
    k = int(rng.integers(7))
    if k == 0:
        return caption
    if k == 1:
        i = int(rng.integers(len(w)))
        w[i] = ["red", "star", "large", "above", "blue", "the"][int(rng.integers(6))]
        return " ".join(w)
    if k == 2:
        return " ".join(w[:max(1, len(w) - int(rng.integers(1, 4)))])
    if k == 3:
        return caption + " and a small blue star"
    if k == 4:
        return caption.capitalize() + "."
    if k == 5:
        return "a large green square to the left of a small orange triangle"
    return " ".join(w[::-1])


def jitter_box(rng, box, W, H, amount):
    x, y, w, h = box
    d = rng.integers(-amount, amount + 1, 4)
    x, y = max(0, x + int(d[0])), max(0, y + int(d[1]))
    w, h = max(1, w + int(d[2])), max(1, h + int(d[3]))
    return [x, y, min(w, W - x), min(h, H - y)]


def shifted_mask(mask, dx, dy):
    out = np.zeros_like(mask)
    H, W = mask.shape
    ys, xs = np.nonzero(mask)
    ys, xs = ys + dy, xs + dx
    keep = (ys >= 0) & (ys < H) & (xs >= 0) & (xs < W)
    out[ys[keep], xs[keep]] = True
    return out


def build(out_dir):
    from pycocotools import mask as mask_utils
    rng = np.random.default_rng(15)
    rows = []
    for i in range(36):
        img, info = scenes.sample_scene(9100, i)
        ext = "jpg" if info["jpeg_quality"] else "png"
        rows.append(scenes.public_info(info, f"scene-9100-{i:05d}.{ext}"))
    captions, instances = scenes.coco_files(rows, range(len(rows)))
    # more references per image (paraphrases), so BLEU's closest length, CIDEr's document frequency and
    # ROUGE's best reference all have choices
    for im in captions["images"]:
        base = next(a["caption"] for a in captions["annotations"] if a["image_id"] == im["id"])
        for p in rng.permutation(len(PARAPHRASES))[:int(rng.integers(0, 4))]:
            captions["annotations"].append(dict(id=len(captions["annotations"]) + 1, image_id=im["id"],
                                                caption=PARAPHRASES[p](base)))
    # hand-made polygons (one with two parts) and a crowd region on the first images
    anns = instances["annotations"]
    W0, H0 = rows[0]["width"], rows[0]["height"]
    polys = [[[10.0, 10.0, 60.5, 12.0, 40.0, 70.25]],
             [[W0 - 80.0, H0 - 80.0, W0 - 20.0, H0 - 80.0, W0 - 20.0, H0 - 20.0, W0 - 80.0, H0 - 20.0],
              [W0 - 100.0, 5.0, W0 - 90.0, 5.0, W0 - 95.0, 25.0]]]
    for k, poly in enumerate(polys):
        rle = mask_utils.merge(mask_utils.frPyObjects(poly, H0, W0))
        bbox = [float(v) for v in mask_utils.toBbox(rle)]
        anns.append(dict(id=len(anns) + 1, image_id=1, category_id=[3, 20][k], bbox=bbox,
                         area=float(mask_utils.area(rle)), segmentation=poly, iscrowd=0))
    W1, H1 = rows[1]["width"], rows[1]["height"]
    crowd = np.zeros((H1, W1), bool)
    crowd[:H1 // 3, :W1 // 3] = True
    anns.append(dict(id=len(anns) + 1, image_id=2, category_id=1, bbox=[0, 0, W1 // 3, H1 // 3],
                     area=int(crowd.sum()), segmentation=scenes.rle_encode(crowd), iscrowd=1))

    # predictions
    names = {c["id"]: c["name"] for c in instances["categories"]}
    preds = []
    for idx, (row, im) in enumerate(zip(rows, instances["images"])):
        W, H = row["width"], row["height"]
        fname = ("elsewhere/" if idx == 5 else "batch/") + row["file"]
        if idx == 7:
            preds.append({"file": fname, "error": "could not decode the image"})
            continue
        if idx == 35:
            continue  # a reference image without a prediction record
        refs = [a["caption"] for a in captions["annotations"] if a["image_id"] == im["id"]]
        text = mutate(rng, refs[0]) if idx != 11 else ""
        dets = []
        for a in [a for a in anns if a["image_id"] == im["id"]]:
            if rng.random() < 0.12:
                continue  # missed
            label = names[a["category_id"]]
            if rng.random() < 0.1:
                label = names[int(rng.integers(1, 36))]
            box = jitter_box(rng, [int(round(v)) for v in a["bbox"]], W, H, int(rng.integers(0, 6)))
            seg = a["segmentation"]
            if isinstance(seg, list):
                gm = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(seg, H, W))).astype(bool)
            elif isinstance(seg["counts"], list):
                gm = scenes.rle_decode(seg)
            else:
                gm = mask_utils.decode(seg).astype(bool)
            pm = shifted_mask(gm, int(rng.integers(-3, 4)), int(rng.integers(-3, 4)))
            dets.append({"label": label, "word": label.split(" ")[-1], "token_index": 4, "box": box,
                         "score": round(float(rng.uniform(0.05, 1.0)), 4), "mask": mask_rle(pm)})
        for _ in range(int(rng.integers(0, 3))):  # false positives
            w, h = int(rng.integers(8, W // 2)), int(rng.integers(8, H // 2))
            x, y = int(rng.integers(0, W - w)), int(rng.integers(0, H - h))
            m = np.zeros((H, W), bool)
            m[y:y + h, x:x + w] = True
            lab = names[int(rng.integers(1, 36))]
            dets.append({"label": lab, "word": lab.split(" ")[-1], "token_index": 2, "box": [x, y, w, h],
                         "score": round(float(rng.uniform(0.0, 0.6)), 4), "mask": mask_rle(m)})
        preds.append({"file": fname, "width": W, "height": H, "model": "fixture",
                      "captions": [{"text": text, "score": -0.5, "tokens": [0, 1]}], "detections": dets})
    # one label no category has (a detection the COCO files cannot score)
    preds[0]["detections"].append({"label": "plaid unicorn", "word": "unicorn", "token_index": 3,
                                   "box": [1, 1, 5, 5], "score": 0.9})
    return rows, captions, instances, preds


def mask_rle(m):
    r = scenes.rle_encode(m)
    return {"size": r["size"], "counts": scenes.rle_string_encode(r["counts"])}


def reference_scores(captions, instances, preds):
    """What pycocoevalcap and pycocotools report for these files. Images scored: those with a
    prediction record (an error record counts as an empty caption and no detections)."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    by_name = {os.path.basename(p["file"]): p for p in preds}
    images = [im for im in captions["images"] if im["file_name"] in by_name]
    img_ids = [im["id"] for im in images]
    gts = {i: [] for i in img_ids}
    for a in captions["annotations"]:
        if a["image_id"] in gts:
            gts[a["image_id"]].append({"caption": a["caption"]})
    res = {}
    for im in images:
        p = by_name[im["file_name"]]
        res[im["id"]] = [{"caption": p["captions"][0]["text"] if "captions" in p else ""}]
    # COCOEvalCap.evaluate, without SPICE (it downloads Stanford models)
    tok = PTBTokenizer()
    gts_t, res_t = tok.tokenize(gts), tok.tokenize(res)
    out = {"overall": {}, "per_image": {str(i): {} for i in img_ids}}
    for scorer, method in [(Bleu(4), ["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4"]), (Meteor(), "METEOR"),
                           (Rouge(), "ROUGE_L"), (Cider(), "CIDEr")]:
        score, scores = scorer.compute_score(gts_t, res_t)
        methods = method if isinstance(method, list) else [method]
        score = score if isinstance(method, list) else [score]
        scores = scores if isinstance(method, list) else [scores]
        for m, sc, scs in zip(methods, score, scores):
            out["overall"][m] = float(sc)
            for i, v in zip(gts_t.keys(), scs):
                out["per_image"][str(i)][m] = float(v)
    result = {"captions": out, "images": img_ids}

    import contextlib
    import io
    gt_path = "/tmp/glimpse-eval-fixture-instances.json"
    with open(gt_path, "w") as f:
        json.dump(instances, f)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(gt_path)
    cat_by_name = {c["name"]: c["id"] for c in instances["categories"]}
    img_by_name = {im["file_name"]: im for im in instances["images"]}
    for iou_type in ("bbox", "segm"):
        dts = []
        for p in preds:
            im = img_by_name[os.path.basename(p["file"])]
            for d in p.get("detections", []):
                if d["label"] not in cat_by_name:
                    continue
                r = {"image_id": im["id"], "category_id": cat_by_name[d["label"]], "score": d["score"]}
                if iou_type == "bbox":
                    r["bbox"] = d["box"]
                else:
                    r["segmentation"] = d["mask"]
                dts.append(r)
        with contextlib.redirect_stdout(io.StringIO()):
            coco_dt = coco.loadRes(dts)
            ev = COCOeval(coco, coco_dt, iou_type)
            ev.params.imgIds = img_ids
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        keys = ["AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
                "AR_1", "AR_10", "AR_100", "AR_small", "AR_medium", "AR_large"]
        result[iou_type] = {k: float(v) for k, v in zip(keys, ev.stats)}
        if iou_type == "bbox":
            matched = total = 0
            for e in ev.evalImgs:
                if e is None or e["aRng"] != ev.params.areaRng[0] or e["maxDet"] != 100:
                    continue
                ig = np.asarray(e["gtIgnore"]).astype(bool)
                gm = np.asarray(e["gtMatches"])[0]
                total += int((~ig).sum())
                matched += int(((gm > 0) & ~ig).sum())
            result["box_recall_50"] = matched / total
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="Tests/GlimpseTests/Fixtures/eval")
    ap.add_argument("--only-tokenizer", action="store_true", help="write ptb_tokenizer.json only")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "ptb_tokenizer.json"), "w") as f:
        json.dump(ptb_fixture(), f, indent=0)
    if a.only_tokenizer:
        return
    rows, captions, instances, preds = build(a.out)
    with open(os.path.join(a.out, "captions.json"), "w") as f:
        json.dump(captions, f)
    with open(os.path.join(a.out, "instances.json"), "w") as f:
        json.dump(instances, f)
    with open(os.path.join(a.out, "predictions.jsonl"), "w") as f:
        for p in preds:
            f.write(json.dumps(p) + "\n")
    exp = reference_scores(captions, instances, preds)
    with open(os.path.join(a.out, "expected.json"), "w") as f:
        json.dump(exp, f, indent=1)
    print(json.dumps({k: exp[k] for k in ("bbox", "segm", "box_recall_50")}, indent=1))
    print(json.dumps(exp["captions"]["overall"], indent=1))


if __name__ == "__main__":
    main()
