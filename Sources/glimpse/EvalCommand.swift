import ArgumentParser
import Foundation
import Glimpse

/// `glimpse eval PRED.jsonl --references CAPTIONS.json [--instances INSTANCES.json]`.
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Score batch output against COCO captions (and instances) with pycocoevalcap's and pycocotools' metrics.",
        discussion: """
        Captions: BLEU-1..4, METEOR (when java and a METEOR 1.5 jar are available, run as pycocoevalcap \
        runs it), ROUGE-L and CIDEr-D on pycocoevalcap's PTB tokenization, and exact match (the caption \
        equal to one of the image's references). With --instances: COCOeval's bbox and segm AP/AR (its 12 \
        stats, detections matched to categories by label = category name), box recall at IoU 0.5 and the \
        mean mask IoU of the objects matched by their boxes. Predictions are matched to images by file \
        name relative to the batch root, else by base name; error records score as empty captions.
        """)

    @Argument(help: "Predictions: JSON Lines from `glimpse batch` (or `glimpse caption --json`).")
    var predictions: String
    @Option(name: .long, help: "COCO captions file (images with file_name, annotations with image_id and caption).")
    var references: String
    @Option(name: .long, help: "COCO instances file (boxes, categories, RLE or polygon masks).")
    var instances: String?
    @Flag(name: .long, help: "Print one JSON object (pycocoevalcap key names; bbox/segm keyed in COCOeval stats order).")
    var json = false
    @Flag(name: .long, help: "Also report each image's scores.")
    var perImage = false
    @Option(name: .long, help: "METEOR 1.5 jar (pycocoevalcap ships it as pycocoevalcap/meteor/meteor-1.5.jar); default: $GLIMPSE_METEOR_JAR.")
    var meteorJar: String?

    func run() throws {
        let jar = meteorJar ?? ProcessInfo.processInfo.environment["GLIMPSE_METEOR_JAR"]
        do {
            let report = try COCOEvaluation.evaluate(
                predictions: URL(fileURLWithPath: predictions), references: URL(fileURLWithPath: references),
                instances: instances.map { URL(fileURLWithPath: $0) },
                options: .init(meteorJar: jar.map { URL(fileURLWithPath: $0) }))
            if let note = report.meteorNote { printError("glimpse: \(note)") }
            if report.missing > 0 { printError("glimpse: \(report.missing) reference images have no prediction record (left out)") }
            if report.unmatchedPredictions > 0 { printError("glimpse: \(report.unmatchedPredictions) prediction records match no reference image") }
            if report.unknownLabels > 0 { printError("glimpse: \(report.unknownLabels) detections have a label that is no category name (left out)") }
            if report.images == 0 {
                printError("glimpse: \(predictions): no prediction matches an image of \(references)")
                throw ExitCode(1)
            }
            print(json ? report.json(perImage: perImage) : report.text(perImage: perImage))
        } catch let e as EvaluationError {
            printError("glimpse: \(e)")
            throw ExitCode(1)
        } catch let e as Meteor.Failure {
            printError("glimpse: \(e)")
            throw ExitCode(1)
        }
    }
}
