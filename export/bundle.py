"""Trained parts → a bundle folder (`slt_serve.bundle` describes the format), checked on the way.

`export_bundle` writes the graphs (`s2g_onnx`, `mbart_onnx`), the tokenizer and the
gloss vocabulary into a temporary folder beside `out`, checks them, writes
`manifest.json` with every file's sha256, and renames the folder into place: an
interrupted or failed export leaves no half bundle.

Parity is part of every export. The same inputs go through PyTorch and through
the runtime's own code on the ONNX graphs (`slt_serve.s2g.S2GRunner`,
`slt_serve.seq2seq.Seq2Seq` or `Ensemble`, whose beam search must reproduce
`TranslationModel.generate` / `TranslationEnsemble.generate`): recognizer log-probs and features, encoder states
and first-step logits must agree within `tolerance` (of the largest value, at
least 1), and the CTC glosses and the translated tokens must be identical, or
the export fails and nothing is written. Inputs: random clips of two lengths
(S2G), their PyTorch features plus a random sequence (S2T), random sub-word
sources (G2T).

`quantize="int8"`: every graph. s2g.onnx's S3D backbone as static int8 (QDQ),
its ranges calibrated on `ExportOptions.calibration` clips or else the dev clips
(`s2g_quantize`: fixed scales, so windows still give one run's glosses), and
onnxruntime's dynamic quantisation of the MatMul/Gemm weights of the encoder and
decoder; then the same inputs again. `"int8-text"`: the encoder and decoder only,
s2g.onnx float. The report: how often glosses and tokens still match PyTorch, how
many calibration clips keep the float s2g's glosses, the largest differences and
the size change.

`dev` (a `DevSet`; `export_run` takes the run's dev split): the finished bundle, as
served (the `Translator`, after quantisation), translates the dev clips, and the
confidence thresholds fitted on them (`slt_serve.confidence.calibrate`) go into the
manifest's `confidence` section. Without dev clips (none given, none found, none
translated) the section stays empty and the runtime uses its documented defaults.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from torch import nn

import slt_serve
from slt_serve.bundle import (
    DECODER,
    ENCODER,
    GLOSS_VOCAB,
    MANIFEST,
    POSE,
    S2G,
    TOKENIZER,
    describe_files,
    load_bundle,
)
from slt_serve.decoding import ctc_decode
from slt_serve.errors import SltError
from slt_serve.fileio import write_json
from slt_serve.manifest import (
    Confidence,
    EnsembleMember,
    Generation,
    GlossTable,
    GraphIO,
    Graphs,
    InputSpec,
    Manifest,
    Parity,
    Quantization,
    Recognition,
    S2GParity,
    Translation,
    TranslationParity,
    Versions,
)
from slt_serve.onnx_session import CPU
from slt_serve.pose_mediapipe import NAME as MEDIAPIPE
from slt_serve.pose_mediapipe import is_named as is_mediapipe
from slt_serve.s2g import FEATURE_STRIDE, STEM_GRAPH, S2GRunner
from slt_serve.seq2seq import (
    Ensemble,
    Seq2Seq,
    decoder_inputs,
    decoder_outputs,
    open_translation,
)
from slt_serve.tokenizer import TextTokenizer
from slt_serve.vocab import GlossVocab
from slt_training.models.recognition import SingleStreamRecognizer, TwoStreamRecognizer
from slt_training.models.translation import GenerateOptions, TranslationModel
from slt_training.models.translation_ensemble import TranslationEnsemble

from . import mbart_onnx, s2g_onnx, s2g_quantize, s2g_stem

log = logging.getLogger(__name__)

DEFAULT_TOLERANCE = 1e-3  # max |onnx − torch| / max(1, max |torch|)
PARITY_FRAMES = (12, 21)  # clip lengths of the S2G parity check (21: not a multiple of 4),
# then (`ExportOptions.window_check`) a whole serving window: window + context either side
DEFAULT_WINDOW = 256  # frames per s2g run at serving time (≈ 10 s at 25 fps)
# frames of context either side of a window, for SingleStream with the reference's head:
# S3D's 4 blocks and the head's two k=3 convolutions make each output step j read frames
# 4j - 39 … 4j + 39 (a 79-frame temporal receptive field), so 40 (a multiple of 4) gives
# every window's steps the whole clip's values (`slt_serve.s2g`); the export computes it
# for each model (`s2g_onnx.context_frames`: TwoStream's laterals widen it)
DEFAULT_CONTEXT = 40
QUANTIZE = ("int8", "int8-text")  # every graph / encoder and decoder only (s2g float)
EXTERNAL_DATA_BYTES = 1_800_000_000  # graphs above this keep their weights in NAME.data
DEFAULT_CALIBRATION_CLIPS = 200  # dev clips translated to calibrate confidence
EXPORT_PACKAGES = ("torch", "transformers", "onnx", "onnxruntime", "onnxscript")  # in `versions`


@dataclass(frozen=True)
class RecognitionPart:
    """A trained recognizer and what it reads (its S2G run's input_spec.json)."""

    model: nn.Module  # SingleStreamRecognizer or TwoStreamRecognizer
    input_spec: dict  # frame_size, input_size, mean, std, motion_channels, keypoints, eval_crop
    vocab: GlossVocab
    fps: float = 25.0  # frame rate of the dataset's clips (÷ input_spec frame_stride: served)
    ctc_beam_size: int = 5  # gloss decoding at serving time (1: greedy)


@dataclass(frozen=True)
class TranslationPart:
    """A trained translation model with its tokenizer and beam search settings."""

    model: TranslationModel
    tokenizer: TextTokenizer
    generation: GenerateOptions = GenerateOptions()
    gloss_table: GlossTable | None = None  # G2T reading its own gloss table (imported runs)
    # more networks of an ensemble (same vocabulary and tokenizer; S2T: each reads its own
    # feature_dim columns of the recogniser's features, after `model`'s): the bundle's beam
    # search averages their next-token probabilities (`Translation.ensemble`)
    ensemble: tuple[TranslationModel, ...] = ()

    @property
    def models(self) -> list[TranslationModel]:
        return [self.model, *self.ensemble]

    def searcher(self) -> TranslationModel | TranslationEnsemble:
        """What PyTorch generates with: the model, or the ensemble of all networks."""
        return TranslationEnsemble(self.models) if self.ensemble else self.model


@dataclass(frozen=True)
class DevSet:
    """Dev clips to calibrate confidence on: `video` paths under `root` (S2T, S2G bundles)
    or their glosses (G2T), with the reference gloss and text of each."""

    split: str  # its name, recorded in the manifest
    root: Path  # dataset root the clips' `video` paths are relative to
    clips: tuple  # slt_training.data.annotations.Clip


@dataclass(frozen=True)
class BundleExport:
    """What `export_bundle` wrote and what it checked."""

    path: Path
    manifest: Manifest
    megabytes: float
    seconds: float

    @property
    def parity(self) -> Parity:
        return self.manifest.parity

    @property
    def quantization(self) -> Quantization | None:
        return self.manifest.quantization

    @property
    def files(self) -> dict:
        return self.manifest.files


@dataclass(frozen=True)
class ExportOptions:
    """How `export_bundle` (and `export_run`) write a bundle; checked before anything is
    exported."""

    name: str | None = None  # bundle name in the manifest (default: the folder's name)
    pose: str | os.PathLike | None = None  # pose.onnx or "mediapipe" (two_stream bundles)
    quantize: str | None = None  # one of QUANTIZE (None: float graphs)
    calibration: tuple[Path, ...] = ()  # clips for int8 s2g's ranges (`export_run`: dev's)
    tolerance: float = DEFAULT_TOLERANCE  # parity: largest relative difference accepted
    window_frames: int = DEFAULT_WINDOW  # frames per s2g run at serving time
    context_frames: int | None = None  # context either side of a window (None: what covers
    # the model's temporal receptive field, `s2g_onnx.context_frames`; DEFAULT_CONTEXT for
    # SingleStream)
    overwrite: bool = False  # replace what is at `out`
    window_check: bool = True  # parity on one whole serving window too (at full size, a
    # window's PyTorch and ONNX runs: minutes for a TwoStream recogniser on a CPU)


@dataclass(frozen=True)
class _Plan:
    """One export's parts and options (`check` refuses what cannot be exported)."""

    stage: str  # s2t | g2t | s2g
    kind: str  # single_stream | two_stream | g2t
    recognition: RecognitionPart | None
    translation: TranslationPart | None
    options: ExportOptions

    def check(self) -> None:
        """Refuse settings that cannot make a bundle, before anything is exported."""
        o = self.options
        if o.quantize is not None and o.quantize not in QUANTIZE:
            raise SltError(f"--quantize {o.quantize}: choose one of {', '.join(QUANTIZE)}")
        for label, value in (
            ("window_frames", o.window_frames),
            ("context_frames", 0 if o.context_frames is None else o.context_frames),
        ):
            if value < 0 or value % FEATURE_STRIDE or (label == "window_frames" and not value):
                raise SltError(f"{label} {value}: must be a positive multiple of {FEATURE_STRIDE}")
        if o.pose is not None and self.kind != "two_stream":
            raise SltError("a pose model goes only into two_stream bundles")
        if o.quantize == "int8" and self.recognition is not None:
            s2g_quantize.check_calibration(self.kind, o.calibration)


@dataclass(frozen=True)
class _Sections:
    """The manifest sections of the graphs written so far (what parity runs on)."""

    input: InputSpec | None = None
    recognition: Recognition | None = None
    translation: Translation | None = None
    generation: Generation | None = None
    graphs: Graphs = Graphs()
    opset: int | None = None


def export_bundle(
    out: str | os.PathLike,
    recognition: RecognitionPart | None = None,
    translation: TranslationPart | None = None,
    options: ExportOptions = ExportOptions(),
    *,
    metrics: dict | None = None,
    dev: DevSet | None = None,
) -> BundleExport:
    """Write a bundle of `recognition` (S2G), `translation` (G2T) or both (S2T) to `out`,
    with the run's `metrics`; with `dev`, its confidence thresholds calibrated on those clips."""
    started = time.perf_counter()
    out = Path(out)
    stage, kind = _stage_and_kind(recognition, translation)
    plan = _Plan(stage, kind, recognition, translation, options)
    plan.check()
    _check_out(out, options.overwrite)
    tmp = out.parent / f".{out.name}.partial"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        manifest = _write(tmp, plan, options.name or out.name, metrics or {})
        if dev is not None:
            manifest = _calibrate(tmp, manifest, dev)
        load_bundle(tmp)  # what the runtime will check, checked now
        _replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    size = sum(f.bytes for f in manifest.files.values()) / 2**20
    log.info("wrote %s (%s, %s): %.1f MB", out, plan.kind, plan.stage, size)
    return BundleExport(out, manifest, size, time.perf_counter() - started)


def export_run(
    run_dir: str | os.PathLike,
    out: str | os.PathLike,
    options: ExportOptions = ExportOptions(),
    *,
    fps: float | None = None,
    calibrate_clips: int = DEFAULT_CALIBRATION_CLIPS,
) -> BundleExport:
    """A G2T, S2T or S2G run folder as a bundle (`slt export model RUN_DIR`); see `runs`.
    `fps`: the clips' frame rate when the S2G run did not save it. Confidence is calibrated
    on the first `calibrate_clips` of the run's dev split (0: not)."""
    from .runs import dev_set, parts_from_run

    recognition, translation, metrics = parts_from_run(run_dir, fps)
    dev = dev_set(run_dir, calibrate_clips) if calibrate_clips > 0 else None
    if options.quantize == "int8" and recognition is not None and not options.calibration:
        found = dev if dev is not None else dev_set(run_dir, s2g_quantize.CALIBRATION_CLIPS)
        if found is not None:
            options = replace(options, calibration=tuple(found.root / c.video for c in found.clips))
    return export_bundle(out, recognition, translation, options, metrics=metrics, dev=dev)


def _stage_and_kind(recognition, translation) -> tuple[str, str]:
    if recognition is None and translation is None:
        raise SltError("nothing to export: give a recognizer, a translation model or both")
    kind = "g2t"
    if recognition is not None:
        if isinstance(recognition.model, SingleStreamRecognizer):
            kind = "single_stream"
        elif isinstance(recognition.model, TwoStreamRecognizer):
            kind = "two_stream"
        else:
            raise SltError(f"cannot export a {type(recognition.model).__name__} recognizer")
    if translation is None:
        return "s2g", kind
    reads_features = translation.model.mapper is not None
    if reads_features and recognition is None:
        raise SltError("an S2T model reads visual features: export it with its recognizer")
    if not reads_features and recognition is not None:
        raise SltError("a G2T model reads glosses: export it without a recognizer")
    return ("s2t" if reads_features else "g2t"), kind


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise SltError(f"--out {out}: is a file; give a folder for the bundle")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise SltError(f"--out {out}: folder exists and is not empty; pass --overwrite or another")


def _replace(tmp: Path, out: Path) -> None:
    """Put the finished bundle at `out`; an old one is removed only after the rename."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old"
        if old.exists():
            shutil.rmtree(old)
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old)


def _save(proto, path: Path) -> None:
    import onnx

    big = sum(len(t.raw_data) for t in proto.graph.initializer) > EXTERNAL_DATA_BYTES
    onnx.save_model(
        proto,
        str(path),
        save_as_external_data=big,
        all_tensors_to_one_file=True,
        location=f"{path.name}.data",
    )


def _opset(proto) -> int:
    return next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))


def _versions(opset: int | None) -> Versions:
    """The manifest's `versions`: slt_serve and each package of `EXPORT_PACKAGES`."""
    found = {name: importlib.import_module(name).__version__ for name in EXPORT_PACKAGES}
    return Versions(slt_serve=slt_serve.__version__, opset=opset, **found)


def _input_spec(recognition: RecognitionPart, window: int, context: int) -> InputSpec:
    spec = recognition.input_spec
    keypoints = spec.get("keypoints")
    stride = int(spec.get("frame_stride", 1))  # training kept every stride-th frame
    return InputSpec(
        fps=float(recognition.fps) / stride,
        source_fps=float(recognition.fps),
        frame_stride=stride,
        frame_size=int(spec["frame_size"]),
        input_size=int(spec["input_size"]),
        eval_crop=float(spec.get("eval_crop", 1.0)),
        mean=tuple(float(v) for v in spec["mean"]),
        std=tuple(float(v) for v in spec["std"]),
        motion_channels=bool(spec["motion_channels"]),
        keypoints=None if keypoints is None else tuple(int(i) for i in keypoints),
        keypoint_layout=None if keypoints is None else "coco_wholebody_133",
        geometry=spec.get("geometry", "square"),
        window_frames=window,
        context_frames=context,
    )


def _write(tmp: Path, plan: _Plan, name: str, metrics: dict) -> Manifest:
    """Write every file and then manifest.json into `tmp`; the manifest written."""
    sections = _Sections()
    if plan.recognition is not None:
        sections = _write_recognition(tmp, plan, sections)
    if plan.translation is not None:
        sections = _write_translation(tmp, plan.translation, sections)
    parity = _check_parity(tmp, plan, sections)
    quantization = _quantize(tmp, plan, sections, parity) if plan.options.quantize else None
    if (tmp / STEM_GRAPH).is_file():
        sections = replace(sections, graphs=s2g_stem.graphs(tmp / S2G, sections.graphs))
    names = [p.name for p in tmp.iterdir() if p.name != MANIFEST]
    manifest = Manifest(
        name=name,
        kind=plan.kind,
        stage=plan.stage,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        input=sections.input,
        recognition=sections.recognition,
        translation=sections.translation,
        generation=sections.generation,
        graphs=sections.graphs,
        versions=_versions(sections.opset),
        parity=parity,
        quantization=quantization,
        metrics=metrics,
        files=describe_files(tmp, names),
    ).sealed()
    write_json(tmp / MANIFEST, manifest.to_json())
    return manifest


def _write_recognition(tmp: Path, plan: _Plan, sections: _Sections) -> _Sections:
    """s2g.onnx, gloss_vocab.json and pose.onnx if given; the input and recognition sections."""
    part, pose = plan.recognition, plan.options.pose
    model = part.model.eval()
    context = plan.options.context_frames
    if context is None:
        context = s2g_onnx.context_frames(part.model)
    spec = _input_spec(part, plan.options.window_frames, context)
    proto = s2g_onnx.export_s2g(model, spec.input_size)
    _save(proto, tmp / S2G)
    part.vocab.save(tmp / GLOSS_VOCAB)
    if pose is not None and is_mediapipe(pose):  # run at serve time, nothing to copy
        spec = spec.model_copy(update={"pose_model": MEDIAPIPE})
    elif pose is not None:
        _copy_pose(Path(pose), tmp / POSE)
    inputs = s2g_onnx.INPUTS_TWO if plan.kind == "two_stream" else s2g_onnx.INPUTS_SINGLE
    return replace(
        sections,
        input=spec,
        recognition=Recognition(
            vocab_size=len(part.vocab),
            blank_id=0,
            ctc_beam_size=int(part.ctc_beam_size),
            feature_stride=FEATURE_STRIDE,
            feature_dim=int(getattr(model, "feature_dim", model.options.head.hidden_size)),
        ),
        graphs=sections.graphs.model_copy(
            update={"s2g": GraphIO(inputs=inputs, outputs=s2g_onnx.OUTPUTS)}
        ),
        opset=_opset(proto),
    )


def _write_translation(tmp: Path, part: TranslationPart, sections: _Sections) -> _Sections:
    """encoder.onnx, decoder.onnx (and each ensemble member's encoder.I.onnx, decoder.I.onnx)
    and tokenizer.json; the translation and generation sections."""
    model = part.model.eval()
    reads_features = model.mapper is not None
    if part.ensemble:
        _check_ensemble(part)
    if sections.recognition is not None:
        dim = sections.recognition.feature_dim
        dims = [m.options.feature_dim for m in part.models]
        if sum(dims) != dim:
            raise SltError(
                f"the S2T model reads {' + '.join(map(str, dims))}-d features, the "
                f"recognizer gives {dim}-d; export the pair that was trained together"
            )
    rows = model.gloss_embedding.num_embeddings if model.gloss_embedding is not None else 0
    if part.gloss_table is not None and (reads_features or len(part.gloss_table.glosses) != rows):
        raise SltError(
            f"a gloss table of {len(part.gloss_table.glosses)} glosses, but the model has "
            f"{rows} gloss embedding rows; export the table the G2T model was imported with"
        )
    encoder = mbart_onnx.export_encoder(model)
    _save(encoder, tmp / ENCODER)
    _save(mbart_onnx.export_decoder(model), tmp / DECODER)
    members = []
    for i, member in enumerate(part.ensemble, start=1):
        names = {"encoder": f"encoder.{i}.onnx", "decoder": f"decoder.{i}.onnx"}
        _save(mbart_onnx.export_encoder(member.eval()), tmp / names["encoder"])
        _save(mbart_onnx.export_decoder(member), tmp / names["decoder"])
        members.append(EnsembleMember(**names, **_network_shapes(member)))
    part.tokenizer.save(tmp / TOKENIZER)
    source = mbart_onnx.ENCODER_INPUTS_S2T if reads_features else mbart_onnx.ENCODER_INPUTS_G2T
    layers = model.mbart.config.decoder_layers
    graphs = sections.graphs.model_copy(
        update={
            "encoder": GraphIO(inputs=source, outputs=mbart_onnx.ENCODER_OUTPUTS),
            "decoder": GraphIO(inputs=decoder_inputs(layers), outputs=decoder_outputs(layers)),
        }
    )
    translation = Translation(
        source="features" if reads_features else "input_ids",
        lang=part.tokenizer.lang,
        vocab_size=model.mbart.config.vocab_size,
        gloss_table=part.gloss_table,
        ensemble=tuple(members),
        **_network_shapes(model),
    )
    return replace(
        sections,
        translation=translation,
        generation=_generation(part),
        graphs=graphs,
        opset=sections.opset or _opset(encoder),
    )


def _network_shapes(model: TranslationModel) -> dict:
    """One network's fields of `Translation` / `EnsembleMember`."""
    config = model.mbart.config
    heads = config.decoder_attention_heads
    return {
        "feature_dim": model.options.feature_dim if model.mapper is not None else None,
        "decoder_layers": config.decoder_layers,
        "heads": heads,
        "head_dim": config.d_model // heads,
        "d_model": config.d_model,
        "max_source_positions": config.max_position_embeddings,
        "source_suffix": mbart_onnx.source_suffix(model),
    }


def _check_ensemble(part: TranslationPart) -> None:
    """An ensemble's networks agree (`TranslationEnsemble`), read glosses the same way, and
    are searched with the reference's rule (the only one PyTorch checks an ensemble with)."""
    TranslationEnsemble(part.models)
    first = part.model
    for i, m in enumerate(part.ensemble, start=1):
        if (m.gloss_embedding is None) != (first.gloss_embedding is None) or (
            m.options.suffix_ids != first.options.suffix_ids
        ):
            raise SltError(
                f"ensemble network {i} reads its source differently from the first (gloss "
                "embedding, appended rows); ensemble networks imported the same way"
            )
    if part.generation.search != "reference":
        raise SltError(
            "an ensemble bundle searches with transformers 4.11.3's rule: give "
            "GenerateOptions(search='reference') (TwoStream-SLT's ensemble)"
        )


def _generation(part: TranslationPart) -> Generation:
    g, model = part.generation.verify(), part.model
    return Generation(
        num_beams=g.num_beams,
        length_penalty=g.length_penalty,
        max_length=g.max_length,
        decoder_start_token_id=model.decoder_start_id,
        eos_token_id=model.eos_id,
        pad_token_id=model.pad_id,
        forced_eos=model.mbart.generation_config.forced_eos_token_id == model.eos_id,
        search=g.search,
    )


def _check_parity(tmp: Path, plan: _Plan, sections: _Sections) -> Parity:
    """The graphs in `tmp` against PyTorch; refuses the export when they disagree."""
    report = _Parity(tmp, sections, plan).run()
    failures = report.failures
    if failures or not report.max_rel_diff <= plan.options.tolerance:
        raise SltError(
            "the ONNX graphs disagree with PyTorch "
            f"(max relative diff {report.max_rel_diff:.3g}, tolerance {plan.options.tolerance:g}"
            + (f"; {'; '.join(failures)}" if failures else "")
            + "); nothing written. Report this with your torch, onnxscript and onnxruntime versions"
        )
    return Parity(
        max_rel_diff=report.max_rel_diff,
        tolerance=plan.options.tolerance,
        s2g=report.s2g,
        translation=report.translation,
    )


def _copy_pose(source: Path, target: Path) -> None:
    from slt_serve.pose import PoseEstimator, PoseOptions

    PoseEstimator(source, PoseOptions(providers=(CPU,)))  # refuses anything but a pose model
    shutil.copyfile(source, target)


# --- parity --------------------------------------------------------------------------------


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        return float("inf")
    return float(np.abs(a - b).max() / max(1.0, float(np.abs(b).max())))


@dataclass
class _Report:
    """What one parity run found."""

    failures: list[str] = field(default_factory=list)
    max_rel_diff: float = 0.0
    s2g: S2GParity | None = None
    translation: TranslationParity | None = None


class _Parity:
    """The runtime's code on the graphs in `folder` against PyTorch, on fixed inputs."""

    def __init__(self, folder: Path, sections: _Sections, plan: _Plan) -> None:
        self.folder, self.sections = folder, sections
        self.recognition, self.translation = plan.recognition, plan.translation
        self.window_check = plan.options.window_check
        self.clips = self._clips() if self.recognition is not None else []
        self.sources = self._sources() if self.translation is not None else []

    def _clips(self) -> list[tuple[torch.Tensor, ...]]:
        g = torch.Generator().manual_seed(0)
        model, spec = self.recognition.model, self.sections.input
        window = (spec.window_frames + 2 * spec.context_frames,) if self.window_check else ()
        frames = (*PARITY_FRAMES, *window)
        return [s2g_onnx.example_inputs(model, t, spec.input_size, g) for t in frames]

    def _torch_s2g(self, clip) -> tuple[np.ndarray, np.ndarray]:
        model = self.recognition.model
        frames = clip[0].permute(1, 0, 2, 3).unsqueeze(0)
        lengths = torch.tensor([frames.shape[2]])
        with torch.no_grad():
            if isinstance(model, TwoStreamRecognizer):
                out = model(frames, clip[1].unsqueeze(0), lengths)
            else:
                out = model(frames, lengths)
        return out.gloss_log_probs[0].numpy(), out.gloss_features[0].numpy()

    def _sources(self) -> list[np.ndarray]:
        model = self.translation.model
        rng = np.random.default_rng(0)
        if model.mapper is not None:
            dim = sum(m.options.feature_dim for m in self.translation.models)
            # the short clips only: a whole window's steps can pass a small model's positions
            short = self.clips[: len(PARITY_FRAMES)]
            sources = [self._torch_s2g(c)[1][None] for c in short]
            sources.append(rng.standard_normal((1, 9, dim)).astype(np.float32))
            return sources
        tok = self.translation.tokenizer
        ids = np.arange(4, len(tok))
        if model.gloss_embedding is not None:  # imported G2T: rows of its own gloss table
            ids = np.arange(4, model.gloss_embedding.num_embeddings)
        ids = ids[ids != tok.lang_id]
        return [
            np.asarray([[*rng.choice(ids, n).tolist(), tok.eos_id, tok.lang_id]], dtype=np.int64)
            for n in (3, 6, 11)
        ]

    def run(self) -> _Report:
        report = _Report()
        if self.recognition is not None:
            stem = self.folder / STEM_GRAPH
            runner = S2GRunner.open(
                self.folder / S2G, self.sections.input, [CPU], stem=stem if stem.is_file() else None
            )
            self._check_s2g(runner, report)
        if self.translation is not None:
            t = self.sections.translation
            seq = open_translation(lambda name: self.folder / name, t, [CPU])
            self._check_translation(seq, report)
        return report

    def _check_s2g(self, runner: S2GRunner, report: _Report) -> None:
        beam = self.sections.recognition.ctc_beam_size
        same, diffs = 0, []
        for clip in self.clips:
            want_lp, want_feat = self._torch_s2g(clip)
            got_lp, got_feat = runner.run_clip(*(c.numpy() for c in clip))
            diffs += [_rel(got_lp, want_lp), _rel(got_feat, want_feat)]
            match = ctc_decode(got_lp, beam) == ctc_decode(want_lp, beam)
            same += match
            if not match:
                report.failures.append(f"glosses differ on a {len(clip[0])}-frame clip")
        report.s2g = S2GParity(
            clips=len(self.clips),
            frames=tuple(len(clip[0]) for clip in self.clips),
            max_rel_diff=max(diffs),
            same_glosses=same,
        )
        report.max_rel_diff = max(report.max_rel_diff, max(diffs))

    def _torch_translate(self, source: np.ndarray) -> tuple[list, list, list[int]]:
        """Each network's encoder states and first-step logits, and the tokens of the
        whole search (the ensemble's, where there is one)."""
        part = self.translation
        x = torch.from_numpy(source)
        mask = torch.ones(source.shape[:2], dtype=torch.long)
        reads_features = part.model.mapper is not None
        kw = {"features": x} if reads_features else {"input_ids": x}
        searcher = part.searcher()
        inputs = searcher.split(x) if part.ensemble and reads_features else [x] * len(part.models)
        hidden, first_logits = [], []
        with torch.no_grad():
            for model, own in zip(part.models, inputs):
                batch = model.encoder_batch(mask, None if reads_features else own,
                                            own if reads_features else None)  # fmt: skip
                enc = model.mbart.get_encoder()(**batch).last_hidden_state
                start = torch.full((source.shape[0], 1), model.decoder_start_id)
                logits = model.mbart(
                    encoder_outputs=(enc,),
                    attention_mask=batch["attention_mask"],
                    decoder_input_ids=start,
                ).logits[:, -1]
                hidden.append(enc.numpy())
                first_logits.append(logits.numpy())
            tokens = searcher.generate(mask, part.generation, **kw)[0].tolist()
        return hidden, first_logits, tokens

    def _first_step_logits(self, seq: Seq2Seq, encoded, mask, start_id: int) -> np.ndarray:
        cross = seq.cross_inputs(mask, encoded[1], encoded[2], 1)
        start = np.full((1, 1), start_id, dtype=np.int64)
        logits, _, _ = seq.step(start, *seq.feeding.empty(1), cross)
        return logits

    def _check_translation(self, seq: Seq2Seq | Ensemble, report: _Report) -> None:
        settings = self.sections.generation.beam_settings()
        networks = seq.networks if isinstance(seq, Ensemble) else [seq]
        same, diffs = 0, []
        for source in self.sources:
            want_hidden, want_logits, want_tokens = self._torch_translate(source)
            mask = np.ones(source.shape[:2], dtype=np.int64)
            encoded = seq.encode(source, mask)
            for i, net in enumerate(networks):
                own = encoded[i] if isinstance(seq, Ensemble) else encoded
                start = settings.decoder_start_id
                logits = self._first_step_logits(net, own, mask, start)
                diffs += [_rel(own[0], want_hidden[i]), _rel(logits, want_logits[i])]
            tokens = seq.generate(source, mask, settings, encoded=encoded)[0]
            same += tokens == want_tokens
            if tokens != want_tokens:
                report.failures.append(
                    f"tokens differ on a {source.shape[1]}-step source: onnx {tokens} vs "
                    f"torch {want_tokens}"
                )
        report.translation = TranslationParity(
            sources=len(self.sources), max_rel_diff=max(diffs), same_tokens=same
        )
        report.max_rel_diff = max(report.max_rel_diff, max(diffs))


# --- confidence calibration ----------------------------------------------------------------


def _calibrate(tmp: Path, manifest: Manifest, dev: DevSet) -> Manifest:
    """The bundle in `tmp` translates `dev`; its manifest rewritten with the thresholds fitted."""
    from slt_serve.confidence import TARGET_ACCURACY, calibrate
    from slt_serve.translator import TranslateOptions, Translator

    translator = Translator(load_bundle(tmp), TranslateOptions(device="cpu"))
    results, refs = [], []
    for clip in dev.clips:
        try:
            if manifest.stage == "g2t":
                result = translator.translate_gloss(clip.gloss)
            else:
                result = translator.translate(dev.root / clip.video)
        except SltError as e:
            log.warning("calibration: %s skipped: %s", clip.name, e)
            continue
        results.append(result)
        refs.append((clip.gloss, clip.text))
    if not results:
        log.warning("calibration: no %s clip translated; the bundle keeps the default thresholds", dev.split)  # fmt: skip
        return manifest
    found = calibrate(results, refs)
    section = Confidence(
        gloss_threshold=found.thresholds.gloss,
        sentence_threshold=found.thresholds.sentence,
        target_accuracy=TARGET_ACCURACY,
        split=dev.split,
        clips=found.clips,
        glosses=found.glosses,
        gloss_curve=found.thresholds.gloss_curve,
        sentence_curve=found.thresholds.sentence_curve,
        gloss_ece=round(found.gloss.ece, 4),
        sentence_ece=round(found.sentence.ece, 4),
        sentence_accuracy=round(found.sentence.accuracy, 4),
    )
    manifest = manifest.model_copy(update={"confidence": section}).sealed()
    write_json(tmp / MANIFEST, manifest.to_json())
    log.info(
        "calibrated on %d %s clips: gloss threshold %.3f, sentence threshold %.3f",
        found.clips, dev.split, section.gloss_threshold, section.sentence_threshold,
    )  # fmt: skip
    return manifest


# --- quantisation --------------------------------------------------------------------------


def _quantize(tmp: Path, plan: _Plan, sections: _Sections, parity: Parity) -> Quantization:
    """Dynamic int8 quantisation of the encoder and decoder in place, and with "int8" static
    int8 of s2g.onnx (see the module docstring); agreement with PyTorch after it."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    s2g = _quantize_s2g(tmp, plan, sections) if plan.options.quantize == "int8" else {}

    members = sections.translation.ensemble if sections.translation else ()
    names = (ENCODER, DECODER, *(n for m in members for n in (m.encoder, m.decoder)))
    graphs = [n for n in names if (tmp / n).is_file()]
    before = {n: (tmp / n).stat().st_size for n in graphs} | s2g.pop("before", {})
    for name in graphs:
        target = tmp / f"{name}.int8"
        quantize_dynamic(
            tmp / name, target, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"]
        )
        target.replace(tmp / name)
    after = {n: (tmp / n).stat().st_size for n in before}
    report = _Parity(tmp, sections, plan).run()
    counts = {}
    if report.s2g is not None:
        counts["same_glosses"] = f"{report.s2g.same_glosses}/{report.s2g.clips}"
        counts["fp32_same_glosses"] = f"{parity.s2g.same_glosses}/{parity.s2g.clips}"
    if report.translation is not None:
        t, fp32 = report.translation, parity.translation
        counts["same_tokens"] = f"{t.same_tokens}/{t.sources}"
        counts["fp32_same_tokens"] = f"{fp32.same_tokens}/{fp32.sources}"
    return Quantization(
        method=s2g_quantize.METHOD if s2g else s2g_quantize.TEXT_METHOD,
        **s2g,
        megabytes_before=round(sum(before.values()) / 2**20, 2),
        megabytes_after=round(sum(after.values()) / 2**20, 2),
        max_rel_diff=report.max_rel_diff,
        **counts,
    )


def _quantize_s2g(tmp: Path, plan: _Plan, sections: _Sections) -> dict:
    """s2g.onnx as static int8 in place; its size before and the calibration clips whose
    glosses it keeps (nothing for a bundle without a recogniser)."""
    if not (tmp / S2G).is_file():
        return {}
    clips = plan.options.calibration
    before = {S2G: (tmp / S2G).stat().st_size}
    reference = tmp / f"{S2G}.float"
    shutil.copyfile(tmp / S2G, reference)
    try:
        s2g_quantize.quantize_s2g(tmp / S2G, sections.input, clips)
        beam = sections.recognition.ctc_beam_size
        same, n = s2g_quantize.same_glosses(reference, tmp / S2G, sections.input, clips, beam)
    finally:
        reference.unlink()
    s2g_stem.split(tmp / S2G)  # the stem apart, run a slice of frames at a time
    log.info("int8 s2g.onnx: %d of %d calibration clips keep the float glosses", same, n)
    return {"before": before, "float_same_glosses": f"{same}/{n}"}


def summary(result: BundleExport) -> str:
    """One paragraph for the CLI: what was written and what parity found."""
    m, p = result.manifest, result.parity
    parts = [
        f"wrote {result.path}: {m.kind} {m.stage} bundle, {result.megabytes:.1f} MB, "
        f"{len(m.files)} files, {result.seconds:.0f} s",
        f"digest {m.digest} (pin it: slt serve --digest {m.digest})",
    ]
    if p.s2g is not None:
        parts.append(
            f"parity s2g: {p.s2g.same_glosses}/{p.s2g.clips} clips same glosses, "
            f"max rel diff {p.s2g.max_rel_diff:.2g}"
        )
    if p.translation is not None:
        t = p.translation
        parts.append(
            f"parity translation: {t.same_tokens}/{t.sources} sources same tokens, "
            f"max rel diff {t.max_rel_diff:.2g}"
        )
    c = m.confidence
    parts.append(
        f"confidence: calibrated on {c.clips} {c.split} clips: gloss threshold "
        f"{c.gloss_threshold:.3f}, sentence threshold {c.sentence_threshold:.3f} (ECE gloss "
        f"{c.gloss_ece:.3f}, sentence {c.sentence_ece:.3f})"
        if c is not None
        else "confidence: not calibrated (no dev clips); the runtime uses its default thresholds"
    )
    if result.quantization:
        parts.append(
            "int8: " + json.dumps(result.quantization.model_dump(mode="json"), ensure_ascii=False)
        )
    return "\n".join(parts)
