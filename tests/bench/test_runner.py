"""The measuring loop: first calls are announced before they start and kept out of the median."""

from __future__ import annotations

import time
from types import SimpleNamespace

import torch

from vsuite.bench import runner as runner_mod
from vsuite.bench.runner import Runner, base_record

FIRST_S, LATER_S = 0.25, 0.005


class SlowFirstCall:
    """An implementation whose first call per built workload 'compiles' (sleeps FIRST_S)."""

    name, op, complexity, exponent, mem_exponent = "fake-compiled", "lightning_attn", "linear", 1.0, 1.0

    def __init__(self, events):
        self.events = events

    def flops(self, case):
        return 1e9

    def bytes(self, case):
        return 1e6

    def mem_hint(self, case):
        return None

    def build(self, case, seed):
        state = {"first": True}

        def call():
            self.events.append(("call", case.seq))
            time.sleep(FIRST_S if state["first"] else LATER_S)
            state["first"] = False

        return SimpleNamespace(call=call)


def _run(monkeypatch, warmup=1, repeats=3):
    events = []
    monkeypatch.setattr(runner_mod, "log", lambda msg: events.append(("log", str(msg))))
    cfg = SimpleNamespace(batch=1, heads=1, dim=8, mode="fwd", budget=20.0, seed=0, warmup=warmup, repeats=repeats)
    run = Runner(cfg, torch.device("cpu"), torch.float32, machine={})
    impl = SlowFirstCall(events)
    case = run.case0.at(128)
    records = {(impl.name, 128): base_record(impl, case, "sdpa", None)}
    progress = SimpleNamespace(advance=lambda msg: events.append(("progress", msg)))
    run.run_impl(impl, [128], records, progress)
    return events, records[(impl.name, 128)]


def test_first_call_is_announced_before_it_runs(monkeypatch):
    events, _ = _run(monkeypatch)
    first_call = events.index(("call", 128))
    announced = [i for i, (kind, msg) in enumerate(events) if kind == "log" and "first call" in msg]
    assert announced and announced[0] < first_call
    assert "fake-compiled" in events[announced[0]][1] and "N=128" in events[announced[0]][1]


def test_first_call_time_is_kept_out_of_the_median(monkeypatch):
    events, rec = _run(monkeypatch, warmup=1, repeats=3)
    assert sum(1 for e in events if e[0] == "call") == 4  # 1 first (warmup) + 3 timed
    assert rec["first_call_s"] >= FIRST_S
    assert rec["ms"] < 0.5 * FIRST_S * 1e3 and len(rec["times_ms"]) == 3
    assert max(rec["times_ms"]) < 0.5 * FIRST_S * 1e3


def test_without_warmup_on_cpu_the_first_call_is_timed(monkeypatch):
    events, rec = _run(monkeypatch, warmup=0, repeats=3)
    assert rec["first_call_s"] is None
    assert max(rec["times_ms"]) >= FIRST_S * 1e3  # the user asked for no warmup: it shows
    assert any(kind == "log" and "no warmup" in msg for kind, msg in events)
