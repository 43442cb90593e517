import Foundation

/// What runs behind the matrix-product door, in words (`--verbose`, `glimpse bench`).
public enum KernelReport {
    public static func lines() -> [String] {
        [
            "CPU features: \(CPUFeatures.current)",
            "OpenBLAS kernel: \(OpenBLASKernel.selection)",
            "Glimpse kernels: \(SmallMatMul.path) (\(SmallMatMul.pathReason)); used for products of up to \(SmallMatMul.maxRows) rows" +
                (SmallMatMul.handles(rows: 1, element: .f32) ? "" : " with bf16/int8 weights only (fp32 goes to OpenBLAS on this path)"),
            "Large fp32 products: \(OneDNNMatMul.engine(.fp32).rawValue) (\(OneDNNMatMul.reason(.fp32)))",
            "Large bf16/int8 products: \(OneDNNMatMul.engine(.reduced).rawValue) (\(OneDNNMatMul.reason(.reduced)))",
            "Threads: \(BLAS.threadCount) for products; OpenBLAS single-threaded, Glimpse's threads split its products by rows",
        ]
    }
}
