"""`manifest.json`: what a bundle is, as one frozen, typed, versioned model.

`Manifest` is written by the export (`slt_export.bundle`) and read by everything
that serves a bundle (`Translator`, the API, the demo, batch) through attributes;
nobody indexes a dict. `parse_manifest` checks, in this order, and refuses with one
line naming the field and what to do:

1. the text is JSON, an object, and `format` is "slt-bundle";
2. `format_version` is a whole number, not newer than this code reads (`FORMAT_VERSION`),
   not older (re-export);
3. the schema: every section, type and name (pydantic, strict, unknown keys refused);
4. `digest`: the sha256 of the manifest's own canonical JSON (every key but `digest`,
   sorted, compact, UTF-8). The manifest lists every file's sha256 and size, so
   this one value stands for the whole bundle.

What the digest protects against: any edit of `manifest.json` after export (a model
name, a decoding setting, a file hash) made without recomputing it, and, together with
the per-file hashes `load_bundle` checks, any changed, truncated or swapped file.
What it does not: it is a checksum, not a signature; someone who can write the folder
can recompute it. A deployer who wants that pins it: `slt serve --digest sha256:…`
(`TranslateOptions.expect_digest`) refuses any other bundle, and `/v1/model` and the
startup line show the digest served.

Sections are optional where a bundle kind has no use for them (a G2T bundle has no
`input`). To record a new behaviour (say, BGR input for a reference checkpoint), add an
optional field whose default means today's behaviour: older bundles keep loading, and an
older slt-serve refuses a bundle that sets it ("upgrade slt-serve": unknown keys are
never ignored, so no reader serves a behaviour it cannot honour). A change that older
bundles cannot be read under bumps `FORMAT_VERSION`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from slt_serve.beam_search import BeamSettings
from slt_serve.errors import SltError

FORMAT = "slt-bundle"
FORMAT_VERSION = 2  # 2: top-level `digest`; `input.channels` dropped (motion_channels says it)
DIGEST_PREFIX = "sha256:"

Kind = Literal["single_stream", "two_stream", "g2t"]
Stage = Literal["s2t", "g2t", "s2g"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputSpec(_Section):
    """What the recognizer reads (`input`): frame rate, geometry, normalisation, keypoints."""

    fps: float  # frames per second the recognizer reads (the dataset's ÷ frame_stride)
    frame_size: int  # frames are first resized to this square side (training's cache)
    input_size: int  # side of the network input, after the eval centre crop
    mean: tuple[float, float, float]  # per RGB channel, on [0, 1] values
    std: tuple[float, float, float]  # per RGB channel
    motion_channels: bool = False  # 6 channels: RGB + difference to the previous frame
    eval_crop: float = 1.0  # side of the centre crop, as a fraction of frame_size
    keypoints: tuple[int, ...] | None = None  # indices into the pose layout (TwoStream)
    keypoint_layout: str | None = None  # e.g. coco_wholebody_133
    # two_stream: the pose model run at serve time when the bundle carries no pose.onnx;
    # "mediapipe_holistic" needs the `pose` extra (slt_serve.pose_mediapipe); None: pose.onnx
    pose_model: Literal["mediapipe_holistic"] | None = None
    window_frames: int = 256  # frames per s2g run; longer inputs run in windows
    context_frames: int = 16  # extra frames each side of a window, outputs discarded
    source_fps: float | None = None  # the dataset's frame rate (None: same as fps)
    frame_stride: int = 1  # training kept every frame_stride-th frame of the source
    # "square": resize to frame_size, the centre eval_crop, resize to input_size (ours);
    # "reference_center_crop": the raw frame's centre input_size² window, zero-padded where
    # the frame is smaller, never resized (TwoStream-SLT's SingleStream eval; imported runs);
    # "reference_resize": the raw frame resized straight to input_size² bilinearly on float
    # values, no antialiasing, keypoints scaled with it (TwoStream-SLT's TwoStream eval)
    geometry: Literal["square", "reference_center_crop", "reference_resize"] = "square"

    @property
    def channels(self) -> int:
        return 6 if self.motion_channels else 3

    def crop_box(self) -> tuple[float, float, float, float]:
        """(x0, y0, width, height) of the eval centre crop, in frame_size pixels."""
        side = self.frame_size * self.eval_crop
        offset = (self.frame_size - side) / 2
        return (offset, offset, side, side)


class Recognition(_Section):
    """The S2G graph's vocabulary and gloss decoding (`recognition`)."""

    vocab_size: int
    blank_id: int = 0
    ctc_beam_size: int = Field(1, ge=1)  # 1: greedy; above: CTC prefix beam search
    feature_stride: int = 4  # frames per output step
    feature_dim: int


