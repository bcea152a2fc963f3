"""G2T and S2T checkpoints trained with the reference code: key mapping and the kit's
goldens (tiny mBART of the cc25 family) reproduced in PyTorch: encoder inputs,
encoder states, first-step log-probs, and generated token ids (beam 5 and greedy)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from reference_kit import golden, kit_dir, procedure_state, write_reference_checkpoint

from slt_serve.errors import SltError
from slt_training.models.translation import GenerateOptions
from slt_training.reference.checkpoint import read_checkpoint
from slt_training.reference.translation import (
    build_translation,
    read_config,
    reference_gloss_ids,
)
from slt_training.reference.vocab import read_gloss_table

EOS_BIAS_KEY = "translation_network.model.final_logits_bias"
RTOL = 1e-5  # inputs_embeds (the kit's advice)
ATOL = 1e-4  # encoder states and log-probs


def _variant_state(name: str, variant: str) -> dict:
    state = procedure_state(name)
    if variant == "eos_bias5":
        info = golden(name)["eos_bias_variant"]
        state[info["key"]] = state[info["key"]].copy()
        state[info["key"]][tuple(info["index"])] = info["value"]
    return state


def _import(tmp_path, name: str, variant: str):
    path = write_reference_checkpoint(
        tmp_path / f"{variant}.ckpt", _variant_state(name, variant), s2g=False
    )
    folder = kit_dir("tiny_mbart_de")
    table_file = folder / "gloss2ids.json"
    table = read_gloss_table(table_file)
    start = golden(name)["generation"]["decoder_start_id"]
    return build_translation(
        read_checkpoint(path), read_config(folder), table, str(table_file), start
    )


@pytest.fixture(scope="module", params=["procedure", "eos_bias5"])
def g2t(request, tmp_path_factory):
    torch.set_num_threads(1)
    return request.param, _import(tmp_path_factory.mktemp("g2t"), "g2t_tiny_mbart", request.param)


def _generate(model, options, **inputs):
    mask = torch.ones(1, next(iter(inputs.values())).shape[1], dtype=torch.long)
    with torch.no_grad():
        return model.generate(mask, options, **inputs)[0].tolist()


def test_g2t_inputs_encoder_and_first_step(g2t):
    variant, imported = g2t
    model, arrays = imported.model, np.load(kit_dir("g2t_tiny_mbart") / "arrays.npz")
    for i, record in enumerate(golden("g2t_tiny_mbart")["records"][variant]):
        ids = reference_gloss_ids(record["gloss_input"].split(), imported.gloss_table, "de_DGS")
        assert ids == record["gloss_ids"]
        x = torch.tensor([ids])
        mask = torch.ones_like(x)
        with torch.no_grad():
            inputs = model.encoder_batch(mask, x, None)
            encoder = model.mbart.get_encoder()(**inputs).last_hidden_state
            start = torch.tensor([[model.decoder_start_id]])
            logits = model.mbart(**inputs, decoder_input_ids=start).logits
        np.testing.assert_allclose(
            inputs["inputs_embeds"][0].numpy(),
            arrays[f"clip{i}/inputs_embeds"],
            rtol=RTOL,
            atol=1e-6,
        )
        np.testing.assert_allclose(
            encoder[0].numpy(), arrays[f"clip{i}/encoder_last_hidden_state"], atol=ATOL
        )
        first = logits[0, -1].log_softmax(-1).numpy()
        np.testing.assert_allclose(
            first, arrays[f"{variant}/clip{i}/first_step_log_probs"], atol=ATOL
        )


@pytest.mark.parametrize("search", ["greedy", "beam5"])
def test_g2t_generated_token_ids(g2t, search):
    variant, imported = g2t
    generation = golden("g2t_tiny_mbart")["generation"]
    options = GenerateOptions(
        num_beams=1 if search == "greedy" else generation["num_beams"],
        length_penalty=generation["length_penalty"],
        max_length=generation["max_length"],
        search="reference",
    )
    for record in golden("g2t_tiny_mbart")["records"][variant]:
        ids = _generate(imported.model, options, input_ids=torch.tensor([record["gloss_ids"]]))
        assert ids == record[search]["ids"], record["name"]


def test_mismatched_gloss_table_is_refused(tmp_path):
    path = write_reference_checkpoint(
        tmp_path / "g2t.ckpt", procedure_state("g2t_tiny_mbart"), s2g=False
    )
    short = tmp_path / "gloss2ids.json"
    short.write_text(
        json.dumps(list(read_gloss_table(kit_dir("tiny_mbart_de") / "gloss2ids.json"))[:1094])
    )
    with pytest.raises(SltError, match=r"gloss2ids.json: 1094 glosses.*\(1094 vs 1124\)"):
        build_translation(
            read_checkpoint(path),
            read_config(kit_dir("tiny_mbart_de")),
            read_gloss_table(short),
            str(short),
            6,
        )
