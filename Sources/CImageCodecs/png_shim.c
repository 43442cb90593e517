// libpng shim: setjmp-owned error handling, reading from memory with the low-level
// API so the header (size, depth, color type, interlace) is known before decoding.
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>

#include "image_codecs.h"

// Ancillary chunks (text, ICC profiles) larger than this are refused: a
// compressed zTXt/iCCP chunk can inflate to gigabytes (a decompression bomb).
#define GLIMPSE_PNG_CHUNK_MAX (8u << 20)

struct glimpse_png {
    png_structp png;
    png_infop info;
    const uint8_t *data;
    size_t size;
    size_t position;
    jmp_buf jump;
    int status;
    char message[256];
    uint8_t *scratch; // decoded rows before conversion to RGB; freed by destroy
    size_t rows_expected; // rows carrying data in the stream (all Adam7 passes counted)
    size_t rows_seen;     // rows libpng has fully inflated (counted by on_row_complete)
    int tail_cut;         // 1 when reading stopped in the image data's tail (see on_row_complete)
    const uint8_t *trailing_exif; // eXIf payload found after the image data (points into data)
    size_t trailing_exif_size;
};

static void on_error(png_structp png_ptr, png_const_charp text) {
    glimpse_png *png = (glimpse_png *)png_get_error_ptr(png_ptr);
    if (png->status == GLIMPSE_OK) png->status = GLIMPSE_CORRUPT;
    snprintf(png->message, sizeof(png->message), "%s", text ? text : "libpng error");
    longjmp(png->jump, 1);
}

// libpng prints warnings (bad ancillary CRC, unknown sRGB profile, ...) to stderr; they
// never stop decoding, so they are silenced.
static void on_warning(png_structp png_ptr, png_const_charp text) {
    (void)png_ptr;
    (void)text;
}

static uint32_t chunk_crc(const uint8_t *bytes, size_t count) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < count; i++) {
        c ^= bytes[i];
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xFFFFFFFFu;
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void read_memory(png_structp png_ptr, png_bytep out, size_t count) {
    glimpse_png *png = (glimpse_png *)png_get_io_ptr(png_ptr);
    if (count > png->size - png->position) {
        png->status = GLIMPSE_TRUNCATED;
        png_error(png_ptr, "unexpected end of data");
    }
    if (png->rows_expected && png->rows_seen >= png->rows_expected) {
        png->tail_cut = 1;
        png_error(png_ptr, "image data complete"); // caught by read_rows: every row is in
    }
    memcpy(out, png->data + png->position, count);
    png->position += count;
}

// libpng inflates the rest of the IDAT stream as soon as the image's last row is read
// (png_read_finish_row -> png_read_finish_IDAT), however long that rest is: a 2 MB file whose
// zlib stream runs on for 2 GB of zeros past the last row (a decompression bomb well within
// the pixel limit) took 13 seconds, an 8 MB interlaced one 12.5 s. So the work is bounded by
// the image's real size, for straight and Adam7 images alike: libpng calls this user transform
// once per row after inflating it, before copying it out; once the last row of the last pass
// has come, read_memory refuses to hand libpng more bytes, so at most one read buffer of the
// tail is inflated, and no later chunk is read.
static void on_row_complete(png_structp png_ptr, png_row_infop row_info, png_bytep data) {
    (void)row_info;
    (void)data;
    glimpse_png *png = (glimpse_png *)png_get_io_ptr(png_ptr);
    png->rows_seen++;
}

// Rows that carry data: all of them, or for Adam7 the rows of each pass whose sub-image is not
// empty (libpng skips passes of zero width; the encoder writes nothing for them).
static size_t rows_in_stream(png_uint_32 width, png_uint_32 height, int interlaced) {
    if (!interlaced) return height;
    static const int x0[7] = {0, 4, 0, 2, 0, 1, 0}, dx[7] = {8, 8, 4, 4, 2, 2, 1};
    static const int y0[7] = {0, 0, 4, 0, 2, 0, 1}, dy[7] = {8, 8, 8, 4, 4, 2, 2};
    size_t rows = 0;
    for (int p = 0; p < 7; p++) {
        if (width <= (png_uint_32)x0[p] || height <= (png_uint_32)y0[p]) continue;
        rows += (height - y0[p] + dy[p] - 1) / dy[p];
    }
    return rows;
}

glimpse_png *glimpse_png_create(const uint8_t *data, size_t size) {
    glimpse_png *png = calloc(1, sizeof(glimpse_png));
    if (!png) return NULL;
    png->data = data;
    png->size = size;
    png->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, png, on_error, on_warning);
    if (!png->png) {
        free(png);
        return NULL;
    }
    png->info = png_create_info_struct(png->png);
    if (!png->info) {
        png_destroy_read_struct(&png->png, NULL, NULL);
        free(png);
        return NULL;
    }
    png_set_read_fn(png->png, png, read_memory);
    png_set_chunk_malloc_max(png->png, GLIMPSE_PNG_CHUNK_MAX);
    return png;
}

