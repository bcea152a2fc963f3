"""mBART construction and loading, and vocabulary pruning of a tiny mbart-large-cc25-layout folder."""

from __future__ import annotations

import json

import pytest
import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
from transformers import MBartConfig, MBartForConditionalGeneration

from slt_serve.errors import SltError
from slt_training.data.annotations import Clip, write_jsonl
from slt_training.text.mbart import build_mbart, load_mbart, parameter_count, preset
from slt_training.text.prune import VOCAB_MAP_FILE, prune_mbart
from slt_training.text.tokenizer import TextTokenizer, TokenizerOptions, train_tokenizer

LANGS = ["de_DE", "en_XX", "vi_VN", "zh_CN"]  # cc25 has 25; four make the same layout
PRETRAIN_TEXT = [
    "und nun die wettervorhersage für morgen donnerstag den zwölften august .",
    "mancherorts regnet es auch länger und ergiebig auch lokale überschwemmungen .",
    "im nordwesten bleibt es heute nacht meist trocken sonst kräftige schauer .",
    "the weather tomorrow will be sunny and warm in the south .",
    "tôi muốn đăng ký khám sức khỏe .",
    "regen schnee wind sonne wolken gewitter nebel frost",
] * 4
CORPUS = [
    Clip(name="a", gloss="REGEN MORGEN", text="morgen regnet es im norden ."),
    Clip(name="b", gloss="SONNE SUED", text="im süden scheint die sonne ."),
    Clip(name="c", gloss="WIND STARK", text="der wind weht kräftig ."),
]


