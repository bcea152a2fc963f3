"""Reference checkpoints → our run folders (`slt import slrt`), written through
`slt_training.runs` so that everything that reads a run (features, export, S2T) reads them.

S2G: the recognizer of `s2g.build_recognizer`, with the reference's BGR input folded into
the RGB stem (its input channels reversed, so the run reads RGB like every other run),
normalisation (x - 0.5) / 0.5, the reference's keypoint order and heatmap drawing in the
config, and the gloss table as the dataset's `gloss_vocab.json`. What our data pipeline
cannot express (the SingleStream zero-padding crop, bilinear resizing without
antialiasing) is said in docs/coming-from-twostream-slt.md; `reference.preprocess` has it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from slt_serve.errors import SltError
from slt_serve.manifest import GlossTable
from slt_serve.tokenizer import TextTokenizer
from slt_serve.vocab import GlossVocab
from slt_training.config import S2GConfig, validate_config
from slt_training.models.recognition import SingleStreamRecognizer, TwoStreamRecognizer
from slt_training.models.s3d import REFERENCE_MEAN, REFERENCE_STD
from slt_training.models.translation import GenerateOptions, TranslationModel
from slt_training.models.visual_head import VisualHead
from slt_training.runs import (
    MODEL_FILE,
    ModelSpec,
    S2GInputSpec,
    S2GRun,
    TranslationRun,
    dataset_fps,
    prepare_run_dir,
    write_checkpoint,
)

from .checkpoint import read_checkpoint
from .preprocess import KEYPOINTS_79
from .s2g import build_recognizer
from .text import pruned_tokenizer, read_map_ids
from .translation import build_translation, read_config, two_stream_s2t
from .vocab import ImportedVocab, read_gloss_table, s2g_vocab

log = logging.getLogger(__name__)

CHECKPOINT_TAG = "reference"  # the checkpoint folder an import writes
INPUT_SIZE = 224  # the reference's img_size


def fold_bgr(model: SingleStreamRecognizer | TwoStreamRecognizer) -> None:
    """Reverse the RGB stem's input channels: the model then reads RGB exactly as the
    reference's read BGR (a convolution sums over its input channels)."""
    backbone = model.backbone if isinstance(model, SingleStreamRecognizer) else model.rgb_backbone
    conv = backbone.blocks[0].stem.spatial.conv
    with torch.no_grad():
        conv.weight.copy_(conv.weight[:, [2, 1, 0]].clone())


def write_dataset_vocab(root: Path, vocab: GlossVocab, source: str | os.PathLike) -> Path:
    """The checkpoint's gloss table as ROOT/gloss_vocab.json; an existing, different one
    is refused (it would make every gloss id wrong)."""
    path = root / "gloss_vocab.json"
    if path.is_file():
        existing = GlossVocab.load(path)
        if existing.glosses != vocab.glosses:
            raise SltError(
                f"{path}: differs from the checkpoint's gloss table {source} "
                f"({len(existing)} vs {len(vocab)} glosses); import into a dataset folder "
                "without gloss_vocab.json, or remove it"
            )
        return path
    vocab.save(path)
    return path


def s2g_config(model, root: Path, run_dir: Path) -> S2GConfig:
    """The config that rebuilds `model` (eval only: no pretrained S3D, nothing frozen)."""
    two = isinstance(model, TwoStreamRecognizer)
    options = model.options
    head = options.head
    data = {"root": str(root), "frame_size": INPUT_SIZE, "input_size": INPUT_SIZE, "eval_crop": 1.0}
    model_cfg = {
        "kind": "two_stream" if two else "single_stream",
        "hidden_size": head.hidden_size,
        "ff_size": head.ff_size,
        "ff_kernel_sizes": list(head.ff_kernel_sizes),
    }
    if two:
        data["keypoints"] = list(KEYPOINTS_79)  # the reference's order, not ours
        model_cfg |= {
            "heatmap_sigma": options.heatmaps.sigma,
            "heatmap_style": options.heatmaps.style,
            "heatmap_grid": list(options.heatmaps.grid),
            "lateral": options.lateral.enabled,
            "pyramid": options.pyramid.enabled,
            "decode_head": options.decode_head,
            "translation_heads": list(options.translation_heads),
        }
    model_cfg["translation_input"] = options.translation_input
    raw = {"stage": "s2g", "run_dir": str(run_dir), "data": data, "model": model_cfg}
    return validate_config(raw, S2GConfig, run_dir / "config.yaml")


def import_s2g(
    checkpoint_path: str | os.PathLike,
    gloss_table: str | os.PathLike,
    dataset: str | os.PathLike,
    run_dir: str | os.PathLike,
    fps: float | None = None,
) -> S2GRun:
    """An S2G run folder holding a reference S2G checkpoint, checked by reloading it."""
    model, vocab = _s2g_model(checkpoint_path, gloss_table)
    return write_s2g_run(model, vocab, gloss_table, dataset, run_dir, fps, str(checkpoint_path))


