"""`slt_export.bundle`: tiny random models → bundles; ONNX against PyTorch; refusals."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import tiny_bundles as tb
import torch

from slt_serve.beam_search import BeamSettings
from slt_serve.bundle import MANIFEST, load_bundle
from slt_serve.errors import SltError
from slt_serve.manifest import manifest_digest
from slt_serve.onnx_session import CPU, open_session
from slt_serve.seq2seq import CacheShape, Seq2Seq
from slt_serve.translator import TranslateOptions, Translator
from slt_training.models.translation import GenerateOptions

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture(scope="module")
def g2t(tmp_path_factory):
    return tb.g2t_bundle(tmp_path_factory.mktemp("b") / "g2t", quantize="int8")


def test_single_stream_s2t_bundle_layout_manifest_and_parity(single):
    result = single[0]
    files = sorted(p.name for p in result.path.iterdir())
    assert files == sorted(
        ["decoder.onnx", "encoder.onnx", "gloss_vocab.json", MANIFEST, "s2g.onnx", "tokenizer.json"]
    )
    m = load_bundle(result.path).manifest  # verifies
    assert m == result.manifest
    assert json.loads((result.path / MANIFEST).read_text()) == m.to_json()
    assert (m.kind, m.stage, m.name) == ("single_stream", "s2t", "single")
    assert m.input.motion_channels and m.input.channels == 6
    assert m.input.fps == tb.FPS and m.recognition.ctc_beam_size == 5
    assert m.generation.num_beams == 3 and m.generation.forced_eos
    assert m.metrics == {"dev": {"bleu4": 1.5}}
    assert m.versions.opset >= 17 and m.versions.torch == torch.__version__
    assert set(m.files) == set(files) - {MANIFEST}
    assert all(len(f.sha256) == 64 and f.bytes > 0 for f in m.files.values())
    assert m.digest == manifest_digest(m.to_json()) and m.digest.startswith("sha256:")
    p = m.parity
    assert p.s2g.same_glosses == p.s2g.clips == 3  # 12, 21 frames and a whole window
    assert p.s2g.frames[-1] == m.input.window_frames + 2 * m.input.context_frames
    assert p.translation.same_tokens == p.translation.sources == 3
    assert p.max_rel_diff < 1e-4


def test_s2g_graph_has_a_dynamic_time_axis(single):
    result, recognizer, *_ = single
    session = open_session(result.path / "s2g.onnx", [CPU])
    for frames in (9, 24, 61):
        x = torch.randn(
            frames, 6, tb.SIZE, tb.SIZE, generator=torch.Generator().manual_seed(frames)
        )
        feeds = {"frames": x.numpy(), "first_step": np.asarray(0, dtype=np.int64)}
        log_probs, features = session.run(None, feeds)
        with torch.no_grad():
            want = recognizer(x.permute(1, 0, 2, 3)[None], torch.tensor([frames]))
        assert log_probs.shape == (-(-frames // 4), len(tb.vocab()))
        np.testing.assert_allclose(log_probs, want.gloss_log_probs[0].numpy(), atol=1e-4)
        np.testing.assert_allclose(features, want.gloss_features[0].numpy(), atol=1e-4)


def test_numpy_beam_search_matches_transformers_generate(single):
    """Beam widths, length penalties and a max length short enough to force EOS."""
    result, _, model, _ = single
    t = result.manifest.translation
    seq = Seq2Seq.open(result.path / "encoder.onnx", result.path / "decoder.onnx", t, [CPU])
    rng = np.random.default_rng(1)
    for i, (beams, penalty, max_length) in enumerate([(1, 1.0, 9), (4, 1.5, 16), (5, 0.6, 6)]):
        source = (rng.standard_normal((1, 4 + 3 * i, tb.HIDDEN)) * (1 + i)).astype(np.float32)
        mask = np.ones(source.shape[:2], dtype=np.int64)
        options = GenerateOptions(num_beams=beams, length_penalty=penalty, max_length=max_length)
        want = model.generate(torch.from_numpy(mask), options, features=torch.from_numpy(source))
        settings = BeamSettings(beams, penalty, max_length, model.decoder_start_id, model.eos_id, 1)
        assert seq.generate(source, mask, settings)[0] == want[0].tolist()


class _StackedStep(torch.nn.Module):
    """The decoder graph as bundles before per-layer caches took it: every layer's caches
    stacked in one (layers, N, heads, steps, head_dim) tensor each."""

    def __init__(self, mbart) -> None:
        super().__init__()
        from slt_export.mbart_onnx import DecoderStep

        self.step = DecoderStep(mbart)

    def forward(self, input_ids, mask, cross_keys, cross_values, past_keys, past_values):
        caches = []
        for layer in zip(past_keys, past_values, cross_keys, cross_values):
            caches += layer
        logits, *present = self.step(input_ids, mask, *caches)
        return logits, torch.stack(present[0::2]), torch.stack(present[1::2])


def test_decoder_takes_each_layers_cache_and_stacked_bundles_still_translate(single, tmp_path):
    from slt_export.dynamo import export_graph

    result, _, model, _ = single
    m = result.manifest.translation
    decoder = open_session(result.path / "decoder.onnx", [CPU])
    names = [i.name for i in decoder.get_inputs()]
    assert tuple(names) == result.manifest.graphs.decoder.inputs
    assert len(names) == 2 + 4 * m.decoder_layers
    assert names[2:6] == [
        "past_key_values.0.decoder.key",
        "past_key_values.0.decoder.value",
        "past_key_values.0.encoder.key",
        "past_key_values.0.encoder.value",
    ]
    # the same step exported as bundles before took it, every layer stacked
    hyps, source, past = (torch.export.Dim(x, min=m) for x, m in (("h", 1), ("s", 2), ("p", 0)))
    cross, cache = {1: hyps, 3: source}, {1: hyps, 3: past}
    stack = (m.decoder_layers, 3, m.heads)
    example = (
        torch.zeros(3, 1, dtype=torch.long),
        torch.ones(3, 5, dtype=torch.long),
        *(torch.randn(*stack, 5, m.head_dim) for _ in range(2)),
        *(torch.randn(*stack, 4, m.head_dim) for _ in range(2)),
    )
    inputs = ["input_ids", "encoder_attention_mask", "cross_keys", "cross_values"]
    inputs += ["past_keys", "past_values"]
    proto = export_graph(
        _StackedStep(model.mbart).eval(),
        example,
        inputs,
        ["logits", "present_keys", "present_values"],
        ({0: hyps}, {0: hyps, 1: source}, cross, cross, cache, cache),
    )
    (tmp_path / "stacked.onnx").write_bytes(proto.SerializeToString())
    stacked = open_session(tmp_path / "stacked.onnx", [CPU])
    encoder = open_session(result.path / "encoder.onnx", [CPU])
    shape = CacheShape(m.decoder_layers, m.heads, m.head_dim)
    per_layer, old = Seq2Seq(encoder, decoder, shape, 256), Seq2Seq(encoder, stacked, shape, 256)
    assert not per_layer.feeding.stacked and old.feeding.stacked
    sources = np.random.default_rng(3).standard_normal((2, 7, tb.HIDDEN)).astype(np.float32)
    mask = np.ones((2, 7), dtype=np.int64)
    for beams in (3, 1):
        settings = BeamSettings(beams, 1.0, 12, model.decoder_start_id, model.eos_id, 1)
        new_scored = per_layer.generate_scored(sources, mask, settings)
        old_scored = old.generate_scored(sources, mask, settings)
        assert [t for t, _ in new_scored] == [t for t, _ in old_scored]
        assert [s for _, s in new_scored] == pytest.approx([s for _, s in old_scored], abs=1e-5)
    per_layer.release_memory()  # a one-hypothesis step with arena shrinkage, either layout
    old.release_memory()
    assert per_layer.generate(sources, mask, settings) == [t for t, _ in new_scored]


def test_beam_search_batches_sources_like_one_at_a_time(single):
    result, _, model, _ = single
    m = result.manifest.translation
    encoder = open_session(result.path / "encoder.onnx", [CPU])
    decoder = open_session(result.path / "decoder.onnx", [CPU])
    seq = Seq2Seq(encoder, decoder, CacheShape(m.decoder_layers, m.heads, m.head_dim), 256)
    rng = np.random.default_rng(2)
    sources = rng.standard_normal((3, 7, tb.HIDDEN)).astype(np.float32)
    mask = np.ones((3, 7), dtype=np.int64)
    settings = BeamSettings(3, 1.0, 12, model.decoder_start_id, model.eos_id, 1)
    batched = seq.generate(sources, mask, settings)
    alone = [seq.generate(sources[i : i + 1], mask[:1], settings)[0] for i in range(3)]
    assert batched == alone


def test_int8_s2t_bundle_keeps_the_recogniser_float(tmp_path):
    """Dynamic int8 would scale the head's activations by each window's range: s2g.onnx stays
    as exported, so windows keep giving one run's glosses; encoder and decoder are int8."""
    import onnx

    result, *_ = tb.s2t_bundle(tmp_path / "q", quantize="int8-text")
    ops = {n: {o.op_type for o in onnx.load(result.path / n).graph.node} for n in result.files if n.endswith(".onnx")}  # fmt: skip
    assert not ops["s2g.onnx"] & {"DynamicQuantizeLinear", "MatMulInteger"}
    assert "MatMulInteger" in ops["decoder.onnx"]
    q = result.manifest.quantization
    assert q.same_glosses == q.fp32_same_glosses == "3/3" and "encoder and decoder" in q.method


