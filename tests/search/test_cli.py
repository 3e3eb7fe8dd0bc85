"""`cirlab index` and `cirlab search` end to end, through the command-line entry point."""

import json

import numpy as np

from cirlab.cli import main
from cirlab.combiners import build_combiner, save_combiner
from cirlab.search import GalleryIndex, SearchEngine


def test_index_then_search_by_id(tmp_path, capsys, random_cache, gallery):
    out = tmp_path / "index"
    assert main(["index", "--features", str(random_cache), "--out", str(out), "--category", "dress,shirt"]) == 0
    printed = capsys.readouterr().out
    assert f"index: {out} (flat, 16 images of dim 64, split val, categories dress, shirt)" in printed
    assert GalleryIndex.load(out).categories() == ["dress", "shirt"]

    save_combiner(build_combiner("sum", 64), tmp_path / "run" / "best")
    reference = gallery["dress"][1]
    assert main(["search", "--index", str(out), "--checkpoint", str(tmp_path / "run"), "--reference", reference,
                 "--text", "is blue", "-k", "4", "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ["rank", "id", "score", "category"]
    expected = SearchEngine.load(out, combiner_name="sum", device="cpu").search(reference, "is blue", k=4)
    assert [line.split()[1] for line in lines[1:]] == [h.id for h in expected]
    assert [float(line.split()[2]) for line in lines[1:]] == [round(h.score, 4) for h in expected]
    assert [line.split()[0] for line in lines[1:]] == ["1", "2", "3", "4"]


def test_search_with_an_image_file_as_json(capsys, image_gallery, gallery):
    root, _, index = image_gallery
    image_id = gallery["shirt"][2]
    assert main(["search", "--index", str(index), "--combiner", "sum", "--reference",
                 str(root / "images" / f"{image_id}.png"), "--text", "is brighter", "-k", "3",
                 "--category", "shirt", "--json", "--device", "cpu"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["rank"] for r in results] == [1, 2, 3]
    assert all(r["category"] == "shirt" for r in results)
    by_id = SearchEngine.load(index, combiner_name="sum", device="cpu").search(
        image_id, "is brighter", k=3, category="shirt", exclude_reference=False)  # a file has no id to exclude
    assert [r["id"] for r in results] == [h.id for h in by_id]
    np.testing.assert_allclose([r["score"] for r in results], [h.score for h in by_id], atol=1e-4)


def test_ivf_index_prints_its_recall(tmp_path, capsys, random_cache):
    assert main(["index", "--features", str(random_cache), "--out", str(tmp_path / "ivf"), "--kind", "ivf",
                 "--nlist", "2", "--nprobe", "2"]) == 0
    assert "nlist 2, nprobe 2: recall@10 vs exact 1.0000 over 22 queries" in capsys.readouterr().out


def test_errors_are_one_line_with_status_2(tmp_path, capsys, flat_index, random_cache):
    assert main(["index", "--features", str(tmp_path / "none"), "--out", str(tmp_path / "i")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"cirlab: error: {tmp_path / 'none'}: feature cache folder not found"
    assert main(["search", "--index", str(flat_index), "--combiner", "sum", "--reference", "missing-id",
                 "--text", "x", "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cirlab: error: reference: 'missing-id' is neither an image id") and "\n" not in err
    assert main(["search", "--index", str(flat_index), "--combiner", "combiner", "--reference", "D000",
                 "--text", "x", "--device", "cpu"]) == 2
    assert "combiner 'combiner' has trainable parameters" in capsys.readouterr().err
    bad_image = tmp_path / "broken.png"
    bad_image.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    assert main(["search", "--index", str(flat_index), "--combiner", "sum", "--reference", str(bad_image),
                 "--text", "x", "--device", "cpu"]) == 2
    assert "cannot decode image" in capsys.readouterr().err
