/* explain.h - private parts of the explanations layer (src/explain/). */
#ifndef CFX_EXPLAIN_H
#define CFX_EXPLAIN_H

#include "base/base.h"

/* Two values closer than this are equal: half a step of an 8-bit image. */
#define CFX__STAT_TOL (0.5 / 255.0)

#endif
