import Foundation

/// pycocotools' `COCOeval` for `bbox` and `segm` (evaluate, accumulate, summarize), on one set of
/// images: the same IoUs, greedy matching by score at 10 IoU thresholds, crowd and area-range
/// ignoring, 101-point interpolated precision and the 12 `stats` values in their order.
public struct DetectionEvaluation {
    public enum IoUType: String, Sendable { case bbox, segm }

    /// One true object (an `instances` annotation).
    public struct Truth: Sendable {
        public var id: Int
        public var imageID: Int
        public var categoryID: Int
        public var box: [Double]          // x, y, w, h
        public var area: Double
        public var isCrowd: Bool
        public var mask: RLE?
        public init(id: Int, imageID: Int, categoryID: Int, box: [Double], area: Double, isCrowd: Bool, mask: RLE?) {
            self.id = id; self.imageID = imageID; self.categoryID = categoryID; self.box = box
            self.area = area; self.isCrowd = isCrowd; self.mask = mask
        }
    }

    /// One detection, in the order its image's record lists it.
    public struct Detected: Sendable {
        public var imageID: Int
        public var categoryID: Int
        public var box: [Double]
        public var score: Double
        public var mask: RLE?
        public init(imageID: Int, categoryID: Int, box: [Double], score: Double, mask: RLE?) {
            self.imageID = imageID; self.categoryID = categoryID; self.box = box; self.score = score; self.mask = mask
        }
    }

    public static let statNames = ["AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
                                   "AR_1", "AR_10", "AR_100", "AR_small", "AR_medium", "AR_large"]

    public struct Result: Sendable {
        /// COCOeval `stats`, in `statNames` order (-1 where nothing could be scored).
        public var stats: [Double]
        /// Non-crowd true objects matched at IoU 0.5 (all areas, 100 detections) / all of them.
        public var recallAt50: Double
        public var matchedObjects: Int
        public var trueObjects: Int
        /// For each matched true object (IoU 0.5, all areas, 100 detections): (truth index, detection index).
        public var matchesAt50: [(truth: Int, detection: Int)]
    }

    public let imageIDs: [Int]
    public let categoryIDs: [Int]
    public let truths: [Truth]
    public let detections: [Detected]

    static let iouThresholds: [Double] = linspace(0.5, 0.95, 10)
    static let recallThresholds: [Double] = linspace(0, 1, 101)
    static let areaRanges: [(Double, Double)] = [(0, 1e10), (0, 32 * 32), (32 * 32, 96 * 96), (96 * 96, 1e10)]
    static let maxDetections = [1, 10, 100]

    public init(imageIDs: [Int], categoryIDs: [Int], truths: [Truth], detections: [Detected]) {
        self.imageIDs = Array(Set(imageIDs)).sorted()
        self.categoryIDs = Array(Set(categoryIDs)).sorted()
        self.truths = truths
        self.detections = detections
    }

    /// numpy.linspace: start + i * step, the last value exactly `stop`.
    static func linspace(_ start: Double, _ stop: Double, _ n: Int) -> [Double] {
        let step = (stop - start) / Double(n - 1)
        return (0..<n).map { $0 == n - 1 ? stop : Double($0) * step + start }
    }

    private struct ImageEval {
        var dtScores: [Double]
        var dtMatched: [[Bool]]     // [threshold][detection]
        var dtIgnore: [[Bool]]
        var gtIgnore: [Bool]
        var gtMatchedAt50: [Int?]   // detection index (into `detections`) per truth, threshold 0.5
        var gtIndices: [Int]
    }

