"""`slt doctor`: the environment checks on this machine, and a dataset root at each stage
of preparation naming the right next step."""

import csv
import subprocess
import sys

import numpy as np
import pytest

from slt_serve import doctor
from slt_serve.video import write_video
from slt_training.data.check import dataset_state


def slt(*args):
    return subprocess.run(
        [sys.executable, "-m", "slt_serve.cli", *args], capture_output=True, text=True, timeout=300
    )


def by_name(checks):
    return {c.name: c for c in checks}


# --- the environment, as it is here ------------------------------------------------------------


def test_environment_checks_pass_on_this_machine(tmp_path):
    checks = by_name(doctor.environment_checks(tmp_path))
    assert not [c for c in checks.values() if c.status == doctor.FAIL], checks
    assert checks["python"].status == "ok"
    assert checks["core packages"].status == "ok" and "numpy" in checks["core packages"].detail
    assert checks["video codecs"].status in ("ok", "warn")
    assert "libx264 encode work" in checks["video codecs"].detail
    assert "CPU" in checks["onnxruntime"].detail  # the provider list, as onnxruntime reports it
    assert checks["disk"].status in ("ok", "warn") and str(tmp_path) in checks["disk"].detail
    assert "torch" in checks and "2." in checks["torch"].detail  # the training stack is installed


def test_torch_is_probed_in_a_subprocess_only():
    code = (
        "import sys; from slt_serve import doctor; doctor.environment_checks(); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
    info = doctor.probe_torch()
    assert isinstance(info, dict) and info["version"].startswith("2.")


def test_a_cpu_torch_beside_a_visible_gpu_fails_with_the_fix():
    info = doctor.probe_torch()
    if info["cuda"]:
        pytest.skip("torch here is a CUDA build")
    gpu = doctor.GpuInfo(["NVIDIA T4 (15360 MiB)"], "550.54", "12.4")
    c = doctor.check_torch(gpu)
    assert c.status == "fail" and "CPU build" in c.detail and "pip install" in c.fix
    assert doctor.check_gpu(gpu, training=True).status == "ok"
    # onnxruntime without its CUDA provider beside a GPU: serving would silently use the CPU
    ort = doctor.check_onnxruntime(gpu)
    assert ort.status == "warn" and "[gpu]" in ort.fix


def test_known_traps(monkeypatch):
    real = doctor._installed
    fake = {"torchvision": "0.28.0", "mmpose": "1.3.2", "numpy": "2.1.0", "transformers": "6.0.0"}
    monkeypatch.setattr(doctor, "_installed", lambda name: fake.get(name) or real(name))
    traps = by_name(doctor.check_traps())
    assert traps["torchvision"].status == "warn" and "uninstall" in traps["torchvision"].fix
    assert traps["mmpose + numpy 2"].status == "warn"
    assert traps["transformers"].status == "warn" and "transformers<6" in traps["transformers"].fix


def test_missing_requirement_names_the_pip_command(monkeypatch):
    real = doctor._installed
    monkeypatch.setattr(doctor, "_installed", lambda n: None if n == "av" else real(n))
    checks = by_name(doctor.check_packages())
    assert checks["core packages"].status == "fail"
    assert checks["av"].status == "fail" and checks["av"].fix.startswith("pip install 'av>=")


# --- a dataset root, step by step --------------------------------------------------------------

TEXTS = [
    ("c0", "tôi đi ngân hàng.", "s0"),
    ("c1", "bạn đọc thư.", "s0"),
    ("c2", "anh ấy đi học.", "s1"),
    ("c3", "tôi đọc sách.", "s1"),
    ("c4", "bạn đi chợ.", "s2"),
    ("c5", "anh ấy đọc báo.", "s2"),
]


@pytest.fixture
def raw(tmp_path):
    """A folder of six tiny videos and a CSV of Vietnamese sentences, three signers."""
    videos = tmp_path / "raw" / "videos"
    rng = np.random.default_rng(0)
    for name, _, _ in TEXTS:
        write_video(videos / f"{name}.mp4", rng.integers(0, 255, (6, 32, 32, 3), np.uint8), 25)
    table = tmp_path / "raw" / "sentences.csv"
    with table.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("name", "text", "signer"), *TEXTS])
    return videos, table


