import json
import shutil

from cirlab.data import CATEGORIES, FashionIQ, validation_inputs
from tests.builders import make_fashioniq, write_json


def test_protocol_inputs_on_a_fixture(tmp_path):
    inputs = validation_inputs(FashionIQ(make_fashioniq(tmp_path)), "dress")
    assert inputs.gallery == [f"Dval{n}" for n in range(6)]
    assert len(inputs.queries) == 5 and inputs.outside_gallery == []


def test_queries_outside_the_gallery_are_reported(tmp_path):
    root = make_fashioniq(tmp_path)
    path = root / "image_splits" / "split.dress.val.json"
    write_json(path, json.loads(path.read_text())[:-1])  # Dval5 leaves the gallery but keeps its file
    inputs = validation_inputs(FashionIQ(root), "dress")
    assert [t.target for t in inputs.outside_gallery] == ["Dval5"]
    assert len(inputs.queries) == 5


def test_protocol_on_real_val_files(real_fashioniq, tmp_path):
    root = tmp_path / "fiq"
    shutil.copytree(real_fashioniq / "captions", root / "captions")
    shutil.copytree(real_fashioniq / "image_splits", root / "image_splits")
    (root / "images").mkdir()
    dataset = FashionIQ(root)
    for category in CATEGORIES:
        for image_id in dataset.image_ids(category, "val"):
            (root / "images" / f"{image_id}.jpg").write_bytes(b"x")
    sizes = {}
    for category in CATEGORIES:
        inputs = validation_inputs(dataset, category)
        assert inputs.outside_gallery == []
        sizes[category] = (len(inputs.gallery), len(inputs.queries))
    assert sizes == {"dress": (3817, 2017), "shirt": (6346, 2038), "toptee": (5373, 1961)}
