/* The one translation unit that compiles the policy header's implementation. */
#define QP_POLICY_IMPLEMENTATION
#include QP_MODEL_HEADER
