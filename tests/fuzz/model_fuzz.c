/*
 * model_fuzz.c - libFuzzer target for the resource model loader (xds/model*.c): any bytes
 * go through model_load_buffer() (YAML, or JSON when they start with '{' or '['), and
 * the result or the error is freed. ASan/UBSan catch memory and arithmetic faults; the
 * error text must always be terminated and name the source.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    struct model_set *set = model_load_buffer("fuzz", (const char *)data, size, err, sizeof(err));
    if (!set && (strlen(err) >= sizeof(err) || strncmp(err, "fuzz: ", 6) != 0))
        abort();
    model_set_free(set);
    return 0;
}
