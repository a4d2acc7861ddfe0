"""Traces of a finished run for chrome://tracing and ui.perfetto.dev (either engine)."""

from __future__ import annotations

from accelsim.isa import Op, Unit


def chrome_trace(program, result, cfg) -> dict:
    """Trace-event JSON of a `SimResult`: one complete event per instruction on its unit's
    track; timestamps in microseconds at the configured clock."""
    us = 1.0 / cfg.chip.clock_mhz
    events = [
        {
            "name": "thread_name",
            "ph": "M",
            "pid": 0,
            "tid": int(u),
            "args": {"name": u.name.lower()},
        }
        for u in Unit
    ]
    for insn, s, e in zip(program.insns, result.start_cycles, result.end_cycles):
        if insn.op != Op.FINISH:
            events.append(
                {
                    "name": insn.op.name,
                    "ph": "X",
                    "pid": 0,
                    "tid": int(insn.unit),
                    "ts": float(s) * us,
                    "dur": float(e - s) * us,
                    "args": {
                        "index": insn.index,
                        "tag": insn.tag,
                        "layer": program.tags.get(insn.tag, ""),
                    },
                }
            )
    return {"traceEvents": events, "displayTimeUnit": "ns"}
