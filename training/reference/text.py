"""The reference's pruned text vocabulary as our `tokenizer.json`, and its text output.

The pruned mBART folder (`utils/prune_embedding.ipynb`) keeps the cc25 tokenizer
unchanged and maps ids through `map_ids.pkl` (old → new; `old2new_vocab.pkl` in some
releases): new ids 0-3 `<s> <pad> </s> <unk>`, then the 25 language codes, `<mask>`,
then every sub-word the corpus uses. `pruned_tokenizer` writes the same id layout as
one tokenizer whose only special language token is the spoken language (`de_DE`);
the other codes stay ordinary pieces at their ids (the model rarely emits them; the
reference's decoder drops them, as `reference_text` does).

`reference_text` is `TextTokenizer.batch_decode` of the reference: drop the start
token, drop specials and language codes, join pieces, transformers 4.11.3's
`clean_up_tokenization`, and for German a final "." preceded by a letter becomes " .".
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from tokenizers import Tokenizer

from slt_serve.errors import SltError
from slt_serve.tokenizer import SPECIALS, TextTokenizer
from slt_training.data.slrt_pickle import load_slrt_dict

LANG_CODE = re.compile(r"^[a-z]{2}_[A-Z]{2}$")  # cc25's language codes: de_DE, zh_CN, …
MASK = "<mask>"
# transformers 4.11.3 `PreTrainedTokenizerBase.clean_up_tokenization`, in its order
CLEAN_UP = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
            (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))  # fmt: skip


def read_map_ids(path: str | os.PathLike) -> dict[int, int]:
    """old id → new id from `map_ids.pkl` / `old2new_vocab.pkl` (restricted unpickler) or
    a JSON `{"pairs": [[old, new], …]}`."""
    path = Path(path)
    if path.suffix == ".json":
        table = {int(o): int(n) for o, n in json.loads(path.read_text(encoding="utf-8"))["pairs"]}
    else:
        table = load_slrt_dict(path, "pruned id map (map_ids.pkl)")
    if not all(isinstance(k, int) and isinstance(v, int) for k, v in table.items()):
        raise SltError(f"{path}: expected old id → new id integers")
    if sorted(table.values()) != list(range(len(table))):
        raise SltError(f"{path}: new ids must be 0..{len(table) - 1}, each once")
    return table


def pruned_tokenizer(
    tokenizer_json: str | os.PathLike, map_ids: dict[int, int], lang: str
) -> TextTokenizer:
    """The folder's full tokenizer (Unigram `tokenizer.json`) cut to the pruned ids."""
    spec = json.loads(Path(tokenizer_json).read_text(encoding="utf-8"))
    if spec.get("model", {}).get("type") != "Unigram":
        raise SltError(f"{tokenizer_json}: expected the cc25 (Unigram) tokenizer.json")
    pieces = spec["model"]["vocab"]
    for token in spec.get("added_tokens", []):  # the language codes and <mask> live here
        while len(pieces) <= token["id"]:
            pieces.append(None)
        pieces[token["id"]] = pieces[token["id"]] or [token["content"], 0.0]
    new_vocab = [pieces[old] for old, _ in sorted(map_ids.items(), key=lambda kv: kv[1])]
    contents = [p[0] for p in new_vocab]
    if tuple(contents[: len(SPECIALS)]) != SPECIALS or lang not in contents:
        raise SltError(
            f"{tokenizer_json}: the pruned ids do not start with {SPECIALS} or lack {lang}"
        )
    keep = set(SPECIALS) | {lang, MASK}
    spec["model"] |= {"vocab": new_vocab, "unk_id": SPECIALS.index("<unk>")}
    spec["added_tokens"] = [
        {
            "id": i,
            "content": c,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }  # fmt: skip
        for i, c in enumerate(contents)
        if c in keep
    ]
    spec["post_processor"] = None  # our TextTokenizer adds `</s> LANG` itself
    return TextTokenizer(Tokenizer.from_str(json.dumps(spec)))


def reference_text(ids: list[int], tokenizer: TextTokenizer, lang: str) -> str:
    """The reference's text for generated `ids` (start token first)."""
    vocab = tokenizer.tokenizer.get_vocab(with_added_tokens=True)
    dropped = {i for t, i in vocab.items() if t in SPECIALS or t == MASK or LANG_CODE.match(t)}
    text = tokenizer.tokenizer.decode(
        [i for i in ids[1:] if i not in dropped], skip_special_tokens=True
    )
    text = text.strip()
    for old, new in CLEAN_UP:
        text = text.replace(old, new)
    if lang.startswith("de") and len(text) > 2 and text[-1] == "." and text[-2] != " ":
        text = text[:-1] + " ."
    return text
