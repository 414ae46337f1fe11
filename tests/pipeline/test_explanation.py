"""The one answer type: JSON with a schema version, its inverse, files, notebook display."""

from __future__ import annotations

import json

import numpy as np
import pytest

from smug.pipeline import SCHEMA_VERSION, Explanation, explain


@pytest.fixture(scope="module")
def network():
    return explain(None, "mnist-mlp", method="whole-network", window=2, timeout=30)


def test_json_round_trip_and_version(network):
    e = network
    doc = json.loads(json.dumps(e.to_json()))
    assert doc["schema_version"] == SCHEMA_VERSION and doc["keeps_class"] is True
    assert doc["objective"] == len(doc["mask_blocks"]) == int(e.mask.sum())
    arrays = {k: getattr(e.image, k) for k in ("picture", "saliency", "mask", "pixel_mask", "base_mask",
                                               "base_saliency")}
    back = Explanation.from_json(doc, arrays)
    assert back.to_json() == doc and np.array_equal(back.mask, e.mask)
    with pytest.raises(ValueError, match="schema version"):
        Explanation.from_json({**doc, "schema_version": SCHEMA_VERSION + 1})


def test_files_and_notebook_display(network, tmp_path):
    names = {p.name for p in network.save(tmp_path)}
    assert names == {"result.json", "mask.png", "saliency.png", "overlay.png", "figure.png"}
    assert json.loads((tmp_path / "result.json").read_text()) == network.to_json()
    page = network._repr_html_()
    assert "data:image/png;base64," in page and "keeps the decision" in page
    assert "whole-network on mnist-mlp: optimal" in repr(network)


def test_a_baseline_map_has_no_mask_and_says_so():
    e = explain(None, "mnist-mlp", method="ig")  # an alias of integrated_gradients
    assert e.method == "integrated_gradients" and e.status == "map" and e.objective is None
    assert e.keeps_class is None and e.certificate["valid"] is None and e.saliency.shape == (28, 28)


def test_api_takes_a_model_proto_and_a_batch(tmp_path):
    from smug.models.zoo import load_model
    from smug.pipeline import ExplainRequest
    from smug.pipeline.inputs import load_image

    proto = load_model("mnist-mlp")[0].proto
    digit = load_image(ExplainRequest.build(None, "mnist-mlp")).x
    batch = np.stack([digit, digit[:, ::-1]])
    es = explain(batch, proto, method="whole-network", window=4, timeout=30, out_dir=tmp_path)
    assert len(es) == 2 and all(e.status == "optimal" and e.keeps_class for e in es)
    assert (tmp_path / "1" / "result.json").is_file()
    one = explain(digit[None], "mnist-mlp", method="whole-network", window=4, timeout=30)  # a batch of one
    assert one.objective == es[0].objective
