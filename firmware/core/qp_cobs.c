#include "qp_cobs.h"

size_t qp_cobs_encode(const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
    size_t code_at = 0; /* where the current block's code byte goes */
    size_t o = 1;       /* next data byte position */
    uint8_t code = 1;   /* 1 + number of data bytes in the current block */
    size_t i;

    if (cap < QP_COBS_MAX_ENCODED(n)) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (in[i] != 0) {
            out[o++] = in[i];
            code++;
        }
        if (in[i] == 0 || code == 0xFF) {
            out[code_at] = code;
            code = 1;
            code_at = o;
            /* A full block at the very end needs no trailing code byte. */
            if (in[i] == 0 || i + 1 < n) {
                o++;
            }
        }
    }
    if (code_at < o) {
        out[code_at] = code;
    }
    return o;
}

long qp_cobs_decode(const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
    size_t i = 0;
    size_t o = 0;

    while (i < n) {
        uint8_t code = in[i++];
        uint8_t k;
        if (code == 0 || (size_t)(code - 1) > n - i || (size_t)(code - 1) > cap - o) {
            return -1;
        }
        for (k = 1; k < code; k++) {
            if (in[i] == 0) {
                return -1;
            }
            out[o++] = in[i++];
        }
        /* Every block but a full one (0xFF) stands for data followed by a zero; the zero
         * after the last block is the delimiter itself, so it is not emitted. */
        if (code != 0xFF && i < n) {
            if (o >= cap) {
                return -1;
            }
            out[o++] = 0;
        }
    }
    return (long)o;
}
