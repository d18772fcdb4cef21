"""The ``cgdm`` command line: a thin layer over the pipeline, in four parts.

- :mod:`.progress`: what the user sees while it works (stage lines, bars, a terminal clock);
- :mod:`.failures`: exceptions to one line on stderr and an exit code (closed pipes included);
- :mod:`.outputs`: where outputs go, checked before any work; standard input and output;
- :mod:`.jobs`: the work of one file and the runner for one file or a batch.

:mod:`.commands` defines the commands on top of them. ``cgdm = "cgdm_codec.cli:main"``.
Only click and the pure-Python container load at start-up: torch loads inside the commands
that need it, so ``cgdm --help`` and ``cgdm info`` answer instantly.
"""

from .commands import _eval_command, decode, encode, eval_, info, limits, main
from .failures import EXIT_CLOSED_PIPE, describe_error, fail, run_guarded, sigterm_interrupts
from .jobs import DecodeJob, EncodeJob, decode_job, decode_one, encode_job, encode_one, run_all, run_batch
from .outputs import STDIO, is_stdio, plan_outputs
from .progress import Reporter, progress_line

__all__ = [
    "main", "encode", "decode", "info", "eval_", "limits", "_eval_command",
    "EXIT_CLOSED_PIPE", "describe_error", "fail", "run_guarded", "sigterm_interrupts",
    "DecodeJob", "EncodeJob", "decode_job", "decode_one", "encode_job", "encode_one", "run_all", "run_batch",
    "STDIO", "is_stdio", "plan_outputs", "Reporter", "progress_line",
]
