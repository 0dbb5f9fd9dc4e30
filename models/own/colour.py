"""Coloured Fashion-MNIST at 3x32x32: each 28x28 article padded to 32x32 and
tinted with a colour drawn for it (seeded by split and index), so that
colour is in every image and says nothing about the class.

    python models/own/colour.py OUT [--split test] [--count 1000]

writes OUT/<index>.png in the test set's order and OUT/labels.csv
(`file,label` rows with class names, which advx sorts into labels 0-9, so
the names carry the class number first): a flat image folder as advx reads
it with `images "OUT"`. train.py trains on the same images, made here.
"""

import argparse
import gzip
import os

import numpy as np

FASHION = os.environ.get("FASHION_MNIST", "/usr/share/datasets/fashion-mnist")
CLASSES = ["0-tshirt", "1-trouser", "2-pullover", "3-dress", "4-coat",
           "5-sandal", "6-shirt", "7-sneaker", "8-bag", "9-boot"]
FILES = {"train": "train", "test": "t10k"}


def read(split):
    """The split's uint8 images [N, 28, 28] and labels [N]."""
    prefix = os.path.join(FASHION, FILES[split])
    with gzip.open(f"{prefix}-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(f"{prefix}-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    return images, labels


def coloured(split, count=None):
    """uint8 images [N, 32, 32, 3] and labels [N]."""
    images, labels = read(split)
    images, labels = images[:count], labels[:count]
    rng = np.random.default_rng({"train": 1, "test": 2}[split])
    tint = rng.uniform(0.25, 1.0, size=(len(images), 1, 1, 3))
    tint /= tint.max(axis=3, keepdims=True)
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2)))[..., None].astype(np.float64)
    return np.round(padded * tint).astype(np.uint8), labels


def main():
    from PIL import Image

    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--split", default="test", choices=FILES)
    parser.add_argument("--count", type=int, default=1000)
    args = parser.parse_args()
    images, labels = coloured(args.split, args.count)
    os.makedirs(args.out, exist_ok=True)
    rows = ["file,label"]
    for i, (image, label) in enumerate(zip(images, labels)):
        Image.fromarray(image, "RGB").save(os.path.join(args.out, f"{i:05}.png"))
        rows.append(f"{i:05}.png,{CLASSES[label]}")
    with open(os.path.join(args.out, "labels.csv"), "w") as f:
        f.write("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
