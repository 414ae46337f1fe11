"""The runner of ``smug evaluate``: score explanation methods on images, resumably.

For every image and method: the method's map, its LSC with the best box (paper 003
Eq. 5, :mod:`smug.metrics.lsc`), its sparsity, the method's time, paper 004's input
alignment and KIS of the map (in the row's ``extra`` JSON) and, on request,
paper 000's stopping-criterion size and time and the insertion/deletion AUCs.  Every
finished (image, method) pair is committed at once to an embedded SQLite file, so a
re-run (same file, same settings) skips what is done; new methods or images are
added to it.  Progress goes to stderr.

Method names: ``smug`` and ``smug_base`` (one SMUG run per image serves both),
``smug_keep`` (SMUG in keep-class mode, :mod:`smug.pipeline.keep_class`: the constraints are
strengthened until the masked image keeps the predicted class), ``optbox`` (paper 003's
brute-force box, ~1,500-3,000 crops per image), and every
registered baseline (:func:`smug.baselines.attribution.methods`; aliases ``ig``,
``gbp``; ``smug_keep_class`` for ``smug_keep``).  SMUG rows (``smug``, ``smug_keep``) also
store whether the masked image keeps the predicted class (``keeps_class``, a float32 forward
pass) and the target's probability on it (``masked_confidence``); the row's ``extra`` of
``smug_keep`` holds the final constraint set and the number of steps solved.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import io
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from smug.common import softmax
from smug.evaluation.store import EvalConfig, EvalStore
from smug.pipeline.request import METHOD_ALIASES

# the pipeline's method aliases (ig, gbp, ...) plus this command's own rows
ALIASES = {**METHOD_ALIASES, "smug_keep_class": "smug_keep", "smug-keep": "smug_keep"}
SPECIAL = ("smug", "smug_base", "smug_keep", "optbox")
SMUG_METHODS = ("smug", "smug_base", "smug_keep")  # maps that are SMUG masks (sparse pictures)
KEEPS = ("smug", "smug_keep")  # rows whose keeps_class / masked_confidence describe the map's own mask


def canonical(method: str) -> str:
    return ALIASES.get(method, method)


def check_methods(methods: list[str]) -> list[str]:
    from smug.baselines.attribution import methods as registered

    known = set(registered()) | set(SPECIAL)
    out = []
    for m in methods:
        c = canonical(m.strip())
        if not c:
            continue
        if c not in known:
            raise ValueError(f"unknown method '{m}': choose from {sorted(known | set(ALIASES))}")
        if c not in out:
            out.append(c)
    if not out:
        raise ValueError("no methods given")
    return out


# ---- one image ------------------------------------------------------------------
def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def smug_request(path: Path, config: EvalConfig, target: int | None = None, keep_class: bool = False):
    """The SMUG request of an image file under ``config`` (the only place evaluate builds one)."""
    from smug.pipeline.request import ExplainRequest

    c = config
    return ExplainRequest.build(str(path), model=c.model, method="smug", top_k=c.top_k, gamma=c.gamma,
                                window=c.window, timeout=c.timeout, target=target, keep_class=keep_class)


def image_key(path: Path, config: EvalConfig) -> str:
    """An image's key in the store: the identity of its SMUG request (its content, not its path: the
    same photo under two names is one image, a photo replaced at the same path is a new one)."""
    from smug.pipeline.identity import identity

    return identity(smug_request(path, config))


def _smug_explanation(path: Path, config: EvalConfig, target: int | None = None, keep_class: bool = False
                      ) -> tuple[np.ndarray, np.ndarray, float, dict]:
    """One SMUG run on the image file: (SMUG map, SMUG_base map, seconds, info for the rows' ``extra``;
    its ``keeps_class`` and ``masked_confidence`` go to their own columns).  ``keep_class``: the
    keep-class mode.  The only place the runner asks for a SMUG explanation."""
    from smug.pipeline.request import ExplainRequest
    from smug.pipeline import run

    e = run(smug_request(path, config, target, keep_class))
    info = {"status": e.status, "blocks": e.objective, "base_blocks": int(e.base_mask.sum()),
            "certificate_valid": bool(e.certificate.get("valid")), "timings": e.timings,
            "keeps_class": e.keeps_class, "masked_confidence": e.masked_confidence}
    keep = e.encoding.get("keep_class")
    if keep is not None:
        info["keep_class"] = {"kept": keep.get("kept"), "constraints": keep.get("constraints"),
                              "steps": len(keep.get("steps") or []), "note": keep.get("note")}
    seconds = float(e.timings["total"])
    return np.asarray(e.saliency, np.float64), np.asarray(e.base_saliency, np.float64), seconds, info


class Evaluator:
    """Computes the rows of one image; the model is loaded once."""

    def __init__(self, config: EvalConfig):
        from smug.metrics.insertion_deletion import InsertionDeletion
        from smug.metrics.lsc import LSC, OptBox
        from smug.models.zoo import load_model

        self.config = config
        self.model, self.entry = load_model(config.model)
        if self.entry is None:
            raise ValueError("smug evaluate needs a zoo model (its preprocessing reads the image files)")
        if len(self.model.input_shape) != 3:
            raise ValueError(f"LSC needs an image model (C, H, W); '{config.model}' takes {self.model.input_shape}")
        quantize = None
        if config.lsc_uint8:
            from smug.baselines.modified_backprop import default_bounds

            quantize = default_bounds(self.model)
            if quantize is None:
                raise ValueError(f"--lsc-uint8 needs the pixel range of '{config.model}' (a zoo image model)")
        self.lsc = LSC(n_thresholds=config.n_thresholds, area_floor=config.area_floor, quantize=quantize)
        self.optbox = OptBox(cells=config.optbox_cells, area_floor=config.area_floor, quantize=quantize)
        self.curves = InsertionDeletion(config.id_steps) if config.insertion_deletion else None
        self.names = self.entry.class_names()

    def image_record(self, path: Path) -> tuple[np.ndarray, dict]:
        x, picture = self.entry.preprocess.load(path)
        p = softmax(self.model.logits(x[None])[0])
        t = int(p.argmax())
        return x, {"target": t, "target_name": self.names[t], "confidence": float(p[t]), "picture": _png(picture)}

    def maps(self, path: Path, x: np.ndarray, target: int,
             methods: list[str]) -> dict[str, tuple[np.ndarray, float, dict]]:
        """method -> (map (H, W), seconds, extra info) for the methods asked."""
        from smug.baselines.attribution import attribute

        out: dict[str, tuple[np.ndarray, float, dict]] = {}
        if "smug" in methods or "smug_base" in methods:
            saliency, base_saliency, seconds, info = _smug_explanation(path, self.config, target)
            out["smug"] = (saliency, seconds, info)
            out["smug_base"] = (base_saliency, seconds, info)
        if "smug_keep" in methods:
            saliency, _, seconds, info = _smug_explanation(path, self.config, target, keep_class=True)
            out["smug_keep"] = (saliency, seconds, info)
        for m in methods:
            if m in out:
                continue
            if m == "optbox":
                t0 = time.perf_counter()
                box_map, r = self.optbox.map(self.model, x, target)
                out[m] = (box_map, time.perf_counter() - t0, {"optbox": r.to_json()})
            else:
                a = attribute(self.model, x, target=target, method=m)
                info = {k: v for k, v in a.params.items() if isinstance(v, (int, float, str, bool, type(None)))}
                out[m] = (np.asarray(a.map, np.float64), a.seconds, info)
        return {m: out[m] for m in methods}

    def _kis(self, x: np.ndarray, saliency: np.ndarray, target: int) -> float | None:
        """Paper 004 Eq. 20 of the map (broadcast over channels); None where undefined."""
        from smug.metrics.alignment import KIS

        try:
            return KIS()(self.model, x, saliency, target)
        except ValueError:
            return None

    def row(self, x: np.ndarray, target: int, method: str, saliency: np.ndarray, seconds: float, extra: dict) -> dict:
        from smug.baselines.stopping import stopping_criterion
        from smug.metrics.alignment import alignment
        from smug.metrics.sparsity import sparsity
        from smug.rendering.compare import map_picture

        c = self.config
        if method == "optbox":
            r_json = extra["optbox"]
            lsc = dict(lsc=r_json["score"], area=r_json["area"], confidence=r_json["confidence"],
                       box=json.dumps(r_json["box"]), threshold=None, boxes=r_json["boxes"])
        else:
            r = self.lsc(self.model, x, saliency, target)
            lsc = dict(lsc=r.score, area=r.area, confidence=r.confidence, box=json.dumps(r.box.as_list()),
                       threshold=r.threshold, boxes=r.boxes)
            extra = {**extra, "lsc_candidates": r.candidates, "lsc_empty": r.empty}
        extra = {**extra, "alignment": alignment(saliency, x), "kis": self._kis(x, saliency, target)}
        row = dict(target=target, seconds=seconds, sparsity=sparsity(saliency), **lsc,
                   map_png=_png(map_picture(saliency, sparse=method in SMUG_METHODS)))
        if method in KEEPS:  # SMUG_base's map is not the mask that was checked
            keeps = extra.get("keeps_class")
            row.update(keeps_class=None if keeps is None else int(bool(keeps)),
                       masked_confidence=extra.get("masked_confidence"))
        if c.stopping:
            s = stopping_criterion(self.model, x, saliency, target, window=c.stop_window, search="bisect")
            row.update(stop_size=s.size, stop_seconds=s.seconds,
                       stop_fraction=None if s.mask is None else float(np.mean(s.mask)))
        if self.curves is not None:
            cv = self.curves(self.model, x, saliency, target)
            row.update(insertion_auc=cv.insertion_auc, deletion_auc=cv.deletion_auc)
        row["extra"] = json.dumps(extra, default=str)
        return row


# ---- the loop --------------------------------------------------------------------
class Progress:
    """A one-line progress bar on stderr (one line per step when not a terminal)."""

    def __init__(self, total: int, stream=None):
        self.total, self.n, self.t0 = total, 0, time.perf_counter()
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def step(self, label: str) -> None:
        self.n += 1
        width = 30
        fill = int(width * self.n / max(self.total, 1))
        el = time.perf_counter() - self.t0
        line = f"[{'#' * fill}{'.' * (width - fill)}] {self.n}/{self.total} {el:6.0f}s {label}"
        if self.tty:
            self.stream.write("\r" + line[:120].ljust(120))
            if self.n == self.total:
                self.stream.write("\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def method_groups(methods: list[str]) -> list[tuple[str, ...]]:
    """The units of work of one image: SMUG and SMUG_base (those of them asked) from one run, every
    other method alone."""
    pair = tuple(m for m in ("smug", "smug_base") if m in methods)
    groups = [pair] if pair else []
    return groups + [(m,) for m in methods if m not in ("smug", "smug_base")]


@dataclass(frozen=True)
class ImageRows:
    """What one unit of work yields: the image's record (target, picture, ...) and a row per method."""

    record: dict
    rows: dict[str, dict]


