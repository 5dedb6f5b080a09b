"""A fake Hugging Face hub on 127.0.0.1, so download tests never touch the network.

What it imitates, closely enough for the real ``huggingface_hub`` client (2.4, httpx2-based)
pointed at it with ``endpoint=hub.url`` (or ``HF_ENDPOINT`` in a subprocess):

* ``GET /api/models/{repo}[/revision/{rev}]``: ``model_info`` (``blobs=true`` adds sizes and
  LFS data to the siblings, ``expand=`` trims the answer, as on the hub);
* ``GET /api/models/{repo}/tree/{rev}[/{path}]``: ``list_repo_tree`` / ``list_repo_files``;
* ``GET /api/models?search=&author=&limit=``: ``list_models``;
* ``HEAD`` / ``GET /{repo}/resolve/{rev}/{filename}``: the headers the hub sends for an LFS
  file (``X-Repo-Commit``, ``X-Linked-Etag``, ``X-Linked-Size``, ``ETag``), and one
  ``Range: bytes=...`` per GET (206 with ``Content-Range``, or 416);
* the hub's error answers: ``X-Error-Code`` RepoNotFound / RevisionNotFound / EntryNotFound /
  GatedRepo with ``X-Error-Message`` and a JSON ``{"error": ...}`` body, which the client turns
  into RepositoryNotFoundError, RevisionNotFoundError, RemoteEntryNotFoundError, GatedRepoError.

What it does not imitate: tokens (ignored), private repos, datasets and spaces, uploads,
pagination, the redirect to a CDN (content is answered directly, which the client accepts),
Xet storage (no ``X-Xet-*`` header is ever sent, so the client takes its plain HTTP path),
small non-LFS files (every file is an LFS file whose cache blob is named by its sha256), and
history (each repo has one fixed commit sha, whatever is added to it; any other 40-hex
revision is accepted as an older commit with the same files, so pinned references resolve).

Faults (cut, corrupt, stall) are queued per file and each is used up by the next download of
that file: a GET with no Range or an open-ended one (``bytes=N-``, a resume). Bounded Range
reads (a GGUF header peek) are always served cleanly. ``Request.fault`` in the log says which
request got which fault.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import re
import socket
import sys
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

CHUNK_SIZE = 256 * 1024
# Fixed, so that model_info / tree answers are stable between runs.
TIMESTAMP = "2024-01-01T00:00:00.000Z"
# Wide enough that every client hash sees the change, small enough to leave the length alone.
CORRUPT_SPAN = 64

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
# Words that follow a repo id in API paths, used to guess the id of a repo we do not know.
_API_SUBPATHS = {"tree", "revision", "resolve", "refs", "commits"}

# sha256 of files on disk, keyed by (path, size, mtime) so that a model added to many repos,
# or by many tests, is read once per session.
_hash_cache: dict[tuple[str, int, int], str] = {}
_hash_lock = threading.Lock()


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(4 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def _sha256_of(source: Path | bytes) -> str:
    if isinstance(source, bytes):
        return hashlib.sha256(source).hexdigest()
    stat = source.stat()
    key = (str(source), stat.st_size, stat.st_mtime_ns)
    with _hash_lock:
        if key not in _hash_cache:
            _hash_cache[key] = _hash_file(source)
        return _hash_cache[key]


@dataclass(frozen=True)
class Request:
    """One request as the server saw it.

    ``path`` is as sent (query string included); ``repo_id`` and ``filename`` are set once the
    path is understood (``filename`` only for resolve URLs); ``status`` is None when no answer
    was sent (stall); ``fault`` is the fault this request used up, e.g. "cut:1000".
    """

    method: str
    path: str
    range: str | None
    status: int | None
    body_bytes_sent: int
    repo_id: str | None = None
    filename: str | None = None
    fault: str | None = None

    @property
    def is_content_get(self) -> bool:
        return self.method == "GET" and self.filename is not None


@dataclass
class _Blob:
    """A file's bytes (on disk or in memory) and the LFS facts the hub publishes about it."""

    source: Path | bytes
    size: int
    sha256: str

    @classmethod
    def of(cls, source: Path | bytes) -> _Blob:
        size = len(source) if isinstance(source, bytes) else source.stat().st_size
        return cls(source=source, size=size, sha256=_sha256_of(source))

    @property
    def pointer(self) -> bytes:
        # The git-lfs pointer file that the repo's git tree really holds for this blob.
        lines = ["version https://git-lfs.github.com/spec/v1", f"oid sha256:{self.sha256}"]
        return "\n".join([*lines, f"size {self.size}", ""]).encode()

    @property
    def git_oid(self) -> str:
        pointer = self.pointer
        return hashlib.sha1(b"blob %d\0" % len(pointer) + pointer).hexdigest()

    def chunks(self, start: int, end: int) -> Iterator[bytes]:
        """Bytes start..end (inclusive) in CHUNK_SIZE pieces, read lazily from disk."""
        if isinstance(self.source, bytes):
            for offset in range(start, end + 1, CHUNK_SIZE):
                yield self.source[offset : min(offset + CHUNK_SIZE, end + 1)]
            return
        with self.source.open("rb") as stream:
            stream.seek(start)
            remaining = end + 1 - start
            while remaining > 0 and (chunk := stream.read(min(CHUNK_SIZE, remaining))):
                remaining -= len(chunk)
                yield chunk


