"""Image files served by id: only files whose real path lies inside the data set's images folder."""

import logging
import shutil

import pytest
from fastapi.testclient import TestClient

from cirlab.serve import create_app
from cirlab.serve.images import ImageFiles


@pytest.fixture
def linked_root(tmp_path, data_root):
    """A copy of the gallery's data set where D000 links out of images/, D001 links inside it, D002 dangles."""
    root = tmp_path / "data"
    shutil.copytree(data_root, root)
    outside = tmp_path / "outside" / "secret.png"
    outside.parent.mkdir()
    outside.write_bytes((data_root / "images" / "S000.png").read_bytes())
    images = root / "images"
    (images / "D000.png").unlink()
    (images / "D000.png").symlink_to(outside)
    (images / "D001.png").unlink()
    (images / "D001.png").symlink_to("D003.png")
    (images / "D002.png").unlink()
    (images / "D002.png").symlink_to(tmp_path / "outside" / "gone.png")
    return root


def test_a_symlink_out_of_the_images_folder_is_not_served(linked_root, engine, caplog):
    with TestClient(create_app(engine, linked_root)) as client, caplog.at_level(logging.WARNING, "cirlab.serve"):
        refused = client.get("/images/D000")
        assert refused.status_code == 404 and refused.json()["detail"] == "no image file for id 'D000'"
        assert b"PNG" not in refused.content
        inside = client.get("/images/D001")  # a link that stays inside the folder is an ordinary file
        assert inside.status_code == 200
        assert inside.content == (linked_root / "images" / "D003.png").read_bytes()
        assert client.get("/images/D002").status_code == 404
        assert client.get("/images/D000").status_code == 404
        assert client.get("/images/D004").status_code == 200
    warnings = [r.getMessage() for r in caplog.records if "links outside" in r.getMessage()]
    assert len(warnings) == 1 and "D000.png" in warnings[0]  # logged once, naming the file


def test_a_symlink_swapped_in_after_start_up_is_not_served(linked_root, tmp_path):
    files = ImageFiles(linked_root, ["D003", "D004"])
    assert files.path("D004") == (linked_root / "images" / "D004.png").resolve()
    (linked_root / "images" / "D004.png").unlink()
    (linked_root / "images" / "D004.png").symlink_to(tmp_path / "outside" / "secret.png")
    assert files.path("D004") is None  # checked at each request, not only when the folder is listed


def test_an_images_folder_that_is_itself_a_link_is_served(tmp_path, data_root):
    root = tmp_path / "linked"
    root.mkdir()
    for entry in data_root.iterdir():
        (root / entry.name).symlink_to(entry)  # images/ and the annotation folders
    files = ImageFiles(root, ["D000"])
    assert files.path("D000") == (data_root / "images" / "D000.png").resolve()
