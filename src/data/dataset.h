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

/* A list of owned strings. */
typedef struct cfx__strlist {
    char **v;
    int n, cap;
} cfx__strlist;
void cfx__strlist_free(cfx__strlist *l);
/* Appends the names of dir's entries that are folders (want_dirs) or PNG/JPEG files (by
 * extension), sorted by name among themselves, to out (src/data/imagefolder.c); what out held
 * before stays as it was. */
cfx_status cfx__list_images(const char *dir, int want_dirs, cfx__strlist *out);

/* One drawn scene (scenes.c): its items (Fashion-MNIST classes, in drawing order), their
 * boxes (x0, y0, x1, y1; x1, y1 exclusive) and masks (0/1 bytes, (CFX_SCENES_MAX_ITEMS, S, S),
 * owned by the caller), and the item set as bits. */
typedef struct cfx__scene {
    int n;
    int item[CFX_SCENES_MAX_ITEMS];
    int box[CFX_SCENES_MAX_ITEMS][4];
    uint8_t *mask;
    unsigned set;
} cfx__scene;
/* Draws a scene of class target into img (uint8 (3,S,S)) from the Fashion-MNIST images items
 * (uint8 (N,28,28)); by_class[k][0..nby[k]) index the images of class k. */
cfx_status cfx__scenes_draw(int S, cfx_rng *r, int target, const uint8_t *items,
                            const int64_t *const *by_class, const int64_t *nby, uint8_t *img,
                            cfx__scene *sc);

#endif
