/*
 * sniff_fuzz.c - sniff_detect never reads out of bounds, and once it has decided, every
 * longer input gets the same answer (a decision never depends on bytes it had not seen).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sniff.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    enum sniff_result decided = SNIFF_NEED_MORE;
    for (size_t k = 0; k <= size; k++) {
        uint8_t *copy = malloc(k ? k : 1);
        memcpy(copy, data, k);
        enum sniff_result r = sniff_detect(copy, k);
        free(copy);
        if (decided != SNIFF_NEED_MORE && r != decided)
            abort();
        if (r != SNIFF_NEED_MORE)
            decided = r;
    }
    return 0;
}
