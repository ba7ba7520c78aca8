"""bench/fold_split.py - a second held-out split of Oxford-IIIT Pet, disjoint from the first one's
validation images: the check that a recipe and protocol chosen on split 1's 60 validation images
hold on 60 images they were never evaluated on.

    python3 bench/fold_split.py --split runs/s7/split1 --out runs/fold2 [--per-breed 20] [--seed 2]

--split is a folder with split_train.txt and split_val.txt (what `unet_pets train` writes into its
--out). From split_train.txt it draws --per-breed names of every breed (the name without its
trailing _N) with Python's random.Random(seed), in sorted order, as OUT/val.txt; OUT/train.txt
is every other name of the two lists (split 1's validation images among them). Train with
`unet_pets train --train-list OUT/train.txt --val-list OUT/val.txt ...`. Standard library only.
"""
import argparse
import os
import random
import sys


def read_list(path):
    with open(path) as f:
        return [line.split()[0] for line in f if line.strip() and not line.startswith("#")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", required=True, help="folder with split_train.txt and split_val.txt")
    ap.add_argument("--out", required=True, help="folder for train.txt and val.txt")
    ap.add_argument("--per-breed", type=int, default=20, help="validation images per breed [20]")
    ap.add_argument("--seed", type=int, default=2, help="seed of the draw [2]")
    a = ap.parse_args()
    if a.per_breed < 1:
        sys.exit("fold_split.py: --per-breed must be at least 1, not %d" % a.per_breed)

    try:
        train = read_list(os.path.join(a.split, "split_train.txt"))
        val = read_list(os.path.join(a.split, "split_val.txt"))
    except OSError as e:
        sys.exit("fold_split.py: %s" % e)
    if not train:
        sys.exit("fold_split.py: %s lists no images" % os.path.join(a.split, "split_train.txt"))
    breeds = {}
    for name in sorted(train):
        breeds.setdefault(name.rsplit("_", 1)[0], []).append(name)
    rng = random.Random(a.seed)
    held = set()
    for breed in sorted(breeds):
        names = breeds[breed]
        if len(names) <= a.per_breed:
            sys.exit("fold_split.py: breed %s has %d training images, needs more than --per-breed %d"
                     % (breed, len(names), a.per_breed))
        held.update(rng.sample(names, a.per_breed))

    os.makedirs(a.out, exist_ok=True)
    new_val = sorted(held)
    new_train = sorted(n for n in train + val if n not in held)
    for fname, names in (("train.txt", new_train), ("val.txt", new_val)):
        with open(os.path.join(a.out, fname), "w") as f:
            f.write("".join(n + "\n" for n in names))
    print("fold_split.py: %d train / %d val (%d breeds x %d) in %s"
          % (len(new_train), len(new_val), len(breeds), a.per_breed, a.out))


if __name__ == "__main__":
    main()
