"""The Python API: run_icl(IclConfig(...)) — the same runs as `mosaic icl`, reproducible in one process."""

import json

import pytest
import torch

from memory_mosaics.config import ConfigError
from memory_mosaics.icl import IclConfig, run_icl


def test_compare_in_process_matches_single_runs(tmp_path, restore_threads, capsys):
    common = dict(task="regbench", layers=1, envs=4, n_test=6, steps=2, progress=False)
    run_icl(IclConfig(**common, compare=True, out=str(tmp_path / "cmp")))
    torch.manual_seed(123)  # whatever the global RNG holds, --seed alone decides the run
    single = run_icl(IclConfig(**common, model="transformer", out=str(tmp_path / "one")))
    paired = json.loads((tmp_path / "cmp" / "transformer" / "results.json").read_text())
    assert [h["loss"] for h in paired["history"]] == [h["loss"] for h in single["history"]]
    assert paired["accuracy"] == single["accuracy"] and paired["tvd"] == single["tvd"]
    summary = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert set(summary["results"]) == {"mosaic", "transformer"}


@pytest.mark.parametrize("bad, key", [(dict(envs=0), "envs"), (dict(lr=float("nan")), "lr"),
                                      (dict(task="parity"), "task"), (dict(corpus="/no/such/file"), "corpus")])
def test_bad_config_names_the_field(bad, key):
    with pytest.raises(ConfigError) as err:
        IclConfig(model="mosaic", **bad)
    assert err.value.key == key
