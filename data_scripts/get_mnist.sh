#!/usr/bin/env bash
# data_scripts/get_mnist.sh — MNIST's four IDX files, gzipped, into $DATA_DIR/mnist (default data/mnist).
# examples/cvae.c reads the .gz files directly (--dataset mnist --data data/mnist); nothing is unpacked.
#
# Source: yann.lecun.com/exdb/mnist is the original home, but it often refuses downloads (HTTP 403)
# or is down, so the files come from the mirror torchvision uses (ossci-datasets on S3), then the
# one TensorFlow uses (cvdf-datasets on Google Cloud Storage), then the original. All three serve
# the same bytes; MNIST_MIRRORS="URL ..." (space-separated folder URLs) replaces the list.
#
# Checksums: sha256 of each .gz file, as pinned by TensorFlow Datasets
# (tensorflow/datasets, tensorflow_datasets/url_checksums/mnist.txt, with the byte sizes) and by
# torchvision's prototype datasets (pytorch/vision, torchvision/prototype/datasets/_builtin/mnist.py):
# the two agree.
#
# Environment: DATA_DIR, MNIST_MIRRORS, UVAE_ATTEMPTS, UVAE_BACKOFF, DOWNLOADER (see common.sh).
set -euo pipefail
# shellcheck source=data_scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

read -r -a MIRRORS <<< "${MNIST_MIRRORS:-https://ossci-datasets.s3.amazonaws.com/mnist https://storage.googleapis.com/cvdf-datasets/mnist http://yann.lecun.com/exdb/mnist}"
OUT=$DATA_DIR/mnist

while read -r sha name; do
    urls=()
    for m in "${MIRRORS[@]}"; do urls+=("${m%/}/$name"); done
    download_verified "${urls[0]}" "$OUT/$name" "$sha" "${urls[@]:1}"
done <<'SUMS'
440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609 train-images-idx3-ubyte.gz
3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c train-labels-idx1-ubyte.gz
8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6 t10k-images-idx3-ubyte.gz
f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6 t10k-labels-idx1-ubyte.gz
SUMS
say "MNIST ready in $OUT (train with: ./build/cvae --dataset mnist --data $OUT)"