class GlossTable(_Section):
    """A G2T model's own gloss vocabulary (`translation.gloss_table`; models imported from
    TwoStream-SLT, whose gloss embedding is not the text vocabulary): each gloss of a
    sequence is looked up lower-cased (unknown: `<unk>`), then `</s>` and `sign_lang`
    follow (the reference's `GlossTokenizer_G2T`)."""

    glosses: tuple[str, ...]  # in id order (the pretrained folder's gloss2ids)
    sign_lang: str  # the sign language's token, e.g. de_DGS

    @model_validator(mode="after")
    def _has_specials(self) -> GlossTable:
        missing = [g for g in ("<unk>", "</s>", self.sign_lang) if g not in self.glosses]
        if missing:
            raise ValueError(f"the gloss table has no {missing}")
        return self

    def source_ids(self, glosses: Sequence[str]) -> list[int]:
        """Encoder input ids of a gloss sequence."""
        ids = {g: i for i, g in enumerate(self.glosses)}
        tail = [ids["</s>"], ids[self.sign_lang]]
        return [ids.get(g.lower(), ids["<unk>"]) for g in glosses] + tail


class EnsembleMember(_Section):
    """One more translation network of an ensemble (`translation.ensemble[i]`): its own
    graph files and shapes; it shares the first network's vocabulary, tokenizer and
    generation settings. An S2T member reads its own `feature_dim` columns of the
    recogniser's features, after the first network's and the members' before it."""

    encoder: str  # its encoder graph, e.g. encoder.1.onnx
    decoder: str  # its one-step decoder graph, e.g. decoder.1.onnx
    feature_dim: int | None = None  # S2T only
    decoder_layers: int
    heads: int
    head_dim: int
    d_model: int
    max_source_positions: int
    source_suffix: int = Field(0, ge=0)


class Translation(_Section):
    """The mBART graphs' shapes (`translation`).

    `ensemble` (empty: one network, encoder.onnx + decoder.onnx) lists the networks
    after the first one; one beam search runs over all of them, each with its own
    decoder cache, on the mean of their next-token probabilities (TwoStream-SLT's
    multi-source ensemble). An S2T ensemble's recogniser features are its networks'
    sources side by side (`feature_dim` columns each, the first network's first).
    """

    source: Literal["features", "input_ids"]  # S2T reads features, G2T gloss sub-word ids
    feature_dim: int | None = None  # S2T only
    lang: str  # target language code of the tokenizer, e.g. en_XX
    decoder_layers: int
    heads: int
    head_dim: int
    d_model: int
    vocab_size: int
    max_source_positions: int  # longest source the encoder takes; longer ones are cut
    # rows encoder.onnx appends after each source's valid steps (imported TwoStream-SLT S2T:
    # `</s>` and the sign language token); the decoder's source mask covers them too
    source_suffix: int = Field(0, ge=0)
    gloss_table: GlossTable | None = None  # G2T with its own gloss table; None: the tokenizer's
    ensemble: tuple[EnsembleMember, ...] = ()  # the other networks of an ensemble

    def networks(self) -> list[tuple[Translation, str | None, str | None]]:
        """Each network as (its shapes, its encoder file, its decoder file): the first one
        with None for encoder.onnx and decoder.onnx, then the ensemble's members."""
        first = self.model_copy(update={"ensemble": ()})
        members = [
            (
                first.model_copy(update=m.model_dump(exclude={"encoder", "decoder"})),
                m.encoder,
                m.decoder,
            )
            for m in self.ensemble
        ]
        return [(first, None, None), *members]


