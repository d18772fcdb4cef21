"""Base codecs behind one interface (``interface.BaseCodec``), named in ``registry``.

Nothing is imported here, so the container can read the registry without torch.
"""