def image_rows(ev: Evaluator, path: Path, methods: tuple[str, ...]) -> ImageRows:
    """The rows of ``methods`` on one image file."""
    x, rec = ev.image_record(path)
    maps = ev.maps(path, x, rec["target"], list(methods))
    return ImageRows(rec, {m: ev.row(x, rec["target"], m, saliency, seconds, extra)
                           for m, (saliency, seconds, extra) in maps.items()})


@functools.lru_cache(maxsize=2)
def _evaluator(config: EvalConfig) -> Evaluator:
    """One Evaluator (the model loaded once) per config and process: farm workers run many units."""
    return Evaluator(config)


def remote_image_rows(data: bytes, name: str, methods: tuple[str, ...], config: EvalConfig) -> ImageRows | str:
    """:func:`image_rows` on a Dask worker (the image travels as bytes: no shared file system needed);
    an error is returned as its message (a failed unit, not one for Dask to retry)."""
    try:
        with tempfile.TemporaryDirectory(prefix="smug-eval-") as tmp:
            path = Path(tmp) / Path(name).name
            path.write_bytes(data)
            return image_rows(_evaluator(config), path, methods)
    except MemoryError:
        raise  # the worker is short of memory: Dask retries the unit elsewhere
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


def evaluate(images: list[str | Path], methods: list[str], db: str | Path, config: EvalConfig | None = None,
             progress: bool = True, workers: int | None = None, scheduler: str | None = None,
             client=None) -> dict:
    """Evaluate ``methods`` on ``images`` into the store ``db``; returns counts.

    Each (image, method) row is committed as soon as it is computed, so a re-run (same store,
    same settings) skips what is done.  Pairs another live run has claimed are left to it
    (``claimed_elsewhere``).  With ``workers``, ``scheduler`` or a ``distributed.Client``
    (``client``), the units of work (:func:`method_groups` per image) run as farm tasks on
    Dask (:mod:`smug.farm.dispatch`) and this process alone writes the store.
    """
    config = config or EvalConfig()
    methods = check_methods(methods)
    paths = [Path(p) for p in images]
    for p in paths:
        if not p.is_file():
            raise ValueError(f"image not found: {p}")
    from smug.models.zoo import ZOO

    if config.model not in ZOO:
        raise ValueError(f"smug evaluate needs a zoo image model (its preprocessing reads the files): {sorted(ZOO)}")
    on_farm = workers is not None or scheduler is not None or client is not None
    fresh, finished = not Path(db).exists(), False
    store = EvalStore(db)
    try:
        store.bind(config)
        run = _FarmRun if on_farm else _LocalRun
        counts = run(store, config, methods, paths, progress).go(workers=workers, scheduler=scheduler, client=client)
        finished = True
        return {"db": str(store.path), "images": len(paths), **counts, "methods": methods}
    finally:
        store.release_claims()
        store.close(discard_empty=fresh and not finished)  # a failed first run leaves no empty store


