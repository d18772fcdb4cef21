# Sourced by the device scripts (gpu_train.sh, gpu_check): makes the checkout's codec and lab
# importable on a lent accelerator without fetching anything. Its image has Python 3.12 with
# torch, numpy, Pillow, ONNX Runtime, onnx, safetensors and click, and no network, so
# `pip install -e .` cannot resolve the codec's other needs there. What it lacks travels as
# wheels in .whl/ (benchmarks/device_tree.sh wheels) and is unpacked to /tmp/site; the codec
# and the lab are read from the checkout itself (PYTHONPATH). On this CPU the project's own
# .venv (which does not travel: it is git-ignored) is used as it is. Sets PY.
if [ -x .venv/bin/python ]; then
  PY=${PY:-.venv/bin/python}
else
  PY=${PY:-python3}
  if compgen -G ".whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
  fi
fi
if ! "$PY" -c "import cgdm_codec, cgdm_lab" 2>/dev/null; then
  export PYTHONPATH="$PWD:$PWD/lab${PYTHONPATH:+:$PYTHONPATH}"
fi
