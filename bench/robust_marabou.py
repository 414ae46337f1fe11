"""VeriX (Wu, Wu, Barrett, NeurIPS 2023) with Marabou, for the robust-explanation benchmark.

Run by ``bench/robust.py`` in a separate virtual environment that holds ``maraboupy==2.0.0``,
``numpy``, ``onnx`` and ``onnxruntime`` (never smug's own: Marabou is not a dependency):

    python bench/robust_marabou.py JOBS.jsonl RESULTS.jsonl

Each job line is ``{"key", "mode", "net", "x" (flat, in the network's input order), "target",
"epsilon", "timeout"}`` and, for ``mode = "check"``, ``"fixed"`` (bool per input).  Modes:

* ``verix``: VeriX's algorithm as published (implemented here from the paper and its description
  of the released tool): the pixels in VeriX's heuristic order for MNIST (ascending change of the
  target's logit when the pixel alone is reversed, ``x -> 1 - x``); for each pixel, with the
  irrelevant pixels found so far and this one free in their epsilon-box and every other pixel at
  x, one Marabou query per other class ``j`` ("can ``y_j`` reach ``y_target + 1e-6``?"), stopping
  at the first that is not *unsat*; all *unsat* makes the pixel irrelevant, *sat* or a timeout keeps
  it in the explanation.  One Marabou worker (the machine has two cores; the release asks for 16
  workers and Gurobi's MILP, which the PyPI wheel does not hold);
* ``check``: one Marabou query for a given explanation (``fixed`` pixels at x, the rest in the
  box): *unsat* re-verifies it with an engine independent of smug; *sat* comes with Marabou's
  witness input, which ``bench/robust.py`` replays in exact arithmetic (Marabou's arithmetic is
  floating point with tolerances: a witness may miss the box or the class by a rounding error).

This file imports only numpy and maraboupy (it runs outside smug's environment).
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np


_NETWORKS: dict[str, tuple] = {}
QUERY_TIMEOUT = 300  # seconds per Marabou query, as VeriX's release


def _network(path: str):
    """The network read once per file, its property (bounds, equations, disjunctions) reset to the
    parser's own before each query."""
    from maraboupy import Marabou

    if path not in _NETWORKS:
        net = Marabou.read_onnx(path)
        _NETWORKS[path] = (net, dict(net.lowerBounds), dict(net.upperBounds), list(net.additionalEquList),
                           list(net.disjunctionList))
    net, lo, hi, eqs, disj = _NETWORKS[path]
    net.lowerBounds, net.upperBounds = dict(lo), dict(hi)
    net.additionalEquList, net.disjunctionList = list(eqs), list(disj)
    return net


