"""Fault injection for the data-loss cases of issue #17: every command refuses, in one line and
before any work, to write over what bertkit did not create or over its own inputs; one writer
per run directory; disk full is one line. Each test here failed before the output guard
(:mod:`bertkit.outputs`)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import REPO

from bertkit import outputs
from bertkit.cli import main
from bertkit.errors import BertkitError

# ---------------------------------------------------------------------------------------------
# the guard itself


def test_directory_rules(tmp_path):
    out = tmp_path / "out"
    assert outputs.check_output_dir(out, "finetune") is False  # absent
    out.mkdir()
    assert outputs.check_output_dir(out, "finetune") is False  # empty
    (out / outputs.LOCK).write_text("123\n")  # a killed run's lock file alone: still empty
    assert outputs.check_output_dir(out, "finetune") is False

    (out / "notes.txt").write_text("the user's")
    for overwrite in (False, True):
        with pytest.raises(BertkitError, match="not written by bertkit finetune; bertkit never replaces"):
            outputs.check_output_dir(out, "finetune", overwrite=overwrite)
    (out / "notes.txt").unlink()

    outputs.write_marker(out, "pretrain")
    (out / "metrics.jsonl").write_text("")
    with pytest.raises(BertkitError, match="holds bertkit pretrain output, not finetune output"):
        outputs.check_output_dir(out, "finetune", overwrite=True)
    with pytest.raises(BertkitError, match="already holds bertkit pretrain output; pass --overwrite"):
        outputs.check_output_dir(out, "pretrain")
    assert outputs.check_output_dir(out, "pretrain", overwrite=True) is True
    assert outputs.check_output_dir(out, "pretrain", resume=True) is True


def test_outputs_of_earlier_versions_count_as_bertkits(tmp_path):
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "vocab.txt").write_text("[PAD]\n")
    (tmp_path / "v" / "vocab_report.json").write_text('{"vocab_size": 1}')
    assert outputs.output_kind(tmp_path / "v") == "vocab"
    (tmp_path / "r" / "checkpoint-5").mkdir(parents=True)
    (tmp_path / "r" / "checkpoint-5" / "meta.json").write_text('{"step": 5, "train_config": {}}')
    assert outputs.output_kind(tmp_path / "r") == "pretrain"
    assert outputs.output_kind(tmp_path) is None
    # files of the same names written by other tools are not bertkit's (so never replaced)
    other = tmp_path / "web"
    (other / "checkpoint-500").mkdir(parents=True)
    (other / "checkpoint-500" / "meta.json").write_text('{"author": "someone"}')
    (other / "manifest.json").write_text('{"name": "my app", "icons": []}')
    (other / "metrics.jsonl").write_text('{"epoch": 1, "acc": 0.5}\n')
    assert outputs.output_kind(other) is None
    with pytest.raises(BertkitError, match="not written by bertkit pretrain"):
        outputs.check_output_dir(other, "pretrain", overwrite=True)


def test_file_and_path_rules(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(BertkitError, match="exists and is a file; --out must be a directory"):
        outputs.check_output_dir(f, "vocab")
    with pytest.raises(BertkitError, match=r"cannot be created: .*file.txt is a file"):
        outputs.check_output_dir(f / "sub", "vocab")
    with pytest.raises(BertkitError, match="exists; pass --overwrite"):
        outputs.check_output_file(f)
    outputs.check_output_file(f, overwrite=True)
    with pytest.raises(BertkitError, match="is a directory; --out must be a file name"):
        outputs.check_output_file(tmp_path)
    with pytest.raises(BertkitError, match="cannot be created"):
        outputs.check_output_file(f / "p.jsonl")


def test_inputs_are_never_outputs_symlinks_resolved(tmp_path):
    data = tmp_path / "data.tsv"
    data.write_text("text\tlabel\n")
    link = tmp_path / "link.tsv"
    link.symlink_to(data)
    for overwrite in (False, True):
        with pytest.raises(BertkitError, match="is also an input"):
            outputs.check_output_file(link, inputs=[data], overwrite=overwrite)
    run = tmp_path / "run"
    (run / "checkpoint-4").mkdir(parents=True)
    with pytest.raises(BertkitError, match="contains the input"):
        outputs.check_output_dir(run, "finetune", inputs=[run / "checkpoint-4"], overwrite=True)
    with pytest.raises(BertkitError, match="contains the input"):
        outputs.check_output_dir(tmp_path, "vocab", inputs=[data])


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc (Linux)")
def test_unwritable_place_is_one_line():
    with pytest.raises(BertkitError, match="cannot write in /proc"):
        outputs.check_output_dir("/proc/bertkit-out", "vocab")


def test_not_enough_space_is_refused_before_work(tmp_path, monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10 << 30, 10 << 30, 5 << 20))
    with pytest.raises(BertkitError, match="not enough disk space: needs about 100 MiB, 5 MiB free"):
        outputs.check_output_dir(tmp_path / "o", "finetune", need_bytes=100 << 20)


def test_disk_full_while_writing_is_one_line(tmp_path):
    with pytest.raises(BertkitError, match=r"o: out of disk space while writing the model"):
        with outputs.disk_errors(tmp_path / "o", "the model"):
            raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(BertkitError, match="out of disk space"):  # safetensors' wrapping
        with outputs.disk_errors(tmp_path / "o", "the model"):
            raise RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)")
    with pytest.raises(ValueError):  # anything else passes through
        with outputs.disk_errors(tmp_path / "o", "the model"):
            raise ValueError("a bug")


# ---------------------------------------------------------------------------------------------
# one writer per directory

HOLDER = textwrap.dedent("""
    import sys, time
    from bertkit import outputs
    with outputs.exclusive(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(600)
""")


def test_lock_names_the_holder_and_dies_with_it(tmp_path):
    out = tmp_path / "run"
    with outputs.exclusive(out):
        with pytest.raises(BertkitError, match=f"{out} is in use by pid {os.getpid()}"):
            with outputs.exclusive(out):
                pass
    with outputs.exclusive(out):  # released
        pass
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(BertkitError, match=f"in use by pid {holder.pid}"):
            with outputs.exclusive(out):
                pass
    finally:
        holder.kill()  # SIGKILL: no clean-up code runs, the OS drops the lock
        holder.wait()
    with outputs.exclusive(out):
        assert (out / outputs.LOCK).read_text().strip() == str(os.getpid())


def test_pretrain_refuses_a_directory_in_use(tmp_path, capsys):
    out = tmp_path / "run"
    with outputs.exclusive(out):
        assert main(["pretrain", "--data", str(tmp_path / "nodata"), "--out", str(out)]) == 2
    assert f"{out} is in use by pid {os.getpid()}" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# the commands (issue #17 items 1, 2)


def _fake_pretraining_run(run: Path) -> Path:
    ckpt = run / "checkpoint-3"
    ckpt.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "trainer_state.pt", "meta.json"):
        (ckpt / name).write_text("{}")
    (run / "metrics.jsonl").write_text('{"step": 1}\n')
    return ckpt


def _finetune_args(tmp_path, init, out, *extra):
    for name in ("train.tsv", "dev.tsv"):
        (tmp_path / name).write_text("text\tlabel\ngood\t1\n")
    return [
        "finetune",
        "--task",
        "classification",
        "--train",
        str(tmp_path / "train.tsv"),
        "--dev",
        str(tmp_path / "dev.tsv"),
        "--init",
        str(init),
        "--out",
        str(out),
        *extra,
    ]


def _tree(d: Path) -> dict:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_finetune_never_replaces_its_init_run(tmp_path, capsys):
    run = tmp_path / "run"
    _fake_pretraining_run(run)
    before = _tree(run)
    for extra in ((), ("--overwrite",)):
        assert main(_finetune_args(tmp_path, run, run, *extra)) == 2
        assert "is also an input" in capsys.readouterr().err
        assert main(_finetune_args(tmp_path, run / "checkpoint-3", run, *extra)) == 2
        assert "contains the input" in capsys.readouterr().err
    assert _tree(run) == before


def test_finetune_never_replaces_a_users_folder_or_file(tmp_path, capsys):
    ckpt = _fake_pretraining_run(tmp_path / "run")
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("years of work")
    for extra in ((), ("--overwrite",)):
        assert main(_finetune_args(tmp_path, ckpt, folder, *extra)) == 2
        assert "not written by bertkit finetune" in capsys.readouterr().err
    assert (folder / "thesis.tex").read_text() == "years of work"
    plain = tmp_path / "plain.txt"
    plain.write_text("keep")
    assert main(_finetune_args(tmp_path, ckpt, plain)) == 2
    assert "exists and is a file" in capsys.readouterr().err
    assert plain.read_text() == "keep"
    cwd = os.getcwd()
    try:  # `--out .`: the directory the user works in
        os.chdir(folder)
        assert main(_finetune_args(tmp_path, ckpt, ".")) == 2
    finally:
        os.chdir(cwd)
    assert "not written by bertkit finetune" in capsys.readouterr().err


def test_predict_never_overwrites_its_input_or_an_existing_file(tmp_path, capsys):
    data = tmp_path / "x.tsv"
    data.write_text("text\ngood\n")
    for extra in ((), ("--overwrite",)):
        assert main(["predict", "--model", str(tmp_path / "m"), "--data", str(data), "--out", str(data), *extra]) == 2
        assert "is also an input" in capsys.readouterr().err
    assert data.read_text() == "text\ngood\n"
    existing = tmp_path / "old.jsonl"
    existing.write_text("{}\n")
    assert main(["predict", "--model", str(tmp_path / "m"), "--data", str(data), "--out", str(existing)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert main(["predict", "--model", str(tmp_path / "m"), "--data", str(data), "--out", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err


def test_vocab_and_prepare_refuse_foreign_folders_and_inputs(tmp_path, capsys):
    corpus = tmp_path / "c" / "corpus.txt"
    corpus.parent.mkdir()
    corpus.write_text("some text\n")
    assert main(["vocab", "--input", str(corpus), "--out", str(corpus.parent), "--overwrite", "--quiet"]) == 2
    assert "contains the input" in capsys.readouterr().err
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "a.txt").write_text("x")
    args = ["prepare", "--input", str(corpus), "--tokenizer", str(tmp_path / "v"), "--out", str(folder)]
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nsome\ntext\n")
    assert main([*args, "--overwrite", "--quiet"]) == 2
    assert "not written by bertkit prepare" in capsys.readouterr().err
    assert (folder / "a.txt").read_text() == "x"
    assert json.loads(json.dumps(sorted(p.name for p in folder.iterdir()))) == ["a.txt"]
