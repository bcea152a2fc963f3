"""The synthetic signed corpus: files in our format, ground truth that matches the
pixels, determinism, a grammar that reorders, distinct signs, resume, bad input."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import av
import numpy as np
import pytest

from slt_serve import skeleton
from slt_serve.errors import SltError
from slt_training.data.annotations import SPLITS, read_jsonl, split_path
from slt_training.data.synth import figure, lexicon, motion, render
from slt_training.data.synth.corpus import generate, options_for, plan_corpus
from slt_training.data.synth.grammar import Grammar
from slt_training.data.synth.signer import make_signer

TINY = dict(clips=6, size=64, signers=2)


def decode(path) -> np.ndarray:
    with av.open(str(path)) as f:
        return np.stack([fr.to_ndarray(format="rgb24") for fr in f.decode(video=0)])


def split_texts(root) -> dict[str, str]:
    return {s: split_path(root, s).read_text(encoding="utf-8") for s in SPLITS}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "corpus"
    opts = options_for("cpu", **TINY)
    result = generate(root, opts, workers=1)
    return root, opts, result


def test_annotations_validate_and_point_at_files(tiny):
    root, opts, result = tiny
    assert result.clips == {"train": 4, "dev": 1, "test": 1} and result.rendered == 6
    for split in SPLITS:
        for clip in read_jsonl(split_path(root, split)):
            assert clip.signer.startswith("signer") and clip.text[-1] in ".?"
            assert 2 <= len(clip.glosses) <= 6
            assert (root / clip.video).is_file() and clip.video == f"videos/{clip.name}.mp4"
            times = clip.model_extra["gloss_times"]
            assert [g for g, _, _ in times] == clip.glosses
            ends = [t for _, s, e in times for t in (s, e)]
            assert ends == sorted(ends) and 0 < ends[0] and ends[-1] < clip.num_frames / opts.fps
    meta = json.loads((root / "synth.json").read_text(encoding="utf-8"))
    assert meta["settings"]["clips"] == 6 and len(meta["lexicon"]) == opts.glosses


def test_keypoints_layout_and_inside_frame(tiny):
    root, opts, _ = tiny
    for clip in read_jsonl(split_path(root, "train")):
        with np.load(root / "keypoints" / f"{clip.name}.npz") as z:
            kp = z["keypoints"]
            assert float(z["fps"]) == opts.fps and int(z["width"]) == int(z["height"]) == 64
        assert kp.shape == (clip.num_frames, skeleton.NUM_KEYPOINTS, 3) and kp.dtype == np.float32
        score = kp[..., 2]
        assert set(np.unique(score)) <= {0.0, 1.0}
        seen = kp[score == 1]
        assert seen[:, :2].min() >= 0 and seen[:, :2].max() <= 63
        assert (score[:, skeleton.FEET] == 0).all() and (score[:, 13:17] == 0).all()
        assert (score[:, skeleton.FACE] == 1).mean() > 0.95  # the face is in the frame
        # hand wrists are the body's wrists; the dominant (right) hand is on the image's left
        assert np.allclose(
            kp[:, skeleton.LEFT_HAND.start, :2], kp[:, skeleton.INDEX["left_wrist"], :2]
        )
        assert np.allclose(
            kp[:, skeleton.RIGHT_HAND.start, :2], kp[:, skeleton.INDEX["right_wrist"], :2]
        )
        assert (kp[:, 6, 0] < kp[:, 5, 0]).all()  # right shoulder left of left shoulder


def test_skeleton_names_and_ranges():
    assert len(skeleton.NAMES) == 133 and skeleton.INDEX["right_wrist"] == 10
    assert skeleton.NAMES[skeleton.LEFT_HAND.start] == "left_hand_wrist"
    assert skeleton.NAMES[132] == "right_hand_pinky4"
    assert skeleton.FACE_PART_SLICES["outer_lip"] == slice(71, 83)
    assert len(skeleton.HAND_BONES) == 20


def test_video_decodes_to_annotated_frames(tiny):
    root, _, _ = tiny
    for split in SPLITS:
        for clip in read_jsonl(split_path(root, split)):
            frames = decode(root / clip.video)
            assert frames.shape == (clip.num_frames, 64, 64, 3)


def test_drawing_matches_keypoints(tiny):
    """Where the ground truth puts the dominant hand, the frame shows skin, not background."""
    root, _, _ = tiny
    clip = read_jsonl(split_path(root, "train"))[0]
    frames = decode(root / clip.video).astype(np.float32)
    with np.load(root / "keypoints" / f"{clip.name}.npz") as z:
        kp = z["keypoints"]
    signer = make_signer(int(clip.signer[-2:]), 0)
    palm = kp[:, skeleton.RIGHT_HAND][:, [0, 5, 17]].mean(1)  # between wrist and knuckles
    ok = [
        np.abs(frames[t, int(round(y)), int(round(x))] - signer.skin).max() < 60
        for t, (x, y, _) in enumerate(palm)
        if kp[t, skeleton.RIGHT_HAND, 2].all()
    ]
    assert len(ok) > 10 and np.mean(ok) > 0.8


def test_same_seed_same_corpus_other_seed_other_corpus(tiny, tmp_path):
    root, opts, _ = tiny
    again = tmp_path / "again"
    generate(again, opts, workers=2)  # the number of workers must not matter
    assert split_texts(again) == split_texts(root)
    for clip in read_jsonl(split_path(root, "dev")) + read_jsonl(split_path(root, "train"))[:1]:
        a, b = (np.load(r / "keypoints" / f"{clip.name}.npz")["keypoints"] for r in (root, again))
        assert np.array_equal(a, b)
        assert np.array_equal(decode(root / clip.video), decode(again / clip.video))
    for video in (root / "videos").glob("*.mp4"):  # the encoder too is reproducible
        assert video.read_bytes() == (again / "videos" / video.name).read_bytes()
    other = tmp_path / "other"
    generate(other, options_for("cpu", **TINY, seed=1), workers=1)
    assert split_texts(other)["train"] != split_texts(root)["train"]
    a = np.load(root / "keypoints" / "train00000.npz")["keypoints"]
    b = np.load(other / "keypoints" / "train00000.npz")["keypoints"]
    assert a.shape != b.shape or not np.allclose(a, b)


@pytest.mark.parametrize("lang", ["en", "vi"])
def test_gloss_order_differs_from_text_order(lang):
    lex = lexicon.build_lexicon(48, lang)
    forms = {e.gloss: e.word for e in lex.entries}
    grammar, rng = Grammar(lex), np.random.default_rng(0)
    sentences = [grammar.sample(rng) for _ in range(300)]
    for s in sentences:
        assert list(s.alignment) != sorted(s.alignment), s  # signed order ≠ spoken order
        for gloss, chunk in zip(s.glosses, s.alignment):  # each gloss aligns to its own word
            word = forms[gloss]
            assert s.chunks[chunk] in ((word.vi,) if lang == "vi" else word.en), (gloss, s)
        assert s.text == s.text.lower() and s.text[-1] in ".?"
    words = {w for s in sentences for g, w in zip(s.glosses, s.chunks) if g}
    texts = " ".join(s.text for s in sentences)
    if lang == "vi":  # diacritics and multi-syllable words glossed with hyphens
        assert "bác sĩ" in texts and any("-" in g for s in sentences for g in s.glosses)
        assert {"đã", "sẽ"} <= set(texts.split())  # function words with no sign
    else:
        assert {"the", "to"} <= set(texts.split())
    assert words


def test_dev_and_test_are_unseen_sentences_of_train_glosses():
    plans = plan_corpus(options_for("cpu", clips=300, size=64))
    by_split = {s: [p for p in plans if p.split == s] for s in SPLITS}
    train_glosses = {g for p in by_split["train"] for g in p.sentence.glosses}
    train_texts = {p.sentence.text for p in by_split["train"]}
    for split in ("dev", "test"):
        assert len(by_split[split]) == 30
        for p in by_split[split]:
            assert set(p.sentence.glosses) <= train_glosses
            assert p.sentence.text not in train_texts
    assert len({p.signer.id for p in plans}) == 6


def test_signs_are_distinct_motions():
    forms = lexicon.sign_forms()
    assert len({(f.location, f.movement, f.hands) for f in forms}) == len(forms)
    u = np.linspace(0, 1, 16)
    paths = np.stack(
        [
            np.concatenate([f.poses(u)[:, motion.RIGHT_WRIST], f.poses(u)[:, motion.LEFT_WRIST]], 1)
            for f in forms[:48]
        ]
    )
    gap = np.sqrt(((paths[:, None] - paths[None]) ** 2).sum(-1)).mean(-1)
    np.fill_diagonal(gap, np.inf)
    assert gap.min() > 0.2  # body units (a fifth of the shoulder width) for the CPU lexicon


def test_different_glosses_render_different_frames():
    signer = make_signer(0, 0)
    place = figure.Placement.for_signer(signer, 64, 64)
    bg = render.background(signer, place)
    u = np.linspace(0.1, 0.9, 5)
    lex = lexicon.build_lexicon(48)

    def frames(entry, noise_seed):
        kp = figure.keypoints(entry.sign.poses(u), signer, place)
        rng = np.random.default_rng(noise_seed)
        imgs = [render.add_noise(render.draw(k, signer, place, bg), signer.noise, rng) for k in kp]
        return np.stack(imgs).astype(np.float32), kp

    a, kp_a = frames(lex.entries[0], 0)
    a2, _ = frames(lex.entries[0], 1)
    for other in lex.entries[1:6]:
        b, kp_b = frames(other, 0)
        hands = np.concatenate([kp_a[:, 91:], kp_b[:, 91:]], 1)[..., :2]
        x0, y0 = np.clip(hands.min((0, 1)).astype(int), 0, 63)
        x1, y1 = np.clip(hands.max((0, 1)).astype(int) + 1, 1, 64)
        between = np.abs(a - b)[:, y0:y1, x0:x1].mean()
        within = np.abs(a - a2)[:, y0:y1, x0:x1].mean()  # same sign, other pixel noise
        assert between > 4 * within and between > 10, (other.gloss, between, within)


def test_resume_skips_finished_clips(tiny, tmp_path):
    root, opts, _ = tiny
    copy = tmp_path / "copy"
    generate(copy, opts, workers=1)
    victim = copy / "videos" / "train00001.mp4"
    original = victim.read_bytes()
    victim.unlink()
    keep = copy / "videos" / "train00000.mp4"
    mtime = keep.stat().st_mtime_ns
    result = generate(copy, opts, workers=1)
    assert (result.rendered, result.skipped) == (1, 5)
    assert keep.stat().st_mtime_ns == mtime and victim.read_bytes() == original


def test_folder_layout_has_no_glosses(tmp_path):
    root = tmp_path / "folder"
    generate(root, options_for("cpu", clips=3, size=32, signers=2, lang="vi", layout="folder"))
    with open(root / "sentences.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["name", "text", "signer"] and len(rows) == 3
    truth = read_jsonl(root / "ground_truth.jsonl")
    assert [c.name for c in truth] == [r["name"] for r in rows] and all(c.gloss for c in truth)
    assert sorted(p.stem for p in (root / "videos").glob("*.mp4")) == sorted(
        r["name"] for r in rows
    )
    assert not (root / "keypoints").exists() and not (root / "train.jsonl").exists()


@pytest.mark.parametrize(
    "bad",
    [
        dict(clips=2),
        dict(size=63),
        dict(size=16),
        dict(glosses=5),
        dict(glosses=10_000),
        dict(lang="fr"),
        dict(layout="zip"),
        dict(seed=-1),
        dict(fps=0.0),
        dict(signers=0),
    ],
)
def test_bad_options_are_user_errors(bad):
    with pytest.raises(SltError):
        options_for("cpu", **bad)


def test_bad_folders_and_presets_are_user_errors(tiny, tmp_path):
    root, opts, _ = tiny
    with pytest.raises(SltError, match="other settings"):
        generate(root, options_for("cpu", **TINY, seed=5))
    (tmp_path / "stranger.txt").write_text("x")
    with pytest.raises(SltError, match="not empty"):
        generate(tmp_path, opts)
    with pytest.raises(SltError, match="preset"):
        options_for("tpu")
    with pytest.raises(SltError, match="workers"):
        generate(tmp_path / "new", opts, workers=0)


def test_cli_writes_a_corpus_and_rejects_bad_input(tmp_path):
    def slt(*args):
        cmd = [sys.executable, "-m", "slt_serve.cli", "data", "synth", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    r = slt(str(tmp_path / "c"), "--clips", "3", "--size", "32", "--workers", "1", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "3 clips" in r.stdout and f"next: slt data vocab {tmp_path / 'c'}" in r.stdout
    r = slt(str(tmp_path / "d"), "--size", "33")
    assert (
        r.returncode == 2
        and r.stderr.startswith("error: --size 33")
        and "Traceback" not in r.stderr
    )