def test_int8_g2t_bundle_reports_the_change_and_translates(g2t):
    result, model, tok = g2t
    assert result.manifest.stage == "g2t" and result.manifest.kind == "g2t"
    assert "s2g.onnx" not in result.files and "gloss_vocab.json" not in result.files
    q = result.manifest.quantization
    assert q == result.quantization and q.megabytes_after < q.megabytes_before
    assert q.same_tokens.endswith("/3") and q.fp32_same_tokens == "3/3"
    translator = Translator.from_bundle(result.path, TranslateOptions(device="cpu"))
    assert translator.provider == CPU and translator.kind == "g2t"
    got = translator.translate_gloss(tb.SENTENCES[0][0])
    assert isinstance(got.text, str) and got.gloss == "" and got.gloss_spans == []


def test_g2t_fp32_bundle_matches_pytorch_text():
    result, model, tok = tb.shared("g2t", tb.g2t_bundle)
    translator = Translator.from_bundle(result.path)
    for gloss, _ in tb.SENTENCES:
        ids = torch.tensor([tok.source_ids(gloss.split())])
        want = model.translate(tok, torch.ones_like(ids), tb.GENERATION, input_ids=ids)[0]
        result = translator.translate_gloss(gloss)
        assert result.text == want
        assert result.timings_ms["decoder"] > 0 and result.timings_ms["total"] > 0
    with pytest.raises(SltError, match="translate_gloss"):
        translator.translate_frames(tb.random_video(), 25.0)
    with pytest.raises(SltError, match="no glosses"):
        translator.translate_gloss("   ")


