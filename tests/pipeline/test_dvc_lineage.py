"""`dvc_lineage.record`: the dvc.lock md5s of a project's files as `mloop.dvc.<path>` tags."""

from __future__ import annotations

from mloop.pipeline import dvc_lineage

LOCK = """\
schema: '2.0'
stages:
  prepare:
    cmd: mloop prepare data/sample.csv
    deps:
    - {path: data/sample.csv, hash: md5, md5: aaa1, size: 10}
    params:
      params.yaml: {preprocess: {test_split: 0.2}}
    outs:
    - {path: data/prepared/train.csv, hash: md5, md5: bbb2, size: 8}
  train:
    deps:
    - {path: data/prepared/train.csv, hash: md5, md5: bbb2, size: 8}
"""


def test_record_reads_the_nearest_lock_above_a_data_folder(tmp_path):
    (tmp_path / "dvc.lock").write_text(LOCK)
    below = tmp_path / "data" / "prepared"
    below.mkdir(parents=True)
    expected = {"mloop.dvc.data/sample.csv": "aaa1", "mloop.dvc.data/prepared/train.csv": "bbb2"}
    assert dvc_lineage.record(tmp_path) == expected
    assert dvc_lineage.record(below) == expected


def test_no_lock_or_a_broken_one_records_nothing(tmp_path):
    assert dvc_lineage.record(tmp_path) == {}
    (tmp_path / "dvc.lock").write_text("stages: [not: a mapping")
    assert dvc_lineage.record(tmp_path) == {}
    (tmp_path / "dvc.lock").write_text("stages:\n  s:\n    deps: 3\n")
    assert dvc_lineage.record(tmp_path) == {}
