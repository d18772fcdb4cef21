from .gain import GainUnit

__all__ = ["GainUnit"]
