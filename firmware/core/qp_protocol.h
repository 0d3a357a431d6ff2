/* qp_protocol.h - the wire protocol's constants: the one place they live in C.
 *
 * docs/protocol.md explains every field; firmware_bridge/protocol.py holds the same
 * values for Python and tests/test_protocol_constants.py checks that they agree.
 * Values are plain integer literals or expressions over earlier names so that the
 * Python test can evaluate them.
 */
#ifndef QP_PROTOCOL_H
#define QP_PROTOCOL_H

/* 2: INFO gained reset cause, watchdog and receive counters; 3: the policy self-test's
 * result and the kernel version; 4: the board keeps its own blocks of the observation
 * (RESET/READY, STEP carries only the estimate and sensor blocks, ACTION the state-update
 * ticks, INFO the data hash, the input size and the blocks the board keeps). */
#define QP_PROTOCOL_VERSION 4

/* Packet = type (u8) | seq (u16 LE) | payload | crc16 (u16 LE), COBS-framed, 0x00-terminated. */
#define QP_HEADER_SIZE 3
#define QP_CRC_SIZE 2
#define QP_MAX_PAYLOAD 512
#define QP_MIN_PACKET (QP_HEADER_SIZE + QP_CRC_SIZE)
#define QP_MAX_PACKET (QP_HEADER_SIZE + QP_MAX_PAYLOAD + QP_CRC_SIZE)
/* COBS adds one code byte per started block of 254 bytes. */
#define QP_MAX_ENCODED (QP_MAX_PACKET + (QP_MAX_PACKET + 253) / 254)
#define QP_MAX_FRAME (QP_MAX_ENCODED + 1)
#define QP_FRAME_DELIMITER 0

/* CRC-16/IBM-3740 (also known as CRC-16/CCITT-FALSE): MSB first, no reflection. */
#define QP_CRC16_POLY 0x1021
#define QP_CRC16_INIT 0xFFFF
#define QP_CRC16_XOROUT 0x0000
#define QP_CRC16_CHECK 0x29B1 /* CRC of the ASCII bytes "123456789" */

/* Message types: requests (host -> device) below 0x80, replies have bit 7 set. */
#define QP_MSG_HELLO 0x01
#define QP_MSG_PING 0x02
#define QP_MSG_STEP 0x03
#define QP_MSG_RESET 0x04
#define QP_MSG_INFO 0x81
#define QP_MSG_PONG 0x82
#define QP_MSG_ACTION 0x83
#define QP_MSG_READY 0x84
#define QP_MSG_ERROR 0xFF

/* Error codes carried by ERROR. The first three mean the frame failed its integrity
 * check: the reply's seq is then 0 because the request's seq cannot be trusted. */
#define QP_ERROR_BAD_FRAME 1    /* COBS invalid, or shorter than QP_MIN_PACKET */
#define QP_ERROR_BAD_CRC 2      /* CRC mismatch */
#define QP_ERROR_OVERSIZE 3     /* frame longer than QP_MAX_ENCODED / QP_MAX_PACKET */
#define QP_ERROR_UNKNOWN_TYPE 4 /* detail = the type byte received */
#define QP_ERROR_BAD_LENGTH 5   /* payload length wrong for the type; detail = type */
#define QP_ERROR_WRONG_DIMS 6   /* STEP input count != QP_IN_DIM; detail = QP_IN_DIM */
#define QP_ERROR_NONFINITE 7    /* NaN or Inf in the inputs; detail = index */
#define QP_ERROR_POLICY 8       /* policy returned an error or a non-finite action */
#define QP_ERROR_NOT_RESET 9    /* STEP before the first RESET: the kept blocks have no start */
#define QP_ERROR_NOT_STARTED 10 /* FLIGHT_TICKS before a FLIGHT_START whose self-test passed */

/* INFO payload (183 bytes): version 1's 72 bytes, the version 2 fields, version 3's,
 * then version 4's: the data hash, the input size (u8) and the board's blocks
 * ("name:size,..." ASCII, zero-padded). */
#define QP_HASH_SIZE 32
#define QP_BUILD_ID_SIZE 24
#define QP_INFO_V1_SIZE (16 + QP_HASH_SIZE + QP_BUILD_ID_SIZE)
#define QP_INFO_V2_SIZE (QP_INFO_V1_SIZE + 12)
#define QP_INFO_V3_SIZE (QP_INFO_V2_SIZE + 2)
#define QP_BOARD_BLOCKS_SIZE 64
#define QP_INFO_SIZE (QP_INFO_V3_SIZE + QP_HASH_SIZE + 1 + QP_BOARD_BLOCKS_SIZE)
#define QP_INFO_FLAG_ECHO 0x01 /* echo build: STEP copies obs into the action, no policy */
#define QP_INFO_FLAG_FLIGHT 0x02 /* flight build: answers the FLIGHT_* messages below */

