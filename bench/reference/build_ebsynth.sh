#!/bin/sh
# Build the reference's EbSynth (CPU, OpenMP) for bench/propagation_reference.py.
#
# Rerender propagates with SingleZombie/ebsynth at commit 02ec8c4, a public-domain fork of
# jamriska/ebsynth that also writes each output's per-pixel patch error (<output>.bin). Nothing
# here is downloaded: clone it yourself where you have network, then
#
#   git clone https://github.com/SingleZombie/ebsynth && git -C ebsynth checkout 02ec8c4
#   sh bench/reference/build_ebsynth.sh ebsynth .cache/ebsynth       # about two minutes
#   .venv/bin/python bench/propagation_reference.py --ebsynth .cache/ebsynth
#
# Usage: build_ebsynth.sh SOURCE_DIR OUTPUT_BINARY
set -eu
if [ $# -ne 2 ] || [ ! -f "$1/src/ebsynth_cpu.cpp" ] || [ ! -f "$1/include/serialize.h" ]; then
    echo "usage: $0 SOURCE_DIR OUTPUT_BINARY  (SOURCE_DIR: a checkout of SingleZombie/ebsynth, 02ec8c4)" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$(dirname "$2")"
# The fork's own CPU-only stub (src/ebsynth_nocuda.cpp) does not match its CUDA signature; ours does.
g++ "$1/src/ebsynth.cpp" "$1/src/ebsynth_cpu.cpp" "$here/ebsynth_cuda_stub.cpp" -DNDEBUG -O3 -fopenmp \
    -I"$1/include" -std=c++17 -o "$2.partial"
mv "$2.partial" "$2"
echo "built $2"
