import Foundation

/// `glimpse eval`: Glimpse's batch output scored against COCO-format references, with the numbers
/// pycocoevalcap and pycocotools report.
///
/// Images scored are the references' images that have a prediction record, matched by file name:
/// the record's `file` equal to the image's `file_name` or ending in `/file_name` (the name relative
/// to the batch root), else by base name. An error record counts as an empty caption and no
/// detections; reference images without a record are counted as missing and left out, as
/// pycocoevalcap leaves out images without results.
public struct COCOEvaluation {
    public struct Image: Sendable {
        public var id: Int
        public var fileName: String
    }

    public struct PerImage: Sendable {
        public var imageID: Int
        public var fileName: String
        public var caption: String
        public var failed: Bool
        public var scores: [(String, Double)]
        public var exactMatch: Bool
    }

    public struct Report: Sendable {
        public var images = 0
        public var failed = 0
        public var missing = 0
        public var unmatchedPredictions = 0
        /// pycocoevalcap key names, in its order (METEOR only when it ran).
        public var captionScores: [(String, Double)] = []
        public var exactMatch = 0.0
        /// Exact match by the number of true (non-crowd) objects in the image, with --instances.
        public var exactMatchByObjects: [(Int, Double, Int)] = []
        public var meteorNote: String?
        public var bbox: [Double]?
        public var segm: [Double]?
        public var boxRecall50: Double?
        public var matchedObjects = 0
        public var trueObjects = 0
        /// Mean mask IoU over the true objects matched at box IoU 0.5 (same label).
        public var maskMeanIoU: Double?
        public var unknownLabels = 0
        public var perImage: [PerImage] = []
    }

    public struct Options: Sendable {
        public var meteorJar: URL?
        public var java: URL?
        public init(meteorJar: URL? = nil, java: URL? = Meteor.javaExecutable()) {
            self.meteorJar = meteorJar
            self.java = java
        }
    }

    // MARK: - reading

