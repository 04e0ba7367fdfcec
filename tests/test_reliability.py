"""Round trips across formats, dtypes and devices; refusals that name the way out."""

import pytest
import torch
from torch import nn

import inn


def _small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ReLU(),
        nn.Conv2d(8, 12, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(12, 4),
    ).eval()  # fmt: skip


def test_onnx_export_runs_in_onnxruntime(tmp_path):
    import onnxruntime

    x = torch.randn(2, 3, 8, 8)
    small = inn.convert(_small_net(), x).resize(compression=0.4).export()
    path = tmp_path / "small.onnx"
    torch.onnx.export(small, (x,), str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        assert torch.allclose(torch.from_numpy(out), small(x), atol=1e-5)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.bfloat16, 3e-2)])
def test_conversion_in_other_dtypes(dtype, tol):
    model = _small_net().to(dtype)
    x = torch.randn(2, 3, 8, 8, dtype=dtype)
    imodel = inn.convert(model, x)
    with torch.no_grad():
        ref = model(x).float()
        assert (imodel(x).float() - ref).abs().max() <= tol * ref.abs().max() + tol
        imodel.resize(compression=0.4)
        small = imodel.export()
        assert all(p.dtype == dtype for p in small.parameters())
        assert torch.allclose(small(x).float(), imodel(x).float(), atol=tol)


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device (run on a GPU machine)"
)
def test_cuda_conversion_resize_and_tuning():
    model = _small_net().cuda()
    x = torch.randn(4, 3, 8, 8, device="cuda")
    imodel = inn.convert(model, x)
    with torch.no_grad():
        assert torch.allclose(imodel(x), model(x), atol=1e-4)
    imodel.resize(compression=0.5)
    inn.tune_partition(imodel, [x], steps=5)
    assert all(p.device.type == "cuda" for p in imodel.parameters())
    with torch.no_grad():
        assert torch.allclose(imodel.export()(x), imodel(x), atol=1e-4)


class InPlaceOnShared(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Conv2d(3, 6, 1), nn.Conv2d(6, 6, 1), nn.Conv2d(6, 2, 1)

    def forward(self, x):
        h = self.a(x)
        g = self.b(h)
        h += g  # in-place add on a tensor that is also used below
        return self.c(h) + self.c(g)


def test_in_place_ops_are_tracked_exactly():
    model = InPlaceOnShared().eval()
    x = torch.randn(2, 3, 5, 5)
    imodel = inn.convert(model, x)
    with torch.no_grad():
        assert torch.allclose(imodel(x), model(x), atol=1e-5)
        groups = {g.name: g for g in imodel.groups}
        assert groups["a:out"].resizable  # a:out, b:out tied by the add
        imodel.resize(widths={"a:out": 3})
        assert torch.allclose(imodel.export()(x), imodel(x), atol=1e-5)


def test_unsupported_layers_are_kept_at_full_width_with_the_reason():
    model = nn.Sequential(nn.Conv2d(3, 6, 1), nn.LocalResponseNorm(2), nn.Conv2d(6, 4, 1),
                          nn.ReLU(), nn.Conv2d(4, 2, 1)).eval()  # fmt: skip
    imodel = inn.convert(model, torch.randn(1, 3, 4, 4))
    groups = {g.name: g for g in imodel.groups}
    assert not groups["0:out"].resizable and "LocalResponseNorm" in groups["0:out"].reason
    assert groups["2:out"].resizable
    with pytest.raises(inn.InnError, match="LocalResponseNorm"):
        imodel.resize(widths={"0:out": 3})


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device (run on a GPU machine)"
)
def test_cuda_budgets_statistics_points_and_prune():
    """The budget path on a GPU gives the same widths and outputs as on the CPU."""
    model, x = _small_net(), torch.randn(16, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    results = {}
    for device in ("cpu", "cuda"):
        imodel = inn.convert(model.to(device), x.to(device), fold_batchnorm=False)
        imodel.resize(budget={"macs": 0.5}, data=[x.to(device)])
        inn.reestimate_batchnorm(imodel, [x.to(device)])
        with torch.no_grad():
            out = imodel(x.to(device)).cpu()
        inn.recover.place_points(imodel)
        inn.tune_partition(imodel, [x.to(device)], steps=3)
        assert all(p.device.type == device for p in imodel.parameters())
        small = inn.prune(
            model.to(device), x.to(device), budget={"params": 0.5}, calib=[x.to(device)]
        )
        with torch.no_grad():
            small(x.to(device))
        results[device] = ({g.name: g.size for g in imodel.groups}, out)
    assert results["cpu"][0] == results["cuda"][0]
    torch.testing.assert_close(results["cpu"][1], results["cuda"][1], atol=1e-3, rtol=1e-3)
