/* quiet_begin.h - included right before a third-party single-file library (stb) is compiled
 * into a cfx file: saves GCC's warning state and turns off the warnings cfx's own code builds
 * with, which such code does not follow. The including file restores the state after the
 * library with `#pragma GCC diagnostic pop`. No include guard: each use pushes once. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wall"
#pragma GCC diagnostic ignored "-Wextra"
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#pragma GCC diagnostic ignored "-Wmissing-prototypes"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wdouble-promotion"
