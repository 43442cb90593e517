// libFuzzer entry point for every Glimpse harness. The harnesses are compiled into the Glimpse module
// itself (fuzz/build.sh), so they reach internal parsers such as EXIFOrientation directly.
// GLIMPSE_FUZZ_TARGET picks the harness; fuzz/run.sh sets it.
import Foundation

private var selectedHarness: ((UnsafeRawBufferPointer) -> Void)?

enum FuzzHarnesses {
    static let all: [String: (UnsafeRawBufferPointer) -> Void] = [
        "jpeg": FuzzImage.jpeg,
        "png": FuzzImage.png,
        "exif": FuzzImage.exif,
        "safetensors": FuzzSafeTensors.run,
        "pytorch": FuzzPyTorch.run,
        "config": FuzzConfig.run,
        "bpe": FuzzTokenizer.run,
        "resume": FuzzResume.run,
    ]
}

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>) -> Int32 {
    let name = ProcessInfo.processInfo.environment["GLIMPSE_FUZZ_TARGET"] ?? ""
    guard let harness = FuzzHarnesses.all[name] else {
        let names = FuzzHarnesses.all.keys.sorted().joined(separator: ", ")
        FileHandle.standardError.write(Data("glimpse-fuzz: set GLIMPSE_FUZZ_TARGET to one of: \(names)\n".utf8))
        exit(2)
    }
    selectedHarness = harness
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    selectedHarness?(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

/// A failed invariant: crash loudly so libFuzzer records the input.
func fuzzCheck(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() {
        FileHandle.standardError.write(Data("glimpse-fuzz: invariant violated: \(message())\n".utf8))
        abort()
    }
}

/// A per-process scratch directory on tmpfs when available (harnesses whose API takes file paths).
let fuzzScratch: URL = {
    let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
    let url = URL(fileURLWithPath: base).appendingPathComponent("glimpse-fuzz-\(getpid())")
    try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    atexit { try? FileManager.default.removeItem(atPath: (NSString(string: "/dev/shm").appendingPathComponent("glimpse-fuzz-\(getpid())"))) }
    return url
}()
