"""Tiny random models and their bundles, for the export and runtime tests.

The S3D blocks are the real ones (at 64² input, 16-frame clips), the heads and the
mBART are tiny ("tiny" preset, d_model 32), the vocabularies have a handful of
glosses: an export takes seconds and the tests compare ONNX with PyTorch on them.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import numpy as np
import tiny_mbart
import torch
from tiny_mbart import SENTENCES, tokenizer  # tb.SENTENCES, tb.tokenizer() for the tests

from slt_export.bundle import ExportOptions, RecognitionPart, TranslationPart, export_bundle
from slt_serve.vocab import GlossVocab
from slt_training.models.fusion import LateralOptions
from slt_training.models.heatmaps import HeatmapOptions
from slt_training.models.recognition import (
    PyramidOptions,
    SingleStreamOptions,
    SingleStreamRecognizer,
    TwoStreamOptions,
    TwoStreamRecognizer,
)
from slt_training.models.translation import GenerateOptions, TranslationModel
from slt_training.models.visual_head import VisualHeadOptions

SIZE, FPS, HIDDEN = 64, 25.0, 64
KEYPOINTS = tuple(range(91, 103))  # 12 of the 133: left-hand points
GENERATION = GenerateOptions(num_beams=3, length_penalty=1.0, max_length=12)
HEAD = VisualHeadOptions(hidden_size=HIDDEN, ff_size=128, dropout=0.0)
SPEC = {
    "frame_size": SIZE,
    "input_size": SIZE,
    "mean": [0.5, 0.5, 0.5],
    "std": [0.5, 0.5, 0.5],
    "motion_channels": True,
    "keypoints": None,
    "eval_crop": 1.0,
}


def vocab() -> GlossVocab:
    return GlossVocab.from_glosses(g for s, _ in SENTENCES for g in s.split())


def single_stream(seed: int = 0) -> SingleStreamRecognizer:
    torch.manual_seed(seed)
    options = SingleStreamOptions(head=HEAD, frozen_blocks=0, in_channels=6)
    return SingleStreamRecognizer(options, len(vocab())).eval()


def two_stream(seed: int = 0) -> TwoStreamRecognizer:
    torch.manual_seed(seed)
    options = TwoStreamOptions(
        num_keypoints=len(KEYPOINTS),
        in_channels=6,
        heatmaps=HeatmapOptions(size=(SIZE // 2, SIZE // 2), sigma=1.5),
        head=HEAD,
        lateral=LateralOptions(kernel_size=(3, 3, 3)),
        pyramid=PyramidOptions(enabled=False),
    )
    return TwoStreamRecognizer(options, len(vocab())).eval()


def translation(tok, source: str, seed: int = 0) -> TranslationModel:
    return tiny_mbart.translation(tok, seed, input=source, feature_dim=HIDDEN).eval()


def s2t_bundle(out: Path, kind: str = "single_stream", **options):
    """Export a random recognizer + S2T model of `kind` with `ExportOptions(**options)`; returns
    (export, recognizer, model, tok)."""
    tok = tokenizer()
    recognizer = single_stream() if kind == "single_stream" else two_stream()
    spec = dict(SPEC, keypoints=list(KEYPOINTS) if kind == "two_stream" else None)
    model = translation(tok, "features")
    result = export_bundle(
        out,
        RecognitionPart(recognizer, spec, vocab(), fps=FPS, ctc_beam_size=5),
        TranslationPart(model, tok, GENERATION),
        ExportOptions(**options),
        metrics={"dev": {"bleu4": 1.5}},
    )
    return result, recognizer, model, tok


def g2t_bundle(out: Path, dev=None, **options):
    """Export a random G2T model with `ExportOptions(**options)`, calibrated on `dev` if given;
    returns (export, model, tok)."""
    tok = tokenizer()
    model = translation(tok, "gloss")
    part = TranslationPart(model, tok, GENERATION)
    return export_bundle(out, None, part, ExportOptions(**options), dev=dev), model, tok


def small_hrnet(input_size: tuple[int, int] = (96, 64)):
    """A small whole-body HRNet (width 8, one module and block per stage), seeded, with
    Kaiming-initialised convolutions so that its heatmaps vary; in eval mode."""
    from slt_training.models.hrnet import HRNetConfig, HRNetPose

    torch.manual_seed(0)
    config = HRNetConfig(width=8, input_size=input_size, stage_modules=(1, 1, 1), num_blocks=1)
    model = HRNetPose(config)
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight)
    return model.eval()


def pose_model(path: Path) -> Path:
    """`small_hrnet()` exported to `path` (pose.onnx)."""
    from slt_export.pose import export_model

    export_model(small_hrnet(), path)
    return path


_SHARED: dict = {}


def shared(name: str, build):
    """`build(folder)` once per test process: the test files share read-only bundles."""
    if name not in _SHARED:
        folder = Path(tempfile.mkdtemp(prefix="slt-bundles-"))
        atexit.register(shutil.rmtree, folder, True)
        _SHARED[name] = build(folder / name)
    return _SHARED[name]


def random_video(frames: int = 16, seed: int = 0) -> np.ndarray:
    """(T, 64, 64, 3) uint8: a moving bright square on noise, so the frames differ."""
    rng = np.random.default_rng(seed)
    video = rng.integers(0, 80, (frames, SIZE, SIZE, 3), dtype=np.uint8)
    for t in range(frames):
        x = 4 + 2 * t % (SIZE - 20)
        video[t, 20:36, x : x + 16] = 230
    return video


def torch_translate(recognizer, model, tok, frames: np.ndarray, keypoints=None):
    """The PyTorch reference: (T, 64, 64, 3) frames [+ (T, K, 3) input-pixel keypoints] through
    training's eval preprocessing, the recognizer, CTC beam 5 and `generate` → (glosses, text)."""
    from slt_serve.decoding import ctc_decode
    from slt_training.data.s2g_data import ClipOptions, crop_resize, to_input

    options = ClipOptions(frame_size=SIZE, input_size=SIZE, motion_channels=True)
    x = to_input(crop_resize(frames, (0.0, 0.0, SIZE, SIZE), SIZE), options)[None]
    lengths = torch.tensor([x.shape[2]])
    with torch.no_grad():
        if keypoints is None:
            out = recognizer(x, lengths)
        else:
            out = recognizer(x, torch.as_tensor(keypoints)[None], lengths)
        glosses = " ".join(vocab().decode(ctc_decode(out.gloss_log_probs[0].numpy(), 5)))
        mask = torch.ones(out.gloss_features.shape[:2], dtype=torch.long)
        ids = model.generate(mask, GENERATION, features=out.gloss_features)[0].tolist()
    return glosses, tok.decode(ids)
