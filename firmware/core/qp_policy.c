/* The one translation unit that compiles the policy header's implementation and the
 * board-state module's (export/kernel/qp_state.h, which needs the data header first). */
#define QP_POLICY_IMPLEMENTATION
#define QP_STATE_IMPLEMENTATION
#include QP_MODEL_HEADER
#include "qp_state.h"
