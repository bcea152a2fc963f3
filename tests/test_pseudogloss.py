"""Pseudo-glosses from text: each rule, the target on real human glosses, the dataset operation."""

import json
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
from shared_data import DATA

from slt_serve.errors import SltError
from slt_training.data.annotations import Clip, read_jsonl, write_jsonl
from slt_training.data.pseudogloss import (
    GlossOptions,
    compare_dataset,
    compare_glosses,
    derive_glosses,
    gloss_from_text,
)

VSL_SAMPLE = DATA / "vsl-gh" / "sample.jsonl"
VI = GlossOptions(lang="vi")


def vi(text, **kw):
    return derive_glosses(text, GlossOptions(lang="vi", **kw))


# ── the target on real human glosses ─────────────────────────────────────────


@pytest.mark.skipif(not VSL_SAMPLE.is_file(), reason=f"real VSL-GH sample not at {VSL_SAMPLE}")
def test_vsl_sample_meets_the_target():
    result, examples = compare_dataset(VSL_SAMPLE, [], VI)
    assert result.n_sentences == 30 == len(examples)
    assert result.f1 >= 0.80, result
    assert result.wer <= 60.0, result


@pytest.mark.skipif(not VSL_SAMPLE.is_file(), reason=f"real VSL-GH sample not at {VSL_SAMPLE}")
def test_cli_compare_on_a_single_jsonl_file_writes_nothing():
    before = VSL_SAMPLE.read_bytes()
    r = subprocess.run(
        [sys.executable, "-m", "slt_serve.cli", "data", "gloss-from-text", str(VSL_SAMPLE)]
        + ["--lang", "vi", "--compare", "--examples", "2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "WER" in r.stdout and "F1" in r.stdout and "SENT002" in r.stdout
    assert "TÔI TUỔI 2 4" in r.stdout
    assert VSL_SAMPLE.read_bytes() == before


# ── Vietnamese rules ─────────────────────────────────────────────────────────


def test_numbers_are_signed_digit_by_digit_after_their_noun():
    assert vi("Tôi 24 tuổi.") == ["TÔI", "TUỔI", "2", "4"]
    assert vi("Số thứ tự của tôi là 105.")[-3:] == ["1", "0", "5"]
    assert vi("Tôi 24 tuổi.", numbers="keep") == ["TÔI", "TUỔI", "24"]


def test_spelled_numbers_become_digits():
    from slt_training.data.gloss_rules_vi import builtin_lists, spelled_number

    numerals = builtin_lists().numerals
    for words, value in [
        ("hai mươi lăm", 25),
        ("mười lăm", 15),
        ("một trăm linh năm", 105),
        ("hai nghìn không trăm hai mươi tư", 2024),
        ("hai trăm nghìn", 200000),
    ]:
        assert spelled_number(words.split(), numerals) == value, words
    assert spelled_number(["hai", "con"], numerals) is None
    assert vi("Tôi hai mươi tuổi.") == ["TÔI", "TUỔI", "2", "0"]
    assert vi("Vé xe giá 50 nghìn.")[-3:] == ["5", "0", "NGHÌN"]  # digits, then the word


def test_written_clock_times_and_dates_are_numbers():
    assert vi("Tôi về nhà lúc 7h.") == ["TÔI", "GIỜ", "7", "VỀ", "NHÀ"]  # 7h = 7 giờ
    assert vi("Tôi về nhà lúc 7h15.") == vi("Tôi về nhà lúc 7 giờ 15.")
    assert vi("Tôi dậy lúc 6h30 sáng.")[:6] == ["TÔI", "GIỜ", "6", "3", "0", "SÁNG"]  # minutes
    assert vi("Mẹ tôi sinh ngày 3/8/1961.")[-7:] == ["NGÀY", *"381961"]  # digits, in order


def test_punctuation_is_no_gloss():
    assert vi("Tôi là nữ!!!") == vi("Tôi là nữ") == ["TÔI", "NỮ"]
    assert derive_glosses("Hello, world… (again)!", GlossOptions(lang="en")) == [
        "HELLO",
        "WORLD",
        "AGAIN",
    ]


def test_multi_syllable_words_are_one_hyphenated_gloss():
    glosses = vi("Tôi muốn đăng ký khám sức khỏe.")
    assert "ĐĂNG-KÝ" in glosses and "SỨC-KHỎE" in glosses
    assert "BẢO-HIỂM" in vi("Tôi có bảo hiểm y tế.")  # a 4-syllable unit is two signs
    assert "Y-TẾ" in vi("Tôi có bảo hiểm y tế.")
    plain = vi("Tôi muốn đăng ký khám sức khỏe.", hyphenate=False)
    assert "ĐĂNG" in plain and "KÝ" in plain and not any("-" in g for g in plain)


def test_function_words_are_dropped(tmp_path):
    assert vi("Bác sĩ tên là gì ạ?") == ["BÁC-SĨ", "TÊN", "GÌ"]  # copula, particle
    assert "ĐÃ" not in vi("Tôi đã nhận được số thứ tự rồi.")  # tense marker, complement
    assert "SẼ" not in vi("Tôi sẽ ngồi đây đợi.")
    assert "LÀ" in vi("Tôi là nữ.", builtin_stopwords=False)
    extra = tmp_path / "stop.txt"
    extra.write_text("# extra words\nnữ\n", encoding="utf-8")
    assert vi("Tôi là nữ.", stopwords_file=extra) == ["TÔI"]


def test_modals_aspect_and_negation_close_the_clause():
    assert vi("Tôi muốn gặp bác sĩ.") == ["TÔI", "GẶP", "BÁC-SĨ", "MUỐN"]
    assert vi("Tôi không biết.") == ["TÔI", "BIẾT", "KHÔNG"]
    assert vi("Tôi đang cầm biên lai.")[-1] == "ĐANG"
    assert vi("Tôi muốn gặp bác sĩ.", reorder=False) == ["TÔI", "MUỐN", "GẶP", "BÁC-SĨ"]


def test_possessor_is_signed_first_and_question_phrases_are_one_sign():
    assert vi("Số điện thoại của tôi là 123.")[:2] == ["TÔI", "SỐ"]
    assert vi("Tôi đóng tiền ở đâu ạ?")[-1] == "Ở-ĐÂU"
    assert vi("Tôi đến khám ở phòng số 2 phải không?")[-1] == "PHẢI-KHÔNG"


def test_possessor_is_signed_first_in_object_noun_phrases_too():
    assert vi("Y tá gọi tên của anh.") == ["Y-TÁ", "GỌI", "ANH", "TÊN"]
    assert vi("Đây là phòng của tôi.") == ["ĐÂY", "TÔI", "PHÒNG"]  # after the copula
    assert vi("Y tá gọi tên anh.")[-2:] == ["ANH", "TÊN"]  # no của: nothing follows
    assert vi("Đó là ngày tôi nhập viện.")[-2:] == ["TÔI", "NHẬP-VIỆN"]  # a subject: stays


def test_third_person_pronoun_is_one_sign_not_dropped():
    assert vi("Anh ấy đọc thư.") == ["ANH-ẤY", "ĐỌC", "THƯ"]
    assert vi("Số điện thoại của chị ấy là 9.")[:2] == ["CHỊ-ẤY", "SỐ"]


def test_yes_no_question_ends_in_one_question_sign():
    # the frame (có / a modal … không) is signed once, at the end, named by its first word
    assert vi("Bạn có mang thẻ không?") == ["BẠN", "MANG", "THẺ", "CÓ-KHÔNG"]
    assert vi("Bạn có cần mua gì không?") == ["BẠN", "MUA", "CẦN-KHÔNG"]  # gì = 'anything'
    assert vi("Chị có phải là người nhà bệnh nhân không?")[-1] == "PHẢI-KHÔNG"
    assert vi("Chị có phải là người nhà bệnh nhân không?")[0] == "CHỊ"
    assert vi("Bạn khỏe không?") == ["BẠN", "KHỎE", "CÓ-KHÔNG"]  # the elided có
    assert vi("Em có đau chỗ nào không ạ?") == ["EM", "ĐAU", "CHỖ", "CÓ-KHÔNG"]
    assert vi("Bạn đã ăn gì chưa?") == ["BẠN", "ĂN", "CHƯA"]  # 'yet?': no frame word


def test_question_frame_scopes_over_purpose_and_time_clauses():
    question = vi("Em có phải chờ lâu để lấy thuốc không?")
    assert question == ["EM", "CHỜ", "LÂU", "ĐỂ", "LẤY", "THUỐC", "PHẢI-KHÔNG"]
    assert vi("Anh có cần rửa tay trước khi ăn không?")[-1] == "CẦN-KHÔNG"
    assert "CẦN" not in vi("Anh có cần rửa tay trước khi ăn không?")
    statement = vi("Anh cần rửa tay trước khi ăn.")  # trước khi opens the next clause
    assert statement == ["ANH", "RỬA", "TAY", "CẦN", "TRƯỚC", "KHI", "ĂN"]


def test_negation_and_wh_questions_are_not_yes_no_questions():
    assert vi("Tôi không biết.") == ["TÔI", "BIẾT", "KHÔNG"]  # không before the verb
    assert vi("Tôi nghĩ là không.") == ["TÔI", "NGHĨ", "KHÔNG"]  # a statement's "no"
    assert vi("Tôi không muốn khám.") == ["TÔI", "KHÁM", "MUỐN", "KHÔNG"]  # negation last
    assert vi("Bạn có mang thẻ không.")[-1] == "CÓ-KHÔNG"  # the frame makes it a question
    assert vi("Bạn muốn hỏi gì?")[-1] == "GÌ"  # a real wh-question keeps its wh-word
    assert vi("Chị cần gì?") == ["CHỊ", "CẦN", "GÌ"]


def test_question_expressions_and_deixis_are_one_sign():
    assert vi("Phòng khám mở cửa mấy giờ?")[-1] == "MẤY-GIỜ"
    assert vi("Bạn ở phòng số mấy?")[-2:] == ["PHÒNG", "SỐ-MẤY"]
    assert vi("Bạn ngồi ở đây nhé.") == ["BẠN", "NGỒI", "Ở-ĐÂY"]


def test_address_terms_are_signed_and_vocatives_are_not():
    assert vi("Chị cần gì?")[0] == "CHỊ"  # tagged as a classifier, but a pronoun
    assert vi("Bác ơi, bác ngồi đây.") == ["BÁC", "NGỒI", "ĐÂY"]  # "bác ơi" is a call
    assert "CON" not in vi("Tôi có một con mèo.")  # a classifier before its noun is dropped
    assert vi("Những người này là bác sĩ.") == ["NGƯỜI", "NÀY", "BÁC-SĨ"]  # the noun itself
    assert vi("Tôi có vài câu hỏi.")[:2] == ["TÔI", "VÀI"]  # a quantifier is signed
    assert vi("Tôi uống thuốc mỗi ngày.")[-1] == "MỖI-NGÀY"  # …and with its unit, one sign


def test_imperative_markers_have_no_sign():
    assert vi("Bạn hãy ngồi xuống.") == ["BẠN", "NGỒI", "XUỐNG"]
    assert vi("Bạn ngồi đi.") == ["BẠN", "NGỒI"]  # final đi after a verb: the particle
    assert vi("Tôi muốn đi.") == ["TÔI", "ĐI", "MUỐN"]  # after a modal: the verb 'go'


def test_time_is_signed_before_the_verb():
    assert vi("Tôi sẽ quay lại vào ngày mai.") == ["TÔI", "NGÀY-MAI", "QUAY", "LẠI"]
    assert vi("Tôi đến lúc 8 giờ.") == ["TÔI", "GIỜ", "8", "ĐẾN"]
    assert vi("Ngày mai tôi đi làm.")[:2] == ["NGÀY-MAI", "TÔI"]  # a time, not a possession
    assert vi("Tôi đau bụng từ hôm qua.")[-2:] == ["TỪ", "HÔM-QUA"]  # a range stays
    assert vi("Tôi sẽ quay lại vào ngày mai.", reorder=False)[:2] == ["TÔI", "QUAY"]


def test_post_nominal_may_is_one_question_sign_with_its_noun():
    assert vi("Khoa nội ở tầng mấy?") == ["KHOA-NỘI", "TẦNG-MẤY"]
    assert vi("Tầng mấy có nhà thuốc?")[-1] == "TẦNG-MẤY"  # a wh-sign: last in its clause
    assert "MẤY" in vi("Phòng này có mấy người?")  # before a noun: 'how many', apart


def test_alternative_question_is_a_yes_no_question():
    assert vi("Anh có thẻ xe hay không?") == ["ANH", "THẺ", "XE", "CÓ-KHÔNG"]
    assert vi("Em uống thuốc hay chưa?") == ["EM", "UỐNG", "THUỐC", "CHƯA"]
    assert "HAY" in vi("Anh uống trà hay cà phê?")  # a real choice keeps its 'or'


def test_ability_and_permission_questions_have_one_sign():
    assert vi("Tôi có thể ra ngoài được không?") == ["TÔI", "RA", "NGOÀI", "ĐƯỢC-KHÔNG"]
    assert vi("Mẹ tôi có được vào thăm không?")[-1] == "ĐƯỢC-KHÔNG"  # được before a verb
    assert vi("Chị có thể chờ không?") == ["CHỊ", "CHỜ", "CÓ-THỂ-KHÔNG"]
    assert vi("Anh nhận được thư không?")[-1] == "CÓ-KHÔNG"  # được after a verb: no frame


def test_lexicalised_classifier_and_meal_compounds_are_one_word():
    assert vi("Con gái tôi bị ho.") == ["TÔI", "CON-GÁI", "HO"]  # not a classifier + gái
    assert "TỜ-KHAI" in vi("Bạn điền vào tờ khai.")
    assert "CON" not in vi("Tôi nuôi một con chó.")  # con chó is no word: a classifier
    assert vi("Em chưa ăn sáng.") == ["EM", "ĂN-SÁNG", "CHƯA"]  # a meal, not a time frame


def test_multi_word_time_expressions_are_one_time_sign():
    assert vi("Tôi đã gặp bác sĩ tuần trước.") == ["TÔI", "TUẦN-TRƯỚC", "GẶP", "BÁC-SĨ"]
    assert vi("Năm ngoái tôi bị ốm.")[0] == "NĂM-NGOÁI"


def test_segmenter_units_are_split_into_dictionary_words():
    from slt_training.data.gloss_rules_vi import Word, split_compounds

    lexicon = frozenset({"bảo hiểm", "y tế", "sức khỏe"})
    words = [Word("khám gói", "V"), Word("bảo hiểm y tế", "N"), Word("sức khỏe", "N")]
    assert [w.text for w in split_compounds(words, lexicon)] == [
        "khám",
        "gói",  # glued by the segmenter, no word of its dictionary
        "bảo hiểm",
        "y tế",  # a phrase: one sign per word
        "sức khỏe",  # a dictionary word stays one gloss
    ]
    names = [Word("hà nội", "Np"), Word("ở đâu", "X")]
    assert split_compounds(names, lexicon) == names  # names and fixed expressions stay whole


def test_dictionary_lookup_accepts_both_tone_mark_placements():
    from slt_training.data.gloss_rules_vi import Word, spelling_variants, split_compounds

    assert spelling_variants(["hòa bình"]) == {"hòa bình", "hoà bình"}
    assert spelling_variants(["thuỷ tinh"]) == {"thuỷ tinh", "thủy tinh"}
    assert spelling_variants(["mùa xuân", "quý khách", "hoàn thành"]) == {
        "mùa xuân",  # ua, qu and closed syllables have one placement only
        "quý khách",
        "hoàn thành",
    }
    lexicon = spelling_variants(["sức khoẻ"])  # the dictionary's spelling
    assert split_compounds([Word("sức khỏe", "N")], lexicon) == [Word("sức khỏe", "N")]


def test_decomposed_vietnamese_input_is_normalised():
    text = "Tôi muốn đăng ký khám sức khỏe."
    decomposed = unicodedata.normalize("NFD", text)
    assert decomposed != text
    assert vi(decomposed) == vi(text)
    assert all(unicodedata.is_normalized("NFC", g) for g in vi(decomposed))


def test_lemma_file_replaces_words_before_the_rules(tmp_path):
    lemmas = tmp_path / "lemmas.tsv"
    lemmas.write_text("tái khám\tkhám lại\ngiấy tờ\tgiấy\n", encoding="utf-8")
    assert vi("Tôi cần nộp giấy tờ.", lemmas_file=lemmas) == ["TÔI", "NỘP", "GIẤY", "CẦN"]
    bad = tmp_path / "bad.tsv"
    bad.write_text("no tab here\n", encoding="utf-8")
    with pytest.raises(SltError, match="bad.tsv:1"):
        vi("Tôi đến.", lemmas_file=bad)


def test_bad_options_are_refused_with_the_choices(tmp_path):
    with pytest.raises(SltError, match="digits"):
        GlossOptions(numbers="words")
    with pytest.raises(SltError, match="underthesea"):
        GlossOptions(segmenter="spacy")
    with pytest.raises(SltError, match="not found"):
        GlossOptions(stopwords_file=tmp_path / "missing.txt")


def test_both_vietnamese_segmenters_give_the_conventions():
    for segmenter in ("underthesea", "pyvi"):
        pytest.importorskip(segmenter)
        assert vi("Tôi 24 tuổi.", segmenter=segmenter) == ["TÔI", "TUỔI", "2", "4"]


# ── other languages ──────────────────────────────────────────────────────────


def test_german_glosses_are_phoenix_style():
    text = "am mittwoch regnet es in der nordhälfte kräftig ."
    glosses = derive_glosses(text, GlossOptions(lang="de"))
    assert glosses == ["MITTWOCH", "REGNET", "NORDHAELFTE", "KRAEFTIG"]


def test_chinese_unit_is_the_word():
    pytest.importorskip("jieba")
    glosses = derive_glosses("我要去超市买椅子，你去吗？他今年四岁。", GlossOptions(lang="zh"))
    assert "超市" in glosses and "椅子" in glosses  # words, not characters
    assert "吗" not in glosses and "，" not in glosses  # particle, punctuation
    assert "4" in glosses or "四岁" in glosses


def test_other_languages_use_words_and_a_user_stop_list(tmp_path):
    stop = tmp_path / "stop.txt"
    stop.write_text("the\nis\n", encoding="utf-8")
    options = GlossOptions(lang="en", stopwords_file=stop)
    assert derive_glosses("The room is 12B, the doctor is in.", options) == [
        "ROOM",
        "12B",
        "DOCTOR",
        "IN",
    ]


# ── compare_glosses ──────────────────────────────────────────────────────────


def test_compare_glosses_on_hand_computed_cases():
    one = compare_glosses([["A", "B", "C"]], [["A", "C", "D", "E"]])
    assert one.precision == pytest.approx(2 / 3)  # A, C of 3 derived
    assert one.recall == pytest.approx(2 / 4)
    assert one.f1 == pytest.approx(2 * (2 / 3) * (1 / 2) / (2 / 3 + 1 / 2))
    assert one.wer == pytest.approx(75.0)  # 3 edits / 4 reference glosses
    # multisets, micro-averaged: X X Y vs X Y Y matches 2 (one X, one Y)
    two = compare_glosses(
        [["A", "B", "C"], ["X", "X", "Y"]], [["A", "C", "D", "E"], ["X", "Y", "Y"]]
    )
    assert two.precision == pytest.approx(4 / 6)
    assert two.recall == pytest.approx(4 / 7)
    assert two.n_sentences == 2
    perfect = compare_glosses([["Y", "X"]], [["X", "Y"]])
    assert perfect.f1 == 1.0 and perfect.wer == pytest.approx(100.0)  # bag equal, order not
    empty = compare_glosses([[]], [["X"]])
    assert empty.precision == 0.0 and empty.f1 == 0.0 and empty.wer == pytest.approx(100.0)


# ── the dataset operation ────────────────────────────────────────────────────


def make_dataset(root: Path, gloss: str = "") -> None:
    write_jsonl(
        root / "train.jsonl",
        [
            Clip(name="a", text="Tôi 24 tuổi.", gloss=gloss, video="videos/a.mp4"),
            Clip(name="b", text="Tôi muốn gặp bác sĩ.", gloss=gloss, signer="s1"),
        ],
    )
    write_jsonl(root / "dev.jsonl", [Clip(name="c", text="Tôi là nữ.", gloss=gloss)])


def test_gloss_from_text_fills_every_split(tmp_path):
    make_dataset(tmp_path)
    result = gloss_from_text(tmp_path, ["train", "dev"], VI)
    assert result.clips == 3 and result.human_kept == 0
    train = read_jsonl(tmp_path / "train.jsonl")
    assert train[0].gloss == "TÔI TUỔI 2 4" and train[0].video == "videos/a.mp4"
    assert train[1].gloss == "TÔI GẶP BÁC-SĨ MUỐN" and train[1].signer == "s1"
    assert read_jsonl(tmp_path / "dev.jsonl")[0].gloss == "TÔI NỮ"
    again = gloss_from_text(tmp_path, ["train", "dev"], VI)  # derived glosses may be redone
    assert again.clips == 3


def test_human_glosses_are_refused_then_kept_aside(tmp_path):
    make_dataset(tmp_path, gloss="HUMAN GLOSS")
    before = (tmp_path / "train.jsonl").read_bytes()
    with pytest.raises(SltError, match="--overwrite"):
        gloss_from_text(tmp_path, ["train", "dev"], VI)
    assert (tmp_path / "train.jsonl").read_bytes() == before
    result = gloss_from_text(tmp_path, ["train", "dev"], VI, overwrite=True)
    assert result.human_kept == 3
    lines = [json.loads(x) for x in (tmp_path / "train.jsonl").read_text("utf-8").splitlines()]
    assert lines[0]["gloss"] == "TÔI TUỔI 2 4" and lines[0]["gloss_human"] == "HUMAN GLOSS"
    scored, examples = compare_dataset(tmp_path, ["train", "dev"], VI)
    assert scored.n_sentences == 3 and examples[0].human == "HUMAN GLOSS"
    assert scored.f1 == 0.0  # nothing in common with the kept human gloss


def test_missing_split_is_named(tmp_path):
    make_dataset(tmp_path)
    with pytest.raises(SltError, match="test.jsonl"):
        gloss_from_text(tmp_path, ["train", "test"], VI)
    assert read_jsonl(tmp_path / "train.jsonl")[0].gloss == ""  # nothing written
