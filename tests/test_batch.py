"""Offline batch translation: input discovery, shards, the results file and its resume."""

from __future__ import annotations

import json
import os

import pytest

from slt_serve import batch
from slt_serve.errors import SltError


def touch(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# --- discovery ------------------------------------------------------------------------------


def test_discover_folders_recursively_by_extension_files_and_manifests(tmp_path):
    a = touch(tmp_path / "vids" / "b" / "a.MP4")
    c = touch(tmp_path / "vids" / "c.webm")
    touch(tmp_path / "vids" / "notes.txt")
    touch(tmp_path / "vids" / "b" / "meta.json")
    single = touch(tmp_path / "other" / "clip.mkv")
    frames = tmp_path / "frames" / "clip1"
    frames.mkdir(parents=True)
    manifest = tmp_path / "list.txt"
    manifest.write_text("# comment\n\nother/clip.mkv\nframes/clip1\nmissing.mp4\n")

    found = batch.discover([tmp_path / "vids", single, manifest])

    assert found == [
        os.path.abspath(a),
        os.path.abspath(c),
        os.path.abspath(single),  # named twice (directly and in the manifest): kept once
        os.path.abspath(frames),  # a folder of frames, through the manifest
        os.path.abspath(tmp_path / "missing.mp4"),  # kept: it becomes an error row
    ]


def test_discover_refuses_a_missing_path_and_a_folder_without_videos(tmp_path):
    with pytest.raises(SltError, match="no such file or folder"):
        batch.discover([tmp_path / "nope"])
    touch(tmp_path / "empty" / "readme.md")
    with pytest.raises(SltError, match="no videos in this folder"):
        batch.discover([tmp_path / "empty"])
    bad = touch(tmp_path / "bad.txt", b"\xff\xfe\x00bad")
    with pytest.raises(SltError, match="not a UTF-8 text manifest"):
        batch.discover([bad])


# --- shards ---------------------------------------------------------------------------------


def test_shards_are_disjoint_cover_everything_and_keep_their_files_when_files_are_added():
    paths = [f"/data/clip{i:04d}.mp4" for i in range(400)]
    shards = [batch.in_shard(paths, (i, 4)) for i in range(4)]
    assert sorted(p for s in shards for p in s) == sorted(paths)
    assert sum(len(s) for s in shards) == len(paths)
    assert all(60 < len(s) < 140 for s in shards)  # a hash spreads them
    grown = paths + [f"/data/new{i}.mp4" for i in range(50)]
    for i in range(4):
        assert set(shards[i]) <= set(batch.in_shard(grown, (i, 4)))


@pytest.mark.parametrize("spec", ["4/4", "-1/4", "1", "a/b", "0/0", "1/2/3"])
def test_a_bad_shard_is_refused(spec):
    with pytest.raises(SltError, match="--shard"):
        batch.parse_shard(spec)


def test_shard_parses_and_names_its_default_output():
    assert batch.parse_shard("3/8") == (3, 8)
    assert str(batch.default_out((3, 8), None)) == "results.3-of-8.jsonl"
    assert str(batch.default_out(None, "csv")) == "results.csv"
    assert batch.format_for(batch.default_out(None, "csv"), None) == "csv"
    with pytest.raises(SltError, match="--format xml"):
        batch.format_for(batch.default_out(None, None), "xml")


# --- the results file -----------------------------------------------------------------------


def ok_row(path, text="hello"):
    return {"path": path, "ok": True, "gloss": "HELLO", "text": text, "gloss_spans": [],
            "duration_s": 1.0, "timings_ms": {"total": 3.0}, "model": "m"}  # fmt: skip


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_results_resume_drops_a_half_written_last_row(tmp_path, fmt):
    out = tmp_path / f"r.{fmt}"
    results = batch.ResultsFile(out, fmt)
    results.write(ok_row("/a.mp4", 'multi\nline, "quoted"'))
    results.write({"path": "/b.mp4", "ok": False, "error": "corrupt"})
    results.close()
    with open(out, "a", encoding="utf-8") as f:  # a crash in the middle of a row
        f.write('{"path": "/c.mp4", "ok": tr' if fmt == "jsonl" else '/c.mp4,true,"HEL')

    results = batch.ResultsFile(out, fmt)
    assert results.done == {"/a.mp4": True, "/b.mp4": False}
    results.write(ok_row("/c.mp4"))
    results.close()
    assert batch.ResultsFile(out, fmt).done == {"/a.mp4": True, "/b.mp4": False, "/c.mp4": True}
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3 + (fmt == "csv")  # one line a row (+ the header)
    if fmt == "jsonl":
        assert json.loads(lines[0])["text"] == 'multi\nline, "quoted"'


def test_results_refuse_a_foreign_file_and_a_second_writer(tmp_path):
    foreign = tmp_path / "other.csv"
    foreign.write_text("name,score\nx,1\n")
    with pytest.raises(SltError, match="other columns"):
        batch.ResultsFile(foreign, "csv")
    notes = tmp_path / "notes.jsonl"
    notes.write_text("not json\n")
    with pytest.raises(SltError, match=r"notes.jsonl:1: not a row"):
        batch.ResultsFile(notes, "jsonl")
    first = batch.ResultsFile(tmp_path / "r.jsonl", "jsonl")
    with pytest.raises(SltError, match="another `slt translate` is writing"):
        batch.ResultsFile(tmp_path / "r.jsonl", "jsonl")
    first.close()
    batch.ResultsFile(tmp_path / "r.jsonl", "jsonl").close()
