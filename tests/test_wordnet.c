/* test_wordnet.c - the WordNet reader against NLTK's (tests/py/wordnet_oracle.py) and its errors.
 */
#include "concepts/concepts.h"
#include "test.h"

#include <dirent.h>
#include <stdlib.h>

/* The concept set as the oracle writes it: path names, then the word, space-separated. */
static void concept_set_str(const cfx_wordnet *wn, const char *concept, int32_t s, char *buf,
                            size_t n) {
    int32_t path[64];
    int32_t len = cfx_wordnet_concept_path(wn, s, path, 64);
    size_t at = 0;
    for (int32_t i = 0; i < len && at < n; i++)
        at += (size_t)snprintf(buf + at, n - at, "%s ", cfx_wordnet_name(wn, path[i]));
    /* The word: the part before the first dot, spaces as underscores. */
    for (const char *c = concept; *c && *c != '.' && at + 1 < n; c++)
        buf[at++] = *c == ' ' ? '_' : *c;
    buf[at < n ? at : n - 1] = '\0';
}

CFX_TEST(wordnet, chair_path_and_lookup) {
    cfx_wordnet *wn = cfx_test_wordnet();
    if (!wn) return;
    CHECK(cfx_wordnet_count(wn) == 82115);
    int32_t s, t;
    CHECK_OK(cfx_wordnet_synset(wn, "chair.n.01", &s));
    CHECK_STR_EQ(cfx_wordnet_name(wn, s), "chair.n.01");
    CHECK_INT_EQ(cfx_wordnet_offset(wn, s), 3001627);
    CHECK_INT_EQ(cfx_wordnet_concept_path(wn, s, NULL, 0), 10);
    char buf[1024];
    concept_set_str(wn, "chair.n.01", s, buf, sizeof buf);
    CHECK_STR_EQ(buf, "entity.n.01 physical_entity.n.01 object.n.01 whole.n.02 artifact.n.01 "
                      "instrumentality.n.03 furnishing.n.02 furniture.n.01 seat.n.03 chair.n.01 "
                      "chair");
    /* Case-insensitive names, plural words, exceptions. */
    CHECK_OK(cfx_wordnet_synset(wn, "Chair.N.01", &t));
    CHECK_INT_EQ(t, s);
    CHECK_OK(cfx_wordnet_word(wn, "Chairs", &t));
    CHECK_INT_EQ(t, s);
    CHECK_OK(cfx_wordnet_lookup(wn, "geese", &t));
    CHECK_STR_EQ(cfx_wordnet_name(wn, t), "goose.n.01");
    CHECK_OK(cfx_wordnet_lookup(wn, "traffic light", &t));
    CHECK_STR_EQ(cfx_wordnet_name(wn, t), "traffic_light.n.01");
    CHECK(cfx_wordnet_is_name("st._john's_wort.n.01"));
    CHECK(!cfx_wordnet_is_name("chair"));
    CHECK(!cfx_wordnet_is_name("chair.v.01"));
    CHECK(!cfx_wordnet_is_name(".n.01"));
}

CFX_TEST(wordnet, distances_and_depth) {
    cfx_wordnet *wn = cfx_test_wordnet();
    if (!wn) return;
    int32_t chair, seat, table, entity;
    CHECK_OK(cfx_wordnet_synset(wn, "chair.n.01", &chair));
    CHECK_OK(cfx_wordnet_synset(wn, "seat.n.03", &seat));
    CHECK_OK(cfx_wordnet_synset(wn, "table.n.02", &table));
    CHECK_OK(cfx_wordnet_synset(wn, "entity.n.01", &entity));
    CHECK_INT_EQ(cfx_wordnet_depth(wn, entity), 0);
    CHECK_INT_EQ(cfx_wordnet_depth(wn, chair), 9);
    int32_t *d = malloc((size_t)cfx_wordnet_count(wn) * sizeof *d);
    int32_t *e = malloc((size_t)cfx_wordnet_count(wn) * sizeof *e);
    CHECK_OK(cfx_wordnet_distances(wn, chair, d));
    CHECK_OK(cfx_wordnet_distances(wn, entity, e));
    CHECK_INT_EQ(d[chair], 0);
    CHECK_INT_EQ(d[seat], 1);
    CHECK_INT_EQ(d[table], 3); /* chair - seat - furniture - table */
    CHECK_INT_EQ(d[entity], 9);
    /* Distances from the root are the depths, for every synset. */
    int bad = 0;
    for (int32_t s = 0; s < cfx_wordnet_count(wn); s++) bad += e[s] != cfx_wordnet_depth(wn, s);
    CHECK_INT_EQ(bad, 0);
    free(d);
    free(e);
}

