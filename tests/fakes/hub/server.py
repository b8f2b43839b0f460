"""A local test double of the Hugging Face Hub HTTP API, used only by tests (the real Hub is unreachable here).

It speaks just enough of the Hub's API for the real `huggingface_hub` client to run unchanged against it, through
`HF_ENDPOINT=<LocalHub.url>`: whoami, repo creation, preupload/commit (ndjson), the git-LFS batch + PUT + verify
upload, repo info, tree, paths-info, branches, commit log, refs and /resolve downloads. Behaviour mirrors the Hub
where tests depend on it: 401 without a valid token for writes (and for any request with a wrong token), 401
RepoNotFound for anonymous reads of unknown or private repos (404 when authenticated), 404 RevisionNotFound /
EntryNotFound, 409 on creating an existing repo, LFS oid (sha256) and size checked on upload and on commit, one
commit per commit call. It is no Hub: no Xet, no pull requests, no tags, no card validation, no pagination.

Standard library only: `http.server.ThreadingHTTPServer` on 127.0.0.1 in a daemon thread. State (repos, commits)
lives in memory and blob bytes under `root`, so `stop()` (the network going down) and `start(port=...)` keep it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import threading
import traceback
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fakes.hub.files import route_files
from tests.fakes.hub.routes import INVALID_TOKEN, Request, Response, api
from tests.fakes.hub.store import HubError, HubStore

DEFAULT_TOKEN = "hf_test_token_localhub_0123456789abcdef"
DEFAULT_USER = "testuser"


class LocalHub:
    """The Hub double: `start()` serves it, `commits()`/`files()` inspect what clients pushed."""

    def __init__(self, root: Path, tokens: dict[str, str] | None = None) -> None:
        self.root = Path(root)
        self.tokens = dict(tokens) if tokens is not None else {DEFAULT_TOKEN: DEFAULT_USER}
        self.store = HubStore(self.root)
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request, in arrival order
        self.url = ""
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._key = hashlib.sha256(b"local-hub-lfs-signing:" + str(self.root).encode()).digest()

    def start(self, port: int | None = None) -> str:
        """Serve on 127.0.0.1:`port` (default: the previous port, else a free one); return the base URL."""
        if self._server is not None:
            raise RuntimeError(f"LocalHub is already running at {self.url}")
        if port is None:
            port = int(self.url.rsplit(":", 1)[1]) if self.url else 0
        handler = type("BoundHandler", (_Handler,), {"hub": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"LocalHub{self.url}", daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        """Stop serving (clients then get connection errors); state and `url` are kept for a restart."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    @property
    def running(self) -> bool:
        """Whether the server is currently accepting connections."""
        return self._server is not None

    def __enter__(self) -> LocalHub:
        if not self.running:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def has_repo(self, repo_id: str, repo_type: str = "model") -> bool:
        """Whether the repo exists."""
        with self.store.lock:
            return self.store.get(repo_type, repo_id) is not None

    def commits(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> list[dict]:
        """Commit log of `revision`, newest first: id, title, message, files (changed paths), parents, date, author."""
        with self.store.lock:
            return [c.as_dict() for c in self.store.log(self._repo(repo_id, repo_type), revision)]

    def files(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> dict[str, bytes]:
        """Every file of the repo at `revision` (branch or commit sha): path -> bytes."""
        with self.store.lock:
            commit = self.store.resolve(self._repo(repo_id, repo_type), revision)
            return {path: self.store.blob(entry.sha256) for path, entry in sorted(commit.files.items())}

    def _repo(self, repo_id: str, repo_type: str):
        """The repo or KeyError."""
        repo = self.store.get(repo_type, repo_id)
        if repo is None:
            raise KeyError(f"no {repo_type} repo {repo_id} on the local Hub")
        return repo

    def sign(self, text: str) -> str:
        """HMAC for the pre-signed LFS upload URLs (they carry no Authorization header, like S3's)."""
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()

    def user(self, headers: Message) -> str | None:
        """The user a Bearer token belongs to; None without one; 401 for an unknown token (as the Hub, always)."""
        auth = (headers.get("Authorization") or "").strip()
        if not auth:
            return None
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or token.strip() not in self.tokens:
            raise HubError(401, INVALID_TOKEN)
        return self.tokens[token.strip()]

    def handle(self, method: str, target: str, headers: Message, body: bytes) -> Response:
        """Answer one request; errors become the Hub's error responses (JSON 'error' + X-Error-* headers)."""
        split = urlsplit(target)
        self.requests.append((method, split.path))
        parts = [unquote(p) for p in split.path.split("/")[1:]]
        try:
            req = Request(method, parts, parse_qs(split.query), headers, body, self.user(headers), self.url)
            with self.store.lock:
                return api(self.store, req) if parts[0] == "api" else route_files(self.store, req, self.sign)
        except HubError as e:
            return error_response(e)
        except (KeyError, TypeError, ValueError, IndexError) as e:  # malformed client payloads, not server bugs
            return error_response(HubError(400, f"Malformed request: {type(e).__name__}: {e}"))
        except Exception as e:  # a bug in the double: say so loudly (the client would retry a 500 for ~30 s)
            traceback.print_exc(file=sys.stderr)
            return error_response(HubError(500, f"LocalHub bug: {type(e).__name__}: {e}"))


def error_response(error: HubError) -> Response:
    """The Hub's error shape: JSON {"error": ...}, X-Error-Message, and X-Error-Code when it has one."""
    headers = {"Content-Type": "application/json", "X-Error-Message": error.message, **error.headers}
    if error.code:
        headers["X-Error-Code"] = error.code
    return Response(error.status, json.dumps({"error": error.message}).encode(), headers)


class _Handler(BaseHTTPRequestHandler):
    """Reads a whole request (Content-Length or chunked), hands it to the LocalHub, writes the answer."""

    hub: LocalHub
    protocol_version = "HTTP/1.0"  # one request per connection: a stopped server leaves no live keep-alive
    server_version = "LocalHubTestDouble/1.0"

    def _serve(self) -> None:
        body = self._read_body()  # always read it all: answering early would reset the client's upload
        resp = self.hub.handle(self.command, self.path, self.headers, body)
        self.send_response(resp.status)
        for name, value in (resp.headers or {}).items():
            self.send_header(name, " ".join(value.encode("latin-1", "replace").decode("latin-1").split()))
        self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(resp.body)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _serve

    def _read_body(self) -> bytes:
        """The request body, de-chunked."""
        if "chunked" not in (self.headers.get("Transfer-Encoding") or "").lower():
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        chunks = []
        while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
            pass
        return b"".join(chunks)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: tests read `LocalHub.requests` instead of the access log."""


def running_hub(tmp_path: Path, tokens: dict[str, str] | None = None) -> LocalHub:
    """A started LocalHub under `tmp_path/hub`; call `stop()` or use it as `with running_hub(tmp_path) as hub:`."""
    hub = LocalHub(Path(tmp_path) / "hub", tokens)
    hub.start()
    return hub
