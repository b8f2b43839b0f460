"""In-memory git-like state of the local Hub test double (repos, branches, commits, blobs); no HTTP here."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

REPO_TYPES = ("model", "dataset", "space")
SHA1 = re.compile(r"^[0-9a-f]{40}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
REPO_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
LFS_THRESHOLD = 10 * 1024 * 1024  # the Hub stores anything above 10 MB in LFS, whatever its name
# What the Hub writes in a new repo's .gitattributes (abridged): these names always go to LFS.
LFS_PATTERNS = ["*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gz", "*.h5", "*.joblib", "*.lfs.*",
                "*.mlmodel", "*.model", "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.ot", "*.parquet", "*.pb",
                "*.pickle", "*.pkl", "*.pt", "*.pth", "*.rar", "*.safetensors", "saved_model/**/*", "*.tar.*",
                "*.tar", "*.tflite", "*.tgz", "*.wasm", "*.xz", "*.zip", "*.zst", "*tfevents*"]
GITATTRIBUTES = "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in LFS_PATTERNS).encode()


class HubError(Exception):
    """An HTTP error the server answers with: status, X-Error-Code, a message (the Hub's JSON 'error'), headers."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}


def now() -> str:
    """The Hub's timestamp format: ISO 8601 with milliseconds and a Z."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def git_blob_sha1(data: bytes) -> str:
    """Git's object id of a blob (what the Hub calls a regular file's oid)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The git-LFS pointer file git stores in place of an LFS object."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


@dataclass(frozen=True)
class Entry:
    """One file in one commit's tree."""

    size: int
    sha256: str
    lfs: bool
    blob_sha1: str = ""  # git blob id of the content, for regular files

    @property
    def oid(self) -> str:
        """Git blob id: of the content for a regular file, of the pointer for an LFS file (as on the Hub)."""
        return git_blob_sha1(lfs_pointer(self.sha256, self.size)) if self.lfs else self.blob_sha1

    @property
    def pointer_size(self) -> int:
        """Size of the LFS pointer file."""
        return len(lfs_pointer(self.sha256, self.size))


@dataclass
class Commit:
    """One commit: a full snapshot of the tree plus what changed relative to its parent."""

    id: str
    title: str
    message: str
    parents: list[str]
    date: str
    author: str
    files: dict[str, Entry]
    changed: list[str]

    def as_dict(self) -> dict:
        """The commit as LocalHub.commits returns it."""
        return {"id": self.id, "title": self.title, "message": self.message, "files": list(self.changed),
                "parents": list(self.parents), "date": self.date, "author": self.author}


@dataclass
class Repo:
    """A repo: visibility, branches pointing at commits, and the LFS objects uploaded to it."""

    type: str
    id: str
    private: bool
    sdk: str | None
    created: str
    branches: dict[str, str] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)
    lfs: dict[str, int] = field(default_factory=dict)  # sha256 -> size of LFS objects uploaded to this repo

    @property
    def owner(self) -> str:
        """The namespace (user) that owns the repo."""
        return self.id.split("/")[0]


