"""The local Hub test double (tests/fakes/hub/server.py) driven by the real huggingface_hub client, end to end.

How the client is pointed at it: every client scenario runs in a subprocess whose environment sets HF_ENDPOINT,
HF_TOKEN, HF_HUB_DISABLE_XET=1 and an isolated HF_HOME. huggingface_hub reads these into constants at import time,
and in 2.4.0 the Xet-or-LFS choice is made client-side from HF_HUB_DISABLE_XET (with hf_xet installed, binary
uploads otherwise go to /xet-write-token and fail here). Passing `HfApi(endpoint=url, token=...)` and
`hf_hub_download(..., endpoint=url)` in-process works for reads and regular-file commits, but not for LFS uploads
unless HF_HUB_DISABLE_XET was set before the import, and timm has no endpoint argument at all: hence subprocesses.
Server-side checks the client never provokes (an LFS pointer to an object never uploaded, a forged upload URL)
are tested with plain urllib requests.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.hub.server import DEFAULT_TOKEN, DEFAULT_USER, LocalHub

REPO = f"{DEFAULT_USER}/tiny"
WEIGHTS = random.Random(0).randbytes(1 << 20)  # a 1 MB binary "safetensors" file: always LFS on the Hub
PRELUDE = """
import json, os, random, sys
from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download, snapshot_download
api = HfApi()
WEIGHTS = random.Random(0).randbytes(1 << 20)
def out(value):
    print(json.dumps(value))
def fails(fn, *args, **kwargs):
    '''None if fn succeeds, else [exception class and base names, HTTP status].'''
    try:
        fn(*args, **kwargs)
    except Exception as e:
        response = getattr(e, "response", None) or getattr(e.__cause__, "response", None)
        return [[c.__name__ for c in type(e).__mro__], getattr(response, "status_code", None)]
def read(path):
    return open(path, "rb").read().decode("latin-1")
"""


@pytest.fixture
def hub(tmp_path):
    """A running local Hub with the default token for DEFAULT_USER; stopped at the end."""
    with LocalHub(tmp_path / "hub") as server:
        yield server


def client(hub: LocalHub, home: Path, script: str, token: str | None = DEFAULT_TOKEN, **extra: str) -> Any:
    """Run `script` (after PRELUDE) in a fresh process pointed at `hub`; return the JSON of its last line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update({"HF_ENDPOINT": hub.url, "HF_HOME": str(home), "HF_HUB_DISABLE_XET": "1", "HF_HUB_OFFLINE": "0",
                "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TQDM_DISABLE": "1", **extra})
    if token:
        env["HF_TOKEN"] = token
    proc = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(script)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def pushed(hub: LocalHub, repo: str = REPO, repo_type: str = "model") -> list[dict]:
    """Commits made by clients (the Hub's own 'initial commit' left out), newest first."""
    return [c for c in hub.commits(repo, repo_type) if c["title"] != "initial commit"]


def test_whoami_and_bad_tokens(hub, tmp_path):
    """whoami names the token's user; a wrong token is a 401 everywhere, and so is an anonymous write."""
    res = client(hub, tmp_path, """
        me = api.whoami()
        wrong = HfApi(token="hf_wrong")
        out([me["name"], me["type"], me["auth"]["accessToken"]["role"], fails(wrong.whoami),
             fails(wrong.model_info, "x/y"), fails(HfApi(token=False).create_repo, "testuser/anon")])
    """)
    assert res[:3] == [DEFAULT_USER, "user", "write"]
    assert all("HfHubHTTPError" in err[0] for err in res[3:]) and res[3][1] == res[4][1] == res[5][1] == 401
    assert "RepositoryNotFoundError" not in res[4][0]  # "Invalid credentials": the client does not call it a 404