/* Every concept of vg_random.json, some plural words and every 40th synset: the same name,
 * concept set and list of hypernym paths as NLTK. */
CFX_TEST(wordnet, matches_nltk) {
    cfx_wordnet *wn = cfx_test_wordnet();
    if (!wn) return;
    char out[600];
    snprintf(out, sizeof out, "%s/nltk.tsv", cfx_test_tmpdir());
    int rc = cfx_test_python("wordnet_oracle.py", out);
    CHECK_MSG(rc == 0, "wordnet_oracle.py failed with status %d", rc);
    if (rc != 0) return;
    FILE *f = fopen(out, "r");
    CHECK(f != NULL);
    if (!f) return;
    static char line[65536], mine[65536];
    int nsets = 0, npaths = 0, nmulti = 0, bad = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *kind = strtok(line, "\t"), *a = strtok(NULL, "\t");
        if (!kind || !a) continue;
        int32_t s;
        if (cfx_wordnet_lookup(wn, a, &s) != CFX_OK) {
            if (bad++ < 10)
                cfx_test_fail(__FILE__, __LINE__, "lookup '%s': %s", a, cfx_last_error());
            continue;
        }
        if (strcmp(kind, "set") == 0) {
            char *name = strtok(NULL, "\t"), *set = strtok(NULL, "\t");
            concept_set_str(wn, a, s, mine, sizeof mine);
            if (!name || !set || strcmp(name, cfx_wordnet_name(wn, s)) != 0 || strcmp(set, mine)) {
                if (bad++ < 10)
                    cfx_test_fail(__FILE__, __LINE__, "'%s': NLTK %s {%s}, cfx %s {%s}", a,
                                  name ? name : "?", set ? set : "?", cfx_wordnet_name(wn, s),
                                  mine);
            }
            nsets++;
        } else {
            char *want = strtok(NULL, "\t");
            int32_t *flat, *lens, np;
            CHECK_OK(cfx_wordnet_paths(wn, s, &flat, &lens, &np));
            size_t at = 0;
            for (int32_t p = 0, k = 0; p < np; p++) {
                for (int32_t i = 0; i < lens[p]; i++, k++)
                    at +=
                        (size_t)snprintf(mine + at, sizeof mine - at, "%s%s",
                                         cfx_wordnet_name(wn, flat[k]), i + 1 < lens[p] ? " " : "");
                if (p + 1 < np) at += (size_t)snprintf(mine + at, sizeof mine - at, ";");
            }
            if (!want || strcmp(want, mine) != 0) {
                if (bad++ < 10)
                    cfx_test_fail(__FILE__, __LINE__, "paths of %s: NLTK %s, cfx %s", a,
                                  want ? want : "?", mine);
            }
            nmulti += np > 1;
            npaths++;
            cfx_free(flat);
            cfx_free(lens);
        }
    }
    fclose(f);
    CHECK_INT_EQ(bad, 0);
    /* The oracle covers 767 VG concepts, 25 words and 2053 sampled synsets. */
    CHECK_MSG(nsets > 2800 && npaths > 2700 && nmulti > 500,
              "too few comparisons: %d sets, %d path lists (%d with several paths)", nsets, npaths,
              nmulti);
}

