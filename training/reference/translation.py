"""Reference G2T and S2T checkpoints → our `TranslationModel` (and, for S2T, its head).

G2T (`translation_network.model.*` = HF mBART, `translation_network.gloss_embedding`):
mBART maps 1:1; the gloss embedding is the reference's separate table of the
pretrained folder's `gloss2ids.pkl`, read ×√d_model (`TranslationOptions.gloss_vocab_size`).
S2T adds `vl_mapper.mapping.{0,2}` (our V-L mapper) and its own visual head
(`recognition_network.visual_head.*`, retrained on the frozen 832-d backbone
features: it is not the S2G head), and appends the gloss embedding's `</s>` and
sign-language rows after each clip's mapped features (`suffix_ids`). An S2T
checkpoint has no backbone: serving video needs the S2G checkpoint as well.

TwoStream S2T checkpoints (TwoStream-SLT's joint, video and keypoint networks) all hold
the same heads: `visual_head` (RGB), `visual_head_keypoint`, `visual_head_fuse` (on the
keypoint and RGB features concatenated) and the pyramid's `*_remain.i` heads, which the
reference builds but never runs on features. Only the head named by the network's config
(`gloss_feature_ensemble`: fuse / rgb / keypoint) feeds its V-L mapper, so only that one
is imported (`FEATURE_HEADS`); the others play no part in its translation.

Generation as the reference's `TranslationNetwork.generate`: the decoder starts at
the pruned id of the spoken language (`de_DE`), `forced_eos_token_id` from the config.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from transformers import MBartConfig, MBartForConditionalGeneration

from slt_serve.errors import SltError
from slt_serve.manifest import GlossTable
from slt_training.models.translation import TranslationModel, TranslationOptions
from slt_training.models.visual_head import VisualHead

from .checkpoint import ReferenceCheckpoint
from .s2g import head_keys, head_options, map_state
from .vocab import ImportedVocab, check_size

MBART = "translation_network.model."
GLOSS_EMBEDDING = "translation_network.gloss_embedding.weight"
MAPPER = "vl_mapper.mapping."
HEAD = "recognition_network.visual_head"
SUFFIX_GLOSSES = ("</s>",)  # then the sign language's code, e.g. de_DGS, zh_CSL
# a TwoStream S2T network's `gloss_feature_ensemble` (fuse_gloss_feature, …) → (its head in
# the checkpoint, the block-4 features that head reads: `TwoStreamOptions.translation_heads`)
FEATURE_HEADS = {
    "fuse": ("visual_head_fuse", "joint"),
    "rgb": ("visual_head", "rgb"),
    "keypoint": ("visual_head_keypoint", "keypoint"),
}
TWO_STREAM_S2T_HEADS = {"visual_head", "visual_head_keypoint", "visual_head_fuse",
                        "visual_head_remain", "visual_head_keypoint_remain"}  # fmt: skip


@dataclass(frozen=True)
class ImportedTranslation:
    """What a G2T/S2T checkpoint becomes: the model, and for S2T its visual head."""

    model: TranslationModel
    head: VisualHead | None  # S2T: 832-d backbone features → gloss features (and logits)
    stream: str | None  # TwoStream S2T: the features its head reads (joint, rgb, keypoint)
    gloss_table: tuple[str, ...]  # the gloss embedding's rows (the folder's gloss2ids)
    sign_lang: str  # the source language token appended to every input (de_DGS, zh_CSL)


def read_config(folder: str | os.PathLike) -> MBartConfig:
    """The pretrained folder's `config.json` (mBART), read as JSON."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise SltError(
            f"{path}: missing; give the pretrained mBART folder the model was trained from"
        )
    try:
        return MBartConfig(**json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, TypeError, ValueError) as e:
        raise SltError(f"{path}: not an mBART config ({e})") from None


def gloss_suffix_ids(table: tuple[str, ...], sign_lang: str, source: str) -> tuple[int, ...]:
    missing = [t for t in (*SUFFIX_GLOSSES, sign_lang) if t not in table]
    if missing:
        raise SltError(f"{source}: the gloss table has no {missing}")
    return tuple(table.index(t) for t in (*SUFFIX_GLOSSES, sign_lang))