def _s2g_model(checkpoint_path, gloss_table):
    checkpoint = read_checkpoint(checkpoint_path)
    if checkpoint.kind not in ("s2g_single", "s2g_two"):
        raise SltError(f"{checkpoint_path}: a {checkpoint.kind} checkpoint, not S2G")
    imported = s2g_vocab(read_gloss_table(gloss_table), gloss_table)
    return build_recognizer(checkpoint, imported, str(gloss_table)), imported


def write_s2g_run(
    model, vocab: ImportedVocab, gloss_table, dataset, run_dir, fps: float | None, source: str
) -> S2GRun:
    """`model` (reading BGR, as imported) as an S2G run folder over `dataset`."""
    fold_bgr(model)
    root, run_dir = Path(dataset), Path(run_dir)
    cfg = s2g_config(model, root, run_dir)
    prepare_run_dir(cfg, resume=False, data_root=root)
    write_dataset_vocab(root, vocab.vocab, gloss_table)
    run = S2GRun.of(cfg)
    keypoints = tuple(cfg.data.keypoints) if isinstance(model, TwoStreamRecognizer) else None
    spec = S2GInputSpec(
        frame_size=INPUT_SIZE, input_size=INPUT_SIZE, mean=REFERENCE_MEAN, std=REFERENCE_STD,
        motion_channels=False, frame_stride=1, keypoints=keypoints, eval_crop=1.0,
        fps=fps if fps is not None else dataset_fps(root, cfg.data.train_split),
        geometry="reference_resize" if keypoints else "reference_center_crop",  # its eval
    )  # fmt: skip
    run.write_input_spec(spec)
    write_checkpoint(run_dir, CHECKPOINT_TAG, model, source=source)
    _check_reload(run, model)
    log.info("imported %s into %s", source, run_dir)
    return run


# TwoStream-SLT's multi-source ensemble: its S2T_Ensemble configs load the joint, video and
# keypoint networks in this order (experiments/configs/TwoStream/*_s2t_ensemble.yaml)
ENSEMBLE_GLOSS_FEATURES = ("fuse", "rgb", "keypoint")


def import_s2t(
    s2t_checkpoint: str | os.PathLike | Sequence[str | os.PathLike],
    s2g_checkpoint: str | os.PathLike,
    gloss_table: str | os.PathLike,
    pretrained: str | os.PathLike,
    dataset: str | os.PathLike,
    out: str | os.PathLike,
    options: S2TImportOptions,
    gloss_features: Sequence[str] | None = None,
) -> tuple[S2GRun, TranslationRun]:
    """OUT/s2g (the S2G checkpoint's backbone under the S2T checkpoint's own head, whose
    512-d features the translation reads) and OUT/s2t (V-L mapper + mBART, the
    reference's encoder input, transformers 4.11.3's beam search).

    TwoStream: one or several S2T networks (each with `gloss_features`, the head that feeds
    it: fuse, rgb or keypoint; default: fuse for one network, the reference's ensemble order
    fuse, rgb, keypoint for three). OUT/s2g keeps the S2G checkpoint's heads for the glosses
    and gains each network's head (`translation_heads`, features side by side); OUT/s2t is
    the first network, OUT/s2t_2, OUT/s2t_3… the others, listed in OUT/s2t's `ensemble`, so
    `slt export model OUT/s2t` writes one bundle searching all of them as the reference's
    S2T_Ensemble does."""
    single = isinstance(s2t_checkpoint, (str, os.PathLike))
    paths = [s2t_checkpoint] if single else list(s2t_checkpoint)
    checkpoints = [read_checkpoint(p) for p in paths]
    for path, checkpoint in zip(paths, checkpoints):
        if checkpoint.kind != "s2t":
            raise SltError(f"{path}: a {checkpoint.kind} checkpoint, not S2T")
    recognizer, vocab = _s2g_model(s2g_checkpoint, gloss_table)
    two = isinstance(recognizer, TwoStreamRecognizer)
    for path, checkpoint in zip(paths, checkpoints):
        if two_stream_s2t(checkpoint) != two:
            raise SltError(
                f"{path}: a {'TwoStream' if two_stream_s2t(checkpoint) else 'SingleStream'} S2T "
                f"checkpoint, but {s2g_checkpoint} is {'TwoStream' if two else 'SingleStream'}; "
                "give the S2G checkpoint its features were extracted with"
            )
    if not two and len(paths) > 1:
        raise SltError("SingleStream S2T: give one S2T checkpoint (ensembles are TwoStream-SLT's)")
    features = _gloss_features(len(paths), gloss_features) if two else [None]
    translations = [
        _translation(c, pretrained, options, (vocab, str(gloss_table)), f)
        for c, f in zip(checkpoints, features)
    ]
    reads = {_reads(t) for t in translations}
    if len(reads) > 1:
        raise SltError("S2T networks with projection and embedding V-L mappers; import them apart")
    if two:
        recognizer = _with_translation_heads(recognizer, translations, paths, reads.pop())
    else:
        recognizer.head = translations[0].head  # the S2T network's head replaces the S2G one
        recognizer.options = replace(recognizer.options, translation_input=reads.pop())
    out = Path(out)
    source = f"{s2g_checkpoint} + head of {', '.join(map(str, paths))}"
    s2g = write_s2g_run(recognizer, vocab, gloss_table, dataset, out / "s2g", options.fps, source)
    members = [
        _write_s2t(out / f"s2t_{i}", translations[i - 1], options, s2g, paths[i - 1])
        for i in range(2, len(paths) + 1)
    ]
    ensemble = tuple(str(m.run_dir) for m in members)
    run = _write_s2t(out / "s2t", translations[0], options, s2g, paths[0], ensemble)
    return s2g, run


