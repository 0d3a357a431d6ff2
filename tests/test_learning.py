"""Training really learns: an easy hover task goes from never solved to mostly solved.

The easy task starts close to the target and asks for 0.3 m in the last second. Before
training (and with the constant hover action) no episode succeeds; after about a minute
of DDPG most do. The bar is set where chance cannot reach it.
"""

import numpy as np

from sim.rollout import collect
from sim.tasks import make_task
from train.config import make_config
from train.loop import EVAL_SEED, Trainer

EASY = dict(
    init_position=0.1,
    init_tilt_deg=5.0,
    init_speed=0.1,
    init_rate=0.2,
    success_radius=0.3,
    episode_seconds=3.0,
)


def test_ddpg_learns_easy_hover(tmp_path):
    task = make_task("hover", **EASY)
    hover = np.full((1, 4), task.body().hover_action(), dtype=np.float32)
    constant = collect(lambda o: np.repeat(hover, len(o), axis=0), task, 100, EVAL_SEED)
    cfg = make_config(
        "hover",
        task_overrides=EASY,
        total_env_steps=400_000,
        warmup_steps=10_000,
        eval_every=100_000,
        checkpoint_every=10**9,
        run_dir=str(tmp_path),
        name="learn",
        seed=1,
    )
    trainer = Trainer(cfg)
    before = trainer.evaluate()["success_rate"]
    trainer.run()
    after = trainer.metrics[-1]["success_rate"]
    assert constant.success_rate <= 0.05 and before <= 0.05
    assert after >= 0.6, trainer.metrics
