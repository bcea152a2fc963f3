import gzip
import os
import pickle

import numpy as np
import pytest
import torch

from slt_serve.errors import SltError
from slt_training.data.annotations import Clip
from slt_training.data.importers import (
    import_folder,
    read_phoenix_csv,
    split_from_filename,
    write_dataset,
)
from slt_training.data.slrt_pickle import clips_from_slrt, load_slrt_pickle, write_slrt_pickle

REFERENCE_ENTRIES = [
    {
        "name": "train/01April_2010_Thursday_heute-6694",
        "signer": "Signer04",
        "gloss": "REGEN SCHNEE REGION VERSCHWINDEN",
        "text": "regen und schnee lassen an den alpen in der nacht nach .",
        "num_frames": 181,
        "sign": torch.arange(12, dtype=torch.float32).reshape(3, 4),
    },
    {
        "name": "train/01April_2010_Thursday_heute-6697",
        "signer": "Signer04",
        "gloss": "SONNE",
        "text": "sonnig .",
        "num_frames": np.int64(56),
    },
]


def write_reference(path, entries, compress=True):
    data = pickle.dumps(entries)  # what the reference code does (gzip + pickle.dump)
    path.write_bytes(gzip.compress(data) if compress else data)


def test_slrt_pickle_with_tensors_loads_safely(tmp_path):
    path = tmp_path / "phoenix14t.pami0.train"
    write_reference(path, REFERENCE_ENTRIES)
    entries = load_slrt_pickle(path)
    assert torch.equal(entries[0]["sign"], REFERENCE_ENTRIES[0]["sign"])
    clips = clips_from_slrt(entries, video_dir="features")
    assert clips[0].name == "train/01April_2010_Thursday_heute-6694"
    assert clips[0].video == "features/train/01April_2010_Thursday_heute-6694"
    assert clips[1].num_frames == 56 and isinstance(clips[1].num_frames, int)
    assert split_from_filename(path) == "train"


class Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_malicious_pickle_is_refused_without_running_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.train"
    write_reference(path, [{"name": "x", "payload": Exploit()}])
    with pytest.raises(SltError, match="refusing to unpickle .*system"):
        load_slrt_pickle(path)
    assert not (tmp_path / "pwned").exists()


def test_truncated_or_foreign_files_give_clear_errors(tmp_path):
    good = tmp_path / "a.dev"
    write_reference(good, REFERENCE_ENTRIES, compress=False)
    truncated = tmp_path / "b.dev"
    truncated.write_bytes(good.read_bytes()[:100])
    with pytest.raises(SltError, match="not a readable pickle"):
        load_slrt_pickle(truncated)
    notlist = tmp_path / "c.dev"
    write_reference(notlist, "just a string")
    with pytest.raises(SltError, match="expected a list of dicts"):
        load_slrt_pickle(notlist)


def test_export_round_trip(tmp_path):
    clips = [Clip(name="dev/a", signer="S1", gloss="A B", text="a b .", num_frames=10)]
    path = tmp_path / "out.dev"
    write_slrt_pickle(path, clips)
    with gzip.open(path, "rb") as f:  # readable by the reference code's own loader
        entries = pickle.load(f)
    assert entries == [
        {"name": "dev/a", "signer": "S1", "gloss": "A B", "text": "a b .", "num_frames": 10}
    ]
    assert clips_from_slrt(load_slrt_pickle(path)) == clips


def test_phoenix_csv(tmp_path):
    path = tmp_path / "PHOENIX-2014-T.dev.corpus.csv"
    path.write_text(
        "name|video|start|end|speaker|orth|translation\n"
        "11August_2010_Wednesday_tagesschau-2|11August_2010_Wednesday_tagesschau-2/1/*.png|-1|-1|"
        "Signer08|DRUCK TIEF KOMMEN|tiefer luftdruck bestimmt in den nächsten tagen unser wetter .\n",
        encoding="utf-8",
    )
    (clip,) = read_phoenix_csv(path, video_dir="features/fullFrame-210x260px/dev")
    assert clip.name == "dev/11August_2010_Wednesday_tagesschau-2"
    assert clip.signer == "Signer08" and clip.gloss == "DRUCK TIEF KOMMEN"
    assert clip.text.startswith("tiefer luftdruck")
    assert clip.video == "features/fullFrame-210x260px/dev/11August_2010_Wednesday_tagesschau-2/1"