class _LocalRun:
    """Units of work one after the other in this process; an image is claimed when its turn comes."""

    def __init__(self, store: EvalStore, config: EvalConfig, methods: list[str], paths: list[Path], progress: bool):
        self.store, self.config, self.methods, self.paths = store, config, methods, paths
        self.bar = Progress(len(paths)) if progress else None
        self.counts = {"computed": 0, "skipped": 0, "claimed_elsewhere": 0, "failed": []}

    def todo(self, key: str) -> list[str]:
        """Methods of this image not yet in the store (SMUG and SMUG_base go together)."""
        done = self.store.done(key)
        todo = [m for m in self.methods if m not in done]
        if "smug" in todo or "smug_base" in todo:
            todo = [m for m in self.methods if m in ("smug", "smug_base")] + \
                   [m for m in todo if m not in ("smug", "smug_base")]
        return todo

    def claim(self, key: str) -> list[str]:
        todo = self.todo(key)
        got = self.store.claim(key, todo) if todo else []
        self.counts["claimed_elsewhere"] += len(todo) - len(got)
        return got

    def write(self, key: str, name: str, result: ImageRows) -> None:
        rec = result.record
        if not self.store.has_image(key):
            self.store.put_image(key, name, rec["target"], rec["target_name"], rec["confidence"], rec["picture"])
        for m, row in result.rows.items():
            self.store.put_result(key, m, row)

    def step(self, label: str) -> None:
        if self.bar:
            self.bar.step(label)

    def go(self, **_) -> dict:
        ev = None
        for p in self.paths:
            key = image_key(p, self.config)
            got = self.claim(key)
            for group in method_groups(got):
                ev = ev or _evaluator(self.config)
                self.write(key, p.name, image_rows(ev, p, group))
            self.counts["computed" if got else "skipped"] += 1
            self.step(p.name + ("" if got else " (done before)"))
        return self.counts


