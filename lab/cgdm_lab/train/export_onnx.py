"""Export the ONNX graphs a torch-free decoder and encoder run: ``python -m
cgdm_lab.train.export_onnx cgdm_codec/weights/cgdm-av1-3.safetensors [...]``.

Four graphs per weights file, written beside it as ``NAME.ROLE.onnx``:
- ``condition``: (t, syntax values, base condition[, realism]) -> the condition vector;
- ``features``: x~ tiles -> the consistency features (once per tile);
- ``denoise``: (x_t, x~, features, condition) -> x0, one sampler step's network call;
- ``syntax``: (x, x~) of one pooling tile -> the syntax generator's pooled conv features
  (the MLP head and the band statistics are a few numpy lines, ``models.syntax_numpy``).
The graphs hold no weights of their own: every parameter is an ONNX external-data
reference into the ``.safetensors`` file (its offset and length there), so the tensors
exist once, the weights id stays defined by them, and a graph is a few hundred KB. The
one exception is the encoders' stems, rewritten for speed (``StridedStem``): their
rearranged kernels (14 KB each) live in the graph. Each
graph's sha256 goes into the manifest under ``onnx``; the decoder checks it.
"""

from __future__ import annotations

import argparse
import json
import struct
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cgdm_codec.models.cgdm import Cgdm
from cgdm_codec.weights import load_tensors, manifest_path, read_manifest, sha256_file

OPSET = 17
ROLES = ("condition", "features", "denoise", "syntax")


class Condition(nn.Module):
    def __init__(self, model: Cgdm) -> None:
        super().__init__()
        self.unet = model.unet

    def forward(self, t: torch.Tensor, syntax: torch.Tensor, quality: torch.Tensor,
                realism: torch.Tensor | None = None) -> torch.Tensor:
        return self.unet.condition(t, syntax, quality, realism)


class Features(nn.Module):
    def __init__(self, model: Cgdm) -> None:
        super().__init__()
        self.unet = model.unet

    def forward(self, x_tilde: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.unet.consistency(x_tilde))


