"""`--dist loadgroup` that keeps its groups on every pytest version.

pytest-xdist 3.8 tells its scheduler a test's `xdist_group` by appending "@group" to
the test's id through `item._nodeid`, which pytest 9.2 no longer reads (its ids are
structured): the groups are silently dropped and every worker trains every shared
model (pytest-dev/pytest-xdist#1386). Here each worker writes the groups it collected
to a file the scheduler reads, so grouping does not depend on how pytest spells ids.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from xdist.scheduler import LoadGroupScheduling

GROUPS_FILE = "apps_xdist_groups"  # the workerinput key naming the file


class GroupsFromWorkers(LoadGroupScheduling):
    """xdist's loadgroup scheduler, its groups read from what the workers collected."""

    def __init__(self, config, log, path: Path):
        super().__init__(config, log)
        self.path, self.groups = path, None

    def _split_scope(self, nodeid: str) -> str:
        if self.groups is None:  # first called once every worker has collected
            files = sorted(path for path in self.path.parent.glob(self.path.name + ".*")
                           if path.suffix != ".tmp")
            self.groups = json.loads(files[0].read_text()) if files else {}
        return self.groups.get(nodeid) or super()._split_scope(nodeid)


class ControllerHooks:
    """Registered in the process that runs xdist's workers (-n N)."""

    def __init__(self):
        folder = Path(tempfile.mkdtemp(prefix="xdist-groups-"))
        self.path = folder / "groups"

    def pytest_configure_node(self, node):
        node.workerinput[GROUPS_FILE] = str(self.path)

    def pytest_unconfigure(self, config):
        shutil.rmtree(self.path.parent, ignore_errors=True)

    @pytest.hookimpl(tryfirst=True)
    def pytest_xdist_make_scheduler(self, config, log):
        if config.getvalue("dist") == "loadgroup":
            return GroupsFromWorkers(config, log, self.path)
        return None


class WorkerHooks:
    """Registered in each worker: writes {test id: group} once collection is done."""

    def __init__(self, path: str):
        self.path = f"{path}.{os.environ.get('PYTEST_XDIST_WORKER', 'worker')}"

    @pytest.hookimpl(tryfirst=True)  # before xdist reports the collection
    def pytest_collection_finish(self, session):
        groups = {}
        for item in session.items:
            names = sorted({str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                            for mark in item.iter_markers("xdist_group")})
            if names:
                groups[item.nodeid] = "_".join(names)
        temporary = Path(self.path + ".tmp")
        temporary.write_text(json.dumps(groups))
        temporary.replace(self.path)  # the scheduler never reads half a file


def register(config) -> None:
    """Add the hooks of this process's side (nothing without xdist or its workers)."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        if GROUPS_FILE in workerinput:
            config.pluginmanager.register(WorkerHooks(workerinput[GROUPS_FILE]))
    elif config.getoption("numprocesses", None):
        config.pluginmanager.register(ControllerHooks())
