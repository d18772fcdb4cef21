"""Int8 forms of the decoder's graphs, by ONNX Runtime's static quantisation:
``python -m cgdm_lab.train.quantise cgdm_codec/weights/cgdm-av1-5.safetensors --data ../shared/datasets/train``.

What it writes, beside the weights, for each role asked (default ``denoise``):
``NAME.ROLE.int8.onnx``, the float graph (``cgdm_lab/train/export_onnx.py``) with its convolutions
quantised (QDQ format by default), all but ``FLOAT_NODES``: weights int8 per output channel
(symmetric), activations uint8 per tensor with ranges calibrated on decodes of TRAINING
photos (never the validation sets). The normalisations, SiLUs and the condition's Gemms
stay float32. The graph carries its int8 weights itself; its float tensors are external
references into the safetensors file again, as in the float graph (``export_onnx.externalise``),
so the denoise graph is ~0.7 MB. Its sha256 goes into the manifest under ``onnx_int8``;
``runtime.quantised_paths`` checks it.

Calibration (deterministic: same photos, crops, levels and seeds on every run): from each
of the three training folders the ``--per-folder`` photos at evenly spaced places of its
sorted listing, each reduced by a whole factor until its shorter side is at most 768 px,
then its central ``--crop``² crop; each crop is AV1-coded at two levels (cycling through
1..6, the diffusion stage always written, default effort, one thread) and decoded
(float32, ONNX Runtime), and every input the ROLE graph received is one calibration
batch. The crops live in memory only: no calibration data is written anywhere.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from cgdm_codec.weights import manifest_path, read_manifest, sha256_file

QUANTISED_ROLES = ("denoise", "features")
#: Convolutions left in float32, per role: the output head's last convolution (its 12
#: channels are the picture's four pixel phases: 8-bit activations there put a quantisation
#: step of ~1 output level into the picture), the fixed Nyquist-null filter after it
#: (3-channel depthwise, no arithmetic worth saving) and the fusions' per-image kernels
#: (computed from the condition at run time: per-tensor ranges fit them badly). Measured on
#: held-out calibration feeds of the denoise graph: x0 within 61.8 dB of float32 with every
#: convolution quantised, 65.7 dB with these left out (docs/quantisation.md).
FLOAT_NODES = {
    "denoise": ("/head/head.2/Conv", "/head/head.4/Conv", "/head/head.4/Conv_1",
                *(f"/decoder/fuse.{i}/{w}/Conv" for i in range(3) for w in ("w_e", "w_d"))),
    # the stem reads the image itself: int8 there cost a decode 8 dB of closeness at worst
    "features": ("/consistency_encoder/stem/conv/Conv",),
}
FORMATS = ("qdq", "qoperator")
METHODS = ("minmax", "percentile", "entropy")
TRAIN_FOLDERS = ("bsds500", "debian_wallpapers", "urban100")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


def calibration_photos(data: Path, per_folder: int) -> list[Path]:
    """``per_folder`` photos of each training folder, evenly spaced in its sorted listing."""
    picked = []
    for folder in TRAIN_FOLDERS:
        files = sorted(p for p in (data / folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"no photos in {data / folder}")
        step = len(files) / per_folder
        picked += [files[int(i * step)] for i in range(min(per_folder, len(files)))]
    return picked


def calibration_crop(path: Path, crop: int) -> Any:
    """The photo reduced by a whole factor until its shorter side is <= 768 px, then its central crop."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        factor = 1
        while min(im.size) // factor > 768:
            factor += 1
        if factor > 1:
            im = im.reduce(factor)
        w, h = im.size
        c = min(crop, w, h)
        left, top = (w - c) // 2, (h - c) // 2
        return im.crop((left, top, left + c, top + c))


