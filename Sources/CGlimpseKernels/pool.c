// The fork-join pool every split product, attention and row-wise kernel runs on. A decode step
// makes ~75 products of tens of microseconds each; libdispatch's workers sleep between them and
// took ~60 µs to wake on the 2-core machines (`concurrentPerform` with two 30 µs halves: 80 µs,
// slower than one thread), so the second core mostly arrived after the work was done. Here the
// workers spin on the job ticket for a short while after each job (GK_POOL_SPIN_NS) and only then
// sleep on a condition variable: back-to-back jobs start in well under a microsecond. Measured
// (`glimpse bench --only model`, 2 cores, medians of 3 alternated with the libdispatch build):
// int8 vit-gpt2 greedy 190 -> 165 ms, beam 3 211 -> 186 ms; fp32 beam-3 step 25.4 -> 22.8 ms.
//
// The ticket is one 64-bit word: epoch (32 bits) | task count (16) | next task (16). A thread
// claims a task by compare-and-swap on the whole word, so a worker that read an old job can never
// claim a task of a newer one; the caller claims tasks like any worker (a job finishes even if no
// worker wakes) and waits for the count of finished tasks. One caller at a time: a job submitted
// while another runs, or from inside a task, runs on its calling thread (so a task must never wait
// for a sibling task). At most one worker per other online core.
#include "glimpse_kernels.h"
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define GK_PAUSE() _mm_pause()
#elif defined(__aarch64__)
#define GK_PAUSE() __asm__ __volatile__("yield")
#else
#define GK_PAUSE() ((void)0)
#endif

enum { POOL_MAX_WORKERS = 63, POOL_MAX_TASKS = 0xFFFF };
/// How long an idle worker spins before it sleeps: longer than the gaps between a decode step's
/// products (a layer norm, a softmax: a few µs), short enough to leave the core to a batch run's
/// encoder threads. `glimpse bench`, 2 cores: int8 vit-gpt2 steps the same at 10, 50 and 200 µs;
/// default-model batch throughput 66, 64 and 61 images/s.
#define GK_POOL_SPIN_NS 20000L

static _Atomic uint64_t ticket;
static _Atomic int finished;
static _Atomic int sleepers;
static atomic_flag held = ATOMIC_FLAG_INIT;
static gk_task_fn job_fn;      // written by the holder before it publishes the ticket
static void *job_ctx;
static pthread_mutex_t sleep_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static pthread_mutex_t grow_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int workers;
static int cannot_grow;              // a thread failed to start: the pool stays as it is
static _Thread_local int inside;   // this thread runs a task (or is a worker): nested jobs run here

static inline uint32_t epoch_of(uint64_t t) { return (uint32_t)(t >> 32); }

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/// Claims and runs tasks of job `epoch` until none is left.
static void run_tasks(uint32_t epoch) {
    uint64_t t = atomic_load_explicit(&ticket, memory_order_acquire);
    for (;;) {
        unsigned count = (unsigned)(t >> 16) & 0xFFFF, next = (unsigned)t & 0xFFFF;
        if (epoch_of(t) != epoch || next >= count) return;
        if (atomic_compare_exchange_weak_explicit(&ticket, &t, t + 1, memory_order_acq_rel, memory_order_acquire)) {
            job_fn(job_ctx, (int)next);   // stable: the job cannot finish before this task does
            atomic_fetch_add_explicit(&finished, 1, memory_order_release);
            t = atomic_load_explicit(&ticket, memory_order_acquire);
        }
    }
}

static void *worker_main(void *arg) {
    (void)arg;
    inside = 1;
    uint32_t seen = epoch_of(atomic_load_explicit(&ticket, memory_order_acquire));
    for (;;) {
        uint64_t start = now_ns();
        unsigned spins = 0;
        while (epoch_of(atomic_load_explicit(&ticket, memory_order_acquire)) == seen) {
            GK_PAUSE();
            if ((++spins & 63) == 0 && now_ns() - start > (uint64_t)GK_POOL_SPIN_NS) {
                // Announce the sleep before the last look at the ticket; the holder publishes the
                // ticket before it looks at `sleepers` (both sequentially consistent), so one of the
                // two sees the other and no wake-up is lost.
                pthread_mutex_lock(&sleep_lock);
                atomic_fetch_add(&sleepers, 1);
                while (epoch_of(atomic_load(&ticket)) == seen) pthread_cond_wait(&wake, &sleep_lock);
                atomic_fetch_sub(&sleepers, 1);
                pthread_mutex_unlock(&sleep_lock);
                break;
            }
        }
        seen = epoch_of(atomic_load_explicit(&ticket, memory_order_acquire));
        run_tasks(seen);
    }
    return NULL;
}