    static func readJSON(_ url: URL) throws -> [String: Any] {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw EvaluationError.unreadable(file: url.path, reason: "\(error.localizedDescription)") }
        guard let obj = try? JSONSerialization.jsonObject(with: data), let dict = obj as? [String: Any] else {
            throw EvaluationError.invalid(file: url.path, reason: "not a JSON object")
        }
        return dict
    }

    static func int(_ v: Any?) -> Int? {
        guard let n = v as? NSNumber else { return nil }
        let d = n.doubleValue
        return d.rounded() == d && abs(d) < 9e15 ? Int(d) : nil
    }

    static func double(_ v: Any?) -> Double? { (v as? NSNumber).map(\.doubleValue).flatMap { $0.isFinite ? $0 : nil } }

    static func images(_ json: [String: Any], file: String) throws -> [Image] {
        guard let list = json["images"] as? [[String: Any]] else { throw EvaluationError.invalid(file: file, reason: "no \"images\" list") }
        return try list.enumerated().map { i, im in
            guard let id = int(im["id"]), let name = im["file_name"] as? String else {
                throw EvaluationError.invalid(file: file, reason: "images[\(i)] needs an integer \"id\" and a \"file_name\"")
            }
            return Image(id: id, fileName: name)
        }
    }

    /// COCO captions: image id -> captions, in file order.
    public static func readCaptions(_ url: URL) throws -> (images: [Image], captions: [Int: [String]]) {
        let json = try readJSON(url)
        let ims = try images(json, file: url.path)
        guard let anns = json["annotations"] as? [[String: Any]] else { throw EvaluationError.invalid(file: url.path, reason: "no \"annotations\" list") }
        var caps: [Int: [String]] = [:]
        for (i, a) in anns.enumerated() {
            guard let id = int(a["image_id"]), let c = a["caption"] as? String else {
                throw EvaluationError.invalid(file: url.path, reason: "annotations[\(i)] needs \"image_id\" and \"caption\"")
            }
            caps[id, default: []].append(c)
        }
        return (ims, caps)
    }

    public struct Instances {
        public var images: [Image]
        public var sizes: [Int: (Int, Int)]              // image id -> (height, width)
        public var categories: [(id: Int, name: String)]
        public var truths: [DetectionEvaluation.Truth]
    }

    /// COCO instances: boxes, categories, RLE (compressed or not) or polygon masks.
    public static func readInstances(_ url: URL) throws -> Instances {
        let file = url.path
        let json = try readJSON(url)
        let ims = try images(json, file: file)
        var sizes: [Int: (Int, Int)] = [:]
        for im in (json["images"] as? [[String: Any]]) ?? [] {
            if let id = int(im["id"]), let w = int(im["width"]), let h = int(im["height"]) { sizes[id] = (h, w) }
        }
        guard let cats = json["categories"] as? [[String: Any]] else { throw EvaluationError.invalid(file: file, reason: "no \"categories\" list") }
        let categories: [(id: Int, name: String)] = try cats.enumerated().map { i, c in
            guard let id = int(c["id"]), let name = c["name"] as? String else {
                throw EvaluationError.invalid(file: file, reason: "categories[\(i)] needs an integer \"id\" and a \"name\"")
            }
            return (id, name)
        }
        guard let anns = json["annotations"] as? [[String: Any]] else { throw EvaluationError.invalid(file: file, reason: "no \"annotations\" list") }
        var truths: [DetectionEvaluation.Truth] = []
        for (i, a) in anns.enumerated() {
            let here = "annotations[\(i)]"
            guard let id = int(a["id"]), let image = int(a["image_id"]), let cat = int(a["category_id"]) else {
                throw EvaluationError.invalid(file: file, reason: "\(here) needs integer \"id\", \"image_id\" and \"category_id\"")
            }
            guard let box = (a["bbox"] as? [Any])?.compactMap(double), box.count == 4 else {
                throw EvaluationError.invalid(file: file, reason: "\(here): \"bbox\" is [x, y, w, h]")
            }
            let crowd = (int(a["iscrowd"]) ?? 0) != 0
            var mask: RLE?
            if let seg = a["segmentation"] {
                let size = sizes[image]
                do {
                    if let polys = seg as? [[Any]] {
                        guard let (h, w) = size else { throw EvaluationError.invalid(file: file, reason: "\(here): polygon on an image without width/height") }
                        guard h > 0, w > 0, h <= 1 << 15, w <= 1 << 15 else { throw EvaluationError.invalid(file: file, reason: "\(here): image size \(w)x\(h) out of range") }
                        mask = try RLE(polygons: polys.map { $0.compactMap(double) }, height: h, width: w)
                    } else if let rle = seg as? [String: Any] {
                        let data = try JSONSerialization.data(withJSONObject: rle)
                        mask = try JSONDecoder().decode(RLE.self, from: data)
                    }
                } catch let e as EvaluationError { throw e } catch {
                    throw EvaluationError.invalid(file: file, reason: "\(here): unreadable segmentation (\(error))")
                }
            }
            let area = double(a["area"]) ?? Double(mask?.area ?? 0)
            truths.append(.init(id: id, imageID: image, categoryID: cat, box: box, area: area, isCrowd: crowd, mask: mask))
        }
        return Instances(images: ims, sizes: sizes, categories: categories, truths: truths)
    }

    /// Batch JSON Lines; the last record of a file wins.
    public static func readPredictions(_ url: URL) throws -> [CaptionRecord] {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw EvaluationError.unreadable(file: url.path, reason: "\(error.localizedDescription)") }
        var records: [CaptionRecord] = []
        for (n, line) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if line.allSatisfy(\.isWhitespace) { continue }
            do { records.append(try JSONDecoder().decode(CaptionRecord.self, from: Data(line.utf8))) } catch {
                throw EvaluationError.invalid(file: url.path, reason: "line \(n + 1) is not a Glimpse record (\(error))")
            }
        }
        return records
    }

    /// Prediction index for each image (nil: none), by relative file name, then by base name.
    public static func match(_ images: [Image], to records: [CaptionRecord], file: String) throws -> [Int?] {
        var byPath: [String: Int] = [:], byBase: [String: [Int]] = [:]
        for (i, r) in records.enumerated() {
            byPath[r.file] = i
            byBase[(r.file as NSString).lastPathComponent, default: []].append(i)
        }
        let paths = Array(byPath.keys)
        return try images.map { im in
            if let i = byPath[im.fileName] { return i }
            let suffix = "/" + im.fileName
            let hits = paths.filter { $0.hasSuffix(suffix) }
            if hits.count == 1 { return byPath[hits[0]] }
            if hits.count > 1 { throw EvaluationError.ambiguousMatch(file: im.fileName, candidates: hits.sorted()) }
            let base = (im.fileName as NSString).lastPathComponent
            let cands = Array(Set((byBase[base] ?? []).map { records[$0].file }))
            if cands.count > 1 { throw EvaluationError.ambiguousMatch(file: im.fileName, candidates: cands.sorted()) }
            return cands.first.flatMap { byPath[$0] }
        }
    }

    // MARK: - scoring

    public static func evaluate(predictions: URL, references: URL, instances: URL?, options: Options = Options()) throws -> Report {
        let records = try readPredictions(predictions)
        let (images, captions) = try readCaptions(references)
        let matches = try match(images, to: records, file: references.path)
        var report = Report()
        var scored: [(Image, CaptionRecord)] = []
        for (im, m) in zip(images, matches) {
            guard let m else { report.missing += 1; continue }
            guard let refs = captions[im.id], !refs.isEmpty else {
                throw EvaluationError.invalid(file: references.path, reason: "image \(im.id) (\(im.fileName)) has no caption")
            }
            scored.append((im, records[m]))
        }
        report.images = scored.count
        report.failed = scored.filter { $0.1.isError }.count
        report.unmatchedPredictions = Set(records.indices).subtracting(matches.compactMap { $0 }).count
        let texts = scored.map { $0.1.captions?.first?.text ?? "" }
        let refs = scored.map { captions[$0.0.id] ?? [] }
        let hyps = texts.map(PTBTokenizer.tokenize)
        let tokRefs = refs.map { $0.map(PTBTokenizer.tokenize) }
        var perImageScores = [[(String, Double)]](repeating: [], count: scored.count)
        if !scored.isEmpty {
            let bleu = CaptionMetrics.bleu(hypotheses: hyps, references: tokRefs)
            for n in 0..<4 {
                report.captionScores.append(("Bleu_\(n + 1)", bleu.corpus[n]))
                for i in scored.indices { perImageScores[i].append(("Bleu_\(n + 1)", bleu.perImage[i][n])) }
            }
            if let jar = options.meteorJar {
                if let java = options.java {
                    let m = try Meteor.score(hypotheses: hyps, references: tokRefs, jar: jar, java: java)
                    report.captionScores.append(("METEOR", m.corpus))
                    for i in scored.indices { perImageScores[i].append(("METEOR", m.perImage[i])) }
                } else {
                    report.meteorNote = "METEOR skipped: java is not on PATH"
                }
            } else {
                report.meteorNote = "METEOR skipped: no METEOR 1.5 jar (--meteor-jar or GLIMPSE_METEOR_JAR)"
            }
            let rouge = CaptionMetrics.rougeL(hypotheses: hyps, references: tokRefs)
            report.captionScores.append(("ROUGE_L", rouge.corpus))
            let cider = CaptionMetrics.ciderD(hypotheses: hyps, references: tokRefs)
            report.captionScores.append(("CIDEr", cider.corpus))
            for i in scored.indices {
                perImageScores[i].append(("ROUGE_L", rouge.perImage[i]))
                perImageScores[i].append(("CIDEr", cider.perImage[i]))
            }
        }
        let exact = zip(texts, refs).map { t, r in
            let text = t.trimmingCharacters(in: .whitespacesAndNewlines)
            return r.contains { $0.trimmingCharacters(in: .whitespacesAndNewlines) == text }
        }
        report.exactMatch = exact.isEmpty ? 0 : Double(exact.filter { $0 }.count) / Double(exact.count)
        report.perImage = scored.indices.map { i in
            PerImage(imageID: scored[i].0.id, fileName: scored[i].0.fileName, caption: texts[i], failed: scored[i].1.isError,
                     scores: perImageScores[i], exactMatch: exact[i])
        }
        if let instances {
            try scoreDetections(instances: instances, records: records, captionFiles: Set(scored.map { $0.0.fileName }),
                                exact: Dictionary(uniqueKeysWithValues: scored.indices.map { (scored[$0].0.fileName, exact[$0]) }),
                                report: &report)
        }
        return report
    }

    static func scoreDetections(instances url: URL, records: [CaptionRecord], captionFiles: Set<String>,
                                exact: [String: Bool], report: inout Report) throws {
        let inst = try readInstances(url)
        let matches = try match(inst.images, to: records, file: url.path)
        let categoryByName = Dictionary(inst.categories.map { ($0.name, $0.id) }, uniquingKeysWith: { a, _ in a })
        var imageIDs: [Int] = []
        var boxes: [DetectionEvaluation.Detected] = [], masks: [DetectionEvaluation.Detected] = []
        var byObjects: [Int: (Int, Int)] = [:]
        for (im, m) in zip(inst.images, matches) {
            guard let m else { continue }
            imageIDs.append(im.id)
            let objects = inst.truths.filter { $0.imageID == im.id && !$0.isCrowd }.count
            if let e = exact[im.fileName] {
                let c = byObjects[objects] ?? (0, 0)
                byObjects[objects] = (c.0 + (e ? 1 : 0), c.1 + 1)
            }
            for d in records[m].detections ?? [] {
                guard let cat = categoryByName[d.label] else { report.unknownLabels += 1; continue }
                let box = d.box.array.map(Double.init)
                boxes.append(.init(imageID: im.id, categoryID: cat, box: box, score: d.score, mask: d.mask))
                if let mask = d.mask {
                    masks.append(.init(imageID: im.id, categoryID: cat, box: mask.boundingBoxValues, score: d.score, mask: mask))
                }
            }
        }
        report.exactMatchByObjects = byObjects.keys.sorted().map { ($0, Double(byObjects[$0]!.0) / Double(byObjects[$0]!.1), byObjects[$0]!.1) }
        let cats = inst.categories.map(\.id)
        let bbox = try DetectionEvaluation(imageIDs: imageIDs, categoryIDs: cats, truths: inst.truths, detections: boxes).evaluate(.bbox)
        report.bbox = bbox.stats
        report.boxRecall50 = bbox.recallAt50
        report.matchedObjects = bbox.matchedObjects
        report.trueObjects = bbox.trueObjects
        // mask IoU of each object matched by its box
        var ious: [Double] = []
        for (t, d) in bbox.matchesAt50 {
            guard let gm = inst.truths[t].mask, let dm = boxes[d].mask, gm.height == dm.height, gm.width == dm.width else { ious.append(0); continue }
            ious.append(dm.iou(gm))
        }
        report.maskMeanIoU = ious.isEmpty ? nil : ious.reduce(0, +) / Double(ious.count)
        if inst.truths.contains(where: { $0.mask != nil }) {
            report.segm = try DetectionEvaluation(imageIDs: imageIDs, categoryIDs: cats, truths: inst.truths, detections: masks).evaluate(.segm).stats
        }
    }
}

