"""The one exception type users see: a clear, one-line message, never a bare traceback."""


class BertkitError(Exception):
    """An error caused by the user's input or environment.

    The CLI prints ``bertkit: error: <message>`` and exits with status 2. The message should
    name the file (and line or byte offset) and the problem.
    """


class Terminated(BaseException):
    """SIGTERM arrived (what SLURM and Kubernetes send before killing a job). Raised from the
    signal handler the CLI installs, so ``finally`` blocks and atomic writes clean up; the CLI
    exits with status 143. A BaseException, like KeyboardInterrupt: ``except Exception``
    does not swallow it."""


def quoted(text: str, n: int = 60) -> str:
    """``text`` as a message quotes it: ``repr``, cut to ``n`` characters with ``...``."""
    return repr(text if len(text) <= n else text[:n] + "...")
