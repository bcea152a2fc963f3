"""Scores as TwoStream-SLT reports them, checked against values computed another way.

Small cases are worked out by hand (the arithmetic is in the comments); the
real dev sets are checked against numbers from other tools (sacrebleu's and
jiwer's command lines, nltk) and against naive re-implementations in this file.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from shared_data import DATA

from slt_serve.errors import SltError
from slt_training.data.annotations import Clip, write_jsonl
from slt_training.metrics import (
    clean_phoenix_2014t,
    evaluate_gloss,
    evaluate_text,
    lcs_f_measure,
    load_pairs,
    rouge_l,
    text_tokens,
    word_error_rate,
)

PHOENIX_DEV = DATA / "phoenix-2014t" / "dev.jsonl"
CSL_DEV = DATA / "csl-daily" / "dev.jsonl"
needs_data = pytest.mark.skipif(not PHOENIX_DEV.is_file(), reason="shared real data absent")


def _clips(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _drop_a_word(i: int, text: str) -> str:
    """A deterministic 'system output': word i mod len dropped; every third ends in 'und'."""
    words = text.split()
    del words[i % len(words)]
    if i % 3 == 0 and words:
        words[-1] = "und"
    return " ".join(words)


def _drop_a_char(i: int, text: str) -> str:
    """The same for Chinese: character i mod len dropped; every third gets 了 appended."""
    chars = list(text)
    del chars[i % len(chars)]
    return "".join(chars) + ("了" if i % 3 == 0 else "")


# --- WER ----------------------------------------------------------------------------------


def test_wer_counted_by_hand():
    refs = ["A B C D", "E F"]
    hyps = ["A X C D E", "F"]
    # pair 1: B->X substituted, E inserted; pair 2: E deleted. 3 errors / 6 reference words
    assert word_error_rate(hyps, refs) == pytest.approx(50.0)
    s = evaluate_gloss(hyps, refs, phoenix_cleanup=False)
    assert (s.sub, s.dele, s.ins, s.ref_len, s.n) == (1, 1, 1, 6, 2)
    assert s.wer == pytest.approx(50.0)


def test_wer_empty_references_and_bad_input():
    # an empty reference counts its hypothesis words as insertions: 1 error / 2 words
    assert word_error_rate(["A B", "C"], ["A B", ""]) == pytest.approx(50.0)
    assert word_error_rate(["", "A B"], ["", "A B"]) == 0.0
    with pytest.raises(SltError, match="every reference is empty"):
        word_error_rate(["A"], [""])
    with pytest.raises(SltError, match="2 hypotheses but 1 references"):
        word_error_rate(["A", "B"], ["A"])
    with pytest.raises(SltError, match="no sentences"):
        evaluate_text([], [], "de")


@needs_data
def test_wer_real_phoenix_dev_against_jiwer_cli_and_plain_edit_distance():
    clips = _clips(PHOENIX_DEV)
    refs = [c["gloss"] for c in clips]
    hyps = [c["gloss_cleaned"] for c in clips]  # a respelling: MAESSIG -> MäSSIG, …
    s = evaluate_gloss(hyps, refs, phoenix_cleanup=False)
    # `jiwer -r gloss.txt -h gloss_cleaned.txt` printed 0.03255069370330843
    assert s.wer == pytest.approx(3.255069370330843, abs=1e-9)

    def edits(r: list[str], h: list[str]) -> int:  # textbook Levenshtein over words
        row = list(range(len(h) + 1))
        for i, rw in enumerate(r, 1):
            prev, row[0] = row[0], i
            for j, hw in enumerate(h, 1):
                prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (rw != hw))
        return row[-1]

    total = sum(edits(r.split(), h.split()) for r, h in zip(refs, hyps))
    assert s.sub + s.dele + s.ins == total
    assert s.ref_len == sum(len(r.split()) for r in refs) == 3748
    # with the clean-up on both sides: the reference's clean_phoenix_2014_trans applied to
    # the two files, then `jiwer` on the results printed 0.029623698959167333
    cleaned = evaluate_gloss(hyps, refs, phoenix_cleanup=True)
    assert cleaned.wer == pytest.approx(2.9623698959167333, abs=1e-9)


# --- PHOENIX-2014T clean-up -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("__ON__ REGEN __OFF__", "REGEN"),  # markers dropped
        ("__EMOTION__ WIND __PU__ STARK", "WIND STARK"),
        ("loc-REGION cl-KOMMEN", "REGION KOMMEN"),  # prefixes dropped
        ("WOLKE-PLUSPLUS", "WOLKE"),  # suffix dropped
        ("WALDRAUM RAUM", "WALD RAUM"),  # ...RAUM cut, a bare RAUM kept
        ("WIE AUSSEHEN MORGEN", "WIE-AUSSEHEN MORGEN"),
        ("A B C", "A+B+C"),  # split letters merged
        ("WETTER Z D F HEUTE", "WETTER Z+D+F HEUTE"),
        ("WETTER SCH H HEUTE", "WETTER SCH+H HEUTE"),
        ("A B", "A B"),  # as in the reference: a lone pair at both ends of the line stays
        ("S+H E+R", "S+H+E+R"),  # and letters on both sides of a space are joined
        ("REGEN REGEN REGEN SONNE", "REGEN SONNE"),  # repeats collapsed
        ("IM-VERLAUF IM-VERLAUF", "IM-VERLAUF"),
        ("  SONNE   WOLKE ", "SONNE WOLKE"),
        ("", ""),
        # PHOENIX-2014T's own vocabulary stays: unlike PHOENIX-2014's clean-up, the 2014T one
        # keeps poss-/neg- prefixes and digits, which are glosses of this corpus
        ("poss-EUCH S+H neg-HABEN HABEN2 E+R+Z", "poss-EUCH S+H neg-HABEN HABEN2 E+R+Z"),
    ],
)
def test_phoenix_cleanup_rules(raw, expected):
    assert clean_phoenix_2014t(raw) == expected


@needs_data
def test_phoenix_cleanup_on_real_dev_glosses():
    # the dev references are clean already but for one held sign written twice
    changed = {
        c["name"]: clean_phoenix_2014t(c["gloss"])
        for c in _clips(PHOENIX_DEV)
        if clean_phoenix_2014t(c["gloss"]) != c["gloss"]
    }
    assert changed == {
        "dev/10August_2011_Wednesday_tagesschau-6303": "IM-VERLAUF TEMPERATUR REGION"
    }


# --- BLEU and ROUGE-L on small cases by hand -------------------------------------------------

HYPS = ["es regnet im norden", "Morgen wird es kalt", "der wind weht stark aus west"]
REFS = ["es regnet im süden", "morgen wird es sehr kalt", "der wind weht stark aus west"]


def test_bleu_by_hand():
    s = evaluate_text(HYPS, REFS, "de")
    # matches / hypothesis n-grams, per sentence, summed over the corpus ("Morgen" lowercased):
    # 1-grams: 3/4 + 4/4 + 6/6 = 13/14
    # 2-grams: (es regnet, regnet im) 2/3 + (morgen wird, wird es) 2/3 + 5/5 = 9/11
    # 3-grams: (es regnet im) 1/2 + (morgen wird es) 1/2 + 4/4 = 6/8
    # 4-grams: 0/1 + 0/1 + 3/3 = 3/5
    # lengths: hypothesis 14, reference 15 -> brevity penalty exp(1 - 15/14)
    p = [13 / 14, 9 / 11, 6 / 8, 3 / 5]
    bp = math.exp(1 - 15 / 14)
    for n, got in enumerate([s.bleu1, s.bleu2, s.bleu3, s.bleu4], 1):
        assert got == pytest.approx(100 * bp * math.prod(p[:n]) ** (1 / n), abs=1e-9)
    assert (s.hyp_len, s.ref_len, s.n, s.level) == (14, 15, 3, "word")
    assert s.bp == pytest.approx(bp)
    assert "tok:none" in s.signature and "case:lc" in s.signature


def test_bleu_splits_on_whitespace_only_and_does_not_smooth():
    s = evaluate_text(["es regnet, im norden"], ["es regnet im norden"], "de")
    # "regnet," is one token (no tokenizer splits the comma off):
    # 1-grams es, im, norden: 3/4; 2-grams only "im norden": 1/3; 3-grams 0/2 -> BLEU-3 = 0
    assert s.bleu1 == pytest.approx(75.0)
    assert s.bleu2 == pytest.approx(100 * math.sqrt(3 / 4 * 1 / 3))  # = 50
    assert s.bleu3 == 0.0 and s.bleu4 == 0.0  # no smoothing, as the reference


def test_rouge_l_by_hand():
    # reference definition: R = LCS/|ref|, P = LCS/|hyp|, F = (1+b²)RP / (R + b²P), b = P/R
    # pair 1: LCS 3 of 4 and 4 -> R = P = 3/4 -> F = 3/4
    # pair 2: LCS 4; R = 4/5, P = 1, b² = 25/16 -> F = (41/16 * 4/5) / (4/5 + 25/16) = 164/189
    # pair 3: identical -> 1
    expected = 100 * (3 / 4 + 164 / 189 + 1) / 3
    assert rouge_l(HYPS, REFS, "de") == pytest.approx(expected, abs=1e-9)
    assert evaluate_text(HYPS, REFS, "de").rouge_l == pytest.approx(expected, abs=1e-9)
    assert lcs_f_measure([], []) == 1.0
    assert lcs_f_measure([], ["a"]) == 0.0
    assert lcs_f_measure(["a"], ["b"]) == 0.0


def test_rouge_l_keeps_umlauts_whole():
    # the trap: a tokenizer keeping only a-z/0-9 turns "überall" into "berall" and "schön"
    # into "sch n"; on whitespace tokens the words stay whole.
    assert text_tokens("Morgen überall schön, für Süd-Bayern.", "de") == [
        "morgen",
        "überall",
        "schön,",
        "für",
        "süd-bayern.",
    ]
    # LCS(morgen schön | morgen überall schön) = 2: R = 2/3, P = 1, b² = 9/4
    # F = (13/4 * 2/3) / (2/3 + 9/4) = 26/35
    assert rouge_l(["morgen schön"], ["morgen überall schön"], "de") == pytest.approx(100 * 26 / 35)
    # a decomposed ü (u + U+0308) is the same word as the composed one
    assert rouge_l(["fu\u0308r"], ["Für"], "de") == pytest.approx(100.0)


def test_chinese_is_scored_on_characters():
    hyp, ref = "他 今年四岁", "他今年四岁。"  # a space in the output is not a character
    s = evaluate_text([hyp], [ref], "zh")
    # characters: hypothesis 5, all n-grams match (5/5, 4/4, 3/3, 2/2); reference 6
    assert s.bleu4 == pytest.approx(100 * math.exp(1 - 6 / 5), abs=1e-9)
    # LCS 5: R = 5/6, P = 1, b² = 36/25 -> F = (61/25 * 5/6) / (5/6 + 36/25) = 305/341
    assert s.rouge_l == pytest.approx(100 * 305 / 341, abs=1e-9)
    assert (s.hyp_len, s.ref_len, s.level) == (5, 6, "char")
    # on whitespace words the same pair shares nothing
    assert evaluate_text([hyp], [ref], "de").bleu1 == 0.0
    assert evaluate_text([hyp], [ref], "zh-CN").bleu4 == s.bleu4
    with pytest.raises(SltError, match="ISO 639"):
        evaluate_text([hyp], [ref], "chinese")


# --- BLEU and ROUGE-L on the real dev sets --------------------------------------------------


def _naive_rouge_l(hyps: list[list[str]], refs: list[list[str]]) -> float:
    """Table LCS and the reference's F (its 1e-12 guards included), averaged, in percent."""
    total = 0.0
    for h, r in zip(hyps, refs):
        table = [[0] * (len(r) + 1) for _ in range(len(h) + 1)]
        for i in range(1, len(h) + 1):
            for j in range(1, len(r) + 1):
                same = h[i - 1] == r[j - 1]
                table[i][j] = (
                    table[i - 1][j - 1] + 1 if same else max(table[i - 1][j], table[i][j - 1])
                )
        lcs = table[-1][-1]
        rec, prec = lcs / len(r), lcs / len(h)
        b = prec / (rec + 1e-12)
        total += (1 + b * b) * rec * prec / (rec + b * b * prec + 1e-12)
    return 100 * total / len(hyps)


