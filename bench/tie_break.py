"""What the canonical tie-break costs (issue 31: one answer per request).

    nice -n 10 python -m smug.bench.tie_break                    # writes docs/benchmarks.md
    python -m smug.bench.tie_break --digits 5 --photos 0 --no-doc  # a quick check

Three families, each solved once to a proven optimum and then given the tie-break
(:mod:`smug.solver.tie_break`) from that optimum, timed apart:

* the hard first-layer family (:func:`smug.bench.hard_instances.hard_first_layer`, 7x7 kernel,
  k = 3000, gamma = 0), every backend of :func:`smug.solver.solve.solve` (its ``tie_break``
  timing), the questions answered by python-sat when installed (else z3);
* whole-network MNIST (``mnist-mlp``, 1-pixel blocks) on the first ``--digits`` test digits:
  :func:`~smug.solver.network_solve.solve_network` (auto), then
  :func:`~smug.solver.canonical_network.canonical_network`;
* first-layer SMUG on the first ``--photos`` ImageNet sample photos with EfficientNet-Lite0
  (k = 3000, gamma = 0, window 4) through :func:`smug.pipeline.run` (its ``solve_tie_break``).

Each row: the solve without the tie-break and the tie-break alone (medians and the largest),
how many passes completed, and whether every backend returned the same mask (hard family).
"""

from __future__ import annotations

import platform
import statistics
import time

import numpy as np

from smug.bench.common import add_doc_args, invocation, parser, photos, publish, table, uptime


def _row(name: str, solve_s: list[float], tie_s: list[float], done: list[bool], same: str = "-") -> list:
    return [name, len(tie_s), f"{statistics.median(solve_s):.2f}", f"{statistics.median(tie_s):.2f}",
            f"{max(tie_s):.2f}", f"{sum(done)}/{len(done)}", same]


def hard_family(timeout: float) -> list:
    from smug.bench.hard_instances import hard_first_layer
    from smug.solver.backends import FIRST_LAYER
    from smug.solver.solve import CANONICAL, solve

    problem = hard_first_layer(kernel=7, k=3000, gamma=0.0)
    solve_s, tie_s, done, masks = [], [], [], set()
    for backend in FIRST_LAYER:
        sol = solve(problem, backend=backend, timeout=timeout)
        tie = sol.timings.get("tie_break", 0.0)
        solve_s.append(sol.timings["total"] - tie)
        tie_s.append(tie)
        done.append(sol.stats.get("tie_break") == CANONICAL)
        masks.add(np.packbits(sol.mask).tobytes() if sol.mask is not None else b"")
    return _row("hard first layer 7x7, k 3000 (auto, highs, z3)", solve_s, tie_s, done,
                "yes" if len(masks) == 1 else f"no ({len(masks)} masks)")


def mnist_digits(n: int, timeout: float) -> list:
    from smug.bench.datasets import mnist_split
    from smug.pipeline import ExplainRequest, encode
    from smug.solver.canonical_network import canonical_network
    from smug.solver.network_solve import solve_network

    _, _, xs, _ = mnist_split()
    solve_s, tie_s, done = [], [], []
    for x in xs[:n]:
        problem = encode(ExplainRequest.build(x, "mnist-mlp", method="whole-network")).problem
        t = time.perf_counter()
        sol = solve_network(problem, "auto", timeout)
        solve_s.append(time.perf_counter() - t)
        if sol.status != "optimal":
            continue
        t = time.perf_counter()
        _, completed = canonical_network(problem, sol.mask, t + timeout)
        tie_s.append(time.perf_counter() - t)
        done.append(completed)
    return _row(f"whole network, mnist-mlp, first {n} test digits", solve_s, tie_s, done)


def lite0_photos(n: int, timeout: float) -> list:
    from smug.pipeline import ExplainRequest, run
    from smug.solver.solve import CANONICAL

    solve_s, tie_s, done = [], [], []
    for path in photos(n=n):
        e = run(ExplainRequest.build(str(path), "efficientnet-lite0", timeout=timeout))
        tie = e.timings.get("solve_tie_break", 0.0)
        solve_s.append(e.timings["solve"] - tie)
        tie_s.append(tie)
        done.append(e.encoding.get("tie_break") == CANONICAL)
    return _row(f"first layer, Lite0, {n} ImageNet photos", solve_s, tie_s, done)


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--digits", type=int, default=20, help="MNIST test digits (whole network)")
    ap.add_argument("--photos", type=int, default=3, help="ImageNet sample photos (Lite0; 0: none)")
    ap.add_argument("--timeout", type=float, default=60.0, help="solver timeout per problem, seconds")
    add_doc_args(ap)
    args = ap.parse_args()
    load_before = uptime()
    rows = [hard_family(args.timeout)]
    if args.digits > 0:
        rows.append(mnist_digits(args.digits, args.timeout))
    if args.photos > 0:
        rows.append(lite0_photos(args.photos, args.timeout))
    body = "\n".join([
        f"Machine: {platform.machine()}, {platform.python_version()}; load before `{load_before}`, "
        f"after `{uptime()}`.", "",
        *table(["family", "problems", "solve s (median)", "tie-break s (median)", "tie-break s (max)",
                "completed", "same mask, every backend"], rows)])
    publish(args, "tie_break", "Canonical tie-break: what one answer per request costs (issue 31)",
            invocation("tie_break", "nice -n 10"), body)


if __name__ == "__main__":
    main()
