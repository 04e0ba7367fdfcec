"""The MNIST splits, the loaders, the model zoo and its committed checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from inn.errors import InnError
from innlab.data import (
    DatasetNotFoundError,
    calibration_subset,
    cifar10,
    image_folder,
    loader,
    mnist_splits,
)
from innlab.zoo import (
    ZOO,
    PretrainedNotFoundError,
    checkpoint_dir,
    cifar_resnet18,
    load_pretrained,
    nin,
    pretrained_info,
)


@pytest.fixture(scope="module")
def splits():
    return mnist_splits(seed=0)


def _rows(x: torch.Tensor) -> set[bytes]:
    return {row.numpy().tobytes() for row in x.reshape(len(x), -1)}


# ---------------------------------------------------------------- data


def test_split_sizes_and_stratification(splits):
    train, test = splits
    xtr, ytr = train.tensors
    xte, yte = test.tensors
    assert xtr.shape == (4000, 1, 28, 28) and xte.shape == (1000, 1, 28, 28)
    assert xtr.dtype == xte.dtype == torch.float32
    assert ytr.dtype == yte.dtype == torch.int64
    assert torch.bincount(ytr, minlength=10).tolist() == [400] * 10
    assert torch.bincount(yte, minlength=10).tolist() == [100] * 10


def test_split_is_deterministic_and_seed_dependent(splits):
    train, test = splits
    again_train, again_test = mnist_splits(seed=0)
    for a, b in zip(
        train.tensors + test.tensors, again_train.tensors + again_test.tensors, strict=True
    ):
        assert torch.equal(a, b)
    other_train, _ = mnist_splits(seed=1)
    assert not torch.equal(train.tensors[0], other_train.tensors[0])


def test_split_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    np.random.seed(123)
    expected = (torch.rand(3), np.random.rand(3))
    torch.manual_seed(123)
    np.random.seed(123)
    mnist_splits(seed=5)
    calibration_subset(mnist_splits(seed=5)[0], 32, seed=5)
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])


def test_no_overlap_between_train_and_test(splits):
    train, test = splits
    tr, te = _rows(train.tensors[0]), _rows(test.tensors[0])
    assert len(tr) + len(te) >= 4990  # the 5,000 digits are (almost all) distinct images
    assert not tr & te


def test_normalisation(splits):
    x = splits[0].tensors[0]
    assert abs(float(x.mean())) < 0.1
    assert abs(float(x.std()) - 1.0) < 0.1
    background = (0.0 - 0.1307) / 0.3081
    assert float(x.min()) == pytest.approx(background, abs=1e-5)
    assert float(x.max()) == pytest.approx((1.0 - 0.1307) / 0.3081, abs=1e-5)


def test_calibration_subset(splits):
    train = splits[0]
    cal = calibration_subset(train, 256, seed=0)
    x, y = cal.tensors
    assert x.shape == (256, 1, 28, 28)
    counts = torch.bincount(y, minlength=10)
    assert int(counts.min()) >= 25 and int(counts.max()) <= 26
    assert _rows(x) <= _rows(train.tensors[0])
    again = calibration_subset(train, 256, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(cal.tensors, again.tensors, strict=True))
    assert not torch.equal(x, calibration_subset(train, 256, seed=1).tensors[0])
    assert len(calibration_subset(train, 7, seed=0)) == 7
    with pytest.raises(ValueError):
        calibration_subset(train, 0)
    with pytest.raises(ValueError):
        calibration_subset(train, 4001)


def test_loader_batches_and_seeded_shuffle(splits):
    test = splits[1]
    batches = list(loader(test, 300))
    assert [len(b[1]) for b in batches] == [300, 300, 300, 100]
    assert torch.equal(batches[0][0], test.tensors[0][:300])
    order_a = torch.cat([y for _, y in loader(test, 128, shuffle=True, seed=3)])
    order_b = torch.cat([y for _, y in loader(test, 128, shuffle=True, seed=3)])
    assert torch.equal(order_a, order_b)
    assert not torch.equal(order_a, test.tensors[1])
    assert torch.equal(order_a.sort().values, test.tensors[1].sort().values)


def test_image_folder_on_a_synthetic_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls, n in (("cat", 3), ("dog", 2)):
        (tmp_path / cls).mkdir()
        for i in range(n):
            pixels = rng.integers(0, 256, size=(6, 5, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / cls / f"{i}.png")
    ds = image_folder(tmp_path)
    assert len(ds) == 5
    assert ds.classes == ["cat", "dog"]
    x, y = ds[4]
    assert x.shape == (3, 6, 5) and float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert y == 1
    xb, yb = next(iter(loader(ds, 5)))
    assert xb.shape == (5, 3, 6, 5) and yb.tolist() == [0, 0, 0, 1, 1]
    saved = np.array(Image.open(tmp_path / "cat" / "0.png"))
    assert torch.allclose(ds[0][0], torch.from_numpy(saved).permute(2, 0, 1).float() / 255)


def test_missing_data_errors(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="cifar-10-batches-py") as info:
        cifar10(tmp_path / "nowhere", train=True)
    assert str(tmp_path / "nowhere") in str(info.value)
    assert isinstance(info.value, InnError)
    (tmp_path / "cifar" / "cifar-10-batches-py").mkdir(parents=True)
    with pytest.raises(DatasetNotFoundError, match="incomplete or corrupt"):
        cifar10(tmp_path / "cifar", train=False)
    with pytest.raises(DatasetNotFoundError, match="does not exist") as info:
        image_folder(tmp_path / "missing")
    assert str(tmp_path / "missing") in str(info.value)
    (tmp_path / "flat").mkdir()
    with pytest.raises(DatasetNotFoundError, match="class sub-folders"):
        image_folder(tmp_path / "flat")
    (tmp_path / "flat" / "empty_class").mkdir()
    with pytest.raises(DatasetNotFoundError, match="<class_name>"):
        image_folder(tmp_path / "flat")


# ---------------------------------------------------------------- zoo


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_models_trace_and_classify(name):
    torch.manual_seed(0)
    model = ZOO[name]().eval()
    traced = torch.fx.symbolic_trace(model)
    x = torch.randn(3, 1, 28, 28)
    out = model(x)
    assert out.shape == (3, 10)
    assert torch.allclose(traced(x), out)
    calls = {type(m) for m in model.modules()}
    if name == "vit":  # the transformer: attention and LayerNorm instead
        assert {nn.MultiheadAttention, nn.LayerNorm} <= calls
        return
    assert nn.BatchNorm2d in calls
    activation = {"mobilenet_v3": nn.Hardswish, "efficientnet": nn.SiLU}.get(name)
    assert activation is None or activation in calls
    if name != "mobilenet_v2":  # torchvision's MobileNetV2 pools with a function, not a module
        assert nn.AdaptiveAvgPool2d in calls


def test_zoo_architectures():
    resnet = cifar_resnet18()
    convs = [m for m in resnet.modules() if isinstance(m, nn.Conv2d)]
    assert convs[0].kernel_size == (3, 3) and convs[0].stride == (1, 1)
    assert not any(isinstance(m, nn.MaxPool2d) for m in resnet.modules())
    assert sum(m.kernel_size == (3, 3) for m in convs) + 1 == 18  # 17 convs + the fc layer
    assert sum(m.kernel_size == (1, 1) for m in convs) == 3  # projection shortcuts
    assert [resnet.layer1[0].conv1.out_channels, resnet.layer4[0].conv1.out_channels] == [16, 128]
    small = cifar_resnet18(num_classes=7, in_channels=3, width=8)
    assert small(torch.randn(2, 3, 32, 32)).shape == (2, 7)
    net = nin(num_classes=4, in_channels=3, width=8)
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 4)
    assert net.classifier.out_channels == 4


@pytest.mark.parametrize("name", sorted(ZOO))
def test_load_pretrained_matches_recorded_accuracy(name, splits):
    info = pretrained_info(name)
    model = load_pretrained(name)
    assert not model.training
    assert all(
        p.dtype == torch.float32 for p in model.state_dict().values() if p.is_floating_point()
    )
    assert sum(p.numel() for p in model.parameters()) == info["num_parameters"]
    assert (checkpoint_dir() / f"{name}.pt").stat().st_size < 5_000_000
    correct = 0
    with torch.no_grad():
        for x, y in loader(splits[1], info["eval_batch_size"]):
            correct += int((model(x).argmax(1) == y).sum())
    assert correct / len(splits[1]) == pytest.approx(info["test_accuracy"], abs=1e-6)
    assert info["test_accuracy"] >= 0.95


def test_load_pretrained_errors(monkeypatch, tmp_path):
    with pytest.raises(PretrainedNotFoundError, match="unknown zoo model"):
        load_pretrained("vgg_nonexistent")
    monkeypatch.setattr("innlab.zoo.checkpoint_dir", lambda: tmp_path)
    with pytest.raises(PretrainedNotFoundError, match=r"scripts/train_zoo\.py") as info:
        load_pretrained("nin")
    assert isinstance(info.value, InnError)
    with pytest.raises(PretrainedNotFoundError, match=r"scripts/train_zoo\.py"):
        pretrained_info("nin")


def test_checkpoint_metadata_is_complete():
    for name in ZOO:
        info = json.loads((checkpoint_dir() / f"{name}.json").read_text())
        for key in ("seed", "epochs", "test_accuracy", "num_parameters", "train_time_s", "command"):
            assert key in info, (name, key)
        assert info["command"].startswith(
            ("python scripts/train_zoo.py", "python lab/scripts/train_zoo.py")
        )


def test_a_held_out_torchvision_network_takes_gray_digits(monkeypatch):
    """``lab/scripts/heldout_budget.py``'s architectures: the stem (wherever it sits) takes one
    channel, and every BatchNorm tracks with momentum 0.1 (MNASNet's own 0.0003 leaves the
    statistics at their initial values after a short training)."""
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "lab" / "scripts"))
    from heldout_budget import gray_network

    for name in ("mnasnet0_5", "shufflenet_v2_x0_5"):
        model = gray_network(name).eval()
        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        assert convs[0].in_channels == 1 and not any(c.in_channels == 3 for c in convs)
        norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        assert norms and all(m.momentum == 0.1 for m in norms)
        with torch.no_grad():
            assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
