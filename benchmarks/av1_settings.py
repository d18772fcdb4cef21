"""AV1 base settings probe: BD-rate and encode time of Pillow AVIF speed / subsampling / tune choices.

    OMP_NUM_THREADS=1 python benchmarks/av1_settings.py   (8 sunhays80 photos, halved; docs/base-codec.md)
"""
from pathlib import Path
import io, glob, time, json, sys
import numpy as np
from PIL import Image
import torch; torch.set_num_threads(1)
from cgdm_codec.metrics import psnr, ms_ssim, haarpsi
from cgdm_codec.evaluation.bdrate import bd_rate
paths = sorted(glob.glob(str(Path(__file__).resolve().parents[2] / 'shared/datasets/val/sunhays80/*')))[:8]
imgs=[]
for p in paths:
    im=Image.open(p).convert('RGB'); im=im.resize((im.width//2, im.height//2), Image.Resampling.LANCZOS); imgs.append(im)
configs = {
 's6-420': dict(speed=6, subsampling='4:2:0'),
 's6-444': dict(speed=6, subsampling='4:4:4'),
 's6-420-iq': dict(speed=6, subsampling='4:2:0', advanced={'tune':'iq'}),
 's6-420-ssim': dict(speed=6, subsampling='4:2:0', advanced={'tune':'ssim'}),
 's8-420': dict(speed=8, subsampling='4:2:0'),
 's4-420': dict(speed=4, subsampling='4:2:0'),
 's2-420': dict(speed=2, subsampling='4:2:0'),
}
qs=[5,15,30,45,60]
res={}
for name,opt in configs.items():
    rows=[]
    t=0
    for q in qs:
        b=[];P=[];M=[];H=[]
        for im in imgs:
            buf=io.BytesIO(); t0=time.time(); im.save(buf,'AVIF',quality=q,**opt); t+=time.time()-t0
            d=buf.getvalue(); dec=np.asarray(Image.open(io.BytesIO(d)).convert('RGB')); a=np.asarray(im)
            b.append(8*len(d)/(im.width*im.height)); P.append(psnr(a,dec)); M.append(ms_ssim(a,dec)); H.append(haarpsi(a,dec))
        rows.append((np.mean(b),np.mean(P),np.mean(M),np.mean(H)))
    res[name]=(rows,t)
    print(name, round(t,1), [tuple(round(v,4) for v in r) for r in rows], flush=True)
base=res['s6-420'][0]
for name,(rows,t) in res.items():
    out=[]
    for k in (1,2,3):
        out.append(bd_rate([r[0] for r in base],[r[k] for r in base],[r[0] for r in rows],[r[k] for r in rows]))
    print(name, 'BD psnr/msssim/haarpsi %', [None if o is None else round(o,2) for o in out], 'time', round(t,1))
