"""The HTTP API through FastAPI's TestClient: good requests, and every kind of bad one."""

import io
import struct
import zlib

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from cirlab.data.captions import eval_caption
from cirlab.serve import ServeLimits, create_app
from cirlab.serve.batching import BatchSettings

from .conftest import val_triplets


def png_bytes(size=(40, 48), seed=0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels but carries almost no data (a bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))


def good_search(client, reference_id, text="is brighter", **fields):
    return client.post("/api/search", data={"reference_id": reference_id, "text": text, **fields})


def assert_client_error(response, status, field, fragment):
    assert response.status_code == status, response.text
    body = response.json()
    assert body["field"] == field
    assert fragment in body["detail"]
    assert "\n" not in body["detail"]


# ------------------------------------------------------------------ good requests
def test_health_and_info(client, engine):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["gallery_size"] == 22
    info = client.get("/api/info").json()
    assert info["categories"] == ["dress", "shirt", "toptee"]
    assert info["gallery_size"] == 22 and info["dim"] == 64 and info["index_kind"] == "flat"
    assert info["model"] == "cirlab-vit-tiny" and info["images_available"] is True
    assert info["limits"]["max_k"] == 200 and info["limits"]["max_text_chars"] == 500
    assert info["validation_queries"] == 21


def test_gallery_pages_cover_the_gallery_once(client, engine):
    seen = []
    for offset in range(0, 30, 5):
        page = client.get("/api/gallery", params={"offset": offset, "limit": 5}).json()
        assert page["total"] == 22 and page["offset"] == offset and page["limit"] == 5
        seen.extend(item["id"] for item in page["items"])
    assert seen == engine.index.ids
    item = client.get("/api/gallery", params={"limit": 1}).json()["items"][0]
    assert item == {"id": "D000", "category": "dress", "categories": ["dress"], "image_url": "/images/D000"}


def test_gallery_category_filter_includes_shared_images(client, gallery):
    page = client.get("/api/gallery", params={"category": "toptee", "limit": 100}).json()
    assert page["total"] == 8 and page["category"] == "toptee"
    assert sorted(item["id"] for item in page["items"]) == sorted(gallery["toptee"])
    assert {item["category"] for item in page["items"]} == {"toptee"}
    shared = next(item for item in page["items"] if item["id"] == gallery["shirt"][-1])
    assert shared["categories"] == ["shirt", "toptee"]
    assert client.get("/api/gallery", params={"category": ""}).json()["total"] == 22  # empty = all


def test_image_files_are_served_by_id(client, data_root):
    response = client.get("/images/S003")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.content == (data_root / "images" / "S003.png").read_bytes()


def test_search_by_id_returns_the_engines_ranking(client, engine):
    response = good_search(client, "D002", text="  is brighter  ", k="4", category="shirt")
    assert response.status_code == 200
    body = response.json()
    assert body["query"] == {"reference_id": "D002", "uploaded": False, "text": "is brighter", "category": "shirt",
                             "k": 4}
    expected = engine.search("D002", "is brighter", k=4, category="shirt")
    assert [r["id"] for r in body["results"]] == [h.id for h in expected]
    assert [r["score"] for r in body["results"]] == pytest.approx([h.score for h in expected])
    assert [r["rank"] for r in body["results"]] == [1, 2, 3, 4]
    assert all(r["image_url"] == f"/images/{r['id']}" and r["category"] == "shirt" for r in body["results"])
    assert len(good_search(client, "D002").json()["results"]) == 10  # the default k


def test_search_by_upload_equals_search_by_the_same_images_id(client, engine, data_root):
    upload = (data_root / "images" / "T002.png").read_bytes()
    response = client.post("/api/search", data={"text": "has a pattern", "k": "5"},
                           files={"reference_image": ("mine.png", upload, "image/png")})
    assert response.status_code == 200
    body = response.json()
    assert body["query"]["uploaded"] is True and body["query"]["reference_id"] is None
    by_id = engine.search("T002", "has a pattern", k=5, exclude_reference=False)
    assert [r["id"] for r in body["results"]] == [h.id for h in by_id]
    assert [r["score"] for r in body["results"]] == pytest.approx([h.score for h in by_id], abs=1e-4)


