"""from_pretrained through huggingface_hub's real download code, against a Hub cache or a
loopback Hub server built by each test; push_to_hub against the same server. No network."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest
import torch

import resnet3d
from resnet3d.errors import HubUnavailableError, InvalidExportError, WeightsIntegrityError
from resnet3d.models import registry
from resnet3d.models.pretrained import from_pretrained, upload_folder
from resnet3d.weights import table as pretrained
from resnet3d.weights.export_format import entry_from_export
from resnet3d.weights.probe import HUB_TIMEOUT_S, hub_timeout

REPO = "resnet3d-test/ccii-depth4"
LABELS = ["NCP", "CP", "Normal"]
SPEC = {"depth": 4, "size": 16, "channels": 3, "window": None, "stride": 4}
LFS_FILES = ("model.safetensors",)


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def etag_of(name: str, data: bytes) -> str:
    # The Hub's ETag: sha256 for LFS files, the git blob id for the others.
    return hashlib.sha256(data).hexdigest() if name in LFS_FILES else git_sha1(data)


def tiny(seed: int = 0) -> resnet3d.ResNet3D:
    torch.manual_seed(seed)
    model = resnet3d.create_model("resnet18", widths=(4, 8, 8, 8), layers=(1, 1, 1, 1))
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm3d):
                module.running_mean.uniform_(-0.3, 0.3)
                module.running_var.uniform_(0.5, 1.5)
    return model.eval()


def volume() -> torch.Tensor:
    return torch.randn(2, 3, 4, 16, 16, generator=torch.Generator().manual_seed(1))


def export_files(model: resnet3d.ResNet3D, tmp: Path) -> dict[str, bytes]:
    folder = model.save_pretrained(tmp / "export-src", preprocessing=SPEC, labels=LABELS)
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def build_cache(cache: Path, repo_id: str, commit: str, files: dict[str, bytes]) -> Path:
    """Lay out files the way huggingface_hub's cache stores a downloaded commit."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    for name, data in files.items():
        blob = repo / "blobs" / etag_of(name, data)
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        pointer = repo / "snapshots" / commit / name
        pointer.parent.mkdir(parents=True, exist_ok=True)
        pointer.symlink_to(os.path.relpath(blob, pointer.parent))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return repo


def tiny_architecture(**overrides: Any) -> resnet3d.ResNet3D:
    """The factory of tiny()'s architecture, registered for the alias tests."""
    fields = {"widths": (4, 8, 8, 8), "layers": (1, 1, 1, 1), **overrides}
    return resnet3d.create_model("resnet18", **fields)


