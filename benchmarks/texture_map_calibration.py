import numpy as np, pathlib, sys
from cgdm_codec import pipeline
from cgdm_codec.container import parse
from cgdm_codec.evaluation.images import load_reference, to_rgb_array, list_images
from cgdm_codec.metrics import band_energy_ratios
root = pathlib.Path("../shared/datasets/train")
files = list_images(root/"bsds500")[::50][:6] + list_images(root/"urban100")[1::20][:4]
res = []
for p in files:
    img = load_reference(p, 1.0 if "bsds" in str(p) else 0.5)
    ref = to_rgb_array(img)
    for lv in (1, 2, 3):
        f = parse(pipeline.encode(img, lv, base="av1", device="cpu", texture_map=True))
        r1 = pipeline.decode_file(f, realism=1.0, device="cpu")
        res.append(band_energy_ratios(r1, ref))
        print(p.name[:16], lv, np.round(res[-1], 3), flush=True)
print("mean", np.mean(res, axis=0), "per level", [np.mean(res[i::3], axis=0).round(3) for i in range(3)])