    public func evaluate(_ type: IoUType) throws -> Result {
        let images = Set(imageIDs)
        var gts: [Int: [Int: [Int]]] = [:], dts: [Int: [Int: [Int]]] = [:]   // image -> category -> indices
        for (i, t) in truths.enumerated() where images.contains(t.imageID) { gts[t.imageID, default: [:]][t.categoryID, default: []].append(i) }
        for (i, d) in detections.enumerated() where images.contains(d.imageID) { dts[d.imageID, default: [:]][d.categoryID, default: []].append(i) }
        let T = Self.iouThresholds.count, R = Self.recallThresholds.count
        let K = categoryIDs.count, A = Self.areaRanges.count, M = Self.maxDetections.count
        // evalImgs[k][a][image] for maxDet 100 (accumulate slices it for 1 and 10)
        var evals = [[[ImageEval?]]](repeating: [[ImageEval?]](repeating: [], count: A), count: K)
        for (k, cat) in categoryIDs.enumerated() {
            for image in imageIDs {
                let g = gts[image]?[cat] ?? []
                // detections by descending score, stable (mergesort), at most 100
                let d0 = (dts[image]?[cat] ?? []).enumerated().sorted {
                    detections[$0.element].score != detections[$1.element].score
                        ? detections[$0.element].score > detections[$1.element].score : $0.offset < $1.offset
                }.map(\.element)
                let d = Array(d0.prefix(Self.maxDetections[M - 1]))
                let ious = try iouMatrix(d, g, type)
                for a in 0..<A {
                    evals[k][a].append(evaluateImage(d, g, ious, areaRange: Self.areaRanges[a], type: type))
                }
            }
        }
        // accumulate
        var precision = [Double](repeating: -1, count: T * R * K * A * M)
        var recall = [Double](repeating: -1, count: T * K * A * M)
        func pIndex(_ t: Int, _ r: Int, _ k: Int, _ a: Int, _ m: Int) -> Int { (((t * R + r) * K + k) * A + a) * M + m }
        func rIndex(_ t: Int, _ k: Int, _ a: Int, _ m: Int) -> Int { ((t * K + k) * A + a) * M + m }
        for k in 0..<K {
            for a in 0..<A {
                let E = evals[k][a].compactMap { $0 }
                if E.isEmpty { continue }
                for (m, maxDet) in Self.maxDetections.enumerated() {
                    var scores: [Double] = [], matched = [[Bool]](repeating: [], count: T), ignored = [[Bool]](repeating: [], count: T)
                    var npig = 0
                    for e in E {
                        let n = min(maxDet, e.dtScores.count)
                        scores += e.dtScores[0..<n]
                        for t in 0..<T { matched[t] += e.dtMatched[t][0..<n]; ignored[t] += e.dtIgnore[t][0..<n] }
                        npig += e.gtIgnore.filter { !$0 }.count
                    }
                    if npig == 0 { continue }
                    let order = scores.indices.sorted { scores[$0] != scores[$1] ? scores[$0] > scores[$1] : $0 < $1 }
                    for t in 0..<T {
                        var tp = 0.0, fp = 0.0
                        var rc: [Double] = [], pr: [Double] = []
                        for i in order {
                            if ignored[t][i] { } else if matched[t][i] { tp += 1 } else { fp += 1 }
                            rc.append(tp / Double(npig))
                            pr.append(tp / (fp + tp + Double.ulpOfOne))
                        }
                        recall[rIndex(t, k, a, m)] = rc.last ?? 0
                        if pr.count > 1 { for i in stride(from: pr.count - 1, to: 0, by: -1) where pr[i] > pr[i - 1] { pr[i - 1] = pr[i] } }
                        for (ri, threshold) in Self.recallThresholds.enumerated() {
                            // searchsorted(rc, threshold, side="left"); past the end leaves 0
                            var lo = 0, hi = rc.count
                            while lo < hi { let mid = (lo + hi) / 2; if rc[mid] < threshold { lo = mid + 1 } else { hi = mid } }
                            precision[pIndex(t, ri, k, a, m)] = lo < pr.count ? pr[lo] : 0
                        }
                    }
                }
            }
        }
        // summarize
        func summarize(ap: Bool, threshold: Int?, area: Int, maxDet: Int) -> Double {
            let m = Self.maxDetections.firstIndex(of: maxDet) ?? (M - 1)
            var sum = 0.0, count = 0
            let ts = threshold.map { [$0] } ?? Array(0..<T)
            for t in ts {
                for k in 0..<K {
                    if ap {
                        for r in 0..<R { let v = precision[pIndex(t, r, k, area, m)]; if v > -1 { sum += v; count += 1 } }
                    } else {
                        let v = recall[rIndex(t, k, area, m)]; if v > -1 { sum += v; count += 1 }
                    }
                }
            }
            return count == 0 ? -1 : sum / Double(count)
        }
        let stats = [
            summarize(ap: true, threshold: nil, area: 0, maxDet: 100), summarize(ap: true, threshold: 0, area: 0, maxDet: 100),
            summarize(ap: true, threshold: 5, area: 0, maxDet: 100), summarize(ap: true, threshold: nil, area: 1, maxDet: 100),
            summarize(ap: true, threshold: nil, area: 2, maxDet: 100), summarize(ap: true, threshold: nil, area: 3, maxDet: 100),
            summarize(ap: false, threshold: nil, area: 0, maxDet: 1), summarize(ap: false, threshold: nil, area: 0, maxDet: 10),
            summarize(ap: false, threshold: nil, area: 0, maxDet: 100), summarize(ap: false, threshold: nil, area: 1, maxDet: 100),
            summarize(ap: false, threshold: nil, area: 2, maxDet: 100), summarize(ap: false, threshold: nil, area: 3, maxDet: 100),
        ]
        var matchedObjects = 0, trueObjects = 0
        var matches: [(truth: Int, detection: Int)] = []
        for k in 0..<K {
            for e in evals[k][0].compactMap({ $0 }) {
                for (j, ig) in e.gtIgnore.enumerated() where !ig {
                    trueObjects += 1
                    if let d = e.gtMatchedAt50[j] { matchedObjects += 1; matches.append((e.gtIndices[j], d)) }
                }
            }
        }
        return Result(stats: stats, recallAt50: trueObjects == 0 ? 0 : Double(matchedObjects) / Double(trueObjects),
                      matchedObjects: matchedObjects, trueObjects: trueObjects, matchesAt50: matches)
    }

