import Foundation

/// Where the image patches sit among an encoder's output rows: `rows` hold a `grid` × `grid` patch
/// grid, row-major (y, x). ViT and BLIP put a class row first (rows 1..<1+G²); other encoders may put
/// pooled rows first or prompt rows after the patches, so the range says where they are.
public struct PatchRows: Sendable, Equatable {
    public let rows: Range<Int>
    public let grid: Int

    /// The G×G patches right after `first` other rows.
    public init(first: Int, grid: Int) {
        precondition(first >= 0 && grid >= 1)
        rows = first..<(first + grid * grid)
        self.grid = grid
    }
}

/// What captioning needs from an image encoder of any family.
public protocol ImageEncoder: AnyObject, Sendable {
    /// Input side (pixels) of the square image the encoder expects.
    var imageSize: Int { get }
    /// Channels of the pixel values the patch embedding reads (num_channels).
    var channels: Int { get }
    var hiddenSize: Int { get }
    /// Output rows per image without a prompt.
    var sequenceLength: Int { get }
    /// Where the patch rows are in the output (the maps and heads read only those).
    var patches: PatchRows { get }
    /// Encodes `count` images' pixel values [count, 3, S, S] into hidden states [count, rows, hiddenSize].
    /// `prompt` (token ids shared by the images) is for an encoder that reads the text too, as
    /// Florence-2's BART encoder runs over [image tokens; prompt tokens]; a vision-only encoder
    /// (ViT, BLIP) requires it empty, its family passes the prompt to the decoder instead.
    func encode(pixelValues: UnsafePointer<Float>, count: Int, prompt: [Int]) -> Tensor
    /// The longest prompt `encode` takes (its position embeddings end there); 0 for a vision-only encoder.
    var maxPromptLength: Int { get }
}

extension ImageEncoder {
    public var maxPromptLength: Int { 0 }

    /// Encodes images without a prompt: [count, sequenceLength, hiddenSize].
    public func encode(pixelValues: UnsafePointer<Float>, count: Int) -> Tensor {
        encode(pixelValues: pixelValues, count: count, prompt: [])
    }
}

/// What `glimpse classify` needs from an image classifier of any family.
public protocol ImageClassifier: AnyObject, Sendable {
    /// Input side (pixels) of the square image it expects.
    var imageSize: Int { get }
    /// Channels of the pixel values its patch embedding reads (num_channels).
    var channels: Int { get }
    /// Number of classes its head scores.
    var classCount: Int { get }
    /// Rows of its encoder's sequence (class row and patches) and where the patches are.
    var sequenceLength: Int { get }
    var patches: PatchRows { get }
    var layerCount: Int { get }
    var headCount: Int { get }
    /// Logits [count, classCount] for `count` images' pixel values [count, 3, S, S]; with `attentions`,
    /// each encoder layer's attention probabilities are stored there as
    /// [layerCount, count, headCount, sequenceLength, sequenceLength].
    func logits(pixelValues: UnsafePointer<Float>, count: Int, attentions: UnsafeMutablePointer<Float>?) -> Tensor
}
