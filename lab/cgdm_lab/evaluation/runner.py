"""Running an evaluation: every image through cgdm (per level and ablation) and the anchors
(per quality setting), with real files on disk, scored and stored row by row."""

from __future__ import annotations

import datetime as _dt
import json
import platform
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import EvalError
from .anchors import (AVIF_DEFAULT_SPEED, ClassicalCodec, available_anchors, avif_support, bpp_of,
                      default_anchors, jxl_support)
from .images import JPEG_SOURCE_NOTE, has_jpeg_sources, list_images, load_reference, to_rgb_array
from .memory import PeakMemory
from .progress import Progress
from .quality import Scorer
from .store import ResultStore, json_safe, write_csv, write_text_atomic

CGDM = "cgdm"


@dataclass(frozen=True)
class Ablation:
    """An extra cgdm curve: ``encode`` kwargs give it its own file (none: it decodes the main
    file), ``decode`` kwargs change how it is decoded; ``requires`` names an encode_image
    keyword the encoder must have."""

    encode: dict = field(default_factory=dict)
    decode: dict = field(default_factory=dict)
    requires: str | None = None
    about: str = ""


ABLATIONS: dict[str, Ablation] = {
    "base-only": Ablation(decode={"base_only": True},
                          about="the same .cgdm file decoded without the diffusion stage"),
    "no-finetune": Ablation(encode={"finetune": False}, requires="finetune",
                            about="encoded without online fine-tuning"),
    "realism": Ablation(decode={"realism": 1.0},
                        about="the same .cgdm file decoded at realism 1 (docs/realism.md)"),
    "realism-map": Ablation(encode={"texture_map": True}, decode={"realism": 1.0}, requires="texture_map",
                            about="encoded with a texture map, decoded at realism 1"),
}


def pick_anchors(anchors: tuple[ClassicalCodec, ...], names: tuple[str, ...]) -> tuple[ClassicalCodec, ...]:
    """The anchors named (all when none is): a short run against the one anchor an aim names."""
    if not names:
        return anchors
    known = {a.name for a in anchors}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown anchor {', '.join(unknown)}; choose from {', '.join(sorted(known))}")
    return tuple(a for a in anchors if a.name in names)


@dataclass
class EvalConfig:
    images: Path
    outdir: Path
    levels: tuple[int, ...] = (1, 2, 3, 4, 5, 6)
    downscale: float = 1.0
    limit: int | None = None
    anchors: bool = True
    ablations: tuple[str, ...] = ("base-only",)
    effort: str | None = None
    device: str = "auto"
    resume: bool = True
    keep_files: bool = False
    networks: bool = True
    quiet: bool = False
    threads: int | None = None  # torch and ONNX Runtime threads for the codec (None: the granted cores)
    command: str = ""
    sweeps: dict[str, tuple[int, ...]] | None = None  # override the anchors' sweeps (tests)
    # speed of the main AVIF anchor (e.g. the AV1 speed of cgdm's effort); avif-s2 runs besides
    avif_speed: int = AVIF_DEFAULT_SPEED
    # run only the anchors of these names (e.g. "avif-s2"); empty: all of them
    anchor_names: tuple[str, ...] = ()


def encoder_keywords() -> set[str]:
    """The encoder's settings (``cgdm_codec.options.EncodeSettings``'s fields)."""
    from dataclasses import fields

    from cgdm_codec.options import EncodeSettings

    return {f.name for f in fields(EncodeSettings)}


def encode_options(effort: str | None, accepted: set[str]) -> dict:
    """Keyword arguments for every cgdm encode: the cheapest effort ("fast") by default where
    the encoder has efforts, the user's --effort when given."""
    if effort is None:
        return {"effort": "fast"} if "effort" in accepted else {}
    if "effort" not in accepted:
        raise EvalError("--effort: this version of the encoder has no effort setting")
    return {"effort": effort}