    /// COCOeval.evaluateImg for one image, category and area range, maxDet 100 (detections already
    /// sorted and cut); truths are taken non-ignored first, stably.
    private func evaluateImage(_ d: [Int], _ g0: [Int], _ ious0: [[Double]], areaRange: (Double, Double), type: IoUType) -> ImageEval? {
        if d.isEmpty && g0.isEmpty { return nil }
        func ignoredTruth(_ i: Int) -> Bool {
            let t = truths[i]
            return t.isCrowd || t.area < areaRange.0 || t.area > areaRange.1
        }
        let gOrder = g0.indices.sorted { (ignoredTruth(g0[$0]) ? 1 : 0, $0) < (ignoredTruth(g0[$1]) ? 1 : 0, $1) }
        let g = gOrder.map { g0[$0] }
        let gtIg = g.map(ignoredTruth)
        let crowd = g.map { truths[$0].isCrowd }
        let T = Self.iouThresholds.count
        var gtm = [[Int?]](repeating: [Int?](repeating: nil, count: g.count), count: T)
        var dtm = [[Bool]](repeating: [Bool](repeating: false, count: d.count), count: T)
        var dtIg = dtm
        for (t, threshold) in Self.iouThresholds.enumerated() {
            for dind in d.indices {
                var iou = min(threshold, 1 - 1e-10)
                var m = -1
                for gind in g.indices {
                    if gtm[t][gind] != nil && !crowd[gind] { continue }
                    if m > -1 && !gtIg[m] && gtIg[gind] { break }
                    let v = ious0[dind][gOrder[gind]]
                    if v < iou { continue }
                    iou = v
                    m = gind
                }
                if m == -1 { continue }
                dtIg[t][dind] = gtIg[m]
                dtm[t][dind] = true
                gtm[t][m] = d[dind]
            }
        }
        for dind in d.indices {
            let det = detections[d[dind]]
            let area = type == .bbox ? det.box[2] * det.box[3] : Double(det.mask?.area ?? 0)
            if area < areaRange.0 || area > areaRange.1 { for t in 0..<T where !dtm[t][dind] { dtIg[t][dind] = true } }
        }
        return ImageEval(dtScores: d.map { detections[$0].score }, dtMatched: dtm, dtIgnore: dtIg, gtIgnore: gtIg,
                         gtMatchedAt50: gtm[0], gtIndices: g)
    }

