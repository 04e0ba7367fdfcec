"""Random-width training: width draws, the training loop, checkpoints and resume, DDP."""

import json
import os
import socket
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

import inn
import innlab.data
import innlab.zoo
from inn.train import TrainSettings, WidthSampler, train

REPO = Path(__file__).resolve().parents[1]


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4)
    ).eval()


def _task(n: int = 256) -> TensorDataset:
    """Labels of a fixed random teacher on Gaussian inputs."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 16, generator=g)
    teacher = torch.randn(16, 4, generator=g)
    return TensorDataset(x, (x @ teacher).argmax(1))


def _converted(model: nn.Module | None = None, **options) -> inn.IntegralModel:
    return inn.convert(model or _mlp(), torch.zeros(1, 16), permute=False, **options)


def _fraction(imodel: inn.IntegralModel, f: float) -> dict[str, int]:
    return inn.train.uniform_widths(imodel, f)


# -- width draws -------------------------------------------------------------------------------
def test_the_sandwich_rule_visits_the_smallest_and_largest_widths_every_step():
    imodel = _converted()
    sampler = WidthSampler.for_model(imodel, (0.25, 1.0), num_random=2, seed=3)
    full = {g.name: g.full_size for g in imodel.resizable_groups}
    seen = set()
    for step in range(50):
        draws = sampler.draw(step)
        assert len(draws) == 4
        assert draws[0] == full
        assert draws[1] == {n: max(1, -(-n_full // 4)) for n, n_full in full.items()}
        for draw in draws:
            for name, width in draw.items():
                assert full[name] // 4 <= width <= full[name]
        seen.update(d[next(iter(d))] for d in draws[2:])
    assert len(seen) > 10  # the random draws cover the range
    # the draws depend on (seed, step) only: another sampler agrees, another seed does not
    assert WidthSampler.for_model(imodel, (0.25, 1.0), seed=3).draw(7) == sampler.draw(7)
    assert WidthSampler.for_model(imodel, (0.25, 1.0), seed=4).draw(7) != sampler.draw(7)
    paper = WidthSampler.for_model(imodel, (0.5, 1.0), sampling="random")
    assert all(len(paper.draw(s)) == 1 for s in range(5))


def test_fixed_fractions_are_trained_at_the_widths_they_are_evaluated_at():
    """25 % of 10 channels is 2.5: half up, 3, as ``uniform_widths`` (and the width buckets)
    round it; half to even would train 2 channels and evaluate 3."""
    sampler = WidthSampler({"g": (1, 10)}, sampling="fixed", fixed=(1.0, 0.25, 0.45))
    assert sampler.draw(0) == [{"g": 10}, {"g": 3}, {"g": 5}]
    eights = WidthSampler({"g": (8, 40)}, sampling="fixed", fixed=(0.5,), round_to=8)
    assert eights.draw(0) == [{"g": 24}]  # 20 channels: 2.5 steps of 8, half up to 3


def test_a_skewed_sampler_draws_narrow_widths_more_often():
    """``skew``: a draw at position ``u`` of its range goes to ``u ** skew``; 1 is the uniform
    rule, 2 puts half the draws in the lowest quarter of the range (P(u^2 < 1/4) = 1/2)."""
    ranges = {"g": (1, 400)}
    plain, skewed = WidthSampler(ranges, seed=5), WidthSampler(ranges, seed=5, skew=2.0)
    u = np.random.default_rng([5, 11]).random(2)  # the sandwich's ends draw nothing
    assert [d["g"] for d in plain.draw(11)[2:]] == [round(1 + v * 400 - 0.5) for v in u]
    assert [d["g"] for d in skewed.draw(11)[2:]] == [round(1 + v**2 * 400 - 0.5) for v in u]

    def share_low(sampler: WidthSampler) -> float:
        drawn = [d["g"] for s in range(500) for d in sampler.draw(s)[2:]]
        return float(np.mean(np.array(drawn) <= 100))

    assert share_low(plain) == pytest.approx(0.25, abs=0.04)
    assert share_low(skewed) == pytest.approx(0.5, abs=0.04)
    with pytest.raises(inn.InnError, match="skew"):
        WidthSampler(ranges, skew=0.0)


def test_width_draws_respect_depthwise_and_concatenation_groups():
    """A depthwise conv ties its input and output channels, a concatenation makes segments:
    every draw resizes the model consistently, runs, and exports at the drawn widths."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(3, 6, 1)
            self.dw = nn.Conv2d(14, 14, 3, padding=1, groups=14)
            self.pw = nn.Conv2d(14, 12, 1)
            self.fc = nn.Linear(12, 5)

        def forward(self, x):
            h = self.dw(torch.cat([torch.relu(self.a(x)), torch.relu(self.b(x))], 1))
            return self.fc(torch.relu(self.pw(h)).mean((2, 3)))

    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 8)
    imodel = inn.convert(Net().eval(), x[:1], permute=False)
    sampler = WidthSampler.for_model(imodel, (0.25, 1.0))
    for step in range(10):
        for draw in sampler.draw(step):
            imodel.resize(widths=draw)
            small = imodel.export()
            assert torch.allclose(small(x), imodel(x), atol=1e-5)
            dw = small.get_submodule("dw")
            assert dw.groups == dw.in_channels == dw.out_channels  # still depthwise
            assert (
                dw.in_channels
                == small.get_submodule("a").out_channels + small.get_submodule("b").out_channels
            )