void glimpse_png_destroy(glimpse_png *png) {
    if (!png) return;
    png_destroy_read_struct(&png->png, &png->info, NULL);
    free(png->scratch);
    free(png);
}

const char *glimpse_png_message(const glimpse_png *png) { return png ? png->message : ""; }

// libpng (1.6.39) allocates an eXIf chunk's claimed length before reading its data, and
// png_set_chunk_malloc_max does not cap it: a 145-byte file claiming a 2 GB eXIf chunk made it
// malloc 2 GB (found by fuzz/ png). A chunk before the image data that claims more bytes than
// the file has left means a cut-off file, which is reported without asking libpng; every
// allocation libpng makes for such chunks is then bounded by the file's own size.
static int chunks_fit(glimpse_png *png) {
    if (png->size < 8) return 1; // libpng reports the cut signature
    size_t position = 8;
    while (png->size - position >= 8) {
        const uint8_t *chunk = png->data + position;
        size_t length = be32(chunk);
        if (memcmp(chunk + 4, "IDAT", 4) == 0) return 1;
        if (length > png->size - position - 8) {
            snprintf(png->message, sizeof(png->message), "chunk '%c%c%c%c' claims %zu bytes, past the end of the data",
                     chunk[4] & 0x7F, chunk[5] & 0x7F, chunk[6] & 0x7F, chunk[7] & 0x7F, length);
            return 0;
        }
        if (png->size - position - 8 - length < 4) return 1; // no room for the CRC: libpng reports the cut
        position += 12 + length;
    }
    return 1;
}

// PIL's reading of tRNS (PngImagePlugin.chunk_tRNS, then Image.convert("RGB")): for a palette,
// only a "simple" tRNS (every entry 255 but exactly one 0) becomes a colour, the palette entry of
// that index; 2/4/8-bit gray and RGB keep their tRNS sample values; 1-bit and 16-bit gray do not
// survive PIL's conversion as a colour, so they are left out.
static void transparency_color(glimpse_png *png, glimpse_png_header *header) {
    png_bytep alpha = NULL;
    int count = 0;
    png_color_16p color = NULL;
    if (!png_get_tRNS(png->png, png->info, &alpha, &count, &color)) return;
    switch (header->color_type) {
    case PNG_COLOR_TYPE_PALETTE: {
        int zero = -1;
        for (int i = 0; i < count; i++) {
            if (alpha[i] == 0 && zero < 0) zero = i;
            else if (alpha[i] != 255) return;
        }
        png_colorp palette = NULL;
        int entries = 0;
        if (zero < 0 || !png_get_PLTE(png->png, png->info, &palette, &entries) || zero >= entries) return;
        header->trns_color[0] = palette[zero].red;
        header->trns_color[1] = palette[zero].green;
        header->trns_color[2] = palette[zero].blue;
        header->has_trns_color = 1;
        return;
    }
    case PNG_COLOR_TYPE_GRAY:
        if (!color || header->bit_depth == 1 || header->bit_depth == 16) return;
        header->trns_color[0] = header->trns_color[1] = header->trns_color[2] = color->gray;
        header->has_trns_color = 1;
        return;
    case PNG_COLOR_TYPE_RGB:
        if (!color) return;
        header->trns_color[0] = color->red;
        header->trns_color[1] = color->green;
        header->trns_color[2] = color->blue;
        header->has_trns_color = 1;
        return;
    default:
        return;
    }
}

