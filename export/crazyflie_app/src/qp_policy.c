/* qp_policy.c - the one translation unit that holds the policy's tables and kernel
 * (policy.h, qp_kernel.h) and the board-state module (qp_state.h). */
#define QP_POLICY_IMPLEMENTATION
#include "policy.h"
#define QP_STATE_IMPLEMENTATION
#include "qp_state.h"
