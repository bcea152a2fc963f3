"""`slt doctor`: the environment checks on this machine; `slt doctor DATASET` through the
training plugin (the dataset checks themselves are tested in test_check.py)."""

import subprocess
import sys

import pytest

from slt_serve import doctor


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