def captured_feeds(weights: Path, photos: list[Path], crop: int, role: str,
                   levels_per_photo: int = 2) -> list[dict[str, np.ndarray]]:
    """Every input the ``role`` graph of ``weights`` gets while decoding the photos' crops (a
    network distilled for ``--fast``, its manifest's ``fast_for``, decodes them so; a realism
    network, its manifest's ``realism_for``, decodes them at realism 1 and 0.5 in turn, the
    dial's top and middle)."""
    from cgdm_codec import api
    from cgdm_codec.engines.onnx import denoiser
    from cgdm_codec.runtime import OrtDenoiser

    feeds: list[dict[str, np.ndarray]] = []
    fast = bool(read_manifest(weights).get("fast_for"))
    realism = (1.0, 0.5) if read_manifest(weights).get("realism_for") else (0.0, 0.0)
    original = OrtDenoiser._run

    def recording(self: OrtDenoiser, r: str, feed: dict[str, np.ndarray], threads: int,
                  graph: Path | None = None) -> list[np.ndarray]:
        if r == role and Path(self.graphs[r]).name.startswith(weights.stem + "."):
            feeds.append({k: np.array(v, copy=True) for k, v in feed.items()})
        return original(self, r, feed, threads, graph)

    OrtDenoiser._run = recording  # type: ignore[method-assign]
    try:
        for i, path in enumerate(photos):
            image = calibration_crop(path, crop)
            for j in range(levels_per_photo):
                level = (i + 3 * j) % 6 + 1
                data = api.encode(image, quality=level, diffusion=True, runtime="onnx", threads=1)
                api.decode(data, runtime="onnx", threads=1, fast=fast, realism=realism[j % 2])
    finally:
        OrtDenoiser._run = original  # type: ignore[method-assign]
    denoiser.cache_clear()
    return feeds


