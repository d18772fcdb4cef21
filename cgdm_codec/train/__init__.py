"""Training entry points: ``python -m cgdm_codec.train.base`` (and later the diffusion stage)."""
