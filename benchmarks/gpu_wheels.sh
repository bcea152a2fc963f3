#!/usr/bin/env bash
# The wheels benchmarks/bench_gpu.py needs on the lent GPU machine, which has Python 3.12,
# PyTorch, onnx and CUDA 13 libraries but no network: onnxruntime-gpu (CUDA 13 build, 244 MiB)
# cut into parts of 41 MiB (a device call carries 64 MiB with the working tree), and in
# .whl/ what the project imports that the machine lacks (PyAV, pydantic, jiwer, ...).
# Versions: those this repository is tested with. Run it here, in the repository root:
#   bash benchmarks/gpu_wheels.sh      → .whl/*.whl, .whl-ort/part-NN, .whl-ort/NAME
# then make the calls listed in docs/benchmarks.md, "On a GPU".
set -euo pipefail
cd "$(dirname "$0")/.."
for folder in /.whl/ /.whl-ort/; do
    grep -qxF "$folder" .git/info/exclude || echo "$folder" >>.git/info/exclude
done
download() {
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform manylinux1_x86_64 "$@"
}
download -d .whl av==18.1.0 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 \
    typing-inspection==0.4.5 typing-extensions==4.16.0 jiwer==4.0.0 rapidfuzz==3.14.6
ort=$(mktemp -d)
download -d "$ort" onnxruntime-gpu==1.31.1
rm -rf .whl-ort && mkdir .whl-ort
wheel=$(ls "$ort"/onnxruntime_gpu-*.whl)
basename "$wheel" >.whl-ort/NAME
split -b 41M -d "$wheel" .whl-ort/part-
rm -rf "$ort"
ls -l .whl .whl-ort
