"""JSON API endpoints of the local Hub test double (/api/...): whoami, repos, preupload, commit, tree, refs."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from email.message import Message
from typing import Any
from urllib.parse import parse_qs

from tests.fakes.hub.store import (
    REPO_NAME,
    REPO_TYPES,
    SHA1,
    Entry,
    HubError,
    HubStore,
    Repo,
    file_item,
    folder_item,
    tree_listing,
)

INVALID_TOKEN = "Invalid credentials in Authorization header"  # the client keys on this exact message


@dataclass
class Request:
    """One parsed HTTP request, with the authenticated user (None when anonymous)."""

    method: str
    parts: list[str]
    query: dict[str, list[str]]
    headers: Message
    body: bytes
    user: str | None
    base: str

    def json(self) -> Any:
        """The body as JSON; 400 if it is not."""
        try:
            return json.loads(self.body or b"{}")
        except ValueError as e:
            raise HubError(400, f"Invalid JSON body: {e}") from e

    def flag(self, name: str) -> bool:
        """A boolean query parameter (the client sends true/True/1)."""
        return self.query.get(name, ["false"])[-1].lower() in ("1", "true")


@dataclass
class Response:
    """Status, headers and body of an answer."""

    status: int
    body: bytes = b""
    headers: dict[str, str] | None = None


def ok(obj: Any, status: int = 200) -> Response:
    """A JSON answer."""
    return Response(status, json.dumps(obj).encode(), {"Content-Type": "application/json; charset=utf-8"})


def repo_url(base: str, repo_type: str, repo_id: str) -> str:
    """The web URL of a repo, as the Hub builds it."""
    return f"{base}/{'' if repo_type == 'model' else repo_type + 's/'}{repo_id}"


def readable(store: HubStore, req: Request, repo_type: str, repo_id: str) -> Repo:
    """The repo if `req.user` may read it; like the Hub, unknown and private look alike (401 anonymous, else 404)."""
    repo = store.get(repo_type, repo_id)
    if repo is None or (repo.private and req.user != repo.owner):
        raise HubError(401 if req.user is None else 404, "Repository not found", "RepoNotFound")
    return repo


def writable(store: HubStore, req: Request, repo_type: str, repo_id: str) -> Repo:
    """The repo if `req.user` may write to it: 401 anonymous, 403 someone else's public repo."""
    if req.user is None:
        raise HubError(401, "You must be authenticated to write to a repository")
    repo = readable(store, req, repo_type, repo_id)
    if req.user != repo.owner:
        raise HubError(403, f"You don't have the rights to write to {repo_id}")
    return repo


def whoami(store: HubStore, req: Request) -> Response:
    """GET /api/whoami-v2."""
    if req.user is None:
        raise HubError(401, INVALID_TOKEN)
    uid = hashlib.sha1(req.user.encode()).hexdigest()[:24]
    return ok({"type": "user", "id": uid, "name": req.user, "fullname": req.user, "email": None,
               "emailVerified": True, "canPay": False, "isPro": False, "periodEnd": None, "orgs": [],
               "avatarUrl": f"{req.base}/avatars/{req.user}.svg",
               "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": "write",
                                                                "createdAt": "2026-01-01T00:00:00.000Z"}}})


def create_repo(store: HubStore, req: Request) -> Response:
    """POST /api/repos/create: 409 with the URL when it exists (create_repo(exist_ok=True) relies on it)."""
    if req.user is None:
        raise HubError(401, "You must be authenticated to create a repository")
    body = req.json()
    repo_type, name = body.get("type") or "model", str(body.get("name") or "")
    namespace = body.get("organization") or req.user
    if repo_type not in REPO_TYPES:
        raise HubError(400, f"Invalid repo type: {repo_type}")
    if not REPO_NAME.match(name) or ".." in name or name.endswith(".git"):
        raise HubError(400, f"Invalid repo name: {name!r}")
    if namespace != req.user:
        raise HubError(403, f"You don't have the rights to create a {repo_type} under the namespace {namespace}")
    if repo_type == "space" and not body.get("sdk"):
        raise HubError(400, "A Space needs an sdk")
    repo_id = f"{namespace}/{name}"
    url = repo_url(req.base, repo_type, repo_id)
    if store.get(repo_type, repo_id):
        return Response(409, json.dumps({"error": f"You already created this {repo_type} repo", "url": url}).encode(),
                        {"Content-Type": "application/json", "X-Error-Message": "Repository already exists"})
    private = body.get("visibility") == "private" or bool(body.get("private"))
    repo = store.create(repo_type, repo_id, private, body.get("sdk"), req.user)
    return ok({"url": url, "name": repo_id, "id": hashlib.sha1(repo.created.encode()).hexdigest()[:24]})


def validate_yaml(store: HubStore, req: Request) -> Response:
    """POST /api/validate-yaml: only checks that the front matter is closed (the real Hub checks much more)."""
    content = str(req.json().get("content", ""))
    if content.startswith("---") and "\n---" not in content[3:]:
        return Response(400, json.dumps({"errors": [{"message": "Unclosed YAML front matter"}]}).encode(),
                        {"Content-Type": "application/json"})
    return ok({"errors": [], "warnings": []})


