"""Train the CGDM decoder: ``python -m cgdm_lab.train.cgdm --data DIR --base W.safetensors``.

Two stages, as in the paper, each in its own output folder:
  coarse  x0-prediction at a random timestep:  MSE(x0_hat, x) + lambda * R
  fine    run the fixed-step DDIM and constrain the sample:
          lambda_d * L1 + lambda_p * perceptual + lambda_f * R   (start it with --init)
R is the syntax rate in bits per pixel. The paper's lambda values (100, 20) are for loss
units it does not state; the defaults here put syntax bits at roughly the base codec's
rate-distortion slope at its middle qualities.

The base codec is frozen; every sample draws its own quality level, so one model serves
all six. With ``--base av1`` the pairs come from whole-image AV1 decodes
(``train.av1_pairs``) and the network is conditioned on each decode's AV1 quantiser. Resumes from ``OUT/last.pt``; keeps an EMA of the weights, which ``--export``
writes as safetensors + manifest. Runs on CUDA when present, and under ``torchrun`` with
DistributedDataParallel when WORLD_SIZE > 1.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from cgdm_codec.diffusion_config import CgdmConfig
from cgdm_codec.models.cgdm import Cgdm, export_weights
from cgdm_codec.models.syntax import quantize
from cgdm_codec.sampling.ddim import DDIMScheduler
from cgdm_codec.sampling.unrolled import unrolled_sample
from .av1_pairs import PAIR_SPEED
from .common import CsvLog, Timer, autocast_for, pick_device, save_checkpoint
from .data import build_pool, sample_crops
from cgdm_codec.quality.objective import fine_loss

if TYPE_CHECKING:
    from cgdm_codec.base.interface import BaseRecord
    from cgdm_codec.models.base_codec import VariableRateHyperprior

CHANNELS_LAST = torch.channels_last
LOG_FIELDS = ["step", "seconds", "loss", "dist", "l1", "perceptual", "haarpsi", "bpp", "lr", "feature", "adv", "critic",
              "val_psnr", "val_gain", "val_period2", "val_flat", "cpu_seconds", "teacher"]


def load_base(path: str | Path, device: torch.device) -> VariableRateHyperprior:
    """The frozen base codec."""
    from cgdm_codec.models.base_codec import VariableRateHyperprior

    base = VariableRateHyperprior.from_weights(path)
    return base.to(device, memory_format=CHANNELS_LAST).eval().requires_grad_(False)


@torch.no_grad()
def base_reconstruction(base: VariableRateHyperprior, x: torch.Tensor, q_index: torch.Tensor,
                        precision: str) -> torch.Tensor:
    """x~ for a batch in [0, 1]: the base codec's rounded reconstruction, float32."""
    with autocast_for(x.device, precision):
        return base(x, q_index).x_hat.float().clamp(0.0, 1.0).contiguous(memory_format=CHANNELS_LAST)


