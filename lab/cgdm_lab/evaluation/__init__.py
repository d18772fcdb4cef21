"""`cgdm eval`: rate-distortion-perception evaluation of cgdm against classical anchors.

One concept per module: ``images`` (what the codecs see), ``anchors`` (Pillow's JPEG, WebP,
AVIF at two speeds, and JPEG XL where its plugin is installed), ``quality`` (the metrics),
``memory`` (peak RSS per call), ``store`` (incremental, resumable rows), ``bdrate``
(Bjontegaard delta rate), ``summary`` (mean curves and BD-rate tables), ``report`` and
``plot`` (Markdown and rd.png), ``progress`` and ``runner``; ``crops`` draws labelled
side-by-side crops (``benchmarks/crops.py``).
Nothing here is imported by the CLI at start-up.
"""


class EvalError(RuntimeError):
    """A problem with the evaluation's inputs or output folder, as one line for the user
    (the CLI turns RuntimeErrors into ``cgdm: error: ...``)."""
