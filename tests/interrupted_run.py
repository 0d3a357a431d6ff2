"""A tiny training run that stops itself at a chosen point, for tests/test_run_files.py.

    python tests/interrupted_run.py RUN_DIR CONFIG_JSON kill-during FILE_PREFIX N
        SIGKILL half-way through the Nth write of a file named FILE_PREFIX*
    python tests/interrupted_run.py RUN_DIR CONFIG_JSON sigint-in FUNCTION N
        SIGINT from inside the Nth call of ``update`` or ``collect_step``

Deterministic stand-ins for a kill -9 or a Ctrl-C "at a random moment": the moments that
broke resuming are inside a write and inside an update or a sim step.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import torch

from train import loop
from train.config import make_config


def kill_during_write(prefix: str, nth: int) -> None:
    real_save, calls = torch.save, [0]

    def save(obj, f, *args, **kwargs):
        # atomic_write's temporary name is ".<final name>.<random>.tmp"
        if Path(f).name.startswith(f".{prefix}"):
            calls[0] += 1
            if calls[0] == nth:
                real_save(obj, f, *args, **kwargs)
                size = Path(f).stat().st_size
                os.truncate(f, size // 2)
                os.kill(os.getpid(), signal.SIGKILL)
        return real_save(obj, f, *args, **kwargs)

    torch.save = save


def sigint_inside(function: str, nth: int) -> None:
    calls = [0]
    if function == "update":
        real = loop.update

        def update(*args, **kwargs):
            calls[0] += 1
            if calls[0] == nth:
                os.kill(os.getpid(), signal.SIGINT)  # handled mid-update
            return real(*args, **kwargs)

        loop.update = update
    elif function == "collect_step":
        real_step = loop.Trainer.collect_step

        def collect_step(self):
            calls[0] += 1
            if calls[0] == nth:
                os.kill(os.getpid(), signal.SIGINT)  # handled mid-step
            return real_step(self)

        loop.Trainer.collect_step = collect_step
    else:
        raise SystemExit(f"unknown function {function}")


def main() -> int:
    run_dir, config, mode, what, nth = sys.argv[1:6]
    cfg = json.loads(config)
    cfg = make_config(
        cfg.pop("preset"), **{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()}
    )
    (kill_during_write if mode == "kill-during" else sigint_inside)(what, int(nth))
    try:
        loop.Trainer(cfg, run_dir=Path(run_dir)).run()
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