class _FarmRun(_LocalRun):
    """Units of work as Dask tasks; everything to do is claimed before the first submission."""

    def go(self, workers: int | None = None, scheduler: str | None = None, client=None) -> dict:
        from smug.farm import cluster, dispatch

        units, images = [], {}
        for p in self.paths:
            key = image_key(p, self.config)
            got = self.claim(key)
            if not got:
                self.counts["skipped"] += 1
                self.step(p.name + " (done before)")
                continue
            images[key] = p
            data = p.read_bytes()
            for group in method_groups(got):
                unit = dispatch.Task(f"smug-eval-{len(units)}-{hashlib.sha256(key.encode()).hexdigest()[:16]}",
                                     remote_image_rows, (data, p.name, group, self.config))
                units.append((unit, key, group))
        if not units:
            return self.counts
        by_key = {u.key: (key, group) for u, key, group in units}
        left = collections.Counter(key for _, key, _ in units)
        with cluster.connect(client, workers, scheduler) as c:
            for finished in dispatch.dispatch(c, [u for u, _, _ in units]):
                key, group = by_key[finished.key]
                reason = finished.failure or (finished.value if isinstance(finished.value, str) else None)
                if reason is None:
                    self.write(key, images[key].name, finished.value)
                else:
                    self.counts["failed"].append({"image": images[key].name, "methods": list(group),
                                                  "reason": reason})
                self.store.release_claims(key, group)
                left[key] -= 1
                if left[key] == 0:
                    self.counts["computed"] += 1
                    self.step(images[key].name)
        return self.counts