def test_phoenix_csv_without_gloss_column(tmp_path):
    path = tmp_path / "x.train.csv"
    path.write_text("name|video\na|a/1/*.png\n", encoding="utf-8")
    with pytest.raises(SltError, match="PHOENIX columns"):
        read_phoenix_csv(path)


def make_videos(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        (folder / f"{n}.mp4").write_bytes(b"")  # import does not open videos


def test_folder_import_splits_by_signer(tmp_path):
    names = [f"clip{i:02d}" for i in range(30)]
    make_videos(tmp_path / "videos", names)
    table = tmp_path / "sentences.csv"
    rows = ["name,text,signer"] + [f"{n},Câu số {i}.,S{i % 6}" for i, n in enumerate(names)]
    table.write_text("\n".join(rows) + "\n", encoding="utf-8")
    result = import_folder(tmp_path / "videos", table, tmp_path / "ds", 0.15, 0.15, seed=1)
    assert result.split_by == "signer"
    signers = {s: {c.signer for c in clips} for s, clips in result.splits.items()}
    assert signers["test"] and signers["dev"] and signers["train"]
    assert not signers["test"] & signers["train"] and not signers["dev"] & signers["train"]
    assert sum(len(c) for c in result.splits.values()) == 30
    clip = result.splits["train"][0]
    assert (tmp_path / "ds" / clip.video).resolve() == (tmp_path / "videos" / f"{clip.name}.mp4")
    write_dataset(tmp_path / "ds", result.splits)
    with pytest.raises(SltError, match="--overwrite"):
        write_dataset(tmp_path / "ds", result.splits)


def test_folder_import_signer_split_stays_near_its_share(tmp_path):
    # 60 clips from signers of unequal size; 10% dev and test is 6 clips each. A signer is
    # held out only when it brings the split nearer its share: the 16-clip signer never is.
    sizes = {"A": 16, "B": 11, "C": 10, "D": 9, "E": 8, "F": 6}
    names = [(f"{s}{k:02d}", s) for s, n in sizes.items() for k in range(n)]
    make_videos(tmp_path / "videos", [n for n, _ in names])
    table = tmp_path / "sentences.csv"
    rows = ["name,text,signer"] + [f"{n},câu {n}.,{s}" for n, s in names]
    table.write_text("\n".join(rows) + "\n", encoding="utf-8")
    held_out = set()
    for seed in range(8):
        splits = import_folder(tmp_path / "videos", table, tmp_path / "ds", 0.1, 0.1, seed).splits
        assert 0 < len(splits["test"]) < 12 and 0 < len(splits["dev"]) < 12, seed
        assert len(splits["train"]) >= 36
        held_out |= {c.signer for c in splits["test"]}
    assert "A" not in held_out and len(held_out) > 1  # the seed still chooses among the rest


def test_folder_import_with_split_column_tsv_and_missing_videos(tmp_path):
    make_videos(tmp_path / "v" / "sub", ["a", "b"])
    table = tmp_path / "t.tsv"
    table.write_text(
        "name\ttext\tgloss\tsplit\na.mp4\tA.\tA\ttrain\nb\tB.\tB\tdev\nc\tC.\tC\ttest\n"
    )
    with pytest.raises(SltError, match="1 row.*c .*--skip-missing"):
        import_folder(tmp_path / "v", table, tmp_path / "ds")
    result = import_folder(tmp_path / "v", table, tmp_path / "ds", skip_missing=True)
    assert result.split_by == "table"
    assert [c.name for c in result.splits["train"]] == ["a"]
    assert [c.gloss for c in result.splits["dev"]] == ["B"]


def test_folder_import_few_signers_splits_clips(tmp_path):
    make_videos(tmp_path / "v", [f"c{i}" for i in range(20)])
    table = tmp_path / "t.csv"
    table.write_text("name,text\n" + "".join(f"c{i},t{i}\n" for i in range(20)))
    result = import_folder(tmp_path / "v", table, tmp_path / "ds")
    assert result.split_by == "clip"
    assert [len(result.splits[s]) for s in ("train", "dev", "test")] == [16, 2, 2]


def test_folder_import_needs_text_column(tmp_path):
    make_videos(tmp_path / "v", ["a"])
    table = tmp_path / "t.csv"
    table.write_text("name,gloss\na,A\n")
    with pytest.raises(SltError, match="t.csv:2: column 'text'"):
        import_folder(tmp_path / "v", table, tmp_path / "ds")