def test_next_step_at_each_stage_of_preparation(tmp_path, raw):
    from slt_training.data.annotations import load_split, write_jsonl
    from slt_training.data.frames import cache_frames
    from slt_training.data.importers import import_folder, write_dataset
    from slt_training.data.vocab import build_vocab

    ds = tmp_path / "ds"
    state = dataset_state(ds)
    assert state.next_step.startswith("slt data import-folder")
    assert by_name(state.checks)["dataset"].status == "fail"

    result = import_folder(*raw, ds)
    write_dataset(ds, result.splits, False)
    state = dataset_state(ds)
    assert state.next_step == f"slt data gloss-from-text {ds} --lang vi"  # language from the text
    assert by_name(state.checks)["glosses"].status == "fail"
    assert "unseen in train" in by_name(state.checks)["annotations"].detail  # split by signer

    for split in ("train", "dev", "test"):  # glosses as gloss-from-text writes them
        clips = load_split(ds, split)
        write_jsonl(
            ds / f"{split}.jsonl",
            [
                c.model_copy(
                    update={"gloss": c.text.strip(".").upper(), "gloss_source": "pseudo:vi"}
                )
                for c in clips
            ],
        )
    state = dataset_state(ds)
    assert state.next_step == f"slt data vocab {ds}"
    assert "pseudo-glosses" in by_name(state.checks)["glosses"].detail

    build_vocab(load_split(ds, "train")).save(ds / "gloss_vocab.json")
    state = dataset_state(ds)
    assert state.next_step == f"slt data frames {ds} --size 256"
    assert "OOV" in by_name(state.checks)["gloss vocabulary"].detail

    cache_frames(ds, size=32, workers=1, progress=False)
    state = dataset_state(ds)
    checks = by_name(state.checks)
    assert checks["frames cache"].status == "ok" and "32²: 6/6" in checks["frames cache"].detail
    assert checks["keypoints"].status == "info"  # SingleStream needs none
    assert "data.frame_size: 32" in state.next_step and "configs/custom.yaml" in state.next_step
    assert not [c for c in state.checks if c.status == "fail"]

    # glosses changed after the vocabulary was built: a stale table is caught
    clips = load_split(ds, "train")
    write_jsonl(ds / "train.jsonl", [clips[0].model_copy(update={"gloss": "NEW"}), *clips[1:]])
    state = dataset_state(ds)
    assert by_name(state.checks)["gloss vocabulary"].status == "fail"
    assert state.next_step == f"slt data vocab {ds}"


def test_dataset_problems(tmp_path):
    ds = tmp_path / "ds"
    ds.mkdir()
    (ds / "train.jsonl").write_text('{"name": "a", "text": "Hallo", "video": "v/a.mp4"}\n')
    state = dataset_state(ds)
    checks = by_name(state.checks)
    assert checks["videos"].status == "fail" and "a" in checks["videos"].detail
    assert checks["annotations"].status == "warn"  # no dev split
    assert "--lang LANG" in checks["glosses"].fix  # no script to tell the language by
    (ds / "train.jsonl").write_text('{"name": "a"}\nnot json\n')
    state = dataset_state(ds)
    assert "line 2 is not JSON" in by_name(state.checks)["annotations"].detail


def test_partial_frames_cache_and_keypoints(tmp_path, raw):
    from slt_training.data.frames import cache_frames
    from slt_training.data.importers import import_folder, write_dataset

    ds = tmp_path / "ds"
    write_dataset(ds, import_folder(*raw, ds).splits, False)
    cache_frames(ds, size=32, workers=1, progress=False)
    next(iter((ds / "frames" / "32").glob("c*.mp4"))).unlink()
    (ds / "keypoints").mkdir()
    (ds / "keypoints" / "c0.npz").write_bytes(b"x")
    checks = by_name(dataset_state(ds).checks)
    assert checks["frames cache"].status == "fail" and "5/6" in checks["frames cache"].detail
    assert "--size 32" in checks["frames cache"].fix
    assert checks["keypoints"].status == "warn" and "1/6" in checks["keypoints"].detail


def test_cli_exit_codes_and_next(tmp_path):
    r = slt("doctor")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "video codecs" in r.stdout and "onnxruntime" in r.stdout
    r = slt("doctor", str(tmp_path / "nowhere"))
    assert r.returncode == 1
    assert "next: slt data import-folder" in r.stdout
    assert "Traceback" not in r.stderr


def test_doctor_reads_no_training_stack():
    code = "import sys, slt_serve.doctor; assert 'slt_training' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_import_folder_names_the_split_signers_and_the_texts_language(tmp_path, raw):
    videos, table = raw
    r = slt(
        "data", "import-folder", str(videos), "--table", str(table), "--out", str(tmp_path / "ds")
    )
    assert r.returncode == 0, r.stderr
    assert "1 signer" in r.stdout and "split by signer" in r.stdout
    assert f"next: slt data gloss-from-text {tmp_path / 'ds'} --lang vi" in r.stdout
