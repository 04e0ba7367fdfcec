"""The per-group error analysis (innlab.experiments.group_errors) on a tiny MobileNetV2."""

import pytest
import torch
import torchvision

from innlab.experiments.group_errors import group_errors, group_role, markdown, summary


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v2(width_mult=0.25, num_classes=3)
    model.features[0][0] = torch.nn.Conv2d(1, 8, 3, 2, 1, bias=False)
    model.features = model.features[:5]
    model.classifier[1] = torch.nn.Linear(model.features[-1].conv[-2].out_channels, 3)
    model.train()
    with torch.no_grad():  # BatchNorm statistics that are not the identity
        for _ in range(3):
            model(torch.randn(16, 1, 16, 16))
    model.eval()
    calib = [(torch.randn(8, 1, 16, 16), torch.zeros(8, dtype=torch.long)) for _ in range(2)]
    test = [(torch.randn(8, 1, 16, 16), torch.randint(0, 3, (8,)))]
    return model, calib, test


def test_roles_follow_the_inverted_residual_blocks(tiny):
    model, _, _ = tiny
    assert group_role(model, "features.0.0:out") == "stem"
    assert group_role(model, "features.1.conv.1:out") == "projection"
    assert group_role(model, "features.2.conv.0.0:out") == "expansion"
    assert group_role(model, "features.2.conv.2:out") == "residual stream"  # features.3 adds
    assert group_role(model, "features.4.conv.2:out") == "projection"  # features.4 ends here


def test_full_width_is_exact_and_both_methods_agree(tiny):
    model, calib, test = tiny
    groups = ["features.2.conv.0.0:out", "features.2.conv.2:out"]
    rows = group_errors(model, calib[0][0][:2], calib, test, fractions=(1.0, 0.5), groups=groups)
    assert len(rows) == 2 * 2 * 2
    full = [r for r in rows if r.fraction == 1.0]
    for r in full:
        assert r.width == r.full_size
        assert r.relative_mse == 0.0 and r.relative_mse_before_bn == 0.0
    for g in groups:
        a, b = (
            next(r for r in full if r.group == g and r.method == m)
            for m in ("resampled", "selected")
        )
        assert a.accuracy == b.accuracy
    half = [r for r in rows if r.fraction == 0.5]
    assert all(r.relative_mse > 0 and r.width < r.full_size for r in half)
    entries = summary(rows)
    assert {e["role"] for e in entries} == {"expansion", "residual stream"}
    assert "| expansion |" in markdown(rows, "t", "cmd")
