"""What libaom's thread count does to the AV1 base: BD-rate and encode time, 2 threads vs 1.

    python benchmarks/av1_threads.py ../shared/datasets/val/sunhays80 --every 10 --speed 4

Every N-th photo (halved, as for every sunhays80 figure) is encoded by ``base.av1.encode_avif``
at the six level qualities with 1 and with 2 threads; BD-rate of the 2-thread curve against
the 1-thread one (mean curves over the photos) on PSNR and MS-SSIM, and the summed encode
seconds of each.
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np
from PIL import Image

from cgdm_codec.base.av1 import LEVEL_QUALITY, encode_avif
from cgdm_lab.evaluation.bdrate import bd_rate
from cgdm_lab.evaluation.images import list_images, load_reference, to_rgb_array
from cgdm_codec.quality import ms_ssim, psnr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", type=Path)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--speed", type=int, default=4)
    args = ap.parse_args()
    files = list_images(args.images)[:: args.every]
    curves: dict[int, list[tuple[list[float], list[float], list[float]]]] = {1: [], 2: []}
    seconds = {1: 0.0, 2: 0.0}
    for path in files:
        ref = to_rgb_array(load_reference(path, 0.5))
        for threads in (1, 2):
            rates, ps, ms = [], [], []
            for q in LEVEL_QUALITY:
                t0 = time.perf_counter()
                data = encode_avif(ref, q, args.speed, threads=threads)
                seconds[threads] += time.perf_counter() - t0
                out = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
                rates.append(8 * len(data) / (ref.shape[0] * ref.shape[1]))
                ps.append(psnr(ref, out))
                ms.append(ms_ssim(ref, out))
            curves[threads].append((rates, ps, ms))
    mean = {t: [np.mean([c[k] for c in curves[t]], axis=0) for k in range(3)] for t in (1, 2)}
    for k, name in ((1, "PSNR"), (2, "MS-SSIM")):
        bd = bd_rate(mean[1][0], mean[1][k], mean[2][0], mean[2][k])
        print(f"{name}: 2 threads vs 1 thread {bd:+.2f} % BD-rate")
    print(f"encode time over {len(files)} photos x {len(LEVEL_QUALITY)} qualities: "
          f"1 thread {seconds[1]:.1f} s, 2 threads {seconds[2]:.1f} s")


if __name__ == "__main__":
    main()
