"""Run the benchmarks and write JSON + a markdown summary.

python -m benchmarks                 # everything (tens of minutes on 2 cores)
python -m benchmarks --only conversion inference
python -m benchmarks --smoke         # a few seconds: checks that nothing rotted
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from benchmarks import (
    budget,
    budget_latency,
    channel_alignment,
    conversion,
    coverage,
    inference,
    permutation,
    random_width,
    training,
    tuning,
    upscale,
)
from benchmarks.common import describe, machine

SECTIONS = {
    "permutation": permutation,
    "conversion": conversion,
    "coverage": coverage,
    "inference": inference,
    "training": training,
    "tuning": tuning,
    "budget": budget,
    "budget_latency": budget_latency,
    "channel_alignment": channel_alignment,
    "random_width": random_width,
    "upscale": upscale,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for the test suite")
    parser.add_argument("--only", nargs="+", choices=sorted(SECTIONS), help="sections to run")
    parser.add_argument("--out", default="benchmarks/results", help="output folder")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = " ".join(["python -m benchmarks", *(argv if argv is not None else sys.argv[1:])])
    report = {
        "command": command,
        "machine": machine(),
        "smoke": args.smoke,
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    text = [
        "# inn benchmarks",
        "",
        f"`{command}`, {report['date']}, {describe(report['machine'])}.",
        "",
    ]
    for name in args.only or list(SECTIONS):
        start = time.perf_counter()
        result = SECTIONS[name].run(smoke=args.smoke)
        report[name] = result
        text += [
            f"## {name} ({time.perf_counter() - start:.0f} s)",
            "",
            SECTIONS[name].markdown(result),
            "",
        ]
        print(f"benchmark {name}: done in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    suffix = "-smoke" if args.smoke else ""
    (out / f"results{suffix}.json").write_text(json.dumps(report, indent=2))
    (out / f"summary{suffix}.md").write_text("\n".join(text))
    print("\n".join(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
