import Foundation

/// The `--resume` readers of batch output (JSONL, and CSV on the same input): the kept prefix must end at
/// a line boundary inside the data, and every file they report must come from a complete line.
enum FuzzResume {
    static func run(_ bytes: UnsafeRawBufferPointer) {
        let data = Data(bytes)
        for (name, index) in [("jsonl", ResumeIndex.jsonl(data)), ("csv", ResumeIndex.csv(data))] {
            fuzzCheck(index.validLength >= 0 && index.validLength <= data.count, "\(name): valid length outside the data")
            fuzzCheck(index.validLength == 0 || data[data.startIndex + index.validLength - 1] == UInt8(ascii: "\n"),
                      "\(name): valid length not at a line end")
            if index.validLength == 0 { fuzzCheck(index.files.isEmpty, "\(name): files reported from no complete line") }
        }
        // Any file name and error text must make one JSON line that reads back to the same strings
        // (a name that broke the line would be invisible to --resume and captioned twice).
        let text = String(decoding: data, as: UTF8.self)
        let cut = text.index(text.startIndex, offsetBy: text.count / 2)
        let record = CaptionRecord(file: String(text[..<cut]), error: String(text[cut...]))
        let line = RecordCoding.line(record)
        fuzzCheck(!line.utf8.contains(UInt8(ascii: "\n")), "record line contains a raw newline")
        // Foundation rejects the \udcXX escapes of raw-byte names (RawPath); glimpse's own reader does not.
        if !RawPath.hasRawBytes(record.file) {
            let back = try? JSONDecoder().decode(CaptionRecord.self, from: Data(line.utf8))
            fuzzCheck(back?.file == record.file && back?.error == record.error, "record line does not read back: \(line)")
        }
        let entries = ResumeIndex.jsonl(Data((line + "\n").utf8)).entries
        fuzzCheck(entries.count == 1 && RawPath.key(entries[0].file) == RawPath.key(record.file) && entries[0].isError,
                  "resume misses a written record")
        let csv = Array("file,caption,score,error\n".utf8) + RawPath.bytes(BatchOutput.csvField(record.file))
            + Array(("," + ["", "", record.error ?? ""].map(BatchOutput.csvField).joined(separator: ",") + "\n").utf8)
        let csvEntries = ResumeIndex.csv(Data(csv)).entries
        fuzzCheck(csvEntries.count == 1 && RawPath.key(csvEntries[0].file) == RawPath.key(record.file)
                  && csvEntries[0].isError == !(record.error ?? "").isEmpty, "CSV resume misses a written record: \(csv)")
        // Records read back the way `glimpse` reads its own lines.
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n").prefix(8) {
            if let record = RecordCoding.record(from: line) { _ = RecordCoding.line(record) }
        }
    }
}
