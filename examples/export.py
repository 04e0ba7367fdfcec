"""Save, reload and deploy a pruned model: pickle, state_dict + widths, TorchScript,
torch.export and ONNX (run with onnxruntime).

    python examples/export.py            # about 10 s on a CPU
    python examples/export.py --tiny     # a few seconds (no ONNX)
    python examples/export.py --out DIR  # keep the files (default: a temporary folder)
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from digits import Net, digits, trained_net

import inn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a smaller run, a few seconds")
    parser.add_argument("--out", type=Path, help="folder for the files (default: temporary)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="inn-export-"))
    out.mkdir(parents=True, exist_ok=True)

    width = 16 if args.tiny else 32
    _, _, x_test, _ = digits()
    model = trained_net(width=width, epochs=2 if args.tiny else 5)
    x = x_test[:8]

    imodel = inn.convert(model, x[:1])
    imodel.resize(compression=0.5)
    small = imodel.export()  # a torch.fx.GraphModule of standard layers
    with torch.no_grad():
        expected = small(x)

    # 1. pickle the whole module: loads where inn is not installed (torch only)
    torch.save(small, out / "small.pt")
    check = (
        "import sys, torch; sys.modules['inn'] = None; "  # importing inn would fail
        f"m = torch.load({str(out / 'small.pt')!r}, weights_only=False); "
        "print(type(m).__name__, sum(p.numel() for p in m.parameters()))"
    )
    run = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    print("loaded without inn:", run.stdout.strip() or run.stderr.strip().splitlines()[-1])

    # 2. no pickle: the state_dict and the widths; rebuilt by converting the same architecture
    torch.save(small.state_dict(), out / "small.state_dict.pt")
    widths = {g.name: g.size for g in imodel.resizable_groups}
    (out / "small.widths.json").write_text(json.dumps(widths))
    fresh = Net(width).eval()  # any weights: only the architecture matters here
    rebuilt = inn.convert(fresh, x[:1]).resize(widths=widths).export()
    rebuilt.load_state_dict(torch.load(out / "small.state_dict.pt", weights_only=True))
    with torch.no_grad():
        print("state_dict + widths:", torch.allclose(rebuilt(x), expected, atol=1e-5))

    # 3. TorchScript and torch.export
    scripted = torch.jit.script(small)
    scripted.save(str(out / "small.torchscript.pt"))
    with torch.no_grad():
        print("TorchScript:", torch.allclose(scripted(x), expected, atol=1e-5))
    program = torch.export.export(small, (x,))
    print("torch.export:", torch.allclose(program.module()(x), expected, atol=1e-5))

    # 4. ONNX, checked with onnxruntime
    if not args.tiny:
        import onnxruntime

        torch.onnx.export(small, (x,), str(out / "small.onnx"))
        session = onnxruntime.InferenceSession(str(out / "small.onnx"))
        (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
        print("ONNX:", torch.allclose(torch.from_numpy(got), expected, atol=1e-5))
    print(f"files in {out}: {', '.join(sorted(p.name for p in out.iterdir()))}")


if __name__ == "__main__":
    main()