def _box(net, x: np.ndarray, eps: float, free: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The network with its input bounds set (free entries in the epsilon-box clipped to [0, 1],
    the others at x); its input and output variables."""
    inputs = np.asarray(net.inputVars[0]).ravel()
    for var, xp, f in zip(inputs.tolist(), x.tolist(), free.tolist()):
        lo, hi = (max(0.0, xp - eps), min(1.0, xp + eps)) if f else (xp, xp)
        net.setLowerBound(var, lo)
        net.setUpperBound(var, hi)
    return inputs, np.asarray(net.outputVars[0]).ravel()


def _solve(net, timeout: float) -> tuple[str, dict]:
    from maraboupy import Marabou

    options = Marabou.createOptions(verbosity=0, timeoutInSeconds=max(1, int(timeout)))
    exit_code, values, _ = net.solve(options=options, verbose=False)
    return exit_code, values


def query(path: str, x: np.ndarray, target: int, eps: float, free: np.ndarray, timeout: int) -> tuple[str, list | None]:
    """'unsat' (robust), 'sat' (a counterexample) or another Marabou exit code, and on 'sat' the
    input Marabou found (its witness: smug replays it exactly, Marabou works in floats): one query,
    the disjunction over the other classes of ``y_j >= y_target``."""
    from maraboupy import MarabouCore
    from maraboupy.MarabouUtils import Equation

    net = _network(path)
    inputs, outputs = _box(net, x, eps, free)
    disjuncts = []
    for j in range(len(outputs)):
        if j == target:
            continue
        eq = Equation(MarabouCore.Equation.GE)  # y_j - y_target >= 0
        eq.addAddend(1.0, int(outputs[j]))
        eq.addAddend(-1.0, int(outputs[target]))
        eq.setScalar(0.0)
        disjuncts.append([eq])
    net.addDisjunctionConstraint(disjuncts)
    exit_code, values = _solve(net, timeout)
    witness = [float(values[int(v)]) for v in inputs.tolist()] if exit_code == "sat" else None
    return exit_code, witness


def query_per_class(path: str, x: np.ndarray, target: int, eps: float, free: np.ndarray, deadline: float) -> tuple[str, int]:
    """VeriX's check of one box: a query per other class ``j`` (``y_target - y_j <= -1e-6``), in class
    order, stopping at the first answer that is not 'unsat'; that answer and the queries made."""
    code, calls = "unsat", 0
    for j in range(np.asarray(_network(path).outputVars[0]).size):
        if j == target:
            continue
        net = _network(path)
        _, outputs = _box(net, x, eps, free)
        net.addInequality([int(outputs[target]), int(outputs[j])], [1.0, -1.0], -1e-6)
        code, _ = _solve(net, min(QUERY_TIMEOUT, deadline - time.perf_counter()))
        calls += 1
        if code != "unsat":
            break
    return code, calls


def sensitivity_order(path: str, x: np.ndarray, target: int) -> np.ndarray:
    """VeriX's heuristic traversal for MNIST: pixels by ascending ``y_target(x) - y_target(x with the
    pixel reversed to 1 - x)``."""
    import onnxruntime as ort

    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in inp.shape][1:]
    run = lambda V: sess.run(None, {inp.name: V.reshape([-1] + shape).astype(np.float32)})[0]  # noqa: E731
    base = run(x[None, :])[0, target]
    V = np.repeat(x[None, :], x.size, axis=0)
    V[np.arange(x.size), np.arange(x.size)] = 1.0 - x
    return np.argsort(base - run(V)[:, target], kind="stable")


def verix(job: dict) -> dict:
    t0, c0 = time.perf_counter(), time.process_time()
    x = np.asarray(job["x"], np.float64)
    free = np.zeros(x.size, bool)
    explanation, calls, codes = [], 0, {}
    deadline = t0 + job["timeout"]
    timed_out = False
    for p in sensitivity_order(job["net"], x, job["target"]).tolist():
        if time.perf_counter() > deadline:
            timed_out = True
            explanation.append(p)
            continue
        trial = free.copy()
        trial[p] = True
        code, n = query_per_class(job["net"], x, job["target"], job["epsilon"], trial, deadline)
        calls += n
        codes[code] = codes.get(code, 0) + 1
        if sum(codes.values()) % 50 == 0:
            print(f"{job['key']}: {sum(codes.values())} pixels, {codes}, {time.perf_counter() - t0:.0f} s", file=sys.stderr,
                  flush=True)
        if code == "unsat":
            free = trial
        else:
            explanation.append(p)
    return {"key": job["key"], "size": len(explanation), "explanation": sorted(explanation), "calls": calls,
            "codes": codes, "timed_out": timed_out, "seconds": time.perf_counter() - t0,
            "cpu": time.process_time() - c0, "algorithm": "per-class"}


def check(job: dict) -> dict:
    t0 = time.perf_counter()
    x = np.asarray(job["x"], np.float64)
    free = ~np.asarray(job["fixed"], bool)
    code, witness = query(job["net"], x, job["target"], job["epsilon"], free, job["timeout"])
    return {"key": job["key"], "code": code, "witness": witness, "seconds": time.perf_counter() - t0}


def main() -> None:
    jobs_path, out_path = sys.argv[1], sys.argv[2]
    with open(jobs_path) as f, open(out_path, "a") as out:
        for line in f:
            job = json.loads(line)
            result = verix(job) if job["mode"] == "verix" else check(job)
            out.write(json.dumps(result) + "\n")
            out.flush()


if __name__ == "__main__":
    main()