/// In a child of fork() only the forking thread exists: the pool starts again from nothing.
static void reset_after_fork(void) {
    atomic_store(&workers, 0);
    atomic_store(&sleepers, 0);
    atomic_flag_clear(&held);
    cannot_grow = 0;
    pthread_mutex_init(&sleep_lock, NULL);
    pthread_cond_init(&wake, NULL);
    pthread_mutex_init(&grow_lock, NULL);
}

/// Starts workers until there are `wanted`, at most one per other online core (threads that fail
/// to start are done without, and no more are tried).
static int ensure_workers(int wanted) {
    int have = atomic_load_explicit(&workers, memory_order_acquire);
    if (have >= wanted) return have;
    pthread_mutex_lock(&grow_lock);
    static int forks_handled;
    if (!forks_handled) forks_handled = pthread_atfork(NULL, NULL, reset_after_fork) == 0;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int limit = cores > 1 ? (int)(cores - 1 < POOL_MAX_WORKERS ? cores - 1 : POOL_MAX_WORKERS) : 0;
    if (wanted > limit) wanted = limit;
    have = atomic_load(&workers);
    // Workers take no asynchronous signals (SIGINT stops a batch on the threads that handle it), but
    // faults they cause reach their handlers: blocked, Linux kills the process at once instead
    // (`glimpse batch`'s SIGBUS handler names a model file truncated under its mapping).
    sigset_t mask, old;
    sigfillset(&mask);
    const int faults[] = { SIGBUS, SIGSEGV, SIGILL, SIGFPE, SIGTRAP, SIGABRT, SIGSYS, SIGPIPE, SIGPROF };
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++) sigdelset(&mask, faults[i]);
    pthread_sigmask(SIG_SETMASK, &mask, &old);
    while (have < wanted && !cannot_grow) {
        pthread_t thread;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        cannot_grow = pthread_create(&thread, &attr, worker_main, NULL) != 0;
        pthread_attr_destroy(&attr);
        if (!cannot_grow) have++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    atomic_store(&workers, have);
    pthread_mutex_unlock(&grow_lock);
    return have;
}

void gk_parallel_for(int tasks, gk_task_fn fn, void *ctx) {
    if (tasks <= 0) return;
    if (tasks == 1 || tasks > POOL_MAX_TASKS || inside || ensure_workers(tasks - 1) == 0 ||
        atomic_flag_test_and_set_explicit(&held, memory_order_acquire)) {
        int outer = inside;
        inside = 1;
        for (int t = 0; t < tasks; t++) fn(ctx, t);
        inside = outer;
        return;
    }
    inside = 1;
    job_fn = fn;
    job_ctx = ctx;
    atomic_store_explicit(&finished, 0, memory_order_relaxed);
    uint32_t epoch = epoch_of(atomic_load_explicit(&ticket, memory_order_relaxed)) + 1;
    atomic_store(&ticket, ((uint64_t)epoch << 32) | ((uint64_t)tasks << 16));
    int asleep = atomic_load(&sleepers);
    if (asleep > 0) {   // wake as many as the job can use (a woken worker that finds no task spins, then sleeps)
        pthread_mutex_lock(&sleep_lock);
        for (int i = 0; i < asleep && i < tasks - 1; i++) pthread_cond_signal(&wake);
        pthread_mutex_unlock(&sleep_lock);
    }
    run_tasks(epoch);
    // A worker that claimed a task may be descheduled: spin briefly, then give it the core.
    uint64_t start = now_ns();
    unsigned spins = 0;
    while (atomic_load_explicit(&finished, memory_order_acquire) < tasks) {
        GK_PAUSE();
        if ((++spins & 63) == 0 && now_ns() - start > (uint64_t)GK_POOL_SPIN_NS) sched_yield();
    }
    inside = 0;
    atomic_flag_clear_explicit(&held, memory_order_release);
}
