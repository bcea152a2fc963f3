"""S3D backbone: shapes, freezing, and loading both checkpoint layouts.

The two reference networks are re-declared below from their published sources
(torchvision/models/video/s3d.py and kylemin/S3D model.py), with their own module
nesting and channel numbers, so their state dicts carry the real key names and
shapes; loading them into our module and getting the same outputs shows the key
mapping and the architecture are both right.
"""

import pickle

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from slt_serve.errors import SltError
from slt_training.models.s3d import BLOCK_CHANNELS, S3DBackbone, block_channels, output_length

# Mixed_3b … Mixed_5c as both sources write them: in, b0, b1 mid/out, b2 mid/out, b3.
MIXED = [
    (192, 64, 96, 128, 16, 32, 32),
    (256, 128, 128, 192, 32, 96, 64),
    (480, 192, 96, 208, 16, 48, 64),
    (512, 160, 112, 224, 24, 64, 64),
    (512, 128, 128, 256, 24, 64, 64),
    (512, 112, 144, 288, 32, 64, 64),
    (528, 256, 160, 320, 32, 128, 128),
    (832, 256, 160, 320, 32, 128, 128),
    (832, 384, 192, 384, 48, 128, 128),
]
BLOCK_ENDS = [0, 3, 6, 12, 15]  # index in features/base of each block's last layer
# (time, height, width) after each of the first four blocks, for a 16-frame 64² input
BLOCK_GRIDS = [(8, 32, 32), (8, 16, 16), (8, 8, 8), (4, 4, 4)]