class FeedReader:
    """onnxruntime.quantization's CalibrationDataReader over captured feeds."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self.feeds: Iterator[dict[str, np.ndarray]] = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.feeds, None)

    def rewind(self) -> None:  # the calibrators read the feeds once
        pass


def quantise_graph(float_graph: Path, out: Path, feeds: list[dict[str, np.ndarray]], fmt: str = "qdq",
                   method: str = "percentile", op_types: tuple[str, ...] = ("Conv",),
                   exclude: tuple[str, ...] = ()) -> None:
    """``float_graph`` with its ``op_types`` quantised (int8 per-channel weights, uint8
    activations calibrated on ``feeds``) but the nodes named in ``exclude``, written to
    ``out`` beside the weights (its float tensors read from them)."""
    import tempfile

    import onnx
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType, quantize_static)

    calibrate = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                 "entropy": CalibrationMethod.Entropy}[method]
    extra: dict[str, Any] = {"WeightSymmetric": True, "ActivationSymmetric": False}
    if method == "percentile":
        extra["CalibPercentile"] = 99.999
    with tempfile.TemporaryDirectory() as tmp:
        # the float graph with its tensors inlined: the quantiser reads and rewrites them
        model = onnx.load(str(float_graph))  # external data resolved beside the graph
        # the export names every tile input's sides h and w, the features' too (half, a
        # quarter... of the tile's): harmless in float, but the quantised graph's buffer
        # planner takes equal names for equal sizes. One name per input and output here.
        for value in [*model.graph.input, *model.graph.output]:
            for dim in value.type.tensor_type.shape.dim:
                if dim.dim_param in ("h", "w"):
                    dim.dim_param = f"{value.name}_{dim.dim_param}"
        del model.graph.value_info[:]
        # a network that does not read x_t has no such input, though its decoder offers one
        names = {value.name for value in model.graph.input}
        feeds = [{k: v for k, v in feed.items() if k in names} for feed in feeds]
        inlined = Path(tmp) / "float.onnx"
        onnx.save(model, str(inlined))
        quantize_static(str(inlined), str(out), FeedReader(feeds),
                        quant_format=QuantFormat.QDQ if fmt == "qdq" else QuantFormat.QOperator,
                        op_types_to_quantize=list(op_types), nodes_to_exclude=list(exclude),
                        per_channel=True, reduce_range=False,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=calibrate, use_external_data_format=False,
                        calibration_providers=["CPUExecutionProvider"], extra_options=extra)
    # the float tensors it left as they were (the condition's Gemms: 2 MB of the denoise
    # graph) read from the safetensors file again, as in the float graph
    from cgdm_codec.weights import load_tensors
    from .export_onnx import externalise

    tensors = {k: v.contiguous() for k, v in load_tensors(weights_of(float_graph)).items()}
    externalise(out, weights_of(float_graph), tensors)


#: A network that does not read x_t (``UNetConfig.noise_input``) runs its diffusion encoder
#: on 2x2 constant maps, one vector per image: nothing to gain from int8, so it stays float32.
ZERO_INPUT_SCOPE = "/diffusion_encoder/"


def float_nodes(graph: Path, role: str) -> tuple[str, ...]:
    """The convolutions of ``graph`` that stay float32: ``FLOAT_NODES`` that it has (a network
    without noise input has no w_d branch) and, in a graph without x_t, the zero-input encoder."""
    import onnx

    g = onnx.load(str(graph), load_external_data=False).graph
    convs = [node.name for node in g.node if node.op_type == "Conv"]
    reads_noise = any(value.name == "x_t" for value in g.input)
    zero_input = [] if reads_noise else [name for name in convs if name.startswith(ZERO_INPUT_SCOPE)]
    return tuple(name for name in FLOAT_NODES[role] if name in convs) + tuple(zero_input)


def weights_of(graph: Path) -> Path:
    """``NAME.safetensors`` beside the graph ``NAME.ROLE[.int8].onnx``."""
    return graph.with_name(graph.name.split(".")[0] + ".safetensors")


def quantise(weights: str | Path, data: Path, roles: tuple[str, ...] = ("denoise",), fmt: str = "qdq",
             method: str = "percentile", per_folder: int = 8, crop: int = 320,
             record: bool = True) -> dict[str, dict[str, str]]:
    """Write ``NAME.ROLE.int8.onnx`` for each role and record them in the manifest (``onnx_int8``)."""
    weights = Path(weights)
    manifest = read_manifest(weights)
    photos = calibration_photos(Path(data), per_folder)
    written: dict[str, dict[str, str]] = {}
    for role in roles:
        float_graph = weights.with_name(manifest["onnx"][role]["file"])
        feeds = captured_feeds(weights, photos, crop, role)
        out = weights.with_name(f"{weights.stem}.{role}.int8.onnx")
        exclude = float_nodes(float_graph, role)
        quantise_graph(float_graph, out, feeds, fmt, method, exclude=exclude)
        written[role] = {"file": out.name, "sha256": sha256_file(out), "format": fmt, "calibration": method,
                         "float32_nodes": list(exclude),
                         "calibration_batches": str(len(feeds)),
                         "calibration_photos": f"{len(photos)} training photos ({per_folder} per folder of "
                                               f"{', '.join(TRAIN_FOLDERS)}), central {crop}-px crops, "
                                               "2 AV1 levels each"
                                               + (", decoded at realism 1 and 0.5" if manifest.get("realism_for") else "")}
        print(f"{out.name}: {out.stat().st_size / 1024:.0f} KB, {len(feeds)} calibration batches, {fmt}, {method}")
    if record:
        manifest = read_manifest(weights)
        manifest["onnx_int8"] = {**manifest.get("onnx_int8", {}), **written}
        manifest_path(weights).write_text(json.dumps(manifest, indent=2) + "\n")
    return written


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", help="a CGDM .safetensors file with exported graphs")
    ap.add_argument("--data", type=Path, required=True, help="the training photos' folder (never a validation set)")
    ap.add_argument("--roles", default="denoise", help=f"comma list of {', '.join(QUANTISED_ROLES)}")
    ap.add_argument("--format", dest="fmt", choices=FORMATS, default="qdq")
    ap.add_argument("--method", choices=METHODS, default="percentile")
    ap.add_argument("--per-folder", type=int, default=8)
    ap.add_argument("--crop", type=int, default=320)
    ap.add_argument("--no-record", action="store_true", help="write the graph, leave the manifest alone")
    args = ap.parse_args(argv)
    if "val" in Path(args.data).resolve().parts:
        ap.error("calibrate on training photos, not a validation set")
    roles = tuple(r for r in args.roles.split(",") if r)
    for r in roles:
        if r not in QUANTISED_ROLES:
            ap.error(f"unknown role {r}")
    quantise(args.weights, args.data, roles, args.fmt, args.method, args.per_folder, args.crop,
             record=not args.no_record)


if __name__ == "__main__":
    main()
