// oneDNN matmul with packed fp32 or bf16 weights (see glimpse_dnnl.h). One engine for the process;
// each weight matrix keeps its packed copy and the primitives made for it, one per row count, since
// the encoder multiplies by each matrix at a handful of row counts only.
#include "glimpse_dnnl.h"
#include "glimpse_kernels.h"
#include <oneapi/dnnl/dnnl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static dnnl_engine_t engine;
static int engine_ok[2];          // [0]: fp32 matmul, [1]: bf16 matmul
static char description[2][160];
static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_key_t scratch_key;   // gd_matmul's per-thread scratch (below)
static void scratch_free(void *value);

/// Rows of the primitive that chooses the packed layout (an encoder pass: 197-577 rows per image).
enum { PACKING_ROWS = 256 };

/// A matmul of m rows into a dense fp32 [m, n] (oneDNN 2.6 takes its reference implementation,
/// a hundred times slower, for strided outputs or a sum post-op: `gd_matmul` adds those itself).
/// The activations are bf16 for bf16 weights, fp32 for fp32 weights.
static int matmul_desc(dnnl_primitive_desc_t *pd, int m, int n, int k, const dnnl_memory_desc_t *weights,
                       const float *scale) {
    dnnl_memory_desc_t src, dst;
    dnnl_dims_t src_dims = { m, k }, dst_dims = { m, n };
    if (dnnl_memory_desc_init_by_tag(&src, 2, src_dims, weights->data_type, dnnl_ab) != dnnl_success) return 0;
    if (dnnl_memory_desc_init_by_tag(&dst, 2, dst_dims, dnnl_f32, dnnl_ab) != dnnl_success) return 0;
    dnnl_matmul_desc_t desc;
    if (dnnl_matmul_desc_init(&desc, &src, weights, NULL, &dst) != dnnl_success) return 0;
    dnnl_primitive_attr_t attr;
    if (dnnl_primitive_attr_create(&attr) != dnnl_success) return 0;
    int ok = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) == dnnl_success;
    if (ok && scale) ok = dnnl_primitive_attr_set_output_scales(attr, n, 1 << 1, scale) == dnnl_success;
    ok = ok && dnnl_primitive_desc_create(pd, &desc, attr, engine, NULL) == dnnl_success;
    dnnl_primitive_attr_destroy(attr);
    return ok;
}

/// Whether a matmul with `type` weights can be made here, and which implementation oneDNN takes.
static void probe(int slot, dnnl_data_type_t type, const char *name) {
    const dnnl_version_t *v = dnnl_version();
    dnnl_memory_desc_t w;
    dnnl_dims_t dims = { 64, 64 };
    dnnl_primitive_desc_t pd;
    if (dnnl_memory_desc_init_by_tag(&w, 2, dims, type, dnnl_format_tag_any) != dnnl_success
        || !matmul_desc(&pd, PACKING_ROWS, 64, 64, &w, NULL)) {
        snprintf(description[slot], sizeof description[slot], "oneDNN %d.%d.%d: no %s matmul on this CPU",
                 v->major, v->minor, v->patch, name);
        return;
    }
    const char *impl = "?";
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    snprintf(description[slot], sizeof description[slot], "oneDNN %d.%d.%d: %s", v->major, v->minor, v->patch, impl);
    dnnl_primitive_desc_destroy(pd);
    engine_ok[slot] = 1;
}

static void initialize(void) {
    if (pthread_key_create(&scratch_key, scratch_free) != 0) {
        for (int i = 0; i < 2; i++) snprintf(description[i], sizeof description[i], "no thread-local storage");
        return;
    }
    if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success) {
        const dnnl_version_t *v = dnnl_version();
        for (int i = 0; i < 2; i++)
            snprintf(description[i], sizeof description[i], "oneDNN %d.%d.%d: no CPU engine", v->major, v->minor, v->patch);
        return;
    }
    probe(0, dnnl_f32, "fp32");
    probe(1, dnnl_bf16, "bf16");
}

const char *gd_description(int dtype) { pthread_once(&once, initialize); return description[dtype == 0 ? 0 : 1]; }
int gd_supported(int dtype) { pthread_once(&once, initialize); return engine_ok[dtype == 0 ? 0 : 1]; }

typedef struct primitive {
    struct primitive *next;
    dnnl_memory_desc_t weights_md;   // the packed layout it reads
    int m;
    dnnl_primitive_t handle;
    size_t scratchpad;
} primitive;

/// Primitives shared by all matrices without scales (never freed: a handful per shape and row count).
static primitive *shared_primitives;
static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;

