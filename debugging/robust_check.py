"""Re-checking a robust explanation (issue 30) with engines smug's search does not use: z3 on
the exact SMT-LIB2 dump (:mod:`smug.pipeline.robust_dump`) proves ``E`` robust (``unsat``), and
each counterexample of a left-out feature is replayed exactly (z3 with the input's values fixed
in the dump of ``E`` without that feature: ``sat`` means the box holds it and a class reaches the
target) and through onnxruntime (float32: the model's own runtime)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

ROBUST, COUNTEREXAMPLE, UNKNOWN = "robust", "counterexample", "unknown"
MARK = "; smug-dump {"


def header(text: str) -> dict:
    """The JSON header of a robust dump (smt2); ``ValueError`` when the text is not one."""
    for line in text.splitlines()[:50]:
        if line.startswith(MARK):
            meta = json.loads(line[len("; smug-dump "):])
            if meta.get("kind") != "robust":
                raise ValueError(f"not a robust dump: its kind is {meta.get('kind')!r}")
            return meta
    raise ValueError("not a smug dump: no 'smug-dump' header line")


def prove(text: str, timeout: float = 600.0, values: dict[int, float] | None = None) -> str:
    """z3 on the dump: ``robust`` (unsat), ``counterexample`` (sat) or ``unknown`` (timeout).
    ``values`` fixes free inputs ``v{p}`` to exact values (a replay)."""
    import z3

    s = z3.Solver()
    s.set("timeout", max(1, int(timeout * 1000)))
    s.from_string(text)
    for p, v in (values or {}).items():
        q = Fraction(float(v))
        s.add(z3.Real(f"v{p}") == z3.Q(q.numerator, q.denominator))
    answer = s.check()
    return ROBUST if answer == z3.unsat else COUNTEREXAMPLE if answer == z3.sat else UNKNOWN


@dataclass(frozen=True)
class RobustReport:
    ok: bool
    robust: str  # the verdict on E itself
    replayed: int  # counterexamples confirmed exactly and by onnxruntime
    failed: tuple[int, ...]  # features whose counterexample did not replay
    seconds: float


def check_answer(e_dump: str, justifications, onnx_path: str | None = None, timeout: float = 600.0) -> RobustReport:
    """Confirm an answer: ``e_dump`` (the dump of ``E``) is unsat, and every justification (a
    feature, the dump of ``E`` without it, a counterexample input) replays exactly and, with
    ``onnx_path``, through onnxruntime (the target stops winning)."""
    t0 = time.perf_counter()
    verdict = prove(e_dump, timeout)
    failed = []
    session = None
    if onnx_path is not None:
        import onnxruntime as ort

        session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    for j in justifications:
        meta = header(j.dump)
        free = set(meta["free_inputs"])
        values = {p: j.input[p] for p in free}
        fixed_ok = all(float(j.input[p]) == xp for p, xp in enumerate(meta["x"]) if p not in free)
        ok = len(j.input) == len(meta["x"]) and fixed_ok and prove(j.dump, timeout, values) == COUNTEREXAMPLE
        if ok and session is not None:
            inp = session.get_inputs()[0]
            shape = [1 if not isinstance(d, int) else d for d in inp.shape]
            logits = session.run(None, {inp.name: np.asarray(j.input, np.float32).reshape(shape)})[0][0]
            t = meta["target"]
            ok = bool(np.delete(logits, t).max() >= logits[t])
        if not ok:
            failed.append(j.feature)
    return RobustReport(verdict == ROBUST and not failed, verdict, len(justifications) - len(failed), tuple(failed),
                        time.perf_counter() - t0)



def is_robust_dump(path: str | Path) -> bool:
    """The file is a robust dump (its header says so); False for any other file."""
    try:
        with open(path, encoding="utf-8") as f:
            head = [next(f, "") for _ in range(50)]
    except (OSError, UnicodeDecodeError):
        return False
    return any(line.startswith(MARK) and '"kind":"robust"' in line for line in head)


def check_files(dump_path: str | Path, result_path: str | Path, timeout: float = 600.0) -> tuple[bool, str]:
    """``smug check DUMP RESULT`` for a robust dump: the result's E (its ``mask_blocks``) is the
    dump's, the dump is intact (its end line's sha256), and z3 proves it unsat (robust)."""
    from smug.debugging.check import load_result
    from smug.debugging.reader import DumpError, _check_end

    path = Path(dump_path)
    text = path.read_text(encoding="utf-8")
    meta = header(text)
    _check_end(path, text, "smt2", meta)
    result = load_result(result_path)
    for key in ("model", "target"):
        if result.get(key) != meta.get(key):
            raise DumpError(f"the result does not belong to this dump: its {key} is {result.get(key)!r}, "
                            f"the dump's {meta.get(key)!r}")
    cols = meta["grid"][1]
    fixed = sorted(r * cols + c for r, c in result.get("mask_blocks") or [])
    if fixed != meta["fixed"]:
        raise DumpError(f"the result's E ({len(fixed)} features) is not the dump's ({len(meta['fixed'])})")
    t0 = time.perf_counter()
    verdict = prove(text, timeout)
    seconds = time.perf_counter() - t0
    if verdict == ROBUST:
        return True, f"confirmed: z3 proves E ({len(fixed)} features) robust (unsat) in {seconds:.1f} s"
    if verdict == COUNTEREXAMPLE:
        return False, f"REJECTED: z3 finds an input in the box of E ({len(fixed)} features) that reaches the target"
    return False, f"not confirmed: z3 gave no answer in {timeout:g} s"