def test_export_calibrates_confidence_on_dev_clips_and_says_when_it_did_not(tmp_path, single):
    from slt_export.bundle import DevSet, summary
    from slt_training.data.annotations import Clip

    clips = tuple(
        Clip(name=f"dev{i}", gloss=gloss, text=text) for i, (gloss, text) in enumerate(tb.SENTENCES)
    )
    result, *_ = tb.g2t_bundle(tmp_path / "g2t", dev=DevSet("dev", tmp_path, clips))
    c = result.manifest.confidence
    assert (c.split, c.clips, c.glosses, c.target_accuracy) == ("dev", len(clips), 0, 0.5)
    assert 0 <= c.sentence_threshold <= 1 and 0 <= c.sentence_ece <= 1
    translator = Translator.from_bundle(result.path)
    assert translator.thresholds.calibrated
    assert translator.thresholds.sentence == c.sentence_threshold
    got = translator.translate_gloss(tb.SENTENCES[0][0])
    assert c.sentence_curve and got.confidence in [y for _, y in c.sentence_curve]
    assert got.low_confidence == (got.confidence < c.target_accuracy)
    assert "confidence: calibrated on" in summary(result)
    assert single[0].manifest.confidence is None and "not calibrated" in summary(single[0])
    assert not Translator.from_bundle(single[0].path).thresholds.calibrated


