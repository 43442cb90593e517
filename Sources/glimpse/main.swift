import ArgumentParser
import Glimpse

/// The `glimpse` command; each subcommand lives in its own file.
struct GlimpseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "glimpse",
        abstract: "Image captioning with transformers on the CPU.",
        version: Glimpse.version,
        subcommands: [CaptionCommand.self, ClassifyCommand.self, BatchCommand.self, OverlayCommand.self, ReportCommand.self, InfoCommand.self, EvalCommand.self, QuantizeCommand.self, PullCommand.self, ModelsCommand.self, ServeCommand.self, BenchCommand.self, BenchImageCommand.self]
    )
}

// First, before any thread starts: make OpenBLAS run the widest kernel the CPU supports (may
// re-execute this program once with OPENBLAS_CORETYPE set; see OpenBLASKernel).
OpenBLASKernel.select()
GlimpseCommand.main()
