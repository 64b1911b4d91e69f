"""Task file readers on tiny hand-made files: formats, column conventions, precise errors."""

from __future__ import annotations

import json

import pytest

from bertkit.errors import BertkitError
from bertkit.tasks import get_task
from bertkit.tasks.readers import read_conll, read_squad, read_table


def write(p, text):
    p.write_text(text, encoding="utf-8")
    return str(p)


def test_sst2_tsv(tmp_path):
    f = write(tmp_path / "train.tsv", "sentence\tlabel\na good film .\t1\nbad \" quote\t0\n")
    ex = get_task("classification").read(f)
    assert [(e.text, e.label, e.line) for e in ex] == [("a good film .", "1", 2), ('bad " quote', "0", 3)]
    assert get_task("classification").label_list(ex) == ["0", "1"]


def test_named_columns_csv_and_jsonl(tmp_path):
    f = write(tmp_path / "d.csv", 'body,sentiment\n"hello, world",pos\nbye,neg\n')
    ex = get_task("classification", text_column="body", label_column="sentiment").read(f)
    assert [(e.text, e.label) for e in ex] == [("hello, world", "pos"), ("bye", "neg")]
    j = write(tmp_path / "d.jsonl", '{"text": "a", "label": 2}\n\n{"text": "b", "label": 10}\n')
    ex = get_task("classification").read(j)
    assert [e.label for e in ex] == ["2", "10"] and ex[1].line == 3
    assert get_task("classification").label_list(ex) == ["2", "10"]  # numeric order


def test_json_array_of_objects(tmp_path):
    # pandas to_json(orient="records", lines=False) / hand-written JSON: one array, pretty-printed
    f = write(tmp_path / "d.json", '[\n  {"text": "good", "label": 1},\n  {"text": "bad",\n   "label": 0}\n]\n')
    ex = get_task("classification").read(f)
    assert [(e.text, e.label, e.line) for e in ex] == [("good", "1", 2), ("bad", "0", 3)]
    assert [
        e.text
        for e in get_task("classification").read(
            write(tmp_path / "one.json", '[{"text": "x", "label": 1},{"text": "y", "label": 0}]')
        )
    ] == ["x", "y"]
    with pytest.raises(BertkitError, match=r"bad.json:3: expected a JSON object, found list"):
        read_table(write(tmp_path / "bad.json", '[\n{"text": "a"},\n[1, 2]\n]'))
    with pytest.raises(BertkitError, match=r"open.json:\d+: invalid JSON"):
        read_table(write(tmp_path / "open.json", '[{"text": "a"}, {"text": '))
    with pytest.raises(BertkitError, match=r"unclosed.json:1: invalid JSON: the array is not closed"):
        read_table(write(tmp_path / "unclosed.json", '[{"text": "a"}'))
    # a .json file of JSON lines still reads as JSON lines
    assert len(read_table(write(tmp_path / "l.json", '{"text": "a"}\n{"text": "b"}\n'))[1]) == 2


def test_pair_conventions(tmp_path):
    mrpc = write(tmp_path / "mrpc.tsv", "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\tA b.\tC d.\n")
    e = get_task("pair").read(mrpc)[0]
    assert (e.text, e.text_pair, e.label) == ("A b.", "C d.", "1")
    mnli = write(tmp_path / "mnli.tsv", "index\tsentence1\tsentence2\tgold_label\n0\tp\th\tentailment\n")
    e = get_task("pair").read(mnli)[0]
    assert (e.text, e.text_pair, e.label) == ("p", "h", "entailment")
    boolq = write(tmp_path / "b.jsonl", json.dumps({"question": "is it", "passage": "T -- x", "label": True}) + "\n")
    e = get_task("pair").read(boolq)[0]
    assert (e.text, e.text_pair, e.label) == ("is it", "T -- x", "true")
    qnli = write(tmp_path / "qnli.tsv", "index\tquestion\tsentence\tlabel\n0\tq?\ts.\tnot_entailment\n")
    assert get_task("pair").read(qnli)[0].text_pair == "s."