def block_shapes(batch: int, channels: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The shapes `forward_blocks` gives for a (batch, C, 16, 64, 64) input."""
    return [(batch, c, *grid) for c, grid in zip(channels, BLOCK_GRIDS, strict=True)]


def bn(c):
    return nn.BatchNorm3d(c, eps=1e-3, momentum=1e-3)


def tv_cna(cin, cout, k, s=1, p=0):  # torchvision Conv3dNormActivation
    return nn.Sequential(nn.Conv3d(cin, cout, k, s, p, bias=False), bn(cout), nn.ReLU())


def tv_tsc(cin, cout, k, s, p):  # torchvision TemporalSeparableConv
    return nn.Sequential(
        tv_cna(cin, cout, (1, k, k), (1, s, s), (0, p, p)),
        tv_cna(cout, cout, (k, 1, 1), (s, 1, 1), (p, 0, 0)),
    )


class TvInception(nn.Module):  # torchvision SepInceptionBlock3D
    def __init__(self, cin, b0, b1m, b1, b2m, b2, b3):
        super().__init__()
        self.branch0 = tv_cna(cin, b0, 1)
        self.branch1 = nn.Sequential(tv_cna(cin, b1m, 1), tv_tsc(b1m, b1, 3, 1, 1))
        self.branch2 = nn.Sequential(tv_cna(cin, b2m, 1), tv_tsc(b2m, b2, 3, 1, 1))
        self.branch3 = nn.Sequential(nn.MaxPool3d(3, 1, 1), tv_cna(cin, b3, 1))

    def forward(self, x):
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], 1)


class RefBasic(nn.Module):  # kylemin BasicConv3d
    def __init__(self, cin, cout, k, s=1, p=0):
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, k, s, p, bias=False)
        self.bn = bn(cout)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


class RefSep(nn.Module):  # kylemin SepConv3d
    def __init__(self, cin, cout, k, s, p=0):
        super().__init__()
        self.conv_s = nn.Conv3d(cin, cout, (1, k, k), (1, s, s), (0, p, p), bias=False)
        self.bn_s = bn(cout)
        self.relu_s = nn.ReLU()
        self.conv_t = nn.Conv3d(cout, cout, (k, 1, 1), (s, 1, 1), (p, 0, 0), bias=False)
        self.bn_t = bn(cout)
        self.relu_t = nn.ReLU()

    def forward(self, x):
        x = self.relu_s(self.bn_s(self.conv_s(x)))
        return self.relu_t(self.bn_t(self.conv_t(x)))


class RefMixed(nn.Module):  # kylemin Mixed_*
    def __init__(self, cin, b0, b1m, b1, b2m, b2, b3):
        super().__init__()
        self.branch0 = nn.Sequential(RefBasic(cin, b0, 1))
        self.branch1 = nn.Sequential(RefBasic(cin, b1m, 1), RefSep(b1m, b1, 3, 1, 1))
        self.branch2 = nn.Sequential(RefBasic(cin, b2m, 1), RefSep(b2m, b2, 3, 1, 1))
        self.branch3 = nn.Sequential(nn.MaxPool3d(3, 1, 1), RefBasic(cin, b3, 1))

    def forward(self, x):
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], 1)


def s3d_layers(sep, basic, mixed):
    m = [mixed(*spec) for spec in MIXED]
    return nn.Sequential(
        sep(3, 64, 7, 2, 3),
        nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
        basic(64, 64, 1),
        sep(64, 192, 3, 1, 1),
        nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
        *m[:2],
        nn.MaxPool3d(3, 2, 1),
        *m[2:7],
        nn.MaxPool3d(2, 2, 0),
        *m[7:],
    )


class TvS3D(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = s3d_layers(tv_tsc, tv_cna, TvInception)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Conv3d(1024, 400, 1, bias=True))


class RefS3D(nn.Module):
    def __init__(self):
        super().__init__()
        self.base = s3d_layers(RefSep, RefBasic, RefMixed)
        self.fc = nn.Sequential(nn.Conv3d(1024, 400, 1, bias=True))


def randomised(model):
    """Random BN statistics and affine terms, so a wrong mapping cannot go unnoticed."""
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm3d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
            m.num_batches_tracked.fill_(7)
    return model.eval()


@pytest.fixture(scope="module")
def reference_nets():
    return {"torchvision": randomised(TvS3D()), "reference": randomised(RefS3D())}


def layers_of(net):
    return net.features if hasattr(net, "features") else net.base


def saved(net, path, layout):
    state = net.state_dict()
    if layout == "reference":  # as shipped: DataParallel prefix, no num_batches_tracked
        state = {f"module.{k}": v for k, v in state.items() if "num_batches_tracked" not in k}
    torch.save(state, path)
    return path


@pytest.mark.parametrize("layout", ["torchvision", "reference"])
def test_loads_layout_and_matches_reference_outputs(reference_nets, layout, tmp_path):
    net = reference_nets[layout]
    path = saved(net, tmp_path / "s3d.pt", layout)
    model = S3DBackbone(num_blocks=5).eval()
    report = model.load_pretrained(path)
    assert report.layout == layout
    assert report.dropped and all(k.startswith(("classifier.", "fc.")) for k in report.dropped)
    torch.manual_seed(1)
    x = torch.randn(1, 3, 8, 64, 64)
    with torch.no_grad():
        ours = model.forward_blocks(x)
        theirs, y = [], x
        for i, layer in enumerate(layers_of(net)):
            y = layer(y)
            if i in BLOCK_ENDS:
                theirs.append(y)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_fewer_blocks_drop_later_blocks_by_name(reference_nets, tmp_path):
    path = saved(reference_nets["torchvision"], tmp_path / "s3d.pt", "torchvision")
    report = S3DBackbone(num_blocks=2).load_pretrained(path)
    assert any(k.startswith("features.15.") for k in report.dropped)
    assert not any(k.startswith(("features.0.", "features.3.")) for k in report.dropped)


def test_safetensors_file(reference_nets, tmp_path):
    state = {k: v.contiguous() for k, v in reference_nets["reference"].state_dict().items()}
    save_file(state, str(tmp_path / "s3d.safetensors"))
    report = S3DBackbone(num_blocks=4).load_pretrained(tmp_path / "s3d.safetensors")
    assert report.layout == "reference"
    assert report.input_mean == (0.5, 0.5, 0.5)


def broken(net, path, change):
    state = dict(net.state_dict())
    change(state)
    torch.save(state, path)
    return path


@pytest.mark.parametrize(
    "change, named",
    [
        (
            lambda s: s.pop("features.8.branch2.0.1.running_var"),
            "features.8.branch2.0.1.running_var",
        ),
        (
            lambda s: s.__setitem__("features.9.branch1.1.0.0.weight", torch.zeros(224, 112, 1, 3)),
            "features.9.branch1.1.0.0.weight",
        ),
        (lambda s: s.__setitem__("features.3.extra", torch.zeros(1)), "features.3.extra"),
    ],
    ids=["missing", "wrong-shape", "unknown"],
)
def test_checkpoint_that_does_not_fit_names_the_key(reference_nets, tmp_path, change, named):
    path = broken(reference_nets["torchvision"], tmp_path / "s3d.pt", change)
    model = S3DBackbone(num_blocks=4)
    before = model.blocks[0].stem.spatial.conv.weight.clone()
    with pytest.raises(SltError, match=named.replace(".", r"\.")):
        model.load_pretrained(path)
    assert torch.equal(model.blocks[0].stem.spatial.conv.weight, before)  # nothing loaded


class NotATensor:
    pass


def test_unreadable_files_are_slt_errors(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    (tmp_path / "code.pt").write_bytes(pickle.dumps({"x": NotATensor()}, protocol=2))
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "other.pt")
    for name, message in [
        ("junk.pt", "cannot read"),
        ("code.pt", "cannot read"),
        ("other.pt", "not an S3D checkpoint"),
        ("absent.pt", "no S3D checkpoint there"),
    ]:
        with pytest.raises(SltError, match=message):
            S3DBackbone(num_blocks=1).load_pretrained(tmp_path / name)


def test_stem_for_heatmap_channels_sees_grey_like_rgb(reference_nets, tmp_path):
    path = saved(reference_nets["torchvision"], tmp_path / "s3d.pt", "torchvision")
    rgb, heat = S3DBackbone(num_blocks=1).eval(), S3DBackbone(in_channels=5, num_blocks=1).eval()
    rgb.load_pretrained(path)
    report = heat.load_pretrained(path)
    assert report.stem_adapted and len(report.input_mean) == 5
    grey = torch.rand(1, 1, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(
            heat(grey.expand(-1, 5, -1, -1, -1)), rgb(grey.expand(-1, 3, -1, -1, -1))
        )
    with pytest.raises(SltError, match=r"features\.0\.0\.0\.weight"):
        S3DBackbone(in_channels=5, num_blocks=1).load_pretrained(path, adapt_stem=False)


def test_shapes_at_tiny_input():
    model = S3DBackbone().eval()
    x = torch.randn(1, 3, 16, 64, 64)
    with torch.no_grad():
        outputs = model.forward_blocks(x)
        pooled = model.forward_pooled(x)
    assert [tuple(o.shape) for o in outputs] == block_shapes(1, (64, 192, 480, 832))
    assert model.out_channels == 832 and output_length(16) == 4 and output_length(17) == 5
    assert pooled.shape == (1, 4, 832)
    torch.testing.assert_close(pooled, outputs[-1].mean(dim=(3, 4)).transpose(1, 2))


def test_frozen_blocks_get_no_gradient_and_keep_bn_statistics():
    model = S3DBackbone(num_blocks=3, frozen_blocks=2).train()
    stats = model.blocks[1].reduce.bn.running_mean.clone()
    model(torch.randn(1, 3, 8, 64, 64)).square().mean().backward()
    assert torch.equal(model.blocks[1].reduce.bn.running_mean, stats)
    assert not model.blocks[0].training and model.blocks[2].training
    assert all(p.grad is None for p in model.blocks[:2].parameters())
    first_unfrozen = model.blocks[2].mixed_3b.branch0.conv.weight
    assert first_unfrozen.grad is not None and first_unfrozen.grad.abs().sum() > 0


def test_bad_arguments_and_input():
    for kwargs in ({"num_blocks": 6}, {"num_blocks": 2, "frozen_blocks": 3}, {"in_channels": 0}):
        with pytest.raises(SltError):
            S3DBackbone(**kwargs)
    with pytest.raises(SltError, match="expects"):
        S3DBackbone(num_blocks=1)(torch.zeros(1, 4, 4, 32, 32))
    with pytest.raises(SltError, match="at least 5 frames"):
        S3DBackbone(num_blocks=5)(torch.zeros(1, 3, 4, 64, 64))
    for width in (0, -0.5, 25):
        with pytest.raises(SltError, match="width"):
            S3DBackbone(width=width)


def test_width_scales_every_block_and_every_layer_trains():
    assert block_channels(1.0) == BLOCK_CHANNELS
    assert block_channels(0.25) == (16, 48, 120, 208, 256)
    quarter = S3DBackbone(in_channels=6, width=0.25)
    assert quarter.block_channels == (16, 48, 120, 208) and quarter.out_channels == 208
    n_full = sum(p.numel() for p in S3DBackbone().parameters())
    n_quarter = sum(p.numel() for p in S3DBackbone(width=0.25).parameters())
    assert n_quarter < n_full / 10  # conv weights shrink with the square of the width
    assert S3DBackbone(width=0.25).state_dict().keys() == S3DBackbone().state_dict().keys()
    x = torch.randn(2, 6, 16, 64, 64)
    outputs = quarter.forward_blocks(x)
    assert [tuple(o.shape) for o in outputs] == block_shapes(2, (16, 48, 120, 208))
    outputs[-1].square().mean().backward()
    convs = [m for m in quarter.modules() if isinstance(m, nn.Conv3d)]
    assert convs and all(c.weight.grad is not None and c.weight.grad.abs().sum() > 0 for c in convs)


def test_pretrained_weights_refuse_another_width(reference_nets, tmp_path):
    path = saved(reference_nets["torchvision"], tmp_path / "s3d.pt", "torchvision")
    with pytest.raises(SltError, match=r"width 0\.5; set model\.width: 1"):
        S3DBackbone(num_blocks=2, width=0.5).load_pretrained(path)