/// How matrices stored one way are packed: the layout the matmul chose and the reorder into it,
/// made once per stored shape and layout (a JIT compilation each) and shared, never freed.
typedef struct packing {
    struct packing *next;
    dnnl_memory_desc_t stored_md;
    int scaled;
    dnnl_memory_desc_t packed_md;
    dnnl_primitive_t reorder;
} packing;
static packing *packings;
static pthread_mutex_t packing_lock = PTHREAD_MUTEX_INITIALIZER;

static packing *find_packing(const dnnl_memory_desc_t *stored, int scaled) {
    pthread_mutex_lock(&packing_lock);
    packing *p = packings;
    while (p && !(p->scaled == scaled && dnnl_memory_desc_equal(&p->stored_md, stored))) p = p->next;
    pthread_mutex_unlock(&packing_lock);
    return p;
}

/// Keeps `reorder` for later matrices (it is then owned here); a failure to remember just loses the sharing.
static void remember_packing(const dnnl_memory_desc_t *stored, int scaled, const dnnl_memory_desc_t *packed,
                             dnnl_primitive_t reorder) {
    packing *p = calloc(1, sizeof *p);
    if (!p) return;
    p->stored_md = *stored;
    p->scaled = scaled;
    p->packed_md = *packed;
    p->reorder = reorder;
    pthread_mutex_lock(&packing_lock);
    p->next = packings;
    packings = p;
    pthread_mutex_unlock(&packing_lock);
}

static int remembered(dnnl_primitive_t reorder) {
    pthread_mutex_lock(&packing_lock);
    packing *p = packings;
    while (p && p->reorder != reorder) p = p->next;
    pthread_mutex_unlock(&packing_lock);
    return p != NULL;
}

struct gd_weights {
    int n, k;
    int dtype;                    // 0 fp32 (activations stay fp32), else bf16 (activations rounded)
    float *scale;                 // int8: output scales (copied), else NULL
    dnnl_memory_desc_t packed_md;
    dnnl_memory_t packed;
    void *buffer;                 // the packed weights (huge pages where the kernel gives them)
    long bytes;
    pthread_mutex_t lock;
    primitive *primitives;
};

long gd_weights_bytes(const gd_weights *w) { return w ? w->bytes : 0; }

/// Memory for packed weights, on 2 MiB pages where transparent huge pages are on for madvise'd
/// ranges (Debian's default): a few hundred faults instead of ~90,000 for an encoder's 344 MB,
/// which took as long as the first encoder pass itself, and fewer TLB misses in every product.
/// Only whole 2 MiB pages are asked for: the tail stays on small pages, so nothing is rounded up.
static void *huge_page_buffer(size_t bytes) {
    enum { HUGE = 2 << 20 };
    void *p = NULL;
    if (posix_memalign(&p, bytes >= HUGE ? HUGE : 64, bytes) != 0) return NULL;
#ifdef MADV_HUGEPAGE
    if (bytes >= HUGE) madvise(p, bytes / HUGE * HUGE, MADV_HUGEPAGE);
#endif
    return p;
}

/// Per-thread scratch of gd_matmul (activation copies, dense results, oneDNN's scratchpad), kept
/// between calls: fresh buffers of these sizes are new mappings, faulted in page by page each call.
enum { SCRATCH_SRC, SCRATCH_DENSE, SCRATCH_PAD, SCRATCH_COUNT };
typedef struct { void *pointer[SCRATCH_COUNT]; size_t capacity[SCRATCH_COUNT]; } scratch_set;
static void scratch_free(void *value) {
    scratch_set *set = value;
    for (int i = 0; i < SCRATCH_COUNT; i++) free(set->pointer[i]);
    free(set);
}

static void *scratch(int which, size_t bytes) {
    scratch_set *set = pthread_getspecific(scratch_key);
    if (!set) {
        set = calloc(1, sizeof *set);
        if (!set || pthread_setspecific(scratch_key, set) != 0) { free(set); return NULL; }
    }
    if (set->capacity[which] < bytes) {
        free(set->pointer[which]);
        set->capacity[which] = 0;
        if (posix_memalign(&set->pointer[which], 64, bytes) != 0) { set->pointer[which] = NULL; return NULL; }
        set->capacity[which] = bytes;
    }
    return set->pointer[which];
}

