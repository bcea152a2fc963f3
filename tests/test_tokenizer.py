"""The text tokenizer: training, round trips, gloss modes, saving, and no torch needed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from slt_serve.errors import SltError
from slt_training.text.tokenizer import (
    SPECIALS,
    TextTokenizer,
    TokenizerOptions,
    gloss_token,
    train_tokenizer,
)

GERMAN = [
    "und nun die wettervorhersage für morgen donnerstag den zwölften august .",
    "mancherorts regnet es auch länger und ergiebig auch lokale überschwemmungen .",
    "im nordwesten bleibt es heute nacht meist trocken örtlich mit blitz und donner .",
    "an der see weht ein frischer wind aus süd bis südwest , die grüße vom meer .",
]
VIETNAMESE = [
    "Tôi muốn đăng ký khám sức khỏe.",
    "Bác sĩ hỏi tôi có bị đau đầu không?",
    "Hôm nay trời mưa to ở Hà Nội.",
]
GLOSSES = [["REGEN", "MORGEN"], ["ĐĂNG-KÝ", "KHÁM"], ["SÜDWEST", "WIND"]]


def _train(**options) -> TextTokenizer:
    texts = (GERMAN + VIETNAMESE) * 5
    return train_tokenizer(texts, GLOSSES * 5, TokenizerOptions(vocab_size=200, **options))


def test_round_trip_keeps_umlauts_and_vietnamese_diacritics():
    tok = _train()
    for text in GERMAN + VIETNAMESE:
        ids = tok.target_ids(text)
        assert ids[-1] == tok.eos_id and tok.unk_id not in ids
        assert tok.decode(ids) == text
    assert tok.decode_batch([tok.target_ids(t) for t in VIETNAMESE]) == VIETNAMESE


def test_text_is_nfc_normalised():
    tok = _train()
    decomposed = "gru\u0308ße"  # u + combining diaeresis
    assert tok.decode(tok.target_ids(decomposed)) == "grüße"


def test_layout_is_mbarts():
    tok = _train(lang="vi_VN")
    vocab = tok.tokenizer.get_vocab()
    assert [vocab[s] for s in SPECIALS] == [0, 1, 2, 3]
    assert tok.lang == "vi_VN" and tok.decode([tok.lang_id, *tok.pieces("hôm nay")]) == "hôm nay"


def test_glosses_as_text_share_the_text_pieces():
    tok = _train(glosses="text")
    assert not tok.glosses_as_tokens
    src = tok.source_ids(["REGEN", "MORGEN"])
    assert src[-2:] == [tok.eos_id, tok.lang_id]
    assert src[:-2] == tok.pieces("regen morgen")


def test_glosses_as_tokens_are_one_id_each_and_never_decoded():
    tok = _train(glosses="tokens")
    assert tok.glosses_as_tokens
    src = tok.source_ids(["ĐĂNG-KÝ", "KHÁM", "NEVER-SEEN"])
    assert src == [
        tok.gloss_ids["ĐĂNG-KÝ"],
        tok.gloss_ids["KHÁM"],
        tok.unk_id,
        tok.eos_id,
        tok.lang_id,
    ]
    assert tok.decode(src) == ""  # gloss and language tokens are special
    # a gloss that is also a word of the text does not swallow it
    assert tok.tokenizer.token_to_id(gloss_token("REGEN")) not in tok.pieces("REGEN regnet")


def test_characters_let_unspaced_text_share_the_glosses_pieces(tmp_path):
    """Chinese: without `characters` BPE merges the unspaced text into pieces that the
    space-separated glosses never use; with it, both are the same characters."""
    texts = ["你们好！", "今天星期几？", "今天我想吃面条。", "他今年四岁。"] * 20
    glosses = [["你们", "好"], ["今天", "星期", "多少"], ["今天", "我", "想", "面"], ["他", "今天"]]

    def shared(tok: TextTokenizer) -> bool:
        return set(tok.source_ids(["今天", "星期"])[:-2]) <= set(tok.target_ids("今天星期几？"))

    merged = train_tokenizer(texts, glosses * 20, TokenizerOptions(vocab_size=200, lang="zh_CN"))
    assert not shared(merged)
    options = TokenizerOptions(vocab_size=200, lang="zh_CN", characters=True)
    tok = train_tokenizer(texts + ["Guten Morgen"] * 20, glosses * 20, options)
    assert shared(tok)
    assert all(len(tok.tokenizer.id_to_token(i).strip("▁")) <= 1 for i in tok.pieces("今天星期几"))
    assert len(tok.pieces("Morgen")) == 1  # other scripts still get sub-words
    tok.save(tmp_path)  # what serving reads: the same pieces, the text back without spaces
    again = TextTokenizer.load(tmp_path)
    for text in texts[:4]:
        assert again.target_ids(text) == tok.target_ids(text)
        assert again.decode(again.target_ids(text)) == text


def test_training_is_deterministic():
    a, b = _train(), _train()
    assert a.tokenizer.to_str() == b.tokenizer.to_str()


def test_save_and_load(tmp_path):
    tok = _train(glosses="tokens", lang="de_DE")
    path = tok.save(tmp_path)
    assert path.name == "tokenizer.json"
    again = TextTokenizer.load(tmp_path)
    assert again.lang == "de_DE" and again.gloss_ids == tok.gloss_ids and len(again) == len(tok)
    assert again.target_ids(GERMAN[0]) == tok.target_ids(GERMAN[0])


def test_bad_inputs_are_explained(tmp_path):
    with pytest.raises(SltError, match="not found"):
        TextTokenizer.load(tmp_path / "nothing.json")
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(SltError, match="not a tokenizers JSON"):
        TextTokenizer.load(tmp_path)
    with pytest.raises(SltError, match="no text"):
        train_tokenizer(["", " "], [], TokenizerOptions())
    with pytest.raises(SltError, match="gloss mode"):
        TokenizerOptions(glosses="words").verify()


def test_loads_without_torch_or_transformers(tmp_path):
    """Serving detokenises with only `tokenizers`: the module must not pull in torch."""
    _train().save(tmp_path)
    code = (
        "import sys; from slt_training.text.tokenizer import TextTokenizer; "
        f"t = TextTokenizer.load({str(tmp_path)!r}); print(t.decode(t.target_ids('für'))); "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, sys.modules.keys()"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "für"
