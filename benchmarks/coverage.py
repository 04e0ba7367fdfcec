"""Modern architectures (grouped convolutions, LayerNorm, attention, timm's layers): conversion
time and peak memory, the share of parameters in layers with a resizable channel axis, and the
parameters left with every resizable group at half width (0.25: every layer shrinks on both
axes; 1.0: nothing shrinks). A fresh process per model, random weights, input 224 x 224."""

from __future__ import annotations

from benchmarks import conversion

MODELS = [
    "convnext_tiny",
    "vit_b_16",
    "swin_t",
    "efficientnet_b3",
    "regnet_y_8gf",
    "resnext50_32x4d",
    "regnet_y_400mf",
    "shufflenet_v2_x1_0",
    "maxvit_t",
    "timm:convnext_atto",
    "timm:vit_tiny_patch16_224",
    "timm:deit_tiny_patch16_224",
    "timm:swin_tiny_patch4_window7_224",
    "timm:efficientnet_b0",
    "timm:tf_efficientnetv2_b0",
    "timm:cspresnet50",
    "timm:densenet121",
    "timm:mixnet_s",
]
SMOKE_MODELS = ["timm:resnet10t"]


def run(smoke: bool = False) -> list[dict]:
    return conversion.run(smoke=smoke, models=SMOKE_MODELS if smoke else MODELS)


def markdown(results: list[dict]) -> str:
    lines = [
        "| model | parameters (M) | convert (s) | permute (s) | peak added (MB) "
        "| share in resizable layers | parameters at half width | resizable groups |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['model']} | refused: {r['error']} |||||||")
            continue
        lines.append(
            f"| {r['model']} | {r['model_parameters_mb'] / 4:.1f} | {r['convert_s']:.1f} | "
            f"{r['stages_s']['permute']:.1f} | {r['convert_extra_peak_mb']:.0f} | "
            f"{r['coverage']:.1%} | {r['parameters_at_half_width']:.2f} | "
            f"{r['resizable_groups']}/{r['groups']} |"
        )
    return "\n".join(lines)
