"""``smug evaluate``: score explanation methods on images, resumably.

For every image and method: the method's map, its LSC with the best box (paper 003
Eq. 5, :mod:`smug.metrics.lsc`), its sparsity, the method's time, paper 004's input
alignment and KIS of the map (in the row's ``extra`` JSON) and, on request,
paper 000's stopping-criterion size and time and the insertion/deletion AUCs.  Every
finished (image, method) pair is committed at once to an embedded SQLite file, so a
re-run (same file, same settings) skips what is done; new methods or images are
added to it.  Progress goes to stderr.

Method names: ``smug`` and ``smug_base`` (one SMUG run per image serves both),
``optbox`` (paper 003's brute-force box, ~1,500-3,000 crops per image), and every
registered baseline (:func:`smug.baselines.attribution.methods`; aliases ``ig``,
``gbp``).
"""

from __future__ import annotations

import io
import json
import sqlite3
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ALIASES = {"ig": "integrated_gradients", "gbp": "guided_backprop", "grad_cam": "gradcam"}
SPECIAL = ("smug", "smug_base", "optbox")


@dataclass(frozen=True)
class EvalConfig:
    """Settings that change the numbers; a store keeps the one it was made with."""

    model: str = "efficientnet-lite0"
    top_k: int = 3000
    gamma: float = 0.0
    window: int = 4
    timeout: float = 60.0
    n_thresholds: int = 100
    area_floor: float = 0.05
    optbox_cells: int = 10
    stopping: bool = False
    stop_window: int = 4
    insertion_deletion: bool = False
    id_steps: int = 50
    lsc_uint8: bool = False  # the reference code's per-crop min-max + uint8 rounding (see metrics/lsc.py)


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


# ---- the store -------------------------------------------------------------------
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images (
    image TEXT PRIMARY KEY, name TEXT, target INTEGER, target_name TEXT, confidence REAL, picture BLOB);
CREATE TABLE IF NOT EXISTS results (
    image TEXT NOT NULL, method TEXT NOT NULL, target INTEGER, lsc REAL, area REAL, confidence REAL,
    box TEXT, threshold REAL, boxes INTEGER, sparsity REAL, seconds REAL,
    stop_size INTEGER, stop_fraction REAL, stop_seconds REAL, insertion_auc REAL, deletion_auc REAL,
    extra TEXT, map_png BLOB, PRIMARY KEY (image, method));
CREATE TABLE IF NOT EXISTS experiments (
    experiment TEXT NOT NULL, image TEXT NOT NULL, key TEXT NOT NULL, value REAL,
    PRIMARY KEY (experiment, image, key));
