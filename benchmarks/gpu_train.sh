#!/usr/bin/env bash
# A lent accelerator's 10 minutes, prepared: fine-tune the fidelity network on a pack.
#
#   On this CPU, once:  python -m cgdm_lab.train.pack --data ../shared/datasets/train --out runs/pack \
#                         --av1-speed 6 --sides 2048 1024 512 --exclude /tmp/camera12 \
#                         --pixels-per-crop 100000 --per-crop 2       (under 64 MB; /runs/ is git-ignored)
#                       python benchmarks/camera_set.py ../shared/datasets/train/debian_wallpapers runs/val
#   dry run here:       OUT=/tmp/gpu-dry LIMIT=30 BATCH=4 CROP=128 benchmarks/gpu_train.sh   (ARCH=restoration: the one-pass network)
#   distillation:       TEACHER=cgdm_codec/weights/cgdm-av1-6.safetensors WIDTHS="16 48 48" benchmarks/gpu_train.sh
#                       (train.slim cuts INIT to WIDTHS, then train.cgdm --teacher; without WIDTHS,
#                       INIT=cgdm_codec/weights/cgdm-av1-6f.safetensors goes on distilling the shipped --fast network)
#   on the device:      run(command="benchmarks/gpu_train.sh", carry=["runs/pack", "runs/val"], timeout_s=600)
#
# Writes $OUT/run/log.csv (loss and the validation curve: PSNR, gain over AV1, period-2
# ratio, flat-area energy) and $OUT/w.safetensors (+ .json manifest), weights-only, ready to
# be exported to ONNX and shipped as a generation here. cuDNN benchmark mode and bf16
# autocast are the trainer's defaults on CUDA.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-out}
LIMIT=${LIMIT:-480}          # seconds of training; leaves the rest of 10 minutes for start-up and export
BATCH=${BATCH:-32}
CROP=${CROP:-256}
PACK=${PACK:-runs/pack}
VAL=${VAL:-runs/val}
INIT=${INIT:-cgdm_codec/weights/cgdm-av1-6.safetensors}  # the shipped network; its config (noise_input false) comes with it
PY=${PY:-python}
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; fi
if ! "$PY" -c "import torch, cgdm_lab" 2>/dev/null; then
  "$PY" -m pip install -q -e '.[train]' -e ./lab
fi
mkdir -p "$OUT"
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" | tee "$OUT/device.txt"
val=()
if [ -d "$VAL" ]; then val=(--val "$VAL"); fi
# ARCH=restoration: the one-pass network from scratch (docs/diffusion.md, "One-pass candidates")
if [ "${ARCH:-unet}" = restoration ]; then net=(--arch restoration); else net=(--init "$INIT" --nyquist-null); fi
if [ -n "${TEACHER:-}" ]; then  # docs/diffusion.md, "cgdm-av1-6f"
  if [ -n "${WIDTHS:-}" ]; then
    "$PY" -m cgdm_lab.train.slim "$INIT" "$OUT/init.safetensors" --widths $WIDTHS
    net=(--init "$OUT/init.safetensors")
  fi
  net+=(--teacher "$TEACHER" --lambda-teacher 4)
fi
"$PY" -m cgdm_lab.train.cgdm --base av1 --pack "$PACK" --stage fine "${net[@]}" \
  --crop "$CROP" --batch "$BATCH" --syntax-bits-target 64 --syntax-proxy noise --sample-steps 1 \
  --lr 2e-4 --lambda-h 0.5 --time-limit "$LIMIT" --ckpt-every 200 "${val[@]}" \
  --out "$OUT/run" --export "$OUT/w.safetensors" 2>&1 | tee "$OUT/train.txt"