# Each corpus's dev texts against a deterministic system output: (annotations, lang, system
# output, the units the naive ROUGE-L counts, BLEU-1..4, (hyp_len, ref_len, n, level), ROUGE-L).
REAL_DEV_SCORES = [
    pytest.param(
        PHOENIX_DEV, "de", _drop_a_word, str.split,
        # BLEU-4: `sacrebleu ref.txt -i hyp.txt -m bleu -tok none -lc -s none -w 6` printed
        # 81.234831 (97.6/90.8/84.7/78.7, BP 0.927, hyp_len 6820, ref_len 7339);
        # BLEU-1..3: nltk corpus_bleu(weights=(1/n,)*n) printed 90.40313, 87.224016, 84.220395
        [90.40313, 87.224016, 84.220395, 81.234831],
        (6820, 7339, 519, "word"),
        92.541019,  # ROUGE-L: the naive table LCS above printed 92.54101945358377 once
        id="phoenix-2014t",
    ),
    pytest.param(
        CSL_DEV, "zh", _drop_a_char, list,
        # the two sides written one character per token, then the same sacrebleu command printed
        # 84.613696 (BP 0.958, hyp_len 16586, ref_len 17304); nltk printed 93.719502, 90.71047,
        # 87.671375, 84.613696 for BLEU-1..4
        [93.719502, 90.71047, 87.671375, 84.613696],
        (16586, 17304, 1077, "char"),
        95.144841,
        id="csl-daily",
    ),
]  # fmt: skip