def repo_info(store: HubStore, req: Request, repo_type: str, repo_id: str, rest: list[str]) -> Response:
    """GET /api/{type}s/{repo}[/revision/{rev}]: id, sha, siblings, private, lastModified, ..."""
    repo = readable(store, req, repo_type, repo_id)
    commit = store.resolve(repo, rest[0] if rest else "main")
    blobs = req.flag("blobs")
    siblings = [{"rfilename": p, **_blob_fields(commit.files[p])} if blobs else {"rfilename": p}
                for p in sorted(commit.files)]
    info = {"_id": hashlib.sha1(repo.id.encode()).hexdigest()[:24], "id": repo.id, "author": repo.owner,
            "sha": commit.id, "lastModified": commit.date, "createdAt": repo.created, "private": repo.private,
            "gated": False, "disabled": False, "downloads": 0, "likes": 0, "tags": [], "siblings": siblings}
    if repo_type == "space":
        info.update(sdk=repo.sdk, runtime={"stage": "NO_APP_FILE", "hardware": {"current": None}})
    return ok(info)


def _blob_fields(entry: Entry) -> dict:
    """The extra sibling fields of repo info with blobs=true."""
    fields: dict[str, Any] = {"size": entry.size, "blobId": entry.oid}
    if entry.lfs:
        fields["lfs"] = {"size": entry.size, "sha256": entry.sha256, "pointerSize": entry.pointer_size}
    return fields


def preupload(store: HubStore, req: Request, repo_type: str, repo_id: str, rest: list[str]) -> Response:
    """POST .../preupload/{rev}: per file 'lfs' or 'regular', and the oid of the file already there (if any)."""
    repo = writable(store, req, repo_type, repo_id)
    commit = store.resolve(repo, rest[0])
    out = []
    for f in req.json().get("files", []):
        path, size = str(f["path"]), int(f["size"])
        try:
            sample = base64.b64decode(f.get("sample", ""), validate=True)
        except binascii.Error as e:
            raise HubError(400, f"Invalid sample for {path}") from e
        old = commit.files.get(path)
        out.append({"path": path, "uploadMode": "lfs" if store.is_lfs(commit, path, size, sample) else "regular",
                    "shouldIgnore": False, "oid": (old.sha256 if old.lfs else old.oid) if old else None})
    return ok({"files": out, "commitOid": commit.id})


def commit(store: HubStore, req: Request, repo_type: str, repo_id: str, rest: list[str]) -> Response:
    """POST .../commit/{rev} (ndjson header/file/lfsFile/deletedFile/deletedFolder): exactly one new commit."""
    repo = writable(store, req, repo_type, repo_id)
    branch = rest[0]
    if req.flag("create_pr"):
        raise HubError(400, "Pull requests are not supported by the local Hub test double")
    if branch not in repo.branches:  # the Hub commits to branches only, never onto a bare commit sha
        raise HubError(404, f"Invalid rev id: {branch} is not a branch", "RevisionNotFound")
    try:
        lines = [json.loads(line) for line in req.body.splitlines() if line.strip()]
    except ValueError as e:
        raise HubError(400, f"Invalid ndjson: {e}") from e
    if not lines or lines[0].get("key") != "header" or not lines[0]["value"].get("summary"):
        raise HubError(400, "The first line must be a header with a non-empty summary")
    header, head = lines[0]["value"], store.resolve(repo, branch)
    if header.get("parentCommit") not in (None, head.id):
        raise HubError(412, f"A commit has happened since {header['parentCommit']}: the parent is now {head.id}")
    files = dict(head.files)
    for line in lines[1:]:
        _apply(store, repo, files, line.get("key"), line.get("value") or {})
    changed = sorted({p for p in files.keys() | head.files.keys() if files.get(p) != head.files.get(p)})
    new = store.commit(repo, branch, header["summary"], header.get("description") or "", req.user, files, changed)
    url = f"{repo_url(req.base, repo_type, repo_id)}/commit/{new.id}"
    return ok({"success": True, "commitOid": new.id, "commitUrl": url, "hookOutput": "", "pullRequestUrl": None})


def _apply(store: HubStore, repo: Repo, files: dict[str, Entry], key: str | None, value: dict) -> None:
    """Apply one commit operation to `files`; 4xx for a bad path, an unknown LFS object or a missing file."""
    path = str(value.get("path", "")).strip("/")
    if not path or ".." in path.split("/") or path.split("/")[0] == ".git":
        raise HubError(400, f"Invalid path: {path!r}")
    if key == "file":
        try:
            files[path] = store.regular_entry(base64.b64decode(value.get("content", ""), validate=True))
        except binascii.Error as e:
            raise HubError(400, f"Invalid base64 content for {path}") from e
    elif key == "lfsFile":
        oid, size = str(value.get("oid", "")), value.get("size")
        if oid not in repo.lfs or (size is not None and size != repo.lfs[oid]):
            raise HubError(422, f"LFS object {oid} (size {size}) was not uploaded to {repo.id}: cannot commit {path}")
        files[path] = Entry(repo.lfs[oid], oid, True)
    elif key == "deletedFile":
        if files.pop(path, None) is None:
            raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
    elif key == "deletedFolder":
        gone = [p for p in files if p.startswith(path + "/")]
        if not gone:
            raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
        for p in gone:
            del files[p]
    else:
        raise HubError(400, f"Unknown commit operation: {key!r}")


