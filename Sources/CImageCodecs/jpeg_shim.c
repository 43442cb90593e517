// libjpeg shim: setjmp-owned error handling over an in-memory source.
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

#include "image_codecs.h"

int glimpse_codecs_version(void) { return 2; }

struct glimpse_jpeg {
    struct jpeg_decompress_struct cinfo;
    struct jpeg_error_mgr jerr;
    struct jpeg_progress_mgr progress;
    jmp_buf jump;
    int status;
    char message[JMSG_LENGTH_MAX];
};

// Maps a libjpeg error code to our status. Anything not named here is malformed data.
static int status_for_error(int code) {
    switch (code) {
    case JERR_IMAGE_TOO_BIG:
    case JERR_WIDTH_OVERFLOW:
        return GLIMPSE_TOO_LARGE;
    case JERR_BAD_PRECISION:
    case JERR_NOTIMPL:
    case JERR_NOT_COMPILED:
    case JERR_CONVERSION_NOTIMPL:
    case JERR_ARITH_NOTIMPL:
    case JERR_SOF_UNSUPPORTED: // lossless and hierarchical JPEG
        return GLIMPSE_UNSUPPORTED;
    case JERR_OUT_OF_MEMORY:
        return GLIMPSE_NO_MEMORY;
    default:
        return GLIMPSE_CORRUPT;
    }
}

// Replaces libjpeg's error_exit, which would call exit().
static void on_error(j_common_ptr cinfo) {
    glimpse_jpeg *jpeg = (glimpse_jpeg *)cinfo->client_data;
    (*cinfo->err->format_message)(cinfo, jpeg->message);
    jpeg->status = status_for_error(cinfo->err->msg_code);
    longjmp(jpeg->jump, 1);
}

// Replaces emit_message, which prints warnings to stderr. libjpeg recovers from
// damaged data by warning and filling in gray; we refuse such images instead: a
// premature end of the data is `truncated`, a broken entropy stream is `corrupt`.
// Harmless warnings (extraneous bytes before a marker, unknown JFIF revision,
// unknown Adobe transform) are ignored, as PIL ignores them.
static void on_message(j_common_ptr cinfo, int level) {
    if (level >= 0) return; // trace messages
    glimpse_jpeg *jpeg = (glimpse_jpeg *)cinfo->client_data;
    int code = cinfo->err->msg_code;
    int status = GLIMPSE_OK;
    switch (code) {
    case JWRN_JPEG_EOF:
        status = GLIMPSE_TRUNCATED;
        break;
    case JWRN_HUFF_BAD_CODE:
    case JWRN_ARITH_BAD_CODE:
    case JWRN_HIT_MARKER:
    case JWRN_MUST_RESYNC:
    case JWRN_NOT_SEQUENTIAL:
    case JWRN_BOGUS_PROGRESSION:
        status = GLIMPSE_CORRUPT;
        break;
    default:
        return;
    }
    (*cinfo->err->format_message)(cinfo, jpeg->message);
    jpeg->status = status;
    longjmp(jpeg->jump, 1);
}

// Every scan of a progressive JPEG is a pass over the whole coefficient array, and nothing bounds
// their number: a small file of thousands of tiny scans costs minutes. Like TurboJPEG's
// TJFLAG_LIMITSCANS (and djpeg -maxscans), more than this many scans is refused.
#define GLIMPSE_JPEG_MAX_SCANS 500

static void on_progress(j_common_ptr cinfo) {
    if (!cinfo->is_decompressor) return;
    struct jpeg_decompress_struct *d = (struct jpeg_decompress_struct *)cinfo;
    if (d->input_scan_number > GLIMPSE_JPEG_MAX_SCANS) {
        glimpse_jpeg *jpeg = (glimpse_jpeg *)cinfo->client_data;
        snprintf(jpeg->message, sizeof(jpeg->message), "more than %d progressive scans", GLIMPSE_JPEG_MAX_SCANS);
        jpeg->status = GLIMPSE_CORRUPT;
        longjmp(jpeg->jump, 1);
    }
}

// Sets up the decompressor; 0 when libjpeg fails (only an allocation failure can).
static int jpeg_setup(glimpse_jpeg *jpeg, const uint8_t *data, size_t size) {
    jpeg->cinfo.err = jpeg_std_error(&jpeg->jerr);
    jpeg->jerr.error_exit = on_error;
    jpeg->jerr.emit_message = on_message;
    jpeg->cinfo.client_data = jpeg;
    if (setjmp(jpeg->jump)) {
        jpeg_destroy_decompress(&jpeg->cinfo);
        return 0;
    }
    jpeg_create_decompress(&jpeg->cinfo);
    jpeg_mem_src(&jpeg->cinfo, data, (unsigned long)size);
    jpeg->progress.progress_monitor = on_progress;
    jpeg->cinfo.progress = &jpeg->progress;
    return 1;
}

glimpse_jpeg *glimpse_jpeg_create(const uint8_t *data, size_t size) {
    glimpse_jpeg *jpeg = calloc(1, sizeof(glimpse_jpeg));
    if (!jpeg) return NULL;
    if (!jpeg_setup(jpeg, data, size)) {
        free(jpeg);
        return NULL;
    }
    return jpeg;
}

void glimpse_jpeg_destroy(glimpse_jpeg *jpeg) {
    if (!jpeg) return;
    jpeg_destroy_decompress(&jpeg->cinfo);
    free(jpeg);
}