def _gloss_features(count: int, given: Sequence[str] | None) -> list[str]:
    if given:
        if len(given) != count:
            raise SltError(
                f"{len(given)} gloss features ({', '.join(given)}) for {count} S2T checkpoints; "
                "give one per checkpoint, in the same order"
            )
        return list(given)
    if count == 1:
        return ["fuse"]  # the reference's default gloss_feature_ensemble (the joint network)
    if count == len(ENSEMBLE_GLOSS_FEATURES):
        return list(ENSEMBLE_GLOSS_FEATURES)
    raise SltError(
        f"{count} TwoStream S2T checkpoints: say which head feeds each "
        "(--gloss-feature fuse|rgb|keypoint, once per checkpoint, in order)"
    )


def _reads(translation) -> str:
    """What the network's V-L mapper reads of its head (`translation_input`)."""
    return "probabilities" if translation.model.options.mapper == "embedding" else "features"


def _with_translation_heads(recognizer: TwoStreamRecognizer, translations, paths, reads: str):
    """The TwoStream recognizer with each S2T network's head as a translation head, giving
    `reads` (features or probabilities)."""
    theirs = replace(recognizer.options.head, dropout=0.0)
    for path, t in zip(paths, translations):
        if replace(t.head.options, dropout=0.0) != theirs:
            raise SltError(
                f"{path}: its visual head is {t.head.options}, the S2G checkpoint's {theirs}; "
                "import S2T networks trained on this S2G checkpoint's features"
            )
    options = replace(
        recognizer.options,
        translation_heads=tuple(t.stream for t in translations),
        translation_input=reads,
    )
    model = TwoStreamRecognizer(options, recognizer.vocab_size)
    missing, unexpected = model.load_state_dict(recognizer.state_dict(), strict=False)
    if unexpected or any(not k.startswith("translation_heads.") for k in missing):
        raise SltError(f"the recognizer does not rebuild with translation heads ({missing[:3]})")
    for ours, t in zip(model.translation_heads, translations):
        ours.load_state_dict(t.head.state_dict())
    return model.eval()


def _write_s2t(run_dir: Path, translation, options, s2g: S2GRun, source, ensemble=()):
    """One imported S2T network as a translation run over `s2g`, checked by reloading it."""
    spec = _imported_spec(
        translation,
        options,
        "s2t",
        s2g_run=str(s2g.run_dir),
        s2g_checkpoint_sha256=s2g.weights_sha256(),
        ensemble=ensemble,
    )
    run = TranslationRun.create(run_dir, spec)
    translation.tokenizer.save(run.tokenizer_path)
    write_checkpoint(run.run_dir, CHECKPOINT_TAG, translation.model, source=str(source))
    _check_translation_reload(run, translation.model)
    return run


def _imported_spec(translation, options: S2TImportOptions, stage: str, **extra) -> ModelSpec:
    """`model.json` of an imported G2T/S2T run: the checkpoint's mBART and options, generated
    with transformers 4.11.3's beam search as the reference does."""
    return ModelSpec(
        mbart_config=translation.model.mbart.config.to_dict(),
        translation_options=translation.model.options,
        generation=GenerateOptions(options.num_beams, 1.0, options.max_length, search="reference"),
        stage=stage,
        lang=options.lang,
        **extra,
    )