gd_weights *gd_weights_create(int dtype, int output_major, int n, int k, const void *w, long ldw, const float *scale) {
    if (!gd_supported(dtype) || n <= 0 || k <= 0 || dtype < 0 || dtype > 2 || (dtype == 2 && !scale)) return NULL;
    // The source as stored (fp32, bf16); int8 values widened to bf16, where they are exact (|q| <= 128).
    dnnl_data_type_t type = dtype == 0 ? dnnl_f32 : dnnl_bf16;
    uint16_t *widened = NULL;
    const void *source = w;
    long source_ld = ldw;
    if (dtype == 2) {
        long rows = output_major ? n : k, cols = output_major ? k : n;
        widened = malloc((size_t)rows * (size_t)cols * sizeof(uint16_t));
        if (!widened) return NULL;
        float *line = malloc((size_t)cols * sizeof(float));
        if (!line) { free(widened); return NULL; }
        const int8_t *q = w;
        for (long r = 0; r < rows; r++) {
            for (long c = 0; c < cols; c++) line[c] = (float)q[r * ldw + c];
            gk_f32_to_bf16(line, widened + r * cols, cols);
        }
        free(line);
        source = widened;
        source_ld = cols;
    }
    gd_weights *out = calloc(1, sizeof *out);
    if (!out) { free(widened); return NULL; }
    out->n = n;
    out->k = k;
    out->dtype = dtype;
    pthread_mutex_init(&out->lock, NULL);
    int ok = 1;
    if (scale) {
        out->scale = malloc((size_t)n * sizeof(float));
        ok = out->scale != NULL;
        if (ok) memcpy(out->scale, scale, (size_t)n * sizeof(float));
    }
    // Logical weights [k, n]: Conv1D rows are [k][n]; nn.Linear rows [n][k] are its transpose.
    dnnl_memory_desc_t stored, any;
    dnnl_dims_t dims = { k, n };
    dnnl_dims_t strides = { output_major ? 1 : source_ld, output_major ? source_ld : 1 };
    dnnl_primitive_desc_t pd = NULL, reorder_pd = NULL;
    dnnl_primitive_t reorder = NULL;
    dnnl_memory_t from = NULL;
    dnnl_stream_t stream = NULL;
    ok = ok && dnnl_memory_desc_init_by_strides(&stored, 2, dims, type, strides) == dnnl_success;
    packing *known = ok ? find_packing(&stored, out->scale != NULL) : NULL;
    if (ok && known) {
        out->packed_md = known->packed_md;
        reorder = known->reorder;
    } else {
        ok = ok && dnnl_memory_desc_init_by_tag(&any, 2, dims, type, dnnl_format_tag_any) == dnnl_success
             && matmul_desc(&pd, PACKING_ROWS, n, k, &any, out->scale);
        if (ok) out->packed_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
        ok = ok && dnnl_reorder_primitive_desc_create(&reorder_pd, &stored, engine, &out->packed_md, engine, NULL) == dnnl_success
             && dnnl_primitive_create(&reorder, reorder_pd) == dnnl_success;
        if (ok) remember_packing(&stored, out->scale != NULL, &out->packed_md, reorder);
    }
    if (ok) {
        out->bytes = (long)dnnl_memory_desc_get_size(&out->packed_md);
        out->buffer = huge_page_buffer((size_t)out->bytes);
        ok = out->buffer && dnnl_memory_create(&out->packed, &out->packed_md, engine, out->buffer) == dnnl_success
             && dnnl_memory_create(&from, &stored, engine, (void *)source) == dnnl_success
             && dnnl_stream_create(&stream, engine, dnnl_stream_default_flags) == dnnl_success;
        if (ok) {
            dnnl_exec_arg_t args[2] = { { DNNL_ARG_FROM, from }, { DNNL_ARG_TO, out->packed } };
            ok = dnnl_primitive_execute(reorder, stream, 2, args) == dnnl_success && dnnl_stream_wait(stream) == dnnl_success;
        }
    }
    if (stream) dnnl_stream_destroy(stream);
    if (reorder && !known && !remembered(reorder)) dnnl_primitive_destroy(reorder);
    if (reorder_pd) dnnl_primitive_desc_destroy(reorder_pd);
    if (from) dnnl_memory_destroy(from);
    if (pd) dnnl_primitive_desc_destroy(pd);
    free(widened);
    if (!ok) { gd_weights_destroy(out); return NULL; }
    return out;
}

void gd_weights_destroy(gd_weights *w) {
    if (!w) return;
    for (primitive *p = w->primitives, *next; p; p = next) {
        next = p->next;
        dnnl_primitive_destroy(p->handle);
        free(p);
    }
    if (w->packed) dnnl_memory_destroy(w->packed);
    free(w->buffer);
    pthread_mutex_destroy(&w->lock);
    free(w->scale);
    free(w);
}

/// The primitive for m rows, made on first use. A primitive reads its weights as an argument, so
/// matrices of one shape and packed layout share theirs (ViT-base: 8 primitives, not 144, each a
/// JIT compilation); int8 ones carry their scales and keep their own.
static primitive *find_primitive(gd_weights *w, int m) {
    pthread_mutex_t *lock = w->scale ? &w->lock : &shared_lock;
    primitive **list = w->scale ? &w->primitives : &shared_primitives;
    pthread_mutex_lock(lock);
    primitive *p = *list;
    while (p && !(p->m == m && (w->scale || dnnl_memory_desc_equal(&p->weights_md, &w->packed_md)))) p = p->next;
    if (!p) {
        dnnl_primitive_desc_t pd;
        if (matmul_desc(&pd, m, w->n, w->k, &w->packed_md, w->scale)) {
            p = calloc(1, sizeof *p);
            if (p && dnnl_primitive_create(&p->handle, pd) == dnnl_success) {
                p->m = m;
                p->weights_md = w->packed_md;
                p->scratchpad = dnnl_memory_desc_get_size(dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0));
                p->next = *list;
                *list = p;
            } else {
                free(p);
                p = NULL;
            }
            dnnl_primitive_desc_destroy(pd);
        }
    }
    pthread_mutex_unlock(lock);
    return p;
}