def test_export_fails_loudly_when_onnx_disagrees_and_writes_nothing(tmp_path):
    with pytest.raises(SltError, match="disagree with PyTorch.*nothing written"):
        tb.g2t_bundle(tmp_path / "bad", tolerance=0.0)
    assert not (tmp_path / "bad").exists()
    assert not any(p.name.startswith(".bad") for p in tmp_path.iterdir())


def test_export_refuses_bad_requests(tmp_path, single):
    tok = tb.tokenizer()
    s2t = tb.translation(tok, "features")
    from slt_export.bundle import ExportOptions, RecognitionPart, TranslationPart, export_bundle

    with pytest.raises(SltError, match="recognizer"):
        export_bundle(tmp_path / "x", translation=TranslationPart(s2t, tok))
    with pytest.raises(SltError, match="not empty"):
        tb.g2t_bundle(single[0].path)
    with pytest.raises(SltError, match="quantize"):
        tb.g2t_bundle(tmp_path / "y", quantize="int4")
    part = RecognitionPart(tb.single_stream(), tb.SPEC, tb.vocab())
    with pytest.raises(SltError, match="pose model goes only into two_stream"):
        export_bundle(tmp_path / "z", part, options=ExportOptions(pose=tmp_path / "pose.onnx"))


def test_two_stream_bundle_translates_frames_with_keypoints_like_pytorch(tmp_path):
    result, recognizer, model, tok = tb.s2t_bundle(tmp_path / "two", kind="two_stream")
    m = result.manifest
    assert m.kind == "two_stream" and m.input.keypoints == tb.KEYPOINTS
    assert m.graphs.s2g.inputs == ("frames", "keypoints", "first_step")
    assert m.input.context_frames == 48  # S3D 31 + 3 laterals × (3 - 1) + head 8 = 45, to 4s
    assert m.parity.s2g.same_glosses == 3
    frames = tb.random_video(20, seed=3)
    rng = np.random.default_rng(3)
    points = np.zeros((20, 133, 3), dtype=np.float32)  # the whole layout, in frame pixels
    points[..., :2] = rng.uniform(0, tb.SIZE, (20, 133, 2))
    points[..., 2] = rng.uniform(0.2, 1.0, (20, 133))
    translator = Translator.from_bundle(result.path)
    with pytest.raises(SltError, match="pose"):
        translator.translate_frames(frames, tb.FPS)  # no pose model, no keypoints
    got = translator.translate_frames(frames, tb.FPS, keypoints=points)
    want = tb.torch_translate(recognizer, model, tok, frames, points[:, list(tb.KEYPOINTS)])
    assert (got.gloss, got.text) == want
    # with a pose model: the same step line, keypoints from pose.onnx, timed as "pose"
    from slt_serve.pose import PoseEstimator
    from slt_serve.video import write_video

    pose = tb.pose_model(tmp_path / "pose.onnx")
    with_pose = Translator.from_bundle(result.path, TranslateOptions(pose=pose))
    estimated = np.stack(list(PoseEstimator(pose).estimate(iter(frames))))
    want = translator.translate_frames(frames, tb.FPS, keypoints=estimated)
    got = with_pose.translate_frames(frames, tb.FPS)
    assert (got.gloss, got.text) == (want.gloss, want.text) and got.timings_ms["pose"] > 0
    # the keypoints the recogniser read stay with the result (render draws them), not its JSON
    np.testing.assert_allclose(got.keypoints, estimated, atol=1e-4)
    assert want.keypoints is None and "keypoints" not in got.to_dict()
    write_video(tmp_path / "clip.mp4", frames, tb.FPS)
    timings = with_pose.translate(tmp_path / "clip.mp4").timings_ms
    assert timings["decode"] > 0 and timings["pose"] > 0 and timings["s2g"] > 0
    assert sum(v for k, v in timings.items() if k != "total") <= timings["total"] + 0.1
    # slt render: the keypoints drawn too, at the bundle's rate (where pose runs)
    from slt_serve.render import render_video
    from slt_serve.video import probe

    done = render_video(with_pose, tmp_path / "clip.mp4", tmp_path / "rendered.mp4")
    assert done.frames == len(frames) and probe(done.path).num_frames == len(frames)
    assert done.fps == with_pose.spec.fps and done.result.gloss == got.gloss


