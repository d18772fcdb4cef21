"""cgdm's research code, kept out of the codec's wheel: ``train`` (training, weight and ONNX
export, quantisation) and ``evaluation`` (what ``cgdm eval`` runs).

It imports ``cgdm_codec``; the codec never imports it, except ``cgdm eval``, lazily.
"""

__version__ = "0.1.0"
