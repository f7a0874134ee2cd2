"""Learning-rate schedule: linear warm-up, then cosine decay to a floor (Gato: 10x below the peak)."""

import math


def learning_rate(step: int, peak: float, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """Rate for optimizer step `step` (0-based): ramps over warmup_steps, then follows a half cosine from
    `peak` down to `peak * min_ratio` at total_steps, and stays there afterwards."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    span = max(total_steps - warmup_steps, 1)
    progress = min((step - warmup_steps) / span, 1.0)
    return peak * (min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress)))
