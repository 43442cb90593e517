import Foundation

/// The central directory of a zip archive held in memory (a mapped file), enough to find the stored
/// entries of a PyTorch checkpoint: names, compression method, CRC and the byte range of each entry's
/// data. Zip64 records are read (torch writes them for checkpoints over 4 GiB). Nothing is inflated:
/// `torch.save` stores entries uncompressed so tensors can be mapped in place, and a compressed entry is
/// reported by the caller rather than silently copied.
struct ZipArchive {
    struct Entry {
        let name: String
        /// 0 = stored, 8 = deflate, ...
        let method: UInt16
        let crc32: UInt32
        /// The entry's data (compressed size bytes) inside the archive.
        let dataRange: Range<Int>
        let uncompressedSize: Int
        var isStored: Bool { method == 0 }
    }

    let entries: [String: Entry]
    /// Names in central-directory order.
    let names: [String]

    static let maxEntries = 1_000_000

    init(_ bytes: UnsafeRawBufferPointer, file: String) throws {
        func fail(_ reason: String) -> WeightError { .invalidCheckpoint(file: file, reason: "zip: \(reason)") }
        func u16(_ at: Int) -> Int { Int(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt16.self))) }
        func u32(_ at: Int) -> Int { Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self))) }
        func u64(_ at: Int) throws -> Int {
            let v = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self))
            guard v <= UInt64(Int.max) else { throw fail("64-bit field at \(at) too large") }
            return Int(v)
        }
        let size = bytes.count
        // End of central directory: 22 bytes plus a comment of up to 65535 bytes, at the very end.
        guard size >= 22 else { throw fail("file too short for an end-of-central-directory record") }
        var eocd = -1
        var at = size - 22
        let lowest = max(0, size - 22 - 65_535)
        while at >= lowest {
            if u32(at) == 0x0605_4b50 && at + 22 + u16(at + 20) == size { eocd = at; break }
            at -= 1
        }
        guard eocd >= 0 else { throw fail("no end-of-central-directory record") }
        var count = u16(eocd + 10)
        var directorySize = u32(eocd + 12)
        var directoryOffset = u32(eocd + 16)
        if count == 0xFFFF || directorySize == 0xFFFF_FFFF || directoryOffset == 0xFFFF_FFFF {
            let locator = eocd - 20
            guard locator >= 0, u32(locator) == 0x0706_4b50 else { throw fail("zip64 locator missing") }
            let record = try u64(locator + 8)
            guard record <= size - 56, u32(record) == 0x0606_4b50 else { throw fail("zip64 end record out of place") }
            count = try u64(record + 32)
            directorySize = try u64(record + 40)
            directoryOffset = try u64(record + 48)
        }
        guard count <= Self.maxEntries else { throw fail("\(count) entries (limit \(Self.maxEntries))") }
        guard directoryOffset <= size, directorySize <= size - directoryOffset else { throw fail("central directory past the end of the file") }

        var entries: [String: Entry] = [:]
        var names: [String] = []
        var p = directoryOffset
        let end = directoryOffset + directorySize
        for _ in 0..<count {
            guard p + 46 <= end, u32(p) == 0x0201_4b50 else { throw fail("bad central directory entry at \(p)") }
            let flags = u16(p + 8), method = UInt16(u16(p + 10))
            let crc = UInt32(u32(p + 16))
            var compressed = u32(p + 20), uncompressed = u32(p + 24)
            let nameLength = u16(p + 28), extraLength = u16(p + 30), commentLength = u16(p + 32)
            var local = u32(p + 42)
            let next = p + 46 + nameLength + extraLength + commentLength
            guard next <= end else { throw fail("central directory entry at \(p) runs past the directory") }
            guard let name = String(bytes: UnsafeRawBufferPointer(rebasing: bytes[(p + 46)..<(p + 46 + nameLength)]), encoding: .utf8) else {
                throw fail("entry name at \(p) is not UTF-8")
            }
            // Zip64 extended information: the 64-bit values of the fields that read 0xFFFFFFFF, in order.
            var e = p + 46 + nameLength
            let extraEnd = e + extraLength
            while e + 4 <= extraEnd {
                let id = u16(e), length = u16(e + 2)
                guard e + 4 + length <= extraEnd else { throw fail("\(name): extra field runs past its entry") }
                if id == 0x0001 {
                    var q = e + 4
                    func take() throws -> Int {
                        guard q + 8 <= e + 4 + length else { throw fail("\(name): zip64 field too short") }
                        defer { q += 8 }
                        return try u64(q)
                    }
                    if uncompressed == 0xFFFF_FFFF { uncompressed = try take() }
                    if compressed == 0xFFFF_FFFF { compressed = try take() }
                    if local == 0xFFFF_FFFF { local = try take() }
                }
                e += 4 + length
            }
            guard flags & 1 == 0 else { throw fail("\(name): encrypted entries are not supported") }
            guard local <= size - 30, u32(local) == 0x0403_4b50 else { throw fail("\(name): local header missing") }
            let dataStart = local + 30 + u16(local + 26) + u16(local + 28)
            guard dataStart <= size, compressed <= size - dataStart else { throw fail("\(name): data runs past the end of the file") }
            guard entries[name] == nil else { throw fail("duplicate entry \(name)") }
            entries[name] = Entry(name: name, method: method, crc32: crc, dataRange: dataStart..<(dataStart + compressed),
                                  uncompressedSize: uncompressed)
            names.append(name)
            p = next
        }
        self.entries = entries
        self.names = names
    }

    /// CRC-32 (IEEE, as zip uses) of `bytes`.
    static func crc32(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes { crc = crcTable[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }

    private static let crcTable: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }
}
