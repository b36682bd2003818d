import json

from memory_mosaics.bench import BenchConfig, activation_bytes, format_table, run_benchmarks, save


def test_bench_runs_and_reports_every_variant(tmp_path):
    cfg = BenchConfig(preset="tiny", vocab_size=64, seq_lens=(16, 40), tokens_per_batch=64, gen_contexts=(8,),
                      gen_new_tokens=4, uncached_max_tokens=4, repeats=1, warmup=1, reference_max_len=16,
                      core_vocab=32, core_seq_lens=(16,))
    result = run_benchmarks(cfg, log=lambda *_: None)
    variants = {(r["vocab"], r["T"], r["variant"]) for r in result["train"]}
    assert variants == {(32, 16, "mosaic-fast"), (32, 16, "transformer"),  # the core case: no reference path
                        (64, 16, "mosaic-fast"), (64, 16, "mosaic-reference"), (64, 16, "transformer"),
                        (64, 40, "mosaic-fast"), (64, 40, "transformer")}  # reference skipped above reference_max_len
    assert all(r["tokens_per_s"] > 0 and r["memory_bytes"] > 0 for r in result["train"])
    assert {r["variant"] for r in result["generate"]} == {"mosaic-fast", "transformer"}
    table = format_table(result)
    assert "vs transformer" in table and "speedup" in table and result["header"]["torch"] in table
    save(result, tmp_path / "b.json")
    assert json.loads((tmp_path / "b.json").read_text())["config"]["preset"] == "tiny"


def test_activation_bytes_grows_with_sequence_length():
    import torch

    from memory_mosaics import MemoryMosaic, MosaicConfig

    model = MemoryMosaic(MosaicConfig.preset("tiny"))

    def step(T):
        return lambda: model(torch.zeros(1, T, dtype=torch.long)).sum().backward()

    small = activation_bytes(step(512), model.parameters())
    large = activation_bytes(step(2048), model.parameters())
    assert 3.0 < large / small < 5.0  # linear in T for the fast path (no T×T buffers)
