/* dataset.h - helpers shared by the dataset object (dataset.c), the image-folder reader and the
 * dataset writers (dataset_write.c); not public. */
#ifndef CFX_DATASET_H
#define CFX_DATASET_H

#include "base/base.h"

/* An empty dataset with room for n images of shape (c,h,w) and num_classes class names
 * (all NULL). NULL on failure. */
cfx_dataset *cfx__dataset_alloc(int64_t n, int c, int h, int w, int num_classes);

/* cfx_imagefolder_load with the status of a failure. */
cfx_status cfx__imagefolder_load(const char *dir, int c, int h, int w, cfx_dataset **out);

#endif