int glimpse_png_read_header(glimpse_png *png, glimpse_png_header *header) {
    memset(header, 0, sizeof(*header));
    if (!chunks_fit(png)) return GLIMPSE_TRUNCATED;
    if (setjmp(png->jump)) return png->status;
    png_read_info(png->png, png->info);
    png_uint_32 width = 0, height = 0;
    int depth = 0, color = 0, interlace = 0;
    png_get_IHDR(png->png, png->info, &width, &height, &depth, &color, &interlace, NULL, NULL);
    header->width = width;
    header->height = height;
    header->bit_depth = depth;
    header->color_type = color;
    header->interlaced = interlace == PNG_INTERLACE_ADAM7;
    header->has_trns = png_get_valid(png->png, png->info, PNG_INFO_tRNS) ? 1 : 0;
    if (header->has_trns) transparency_color(png, header);
    return GLIMPSE_OK;
}

// The first eXIf chunk after the first IDAT, by walking the chunk list of the in-memory file,
// with libpng's rules for an ancillary chunk: a bad CRC or one over the chunk size cap drops it.
static void find_trailing_exif(glimpse_png *png) {
    size_t position = 8; // after the signature
    int seen_idat = 0;
    while (png->size - position >= 12) {
        const uint8_t *chunk = png->data + position;
        size_t length = be32(chunk);
        if (length > png->size - position - 12) return; // cut off
        if (memcmp(chunk + 4, "IDAT", 4) == 0) seen_idat = 1;
        else if (memcmp(chunk + 4, "IEND", 4) == 0) return;
        else if (seen_idat && memcmp(chunk + 4, "eXIf", 4) == 0) {
            if (length > 0 && length <= GLIMPSE_PNG_CHUNK_MAX &&
                chunk_crc(chunk + 4, length + 4) == be32(chunk + 8 + length)) {
                png->trailing_exif = chunk + 8;
                png->trailing_exif_size = length;
            }
            return;
        }
        position += 12 + length;
    }
}

// One decoded row (after libpng's transforms) to packed RGB.
static void row_to_rgb(const uint8_t *in, uint8_t *out, size_t width, int channels, int depth) {
    if (depth == 16) { // 16-bit gray, big-endian: PIL clips to 255 rather than scaling
        for (size_t x = 0; x < width; x++) {
            unsigned v = ((unsigned)in[2 * x] << 8) | in[2 * x + 1];
            uint8_t g = v > 255 ? 255 : (uint8_t)v;
            out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = g;
        }
        return;
    }
    switch (channels) {
    case 1:
        for (size_t x = 0; x < width; x++) out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = in[x];
        break;
    case 2: // gray + alpha: alpha dropped
        for (size_t x = 0; x < width; x++) out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = in[2 * x];
        break;
    case 3:
        memcpy(out, in, width * 3);
        break;
    default: // RGBA: alpha dropped
        for (size_t x = 0; x < width; x++) {
            out[3 * x] = in[4 * x];
            out[3 * x + 1] = in[4 * x + 1];
            out[3 * x + 2] = in[4 * x + 2];
        }
        break;
    }
}

