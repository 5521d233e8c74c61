"""Cost model: params, MACs, memory access, kernels and element-wise work against hand counts."""

from __future__ import annotations

import json

import torch
from torch import nn

from predictors.cost import count_macs, count_params, op_cost, part_costs
from predictors.latency.parts import CostTable, genotype_cost, network_parts
from searchspace import build, load_genotype
from searchspace.blocks import BlockArgs
from searchspace.blocks.mbconv import PARAMS as MB_PARAMS
from searchspace.blocks.mbconv import MBConv
from searchspace.layers import ConvBNAct

F32 = 4  # bytes per element


def test_single_conv() -> None:
    # in 1x3x8x8 = 192, weight 8x3x3x3 = 216, out 1x8x8x8 = 512 elements
    cost = op_cost(nn.Conv2d(3, 8, 3, padding=1, bias=False), torch.zeros(1, 3, 8, 8))
    assert cost.params == 216
    assert cost.macs == 8 * 64 * 27
    assert cost.mem_bytes == (192 + 216 + 512) * F32
    assert (cost.kernels, cost.elementwise) == (1, 0)


def test_linear() -> None:
    # addmm reads bias 10, input 16, weight 160 and writes 10
    cost = op_cost(nn.Linear(16, 10), torch.zeros(1, 16))
    assert (cost.params, cost.macs) == (170, 160)
    assert cost.mem_bytes == (10 + 16 + 160 + 10) * F32
    assert (cost.kernels, cost.elementwise) == (1, 0)


def test_conv_bn_act() -> None:
    # conv 256 + 32 + 512; BN (eval) 512 + 4 x 8 + 512; in-place ReLU reads and writes 512
    cost = op_cost(ConvBNAct(4, 8, 1, act="relu"), torch.zeros(1, 4, 8, 8))
    assert cost.macs == 4 * 8 * 64
    assert cost.mem_bytes == (800 + 1056 + 1024) * F32
    assert cost.kernels == 3
    assert cost.elementwise == 512 + 512  # BN and ReLU outputs


def test_mbconv_with_residual() -> None:
    params = {p.name: p.default for p in MB_PARAMS} | {"expand": 1.0, "kernel": 3}
    block = MBConv(BlockArgs(in_ch=8, out=8, stride=1, params=params))
    cost = op_cost(block, torch.zeros(1, 8, 4, 4))
    # dw conv 128 + 72 + 128, BN 128 + 32 + 128, ReLU 256, 1x1 conv 128 + 64 + 128, BN 288, add 3 x 128
    assert cost.mem_bytes == (328 + 288 + 256 + 320 + 288 + 384) * F32
    assert cost.kernels == 6
    assert cost.elementwise == 4 * 128
    assert cost.macs == 128 * 9 + 8 * 8 * 16


def test_meta_device_counts_like_cpu() -> None:
    with torch.device("meta"):
        meta = ConvBNAct(6, 12, 3, 2, act="hswish")
    cpu = ConvBNAct(6, 12, 3, 2, act="hswish")
    assert op_cost(meta, torch.empty(1, 6, 16, 16, device="meta")) == op_cost(cpu, torch.zeros(1, 6, 16, 16))


def test_parts_sum_to_the_whole_network(tmp_path) -> None:
    genotype = load_genotype("zoo:mobilenet_v3_small")
    model = build(genotype)
    whole = op_cost(model, torch.zeros(1, 3, 64, 64))
    summed = genotype_cost(genotype, resolution=64, costs=CostTable(tmp_path / "costs.jsonl"))
    assert summed == whole
    assert whole.params == count_params(model) == 2_542_856
    assert whole.macs == count_macs(model, 64)
    assert len(network_parts(genotype)) == genotype.num_blocks() + 2


def test_part_costs_and_show_json(capsys) -> None:
    from nas.cli import main

    model = build(load_genotype("zoo:mobilenet_v3_small"))
    parts = part_costs(model, 64)
    assert all(p.mem_bytes > 0 and p.kernels > 0 for p in parts)
    whole = op_cost(model, torch.zeros(1, 3, 64, 64))
    assert sum(p.mem_bytes for p in parts) == whole.mem_bytes
    assert sum(p.kernels for p in parts) == whole.kernels
    assert main(["show", "zoo:mobilenet_v3_small", "--resolution", "64", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["mem_bytes"] == whole.mem_bytes and summary["kernels"] == whole.kernels
    assert summary["elementwise"] == whole.elementwise
    assert {"mem_bytes", "kernels", "elementwise"} <= set(summary["stages"][0]) & set(summary["head"])