def test_regression_stsb(tmp_path):
    f = write(tmp_path / "sts.tsv", "sentence1\tsentence2\tscore\na\tb\t4.2\nc\td\t0\n")
    ex = get_task("regression").read(f)
    assert [(e.text, e.text_pair, e.label) for e in ex] == [("a", "b", 4.2), ("c", "d", 0.0)]
    bad = write(tmp_path / "bad.tsv", "sentence1\tsentence2\tscore\na\tb\thigh\n")
    with pytest.raises(BertkitError, match=r"bad.tsv:2: score 'high' is not a number"):
        get_task("regression").read(bad)


def test_missing_column_names_file_and_columns(tmp_path):
    f = write(tmp_path / "x.tsv", "words\tlabel\nhi\t1\n")
    with pytest.raises(BertkitError, match=r"x.tsv: no text column.*columns: words, label.*--text-column"):
        get_task("classification").read(f)
    with pytest.raises(BertkitError, match=r"x.tsv: missing label column 'y'"):
        get_task("classification", text_column="words", label_column="y").read(f)
    j = write(tmp_path / "x.jsonl", '{"text": "a", "label": 1}\n{"text": "b"}\n')
    with pytest.raises(BertkitError, match=r"x.jsonl:2: missing field 'label'"):
        get_task("classification").read(j)


def test_files_without_a_header_line(tmp_path):
    # sentence<TAB>label with no header: read by position, text first, label last
    f = write(tmp_path / "sst.tsv", "a good film .\t1\nbad\t0\n")
    ex = get_task("classification", header=False).read(f)
    assert [(e.text, e.label, e.line) for e in ex] == [("a good film .", "1", 1), ("bad", "0", 2)]
    # unlabelled prediction input: one column of texts
    ex = get_task("classification", header=False).read(write(tmp_path / "u.tsv", "x y\nz\n"), labelled=False)
    assert [(e.text, e.label) for e in ex] == [("x y", None), ("z", None)]
    # GLUE CoLA (source, label, original label, sentence): columns named by number
    cola = write(tmp_path / "cola.tsv", "gj04\t1\t\tOur friends won't buy this.\ngj04\t0\t*\tThey drank the pub.\n")
    ex = get_task("classification", header=False, text_column="3", label_column="1").read(cola)
    assert [(e.text, e.label) for e in ex] == [("Our friends won't buy this.", "1"), ("They drank the pub.", "0")]
    with pytest.raises(BertkitError, match=r"cola.tsv: no header line and 4 columns.*--text-column N"):
        get_task("classification", header=False).read(cola)
    # pairs (a, b, label), CSV, and regression scores
    p = write(tmp_path / "p.csv", '"A, b.",C d.,1\n')
    e = get_task("pair", header=False).read(p)[0]
    assert (e.text, e.text_pair, e.label) == ("A, b.", "C d.", "1")
    e = get_task("regression", header=False).read(write(tmp_path / "s.tsv", "a\tb\t4.5\n"))[0]
    assert (e.text, e.text_pair, e.label) == ("a", "b", 4.5)
    # the same file read with the default (header) names the way out
    with pytest.raises(BertkitError, match=r"sst.tsv: no text column.*--no-header"):
        get_task("classification").read(f)
    # tasks whose formats always have a header refuse the setting
    with pytest.raises(BertkitError, match=r"header do not apply"):
        get_task("tagging", header=False)


def test_byte_order_mark_and_bad_utf8(tmp_path):
    # Excel's "CSV UTF-8" starts with a BOM; the header must still be found
    f = tmp_path / "excel.csv"
    f.write_bytes(b"\xef\xbb\xbfsentence,label\ngood,1\nbad,0\n")
    assert [e.text for e in get_task("classification").read(str(f))] == ["good", "bad"]
    j = tmp_path / "squad.json"
    j.write_bytes(
        b"\xef\xbb\xbf"
        + json.dumps(
            {
                "data": [
                    {
                        "paragraphs": [
                            {
                                "context": "Paris is big.",
                                "qas": [
                                    {"id": "q1", "question": "What?", "answers": [{"text": "Paris", "answer_start": 0}]}
                                ],
                            }
                        ]
                    }
                ]
            }
        ).encode()
    )
    assert read_squad(str(j))[0][0].answers == [("Paris", 0)]
    bad = tmp_path / "latin1.tsv"
    bad.write_bytes("sentence\tlabel\ncaf\u00e9\t1\n".encode("latin-1"))
    with pytest.raises(BertkitError, match=r"latin1.tsv:2: invalid UTF-8 at byte offset 18 \(save the file as UTF-8\)"):
        get_task("classification").read(str(bad))