@needs_data
@pytest.mark.parametrize("path, lang, system, units, bleu, lengths, rouge_l", REAL_DEV_SCORES)
def test_text_scores_real_dev(path, lang, system, units, bleu, lengths, rouge_l):
    refs = [c["text"] for c in _clips(path)]
    hyps = [system(i, r) for i, r in enumerate(refs)]
    s = evaluate_text(hyps, refs, lang)
    got = [s.bleu1, s.bleu2, s.bleu3, s.bleu4]
    assert got == pytest.approx(bleu, abs=1e-5)
    assert (s.hyp_len, s.ref_len, s.n, s.level) == lengths
    naive = _naive_rouge_l([units(h) for h in hyps], [units(r) for r in refs])
    assert s.rouge_l == pytest.approx(naive, abs=1e-6)
    assert s.rouge_l == pytest.approx(rouge_l, abs=1e-5)


# --- files and the command ----------------------------------------------------------------


def _write_clips(path: Path, rows: list[tuple[str, str]]) -> Path:
    write_jsonl(path, [Clip(name=n, gloss=g, text=g.lower()) for n, g in rows])
    return path


def test_load_pairs_plain_text_and_jsonl(tmp_path):
    (tmp_path / "hyp.txt").write_text("REGEN\n\nSONNE WIND\n", encoding="utf-8")
    (tmp_path / "ref.txt").write_text("REGEN MORGEN\nWOLKE\nSONNE\n", encoding="utf-8")
    hyps, refs = load_pairs(tmp_path / "hyp.txt", tmp_path / "ref.txt", "gloss")
    assert hyps == ["REGEN", "", "SONNE WIND"] and refs == ["REGEN MORGEN", "WOLKE", "SONNE"]

    ref = _write_clips(tmp_path / "ref.jsonl", [("a", "REGEN MORGEN"), ("b", "WOLKE")])
    hyp = _write_clips(tmp_path / "hyp.jsonl", [("b", "WOLKE"), ("a", "REGEN")])  # other order
    assert load_pairs(hyp, ref, "gloss") == (["REGEN", "WOLKE"], ["REGEN MORGEN", "WOLKE"])
    assert load_pairs(hyp, ref, "text") == (["regen", "wolke"], ["regen morgen", "wolke"])

    short = _write_clips(tmp_path / "short.jsonl", [("b", "WOLKE")])
    with pytest.raises(SltError, match="no hypothesis for 1 reference clip.*: a"):
        load_pairs(short, ref, "gloss")
    with pytest.raises(SltError, match="1 hypothesis clip.*not in the reference: a"):
        load_pairs(ref, short, "gloss")
    with pytest.raises(SltError, match="has 3 sentences but .* has 2"):
        load_pairs(tmp_path / "hyp.txt", ref, "gloss")
    (tmp_path / "only_gloss.jsonl").write_text('{"name": "a", "gloss": "X"}\n', encoding="utf-8")
    with pytest.raises(SltError, match="no clip has a 'text' field; did you mean --task gloss"):
        load_pairs(tmp_path / "only_gloss.jsonl", ref, "text")
    with pytest.raises(SltError, match="file not found"):
        load_pairs(tmp_path / "nope.txt", ref, "gloss")
    with pytest.raises(SltError, match="unknown task 'bleu'"):
        load_pairs(hyp, ref, "bleu")


def test_slt_evaluate_command(tmp_path):
    ref = _write_clips(
        tmp_path / "ref.jsonl", [("a", "loc-REGEN REGEN MORGEN"), ("b", "WETTER A B")]
    )
    (tmp_path / "hyp.txt").write_text("REGEN\nWETTER A+B\n", encoding="utf-8")

    def slt(*args):
        cmd = [sys.executable, "-m", "slt_serve.cli", "evaluate", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    out = tmp_path / "scores" / "wer.json"
    r = slt(
        "--hyp",
        str(tmp_path / "hyp.txt"),
        "--ref",
        str(ref),
        "--task",
        "gloss",
        "--lang",
        "de",
        "--json",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    saved = json.loads(out.read_text(encoding="utf-8"))
    # clean-up on by default for German glosses: "REGEN MORGEN" / "WETTER A+B": 1 deletion in 4
    assert saved["scores"]["phoenix_cleanup"] is True
    assert saved["scores"]["wer"] == pytest.approx(25.0)
    assert "wer" in r.stdout

    r = slt("--hyp", str(tmp_path / "hyp.txt"), "--ref", str(ref))  # text needs --lang
    assert r.returncode == 2
    assert r.stderr.startswith("error: ") and "--lang" in r.stderr
    assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr
