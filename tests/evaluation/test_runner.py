"""smug.evaluation.runner (``smug evaluate``): per-image rows in SQLite, resumable, re-checked
against direct computations (MNIST MLP: fast, and its (1, 28, 28) input can be cropped)."""

from __future__ import annotations

import io
import json
import sqlite3

import numpy as np
import pytest

from smug.evaluation.runner import Progress, check_methods, evaluate, image_key
from smug.evaluation.store import EvalConfig, EvalStore

CONFIG = EvalConfig(model="mnist-mlp", top_k=3000, window=4, n_thresholds=50, insertion_deletion=True,
                    stopping=True, id_steps=10)


@pytest.fixture(scope="module")
def store_path(digits, tmp_path_factory):
    db = tmp_path_factory.mktemp("db") / "eval.sqlite"
    r = evaluate(digits, ["smug", "smug_base", "ig", "centerbox", "maxbox"], db, CONFIG, progress=False)
    assert r["computed"] == 2 and r["skipped"] == 0
    return db


def test_rows_match_direct_computations(store_path, digits):
    from smug.baselines.attribution import attribute
    from smug.metrics.lsc import LSC
    from smug.metrics.sparsity import sparsity
    from smug.models.zoo import load_model

    model, entry = load_model("mnist-mlp")
    s = EvalStore(store_path)
    rows = {(r["image"], r["method"]): r for r in s.results()}
    images = {i["image"]: i for i in s.images()}
    s.close()
    assert len(rows) == 2 * 5 and len(images) == 2
    for p in digits:
        key = image_key(p, CONFIG)
        x, _ = entry.preprocess.load(p)
        target = int(model.logits(x[None])[0].argmax())
        assert images[key]["target"] == target
        # IG: the stored LSC and sparsity are those of a fresh IG map
        a = attribute(model, x, target, "integrated_gradients")
        r = LSC(n_thresholds=50)(model, x, a.map, target)
        row = rows[(key, "integrated_gradients")]
        assert row["lsc"] == pytest.approx(r.score, abs=1e-6)
        assert json.loads(row["box"]) == r.box.as_list()
        assert row["sparsity"] == pytest.approx(sparsity(a.map))
        # MAXBOX: the whole image, a = 1; CENTERBOX: half of it
        assert rows[(key, "maxbox")]["area"] == 1.0 and rows[(key, "maxbox")]["sparsity"] == 1.0
        assert rows[(key, "centerbox")]["area"] == pytest.approx(0.5, abs=0.02)
        # paper 004 measures of the IG map
        from smug.metrics.alignment import KIS, alignment

        extra = json.loads(row["extra"])
        assert extra["alignment"] == pytest.approx(alignment(a.map, x), abs=1e-6)
        assert extra["kis"] == pytest.approx(KIS()(model, x, a.map, target), abs=1e-6)
        # SMUG: the mask is sparser than SMUG_base's, and the LSC box is re-checked by a forward pass
        sm, base = rows[(key, "smug")], rows[(key, "smug_base")]
        assert 0 < sm["sparsity"] <= base["sparsity"]
        assert json.loads(sm["extra"])["certificate_valid"]
        t, l, b, rr = json.loads(sm["box"])
        from smug.metrics.lsc import Box, crop_resize

        crop = crop_resize(x, Box(t, l, b, rr))
        p_ = np.exp(model.logits(crop[None])[0].astype(np.float64))
        assert sm["confidence"] == pytest.approx(p_[target] / p_.sum(), rel=1e-5)
        for m in ("smug", "integrated_gradients", "centerbox"):
            assert rows[(key, m)]["stop_size"] is not None and 0 <= rows[(key, m)]["deletion_auc"] <= 1
            assert rows[(key, m)]["map_png"][:8] == b"\x89PNG\r\n\x1a\n"


