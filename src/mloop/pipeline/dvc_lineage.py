"""The DVC data version of a training run: the md5s `dvc.lock` recorded, as MLflow tags.

`dvc repro` writes `dvc.lock` with the md5 of every dependency and output of each stage it ran;
a run trained inside a DVC project records those hashes (`mloop.dvc.<path> = <md5>`, paths
relative to the project), so the registered version names the exact data it came from.
Outside a DVC project, or with an unreadable lock, it records nothing and never fails training.
"""

from __future__ import annotations

from pathlib import Path

import yaml

LOCK_FILE = "dvc.lock"
TAG_PREFIX = "mloop.dvc."
_SEARCH_DEPTH = 6  # folders searched upwards for dvc.lock (a data file sits below the project)


def find_lock(start: str | Path) -> Path | None:
    """The nearest `dvc.lock` in `start` or one of its parents, or None."""
    start = Path(start).resolve()
    folder = start if start.is_dir() else start.parent
    for candidate in [folder, *folder.parents][:_SEARCH_DEPTH]:
        if (candidate / LOCK_FILE).is_file():
            return candidate / LOCK_FILE
    return None


def record(project_root: str | Path) -> dict[str, str]:
    """`mloop.dvc.<path>` -> md5 for each file dep and out in the nearest dvc.lock.

    Paths are as `dvc.lock` writes them (relative to the project); params are not files and are
    left out (the run logs its params itself). Empty when there is no readable lock.
    """
    lock = find_lock(project_root)
    if lock is None:
        return {}
    try:
        stages = (yaml.safe_load(lock.read_text(encoding="utf-8")) or {}).get("stages") or {}
        tags = {}
        for stage in stages.values():
            for entry in [*(stage.get("deps") or []), *(stage.get("outs") or [])]:
                path, md5 = entry.get("path"), entry.get("md5")
                if path and md5:
                    tags[TAG_PREFIX + str(path)] = str(md5)
        return tags
    except (OSError, UnicodeDecodeError, yaml.YAMLError, AttributeError, TypeError):
        return {}
