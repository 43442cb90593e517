import Foundation
import Glimpse

/// What `batch` says when a signal ends it. The handlers only write(2) preformatted bytes and _exit
/// (async-signal-safe); the records already written are whole (one write(2) each), so the hint is
/// always true.
enum BatchSignals {
    nonisolated(unsafe) private static var interruptMessage: UnsafeMutablePointer<CChar>?
    nonisolated(unsafe) private static var busTail: UnsafeMutablePointer<CChar>?

    /// Installs SIGINT/SIGTERM (exit 130/143) and SIGBUS (exit 3) handlers for a run writing to `output`.
    static func install(output: String) {
        interruptMessage = strdup("\nglimpse: interrupted; the records written so far are kept in \(output): "
            + "rerun the same command with --resume to continue\n")
        busTail = strdup(" was truncated or changed while glimpse was reading it (SIGBUS); the records written so far are kept in "
            + "\(output): restore the file, then rerun the same command with --resume\n")
        var interrupt = sigaction()
        interrupt.__sigaction_handler.sa_handler = { signal in
            if let m = BatchSignals.interruptMessage { _ = write(STDERR_FILENO, m, strlen(m)) }
            _exit(128 + signal)
        }
        sigaction(SIGINT, &interrupt, nil)
        sigaction(SIGTERM, &interrupt, nil)

        var bus = sigaction()
        bus.sa_flags = SA_SIGINFO
        bus.__sigaction_handler.sa_sigaction = { _, info, _ in
            let address = UInt(bitPattern: info?.pointee._sifields._sigfault.si_addr)
            let head: StaticString = "glimpse: "
            _ = write(STDERR_FILENO, head.utf8Start, head.utf8CodeUnitCount)
            if let file = MappedFileRegistry.file(containing: address) {
                _ = write(STDERR_FILENO, file, strlen(file))
            } else {
                let unknown: StaticString = "a memory-mapped file"
                _ = write(STDERR_FILENO, unknown.utf8Start, unknown.utf8CodeUnitCount)
            }
            if let m = BatchSignals.busTail { _ = write(STDERR_FILENO, m, strlen(m)) }
            _exit(3)
        }
        sigaction(SIGBUS, &bus, nil)
    }
}
