"""HRNet whole-body: output shapes at 384×288, and mmpose checkpoints loading by name.

The key names and shapes of an mmpose checkpoint are written out below from
mmpose's own source (backbones/hrnet.py: `_make_layer`, `_make_transition_layer`,
`HRModule._make_branches/_make_fuse_layers`; resnet.py: BasicBlock/Bottleneck with
`bn1..3`; TopdownHeatmapSimpleHead: `keypoint_head.final_layer`), not from our
module, so loading them proves the two agree.
"""

from __future__ import annotations

import pytest
import torch

from slt_serve.errors import SltError
from slt_training.models.hrnet import (
    HRNetConfig,
    HRNetPose,
    input_size_from_config,
    load_checkpoint,
    load_state_dict,
    mmpose_state_dict,
)

SMALL = dict(width=8, num_keypoints=133, input_size=(64, 64), stage_modules=(1, 1, 1), num_blocks=1)


def _bn(prefix: str, c: int) -> dict[str, tuple[int, ...]]:
    stats = {f"{prefix}.{n}": (c,) for n in ("weight", "bias", "running_mean", "running_var")}
    return {**stats, f"{prefix}.num_batches_tracked": ()}


def mmpose_keys(
    width: int, keypoints: int = 133, modules=(1, 4, 3), blocks: int = 4, head="keypoint_head"
) -> dict[str, tuple[int, ...]]:
    """Every tensor of mmpose's TopDown HRNet (extra: stage1 BOTTLENECK (4,) (64,);
    stages 2-4 BASIC, num_blocks 4, channels W·2^i; stage4 multiscale_output False)."""
    k: dict[str, tuple[int, ...]] = {}
    b = "backbone"
    k[f"{b}.conv1.weight"] = (64, 3, 3, 3)
    k |= _bn(f"{b}.bn1", 64)
    k[f"{b}.conv2.weight"] = (64, 64, 3, 3)
    k |= _bn(f"{b}.bn2", 64)
    for i in range(blocks):  # layer1: Bottleneck(in, 256), mid 64
        p, cin = f"{b}.layer1.{i}", 64 if i == 0 else 256
        k[f"{p}.conv1.weight"] = (64, cin, 1, 1)
        k |= _bn(f"{p}.bn1", 64)
        k[f"{p}.conv2.weight"] = (64, 64, 3, 3)
        k |= _bn(f"{p}.bn2", 64)
        k[f"{p}.conv3.weight"] = (256, 64, 1, 1)
        k |= _bn(f"{p}.bn3", 256)
        if i == 0:
            k[f"{p}.downsample.0.weight"] = (256, 64, 1, 1)
            k |= _bn(f"{p}.downsample.1", 256)
    pre = [256]
    for stage, n_modules in zip((2, 3, 4), modules):
        cur = [width * 2**i for i in range(stage)]
        t = f"{b}.transition{stage - 1}"
        for i, c in enumerate(cur):
            if i < len(pre):
                if pre[i] != c:
                    k[f"{t}.{i}.0.weight"] = (c, pre[i], 3, 3)
                    k |= _bn(f"{t}.{i}.1", c)
            else:
                k[f"{t}.{i}.0.0.weight"] = (c, pre[-1], 3, 3)
                k |= _bn(f"{t}.{i}.0.1", c)
        for m in range(n_modules):
            p = f"{b}.stage{stage}.{m}"
            for br, c in enumerate(cur):
                for j in range(blocks):
                    q = f"{p}.branches.{br}.{j}"
                    k[f"{q}.conv1.weight"] = (c, c, 3, 3)
                    k |= _bn(f"{q}.bn1", c)
                    k[f"{q}.conv2.weight"] = (c, c, 3, 3)
                    k |= _bn(f"{q}.bn2", c)
            outs = 1 if (stage == 4 and m == n_modules - 1) else len(cur)
            for i in range(outs):
                for j in range(len(cur)):
                    f = f"{p}.fuse_layers.{i}.{j}"
                    if j > i:
                        k[f"{f}.0.weight"] = (cur[i], cur[j], 1, 1)
                        k |= _bn(f"{f}.1", cur[i])
                    for s in range(i - j):
                        out = cur[i] if s == i - j - 1 else cur[j]
                        k[f"{f}.{s}.0.weight"] = (out, cur[j], 3, 3)
                        k |= _bn(f"{f}.{s}.1", out)
        pre = cur
    k[f"{head}.final_layer.weight"] = (keypoints, width, 1, 1)
    k[f"{head}.final_layer.bias"] = (keypoints,)
    return k


