#!/usr/bin/env bash
# What travels to a lent accelerator, and how to make it fit.
#
# A device run copies the working tree (tracked files, untracked files git does not ignore,
# and the ignored paths it is told to carry) and refuses one over 64 MiB. The checkout holds
# ~160 MB of tracked files (every generation's weights, ~100 MB; results/ with its crops,
# ~50 MB), so the whole tree can never travel. A sparse checkout leaves out what a device run
# does not read: results/, the viewer's vendored runtime, docs/web, and every weights file but
# those named in KEEP (the manifests and graphs, small, all stay).
#
#   benchmarks/device_tree.sh size [CARRY...]   bytes that would travel now (with CARRY paths)
#   benchmarks/device_tree.sh slim              sparse checkout for a device run (nothing is lost:
#                                               the files stay in git; git status stays clean)
#   benchmarks/device_tree.sh full              the whole tree back
#   benchmarks/device_tree.sh wheels            .whl/: wheels (CPython 3.12, manylinux) of what the
#                                               device's image lacks, at this .venv's versions
#                                               (constriction; Pillow, for the same libavif/libaom;
#                                               the realism objective's EfficientNet code), and
#                                               runs/features.safetensors, the feature network's
#                                               tensors (2.9 MB) for MODE=realism
#
#   KEEP="cgdm-av1-6 cgdm-av1-5r" (default): the weights the GPU scripts start from
#   (gpu_train.sh's INIT, MODE=realism's init, the golden files gpu_check decodes).
#
# Whether the device copies a sparse checkout as it is on disk (without the files left out)
# is not known yet: the first call of a lent session should be a probe such as
#   run(command="du -sh . cgdm_codec/weights; ls cgdm_codec/weights | head", timeout_s=60)
# after `slim`, before the training call. `full` afterwards (the tests need every weights file).
set -euo pipefail
cd "$(dirname "$0")/.."
KEEP=${KEEP:-"cgdm-av1-6 cgdm-av1-5r"}
LIMIT=$((64 * 1024 * 1024))

size() {
  # tracked files present on disk + untracked files git does not ignore + the carried paths
  local total
  # (files a sparse checkout left out are listed but absent: stat skips them)
  total=$( { git ls-files -z; git ls-files -z --others --exclude-standard; } \
           | { xargs -0 -r stat -c %s 2>/dev/null || true; } | awk '{s += $1} END {print s + 0}')
  for path in "$@"; do
    total=$((total + $(du -sb "$path" | cut -f1)))
  done
  echo "$total bytes would travel ($((total / 1024 / 1024)) MiB; the limit is 64 MiB)"
  [ "$total" -le "$LIMIT" ] || { echo "too large for a device run" >&2; return 1; }
}

case "${1:-size}" in
  size) shift || true; size "$@" ;;
  slim)
    patterns=("/*" "!/results/" "!/docs/web/" "!/cgdm_codec/web/vendor/" "!/cgdm_codec/weights/*.safetensors")
    for w in $KEEP; do patterns+=("/cgdm_codec/weights/$w.safetensors"); done
    git sparse-checkout set --no-cone "${patterns[@]}"
    size || true ;;
  full)
    git sparse-checkout disable
    size || true ;;
  wheels)
    PY=.venv/bin/python
    version() { "$PY" -m pip show "$1" | sed -n 's/^Version: //p'; }
    mkdir -p .whl runs
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 -d .whl "constriction==$(version constriction)" \
      "pillow==$(version pillow)" "efficientnet-lite-pytorch==$(version efficientnet-lite-pytorch)"
    "$PY" -m cgdm_lab.train.realism runs/features.safetensors
    du -sh .whl runs/features.safetensors ;;
  *) echo "usage: $0 size [CARRY...] | slim | full | wheels" >&2; exit 2 ;;
esac
