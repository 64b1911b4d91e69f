import subprocess
import sys

from bertkit import __version__
from bertkit.cli import main


def test_version_flag(capsys):
    try:
        main(["--version"])
    except SystemExit as e:
        assert e.code == 0
    assert __version__ in capsys.readouterr().out


def test_help_runs_as_module():
    out = subprocess.run([sys.executable, "-m", "bertkit", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    assert "usage: bertkit" in out.stdout


def test_info(capsys):
    assert main(["info"]) == 0
    assert "torch" in capsys.readouterr().out


def test_pretrain_help_after_key_value_prints_help(capsys):
    # `--help` written after a key=value used to be rejected as an unknown option.
    try:
        main(["pretrain", "lr=1", "--help"])
    except SystemExit as e:
        assert e.code == 0
    out = capsys.readouterr().out
    assert "usage: bertkit pretrain" in out and "max_steps" in out
