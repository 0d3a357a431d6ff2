/* qp_cobs.h - Consistent Overhead Byte Stuffing (Cheshire and Baker, 1999).
 *
 * The encoded form contains no 0x00, so 0x00 can delimit frames. These functions
 * handle one frame's body; the caller appends or strips the delimiter.
 */
#ifndef QP_COBS_H
#define QP_COBS_H

#include <stddef.h>
#include <stdint.h>

/* Largest encoding of n bytes: one code byte per started block of 254 (at least one). */
#define QP_COBS_MAX_ENCODED(n) ((n) + ((n) + 253) / 254 + ((n) == 0))

/* Encode n bytes into out (capacity cap). Returns the encoded length, or 0 if cap is
 * too small (a valid encoding is never empty). */
size_t qp_cobs_encode(const uint8_t *in, size_t n, uint8_t *out, size_t cap);

/* Decode n bytes into out (capacity cap). Returns the decoded length, or -1 if the input
 * is not valid COBS (a 0x00 byte, a code byte running past the end) or does not fit. */
long qp_cobs_decode(const uint8_t *in, size_t n, uint8_t *out, size_t cap);

#endif
