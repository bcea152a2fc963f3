import json

import pytest
from shared_data import DATA

from slt_serve.errors import SltError
from slt_serve.vocab import GlossVocab
from slt_training.data.annotations import Clip
from slt_training.data.vocab import build_vocab, coverage


def clips(*glosses):
    return [Clip(name=str(i), gloss=g) for i, g in enumerate(glosses)]


def test_specials_first_then_sorted_and_stable_under_reordering():
    a = build_vocab(clips("B A C", "A D"))
    b = build_vocab(clips("A D", "B A C"))
    assert a.glosses == ("<blank>", "<pad>", "<unk>", "A", "B", "C", "D")
    assert a == b
    assert (a.blank_id, a.pad_id, a.unk_id) == (0, 1, 2)


def test_min_freq_drops_rare_glosses():
    v = build_vocab(clips("A B", "A C", "A B"), min_freq=2)
    assert v.glosses[3:] == ("A", "B")


def test_encode_decode_and_unknown():
    v = build_vocab(clips("HALLO WELT"))
    ids = v.encode(["WELT", "NEU", "HALLO"])
    assert ids == [4, v.unk_id, 3]
    assert v.decode([0, 4, 1, 3]) == ["WELT", "HALLO"]


def test_save_load_round_trip(tmp_path):
    v = build_vocab(clips("ĐĂNG-KÝ TÔI"))
    path = tmp_path / "gloss_vocab.json"
    v.save(path)
    table = json.loads(path.read_text(encoding="utf-8"))
    assert table["<blank>"] == 0 and table["ĐĂNG-KÝ"] == 4
    assert GlossVocab.load(path) == v


@pytest.mark.parametrize(
    "content, message",
    [
        pytest.param('{"<blank>": 0, "<pad>": 1, "<unk>": 2, "A": 5}', "no gaps", id="id-gap"),
        pytest.param('{"A": 0, "<pad>": 1, "<unk>": 2}', "must start with", id="specials-late"),
        pytest.param('["A"]', "gloss → integer id", id="not-a-table"),
        pytest.param("{", "not a JSON", id="not-json"),
    ],
)
def test_load_rejects_bad_tables(tmp_path, content, message):
    path = tmp_path / "gloss_vocab.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SltError, match=message):
        GlossVocab.load(path)


def test_missing_vocab_names_the_command(tmp_path):
    with pytest.raises(SltError, match="slt data vocab"):
        GlossVocab.load(tmp_path / "gloss_vocab.json")


def test_empty_train_glosses_point_to_gloss_from_text():
    with pytest.raises(SltError, match="gloss-from-text"):
        build_vocab(clips("", ""))


def test_coverage_counts_oov():
    v = build_vocab(clips("A B"))
    c = coverage(v, clips("A X", "X Y B"))
    assert (c.clips, c.tokens, c.oov_tokens, c.oov_types) == (2, 5, 3, 2)
    assert c.oov_rate == pytest.approx(60.0)


@pytest.mark.skipif(not DATA.is_dir(), reason="shared data folder not present")
def test_phoenix_vocab_and_dev_oov_match_a_plain_count():
    from slt_training.data.annotations import read_jsonl

    train = read_jsonl(DATA / "phoenix-2014t" / "train.jsonl")
    dev = read_jsonl(DATA / "phoenix-2014t" / "dev.jsonl")
    v = build_vocab(train)
    # independent route: raw JSON, str.split, sets
    raw = [json.loads(line) for line in (DATA / "phoenix-2014t" / "train.jsonl").open()]
    train_glosses = {g for r in raw for g in r["gloss"].split()}
    dev_tokens = [
        g
        for r in map(json.loads, (DATA / "phoenix-2014t" / "dev.jsonl").open())
        for g in r["gloss"].split()
    ]
    assert len(v) - 3 == len(train_glosses)
    c = coverage(v, dev)
    assert c.tokens == len(dev_tokens)
    assert c.oov_tokens == sum(g not in train_glosses for g in dev_tokens)
    assert 0 < c.oov_rate < 1  # PHOENIX-2014T dev is almost covered by train
