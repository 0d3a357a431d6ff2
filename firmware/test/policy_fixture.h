/* policy_fixture.h - a stand-in policy implementing the generated-header contract.
 *
 * action[i] = clamp(B[i] + sum_j W[i][j] * obs[j], -1, 1), accumulated in float32 in
 * index order, with W[i][j] = ((2i + 5j) mod 9 - 4) / 16 and B[i] = (2i - 3) / 16.
 * Every weight is exact in float32, so tests/firmware_support.py recomputes the
 * same bits in numpy. QP_MODEL_HASH is the sha256 of W (row-major) then B, as
 * little-endian float32.
 *
 * Usage (stb style): include anywhere for the declarations; in exactly one
 * translation unit, #define QP_POLICY_IMPLEMENTATION first.
 */
#ifndef QP_POLICY_FIXTURE_H
#define QP_POLICY_FIXTURE_H

#define QP_OBS_DIM 18
#define QP_ACT_DIM 4
#define QP_MODEL_HASH "a1049eb885b399f78d5fb3f3d2298be81e8e5153ab58456ab2c4267508c34266"
#define QP_SCHEME "float32"
#define QP_SCHEME_ID 2
#define QP_MACS 72
#define QP_OK 0
#define QP_ERR_NONFINITE 1

int qp_policy_act(const float obs[QP_OBS_DIM], float action[QP_ACT_DIM]);

#endif /* QP_POLICY_FIXTURE_H */

#ifdef QP_POLICY_IMPLEMENTATION
#ifndef QP_POLICY_FIXTURE_IMPLEMENTED
#define QP_POLICY_FIXTURE_IMPLEMENTED

static const float qp_fixture_w[QP_ACT_DIM][QP_OBS_DIM] = {
    {-0.25f, 0.0625f, -0.1875f, 0.125f, -0.125f, 0.1875f, -0.0625f, 0.25f, 0.0f,
     -0.25f, 0.0625f, -0.1875f, 0.125f, -0.125f, 0.1875f, -0.0625f, 0.25f, 0.0f},
    {-0.125f, 0.1875f, -0.0625f, 0.25f, 0.0f, -0.25f, 0.0625f, -0.1875f, 0.125f,
     -0.125f, 0.1875f, -0.0625f, 0.25f, 0.0f, -0.25f, 0.0625f, -0.1875f, 0.125f},
    {0.0f, -0.25f, 0.0625f, -0.1875f, 0.125f, -0.125f, 0.1875f, -0.0625f, 0.25f,
     0.0f, -0.25f, 0.0625f, -0.1875f, 0.125f, -0.125f, 0.1875f, -0.0625f, 0.25f},
    {0.125f, -0.125f, 0.1875f, -0.0625f, 0.25f, 0.0f, -0.25f, 0.0625f, -0.1875f,
     0.125f, -0.125f, 0.1875f, -0.0625f, 0.25f, 0.0f, -0.25f, 0.0625f, -0.1875f},
};
static const float qp_fixture_b[QP_ACT_DIM] = {-0.1875f, -0.0625f, 0.0625f, 0.1875f};

int qp_policy_act(const float obs[QP_OBS_DIM], float action[QP_ACT_DIM])
{
    float out[QP_ACT_DIM];
    int i, j;

    for (j = 0; j < QP_OBS_DIM; j++) {
        /* NaN fails both comparisons; +-Inf fails the range test. */
        if (!(obs[j] >= -3.4028235e38f && obs[j] <= 3.4028235e38f)) {
            return QP_ERR_NONFINITE;
        }
    }
    for (i = 0; i < QP_ACT_DIM; i++) {
        float acc = qp_fixture_b[i];
        for (j = 0; j < QP_OBS_DIM; j++) {
            acc += qp_fixture_w[i][j] * obs[j];
        }
        out[i] = acc > 1.0f ? 1.0f : (acc < -1.0f ? -1.0f : acc);
    }
    for (i = 0; i < QP_ACT_DIM; i++) {
        action[i] = out[i];
    }
    return QP_OK;
}

#endif /* QP_POLICY_FIXTURE_IMPLEMENTED */
#endif /* QP_POLICY_IMPLEMENTATION */
