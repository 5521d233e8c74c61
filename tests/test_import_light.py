"""``import nas`` and ``nas.build_model`` need only torch, pyyaml and this package."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("optuna", "ray", "onnx", "onnxruntime", "onnxscript", "rich", "matplotlib", "sklearn", "timm")

# Any import of a heavy package fails, as if it were not installed; then build a network.
SCRIPT = f"""
import importlib.abc, json, sys, torch
torch.set_num_threads(1)
HEAVY = {HEAVY!r}

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HEAVY:
            raise ImportError(f"blocked in this test: {{name}}")
        return None

sys.meta_path.insert(0, Block())
import nas
model = nas.build_model("zoo:mobilenet_v3_large")
params = sum(p.numel() for p in model.parameters())
print(json.dumps({{"params": params, "loaded": sorted(n for n in HEAVY if n in sys.modules)}}))
"""


def test_build_model_without_heavy_dependencies() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["loaded"] == []
    assert result["params"] == 5_483_032  # torchvision mobilenet_v3_large
