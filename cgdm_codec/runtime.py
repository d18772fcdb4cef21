"""The torch-free runtime: ONNX Runtime sessions over the graphs exported beside the weights.

``import torch`` alone takes 1.8 s on a 2-core CPU, longer than a whole few-step decode, so
the default CPU decode and encode of AV1 files run the networks here, on numpy arrays:
``OrtDenoiser`` is the sampler's ``Denoiser`` (sampling/sample.py) and
``OrtSyntaxGenerator`` the encoder's syntax generator. The graphs
(``cgdm_lab/train/export_onnx.py``) read their tensors straight from the ``.safetensors`` file, so
both runtimes run the same weights. Threads: the cores this process may run on
(affinity), or the caller's count; the pool never spins while idle, so several cgdm
processes on one machine do not steal each other's cores.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from .cores import granted_cores
from .diffusion_config import SyntaxConfig, UNetConfig
from .quality.bands import band_means_numpy as band_means
from .sampling.sample import Steering
from .windows import pool_windows

#: Tiles up to this many pixels (the sampler's largest tile, 384²) run side by side, one
#: core each (``OrtDenoiser``); larger ones as one batch on every core.
TILEWISE_MAX_PIXELS = 384 * 384
STAT_BANDS, STAT_EPS = 4, 1e-3  # models.syntax: the band statistics' bands and floor


class MissingGraphs(RuntimeError):
    """The weights file has no exported ONNX graphs (or they are not installed)."""


def session_options(threads: int, level: Any) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    opts.graph_optimization_level = level
    return opts


@functools.lru_cache(maxsize=16)
def session(path: Path, threads: int) -> Any:
    """A session of the graph at ``path`` on ``threads`` intra-op threads, its optimised form
    read from and written to ``graph_cache`` where it can be (the same bits, built faster)."""
    import onnxruntime as ort

    from . import graph_cache

    # an int8 graph (train/quantise.py) runs as fast at the extended level (its QDQ pairs
    # fused into QLinearConv there; "all" adds layout changes it gains nothing from) and its
    # session is built in ~45 ms instead of ~75 ms (docs/quantisation.md)
    level = (ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED if path.name.endswith(".int8.onnx")
             else ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    cpu = ["CPUExecutionProvider"]
    record = graph_cache.entry(path, f"{int(level)}:{ort.__version__}")
    cached = graph_cache.lookup(record) if record is not None else None
    if cached is not None:
        as_saved = session_options(threads, ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
        with contextlib.suppress(Exception):  # unreadable after all: optimised again below
            return ort.InferenceSession(str(cached), as_saved, providers=cpu)
    opts = session_options(threads, level)
    if record is None:
        return ort.InferenceSession(str(path), opts, providers=cpu)
    graph, tensors = graph_cache.destination(record)
    opts.optimized_model_filepath = str(graph)
    opts.add_session_config_entry("session.optimized_model_external_initializers_file_name", tensors)
    opts.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes",
                                  str(graph_cache.MIN_EXTERNAL_BYTES))
    try:
        built = ort.InferenceSession(str(path), opts, providers=cpu)
    except Exception:  # the optimised graph could not be written (a full disk): no cache this time
        opts = session_options(threads, level)
        return ort.InferenceSession(str(path), opts, providers=cpu)
    graph_cache.commit(record, graph, tensors)
    return built


def _checked(weights: Path, record: dict[str, Any]) -> dict[str, Path]:
    """role -> graph path for a manifest's graph record, each checked against its sha256."""
    from .errors import WeightsError
    from .weights import sha256_file

    out = {}
    for role, entry in record.items():
        path = weights.with_name(entry["file"])
        if not path.is_file():
            raise MissingGraphs(f"{path} is missing")
        if sha256_file(path) != entry["sha256"]:
            raise WeightsError(f"{path} is damaged or not the graph its manifest describes")
        out[role] = path
    return out


def graph_paths(weights: Path, manifest: dict[str, Any]) -> dict[str, Path]:
    """The manifest's graphs, each checked against its recorded sha256."""
    record = manifest.get("onnx")
    if not record:
        raise MissingGraphs(f"{weights.name} has no ONNX graphs")
    return _checked(weights, record)


#: The decode's network precisions: float32 (the default, every golden file's decode) and
#: int8 (the graphs ``cgdm_lab/train/quantise.py`` writes, where the weights have them; opt-in).
#: ``options.PRECISIONS`` repeats them (options stays standard library only).
PRECISIONS = ("float32", "int8")
_setting = threading.local()


def precision() -> str:
    """The precision this thread's ONNX Runtime decodes run their graphs in (``precision_scope``)."""
    return getattr(_setting, "precision", "float32")