@pytest.fixture
def published(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A tiny export, its files, and 'ccii-depth4' registered as published at a commit.

    Loading an alias checks its weights against the architecture the table names, through
    the model registry; the tiny weights get a registered architecture of their own.
    """
    monkeypatch.setitem(registry._REGISTRY, "tiny_resnet18", tiny_architecture)
    model = tiny()
    files = export_files(model, tmp_path)
    commit = hashlib.sha1(b"test commit").hexdigest()
    entry = pretrained.get_pretrained("ccii-depth4").replace(
        architecture="tiny_resnet18",
        repo_id=REPO,
        revision=commit,
        sha256=hashlib.sha256(files["model.safetensors"]).hexdigest(),
        preprocessing=SPEC,
    )
    previous = pretrained.register_pretrained(entry, overwrite=True)
    try:
        yield {"model": model, "files": files, "commit": commit, "entry": entry}
    finally:
        pretrained.register_pretrained(previous, overwrite=True)


# ----------------------------------------------------------------------------- Hub cache
def test_alias_loads_from_hub_cache_offline(published: dict[str, Any], tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    build_cache(cache, REPO, published["commit"], published["files"])
    model = from_pretrained("ccii-depth4", cache_dir=cache, local_files_only=True)
    x = volume()
    with torch.no_grad():
        assert torch.equal(model(x), published["model"](x))
    cfg = model.pretrained_cfg
    assert cfg is not None
    assert cfg["source"] == "hub" and cfg["alias"] == "ccii-depth4"
    assert cfg["repo_id"] == REPO and cfg["revision"] == published["commit"]
    assert cfg["preprocessing"] == SPEC and cfg["labels"] == LABELS


def test_hf_hub_offline_env_is_read_at_call_time(
    published: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    build_cache(tmp_path / "hub", REPO, published["commit"], published["files"])
    assert from_pretrained("ccii-depth4").config == published["model"].config


def test_offline_and_not_cached_fails_fast_and_clearly(
    published: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path / "empty-cache"
    start = time.perf_counter()
    with pytest.raises(HubUnavailableError) as info:
        from_pretrained("ccii-depth4", cache_dir=cache)
    assert time.perf_counter() - start < 2.0
    message = str(info.value)
    for part in (
        "'ccii-depth4'",
        REPO,
        published["commit"],
        str(cache),
        "hf download",
        "HF_HUB_OFFLINE",
    ):
        assert part in message, part
    assert isinstance(info.value, OSError)


def test_repo_id_loads_from_cache_by_branch(published: dict[str, Any], tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    build_cache(cache, REPO, published["commit"], published["files"])
    model = from_pretrained(REPO, cache_dir=cache, local_files_only=True)
    cfg = model.pretrained_cfg
    assert cfg is not None and cfg["revision"] == published["commit"] and "alias" not in cfg


def test_alias_revision_is_pinned(published: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="pinned to revision"):
        from_pretrained("ccii-depth4", revision="main")


def _blob(cache: Path, name: str, data: bytes) -> Path:
    return cache / f"models--{REPO.replace('/', '--')}" / "blobs" / etag_of(name, data)


def test_tampered_weights_same_size_are_refused_and_evicted(
    published: dict[str, Any], tmp_path: Path
) -> None:
    cache = tmp_path / "hub"
    build_cache(cache, REPO, published["commit"], published["files"])
    data = published["files"]["model.safetensors"]
    blob = _blob(cache, "model.safetensors", data)
    tampered = bytearray(data)
    tampered[-1] ^= 0xFF  # same size, one byte different: the tensor data still parses
    blob.write_bytes(bytes(tampered))
    with pytest.raises(WeightsIntegrityError) as info:
        from_pretrained("ccii-depth4", cache_dir=cache, local_files_only=True)
    message = str(info.value)
    assert published["entry"].sha256 in message
    assert hashlib.sha256(bytes(tampered)).hexdigest() in message
    assert not blob.exists()
    # The bad file is not used again: it is gone, so offline there is nothing to load.
    with pytest.raises(HubUnavailableError):
        from_pretrained("ccii-depth4", cache_dir=cache, local_files_only=True)


def test_truncated_weights_are_refused(published: dict[str, Any], tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    build_cache(cache, REPO, published["commit"], published["files"])
    data = published["files"]["model.safetensors"]
    _blob(cache, "model.safetensors", data).write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsIntegrityError, match="expected " + published["entry"].sha256):
        from_pretrained("ccii-depth4", cache_dir=cache, local_files_only=True)


def test_repo_without_table_entry_checks_blob_hashes(
    published: dict[str, Any], tmp_path: Path
) -> None:
    cache = tmp_path / "hub"
    build_cache(cache, REPO, published["commit"], published["files"])
    config = published["files"]["config.json"]
    blob = _blob(cache, "config.json", config)
    blob.write_bytes(config.replace(b'"NCP"', b'"XYZ"'))
    with pytest.raises(WeightsIntegrityError, match="git blob sha1"):
        from_pretrained(REPO, cache_dir=cache, local_files_only=True)
    assert not blob.exists()


def test_unreachable_hub_maps_to_one_error(
    published: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    def unreachable(*args: object, **kwargs: object) -> str:
        raise LocalEntryNotFoundError("connection refused")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", unreachable)
    with pytest.raises(HubUnavailableError, match="the Hub is unreachable"):
        from_pretrained("ccii-depth4", cache_dir=tmp_path, local_files_only=False)


# ----------------------------------------------------------------------------- no network
@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Offline mode off (the suite turns it on), HF_HUB_ETAG_TIMEOUT unset: the defaults."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_ETAG_TIMEOUT", raising=False)
    yield


@pytest.fixture
def refused_endpoint(online: None, monkeypatch: pytest.MonkeyPatch) -> str:
    """HF_ENDPOINT on a loopback port nobody listens on: connections are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("HF_ENDPOINT", url)
    return url


@pytest.fixture
def silent_endpoint(online: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """HF_ENDPOINT on a loopback socket that accepts connections and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)  # the kernel completes the handshakes; nothing ever reads or replies
        url = f"http://127.0.0.1:{server.getsockname()[1]}"
        monkeypatch.setenv("HF_ENDPOINT", url)
        yield url


def test_repo_id_with_refused_connection_fails_at_once(
    refused_endpoint: str, tmp_path: Path
) -> None:
    cache = tmp_path / "empty-cache"
    start = time.perf_counter()
    with pytest.raises(HubUnavailableError) as info:
        from_pretrained("org/name", cache_dir=cache)
    assert time.perf_counter() - start < 3.0  # was 23 s of huggingface_hub retries
    message = str(info.value)
    for part in ("repo 'org/name'", "the Hub is unreachable", str(cache), "hf download org/name"):
        assert part in message, part


def test_repo_id_with_silent_hub_fails_after_one_short_timeout(
    silent_endpoint: str, tmp_path: Path
) -> None:
    start = time.perf_counter()
    with pytest.raises(HubUnavailableError, match="the Hub is unreachable"):
        from_pretrained("org/name", cache_dir=tmp_path / "empty-cache")
    elapsed = time.perf_counter() - start
    assert elapsed < HUB_TIMEOUT_S + 3.0, elapsed


def test_repo_id_with_hf_hub_offline_fails_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # An endpoint that would hang: offline mode must not even try it.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
        start = time.perf_counter()
        with pytest.raises(HubUnavailableError) as info:
            from_pretrained("org/name", cache_dir=tmp_path / "empty-cache")
        assert time.perf_counter() - start < 1.0
    assert "offline mode is on (HF_HUB_OFFLINE)" in str(info.value)
    assert "hf download org/name" in str(info.value)


def test_unreachable_hub_falls_back_to_a_cached_branch(
    published: dict[str, Any], refused_endpoint: str, tmp_path: Path
) -> None:
    cache = tmp_path / "hub"
    build_cache(cache, REPO, published["commit"], published["files"])
    start = time.perf_counter()
    model = from_pretrained(REPO, cache_dir=cache)  # branch main, as cached before
    assert time.perf_counter() - start < 3.0
    cfg = model.pretrained_cfg
    assert cfg is not None and cfg["revision"] == published["commit"]


def test_hub_timeout_follows_hf_hub_etag_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_ETAG_TIMEOUT", raising=False)
    assert hub_timeout() == HUB_TIMEOUT_S
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "1.5")
    assert hub_timeout() == 1.5
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "soon")
    assert hub_timeout() == HUB_TIMEOUT_S


# ----------------------------------------------------------------------------- loopback Hub
class FakeHub:
    """The few Hub endpoints hf_hub_download, create_repo and create_commit use.

    Files are committed through the "regular" upload mode (base64 in the commit payload),
    which the real Hub uses for small non-LFS files; LFS/xet uploads are not implemented.
    """

    def __init__(self) -> None:
        self.branches: dict[str, dict[str, str]] = {}  # repo -> branch -> commit
        self.commits: dict[str, dict[str, bytes]] = {}  # commit -> path -> bytes
        self.requests: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def add_commit(self, repo: str, files: dict[str, bytes], branch: str = "main") -> str:
        parent = self.commits.get(self.branches.get(repo, {}).get(branch, ""), {})
        merged = {**parent, **files}
        digest = hashlib.sha1(repr((repo, len(self.commits), sorted(merged))).encode())
        commit = digest.hexdigest()
        self.commits[commit] = merged
        self.branches.setdefault(repo, {})[branch] = commit
        return commit

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub_ = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _reply(
                self,
                status: int,
                body: bytes = b"",
                headers: dict[str, str] | None = None,
                head: bool = False,
            ) -> None:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def _json(self, status: int, payload: Any) -> None:
                self._reply(
                    status, json.dumps(payload).encode(), {"Content-Type": "application/json"}
                )

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length", 0)))

            def _resolve(self, head: bool) -> None:
                # /{org}/{name}/resolve/{revision}/{filename}
                parts = unquote(urlparse(self.path).path).strip("/").split("/")
                if len(parts) < 5 or parts[2] != "resolve":
                    return self._reply(404, head=head)
                repo, revision, filename = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
                if repo not in hub_.branches:
                    return self._reply(404, headers={"X-Error-Code": "RepoNotFound"}, head=head)
                commit = hub_.branches[repo].get(revision, revision)
                if commit not in hub_.commits:
                    return self._reply(404, headers={"X-Error-Code": "RevisionNotFound"}, head=head)
                files = hub_.commits[commit]
                if filename not in files:
                    return self._reply(
                        404,
                        headers={"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit},
                        head=head,
                    )
                data = files[filename]
                headers = {"X-Repo-Commit": commit, "ETag": f'"{etag_of(filename, data)}"'}
                self._reply(200, data, headers, head=head)

            def do_HEAD(self) -> None:
                hub_.requests.append(f"HEAD {self.path}")
                self._resolve(head=True)

            def do_GET(self) -> None:
                hub_.requests.append(f"GET {self.path}")
                self._resolve(head=False)

            def do_POST(self) -> None:
                path = urlparse(self.path).path
                hub_.requests.append(f"POST {path}")
                body = self._body()
                if path == "/api/repos/create":
                    payload = json.loads(body)
                    repo = f"{payload['organization']}/{payload['name']}"
                    if repo in hub_.branches:
                        # The real Hub names the repo in its 409 answer too.
                        return self._json(
                            409,
                            {
                                "error": "You already created this model repo",
                                "url": f"{hub_.url}/{repo}",
                            },
                        )
                    hub_.add_commit(repo, {".gitattributes": b"*.safetensors filter=lfs\n"})
                    return self._json(200, {"url": f"{hub_.url}/{repo}"})
                if path == "/api/validate-yaml":
                    return self._json(200, {"errors": [], "warnings": []})
                parts = unquote(path).strip("/").split("/")
                if len(parts) == 6 and parts[:2] == ["api", "models"]:
                    repo, action, revision = f"{parts[2]}/{parts[3]}", parts[4], parts[5]
                    if repo not in hub_.branches:
                        return self._reply(404, headers={"X-Error-Code": "RepoNotFound"})
                    if action == "preupload":
                        files = json.loads(body)["files"]
                        return self._json(
                            200,
                            {
                                "files": [
                                    {
                                        "path": f["path"],
                                        "uploadMode": "regular",
                                        "shouldIgnore": False,
                                    }
                                    for f in files
                                ]
                            },
                        )
                    if action == "commit":
                        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
                        added = {
                            item["value"]["path"]: base64.b64decode(item["value"]["content"])
                            for item in lines
                            if item["key"] == "file"
                        }
                        commit = hub_.add_commit(repo, added, branch=revision)
                        return self._json(
                            200,
                            {
                                "commitUrl": f"{hub_.url}/{repo}/commit/{commit}",
                                "commitOid": commit,
                            },
                        )
                self._reply(404)

        return Handler


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    from huggingface_hub import constants

    server = FakeHub()
    server.thread.start()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", "hf_test_token_for_loopback")
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()


def test_alias_downloads_from_loopback_hub(
    published: dict[str, Any], fake_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit = fake_hub.add_commit(REPO, published["files"])
    entry = published["entry"].replace(revision=commit)
    pretrained.register_pretrained(entry, overwrite=True)
    cache = tmp_path / "hub"
    model = from_pretrained("ccii-depth4", cache_dir=cache)
    x = volume()
    with torch.no_grad():
        assert torch.equal(model(x), published["model"](x))
    assert any(
        r.startswith(f"GET /{REPO}/resolve/{commit}/model.safetensors") for r in fake_hub.requests
    )
    # Now cached: works offline, without another request.
    seen = len(fake_hub.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    again = from_pretrained("ccii-depth4", cache_dir=cache)
    assert len(fake_hub.requests) == seen
    assert again.config == model.config
    # Online, a pinned commit in the cache is not asked for either (no reachability probe).
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    from_pretrained("ccii-depth4", cache_dir=cache)
    assert len(fake_hub.requests) == seen


def test_repo_without_config_json(
    fake_hub: FakeHub, published: dict[str, Any], tmp_path: Path
) -> None:
    files = {k: v for k, v in published["files"].items() if k != "config.json"}
    fake_hub.add_commit("someone/weights-only", files)
    with pytest.raises(InvalidExportError, match=r"has no config\.json"):
        from_pretrained("someone/weights-only", cache_dir=tmp_path / "hub")


def test_unknown_repo_and_revision(
    fake_hub: FakeHub, tmp_path: Path, published: dict[str, Any]
) -> None:
    with pytest.raises(FileNotFoundError, match="repository not found"):
        from_pretrained("nobody/nothing", cache_dir=tmp_path / "hub")
    fake_hub.add_commit(REPO, published["files"])
    with pytest.raises(FileNotFoundError, match="revision not found"):
        from_pretrained(REPO, revision="f" * 40, cache_dir=tmp_path / "hub")


def test_push_to_hub_then_load_back(fake_hub: FakeHub, tmp_path: Path) -> None:
    model = tiny(seed=5)
    info = model.push_to_hub(
        "me/pushed",
        labels=LABELS,
        preprocessing=SPEC,
        metrics=[{"name": "accuracy", "value": 0.75, "split": "synthetic"}],
    )
    commit = fake_hub.branches["me/pushed"]["main"]
    assert info.oid == commit
    stored = fake_hub.commits[commit]
    assert {"model.safetensors", "config.json", "README.md"} <= set(stored)
    assert "not for clinical decisions" in stored["README.md"].decode()
    loaded = from_pretrained("me/pushed", cache_dir=tmp_path / "hub")
    x = volume()
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    cfg = loaded.pretrained_cfg
    assert cfg is not None and cfg["revision"] == commit and cfg["metrics"][0]["value"] == 0.75
    # The table entry for what was pushed: its hash is the pushed file's.
    folder = model.save_pretrained(tmp_path / "again", labels=LABELS, preprocessing=SPEC)
    entry = entry_from_export(folder, alias="my-alias", repo_id="me/pushed", revision=commit)
    assert entry.published
    assert entry.sha256 == hashlib.sha256(stored["model.safetensors"]).hexdigest()
    # A second push to the existing repo makes a new commit on the same branch.
    tiny(seed=6).push_to_hub("me/pushed", labels=LABELS)
    assert fake_hub.branches["me/pushed"]["main"] != commit


def test_upload_refuses_invalid_export(fake_hub: FakeHub, tmp_path: Path) -> None:
    folder = tiny().save_pretrained(tmp_path / "bad")
    (folder / "config.json").write_text("{}")
    with pytest.raises(InvalidExportError):
        upload_folder(folder, "me/bad")
    with pytest.raises(ValueError, match="org/name"):
        upload_folder(tiny().save_pretrained(tmp_path / "ok"), "no-slash")
    assert not any(r.startswith("POST") for r in fake_hub.requests)


def test_push_refused_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubUnavailableError, match="offline"):
        tiny().push_to_hub("me/offline")


def test_cli_push(fake_hub: FakeHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from resnet3d.cli import main

    model = tiny(seed=9)
    folder = model.save_pretrained(tmp_path / "export", labels=LABELS, preprocessing=SPEC)
    assert main(["push", str(folder), "me/cli-push", "--message", "first weights"]) == 0
    out = capsys.readouterr().out
    commit = fake_hub.branches["me/cli-push"]["main"]
    assert f"at commit {commit}" in out
    assert hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest() in out
    assert "alias='cli-push'" in out and f"revision='{commit}'" in out
    loaded = from_pretrained("me/cli-push", revision=commit, cache_dir=tmp_path / "hub")
    with torch.no_grad():
        assert torch.equal(loaded(volume()), model(volume()))
    assert main(["push", str(tmp_path / "nowhere"), "me/cli-push"]) == 2
    assert "missing config.json" in capsys.readouterr().err
