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


def test_only_the_chosen_command_is_imported():
    # `bertkit --help` and light commands must not pay for importing torch (~1.5 s)
    code = (
        "import sys\nfrom bertkit.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')"
    )
    for argv in (["--help"], ["vocab", "--help"], ["tokenize", "--help"], []):
        out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True)
        assert out.stdout.strip().endswith("NO-TORCH"), (argv, out.stdout[-300:], out.stderr[-300:])
    # every command is listed with its summary, and each full parser still builds
    out = subprocess.run([sys.executable, "-m", "bertkit", "--help"], capture_output=True, text=True).stdout
    from bertkit.cli import COMMANDS, build_parser

    assert all(name in out for name in COMMANDS)
    parser, mods = build_parser()
    assert set(mods) == set(COMMANDS)
