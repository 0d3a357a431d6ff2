/* Host driver for the generated headers (tests and export's own check).
 *
 * Reads float32 observations (QP_OBS_DIM per row, native byte order) from stdin until
 * EOF and writes one record per row to stdout: int32 return code, then QP_ACT_DIM
 * float32 actions. The action buffer is pre-filled with QP_SENTINEL, so a row the
 * policy rejected shows whether `action` was left untouched.
 * With the argument --selftest it prints qp_policy_selftest()'s result instead.
 *
 * Build: cc -std=c99 -DQP_HEADER='<policy.h>' -I<dir of the header> driver.c -lm
 */
#define QP_POLICY_IMPLEMENTATION
#include QP_HEADER

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define QP_SENTINEL 12345.0f

int main(int argc, char **argv)
{
    float obs[QP_OBS_DIM];
    if (argc == 2 && strcmp(argv[1], "--selftest") == 0) {
        printf("%d\n", qp_policy_selftest());
        return 0;
    }
    while (fread(obs, sizeof obs, 1, stdin) == 1) {
        float action[QP_ACT_DIM];
        int32_t rc;
        int i;
        for (i = 0; i < QP_ACT_DIM; ++i) {
            action[i] = QP_SENTINEL;
        }
        rc = (int32_t)qp_policy_act(obs, action);
        if (fwrite(&rc, sizeof rc, 1, stdout) != 1 || fwrite(action, sizeof action, 1, stdout) != 1) {
            return 1;
        }
    }
    return ferror(stdin) ? 1 : 0;
}
