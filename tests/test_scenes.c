/* test_scenes.c - the scenes of Fashion-MNIST items: the synset table against WordNet, the rule
 * and its least number of edits against brute force, and a written folder (classes, minima,
 * masks, boxes, PNGs and .npy) against an independent Python reading of it. */
#include "test.h"

#include <stdlib.h>

/* WordNet 3.0 offsets of the synsets the table names (data.noun). */
static const int32_t offsets[CFX_SCENES_NUM_ITEMS] = {3595614, 4489008, 4021028, 3236735, 3057021,
                                                      4133789, 4197391, 3472535, 2774152, 2872752};

CFX_TEST(scenes, synsets_are_the_wordnet_senses_chosen) {
    cfx_wordnet *wn = cfx_wordnet_load(NULL);
    if (!wn) {
        cfx_test_skip("WordNet 3.0 not found (Debian package wordnet-base): %s", cfx_last_error());
        return;
    }
    for (int k = 0; k < CFX_SCENES_NUM_ITEMS; k++) {
        int32_t s = -1;
        CHECK_OK(cfx_wordnet_synset(wn, cfx_scenes_synsets[k], &s));
        if (s >= 0) CHECK_INT_EQ(cfx_wordnet_offset(wn, s), offsets[k]);
    }
    /* The words of the classes map to them too where WordNet has the word. */
    int32_t s = -1;
    CHECK_OK(cfx_wordnet_synset(wn, "sneaker.n.01", &s));
    CHECK_INT_EQ(cfx_wordnet_offset(wn, s), offsets[7]);
    cfx_wordnet_free(wn);
}

/* The distance between two sets of distinct items is max(|A-B|, |B-A|) (replace pairs, then
 * insert or delete the rest, sizes staying between the two); the minimum over all sets of
 * another class, enumerated. */
static int brute_min(unsigned a) {
    int best = 99;
    for (unsigned b = 1; b < 1u << CFX_SCENES_NUM_ITEMS; b++) {
        if (__builtin_popcount(b) > CFX_SCENES_MAX_ITEMS) continue;
        if (cfx_scenes_rule(b) == cfx_scenes_rule(a)) continue;
        int d = __builtin_popcount(a & ~b) > __builtin_popcount(b & ~a)
                    ? __builtin_popcount(a & ~b)
                    : __builtin_popcount(b & ~a);
        if (d < best) best = d;
    }
    return best;
}

CFX_TEST(scenes, min_edits_match_enumeration_on_every_set) {
    int hist[4] = {0};
    for (unsigned a = 0; a < 1u << CFX_SCENES_NUM_ITEMS; a++) {
        int n = __builtin_popcount(a);
        if (n < 1 || n > CFX_SCENES_MAX_ITEMS) {
            CHECK_INT_EQ(cfx_scenes_min_edits(a), -1);
            continue;
        }
        int m = cfx_scenes_min_edits(a);
        CHECK_INT_EQ(m, brute_min(a));
        if (m >= 0 && m < 4) hist[m]++;
    }
    /* Under this rule one edit always suffices (remove or replace the deciding item, or
     * insert a boot); every valid set (385 of 1 to 4 items) has its minimum. */
    CHECK_INT_EQ(hist[1], 385);
    CHECK_INT_EQ(cfx_scenes_rule(1u << 9 | 1u << 5), 0); /* boot + sandal: winter */
    CHECK_INT_EQ(cfx_scenes_rule(1u << 8 | 1u << 5), 1); /* bag + sandal: summer */
    CHECK_INT_EQ(cfx_scenes_rule(1u << 8 | 1u << 2), 2); /* bag + pullover: travel */
    CHECK_INT_EQ(cfx_scenes_rule(1u << 0), 3);           /* T-shirt: casual */
}

CFX_TEST(scenes, folder_matches_python_and_is_deterministic) {
    const char *dir = cfx_test_tmpdir();
    char a[600], b[600], args[1300];
    snprintf(a, sizeof a, "%s/a", dir);
    snprintf(b, sizeof b, "%s/b", dir);
    cfx_scenes_options so = {.size = 48, .count = 60};
    cfx_data_options o = {.out = a, .seed = 3};
    cfx_status st = cfx_data_prepare_scenes(&o, &so);
    if (st == CFX_EIO && strstr(cfx_last_error(), "fashion-mnist")) {
        cfx_test_skip("Fashion-MNIST not installed (dataset-fashion-mnist): %s", cfx_last_error());
        return;
    }
    CHECK_OK(st);
    o.out = b;
    CHECK_OK(cfx_data_prepare_scenes(&o, &so));
    const char *files[] = {"concepts.json", "train_images.npy", "test_images.npy", "images/59.png",
                           "rule.txt"};
    CHECK_SAME_FILES(a, b, files, 5);
    snprintf(args, sizeof args, "%s", a);
    CHECK_INT_EQ(cfx_test_python("scenes_oracle.py", args), 0);
    /* The folder is a dataset folder for training. */
    cfx_dataset *d = cfx_dataset_load(a, "train");
    CHECK_MSG(d != NULL, "%s", cfx_last_error());
    if (d) {
        CHECK_INT_EQ(d->n, 42);
        CHECK_INT_EQ(d->num_classes, 4);
        CHECK_STR_EQ(d->class_names[0], "winter");
        CHECK_INT_EQ(d->images->shape[1], 3);
        CHECK_INT_EQ(d->images->shape[3], 48);
    }
    cfx_dataset_free(d);
    /* Bad options name what is wrong. */
    o.out = a;
    o.force = 1;
    so.size = 8;
    CHECK_ERR(cfx_data_prepare_scenes(&o, &so), CFX_EINVAL);
    so = (cfx_scenes_options){.count = 20, .source = "/nonexistent"};
    CHECK_ERR(cfx_data_prepare_scenes(&o, &so), CFX_EIO);
    CHECK(strstr(cfx_last_error(), "dataset-fashion-mnist") != NULL);
}
