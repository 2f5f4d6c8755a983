"""Datasets for training and measurement: CIFAR-10/100, a folder of images, or synthetic.

Everything arrives as uint8 NCHW tensors in a `Dataset` (types.py); `load_dataset`
(datasets.py) reads one, `normalize` turns it into model input and `DeviceLoader` (loader.py)
serves augmented batches from device memory.
"""

from resnest_bench.harness.data.datasets import DATASETS, load_dataset
from resnest_bench.harness.data.download import ArchiveSource, Progress
from resnest_bench.harness.data.loader import DeviceLoader
from resnest_bench.harness.data.types import Dataset, ImageSet, Preprocessing, normalize

__all__ = [
    "DATASETS",
    "ArchiveSource",
    "Dataset",
    "DeviceLoader",
    "ImageSet",
    "Preprocessing",
    "Progress",
    "load_dataset",
    "normalize",
]
