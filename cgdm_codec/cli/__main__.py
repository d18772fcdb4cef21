"""``python -m cgdm_codec.cli``: the ``cgdm`` command."""

from . import main

main()
