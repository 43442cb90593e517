import Foundation

/// `SafeTensorsLayout.parse`: header validation. Every accepted entry must lie inside the data section,
/// match its shape, and not overlap another; the harness reads the first and last byte of each tensor
/// so AddressSanitizer sees any range the validation let through wrongly.
enum FuzzSafeTensors {
    static func run(_ bytes: UnsafeRawBufferPointer) {
        guard let layout = try? SafeTensorsLayout.parse(bytes, file: "fuzz.safetensors") else { return }
        fuzzCheck(layout.dataStart >= 8 && layout.dataStart <= bytes.count, "data section outside the file")
        fuzzCheck(layout.dataStart + layout.dataSize == bytes.count, "data size disagrees with the file")
        var ranges: [Range<Int>] = []
        var checksum = 0
        for info in layout.tensors.values {
            let r = info.byteRange
            fuzzCheck(r.lowerBound >= 0 && r.upperBound <= layout.dataSize, "tensor \(info.name) outside the data section")
            fuzzCheck(r.count == info.count * info.dtype.byteSize, "tensor \(info.name) byte length disagrees with its shape")
            if !r.isEmpty {
                checksum &+= Int(bytes[layout.dataStart + r.lowerBound]) &+ Int(bytes[layout.dataStart + r.upperBound - 1])
                ranges.append(r)
            }
        }
        ranges.sort { $0.lowerBound < $1.lowerBound }
        for (a, b) in zip(ranges, ranges.dropFirst()) { fuzzCheck(a.upperBound <= b.lowerBound, "overlapping tensors accepted") }
        if checksum == -1 { print(checksum) }  // keep the reads
    }
}