def test_rerun_skips_finished_images_and_adds_new_methods(store_path, digits):
    r = evaluate(digits, ["smug", "ig"], store_path, CONFIG, progress=False)
    assert r["computed"] == 0 and r["skipped"] == 2
    before = {(a, b): c for a, b, c in sqlite3.connect(store_path).execute("SELECT image, method, lsc FROM results")}
    r = evaluate(digits[:1], ["gradient"], store_path, CONFIG, progress=False)
    assert r["computed"] == 1
    after = {(a, b): c for a, b, c in sqlite3.connect(store_path).execute("SELECT image, method, lsc FROM results")}
    assert set(after) - set(before) == {(image_key(digits[0], CONFIG), "gradient")}
    assert all(after[k] == v for k, v in before.items())  # nothing recomputed


def test_images_are_keyed_by_content_not_path(tmp_path, digits):
    """Issue 27: the key is the image's request identity: one photo under two names is one image, and
    another photo written at a path already evaluated is a new one."""
    db = tmp_path / "k.sqlite"
    copy = tmp_path / "copy.png"
    copy.write_bytes(digits[0].read_bytes())
    r = evaluate([digits[0], copy], ["centerbox"], db, CONFIG, progress=False)
    assert (r["computed"], r["skipped"]) == (1, 1)
    copy.write_bytes(digits[1].read_bytes())
    r = evaluate([copy], ["centerbox"], db, CONFIG, progress=False)
    assert (r["computed"], r["skipped"]) == (1, 0)
    s = EvalStore(db)
    assert {row["image"] for row in s.results()} == {image_key(p, CONFIG) for p in digits}
    s.close()


def test_other_settings_are_refused(store_path, digits):
    with pytest.raises(ValueError, match="other settings"):
        evaluate(digits, ["ig"], store_path, EvalConfig(model="mnist-mlp", top_k=10), progress=False)


def test_bad_methods_and_inputs(tmp_path, digits):
    assert check_methods(["ig", "gradcam", "ig", "smug"]) == ["integrated_gradients", "gradcam", "smug"]
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        check_methods(["nope"])
    with pytest.raises(ValueError, match="image not found"):
        evaluate([tmp_path / "missing.png"], ["ig"], tmp_path / "x.sqlite", CONFIG)
    with pytest.raises(ValueError, match="zoo image model"):
        evaluate(digits, ["ig"], tmp_path / "x.sqlite", EvalConfig(model="foo.onnx"))
    assert not (tmp_path / "x.sqlite").exists()


def test_a_failed_first_run_leaves_no_store_and_an_older_store_stays(tmp_path, digits, store_path):
    db = tmp_path / "new.sqlite"
    with pytest.raises(ValueError, match="no Dask scheduler"):  # the store was made, then the farm refused
        evaluate(digits, ["centerbox"], db, CONFIG, progress=False, scheduler="tcp://127.0.0.1:1")
    assert not db.exists() and not (tmp_path / "new.sqlite-journal").exists()
    before = EvalStore(store_path).results()
    with pytest.raises(ValueError, match="no Dask scheduler"):  # a method not yet stored: work to submit
        evaluate(digits, ["gradient"], store_path, CONFIG, progress=False, scheduler="tcp://127.0.0.1:1")
    s = EvalStore(store_path)
    assert s.results() == before and not s.db.execute("SELECT 1 FROM claims").fetchone()
    s.close()


def test_progress_bar_goes_to_its_stream():
    buf = io.StringIO()
    bar = Progress(2, buf)
    bar.step("a.png")
    bar.step("b.png")
    lines = buf.getvalue().splitlines()
    assert len(lines) == 2 and lines[-1].startswith("[" + "#" * 30 + "] 2/2") and lines[-1].endswith("b.png")