const char *glimpse_jpeg_message(const glimpse_jpeg *jpeg) { return jpeg ? jpeg->message : ""; }

static int color_space_code(J_COLOR_SPACE space) {
    switch (space) {
    case JCS_GRAYSCALE: return GLIMPSE_JCS_GRAYSCALE;
    case JCS_RGB: return GLIMPSE_JCS_RGB;
    case JCS_YCbCr: return GLIMPSE_JCS_YCBCR;
    case JCS_CMYK: return GLIMPSE_JCS_CMYK;
    case JCS_YCCK: return GLIMPSE_JCS_YCCK;
    default: return GLIMPSE_JCS_UNKNOWN;
    }
}

int glimpse_jpeg_read_header(glimpse_jpeg *jpeg, glimpse_jpeg_header *header) {
    struct jpeg_decompress_struct *cinfo = &jpeg->cinfo;
    memset(header, 0, sizeof(*header));
    if (setjmp(jpeg->jump)) {
        // libjpeg stores the SOF dimensions before it validates them: report them
        // so "too large" can name the size.
        header->width = cinfo->image_width;
        header->height = cinfo->image_height;
        return jpeg->status;
    }
    jpeg_read_header(cinfo, TRUE);
    header->width = cinfo->image_width;
    header->height = cinfo->image_height;
    header->components = cinfo->num_components;
    header->color_space = color_space_code(cinfo->jpeg_color_space);
    header->precision = cinfo->data_precision;
    header->progressive = cinfo->progressive_mode ? 1 : 0;
    header->saw_adobe = cinfo->saw_Adobe_marker ? 1 : 0;
    return GLIMPSE_OK;
}

int glimpse_jpeg_decode(glimpse_jpeg *jpeg, uint8_t *out, size_t out_size) {
    struct jpeg_decompress_struct *cinfo = &jpeg->cinfo;
    if (setjmp(jpeg->jump)) {
        jpeg_abort_decompress(cinfo);
        return jpeg->status;
    }
    // PIL's decoder settings: islow DCT and fancy upsampling are libjpeg's defaults.
    cinfo->dct_method = JDCT_ISLOW;
    switch (cinfo->num_components) {
    case 1: cinfo->out_color_space = JCS_GRAYSCALE; break;
    case 3: cinfo->out_color_space = JCS_RGB; break;
    case 4: cinfo->out_color_space = JCS_CMYK; break; // libjpeg converts YCCK to CMYK
    default:
        snprintf(jpeg->message, sizeof(jpeg->message), "%d-component JPEG", cinfo->num_components);
        return GLIMPSE_UNSUPPORTED;
    }
    jpeg_start_decompress(cinfo);
    size_t stride = (size_t)cinfo->output_width * (size_t)cinfo->output_components;
    if (stride * (size_t)cinfo->output_height > out_size) {
        snprintf(jpeg->message, sizeof(jpeg->message), "output buffer too small");
        jpeg_abort_decompress(cinfo);
        return GLIMPSE_CORRUPT;
    }
    while (cinfo->output_scanline < cinfo->output_height) {
        JSAMPROW row = out + (size_t)cinfo->output_scanline * stride;
        jpeg_read_scanlines(cinfo, &row, 1);
    }
    // Like PIL, stop once every scanline is in: trailing bytes after the last
    // scan (or a missing EOI) do not make the image unusable.
    jpeg_abort_decompress(cinfo);
    return GLIMPSE_OK;
}

// ---------------------------------------------------------------- writing

typedef struct {
    struct jpeg_error_mgr jerr; // first, so cinfo->err points at the whole struct
    jmp_buf jump;
    unsigned char *buffer;      // jpeg_mem_dest's output, kept here to be freed after a longjmp
    unsigned long size;
} jpeg_writer;

static void on_write_error(j_common_ptr cinfo) {
    jpeg_writer *writer = (jpeg_writer *)cinfo->err;
    longjmp(writer->jump, 1);
}

static void on_write_message(j_common_ptr cinfo, int level) {
    (void)cinfo;
    (void)level;
}

int glimpse_jpeg_encode(const uint8_t *pixels, uint32_t width, uint32_t height, int channels, int quality,
                        uint8_t **out, size_t *out_size) {
    *out = NULL;
    *out_size = 0;
    if (channels != 1 && channels != 3) return GLIMPSE_UNSUPPORTED;
    struct jpeg_compress_struct cinfo;
    jpeg_writer writer = {0};
    cinfo.err = jpeg_std_error(&writer.jerr);
    writer.jerr.error_exit = on_write_error;
    writer.jerr.emit_message = on_write_message;
    if (setjmp(writer.jump)) {
        jpeg_destroy_compress(&cinfo);
        free(writer.buffer);
        return GLIMPSE_CORRUPT;
    }
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, &writer.buffer, &writer.size);
    cinfo.image_width = width;
    cinfo.image_height = height;
    cinfo.input_components = channels;
    cinfo.in_color_space = channels == 3 ? JCS_RGB : JCS_GRAYSCALE;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    size_t stride = (size_t)width * channels;
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)(pixels + (size_t)cinfo.next_scanline * stride);
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    *out = writer.buffer;
    *out_size = writer.size;
    return GLIMPSE_OK;
}
