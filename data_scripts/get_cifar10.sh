#!/usr/bin/env bash
# data_scripts/get_cifar10.sh — CIFAR-10, binary version, into $DATA_DIR/cifar10 (default data/cifar10):
#   cifar10/cifar-10-binary.tar.gz                  the archive (kept, so a rerun verifies, not re-fetches)
#   cifar10/cifar-10-batches-bin/data_batch_{1..5}.bin, test_batch.bin, batches.meta.txt
# which is the layout examples/cvae.c reads (--dataset cifar10 --data data/cifar10).
# Delete the archive after unpacking if you need the 170 MB: a rerun sees the unpacked files.
#
# Source: the official page https://www.cs.toronto.edu/~kriz/cifar.html (Alex Krizhevsky).
# Checksum: sha256 of cifar-10-binary.tar.gz (170052171 bytes) as pinned by TensorFlow Datasets,
# whose cifar10 builder downloads this binary archive (tensorflow/datasets,
# tensorflow_datasets/url_checksums/cifar10.txt). torchvision's md5 for it,
# c32a1d4ab5d03f1284b67883e8d87530, is not used here.
#
# Environment: DATA_DIR, UVAE_ATTEMPTS, UVAE_BACKOFF, DOWNLOADER (see common.sh).
set -euo pipefail
# shellcheck source=data_scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

URL=https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz
SHA=c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd
OUT=$DATA_DIR/cifar10

download_verified "$URL" "$OUT/cifar-10-binary.tar.gz" "$SHA"
extract_tar "$OUT/cifar-10-binary.tar.gz" "$OUT" "$SHA" \
    cifar-10-batches-bin/data_batch_{1,2,3,4,5}.bin cifar-10-batches-bin/test_batch.bin cifar-10-batches-bin/batches.meta.txt
say "CIFAR-10 ready in $OUT (train with: ./build/cvae --dataset cifar10 --data $OUT)"
