import CGlimpseKernels

/// The one way Glimpse splits work over cores: products, attention heads, row-wise kernels and
/// image resampling all run their parts through `forEach`, on the kernels' fork-join pool
/// (`gk_parallel_for`), whose workers spin briefly between jobs so that the ~75 products of a
/// decode step each get the second core in time (libdispatch's sleeping workers woke ~60 µs late).
enum Parallel {
    /// Calls `body(0 ..< iterations)`, in parallel where cores are free; returns when all are done.
    static func forEach(iterations: Int, _ body: (Int) -> Void) {
        if iterations <= 1 {
            if iterations == 1 { body(0) }
            return
        }
        precondition(iterations <= Int(Int32.max), "Parallel.forEach: \(iterations) iterations")
        withoutActuallyEscaping(body) { body in
            var task = body
            withUnsafeMutablePointer(to: &task) { pointer in
                gk_parallel_for(Int32(iterations), { context, t in
                    context?.assumingMemoryBound(to: ((Int) -> Void).self).pointee(Int(t))
                }, pointer)
            }
        }
    }
}