CFX_TEST(wordnet, unknown_names_and_words) {
    cfx_wordnet *wn = cfx_test_wordnet();
    if (!wn) return;
    int32_t s;
    CHECK_ERR(cfx_wordnet_synset(wn, "chiar.n.01", &s), CFX_ENOTFOUND);
    CHECK(strstr(cfx_last_error(), "chiar.n.01") != NULL);
    CHECK_ERR(cfx_wordnet_synset(wn, "chair.n.06", &s), CFX_ENOTFOUND);
    CHECK(strstr(cfx_last_error(), "has 5 senses") != NULL);
    CHECK_ERR(cfx_wordnet_synset(wn, "chair.n.00", &s), CFX_ENOTFOUND);
    CHECK_ERR(cfx_wordnet_synset(wn, "chair", &s), CFX_EINVAL);
    CHECK_ERR(cfx_wordnet_word(wn, "qwxzzy", &s), CFX_ENOTFOUND);
    CHECK(strstr(cfx_last_error(), "qwxzzy") != NULL);
    CHECK_ERR(cfx_wordnet_word(wn, "", &s), CFX_EINVAL);
    CHECK(cfx_wordnet_name(wn, -1) == NULL);
    CHECK(cfx_wordnet_name(wn, cfx_wordnet_count(wn)) == NULL);
}

CFX_TEST(wordnet, missing_folder_names_the_file) {
    cfx_set_error(CFX_OK, "%s", "");
    cfx_wordnet *wn = cfx_wordnet_load("/nonexistent/wordnet");
    CHECK(wn == NULL);
    CHECK(strstr(cfx_last_error(), "/nonexistent/wordnet/index.noun") != NULL);
}

/* Lookups from several threads at once give what one thread gives. */
CFX_TEST(wordnet, concurrent_lookups) {
    cfx_wordnet *wn = cfx_test_wordnet();
    if (!wn) return;
    static const char *words[] = {"chairs", "geese", "dog.n.01", "mice", "people", "tree.n.01"};
    int32_t want[6];
    for (int i = 0; i < 6; i++) CHECK_OK(cfx_wordnet_lookup(wn, words[i], &want[i]));
    int bad = 0;
#pragma omp parallel for num_threads(4) reduction(+ : bad)
    for (int k = 0; k < 6000; k++) {
        int32_t s;
        if (cfx_wordnet_lookup(wn, words[k % 6], &s) != CFX_OK || s != want[k % 6]) bad++;
    }
    CHECK_INT_EQ(bad, 0);
}

/* An allocation that fails anywhere in loading returns NULL with a message and leaks nothing.
 * Every allocation fails once in turn (every 4th under the sanitizers) until a load succeeds. */
/* The CFX_CACHE_DIR the runner set, to put back. */
static char saved_cache[600];

static void cache_dir(const char *dir) {
    if (!saved_cache[0]) snprintf(saved_cache, sizeof saved_cache, "%s", getenv("CFX_CACHE_DIR"));
    setenv("CFX_CACHE_DIR", dir ? dir : saved_cache, 1);
}

/* Every table of b as in a: names, offsets, parents, depths, longest paths, and the lookups
 * of names, words, inflected words (noun.exc and morphy) and unknown ones. */
