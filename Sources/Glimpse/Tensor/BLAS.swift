import COpenBLAS

/// The only door to OpenBLAS: every matrix product in Glimpse goes through `gemm`.
public enum BLAS {
    /// C[m×n] = alpha · op(A)[m×k] · op(B)[k×n] + beta · C, row-major.
    /// `transposeB` reads B stored as [n×k] (PyTorch `nn.Linear` weights are [out, in]).
    @inline(__always)
    public static func gemm(m: Int, n: Int, k: Int,
                            a: UnsafePointer<Float>, lda: Int, transposeA: Bool = false,
                            b: UnsafePointer<Float>, ldb: Int, transposeB: Bool = false,
                            c: UnsafeMutablePointer<Float>, ldc: Int,
                            alpha: Float = 1, beta: Float = 0) {
        if m == 0 || n == 0 { return }
        if m == 1 && !transposeA {
            // One row (a greedy decoding step): sgemv streams B once; sgemm would pack it first.
            cblas_sgemv(CblasRowMajor, transposeB ? CblasNoTrans : CblasTrans,
                        Int32(transposeB ? n : k), Int32(transposeB ? k : n), alpha,
                        b, Int32(ldb), a, 1, beta, c, 1)
            return
        }
        cblas_sgemm(CblasRowMajor,
                    transposeA ? CblasTrans : CblasNoTrans,
                    transposeB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha,
                    a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// Name of the OpenBLAS kernel in use (e.g. "SkylakeX"); the environment may pin it with OPENBLAS_CORETYPE.
    public static var coreName: String {
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name)
    }

    public static var threadCount: Int { Int(openblas_get_num_threads()) }

    public static func setThreadCount(_ count: Int) { openblas_set_num_threads(Int32(count)) }
}