def test_create_repo_conflict_then_exist_ok(hub, tmp_path):
    """A second create_repo is a 409; exist_ok=True accepts it; Spaces get their own URL prefix."""
    res = client(hub, tmp_path, """
        first = api.create_repo("tiny")
        space = api.create_repo("demo", repo_type="space", space_sdk="gradio", private=True)
        out([first, first.repo_id, fails(api.create_repo, "tiny"), api.create_repo("tiny", exist_ok=True),
             space, api.space_info("testuser/demo").private])
    """)
    assert res[0] == f"{hub.url}/{REPO}" and res[1] == REPO
    assert res[2][1] == 409 and res[3] == res[0]
    assert res[4] == f"{hub.url}/spaces/{DEFAULT_USER}/demo" and res[5] is True
    assert hub.has_repo(f"{DEFAULT_USER}/demo", "space") and not hub.has_repo(f"{DEFAULT_USER}/demo")
    assert [c["title"] for c in hub.commits(REPO)] == ["initial commit"]


def test_one_commit_with_lfs_file_then_downloads(hub, tmp_path):
    """Text + 1 MB binary in one create_commit: one commit, the binary through LFS; both download paths agree."""
    res = client(hub, tmp_path, """
        api.create_repo("tiny")
        info = api.create_commit("testuser/tiny", commit_message="add weights", operations=[
            CommitOperationAdd("config.json", b'{"a": 1}'), CommitOperationAdd("model.safetensors", WEIGHTS)])
        tree = {f.path: f.lfs is not None for f in api.list_repo_tree("testuser/tiny", recursive=True)}
        snap = snapshot_download("testuser/tiny", allow_patterns=["*.safetensors"])
        out([info.oid, tree, read(hf_hub_download("testuser/tiny", "model.safetensors")),
             sorted(os.listdir(snap)), read(os.path.join(snap, "model.safetensors")),
             read(hf_hub_download("testuser/tiny", "config.json"))])
    """)
    commits = pushed(hub)
    assert len(commits) == 1 and commits[0]["id"] == res[0] and commits[0]["title"] == "add weights"
    assert commits[0]["files"] == ["config.json", "model.safetensors"]
    assert res[1] == {".gitattributes": False, "config.json": False, "model.safetensors": True}
    assert res[2].encode("latin-1") == res[4].encode("latin-1") == WEIGHTS
    assert res[3] == ["model.safetensors"] and res[5] == '{"a": 1}'
    assert hub.files(REPO)["model.safetensors"] == WEIGHTS
    puts = [path for method, path in hub.requests if method == "PUT"]
    assert len(puts) == 1 and puts[0].startswith("/lfs-storage/model/")


def test_pinned_commit_returns_old_bytes_and_branches(hub, tmp_path):
    """A download pinned to the first commit's sha gives the old bytes; a branch takes its own commits."""
    res = client(hub, tmp_path, """
        api.create_repo("tiny")
        add = lambda data, **kw: api.create_commit("testuser/tiny", commit_message=data.decode(),
                                                   operations=[CommitOperationAdd("notes.txt", data)], **kw).oid
        old = add(b"v1")
        new = add(b"v2")
        api.create_branch("testuser/tiny", branch="dev", revision=old)
        on_dev = add(b"dev", revision="dev")
        out([old, new, on_dev, read(hf_hub_download("testuser/tiny", "notes.txt", revision=old)),
             read(hf_hub_download("testuser/tiny", "notes.txt")),
             read(hf_hub_download("testuser/tiny", "notes.txt", revision="dev")),
             api.model_info("testuser/tiny", revision=old).sha, fails(api.create_branch, "testuser/tiny", branch="dev"),
             sorted(b.name for b in api.list_repo_refs("testuser/tiny").branches),
             [c.title for c in api.list_repo_commits("testuser/tiny", revision="dev")]])
    """)
    old, new, on_dev = res[:3]
    assert res[3:6] == ["v1", "v2", "dev"] and res[6] == old
    assert res[7][1] == 409 and res[8] == ["dev", "main"] and res[9] == ["dev", "v1", "initial commit"]
    assert [c["id"] for c in pushed(hub)] == [new, old]
    assert hub.files(REPO, revision="dev")["notes.txt"] == b"dev"
    assert hub.files(REPO, revision=old)["notes.txt"] == b"v1"
    assert hub.commits(REPO, revision="dev")[0]["id"] == on_dev


