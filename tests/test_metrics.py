"""Metric code against hand-computed values (and scipy / seqeval as independent oracles)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bertkit import metrics as M


def test_accuracy_and_binary_f1_by_hand():
    preds = [1, 1, 0, 0, 1, 0]
    gold = [1, 0, 0, 1, 1, 0]
    assert M.accuracy(preds, gold) == pytest.approx(4 / 6)
    # positive 1: tp=2 fp=1 fn=1 -> P=2/3 R=2/3 F1=2/3
    assert M.f1_binary(preds, gold) == pytest.approx(2 / 3)
    # positive 0: tp=2 fp=1 fn=1 -> 2/3 as well; macro = 2/3
    assert M.f1_macro(preds, gold) == pytest.approx(2 / 3)


def test_f1_no_positive_predictions_is_zero():
    assert M.f1_binary([0, 0], [1, 0]) == 0.0


def test_macro_f1_three_classes_by_hand():
    preds = ["a", "a", "b", "c", "c", "c"]
    gold = ["a", "b", "b", "c", "c", "a"]
    # a: tp1 fp1 fn1 -> .5 ; b: tp1 fp0 fn1 -> P1 R.5 F 2/3 ; c: tp2 fp1 fn0 -> P2/3 R1 F .8
    assert M.f1_macro(preds, gold) == pytest.approx((0.5 + 2 / 3 + 0.8) / 3)


def test_mcc_binary_by_hand():
    preds = [1, 1, 0, 0, 1, 0]
    gold = [1, 0, 0, 1, 1, 0]
    tp, tn, fp, fn = 2, 2, 1, 1
    want = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert M.matthews_corrcoef(preds, gold) == pytest.approx(want)
    assert M.matthews_corrcoef([1, 1, 1], [1, 0, 1]) == 0.0  # constant prediction


def test_mcc_multiclass_matches_sklearn_formula():
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 3, 200).tolist()
    preds = [g if rng.random() < 0.7 else int(rng.integers(0, 3)) for g in gold]
    C = np.zeros((3, 3))
    for g, p in zip(gold, preds):
        C[g, p] += 1
    t, p, c, s = C.sum(1), C.sum(0), np.trace(C), C.sum()
    want = (c * s - t @ p) / math.sqrt((s**2 - p @ p) * (s**2 - t @ t))
    assert M.matthews_corrcoef(preds, gold) == pytest.approx(want)


def test_pearson_spearman_by_hand_and_vs_scipy():
    x = [1.0, 2.0, 3.0, 4.0]
    y = [2.0, 4.0, 6.0, 8.5]
    # spearman of monotone data is exactly 1
    assert M.spearman(x, y) == pytest.approx(1.0)
    assert M.pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert M.pearson([1, 1, 1], [1, 2, 3]) == 0.0
    # ties: ranks of [1,2,2,3] are [1,2.5,2.5,4]
    assert M._average_ranks(np.array([1.0, 2.0, 2.0, 3.0])).tolist() == [1.0, 2.5, 2.5, 4.0]
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    a = rng.normal(size=50).round(1)
    b = (a + rng.normal(size=50)).round(1)
    assert M.pearson(a, b) == pytest.approx(scipy_stats.pearsonr(a, b)[0])
    assert M.spearman(a, b) == pytest.approx(scipy_stats.spearmanr(a, b)[0])


def test_entity_f1_by_hand():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["O", "B-ORG", "O"]]
    # gold entities: PER(0-1), LOC(3), ORG(1) ; predicted: PER(0-1), ORG(3), ORG(1) ; correct 2
    r = M.entity_f1(pred, gold)
    assert r["precision"] == pytest.approx(2 / 3)
    assert r["recall"] == pytest.approx(2 / 3)
    assert r["f1"] == pytest.approx(2 / 3)
    # a wrong boundary is a miss for the whole entity
    assert M.entity_f1([["B-PER", "O"]], [["B-PER", "I-PER"]])["f1"] == 0.0
    assert M.is_bio_tagset(["O", "B-x", "I-x"]) and not M.is_bio_tagset(["NN", "VB"])
    # IOBES: S- is a one-word entity, E- ends one; scored as entities, not as token accuracy
    assert M.is_bio_tagset(["O", "S-PER", "B-LOC", "E-LOC"]) and not M.is_bio_tagset(["O", "X-PER"])
    gold = [["S-PER", "O", "B-LOC", "E-LOC"]]  # PER(0), LOC(2-3)
    assert M.entity_f1([["S-PER", "O", "B-LOC", "E-LOC"]], gold)["f1"] == 1.0
    r = M.entity_f1([["S-PER", "O", "S-LOC", "S-LOC"]], gold)  # PER(0), LOC(2), LOC(3): 1 of 3 right
    assert r["precision"] == pytest.approx(1 / 3) and r["recall"] == pytest.approx(1 / 2)


def test_squad_normalisation_and_scores_by_hand():
    assert M.normalize_answer("The  Cat, sat!") == "cat sat"
    assert M.normalize_answer("an apple a day") == "apple day"
    assert M.squad_exact("the Eiffel Tower.", "Eiffel tower") == 1
    # pred "in the year 1889" -> [in, year, 1889]; gold "1889" -> P 1/3 R 1 F 0.5
    assert M.squad_f1("in the year 1889", "1889") == pytest.approx(0.5)
    assert M.squad_f1("", "") == 1.0 and M.squad_f1("x", "") == 0.0
    preds = {"q1": "Denver Broncos", "q2": "in the year 1889", "q3": "", "q4": "Paris"}
    gold = {"q1": ["Denver Broncos", "Broncos"], "q2": ["1889", "year 1889"], "q3": [], "q4": []}
    s = M.squad_scores(preds, gold)
    # EM: q1 1, q2 0, q3 1 (no answer, empty pred), q4 0 -> 50 ; F1: 1, 0.8 (vs "year 1889"), 1, 0
    assert s["exact_match"] == pytest.approx(50.0)
    assert s["f1"] == pytest.approx(100 * (1 + 0.8 + 1 + 0) / 4)
    assert s["HasAns_exact_match"] == pytest.approx(50.0) and s["NoAns_exact_match"] == pytest.approx(50.0)


def test_best_null_threshold_as_official_script():
    gold = {"a": ["x"], "b": [], "c": ["y"], "d": []}
    preds = {"a": "x", "b": "z", "c": "w", "d": "v"}  # a right, c wrong, b/d answered (wrong)
    null = {"a": -5.0, "c": 1.0, "b": 2.0, "d": 3.0}
    # start: all "" -> 2 correct (b, d). Sorted by null: a(+1) ->3 best@-5, c(+0) 3, b(-1) 2, d(-1) 1
    score, thresh = M.best_null_threshold(preds, null, gold, metric="exact")
    assert score == pytest.approx(75.0) and thresh == -5.0
    final = M.apply_null_threshold(preds, null, thresh)
    assert final == {"a": "x", "b": "", "c": "", "d": ""}
    assert M.squad_scores(final, gold)["exact_match"] == pytest.approx(75.0)


def test_best_null_threshold_all_empty_is_reproduced_by_its_threshold():
    # Bug: the official script starts from threshold 0.0, right for its no-answer
    # probabilities in [0, 1] but not for score differences, which can be negative. When
    # answering nothing was best, threshold 0.0 answered b and the applied score (0%) was not
    # the reported 50%.
    gold = {"a": ["x"], "b": []}
    preds = {"a": "y", "b": "z"}  # both spans wrong
    null = {"a": -1.0, "b": -0.5}
    score, thresh = M.best_null_threshold(preds, null, gold, metric="f1")
    assert score == pytest.approx(50.0)
    final = M.apply_null_threshold(preds, null, thresh)
    assert final == {"a": "", "b": ""}
    assert M.squad_scores(final, gold)["f1"] == pytest.approx(score)


def test_best_null_threshold_takes_tied_scores_together():
    # A threshold answers every question at or below it, so questions with the same null score
    # cannot be split; before, the best was taken inside a tie (a right, b not yet counted).
    gold = {"a": ["x"], "b": [], "c": []}
    preds = {"a": "x", "b": "z", "c": "w"}
    null = {"a": 1.0, "b": 1.0, "c": 2.0}
    score, thresh = M.best_null_threshold(preds, null, gold, metric="exact")
    final = M.apply_null_threshold(preds, null, thresh)
    assert M.squad_scores(final, gold)["exact_match"] == pytest.approx(score)
    assert score == pytest.approx(200 / 3)  # all "" (b, c right) = a and b answered (a, c right)


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError):
        M.accuracy([1], [1, 2])
