"""harness.data: real binary CIFAR formats served through file:// URLs, folders, synthetic data,
normalisation and the device loader. Every archive here is a few KB, so the suite stays fast."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from resnest_bench.harness.data import (
    ArchiveSource,
    DeviceLoader,
    ImageSet,
    load_dataset,
    normalize,
)
from resnest_bench.harness.data.loader import crop_and_flip
from resnest_bench.harness.errors import BenchError
from tests.cifar_files import pack, records

RECORDS = 20  # per .bin file
PIXELS = 3 * 32 * 32


def _pixels(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random planes, except record 0 is pure red and record 1's red plane counts 0..1023."""
    pixels = rng.integers(0, 256, (n, PIXELS), dtype=np.uint8)
    pixels[0] = np.concatenate([np.full(1024, 255), np.zeros(2048)]).astype(np.uint8)
    pixels[1, :1024] = np.arange(1024) % 256
    return pixels


def _cifar10_files(seed: int = 0) -> tuple[dict[str, bytes], dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    files, labels = {}, {}
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        labels[name] = rng.integers(0, 10, RECORDS)
        files[name] = records([labels[name]], _pixels(rng, RECORDS))
    files["batches.meta.txt"] = b"\n".join(f"name{i}".encode() for i in range(10)) + b"\n\n"
    return files, labels


def cifar10_archive(tmp_path: Path, **replace: bytes) -> ArchiveSource:
    files, _ = _cifar10_files()
    files.update(replace)
    return pack(tmp_path, "cifar-10-batches-bin", files, "cifar-10-binary.tar.gz")


def test_cifar10_loads_through_the_download_path(tmp_path: Path) -> None:
    files, labels = _cifar10_files()
    source = pack(tmp_path, "cifar-10-batches-bin", files, "cifar-10-binary.tar.gz")
    calls: list[tuple[int, int | None]] = []
    root = tmp_path / "cache"
    ds = load_dataset(
        "cifar10", root=root, archive=source, progress=lambda d, t: calls.append((d, t))
    )

    assert (
        ds.train.images.shape == (5 * RECORDS, 3, 32, 32) and ds.train.images.dtype == torch.uint8
    )
    assert ds.test.images.shape == (RECORDS, 3, 32, 32)
    expected = np.concatenate([labels[f"data_batch_{i}.bin"] for i in range(1, 6)])
    assert ds.train.labels.tolist() == expected.tolist()
    assert ds.test.labels.tolist() == labels["test_batch.bin"].tolist()
    assert ds.classes == tuple(f"name{i}" for i in range(10)) and ds.num_classes == 10
    assert not ds.synthetic and ds.source == source.url
    red = ds.train.images[0]  # planes are R, G, B; each row-major
    assert (red[0] == 255).all() and (red[1:] == 0).all()
    assert ds.train.images[1, 0, 0, :3].tolist() == [0, 1, 2]
    assert ds.train.images[1, 0, 1, 0] == 32
    assert calls and calls[-1][0] == Path(source.url[7:]).stat().st_size
    kept = sorted(p.name for p in root.iterdir())
    assert kept == ["cifar-10-batches-bin", "cifar-10-binary.tar.gz"]  # no temp leftovers


def test_cifar100_uses_fine_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    fine = {n: rng.integers(0, 100, RECORDS) for n in ("train.bin", "test.bin")}
    files = {n: records([f // 5, f], _pixels(rng, RECORDS)) for n, f in fine.items()}
    files["fine_label_names.txt"] = "\n".join(f"f{i}" for i in range(100)).encode()
    files["coarse_label_names.txt"] = "\n".join(f"c{i}" for i in range(20)).encode()
    source = pack(tmp_path, "cifar-100-binary", files, "cifar-100-binary.tar.gz")
    ds = load_dataset("cifar100", root=tmp_path / "cache", archive=source)
    assert ds.num_classes == 100 and ds.classes[7] == "f7"
    assert ds.train.labels.tolist() == fine["train.bin"].tolist()
    assert ds.test.labels.tolist() == fine["test.bin"].tolist()
    assert (ds.train.images[0, 0] == 255).all()


def test_second_load_uses_the_cache(tmp_path: Path) -> None:
    source = cifar10_archive(tmp_path)
    root = tmp_path / "cache"
    first = load_dataset("cifar10", root=root, archive=source)
    Path(source.url[7:]).unlink()  # a new download would now fail
    calls: list[int] = []
    second = load_dataset(
        "cifar10", root=root, archive=source, progress=lambda d, t: calls.append(d)
    )
    assert calls == [] and torch.equal(first.train.images, second.train.images)


def test_deleted_cache_file_is_restored_from_the_kept_archive(tmp_path: Path) -> None:
    source = cifar10_archive(tmp_path)
    root = tmp_path / "cache"
    first = load_dataset("cifar10", root=root, archive=source)
    (root / "cifar-10-batches-bin" / "data_batch_2.bin").unlink()
    again = load_dataset("cifar10", root=root, archive=source, download=False)
    assert torch.equal(first.train.labels, again.train.labels)


def test_checksum_mismatch_leaves_nothing_in_the_cache(tmp_path: Path) -> None:
    good = cifar10_archive(tmp_path)
    root = tmp_path / "cache"
    with pytest.raises(BenchError, match=r"corrupt \(md5"):
        load_dataset("cifar10", root=root, archive=ArchiveSource(good.url, "0" * 32))
    assert list(root.rglob("*")) == []


def test_corrupt_archive_in_the_cache_is_deleted(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    root.mkdir()
    (root / "cifar-10-binary.tar.gz").write_bytes(b"half a download")
    with pytest.raises(BenchError, match=r"cifar-10-binary\.tar\.gz is corrupt .* deleted"):
        load_dataset("cifar10", root=root, archive=cifar10_archive(tmp_path))
    assert list(root.iterdir()) == []


def test_truncated_bin_names_the_file(tmp_path: Path) -> None:
    files, _ = _cifar10_files()
    source = cifar10_archive(tmp_path, **{"data_batch_3.bin": files["data_batch_3.bin"][:-5]})
    with pytest.raises(BenchError, match=r"data_batch_3\.bin is truncated .*multiple of 3073"):
        load_dataset("cifar10", root=tmp_path / "cache", archive=source)


def test_out_of_range_label_names_the_file(tmp_path: Path) -> None:
    bad = bytearray(_cifar10_files()[0]["test_batch.bin"])
    bad[3073 * 4] = 10  # record 4's label
    source = cifar10_archive(tmp_path, **{"test_batch.bin": bytes(bad)})
    with pytest.raises(BenchError, match=r"test_batch\.bin is corrupt \(record 4 has label 10"):
        load_dataset("cifar10", root=tmp_path / "cache", archive=source)


def test_archive_missing_a_file_publishes_nothing(tmp_path: Path) -> None:
    files, _ = _cifar10_files()
    del files["test_batch.bin"]
    source = pack(tmp_path, "cifar-10-batches-bin", files, "cifar-10-binary.tar.gz")
    root = tmp_path / "cache"
    with pytest.raises(BenchError, match=r"lacks cifar-10-batches-bin/test_batch\.bin"):
        load_dataset("cifar10", root=root, archive=source)
    assert [p.name for p in root.iterdir()] == ["cifar-10-binary.tar.gz"]


def test_no_download_and_no_data_says_where_to_put_it(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    with pytest.raises(BenchError, match=r"cifar-100-binary\.tar\.gz not found.*kriz"):
        load_dataset("cifar100", root=root, download=False)
    assert not root.exists()


def test_subsets_are_balanced_and_seeded(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    files, _ = _cifar10_files()
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)]:
        files[name] = records([np.arange(RECORDS) % 10], _pixels(rng, RECORDS))
    source = pack(tmp_path, "cifar-10-batches-bin", files, "cifar-10-binary.tar.gz")
    root = tmp_path / "cache"
    full = load_dataset("cifar10", root=root, archive=source)
    a = load_dataset("cifar10", root=root, archive=source, train_subset=30, test_subset=500)
    b = load_dataset("cifar10", root=root, archive=source, train_subset=30, seed=1)
    assert torch.bincount(a.train.labels).tolist() == [3] * 10
    assert len(a.test) == RECORDS  # a subset larger than the split keeps it all
    assert not torch.equal(a.train.images, b.train.images)
    assert torch.equal(
        a.train.images,
        load_dataset("cifar10", root=root, archive=source, train_subset=30).train.images,
    )
    assert a.mean == full.mean and a.std == full.std  # normalised like the full run
    with pytest.raises(BenchError, match="train_subset must be a positive"):
        load_dataset("cifar10", root=root, archive=source, train_subset=0)


def _write_image(path: Path, colour: tuple[int, int, int], size=(40, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def test_folder_dataset(tmp_path: Path) -> None:
    colours = {"cat": (200, 10, 10), "dog": (10, 200, 10)}
    for name, colour in colours.items():
        for i in range(5):
            suffix = "png" if i % 2 else "jpg"
            _write_image(tmp_path / "imgs" / name / f"{i}.{suffix}", colour)
    (tmp_path / "imgs" / "cat" / "notes.txt").write_text("ignored")
    ds = load_dataset("folder", root=tmp_path, folder=tmp_path / "imgs", image_size=16)
    assert ds.classes == ("cat", "dog") and not ds.synthetic
    assert ds.train.images.shape == (8, 3, 16, 16) and len(ds.test) == 2
    assert torch.bincount(ds.test.labels).tolist() == [1, 1]
    red = ds.train.images[ds.train.labels == 0].float().mean((0, 2, 3))
    assert red[0] > 180 and red[1] < 40
    assert ds.mean[0] == pytest.approx(ds.train.images[:, 0].float().mean().item() / 255, abs=1e-6)
    again = load_dataset("folder", root=tmp_path, folder=tmp_path / "imgs", image_size=16)
    assert torch.equal(ds.test.images, again.test.images)


def test_folder_errors_name_the_problem(tmp_path: Path) -> None:
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    with pytest.raises(BenchError, match="0 class sub-folders"):
        load_dataset("folder", root=tmp_path, folder=imgs)
    for i in range(2):
        _write_image(imgs / "only" / f"{i}.png", (1, 2, 3))
    with pytest.raises(BenchError, match="1 class sub-folders"):
        load_dataset("folder", root=tmp_path, folder=imgs)
    for i in range(2):
        _write_image(imgs / "other" / f"{i}.png", (1, 2, 3))
    (imgs / "other" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(BenchError, match=r"other/broken\.png cannot be read"):
        load_dataset("folder", root=tmp_path, folder=imgs)


def test_synthetic_is_deterministic_and_marked(tmp_path: Path) -> None:
    a = load_dataset("synthetic", root=tmp_path, num_classes=4, train_subset=64, test_subset=16)
    b = load_dataset("synthetic", root=tmp_path, num_classes=4, train_subset=64, test_subset=16)
    c = load_dataset("synthetic", root=tmp_path, num_classes=4, train_subset=64, seed=1)
    assert a.synthetic and a.num_classes == 4 and len(a.train) == 64 and len(a.test) == 16
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.test.labels, b.test.labels)
    assert not torch.equal(a.train.images, c.train.images)
    assert len(load_dataset("synthetic", root=tmp_path).train) == 2048
    assert list(tmp_path.iterdir()) == []  # nothing downloaded or written


def test_synthetic_is_learnable(tmp_path: Path) -> None:
    ds = load_dataset("synthetic", root=tmp_path, train_subset=320, test_subset=200, seed=1)
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1, stride=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(), torch.nn.Linear(32, ds.num_classes),
    )  # fmt: skip
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    train = DeviceLoader(
        ds.train, batch_size=32, mean=ds.mean, std=ds.std, train=True, device="cpu"
    )
    for _ in range(4):  # 40 steps
        for x, y in train:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
    test = DeviceLoader(
        ds.test, batch_size=100, mean=ds.mean, std=ds.std, train=False, device="cpu"
    )
    with torch.no_grad():
        correct = sum(int((net(x).argmax(1) == y).sum()) for x, y in test)
    assert correct / len(ds.test) > 0.9  # chance is 0.1


def test_normalize_matches_hand_computation() -> None:
    images = torch.tensor([0, 51, 255, 102], dtype=torch.uint8).view(1, 1, 2, 2).repeat(2, 3, 1, 1)
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 2.0)
    out = normalize(images, mean, std)
    assert out.dtype == torch.float32 and out.shape == (2, 3, 2, 2)
    assert out[1, 0].flatten().tolist() == pytest.approx([-0.2, 0.2, 1.8, 0.6], abs=1e-6)
    assert out[0, 2, 1, 0].item() == pytest.approx((1.0 - 0.3) / 2.0, abs=1e-6)
    with pytest.raises(BenchError, match="uint8"):
        normalize(images.float(), mean, std)


def _indexed_set(n: int, size: int = 16) -> ImageSet:
    """Image i is filled with value i, so a batch reveals which samples it holds."""
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 3, size, size)
    return ImageSet(images.contiguous(), torch.arange(n))


def test_crop_and_flip_geometry() -> None:
    image = torch.arange(16, dtype=torch.uint8).view(1, 1, 4, 4).expand(1, 3, 4, 4)
    same = crop_and_flip(image, torch.tensor([[4, 4]]), torch.tensor([False]))
    assert torch.equal(same, image)
    shifted = crop_and_flip(image, torch.tensor([[3, 5]]), torch.tensor([False]))[0, 0]
    assert shifted[0].tolist() == [0, 0, 0, 0]  # zero padding came in from the top
    assert shifted[1].tolist() == [1, 2, 3, 0]  # and from the right
    flipped = crop_and_flip(image, torch.tensor([[4, 4]]), torch.tensor([True]))
    assert torch.equal(flipped, image.flip(3))


def test_loader_train_shuffles_reproducibly_per_epoch() -> None:
    data = _indexed_set(50)
    kw = dict(batch_size=16, mean=(0.0,) * 3, std=(1.0,) * 3, train=True, device="cpu", seed=3)
    loader = DeviceLoader(data, **kw)
    assert len(loader) == 3  # partial batch dropped in training
    epoch0 = [y for _, y in loader]
    epoch1 = [y for _, y in loader]
    assert all(x.shape == (16, 3, 16, 16) and y.shape == (16,) for x, y in loader)
    assert not torch.equal(torch.cat(epoch0), torch.cat(epoch1))
    resumed = DeviceLoader(data, **kw)
    resumed.set_epoch(1)
    batches = list(resumed)
    assert all(torch.equal(a, b) for a, b in zip(epoch1, [y for _, y in batches], strict=True))
    x, y = batches[0]  # pixels follow labels; a shift of <= 4 never pads the centre
    centre = x[:, 0, 4:12, 4:12].reshape(len(y), -1) * 255
    assert torch.allclose(centre, y[:, None].float().expand_as(centre), atol=1e-3)


def test_loader_eval_keeps_every_sample_in_order() -> None:
    data = _indexed_set(50)
    loader = DeviceLoader(data, batch_size=16, mean=(0.5,) * 3, std=(0.25,) * 3, train=False,
                          device="cpu", channels_last=True)  # fmt: skip
    assert len(loader) == 4
    batches = list(loader)
    assert [len(y) for _, y in batches] == [16, 16, 16, 2]
    assert torch.cat([y for _, y in batches]).tolist() == list(range(50))
    x = batches[-1][0]
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(x, normalize(data.images[48:], (0.5,) * 3, (0.25,) * 3))
    with pytest.raises(BenchError, match="batch size 64 exceeds the 50 images"):
        DeviceLoader(data, batch_size=64, mean=(0,) * 3, std=(1,) * 3, train=True, device="cpu")


def test_small_subset_of_a_class_sorted_test_set_takes_every_class_in_turn() -> None:
    """A folder's test images come sorted by class: the first 50 of 10 x 36 digits would be
    0s and 1s only. The small subset deals the classes in turns instead, 5 of each."""
    from resnest_bench.harness.measure import small_indices

    labels = torch.arange(10).repeat_interleave(36)
    small = small_indices(labels, 50)
    assert len(small) == 50 and list(small) == sorted(small)
    assert torch.bincount(labels[small], minlength=10).tolist() == [5] * 10
    assert list(small_indices(labels, 50)) == list(small)  # seeded: the same every run
    assert len(small_indices(labels, 1000)) == 360  # larger than the set: all of it