static void check_same_wordnet(const cfx_wordnet *a, const cfx_wordnet *b, const char *what) {
    CHECK_INT_EQ(cfx_wordnet_count(a), cfx_wordnet_count(b));
    int32_t n = cfx_wordnet_count(a), bad = -1;
    for (int32_t s = 0; s < n && bad < 0; s++) {
        const int32_t *pa, *pb;
        int32_t na = cfx_wordnet_parents(a, s, &pa), nb = cfx_wordnet_parents(b, s, &pb);
        int32_t qa[64], qb[64];
        int32_t la = cfx_wordnet_concept_path(a, s, qa, 64),
                lb = cfx_wordnet_concept_path(b, s, qb, 64);
        if (strcmp(cfx_wordnet_name(a, s), cfx_wordnet_name(b, s)) ||
            cfx_wordnet_offset(a, s) != cfx_wordnet_offset(b, s) || na != nb ||
            memcmp(pa, pb, (size_t)na * sizeof *pa) ||
            cfx_wordnet_depth(a, s) != cfx_wordnet_depth(b, s) || la != lb ||
            memcmp(qa, qb, (size_t)la * sizeof *qa))
            bad = s;
    }
    CHECK_MSG(bad < 0, "%s: synset %d (%s) differs", what, bad,
              bad < 0 ? "" : cfx_wordnet_name(a, bad));
    const char *words[] = {"chair.n.01", "table.n.02", "chairs",  "geese",  "mice",  "involucra",
                           "aurar",      "dogs",       "kitchen", "entity", "xyzzy", "dog.n.99"};
    for (size_t k = 0; k < sizeof words / sizeof *words; k++) {
        int32_t x = -2, y = -2;
        cfx_status sa = cfx_wordnet_lookup(a, words[k], &x),
                   sb = cfx_wordnet_lookup(b, words[k], &y);
        CHECK_MSG(sa == sb && (sa != CFX_OK || x == y), "%s: '%s' looked up as %d and %d", what,
                  words[k], x, y);
    }
}

/* The cache file in dir (the first wordnet-*.bin), into path; false when there is none. */
static bool cache_file(const char *dir, char *path, size_t n) {
    DIR *d = opendir(dir);
    bool found = false;
    for (struct dirent *e; d && !found && (e = readdir(d));)
        if (!strncmp(e->d_name, "wordnet-", 8) && strstr(e->d_name, ".bin") &&
            !strstr(e->d_name, ".tmp."))
            found = snprintf(path, n, "%s/%s", dir, e->d_name) < (int)n;
    if (d) closedir(d);
    return found;
}

/* The binary cache: written on the first load, read on the next with the same tables as the
 * text gives; a cache cut short, emptied or with one byte changed is parsed again (and
 * rewritten), never trusted. */
CFX_TEST(wordnet, the_cache_gives_the_parsed_tables_and_a_damaged_one_is_not_trusted) {
    char dir[700], path[1000];
    snprintf(dir, sizeof dir, "%s/wordnet-cache", cfx_test_tmpdir());
    cache_dir("off");
    cfx_wordnet *ref = cfx_wordnet_load(NULL);
    CHECK_MSG(ref && !cfx__wordnet_from_cache(ref), "%s", cfx_last_error());
    cache_dir(dir);
    cfx_wordnet *first = cfx_wordnet_load(NULL), *second = cfx_wordnet_load(NULL);
    CHECK(first && !cfx__wordnet_from_cache(first));
    CHECK(second && cfx__wordnet_from_cache(second));
    CHECK(cache_file(dir, path, sizeof path));
    if (ref && second) check_same_wordnet(ref, second, "from the cache");
    cfx_wordnet_free(first), cfx_wordnet_free(second);
    char *good = NULL;
    size_t size = 0;
    CHECK_OK(cfx_file_read_all(path, &good, &size));
    for (int damage = 0; good && damage < 3; damage++) {
        FILE *f = fopen(path, "wb");
        if (damage == 1) good[size / 3] ^= 0x10;
        fwrite(good, 1, damage == 0 ? size / 2 : damage == 1 ? size : 0, f);
        fclose(f);
        if (damage == 1) good[size / 3] ^= 0x10;
        cfx_wordnet *wn = cfx_wordnet_load(NULL);
        CHECK_MSG(wn && !cfx__wordnet_from_cache(wn), "damage %d: trusted or failed", damage);
        if (ref && wn) check_same_wordnet(ref, wn, "after a damaged cache");
        cfx_wordnet_free(wn);
        wn = cfx_wordnet_load(NULL); /* rewritten */
        CHECK_MSG(wn && cfx__wordnet_from_cache(wn), "damage %d: the cache was not rewritten",
                  damage);
        cfx_wordnet_free(wn);
    }
    cfx_free(good);
    cfx_wordnet_free(ref);
    cache_dir(NULL);
}

