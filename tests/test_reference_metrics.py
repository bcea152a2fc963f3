"""`slt evaluate --wer reference`: TwoStream-SLT's weighted WER alignment."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from slt_serve.cli import app
from slt_serve.errors import SltError
from slt_training.metrics import evaluate_gloss, reference_alignment


def test_weighted_alignment_is_not_levenshtein():
    ref, hyp = "A B C D E", "F G H A B"
    # weighted costs: 3 insertions + 3 deletions (18) beat 5 substitutions (20)
    assert reference_alignment(ref.split(), hyp.split()) == (0, 3, 3)
    assert evaluate_gloss([hyp], [ref], phoenix_cleanup=False, wer="reference").wer == 120.0
    assert evaluate_gloss([hyp], [ref], phoenix_cleanup=False).wer == 100.0


@pytest.mark.parametrize(
    ("ref", "hyp", "counts"),
    [
        ("A B C", "A B C", (0, 0, 0)),
        ("A B C", "A X C", (1, 0, 0)),  # one substitution (4) beats del + ins (6)
        ("A B C", "A C", (0, 1, 0)),
        ("A C", "A B C", (0, 0, 1)),
        ("A B", "", (0, 2, 0)),
        ("", "A B", (0, 0, 2)),
    ],
)
def test_weighted_alignment_counts(ref, hyp, counts):
    assert reference_alignment(ref.split(), hyp.split()) == counts


def test_reference_wer_upper_cases_before_scoring():
    scores = evaluate_gloss(
        ["regen morgen"], ["REGEN MORGEN"], phoenix_cleanup=True, wer="reference"
    )
    assert scores.wer == 0.0 and scores.ref_len == 2
    assert evaluate_gloss(["regen"], ["REGEN"], phoenix_cleanup=False).wer == 100.0
    with pytest.raises(SltError, match="--wer must be one of"):
        evaluate_gloss(["A"], ["A"], phoenix_cleanup=False, wer="tf")


def test_cli_wer_reference(tmp_path):
    hyp, ref, out = tmp_path / "hyp.txt", tmp_path / "ref.txt", tmp_path / "scores.json"
    hyp.write_text("F G H A B\nA B C\n")
    ref.write_text("A B C D E\nA B C\n")
    args = [
        "evaluate",
        "--hyp",
        str(hyp),
        "--ref",
        str(ref),
        "--task",
        "gloss",
        "--no-phoenix-cleanup",
    ]
    result = CliRunner().invoke(app, [*args, "--wer", "reference", "--json", str(out)])
    assert result.exit_code == 0, result.output
    scores = json.loads(out.read_text())
    assert scores["wer"] == "reference" and scores["scores"]["wer"] == 75.0  # 6 errors / 8
    result = CliRunner().invoke(app, [*args, "--json", str(out)])
    assert json.loads(out.read_text())["scores"]["wer"] == 62.5  # 5 / 8