def test_uint8_crops_and_older_stores(tmp_path, digits):
    from dataclasses import asdict

    db = tmp_path / "q.sqlite"
    cfg = EvalConfig(model="mnist-mlp", lsc_uint8=True, n_thresholds=20)
    evaluate(digits[:1], ["centerbox"], db, cfg, progress=False)
    row = EvalStore(db).results()[0]
    # re-check: the centre box crop, min-max to 0..255, rounded, back to [0, 1], resized
    from smug.metrics.lsc import Box, crop_resize
    from smug.models.zoo import load_model

    model, entry = load_model("mnist-mlp")
    x, _ = entry.preprocess.load(digits[0])
    t, l, b, r = json.loads(row["box"])
    crop = crop_resize(x, Box(t, l, b, r), quantize=(0.0, 1.0))
    p = np.exp(model.logits(crop[None])[0].astype(np.float64))
    assert row["confidence"] == pytest.approx(p[int(row["target"])] / p.sum(), rel=1e-5)
    # a store written before a setting existed is accepted when the setting is at its default
    old = tmp_path / "old.sqlite"
    s = EvalStore(old)
    stored = asdict(EvalConfig(model="mnist-mlp"))
    del stored["lsc_uint8"]
    s.db.execute("INSERT INTO meta VALUES ('config', ?)", (json.dumps(stored),))
    s.db.commit()
    s.bind(EvalConfig(model="mnist-mlp"))
    with pytest.raises(ValueError, match="lsc_uint8"):
        s.bind(EvalConfig(model="mnist-mlp", lsc_uint8=True))
    s.close()


# ---- two runs on one store, and the farm -----------------------------------------------
def test_claims_keep_two_runs_apart(tmp_path):
    import subprocess
    import sys

    db = tmp_path / "c.sqlite"
    first, second = EvalStore(db), EvalStore(db)
    try:
        assert first.claim("img", ["ig", "gradient"]) == ["ig", "gradient"]
        assert second.claim("img", ["ig", "gradcam"]) == ["gradcam"]  # ig is the first run's
        first.put_result("img", "gradient", {"target": 1})
        first.release_claims("img", ["gradient"])
        assert second.claim("img", ["gradient"]) == []  # done meanwhile
        first.release_claims()
        assert second.claim("img", ["ig"]) == ["ig"]
        gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        with second.db:  # a claim left by a process that died: taken over
            second.db.execute("UPDATE claims SET owner='dead', pid=? WHERE method='ig'", (int(gone.stdout),))
        assert first.claim("img", ["ig"]) == ["ig"]
    finally:
        first.close()
        second.close()


def test_a_claimed_image_is_left_to_the_other_run(tmp_path, digits):
    db = tmp_path / "e.sqlite"
    other = EvalStore(db)
    try:
        other.bind(CONFIG)
        assert other.claim(image_key(digits[0], CONFIG), ["gradient"]) == ["gradient"]
        r = evaluate(digits, ["gradient"], db, CONFIG, progress=False)
        assert r["claimed_elsewhere"] == 1 and r["computed"] == 1
        rows = EvalStore(db).results()
        assert [row["image"] for row in rows] == [image_key(digits[1], CONFIG)]
    finally:
        other.close()


def test_evaluate_on_a_local_cluster_matches_the_plain_run(store_path, digits, tmp_path):
    """The units run as farm tasks on 2 Dask process workers; every row equals the in-process run's."""
    methods = ["smug", "smug_base", "ig", "centerbox", "maxbox"]
    db = tmp_path / "farm.sqlite"
    r = evaluate(digits, methods, db, CONFIG, progress=False, workers=2)
    assert r["computed"] == 2 and r["failed"] == []
    cols = ("image", "method", "target", "lsc", "area", "box", "sparsity", "keeps_class", "map_png",
            "insertion_auc", "deletion_auc", "stop_size")
    plain = {(row["image"], row["method"]): [row[c] for c in cols] for row in EvalStore(store_path).results()
             if row["method"] in check_methods(methods)}
    farm = {(row["image"], row["method"]): [row[c] for c in cols] for row in EvalStore(db).results()}
    assert farm == plain
    assert len(EvalStore(db).images()) == 2
    again = evaluate(digits, methods, db, CONFIG, progress=False, workers=2)  # resumable: nothing left to do
    assert again["computed"] == 0 and again["skipped"] == 2
