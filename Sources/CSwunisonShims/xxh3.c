// The content digest, XXH3-128, built from the system's header-only xxHash (libxxhash-dev):
// XXH_INLINE_ALL compiles the implementation into this file, so nothing links libxxhash.
#include <stdlib.h>
#define XXH_INLINE_ALL
#include <xxhash.h>
#include "CSwunisonShims.h"

struct swunison_xxh3 { XXH3_state_t *state; };

swunison_xxh3 *swunison_xxh3_new(void) {
    swunison_xxh3 *s = malloc(sizeof *s);
    if (!s) return NULL;
    // XXH3_createState returns the 64-byte-aligned memory the state needs.
    s->state = XXH3_createState();
    if (!s->state) { free(s); return NULL; }
    XXH3_128bits_reset(s->state);
    return s;
}

void swunison_xxh3_free(swunison_xxh3 *s) {
    if (!s) return;
    XXH3_freeState(s->state);
    free(s);
}

void swunison_xxh3_reset(swunison_xxh3 *s) { XXH3_128bits_reset(s->state); }

void swunison_xxh3_update(swunison_xxh3 *s, const void *bytes, size_t count) {
    XXH3_128bits_update(s->state, bytes, count);
}

void swunison_xxh3_digest(const swunison_xxh3 *s, uint8_t out[16]) {
    XXH128_canonical_t canonical;
    XXH128_canonicalFromHash(&canonical, XXH3_128bits_digest(s->state));
    for (int i = 0; i < 16; i++) out[i] = canonical.digest[i];
}

void swunison_xxh3_oneshot(const void *bytes, size_t count, uint8_t out[16]) {
    XXH128_canonical_t canonical;
    XXH128_canonicalFromHash(&canonical, XXH3_128bits(bytes, count));
    for (int i = 0; i < 16; i++) out[i] = canonical.digest[i];
}
