"""Vocabulary training (train_vocab, ``bertkit vocab``) and the ``bertkit tokenize`` CLI."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys

import pytest
from conftest import require_shared

from bertkit.cli import main
from bertkit.errors import BertkitError
from bertkit.tokenization import PRESERVE_HANGUL_KANA_KEY, Tokenizer, train_vocab

ENGLISH = [
    "The quick brown fox jumps over the lazy dog.",
    "A journey of a thousand miles begins with a single step!",
    "Unwanted running, the runners were running faster than anyone wanted.",
    "Tokenizers split words into pieces; frequent words stay whole.",
    "She sells sea shells by the sea shore, and the shells she sells are sea shells.",
]


def write_corpus(tmp_path, n=40):
    """A small corpus in the three input formats: .txt, .jsonl and .txt.gz."""
    lines = [f"{s} Line number {i}." for i in range(n) for s in ENGLISH]
    (tmp_path / "a.txt").write_text("\n".join(lines[: len(lines) // 3]) + "\n\n")
    with open(tmp_path / "b.jsonl", "w") as f:
        for line in lines[len(lines) // 3 : 2 * len(lines) // 3]:
            f.write(json.dumps({"id": "x", "text": line}) + "\n")
    with gzip.open(tmp_path / "c.txt.gz", "wt") as f:
        f.write("\n".join(lines[2 * len(lines) // 3 :]) + "\n")
    return [tmp_path / "a.txt", tmp_path / "b.jsonl", tmp_path / "c.txt.gz"]


def test_train_vocab_layout_and_report(tmp_path):
    files = write_corpus(tmp_path)
    tok = train_vocab(files, vocab_size=300, unused=3, progress=False)
    tokens = tok.convert_ids_to_tokens(range(len(tok)))
    assert tokens[:8] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused0]", "[unused1]", "[unused2]"]
    assert len(tok) <= 300
    assert "the" in tok.vocab and "##s" in tok.vocab
    assert tok.preserve_hangul_kana and tok.do_lower_case
    report = tok.training_report
    assert report.vocab_size == len(tok)
    assert report.heldout_texts == 4 and report.train_texts == 196
    assert 1.0 <= report.pieces_per_word < 3.0
    assert report.unk_rate == 0.0
    assert tok.tokenize("The lazy fox") == ["the", "lazy", "fox"]


def test_trained_vocab_loads_in_transformers(tmp_path):
    transformers = pytest.importorskip("transformers")
    tok = train_vocab(write_corpus(tmp_path), vocab_size=300, progress=False)
    tok.save(tmp_path / "out")
    slow_cls = getattr(transformers, "BertTokenizerLegacy", None) or transformers.BertTokenizer
    for cls in (slow_cls, transformers.BertTokenizer):
        ref = cls.from_pretrained(str(tmp_path / "out"))
        for text in ENGLISH + ["Completely unseen wörds like xylophone!"]:
            assert ref(text)["input_ids"] == tok.encode(text).input_ids, (cls, text)
        assert ref.convert_ids_to_tokens(ref("the fox")["input_ids"]) == ["[CLS]", "the", "fox", "[SEP]"]


def test_cased_training(tmp_path):
    tok = train_vocab(write_corpus(tmp_path), vocab_size=300, lowercase=False, progress=False)
    assert not tok.do_lower_case
    assert "The" in tok.vocab
    assert tok.tokenize("The") == ["The"]


def test_hangul_kana_training(tmp_path):
    text = [
        "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8\uc785\ub2c8\ub2e4 \ud55c\uad6d\uc5b4",
        "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u304c\u3054\u3056\u3044\u307e\u3059",
        "Caf\u00e9 na\u00efve r\u00e9sum\u00e9",
    ] * 30
    (tmp_path / "ko_ja.txt").write_text("\n".join(text) + "\n")
    tok = train_vocab([tmp_path / "ko_ja.txt"], vocab_size=200, progress=False)
    assert "\ud55c" in tok.vocab and "\u1112" not in tok.vocab  # syllable kept, no jamo
    assert "\u304c" in tok.vocab or "##\u304c" in tok.vocab  # voiced kana kept
    assert "cafe" in tok.vocab or "caf" in tok.vocab  # Latin accents stripped
    assert tok.tokenize("\ud55c\uad6d\uc5b4") == ["\ud55c\uad6d\uc5b4"]
    original = train_vocab([tmp_path / "ko_ja.txt"], vocab_size=200, progress=False, preserve_hangul_kana=False)
    assert "\ud55c" not in original.vocab and "\u1112" in original.vocab


def test_invalid_utf8_names_file_and_offset(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"good line\nsecond \xff line\n")
    with pytest.raises(BertkitError, match=r"bad.txt:2: invalid UTF-8 at byte offset 17"):
        train_vocab([bad], vocab_size=100, progress=False)
    (tmp_path / "more.txt").write_text("\n".join(ENGLISH * 10) + "\n")
    tok = train_vocab([bad, tmp_path / "more.txt"], vocab_size=200, encoding_errors="replace", progress=False)
    assert "the" in tok.vocab


def test_empty_corpus_and_bad_inputs(tmp_path):
    (tmp_path / "empty.txt").write_text("\n\n  \n")
    with pytest.raises(BertkitError, match="empty corpus"):
        train_vocab([tmp_path / "empty.txt"], vocab_size=100, progress=False)
    with pytest.raises(BertkitError, match="no such file"):
        train_vocab([tmp_path / "missing.txt"], vocab_size=100, progress=False)
    (tmp_path / "x.jsonl").write_text('{"text": "ok"}\n{"body": "no text"}\n')
    with pytest.raises(BertkitError, match=r"x.jsonl:2: expected a JSON object with a string \"text\""):
        train_vocab([tmp_path / "x.jsonl"], vocab_size=100, progress=False)
    (tmp_path / "y.jsonl").write_text('{"text": "ok"}\n{oops\n')
    with pytest.raises(BertkitError, match="y.jsonl:2: invalid JSON"):
        train_vocab([tmp_path / "y.jsonl"], vocab_size=100, progress=False)


def test_vocab_size_smaller_than_alphabet(tmp_path):
    files = write_corpus(tmp_path, n=5)
    with pytest.raises(BertkitError, match="smaller than the alphabet"):
        train_vocab(files, vocab_size=30, progress=False)
    with pytest.raises(BertkitError, match="leaves no room"):
        train_vocab(files, vocab_size=5, progress=False)


def test_train_on_real_sample(tmp_path):
    sample = require_shared("corpus", "sample.txt")
    tok = train_vocab([sample], vocab_size=4000, progress=False)
    report = tok.training_report
    assert report.vocab_size == 4000
    assert report.heldout_texts > 100
    assert 1.0 < report.pieces_per_word < 1.6
    assert report.unk_rate < 0.001


@pytest.mark.slow
def test_full_corpus_30k(tmp_path):
    """The acceptance run: 30k vocabulary on the whole shared corpus (about 20 s of CPU)."""
    transformers = pytest.importorskip("transformers")
    corpus = require_shared("corpus")
    tok = train_vocab(sorted(corpus.iterdir()), vocab_size=30000, progress=False)
    print(tok.training_report.summary())
    assert len(tok) == 30000
    assert tok.training_report.unk_rate < 0.001
    tok.save(tmp_path)
    ref = transformers.BertTokenizer.from_pretrained(str(tmp_path))
    text = "The Treasury of David is a commentary on the Psalms."
    assert ref(text)["input_ids"] == tok.encode(text).input_ids


# ------------------------------------------------------------------ CLI


def test_cli_vocab(tmp_path, capsys):
    files = write_corpus(tmp_path)
    out = tmp_path / "vocab_out"
    assert (
        main(
            ["vocab", "--input", *map(str, files), "--vocab-size", "250", "--unused", "2", "--out", str(out), "--quiet"]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "pieces per word" in printed and "[UNK] rate" in printed
    cfg = json.loads((out / "tokenizer_config.json").read_text())
    assert cfg["do_lower_case"] is True and cfg[PRESERVE_HANGUL_KANA_KEY] is True
    assert (out / "vocab.txt").read_text().splitlines()[5:7] == ["[unused0]", "[unused1]"]
    assert json.loads((out / "vocab_report.json").read_text())["vocab_size"] <= 250
    assert Tokenizer.from_pretrained(out).tokenize("the fox") == ["the", "fox"]
    # An earlier vocabulary in --out is replaced only with --overwrite; the cased /
    # no-preserve flags reach the config.
    assert main(["vocab", "--input", str(files[0]), "--out", str(out)]) == 2
    assert "already holds bertkit vocab output; pass --overwrite" in capsys.readouterr().err
    out2 = tmp_path / "cased"
    assert (
        main(
            [
                "vocab",
                "--input",
                *map(str, files),
                "--vocab-size",
                "250",
                "--cased",
                "--no-preserve-hangul-kana",
                "--out",
                str(out2),
                "--quiet",
            ]
        )
        == 0
    )
    cfg2 = json.loads((out2 / "tokenizer_config.json").read_text())
    assert cfg2["do_lower_case"] is False and cfg2[PRESERVE_HANGUL_KANA_KEY] is False


def test_cli_vocab_errors(tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ok\n\xc3\x28\n")
    assert main(["vocab", "--input", str(bad), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "bad.txt:2: invalid UTF-8 at byte offset 3" in err and "--encoding-errors replace" in err
    assert not (tmp_path / "o").exists()


class _Result:
    def __init__(self, returncode, stdout: bytes, stderr: bytes):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def _run_tokenize(args, stdin: bytes, monkeypatch, capsys) -> _Result:
    """``bertkit tokenize ARGS < stdin`` in-process."""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    code = main(["tokenize", *args])
    out = capsys.readouterr()
    return _Result(code, out.out.encode(), out.err.encode())


def test_cli_tokenize_as_module(minilm_dir):
    r = subprocess.run(
        [sys.executable, "-m", "bertkit", "tokenize", "--model", str(minilm_dir)],
        input=b"Hello!\n",
        capture_output=True,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["tokens"] == ["[CLS]", "hello", "!", "[SEP]"]


def test_cli_tokenize(minilm_dir, monkeypatch, capsys):
    r = _run_tokenize(["--model", str(minilm_dir)], "Hello, World!\nUNwant\u00e9d\n".encode(), monkeypatch, capsys)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.decode().splitlines()]
    assert rows[0]["tokens"] == ["[CLS]", "hello", ",", "world", "!", "[SEP]"]
    assert rows[0]["ids"] == [101, 7592, 1010, 2088, 999, 102]
    assert rows[0]["offsets"][1] == [0, 5]
    assert rows[1]["tokens"][1:-1] == ["unwanted"]


def test_cli_tokenize_pair_and_errors(minilm_dir, monkeypatch, capsys):
    model = ["--model", str(minilm_dir)]
    r = _run_tokenize(model + ["--pair"], b"a question?\tthe answer.\n", monkeypatch, capsys)
    row = json.loads(r.stdout)
    assert row["tokens"] == ["[CLS]", "a", "question", "?", "[SEP]", "the", "answer", ".", "[SEP]"]
    assert row["token_type_ids"] == [0] * 5 + [1] * 4
    r = _run_tokenize(model + ["--pair"], b"a\tb\nno tab here\n", monkeypatch, capsys)
    assert r.returncode == 2
    assert b"<stdin>:2: --pair expects two tab-separated fields" in r.stderr
    assert len(r.stdout.splitlines()) == 1  # the good line before the error was written
    r = _run_tokenize(model, b"ok\n\xff\n", monkeypatch, capsys)
    assert r.returncode == 2 and b"<stdin>:2: invalid UTF-8 at byte offset 3" in r.stderr
    assert len(r.stdout.splitlines()) == 1


# ------------------------------------------------------------------ reproducibility


def tie_corpus(path) -> str:
    """Many equally frequent words and characters: every tie the trainer breaks (which rare
    characters the alphabet limit drops, which equally frequent merge comes first) is exercised."""
    import random

    rng = random.Random(7)
    letters = "abcdefghijklmnopqrstuvwxyz"
    rare = "αβγδεζηθικλμνξοπρστυφχψω"  # each seen exactly twice: the alphabet cut falls among them
    words = ["".join(rng.choice(letters) for _ in range(rng.randint(3, 7))) for _ in range(300)]
    lines = [" ".join(rng.choice(words) for _ in range(12)) for _ in range(400)]
    lines += [f"x{c}y {c}z" for c in rare]
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return str(path)


def test_vocab_is_byte_identical_run_after_run_and_for_any_thread_count(tmp_path):
    """Issue #17 item 8: three runs gave three vocab.txt files. Now: runs in this process and in
    fresh processes with 1, 2 and 4 Rayon threads (and different hash seeds) agree byte for byte."""
    corpus = tie_corpus(tmp_path / "c.txt")
    args = ["vocab", "--input", corpus, "--vocab-size", "400", "--limit-alphabet", "40", "--quiet"]
    outputs = []
    for i in range(2):
        assert main([*args, "--out", str(tmp_path / f"in{i}")]) == 0
        outputs.append((tmp_path / f"in{i}" / "vocab.txt").read_bytes())
    for threads in (1, 2, 4):
        env = {**os.environ, "RAYON_NUM_THREADS": str(threads), "PYTHONHASHSEED": str(threads)}
        out = tmp_path / f"t{threads}"
        r = subprocess.run([sys.executable, "-m", "bertkit", *args, "--out", str(out)], env=env, capture_output=True)
        assert r.returncode == 0, r.stderr
        outputs.append((out / "vocab.txt").read_bytes())
    assert all(o == outputs[0] for o in outputs)
    vocab = outputs[0].decode().splitlines()
    assert len(vocab) == 400 and len(set(vocab)) == 400
    singles = [t for t in vocab[5:] if len(t) == 1]
    assert len(singles) == 40 and singles == sorted(singles)  # the alphabet limit, in code-point order
