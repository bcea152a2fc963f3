"""S2G recognition networks: shapes, lengths, losses, gradients, padding, real poses,
and a real learning check. Tiny inputs (16 frames at 64², heatmaps 32², vocab 10)
and small heads; the S3D blocks are the real ones."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from shared_data import POSES

from slt_serve.decoding import ctc_greedy_decode
from slt_serve.errors import SltError
from slt_training.models.fusion import LateralOptions
from slt_training.models.heatmaps import HeatmapOptions
from slt_training.models.pyramid import SignPyramid
from slt_training.models.recognition import (
    RecognitionOutput,
    SingleStreamOptions,
    SingleStreamRecognizer,
    TwoStreamOptions,
    TwoStreamRecognizer,
    ctc_loss,
    distillation_loss,
)
from slt_training.models.s3d import output_length
from slt_training.models.visual_head import VisualHead, VisualHeadOptions, step_mask

VOCAB, K, T, SIZE = 10, 12, 16, 64
HEAD = VisualHeadOptions(hidden_size=64, ff_size=128, dropout=0.0)
HEATMAPS = HeatmapOptions(size=(SIZE // 2, SIZE // 2), sigma=2.0)
LATERAL = LateralOptions(kernel_size=(3, 3, 3))  # smaller convs than (7, 3, 3): faster tests


def single(**kw) -> SingleStreamRecognizer:
    return SingleStreamRecognizer(SingleStreamOptions(head=HEAD, **kw), VOCAB)


def two(num_keypoints: int = K, **kw) -> TwoStreamRecognizer:
    opts = TwoStreamOptions(
        num_keypoints=num_keypoints, heatmaps=HEATMAPS, head=HEAD, lateral=LATERAL, **kw
    )
    return TwoStreamRecognizer(opts, VOCAB)


def clips(batch: int = 2, frames: int = T, k: int = K, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    video = torch.randn(batch, 3, frames, SIZE, SIZE, generator=g)
    points = torch.rand(batch, frames, k, 3, generator=g) * torch.tensor([SIZE, SIZE, 1.0])
    return video, points


TARGETS = (torch.tensor([[3, 4, 5], [6, 7, 0]]), torch.tensor([3, 2]))


def test_single_stream_shapes_and_exact_lengths():
    torch.manual_seed(0)
    model = single()
    video, _ = clips()
    out = model(video, torch.tensor([16, 11]), *TARGETS)
    assert out.gloss_logits.shape == (2, 4, VOCAB)
    assert out.gloss_features.shape == (2, 4, HEAD.hidden_size)
    assert out.output_lengths.tolist() == [output_length(16), output_length(11)] == [4, 3]
    assert torch.allclose(out.gloss_log_probs.exp().sum(-1), torch.ones(2, 4), atol=1e-5)
    assert set(out.losses) == {"ctc"} and torch.isfinite(out.loss)
    assert model(video, torch.tensor([16, 11])).loss is None  # no targets, no loss


def test_two_stream_shapes_losses_and_ensemble():
    torch.manual_seed(0)
    model = two()
    video, points = clips()
    out = model(video, points, torch.tensor([16, 9]), *TARGETS)
    assert out.gloss_logits.shape == (2, 4, VOCAB)
    assert out.gloss_features.shape == (2, 4, HEAD.hidden_size)
    assert out.output_lengths.tolist() == [4, 3]
    heads = {"rgb", "keypoint", "joint"}
    aux = {f"{s}_block{b}" for s in ("rgb", "keypoint") for b in (2, 3)}
    assert set(out.losses) == {f"ctc_{n}" for n in heads | aux} | {f"distill_{n}" for n in heads}
    assert all(torch.isfinite(v) for v in out.losses.values())
    weights = {"ctc_rgb_block2": 0.2, "ctc_rgb_block3": 0.2}
    weights |= {"ctc_keypoint_block2": 0.5, "ctc_keypoint_block3": 0.5}
    total = sum(weights.get(n, 1.0) * v for n, v in out.losses.items())
    assert torch.allclose(out.loss, total)
    probs = [out.head_log_probs[h].exp() for h in ("rgb", "keypoint", "joint")]
    assert torch.allclose(out.head_log_probs["ensemble"].exp(), sum(probs) / 3, atol=1e-6)
    assert torch.equal(out.gloss_log_probs, out.head_log_probs["joint"])


def test_two_stream_without_pyramid_and_distillation_has_three_ctc_terms():
    model = two(pyramid=replace(TwoStreamOptions().pyramid, enabled=False), distillation=False)
    video, points = clips()
    out = model(video, points, torch.tensor([16, 16]), *TARGETS)
    assert set(out.losses) == {"ctc_rgb", "ctc_keypoint", "ctc_joint"}
    assert not any("block" in name for name in model.heads)


def _grad_norm(module: torch.nn.Module) -> float:
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    return float(sum(g.abs().sum() for g in grads)) if grads else 0.0


def test_backward_reaches_first_unfrozen_blocks_laterals_and_pyramid():
    torch.manual_seed(0)
    model = two()
    video, points = clips()
    model(video, points, torch.tensor([16, 12]), *TARGETS).loss.backward()
    rgb, keypoint = model.rgb_backbone.blocks, model.keypoint_backbone.blocks
    assert all(p.grad is None for p in rgb[0].parameters())  # frozen (reference: block 1)
    assert _grad_norm(rgb[1]) > 0 and _grad_norm(keypoint[0]) > 0
    laterals = [*model.to_rgb.values(), *model.to_keypoint.values()]
    assert len(laterals) == 6 and all(_grad_norm(lat) > 0 for lat in laterals)
    assert all(_grad_norm(p) > 0 for p in model.pyramids.values())

    torch.manual_seed(0)
    model = single()
    model(video, torch.tensor([16, 12]), *TARGETS).loss.backward()
    assert all(p.grad is None for p in model.backbone.blocks[0].parameters())
    assert _grad_norm(model.backbone.blocks[1]) > 0


def test_narrow_width_shapes_and_gradients_reach_every_block():
    torch.manual_seed(0)
    model = single(frozen_blocks=0, in_channels=6, width=0.25)
    assert model.head.input_size == model.backbone.out_channels == 208
    video = torch.randn(2, 6, T, SIZE, SIZE)
    out = model(video, torch.tensor([16, 11]), *TARGETS)
    assert out.gloss_logits.shape == (2, 4, VOCAB) and out.output_lengths.tolist() == [4, 3]
    out.loss.backward()
    assert all(_grad_norm(block) > 0 for block in model.backbone.blocks)

    torch.manual_seed(0)
    model = two(width=0.25, rgb_frozen_blocks=0)
    assert [lat.conv.weight.shape[0] for lat in model.to_rgb.values()] == [16, 48, 120]
    assert model.heads["joint"].input_size == 2 * 208
    assert model.pyramids["rgb"].channels == (48, 120, 208)
    video, points = clips()
    out = model(video, points, torch.tensor([16, 12]), *TARGETS)
    assert out.gloss_logits.shape == (2, 4, VOCAB) and torch.isfinite(out.loss)
    out.loss.backward()
    streams = [*model.rgb_backbone.blocks, *model.keypoint_backbone.blocks]
    assert all(_grad_norm(block) > 0 for block in streams)
    laterals = [*model.to_rgb.values(), *model.to_keypoint.values()]
    assert all(_grad_norm(lat) > 0 for lat in laterals)
    assert all(_grad_norm(p) > 0 for p in model.pyramids.values())


@pytest.mark.parametrize("training", [False, True])
def test_visual_head_ignores_whatever_fills_the_padding(training):
    torch.manual_seed(0)
    head = VisualHead(40, VOCAB, HEAD).train(training)
    x = torch.randn(3, 9, 40)
    lengths = torch.tensor([9, 5, 7])
    garbage = x.clone()
    garbage[1, 5:] = 100 * torch.randn(4, 40)
    garbage[2, 7:] = -50.0
    a, b = head(x, lengths), head(garbage, lengths)
    mask = step_mask(lengths, 9)
    assert torch.allclose(a.logits[mask], b.logits[mask], atol=1e-5)
    if not training:  # eval: a clip alone, unpadded, gives the same outputs
        alone = head(x[1:2, :5], torch.tensor([5]))
        assert torch.allclose(alone.logits[0], a.logits[1, :5], atol=1e-5)
        assert torch.allclose(alone.features[0], a.features[1, :5], atol=1e-5)


def test_eval_outputs_of_a_short_clip_do_not_depend_on_its_batch():
    """The S3D stack is not masked (as the reference), so a padded clip is compared with
    itself alone padded to the same length, with different padding content."""
    torch.manual_seed(0)
    video, points = clips()
    lengths = torch.tensor([16, 10])
    other_pad = video[1:].clone()
    other_pad[:, :, 10:] = 7.0
    other_points = points[1:].clone()
    other_points[:, 10:] = 3.0
    model = single().eval()
    with torch.no_grad():
        batch, alone = model(video, lengths), model(other_pad, lengths[1:])
    assert torch.allclose(batch.gloss_logits[1, :3], alone.gloss_logits[0, :3], atol=1e-4)
    model = two().eval()
    with torch.no_grad():
        batch = model(video, points, lengths)
        alone = model(other_pad, other_points, lengths[1:])
    for name in ("rgb", "keypoint", "joint"):
        got, want = batch.head_log_probs[name][1, :3], alone.head_log_probs[name][0, :3]
        assert torch.allclose(got, want, atol=1e-4)


def test_ctc_is_summed_over_clips_and_divided_by_batch_not_by_target_length():
    torch.manual_seed(0)
    log_probs = torch.randn(2, 6, VOCAB).log_softmax(-1)
    steps, (ids, id_lengths) = torch.tensor([6, 4]), TARGETS
    per_clip = F.ctc_loss(log_probs.transpose(0, 1), ids, steps, id_lengths, reduction="none")
    ours = ctc_loss(log_probs, steps, ids, id_lengths)
    assert torch.allclose(ours, per_clip.mean())
    by_length = F.ctc_loss(log_probs.transpose(0, 1), ids, steps, id_lengths, reduction="mean")
    assert not torch.allclose(ours, by_length)
    # More glosses than steps has no alignment: counted as 0, not inf.
    impossible = ctc_loss(log_probs[:1, :2], torch.tensor([2]), ids[:1], torch.tensor([3]))
    assert impossible.item() == 0.0


def test_distillation_is_zero_for_a_perfect_student_and_skips_padding():
    torch.manual_seed(0)
    teacher = torch.randn(2, 5, VOCAB).log_softmax(-1)
    mask = step_mask(torch.tensor([5, 3]), 5)
    assert distillation_loss(teacher, teacher, mask).abs() < 1e-6
    student = teacher.clone()
    student[1, 3:] = torch.randn(2, VOCAB).log_softmax(-1)  # differs only in padding
    assert distillation_loss(student, teacher, mask).abs() < 1e-6
    student[0, 0] = torch.randn(VOCAB).log_softmax(-1)
    expected = F.kl_div(student[0, 0], teacher[0, 0].exp(), reduction="sum") / 2
    assert torch.allclose(distillation_loss(student, teacher, mask), expected, atol=1e-6)


def test_decode_greedy_and_beam_cut_each_clip_to_its_length():
    path = [[0, 4, 4, 0, 2, 2], [7, 0, 7, 3, 9, 9]]  # best symbol per step
    log_probs = torch.full((2, 6, VOCAB), -8.0)
    for b, row in enumerate(path):
        log_probs[b, torch.arange(6), torch.tensor(row)] = -0.01
    log_probs = log_probs.log_softmax(-1)
    out = RecognitionOutput(log_probs, log_probs, torch.zeros(2, 6, 4), torch.tensor([6, 4]))
    model = single()
    assert model.decode(out) == [[4, 2], [7, 7, 3]]
    assert model.decode(out, beam_size=5) == [[4, 2], [7, 7, 3]]
    assert model.decode(out)[0] == ctc_greedy_decode(log_probs[0].numpy())
    with pytest.raises(SltError, match="beam size"):
        model.decode(out, beam_size=0)


def test_pyramid_keeps_shapes_when_time_halves_unevenly():
    torch.manual_seed(0)
    model = two()
    video, points = clips(frames=14)  # 14 frames → 7 steps at T/2 → 4 at T/4
    out = model(video, points, torch.tensor([14, 13]), *TARGETS)
    assert out.output_lengths.tolist() == [4, 4] and torch.isfinite(out.loss)
    levels = [torch.randn(1, c, t, s, s) for c, t, s in ((192, 7, 16), (480, 7, 8), (832, 4, 4))]
    enriched = SignPyramid(3)(levels)
    assert [x.shape for x in enriched] == [x.shape for x in levels]
    assert torch.equal(enriched[-1], levels[-1]) and not torch.equal(enriched[0], levels[0])


def test_bad_input_is_a_one_line_error():
    model = two()
    video, points = clips()
    lengths = torch.tensor([16, 16])
    cases = [
        (lambda: model(video[:, :2], points, lengths), "frames must be"),
        (lambda: model(video, points[..., :2], lengths), "keypoints must be"),
        (lambda: model(video, points, torch.tensor([17, 3])), "lengths must be in"),
        (lambda: model(video, points, lengths, TARGETS[0] * 0, TARGETS[1]), "0 is the CTC blank"),
        (lambda: model(video, points, lengths, TARGETS[0]), "both gloss_ids"),
        (lambda: model(video[..., :48, :48], points, lengths), "lateral connections need"),
    ]
    for call, message in cases:
        with pytest.raises(SltError, match=message):
            call()
    with pytest.raises(SltError, match="decode_head"):
        TwoStreamOptions(decode_head="rgb")
    with pytest.raises(SltError, match="odd kernels"):
        VisualHeadOptions(ff_kernel_sizes=(3, 4))


def _holistic_keypoints(path: Path, frame_size: int) -> np.ndarray:
    """(T, 79, 3): the TwoStream-SLT subset of a MediaPipe Holistic .pose, mapped onto
    COCO-WholeBody by point name, as x, y in pixels of a `frame_size`² frame and score."""
    from slt_serve.layouts import select
    from slt_training.data.pose_files import read_pose

    seq, _ = read_pose(path)
    kp = select(seq.keypoints, "twostream_79").copy()
    kp[..., :2] *= np.array([frame_size / seq.width, frame_size / seq.height], np.float32)
    return kp


def test_two_stream_forward_on_real_mediapipe_poses():
    path = POSES / "mediapipe_holistic586_18f.pose"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    points = torch.from_numpy(_holistic_keypoints(path, SIZE))  # (18, 79, 3)
    frames = points.shape[0]
    assert points.shape == (frames, 79, 3) and (points[..., 2] > 0.5).float().mean() > 0.5
    batch = torch.stack([points, torch.roll(points, 5, dims=0)])
    lengths = torch.tensor([frames, 13])
    torch.manual_seed(0)
    model = two(num_keypoints=79)
    maps = model.heatmaps(batch, lengths, (SIZE, SIZE))
    assert maps.shape == (2, 79, frames, SIZE // 2, SIZE // 2)
    drawn = (maps[0] > -1).flatten(2).any(-1)  # (K, T): points drawn per frame
    assert drawn.float().mean() > 0.5 and not (maps[1, :, 13:] > -1).any()
    video = torch.zeros(2, 3, frames, SIZE, SIZE)
    out = model(video, batch, lengths, *TARGETS)
    assert out.output_lengths.tolist() == [output_length(frames), output_length(13)]
    assert out.gloss_logits.shape == (2, output_length(frames), VOCAB)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert _grad_norm(model.keypoint_backbone.blocks[0]) > 0
    # The keypoint stream reads the poses: other poses, other glosses. (Train-mode BN: at
    # random init the eval-mode running statistics shrink block 4's output to ~1e-6.)
    with torch.no_grad():
        a = model(video, batch, lengths).head_log_probs["keypoint"]
        b = model(video, batch.flip(1), lengths).head_log_probs["keypoint"]
    assert not torch.allclose(a[0], b[0], atol=1e-3)


def _overfit(model, inputs, steps: int) -> tuple[float, float]:
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = model(*inputs, *TARGETS).loss
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses[0], losses[-1]


def test_single_stream_overfits_one_batch():
    torch.manual_seed(0)
    video, _ = clips(seed=1)
    first, last = _overfit(single(), (video, torch.tensor([16, 12])), steps=10)
    assert last < 0.5 * first, (first, last)


@pytest.mark.slow
def test_two_stream_overfits_one_batch():
    torch.manual_seed(0)
    video, points = clips(seed=1)
    model = two(distillation=False, pyramid=replace(TwoStreamOptions().pyramid, enabled=False))
    first, last = _overfit(model, (video, points, torch.tensor([16, 12])), steps=6)
    assert last < 0.5 * first, (first, last)