def _slt(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "slt_serve.cli", *args], capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_slt_export_model_from_a_g2t_run_folder(tmp_path):
    from test_g2t_stage import make_text_corpus
    from test_g2t_stage import tiny as g2t_config

    from slt_training.runs import load_translation_run
    from slt_training.stages import g2t

    corpus = make_text_corpus(tmp_path / "ds")
    cfg = g2t_config(corpus, tmp_path / "run", training={"epochs": 1})
    g2t.train(cfg)
    r = _slt("export", "model", str(tmp_path / "run"), "--out", str(tmp_path / "bundle"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "g2t g2t bundle" in r.stdout and "3/3 sources same tokens" in r.stdout
    assert "confidence: calibrated on" in r.stdout
    assert "next: " in r.stdout
    run = load_translation_run(tmp_path / "run")
    translator = Translator.from_bundle(tmp_path / "bundle")
    assert translator.manifest.metrics["g2t"]["stage"] == "g2t"
    for gloss in ("APFEL ICH SEHEN", "BUCH OMA HOLEN"):
        ids = torch.tensor([run.tokenizer.source_ids(gloss.split())])
        want = run.model.translate(
            run.tokenizer, torch.ones_like(ids), run.generation, input_ids=ids
        )
        assert translator.translate_gloss(gloss).text == want[0]
    r = _slt("export", "model", str(tmp_path / "ds"), "--out", str(tmp_path / "b2"))
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "Traceback" not in r.stderr


@pytest.mark.slow
def test_slt_export_model_from_an_s2g_run_translates_its_videos(tmp_path):
    from test_s2g_data import make_corpus
    from test_s2g_stage import tiny as s2g_config

    from slt_serve.video import read_frames
    from slt_training.data.annotations import load_split
    from slt_training.data.s2g_data import ClipOptions, crop_resize, to_input
    from slt_training.runs import S2GRun
    from slt_training.stages import s2g
    from slt_training.trainer import BEST, checkpoint_pointer, load_weights

    corpus = make_corpus(tmp_path / "ds", clips=8)
    cfg = s2g_config(corpus, tmp_path / "run", training={"max_steps": 1, "eval_beam_size": 2})
    s2g.train(cfg)
    r = _slt("export", "model", str(tmp_path / "run"), "--out", str(tmp_path / "bundle"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "single_stream s2g bundle" in r.stdout and "3/3 clips same glosses" in r.stdout
    translator = Translator.from_bundle(tmp_path / "bundle")
    assert translator.stage == "s2g" and translator.ctc_beam_size == 2
    assert "confidence: calibrated on" in r.stdout and translator.thresholds.calibrated
    assert translator.manifest.confidence.glosses > 0
    model = S2GRun.open(tmp_path / "run").build_recognizer()
    load_weights(model, checkpoint_pointer(tmp_path / "run", BEST))
    model.eval()
    spec = translator.spec
    clip = load_split(corpus, "dev")[0]
    got = translator.translate(corpus / clip.video)
    frames = read_frames(corpus / clip.video, size=spec.frame_size, fps=spec.fps)
    options = ClipOptions(spec.frame_size, spec.input_size, spec.mean, spec.std, True)
    x = to_input(crop_resize(frames, spec.crop_box(), spec.input_size), options)[None]
    with torch.no_grad():
        out = model(x, torch.tensor([x.shape[2]]))
    want = " ".join(translator.vocab.decode(model.decode(out, beam_size=2)[0]))
    assert got.gloss == want and got.text == ""