extension COCOEvaluation.Report {
    static func number(_ v: Double) -> String { RecordCoding.number(v) }

    /// One JSON object: pycocoevalcap's keys, exact_match, and with --instances `bbox`/`segm` keyed
    /// in COCOeval's `stats` order.
    public func json(perImage includePerImage: Bool) -> String {
        var parts: [String] = ["\"images\":\(images)", "\"failed\":\(failed)", "\"missing\":\(missing)"]
        for (k, v) in captionScores { parts.append("\(JSONText.quoted(k)):\(Self.number(v))") }
        parts.append("\"exact_match\":\(Self.number(exactMatch))")
        if !exactMatchByObjects.isEmpty {
            parts.append("\"exact_match_by_objects\":{" + exactMatchByObjects.map { "\"\($0.0)\":\(Self.number($0.1))" }.joined(separator: ",") + "}")
        }
        for (name, stats) in [("bbox", bbox), ("segm", segm)] {
            guard let stats else { continue }
            parts.append("\"\(name)\":{" + zip(DetectionEvaluation.statNames, stats).map { "\"\($0)\":\(Self.number($1))" }.joined(separator: ",") + "}")
        }
        if let r = boxRecall50 { parts.append("\"box_recall_50\":\(Self.number(r))") }
        if let m = maskMeanIoU { parts.append("\"mask_mIoU\":\(Self.number(m))") }
        if includePerImage {
            parts.append("\"per_image\":[" + perImage.map { p in
                var o = "{\"image_id\":\(p.imageID),\"file_name\":\(JSONText.quoted(p.fileName)),\"caption\":\(JSONText.quoted(p.caption))"
                if p.failed { o += ",\"failed\":true" }
                for (k, v) in p.scores { o += ",\(JSONText.quoted(k)):\(Self.number(v))" }
                return o + ",\"exact_match\":\(p.exactMatch)}"
            }.joined(separator: ",") + "]")
        }
        return "{" + parts.joined(separator: ",") + "}"
    }

