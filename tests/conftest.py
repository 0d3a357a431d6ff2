"""Session set-up shared by every test module."""

import numpy as np
import pytest


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """The suite's models are tiny: torch's second OpenMP thread buys nothing, and on a
    busy machine its workers spin waiting for each other (an export with two threads
    beside 4 CPU-bound processes burned 209 s of CPU in 330 s without finishing; with one
    it took 110 s and 40 s of CPU: docs/benchmarks.md, "Busy machine")."""
    import os

    import torch

    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)


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