class StageLoss(nn.Module):
    """The stage's loss as a module, so DistributedDataParallel can wrap it (not the
    encoder's ``quality.objective.Objective``, whose fine-stage loss it computes)."""

    def __init__(self, model: Cgdm, stage: str, args: argparse.Namespace) -> None:
        super().__init__()
        self.model, self.stage, self.args = model, stage, args
        self.scheduler = DDIMScheduler.from_config(model.cfg.sampler)
        self.features = self.critic = None
        self.teacher: Cgdm | None = None
        if args.teacher:
            self.teacher = Cgdm.from_weights(args.teacher).eval().requires_grad_(False)
        if args.realism:
            from .realism import FeatureDistance, PatchDiscriminator

            self.features = FeatureDistance()
            self.critic = PatchDiscriminator()

    def forward(self, x01: torch.Tensor, xt01: torch.Tensor, q: torch.Tensor, t: torch.Tensor,
                noise: torch.Tensor, u: torch.Tensor, realism: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        m, a = self.model, self.args
        x, xt = x01 * 2 - 1, xt01 * 2 - 1
        values = m.syntax(x, xt)
        pixels = x.shape[-2] * x.shape[-1]
        bits = m.prior.bits(values + u)
        bpp = bits / pixels
        rate = bpp
        if a.syntax_bits_target is not None:
            # A rate target instead of a pure penalty: the generator pays only for bits above
            # the target, so the syntax is not pushed to all-zero symbols (the shipped
            # hyperprior model's generator collapsed); the prior still learns the symbols'
            # distribution from the detached values.
            prior_bpp = m.prior.bits(values.detach() + u) / pixels
            rate = prior_bpp + F.relu(bits - a.syntax_bits_target) / pixels
        if self.teacher is not None:
            # distillation: the syntax is the teacher's, frozen, and reaches both networks as
            # the decoder sees it (rounded symbols)
            s_hat = quantize(values.detach(), m.cfg.syntax.symbol_range, straight_through=False)
        elif a.syntax_proxy == "noise":
            # The U-Net sees the rate model's noisy values. With rounding (even straight-
            # through) values inside +-0.5 reach it as exact zeros, so its syntax weights get
            # no gradient and the generator no reason to leave zero: the syntax collapsed.
            s_hat = (values + u).clamp(-m.cfg.syntax.symbol_range, m.cfg.syntax.symbol_range)
        else:
            s_hat = quantize(values, m.cfg.syntax.symbol_range, straight_through=True)
        if self.stage == "coarse":
            x0 = m.unet(self.scheduler.add_noise(x, noise, t), t, xt, s_hat, q)
            dist = (x0 - x).pow(2).flatten(1).mean(1)
            loss = (dist + a.lambda_rate * rate).mean()
            return loss, {"dist": dist.mean().detach(), "bpp": bpp.mean().detach()}
        steps = a.sample_steps or m.cfg.sampler.steps
        sample = unrolled_sample(m.unet, self.scheduler, noise, xt, s_hat, q, steps, a.grad_steps,
                                 realism=realism)
        if realism is None:
            loss, parts = fine_loss((sample + 1) / 2, x01, rate, a.lambda_d, a.lambda_p, a.lambda_rate,
                                    a.lambda_h)
            if self.teacher is not None:
                with torch.no_grad():
                    target = unrolled_sample(self.teacher.unet, self.scheduler, noise, xt, s_hat, q, steps)
                gap = (sample - target).abs().mean() / 2  # L1 on the [0, 1] scale, as lambda_d's
                loss = loss + a.lambda_teacher * gap
                parts["teacher"] = gap.detach()
        else:
            loss, parts = self.realism_loss(sample, x, xt, rate, realism)
            self.last_sample = sample.detach()  # what the critic learns from next
        parts["bpp"] = bpp.mean().detach()
        return loss, parts

    def realism_loss(self, sample: torch.Tensor, x: torch.Tensor, xt: torch.Tensor, rate: torch.Tensor,
                     realism: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Per image: (1 - r/2) * the fidelity loss + r * (deep-feature distance + adversarial).

        At r = 0 this is the fine stage's loss; toward r = 1 the exact-pixel terms weaken and
        the terms that reward plausible texture take over. Images in [-1, 1].
        """
        from cgdm_codec.quality.objective import fidelity_torch
        from .realism import generator_adversarial

        a = self.args
        with torch.autocast(sample.device.type, enabled=False):
            x_hat01, x01 = (sample.float() + 1) / 2, (x.float() + 1) / 2
            fidelity, parts = fidelity_torch(x_hat01, x01, a.lambda_d, a.lambda_p, a.lambda_h)
        feat = self.features(sample, x).float()
        adv = generator_adversarial(self.critic(sample, xt).float())
        per_image = (1 - 0.5 * realism) * fidelity + realism * (a.lambda_feat * feat + a.lambda_adv * adv)
        loss = (per_image + a.lambda_rate * rate).mean()
        return loss, {**parts, "feature": feat.mean().detach(), "adv": adv.mean().detach()}


def critic_step(objective: StageLoss, opt: torch.optim.Optimizer, x01: torch.Tensor, xt01: torch.Tensor,
                realism: torch.Tensor) -> torch.Tensor:
    """One update of the patch critic on real images against the decodes just made.

    Only decodes made at a realism above 0 count as fakes: at 0 the fidelity loss alone rules.
    """
    from .realism import discriminator_loss

    critic = objective.critic.requires_grad_(True)
    fake, keep = objective.last_sample, realism > 0
    x, xt = x01 * 2 - 1, xt01 * 2 - 1
    if not bool(keep.any()):
        return torch.zeros((), device=x.device)
    loss = discriminator_loss(critic(x[keep], xt[keep]).float(), critic(fake[keep].float(), xt[keep]).float())
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()


@torch.no_grad()
def zero_unet_syntax(model: Cgdm) -> None:
    """Zero the U-Net's weights on its syntax inputs: it decodes as if every symbol were 0."""
    s = model.cfg.syntax.length
    model.unet.cond_mlp[0].weight[:, -s:].zero_()


@torch.no_grad()
def restart_syntax(model: Cgdm, x01: torch.Tensor, xt01: torch.Tensor, std: float) -> float:
    """Give the syntax a fresh start on top of trained weights: the U-Net's syntax inputs get
    zero weights (so the decode starts as it was) and the generator's last layer is scaled
    and shifted so that on this batch each coordinate has mean 0 and, on average, standard
    deviation ``std`` across images: values far beyond the rounding step, so the U-Net can
    learn from them at once. Returns the scale applied."""
    zero_unet_syntax(model)
    last = model.syntax.mlp[-1]
    values = model.syntax(x01 * 2 - 1, xt01 * 2 - 1)
    # the spread across images, per coordinate: a constant offset per coordinate carries no
    # information (it only costs bits), so it must not count towards the target std
    spread = float(values.std(dim=0).mean())
    scale = std / max(spread, 1e-8)
    last.weight.mul_(scale)
    last.bias.copy_(values.mean(dim=0).sub(last.bias).mul(-scale))
    return scale


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for pe, p in zip(ema.parameters(), model.parameters()):
        pe.lerp_(p, 1.0 - decay)
    for be, b in zip(ema.buffers(), model.buffers()):
        be.copy_(b)


def learning_rate(step: int, steps: int, lr: float, lr_final: float | None) -> float:
    """``lr`` throughout, or with ``lr_final`` a cosine from ``lr`` at step 0 to ``lr_final``
    at ``steps``: a run resumed with a new ``--steps`` and ``--lr-final`` joins the curve
    where its step lies (a plateau at a constant rate is often the rate's noise floor)."""
    if lr_final is None:
        return lr
    return lr_final + (lr - lr_final) * 0.5 * (1.0 + math.cos(math.pi * min(step, steps) / steps))


def ema_decay(step: int, decay: float) -> float:
    """Warm-up so that short runs export useful weights instead of the initialisation."""
    return min(decay, (1 + step) / (10 + step))


def read_init(path: str | Path) -> tuple[CgdmConfig, dict[str, torch.Tensor]]:
    """Config and EMA weights of a checkpoint (.pt) or of exported weights (.safetensors)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from cgdm_codec.weights import load_tensors, read_manifest

        return CgdmConfig.from_dict(read_manifest(path)["config"]), load_tensors(path)
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    return CgdmConfig.from_dict(ckpt["config"]), ckpt.get("ema") or ckpt["model"]


def export(model: Cgdm, path: str | Path, **meta: Any) -> dict[str, Any]:
    """Write the (EMA) weights with coding tables and a manifest; returns the manifest."""
    model = copy.deepcopy(model).cpu().float().eval()
    return export_weights(model, path, **meta)


#: The network preset for a base whose decodes condition the diffusion stage this way.
PRESET_FOR_CONDITION = {"level": "small", "qindex": "small-av1"}


def pairs_base(base: str | None) -> "BaseRecord | None":
    """The registered base without a network that ``--base`` names, else None.

    Such a base trains from pairs of whole-image decodes (``train.av1_pairs``); otherwise
    ``--base`` is the path of the learned base's weights, run on every crop.
    """
    from cgdm_codec.base.registry import BY_NAME

    record = BY_NAME.get(base or "")
    return record if record is not None and not record.network else None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="", help="folder of training photos (searched recursively)")
    ap.add_argument("--base", default=None,
                    help="hyperprior base-codec weights (.safetensors), kept frozen; or the name of a "
                         "registered base without a network (av1) for pairs of whole-image decodes "
                         "(train.av1_pairs)")
    ap.add_argument("--av1-pairs-per-image", type=int, default=2,
                    help="AV1 base: qualities drawn per pool image")
    ap.add_argument("--syntax-bits-target", type=float, default=None,
                    help="syntax bits per crop the generator may spend for free (rate target)")
    ap.add_argument("--syntax-proxy", choices=["round", "noise"], default="round",
                    help="what the U-Net sees of the syntax in training: straight-through "
                         "rounded values, or values plus the rate model's uniform noise")
    ap.add_argument("--syntax-restart", type=float, default=None, metavar="STD",
                    help="with --init: zero the U-Net's syntax weights and scale the generator's "
                         "values to this standard deviation on the first batch (restart_syntax)")
    ap.add_argument("--syntax-statistics", action="store_true",
                    help="with --init: a new syntax generator that also sees band statistics of "
                         "x and x~ (SyntaxConfig.statistics); the other weights come from --init")
    ap.add_argument("--nyquist-null", action="store_true",
                    help="the head's output passes the fixed Nyquist-null filter (layers.nyquist); with "
                         "--init from weights without it, every tensor is taken as it is")
    ap.add_argument("--init-unet-only", action="store_true",
                    help="with --init: take only the U-Net weights whose shapes match; the "
                         "syntax generator and prior start fresh")
    ap.add_argument("--av1-speed", type=int, default=PAIR_SPEED, choices=range(0, 11), metavar="0..10",
                    help=f"--base av1 without --pack: libaom speed of the training pairs [default: "
                         f"{PAIR_SPEED}, what every shipped generation was trained on; the codec's "
                         "default effort encodes at 3 up to 4.2 MP]")
    ap.add_argument("--pack", default=None,
                    help="with --base av1: read the pairs from a pack (train.pack) instead of --data")
    ap.add_argument("--realism", action="store_true",
                    help="fine stage: a network that also takes a realism setting, trained with the "
                         "realism objective (train.realism); from --init weights without it, the new "
                         "inputs start at zero, so realism 0 decodes as the init did")
    ap.add_argument("--realism-zero-prob", type=float, default=0.3,
                    help="share of samples trained at realism 0 (the fidelity end)")
    ap.add_argument("--lambda-feat", type=float, default=1.0, help="realism: deep-feature distance weight")
    ap.add_argument("--lambda-adv", type=float, default=0.05, help="realism: adversarial weight")
    ap.add_argument("--critic-lr", type=float, default=1e-4)
    ap.add_argument("--teacher", default=None, metavar="WEIGHTS",
                    help="fine stage: distil from these weights (train.slim cuts the start from them); "
                         "the syntax generator and prior stay frozen, as the teacher's")
    ap.add_argument("--lambda-teacher", type=float, default=1.0,
                    help="weight of the L1 distance to the teacher's decode")
    ap.add_argument("--time-limit", type=float, default=None,
                    help="stop (checkpoint and export) after this many seconds of this run")
    ap.add_argument("--cpu-limit", type=float, default=None,
                    help="stop (checkpoint and export) once this process has used this many CPU seconds "
                         "since the training loop began, counting earlier runs of the same --out: an equal "
                         "budget for runs that share a machine")
    ap.add_argument("--arch", choices=["unet", "restoration"], default="unet",
                    help="a fresh network's architecture (with --init, the init's): the consistency-guided "
                         "U-Net, or the one-pass restoration network (models.restoration; docs/diffusion.md, "
                         "'One-pass candidates')")
    ap.add_argument("--stage", choices=["coarse", "fine"], default="coarse")
    ap.add_argument("--out", default="checkpoints/cgdm", help="checkpoint and log folder")
    ap.add_argument("--preset", choices=["small", "small-av1", "paper", "tiny", "tiny-av1"], default=None,
                    help="network (default: small, or small-av1 with --base av1)")
    ap.add_argument("--init", default=None, help="start from a .pt checkpoint or .safetensors weights")
    ap.add_argument("--export", default=None, help="write EMA weights here (.safetensors) at the end")
    ap.add_argument("--steps", type=int, default=40_000, help="stop at this global step")
    ap.add_argument("--batch", type=int, default=None, help="default: 8 coarse, 1 fine")
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--lr-final", type=float, default=None,
                    help="decay the learning rate along a cosine from --lr at step 0 to this at --steps")
    ap.add_argument("--clip", type=float, default=0.5)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--lambda-rate", type=float, default=None,
                    help="weight of the syntax bpp (default: 0.02 coarse, 0.05 fine)")
    ap.add_argument("--lambda-d", type=float, default=1.0)
    ap.add_argument("--lambda-p", type=float, default=0.3)
    ap.add_argument("--lambda-h", type=float, default=0.0,
                    help="fine stage: weight of 1 - HaarPSI in the fidelity loss (0: not used)")
    ap.add_argument("--sample-steps", type=int, default=None, help="fine stage DDIM steps")
    ap.add_argument("--grad-steps", type=int, default=1, help="fine stage: backprop through the last k")
    ap.add_argument("--reload-base", action="store_true",
                    help="re-read --base whenever the file changes (train beside a base-codec run)")
    ap.add_argument("--ckpt-every", type=int, default=250)
    ap.add_argument("--val", default=None, metavar="DIR",
                    help="held-out photos: at every checkpoint the EMA weights decode their AV1-coded "
                         "central crops, and log.csv gets PSNR, the gain over AV1, the period-2 ratio and "
                         "flat-area noise (train.validation)")
    ap.add_argument("--val-limit", type=int, default=None, help="use only the first N photos of --val")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.base is None:
        ap.error("--base is required (weights of the hyperprior, or 'av1')")
    pairs = pairs_base(args.base)
    if not args.data and not (args.pack and pairs is not None):
        ap.error("--data is required (or --pack with --base av1)")
    if args.pack and (pairs is None or pairs.name != "av1"):
        ap.error("--pack holds AV1 pairs (train.pack): give --base av1")
    if args.realism and args.stage != "fine":
        ap.error("--realism trains the fine stage")
    if args.teacher and (args.stage != "fine" or args.realism):
        ap.error("--teacher distils the fine stage's fidelity decode")
    if args.preset is None:
        args.preset = PRESET_FOR_CONDITION[pairs.condition] if pairs is not None else "small"
    if args.batch is None:
        args.batch = 8 if args.stage == "coarse" else 1
    if args.lambda_rate is None:
        args.lambda_rate = 0.02 if args.stage == "coarse" else 0.05
    return args


def setup_distributed(device: torch.device) -> tuple[int, int, torch.device]:
    """(rank, world size, device) under torchrun; (0, 1, device) otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, device
    import torch.distributed as dist

    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    return dist.get_rank(), world, device


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    rank, world, device = setup_distributed(pick_device(args.device))
    if args.threads:  # after pick_device, whose first call sets one thread per granted core
        torch.set_num_threads(args.threads)
    if device.type == "cuda":  # training need not repeat bit for bit; let cuDNN pick fast kernels
        torch.backends.cudnn.deterministic = False
        torch.backends.cudnn.benchmark = True
    out = Path(args.out)
    ckpt_path = out / "last.pt"
    step, seconds = 0, 0.0
    gen = torch.Generator().manual_seed(args.seed + 1009 * rank)
    state = torch.load(ckpt_path, map_location="cpu", weights_only=False) if ckpt_path.exists() else None
    init = read_init(args.init) if args.init and state is None else None
    if state is not None:
        cfg = CgdmConfig.from_dict(state["config"])
    elif init and not args.init_unet_only:
        cfg = init[0]
    else:
        cfg = CgdmConfig.preset(args.preset)
    fresh_generator = state is None and init is not None and args.syntax_statistics
    if fresh_generator:
        cfg = replace(cfg, syntax=replace(cfg.syntax, statistics=True))
    if state is None and args.sample_steps:  # the weights are trained for, and ship with, this sampler
        cfg = replace(cfg, sampler=replace(cfg.sampler, steps=args.sample_steps))
    if state is None and init is None and args.arch == "restoration":
        from cgdm_codec.diffusion_config import RestorationConfig

        cfg = replace(cfg, restoration=RestorationConfig())
    if state is None and args.nyquist_null:
        cfg = replace(cfg, unet=replace(cfg.unet, nyquist_null=True))
    grow_realism = state is None and args.realism and not cfg.unet.realism
    if grow_realism:
        cfg = replace(cfg, unet=replace(cfg.unet, realism=True))
    model = Cgdm(cfg)
    if state is not None:
        if state["stage"] != args.stage:
            raise SystemExit(f"{ckpt_path} is a {state['stage']} checkpoint; use another --out "
                             f"and --init {ckpt_path} to start the {args.stage} stage")
        model.load_state_dict(state["model"])
    elif init and args.init_unet_only:
        own = model.state_dict()
        taken = {k: v for k, v in init[1].items()
                 if k.startswith("unet.") and k in own and own[k].shape == v.shape}
        model.load_state_dict(taken, strict=False)
        print(f"initialised {len(taken)} of {sum(k.startswith('unet.') for k in own)} U-Net tensors "
              f"from {args.init}", flush=True)
    elif fresh_generator:
        missing, _ = model.load_state_dict(
            {k: v for k, v in init[1].items() if not k.startswith("syntax.")}, strict=False)
        assert all(k.startswith("syntax.") for k in missing), missing
        print(f"syntax generator with band statistics starts fresh; the rest from {args.init}", flush=True)
    elif init and grow_realism:
        tensors = dict(init[1])
        key = "unet.cond_mlp.0.weight"
        old = tensors[key]
        tensors[key] = torch.cat([old, old.new_zeros(old.shape[0], cfg.unet.inner)], dim=1)
        model.load_state_dict(tensors)
        print(f"realism input added (zero weights) to the network from {args.init}", flush=True)
    elif init:
        model.load_state_dict(init[1])
    if args.teacher:  # the syntax the student is trained under is the teacher's
        model.syntax.requires_grad_(False)
        model.prior.requires_grad_(False)
    ema = copy.deepcopy(model).requires_grad_(False)
    if state is not None:
        ema.load_state_dict(state["ema"])
    model.to(device, memory_format=CHANNELS_LAST).train()
    ema.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.999))
    if state is not None:
        opt.load_state_dict(state["opt"])
        step, seconds = state["step"], state["seconds"]
        if rank == 0:
            gen.set_state(state["gen"])
        else:
            gen.manual_seed(args.seed + 1009 * rank + step)
        print(f"resumed from {ckpt_path} at step {step}", flush=True)
    objective: nn.Module = StageLoss(model, args.stage, args)
    if objective.teacher is not None:
        objective.teacher.to(device)
    critic_opt = None
    if args.realism:
        objective.features.to(device)
        objective.critic.to(device)
        critic_opt = torch.optim.Adam(objective.critic.parameters(), lr=args.critic_lr, betas=(0.5, 0.999))
        if state is not None and "critic" in state:
            objective.critic.load_state_dict(state["critic"])
            critic_opt.load_state_dict(state["critic_opt"])
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        objective = DistributedDataParallel(objective, device_ids=ids)

    pairs_record = pairs_base(args.base)
    from_pairs = pairs_record is not None  # x~ from whole-image decodes (any base without a network)
    if from_pairs:
        from .av1_pairs import build_pairs, sample_pair_crops

        if args.pack:
            from .pack import load_pack

            pairs = load_pack(args.pack)
        else:
            pairs = build_pairs(args.data, min_side=args.crop, per_image=args.av1_pairs_per_image,
                                base=pairs_record.name, speed=args.av1_speed)
        pool = pairs.decodes
    else:
        base = load_base(args.base, device)
        base_mtime = os.stat(args.base).st_mtime
        pool = build_pool(args.data, min_side=args.crop)
    if rank == 0:
        print(f"{len(pool)} training images, device {device}, world {world}, stage {args.stage}, "
              f"preset {cfg.unet}", flush=True)
    log = CsvLog(out / "log.csv", LOG_FIELDS) if rank == 0 else None
    valset = None
    if rank == 0 and args.val:
        from .validation import build_validation

        valset = build_validation(args.val, size=args.crop, limit=args.val_limit)
        print(f"validation: {len(valset.qindex)} AV1-coded crops of {args.val}", flush=True)

    def validation_row() -> dict[str, float]:
        if valset is None or args.stage != "fine":
            return {}
        from .validation import validate

        row = validate(ema.eval(), DDIMScheduler.from_config(cfg.sampler), valset,
                       args.sample_steps or cfg.sampler.steps)
        print(" ".join(f"{k}={v:.4g}" for k, v in row.items()), flush=True)
        return row

    if state is None and valset is not None:
        log.write(step=0, seconds=0.0, lr=args.lr, **validation_row())
    timer, acc, count = Timer(seconds), {}, 0
    num_q, num_t = cfg.unet.num_qualities, cfg.sampler.train_timesteps

    if state is None and args.syntax_restart is not None:
        if not from_pairs:
            raise SystemExit("--syntax-restart is implemented for pairs (--base av1) only")
        x, x_tilde, _ = sample_pair_crops(pairs, max(args.batch, 16), args.crop, torch.Generator().manual_seed(7))
        scale = restart_syntax(model, x.to(device), x_tilde.to(device), args.syntax_restart)
        ema.load_state_dict(model.state_dict())
        print(f"syntax restarted: generator output scaled by {scale:.3g}", flush=True)
    import time

    def checkpoint_state() -> dict[str, Any]:
        return {
            "model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
            "step": step, "seconds": timer.elapsed(), "cpu_seconds": cpu_used(), "gen": gen.get_state(),
            "stage": args.stage,
            "config": cfg.to_dict(), "data": str(args.pack or args.data), "base": str(args.base),
            **({"critic": objective.critic.state_dict(), "critic_opt": critic_opt.state_dict()}
               if critic_opt is not None else {}),
        }

    started = time.monotonic()
    cpu_offset, cpu_started = (state or {}).get("cpu_seconds", 0.0), time.process_time()

    def cpu_used() -> float:
        return cpu_offset + time.process_time() - cpu_started

    while step < args.steps:
        if args.cpu_limit is not None and cpu_used() > args.cpu_limit:
            print(f"CPU limit reached at step {step}", flush=True)
            if rank == 0:
                save_checkpoint(ckpt_path, checkpoint_state())
            break
        if args.time_limit is not None and time.monotonic() - started > args.time_limit:
            print(f"time limit reached at step {step}", flush=True)
            if rank == 0:
                save_checkpoint(ckpt_path, checkpoint_state())
            break
        if from_pairs:
            x, x_tilde, q = (v.to(device) for v in sample_pair_crops(pairs, args.batch, args.crop, gen))
            x = x.contiguous(memory_format=CHANNELS_LAST)
            x_tilde = x_tilde.contiguous(memory_format=CHANNELS_LAST)
        else:
            x = sample_crops(pool, args.batch, args.crop, gen).to(device).contiguous(memory_format=CHANNELS_LAST)
            q = torch.randint(num_q, (args.batch,), generator=gen).to(device)
        t = torch.randint(num_t, (args.batch,), generator=gen).to(device)
        noise = torch.randn(x.shape, generator=gen).to(device)
        u = (torch.rand(args.batch, cfg.syntax.length, generator=gen) - 0.5).to(device)
        realism = None
        if args.realism:
            from .realism import draw_realism

            realism = draw_realism(args.batch, args.realism_zero_prob, gen).to(device)
        if not from_pairs:
            x_tilde = base_reconstruction(base, x, q, args.precision)
        if critic_opt is not None:
            objective.critic.requires_grad_(False)
        with autocast_for(device, args.precision):
            loss, parts = objective(x, x_tilde, q, t, noise, u, realism)
        lr = learning_rate(step, args.steps, args.lr, args.lr_final)
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()
        if critic_opt is not None:
            parts["critic"] = critic_step(objective, critic_opt, x, x_tilde, realism)
        ema_update(ema, model, ema_decay(step, args.ema))
        step += 1
        for k, v in {"loss": loss.detach(), **parts}.items():
            acc[k] = acc.get(k, 0.0) + float(v)
        count += 1
        if rank == 0 and (step % args.ckpt_every == 0 or step == args.steps):
            row = {k: v / count for k, v in acc.items()}
            val = validation_row()
            log.write(step=step, seconds=round(timer.elapsed(), 1), lr=lr, **row, **val,
                      cpu_seconds=round(cpu_used(), 1))
            print(f"step {step} {timer.elapsed():.0f}s " + " ".join(f"{k}={v:.4g}" for k, v in row.items()),
                  flush=True)
            acc, count = {}, 0
            if not from_pairs and args.reload_base and os.stat(args.base).st_mtime != base_mtime:
                base_mtime = os.stat(args.base).st_mtime
                base = load_base(args.base, device)
                print(f"reloaded base codec from {args.base}", flush=True)
            save_checkpoint(ckpt_path, checkpoint_state())
    if rank == 0 and args.export:
        from cgdm_codec.weights import sha256_file

        base_meta = ({"base_codec": pairs_record.name} if from_pairs
                     else {"base_sha256": sha256_file(args.base)})
        manifest = export(ema, args.export, stage=args.stage, steps=step, data=str(args.data),
                          ema=args.ema, **base_meta)
        print(f"exported {args.export} (sha256 {manifest['sha256'][:12]})", flush=True)
    if world > 1:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