def import_g2t(
    checkpoint_path: str | os.PathLike,
    pretrained: str | os.PathLike,
    out: str | os.PathLike,
    options: S2TImportOptions,
) -> TranslationRun:
    """A G2T run folder (mBART and its gloss embedding, whose glosses are the pretrained
    folder's gloss2ids: the run's `gloss_table`, also served; transformers 4.11.3's beam
    search)."""
    checkpoint = read_checkpoint(checkpoint_path)
    if checkpoint.kind != "g2t":
        raise SltError(f"{checkpoint_path}: a {checkpoint.kind} checkpoint, not G2T")
    if (Path(out) / MODEL_FILE).exists():
        raise SltError(f"{out}: already holds a run ({MODEL_FILE}); give another --out")
    translation = _translation(checkpoint, pretrained, options, None)
    table = GlossTable(glosses=translation.gloss_table, sign_lang=options.sign_lang)
    spec = _imported_spec(translation, options, "g2t", gloss_table=table)
    run = TranslationRun.create(out, spec)
    translation.tokenizer.save(run.tokenizer_path)
    write_checkpoint(run.run_dir, CHECKPOINT_TAG, translation.model, source=str(checkpoint_path))
    _check_translation_reload(run, translation.model)
    log.info("imported %s into %s", checkpoint_path, run.run_dir)
    return run


@dataclass(frozen=True)
class S2TImportOptions:
    """What the pretrained folder does not say (S2T and G2T)."""

    text_lang: str = "de_DE"  # the spoken language token (tgt_lang), the decoder's start
    sign_lang: str = "de_DGS"  # the sign language code appended to every input (src_lang)
    lang: str = "de"  # ISO code of the text (zh is scored on characters)
    num_beams: int = 5  # ref: testing.cfg.translation.num_beams
    max_length: int = 100  # ref: testing.cfg.translation.max_length
    fps: float | None = None  # the clips' frame rate (None: the dataset's); S2T only


@dataclass(frozen=True)
class _Translation:
    model: TranslationModel
    head: VisualHead | None  # S2T only
    stream: str | None  # TwoStream S2T: the features its head reads (joint, rgb, keypoint)
    tokenizer: TextTokenizer
    gloss_table: tuple[str, ...]  # the gloss embedding's rows


def _folder_file(folder: Path, *names: str) -> Path:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise SltError(
        f"{folder}: none of {names}; give the pruned mBART folder the model was trained with"
    )


def _translation(
    checkpoint, pretrained, options: S2TImportOptions, head_vocab, gloss_feature=None
) -> _Translation:
    folder = Path(pretrained)
    map_file = _folder_file(folder, "map_ids.pkl", "old2new_vocab.pkl", "map_ids.json")
    map_ids = read_map_ids(map_file)
    rows = checkpoint.state["translation_network.model.model.shared.weight"].shape[0]
    if len(map_ids) != rows:
        raise SltError(
            f"{map_file}: {len(map_ids)} pruned ids, but {checkpoint.path} has {rows} text tokens "
            f"({len(map_ids)} vs {rows}); give the pruned mBART folder the model was trained with"
        )
    tokenizer = pruned_tokenizer(_folder_file(folder, "tokenizer.json"), map_ids, options.text_lang)
    table_file = _folder_file(folder, "gloss2ids.pkl", "gloss2ids.json")
    imported = build_translation(
        checkpoint, read_config(folder), read_gloss_table(table_file), str(table_file),
        tokenizer.lang_id, options.sign_lang, head_vocab=head_vocab, gloss_feature=gloss_feature,
    )  # fmt: skip
    return _Translation(
        imported.model, imported.head, imported.stream, tokenizer, imported.gloss_table
    )


def _check_translation_reload(run: TranslationRun, model: TranslationModel) -> None:
    rebuilt = run.load().model.state_dict()
    for key, value in model.state_dict().items():
        if not torch.equal(rebuilt[key], value):
            raise SltError(f"{run.run_dir}: the written run does not rebuild {key}")


EVAL_OPTIONS = ("head", "heatmaps", "lateral", "pyramid", "decode_head", "num_keypoints",
                "translation_heads", "translation_input")  # fmt: skip


def _check_reload(run: S2GRun, model) -> None:
    """The run rebuilds exactly this model: every weight, and the options that shape its
    eval outputs (its config describes it)."""
    rebuilt = run.load_recognizer()
    for name in EVAL_OPTIONS:
        ours = getattr(model.options, name, None)
        theirs = getattr(rebuilt.options, name, None)
        if name == "head":  # dropout does not act in eval
            ours, theirs = replace(ours, dropout=0.0), replace(theirs, dropout=0.0)
        if ours != theirs:
            raise SltError(
                f"{run.run_dir}: the written config rebuilds {name} {theirs}, not {ours}"
            )
    state = rebuilt.state_dict()
    for key, value in model.state_dict().items():
        if not torch.equal(state[key], value):
            raise SltError(f"{run.run_dir}: the written run does not rebuild {key}")
