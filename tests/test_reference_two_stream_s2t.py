"""`slt import slrt` of TwoStream-SLT's S2T networks (joint, video, keypoint) as one ensemble.

The kit has no TwoStream S2T golden, but a TwoStream S2T checkpoint is made of parts it
has goldens for: the heads are those of the TwoStream S2G network (same keys, same
config; the kit's S2G TwoStream golden gives every head's outputs on its 832-d backbone
features), the V-L mapper and mBART those of the SingleStream S2T golden. The checkpoints
here are written from the kit's seed procedure with the reference's key names; the
imported heads and translation must give the reference's outputs.
"""

from __future__ import annotations

import pickle
from dataclasses import replace

import numpy as np
import pytest
import torch
from reference_kit import (
    golden,
    import_dataset,
    kit_dir,
    procedure_state,
    write_reference_checkpoint,
)
from typer.testing import CliRunner

from slt_serve.cli import app
from slt_serve.errors import SltError
from slt_training.models.translation_ensemble import TranslationEnsemble
from slt_training.reference.keypoints import import_keypoints
from slt_training.reference.vocab import read_gloss_table, s2g_vocab
from slt_training.runs import S2GRun, TranslationRun

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py

HEADS = "recognition_network.visual_head"  # every S2T head: visual_head{,_keypoint,_fuse,…}


def _s2t_state(s2g_state: dict, mbart_seed: int) -> dict:
    """A TwoStream S2T network's model_state: the S2G golden's heads (the pyramid's
    `_remain` heads included, as the reference saves them) + the S2T golden's V-L mapper
    and mBART of `mbart_seed`."""
    heads = {k: v for k, v in s2g_state.items() if k.startswith(HEADS)}
    translation = procedure_state("s2t_tiny_mbart", mbart_seed)
    return heads | {k: v for k, v in translation.items() if not k.startswith("recognition_")}


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """The S2G TwoStream checkpoint and three S2T networks (mBART seeds 0, 1, 2) imported
    with one command; (out folder, gloss table, the S2G checkpoint, a network's checkpoint)."""
    tmp = tmp_path_factory.mktemp("two_s2t")
    s2g_state = procedure_state("s2g_twostream")
    s2g = write_reference_checkpoint(tmp / "s2g.ckpt", s2g_state, s2g=True)
    networks = [
        write_reference_checkpoint(tmp / f"{name}.ckpt", _s2t_state(s2g_state, seed), s2g=False)
        for seed, name in enumerate(("joint", "video", "keypoint"))
    ]
    root = import_dataset(tmp / "ds")
    points = np.load(kit_dir() / "s2g_inputs.npz")["keypoints_133"]
    (tmp / "kp.pkl").write_bytes(pickle.dumps({"dev/c1": {"keypoints": points}}))
    import_keypoints(tmp / "kp.pkl", root, 210, 260, 25.0)  # TwoStream runs check them
    table = kit_dir("s2g_twostream") / "gloss_vocab.json"
    args = ["import", "slrt", *map(str, networks), "--s2g", str(s2g), "--gloss2ids", str(table)]
    args += ["--pretrained", str(kit_dir("tiny_mbart_de")), "--dataset", str(root)]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp / "runs"), "--fps", "25"])
    assert result.exit_code == 0, result.output
    return tmp / "runs", table, s2g, networks[0], root


