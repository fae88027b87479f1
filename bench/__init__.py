"""Benchmarks (run as scripts; figures in bench/RESULTS.md), and what they share."""


def percentile(values: list[float], share: float) -> float:
    """The value of ``values`` below which ``share`` (0 to 1) of them lie."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]