"""


class Store:
    """The SQLite file of one evaluation (one config; many images and methods)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.path), timeout=60.0)  # other writers (resumed runs) may hold the lock
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def config(self) -> dict | None:
        row = self.db.execute("SELECT value FROM meta WHERE key='config'").fetchone()
        return None if row is None else json.loads(row[0])

    def bind(self, config: EvalConfig) -> None:
        """Record the config, or check that it is the one the store was made with."""
        mine = asdict(config)
        have = self.config()
        if have is None:
            with self.db:
                self.db.execute("INSERT INTO meta VALUES ('config', ?)", (json.dumps(mine),))
            return
        defaults = asdict(EvalConfig())
        have = {**{k: v for k, v in defaults.items() if k not in have}, **have}  # stores from older versions
        if have != mine:
            diff = {k: (have.get(k), v) for k, v in mine.items() if have.get(k) != v}
            raise ValueError(f"{self.path} was made with other settings {diff} (stored, given): use another --db")

    def done(self, image: str) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT method FROM results WHERE image=?", (image,))}

    def has_image(self, image: str) -> bool:
        return self.db.execute("SELECT 1 FROM images WHERE image=?", (image,)).fetchone() is not None

    def put_image(self, image: str, name: str, target: int, target_name: str, confidence: float, picture: bytes):
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO images VALUES (?,?,?,?,?,?)",
                            (image, name, target, target_name, confidence, picture))

    def put_result(self, image: str, method: str, row: dict) -> None:
        cols = ["target", "lsc", "area", "confidence", "box", "threshold", "boxes", "sparsity", "seconds",
                "stop_size", "stop_fraction", "stop_seconds", "insertion_auc", "deletion_auc", "extra", "map_png"]
        with self.db:
            self.db.execute(
                f"INSERT OR REPLACE INTO results (image, method, {', '.join(cols)}) "
                f"VALUES ({', '.join('?' * (len(cols) + 2))})",
                [image, method] + [row.get(c) for c in cols])

    def put_experiment(self, experiment: str, image: str, values: dict[str, float]) -> None:
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO experiments VALUES (?,?,?,?)",
                                [(experiment, image, k, float(v)) for k, v in values.items()])

    def experiment(self, experiment: str) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for image, key, value in self.db.execute(
                "SELECT image, key, value FROM experiments WHERE experiment=? ORDER BY image", (experiment,)):
            out.setdefault(image, {})[key] = value
        return out

    def images(self) -> list[dict]:
        cur = self.db.execute("SELECT image, name, target, target_name, confidence, picture FROM images ORDER BY name")
        return [dict(zip(("image", "name", "target", "target_name", "confidence", "picture"), r)) for r in cur]

    def results(self) -> list[dict]:
        cur = self.db.execute("SELECT * FROM results ORDER BY image, method")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur]


# ---- one image ------------------------------------------------------------------
def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


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
        logits = self.model.logits(x[None])[0]
        p = np.exp(logits - logits.max())
        p /= p.sum()
        t = int(p.argmax())
        return x, {"target": t, "target_name": self.names[t], "confidence": float(p[t]), "picture": _png(picture)}

    def maps(self, path: Path, x: np.ndarray, target: int,
             methods: list[str]) -> dict[str, tuple[np.ndarray, float, dict]]:
        """method -> (map (H, W), seconds, extra info) for the methods asked."""
        from smug.baselines.attribution import attribute
        from smug.clients.api import explain

        c = self.config
        out: dict[str, tuple[np.ndarray, float, dict]] = {}
        if "smug" in methods or "smug_base" in methods:
            e = explain(str(path), model=c.model, top_k=c.top_k, gamma=c.gamma, window=c.window, timeout=c.timeout,
                        target=target)
            info = {"status": e.status, "blocks": e.objective, "base_blocks": int(e.base_mask.sum()),
                    "certificate_valid": bool(e.certificate.get("valid")), "timings": e.timings}
            out["smug"] = (np.asarray(e.saliency, np.float64), float(e.timings["total"]), info)
            out["smug_base"] = (np.asarray(e.base_saliency, np.float64), float(e.timings["total"]), info)
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
        from smug.clients.compare import map_picture
        from smug.metrics.alignment import alignment
        from smug.metrics.sparsity import sparsity

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
                   map_png=_png(map_picture(saliency, sparse=method in ("smug", "smug_base"))))
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


