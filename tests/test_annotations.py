import json

import pytest
from shared_data import DATA

from slt_serve.errors import SltError
from slt_training.data.annotations import (
    Clip,
    load_split,
    parse_splits,
    read_jsonl,
    split_path,
    write_jsonl,
)


def test_round_trip_keeps_extra_fields_and_unicode(tmp_path):
    clips = [
        Clip(name="a", gloss="TÔI  ĐĂNG-KÝ", text="Tôi đăng ký.", gloss_times=[["TÔI", 0.0, 1.2]]),
        Clip(name="dev/b", signer="S1", gloss="X", text="x", num_frames=12, video="videos/b.mp4"),
    ]
    path = tmp_path / "train.jsonl"
    write_jsonl(path, clips)
    assert "ĐĂNG-KÝ" in path.read_text(encoding="utf-8")  # not \u-escaped
    back = read_jsonl(path)
    assert back == [c.model_copy() for c in clips]
    assert back[0].gloss == "TÔI ĐĂNG-KÝ"  # whitespace normalised
    assert back[0].glosses == ["TÔI", "ĐĂNG-KÝ"]
    assert back[0].model_extra["gloss_times"] == [["TÔI", 0.0, 1.2]]


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"name": "", "text": "x"}', "field 'name'"),
        ('{"name": "a", "num_frames": -3}', "field 'num_frames'"),
        ('{"name": "a", "num_frames": "many"}', "field 'num_frames'"),
        ('{"text": "no name"}', "field 'name'"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_bad_line_names_file_line_and_field(tmp_path, line, message):
    path = tmp_path / "dev.jsonl"
    path.write_text('{"name": "ok"}\n\n' + line + "\n", encoding="utf-8")
    with pytest.raises(SltError) as e:
        read_jsonl(path)
    assert f"{path}:3:" in str(e.value)
    assert message in str(e.value)


def test_duplicate_names_are_refused(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text('{"name": "a"}\n{"name": "a"}\n', encoding="utf-8")
    with pytest.raises(SltError, match="already used on line 1"):
        read_jsonl(path)


def test_missing_split_says_what_exists(tmp_path):
    write_jsonl(split_path(tmp_path, "train"), [Clip(name="a")])
    with pytest.raises(SltError, match="found: train"):
        load_split(tmp_path, "dev")


def test_parse_splits(tmp_path):
    assert parse_splits("train, dev") == ["train", "dev"]
    write_jsonl(split_path(tmp_path, "dev"), [Clip(name="a")])
    assert parse_splits("all", tmp_path) == ["dev"]
    with pytest.raises(SltError, match="unknown split"):
        parse_splits("training")


def test_failed_write_leaves_previous_file_intact(tmp_path):
    path = tmp_path / "train.jsonl"
    write_jsonl(path, [Clip(name="a")])

    def clips():
        yield Clip(name="b")
        raise RuntimeError("crash mid-write")

    with pytest.raises(RuntimeError):
        write_jsonl(path, clips())
    assert [c.name for c in read_jsonl(path)] == ["a"]
    assert [p.name for p in tmp_path.iterdir()] == ["train.jsonl"]  # no temp file left


@pytest.mark.skipif(not DATA.is_dir(), reason="shared data folder not present")
@pytest.mark.parametrize("corpus, n_dev", [("phoenix-2014t", 519), ("csl-daily", 1077)])
def test_real_corpora_validate(corpus, n_dev):
    clips = read_jsonl(DATA / corpus / "dev.jsonl")
    assert len(clips) == n_dev
    assert all(c.gloss and c.text and c.num_frames for c in clips)
    first = json.loads((DATA / corpus / "dev.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert clips[0].name == first["name"] and clips[0].gloss == first["gloss"]


def test_written_files_get_the_usual_permissions(tmp_path):
    import stat

    from slt_serve import fileio

    write_jsonl(tmp_path / "train.jsonl", [Clip(name="a")])
    mode = stat.S_IMODE((tmp_path / "train.jsonl").stat().st_mode)
    assert mode == 0o666 & ~fileio._UMASK and mode & 0o044  # group/others can read