def _cc25_tokenizer() -> Tokenizer:
    """A small Unigram tokenizer laid out as mbart-large-cc25's tokenizer.json."""
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(prepend_scheme="always")]
    )
    trainer = trainers.UnigramTrainer(
        vocab_size=150, special_tokens=["<s>", "<pad>", "</s>", "<unk>"], unk_token="<unk>"
    )
    tok.train_from_iterator(PRETRAIN_TEXT, trainer=trainer)
    tok.add_special_tokens([*LANGS, "<mask>"])
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s> en_XX",
        special_tokens=[("</s>", 2), ("en_XX", tok.token_to_id("en_XX"))],
    )
    return tok


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A tiny random mBART saved as mbart-large-cc25 is: config.json, weights, tokenizer.json."""
    folder = tmp_path_factory.mktemp("mbart-cc25")
    tok = _cc25_tokenizer()
    tok.save(str(folder / "tokenizer.json"))
    torch.manual_seed(0)
    config = MBartConfig(
        vocab_size=tok.get_vocab_size(), d_model=16, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
        decoder_ffn_dim=32, max_position_embeddings=64, scale_embedding=True,
        pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2,
    )  # fmt: skip
    model = MBartForConditionalGeneration(config)
    with torch.no_grad():  # cc25's bias is zero; a random one checks that its columns are kept
        model.final_logits_bias.normal_()
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def test_small_preset_has_the_reference_size():
    tok = train_tokenizer([c.text for c in CORPUS] * 3, [], TokenizerOptions(vocab_size=120))
    small = build_mbart(preset("small"), tok)
    non_embedding = parameter_count(small) - small.model.shared.weight.numel()
    # the data README's 6.6 M reference has 3+3 layers, d_model 256: ≈ 5.5 M without embeddings
    assert 5.0e6 < non_embedding < 6.0e6
    assert small.config.decoder_start_token_id == tok.lang_id
    assert small.config.pad_token_id == tok.pad_id == 1


def test_presets_are_checked():
    with pytest.raises(SltError, match="unknown"):
        preset("huge")
    with pytest.raises(SltError, match="multiple of heads"):
        preset("tiny", d_model=30, heads=4)


def test_load_refuses_incomplete_folders(tmp_path):
    with pytest.raises(SltError, match="not found"):
        load_mbart(tmp_path / "missing")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(SltError, match="no weights"):
        load_mbart(tmp_path)


def test_load_reads_bin_weights_offline(pretrained, tmp_path, monkeypatch):
    """A `.bin` folder loads (transformers reads it with weights_only) with the network cut."""
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("the network was touched")

    model = load_mbart(pretrained)
    # transformers 5 only writes safetensors; cc25's file is a pickled state dict
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    (tmp_path / "config.json").write_text((pretrained / "config.json").read_text())
    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    again = load_mbart(tmp_path)
    for (k, a), b in zip(model.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), k


def test_prune_keeps_logits_of_kept_tokens(pretrained, tmp_path):
    texts = [c.text for c in CORPUS]
    glosses = [c.glosses for c in CORPUS]
    result = prune_mbart(pretrained, texts, glosses, tmp_path / "pruned", lang="de_DE")
    old_tok = Tokenizer.from_file(str(pretrained / "tokenizer.json"))
    new_tok = TextTokenizer.load(result.out)
    vmap = json.loads((result.out / VOCAB_MAP_FILE).read_text())
    old_ids = vmap["old_ids"]
    # the id map is consistent: specials first, same strings, every corpus piece kept
    assert old_ids[:4] == [0, 1, 2, 3] and result.kept == len(old_ids) < result.old_vocab
    for new_id, old_id in enumerate(old_ids):
        assert new_tok.tokenizer.id_to_token(new_id) == old_tok.id_to_token(old_id)
    assert {int(k): v for k, v in vmap["old_to_new"].items()} == {
        o: n for n, o in enumerate(old_ids)
    }
    for text in texts:
        old = old_tok.encode(text, add_special_tokens=False).ids
        assert new_tok.pieces(text) == [vmap["old_to_new"][str(i)] for i in old]
    assert set(vmap["glosses"]) == {g for gs in glosses for g in gs}
    assert new_tok.glosses_as_tokens and new_tok.lang == "de_DE"
    assert len(new_tok) == result.kept + result.glosses

    old_model, new_model = load_mbart(pretrained).eval(), load_mbart(result.out).eval()
    assert new_model.config.vocab_size == len(new_tok)
    src_old = old_tok.encode(texts[0], add_special_tokens=False).ids + [
        2,
        old_tok.token_to_id("de_DE"),
    ]
    src_new = [vmap["old_to_new"][str(i)] for i in src_old]
    dec_old = [
        old_tok.token_to_id("de_DE"),
        *old_tok.encode(texts[1], add_special_tokens=False).ids,
    ]
    dec_new = [vmap["old_to_new"][str(i)] for i in dec_old]
    with torch.no_grad():
        a = old_model(input_ids=torch.tensor([src_old]), decoder_input_ids=torch.tensor([dec_old]))
        b = new_model(input_ids=torch.tensor([src_new]), decoder_input_ids=torch.tensor([dec_new]))
    torch.testing.assert_close(b.logits[..., : result.kept], a.logits[..., old_ids])


def test_prune_initialises_gloss_embeddings_from_sub_words(pretrained, tmp_path):
    result = prune_mbart(pretrained, [c.text for c in CORPUS], [["REGEN"]], tmp_path, "de_DE")
    old_tok = Tokenizer.from_file(str(pretrained / "tokenizer.json"))
    old_embed = load_mbart(pretrained).get_input_embeddings().weight
    new_embed = load_mbart(result.out).get_input_embeddings().weight
    pieces = old_tok.encode("regen", add_special_tokens=False).ids
    gloss_id = TextTokenizer.load(result.out).gloss_ids["REGEN"]
    torch.testing.assert_close(new_embed[gloss_id], old_embed[pieces].mean(0))


def test_prune_refuses_an_unknown_language(pretrained, tmp_path):
    with pytest.raises(SltError, match="xx_YY"):
        prune_mbart(pretrained, ["regen"], [], tmp_path, lang="xx_YY")


def test_cli_prune_mbart(pretrained, tmp_path):
    from typer.testing import CliRunner

    from slt_serve.cli import app

    write_jsonl(tmp_path / "ds" / "train.jsonl", CORPUS[:2])
    write_jsonl(tmp_path / "ds" / "dev.jsonl", CORPUS[2:])
    res = CliRunner().invoke(
        app, ["prune-mbart", str(pretrained), "--dataset", str(tmp_path / "ds"),
              "--out", str(tmp_path / "out"), "--lang", "de_DE"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "next:" in res.output
    tok = TextTokenizer.load(tmp_path / "out")
    assert set(tok.gloss_ids) == {g for c in CORPUS for g in c.glosses}  # dev glosses too
