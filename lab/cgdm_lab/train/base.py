"""Train the variable-rate base codec: ``python -m cgdm_lab.train.base --data DIR``.

Every sample in a batch draws its own quality level, so all six rate points are trained at
once. Resumes from ``OUT/last.pt`` when it exists (or starts from ``--init`` weights).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from cgdm_codec.config import BaseCodecConfig
from cgdm_codec.models.base_codec import VariableRateHyperprior
from .common import CsvLog, Timer, autocast_for, pick_device, save_checkpoint
from .data import build_pool, list_images


def rd_loss(model: VariableRateHyperprior, x: torch.Tensor, q_index: torch.Tensor,
            lambdas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample lambda * 255^2 * MSE + bpp, averaged; also returns mean MSE and bpp."""
    out = model(x, q_index)
    num_pixels = x.shape[-2] * x.shape[-1]
    bits = (-torch.log2(out.y_likelihoods)).flatten(1).sum(1) + (
        -torch.log2(out.z_likelihoods)).flatten(1).sum(1)
    bpp = bits / num_pixels
    mse = (out.x_hat - x.float()).pow(2).flatten(1).mean(1)
    loss = (lambdas[q_index] * 255.0 ** 2 * mse + bpp).mean()
    return loss, mse.mean(), bpp.mean()


def load_val(root: str, count: int, size: int) -> torch.Tensor:
    from PIL import Image

    crops = []
    for p in list_images(root)[:count]:
        with Image.open(p) as im:
            im = im.convert("RGB")
            left, top = (im.width - size) // 2, (im.height - size) // 2
            crops.append(torch.frombuffer(bytearray(im.crop((left, top, left + size, top + size)).tobytes()),
                                          dtype=torch.uint8).view(size, size, 3).permute(2, 0, 1))
    return torch.stack(crops).float() / 255.0


@torch.no_grad()
def validate(model: VariableRateHyperprior, val: torch.Tensor, device: torch.device,
             precision: str) -> dict[str, float]:
    """Estimated bpp (from likelihoods) and PSNR per quality level on fixed crops."""
    model.eval()
    res: dict[str, float] = {}
    x = val.to(device).contiguous(memory_format=torch.channels_last)
    for q in range(model.cfg.num_levels):
        qi = torch.full((x.shape[0],), q, dtype=torch.long, device=device)
        with autocast_for(device, precision):
            out = model(x, qi)
        n = x.shape[-2] * x.shape[-1]
        bits = (-torch.log2(out.y_likelihoods)).flatten(1).sum(1) + (
            -torch.log2(out.z_likelihoods)).flatten(1).sum(1)
        mse = (out.x_hat.clamp(0, 1) - x).pow(2).flatten(1).mean(1)
        res[f"bpp_q{q + 1}"] = float((bits / n).mean())
        res[f"psnr_q{q + 1}"] = float((10 * torch.log10(1 / mse)).mean())
    model.train()
    return res


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="folder of training photos (searched recursively)")
    ap.add_argument("--val", default=None, help="folder of validation photos for the log")
    ap.add_argument("--out", default="checkpoints/base", help="checkpoint and log folder")
    ap.add_argument("--init", default=None, help="start from these .safetensors weights")
    ap.add_argument("--steps", type=int, default=100_000, help="stop at this global step")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--decay-start", type=int, default=None,
                    help="step from which the learning rate decays (cosine) to lr/10 at --steps")
    ap.add_argument("--ckpt-every", type=int, default=250)
    ap.add_argument("--val-every", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    device = pick_device(args.device)
    if args.threads:  # after pick_device, whose first call sets one thread per granted core
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    ckpt_path = out / "last.pt"
    cfg = BaseCodecConfig()
    model = VariableRateHyperprior(cfg)
    main_params = [p for n, p in model.named_parameters() if not n.endswith(".quantiles")]
    aux_params = [p for n, p in model.named_parameters() if n.endswith(".quantiles")]
    opt = torch.optim.Adam(main_params, lr=args.lr)
    aux_opt = torch.optim.Adam(aux_params, lr=1e-3)
    step, seconds = 0, 0.0
    gen = torch.Generator().manual_seed(args.seed)
    if ckpt_path.exists():
        state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"], strict=False)
        opt.load_state_dict(state["opt"])
        aux_opt.load_state_dict(state["aux_opt"])
        step, seconds = state["step"], state["seconds"]
        gen.set_state(state["gen"])
        print(f"resumed from {ckpt_path} at step {step}", flush=True)
    elif args.init:
        from cgdm_codec.weights import load_tensors

        model.load_exported(load_tensors(args.init))
        print(f"initialised from {args.init}", flush=True)
    model.to(device).to(memory_format=torch.channels_last).train()

    pool = build_pool(args.data, min_side=args.crop)
    print(f"{len(pool)} training images (full and half resolution), device {device}", flush=True)
    val = load_val(args.val, 8, 256) if args.val else None
    lambdas = torch.tensor(cfg.lambdas, device=device)
    log = CsvLog(out / "log.csv", ["step", "seconds", "loss", "mse", "bpp", "aux", "lr"]
                 + [f"{m}_q{q}" for q in range(1, 7) for m in ("bpp", "psnr")])
    timer = Timer(seconds)
    acc = {"loss": 0.0, "mse": 0.0, "bpp": 0.0, "aux": 0.0, "n": 0}

    def lr_at(s: int) -> float:
        if args.decay_start is None or s < args.decay_start:
            return args.lr
        t = min(1.0, (s - args.decay_start) / max(1, args.steps - args.decay_start))
        return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))

    while step < args.steps:
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        x = sample_crops_on(pool, args.batch, args.crop, gen, device)
        q_index = torch.randint(cfg.num_levels, (args.batch,), generator=gen).to(device)
        with autocast_for(device, args.precision):
            loss, mse, bpp = rd_loss(model, x, q_index, lambdas)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(main_params, 1.0)
        opt.step()
        aux = model.aux_loss()
        aux_opt.zero_grad(set_to_none=True)
        aux.backward()
        aux_opt.step()
        step += 1
        for k, v in (("loss", loss), ("mse", mse), ("bpp", bpp), ("aux", aux)):
            acc[k] += float(v.detach())
        acc["n"] += 1
        if step % args.ckpt_every == 0 or step == args.steps:
            n = acc.pop("n")
            row = {k: v / n for k, v in acc.items()}
            if val is not None and (step % args.val_every == 0 or step == args.steps):
                row.update(validate(model, val, device, args.precision))
            log.write(step=step, seconds=round(timer.elapsed(), 1), lr=lr_at(step), **row)
            print(f"step {step} {timer.elapsed():.0f}s " + " ".join(
                f"{k}={v:.4g}" for k, v in row.items()), flush=True)
            acc = {"loss": 0.0, "mse": 0.0, "bpp": 0.0, "aux": 0.0, "n": 0}
            save_checkpoint(ckpt_path, {
                "model": model.state_dict(), "opt": opt.state_dict(), "aux_opt": aux_opt.state_dict(),
                "step": step, "seconds": timer.elapsed(), "gen": gen.get_state(),
                "config": cfg.to_dict(), "data": str(args.data),
            })


def sample_crops_on(pool, batch, size, gen, device):
    from .data import sample_crops

    return sample_crops(pool, batch, size, gen).to(device).contiguous(memory_format=torch.channels_last)


if __name__ == "__main__":
    main()
