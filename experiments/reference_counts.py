"""Measure the reference networks' params and MACs with torchvision / timm (not project dependencies).

Produced the REFERENCE table of tests/test_zoo_counts.py, with torchvision 0.29.2 and timm 1.0.31
importable (e.g. ``pip install --target /tmp/refpkgs --no-deps timm==1.0.31 torchvision``):

    PYTHONPATH=/tmp/refpkgs .venv/bin/python experiments/reference_counts.py [NAME ...]

Names on the command line limit the run to those networks. The PyPI torchvision wheels are CUDA
builds whose compiled ops do not load beside the CPU torch; only the model definitions are needed,
so the module registering those ops is stubbed out before the import.
"""

import json
import sys
import types

sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))

import timm  # noqa: E402
import torch  # noqa: E402
import torchvision.models as tvm  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

tv = ['mobilenet_v3_large','mobilenet_v3_small','mobilenet_v2','mnasnet1_0','mnasnet0_5'] + [f'efficientnet_b{i}' for i in range(8)] + ['shufflenet_v2_x0_5','shufflenet_v2_x1_0','shufflenet_v2_x1_5','shufflenet_v2_x2_0','resnet18','resnet34','resnet50','resnext50_32x4d']
tm = ['ghostnet_100','resnest14d','resnest26d','resnest50d','vovnet39a','vovnet57a','ese_vovnet19b_dw','ese_vovnet39b','ese_vovnet57b']
res = {f'efficientnet_b{i}': r for i, r in enumerate([224,240,260,300,380,456,528,600])}
# issue 14 part 2: zoo rows, then the other family members checked in tests/test_blocks_classic.py
tv += ['wide_resnet50_2', 'efficientnet_v2_s', 'vgg16_bn', 'squeezenet1_1',
       'wide_resnet101_2', 'efficientnet_v2_m', 'vgg11_bn', 'vgg19_bn', 'squeezenet1_0']
tm += ['seresnet50', 'mobilenetv1_100', 'legacy_xception', 'seresnet18', 'seresnet34', 'mobilenetv1_125']
res.update({'efficientnet_v2_s': 384, 'efficientnet_v2_m': 480, 'legacy_xception': 299})
# issue 14 part 1: zoo rows, then the other family members checked in tests/test_blocks_csp_dense.py
tv += ['densenet121', 'densenet169', 'densenet201', 'densenet161']
tm += ['cspresnet50', 'cspresnext50', 'cspdarknet53', 'darknet53', 'resnetv2_50',
       'cspresnet50d', 'cspresnet50w', 'darknet17', 'darknet21', 'resnetv2_18', 'resnetv2_34', 'resnetv2_101']
res.update({n: 256 for n in ('cspresnet50', 'cspresnext50', 'cspdarknet53', 'darknet53', 'cspresnet50d',
                             'cspresnet50w', 'darknet17', 'darknet21')})
out = {}
for n in sys.argv[1:] or tv + tm:
    m = getattr(tvm, n)() if n in tv else timm.create_model(n)
    m.eval()
    p = sum(x.numel() for x in m.parameters())
    r = res.get(n, 224)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        m(torch.randn(1, 3, r, r))
    out[n] = {'params': p, 'macs': fc.get_total_flops() // 2, 'resolution': r, 'src': 'tv' if n in tv else 'timm'}
    print(n, out[n], flush=True)
print(json.dumps(out, indent=1))
