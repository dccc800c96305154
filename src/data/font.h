/* font.h - the check of a TrueType file before stb_truetype reads it (src/data/font.c); not
 * public. */
#ifndef CFX_DATA_FONT_H
#define CFX_DATA_FONT_H

#include "base/base.h"

/* Whether stb_truetype can safely read the font ttf (size bytes, from path) and draw the
 * characters chars (a NUL-terminated ASCII string) without kerning: CFX_EFORMAT, with a
 * message naming path and what is wrong, when it cannot. */
cfx_status cfx__font_check(const uint8_t *ttf, size_t size, const char *path, const char *chars);

#endif
