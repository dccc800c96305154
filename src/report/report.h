/* report.h - what the modules of src/report/ share; not part of the public API. */
#ifndef CFX_REPORT_REPORT_H
#define CFX_REPORT_REPORT_H

#include "base/base.h"

#include <stdio.h>

/* Writes n bytes as base64 (for data: URIs). */
void cfx__report_base64(FILE *f, const unsigned char *p, size_t n);
/* Writes s (NULL: nothing) as HTML text: &, <, >, " escaped. */
void cfx__report_text(FILE *f, const char *s);

/* The report's <style> element: light and dark themes, tables, image cells (img.cell), and
 * the zoom overlay (#zoom). */
extern const char *const cfx__report_style;

#endif