    /// IoU of each detection with each truth (maskApi.c bbIou / rleIou): a crowd truth divides the
    /// intersection by the detection's area alone.
    private func iouMatrix(_ d: [Int], _ g: [Int], _ type: IoUType) throws -> [[Double]] {
        try d.map { di in
            let det = detections[di]
            return try g.map { gi in
                let t = truths[gi]
                switch type {
                case .bbox:
                    let db = det.box, gb = t.box
                    let w = min(db[0] + db[2], gb[0] + gb[2]) - max(db[0], gb[0])
                    if w <= 0 { return 0 }
                    let h = min(db[1] + db[3], gb[1] + gb[3]) - max(db[1], gb[1])
                    if h <= 0 { return 0 }
                    let inter = w * h
                    let union = t.isCrowd ? db[2] * db[3] : db[2] * db[3] + gb[2] * gb[3] - inter
                    return inter / union
                case .segm:
                    guard let dm = det.mask, let gm = t.mask else { return 0 }
                    guard dm.height == gm.height, dm.width == gm.width else {
                        throw EvaluationError.maskSizeMismatch(image: t.imageID, detection: [dm.height, dm.width], truth: [gm.height, gm.width])
                    }
                    return dm.iou(gm, crowd: t.isCrowd)
                }
            }
        }
    }
}

extension RLE {
    /// maskApi.c rleIou: intersection over union, or over this mask's area alone against a crowd region.
    func iou(_ other: RLE, crowd: Bool = false) -> Double {
        let inter = Double(intersectionArea(other))
        let union = crowd ? Double(area) : Double(area + other.area) - inter
        return union > 0 ? inter / union : 0
    }

    /// Pixels set in both masks (same size), from the runs alone.
    func intersectionArea(_ other: RLE) -> Int {
        let a = onRuns, b = other.onRuns
        var i = 0, j = 0, total = 0
        while i < a.count && j < b.count {
            let lo = max(a[i].0, b[j].0), hi = min(a[i].1, b[j].1)
            if hi > lo { total += hi - lo }
            if a[i].1 < b[j].1 { i += 1 } else { j += 1 }
        }
        return total
    }

    /// [start, end) of each run of set pixels, in column-major order.
    var onRuns: [(Int, Int)] {
        var runs: [(Int, Int)] = []
        var pos = 0
        for (i, c) in counts.enumerated() {
            if i % 2 == 1 && c > 0 { runs.append((pos, pos + c)) }
            pos += c
        }
        return runs
    }

    /// pycocotools' `frPyObjects` + `merge` for a polygon annotation: each polygon [x0, y0, x1, y1, ...]
    /// rasterized by maskApi.c `rleFrPoly` (boundary upsampled 5x, pixel centers inside), then their union.
    public init(polygons: [[Double]], height: Int, width: Int) throws {
        var union = BitMask(width: width, height: height)
        // points far outside the image would only cost memory (rleFrPoly walks every boundary pixel)
        let limit = 4.0 * Double(max(width, height)) + 16
        for poly in polygons {
            guard poly.count >= 6, poly.count % 2 == 0, poly.allSatisfy(\.isFinite) else {
                throw EvaluationError.invalidPolygon("a polygon needs at least 3 points, got \(poly.count) coordinates")
            }
            guard poly.allSatisfy({ abs($0) <= limit }) else {
                throw EvaluationError.invalidPolygon("a coordinate lies more than \(Int(limit)) pixels from a \(width)x\(height) image")
            }
            var pos = 0
            for (i, c) in RLE.polygonCounts(poly, height: height, width: width).enumerated() {
                if i % 2 == 1, pos < height * width {
                    for k in pos..<min(pos + c, height * width) { union[k / height, k % height] = true }  // column-major k
                }
                pos += c
            }
        }
        self.init(mask: union)
    }