// Reads every row into `out` (through png->scratch). Its own setjmp: a stop in the tail
// (png->tail_cut) lands here after the last row is complete, and counts as success.
static int read_rows(glimpse_png *png, uint8_t *out, png_uint_32 width, png_uint_32 height, size_t rowbytes,
                     int passes, int channels, int depth) {
    png_structp p = png->png;
    // Rows already converted to RGB; volatile because a longjmp can land mid-loop.
    volatile png_uint_32 converted = 0;
    if (setjmp(png->jump)) {
        if (!png->tail_cut || png->rows_seen != png->rows_expected) return png->status;
    } else if (passes > 1) {
        for (int pass = 0; pass < passes; pass++)
            for (png_uint_32 y = 0; y < height; y++)
                png_read_row(p, png->scratch + (size_t)y * rowbytes, NULL);
    } else {
        for (png_uint_32 y = 0; y < height; y++) {
            png_read_row(p, png->scratch, NULL);
            row_to_rgb(png->scratch, out + (size_t)y * width * 3, width, channels, depth);
            converted = y + 1;
        }
    }
    if (passes > 1) {
        for (png_uint_32 y = 0; y < height; y++)
            row_to_rgb(png->scratch + (size_t)y * rowbytes, out + (size_t)y * width * 3, width, channels, depth);
    } else if (converted + 1 == height) {
        // libpng stopped in the tail right after copying out the last row, before it was converted.
        row_to_rgb(png->scratch, out + (size_t)(height - 1) * width * 3, width, channels, depth);
    }
    return GLIMPSE_OK;
}

int glimpse_png_decode_rgb(glimpse_png *png, uint8_t *out, size_t out_size) {
    if (setjmp(png->jump)) return png->status;
    png_structp p = png->png;
    png_infop info = png->info;
    png_uint_32 width = png_get_image_width(p, info);
    png_uint_32 height = png_get_image_height(p, info);
    int color = png_get_color_type(p, info);
    int depth = png_get_bit_depth(p, info);
    if ((size_t)width * height * 3 > out_size) {
        snprintf(png->message, sizeof(png->message), "output buffer too small");
        return GLIMPSE_CORRUPT;
    }
    // tRNS is deliberately not expanded to alpha for gray/RGB: PIL's convert("RGB") ignores it.
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(p);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(p);
    // PIL unpacks 16-bit color (RGB;16B, RGBA;16B, LA;16B) by taking the high byte.
    if (depth == 16 && color != PNG_COLOR_TYPE_GRAY) png_set_strip_16(p);
    int passes = png_set_interlace_handling(p);
    png_set_read_user_transform_fn(p, on_row_complete);
    png_read_update_info(p, info);

    int channels = png_get_channels(p, info);
    int out_depth = png_get_bit_depth(p, info);
    size_t rowbytes = png_get_rowbytes(p, info);
    if (channels < 1 || channels > 4 || (out_depth != 8 && !(out_depth == 16 && channels == 1))) {
        snprintf(png->message, sizeof(png->message), "unexpected row format (%d channels, %d bits)",
                 channels, out_depth);
        return GLIMPSE_UNSUPPORTED;
    }
    // Interlaced images need every row in memory until the last pass; others go row by row.
    size_t scratch_rows = passes > 1 ? height : 1;
    png->scratch = malloc(rowbytes * scratch_rows);
    if (!png->scratch) {
        snprintf(png->message, sizeof(png->message), "out of memory");
        return GLIMPSE_NO_MEMORY;
    }
    png->rows_expected = rows_in_stream(width, height, passes > 1);
    int status = read_rows(png, out, width, height, rowbytes, passes, channels, out_depth);
    if (status != GLIMPSE_OK) return status;
    // Every pixel is in by now, so like PIL we accept a file whose tail is damaged or missing
    // (no IEND). png_read_end is not called: it would inflate whatever is left of the IDAT
    // stream (see on_row_complete) and then read every later chunk. The only metadata used after
    // the image data is eXIf, which is looked up directly.
    find_trailing_exif(png);
    png->status = GLIMPSE_OK;
    png->message[0] = 0;
    return GLIMPSE_OK;
}

const uint8_t *glimpse_png_exif(const glimpse_png *png, size_t *size) {
    *size = 0;
#ifdef PNG_eXIf_SUPPORTED
    png_uint_32 count = 0;
    png_bytep exif = NULL;
    if (png_get_eXIf_1(png->png, png->info, &count, &exif) && exif && count > 0) {
        *size = count;
        return exif;
    }
#endif
    if (png->trailing_exif) {
        *size = png->trailing_exif_size;
        return png->trailing_exif;
    }
    return NULL;
}

