// oneDNN matmul with packed bf16 weights (see glimpse_dnnl.h). One engine for the process; each
// weight matrix keeps its packed copy and the primitives made for it, one per row count, since the
// encoder multiplies by each matrix at a handful of row counts only.
#include "glimpse_dnnl.h"
#include "glimpse_kernels.h"
#include <oneapi/dnnl/dnnl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static dnnl_engine_t engine;
static int engine_ok;
static char description[160];
static pthread_once_t once = PTHREAD_ONCE_INIT;

/// Rows of the primitive that chooses the packed layout (an encoder pass: 197-577 rows per image).
enum { PACKING_ROWS = 256 };

/// A matmul of m rows into a dense fp32 [m, n] (oneDNN 2.6 takes its reference implementation,
/// a hundred times slower, for strided outputs or a sum post-op: `gd_matmul` adds those itself).
static int matmul_desc(dnnl_primitive_desc_t *pd, int m, int n, int k, const dnnl_memory_desc_t *weights,
                       const float *scale) {
    dnnl_memory_desc_t src, dst;
    dnnl_dims_t src_dims = { m, k }, dst_dims = { m, n };
    if (dnnl_memory_desc_init_by_tag(&src, 2, src_dims, dnnl_bf16, dnnl_ab) != dnnl_success) return 0;
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

static void initialize(void) {
    const dnnl_version_t *v = dnnl_version();
    if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success) {
        snprintf(description, sizeof description, "oneDNN %d.%d.%d: no CPU engine", v->major, v->minor, v->patch);
        return;
    }
    dnnl_memory_desc_t w;
    dnnl_dims_t dims = { 64, 64 };
    dnnl_primitive_desc_t pd;
    if (dnnl_memory_desc_init_by_tag(&w, 2, dims, dnnl_bf16, dnnl_format_tag_any) != dnnl_success
        || !matmul_desc(&pd, PACKING_ROWS, 64, 64, &w, NULL)) {
        snprintf(description, sizeof description, "oneDNN %d.%d.%d: no bf16 matmul on this CPU", v->major, v->minor, v->patch);
        return;
    }
    const char *impl = "?";
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    snprintf(description, sizeof description, "oneDNN %d.%d.%d: %s", v->major, v->minor, v->patch, impl);
    dnnl_primitive_desc_destroy(pd);
    engine_ok = 1;
}

const char *gd_description(void) { pthread_once(&once, initialize); return description; }
int gd_supported(void) { pthread_once(&once, initialize); return engine_ok; }

typedef struct primitive {
    struct primitive *next;
    int m;
    dnnl_primitive_t handle;
    size_t scratchpad;
} primitive;

struct gd_weights {
    int n, k;
    float *scale;                 // int8: output scales (copied), else NULL
    dnnl_memory_desc_t packed_md;
    dnnl_memory_t packed;
    long bytes;
    pthread_mutex_t lock;
    primitive *primitives;
};

long gd_weights_bytes(const gd_weights *w) { return w ? w->bytes : 0; }

gd_weights *gd_weights_create(int dtype, int output_major, int n, int k, const void *w, long ldw, const float *scale) {
    if (!gd_supported() || n <= 0 || k <= 0 || (dtype != 1 && dtype != 2) || (dtype == 2 && !scale)) return NULL;
    // The source as bf16: bf16 weights in place; int8 values are exact in bf16 (|q| <= 128).
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
    ok = ok && dnnl_memory_desc_init_by_strides(&stored, 2, dims, dnnl_bf16, strides) == dnnl_success
         && dnnl_memory_desc_init_by_tag(&any, 2, dims, dnnl_bf16, dnnl_format_tag_any) == dnnl_success
         && matmul_desc(&pd, PACKING_ROWS, n, k, &any, out->scale);
    if (ok) {
        out->packed_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
        out->bytes = (long)dnnl_memory_desc_get_size(&out->packed_md);
        ok = dnnl_memory_create(&out->packed, &out->packed_md, engine, DNNL_MEMORY_ALLOCATE) == dnnl_success
             && dnnl_memory_create(&from, &stored, engine, (void *)source) == dnnl_success
             && dnnl_reorder_primitive_desc_create(&reorder_pd, &stored, engine, &out->packed_md, engine, NULL) == dnnl_success
             && dnnl_primitive_create(&reorder, reorder_pd) == dnnl_success
             && dnnl_stream_create(&stream, engine, dnnl_stream_default_flags) == dnnl_success;
        if (ok) {
            dnnl_exec_arg_t args[2] = { { DNNL_ARG_FROM, from }, { DNNL_ARG_TO, out->packed } };
            ok = dnnl_primitive_execute(reorder, stream, 2, args) == dnnl_success && dnnl_stream_wait(stream) == dnnl_success;
        }
    }
    if (stream) dnnl_stream_destroy(stream);
    if (reorder) dnnl_primitive_destroy(reorder);
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
    pthread_mutex_destroy(&w->lock);
    free(w->scale);
    free(w);
}

