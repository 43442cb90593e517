// swift-tools-version:5.10
import PackageDescription

// Release builds drop exclusivity checks in the numeric hot loops; inputs are validated at the edges.
let speed: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let package = Package(
    name: "Glimpse",
    products: [
        .library(name: "Glimpse", targets: ["Glimpse"]),
        .executable(name: "glimpse", targets: ["glimpse"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // `glimpse serve` only: HTTP on SwiftNIO, logging, metrics and their Prometheus exposition,
        // multipart bodies. Exact versions: the ones in the local package mirror.
        .package(url: "https://github.com/hummingbird-project/hummingbird", exact: "2.28.1"),
        .package(url: "https://github.com/apple/swift-log", exact: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", exact: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", exact: "2.4.1"),
        .package(url: "https://github.com/vapor/multipart-kit", exact: "4.7.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", exact: "2.13.0"),
    ],
    targets: [
        // System libraries, found through pkg-config (Debian: libopenblas-dev, libjpeg-dev, libpng-dev).
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CLibJPEG", path: "Sources/CLibJPEG", pkgConfig: "libjpeg",
                       providers: [.apt(["libjpeg-dev"])]),
        .systemLibrary(name: "CLibPNG", path: "Sources/CLibPNG", pkgConfig: "libpng",
                       providers: [.apt(["libpng-dev"])]),
        // oneDNN (Debian: libdnnl-dev; no pkg-config file): bf16 matmul with AMX / AVX512_BF16.
        .systemLibrary(name: "CDNNL", path: "Sources/CDNNL", providers: [.apt(["libdnnl-dev"])]),
        // C shims that own setjmp/longjmp error handling of libjpeg and libpng.
        .target(name: "CImageCodecs", dependencies: ["CLibJPEG", "CLibPNG"],
                cSettings: [.unsafeFlags(["-O2"])]),
        // Glimpse's own small-M matrix-product kernels (per-function target attributes, runtime
        // dispatch). No fp contraction: the kernels' reduction order is part of their contract.
        .target(name: "CGlimpseKernels", cSettings: [.unsafeFlags(["-O3", "-ffp-contract=off"])]),
        // Large products with bf16 / int8 weights through oneDNN's matmul (packed weights).
        .target(name: "CGlimpseDNNL", dependencies: ["CDNNL", "CGlimpseKernels"],
                cSettings: [.unsafeFlags(["-O2"])], linkerSettings: [.linkedLibrary("dnnl"), .linkedLibrary("dl")]),
        .target(name: "Glimpse", dependencies: ["COpenBLAS", "CImageCodecs", "CGlimpseKernels", "CGlimpseDNNL"],
                swiftSettings: speed),
        // The HTTP service behind `glimpse serve`: a library so tests can compare its routes with its
        // OpenAPI document without a running server.
        .target(name: "GlimpseServer",
                dependencies: ["Glimpse",
                               .product(name: "Hummingbird", package: "hummingbird"),
                               .product(name: "Logging", package: "swift-log"),
                               .product(name: "Metrics", package: "swift-metrics"),
                               .product(name: "Prometheus", package: "swift-prometheus"),
                               .product(name: "MultipartKit", package: "multipart-kit"),
                               .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")]),
        .executableTarget(name: "glimpse",
                          dependencies: ["Glimpse", "GlimpseServer",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          swiftSettings: speed),
        .testTarget(name: "GlimpseTests", dependencies: ["Glimpse", "GlimpseServer"],
                    resources: [.copy("Fixtures")]),
    ],
    swiftLanguageVersions: [.v5]
)
