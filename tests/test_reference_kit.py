"""The kit's weight procedure (README §2) as tests/reference_kit.py implements it: the
digests of every golden's state match golden.json, so the other tests start from the
reference's exact weights."""

from __future__ import annotations

import pytest
from reference_kit import golden, procedure_state, state_digest


@pytest.mark.parametrize(
    "name", ["s2g_singlestream", "s2g_twostream", "g2t_tiny_mbart", "s2t_tiny_mbart"]
)
def test_procedure_state_matches_the_kit_digest(name):
    state = procedure_state(name)
    expected = golden(name)["state_dict"]
    assert len(state) == expected["n_keys"]
    assert state_digest(state) == expected["sha256"]