@pytest.mark.parametrize(
    ("widths", "message"),
    [
        ((0.0, 1.0), "0 < low <= high <= 1"),
        ((0.5, 1.5), "0 < low <= high <= 1"),
        ((0.8, 0.5), "0 < low <= high <= 1"),
        ((4, 40), "has 32 channels"),
        ({"nonsense:out": (0.5, 1.0)}, "no channel group named"),
        ("half", "must be (low, high)"),
    ],
)
def test_bad_width_ranges_name_the_group_and_the_fix(widths, message):
    with pytest.raises(inn.InnError, match=message.replace("(", r"\(").replace(")", r"\)")):
        WidthSampler.for_model(_converted(), widths)


def test_training_needs_a_converted_model_and_a_consistent_setup():
    with pytest.raises(inn.InnError, match="convert it first"):
        train(_mlp(), _task(), steps=1)
    imodel = _converted()
    with pytest.raises(inn.InnError, match="needs sampling='sandwich'"):
        train(imodel, _task(), steps=1, sampling="random", distill=True)
    with pytest.raises(inn.InnError, match="init_process_group"):
        train(imodel, _task(), steps=1, ddp=True)
    with pytest.raises(inn.InnError, match=r"steps=\.\.\. or epochs="):
        train(imodel, _task(), progress=False)
    with pytest.raises(inn.InnError, match="unknown optimiser"):
        train(imodel, _task(), steps=1, optimiser="lbfgs")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"steps": 0}, r"steps must be >= 1, got 0"),
        ({"epochs": 0}, r"epochs must be > 0"),
        ({"steps": 5, "epochs": 1.0}, r"both steps=5 and epochs=1.0.*set the other to None"),
        ({"batch_size": 0}, r"batch_size must be an int >= 1, got 0"),
        ({"log_every": 0}, r"log_every must be an int >= 1"),
        ({"checkpoint_every": -1}, r"checkpoint_every must be an int >= 0"),
        ({"lr": 0.0}, r"lr must be > 0"),
        ({"warmup": 1.5}, r"warmup is a fraction of the steps in \[0, 1\]"),
        ({"clip_norm": 0.0}, r"clip_norm must be > 0.*None: no clipping"),
        ({"smoothness": -1.0}, r"smoothness must be >= 0"),
        ({"optimiser": "lbfgs"}, r"unknown optimiser 'lbfgs'; choose one of"),
        ({"amp": "fp8"}, r"unknown amp 'fp8'"),
        ({"sampling": "sometimes"}, r"unknown width sampling 'sometimes'"),
        ({"sampling": "random", "distill": True}, r"distill=True needs sampling='sandwich'"),
        ({"epoch": 3}, r"unknown training settings \['epoch'\]; TrainSettings has"),
    ],
)
def test_bad_training_settings_name_the_field_and_the_fix(changes, message):
    """Checked when the settings are made (or changed), before any training."""
    with pytest.raises(inn.InnError, match=message):
        TrainSettings().replace(**changes)
    with pytest.raises(inn.InnError, match=message):
        train(_converted(), _task(), **changes)


