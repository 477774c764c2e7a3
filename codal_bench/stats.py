"""Small statistics shared by reports: the pass@k estimator."""

from __future__ import annotations


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c passed: 1 - C(n-c, k) / C(n, k).

    Computed as a running product rather than with binomials, which overflow floats for the
    sample counts people use (n = 200 and more).
    """
    if not 0 <= c <= n or k < 1 or n < 1:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and k, n >= 1 (got n={n}, c={c}, k={k})")
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples per task, got {n}")
    if n - c < k:
        return 1.0
    miss = 1.0
    for i in range(n - c + 1, n + 1):
        miss *= 1.0 - k / i
    return 1.0 - miss
