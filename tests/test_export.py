"""bertkit export: ONNX graphs for every kind of model, the onnxruntime parity gate (a failing
model is never written), int8, --eval, refusal to overwrite, and the missing-package message."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install 'bertkit[serve]')")
pytest.importorskip("onnx", reason="onnx not installed (pip install 'bertkit[serve]')")

from serve_helpers import make_model_dir  # noqa: E402

from bertkit import export as ex  # noqa: E402
from bertkit.cli import main  # noqa: E402
from bertkit.errors import BertkitError  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {k: make_model_dir(root, k) for k in ("encoder", "pretraining", "classification", "pair", "tagging", "qa")}


@pytest.mark.parametrize(
    "kind, outputs",
    [
        ("encoder", {"embedding": ["batch", 32]}),
        ("pretraining", {"logits": ["batch", "sequence", 47]}),  # the vocabulary size
        ("classification", {"logits": ["batch", 2]}),
        ("pair", {"logits": ["batch", 2]}),
        ("tagging", {"logits": ["batch", "sequence", 5]}),
        ("qa", {"start_logits": ["batch", "sequence"], "end_logits": ["batch", "sequence"]}),
    ],
)
def test_every_kind_exports_within_tolerance(models, tmp_path, kind, outputs):
    import onnx

    out = tmp_path / "exp"
    info = ex.export_onnx(models[kind], out)
    saved = json.loads((out / "export.json").read_text())
    assert saved == json.loads(json.dumps(info))
    assert saved["opset"] >= 17 and saved["parity"]["fp32"]["max_abs_diff"] <= 1e-4
    assert {o["name"]: o["shape"] for o in saved["outputs"]} == outputs
    assert [i["name"] for i in saved["inputs"]] == ["input_ids", "attention_mask", "token_type_ids"]
    m = onnx.load(str(out / "model.onnx"))
    assert max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")) >= 17
    for inp in m.graph.input:  # batch and sequence axes are symbolic (dynamic)
        assert [d.dim_param for d in inp.type.tensor_type.shape.dim] == ["batch", "sequence"]
    for name in ("vocab.txt", "tokenizer_config.json", "config.json"):
        assert (out / name).is_file()
    assert (out / "task.json").is_file() == (kind not in ("encoder", "pretraining"))


def test_onnx_matches_torch_on_new_shapes(models, tmp_path):
    """Shapes never seen when tracing (longer, wider, unpadded, padded) give torch's numbers."""
    out = tmp_path / "exp"
    ex.export_onnx(models["encoder"], out)
    e = ex.load_exportable(models["encoder"])
    session = ex.ort_session(out / "model.onnx")
    rng = np.random.default_rng(0)
    for B, T in [(1, 3), (5, 60), (3, 17)]:
        ids = rng.integers(5, 47, size=(B, T))
        mask = np.ones((B, T), dtype=np.int64)
        if B > 1:
            mask[1, T // 2 :] = 0
        batch = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        ref = ex.torch_outputs(e, batch)[0]
        got = ex.ort_outputs(session, batch)[0]
        assert got.shape == (B, 32)
        np.testing.assert_allclose(got, ref, atol=1e-5)


def test_parity_failure_writes_nothing(models, tmp_path, monkeypatch):
    real = ex.ort_outputs
    monkeypatch.setattr(ex, "ort_outputs", lambda s, b: [o + 1e-3 for o in real(s, b)])
    out = tmp_path / "exp"
    with pytest.raises(BertkitError, match=r"differ from torch's by 0\.001.*nothing written"):
        ex.export_onnx(models["classification"], out)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary directory left behind


def test_int8_and_eval_report_the_metric_change(models, tmp_path):
    dev = tmp_path / "dev.tsv"
    dev.write_text(
        "sentence\tlabel\n"
        + "".join(f"{t}\t{lab}\n" for t, lab in [("a good film .", "pos"), ("a bad film .", "neg")] * 6),
        "utf-8",
    )
    out = tmp_path / "exp"
    info = ex.export_onnx(models["classification"], out, quantize="int8", eval_file=str(dev))
    assert (out / "model.int8.onnx").is_file() and info["files"] == {"fp32": "model.onnx", "int8": "model.int8.onnx"}
    assert "int8" in info["parity"] and np.isfinite(info["parity"]["int8"]["max_abs_diff"])
    ev = info["eval"]
    assert ev["metric"] == "accuracy"
    assert ev["onnx_fp32"]["accuracy"] == ev["torch_fp32"]["accuracy"] and ev["onnx_fp32_change_points"] == 0
    assert ev["onnx_int8_change_points"] == pytest.approx(
        100 * (ev["onnx_int8"]["accuracy"] - ev["torch_fp32"]["accuracy"]), abs=1e-3
    )


def test_refuses_existing_output(models, tmp_path, capsys):
    out = tmp_path / "exp"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["export", "--model", str(models["encoder"]), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "was not written by bertkit export" in err
    assert main(["export", "--model", str(models["encoder"]), "--out", str(out), "--overwrite"]) == 2
    assert "was not written by bertkit export" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"
    assert main(["export", "--model", str(models["encoder"]), "--out", str(models["encoder"]), "--overwrite"]) == 2
    assert "input" in capsys.readouterr().err  # never the model directory itself


def test_cli_export_and_overwrite_of_an_export(models, tmp_path, capsys):
    out = tmp_path / "exp"
    assert main(["export", "--model", str(models["pretraining"]), "--out", str(out), "--kind", "embedding"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["parity"]["fp32"]["max_abs_diff"] <= 1e-4
    assert json.loads((out / "export.json").read_text())["kind"] == "embedding"
    assert main(["export", "--model", str(models["pretraining"]), "--out", str(out)]) == 2
    assert "already holds bertkit export output" in capsys.readouterr().err
    assert main(["export", "--model", str(models["pretraining"]), "--out", str(out), "--overwrite"]) == 0
    assert json.loads((out / "export.json").read_text())["kind"] == "fill-mask"


def test_bad_choices_are_one_line_errors(models, tmp_path, capsys):
    assert main(["export", "--model", str(models["encoder"]), "--out", str(tmp_path / "x"), "--kind", "fill-mask"]) == 2
    assert "needs a masked-LM head" in capsys.readouterr().err
    assert (
        main(["export", "--model", str(models["pretraining"]), "--out", str(tmp_path / "y"), "--eval", "nope.tsv"]) == 2
    )
    assert "nope.tsv: no such file" in capsys.readouterr().err


def test_missing_onnxruntime_is_one_clear_line(models, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    assert main(["export", "--model", str(models["encoder"]), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "onnxruntime is missing" in err and "pip install 'bertkit[serve]'" in err


@pytest.mark.slow
def test_minilm_export_parity_and_similarity(minilm_dir, tmp_path):
    """The real MiniLM: parity within 1e-4 and the embedding's known cosine (docs: 0.755)."""
    out = tmp_path / "minilm"
    info = ex.export_onnx(minilm_dir, out)
    assert info["parity"]["fp32"]["max_abs_diff"] <= 1e-4
    e = ex.load_exportable(minilm_dir)
    b = ex.parity_inputs(e, ["A man is eating food.", "A man is eating a piece of bread."])[-1]
    v = ex.ort_outputs(ex.ort_session(out / "model.onnx"), b)[0][:2]
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    assert float(v[0] @ v[1]) == pytest.approx(0.755, abs=1e-3)