    /// Human-readable summary.
    public func text(perImage includePerImage: Bool) -> String {
        func f(_ v: Double) -> String { String(format: "%.4f", v) }
        var lines: [String] = []
        if includePerImage {
            for p in perImage {
                lines.append(([p.fileName] + p.scores.map { "\($0.0)=\(f($0.1))" } + ["exact=\(p.exactMatch)"]).joined(separator: "\t"))
            }
        }
        lines.append("images: \(images) (\(failed) failed, \(missing) reference images without a prediction)")
        for (k, v) in captionScores { lines.append("\(k): \(f(v))") }
        var em = "exact_match: \(f(exactMatch))"
        if !exactMatchByObjects.isEmpty {
            em += " (by objects: " + exactMatchByObjects.map { "\($0.0): \(f($0.1)) of \($0.2)" }.joined(separator: ", ") + ")"
        }
        lines.append(em)
        for (name, stats) in [("bbox", bbox), ("segm", segm)] {
            guard let stats else { continue }
            lines.append("\(name): " + zip(DetectionEvaluation.statNames, stats).map { "\($0) \(f($1))" }.joined(separator: "  "))
        }
        if let r = boxRecall50 { lines.append("box recall@0.5: \(f(r)) (\(matchedObjects) of \(trueObjects) objects)") }
        if let m = maskMeanIoU { lines.append("mask mIoU (objects matched at box IoU 0.5): \(f(m))") }
        return lines.joined(separator: "\n")
    }
}