def test_settings_object_and_keywords_train_alike():
    """``settings=`` with keyword changes on top is the same run as the keywords alone; the
    settings object is not changed by the keywords."""
    base = TrainSettings(steps=3, batch_size=32, lr=0.1, smoothness=0.1, progress=False)
    by_keywords, by_settings = _converted(), _converted()
    train(by_keywords, _task(), steps=5, batch_size=32, lr=0.1, smoothness=0.1, progress=False)
    train(by_settings, _task(), settings=base, steps=5)
    assert base.steps == 3
    for a, b in zip(by_keywords.parameters(), by_settings.parameters(), strict=True):
        assert torch.equal(a, b)
    # the fields the `inn train` command passes (epochs=None when it gives steps)
    command = TrainSettings(
        epochs=None, steps=3, batch_size=32, widths=(0.25, 1.0), sampling="sandwich", num_random=2,
        distill=False, optimiser="sgd", lr=0.05, smoothness=3.0, clip_norm=5.0,
        weight_decay=5e-4, amp=None, checkpoint=None, checkpoint_every=100, log=None, seed=0,
    )  # fmt: skip
    assert command.replace(steps=None, epochs=2.5).epochs == 2.5


# -- the training loop -------------------------------------------------------------------------
def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def test_random_width_training_makes_narrow_widths_work_and_keeps_full_width(
    digits, trained_digits_cnn
):
    """A CNN trained at full width on real digits, converted: at 25 % width it is poor (about
    59 %; at 50 % it already keeps about 96.5 %). A short random-width fine-tuning over
    [25 %, 100 %] makes 25 % clearly better, does not cost 50 %, and costs full width < 1 point."""
    x, y, x_test, y_test = digits
    imodel = inn.convert(trained_digits_cnn, x[:1])

    def at(f: float) -> float:
        with imodel.widths_kept():
            imodel.resize(widths=_fraction(imodel, f))
            return _accuracy(imodel, x_test, y_test)

    before = {f: at(f) for f in (1.0, 0.5, 0.25)}
    report = train(
        imodel, TensorDataset(x, y), epochs=4, batch_size=64, widths=(0.25, 1.0),
        optimiser="adamw", lr=2e-3, weight_decay=0.0, distill=True, progress=False,
    )  # fmt: skip
    after = {f: at(f) for f in (1.0, 0.5, 0.25)}
    assert report.steps == 4 * (len(y) // 64)
    assert after[0.25] > before[0.25] + 0.2, (before, after)
    assert after[0.5] >= before[0.5] - 0.005, (before, after)
    assert after[1.0] > before[1.0] - 0.01, (before, after)


def test_integral_batchnorm_tracks_full_width_statistics_during_training():
    """With BatchNorm kept, training updates the node values of its running statistics (from
    batches at full width), so eval mode works at every width without data."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 4))
    imodel = _converted(model.eval(), fold_batchnorm=False)
    norm = next(m for m in imodel.modules() if isinstance(m, inn.layers.IntegralBatchNorm1d))
    before = norm.running_mean_function.values.clone()
    data = _task()
    train(imodel, data, steps=8, batch_size=32, lr=0.05, progress=False, statistics_batches=8)
    after = norm.running_mean_function.values
    assert not torch.allclose(before, after)
    # the refreshed statistics are the batch statistics of the trained model at full width
    with torch.no_grad():
        hidden = imodel.graph_module.get_submodule("0")(data.tensors[0])
    assert torch.allclose(after, hidden.mean(0), atol=0.05 * hidden.std(0).mean())


# -- checkpoints and resume --------------------------------------------------------------------
def _run(tmp: Path, steps: int, **options) -> inn.IntegralModel:
    imodel = _converted()
    train(imodel, _task(), steps=steps, batch_size=32, lr=0.1, progress=False, **options)
    return imodel


class Crash(Exception):
    """Stands for a run killed mid-training."""


def crash_at(stop: int):
    def callback(step: int, info: dict) -> None:
        if step == stop:
            raise Crash

    return callback


@pytest.mark.parametrize("channels", [None, "select"])
def test_a_resumed_run_ends_with_the_parameters_of_an_uninterrupted_run(tmp_path, channels):
    """Also with selected channels: the ranking made when the run started comes back with the
    checkpoint (it is not made again from the half-trained weights)."""
    reference = _run(tmp_path, 8, channels=channels)
    path = tmp_path / "run.pt"
    with pytest.raises(Crash):  # killed during step 5 of 8, after the checkpoint of step 4
        train(_converted(), _task(), steps=8, batch_size=32, lr=0.1, progress=False,
              checkpoint=path, checkpoint_every=2, callback=crash_at(4), channels=channels)  # fmt: skip
    assert torch.load(path, weights_only=False)["step"] == 4
    resumed = _converted()
    report = train(resumed, _task(), steps=8, batch_size=32, lr=0.1, progress=False,
                   checkpoint=path, channels=channels)  # fmt: skip
    assert report.start == 4
    for (name, a), b in zip(
        reference.state_dict().items(), resumed.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b, name


def test_a_checkpoint_of_another_model_is_refused(tmp_path):
    path = tmp_path / "run.pt"
    _run(tmp_path, 2, checkpoint=path)
    other = _converted(
        nn.Sequential(
            nn.Linear(16, 24), nn.ReLU(), nn.Linear(24, 32), nn.ReLU(), nn.Linear(32, 4)
        ).eval()
    )
    with pytest.raises(inn.InnError, match="written for another model"):
        train(other, _task(), steps=4, batch_size=32, progress=False, checkpoint=path)
    path.write_text("not a checkpoint")
    with pytest.raises(inn.InnError, match="cannot read the checkpoint"):
        train(_converted(), _task(), steps=4, batch_size=32, progress=False, checkpoint=path)


def test_json_log_and_report(tmp_path):
    log = tmp_path / "log.jsonl"
    imodel = _converted()
    report = train(imodel, _task(), steps=6, batch_size=32, progress=False, log=log, log_every=2)
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["step"] for e in entries] == [2, 4, 6]
    assert all(e["samples_per_s"] > 0 and e["lr"] >= 0 for e in entries)
    assert report.history == entries and not imodel.training


# -- DDP ---------------------------------------------------------------------------------------
_DDP_WORKER = textwrap.dedent(
    """
    import json, os, sys, torch, torch.distributed as dist
    sys.path.insert(0, sys.argv[4])
    from tests.test_train import _converted, _task
    import inn

    rank, world, port, _, out, steps, checkpoint, stop = sys.argv[1:9]
    rank, world, steps, stop = int(rank), int(world), int(steps), int(stop)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    torch.set_num_threads(1)
    imodel = _converted()
    records = []

    class Stop(Exception):
        pass

    def check(step, info):
        if step == stop:  # every rank stops here, as if the job were killed
            raise Stop
        flat = torch.cat([p.detach().flatten() for p in imodel.parameters()])
        gathered = [torch.zeros_like(flat) for _ in range(world)]
        dist.all_gather(gathered, flat)
        widths = [None] * world
        dist.all_gather_object(widths, info["widths"])
        records.append({
            "step": step, "loss": info["loss"],
            "params_equal": all(torch.equal(g, gathered[0]) for g in gathered),
            "widths_equal": all(w == widths[0] for w in widths),
        })

    try:
        inn.train.train(imodel, _task(), steps=steps, batch_size=32, lr=0.1, progress=False,
                        callback=check, checkpoint=checkpoint, checkpoint_every=2,
                        smoothness=0.1)
    except Stop:
        pass
    if rank == 0:
        with open(out, "w") as handle:
            json.dump(records, handle)
    dist.barrier()
    # exit without running destructors: gloo's threads can abort the interpreter's teardown
    # ("terminate called without an active exception", about 1 run in 15 under pytest)
    os._exit(0)
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(tmp: Path, world: int, steps: int, stop: int, checkpoint: Path) -> list[dict]:
    import subprocess

    script, out = tmp / "worker.py", tmp / f"records-{world}.json"
    script.write_text(_DDP_WORKER)
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(script),
                str(r),
                str(world),
                str(port),
                str(REPO),
                str(out),
                str(steps),
                str(checkpoint),
                str(stop),
            ],
            env=env,
        )
        for r in range(world)
    ]
    try:
        for p in procs:
            assert p.wait(timeout=120) == 0
    finally:
        for p in procs:
            p.kill()
    return json.loads(out.read_text())


