"""Who may use the service: the Host names it answers (DNS rebinding) and the access token."""

import pytest
from fastapi.testclient import TestClient

from cirlab.errors import ConfigError
from cirlab.serve import create_app
from cirlab.serve.access import allowed_hosts, check_host_name, check_token, exposure_warning, is_loopback

TOKEN = "s3cret-Token_1"


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.0.0.2", True), ("localhost", True), ("LOCALHOST", True), ("::1", True),
    ("[::1]", True), ("0.0.0.0", False), ("::", False), ("192.168.1.5", False), ("example.org", False),
])
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_allowed_hosts_of_an_address():
    assert allowed_hosts("127.0.0.1") == ["localhost", "127.0.0.1", "[::1]"]
    assert allowed_hosts("127.0.0.2", ["MyHost.lan"]) == ["localhost", "127.0.0.1", "[::1]", "127.0.0.2", "myhost.lan"]
    assert allowed_hosts("::1") == ["localhost", "127.0.0.1", "[::1]"]
    assert allowed_hosts("0.0.0.0") is None  # beyond loopback the names are unknown: any, unless listed
    assert allowed_hosts("0.0.0.0", ["*.example.org"]) == ["localhost", "127.0.0.1", "[::1]", "*.example.org"]
    assert allowed_hosts("192.168.1.5", ["box"]) == ["localhost", "127.0.0.1", "[::1]", "192.168.1.5", "box"]
    assert allowed_hosts("127.0.0.1", ["*"]) is None


@pytest.mark.parametrize(("name", "fragment"), [
    ("localhost:8000", "without a port"), ("evil.example/x", "is not a host name"), ("", "is not a host name"),
    ("a..b", "is not a host name"), ("*evil", "is not a host name"),
])
def test_bad_allowed_host_names_are_config_errors(name, fragment):
    with pytest.raises(ConfigError, match=fragment):
        check_host_name(name)


def test_tokens_must_be_header_and_cookie_safe():
    assert check_token(TOKEN) == TOKEN
    assert check_token("abc+/=") == "abc+/="
    for bad in ("", "two words", "semi;colon", "quote\"", "é"):
        with pytest.raises(ConfigError, match="--token"):
            check_token(bad)


def test_exposure_warning_only_beyond_loopback_without_a_token():
    assert exposure_warning("127.0.0.1", None) is None
    assert exposure_warning("0.0.0.0", TOKEN) is None
    warning = exposure_warning("0.0.0.0", None)
    assert "0.0.0.0" in warning and "--token" in warning and "\n" not in warning


# ------------------------------------------------------------------ Host names
@pytest.fixture(scope="module")
def loopback_client(engine, data_root):
    """The app as `cirlab serve` builds it on 127.0.0.1, plus the name myhost.lan."""
    app = create_app(engine, data_root, allowed_hosts=allowed_hosts("127.0.0.1", ["myhost.lan"]))
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        yield client


@pytest.mark.parametrize("host", ["127.0.0.1:8000", "localhost:8000", "LOCALHOST", "[::1]:8000", "myhost.lan:8000"])
def test_loopback_and_listed_host_names_are_answered(loopback_client, host):
    assert loopback_client.get("/api/info", headers={"host": host}).status_code == 200


@pytest.mark.parametrize("host", ["evil.example:8000", "evil.example", "localhost.evil.example:8000",
                                  "127.0.0.1.nip.io", "192.168.1.5:8000", "myhost.lan.evil.example", ""])
def test_other_host_names_are_refused(loopback_client, host):
    """A page of evil.example whose name was rebound to 127.0.0.1 reaches the service with its own name."""
    for path in ("/api/info", "/", "/images/D000", "/health"):
        response = loopback_client.get(path, headers={"host": host})
        assert response.status_code == 400 and response.text == "Invalid host header", (path, host)
    refused = loopback_client.post("/api/search", data={"reference_id": "D000", "text": "is red"},
                                   headers={"host": host})
    assert refused.status_code == 400


# ------------------------------------------------------------------ token
@pytest.fixture(scope="module")
def token_client(engine, data_root):
    with TestClient(create_app(engine, data_root, token=TOKEN)) as client:
        yield client


def bearer(token=TOKEN):
    return {"authorization": f"Bearer {token}"}


@pytest.mark.parametrize("path", ["/api/info", "/api/gallery", "/api/validation-queries", "/images/D000",
                                  "/no/such/path"])
def test_without_the_token_the_api_and_images_are_401(token_client, path):
    response = token_client.get(path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json() == {"detail": "this service needs an access token: send 'Authorization: Bearer TOKEN' "
                                         "(or open the page as /#token=TOKEN)", "field": "authorization"}
    wrong = token_client.get(path, headers=bearer("guess"))
    assert wrong.status_code == 401 and wrong.json()["detail"].startswith("the access token is wrong")
    assert token_client.get(path, headers={"authorization": f"Basic {TOKEN}"}).status_code == 401


def test_a_search_without_the_token_is_401(token_client):
    form = {"reference_id": "D000", "text": "is red"}
    assert token_client.post("/api/search", data=form).status_code == 401
    assert token_client.post("/api/search", data=form, headers=bearer()).status_code == 200


def test_the_token_opens_the_api_as_a_header_or_as_the_pages_cookie(token_client, data_root):
    assert token_client.get("/api/info", headers=bearer()).status_code == 200
    assert token_client.get("/api/info", headers={"authorization": f"bearer  {TOKEN} "}).status_code == 200
    image = token_client.get("/images/D000", headers={"cookie": f"other=1; cirlab_token={TOKEN}"})
    assert image.status_code == 200 and image.content == (data_root / "images" / "D000.png").read_bytes()
    encoded = check_token("a+b/c=")
    with TestClient(create_app(token_client.app.state.engine, data_root, token=encoded)) as client:
        assert client.get("/api/info", headers={"cookie": "cirlab_token=a%2Bb%2Fc%3D"}).status_code == 200


@pytest.mark.parametrize("path", ["/", "/health", "/favicon.ico", "/static/app.js", "/docs", "/openapi.json"])
def test_the_page_health_and_documentation_need_no_token(token_client, path):
    assert token_client.get(path).status_code == 200


def test_a_bad_token_is_refused_when_the_app_is_made(engine):
    with pytest.raises(ConfigError, match="--token"):
        create_app(engine, None, token="has space")
