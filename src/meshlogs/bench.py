"""``meshlogs bench``: the gateway load/latency benchmark (ARCHITECTURE §7), run from a source checkout.

The benchmark lives in the repository's ``bench/`` directory (``bench/gateway_bench.py`` and its
``_loadclient``, ``_loadwriter``, ``_gateway_*`` helpers), beside the other benchmarks; it is not part
of the installed package. It starts client and writer processes with ``multiprocessing`` (``spawn``),
which import those modules by name, so this entry point puts ``bench/`` on ``sys.path`` (spawned
children inherit it) before handing over the arguments.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

__all__ = ["BENCH_DIR", "run_bench"]

#: ``<checkout>/bench``, found from this file in an editable install (``src/meshlogs/bench.py``).
BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"


def run_bench(argv: list[str]) -> int:
    """Run ``bench/gateway_bench.py`` with ``argv`` (its options; ``--help`` lists them).

    Returns:
        The bench's exit code: 0 when it ran (targets missed are reported, not failures), 1 when a
        subscriber did not receive exactly seq 1..N of its run, 2 when the bench is not available.
    """
    script = BENCH_DIR / "gateway_bench.py"
    if not script.is_file():
        print(
            f"meshlogs bench runs from a source checkout: {script} is missing"
            " (the benchmark is not shipped in the package)",
            file=sys.stderr,
        )
        return 2
    if str(BENCH_DIR) not in sys.path:
        sys.path.insert(0, str(BENCH_DIR))
    module = importlib.import_module("gateway_bench")
    result = module.main(list(argv))
    return int(result)
