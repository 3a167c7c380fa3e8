"""``groundup data list|info|download|verify``: see, fetch and check the data sets."""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

from groundup.data.download import DEFAULT_TIMEOUT, data_home, dataset_cache_dir, fetch_file
from groundup.data.loaders import file_status, load_mnist_sample, search_dirs
from groundup.data.registry import (
    DATASETS,
    SAMPLE_FILE,
    SAMPLE_NAME,
    SAMPLE_SHA256,
    get_spec,
)

_NAMES = [*DATASETS, SAMPLE_NAME]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``data`` and its sub-commands to the ``groundup`` parser."""
    parser = subparsers.add_parser("data", help="list, inspect, download and verify data sets",
                                   description=__doc__.splitlines()[0])
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION",
                                    parser_class=type(parser))
    parser.set_defaults(func=run, data_command=None)

    def common(p: argparse.ArgumentParser, with_name: bool = True) -> None:
        if with_name:
            p.add_argument("name", nargs="?", default="mnist", choices=_NAMES,
                           help="data set (default: mnist)")
        p.add_argument("--data-dir", type=Path, default=None,
                       help="directory searched first (and download target)")

    common(actions.add_parser("list", help="data sets and where each is found"), False)
    common(actions.add_parser("info", help="files, checksums, mirrors, licence"))
    download = actions.add_parser("download", help="fetch missing files, verified")
    common(download)
    download.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                          help=f"seconds per connection/read (default {DEFAULT_TIMEOUT:g})")
    download.add_argument("--mirror", action="append", default=None, metavar="URL",
                          help="base URL to try instead of the built-in mirrors (repeatable)")
    download.add_argument("--no-progress", action="store_true", help="no progress bar")
    common(actions.add_parser("verify", help="check every file's checksum; exit 1 if any "
                              "is missing or bad"))
    return parser


def _summary(name: str, data_dir: Path | None) -> str:
    if name == SAMPLE_NAME:
        return "bundled (always available)"
    states = file_status(name, data_dir)
    ok = [s for s in states if s.status == "ok"]
    if len(ok) == len(states):
        where = sorted({str(Path(s.path).parent) for s in ok if s.path})
        return "ready: " + ", ".join(where)
    bad = [s.filename for s in states if s.status == "bad"]
    text = f"{len(ok)}/{len(states)} files present"
    return text + (f", corrupt: {', '.join(bad)}" if bad else "")


def _list(args: argparse.Namespace) -> int:
    print(f"data home: {data_home()}")
    for name in _NAMES:
        title = DATASETS[name].title if name in DATASETS else \
            "bundled MNIST: 5,000 train / official 10,000 test"
        print(f"{name:<14} {title:<45} {_summary(name, args.data_dir)}")
    return 0


def _info(args: argparse.Namespace) -> int:
    if args.name == SAMPLE_NAME:
        sample = load_mnist_sample()
        print(f"{SAMPLE_NAME}: 5,000 real MNIST training digits (500 per class, in a fixed "
              "stratified order) for training, the official 10,000 MNIST test digits for test")
        print(f"file: {sample.info.location}")
        print(f"sha256: {SAMPLE_SHA256}")
        print("licence: Yann LeCun, Corinna Cortes, Christopher J.C. Burges; CC BY-SA 3.0")
        return 0
    spec = get_spec(args.name)
    print(f"{spec.name}: {spec.title}")
    print(f"licence: {spec.license}")
    if spec.homepage:
        print(f"homepage: {spec.homepage}")
    print(f"classes: {', '.join(spec.class_names)}")
    print("lookup order: " + ", ".join(f"{d} ({kind})" for kind, d in
                                        search_dirs(spec, args.data_dir)) + ", then download")
    print("mirrors: " + ", ".join(spec.mirrors))
    for entry, state in zip(spec.files, file_status(spec, args.data_dir), strict=True):
        where = f" at {state.path}" if state.path else ""
        print(f"  {entry.filename}: {entry.size:,} bytes, sha256 {entry.sha256}, "
              f"uncompressed sha256 {entry.raw_sha256} [{state.status}{where}]")
    return 0


def _download(args: argparse.Namespace) -> int:
    if args.name == SAMPLE_NAME:
        print(f"{SAMPLE_NAME} is bundled with groundup; nothing to download.")
        return 0
    spec = get_spec(args.name)
    dest = args.data_dir if args.data_dir is not None else dataset_cache_dir(spec.name)
    mirrors = tuple(args.mirror) if args.mirror else spec.mirrors
    progress = False if args.no_progress else None
    for entry, state in zip(spec.files, file_status(spec, args.data_dir), strict=True):
        if state.status == "ok":
            print(f"{entry.filename}: already present at {state.path}")
            continue
        path = fetch_file(entry, dest, mirrors, timeout=args.timeout, progress=progress)
        print(f"{entry.filename}: downloaded and verified -> {path}")
    print(f"{spec.name}: all {len(spec.files)} files ready.")
    return 0


def _verify(args: argparse.Namespace) -> int:
    if args.name == SAMPLE_NAME:
        sample = load_mnist_sample()
        digest = hashlib.sha256(Path(sample.info.location).read_bytes()).hexdigest()
        ok = digest == SAMPLE_SHA256
        print(f"{SAMPLE_FILE}: {'ok' if ok else 'bad'} (sha256 {digest})")
        return 0 if ok else 1
    states = file_status(args.name, args.data_dir)
    for state in states:
        where = f" ({state.where}: {state.path})" if state.path else ""
        detail = f" {state.detail}" if state.detail else ""
        print(f"{state.filename}: {state.status}{where}{detail}")
    good = sum(s.status == "ok" for s in states)
    print(f"{args.name}: {good}/{len(states)} files verified.")
    if good < len(states):
        print(f"run `groundup data download {args.name}` or pass --data-dir DIR holding the "
              "files.")
    return 0 if good == len(states) else 1


def run(args: argparse.Namespace) -> int:
    """Dispatch ``groundup data ACTION``; returns the exit code."""
    actions = {"list": _list, "info": _info, "download": _download, "verify": _verify}
    if args.data_command is None:
        raise ValueError("data: an action is needed: groundup data list | info NAME | "
                         "download NAME | verify NAME (try `groundup data list`).")
    return actions[args.data_command](args)