/// The primitive for m rows, made on first use.
static primitive *find_primitive(gd_weights *w, int m) {
    pthread_mutex_lock(&w->lock);
    primitive *p = w->primitives;
    while (p && p->m != m) p = p->next;
    if (!p) {
        dnnl_primitive_desc_t pd;
        if (matmul_desc(&pd, m, w->n, w->k, &w->packed_md, w->scale)) {
            p = calloc(1, sizeof *p);
            if (p && dnnl_primitive_create(&p->handle, pd) == dnnl_success) {
                p->m = m;
                p->scratchpad = dnnl_memory_desc_get_size(dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0));
                p->next = w->primitives;
                w->primitives = p;
            } else {
                free(p);
                p = NULL;
            }
            dnnl_primitive_desc_destroy(pd);
        }
    }
    pthread_mutex_unlock(&w->lock);
    return p;
}

int gd_matmul(gd_weights *w, int m, const float *a, long lda, float *c, long ldc, int accumulate) {
    if (!w || m <= 0) return 1;
    primitive *p = find_primitive(w, m);
    if (!p) return 1;
    int direct = !accumulate && ldc == w->n;   // else a dense result, then added or copied into C
    size_t n = (size_t)w->n, k = (size_t)w->k;
    uint16_t *src = malloc((size_t)m * k * sizeof(uint16_t));
    float *dense = direct ? c : malloc((size_t)m * n * sizeof(float));
    void *scratch = p->scratchpad ? malloc(p->scratchpad) : NULL;
    int ok = src && dense && (scratch || !p->scratchpad);
    dnnl_memory_t src_mem = NULL, dst_mem = NULL, scratch_mem = NULL;
    dnnl_stream_t stream = NULL;
    if (ok) {
        for (int i = 0; i < m; i++) gk_f32_to_bf16(a + (long)i * lda, src + (size_t)i * k, (long)k);
        dnnl_memory_desc_t src_md, dst_md, scratch_md;
        dnnl_dims_t src_dims = { m, w->k }, dst_dims = { m, w->n }, scratch_dims = { (dnnl_dim_t)p->scratchpad };
        ok = dnnl_memory_desc_init_by_tag(&src_md, 2, src_dims, dnnl_bf16, dnnl_ab) == dnnl_success
             && dnnl_memory_desc_init_by_tag(&dst_md, 2, dst_dims, dnnl_f32, dnnl_ab) == dnnl_success
             && dnnl_memory_create(&src_mem, &src_md, engine, src) == dnnl_success
             && dnnl_memory_create(&dst_mem, &dst_md, engine, dense) == dnnl_success
             && (!p->scratchpad || (dnnl_memory_desc_init_by_tag(&scratch_md, 1, scratch_dims, dnnl_u8, dnnl_a) == dnnl_success
                                    && dnnl_memory_create(&scratch_mem, &scratch_md, engine, scratch) == dnnl_success))
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
    if (!direct) free(dense);
    free(scratch);
    free(src);
    return ok ? 0 : 1;
}

void gd_set_threads(int count) {
    // libgomp comes with libdnnl; looked up at run time so this target links without its headers.
    static void (*set)(int);
    static int looked;
    if (!looked) { set = (void (*)(int))dlsym(RTLD_DEFAULT, "omp_set_num_threads"); looked = 1; }
    if (set && count > 0) set(count);
}