    /// maskApi.c rleFrPoly, step for step.
    static func polygonCounts(_ xy: [Double], height h: Int, width w: Int) -> [Int] {
        let scale = 5.0
        let k = xy.count / 2
        var x = [Int](repeating: 0, count: k + 1), y = [Int](repeating: 0, count: k + 1)
        for j in 0..<k { x[j] = Int(scale * xy[2 * j] + 0.5); y[j] = Int(scale * xy[2 * j + 1] + 0.5) }
        x[k] = x[0]; y[k] = y[0]
        var u: [Int] = [], v: [Int] = []
        for j in 0..<k {
            var xs = x[j], xe = x[j + 1], ys = y[j], ye = y[j + 1]
            let dx = abs(xe - xs), dy = abs(ys - ye)
            let flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye)
            if flip { swap(&xs, &xe); swap(&ys, &ye) }
            let s = dx >= dy ? Double(ye - ys) / Double(dx) : Double(xe - xs) / Double(dy)
            if dx >= dy {
                for d in 0...dx { let t = flip ? dx - d : d; u.append(t + xs); v.append(Int(Double(ys) + s * Double(t) + 0.5)) }
            } else {
                for d in 0...dy { let t = flip ? dy - d : d; v.append(t + ys); u.append(Int(Double(xs) + s * Double(t) + 0.5)) }
            }
        }
        // points along the y-boundary, downsampled
        var bx: [Int] = [], by: [Int] = []
        for j in 1..<max(u.count, 1) where u[j] != u[j - 1] {
            var xd = Double(u[j] < u[j - 1] ? u[j] : u[j] - 1)
            xd = (xd + 0.5) / scale - 0.5
            if xd.rounded(.down) != xd || xd < 0 || xd > Double(w - 1) { continue }
            var yd = Double(v[j] < v[j - 1] ? v[j] : v[j - 1])
            yd = (yd + 0.5) / scale - 0.5
            if yd < 0 { yd = 0 } else if yd > Double(h) { yd = Double(h) }
            yd = yd.rounded(.up)
            bx.append(Int(xd)); by.append(Int(yd))
        }
        var a = zip(bx, by).map { $0 * h + $1 }
        a.append(h * w)
        a.sort()
        var p = 0
        for j in a.indices { let t = a[j]; a[j] -= p; p = t }
        var b: [Int] = []
        var j = 0
        if !a.isEmpty { b.append(a[0]); j = 1 }
        while j < a.count {
            if a[j] > 0 { b.append(a[j]); j += 1 } else { j += 1; if j < a.count { b[b.count - 1] += a[j]; j += 1 } }
        }
        return b
    }

    /// [x, y, w, h] of the set pixels (maskApi.c rleToBbox), zeros when empty; from the runs, so a
    /// huge mask costs nothing to measure.
    public var boundingBoxValues: [Double] {
        guard height > 0 else { return [0, 0, 0, 0] }
        var x0 = Int.max, x1 = -1, y0 = Int.max, y1 = -1
        for (start, end) in onRuns {
            let c0 = start / height, c1 = (end - 1) / height
            x0 = min(x0, c0); x1 = max(x1, c1)
            if c0 != c1 { y0 = 0; y1 = height - 1 } else { y0 = min(y0, start % height); y1 = max(y1, (end - 1) % height) }
        }
        guard x1 >= 0 else { return [0, 0, 0, 0] }
        return [Double(x0), Double(y0), Double(x1 - x0 + 1), Double(y1 - y0 + 1)]
    }
}

public enum EvaluationError: Error, CustomStringConvertible {
    case unreadable(file: String, reason: String)
    case invalid(file: String, reason: String)
    case maskSizeMismatch(image: Int, detection: [Int], truth: [Int])
    case invalidPolygon(String)
    case ambiguousMatch(file: String, candidates: [String])

    public var description: String {
        switch self {
        case .unreadable(let f, let r): return "\(f): cannot read (\(r))"
        case .invalid(let f, let r): return "\(f): \(r)"
        case .maskSizeMismatch(let i, let d, let t): return "image \(i): a detection mask is \(d[1])x\(d[0]), the true masks \(t[1])x\(t[0])"
        case .invalidPolygon(let r): return "invalid polygon: \(r)"
        case .ambiguousMatch(let f, let c): return "\(f) matches several predictions by base name: \(c.joined(separator: ", "))"
        }
    }
}
