"""``python -m train.label FOLDER [--host H] [--port N]``: serve the labelling page for FOLDER."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from train.label.catalog import Catalog, CatalogError

log = logging.getLogger("train.label")
DEFAULT_PORT = 8765


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m train.label", description=__doc__)
    ap.add_argument("folder", type=Path, help="folder of recordings, e.g. recordings/computer")
    ap.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: only this machine can reach the page)"
    )
    ap.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 = any free)")
    ap.add_argument("-v", "--verbose", action="store_true", help="log every request")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")

    try:
        files = Catalog(args.folder).check()
    except CatalogError as exc:
        print(f"label: {exc}", file=sys.stderr)
        return 1
    from train.label.server import listen_address, make_server  # numpy, matplotlib: only once there is work

    try:
        server = make_server(args.folder, args.host, args.port)
    except OSError as exc:
        print(f"label: cannot listen on {args.host}:{args.port}: {exc.strerror}; try --port 0", file=sys.stderr)
        return 1
    host, port = listen_address(server)
    shown = f"[{host}]" if ":" in host else host
    print(
        f"label: {len(files)} audio files under {args.folder}; open http://{shown}:{port}/ "
        "(labels are saved as you go; Ctrl-C to stop)",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("label: stopped; every label shown as saved is on disk", file=sys.stderr)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