def tree(store: HubStore, req: Request, repo_type: str, repo_id: str, rest: list[str]) -> Response:
    """GET .../tree/{rev}[/{path}]?recursive=: files (with lfs info) and folders; one page, no Link header."""
    repo = readable(store, req, repo_type, repo_id)
    commit = store.resolve(repo, rest[0])
    return ok(tree_listing(commit, "/".join(rest[1:]), req.flag("recursive")))


def paths_info(store: HubStore, req: Request, repo_type: str, repo_id: str, rest: list[str]) -> Response:
    """POST .../paths-info/{rev} (form or JSON 'paths'): the paths that exist; missing ones are left out."""
    repo = readable(store, req, repo_type, repo_id)
    commit = store.resolve(repo, rest[0])
    if "json" in (req.headers.get("Content-Type") or ""):
        paths = req.json().get("paths", [])
    else:
        paths = parse_qs(req.body.decode()).get("paths", [])
    out = []
    for path in (p.strip("/") for p in paths):
        if path in commit.files:
            out.append(file_item(commit, path))
        elif any(p.startswith(path + "/") for p in commit.files):
            out.append(folder_item(commit, path))
    return ok(out)


def create_branch(store: HubStore, req: Request, repo_type: str, repo_id: str, rest: list[str]) -> Response:
    """POST .../branch/{name} {startingPoint}: from main by default; 409 if the branch exists."""
    repo = writable(store, req, repo_type, repo_id)
    name = rest[0]
    if name in repo.branches:
        raise HubError(409, f"Reference already exists: refs/heads/{name}")
    if SHA1.match(name) or not name or " " in name or ".." in name:
        raise HubError(400, f"Invalid branch name: {name!r}")
    repo.branches[name] = store.resolve(repo, req.json().get("startingPoint") or "main").id
    return ok({})


def delete_branch(store: HubStore, req: Request, repo_type: str, repo_id: str, rest: list[str]) -> Response:
    """DELETE .../branch/{name}."""
    repo = writable(store, req, repo_type, repo_id)
    if rest[0] == "main" or repo.branches.pop(rest[0], None) is None:
        raise HubError(404 if rest[0] != "main" else 403, f"Cannot delete branch {rest[0]}", "RevisionNotFound")
    return ok({})


def list_commits(store: HubStore, req: Request, repo_type: str, repo_id: str, rest: list[str]) -> Response:
    """GET .../commits/{rev}: newest first."""
    repo = readable(store, req, repo_type, repo_id)
    return ok([{"id": c.id, "title": c.title, "message": c.message, "date": c.date, "authors": [{"user": c.author}]}
               for c in store.log(repo, rest[0])])


def refs(store: HubStore, req: Request, repo_type: str, repo_id: str, rest: list[str]) -> Response:
    """GET .../refs: branches (no tags, converts or pull requests here)."""
    repo = readable(store, req, repo_type, repo_id)
    branches = [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": sha} for n, sha in sorted(repo.branches.items())]
    return ok({"branches": branches, "converts": [], "tags": [], "pullRequests": []})


# (method, action after /api/{type}s/{ns}/{name}/) -> handler; None: the repo itself.
REPO_ACTIONS = {("GET", None): repo_info, ("GET", "revision"): repo_info, ("POST", "preupload"): preupload,
                ("POST", "commit"): commit, ("GET", "tree"): tree, ("POST", "paths-info"): paths_info,
                ("POST", "branch"): create_branch, ("DELETE", "branch"): delete_branch,
                ("GET", "commits"): list_commits, ("GET", "refs"): refs}


def api(store: HubStore, req: Request) -> Response:
    """Route /api/...: the account and repo-creation calls, then per-repo actions."""
    parts, method = req.parts[1:], "GET" if req.method == "HEAD" else req.method
    if parts == ["whoami-v2"] and method == "GET":
        return whoami(store, req)
    if parts == ["repos", "create"] and method == "POST":
        return create_repo(store, req)
    if parts == ["validate-yaml"] and method == "POST":
        return validate_yaml(store, req)
    if len(parts) >= 3 and parts[0] in ("models", "datasets", "spaces"):
        action = parts[3] if len(parts) > 3 else None
        handler = REPO_ACTIONS.get((method, action))
        needs_rev = action not in (None, "refs")
        if handler and (not needs_rev or len(parts) > 4):
            return handler(store, req, parts[0][:-1], f"{parts[1]}/{parts[2]}", parts[4:])
    raise HubError(404, f"Not found (local Hub test double): {req.method} /{'/'.join(req.parts)}")