@dataclass
class _Repo:
    repo_id: str
    files: dict[str, _Blob] = field(default_factory=dict)
    gated: bool = False
    gate_metadata: bool = False

    @property
    def sha(self) -> str:
        return hashlib.sha1(f"fakehub:{self.repo_id}".encode()).hexdigest()


@dataclass(frozen=True)
class _Fault:
    kind: str  # "cut", "corrupt" or "stall"
    amount: int | float = 0  # bytes before the cut, or seconds of stall

    @property
    def label(self) -> str:
        return self.kind if self.kind == "corrupt" else f"{self.kind}:{self.amount}"


class _HubError(Exception):
    """An error answer in the hub's format."""

    def __init__(self, status: int, code: str | None, message: str, headers=None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


@dataclass
class _Record:
    """Mutable twin of Request, filled in while the answer is being written."""

    method: str
    path: str
    range: str | None
    repo_id: str | None = None
    filename: str | None = None
    status: int | None = None
    body_bytes_sent: int = 0
    fault: str | None = None


def _truthy(query: dict[str, list[str]], name: str) -> bool:
    return query.get(name, ["false"])[-1].lower() in ("1", "true")


def _parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end) for one satisfiable ``bytes=`` range; None means "send it all".

    Raises _HubError(416) for a range past the end, as the CDN does. Multi-range and malformed
    headers are ignored (RFC 9110 allows that), so the whole file goes out with 200.
    """
    match = _RANGE.fullmatch(header.replace(" ", "")) if header else None
    if not match or match.group(1) == match.group(2) == "":
        return None
    first, last = match.groups()
    if first == "":  # suffix range: the last N bytes
        start, end = max(size - int(last), 0), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        unsatisfiable = {"Content-Range": f"bytes */{size}"}
        raise _HubError(416, None, "Requested range not satisfiable", unsatisfiable)
    return start, end


def _corrupt(chunk: bytes, offset: int, span: tuple[int, int]) -> bytes:
    """Flip every bit of the part of `chunk` (which starts at file `offset`) inside `span`."""
    lo, hi = max(span[0], offset), min(span[1], offset + len(chunk))
    if lo >= hi:
        return chunk
    spoiled = bytearray(chunk)
    for i in range(lo - offset, hi - offset):
        spoiled[i] ^= 0xFF
    return bytes(spoiled)


class FakeHub:
    """The hub's state (repos, faults, request log) and the HTTP server that serves it."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self._address = (host, port)
        self._lock = threading.Lock()
        self._repos: dict[str, _Repo] = {}
        self._faults: dict[tuple[str, str], deque[_Fault]] = {}
        self._always_corrupt: set[tuple[str, str]] = set()
        self._log: list[_Record] = []
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeHub is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeHub:
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server(self._address, _Handler, hub=self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()  # wakes stalled handlers
        self._server.shutdown()
        self._server.close_connections()  # keep-alive handlers would otherwise wait forever
        self._server.server_close()
        assert self._thread is not None
        self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # ---- content ---------------------------------------------------------------------------------

    def add_file(self, repo_id: str, filename: str, source: Path | str | bytes) -> None:
        """Serve `source` (a path, or the bytes themselves) as LFS file `filename` of model repo
        `repo_id`, created if new. A path is read on each download, never held in memory.
        """
        blob = _Blob.of(Path(source) if isinstance(source, str) else source)
        with self._lock:
            self._repos.setdefault(repo_id, _Repo(repo_id)).files[filename.strip("/")] = blob

    def add_gated_repo(self, repo_id: str, *, gate_metadata: bool = False) -> None:
        """Make `repo_id` (created if new) a gated repo, seen by a client without access.

        As on the hub, its metadata stays public (model_info says ``gated="manual"``, the tree
        and search work) and only file content (HEAD/GET resolve) answers 401 GatedRepo.
        ``gate_metadata=True`` makes every request for the repo answer that 401.
        """
        with self._lock:
            repo = self._repos.setdefault(repo_id, _Repo(repo_id))
            repo.gated, repo.gate_metadata = True, gate_metadata

    def commit_sha(self, repo_id: str) -> str:
        return _Repo(repo_id).sha

    def sha256(self, repo_id: str, filename: str) -> str:
        with self._lock:
            return self._repos[repo_id].files[filename].sha256

    # ---- faults ----------------------------------------------------------------------------------

    def cut_next_download(self, repo_id: str, filename: str, after_bytes: int, times: int = 1):
        """Announce the full length, then hang up after `after_bytes` bytes of body."""
        self._queue_fault(repo_id, filename, _Fault("cut", after_bytes), times)

    def corrupt_next_download(self, repo_id: str, filename: str, times: int = 1) -> None:
        """Send the right length with CORRUPT_SPAN bytes flipped in the middle of what is sent."""
        self._queue_fault(repo_id, filename, _Fault("corrupt"), times)

    def stall_next_download(self, repo_id: str, filename: str, seconds: float, times: int = 1):
        """Read the request, send nothing for `seconds` (or until stop()), then hang up."""
        self._queue_fault(repo_id, filename, _Fault("stall", seconds), times)

    def corrupt_always(self, repo_id: str, filename: str, on: bool = True) -> None:
        """Corrupt every content GET of the file (like corrupt_next_download) until turned off."""
        with self._lock:
            if on:
                self._always_corrupt.add((repo_id, filename))
            else:
                self._always_corrupt.discard((repo_id, filename))

    def _queue_fault(self, repo_id: str, filename: str, fault: _Fault, times: int) -> None:
        with self._lock:
            self._faults.setdefault((repo_id, filename), deque()).extend([fault] * times)

    def _take_fault(self, repo_id: str, filename: str) -> _Fault | None:
        with self._lock:
            queued = self._faults.get((repo_id, filename))
            if queued:
                return queued.popleft()
            if (repo_id, filename) in self._always_corrupt:
                return _Fault("corrupt")
            return None

    # ---- request log -----------------------------------------------------------------------------

    @property
    def requests(self) -> list[Request]:
        """A snapshot of the log, oldest first."""
        with self._lock:
            return [Request(**dataclasses.asdict(record)) for record in self._log]

    def bytes_sent(self, repo_id: str | None = None, filename: str | None = None) -> int:
        """Body bytes sent by content GETs, for one file, one repo, or everything."""
        return sum(
            r.body_bytes_sent
            for r in self.requests
            if r.is_content_get and repo_id in (None, r.repo_id) and filename in (None, r.filename)
        )

    def reset_log(self) -> None:
        with self._lock:
            self._log.clear()

    def _record(self, method: str, path: str, range_header: str | None) -> _Record:
        record = _Record(method, path, range_header)
        with self._lock:
            self._log.append(record)
        return record

    def _update(self, record: _Record, **changes) -> None:
        with self._lock:
            for name, value in changes.items():
                setattr(record, name, value)

    def _count(self, record: _Record, nbytes: int) -> None:
        with self._lock:
            record.body_bytes_sent += nbytes

    # ---- lookups used by the handler (raise _HubError) -------------------------------------------

    def _split_repo(self, segments: list[str]) -> tuple[str, list[str]]:
        """Split path segments into (repo_id, rest), preferring repo ids we know."""
        with self._lock:
            for n in (2, 1):
                if len(segments) >= n and "/".join(segments[:n]) in self._repos:
                    return "/".join(segments[:n]), segments[n:]
        n = 2 if len(segments) >= 2 and segments[1] not in _API_SUBPATHS else 1
        return "/".join(segments[:n]), segments[n:]

    def _repo(self, repo_id: str, *, content: bool) -> _Repo:
        with self._lock:
            repo = self._repos.get(repo_id)
            # A copy, so that a test adding files meanwhile cannot change it under an answer.
            repo = repo and dataclasses.replace(repo, files=dict(repo.files))
        if repo is None:
            raise _HubError(404, "RepoNotFound", "Repository not found")
        if repo.gated and (content or repo.gate_metadata):
            raise _HubError(
                401,
                "GatedRepo",
                f"Access to model {repo_id} is restricted. You must have access to it and be "
                "authenticated to access it. Please log in.",
            )
        return repo

    @staticmethod
    def _check_revision(repo: _Repo, revision: str) -> None:
        # A full 40-hex sha is taken as an older commit of the repo (pinned catalogue entries).
        if revision not in ("main", repo.sha) and not re.fullmatch(r"[0-9a-f]{40}", revision):
            raise _HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")

    @staticmethod
    def _blob(repo: _Repo, filename: str) -> _Blob:
        if filename not in repo.files:
            # The hub names the commit even here; the client caches the miss under .no_exist/.
            raise _HubError(
                404,
                "EntryNotFound",
                f'{filename} does not exist on "main"',
                {"X-Repo-Commit": repo.sha},
            )
        return repo.files[filename]

    def _search(self, query: dict[str, list[str]]) -> list[_Repo]:
        term = query.get("search", [""])[-1].lower()
        author = query.get("author", [""])[-1]
        with self._lock:
            repos = sorted(self._repos.values(), key=lambda r: r.repo_id)
        found = [
            r
            for r in repos
            if term in r.repo_id.lower() and (not author or r.repo_id.startswith(author + "/"))
        ]
        limit = query.get("limit")
        return found[: int(limit[-1])] if limit else found


# ---- JSON documents ------------------------------------------------------------------------------


def _sibling(name: str, blob: _Blob, with_blobs: bool) -> dict:
    if not with_blobs:  # the hub lists only names unless asked for blobs=true
        return {"rfilename": name}
    lfs = {"sha256": blob.sha256, "size": blob.size, "pointerSize": len(blob.pointer)}
    return {"rfilename": name, "size": blob.size, "blobId": blob.git_oid, "lfs": lfs}


def _model_summary(repo: _Repo) -> dict:
    """The fields /api/models (list_models) returns for each repo."""
    return {
        "_id": repo.sha[:24],
        "id": repo.repo_id,
        "modelId": repo.repo_id,
        "private": False,
        "gated": "manual" if repo.gated else False,
        "downloads": 0,
        "likes": 0,
        "trendingScore": 0,
        "tags": ["gguf"],
        "library_name": "gguf",
        "createdAt": TIMESTAMP,
    }


def _model_info(repo: _Repo, query: dict[str, list[str]]) -> dict:
    with_blobs = _truthy(query, "blobs")
    info = {
        **_model_summary(repo),
        "author": repo.repo_id.split("/")[0] if "/" in repo.repo_id else None,
        "sha": repo.sha,
        "lastModified": TIMESTAMP,
        "disabled": False,
        "siblings": [_sibling(n, b, with_blobs) for n, b in sorted(repo.files.items())],
        "spaces": [],
        "usedStorage": sum(b.size for b in repo.files.values()),
    }
    expand = query.get("expand")
    if expand:  # as on the hub: only the asked properties, plus the ids
        info = {k: v for k, v in info.items() if k in {"_id", "id", *expand}}
    return info


def _tree_file(path: str, blob: _Blob, repo: _Repo, expand: bool) -> dict:
    entry = {
        "type": "file",
        "oid": blob.git_oid,
        "size": blob.size,
        "path": path,
        "lfs": {"oid": blob.sha256, "size": blob.size, "pointerSize": len(blob.pointer)},
    }
    if expand:
        entry["lastCommit"] = {"id": repo.sha, "title": "Upload", "date": TIMESTAMP}
    return entry


def _tree_folder(path: str) -> dict:
    oid = hashlib.sha1(path.encode()).hexdigest()
    return {"type": "directory", "oid": oid, "path": path, "size": 0}


def _tree(repo: _Repo, folder: str, recursive: bool, expand: bool) -> list[dict]:
    """Entries under `folder` ("" for the root): files, and the folders they sit in."""
    prefix = f"{folder}/" if folder else ""
    files, folders = [], set()
    for path, blob in sorted(repo.files.items()):
        if not path.startswith(prefix):
            continue
        parts = path[len(prefix) :].split("/")
        if len(parts) == 1 or recursive:
            files.append(_tree_file(path, blob, repo, expand))
        depth = len(parts) - 1 if recursive else min(len(parts) - 1, 1)
        folders.update(prefix + "/".join(parts[: i + 1]) for i in range(depth))
    if not files and not folders:
        raise _HubError(404, "EntryNotFound", f'{folder} does not exist on "main"')
    return [_tree_folder(f) for f in sorted(folders)] + files


# ---- HTTP ----------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, handler, *, hub: FakeHub):
        self.hub = hub
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request, client_address):
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request, client_address):
        # A client hanging up mid-answer is routine here (faults, timeouts); bugs still print.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and Content-Length framing, as httpx2 expects
    server_version = "FakeHub/1"
    timeout = 60  # idle keep-alive connections give their thread back eventually
    server: _Server

    def log_message(self, format, *args):  # quiet: the request log is in FakeHub.requests
        pass

    def do_GET(self):
        self._dispatch(head_only=False)

    def do_HEAD(self):
        self._dispatch(head_only=True)

    # ---- routing ---------------------------------------------------------------------------------

    def _dispatch(self, head_only: bool) -> None:
        hub = self.server.hub
        url = urlsplit(self.path)
        # Split before unquoting: the client sends a revision or tree path with "/" as %2F.
        segments = [unquote(s) for s in url.path.split("/")[1:]]
        query = parse_qs(url.query)
        record = hub._record(self.command, self.path, self.headers.get("Range"))
        try:
            if segments[:2] == ["api", "models"]:
                self._api_models(segments[2:], query, record, head_only)
            elif "resolve" in segments[1:3]:
                self._resolve(segments, record, head_only)
            else:
                raise _HubError(404, None, f"Not found: {url.path}")
        except _HubError as error:
            self._send_error(error, record, head_only)

    def _api_models(self, segments, query, record, head_only) -> None:
        hub = self.server.hub
        if not segments or segments == [""]:
            self._send_json([_model_summary(r) for r in hub._search(query)], record, head_only)
            return
        repo_id, rest = hub._split_repo(segments)
        hub._update(record, repo_id=repo_id)
        repo = hub._repo(repo_id, content=False)
        if not rest:
            self._send_json(_model_info(repo, query), record, head_only)
        elif rest[0] == "revision" and len(rest) == 2:
            hub._check_revision(repo, rest[1])
            self._send_json(_model_info(repo, query), record, head_only)
        elif rest[0] == "tree" and len(rest) >= 2:
            hub._check_revision(repo, rest[1])
            folder = "/".join(rest[2:]).strip("/")
            entries = _tree(repo, folder, _truthy(query, "recursive"), _truthy(query, "expand"))
            self._send_json(entries, record, head_only)
        else:
            raise _HubError(404, None, f"Not found: {self.path}")

    def _resolve(self, segments, record, head_only) -> None:
        hub = self.server.hub
        at = 2 if len(segments) > 2 and segments[2] == "resolve" else 1
        repo_id, rest = "/".join(segments[:at]), segments[at + 1 :]
        hub._update(record, repo_id=repo_id)
        repo = hub._repo(repo_id, content=True)
        if not rest:
            raise _HubError(404, None, f"Not found: {self.path}")
        hub._check_revision(repo, rest[0])
        filename = "/".join(rest[1:])
        blob = hub._blob(repo, filename)
        hub._update(record, filename=filename)
        if head_only:
            self._send_content_headers(200, blob, repo, filename, None, record)
        else:
            self._send_content(repo, filename, blob, record)

    # ---- answers ---------------------------------------------------------------------------------

    def _send_json(self, document, record, head_only, status=200, headers=None) -> None:
        body = json.dumps(document).encode()
        # Logged before the answer goes out, so a client that has it never sees a stale log.
        self.server.hub._update(record, status=status)
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if not head_only:
            self.wfile.write(body)
            self.server.hub._count(record, len(body))

    def _send_error(self, error: _HubError, record, head_only) -> None:
        headers = dict(error.headers)
        if error.code:
            headers["X-Error-Code"] = error.code
        headers["X-Error-Message"] = error.message
        self._send_json({"error": error.message}, record, head_only, error.status, headers)

    def _send_content_headers(self, status, blob: _Blob, repo: _Repo, filename, span, record):
        start, end = span or (0, blob.size - 1)
        self.server.hub._update(record, status=status)
        self.send_response(status)
        # What the client reads for an LFS file: etag = sha256 (names the cache blob), size.
        self.send_header("X-Repo-Commit", repo.sha)
        self.send_header("X-Linked-Etag", f'"{blob.sha256}"')
        self.send_header("X-Linked-Size", str(blob.size))
        self.send_header("ETag", f'"{blob.sha256}"')
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        name = filename.rsplit("/", 1)[-1]
        self.send_header(
            "Content-Disposition",
            f"inline; filename*=UTF-8''{quote(name)}; filename=\"{name}\";",
        )
        self.send_header("Content-Length", str(end + 1 - start))
        if span is not None:
            self.send_header("Content-Range", f"bytes {start}-{end}/{blob.size}")
        self.end_headers()

    def _send_content(self, repo: _Repo, filename: str, blob: _Blob, record) -> None:
        hub = self.server.hub
        range_header = self.headers.get("Range")
        span = _parse_range(range_header, blob.size)  # a 416 leaves faults queued
        # Faults hit downloads (no Range, or an open-ended resume "bytes=N-"); bounded reads
        # such as a client peeking at the GGUF header are served cleanly and keep them queued.
        bounded = bool(range_header) and not range_header.strip().endswith("-")
        fault = None if bounded else hub._take_fault(repo.repo_id, filename)
        hub._update(record, fault=fault.label if fault else None)
        if fault and fault.kind == "stall":
            hub._stopping.wait(fault.amount)
            self.close_connection = True
            return
        self._send_content_headers(206 if span else 200, blob, repo, filename, span, record)
        start, end = span or (0, blob.size - 1)
        limit = int(fault.amount) if fault and fault.kind == "cut" else end + 1 - start
        spoil = None
        if fault and fault.kind == "corrupt":
            middle = start + (end + 1 - start) // 2
            spoil = (middle, middle + CORRUPT_SPAN)
        self._stream(blob, start, end, limit, spoil, record)

    def _stream(self, blob: _Blob, start, end, limit, spoil, record) -> None:
        """Write the body, `limit` bytes at most, counting bytes as they go out."""
        hub, offset, sent = self.server.hub, start, 0
        for chunk in blob.chunks(start, end):
            piece = chunk[: limit - sent]
            if spoil:
                piece = _corrupt(piece, offset, spoil)
            # Counted before the write so a client that already holds the bytes never sees
            # a lower count; taken back if the write fails.
            hub._count(record, len(piece))
            try:
                self.wfile.write(piece)
            except OSError:
                hub._count(record, -len(piece))
                self.close_connection = True
                return
            sent, offset = sent + len(piece), offset + len(chunk)
            if sent >= limit:
                break
        if sent < end + 1 - start:  # cut: the client must see the connection end early
            self.close_connection = True


@contextlib.contextmanager
def serve_hub() -> Iterator[FakeHub]:
    """A started FakeHub, stopped on exit."""
    with FakeHub() as hub:
        yield hub
