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
        .executableTarget(name: "glimpse",
                          dependencies: ["Glimpse", .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          swiftSettings: speed),
        .testTarget(name: "GlimpseTests", dependencies: ["Glimpse"],
                    resources: [.copy("Fixtures")]),
    ],
    swiftLanguageVersions: [.v5]
)