@contextlib.contextmanager
def precision_scope(value: str) -> Iterator[None]:
    """Decodes in this block, on this thread, run the int8 graphs (``value`` "int8") where
    the file's weights have them, the float32 ones elsewhere. The decode surfaces (``cgdm
    decode --precision``, ``cgdm_codec.decode(precision=)``) set it around one decode; the
    encoder never does, so what it writes and decides does not depend on it. Thread-local:
    concurrent decodes in threads keep their own."""
    if value not in PRECISIONS:
        raise ValueError(f"unknown precision {value!r} (choose from {', '.join(PRECISIONS)})")
    before = precision()
    _setting.precision = value
    try:
        yield
    finally:
        _setting.precision = before


def quantised_paths(weights: Path, manifest: dict[str, Any]) -> dict[str, Path]:
    """The manifest's int8 graphs (``onnx_int8``: role -> graph), each checked against its
    recorded sha256; empty where the weights have none."""
    return _checked(weights, manifest.get("onnx_int8") or {})


class TileFeatures(tuple):
    """One tile's consistency features (the graph's outputs), sized for the sampler's cache."""

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self)


class OrtDenoiser:
    """The U-Net's three graphs (condition, features, denoise) as a numpy ``Denoiser``.

    Two ways to spend ``threads`` cores on a batch of tiles, chosen by the tile's size:
    tiles up to ``TILEWISE_MAX_PIXELS`` run one at a time on each core side by side (the
    small network's activations stay in cache and no operator waits for another core);
    larger ones run as one batch on ``threads`` intra-op threads, which shares one tile's
    activations between the cores. Measured whole-process on 2 AMD EPYC cores: tile by tile
    decodes 768×512 (264-px tiles) in 0.81x, 1920×1080 (328×368) in 0.88x and 6000×4000
    (376×384, chunks of 6 tiles) in 0.85x the time (``docs/benchmarks.md``). A tile's
    arithmetic is the same either way (same pixels).
    """

    def __init__(self, graphs: dict[str, Path], unet: UNetConfig, threads: int | None = None,
                 quantised: Callable[[], dict[str, Path]] = dict, multiple: int | None = None) -> None:
        self.graphs = graphs
        self.quantised = quantised  # the int8 graphs, looked up (and checked) when first asked for
        self.threads = threads or granted_cores()
        self.cond_graph = session(graphs["condition"], 1)
        # the network's tile multiple (``CgdmConfig.multiple``: the one-pass network's differs from the U-Net's)
        self.multiple, self.realism = multiple or unet.multiple, unet.realism
        self._pool: Any = None

    def lanes(self, tile_pixels: int) -> int:
        """Tiles of this size that run at once, side by side (1: they run as one batch)."""
        return self.threads if self.threads > 1 and tile_pixels <= TILEWISE_MAX_PIXELS else 1

    def _tilewise(self, batch: np.ndarray) -> bool:
        return len(batch) > 1 and self.lanes(batch.shape[-2] * batch.shape[-1]) > 1

    def graph(self, role: str) -> Path:
        """The ``role`` graph that runs now: its int8 form under ``precision_scope("int8")``
        where the weights have one, else the float32 graph."""
        if precision() == "int8":
            quantised = self.quantised()
            if role in quantised:
                return quantised[role]
        return self.graphs[role]

    def _run(self, role: str, feed: dict[str, np.ndarray], threads: int, graph: Path | None = None) -> list[np.ndarray]:
        sess = session(graph or self.graph(role), threads)
        # a network that does not read x_t (UNetConfig.noise_input) has no such graph input
        return sess.run(None, {i.name: feed[i.name] for i in sess.get_inputs()})

    def _tiles(self, role: str, feeds: list[dict[str, np.ndarray]]) -> list[list[np.ndarray]]:
        """Every output of the ``role`` graph for each per-tile feed, the tiles side by side."""
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="cgdm-ort")
        run = functools.partial(self._run, role, threads=1, graph=self.graph(role))
        return list(self._pool.map(run, feeds))

    def condition(self, t: int, steering: Steering) -> np.ndarray:
        syntax = np.asarray(steering.syntax, dtype=np.float32).reshape(-1, np.shape(steering.syntax)[-1])
        rows = syntax.shape[0]
        feed = {"t": np.full(rows, t, dtype=np.int64), "syntax": syntax,
                "quality": np.broadcast_to(np.asarray(steering.quality, dtype=np.int64).reshape(-1), rows).copy()}
        if self.realism:
            r = 0.0 if steering.realism is None else steering.realism
            feed["realism"] = np.broadcast_to(np.asarray(r, dtype=np.float32).reshape(-1), rows).copy()
        return self.cond_graph.run(None, feed)[0]

    def features(self, x_tilde: np.ndarray) -> list[Any]:
        """Per output (a batch), or per tile (``TileFeatures``, handed back to ``denoise``
        tile by tile without a copy)."""
        x_tilde = np.ascontiguousarray(x_tilde, dtype=np.float32)
        if not self._tilewise(x_tilde):
            return self._run("features", {"x_tilde": x_tilde}, self.threads)
        outs = self._tiles("features", [{"x_tilde": x_tilde[i:i + 1]} for i in range(len(x_tilde))])
        return [TileFeatures(o) for o in outs]

    def denoise(self, x_t: np.ndarray, x_tilde: np.ndarray, features: list[Any],
                cond: np.ndarray) -> np.ndarray:
        x_t = np.ascontiguousarray(x_t, dtype=np.float32)
        x_tilde = np.ascontiguousarray(x_tilde, dtype=np.float32)
        if not isinstance(features[0], TileFeatures):
            feed = {"x_t": x_t, "x_tilde": x_tilde, "cond": cond}
            feed.update({f"e{i}": f for i, f in enumerate(features)})
            return self._run("denoise", feed, self.threads)[0]
        feeds = []
        for i, tile_features in enumerate(features):
            feed = {"x_t": x_t[i:i + 1], "x_tilde": x_tilde[i:i + 1], "cond": cond[i:i + 1] if len(cond) > 1 else cond}
            feed.update({f"e{k}": f for k, f in enumerate(tile_features)})
            feeds.append(feed)
        return np.concatenate([o[0] for o in self._tiles("denoise", feeds)])

    def grad(self, enabled: bool) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def grad_enabled(self) -> bool:
        return False


