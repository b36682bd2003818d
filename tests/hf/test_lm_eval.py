"""lm-evaluation-harness on an exported model, offline: a local YAML task over a local JSONL file. Its
log-likelihoods must be the native model's summed token log-probabilities of each continuation."""

import json

import pytest
import torch

import memory_mosaics

lm_eval = pytest.importorskip("lm_eval", reason="the lm-eval test needs lm_eval (installed by `make test`)")

DOCS = [
    {"context": "ROMEO:\nWhat light", "continuation": " through yonder window"},
    {"context": "First Citizen:\n", "continuation": "Before we proceed any further, hear me speak."},
    {"context": "All:\nSpeak", "continuation": ", speak."},
    {"context": "He", "continuation": "llo"},
]

TASK = """task: mosaic_local_ll
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: loglikelihood
doc_to_text: "{{{{context}}}}"
doc_to_target: "{{{{continuation}}}}"
target_delimiter: ""
metric_list:
  - metric: acc
"""


def native_loglikelihood(model, tok, context: str, continuation: str) -> float:
    """Σ log p(continuation tokens | everything before), with lm-eval's request semantics: trailing whitespace
    of the context moves to the continuation, whose tokens are those of the whole string after the context's."""
    stripped = context.rstrip()
    context, continuation = stripped, context[len(stripped):] + continuation
    whole = tok.encode(context + continuation)
    n_ctx = len(tok.encode(context))
    idx = torch.tensor([whole])
    with torch.no_grad():
        logp = torch.log_softmax(model(idx)[0].double(), dim=-1)
    return sum(logp[t - 1, whole[t]].item() for t in range(n_ctx, len(whole)))


def task_folder(tmp_path):
    """The JSONL documents and the YAML task over them; returns the folder to include."""
    data = tmp_path / "docs.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in DOCS))
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "mosaic_local_ll.yaml").write_text(TASK.format(data=data))
    return tasks


def assert_native(samples, run):
    """lm-eval's per-document log-likelihoods = the native model's, relative 1e-5."""
    samples = sorted(samples, key=lambda s: s["doc_id"])
    assert len(samples) == len(DOCS)
    model, tok = memory_mosaics.load_checkpoint(run)
    for sample, doc in zip(samples, DOCS):
        got = float(sample["resps"][0][0][0])
        want = native_loglikelihood(model, tok, doc["context"], doc["continuation"])
        assert abs(got - want) <= 1e-5 * abs(want), (doc, got, want)


def test_local_task_loglikelihoods_equal_native(hf_runs, tmp_path, monkeypatch):
    from lm_eval.tasks import TaskManager

    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "datasets"))
    tasks = task_folder(tmp_path)
    run, out = hf_runs["mosaic"]
    results = lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={out},backend=causal",
                                      tasks=["mosaic_local_ll"], task_manager=TaskManager(include_path=str(tasks)),
                                      batch_size=2, device="cpu", log_samples=True)
    assert_native(results["samples"]["mosaic_local_ll"], run)


@pytest.mark.slow
def test_lm_eval_cli_with_trust_remote_code(hf_runs, tmp_path):
    """The documented command line: a fresh `lm_eval` process that never imports memory_mosaics itself loads the
    export through its trust_remote_code shims."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    tasks = task_folder(tmp_path)
    run, out = hf_runs["mosaic"]
    env = {**os.environ, "HF_DATASETS_CACHE": str(tmp_path / "datasets"), "HF_MODULES_CACHE": str(tmp_path / "mods"),
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    lm_eval_bin = Path(sys.executable).parent / "lm_eval"
    subprocess.run([str(lm_eval_bin), "--model", "hf", "--model_args",
                    f"pretrained={out},trust_remote_code=True,backend=causal", "--tasks", "mosaic_local_ll",
                    "--include_path", str(tasks), "--device", "cpu", "--batch_size", "2",
                    "--output_path", str(tmp_path / "results"), "--log_samples"], check=True, env=env)
    (samples_file,) = (tmp_path / "results").rglob("samples_mosaic_local_ll_*.jsonl")
    assert_native([json.loads(line) for line in samples_file.read_text().splitlines()], run)