class Generation(_Section):
    """Beam search over decoder.onnx (`generation`)."""

    num_beams: int = Field(ge=1)
    length_penalty: float
    max_length: int = Field(ge=2)  # tokens including the decoder start token
    decoder_start_token_id: int
    eos_token_id: int
    pad_token_id: int
    forced_eos: bool = True  # only EOS at the last position (mBART's forced_eos_token_id)
    # the beam search rule (`slt_serve.beam_search`): "transformers" (5.x, our own runs) or
    # "reference" (4.11.3's, models imported from TwoStream-SLT were scored with it)
    search: Literal["transformers", "reference"] = "transformers"

    def beam_settings(self, num_beams: int | None = None) -> BeamSettings:
        """These settings for `beam_search`; `num_beams` overrides the width."""
        return BeamSettings(
            num_beams=num_beams or self.num_beams,
            length_penalty=self.length_penalty,
            max_length=self.max_length,
            decoder_start_id=self.decoder_start_token_id,
            eos_id=self.eos_token_id,
            pad_id=self.pad_token_id,
            forced_eos=self.forced_eos,
            search=self.search,
        )


class GraphIO(_Section):
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


class Graphs(_Section):
    """Input and output names of each ONNX graph (`graphs`)."""

    s2g: GraphIO | None = None
    s2g_stem: GraphIO | None = None  # an int8 recogniser's stem (`slt_serve.s2g.STEM_GRAPH`)
    encoder: GraphIO | None = None
    decoder: GraphIO | None = None


class Versions(_Section):
    """Package versions the export ran with (`versions`)."""

    slt_serve: str
    torch: str | None = None
    transformers: str | None = None
    onnx: str | None = None
    onnxruntime: str | None = None
    onnxscript: str | None = None
    opset: int | None = None


class S2GParity(_Section):
    clips: int
    frames: tuple[int, ...]
    max_rel_diff: float
    same_glosses: int


class TranslationParity(_Section):
    sources: int
    max_rel_diff: float
    same_tokens: int


class Parity(_Section):
    """What the export checked against PyTorch (`parity`)."""

    max_rel_diff: float  # max |onnx − torch| / max(1, max |torch|) over every check
    tolerance: float
    s2g: S2GParity | None = None
    translation: TranslationParity | None = None


class Quantization(_Section):
    """What int8 quantisation changed (`quantization`; null when none)."""

    method: str
    megabytes_before: float
    megabytes_after: float
    max_rel_diff: float
    same_glosses: str | None = None  # "2/2": clips whose glosses still match PyTorch
    fp32_same_glosses: str | None = None
    same_tokens: str | None = None  # "3/3": sources whose tokens still match PyTorch
    fp32_same_tokens: str | None = None
    float_same_glosses: str | None = None  # "8/8": calibration clips whose glosses the int8
    # s2g.onnx gives as the float one did (static int8 of the recogniser)


class Confidence(_Section):
    """Thresholds under which a gloss / a result is unsure, fitted on dev at export
    (`confidence`; `slt_serve.confidence`). None: the documented defaults are used."""

    gloss_threshold: float = Field(ge=0.0, le=1.0)  # on a gloss span's raw confidence
    sentence_threshold: float = Field(ge=0.0, le=1.0)  # on a result's raw confidence
    # (raw, calibrated) steps of the isotonic fit on dev, raw ascending: the confidence served
    gloss_curve: tuple[tuple[float, float], ...] = ()
    sentence_curve: tuple[tuple[float, float], ...] = ()
    gloss_measure: Literal["mean"] = "mean"  # the CTC posterior averaged over the span
    target_accuracy: float  # the fitted dev accuracy each threshold reaches
    split: str  # the dev split it was fitted on
    clips: int = Field(ge=1)
    glosses: int = Field(ge=0)
    gloss_ece: float  # expected calibration error on dev (10 bins)
    sentence_ece: float
    sentence_accuracy: float  # share of dev results judged correct


class FileEntry(_Section):
    """One file of the bundle (`files[name]`)."""

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)