/* Reset causes reported in INFO (the STM32F405 reads them from RCC_CSR). */
#define QP_RESET_UNKNOWN 0            /* no flag set: host build, or QEMU's stub RCC */
#define QP_RESET_POWER_ON 1           /* PORRSTF */
#define QP_RESET_PIN 2                /* PINRSTF alone: the NRST pin */
#define QP_RESET_SOFTWARE 3           /* SFTRSTF: SYSRESETREQ */
#define QP_RESET_WATCHDOG 4           /* IWDGRSTF: the independent watchdog expired */
#define QP_RESET_WINDOW_WATCHDOG 5    /* WWDGRSTF */
#define QP_RESET_LOW_POWER 6          /* LPWRRSTF */
#define QP_RESET_BROWN_OUT 7          /* BORRSTF without PORRSTF */

/* Scheme ids, equal to the policy header's QP_SCHEME_ID. */
#define QP_SCHEME_NONE 0
#define QP_SCHEME_INT 1 /* policy.h: the integer header */
#define QP_SCHEME_FLOAT32 2

/* The policy self-test's result reported in INFO (qp_policy_selftest at boot). */
#define QP_SELFTEST_PASSED 0  /* every self-test action equals the exporter's */
#define QP_SELFTEST_FAILED 1  /* the kernel computed another action: do not fly this build */
#define QP_SELFTEST_NOT_RUN 2 /* ECHO build: no policy to test */

/* Tick sources reported in INFO. */
#define QP_TICK_HOST_CLOCK 0 /* host build: monotonic clock */
#define QP_TICK_SYSTICK 1    /* SysTick at the core clock (QEMU: virtual 168 MHz) */
#define QP_TICK_DWT_CYCCNT 2 /* DWT cycle counter: CPU cycles */

/* STEP payload: count (u8) then count float32 LE (the estimate and sensor blocks).
 * ACTION payload: infer_ticks (u32, the policy call), tick_hz (u32), state_ticks (u32,
 * building the observation and keeping the command), count (u8), count float32 LE.
 * RESET and READY carry no payload. */
#define QP_STEP_HEADER 1
#define QP_ACTION_HEADER 13
#define QP_MAX_OBS ((QP_MAX_PAYLOAD - QP_STEP_HEADER) / 4)

/* The flight build (make CRAZYFLIE_APP=dir): the Crazyflie app's own C files on the board,
 * ticked by the shim's stabiliser (crazyflie_shim/shim_app.h). Only it answers these
 * requests (INFO flag QP_INFO_FLAG_FLIGHT); any other build answers UNKNOWN_TYPE.
 * FLIGHT_START (no payload) -> FLIGHT_STARTED (1 byte: QP_SELFTEST_PASSED or _FAILED).
 * FLIGHT_TICKS: ticks (u8), z_mode (u8), age_ms (u32), then 16 float32: position (3),
 * velocity (3), quaternion w x y z (4), gyro deg/s (3), target (3).
 * FLIGHT_FORCES: control_mode, mode, fault, policy_ticks, idle_ticks (u8 each),
 * policy_calls, policy_sum, policy_max, idle_sum, idle_max (u32 each), forces (4
 * float32), action (4 float32), count (u8), the observation (count float32).
 * FLIGHT_PARAM: value (float64), "group.name" -> FLIGHT_PARAM_VALUE: found (u8), the
 * value it holds now (float64). FLIGHT_LOG: "group.name" -> FLIGHT_LOG_VALUE: the same. */
#define QP_MSG_FLIGHT_START 0x05
#define QP_MSG_FLIGHT_TICKS 0x06
#define QP_MSG_FLIGHT_PARAM 0x07
#define QP_MSG_FLIGHT_LOG 0x08
#define QP_MSG_FLIGHT_STARTED 0x85
#define QP_MSG_FLIGHT_FORCES 0x86
#define QP_MSG_FLIGHT_PARAM_VALUE 0x87
#define QP_MSG_FLIGHT_LOG_VALUE 0x88
#define QP_FLIGHT_STATE_FLOATS 16
#define QP_FLIGHT_TICKS_HEADER 6
#define QP_FLIGHT_TICKS_SIZE (QP_FLIGHT_TICKS_HEADER + 4 * QP_FLIGHT_STATE_FLOATS)
#define QP_FLIGHT_FORCES_HEADER 58
#define QP_FLIGHT_MAX_OBS ((QP_MAX_PAYLOAD - QP_FLIGHT_FORCES_HEADER) / 4)
#define QP_FLIGHT_NAME_MAX 48 /* "group.name", ASCII, no terminator */
#define QP_FLIGHT_VALUE_SIZE 9

#endif
