/* dnnl.h - the process's oneDNN engine (src/engine/dnnl.c); not part of the public API. */
#ifndef CFX_ENGINE_DNNL_H
#define CFX_ENGINE_DNNL_H

#include <dnnl.h>

/* The process's oneDNN CPU engine, NULL when oneDNN cannot make one. */
dnnl_engine_t cfx__dnnl_engine(void);

#endif
