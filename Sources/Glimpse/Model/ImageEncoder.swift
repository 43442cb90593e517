import Foundation

/// What captioning needs from an image encoder of any family.
public protocol ImageEncoder: AnyObject, Sendable {
    /// Input side (pixels) of the square image the encoder expects.
    var imageSize: Int { get }
    /// Channels of the pixel values the patch embedding reads (num_channels).
    var channels: Int { get }
    /// Patch grid side G: the encoder output holds `patchOffset` special rows, then G×G patches.
    var gridSize: Int { get }
    var patchOffset: Int { get }
    var hiddenSize: Int { get }
    var sequenceLength: Int { get }
    /// Encodes `count` images' pixel values [count, 3, S, S] into hidden states [count, sequenceLength, hiddenSize].
    func encode(pixelValues: UnsafePointer<Float>, count: Int) -> Tensor
}
