import Foundation

/// `PyTorchCheckpoint.parse`: the zip reader, the restricted unpickler and tensor validation. Every
/// accepted tensor must lie inside the file with a byte length matching its shape; the harness reads its
/// first and last byte so AddressSanitizer sees any range the validation let through wrongly.
enum FuzzPyTorch {
    static func run(_ bytes: UnsafeRawBufferPointer) {
        guard let parsed = try? PyTorchCheckpoint.parse(bytes, file: "fuzz.bin") else { return }
        let layout = parsed.layout
        fuzzCheck(layout.dataStart == 0 && layout.dataSize == bytes.count, "layout does not span the file")
        var checksum = 0
        for info in layout.tensors.values {
            let r = info.byteRange
            fuzzCheck(r.lowerBound >= 0 && r.upperBound <= bytes.count, "tensor \(info.name) outside the file")
            fuzzCheck(r.count == info.count * info.dtype.byteSize, "tensor \(info.name) byte length disagrees with its shape")
            if !r.isEmpty { checksum &+= Int(bytes[r.lowerBound]) &+ Int(bytes[r.upperBound - 1]) }
        }
        if checksum == -1 { print(checksum) }  // keep the reads
    }
}