def test_two_process_ddp_stays_in_sync_and_resumes_on_one_process(tmp_path):
    """2 gloo ranks: equal widths and parameters after every step, the loss falls; the
    checkpoint they write resumes on 1 process to the parameters of a 1-process run."""
    checkpoint = tmp_path / "ddp.pt"
    records = _launch(tmp_path, 2, 10, 6, checkpoint)  # 10 steps planned, killed at step 7
    assert [r["step"] for r in records] == list(range(6))
    assert all(r["params_equal"] and r["widths_equal"] for r in records)
    assert records[-1]["loss"] < records[0]["loss"]
    # the global batch of every step is the same on 1 and 2 processes (no BatchNorm here), so
    # 4 more steps on 1 process end where 10 steps on 1 process end, up to round-off
    state = torch.load(checkpoint, weights_only=False)
    assert state["step"] == 6
    reference = _run(tmp_path, 10, smoothness=0.1)
    resumed = _converted()
    train(resumed, _task(), steps=10, batch_size=32, lr=0.1, progress=False, checkpoint=checkpoint,
          smoothness=0.1)  # fmt: skip
    for a, b in zip(reference.parameters(), resumed.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)


def test_bfloat16_autocast_trains_on_the_cpu():
    imodel = _converted()
    losses = []
    train(imodel, _task(), steps=12, batch_size=32, lr=0.1, amp="bf16", progress=False,
          callback=lambda step, info: losses.append(info["loss"]))  # fmt: skip
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-3:]) < sum(losses[:3])
    with pytest.raises(inn.InnError, match="needs a CUDA model"):
        train(imodel, _task(), steps=1, amp="fp16", progress=False)


