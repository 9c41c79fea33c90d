"""The labelling server: a static page plus a small JSON API over one folder (stdlib http.server).

Routes (``path`` is an item id: the audio file's path relative to the folder):

- ``GET /`` and ``GET /static/<file>``: the page (``train/label/static/``);
- ``GET /api/items``: every audio file with its label -> ``{"root", "items": [...]}``;
- ``GET /api/item?path=``: one item, its label re-read from disk;
- ``GET /api/peaks?path=&columns=N``: waveform min/max per column;
- ``GET /api/spectrogram.png?path=`` and ``GET /api/audio.wav?path=``: what the page draws and plays;
- ``PUT /api/label?path=`` with ``{"kind", "keyword_spans"}``: validate and save atomically,
  answer with the saved label. The page calls it on every change, so closing the page or the
  server loses nothing that was shown as saved.

Only listed audio files are served. The server binds to 127.0.0.1 by default, answers only
requests whose Host is that address (no DNS rebinding from a web page), and takes writes
only as ``application/json`` (which a cross-site form cannot send).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import mimetypes
import socketserver
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from device.params import AudioParams
from train.label import render
from train.label.catalog import Catalog, Item, describe
from train.label.labels import KEYWORD_KINDS, KINDS, Label, LabelError, normalise_spans, read_label, write_label

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
MAX_BODY_BYTES = 64 * 1024
MAX_PEAK_COLUMNS = 4000
AUDIO_CACHE_ITEMS = 8


class ApiError(Exception):
    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


@dataclasses.dataclass
class LabelApp:
    """Everything a request needs: the folder and the audio numbers to render with."""

    catalog: Catalog
    params: AudioParams = dataclasses.field(default_factory=AudioParams)

    def __post_init__(self) -> None:
        self._load = functools.lru_cache(maxsize=AUDIO_CACHE_ITEMS)(self._load_uncached)

    def item(self, rel: str) -> tuple[Path, Item]:
        try:
            path = self.catalog.resolve(rel)
        except KeyError:
            raise ApiError(HTTPStatus.NOT_FOUND, f"no audio file {rel!r} in this folder") from None
        return path, describe(self.catalog.root, path)

    def item_json(self, item: Item) -> dict:
        state = read_label(self.catalog.root / item.path, item.duration_s)
        return {
            **dataclasses.asdict(item),
            "label": state.label.to_json(),
            "label_problem": state.problem,
            "label_exists": state.exists,
        }

    def audio(self, rel: str) -> render.Audio:
        path, _ = self.item(rel)
        stat = path.stat()
        try:
            return self._load(str(path), stat.st_mtime_ns, stat.st_size)
        except render.AudioReadError as exc:
            raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, str(exc)) from None

    def _load_uncached(self, path: str, _mtime_ns: int, _size: int) -> render.Audio:
        return render.load(Path(path), self.params)

    def save_label(self, rel: str, body: object) -> dict:
        path, item = self.item(rel)
        if item.error:
            raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, f"{rel}: {item.error}; it cannot be labelled")
        if not isinstance(body, dict) or body.get("kind") not in KINDS:
            raise ApiError(HTTPStatus.BAD_REQUEST, f'need {{"kind": one of {", ".join(KINDS)}, "keyword_spans"}}')
        try:
            spans = normalise_spans(body.get("keyword_spans", []), item.duration_s)
        except LabelError as exc:
            raise ApiError(HTTPStatus.BAD_REQUEST, str(exc)) from None
        if spans and body["kind"] not in KEYWORD_KINDS:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"kind {body['kind']!r} cannot have keyword_spans")
        old = read_label(path, item.duration_s)  # keeps a bad file's .bad copy before replacing it
        saved = write_label(path, Label(kind=body["kind"], keyword_spans=spans, extra=old.label.extra))
        log.info("labelled %s: %s %s", rel, saved.kind, list(saved.keyword_spans))
        return saved.to_json()


class Handler(BaseHTTPRequestHandler):
    app: LabelApp  # set on the subclass made by make_server
    server_version = "wakeword-label"

    # -- plumbing ----------------------------------------------------------------------
    def log_message(self, fmt: str, *args) -> None:
        log.debug("%s %s", self.address_string(), fmt % args)

    def send_body(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, data: object, status: HTTPStatus = HTTPStatus.OK) -> None:
        self.send_body(status, json.dumps(data).encode(), "application/json")

    def host_allowed(self) -> bool:
        host, port = listen_address(self.server)
        if host not in ("127.0.0.1", "localhost", "::1"):
            return True  # bound elsewhere on purpose (--host): the user chose to expose it
        allowed = {f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"}
        return self.headers.get("Host", "") in allowed

    def dispatch(self, handler) -> None:
        try:
            if not self.host_allowed():
                raise ApiError(HTTPStatus.FORBIDDEN, "unexpected Host header")
            url = urlsplit(self.path)
            handler(url.path, {k: v[-1] for k, v in parse_qs(url.query).items()})
        except ApiError as exc:
            self.send_json({"error": str(exc)}, exc.status)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the page went away mid-answer; nothing to save

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.dispatch(self.get)

    def do_PUT(self) -> None:  # noqa: N802
        self.dispatch(self.put)

    # -- routes ------------------------------------------------------------------------
    def get(self, route: str, query: dict[str, str]) -> None:
        app = self.app
        if route in ("/", "/index.html"):
            return self.static("index.html")
        if route == "/favicon.ico":
            return self.send_body(HTTPStatus.NO_CONTENT, b"", "image/x-icon")
        if route.startswith("/static/"):
            return self.static(route.removeprefix("/static/"))
        if route == "/api/items":
            items = [app.item_json(i) for i in app.catalog.items()]
            return self.send_json({"root": str(app.catalog.root), "items": items})
        rel = query.get("path", "")
        if route == "/api/item":
            return self.send_json(app.item_json(app.item(rel)[1]))
        if route == "/api/peaks":
            try:
                columns = min(MAX_PEAK_COLUMNS, max(1, int(query.get("columns", "1000"))))
            except ValueError:
                raise ApiError(HTTPStatus.BAD_REQUEST, "columns must be a whole number") from None
            return self.send_json(render.peaks(app.audio(rel), columns))
        if route == "/api/spectrogram.png":
            return self.send_body(HTTPStatus.OK, render.spectrogram_png(app.audio(rel), app.params), "image/png")
        if route == "/api/audio.wav":
            return self.send_body(HTTPStatus.OK, render.wav_bytes(app.audio(rel)), "audio/wav")
        raise ApiError(HTTPStatus.NOT_FOUND, f"no route {route}")

    def put(self, route: str, query: dict[str, str]) -> None:
        if route != "/api/label":
            raise ApiError(HTTPStatus.NOT_FOUND, f"no route {route}")
        if self.headers.get_content_type() != "application/json":
            raise ApiError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "labels are sent as application/json")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise ApiError(HTTPStatus.BAD_REQUEST, "Content-Length must be a whole number") from None
        if length < 0:
            raise ApiError(HTTPStatus.BAD_REQUEST, "Content-Length must not be negative")
        if length > MAX_BODY_BYTES:
            raise ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "label too large")
        try:
            body = json.loads(self.rfile.read(length) or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ApiError(HTTPStatus.BAD_REQUEST, "body is not JSON") from None
        self.send_json({"label": self.app.save_label(query.get("path", ""), body)})

    def static(self, name: str) -> None:
        files = {p.name: p for p in STATIC_DIR.iterdir() if p.is_file()}
        if name not in files:
            raise ApiError(HTTPStatus.NOT_FOUND, f"no page {name}")
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind.endswith("javascript"):
            kind += "; charset=utf-8"
        self.send_body(HTTPStatus.OK, files[name].read_bytes(), kind)


def listen_address(server: socketserver.BaseServer) -> tuple[str, int]:
    """(host, port) of a TCP server as its socket was bound (``port=0`` resolved to the real one)."""
    address = server.server_address
    if not isinstance(address, tuple):
        raise TypeError(f"not a TCP server: bound to {address!r}")
    host, port = address[:2]
    return host, port


def make_server(
    root: Path, host: str = "127.0.0.1", port: int = 0, params: AudioParams | None = None
) -> ThreadingHTTPServer:
    """A server for ``root`` (not yet serving); ``port=0`` picks a free port (``server_address``)."""
    app = LabelApp(Catalog(root), params or AudioParams())
    handler = type("BoundHandler", (Handler,), {"app": app})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server