class HubStore:
    """All repos of the double; blob bytes live under `root/objects/<sha256>`; one lock guards everything."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        (self.root / "objects").mkdir(parents=True, exist_ok=True)
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lock = threading.RLock()
        self._seq = 0  # makes every commit id unique even for identical trees and messages

    def put_blob(self, data: bytes) -> str:
        """Store bytes once under their sha256; return the sha256."""
        sha = hashlib.sha256(data).hexdigest()
        path = self.root / "objects" / sha
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        return sha

    def blob(self, sha256: str) -> bytes:
        """The bytes of a stored blob."""
        return (self.root / "objects" / sha256).read_bytes()

    def has_blob(self, sha256: str) -> bool:
        """Whether bytes with this sha256 are stored."""
        return (self.root / "objects" / sha256).is_file()

    def get(self, repo_type: str, repo_id: str) -> Repo | None:
        """The repo, or None."""
        return self.repos.get((repo_type, repo_id))

    def create(self, repo_type: str, repo_id: str, private: bool, sdk: str | None, author: str) -> Repo:
        """A new repo with the Hub's 'initial commit' (.gitattributes) on main."""
        repo = Repo(repo_type, repo_id, private, sdk, now())
        self.repos[(repo_type, repo_id)] = repo
        initial = {".gitattributes": self.regular_entry(GITATTRIBUTES)}
        if repo_type == "space":  # the Hub seeds a Space with a README whose front matter names the SDK
            front = f"---\ntitle: {repo_id.split('/')[1]}\nsdk: {sdk}\n---\n".encode()
            initial["README.md"] = self.regular_entry(front)
        self.commit(repo, "main", "initial commit", "", author, initial, list(initial))
        return repo

    def regular_entry(self, data: bytes) -> Entry:
        """Store `data` and describe it as a regular (non-LFS) git file."""
        return Entry(len(data), self.put_blob(data), False, git_blob_sha1(data))

    def commit(self, repo: Repo, branch: str, title: str, message: str, author: str, files: dict[str, Entry],
               changed: list[str]) -> Commit:
        """Record a commit with tree `files` on `branch` (created if new) and move the branch to it."""
        parent = repo.branches.get(branch)
        self._seq += 1
        tree = sorted((path, e.sha256, e.lfs) for path, e in files.items())
        payload = json.dumps([parent, title, message, tree, self._seq, repo.type, repo.id]).encode()
        commit = Commit(hashlib.sha1(payload).hexdigest(), title, message, [parent] if parent else [], now(),
                        author, dict(files), changed)
        repo.commits[commit.id] = commit
        repo.branches[branch] = commit.id
        return commit

    def resolve(self, repo: Repo, revision: str) -> Commit:
        """The commit a branch name or a full commit sha points at; RevisionNotFound otherwise."""
        sha = repo.branches.get(revision)
        if sha is None and SHA1.match(revision) and revision in repo.commits:
            sha = revision
        if sha is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return repo.commits[sha]

    def log(self, repo: Repo, revision: str) -> list[Commit]:
        """First-parent history of `revision`, newest first."""
        commit: Commit | None = self.resolve(repo, revision)
        out = []
        while commit is not None:
            out.append(commit)
            commit = repo.commits[commit.parents[0]] if commit.parents else None
        return out

    def is_lfs(self, commit: Commit, path: str, size: int, sample: bytes) -> bool:
        """The Hub's upload-mode rule: LFS if .gitattributes says so, if over 10 MB, or if the content is binary."""
        if size > LFS_THRESHOLD or b"\0" in sample:
            return True
        attrs = commit.files.get(".gitattributes")
        text = self.blob(attrs.sha256).decode(errors="replace") if attrs else ""
        for line in text.splitlines():
            pattern, *attributes = line.split() or [""]
            if "filter=lfs" in attributes and _matches(pattern, path):
                return True
        return False


def _matches(pattern: str, path: str) -> bool:
    """gitattributes matching, simplified: patterns without '/' match the basename, others the whole path."""
    if "/" not in pattern:
        return fnmatch.fnmatchcase(path.rsplit("/", 1)[-1], pattern)
    return fnmatch.fnmatchcase(path, pattern.replace("**/", "*"))


def tree_listing(commit: Commit, folder: str, recursive: bool) -> list[dict]:
    """The /tree API's items under `folder` (directories then files); EntryNotFound if it is not a folder."""
    prefix = folder.strip("/") + "/" if folder.strip("/") else ""
    paths = [p for p in commit.files if p.startswith(prefix)]
    if prefix and not paths:
        raise HubError(404, f"{folder} does not exist on the revision", "EntryNotFound")
    folders, files = set(), []
    for path in paths:
        rest = path[len(prefix):].split("/")
        for depth in range(1, len(rest) if recursive else min(2, len(rest))):
            folders.add(prefix + "/".join(rest[:depth]))
        if recursive or len(rest) == 1:
            files.append(path)
    return [folder_item(commit, f) for f in sorted(folders)] + [file_item(commit, p) for p in sorted(files)]


def file_item(commit: Commit, path: str) -> dict:
    """A file as the /tree and /paths-info APIs describe it."""
    entry = commit.files[path]
    item = {"type": "file", "oid": entry.oid, "size": entry.size, "path": path}
    if entry.lfs:
        item["lfs"] = {"oid": entry.sha256, "size": entry.size, "pointerSize": entry.pointer_size}
    return item


def folder_item(commit: Commit, path: str) -> dict:
    """A directory as the /tree and /paths-info APIs describe it (oid: a hash over its files)."""
    inside = sorted((p, e.oid) for p, e in commit.files.items() if p.startswith(path + "/"))
    return {"type": "directory", "oid": hashlib.sha1(json.dumps(inside).encode()).hexdigest(), "size": 0,
            "path": path}