# -- command line and the zoo twin -------------------------------------------------------------
def test_inn_train_command_line_trains_and_reports_every_width(tmp_path, capsys):
    from inn.cli import main
    from tests.cli_models import gray_net

    out = tmp_path / "run"
    code = main(["train", "--model", "tests.cli_models:gray_net", "--data",
                 "tests.cli_models:digit_splits", "--from", "scratch", "--steps", "3",
                 "--batch-size", "32", "--keep-batchnorm", "--out", str(out)])  # fmt: skip
    assert code == 0
    summary = json.loads((out / "train.json").read_text())
    assert summary["steps"] == 3 and len(summary["accuracy_at_width"]) == 7
    assert all(0 <= a <= 1 for a in summary["accuracy_at_width"].values())
    assert len((out / "log.jsonl").read_text().splitlines()) == 1  # step 3 (log every 10, last)
    state = torch.load(out / "model.pt", weights_only=True)
    twin = inn.convert(gray_net().eval(), torch.zeros(1, 1, 8, 8), permute=False,
                       fold_batchnorm=False)
    twin.load_state_dict(state)  # the saved model loads into the same conversion
    assert "accuracy" in capsys.readouterr().out


def test_the_zoo_twin_works_at_every_width_without_data():
    """The committed random-width twin of the demo network, resized with no data and no tuning,
    keeps its recorded accuracy at every width (the held-out digits, recomputed here)."""
    info = json.loads((innlab.zoo.checkpoint_dir() / "cifar_resnet18-inn.json").read_text())
    twin = innlab.zoo.load_integral("cifar_resnet18")
    _, test_set = innlab.data.mnist_splits(seed=0)
    x, y = test_set.tensors
    for fraction, recorded in info["test_accuracy_at_width"].items():
        with twin.widths_kept():
            twin.resize(widths=_fraction(twin, float(fraction)))
            assert _accuracy(twin, x, y) == pytest.approx(recorded, abs=2e-3), fraction
    assert min(info["test_accuracy_at_width"].values()) > 0.9


def test_a_missing_twin_names_the_script_that_makes_it(monkeypatch, tmp_path):
    monkeypatch.setattr("innlab.zoo.checkpoint_dir", lambda: tmp_path)
    with pytest.raises(innlab.zoo.PretrainedNotFoundError, match=r"scripts/train_twin\.py"):
        innlab.zoo.load_integral("cifar_resnet18")


def test_training_a_model_whose_batchnorms_were_folded_warns():
    from tests.cli_models import gray_net

    imodel = inn.convert(gray_net().eval(), torch.zeros(1, 1, 8, 8), permute=False)
    data = TensorDataset(torch.randn(8, 1, 8, 8), torch.arange(8) % 10)
    with pytest.warns(UserWarning, match=r"the 2 BatchNorm\(s\) of this model were folded"):
        train(imodel, data, steps=1, batch_size=8, progress=False)