def test_wrong_field_count_and_empty_split(tmp_path):
    f = write(tmp_path / "x.tsv", "sentence\tlabel\nok\t1\ntoo\tmany\tfields\n")
    with pytest.raises(BertkitError, match=r"x.tsv:3: expected 2 tab-separated fields"):
        read_table(f)
    e = write(tmp_path / "e.tsv", "sentence\tlabel\n")
    with pytest.raises(BertkitError, match=r"e.tsv: no examples \(empty split\)"):
        get_task("classification").read(e)


def test_unseen_dev_label_names_line(tmp_path):
    task = get_task("classification")
    dev = write(tmp_path / "dev.tsv", "sentence\tlabel\na\t0\nb\t2\n")
    with pytest.raises(BertkitError, match=r"dev.tsv:3: label '2' does not occur in the training data"):
        task.check_labels(dev, task.read(dev), {"0": 0, "1": 1})


def test_conll(tmp_path):
    f = write(tmp_path / "t.conll", "-DOCSTART-\tO\n\nJohn\tB-person\nlives\tO\n\n\nParis\tB-geo-loc\n")
    s = read_conll(f)
    assert [(x.words, x.tags, x.line) for x in s] == [
        (["John", "lives"], ["B-person", "O"], 3),
        (["Paris"], ["B-geo-loc"], 7),
    ]
    four = write(tmp_path / "c03.txt", "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\n")
    assert read_conll(four)[0].tags == ["B-ORG", "O"]
    bad = write(tmp_path / "bad.conll", "John\tB-person\nlives\tO\textra\n")
    with pytest.raises(BertkitError, match=r"bad.conll:2: expected 2 fields"):
        read_conll(bad)
    tagging = get_task("tagging")
    dev = write(tmp_path / "dev.conll", "a\tO\nb\tB-x\n")
    with pytest.raises(BertkitError, match=r"dev.conll:2: tag 'B-x' does not occur"):
        tagging.check_labels(dev, tagging.read(dev), {"O": 0, "B-person": 1})
    tokens_only = write(tmp_path / "p.conll", "a\nb\n\nc\n")
    assert [x.tags for x in read_conll(tokens_only, require_tags=False)] == [None, None]


def squad(tmp_path, name, answer_start=4, version="v2.0", impossible=False):
    obj = {
        "version": version,
        "data": [
            {
                "title": "t",
                "paragraphs": [
                    {
                        "context": "The cat sat on the mat.",
                        "qas": [
                            {
                                "id": "q1",
                                "question": "Who sat?",
                                "answers": [{"text": "cat", "answer_start": answer_start}],
                                "is_impossible": False,
                            },
                            {"id": "q2", "question": "Who flew?", "answers": [], "is_impossible": True},
                        ]
                        if not impossible
                        else [],
                    }
                ],
            }
        ],
    }
    return write(tmp_path / name, json.dumps(obj, indent=1))


def test_squad_reader_and_bad_answer_start(tmp_path):
    qs, v2 = read_squad(squad(tmp_path, "ok.json"))
    assert v2 and [(q.qid, q.answers, q.is_impossible) for q in qs] == [("q1", [("cat", 4)], False), ("q2", [], True)]
    path = squad(tmp_path, "bad.json", answer_start=5)
    line = next(i for i, t in enumerate(open(path), 1) if '"q1"' in t)
    with pytest.raises(BertkitError, match=rf"bad.json:{line}: question q1: answer_start 5 does not match"):
        read_squad(path)


def test_swag_csv(tmp_path):
    header = "video-id,fold-ind,startphrase,sent1,sent2,gold-source,ending0,ending1,ending2,ending3,label\n"
    f = write(tmp_path / "swag.csv", header + "v,1,x,A man sits.,He,gold,eats.,flies.,runs.,sleeps.,2\n")
    e = get_task("choice").read(f)[0]
    assert (e.context, e.start, e.endings, e.label) == ("A man sits.", "He", ["eats.", "flies.", "runs.", "sleeps."], 2)
    bad = write(tmp_path / "bad.csv", header + "v,1,x,A,He,gold,a,b,c,d,7\n")
    with pytest.raises(BertkitError, match=r"bad.csv:2: label '7' is not an ending index"):
        get_task("choice").read(bad)