def random_state(keys: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in keys.items():
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(7)
        elif name.endswith("running_var"):
            state[name] = torch.rand(shape, generator=g) + 0.5
        else:
            state[name] = torch.randn(shape, generator=g) * 0.1
    return state


@pytest.mark.parametrize("width", [32, 48])
def test_forward_shapes_at_384x288_and_mmpose_keys_load(width):
    with torch.device("meta"):  # shapes without the arithmetic (seconds per frame on CI)
        out = HRNetPose(HRNetConfig(width=width))(torch.empty(2, 3, 384, 288))
    assert out.shape == (2, 133, 96, 72)
    model = HRNetPose(HRNetConfig(width=width)).eval()
    assert model.config.heatmap_size == (96, 72)
    keys = mmpose_keys(width)
    assert len(keys) == len(model.state_dict())
    load_state_dict(model, mmpose_state_dict(random_state(keys)))
    params = sum(p.numel() for p in model.parameters())
    assert params == {32: 28_539_941, 48: 63_601_429}[width]  # mmpose's 28.54 M / 63.60 M


def test_mmpose_1x_head_names_and_dataparallel_prefix_load():
    model = HRNetPose(HRNetConfig(**SMALL))
    keys = mmpose_keys(8, modules=(1, 1, 1), blocks=1, head="head")
    state = {f"module.{k}": v for k, v in random_state(keys).items()}
    load_state_dict(model, mmpose_state_dict(state))
    assert torch.equal(model.head.final_layer.bias, state["module.head.final_layer.bias"])


def test_missing_unexpected_and_misshapen_keys_are_named():
    model = HRNetPose(HRNetConfig(**SMALL))
    good = mmpose_state_dict(random_state(mmpose_keys(8, modules=(1, 1, 1), blocks=1)))
    missing = dict(good)
    del missing["backbone.stage3.0.fuse_layers.2.0.1.0.weight"]
    with pytest.raises(SltError, match=r"1 missing: backbone\.stage3\.0\.fuse_layers\.2\.0\.1\.0"):
        load_state_dict(model, missing)
    extra = dict(good, **{"backbone.stage5.0.weight": torch.zeros(1)})
    with pytest.raises(SltError, match=r"1 unexpected: backbone\.stage5\.0\.weight"):
        load_state_dict(model, extra)
    wrong = dict(good, **{"head.final_layer.bias": torch.zeros(17)})
    with pytest.raises(SltError, match=r"wrong shape: head\.final_layer\.bias \(17,\)"):
        load_state_dict(model, wrong)


def test_load_checkpoint_reads_mmpose_pth_dimensions_and_input_size(tmp_path):
    state = random_state(mmpose_keys(8, keypoints=133, modules=(1, 2, 1), blocks=2))
    config = "model = dict(...)\ndata_cfg = dict(\n    image_size=[192, 256],\n    heatmap_size=[48, 64])"
    path = tmp_path / "hrnet_w8.pth"
    torch.save({"meta": {"config": config, "epoch": 210}, "state_dict": state}, path)
    model = load_checkpoint(path)
    assert model.config.width == 8 and model.config.stage_modules == (1, 2, 1)
    assert model.config.num_blocks == 2 and model.config.input_size == (256, 192)
    assert torch.equal(model.backbone.conv1.weight, state["backbone.conv1.weight"])
    assert load_checkpoint(path, input_size=(128, 96)).config.input_size == (128, 96)
    assert input_size_from_config("codec = dict(input_size=(288, 384), sigma=2)") == (384, 288)


def test_checkpoints_that_are_not_hrnet_are_refused(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save({"state_dict": {"backbone.conv1.weight": torch.zeros(64, 3, 7, 7)}}, path)
    with pytest.raises(SltError, match="not an mmpose HRNet"):
        load_checkpoint(path)
    with pytest.raises(SltError, match="no pose checkpoint"):
        load_checkpoint(tmp_path / "absent.pth")
    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "meta": {"hook": print}}, evil)
    with pytest.raises(SltError, match="cannot read it safely"):
        load_checkpoint(evil)
    with pytest.raises(SltError, match="multiples of 32"):
        HRNetConfig(input_size=(100, 72))
