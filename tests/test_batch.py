"""Offline batch translation: input discovery, shards, the results file and its resume."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest
from generated_clips import sliding_texture
from shared_data import REAL_CLIPS

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


# --- end to end, on a real tiny bundle ------------------------------------------------------


def clip(path, seed, frames=20):
    return sliding_texture(path, frames, seed=seed, axis=0)


def slt(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "slt_serve.cli", *map(str, args)],
        capture_output=True, text=True, cwd=cwd, timeout=300,
    )  # fmt: skip


def rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_slt_translate_folder_resume_error_rows_and_retry(s2t_bundle, s2t, tmp_path):
    videos = tmp_path / "videos"
    good = [clip(videos / "a" / f"c{i}.mp4", i) for i in range(3)]
    broken = touch(videos / "broken.mp4", b"not a video at all\n" * 10)
    out = tmp_path / "out" / "results.jsonl"

    r = slt("translate", videos, "--bundle", s2t_bundle, "--out", out, "--device", "cpu")
    assert r.returncode == 1, r.stderr  # one input failed; the others were translated
    assert "translated 3, failed 1, skipped 0" in r.stdout and "--retry-errors" in r.stdout
    first = {row["path"]: row for row in rows(out)}
    assert set(first) == {os.path.abspath(p) for p in [*good, broken]}
    bad = first[os.path.abspath(broken)]
    assert bad["ok"] is False and "not a readable video" in bad["error"]
    for p in good:
        row, want = first[os.path.abspath(p)], s2t.translate(p).to_dict()
        assert row["ok"] and (row["gloss"], row["text"]) == (want["gloss"], want["text"])
        assert row["gloss_spans"] == want["gloss_spans"]

    # a crash in the middle of a row, a new video, a rerun: only the new one is translated
    with open(out, "a", encoding="utf-8") as f:
        f.write('{"path": "/half')
    new = clip(videos / "new.mp4", 7)
    r = slt("translate", videos, "--bundle", s2t_bundle, "--out", out, "--device", "cpu")
    assert r.returncode == 1 and "translated 1, failed 0, skipped 4" in r.stdout, r.stdout
    assert "1 input(s) failed in an earlier run" in r.stdout
    assert [row["path"] for row in rows(out)][-1] == os.path.abspath(new)

    # the broken file is fixed; --retry-errors translates it again, its new row wins
    clip(broken, 9)
    r = slt("translate", videos, "--bundle", s2t_bundle, "--out", out, "--retry-errors", "--device", "cpu")  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "translated 1, failed 0, skipped 4" in r.stdout and "next: " in r.stdout
    assert batch.ResultsFile(out, "jsonl").done[os.path.abspath(broken)] is True


def test_workers_shards_and_csv_agree_with_one_worker(s2t, tmp_path):
    paths = [str(clip(tmp_path / f"v{i}.mp4", i, frames=12)) for i in range(6)]
    paths.append(str(tmp_path / "missing.mp4"))  # named in a manifest but not there

    one = batch.ResultsFile(tmp_path / "one.jsonl", "jsonl")
    summary = batch.run(s2t, paths, one, workers=1, progress=False)
    one.close()
    assert (summary.translated, summary.failed, summary.skipped) == (6, 1, 0)
    assert not summary.ok
    reference = {r["path"]: (r["ok"], r.get("text"), r.get("gloss")) for r in rows(tmp_path / "one.jsonl")}  # fmt: skip
    assert "no such video" in next(r["error"] for r in rows(tmp_path / "one.jsonl") if not r["ok"])

    got = {}
    for i in range(3):
        shard = batch.in_shard(paths, (i, 3))
        results = batch.ResultsFile(tmp_path / f"s{i}.csv", "csv")
        batch.run(s2t, shard, results, workers=2, progress=False)
        results.close()
        with open(tmp_path / f"s{i}.csv", newline="", encoding="utf-8") as f:
            for r in csv.DictReader(f):
                assert r["path"] not in got  # shards never overlap
                got[r["path"]] = (r["ok"] == "true", r["text"] or None, r["gloss"] or None)
                if r["ok"] == "true":
                    assert isinstance(json.loads(r["gloss_spans"]), list)
                    assert "total" in json.loads(r["timings_ms"])
    normalise = {p: (ok, text or None, gloss or None) for p, (ok, text, gloss) in reference.items()}
    assert got == normalise


def test_slt_translate_refusals(s2t_bundle, tmp_path):
    v = clip(tmp_path / "v.mp4", 0, frames=8)
    r = slt("translate", v)
    assert r.returncode == 2 and r.stderr.startswith("error: give a bundle folder"), r.stderr
    assert "--sample" in r.stderr
    r = slt("translate", v, "--bundle", s2t_bundle, "--sample")
    assert r.returncode == 2 and "not both" in r.stderr
    r = slt("translate", tmp_path / "nope.mp4", "--bundle", s2t_bundle)
    assert r.returncode == 2 and "no such file or folder" in r.stderr
    r = slt("translate", v, "--bundle", s2t_bundle, "--shard", "2/2")
    assert r.returncode == 2 and "--shard 2/2" in r.stderr and "Traceback" not in r.stderr


# --- hostile file names and the API's limits (issue 13) -------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_names_not_utf8_or_with_newlines_are_translated_once_and_resumed(s2t, tmp_path, fmt):
    folder = tmp_path / "v"
    folder.mkdir()
    odd = [
        os.fsdecode(os.fsencode(str(folder)) + b"/latin1_\xff.mp4"),  # not valid UTF-8
        str(folder / "two\nlines.mp4"),
        str(folder / "cr\rname.mp4"),
    ]
    for i, path in enumerate(odd):
        clip(path, i, frames=8)
    inputs = batch.discover([folder])
    assert sorted(inputs) == sorted(odd)
    out = tmp_path / f"r.{fmt}"
    results = batch.ResultsFile(out, fmt)
    summary = batch.run(s2t, inputs, results, progress=False)
    results.close()
    assert (summary.translated, summary.failed) == (3, 0)
    out.read_bytes().decode("utf-8")  # the results file is valid UTF-8
    results = batch.ResultsFile(out, fmt)  # a rerun: every name is recognised as done
    again = batch.run(s2t, inputs, results, progress=False)
    results.close()
    assert (again.translated, again.skipped) == (0, 3)
    if fmt == "jsonl":
        assert {row["path"] for row in rows(out)} == set(odd)


def test_api_limits_in_batch_and_each_failure_printed_once(s2t, tmp_path, capsys):
    short = clip(tmp_path / "short.mp4", 0, frames=10)
    long = clip(tmp_path / "long.mp4", 1, frames=60)  # 2.4 s
    still = touch(tmp_path / "still.mp4", b"\x89PNG\r\n\x1a\n" + bytes(64))
    limits = batch.DecodeLimits(max_seconds=1.0, max_frames=100, max_pixels=64 * 64)
    results = batch.ResultsFile(tmp_path / "r.jsonl", "jsonl")
    summary = batch.run(s2t, [str(short), str(long), str(still)], results, progress=False, limits=limits)  # fmt: skip
    results.close()
    assert (summary.translated, summary.failed) == (1, 2)
    errors = {r["path"]: r.get("error") for r in rows(tmp_path / "r.jsonl")}
    assert "lasts 2.4 s; the limit is 1 s" in errors[str(long)]
    assert "still image (PNG)" in errors[str(still)]
    printed = capsys.readouterr().err
    for path in (long, still):
        assert printed.count(str(path)) == 1, printed




@pytest.mark.skipif(not REAL_CLIPS.is_dir(), reason="needs ../shared/data/real-clips")
def test_every_real_clip_translates_with_the_sample_model(tmp_path):
    """Phone, webcam and dictionary clips, one with a variable frame rate whose header lists
    one frame more than it decodes (issue 15): all translated, as any player plays them."""
    out = tmp_path / "r.jsonl"
    r = slt("translate", "--sample", REAL_CLIPS, "--out", out)
    assert r.returncode == 0, r.stdout + r.stderr
    got = rows(out)
    clips = [p for p in REAL_CLIPS.iterdir() if p.suffix.lower() in batch.VIDEO_SUFFIXES]
    assert len(got) == len(clips) and all(row["ok"] and row["text"] for row in got), got
