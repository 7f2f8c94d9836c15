"""Write a new mloop project: the rendered templates, the data and its inferred features.yaml.

    write_project(Path("churn-model"), task="classification")

A project trains at once (`cd PATH && mloop train` reads ./params.yaml, whose `data.path`
names the table), runs as a DVC pipeline (`dvc repro`: prepare -> train -> evaluate), and
tests its model and API with mloop's pytest plugin (`make test`).
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import pandas as pd
import yaml

from mloop.data.io import read_table, table_format, write_table
from mloop.errors import ConfigError, ValidationError
from mloop.features.contract import FeatureContract
from mloop.scaffold.samples import CLASSIFICATION, REGRESSION, TASKS, sample_table

SAMPLE_ROWS, HOLDOUT_ROWS = 1000, 300
SAMPLE_SEED, HOLDOUT_SEED = 7, 8
CRITERIA = {CLASSIFICATION: {"accuracy": 0.7, "roc_auc": 0.75}, REGRESSION: {"r2": 0.5}}
MIN_METRICS = {CLASSIFICATION: {"roc_auc": 0.7}, REGRESSION: {"r2": 0.5}}
# The behaviour checks of the sample data (features.yaml `tests:`), which its label follows.
SAMPLE_TESTS = {
    "churn": {
        "invariance": [],  # a forest splits on noise too: declare only what the model keeps
        "directional": [{"feature": "num_support_calls", "increase": True, "expect": "up"}],
    },
    "price": {
        "invariance": [],
        "directional": [{"feature": "area_sqm", "increase": True, "expect": "up"}],
    },
}
_PLACEHOLDER = re.compile(r"@@(\w+)@@")
_ID_COLUMN = re.compile(r"(^|_)id$", re.IGNORECASE)
# template -> path in the project
FILES = {
    "params.yaml": "params.yaml",
    "dvc.yaml": "dvc.yaml",
    "Makefile": "Makefile",
    "gitignore": ".gitignore",
    "README.md": "README.md",
    "ci.yml": ".github/workflows/mloop.yml",
    "tests/test_model.py.tmpl": "tests/test_model.py",
    "tests/test_api.py.tmpl": "tests/test_api.py",
}
PLOTS = {
    CLASSIFICATION: [
        {"plots/roc.csv": {"x": "fpr", "y": "tpr", "cache": False}},
        {"plots/precision_recall.csv": {"x": "recall", "y": "precision", "cache": False}},
        {
            "plots/confusion.csv": {
                "x": "actual",
                "y": "predicted",
                "template": "confusion",
                "cache": False,
            }
        },
    ],
    REGRESSION: [
        {"plots/predictions.csv": {"x": "actual", "y": "predicted", "template": "scatter",
                                   "cache": False}},
    ],
}  # fmt: skip


@dataclass
class Project:
    """What `write_project` wrote."""

    root: Path
    name: str
    task: str
    target: str
    data: str  # the training table, relative to root
    features: int
    files: list[str] = field(default_factory=list)


def write_project(
    root: Path,
    *,
    task: str = CLASSIFICATION,
    data: Path | None = None,
    target: str | None = None,
    name: str | None = None,
    force: bool = False,
) -> Project:
    """Write a project into `root` (created when missing); a non-empty `root` needs `force`.

    With `data`, that table is copied into `data/` and features.yaml is inferred from it
    (`target` defaults to its last column; columns named `id` or `*_id` are identifiers);
    without, the task's generated sample and a held-out sample are written.
    """
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}", hint=f"tasks: {', '.join(TASKS)}")
    root = Path(root)
    _check_folder(root, force)
    name = name or _model_name(root)
    if data is not None:
        frame, target, ids = _user_table(data, target)
        data_rel = f"data/{data.name}"
    else:
        frame, default_target, ids = sample_table(task, SAMPLE_ROWS, SAMPLE_SEED)
        if target is not None and target != default_target:
            raise ConfigError(
                f"--target {target!r} needs --data: the {task} sample's target is "
                f"{default_target!r}"
            )
        target = default_target
        data_rel = "data/sample.csv"
    root.mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    written: list[str] = []
    if data is not None:
        shutil.copyfile(data, root / data_rel)
    else:
        write_table(frame, root / data_rel)
        holdout, _, _ = sample_table(task, HOLDOUT_ROWS, HOLDOUT_SEED)
        write_table(holdout, root / "data/holdout.csv")
        written.append("data/holdout.csv")
    written.insert(0, data_rel)

    # The sample's ranges cover the held-out file too. Policy `count`: inferred ranges are the
    # data's, not the domain's, so values outside them are counted at serving, not refused,
    # until someone reviews them (and sets `reject` where a bound is real).
    known = frame if data is not None else pd.concat([frame, holdout], ignore_index=True)
    contract = FeatureContract.infer(known.drop(columns=ids), target=target, policy="count")
    checks = SAMPLE_TESTS.get(target, {}) if data is None else {}
    (root / "features.yaml").write_text(_contract_text(contract, checks), encoding="utf-8")
    written.append("features.yaml")

    values = {
        "name": name,
        "task": task,
        "target": target,
        "id_columns": _flow(ids),
        "data": data_rel,
        "criteria": _block(CRITERIA[task], indent=4),
        "min_metrics": repr(MIN_METRICS[task]),
        "plots": _block(PLOTS[task], indent=6),
    }
    for template, target_path in FILES.items():
        out = root / target_path
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(render(_template(template), values), encoding="utf-8")
        written.append(target_path)
    return Project(root, name, task, target, data_rel, len(contract.features), written)


def render(text: str, values: dict[str, str]) -> str:
    """`@@key@@` placeholders replaced by `values`; an unknown key is a bug, so it raises."""
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def _template(name: str) -> str:
    return resources.files("mloop.scaffold").joinpath("templates", name).read_text("utf-8")


def _check_folder(root: Path, force: bool) -> None:
    if root.exists() and not root.is_dir():
        raise ConfigError(f"{str(root)!r} is a file, not a folder")
    if root.is_dir() and any(root.iterdir()) and not force:
        raise ConfigError(
            f"folder {str(root)!r} is not empty",
            hint="choose a new folder, or pass --force to write the project files into it",
        )


def _model_name(root: Path) -> str:
    """The registered model's name from the folder's: lower case, dashes for other signs."""
    slug = re.sub(r"[^a-z0-9]+", "-", root.resolve().name.lower()).strip("-")
    return slug or "model"


def _user_table(data: Path, target: str | None):
    """The user's table, its target (default: the last column) and its id-like columns."""
    table_format(data)
    if not data.is_file():
        raise ConfigError(f"data file {str(data)!r} does not exist")
    frame = read_table(data)
    if frame.empty:
        raise ValidationError(f"data file {str(data)!r} has no rows")
    target = target or str(frame.columns[-1])
    if target not in frame.columns:
        raise ValidationError(
            f"target column {target!r} is not in {str(data)!r}",
            hint=f"columns: {', '.join(map(str, frame.columns))}",
        )
    ids = [str(c) for c in frame.columns if c != target and _ID_COLUMN.search(str(c))]
    return frame, target, ids


def _contract_text(contract: FeatureContract, checks: dict) -> str:
    text = contract.to_yaml()
    if checks:
        text += (
            "# Behaviour checks of the model, run by tests/test_model.py (mloop's pytest plugin)\n"
            + yaml.safe_dump({"tests": checks}, sort_keys=False)
        )
    return text


def _flow(values: list[str]) -> str:
    return "[" + ", ".join(values) + "]"


def _block(value: object, indent: int) -> str:
    """`value` as block YAML, every line but the first indented by `indent` spaces."""
    lines = yaml.safe_dump(value, sort_keys=False).rstrip("\n").splitlines()
    pad = " " * indent
    return "\n".join([lines[0], *(pad + line for line in lines[1:])])
