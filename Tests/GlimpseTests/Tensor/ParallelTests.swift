import Foundation
import Synchronization
import XCTest
@testable import Glimpse

/// The fork-join pool (`Parallel.forEach`, pool.c): every task runs exactly once and the call
/// returns only after all have finished, for back-to-back jobs (workers spinning), jobs after the
/// workers went to sleep, nested jobs, jobs from several threads at once, and task counts beyond
/// what the ticket holds.
final class ParallelTests: XCTestCase {
    /// Runs a job of `tasks` tasks that each add (task + 1) to its own slot and count themselves.
    private func assertEachTaskOnce(_ tasks: Int, work: Int = 0, file: StaticString = #filePath, line: UInt = #line) {
        let slots = UnsafeMutablePointer<Int>.allocate(capacity: tasks)
        slots.initialize(repeating: 0, count: tasks)
        defer { slots.deallocate() }
        let ran = Atomic<Int>(0)
        Parallel.forEach(iterations: tasks) { t in
            var x = 0
            for i in 0..<work { x &+= i &* t }   // keep tasks busy long enough to overlap
            slots[t] += t + 1 + (x == -1 ? 1 : 0)
            ran.add(1, ordering: .relaxed)
        }
        XCTAssertEqual(ran.load(ordering: .relaxed), tasks, "tasks run", file: file, line: line)
        for t in 0..<tasks where slots[t] != t + 1 {
            XCTFail("task \(t) of \(tasks) ran \(slots[t] / (t + 1)) times", file: file, line: line)
            return
        }
    }

    func testEveryTaskRunsOnceBackToBackAndAfterSleeping() {
        for round in 0..<2000 { assertEachTaskOnce(2 + round % 7, work: round % 3 == 0 ? 2000 : 0) }
        // Past the workers' spin: they sleep and must be woken for the next job.
        for _ in 0..<20 {
            usleep(2_000)
            assertEachTaskOnce(2, work: 100_000)
        }
    }

    func testZeroOneAndMoreTasksThanTheTicketHolds() {
        assertEachTaskOnce(0)
        assertEachTaskOnce(1)
        assertEachTaskOnce(70_000)   // > 65535: runs on the calling thread
    }

    func testNestedJobsRun() {
        let total = Atomic<Int>(0)
        Parallel.forEach(iterations: 3) { outer in
            Parallel.forEach(iterations: 4) { inner in total.add(outer * 4 + inner + 1, ordering: .relaxed) }
        }
        XCTAssertEqual(total.load(ordering: .relaxed), (1...12).reduce(0, +))
    }

    func testJobsFromSeveralThreadsAtOnce() {
        let threads = 4, jobs = 300
        let sums = UnsafeMutablePointer<Int>.allocate(capacity: threads)
        sums.initialize(repeating: 0, count: threads)
        defer { sums.deallocate() }
        DispatchQueue.concurrentPerform(iterations: threads) { caller in
            for j in 0..<jobs {
                let sum = Atomic<Int>(0)
                Parallel.forEach(iterations: 2 + j % 3) { t in sum.add(t + 1, ordering: .relaxed) }
                let n = 2 + j % 3
                sums[caller] += sum.load(ordering: .relaxed) == n * (n + 1) / 2 ? 1 : 0
            }
        }
        for caller in 0..<threads { XCTAssertEqual(sums[caller], jobs, "caller \(caller): jobs with every task run once") }
    }
}
