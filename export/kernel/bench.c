/* Single-sample timing of a generated header on the host (bench/export_speed.py).
 *
 * Reads float32 observations (QP_OBS_DIM per row) from stdin, then calls qp_policy_act
 * once per row, cycling through the rows, `reps` times (argv[1]), for `rounds` rounds
 * (argv[2]); prints the best round's nanoseconds per call and a checksum of the
 * actions (which keeps the compiler from dropping the calls).
 *
 * Build: cc -std=c99 -O2 -DQP_HEADER='<policy.h>' -I<dir of the header> bench.c -lm
 */
#define _POSIX_C_SOURCE 199309L
#define QP_POLICY_IMPLEMENTATION
#include QP_HEADER

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define QP_BENCH_MAX_ROWS 4096

static float qp_bench_obs[QP_BENCH_MAX_ROWS][QP_OBS_DIM];

static double qp_bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    const long reps = argc > 1 ? atol(argv[1]) : 100000L;
    const int rounds = argc > 2 ? atoi(argv[2]) : 5;
    size_t rows = 0;
    double best = -1.0;
    double checksum = 0.0;
    int r;
    while (rows < QP_BENCH_MAX_ROWS && fread(qp_bench_obs[rows], sizeof qp_bench_obs[0], 1, stdin) == 1) {
        ++rows;
    }
    if (rows == 0 || reps < 1 || rounds < 1) {
        fprintf(stderr, "bench: need observations on stdin and positive reps/rounds\n");
        return 1;
    }
    for (r = 0; r < rounds; ++r) {
        long i;
        double t0;
        double dt;
        t0 = qp_bench_now_ns();
        for (i = 0; i < reps; ++i) {
            float action[QP_ACT_DIM];
            if (qp_policy_act(qp_bench_obs[(size_t)i % rows], action) == QP_OK) {
                checksum += action[0];
            }
        }
        dt = (qp_bench_now_ns() - t0) / (double)reps;
        if (best < 0.0 || dt < best) {
            best = dt;
        }
    }
    printf("%.1f %.6f\n", best, checksum);
    return 0;
}