def test_page_static_files_and_docs(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for element in ('data-testid="gallery"', 'data-testid="query-text"', 'data-testid="search-button"',
                    'data-testid="results"', 'data-testid="reference-upload"', 'data-testid="gallery-category"',
                    'data-testid="validation-query"'):
        assert element in page.text
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/style.css").status_code == 200
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/health", "/api/info", "/api/gallery", "/api/validation-queries", "/images/{image_id}",
            "/api/search"} <= set(paths)
    form = paths["/api/search"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert form is not None


def test_validation_queries_are_the_caches_val_triplets_with_a_target_in_the_gallery(client, gallery):
    expected = [{"category": category, "reference_id": reference, "caption": eval_caption(captions),
                 "target_id": target, "reference_url": f"/images/{reference}", "target_url": f"/images/{target}"}
                for category, reference, target, captions in val_triplets(gallery)]
    everything = client.get("/api/validation-queries", params={"limit": 100}).json()
    assert everything["total"] == 21 and everything["category"] is None
    assert everything["items"] == expected  # no train triplet, withheld target or target outside its category
    assert expected[0] == {"category": "dress", "reference_id": "D000", "caption": "Is brighter and has a pattern",
                           "target_id": "D001", "reference_url": "/images/D000", "target_url": "/images/D001"}
    toptee = client.get("/api/validation-queries", params={"category": "toptee", "limit": 100}).json()
    assert toptee["total"] == 7 and toptee["items"] == [q for q in expected if q["category"] == "toptee"]
    assert toptee["items"][-1]["target_id"] == gallery["shirt"][-1]  # an image of two categories is in both
    page = client.get("/api/validation-queries", params={"offset": 5, "limit": 4}).json()
    assert page["items"] == expected[5:9] and page["offset"] == 5 and page["limit"] == 4


def test_without_triplets_there_are_no_validation_queries(engine_without_triplets, data_root):
    with TestClient(create_app(engine_without_triplets, data_root)) as bare:
        assert bare.get("/api/info").json()["validation_queries"] == 0
        assert bare.get("/api/validation-queries").json() == {"total": 0, "offset": 0, "limit": 24,
                                                              "category": None, "items": []}
        assert bare.get("/api/validation-queries", params={"category": "dress"}).json()["items"] == []


def test_bad_validation_query_paging(client):
    assert_client_error(client.get("/api/validation-queries", params={"category": "coat"}), 400, "category",
                        "unknown category 'coat'")
    assert_client_error(client.get("/api/validation-queries", params={"limit": 101}), 422, "limit",
                        "less than or equal to 100")
    assert client.get("/api/validation-queries", params={"offset": -1}).status_code == 422
    assert client.get("/api/validation-queries", params={"offset": 500}).json()["items"] == []


def test_favicon_is_served(client):
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200
    assert icon.headers["content-type"].startswith("image/svg+xml")
    assert icon.content.startswith(b"<svg") and b"</svg>" in icon.content
    assert 'rel="icon" href="/favicon.ico"' in client.get("/").text


# ------------------------------------------------------------------- bad requests
TRAVERSALS = [
    "../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/etc/passwd",
    "..\\..\\windows\\win.ini", "..", "....//....//etc/passwd", "D000/../../etc/passwd", "%252e%252e%252f",
    "D000\x00.png", "C:\\Windows\\win.ini", "~/.ssh/id_rsa", "a" * 300,
]


@pytest.mark.parametrize("image_id", TRAVERSALS)
def test_path_traversal_in_a_reference_id_is_refused(client, image_id):
    assert_client_error(good_search(client, image_id), 400, "reference_id", "not a valid image id")
    assert good_search(client, "D001").status_code == 200


@pytest.mark.parametrize("raw_path", [
    "/images/..%2F..%2Fetc%2Fpasswd", "/images/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/images/%2Fetc%2Fpasswd",
    "/images/..%5C..%5Cwindows%5Cwin.ini", "/images/%252e%252e%252fetc%252fpasswd",
    "/images/.hidden", "/images/D000%00", "/images/..%252f..%252fetc%252fpasswd",
])
def test_path_traversal_in_an_image_url_is_refused(client, raw_path):
    response = client.get(raw_path)
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"].startswith("application/json")
    assert "root:" not in response.text
    assert client.get("/images/D000").status_code == 200


def test_unknown_ids_are_404(client, engine):
    assert_client_error(client.get("/images/B000NOSUCH"), 404, "image_id", "no image file for id 'B000NOSUCH'")
    assert_client_error(good_search(client, "B000NOSUCH"), 404, "reference_id", "'B000NOSUCH' is not in the gallery")


@pytest.mark.parametrize(("fields", "status", "field", "fragment"), [
    ({"text": ""}, 400, "text", "empty"),
    ({"text": "   \n "}, 400, "text", "empty"),
    ({"text": "x" * 501}, 400, "text", "501 characters, the limit is 500"),
    ({"k": "0"}, 400, "k", "between 1 and 200, got 0"),
    ({"k": "-5"}, 400, "k", "between 1 and 200, got -5"),
    ({"k": "201"}, 400, "k", "between 1 and 200, got 201"),
    ({"k": "100000000000000000000"}, 400, "k", "between 1 and 200"),
    ({"k": "ten"}, 422, "k", "k: Input should be a valid integer"),
    ({"category": "coat"}, 400, "category", "unknown category 'coat'; the gallery has dress, shirt, toptee"),
])
def test_bad_search_fields(client, fields, status, field, fragment):
    data = {"reference_id": "D000", "text": "is red", **fields}
    assert_client_error(client.post("/api/search", data=data), status, field, fragment)
    assert good_search(client, "D000").status_code == 200


def test_text_at_the_limit_is_accepted(client):
    assert good_search(client, "D000", text="y" * 500).status_code == 200


def test_reference_must_be_exactly_one_of_id_and_upload(client):
    assert_client_error(client.post("/api/search", data={"text": "is red"}), 400, "reference", "exactly one")
    both = client.post("/api/search", data={"text": "is red", "reference_id": "D000"},
                       files={"reference_image": ("a.png", png_bytes(), "image/png")})
    assert_client_error(both, 400, "reference", "exactly one")


def upload(client, content: bytes, name="upload.png", kind="image/png", text="is red"):
    return client.post("/api/search", data={"text": text}, files={"reference_image": (name, content, kind)})


@pytest.mark.parametrize(("content", "fragment"), [
    (b"", "the uploaded file is empty"),
    (b"hello, I am not an image", "not an image in an accepted format"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", "not an image in an accepted format"),
    (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "not an image in an accepted format"),
    (png_bytes()[:300], "cannot decode the image"),
    (png_header_only(100_000, 100_000), "exceeds the decompression-bomb limit"),
    (png_header_only(5_000, 5_000), "5000x5000 pixels, over the limit of 16000000 pixels"),
])
def test_bad_uploads_are_400(client, content, fragment):
    assert_client_error(upload(client, content), 400, "reference_image", fragment)
    assert upload(client, png_bytes(seed=3)).status_code == 200


@pytest.fixture(scope="module")
def small_client(engine, data_root):
    """An app with tiny upload limits: 3000 bytes, 2500 pixels."""
    limits = ServeLimits(max_upload_bytes=3000, max_upload_pixels=2500, form_overhead_bytes=1000)
    with TestClient(create_app(engine, data_root, limits=limits)) as test_client:
        yield test_client


def test_uploads_over_the_byte_limit_are_413(small_client):
    small_ok = png_bytes(size=(8, 8))
    assert upload(small_client, small_ok).status_code == 200
    too_big = small_ok + b"\x00" * (3001 - len(small_ok))  # a valid PNG with trailing bytes, 3001 bytes
    assert_client_error(upload(small_client, too_big), 413, "reference_image", "larger than the limit of 3000 bytes")
    huge = png_bytes(size=(400, 400))  # far over the request limit: refused before parsing
    assert_client_error(upload(small_client, huge), 413, "body", "the limit is 4000 bytes")
    assert upload(small_client, small_ok).status_code == 200


def test_chunked_bodies_over_the_limit_are_413(small_client):
    def chunks():
        for _ in range(10):
            yield b"x" * 1000

    response = small_client.post("/api/search", content=chunks(),
                                 headers={"content-type": "multipart/form-data; boundary=zzz"})
    assert_client_error(response, 413, "body", "more than 4000 bytes")
    assert upload(small_client, png_bytes(size=(8, 8))).status_code == 200


def solid_png(size) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_uploads_over_the_pixel_limit_are_400(small_client):
    assert_client_error(upload(small_client, solid_png((60, 50))), 400, "reference_image",
                        "60x50 pixels, over the limit of 2500 pixels")
    assert upload(small_client, solid_png((50, 50))).status_code == 200


def test_bad_gallery_paging(client):
    assert client.get("/api/gallery", params={"offset": -1}).status_code == 422
    assert client.get("/api/gallery", params={"limit": 0}).status_code == 422
    assert_client_error(client.get("/api/gallery", params={"limit": 101}), 422, "limit", "less than or equal to 100")
    assert_client_error(client.get("/api/gallery", params={"category": "../x"}), 400, "category", "unknown category")
    assert client.get("/api/gallery", params={"offset": 1000}).json()["items"] == []


def test_images_without_a_data_root_are_404(engine):
    engine.index.manifest.data_root, saved = None, engine.index.manifest.data_root
    try:
        with TestClient(create_app(engine, None)) as no_images:
            assert no_images.get("/api/info").json()["images_available"] is False
            assert no_images.get("/images/D000").status_code == 404
            assert good_search(no_images, "D000").status_code == 200
    finally:
        engine.index.manifest.data_root = saved


# ------------------------------------------------------------ what the body is made of
@pytest.mark.parametrize(("kwargs", "got"), [
    ({"json": {"reference_id": "D000", "text": "is red"}}, "Content-Type 'application/json'"),
    ({"content": b"reference_id=D000&text=is+red", "headers": {"content-type": "text/plain"}},
     "Content-Type 'text/plain'"),
    ({}, "no Content-Type"),
])
def test_a_body_that_is_not_a_form_is_415_saying_what_the_endpoint_expects(client, kwargs, got):
    response = client.post("/api/search", **kwargs)
    assert_client_error(response, 415, "content-type", "expects multipart/form-data (or "
                                                       "application/x-www-form-urlencoded) with the fields text, "
                                                       "reference_id or reference_image, category, k; got " + got)


@pytest.mark.parametrize("text", [b"caf\xe9", b"\xff\xfe", b"is red \xc3", b"\xed\xa0\x80 surrogate"])
def test_a_multipart_text_field_that_is_not_utf8_is_400(client, text):
    response = client.post("/api/search", files={"reference_id": (None, b"D000"), "text": (None, text)})
    assert_client_error(response, 400, "text", "the field is not valid utf-8 text (byte 0x")
    assert "text fields must be sent as UTF-8" in response.json()["detail"]
    with_upload = client.post("/api/search", files={"text": (None, text),
                                                    "reference_image": ("a.png", png_bytes(), "image/png")})
    assert_client_error(with_upload, 400, "text", "not valid utf-8")


def test_a_url_encoded_text_field_that_is_not_utf8_is_400(client):
    response = client.post("/api/search", content=b"reference_id=D000&text=caf%E9",
                           headers={"content-type": "application/x-www-form-urlencoded"})
    assert_client_error(response, 400, "text", "the field is not valid utf-8 text (byte 0xe9)")


def test_utf8_text_is_read_as_sent(client):
    text = "café, 20 % plus rayé — ünïcode ✓"
    by_multipart = client.post("/api/search", files={"reference_id": (None, b"D000"), "text": (None, text.encode())})
    assert by_multipart.status_code == 200 and by_multipart.json()["query"]["text"] == text
    assert good_search(client, "D000", text=text).json()["query"]["text"] == text  # URL-encoded


def test_a_multipart_charset_is_honoured_and_an_unknown_one_refused(client):
    boundary = "b0undary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"reference_id\"\r\n\r\nD000\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\n").encode() + b"caf\xe9" + \
        f"\r\n--{boundary}--\r\n".encode()
    latin = client.post("/api/search", content=body,
                        headers={"content-type": f"multipart/form-data; boundary={boundary}; charset=latin-1"})
    assert latin.status_code == 200 and latin.json()["query"]["text"] == "café"
    unknown = client.post("/api/search", content=body,
                          headers={"content-type": f"multipart/form-data; boundary={boundary}; charset=klingon"})
    assert_client_error(unknown, 400, "content-type", "unknown charset 'klingon'")


def test_an_upload_with_an_exif_orientation_is_searched_upright(client, data_root):
    """A photo stored sideways with EXIF orientation 6 (display rotated 90° clockwise) is searched as shown."""
    upright = Image.open(data_root / "images" / "T002.png").convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    upright.transpose(Image.Transpose.ROTATE_90).save(buffer, format="PNG", exif=exif)
    as_stored = io.BytesIO()
    upright.transpose(Image.Transpose.ROTATE_90).save(as_stored, format="PNG")

    def results(content):
        response = upload(client, content, text="has a pattern")
        assert response.status_code == 200, response.text
        return [(hit["id"], round(hit["score"], 4)) for hit in response.json()["results"]]

    assert results(buffer.getvalue()) == results(png_bytes_of(upright))
    assert results(as_stored.getvalue()) != results(png_bytes_of(upright))  # the orientation matters


def png_bytes_of(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("max_batch", [1, 32], ids=["one-at-a-time", "batched"])
def test_a_damaged_index_found_during_a_query_is_a_one_line_500(engine, data_root, monkeypatch, caplog, max_batch):
    from fastapi.testclient import TestClient

    from cirlab.errors import CacheMismatchError
    from cirlab.serve.app import create_app

    message = "/index/index.faiss: a cosine score of 255.0, outside [-1, 1]; rebuild the index"

    def damaged(*args, **kwargs):
        raise CacheMismatchError(message)

    monkeypatch.setattr(engine.index, "search", damaged)
    app = create_app(engine, data_root, batching=BatchSettings(max_batch=max_batch))
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post("/api/search", data={"reference_id": engine.index.ids[0], "text": "is red"})
    assert response.status_code == 500
    assert response.json()["detail"] == message
    assert not any(record.exc_info for record in caplog.records)  # said in one line, no traceback