def reference_gloss_ids(glosses: list[str], table: tuple[str, ...], sign_lang: str) -> list[int]:
    """The reference's G2T source: each gloss lower-cased and looked up (unknown → <unk>),
    then `</s>` and the sign language's code (`GlossTokenizer_G2T`; `GlossTable`, as served)."""
    return GlossTable(glosses=table, sign_lang=sign_lang).source_ids(glosses)


def _translation_pairs(state: dict[str, Tensor]) -> list[tuple[str, str]]:
    pairs = []
    for key in state:
        if key.startswith(MBART):
            pairs.append((key, "mbart." + key[len(MBART) :]))
        elif key == GLOSS_EMBEDDING:
            pairs.append((key, "gloss_embedding.weight"))
        elif key.startswith(MAPPER):
            pairs.append((key, "mapper.net." + key[len(MAPPER) :]))
    return pairs


def build_translation(
    checkpoint: ReferenceCheckpoint,
    config: MBartConfig,
    gloss_table: tuple[str, ...],
    table_file: str,
    decoder_start_id: int,
    sign_lang: str = "de_DGS",
    head_vocab: tuple[ImportedVocab, str] | None = None,
    gloss_feature: str | None = None,
) -> ImportedTranslation:
    """Our model (eval mode) with every weight of a G2T or S2T checkpoint; an S2T
    head's gloss rows permuted to `head_vocab` (vocabulary, its file) when given.
    `gloss_feature`: a TwoStream S2T network's head (fuse, rgb, keypoint; its config's
    `gloss_feature_ensemble`, with or without `_gloss_feature` / `_gloss_probabilities`).

    An embedding V-L mapper (`vl_mapper.mapping.weight`, CSL-Daily's `VLMapper.type:
    embedding`) reads the head's gloss probabilities: its columns are permuted with the
    head's rows, so that it reads our class order."""
    state = checkpoint.state
    if checkpoint.kind not in ("g2t", "s2t"):
        raise SltError(f"{checkpoint.path}: a {checkpoint.kind} checkpoint, not G2T/S2T")
    if GLOSS_EMBEDDING not in state:
        raise SltError(f"{checkpoint.path}: no {GLOSS_EMBEDDING}")
    check_size(len(gloss_table), state[GLOSS_EMBEDDING].shape[0], table_file, checkpoint.path)
    vocab_rows = state[MBART + "model.shared.weight"].shape[0]
    if vocab_rows != config.vocab_size:
        raise SltError(
            f"config.json: vocab_size {config.vocab_size}, but {checkpoint.path} has {vocab_rows} "
            f"text tokens ({config.vocab_size} vs {vocab_rows}); give the pruned folder it was trained with"
        )
    s2t = checkpoint.kind == "s2t"
    head_name, stream = _feature_head(checkpoint, gloss_feature) if s2t else (HEAD, None)
    embedding = MAPPER + "weight" in state  # over gloss probabilities, not features
    options = TranslationOptions(
        input="features" if s2t else "gloss",
        feature_dim=state[MAPPER + ("weight" if embedding else "0.weight")].shape[1]
        if s2t
        else 512,
        mapper="embedding" if embedding else "mlp",
        gloss_vocab_size=len(gloss_table),
        suffix_ids=gloss_suffix_ids(gloss_table, sign_lang, table_file) if s2t else (),
    )
    config.decoder_start_token_id = decoder_start_id
    model = TranslationModel(MBartForConditionalGeneration(config), options)
    own = model.state_dict()
    pairs = [(t, o) for t, o in _translation_pairs(state) if o in own]
    tied = {t for t, o in _translation_pairs(state) if o not in own}  # tied copies v5 omits
    head = _head(checkpoint, head_vocab, head_name) if s2t else None
    translation_state = {
        k: v for k, v in state.items() if not k.startswith("recognition_network.") and k not in tied
    }
    if embedding:  # its columns follow the head's classes
        weight, rows = state[MAPPER + "weight"], head.classifier.weight.shape[0]
        if weight.shape[1] != rows:
            raise SltError(
                f"{checkpoint.path}: {MAPPER}weight reads {weight.shape[1]} gloss probabilities, "
                f"but {head_name} has {rows} classes ({weight.shape[1]} vs {rows})"
            )
        order = head_vocab[0].order if head_vocab is not None else tuple(range(rows))
        translation_state[MAPPER + "weight"] = weight[:, list(order)]
    mapped = map_state(translation_state, pairs, own, (), checkpoint.path)
    model.load_state_dict(mapped, strict=False)  # tied weights share the embedding
    _check_tied(model, state)
    model.mbart.generation_config.decoder_start_token_id = decoder_start_id
    model.mbart.generation_config.forced_eos_token_id = config.forced_eos_token_id
    return ImportedTranslation(model.eval(), head, stream, gloss_table, sign_lang)


