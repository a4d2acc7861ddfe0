"""The event engine: the units' SimPy processes run by SimPy's event loop (the reference).

`accelsim.sim.simulate(..., engine="event")` builds each unit with a SimPy `Environment`;
every unit starts its own process (`UnitBase.process`) when it is built, in the order of the
`UNITS` mapping. `run_event` runs the environment until no event is left, optionally calling a
trace hook at every instruction start and end, or with a tqdm progress bar.
"""

from __future__ import annotations

import simpy


def environment() -> simpy.Environment:
    """A fresh SimPy environment for the units to start their processes in."""
    return simpy.Environment()


def run_event(env, units: dict, n: int, trace=None, progress: bool = False) -> None:
    """Run `env` to the end. trace: None, a list or a callable receiving one line of unit
    states (`cycle  unit: state | ...`) whenever an instruction starts or ends. progress:
    show a tqdm bar over the `n` instructions."""
    if trace is not None:
        emit = trace.append if hasattr(trace, "append") else trace

        def line():
            emit(f"{env.now:>8}  " + " | ".join(u.trace() for u in units.values()))

        for unit in units.values():
            unit.on_event = line
    if progress:
        _run_with_progress(env, units, n)
    else:
        env.run()


def _run_with_progress(env, units, n: int) -> None:
    from tqdm import tqdm  # noqa: PLC0415

    done = 0
    with tqdm(total=n, unit="insn", desc="simulate") as bar:
        try:
            while True:
                for _ in range(4096):
                    env.step()
                now = sum(u.pos for u in units.values())
                bar.update(now - done)
                done = now
        except simpy.core.EmptySchedule:
            bar.update(sum(u.pos for u in units.values()) - done)
