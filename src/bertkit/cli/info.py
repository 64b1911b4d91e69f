"""``bertkit info``: versions and the machine, for bug reports and benchmark records."""

from __future__ import annotations

import argparse
import os
import platform

from bertkit.cli import summary


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("info", help=summary("info"))
    return p


def run(args: argparse.Namespace) -> int:
    import torch

    import bertkit

    print(f"bertkit     {bertkit.__version__}")
    print(f"python      {platform.python_version()} ({platform.machine()})")
    print(f"torch       {torch.__version__} (threads {torch.get_num_threads()}, cpus {os.cpu_count()})")
    print(
        f"cuda        {torch.cuda.is_available()}"
        + (f" ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "")
    )
    return 0
