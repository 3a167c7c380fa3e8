"""``groundup serve [DIR] [--port P]``: the runs under DIR, updating live while they train.

Binds 127.0.0.1 unless ``--host`` says otherwise; serves only files under DIR.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from groundup._checks import check_number


def add_parser(sub: Any) -> None:
    p = sub.add_parser("serve", help="show the runs under a directory live in a browser",
                       description=__doc__.splitlines()[0])
    p.add_argument("directory", nargs="?", default="runs", metavar="DIR",
                   help="where the run directories are (default runs)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from groundup.report.server import make_server

    check_number("serve", "--port", args.port, low=0, high=65535, integer=True)
    server = make_server(args.directory, args.host, args.port)
    host, port = server.server_address[:2]
    print(f"serving the runs in {args.directory} at http://{host}:{port}/ (Ctrl-C stops)",
          file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0