int gd_matmul(gd_weights *w, int m, const float *a, long lda, float *c, long ldc, int accumulate) {
    if (!w || m <= 0) return 1;
    primitive *p = find_primitive(w, m);
    if (!p) return 1;
    int direct = !accumulate && ldc == w->n;   // else a dense result, then added or copied into C
    size_t n = (size_t)w->n, k = (size_t)w->k;
    // The activations: fp32 read in place when dense, else packed rows (bf16 rounded, or copied).
    int in_place = w->dtype == 0 && lda == (long)k;
    size_t element = w->dtype == 0 ? sizeof(float) : sizeof(uint16_t);
    void *src = in_place ? (void *)a : scratch(SCRATCH_SRC, (size_t)m * k * element);
    float *dense = direct ? c : scratch(SCRATCH_DENSE, (size_t)m * n * sizeof(float));
    void *pad = p->scratchpad ? scratch(SCRATCH_PAD, p->scratchpad) : NULL;
    int ok = src && dense && (pad || !p->scratchpad);
    dnnl_memory_t src_mem = NULL, dst_mem = NULL, scratch_mem = NULL;
    dnnl_stream_t stream = NULL;
    if (ok) {
        if (!in_place)
            for (int i = 0; i < m; i++) {
                if (w->dtype == 0) memcpy((float *)src + (size_t)i * k, a + (long)i * lda, k * sizeof(float));
                else gk_f32_to_bf16(a + (long)i * lda, (uint16_t *)src + (size_t)i * k, (long)k);
            }
        dnnl_memory_desc_t src_md, dst_md, scratch_md;
        dnnl_dims_t src_dims = { m, w->k }, dst_dims = { m, w->n }, scratch_dims = { (dnnl_dim_t)p->scratchpad };
        ok = dnnl_memory_desc_init_by_tag(&src_md, 2, src_dims, w->dtype == 0 ? dnnl_f32 : dnnl_bf16, dnnl_ab) == dnnl_success
             && dnnl_memory_desc_init_by_tag(&dst_md, 2, dst_dims, dnnl_f32, dnnl_ab) == dnnl_success
             && dnnl_memory_create(&src_mem, &src_md, engine, src) == dnnl_success
             && dnnl_memory_create(&dst_mem, &dst_md, engine, dense) == dnnl_success
             && (!p->scratchpad || (dnnl_memory_desc_init_by_tag(&scratch_md, 1, scratch_dims, dnnl_u8, dnnl_a) == dnnl_success
                                    && dnnl_memory_create(&scratch_mem, &scratch_md, engine, pad) == dnnl_success))
             && dnnl_stream_create(&stream, engine, dnnl_stream_default_flags) == dnnl_success;
    }
    if (ok) {
        dnnl_exec_arg_t args[4] = { { DNNL_ARG_SRC, src_mem }, { DNNL_ARG_WEIGHTS, w->packed },
                                    { DNNL_ARG_DST, dst_mem }, { DNNL_ARG_SCRATCHPAD, scratch_mem } };
        ok = dnnl_primitive_execute(p->handle, stream, scratch_mem ? 4 : 3, args) == dnnl_success
             && dnnl_stream_wait(stream) == dnnl_success;
    }
    if (ok && !direct)
        for (int i = 0; i < m; i++) {
            float *row = c + (long)i * ldc;
            const float *r = dense + (size_t)i * n;
            if (accumulate) for (size_t j = 0; j < n; j++) row[j] += r[j];
            else memcpy(row, r, n * sizeof(float));
        }
    if (stream) dnnl_stream_destroy(stream);
    if (scratch_mem) dnnl_memory_destroy(scratch_mem);
    if (dst_mem) dnnl_memory_destroy(dst_mem);
    if (src_mem) dnnl_memory_destroy(src_mem);
    return ok ? 0 : 1;
}

void gd_set_threads(int count) {
    // libgomp comes with libdnnl; looked up at run time so this target links without its headers.
    static void (*set)(int);
    static int looked;
    if (!looked) { set = (void (*)(int))dlsym(RTLD_DEFAULT, "omp_set_num_threads"); looked = 1; }
    if (set && count > 0) set(count);
}
