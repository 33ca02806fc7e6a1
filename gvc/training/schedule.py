"""Step-indexed schedules of the trainers: unroll length T, annealed values, quantization mode, lr decay.

Every function takes OUR training-step counter (one per G/D step pair, saved in the checkpoint;
docs/METHOD.md section 1.3), never Lightning's ``global_step`` (which counts every optimizer step under manual
optimization).
Pure functions of (step, config values): the same step gives the same value before and after a resume.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from gvc.errors import ConfigError, required

QUANT_MODES = ("noise", "ste", "softround_kumaraswamy")
#: stage.flow_loss.anneal: how the flow weight goes from start to end
FLOW_ANNEALS = ("linear", "exp")


def check_unroll_schedule(schedule: Sequence[Sequence[int]]) -> list[tuple[int, int]]:
    """Validate a list of [until_step, T] pairs (strictly increasing until_step, T >= 2); returns tuples.

    Raises ConfigError naming the bad entry.
    """
    if not schedule:
        raise ConfigError("stage.unroll must be a non-empty list of [until_step, T] pairs, e.g. [[80000, 2]]")
    out: list[tuple[int, int]] = []
    prev = -1
    for i, entry in enumerate(schedule):
        if len(entry) != 2:
            raise ConfigError(f"stage.unroll[{i}] = {list(entry)}: expected [until_step, T]")
        until, t = int(entry[0]), int(entry[1])
        if until <= prev:
            raise ConfigError(f"stage.unroll[{i}]: until_step {until} must be > the previous one ({prev})")
        if t < 2:
            raise ConfigError(
                f"stage.unroll[{i}]: T={t}; a P-frame stage needs T >= 2 (an I-frame and a P-frame)"
            )
        out.append((until, t))
        prev = until
    return out


def unroll_length(step: int, schedule: Sequence[Sequence[int]]) -> int:
    """T at training step `step` (0-based): the T of the first entry with step < until_step; the last T after.

    Paper [docs/METHOD.md section 1.2]: [[80000, 2], [300000, 3], [350000, 4], [400000, 6], [450000, 9]].
    """
    for until, t in check_unroll_schedule(schedule):
        if step < until:
            return t
    return int(schedule[-1][1])


def linear_anneal(step: int, start: float, end: float, steps: int, begin: int = 0) -> float:
    """`start` until step `begin`, linear to `end` at `begin + steps`, `end` after (steps <= 0: `end` at begin)."""
    if step < begin:
        return float(start)
    if steps <= 0:
        return float(end)
    frac = min(1.0, (step - begin) / float(steps))
    return float(start + (end - start) * frac)


def lr_factor(step: int, milestones: Sequence[int], gamma: float) -> float:
    """Multiplicative lr factor gamma^k, k = number of milestones <= step (HiFiC: x0.1 late in training)."""
    return float(gamma) ** sum(1 for m in milestones if step >= int(m))


def quantization(step: int, cfg: Mapping) -> tuple[str, dict]:
    """Quantization mode and its parameters at `step` from a stage.quantization config.

    cfg keys: mode ("noise" | "ste" | "softround_kumaraswamy"), temperature [start, end], kumaraswamy_a
    [start, end], anneal_steps, ste_from_step. Soft-round (docs/METHOD.md section 6, C3): T and a annealed linearly over
    anneal_steps (T 0.3 -> 0.1, a 2 -> 1), then the straight-through phase ("ste") from ste_from_step, which
    defaults (null) to the end of the annealing. With "noise" or "ste", ste_from_step null means never (an
    integer switches "noise" to "ste" there). Returns (mode, kwargs for the bottleneck's forward).
    """
    mode = str(cfg["mode"])
    if mode not in QUANT_MODES:
        raise ConfigError(f"stage.quantization.mode={mode!r}: use one of {QUANT_MODES}")
    steps = int(required(cfg, "anneal_steps", "stage.quantization"))
    ste_from = required(cfg, "ste_from_step", "stage.quantization")
    if ste_from is None and mode == "softround_kumaraswamy" and steps > 0:
        ste_from = steps
    if ste_from is not None and step >= int(ste_from):
        return "ste", {}
    if mode != "softround_kumaraswamy":
        return mode, {}
    t0, t1 = cfg["temperature"]
    a0, a1 = cfg["kumaraswamy_a"]
    return mode, {
        "temperature": linear_anneal(step, t0, t1, steps),
        "kumaraswamy_a": linear_anneal(step, a0, a1, steps),
    }


def resolve_flow_anneal(cfg: Mapping, warmup_steps: int, max_steps: int) -> dict:
    """The flow-loss config with `begin` (= the flow warm-up's end) and `anneal_steps` resolved.

    `anneal_share` (fraction of the stage, default used when anneal_steps is null) gives anneal_steps =
    round(anneal_share * max_steps); an explicit anneal_steps wins. The weight holds `start` through the warm-up
    and anneals from its end (docs/METHOD.md section 3.6: over a good part of the stage, not a few hundred steps).
    """
    out = dict(cfg)
    if not required(out, "enabled", "stage.flow_loss"):
        return out
    if required(out, "anneal_steps", "stage.flow_loss") is None:
        share = float(required(out, "anneal_share", "stage.flow_loss"))
        if not 0 < share <= 1:
            raise ConfigError(f"stage.flow_loss.anneal_share={share}: must be in (0, 1]")
        out["anneal_steps"] = max(1, round(share * max_steps))
    out["begin"] = int(warmup_steps)
    return out


def flow_weight(step: int, cfg: Mapping) -> float:
    """Flow-regularizer weight at `step`: 0 when cfg.enabled is false; else `start` until cfg.begin (default 0),
    then start -> end (linear if cfg.anneal == "linear", geometric if "exp") over anneal_steps, `end`
    afterwards (paper Eq. 6, annealed)."""
    if not required(cfg, "enabled", "stage.flow_loss"):
        return 0.0
    start, end, steps = float(cfg["start"]), float(cfg["end"]), int(cfg["anneal_steps"])
    begin = int(cfg.get("begin", 0) or 0)
    kind = required(cfg, "anneal", "stage.flow_loss")
    if kind == "linear":
        return linear_anneal(step, start, end, steps, begin)
    if kind == "exp":
        if start <= 0 or end <= 0:
            raise ConfigError("stage.flow_loss.anneal=exp needs start > 0 and end > 0")
        return math.exp(linear_anneal(step, math.log(start), math.log(end), steps, begin))
    raise ConfigError(f"stage.flow_loss.anneal={kind!r}: use one of {FLOW_ANNEALS}")
