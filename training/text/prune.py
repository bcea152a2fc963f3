"""Shrink a pretrained mBART's 250k vocabulary to the tokens a corpus uses, and add gloss tokens.

mbart-large-cc25 carries 250 027 token embeddings (≈ 256 M of its 610 M
parameters); a sign language corpus uses a few thousand of them (TwoStream-SLT:
2 498 for PHOENIX-2014T German, 6 386 for CSL-Daily Chinese). Pruning keeps `<s>`,
`<pad>`, `</s>`, `<unk>` at ids 0-3, then every piece the corpus text (and the
gloss text) is split into, in their old order, then the language token; it then
appends one token per gloss (`<gloss:NAME>`) whose embedding is the mean of the
embeddings of the gloss's sub-words (the gloss lowercased, as text).

Output folder (loadable by `load_mbart` and `TextTokenizer.load`):

    config.json  model.safetensors  generation_config.json   the pruned model
    tokenizer.json                                            the pruned vocabulary, our layout
    vocab_map.json                                            old → new ids, glosses, provenance

For the kept ids the pruned model computes exactly the logits the original
computes for them: the rows of the shared embedding / LM head and of
`final_logits_bias` are copied, nothing else changes.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer
from transformers import MBartForConditionalGeneration

from slt_serve.errors import SltError
from slt_serve.fileio import write_json

from .mbart import check_pretrained_folder, load_mbart
from .tokenizer import SPECIALS, TOKENIZER_FILE, TextTokenizer, gloss_token, glosses_as_text

logger = logging.getLogger(__name__)

VOCAB_MAP_FILE = "vocab_map.json"
# parameters with one row (or, for the bias, one column) per token
VOCAB_ROWS = (
    "model.shared.weight",
    "model.encoder.embed_tokens.weight",
    "model.decoder.embed_tokens.weight",
    "lm_head.weight",
)
VOCAB_COLUMNS = ("final_logits_bias",)


@dataclass(frozen=True)
class PruneResult:
    """What `prune_mbart` wrote."""

    out: Path  # the output folder
    old_vocab: int  # tokens before
    kept: int  # tokens kept from the old vocabulary (specials and language token included)
    glosses: int  # gloss tokens added after them
    parameters_before: int
    parameters_after: int


def read_tokenizer_json(folder: Path) -> dict:
    """The pretrained tokenizer as JSON; it must be a Unigram (SentencePiece) model."""
    path = folder / TOKENIZER_FILE
    if not path.is_file():
        raise SltError(
            f"{folder}: no {TOKENIZER_FILE}; mbart-large-cc25 ships one next to "
            "sentencepiece.bpe.model: copy it into the folder"
        )
    spec = json.loads(path.read_text(encoding="utf-8"))
    if spec.get("model", {}).get("type") != "Unigram":
        raise SltError(f"{path}: expected a Unigram (SentencePiece) model as mBART's")
    vocab = spec["model"]["vocab"]
    if [p for p, _ in vocab[: len(SPECIALS)]] != list(SPECIALS):
        raise SltError(f"{path}: the first tokens are not {SPECIALS} as in mBART")
    return spec


def kept_ids(tokenizer: Tokenizer, texts: Sequence[str], lang: str) -> list[int]:
    """Old ids to keep, ascending: the specials, every piece of `texts`, the language token."""
    lang_id = tokenizer.token_to_id(lang)
    if lang_id is None:
        raise SltError(f"language token {lang!r} is not in the pretrained vocabulary (e.g. de_DE)")
    used = {i for enc in tokenizer.encode_batch(list(texts), add_special_tokens=False)
            for i in enc.ids}  # fmt: skip
    return sorted(used | set(range(len(SPECIALS))) | {lang_id})


def pruned_tokenizer_json(spec: dict, keep: list[int], lang: str, glosses: list[str]) -> str:
    """The old tokenizer with only `keep` (renumbered), the language token and gloss tokens."""
    pieces = spec["model"]["vocab"]
    by_id = {t["id"]: t for t in spec["added_tokens"]}
    new_vocab = [pieces[i] if i < len(pieces) else [by_id[i]["content"], 0.0] for i in keep]
    added = [t for t in spec["added_tokens"] if t["content"] in (*SPECIALS, lang)]
    new_id = {p: i for i, (p, _) in enumerate(new_vocab)}
    added = [{**t, "id": new_id[t["content"]]} for t in added]
    template = {k: added[0][k] for k in ("single_word", "lstrip", "rstrip", "normalized")}
    added += [
        {"id": len(new_vocab) + k, "content": gloss_token(g), "special": True, **template}
        for k, g in enumerate(glosses)
    ]
    new = {**spec, "added_tokens": added, "post_processor": None}
    new["model"] = {**spec["model"], "vocab": new_vocab, "unk_id": SPECIALS.index("<unk>")}
    return json.dumps(new, ensure_ascii=False)


def gloss_embeddings(
    embed: torch.Tensor, tokenizer: Tokenizer, glosses: list[str], unk_id: int
) -> torch.Tensor:
    """(G, d): each gloss's embedding, the mean of its sub-words' (`<unk>`'s if it has none)."""
    rows = []
    for g in glosses:
        ids = tokenizer.encode(glosses_as_text([g]), add_special_tokens=False).ids or [unk_id]
        rows.append(embed[ids].mean(dim=0))
    return torch.stack(rows) if rows else embed.new_zeros(0, embed.size(1))


def pruned_model(
    model: MBartForConditionalGeneration, keep: list[int], gloss_rows: torch.Tensor, lang_id: int
) -> MBartForConditionalGeneration:
    """A new mBART with the vocabulary rows `keep` (+ gloss rows); special ids remapped."""
    old_to_new = {old: new for new, old in enumerate(keep)}
    index = torch.tensor(keep)
    state = {}
    for k, v in model.state_dict().items():
        if k in VOCAB_ROWS:
            v = torch.cat([v[index], gloss_rows.to(v.dtype)])
        elif k in VOCAB_COLUMNS:
            v = torch.cat([v[:, index], v.new_zeros(v.size(0), len(gloss_rows))], dim=1)
        state[k] = v
    config = model.config.__class__.from_dict(model.config.to_dict())
    config.vocab_size = len(keep) + len(gloss_rows)
    for name in ("pad_token_id", "bos_token_id", "eos_token_id", "forced_eos_token_id"):
        if getattr(config, name, None) is not None:
            setattr(config, name, old_to_new[getattr(config, name)])
    config.decoder_start_token_id = old_to_new[lang_id]  # the decoder starts at the language
    config.forced_bos_token_id = None
    new = MBartForConditionalGeneration(config)
    new.load_state_dict(state, strict=True)
    new.generation_config.decoder_start_token_id = config.decoder_start_token_id
    new.generation_config.forced_bos_token_id = None
    return new.eval()


def prune_mbart(
    pretrained: str | os.PathLike,
    texts: Sequence[str],
    glosses: Sequence[Sequence[str]],
    out: str | os.PathLike,
    lang: str,
    gloss_tokens: bool = True,
) -> PruneResult:
    """Prune `pretrained` to the pieces of `texts` and the glosses; write the result to `out`."""
    folder, out = check_pretrained_folder(pretrained), Path(out)
    spec = read_tokenizer_json(folder)
    old_tok = Tokenizer.from_str(json.dumps(spec))
    gloss_set = sorted({g for seq in glosses for g in seq}) if gloss_tokens else []
    keep = kept_ids(old_tok, [*texts, *(glosses_as_text(g) for g in glosses if g)], lang)
    model = load_mbart(folder)
    old_vocab = model.config.vocab_size
    if len(old_tok.get_vocab()) > old_vocab:
        raise SltError(f"{folder}: tokenizer has more tokens than the model's vocab_size")
    embed = model.get_input_embeddings().weight.detach()
    rows = gloss_embeddings(embed, old_tok, gloss_set, SPECIALS.index("<unk>"))
    new = pruned_model(model, keep, rows, old_tok.token_to_id(lang))
    tok_json = pruned_tokenizer_json(spec, keep, lang, gloss_set)
    tokenizer = TextTokenizer(Tokenizer.from_str(tok_json))  # checks the layout before writing
    new.save_pretrained(out, safe_serialization=True)
    tokenizer.save(out / TOKENIZER_FILE)
    write_json(out / VOCAB_MAP_FILE, _vocab_map(folder, keep, gloss_set, lang, old_vocab))
    result = PruneResult(out, old_vocab, len(keep), len(gloss_set),
                         _count(model), _count(new))  # fmt: skip
    logger.info(
        "pruned %s: %d → %d tokens + %d glosses", folder, old_vocab, len(keep), len(gloss_set)
    )
    return result


def _vocab_map(folder: Path, keep: list[int], glosses: list[str], lang: str, old: int) -> dict:
    return {
        "source": str(folder),
        "old_vocab_size": old,
        "lang": lang,
        "old_ids": keep,  # new id i is old id old_ids[i]
        "old_to_new": {str(o): n for n, o in enumerate(keep)},
        "glosses": {g: len(keep) + k for k, g in enumerate(glosses)},
    }


def _count(model) -> int:
    return sum(p.numel() for p in model.parameters())
