"""Thread guards for native libraries that share the cores with torch."""

from __future__ import annotations


def one_openmp_thread():
    """Gradient boosting runs with one OpenMP thread: with torch loaded, two OpenMP runtimes
    share the cores and sklearn's fits got 13× slower (measured: 4.9 s vs 0.37 s for the
    detection step on 2 × 330 rows)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="openmp")