def test_not_found_errors_map_to_client_classes(hub, tmp_path):
    """Unknown repo, file and revision give the client's own error classes; private repos look unknown anonymously."""
    client(hub, tmp_path / "owner", """
        api.create_repo("tiny")
        api.create_repo("secret", private=True)
        api.upload_file(path_or_fileobj=b"x", path_in_repo="a.txt", repo_id="testuser/secret")
        out(1)
    """)
    script = """
        dl = hf_hub_download
        out([fails(dl, "testuser/missing", "a.txt"), fails(dl, "testuser/tiny", "nope.txt"),
             fails(dl, "testuser/tiny", ".gitattributes", revision="nobranch"),
             fails(api.model_info, "testuser/missing"), fails(api.model_info, "testuser/tiny", revision="nobranch"),
             fails(dl, "testuser/secret", "a.txt")])
    """
    anon, authed = client(hub, tmp_path / "anon", script, token=None), client(hub, tmp_path / "authed", script)
    for res in (anon, authed):
        assert "RepositoryNotFoundError" in res[0][0] and "RepositoryNotFoundError" in res[3][0]
        assert "EntryNotFoundError" in res[1][0] and res[1][1] == 404
        assert "RevisionNotFoundError" in res[2][0] and "RevisionNotFoundError" in res[4][0]
    assert anon[0][1] == 401 and authed[0][1] == 404  # the Hub answers 401 to anonymous reads of unknown repos
    assert "RepositoryNotFoundError" in anon[5][0] and anon[5][1] == 401 and authed[5] is None


def test_lfs_upload_with_wrong_size_or_oid_is_rejected(hub, tmp_path):
    """A file that changes between hashing and upload: the PUT's size or sha256 mismatch is refused, no commit."""
    res = client(hub, tmp_path, """
        api.create_repo("tiny")
        path = os.path.join(os.environ["HF_HOME"], "w.bin")
        open(path, "wb").write(WEIGHTS)
        grown = CommitOperationAdd("w.bin", path)  # size taken now, sha256 later (from the grown file)
        open(path, "ab").write(b"more")
        err_size = fails(api.create_commit, "testuser/tiny", [grown], commit_message="size")
        open(path, "wb").write(WEIGHTS)
        swapped = CommitOperationAdd("w.bin", path)
        swapped.upload_info.sha256  # hashed now, then the content changes at the same size
        open(path, "wb").write(WEIGHTS[::-1])
        out([err_size, fails(api.create_commit, "testuser/tiny", [swapped], commit_message="oid")])
    """)
    for err in res:  # "Error while uploading 'w.bin' to the Hub." from the 400 on the PUT
        assert "RuntimeError" in err[0] and err[1] == 400
    assert pushed(hub) == [] and sum(method == "PUT" for method, _ in hub.requests) == 2