CFX_TEST(wordnet, allocation_failures_do_not_leak) {
    /* The parse, without a cache; then reading the cache, which falls back to the parse. */
    cache_dir("off");
    int failures = 0, step = cfx_test_fast() ? 4 : 1, done = 0;
    for (int k = 1; k < 500 && !done; k += step) {
        cfx_test_alloc_begin(k);
        cfx_wordnet *wn = cfx_wordnet_load(NULL);
        if (wn) {
            done = 1;
        } else {
            failures++;
            CHECK(strstr(cfx_last_error(), "out of memory") != NULL);
        }
        cfx_wordnet_free(wn);
        long leaks = cfx_test_alloc_end();
        CHECK_MSG(leaks == 0, "%ld blocks leaked when allocation %d failed", leaks, k);
    }
    CHECK(done);
    CHECK_MSG(failures >= 8, "only %d failing loads", failures);
    char dir[700];
    snprintf(dir, sizeof dir, "%s/wordnet-cache", cfx_test_tmpdir());
    cache_dir(dir);
    cfx_wordnet_free(cfx_wordnet_load(NULL)); /* writes the cache */
    for (int k = 1; k < 40; k += step) {      /* (the cache read makes some 30 allocations) */
        cfx_test_alloc_begin(k);
        cfx_wordnet *wn = cfx_wordnet_load(NULL);
        if (!wn) CHECK(strstr(cfx_last_error(), "out of memory") != NULL);
        cfx_wordnet_free(wn);
        long leaks = cfx_test_alloc_end();
        CHECK_MSG(leaks == 0, "%ld blocks leaked when allocation %d failed (cache)", leaks, k);
    }
    cache_dir(NULL);
}

/* Found by fuzzing (fuzz/fuzz_wordnet.c, tests/data/fuzz-regressions/wordnet/): a cache whose
 * count of exception bases was INT32_MAX overflowed "count + 1" (UBSan, make asan) before it was
 * refused. Every header count set to INT32_MAX in turn, with the key and checksum made right
 * as the fuzz target does, is refused. */
CFX_TEST(wordnet, a_cache_with_a_count_of_int32_max_is_refused) {
    const uint64_t key = 0x5eed5eedull;
    char *good = NULL, path[700];
    size_t size = 0;
    CHECK_OK(cfx_file_read_all("tests/data/fuzz-regressions/wordnet/count_of_int32_max.bin", &good,
                               &size));
    CHECK(size > 64 && (size - 8) % 32 == 0);
    if (!good || size <= 64 || (size - 8) % 32) {
        cfx_free(good);
        return;
    }
    snprintf(path, sizeof path, "%s/wordnet-int32-max.bin", cfx_test_tmpdir());
    /* int32 counts: c[0..7] at bytes 16-47, then the two map sizes at 56-63. */
    static const int at[] = {16, 20, 24, 28, 32, 36, 40, 44, 56, 60};
    for (size_t f = 0; f < sizeof at / sizeof at[0]; f++) {
        char *b = cfx_malloc(size);
        memcpy(b, good, size);
        memcpy(b + 8, &key, sizeof key);
        int32_t big = INT32_MAX;
        memcpy(b + at[f], &big, sizeof big);
        uint64_t sum = cfx__wordnet_cache_checksum(b, size - 8);
        memcpy(b + size - 8, &sum, sizeof sum);
        FILE *fp = fopen(path, "wb");
        CHECK(fp && fwrite(b, 1, size, fp) == size);
        if (fp) fclose(fp);
        cfx_free(b);
        cfx_wordnet *wn = cfx__wordnet_cache_open(path, key);
        CHECK_MSG(!wn, "a count of INT32_MAX at byte %d was accepted", at[f]);
        cfx_wordnet_free(wn);
    }
    remove(path);
    cfx_free(good);
}