class Denoise(nn.Module):
    def __init__(self, model: Cgdm) -> None:
        super().__init__()
        self.unet = model.unet

    def forward(self, x_t: torch.Tensor, x_tilde: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        *feats, cond = rest
        return self.unet.denoise(x_t, x_tilde, list(feats), cond)


class SyntaxPooled(nn.Module):
    def __init__(self, model: Cgdm) -> None:
        super().__init__()
        self.syntax = model.syntax

    def forward(self, x: torch.Tensor, x_tilde: torch.Tensor) -> torch.Tensor:
        h, means = torch.cat([x, x_tilde], dim=1), []
        for stage in self.syntax.stages:
            h = stage(h)
            means.append(h.float().mean(dim=(-2, -1)))
        return torch.cat(means, dim=1)


class StridedStem(nn.Module):
    """An encoder's stem, pixel-unshuffle by r then a 3x3 convolution, as the one convolution
    it equals: kernel 3r, stride r, padding r, on the image itself, with the same
    multiply-adds. ONNX Runtime runs the unshuffle as a reshape and a 6-D transpose, 7 % of
    the features graph's time (and 3 % of the denoise graph's) at 376x384 tiles; the single
    convolution makes both graphs ~5 % faster. Outputs agree to float rounding (~2e-6)."""

    def __init__(self, stem: nn.Sequential) -> None:
        super().__init__()
        unshuffle, conv = stem
        r = unshuffle.downscale_factor
        out, cin = conv.weight.shape[0], conv.weight.shape[1] // (r * r)
        # weight[o, c*r*r + i*r + j, dy, dx] drives pixel (r*(Y+dy-1) + i, r*(X+dx-1) + j)
        w = conv.weight.detach().reshape(out, cin, r, r, 3, 3).permute(0, 1, 4, 2, 5, 3)
        self.conv = nn.Conv2d(cin, out, 3 * r, stride=r, padding=r)
        with torch.no_grad():
            self.conv.weight.copy_(w.reshape(out, cin, 3 * r, 3 * r))
            self.conv.bias.copy_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def for_export(model: Cgdm) -> Cgdm:
    """The model with its encoders' stems folded (``StridedStem``), in place (a U-Net's; the
    one-pass network has no unshuffle stem)."""
    if model.cfg.restoration is not None:
        return model
    for encoder in (model.unet.consistency_encoder, model.unet.diffusion_encoder):
        if isinstance(encoder.stem, nn.Sequential):
            encoder.stem = StridedStem(encoder.stem)
    return model


def safetensors_layout(path: Path) -> dict[str, tuple[int, int, str]]:
    """name -> (absolute offset, length, dtype) of every tensor in a safetensors file."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    start = 8 + n
    return {k: (start + v["data_offsets"][0], v["data_offsets"][1] - v["data_offsets"][0], v["dtype"])
            for k, v in header.items() if k != "__metadata__"}


def externalise(graph_path: Path, weights: Path, tensors: dict[str, torch.Tensor]) -> int:
    """Point every initializer that is a weights tensor at its bytes in the safetensors file."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(graph_path))
    layout = safetensors_layout(weights)
    moved = 0
    for init in model.graph.initializer:
        if init.name not in tensors or layout[init.name][2] != "F32":
            continue
        value = numpy_helper.to_array(init)
        if value.shape != tuple(tensors[init.name].shape) or not np.array_equal(value, tensors[init.name].numpy()):
            raise RuntimeError(f"initializer {init.name} is not the weights tensor of that name")
        offset, length, _ = layout[init.name]
        init.ClearField("raw_data")
        init.ClearField("float_data")
        init.data_location = onnx.TensorProto.EXTERNAL
        del init.external_data[:]
        for key, val in (("location", weights.name), ("offset", str(offset)), ("length", str(length))):
            entry = init.external_data.add()
            entry.key, entry.value = key, val
        moved += 1
    onnx.save(model, str(graph_path))
    return moved


def example_inputs(model: Cgdm, role: str) -> tuple[tuple[torch.Tensor, ...], list[str], list[str], dict]:
    """Inputs, input names, output names and dynamic axes of one graph."""
    cfg = model.cfg
    m = model.unet.multiple
    side = 4 * m
    x = torch.rand(2, 3, side, side) * 2 - 1
    tile = {0: "n", 2: "h", 3: "w"}
    if role == "condition":
        args: tuple[torch.Tensor, ...] = (torch.tensor([999]), torch.zeros(1, cfg.syntax.length),
                                          torch.tensor([100]))
        names = ["t", "syntax", "quality"]
        if cfg.unet.realism:
            args, names = args + (torch.tensor([0.5]),), names + ["realism"]
        return args, names, ["cond"], {k: {0: "rows"} for k in names + ["cond"]}
    if role == "features":
        with torch.no_grad():
            outs = [f"e{i}" for i in range(len(model.unet.consistency(x)))]
        return (x,), ["x_tilde"], outs, {"x_tilde": tile, **{o: tile for o in outs}}
    if role == "denoise":
        with torch.no_grad():
            feats = model.unet.consistency(x)
            cond = model.unet.condition(torch.tensor([999]), torch.zeros(1, cfg.syntax.length), torch.tensor([100]))
        names = ["x_t", "x_tilde"] + [f"e{i}" for i in range(len(feats))] + ["cond"]
        axes = {n: tile for n in names[:-1]}
        return (x, x, *feats, cond), names, ["x0"], {**axes, "x0": tile}
    if role == "syntax":
        return (x[:1], x[:1]), ["x", "x_tilde"], ["pooled"], {"x": tile, "x_tilde": tile}
    raise ValueError(role)


MODULES = {"condition": Condition, "features": Features, "denoise": Denoise, "syntax": SyntaxPooled}


def export_graphs(weights: str | Path) -> dict[str, dict[str, str]]:
    """Write the four graphs beside ``weights`` and record them in its manifest."""
    weights = Path(weights)
    model = for_export(Cgdm.from_weights(weights).eval())
    tensors = {k: v.contiguous() for k, v in load_tensors(weights).items()}
    record: dict[str, dict[str, str]] = {}
    for role in ROLES:
        args, names, outs, axes = example_inputs(model, role)
        path = weights.with_name(f"{weights.stem}.{role}.onnx")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(MODULES[role](model), args, str(path), opset_version=OPSET, dynamo=False,
                              do_constant_folding=False, input_names=names, output_names=outs,
                              dynamic_axes=axes)
        moved = externalise(path, weights, tensors)
        record[role] = {"file": path.name, "sha256": sha256_file(path)}
        print(f"{path.name}: {path.stat().st_size / 1024:.0f} KB, {moved} tensors read from {weights.name}")
    manifest = read_manifest(weights)
    manifest["onnx"] = record
    manifest_path(weights).write_text(json.dumps(manifest, indent=2) + "\n")
    return record


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", nargs="+", help="CGDM .safetensors files (with their manifests)")
    args = ap.parse_args(argv)
    for w in args.weights:
        export_graphs(w)


if __name__ == "__main__":
    main()


