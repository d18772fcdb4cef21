from .gain import GainUnit
from .nyquist import NyquistNull

__all__ = ["GainUnit", "NyquistNull"]
