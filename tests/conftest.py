"""Session set-up shared by every test module."""

import numpy as np
import pytest


@pytest.fixture(scope="session", autouse=True)
def compiled_sim_kernels():
    """Compile the simulator's kernels into numba's on-disk cache once, first: on a fresh
    clone that takes ~10 s (more on a loaded machine), which would otherwise land inside
    whichever subprocess test (Ctrl-C, emulator, export) calls them first."""
    from sim import dynamics
    from sim.batch import QuadBatch
    from sim.tasks import make_task

    for parallel in (False, True):
        b = QuadBatch(make_task("hover"), 64, seed=0, parallel=parallel)
        b.reset()
        b.step(np.zeros((64, 4)))
        s, p = b.state.copy(), b.params.copy()
        cmd = s[:, 13:17].copy()
        (dynamics.step if parallel else dynamics.step_serial)(s, cmd, p, b.frame, 0.01, 1, -np.inf)
    dynamics.derivative(s, cmd, p, b.frame)