def two_stream_s2t(checkpoint: ReferenceCheckpoint) -> bool:
    """An S2T checkpoint of TwoStream-SLT (keypoint and joint heads besides the RGB one)."""
    return any(k.startswith((f"{HEAD}_keypoint.", f"{HEAD}_fuse.")) for k in checkpoint.state)


def _feature_head(
    checkpoint: ReferenceCheckpoint, gloss_feature: str | None
) -> tuple[str, str | None]:
    """(the checkpoint's head that feeds the V-L mapper, the features it reads: None for
    SingleStream), refusing heads this import does not know."""
    heads = {k.split(".")[1] for k in checkpoint.state if k.startswith("recognition_network.")}
    if not two_stream_s2t(checkpoint):
        if heads != {"visual_head"}:
            raise SltError(f"{checkpoint.path}: S2T heads {sorted(heads)}, expected visual_head")
        if gloss_feature is not None:
            raise SltError(
                f"{checkpoint.path}: a SingleStream S2T checkpoint has one head; "
                f"drop the gloss feature {gloss_feature!r}"
            )
        return HEAD, None
    unknown = sorted(heads - TWO_STREAM_S2T_HEADS)
    if unknown:
        raise SltError(
            f"{checkpoint.path}: S2T heads {unknown} are not imported (shared_head pyramid?)"
        )
    name = (gloss_feature or "").removesuffix("_gloss_feature").removesuffix("_gloss_probabilities")
    if name not in FEATURE_HEADS:
        raise SltError(
            f"{checkpoint.path}: a TwoStream S2T network; say which head feeds its translation "
            f"({', '.join(FEATURE_HEADS)}: its config's gloss_feature_ensemble), got {gloss_feature!r}"
        )
    theirs, stream = FEATURE_HEADS[name]
    return f"recognition_network.{theirs}", stream


def _head(
    checkpoint: ReferenceCheckpoint, head_vocab: tuple[ImportedVocab, str] | None, name: str = HEAD
) -> VisualHead:
    """An S2T checkpoint's head `name`; rows in the reference's order without a vocabulary."""
    state = checkpoint.state
    rows = state[name + ".gloss_output_layer.weight"].shape[0]
    order = tuple(range(rows))
    if head_vocab is not None:
        vocab, vocab_file = head_vocab
        check_size(len(vocab.vocab), rows, vocab_file, checkpoint.path)
        order = vocab.order
    head = VisualHead(state[name + ".fc1.weight"].shape[1], rows, head_options(state, name))
    pairs = [(t, o.removeprefix("head.")) for t, o in head_keys(name, "head", state)]
    own = head.state_dict()
    head.load_state_dict(
        map_state({k: state[k] for k, _ in pairs}, pairs, own, order, checkpoint.path)
    )
    return head.eval()


def _check_tied(model: TranslationModel, state: dict[str, Tensor]) -> None:
    """Every tied copy in the checkpoint equals what our tied model now holds."""
    own = model.state_dict(keep_vars=False)
    for key, value in state.items():
        ours = "mbart." + key[len(MBART) :] if key.startswith(MBART) else None
        if ours in own and not torch.equal(own[ours], value.to(own[ours].dtype)):
            raise SltError(f"{key}: differs from the shared embedding it should be tied to")
