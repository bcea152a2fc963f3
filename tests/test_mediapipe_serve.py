"""A TwoStream bundle whose manifest names MediaPipe Holistic as its pose model, served on real
footage (../shared/data/real-clips, README there): an NGT number signer (Signbank/Global-signbank,
BSD-3-Clause) is translated with MediaPipe's keypoints; the Big Buck Bunny cartoon (Blender
Foundation, CC BY 3.0, as Signbank/signbank-video ships it) is refused as `no_signer`, by the
`Translator`, `slt translate` (an error row) and the HTTP API (422). The recognizer is a tiny
random one: what is checked is the path, not the words. Skipped without the `pose` extra."""

from __future__ import annotations

import pytest
from optional_extras import needs_mediapipe
from shared_data import REAL_CLIPS

from slt_serve.errors import SltError

SIGNER = REAL_CLIPS / "ngt_number_10.mp4"
CARTOON = REAL_CLIPS / "no_signer_cartoon.mp4"


pytestmark = [
    pytest.mark.slow,
    needs_mediapipe,
    pytest.mark.skipif(not REAL_CLIPS.is_dir(), reason=f"{REAL_CLIPS} not present"),
]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """A tiny random TwoStream S2T bundle exported with `--pose mediapipe`."""
    pytest.importorskip("torch")
    import tiny_bundles as tb

    from slt_serve.bundle import POSE, load_bundle

    folder = tmp_path_factory.mktemp("bundles") / "two_stream_mediapipe"
    tb.s2t_bundle(folder, kind="two_stream", pose="mediapipe")
    loaded = load_bundle(folder)
    assert loaded.manifest.input.pose_model == "mediapipe_holistic" and not loaded.has(POSE)
    return folder


@pytest.fixture(scope="module")
def translator(bundle):
    from slt_serve.translator import TranslateOptions, Translator

    return Translator.from_bundle(bundle, TranslateOptions(device="cpu"))


def test_a_real_signer_is_translated_with_mediapipe_keypoints(translator):
    from slt_serve.signer import SignerCheckedPose

    assert isinstance(translator.pose, SignerCheckedPose)
    result = translator.translate(SIGNER)
    assert result.duration_s == pytest.approx(19 / 12, abs=0.1)
    assert result.timings_ms["pose"] > 0 and result.gloss_spans  # a random recognizer: some glosses


def test_the_cartoon_is_refused_as_no_signer_everywhere(translator, tmp_path):
    from fastapi.testclient import TestClient

    from slt_serve import batch
    from slt_serve.api import create_app
    from slt_serve.settings import Settings
    from slt_serve.signer import NoSigner

    with pytest.raises(NoSigner) as e:
        translator.translate(CARTOON)
    assert e.value.status == 422 and e.value.code == "no_signer"
    assert "no person" in str(e.value) and "\n" not in str(e.value)

    row = batch.translate_one(translator, str(CARTOON))
    assert row["ok"] is False and row["error"].startswith("no signer in the video")

    with TestClient(create_app(translator, Settings(tmp_dir=tmp_path / "spool"))) as client:
        files = {"file": ("bunny.mp4", CARTOON.read_bytes(), "video/mp4")}
        r = client.post("/v1/translate", files=files)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "no_signer"


def test_the_demo_translates_a_signer_with_its_keypoints_drawn_and_refuses_the_cartoon(
    translator, tmp_path
):
    pytest.importorskip("gradio", reason="pip install 'slt-serve[demo]'")
    from demo.app import translate_video

    done = translate_video(translator, SIGNER, render_dir=tmp_path)
    assert done.rendered is not None and done.rendered.stat().st_size > 0
    assert done.result.keypoints is not None  # what was drawn: the keypoints translated
    assert done.result.gloss_spans
    with pytest.raises(SltError, match="no signer in the video"):
        translate_video(translator, CARTOON, render_dir=tmp_path)