def test_stopped_server_falls_back_to_cache_then_restarts(hub, tmp_path):
    """With the Hub down, the same hf_hub_download / snapshot_download calls return the cached files.

    An uncached file is asked for with HF_HUB_OFFLINE=1: with the Hub merely unreachable, 2.4.0 retries the HEAD
    call with backoff (1+2+4+8+8 s) before its LocalEntryNotFoundError, too slow for this test.
    """
    script = """
        out([read(hf_hub_download("testuser/tiny", "model.safetensors")) == WEIGHTS.decode("latin-1"),
             sorted(os.listdir(snapshot_download("testuser/tiny", allow_patterns=["*.safetensors"]))),
             fails(hf_hub_download, "testuser/tiny", "config.json") if os.environ.get("LAST") else None])
    """
    client(hub, tmp_path, """
        api.create_repo("tiny")
        api.create_commit("testuser/tiny", commit_message="w", operations=[
            CommitOperationAdd("model.safetensors", WEIGHTS), CommitOperationAdd("config.json", b"{}")])
        out(1)
    """)
    assert client(hub, tmp_path, script) == [True, ["model.safetensors"], None]
    url, seen = hub.url, len(hub.requests)
    hub.stop()
    assert client(hub, tmp_path, script)[:2] == [True, ["model.safetensors"]]
    offline = client(hub, tmp_path, script, LAST="1", HF_HUB_OFFLINE="1")  # config.json was never downloaded
    assert offline[:2] == [True, ["model.safetensors"]] and "LocalEntryNotFoundError" in offline[2][0]
    assert len(hub.requests) == seen
    assert hub.start() == url and len(pushed(hub)) == 1
    assert client(hub, tmp_path, script, LAST="1") == [True, ["model.safetensors"], None]


def test_timm_loads_pushed_model_via_hf_hub(hub, tmp_path):
    """save_for_hf output pushed with create_commit loads with timm.create_model('hf-hub:...', pretrained=True)."""
    res = client(hub, tmp_path, """
        import timm, torch
        from timm.models import save_for_hf
        torch.manual_seed(0)
        model = timm.create_model("test_resnet", num_classes=3)
        folder = os.path.join(os.environ["HF_HOME"], "export")
        save_for_hf(model, folder, safe_serialization=True)
        api.create_repo("tiny")
        api.create_commit("testuser/tiny", commit_message="timm", operations=[
            CommitOperationAdd(name, os.path.join(folder, name)) for name in sorted(os.listdir(folder))])
        loaded = timm.create_model("hf-hub:testuser/tiny", pretrained=True)
        same = all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
        out([sorted(os.listdir(folder)), loaded.num_classes, same])
    """)
    assert res == [["config.json", "model.safetensors"], 3, True]
    assert len(pushed(hub)) == 1 and "model.safetensors" in hub.files(REPO)


def http(hub: LocalHub, method: str, path: str, body: bytes | None = None, token: str | None = DEFAULT_TOKEN,
         **headers: str) -> tuple[int, dict, bytes]:
    """A raw request to the double: status, headers, body."""
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(hub.url + path, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_server_side_checks_without_the_client(hub):
    """What the client never sends: a pointer to an LFS object never uploaded, a forged upload URL, no token."""
    assert http(hub, "POST", "/api/repos/create", b'{"name": "tiny"}')[0] == 200
    assert http(hub, "POST", "/api/repos/create", b'{"name": "other"}', token=None)[0] == 401
    lfs = {"key": "lfsFile", "value": {"path": "w.bin", "algo": "sha256", "oid": "0" * 64, "size": 3}}
    ndjson = b"\n".join(json.dumps(x).encode() for x in ({"key": "header", "value": {"summary": "s"}}, lfs))
    assert http(hub, "POST", f"/api/models/{REPO}/commit/main", ndjson)[0] == 422
    assert http(hub, "POST", f"/api/models/{REPO}/commit/main", ndjson, token=None)[0] == 401
    assert http(hub, "PUT", f"/lfs-storage/model/{REPO}/{'0' * 64}/3?sig=forged", b"abc", token=None)[0] == 403
    status, headers, _ = http(hub, "GET", f"/api/models/{REPO}", token="hf_wrong")
    assert status == 401 and headers["X-Error-Message"] == "Invalid credentials in Authorization header"
    status, headers, _ = http(hub, "HEAD", f"/{REPO}/resolve/main/missing.txt", token=None)
    assert status == 404 and headers["X-Error-Code"] == "EntryNotFound" and headers["X-Repo-Commit"]
    assert pushed(hub) == [] and ("HEAD", f"/{REPO}/resolve/main/missing.txt") in hub.requests
