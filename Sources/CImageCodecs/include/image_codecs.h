#ifndef GLIMPSE_IMAGE_CODECS_H
#define GLIMPSE_IMAGE_CODECS_H
// Placeholder: the JPEG/PNG shims are written in the image I/O work.
int glimpse_codecs_version(void);
#endif