def test_a_teacher_adds_its_kl_divergence_to_every_pass():
    """Against a hand computation of one step's loss: cross-entropy + KL(teacher || student),
    averaged over the sandwich's passes (lr 1e-12: the weights do not move between them)."""
    torch.manual_seed(0)
    imodel, data = _converted(), _task(8)  # one batch of every sample
    teacher = nn.Linear(16, 4)
    seen = []
    train(imodel, data, steps=1, batch_size=8, lr=1e-12, teacher=teacher, widths=(0.5, 1.0),
          progress=False, statistics_batches=0, smoothness=0.0,
          callback=lambda step, info: seen.append(info))  # fmt: skip
    x, y = data.tensors
    expected = []
    for widths in seen[0]["widths"]:
        imodel.resize(widths=widths)
        imodel.train()
        with torch.no_grad():
            out = imodel(x)
            kl = F.kl_div(F.log_softmax(out, -1), F.log_softmax(teacher(x), -1),
                          log_target=True, reduction="batchmean")  # fmt: skip
            expected.append(float(F.cross_entropy(out, y) + kl))
    assert seen[0]["loss"] == pytest.approx(sum(expected) / len(expected), rel=1e-5)
    with pytest.raises(inn.InnError, match="use one"):
        train(imodel, data, steps=1, teacher=teacher, distill=True, progress=False)


def _kl_by_hand(out: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """sum over classes (dim 1) and pixels of p (log p - log q), divided by the batch."""
    p, log_q = torch.softmax(ref, 1), torch.log_softmax(out, 1)
    return (p * (p.log() - log_q)).sum() / out.shape[0]


@pytest.mark.parametrize("targets", ["regression", "custom"])
def test_the_teacher_term_follows_the_loss(targets):
    """A regression loss learns the teacher's outputs through that loss (L1 by hand); an explicit
    ``teacher_loss`` replaces the default."""
    torch.manual_seed(0)
    imodel, teacher = _converted(), nn.Linear(16, 4)
    x = torch.randn(8, 16)
    data = TensorDataset(x, torch.randn(8, 4))
    options = {"loss": F.l1_loss}
    if targets == "custom":
        options["teacher_loss"] = F.mse_loss
    seen = []
    train(imodel, data, steps=1, batch_size=8, lr=1e-12, teacher=teacher, widths=(0.5, 1.0),
          progress=False, statistics_batches=0, callback=lambda step, info: seen.append(info),
          **options)  # fmt: skip
    expected = []
    for widths in seen[0]["widths"]:
        imodel.resize(widths=widths)
        with torch.no_grad():
            out, ref = imodel(x), teacher(x)
            term = (out - ref).abs().mean() if targets == "regression" else ((out - ref) ** 2).mean()
            expected.append(float((out - data.tensors[1]).abs().mean() + term))
    assert seen[0]["loss"] == pytest.approx(sum(expected) / len(expected), rel=1e-5)


def test_the_default_teacher_term_of_dense_class_scores_is_per_pixel():
    """Cross-entropy on (batch, classes, H, W) scores: the KL divergence over the classes at each
    pixel, against a hand computation."""
    out, ref = torch.randn(2, 5, 3, 4), torch.randn(2, 5, 3, 4)
    term = TrainSettings(steps=1).target_loss()
    assert float(term(out, ref)) == pytest.approx(float(_kl_by_hand(out, ref)), rel=1e-5)
    assert TrainSettings(steps=1, loss=nn.CrossEntropyLoss()).target_loss() is term
    with pytest.raises(inn.InnError, match="teacher_loss must be callables"):
        TrainSettings(steps=1, teacher_loss="l1")


def test_a_range_end_is_the_width_evaluated_at_that_fraction():
    """The sandwich's narrowest draw and ``uniform_widths`` at the same fraction agree, by hand:
    25 % of 10 channels is 3 (2.5 rounded half up; rounding half to even gave 2, a width never
    trained), 35 % of 24 is 8 (8.4; the range's end was 9, above the width evaluated). The
    width buckets' statistics are measured at the same widths (buckets 5/20 and 7/20)."""
    from types import SimpleNamespace

    from inn.layers.width_statistics import BUCKETS, bucket_sizes

    groups = [SimpleNamespace(name=f"g{n}", full_size=n, resizable=True) for n in (10, 24, 2, 9)]
    model = SimpleNamespace(resizable_groups=groups)
    for fraction, expected in ((0.25, [3, 6, 1, 2]), (0.35, [4, 8, 1, 3])):
        narrowest = WidthSampler.for_groups(groups, (fraction, 1.0)).draw(0)[1]
        assert list(narrowest.values()) == expected
        assert inn.train.uniform_widths(model, fraction) == narrowest
        assert bucket_sizes([g.full_size for g in groups], round(BUCKETS * fraction) - 1) == expected