def check_ablations(names: tuple[str, ...], accepted: set[str]) -> None:
    for name in names:
        if name not in ABLATIONS:
            raise EvalError(f"unknown ablation '{name}' (known: {', '.join(ABLATIONS)})")
        need = ABLATIONS[name].requires
        if need and need not in accepted:
            raise EvalError(f"ablation '{name}' needs an encoder with '{need}', which this version lacks")


def environment(device: str) -> dict:
    import PIL
    import torch

    cpu = ""
    try:
        cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                    if ln.startswith("model name")), "")
    except OSError:
        pass
    try:
        import piq
        piq_version = piq.__version__
    except ImportError:
        piq_version = None
    return {"python": platform.python_version(), "torch": torch.__version__, "pillow": PIL.__version__,
            "piq": piq_version, "anchor_plugins": anchor_plugins(), "threads": torch.get_num_threads(),
            "device": device, "cpu": cpu,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def anchor_plugins() -> dict[str, str]:
    """Which package writes AVIF and JPEG XL, with its version where it is a plugin."""
    from importlib import metadata

    out = {}
    for fmt, source in (("avif", avif_support()), ("jxl", jxl_support())):
        if source is None:
            continue
        try:
            out[fmt] = source if source == "pillow" else f"{source} {metadata.version(source)}"
        except metadata.PackageNotFoundError:
            out[fmt] = source
    return out


def _encode(img, quality: int, **options) -> bytes:
    """A Pillow image's .cgdm bytes, by the encoder's settings (the ablations set some)."""
    from cgdm_codec import imageio
    from cgdm_codec.options import EncodeSettings
    from cgdm_codec.pipeline import encode_image

    return encode_image(imageio.from_pil(img), EncodeSettings(quality=quality, **options))


class Runner:
    """One evaluation: builds rows into a ResultStore and rewrites the reports as it goes."""

    def __init__(self, cfg: EvalConfig) -> None:
        self.cfg = cfg
        if not cfg.images.is_dir():
            raise EvalError(f"{cfg.images}: not a folder")
        self.files = list_images(cfg.images, cfg.limit)
        if not self.files:
            raise EvalError(f"{cfg.images}: no images (looked for .png, .jpg, .webp, ...)")
        from cgdm_codec.device import pick_device  # torch: only once the inputs are known to be usable
        from cgdm_codec.generations import default_base, load_bundle

        accepted = encoder_keywords()
        self.encode_kwargs = encode_options(cfg.effort, accepted)
        check_ablations(cfg.ablations, accepted)
        self.notes: list[str] = []
        if "no-finetune" in cfg.ablations and self.encode_kwargs.get("effort") == "fast":
            self.notes.append("effort 'fast' does no online fine-tuning, so cgdm:no-finetune repeats "
                              "cgdm; give --effort default or max to see what fine-tuning adds")
        if has_jpeg_sources(self.files) and cfg.downscale == 1.0:
            self.notes.append(JPEG_SOURCE_NOTE)
        self.anchors: list[ClassicalCodec] = []
        if cfg.anchors:
            try:
                wanted = pick_anchors(default_anchors(cfg.avif_speed), cfg.anchor_names)
            except ValueError as e:
                raise EvalError(str(e)) from None
            self.anchors, notes = available_anchors(wanted)
            self.notes += notes
        self.dev = pick_device(cfg.device)
        if cfg.threads:  # after pick_device, which sets one thread per granted core
            import torch

            torch.set_num_threads(cfg.threads)
        # the bundle of the base the encodes use, so that the weights id names their weights
        base = default_base()
        bundle = load_bundle(base)
        self.diffusion = bundle.newest is not None
        if not self.diffusion:
            self.notes.append("diffusion weights not installed: the cgdm rows are base-codec only")
        identity = {"images": str(cfg.images.resolve()), "downscale": cfg.downscale,
                    "encode": self.encode_kwargs, "base": base,
                    "weights": bundle.weights_id(self.diffusion).hex()}
        self.store = ResultStore(cfg.outdir, identity, cfg.resume)
        self.identity = identity
        self.scorer = Scorer.create("cpu", cfg.networks)
        self.notes += self.scorer.notes
        # coded files go to OUT/files when kept, else to a scratch folder removed at the end
        self.files_dir = cfg.outdir / ("files" if cfg.keep_files else ".files-scratch")
        self.warm = False

    # ----------------------------------------------------------------------------- tasks

    def cgdm_codecs(self) -> list[tuple[str, dict, dict]]:
        """(codec name, encode kwargs, decode kwargs) for cgdm and each ablation."""
        out = [(CGDM, {}, {})]
        for name in self.cfg.ablations:
            a = ABLATIONS[name]
            out.append((f"{CGDM}:{name}", a.encode, a.decode))
        return out

    def sweep(self, codec: ClassicalCodec) -> tuple[int, ...]:
        return (self.cfg.sweeps or {}).get(codec.name, codec.sweep)

    def pending(self, image: str, codec: str, settings) -> list[int]:
        return [s for s in settings if (image, codec, s) not in self.store.done]

    def _file(self, image: str, codec: str, setting: int, ext: str, data: bytes) -> bytes:
        """Write the coded file, read it back: bpp and decoding use what is on disk."""
        folder = self.files_dir / codec.replace(":", "-")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{image}.{setting}.{ext}"
        path.write_bytes(data)
        back = path.read_bytes()
        if not self.cfg.keep_files:
            path.unlink()
        return back

    def _warm_up(self) -> None:
        """Run the codec once on a small image so that lazy initialisation is not timed."""
        from PIL import Image

        from cgdm_codec.container import parse
        from cgdm_codec.options import DecodeSettings
        from cgdm_codec.pipeline import decode_file

        if self.warm:
            return
        rng = np.random.default_rng(0)
        img = Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
        data = _encode(img, 3, device=self.cfg.device, threads=self.cfg.threads, **self.encode_kwargs)
        decode_file(parse(data), DecodeSettings(device=self.cfg.device, threads=self.cfg.threads))
        self.warm = True

    def _timed(self, fn: Callable, *args, **kwargs):
        with PeakMemory(cuda=self.dev.type == "cuda") as mem:
            t0 = time.perf_counter()
            result = fn(*args, **kwargs)
            seconds = time.perf_counter() - t0
        return result, seconds, mem

    def _row(self, image: str, codec: str, setting: int, ref: np.ndarray, out: np.ndarray,
             n_bytes: int, enc: tuple[float, PeakMemory], dec: tuple[float, PeakMemory]) -> dict:
        h, w = ref.shape[:2]
        mp = w * h / 1e6
        row = {"image": image, "codec": codec, "setting": setting, "width": w, "height": h,
               "bytes": n_bytes, "bpp": bpp_of(n_bytes, w, h), **self.scorer(ref, out),
               "encode_s": enc[0], "decode_s": dec[0], "encode_s_per_mp": enc[0] / mp,
               "decode_s_per_mp": dec[0] / mp, "encode_peak_mib": enc[1].rss_mib,
               "decode_peak_mib": dec[1].rss_mib}
        if self.dev.type == "cuda" and codec.startswith(CGDM):
            row.update(encode_cuda_mib=enc[1].cuda_mib, decode_cuda_mib=dec[1].cuda_mib)
        return row

    def run_cgdm(self, image: str, img, ref: np.ndarray, level: int) -> bool:
        """All cgdm rows of one image and level; False if there was nothing left to do."""
        from cgdm_codec.container import parse
        from cgdm_codec.options import DecodeSettings
        from cgdm_codec.pipeline import decode_file

        todo = [c for c in self.cgdm_codecs() if self.pending(image, c[0], [level])]
        if not todo:
            return False
        self._warm_up()
        files: dict[str, tuple[bytes, tuple]] = {}
        for codec, enc_kwargs, dec_kwargs in todo:
            file_key = codec if enc_kwargs else CGDM  # decode-only ablations share the main file
            if file_key not in files:
                data, t, mem = self._timed(_encode, img, level, device=self.cfg.device, threads=self.cfg.threads,
                                           **self.encode_kwargs, **enc_kwargs)
                files[file_key] = (self._file(image, file_key, level, "cgdm", data), (t, mem))
            data, enc = files[file_key]
            coded = parse(data)
            settings = DecodeSettings(device=self.cfg.device, threads=self.cfg.threads, **dec_kwargs)
            out, t, mem = self._timed(decode_file, coded, settings)
            row = self._row(image, codec, level, ref, out, len(data), enc, (t, mem))
            # whether the decode ran the diffusion stage: the encoder writes it only where it wins
            row["stage"] = coded.diffusion and not dec_kwargs.get("base_only", False)
            self.store.add(row)
        return True

    def run_anchor(self, image: str, img, ref: np.ndarray, codec: ClassicalCodec) -> bool:
        from .images import decode_pil_bytes

        todo = self.pending(image, codec.name, self.sweep(codec))
        for q in todo:
            data, t_enc, m_enc = self._timed(codec.encode, img, q)
            data = self._file(image, codec.name, q, codec.extension, data)
            out, t_dec, m_dec = self._timed(decode_pil_bytes, data)
            self.store.add(self._row(image, codec.name, q, ref, out, len(data), (t_enc, m_enc),
                                     (t_dec, m_dec)))
        return bool(todo)

    # ------------------------------------------------------------------------------- run

    def run(self) -> dict:
        cfg = self.cfg
        progress = Progress({"cgdm": len(self.files) * len(cfg.levels),
                             "anchor": len(self.files) * len(self.anchors)}, quiet=cfg.quiet)
        for note in self.notes:
            progress.message(f"note: {note}")
        for path in self.files:
            image, img, ref, unreadable = path.name, None, None, False
            tasks = [("cgdm", lv, f"{image} q{lv}") for lv in cfg.levels]
            tasks += [("anchor", a, f"{image} {a.name}") for a in self.anchors]
            for kind, what, label in tasks:
                if img is None and not unreadable and self._has_work(image, kind, what):
                    try:
                        img = load_reference(path, cfg.downscale)
                    except (OSError, ValueError) as e:  # one bad file must not end a long run
                        unreadable = True
                        self.notes.append(f"{image} skipped: not a readable image ({e})")
                        progress.message(f"note: {self.notes[-1]}")
                    else:
                        ref = to_rgb_array(img)
                t0 = time.perf_counter()
                if kind == "cgdm":
                    worked = img is not None and self.run_cgdm(image, img, ref, what)
                else:
                    worked = img is not None and self.run_anchor(image, img, ref, what)
                progress.step(kind, time.perf_counter() - t0 if worked else None, label)
            if img is not None:
                self.write_reports()
        progress.close()
        if not cfg.keep_files:
            shutil.rmtree(self.files_dir, ignore_errors=True)
        return self.write_reports()

    def _has_work(self, image: str, kind: str, what) -> bool:
        if kind == "cgdm":
            return any(self.pending(image, c, [what]) for c, _, _ in self.cgdm_codecs())
        return bool(self.pending(image, what.name, self.sweep(what)))

    def write_reports(self) -> dict:
        from .plot import rd_plot
        from .report import markdown, summary

        rows = list(self.store.rows)
        info = {"command": self.cfg.command,
                "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                "run": self.identity, "notes": self.notes,
                "ablations": {f"{CGDM}:{n}": ABLATIONS[n].about for n in self.cfg.ablations},
                "anchors": {a.name: {"format": a.pil_format, "options": dict(a.options),
                                     "sweep": list(self.sweep(a))} for a in self.anchors},
                "metrics": self.scorer.names, "environment": environment(str(self.dev))}
        result = summary(rows, info)
        write_csv(self.cfg.outdir / "results.csv", rows)
        write_text_atomic(self.cfg.outdir / "summary.json", json.dumps(json_safe(result), indent=1) + "\n")
        write_text_atomic(self.cfg.outdir / "results.md", markdown(result))
        if rows:
            rd_plot(result, self.cfg.outdir / "rd.png")
        return result


def run_eval(cfg: EvalConfig) -> dict:
    """Run (or resume) an evaluation; returns the summary that was written to OUTDIR."""
    return Runner(cfg).run()
