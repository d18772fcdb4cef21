"""Training and export entry points (``python -m cgdm_lab.train.cgdm``, ``.base``, ``.pack``,
``.texture``, ``.export_cgdm``, ``.export_base``, ``.export_onnx``, ``.quantise``)."""
