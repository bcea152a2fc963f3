"""`slt_serve.subtitles` and `slt_serve.render`: SRT/VTT files that parse back, the review
list, and the video with the translation drawn on (`slt translate --format`, `slt render`)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import srt
import webvtt

from slt_serve import sample_model
from slt_serve.errors import SltError
from slt_serve.subtitles import (
    MIN_CUE_S,
    subtitle_cues,
    subtitle_names,
    to_srt,
    to_vtt,
    write_subtitles,
)
from slt_serve.translator import GlossSpan, Result, Translator
from slt_serve.video import probe, read_frames

SPANS = [GlossSpan("TOMORROW", 0.16, 0.8, 0.9), GlossSpan("CHILD", 0.96, 1.44, 0.4),
         GlossSpan("SEE", 1.6, 1.62, 0.8)]  # fmt: skip
RESULT = Result(
    "TOMORROW CHILD SEE", "the child --> will\n\nsee it tomorrow.", SPANS, 2.5, {}, "m",
    -0.3, 0.7408, False,
)  # fmt: skip


def _vtt(text: str):
    return webvtt.from_buffer(io.StringIO(text)).captions


def test_srt_has_one_sentence_cue_timed_by_the_spans_and_parses_back():
    subs = list(srt.parse(to_srt(subtitle_cues(RESULT))))
    assert len(subs) == 1
    assert subs[0].start == timedelta(seconds=0.16) and subs[0].end == timedelta(seconds=1.62)
    assert subs[0].content == "the child → will see it tomorrow."  # no blank line, no arrow


def test_gloss_cues_in_srt_and_vtt_parse_back_with_their_spans():
    cues = subtitle_cues(RESULT, glosses=True)
    subs = list(srt.parse(to_srt(cues)))
    assert [s.content for s in subs] == ["the child → will see it tomorrow.", "TOMORROW", "CHILD", "SEE"]
    assert subs[2].start == timedelta(seconds=0.96) and subs[2].end == timedelta(seconds=1.44)
    assert subs[3].end - subs[3].start == timedelta(seconds=MIN_CUE_S)  # a short gloss lengthened
    captions = _vtt(to_vtt(cues))
    assert [c.text for c in captions] == [s.content for s in subs]
    assert captions[1].start == "00:00:00.160" and captions[0].end == "00:00:01.620"
    assert "line:0" not in to_vtt(cues).splitlines()[2] and "line:0" in to_vtt(cues).splitlines()[5]


def test_edge_cases_no_glosses_s2g_text_and_names(tmp_path):
    empty = Result("", "hello.", [], 3.0, {}, "m", -0.1, 0.9, False)
    assert [(c.start_s, c.end_s) for c in subtitle_cues(empty)] == [(0.0, 3.0)]
    s2g = Result("A B", "", SPANS[:2], 2.5, {}, "m", None, 0.65, False)
    assert subtitle_cues(s2g)[0].text == "A B"
    nothing = Result("", "", [], 1.0, {}, "m", None, 0.0, True)
    assert to_srt(subtitle_cues(nothing)) == ""
    assert _vtt(to_vtt(subtitle_cues(nothing))) == []
    names = subtitle_names(["/a/x.mp4", "/b/x.mp4", "/c/y.mov"], "srt")
    assert names["/c/y.mov"] == "y.srt" and len(set(names.values())) == 3
    assert names["/a/x.mp4"].startswith("x-") and names["/a/x.mp4"].endswith(".srt")
    with pytest.raises(SltError, match="choose one of"):
        write_subtitles(tmp_path / "x.ass", RESULT, "ass")


def _slt(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "slt_serve.cli", *args],
        capture_output=True, text=True, timeout=600, cwd=cwd,
    )  # fmt: skip


def test_slt_translate_writes_subtitles_and_the_review_list(tmp_path):
    r = _slt(
        "translate", "--sample", "--format", "vtt", "--gloss-cues", "--subtitles", "subs",
        "--review-below", "0.999", "--review-out", "review.jsonl", cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert "wrote 2 vtt file(s) to subs" in r.stdout and "review.jsonl: 2 video(s)" in r.stdout
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    for sample in sample_model.samples():
        # by name: the `slt` subprocess may import an installed copy of the package
        row = next(r for r in rows if Path(r["path"]).name == sample["video"].name)
        captions = webvtt.read(tmp_path / "subs" / f"{sample['video'].stem}.vtt").captions
        assert captions[0].text == row["text"]
        assert captions[1].text == row["gloss_spans"][0]["gloss"]
        assert len(captions) == len(row["gloss_spans"]) + 1
    review = [json.loads(line) for line in (tmp_path / "review.jsonl").read_text().splitlines()]
    assert [e["confidence"] for e in review] == sorted(r["confidence"] for r in rows)
    entry = review[0]
    assert {"name", "video", "confidence", "text", "glosses"} <= set(entry)
    assert set(entry["glosses"][0]) == {"gloss", "start_s", "end_s", "confidence"}
    # a rerun translates nothing (all in results.jsonl) and still lists them from the rows
    r = _slt("translate", "--sample", "--review-below", "0.999", "--review-out", "again.jsonl", cwd=tmp_path)
    assert r.returncode == 0 and "skipped 2" in r.stdout, r.stderr[-2000:]
    assert (tmp_path / "again.jsonl").read_text() == (tmp_path / "review.jsonl").read_text()
    r = _slt("translate", "--sample", "--out", "x.jsonl", "--review-below", "2", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("error: --review-below 2")
    r = _slt("translate", "--sample", "--out", "x.jsonl", "--gloss-cues", cwd=tmp_path)
    assert r.returncode == 2 and "--gloss-cues goes with" in r.stderr


def test_slt_translate_srt_files_parse_back(tmp_path):
    r = _slt("translate", "--sample", "--format", "srt", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    for sample in sample_model.samples():
        subs = list(srt.parse((tmp_path / "subtitles" / f"{sample['video'].stem}.srt").read_text()))
        assert [s.content for s in subs] == [sample["translation"]]


def test_render_draws_the_glosses_and_text_onto_every_frame(tmp_path):
    from slt_serve.render import ascii_text, render_video

    translator = Translator.from_bundle(sample_model.bundle_path())
    video = sample_model.samples()[0]["video"]
    done = render_video(translator, video, tmp_path / "out.mp4")
    assert done.result.text == sample_model.samples()[0]["translation"]
    original, drawn = read_frames(video), read_frames(done.path)
    assert drawn.shape == original.shape and done.frames == len(original)
    assert probe(done.path).fps == pytest.approx(probe(video).fps)
    first = done.result.gloss_spans[0]
    during = int(first.end_s * done.fps) - 1  # the first gloss and the sentence are shown
    diff = np.abs(drawn[during].astype(int) - original[during].astype(int))
    h = diff.shape[0]
    top, middle, bottom = diff[: h // 8].mean(), diff[3 * h // 8 : h // 2].mean(), diff[-h // 8 :].mean()
    assert top > 5 * middle and bottom > 5 * middle  # drawn on the bands, the signer untouched
    assert ascii_text("Grüße") == "Grue" and ascii_text("你好") == "??"
    r = _slt("render", str(video), "-o", str(tmp_path / "x.avi"), "--sample", cwd=tmp_path)
    assert r.returncode == 2 and "give an .mp4" in r.stderr
