"""The static server of the browser runtimes: loopback only, its folders only, isolation headers, always closed."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

import psutil
import pytest

from dlcompat.runtimes.browser.server import CACHEABLE, ISOLATION_HEADERS, LOOPBACK, StaticServer


@pytest.fixture
def folders(tmp_path):
    page, model = tmp_path / "page", tmp_path / "model"
    page.mkdir()
    model.mkdir()
    (page / "index.html").write_text("<p>hi</p>")
    (model / "model.onnx").write_bytes(b"\x00" * 1000)
    (tmp_path / "secret.txt").write_text("not served")
    return {"/": page, "/model": model}


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), b""


def test_the_server_listens_on_loopback_only(folders):
    with StaticServer(folders) as server:
        host, port = server.address
        assert host == LOOPBACK == "127.0.0.1"
        listening = [c for c in psutil.Process().net_connections(kind="inet")
                     if c.status == psutil.CONN_LISTEN and c.laddr.port == port]
        assert [c.laddr.ip for c in listening] == ["127.0.0.1"]  # not 0.0.0.0, not a public address


def test_it_serves_its_folders_with_isolation_headers_and_counts_bytes(folders):
    with StaticServer(folders) as server:
        status, headers, body = get(f"{server.url}/index.html")
        assert status == 200 and body == b"<p>hi</p>" and headers["Content-Type"].startswith("text/html")
        for name, value in ISOLATION_HEADERS.items():
            assert headers[name] == value  # COOP + COEP: SharedArrayBuffer, so WebAssembly threads
        status, headers, body = get(f"{server.url}/model/model.onnx")
        assert status == 200 and len(body) == 1000
        assert server.bytes_served("/model") == 1000


@pytest.mark.parametrize("path", ["/../secret.txt", "/model/../../secret.txt", "/%2e%2e/secret.txt", "/model/",
                                  "/nothing.js", "/model/missing.onnx"])
def test_nothing_outside_its_folders_is_served(folders, path):
    with StaticServer(folders) as server:
        assert get(server.url + path)[0] == 404


def test_close_releases_the_port_even_when_the_block_fails(folders):
    with pytest.raises(RuntimeError), StaticServer(folders) as server:
        port = server.address[1]
        raise RuntimeError("a job failed while serving")
    with pytest.raises(ConnectionRefusedError), socket.create_connection((LOOPBACK, port), timeout=2):
        pass
    server.close()  # idempotent


def test_only_the_cacheable_prefixes_may_be_cached_and_a_mounted_folder_is_served_until_unmounted(folders, tmp_path):
    other = tmp_path / "other-model"
    other.mkdir()
    (other / "model.onnx").write_bytes(b"\x01" * 10)
    with StaticServer({"/": folders["/"]}, cacheable=("/",)) as server:  # a worker's kept server: the page only
        assert get(f"{server.url}/index.html")[1]["Cache-Control"] == CACHEABLE
        assert get(f"{server.url}/model/model.onnx")[0] == 404
        server.mount("/model", folders["/model"])
        status, headers, body = get(f"{server.url}/model/model.onnx")
        assert status == 200 and len(body) == 1000 and headers["Cache-Control"] == "no-store"  # a download
        server.mount("/model", other)  # the next job's model
        assert get(f"{server.url}/model/model.onnx")[2] == b"\x01" * 10 and server.bytes_served("/model") == 10
        server.mount("/model", None)
        assert get(f"{server.url}/model/model.onnx")[0] == 404