class OrtSyntaxGenerator:
    """The syntax generator: its conv stages as a graph, its MLP head in numpy."""

    def __init__(self, graph: Path, weights: Path, cfg: SyntaxConfig, threads: int | None = None) -> None:
        from safetensors import safe_open

        self.graph = session(graph, threads or granted_cores())
        self.cfg = cfg
        with safe_open(str(weights), framework="np") as f:
            self.head = [(f.get_tensor(f"syntax.mlp.{i}.weight"), f.get_tensor(f"syntax.mlp.{i}.bias"))
                         for i in (0, 2)]

    def pooled(self, x: np.ndarray, x_tilde: np.ndarray) -> np.ndarray:
        """Pooled conv features (and band means) of one tile in [-1, 1]."""
        feats = self.graph.run(None, {"x": np.ascontiguousarray(x), "x_tilde": np.ascontiguousarray(x_tilde)})[0]
        if self.cfg.statistics:
            feats = np.concatenate([feats, band_means(x, x_tilde)], axis=1)
        return feats

    def values(self, x01: np.ndarray, x_tilde01: np.ndarray, most: int | None = None) -> np.ndarray:
        """Continuous syntax values (S,) of an image pair (1, 3, H, W) in [0, 1], pooled tile by
        tile as an area-weighted mean over ``most`` of its windows, or all
        (``windows.pool_windows``; models.syntax.SyntaxGenerator.pooled_tiled). uint8 pairs
        are mapped to [0, 1] a window at a time (the same numbers, without two float copies
        of a large photo)."""
        tile = self.cfg.pool_tile
        h, w = x01.shape[-2:]
        total, area = 0.0, 0
        for top, left in pool_windows(h, w, tile, most):
            sl = (..., slice(top, top + tile), slice(left, left + tile))
            a, b = unit_float(x01[sl]) * 2.0 - 1.0, unit_float(x_tilde01[sl]) * 2.0 - 1.0
            n = a.shape[-2] * a.shape[-1]
            total = total + self.pooled(a.astype(np.float32, copy=False), b.astype(np.float32, copy=False)) * n
            area += n
        feats = (total / area).astype(np.float32)
        if self.cfg.statistics:
            n = sum(self.cfg.widths)
            feats = np.concatenate([feats[:, :n], np.log(feats[:, n:] + STAT_EPS)], axis=1)
        (w1, b1), (w2, b2) = self.head
        hidden = feats @ w1.T + b1
        hidden = np.where(hidden >= 0, hidden, 0.1 * hidden)
        return (hidden @ w2.T + b2).reshape(-1)


def unit_float(a: np.ndarray) -> np.ndarray:
    """uint8 in 0..255 as float32 in [0, 1]; float arrays as they are."""
    return a.astype(np.float32) / np.float32(255.0) if a.dtype == np.uint8 else a


def symbols_of(values: np.ndarray, symbol_range: int) -> np.ndarray:
    """Rounded (half to even, as torch.round) and clamped syntax symbols, int64."""
    return np.clip(np.round(values), -symbol_range, symbol_range).astype(np.int64)


def prior_table(weights: Path) -> np.ndarray:
    """The syntax prior's coding tables, read from the weights without torch."""
    from safetensors import safe_open

    with safe_open(str(weights), framework="np") as f:
        return f.get_tensor("prior.table")