def evaluate(images: list[str | Path], methods: list[str], db: str | Path, config: EvalConfig | None = None,
             progress: bool = True) -> dict:
    """Evaluate ``methods`` on ``images`` into the store ``db``; returns counts."""
    config = config or EvalConfig()
    methods = check_methods(methods)
    paths = [Path(p) for p in images]
    for p in paths:
        if not p.is_file():
            raise ValueError(f"image not found: {p}")
    from smug.models.zoo import ZOO

    if config.model not in ZOO:
        raise ValueError(f"smug evaluate needs a zoo image model (its preprocessing reads the files): {sorted(ZOO)}")
    store = Store(db)
    try:
        store.bind(config)
        ev = None
        bar = Progress(len(paths)) if progress else None
        computed = skipped = 0
        for p in paths:
            key = str(p.resolve())
            todo = [m for m in methods if m not in store.done(key)]
            if todo:
                ev = ev or Evaluator(config)
                x, rec = ev.image_record(p)
                if not store.has_image(key):
                    store.put_image(key, p.name, rec["target"], rec["target_name"], rec["confidence"], rec["picture"])
                # smug and smug_base come from one run: redo both if either is missing
                if "smug" in todo or "smug_base" in todo:
                    todo = [m for m in methods if m in ("smug", "smug_base")] + \
                           [m for m in todo if m not in ("smug", "smug_base")]
                for m, (saliency, seconds, extra) in ev.maps(p, x, rec["target"], todo).items():
                    store.put_result(key, m, ev.row(x, rec["target"], m, saliency, seconds, extra))
                computed += 1
            else:
                skipped += 1
            if bar:
                bar.step(p.name + ("" if todo else " (done before)"))
        return {"db": str(store.path), "images": len(paths), "computed": computed, "skipped": skipped,
                "methods": methods}
    finally:
        store.close()


# ---- command line ------------------------------------------------------------------
def add_commands(sub) -> None:
    """The ``evaluate`` and ``report`` subcommands of ``smug``."""
    ev = sub.add_parser("evaluate", help="score methods on images (LSC, Win%%, sparsity, ...), resumable")
    ev.add_argument("images", nargs="+", help="image files")
    ev.add_argument("--model", default="efficientnet-lite0", help="zoo image model")
    ev.add_argument("--methods", default="smug,smug_base,ig,gradcam,centerbox,maxbox",
                    help="comma-separated: smug, smug_base, optbox and any baseline name (ig, gradcam, ...)")
    ev.add_argument("--db", default="smug-eval.sqlite", help="the SQLite store (re-runs skip finished images)")
    ev.add_argument("--top-k", type=int, default=3000)
    ev.add_argument("--gamma", type=float, default=0.0)
    ev.add_argument("--window", type=int, default=4)
    ev.add_argument("--timeout", type=float, default=60.0, help="SMUG solver time limit per image")
    ev.add_argument("--thresholds", type=int, default=100, help="LSC: thresholds swept per map")
    ev.add_argument("--stopping", action="store_true", help="also paper 000's stopping criterion (size, time)")
    ev.add_argument("--insertion-deletion", action="store_true", help="also insertion/deletion AUCs")
    ev.add_argument("--lsc-uint8", action="store_true",
                    help="LSC crops min-max normalised and rounded to uint8 first, as the reference code does")
    ev.add_argument("--quiet", action="store_true", help="no progress bar")
    rp = sub.add_parser("report", help="HTML page (tables and pictures) from a smug evaluate store")
    rp.add_argument("--db", default="smug-eval.sqlite")
    rp.add_argument("--out", default="smug-report.html")
    rp.add_argument("--methods", default=None, help="comma-separated subset and order (default: all in the store)")
    rp.add_argument("--max-images", type=int, default=24, help="image rows shown")


def run_command(a) -> int:
    if a.command == "report":
        from smug.clients.report import write_report

        methods = check_methods(a.methods.split(",")) if a.methods else None
        out = write_report(a.db, a.out, methods, a.max_images)
        print(json.dumps({"out": str(out)}))
        return 0
    for p in a.images:
        if not Path(p).is_file():
            raise ValueError(f"image not found: {p}")
    if a.top_k < 1 or a.window < 1 or a.thresholds < 2 or not 0 <= a.gamma < 1:
        raise ValueError("need --top-k >= 1, --window >= 1, --thresholds >= 2 and 0 <= --gamma < 1")
    config = EvalConfig(model=a.model, top_k=a.top_k, gamma=a.gamma, window=a.window, timeout=a.timeout,
                        n_thresholds=a.thresholds, stopping=a.stopping, insertion_deletion=a.insertion_deletion,
                        lsc_uint8=a.lsc_uint8)
    result = evaluate(a.images, a.methods.split(","), a.db, config, progress=not a.quiet)
    print(json.dumps(result))
    return 0
