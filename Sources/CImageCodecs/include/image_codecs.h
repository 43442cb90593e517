#ifndef GLIMPSE_IMAGE_CODECS_H
#define GLIMPSE_IMAGE_CODECS_H
// C shims over libjpeg and libpng. Both libraries report fatal errors by
// longjmp, which Swift cannot catch: every entry point here owns a setjmp and
// turns a library error into a status code plus a message. Decoding is split
// into "read header" and "decode" so the caller can check the pixel limit
// before any pixel buffer exists.

#include <stddef.h>
#include <stdint.h>

int glimpse_codecs_version(void);

/// Status codes shared by all entry points.
enum {
    GLIMPSE_OK = 0,
    GLIMPSE_TRUNCATED = 1,   // the data ended before the image did
    GLIMPSE_CORRUPT = 2,     // malformed stream (bad marker, CRC, Huffman code, zlib data)
    GLIMPSE_UNSUPPORTED = 3, // valid stream using a variant we do not decode
    GLIMPSE_TOO_LARGE = 4,   // dimensions beyond what the library accepts
    GLIMPSE_NO_MEMORY = 5,   // an allocation failed
};

// ---------------------------------------------------------------- JPEG

/// JPEG color spaces as stored in the file (mirrors J_COLOR_SPACE values we care about).
enum {
    GLIMPSE_JCS_UNKNOWN = 0,
    GLIMPSE_JCS_GRAYSCALE = 1,
    GLIMPSE_JCS_RGB = 2,
    GLIMPSE_JCS_YCBCR = 3,
    GLIMPSE_JCS_CMYK = 4,
    GLIMPSE_JCS_YCCK = 5,
};

typedef struct glimpse_jpeg_header {
    uint32_t width;
    uint32_t height;
    int components;      // 1, 3 or 4
    int color_space;     // GLIMPSE_JCS_*
    int precision;       // bits per sample (8 for everything libjpeg-turbo's 8-bit API decodes)
    int progressive;     // 1 when the frame is progressive (SOF2)
    int saw_adobe;       // 1 when an Adobe APP14 marker was present
} glimpse_jpeg_header;

typedef struct glimpse_jpeg glimpse_jpeg;

/// A decoder over `size` bytes at `data`; the bytes must outlive the decoder. NULL when out of memory.
glimpse_jpeg *glimpse_jpeg_create(const uint8_t *data, size_t size);
void glimpse_jpeg_destroy(glimpse_jpeg *jpeg);
/// Reads markers up to the first scan. Allocates no pixel memory.
int glimpse_jpeg_read_header(glimpse_jpeg *jpeg, glimpse_jpeg_header *header);
/// Decodes all scanlines into `out` (height rows of width * out_components bytes).
/// Output is gray (1 byte), RGB (3 bytes, YCbCr converted by libjpeg), or CMYK as
/// stored by Adobe (4 bytes, YCCK converted to CMYK by libjpeg).
int glimpse_jpeg_decode(glimpse_jpeg *jpeg, uint8_t *out, size_t out_size);
/// The library's message for the last failure ("" when none).
const char *glimpse_jpeg_message(const glimpse_jpeg *jpeg);

/// Encodes packed 8-bit RGB (channels 3) or gray (channels 1) as a baseline JPEG into a
/// malloc'ed buffer (free with glimpse_free). For benchmarks and tests.
int glimpse_jpeg_encode(const uint8_t *pixels, uint32_t width, uint32_t height, int channels, int quality,
                        uint8_t **out, size_t *out_size);

// ---------------------------------------------------------------- PNG

typedef struct glimpse_png_header {
    uint32_t width;
    uint32_t height;
    int bit_depth;       // 1, 2, 4, 8 or 16
    int color_type;      // PNG color type: 0 gray, 2 rgb, 3 palette, 4 gray+alpha, 6 rgba
    int interlaced;      // 1 for Adam7
    int has_trns;        // 1 when a tRNS chunk is present
    // The colour PIL keeps as info["transparency"] after convert("RGB") (a palette image whose tRNS
    // makes one index fully transparent, or a gray/RGB tRNS colour), in the file's sample units.
    // Processors with do_convert_rgb composite pixels of this colour onto white.
    int has_trns_color;
    int trns_color[3];
} glimpse_png_header;

typedef struct glimpse_png glimpse_png;

/// A decoder over `size` bytes at `data`; the bytes must outlive the decoder. NULL when out of memory.
glimpse_png *glimpse_png_create(const uint8_t *data, size_t size);
void glimpse_png_destroy(glimpse_png *png);
/// Reads the chunks before the image data. Allocates no pixel memory.
int glimpse_png_read_header(glimpse_png *png, glimpse_png_header *header);
/// Decodes the image into 8-bit RGB (width * height * 3 bytes at `out`) the way
/// PIL's convert("RGB") sees it: alpha and tRNS dropped, palette expanded,
/// 1/2/4-bit gray scaled to 0...255, 16-bit color reduced to its high byte,
/// 16-bit gray clipped to 255 (PIL's I;16 -> RGB conversion clips, it does not scale).
int glimpse_png_decode_rgb(glimpse_png *png, uint8_t *out, size_t out_size);
/// The eXIf chunk payload (TIFF header onwards) when one was read; NULL otherwise.
/// Valid after glimpse_png_decode_rgb until the decoder is destroyed.
const uint8_t *glimpse_png_exif(const glimpse_png *png, size_t *size);
const char *glimpse_png_message(const glimpse_png *png);

/// Encodes 8-bit pixels (channels: 1 gray, 3 RGB, 4 RGBA; rows packed) as PNG into a
/// malloc'ed buffer returned in *out (free with glimpse_free). `message` receives
/// libpng's error text on failure.
int glimpse_png_encode(const uint8_t *pixels, uint32_t width, uint32_t height, int channels,
                       uint8_t **out, size_t *out_size, char *message, size_t message_size);
void glimpse_free(void *pointer);

#endif