def test_each_network_s_head_gives_the_reference_head_outputs(imported):
    out, table, *_ = imported
    model = S2GRun.open(out / "s2g").load_recognizer()
    assert model.options.translation_heads == ("joint", "rgb", "keypoint")
    assert model.options.decode_head == "ensemble"  # the glosses: the S2G network's
    outputs = np.load(kit_dir("s2g_twostream") / "outputs.npz")
    rgb = torch.from_numpy(outputs["head_rgb_input"])[None]
    keypoint = torch.from_numpy(outputs["head_keypoint_input"])[None]
    steps = torch.tensor([rgb.shape[1]])
    order = list(s2g_vocab(read_gloss_table(table), table).order)
    inputs = {"joint": torch.cat([keypoint, rgb], -1), "rgb": rgb, "keypoint": keypoint}
    with torch.no_grad():
        for stream, head, theirs in zip(
            model.options.translation_heads, model.translation_heads, ("fuse", "rgb", "keypoint")
        ):
            got = head(inputs[stream], steps).log_probs[0].numpy()
            want = outputs[f"{theirs}_gloss_probabilities_log"][:, order]
            np.testing.assert_allclose(got, want, atol=1e-4, rtol=0, err_msg=stream)
        features = model.translation_features(rgb, keypoint, steps)[0].numpy()
    assert features.shape == (rgb.shape[1], 3 * 512) and model.feature_dim == 3 * 512
    # the joint network reads the fuse head's gloss features: the first 512 columns
    np.testing.assert_allclose(features[:, :512], outputs["fuse_gloss_feature"], atol=1e-4, rtol=0)


def test_the_joint_network_translates_as_the_reference(imported):
    out, *_ = imported
    trained = TranslationRun.open(out / "s2t").load()
    assert trained.run.spec.ensemble == (str(out / "s2t_2"), str(out / "s2t_3"))
    arrays = np.load(kit_dir("s2t_tiny_mbart") / "arrays.npz")
    greedy = replace(trained.generation, num_beams=1)
    for i, record in enumerate(golden("s2t_tiny_mbart")["records"]["procedure"][:3]):
        features = torch.from_numpy(arrays[f"clip{i}/gloss_feature"])[None]
        mask = torch.ones(features.shape[:2], dtype=torch.long)
        beam = trained.model.generate(mask, trained.generation, features=features)
        assert beam[0].tolist() == record["beam5"]["ids"], i
        assert (
            trained.model.generate(mask, greedy, features=features)[0].tolist()
            == (record["greedy"]["ids"])
        )


def test_the_three_networks_export_as_one_ensemble(imported):
    from slt_export.runs import parts_from_run

    out, *_ = imported
    recognition, translation, _ = parts_from_run(out / "s2t")
    assert len(translation.ensemble) == 2
    dims = [m.options.feature_dim for m in translation.models]
    assert sum(dims) == recognition.model.feature_dim  # what the export checks
    outputs = np.load(kit_dir("s2g_twostream") / "outputs.npz")
    rgb = torch.from_numpy(outputs["head_rgb_input"])[None]
    keypoint = torch.from_numpy(outputs["head_keypoint_input"])[None]
    with torch.no_grad():
        features = recognition.model.translation_features(rgb, keypoint, torch.tensor([12]))
    mask = torch.ones(features.shape[:2], dtype=torch.long)
    ensemble = translation.searcher()
    assert isinstance(ensemble, TranslationEnsemble)
    tokens = ensemble.generate(mask, translation.generation, features=features)[0].tolist()
    alone = [
        m.generate(mask, translation.generation, features=f)[0].tolist()
        for m, f in zip(translation.models, ensemble.split(features))
    ]
    assert tokens[0] == alone[0][0] and tokens[-1] == 2  # de_DE … </s>
    assert len({tuple(a) for a in alone}) == 3  # three different networks


def test_two_stream_s2t_import_refusals(imported, tmp_path):
    from slt_training.reference.importer import S2TImportOptions, import_s2t

    out, table, s2g, joint, root = imported
    folder = kit_dir("tiny_mbart_de")
    with pytest.raises(SltError, match="say which head feeds each"):
        import_s2t([joint, joint], s2g, table, folder, root, tmp_path / "a", S2TImportOptions())
    with pytest.raises(SltError, match="2 gloss features"):
        import_s2t(joint, s2g, table, folder, root, tmp_path / "b", S2TImportOptions(),
                   ["fuse", "rgb"])  # fmt: skip
    with pytest.raises(SltError, match="say which head feeds its translation"):
        import_s2t(joint, s2g, table, folder, root, tmp_path / "c", S2TImportOptions(), ["pose"])
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()
