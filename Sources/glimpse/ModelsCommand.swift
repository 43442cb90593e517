import ArgumentParser
import Foundation
import Glimpse

/// `glimpse models`: the models Glimpse can use here, the default marked.
struct ModelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models",
        abstract: "List the models Glimpse can use: the built-in default, $GLIMPSE_MODEL, and Hub models in the Hugging Face cache.",
        discussion: "The model used when --model is not given is marked with '*'. Families Glimpse runs: \(ModelFamilies.supportedList). Hub models are listed once per cached revision; pass --model OWNER/NAME[@REVISION] to use one.")

    @Flag(name: .long, help: "Print one JSON object per line (JSON Lines).")
    var json = false


    struct Row {
        var name: String
        var source: String
        var family: String
        var size: Int64
        var revision: String
        var path: String
        var isDefault: Bool
    }

    func run() throws {
        var rows: [Row] = []
        let env = ProcessInfo.processInfo.environment["GLIMPSE_MODEL"].flatMap { $0.isEmpty ? nil : $0 }
        if let builtIn = DefaultModel.locate() {
            rows.append(row(name: "models/default", source: "built-in", directory: builtIn, revision: "-", isDefault: env == nil))
        }
        let locator = ModelLocator()
        if let env {
            let directory: URL? = switch try? locator.source(of: env, revision: nil) {
            case .directory(let url)?: url
            case .hub(let id)?: locator.cache.cachedSnapshot(id)
            case nil: nil
            }
            rows.append(directory.map { row(name: env, source: "$GLIMPSE_MODEL", directory: $0, revision: "-", isDefault: true) }
                ?? Row(name: env, source: "$GLIMPSE_MODEL", family: "(not found)", size: 0, revision: "-", path: "", isDefault: true))
        }
        for cached in locator.cache.cachedRevisions() {
            let revision = cached.refs.isEmpty ? String(cached.commit.prefix(12)) : cached.refs.joined(separator: ",") + " " + cached.commit.prefix(12)
            // The name to pass to --model: the bare repo for main, else repo@ref, else repo@commit.
            let name = cached.refs.contains(HubModelID.defaultRevision) ? cached.id.repo
                : cached.refs.first.map { "\(cached.id.repo)@\($0)" } ?? "\(cached.id.repo)@\(cached.commit)"
            var r = row(name: name, source: "hub cache", directory: cached.snapshot, revision: revision, isDefault: false)
            r.size = cached.size
            rows.append(r)
        }
        if json {
            for r in rows {
                print(JSONLine.object([("name", .string(r.name)), ("source", .string(r.source)), ("family", .string(r.family)),
                                       ("size", .int(Int(r.size))), ("revision", .string(r.revision)), ("path", .string(r.path)),
                                       ("default", .bool(r.isDefault))]))
            }
            return
        }
        if rows.isEmpty { print("no models found (cache: \(locator.cache.root.path))") }
        let width = rows.map(\.name.count).max() ?? 0
        for r in rows {
            let mark = r.isDefault ? "*" : " "
            let pad = String(repeating: " ", count: max(0, width - r.name.count))
            print("\(mark) \(r.name)\(pad)  \(r.family)  \(ByteCount.format(r.size))  \(r.revision)  \(r.source)  \(r.path)")
        }
        if locator.cache.cachedRevisions().isEmpty {
            print("(no Hub models in \(locator.cache.root.path); `glimpse pull OWNER/NAME` downloads one)")
        }
        print("families: " + ModelFamilies.all.map { "\($0.name) = \($0.displayName): \($0.tasks.joined(separator: ", "))" }.joined(separator: "; "))
    }

    private func row(name: String, source: String, directory: URL, revision: String, isDefault: Bool) -> Row {
        let family = (try? ModelFamilies.family(directory: directory).name) ?? "(unreadable config.json)"
        var size: Int64 = 0
        for file in HubFiles.weightFiles {
            let path = directory.appendingPathComponent(file).resolvingSymlinksInPath().path
            if let n = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber { size = n.int64Value; break }
        }
        return Row(name: name, source: source, family: family, size: size, revision: revision, path: directory.path, isDefault: isDefault)
    }
}
