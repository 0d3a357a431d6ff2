/* qp_device.h - the device side of the protocol: a byte-at-a-time receiver that
 * reassembles frames, checks them and answers each with exactly one reply frame, and
 * the board's own blocks of the observation (qp_state.h), which RESET starts and every
 * STEP advances.
 *
 * Board-independent: the board's receive interrupt pushes bytes into its qp_ring_t,
 * the main loop calls qp_device_poll() and writes out whatever it returns. No malloc,
 * no globals: all state lives in qp_device_t and the board's ring. qp_device_t's size
 * depends on the model (the kept blocks, the cached ACTION), so this header includes
 * the data header named by QP_MODEL_HEADER.
 */
#ifndef QP_DEVICE_H
#define QP_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "qp_protocol.h"
#include "qp_ring.h"

#include QP_MODEL_HEADER
#include "qp_state.h"

/* The ACTION payload a STEP is answered with; the last one is kept for repeats. */
#define QP_ACTION_PAYLOAD (QP_ACTION_HEADER + 4 * QP_ACT_DIM)
/* The flight build's FLIGHT_FORCES payload (qp_flight_device.c), kept likewise. */
#define QP_FLIGHT_FORCES_PAYLOAD (QP_FLIGHT_FORCES_HEADER + 4 * QP_OBS_DIM)

/* What the board tells the core about itself. */
typedef struct {
    const char *build_id;    /* ASCII, truncated to QP_BUILD_ID_SIZE in INFO */
    uint32_t (*ticks)(void); /* free-running counter, wraps at 2^32 */
    uint32_t tick_hz;        /* counts per second of ticks() */
    uint8_t tick_source;     /* QP_TICK_* */
    uint8_t reset_cause;     /* QP_RESET_* */
    uint8_t reset_flags;     /* raw reset flags (STM32: RCC_CSR bits 31:24), or 0 */
    uint16_t watchdog_ms;    /* nominal watchdog timeout, 0 if there is none */
    qp_ring_t *rx;           /* receive ring drained by qp_device_poll (may be NULL) */
} qp_board_t;

typedef struct {
    uint32_t frames;       /* non-empty frames received */
    uint32_t rejected;     /* frames answered with ERROR */
    uint32_t steps;        /* STEPs that ran the policy (repeats not counted) */
    uint32_t repeats;      /* STEPs answered from the cache: the host's retries */
    uint32_t last_ticks;   /* duration of the last policy call */
} qp_stats_t;

typedef struct {
    const qp_board_t *board;
    uint8_t rx[QP_MAX_ENCODED]; /* encoded bytes of the frame being received */
    size_t rx_len;
    int rx_overflow;            /* frame grew past QP_MAX_ENCODED: discard until 0x00 */
    uint8_t packet[QP_MAX_ENCODED];
    uint8_t reply[QP_MAX_PACKET];
    uint8_t model_hash[QP_HASH_SIZE];
    uint8_t data_hash[QP_HASH_SIZE];
    uint8_t selftest;           /* QP_SELFTEST_*: the policy self-test at init */
    qp_stats_t stats;
    /* The board's blocks (integral, past actions): not ready until the first RESET, so
     * a board that rebooted mid-flight refuses STEPs instead of inventing a start. */
    qp_state_t state;
    /* The last STEP that stepped the state: a STEP with its seq is the host's retry (its
     * reply was lost) and gets these same bytes back, so no retry steps the state twice.
     * RESET forgets it. */
    int have_last;
    uint16_t last_seq;
    uint8_t last_action[QP_ACTION_PAYLOAD];
#ifdef QP_FLIGHT_APP
    /* The flight build: the app ticks only after a FLIGHT_START whose self-test passed,
     * and a FLIGHT_TICKS repeating the last one's seq is answered from its copy. */
    int flight_started;
    int flight_have_last;
    uint16_t flight_last_seq;
    uint8_t flight_last[QP_FLIGHT_FORCES_PAYLOAD];
#endif
} qp_device_t;

/* Also runs the policy's self-test (qp_policy_selftest), whose result INFO reports: a
 * board that fails it answers as usual, and the host refuses it. The kept blocks start
 * not ready: STEP answers NOT_RESET until the host sends RESET. */
void qp_device_init(qp_device_t *dev, const qp_board_t *board);

/* Feed one received byte. When it completes a frame, the encoded reply frame (with its
 * trailing 0x00) is written to out, which must hold QP_MAX_FRAME bytes, and its length
 * is returned; otherwise returns 0. Empty frames (0x00 0x00) are ignored silently. */
size_t qp_device_rx(qp_device_t *dev, uint8_t byte, uint8_t *out);

/* Drain the board's receive ring through qp_device_rx until a byte completes a frame
 * (returns the reply's length, bytes after it stay in the ring) or the ring is empty
 * (returns 0). Returns 0 if the board has no ring. */
size_t qp_device_poll(qp_device_t *dev, uint8_t *out);

/* Answer one decoded packet (header, payload, CRC). Writes the encoded reply frame to
 * out (QP_MAX_FRAME bytes) and returns its length. Exposed for tests. */
size_t qp_device_handle_packet(qp_device_t *dev, const uint8_t *packet, size_t n,
                               uint8_t *out);

#endif
