"""Old module paths of 0.1's reorganisation still import, with a DeprecationWarning naming the
new home, including modules whose names were split over several new ones."""

from __future__ import annotations

import importlib
import pickle
import sys

import pytest

from mosaic_fast._moved import MOVED, MOVED_INTO_PACKAGE


def _fresh_import(name: str):
    sys.modules.pop(name, None)
    with pytest.warns(DeprecationWarning, match="moved to"):
        return importlib.import_module(name)


@pytest.mark.parametrize("old", sorted(MOVED))
def test_every_old_module_path_imports_and_points_at_its_home(old):
    module = _fresh_import(old)
    homes = [importlib.import_module(h) for h in MOVED[old]]
    if len(homes) == 1:
        assert module is homes[0]
    for home in homes:  # each new home's public names are found under the old path
        for name in getattr(home, "__all__", []):
            assert getattr(module, name) is getattr(home, name), (old, name)


def test_a_split_module_finds_each_name_where_it_lives_now():
    from mosaic_fast.network.scheduler_state import STATE_KEYS
    from mosaic_fast.results.folder import RunFolder
    from mosaic_fast.results.records import RunRecord, find_runs

    runfolder = _fresh_import("mosaic_fast.runfolder")
    assert (runfolder.RunFolder, runfolder.RunRecord) == (RunFolder, RunRecord)
    assert runfolder.find_runs is find_runs
    assert _fresh_import("mosaic_fast.network_sim").STATE_KEYS is STATE_KEYS
    with pytest.raises(AttributeError, match="no attribute 'nowhere'"):
        runfolder.nowhere  # noqa: B018
    assert pickle.loads(pickle.dumps(RunRecord)) is RunRecord


@pytest.mark.parametrize("package", sorted(MOVED_INTO_PACKAGE))
def test_a_module_that_became_a_package_still_serves_its_old_names(package):
    from mosaic_fast.network.readers import CSV_COLUMNS
    from mosaic_fast.network.spec import NetworkSpec
    from mosaic_fast.network.units import parse_bandwidth

    network = importlib.import_module(package)
    for name, value, home in [
        ("NetworkSpec", NetworkSpec, "mosaic_fast.network.spec"),
        ("parse_bandwidth", parse_bandwidth, "mosaic_fast.network.units"),
        ("CSV_COLUMNS", CSV_COLUMNS, "mosaic_fast.network.readers"),
    ]:
        with pytest.warns(DeprecationWarning, match=f"{package}.{name} moved to {home}"):
            assert getattr(network, name) is value
    with pytest.raises(AttributeError):
        network.nowhere  # noqa: B018