class Manifest(_Section):
    """The whole `manifest.json`; see the module docstring."""

    format: Literal["slt-bundle"] = FORMAT
    format_version: int = FORMAT_VERSION
    name: str
    kind: Kind
    stage: Stage
    created: str  # ISO 8601, UTC
    input: InputSpec | None = None  # s2t, s2g
    recognition: Recognition | None = None  # s2t, s2g
    translation: Translation | None = None  # s2t, g2t
    generation: Generation | None = None  # s2t, g2t
    graphs: Graphs = Graphs()
    versions: Versions
    parity: Parity
    quantization: Quantization | None = None
    metrics: dict[str, Any] = {}  # the run's dev/test scores, as training wrote them
    confidence: Confidence | None = None  # thresholds fitted on dev (None: the defaults)
    files: dict[str, FileEntry]  # every file of the folder but manifest.json
    digest: str = ""  # DIGEST_PREFIX + sha256 of the rest; `sealed()` fills it

    def to_json(self) -> dict:
        """The JSON object written to manifest.json (a one-network bundle's has no
        `translation.ensemble`, a bundle without a stem graph no `graphs.s2g_stem`: its
        manifest is what it was before them)."""
        data = self.model_dump(mode="json")
        if data.get("translation") and not data["translation"]["ensemble"]:
            del data["translation"]["ensemble"]
        if data["graphs"].get("s2g_stem") is None:  # nor, unless it has one, a stem graph
            del data["graphs"]["s2g_stem"]
        return data

    def sealed(self) -> Manifest:
        """This manifest with `digest` computed over everything else."""
        return self.model_copy(update={"digest": manifest_digest(self.to_json())})


def manifest_digest(data: dict) -> str:
    """DIGEST_PREFIX + sha256 of the canonical JSON of `data` without its `digest` key."""
    body = {k: v for k, v in data.items() if k != "digest"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return DIGEST_PREFIX + hashlib.sha256(text.encode("utf-8")).hexdigest()


def parse_manifest(text: str, where: str) -> Manifest:
    """A manifest.json's text → `Manifest`, or `SltError` naming `where` and the field."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise SltError(f"{where}: not valid JSON ({e}); re-export the bundle") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SltError(f"{where}: not an slt-serve bundle manifest; re-export the bundle")
    _check_version(data.get("format_version"), where)
    try:
        manifest = Manifest.model_validate_json(text, strict=True)
    except ValidationError as e:
        raise SltError(_schema_message(e, where)) from None
    if manifest.digest != manifest_digest(data):
        raise SltError(
            f"{where}: digest does not match the manifest's content: manifest.json was edited "
            "after export; restore it from the original bundle or re-export"
        )
    return manifest


def _check_version(version: object, where: str) -> None:
    if not isinstance(version, int) or isinstance(version, bool):
        raise SltError(
            f"{where}: format_version must be a whole number (this slt-serve reads "
            f"{FORMAT_VERSION}), got {version!r}; re-export the bundle"
        )
    if version > FORMAT_VERSION:
        raise SltError(
            f"{where}: bundle format {version} is newer than this slt-serve reads "
            f"({FORMAT_VERSION}); upgrade slt-serve"
        )
    if version < FORMAT_VERSION:
        raise SltError(
            f"{where}: bundle format {version} is older than {FORMAT_VERSION}; "
            "re-export it with `slt export model`"
        )


def _schema_message(error: ValidationError, where: str) -> str:
    first = error.errors()[0]
    field = "".join(
        f"[{p}]" if isinstance(p, int) else (f".{p}" if str(p).isidentifier() else f"[{p!r}]")
        for p in first["loc"]
    ).lstrip(".")
    more = error.error_count() - 1
    also = f" (and {more} more problem{'s' * (more > 1)})" if more else ""
    if first["type"] == "extra_forbidden":
        return (
            f"{where}: {field}: not a field this slt-serve knows{also}; upgrade slt-serve, "
            "or re-export the bundle with this version"
        )
    got = first.get("input")
    shown = f", got {type(got).__name__} {_short(got)}" if first["type"] != "missing" else ""
    return (
        f"{where}: {field or 'manifest'}: {first['msg'].lower()}{shown}{also}; "
        "re-export the bundle or restore its manifest.json"
    )


def _short(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 40 else text[:37] + "..."
