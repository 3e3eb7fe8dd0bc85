from PIL import Image

from cirlab.synth.preview import attribute_rows, write_attribute_sheet, write_family_sheet, write_triplet_sheet


def test_triplet_and_family_sheets(tiny_synth, tmp_path):
    root, _ = tiny_synth
    path = write_triplet_sheet(root, tmp_path / "triplets.png", count=3, zoom=2)
    with Image.open(path) as image:
        assert image.height == 3 * (48 * 2 + 16)
    path = write_family_sheet(root, tmp_path / "families.png", families=2)
    with Image.open(path) as image:
        assert image.width > 0 and image.height > 0
    assert path.stat().st_size < 100_000


def test_attribute_sheet_has_one_row_per_attribute(tmp_path):
    rows = attribute_rows()
    assert [title for title, _ in rows] == ["category", "colour", "shade", "pattern", "sleeves", "length", "neckline"]
    for title, cells in rows[1:]:
        base = cells[0][1]
        # within a row the garments differ only in that row's attribute (and category, where two are shown)
        for _, garment in cells:
            if garment.category == base.category:
                assert set(base.differences(garment)) <= {title, "colour", "shade"}
    path = write_attribute_sheet(tmp_path / "attributes.png", tile=48)
    assert path.stat().st_size < 100_000
