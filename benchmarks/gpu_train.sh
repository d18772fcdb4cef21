#!/usr/bin/env bash
# A lent accelerator's 10 minutes, prepared: fine-tune the fidelity network (or, MODE=realism,
# the realism network) on a pack.
#
#   On this CPU, once:  python -m cgdm_lab.train.pack --data ../shared/datasets/train --out PACK \
#                         --av1-speed 6 --sides 2048 1024 512 --exclude /tmp/camera12 \
#                         --pixels-per-crop 40000 --per-crop 2       (docs/diffusion.md: 4,589 crops, 129 MiB)
#                       python -m cgdm_lab.train.pack --prefix-of PACK --out runs/pack --max-mib 20
#                                                                 (its first 702 crops; /runs/ is git-ignored)
#                       python benchmarks/camera_set.py ../shared/datasets/train/debian_wallpapers runs/val
#                       benchmarks/device_tree.sh wheels          (.whl/: what the device's image lacks;
#                                                                  runs/features.safetensors for MODE=realism)
#                       benchmarks/device_tree.sh slim            (the tree must travel in 64 MiB, data and all)
#                       benchmarks/device_tree.sh size runs/pack runs/val .whl runs/features.safetensors
#                                                                 (59 MiB; `full` afterwards)
#   dry run here:       OUT=/tmp/gpu-dry LIMIT=30 BATCH=4 CROP=128 benchmarks/gpu_train.sh   (ARCH=restoration: the one-pass network)
#   distillation:       TEACHER=cgdm_codec/weights/cgdm-av1-6.safetensors WIDTHS="16 48 48" benchmarks/gpu_train.sh
#                       (train.slim cuts INIT to WIDTHS, then train.cgdm --teacher; without WIDTHS,
#                       INIT=cgdm_codec/weights/cgdm-av1-6f.safetensors goes on distilling the shipped --fast network)
#   realism:            MODE=realism benchmarks/gpu_train.sh   (from cgdm-av1-5r, with the deep-feature distance
#                       and the patch critic; LFEAT, LADV their weights; docs/realism.md, "How the realism
#                       network ... were built")
#   on the device:      run(command="benchmarks/gpu_train.sh", carry=["runs/pack", "runs/val", ".whl"], timeout_s=600)
#                       (MODE=realism: carry runs/features.safetensors too)
#   both in one start:  run(command='OUT=/tmp/check benchmarks/gpu_check; cp /tmp/check/gpu_check.json $OUT/;
#                           LIMIT=400 benchmarks/gpu_train.sh', carry=[...as above], timeout_s=600)
#                       (a machine's start costs minutes of the 15; at most 8 files come back from $OUT,
#                       so only the results go there)
#
# Writes $OUT/log.csv (loss and the validation curve: PSNR, gain over AV1, period-2
# ratio, flat-area energy), $OUT/train.txt, $OUT/device.txt and $OUT/w.safetensors (+ .json
# manifest), weights-only, ready to
# be exported to ONNX and shipped as a generation here. cuDNN benchmark mode and bf16
# autocast are the trainer's defaults on CUDA. Nothing is fetched: the device has no network
# (benchmarks/device_env.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-out}
# the trainer's folder (its checkpoints, ~45 MB, too large to come back); a fresh one unless
# RUN names one to resume
RUN=${RUN:-$(mktemp -d /tmp/gpu-run.XXXXXX)}
LIMIT=${LIMIT:-480}          # seconds of training; leaves the rest of 10 minutes for start-up and export
BATCH=${BATCH:-32}
CROP=${CROP:-256}
PACK=${PACK:-runs/pack}
VAL=${VAL:-runs/val}
MODE=${MODE:-fidelity}
if [ "$MODE" = realism ]; then
  INIT=${INIT:-cgdm_codec/weights/cgdm-av1-5r.safetensors}  # the realism network (reads the noise: docs/realism.md)
  if [ -z "${CGDM_FEATURE_WEIGHTS:-}" ] && [ -f runs/features.safetensors ]; then
    export CGDM_FEATURE_WEIGHTS=runs/features.safetensors
  fi
fi
INIT=${INIT:-cgdm_codec/weights/cgdm-av1-6.safetensors}  # the shipped network; its config (noise_input false) comes with it
. benchmarks/device_env.sh
mkdir -p "$OUT"
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" | tee "$OUT/device.txt"
val=()
if [ -d "$VAL" ]; then val=(--val "$VAL"); fi
# ARCH=restoration: the one-pass network from scratch (docs/diffusion.md, "One-pass candidates")
if [ "${ARCH:-unet}" = restoration ]; then net=(--arch restoration); else net=(--init "$INIT" --nyquist-null); fi
if [ "$MODE" = realism ]; then net+=(--realism --lambda-feat "${LFEAT:-1.0}" --lambda-adv "${LADV:-0.15}"); fi
if [ -n "${TEACHER:-}" ]; then  # docs/diffusion.md, "cgdm-av1-6f"
  if [ -n "${WIDTHS:-}" ]; then
    "$PY" -m cgdm_lab.train.slim "$INIT" "$RUN/init.safetensors" --widths $WIDTHS
    net=(--init "$RUN/init.safetensors")
  fi
  net+=(--teacher "$TEACHER" --lambda-teacher 4)
fi
"$PY" -m cgdm_lab.train.cgdm --base av1 --pack "$PACK" --stage fine "${net[@]}" \
  --crop "$CROP" --batch "$BATCH" --syntax-bits-target 64 --syntax-proxy noise --sample-steps 1 \
  --lr 2e-4 --lambda-h 0.5 --time-limit "$LIMIT" --ckpt-every 200 "${val[@]}" \
  --out "$RUN" --export "$OUT/w.safetensors" 2>&1 | tee "$OUT/train.txt"
cp "$RUN/log.csv" "$OUT/log.csv"
