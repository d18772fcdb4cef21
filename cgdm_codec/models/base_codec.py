"""The base codec: a variable-rate mean-scale hyperprior built from CompressAI's parts.

Data flow (q is the zero-based quality index):
    x -> g_a -> y -> gain[q] -> quantise -> y_hat -> /gain[q] -> g_s -> x_tilde
                y -> h_a -> z -> hyper_gain[q] -> quantise -> z_hat -> /hyper_gain[q] -> h_s
                                                                      -> (means, scales) * gain[q]

The entropy-parameter path (h_s and the gains) runs on the CPU in float64 and is rounded to a
fixed grid, so the indices the range coder sees are identical on every machine, device and
thread count; only the synthesis transform g_s may run on an accelerator.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from ..config import BaseCodecConfig
from ..layers import GainUnit
from ..layers.conv import conv, deconv
from .compressai_parts import GDN, EntropyBottleneck, GaussianConditional
from .tiled import run_tiled

SCALES_MIN, SCALES_MAX, SCALES_LEVELS = 0.11, 256.0, 64


def scale_table() -> torch.Tensor:
    """Log-spaced Gaussian scales for which CDF tables are built (as in Minnen et al. 2018)."""
    import math

    return torch.exp(torch.linspace(math.log(SCALES_MIN), math.log(SCALES_MAX), SCALES_LEVELS))


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """Round in the forward pass, identity in the backward pass."""
    return (torch.round(x) - x).detach() + x


@dataclass
class BaseForward:
    x_hat: torch.Tensor
    y_likelihoods: torch.Tensor
    z_likelihoods: torch.Tensor


@dataclass
class BaseStreams:
    """Entropy-coded output of the base codec for one image."""

    y: bytes
    z: bytes
    latent_shape: tuple[int, int]  # (h, w) of z


class VariableRateHyperprior(nn.Module):
    def __init__(self, cfg: BaseCodecConfig) -> None:
        super().__init__()
        self.cfg = cfg
        N, M, L = cfg.N, cfg.M, cfg.num_levels
        self.g_a = nn.Sequential(
            conv(3, N), GDN(N), conv(N, N), GDN(N), conv(N, N), GDN(N), conv(N, M)
        )
        self.g_s = nn.Sequential(
            deconv(M, N), GDN(N, inverse=True), deconv(N, N), GDN(N, inverse=True),
            deconv(N, N), GDN(N, inverse=True), deconv(N, 3),
        )
        self.h_a = nn.Sequential(
            conv(M, N, stride=1, kernel_size=3), nn.LeakyReLU(inplace=True),
            conv(N, N), nn.LeakyReLU(inplace=True), conv(N, N),
        )
        self.h_s = nn.Sequential(
            deconv(N, M), nn.LeakyReLU(inplace=True),
            deconv(M, M * 3 // 2), nn.LeakyReLU(inplace=True),
            conv(M * 3 // 2, M * 2, stride=1, kernel_size=3),
        )
        self.gain = GainUnit(L, M)
        self.hyper_gain = GainUnit(L, N)
        self.entropy_bottleneck = EntropyBottleneck(N)
        self.gaussian_conditional = GaussianConditional(None)
        self._exact: dict[str, nn.Module] = {}  # a plain dict: not a registered submodule

    # The model pads inputs to this multiple (four stride-2 analysis stages, two hyper stages).
    MULTIPLE = 64
    # Tiles for large images, in latent pixels (x16 in image pixels); the margin exceeds the
    # receptive field of g_a and g_s (about 2 and 3 latent pixels).
    TILE_LATENT, MARGIN_LATENT = 64, 4
    # Tiles for the float64 h_s, in hyper-latent (z) pixels. One y pixel depends on z within
    # +-1.75 z pixels (two 5x5 stride-2 deconvolutions and a 3x3 convolution), so a margin
    # of 3 makes the stitched result bit-identical to the untiled one (tested). Untiled,
    # the float64 im2col buffers of a 24 MP image take ~2.4 GB; tiled, ~0.6 GB.
    HS_TILE, HS_MARGIN = 32, 3

    def place(self, device: torch.device) -> "VariableRateHyperprior":
        """Put the transforms on ``device``; the entropy models always stay on the CPU."""
        for m in (self.g_a, self.h_a, self.g_s):
            m.to(device)
        return self

    # ----------------------------------------------------------------- training
    def forward(self, x: torch.Tensor, q_index: torch.Tensor) -> BaseForward:
        """Differentiable pass with additive-noise rate proxies and straight-through rounding."""
        y = self.g_a(x).float()
        z = self.h_a(y).float()
        zs = self.hyper_gain(z, q_index)
        zs_tilde, z_likelihoods = self.entropy_bottleneck(zs)
        z_tilde = self.hyper_gain.inverse(zs_tilde, q_index)
        params = self.h_s(z_tilde).float()
        scales, means = params.chunk(2, dim=1)
        g = self.gain.gains(q_index)
        ys, scales_s, means_s = y * g, scales * g, means * g
        _, y_likelihoods = self.gaussian_conditional(ys, scales_s, means=means_s)
        ys_hat = ste_round(ys - means_s) + means_s
        x_hat = self.g_s(ys_hat / g)
        return BaseForward(x_hat.float(), y_likelihoods, z_likelihoods)

    @classmethod
    def from_weights(cls, path) -> "VariableRateHyperprior":
        """The model a weights file describes (config from the manifest beside it), in eval mode."""
        from ..weights import load_tensors, read_manifest

        model = cls(BaseCodecConfig.from_dict(read_manifest(path)["config"]))
        return model.load_exported(load_tensors(path)).eval()

    def load_exported(self, state: dict[str, torch.Tensor]) -> "VariableRateHyperprior":
        """Load shipped weights, whose CDF tables have sizes an empty model cannot know."""
        for name, module in self.named_modules():
            for buf in ("_quantized_cdf", "_offset", "_cdf_length", "scale_table"):
                key = f"{name}.{buf}" if name else buf
                if key in state and hasattr(module, buf):
                    getattr(module, buf).resize_(state[key].shape)
        self.load_state_dict(state, strict=True)
        self._exact.clear()
        return self

    def aux_loss(self) -> torch.Tensor:
        return self.entropy_bottleneck.loss()

    # ----------------------------------------------------------------- coding
    def update_tables(self) -> None:
        """Build the range coder's CDF tables; call once after training, before export."""
        self.gaussian_conditional.update_scale_table(scale_table(), force=True)
        self.entropy_bottleneck.update(force=True)

    def _exact_h_s(self) -> nn.Module:
        if "h_s" not in self._exact:
            self._exact["h_s"] = copy.deepcopy(self.h_s).to("cpu", torch.float64).eval()
        return self._exact["h_s"]

    def entropy_parameters(
        self, zs_hat: torch.Tensor, q_index: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(scales, means) of the scaled latent, computed reproducibly on the CPU."""
        grid = float(2 ** self.cfg.param_grid_bits)
        with torch.no_grad():
            hg = self.hyper_gain.log_gain.detach().to("cpu", torch.float64)[q_index].exp()
            g = self.gain.log_gain.detach().to("cpu", torch.float64)[q_index].exp()
            z = zs_hat.to("cpu", torch.float64) / hg[None, :, None, None]
            with torch.autocast("cpu", enabled=False):
                params = run_tiled(self._exact_h_s(), z, tile=self.HS_TILE,
                                   margin=self.HS_MARGIN, scale=4)
            del z
            # In place (params is ours): the same float64 operations as out of place.
            scales, means = params.chunk(2, dim=1)
            scales.mul_(g[None, :, None, None]).mul_(grid).round_().div_(grid)
            means.mul_(g[None, :, None, None]).mul_(grid).round_().div_(grid)
        return scales.float(), means.float()

    def analysis(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(y, z) for a padded image batch; device and precision are the caller's choice."""
        y = run_tiled(lambda t: self.g_a(t).float(), x, tile=16 * self.TILE_LATENT,
                      margin=16 * self.MARGIN_LATENT, scale=1 / 16)
        z = self.h_a(y).float()
        return y, z

    def compress(self, x: torch.Tensor, q_index: int) -> BaseStreams:
        """Encode one padded image (1, 3, H, W), values in [0, 1]."""
        if x.shape[0] != 1:
            raise ValueError("compress takes a single image")
        with torch.no_grad():
            y, z = self.analysis(x)
            y, z = y.cpu().float(), z.cpu().float()
            qi = torch.tensor([q_index])
            zs = self.hyper_gain(z, qi)
            z_strings = self.entropy_bottleneck.compress(zs)
            zs_hat = self.entropy_bottleneck.decompress(z_strings, zs.shape[-2:])
            scales, means = self.entropy_parameters(zs_hat, q_index)
            ys = self.gain(y, qi)
            indexes = self.gaussian_conditional.build_indexes(scales)
            y_strings = self.gaussian_conditional.compress(ys, indexes, means=means)
        return BaseStreams(y=y_strings[0], z=z_strings[0], latent_shape=tuple(zs.shape[-2:]))

    def decompress_latent(self, streams: BaseStreams, q_index: int) -> torch.Tensor:
        """The dequantised latent y_hat (CPU, float32), ready for the synthesis transform."""
        with torch.no_grad():
            zs_hat = self.entropy_bottleneck.decompress([streams.z], streams.latent_shape)
            scales, means = self.entropy_parameters(zs_hat, q_index)
            indexes = self.gaussian_conditional.build_indexes(scales)
            ys_hat = self.gaussian_conditional.decompress([streams.y], indexes, means=means)
            g = self.gain.log_gain.detach().to("cpu", torch.float64)[q_index].exp()
            return (ys_hat.double() / g[None, :, None, None]).float()

    def synthesis(self, y_hat: torch.Tensor) -> torch.Tensor:
        x = run_tiled(lambda t: self.g_s(t).float(), y_hat, tile=self.TILE_LATENT,
                      margin=self.MARGIN_LATENT, scale=16)
        return x.clamp_(0.0, 1.0)  # in place: x is ours, and image-sized
