"""A training configuration small enough for a test: a run of 1,600 env steps in seconds."""

TINY = dict(
    num_envs=8,
    total_env_steps=1600,
    warmup_steps=256,
    batch_size=64,
    buffer_size=5000,
    eval_every=800,
    eval_episodes=4,
    checkpoint_every=800,
    obs_norm_steps=1000,
    critic_hidden=(32, 32),
    actor_hidden=(16, 16),
    # Without the hover preset's stages: a tiny run then resumes to the same end with a
    # longer budget, and flies any task (tests that want stages name their own).
    curriculum=(),
)