// ---------------------------------------------------------------- writing

typedef struct {
    uint8_t *bytes;
    size_t size;
    size_t capacity;
    int failed;
} png_buffer;

static void write_memory(png_structp png_ptr, png_bytep data, size_t count) {
    png_buffer *buffer = (png_buffer *)png_get_io_ptr(png_ptr);
    if (buffer->size + count > buffer->capacity) {
        size_t capacity = buffer->capacity ? buffer->capacity : 4096;
        while (capacity < buffer->size + count) capacity *= 2;
        uint8_t *bytes = realloc(buffer->bytes, capacity);
        if (!bytes) {
            buffer->failed = 1;
            png_error(png_ptr, "out of memory");
        }
        buffer->bytes = bytes;
        buffer->capacity = capacity;
    }
    memcpy(buffer->bytes + buffer->size, data, count);
    buffer->size += count;
}

static void flush_memory(png_structp png_ptr) { (void)png_ptr; }

typedef struct {
    jmp_buf jump;
    char *message;
    size_t message_size;
} png_write_errors;

static void on_write_error(png_structp png_ptr, png_const_charp text) {
    png_write_errors *errors = (png_write_errors *)png_get_error_ptr(png_ptr);
    if (errors->message_size) snprintf(errors->message, errors->message_size, "%s", text ? text : "libpng error");
    longjmp(errors->jump, 1);
}

int glimpse_png_encode(const uint8_t *pixels, uint32_t width, uint32_t height, int channels,
                       uint8_t **out, size_t *out_size, char *message, size_t message_size) {
    *out = NULL;
    *out_size = 0;
    if (message_size) message[0] = 0;
    int color;
    switch (channels) {
    case 1: color = PNG_COLOR_TYPE_GRAY; break;
    case 3: color = PNG_COLOR_TYPE_RGB; break;
    case 4: color = PNG_COLOR_TYPE_RGB_ALPHA; break;
    default:
        if (message_size) snprintf(message, message_size, "cannot write %d channels", channels);
        return GLIMPSE_UNSUPPORTED;
    }
    // Volatile: these are read after a longjmp back into this frame.
    png_write_errors errors = {.message = message, .message_size = message_size};
    png_buffer buffer = {0};
    png_structp volatile png_ptr = png_create_write_struct(PNG_LIBPNG_VER_STRING, &errors, on_write_error, on_warning);
    png_infop volatile info = png_ptr ? png_create_info_struct(png_ptr) : NULL;
    if (!png_ptr || !info) {
        png_structp p = png_ptr;
        png_infop i = info;
        if (p) png_destroy_write_struct(&p, i ? &i : NULL);
        if (message_size) snprintf(message, message_size, "out of memory");
        return GLIMPSE_NO_MEMORY;
    }
    if (setjmp(errors.jump)) {
        png_structp p = png_ptr;
        png_infop i = info;
        png_destroy_write_struct(&p, &i);
        free(buffer.bytes);
        return buffer.failed ? GLIMPSE_NO_MEMORY : GLIMPSE_CORRUPT;
    }
    png_set_write_fn(png_ptr, &buffer, write_memory, flush_memory);
    png_set_IHDR(png_ptr, info, width, height, 8, color, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png_ptr, info);
    size_t stride = (size_t)width * (size_t)channels;
    for (uint32_t y = 0; y < height; y++) png_write_row(png_ptr, pixels + (size_t)y * stride);
    png_write_end(png_ptr, info);
    {
        png_structp p = png_ptr;
        png_infop i = info;
        png_destroy_write_struct(&p, &i);
    }
    *out = buffer.bytes;
    *out_size = buffer.size;
    return GLIMPSE_OK;
}

void glimpse_free(void *pointer) { free(pointer); }
