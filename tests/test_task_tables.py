"""Every recipe table's config class lives beside its component: loading them never imports vsuite.tasks
(recipes -> tasks would close a loop, since tasks load recipes)."""

import json
import os
import subprocess
import sys

from vsuite.recipes import TASK_TABLES

PROBE = """
import json, sys
from vsuite.recipes import TASK_TABLES, task_tables
classes = {f"{task}.{table}": f"{cls.__module__}:{cls.__name__}"
           for task in TASK_TABLES for table, cls in task_tables(task).items()}
print(json.dumps({"classes": classes, "tasks": sorted(m for m in sys.modules if m.startswith("vsuite.tasks"))}))
"""


def test_no_table_points_into_tasks():
    specs = [spec for tables in TASK_TABLES.values() for spec in tables.values()]
    assert specs and not [s for s in specs if s.startswith("vsuite.tasks")]
    assert all(s.split(".")[1] in ("models", "data", "train", "metrics", "bench") for s in specs), specs


def test_loading_every_config_class_imports_no_task_module():
    res = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout.strip().splitlines()[-1])
    assert report["tasks"] == []
    # every class is the one TASK_TABLES names, defined in that module (not re-exported from elsewhere)
    expected = {f"{task}.{table}": spec for task, tables in TASK_TABLES.items() for table, spec in tables.items()}
    assert report["classes"] == expected
