"""File endpoints of the local Hub test double: /resolve downloads and the git-LFS batch/upload/verify protocol."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable

from tests.fakes.hub.routes import Request, Response, ok, readable, repo_url, writable
from tests.fakes.hub.store import SHA256, HubError, HubStore

LFS_JSON = {"Content-Type": "application/vnd.git-lfs+json"}
Signer = Callable[[str], str]


def route_files(store: HubStore, req: Request, sign: Signer) -> Response:
    """Route everything outside /api: pre-signed LFS storage, LFS batch/verify, /resolve."""
    parts, method = req.parts, req.method
    if parts[0] == "lfs-storage" and len(parts) == 6 and method == "PUT":
        return lfs_put(store, req, sign, parts[1], f"{parts[2]}/{parts[3]}", parts[4], parts[5])
    repo_type = "model"
    if parts[0] in ("spaces", "datasets") and len(parts) > 3:
        repo_type, parts = parts[0][:-1], parts[1:]
    if len(parts) == 6 and parts[1].endswith(".git") and parts[2:5] == ["info", "lfs", "objects"] and method == "POST":
        repo_id = f"{parts[0]}/{parts[1][:-4]}"
        if parts[5] == "batch":
            return lfs_batch(store, req, sign, repo_type, repo_id)
        if parts[5] == "verify":
            return lfs_verify(store, req, repo_type, repo_id)
    if len(parts) >= 5 and parts[2] == "resolve" and method in ("GET", "HEAD"):
        return resolve(store, req, repo_type, f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:]))
    raise HubError(404, f"Not found (local Hub test double): {req.method} /{'/'.join(req.parts)}")


def resolve(store: HubStore, req: Request, repo_type: str, repo_id: str, revision: str, path: str) -> Response:
    """GET/HEAD /{repo}/resolve/{rev}/{path}: the bytes, served directly (no CDN redirect), with the Hub's headers."""
    repo = readable(store, req, repo_type, repo_id)
    commit = store.resolve(repo, revision)
    entry = commit.files.get(path)
    if entry is None:  # the client caches this non-existence per commit, so the Hub names the commit here too
        raise HubError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": commit.id})
    headers = {"X-Repo-Commit": commit.id, "ETag": f'"{entry.oid}"', "Content-Type": "application/octet-stream",
               "Accept-Ranges": "bytes"}
    if entry.lfs:  # the client names the cached blob after X-Linked-Etag: the LFS sha256
        headers.update({"X-Linked-Etag": f'"{entry.sha256}"', "X-Linked-Size": str(entry.size)})
    data, status = store.blob(entry.sha256), 200
    match = re.fullmatch(r"bytes=(\d+)-(\d*)", req.headers.get("Range") or "")
    if match and req.method == "GET" and int(match[1]) < len(data):  # resumed downloads ask for the rest only
        start = int(match[1])
        end = min(int(match[2]), len(data) - 1) if match[2] else len(data) - 1
        headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        data, status = data[start:end + 1], 206
    return Response(status, data, headers)


def lfs_batch(store: HubStore, req: Request, sign: Signer, repo_type: str, repo_id: str) -> Response:
    """POST {repo}.git/info/lfs/objects/batch: a pre-signed PUT per new object; no actions if already uploaded."""
    repo = writable(store, req, repo_type, repo_id)
    body = req.json()
    if body.get("operation") != "upload":
        raise HubError(400, "Only the 'upload' LFS operation is supported by the local Hub test double")
    objects = []
    for obj in body.get("objects", []):
        oid, size = obj.get("oid"), obj.get("size")
        if not (isinstance(oid, str) and SHA256.match(oid) and isinstance(size, int) and size >= 0):
            error = {"code": 422, "message": f"Invalid object: oid {oid!r}, size {size!r}"}
            objects.append({"oid": str(oid), "size": size if isinstance(size, int) else 0, "error": error})
        elif repo.lfs.get(oid) == size:
            objects.append({"oid": oid, "size": size})
        else:
            target = f"{repo_type}/{repo_id}/{oid}/{size}"
            upload = {"href": f"{req.base}/lfs-storage/{target}?sig={sign(target)}", "expires_in": 3600}
            verify = {"href": f"{repo_url(req.base, repo_type, repo_id)}.git/info/lfs/objects/verify"}
            objects.append({"oid": oid, "size": size, "authenticated": True,
                            "actions": {"upload": upload, "verify": verify}})
    return Response(200, json.dumps({"transfer": "basic", "objects": objects}).encode(), dict(LFS_JSON))


def lfs_put(store: HubStore, req: Request, sign: Signer, repo_type: str, repo_id: str, oid: str,
            size: str) -> Response:
    """PUT to the pre-signed storage URL (no Authorization, like S3): the bytes must match the oid and size."""
    target = f"{repo_type}/{repo_id}/{oid}/{size}"
    if req.query.get("sig", [""])[-1] != sign(target):
        raise HubError(403, "SignatureDoesNotMatch: this upload URL was not issued by the LFS batch endpoint")
    repo = store.get(repo_type, repo_id)
    if repo is None:
        raise HubError(404, "Repository not found", "RepoNotFound")
    if len(req.body) != int(size):
        raise HubError(400, f"Size mismatch: the batch announced {size} bytes, the upload has {len(req.body)}")
    if hashlib.sha256(req.body).hexdigest() != oid:
        raise HubError(400, f"Checksum mismatch: the uploaded bytes do not hash to {oid}")
    store.put_blob(req.body)
    repo.lfs[oid] = len(req.body)
    return Response(200, b"", {"ETag": f'"{hashlib.md5(req.body).hexdigest()}"'})


def lfs_verify(store: HubStore, req: Request, repo_type: str, repo_id: str) -> Response:
    """POST {repo}.git/info/lfs/objects/verify {oid, size}: 404 unless that exact object was uploaded."""
    repo = writable(store, req, repo_type, repo_id)
    body = req.json()
    oid, size = body.get("oid"), body.get("size")
    if repo.lfs.get(oid) != size:
        raise HubError(404, f"LFS object {oid} of size {size} was not uploaded to {repo_id}")
    return ok({"success": True})
