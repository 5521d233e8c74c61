"""Measure the reference networks' params and MACs with torchvision / timm (not project dependencies).

Produced the REFERENCE table of tests/test_zoo_counts.py, with torchvision 0.29.2 and timm 1.0.31
importable (e.g. ``pip install --target /tmp/refpkgs --no-deps timm==1.0.31 torchvision``):

    PYTHONPATH=/tmp/refpkgs .venv/bin/python experiments/reference_counts.py
"""

import json

import timm
import torch
import torchvision.models as tvm
from torch.utils.flop_counter import FlopCounterMode

tv = ['mobilenet_v3_large','mobilenet_v3_small','mobilenet_v2','mnasnet1_0','mnasnet0_5'] + [f'efficientnet_b{i}' for i in range(8)] + ['shufflenet_v2_x0_5','shufflenet_v2_x1_0','shufflenet_v2_x1_5','shufflenet_v2_x2_0','resnet18','resnet34','resnet50','resnext50_32x4d']
tm = ['ghostnet_100','resnest14d','resnest26d','resnest50d','vovnet39a','vovnet57a','ese_vovnet19b_dw','ese_vovnet39b','ese_vovnet57b']
res = {f'efficientnet_b{i}': r for i, r in enumerate([224,240,260,300,380,456,528,600])}
out = {}
for n in tv + tm:
    m = getattr(tvm, n)() if n in tv else timm.create_model(n)
    m.eval()
    p = sum(x.numel() for x in m.parameters())
    r = res.get(n, 224)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        m(torch.randn(1, 3, r, r))
    out[n] = {'params': p, 'macs': fc.get_total_flops() // 2, 'resolution': r, 'src': 'tv' if n in tv else 'timm'}
    print(n, out[n], flush=True)
print(json.dumps(out, indent=1))
