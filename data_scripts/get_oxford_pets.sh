#!/usr/bin/env bash
# data_scripts/get_oxford_pets.sh — the Oxford-IIIT Pet dataset into $DATA_DIR/oxford-pets
# (default data/oxford-pets), in its official layout, which examples/unet_pets.c reads:
#   oxford-pets/images/<Breed>_<n>.jpg                      7390 images (about 790 MB archive)
#   oxford-pets/annotations/trimaps/<Breed>_<n>.png         1 pet, 2 background, 3 border
#   oxford-pets/annotations/trainval.txt, test.txt, list.txt   the official splits
#   oxford-pets/images.tar.gz, annotations.tar.gz           the archives (kept; delete them to save
#                                                            space: a rerun sees the unpacked files)
# The archives also hold a few files the loader never reads (images/*.mat, annotations/xmls/,
# hidden ._* files beside the trimaps); they are left as they are.
#
# Source: the official page https://www.robots.ox.ac.uk/~vgg/data/pets/ (Parkhi et al., 2012).
# Checksums: sha256 of both archives as pinned by TensorFlow Datasets
# (tensorflow/datasets, tensorflow_datasets/url_checksums/oxford_iiit_pet.txt, with the byte sizes)
# and by torchvision's prototype datasets (pytorch/vision,
# torchvision/prototype/datasets/_builtin/oxford_iiit_pet.py): the two agree. (torchvision's md5s,
# images 5c4f3ee8e5d25df40f4fd59a7f44e54c and annotations 95a8c909bbe2e81eed6a22bccdf3f68f, are not used.)
#
# Environment: DATA_DIR, UVAE_ATTEMPTS, UVAE_BACKOFF, DOWNLOADER (see common.sh).
set -euo pipefail
# shellcheck source=data_scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

BASE=https://www.robots.ox.ac.uk/~vgg/data/pets/data
IMAGES_SHA=67195c5e1c01f1ab5f9b6a5d22b8c27a580d896ece458917e61d459337fa318d
ANNOTATIONS_SHA=52425fb6de5c424942b7626b428656fcbd798db970a937df61750c0f1d358e91
OUT=$DATA_DIR/oxford-pets

download_verified "$BASE/annotations.tar.gz" "$OUT/annotations.tar.gz" "$ANNOTATIONS_SHA"
download_verified "$BASE/images.tar.gz" "$OUT/images.tar.gz" "$IMAGES_SHA"
extract_tar "$OUT/annotations.tar.gz" "$OUT" "$ANNOTATIONS_SHA" \
    annotations/trimaps annotations/trainval.txt annotations/test.txt annotations/list.txt
extract_tar "$OUT/images.tar.gz" "$OUT" "$IMAGES_SHA" images/Abyssinian_1.jpg images/Abyssinian_100.jpg
say "Oxford-IIIT Pet ready in $OUT (train with: ./build/unet_pets train --data $OUT)"
