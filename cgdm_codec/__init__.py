"""cgdm: a perceptual image codec (learned base codec + consistency-guided diffusion)."""

__version__ = "0.1.0"
