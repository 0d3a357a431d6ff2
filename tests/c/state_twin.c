/* The board-state module (qp_state.h) on a recorded episode stream, for
 * tests/test_state_twin.py.
 *
 * stdin, per record: int32 reset flag (1: qp_state_reset first), QP_IN_DIM float32
 * inputs, QP_ACT_DIM float32 actions (what was commanded after this observation).
 * stdout, per record: int32 qp_state_observe result, QP_OBS_DIM float32 observation.
 * With --fresh, no reset is ever done (to see QP_ERR_NOT_RESET).
 */
#define QP_POLICY_IMPLEMENTATION
#include QP_HEADER
#define QP_STATE_IMPLEMENTATION
#include "qp_state.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    static qp_state_t fc;
    int fresh = argc == 2 && strcmp(argv[1], "--fresh") == 0;
    int32_t reset;
    float in[QP_IN_DIM];
    float action[QP_ACT_DIM];

    while (fread(&reset, sizeof reset, 1, stdin) == 1 && fread(in, sizeof in, 1, stdin) == 1 &&
           fread(action, sizeof action, 1, stdin) == 1) {
        int32_t rc;
        if (reset && !fresh) {
            qp_state_reset(&fc);
        }
        rc = (int32_t)qp_state_observe(&fc, in);
        if (fwrite(&rc, sizeof rc, 1, stdout) != 1 || fwrite(fc.obs, sizeof fc.obs, 1, stdout) != 1) {
            return 1;
        }
        if (rc == 0) {
            qp_state_commit(&fc, action);
        }
    }
    return ferror(stdin) ? 1 : 0;
}
