"""The timing loop: one closure per configuration, timed runs interleaved in rotating rounds."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ...core.errors import InputError
from ..providers import known_provider
from ..runner import Runner

# Pause before each chunk of timed runs when configurations are interleaved. onnxruntime's worker threads
# spin for a while after a session's last run (measured here: about 40 ms of CPU burnt on a 2-core machine),
# and so do OpenMP's after torch; whoever runs next would otherwise share the cores with that spinning.
SETTLE_S = 0.1


@dataclass
class Contestant:
    """One timed configuration: a run() closure and the samples it collected."""

    run: Callable[[], object]
    runs: int = 0
    samples: list = dataclasses.field(default_factory=list)
    keep: object = None  # whatever run() needs kept alive (bound OrtValues, the torch runner)


def time_once(fn: Callable[[], object]) -> float:
    """Milliseconds one call of ``fn`` takes (``perf_counter_ns``)."""
    t0 = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - t0) / 1e6


def bound_run(runner: Runner, feeds: dict, device: str | None) -> tuple[Callable, object]:
    """A closure that runs the runner once; with ``device``, through onnxruntime's IO binding set up once.

    IO binding copies inputs to the device before timing and leaves outputs there, so the timed runs measure
    the model, not host↔device copies (onnxruntime synchronises the device at the end of each run).
    """
    if device is None:
        return runner.bind(feeds), None
    sess = getattr(runner, "session", None)
    if sess is None:
        raise InputError(f"IO binding is onnxruntime's; {runner.runtime} runs without it: use --io-binding off")
    import onnxruntime as ort

    binding = sess.io_binding()
    keep = []
    for name, x in feeds.items():
        value = ort.OrtValue.ortvalue_from_numpy(x, device, 0)
        keep.append(value)
        binding.bind_ortvalue_input(name, value)
    for out in sess.get_outputs():
        binding.bind_output(out.name, device, 0)
    return (lambda: sess.run_with_iobinding(binding)), keep


def schedule(contestants: list[Contestant], rounds: int, settle_s: float = SETTLE_S) -> None:
    """Run every contestant's timed runs, interleaved in rounds with a rotating order.

    Before each chunk: a pause of ``settle_s`` (the previous contestant's threads stop spinning), then one
    untimed run (caches refilled after the switch).
    """
    multi = len(contestants) > 1
    rounds = max(1, min(rounds, min(c.runs for c in contestants)))
    for r in range(rounds):
        order = contestants[r % len(contestants) :] + contestants[: r % len(contestants)]
        for c in order:
            n = c.runs * (r + 1) // rounds - c.runs * r // rounds
            if n <= 0:
                continue
            if multi:
                time.sleep(settle_s)
                c.run()
            for _ in range(n):
                c.samples.append(time_once(c.run))


def _parse_io_binding(io_binding, provider_names: Sequence[str]) -> str | None:
    """The device to bind to, or None for plain session.run."""
    devices = [p.device for p in map(known_provider, provider_names) if p is not None]
    device = "cuda" if "cuda" in devices else "cpu"
    if io_binding == "auto":
        return "cuda" if device == "cuda" else None
    if io_binding in (True, "on", "true", "yes"):
        return device
    if io_binding in (False, "off", "false", "no", None):
        return None
    raise InputError(f"io_binding must be 'auto', True or False, got {io_binding!r}")
