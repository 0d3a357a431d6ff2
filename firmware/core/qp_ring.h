/* qp_ring.h - the receive ring between the UART interrupt (producer) and the main loop
 * (consumer).
 *
 * Single producer, single consumer, no locks: head is written only by the producer and
 * tail only by the consumer, both free-running 32-bit counters (the size is a power of
 * two, so they wrap consistently at 2^32). On a single-core Cortex-M an aligned 32-bit
 * access is atomic, and volatile keeps the compiler from reordering the byte store
 * after the head update that publishes it. A byte that finds the ring full is dropped
 * and counted; the framing then rejects the damaged frame and resynchronises at the
 * next 0x00.
 */
#ifndef QP_RING_H
#define QP_RING_H

#include <stdint.h>

#ifndef QP_RX_RING_SIZE
#define QP_RX_RING_SIZE 1024u /* about two largest frames, twelve STEPs; see docs/hardware.md */
#endif

typedef char qp_check_ring_size[(QP_RX_RING_SIZE >= 2 &&
                                 (QP_RX_RING_SIZE & (QP_RX_RING_SIZE - 1u)) == 0) ? 1 : -1];

typedef struct {
    volatile uint8_t buf[QP_RX_RING_SIZE];
    volatile uint32_t head;     /* bytes ever pushed (producer) */
    volatile uint32_t tail;     /* bytes ever popped (consumer) */
    volatile uint32_t dropped;  /* bytes lost because the ring was full (producer) */
    volatile uint32_t overruns; /* hardware overruns the board reported (producer) */
} qp_ring_t;

/* Call before the producer starts (before the interrupt is enabled). */
static inline void qp_ring_init(qp_ring_t *r)
{
    r->head = 0;
    r->tail = 0;
    r->dropped = 0;
    r->overruns = 0;
}

/* Producer side. Returns 1 if stored, 0 if the ring was full (the byte is counted in
 * dropped). */
static inline int qp_ring_push(qp_ring_t *r, uint8_t byte)
{
    uint32_t head = r->head;
    if (head - r->tail >= QP_RX_RING_SIZE) {
        r->dropped++;
        return 0;
    }
    r->buf[head & (QP_RX_RING_SIZE - 1u)] = byte;
    r->head = head + 1u; /* publish only after the byte is in place */
    return 1;
}

/* Producer side: the UART lost at least one byte before it reached the ring. */
static inline void qp_ring_note_overrun(qp_ring_t *r)
{
    r->overruns++;
}

/* Consumer side. Returns 1 and stores the oldest byte, or 0 if the ring is empty. */
static inline int qp_ring_pop(qp_ring_t *r, uint8_t *byte)
{
    uint32_t tail = r->tail;
    if (r->head == tail) {
        return 0;
    }
    *byte = r->buf[tail & (QP_RX_RING_SIZE - 1u)];
    r->tail = tail + 1u; /* free the slot only after the byte is read */
    return 1;
}

/* Bytes waiting; exact on the consumer side (the producer can only add). */
static inline uint32_t qp_ring_count(const qp_ring_t *r)
{
    return r->head - r->tail;
}

#endif
