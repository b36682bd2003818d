"""Typed, validated model configurations and named presets.

Field names follow nanoGPT (`vocab_size`, `block_size`, `n_layer`, `n_head`, `n_embd`, `dropout`) plus
`pmem_size` for the persistent memory. `block_size` is the *training* context: the Memory Mosaic has no
positional encoding and accepts longer inputs; the transformer cannot.

    cfg = MosaicConfig.preset("paper", n_layer=12)       # 123,588,336 parameters
    tcfg = TransformerConfig.preset("paper", n_layer=12)  # 123,980,544 parameters
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

FFN_KINDS = ("pmem", "mlp", "swiglu")
IMPLS = ("fast", "reference")
POSITIONS = ("learned", "rotary", "none")
WINDOW_CONVENTIONS = ("eq10", "appc")  # v2 short-term window: Eq. 10 reads h-1 past pairs, App. C reads h
OFFSET_DRAWS = ("layer", "forward")  # v2 long-term offset m in training: a draw per layer, or one per forward
# Initialisation and output head (layers/init.py): "library" = the authors' Library (Linears
# N(0, 1/fan_in), tied embedding N(0, 1/d), logits = LN(x)·Eᵀ/√d); "gpt2" = nanoGPT / nanoMosaics (§7, §9: E and
# Linears N(0, 0.02), residual output projections N(0, 0.02/√(2·n_layer)), logits = LN(x)·Eᵀ). The Memory Mosaic
# also has "v2": v2's truncated normals (layers/v2_init.py) with the gpt2 head (logits = LN(x)·Eᵀ), as v2's.
INITS = ("library", "gpt2")
MOSAIC_INITS = (*INITS, "v2")


def _one_of(default: str, choices: tuple[str, ...]):
    return field(default=default, metadata={"choices": choices})


class ConfigError(ValueError):
    """A configuration value or key is invalid. Subclasses ValueError. `key` names the field at fault whenever one
    is (every value check gives it: the CLI shows it as the flag the user typed); `others`, the other fields the
    message names (a check of two fields, e.g. batch_size and grad_accum), shown as their flags too."""

    def __init__(self, message: str, key: str | None = None, others: tuple[str, ...] = ()):
        super().__init__(message)
        self.key = key
        self.others = tuple(others)


def check_keys(cls, keys, where: str | None = None) -> None:
    """Unknown keys of dataclass `cls` -> ConfigError naming the closest valid key."""
    names = [f.name for f in dataclasses.fields(cls)]
    for key in keys:
        if key not in names:
            hint = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean '{hint[0]}'?)" if hint else ""
            where_ = f" in {where}" if where else ""
            raise ConfigError(f"unknown {cls.__name__ + ' ' if not where else ''}key '{key}'{where_}{hint}; "
                              f"valid keys: {', '.join(names)}")


def at_least(cfg, minimum: int, *names: str) -> None:
    """Each named integer field (None allowed: unset) is ≥ minimum, else ConfigError keyed by the field."""
    for name in names:
        value = getattr(cfg, name)
        if value is not None and value < minimum:
            raise ConfigError(f"{name} must be ≥ {minimum}, got {value}", key=name)


@functools.cache
def _sequence_fields(cls) -> frozenset[str]:
    """The fields of dataclass `cls` typed as a tuple or list (Optional[...] of one included)."""
    out = set()
    for name, tp in typing.get_type_hints(cls).items():
        if typing.get_origin(tp) in (typing.Union, types.UnionType):
            tp = next((a for a in typing.get_args(tp) if a is not type(None)), tp)
        if (typing.get_origin(tp) or tp) in (tuple, list):
            out.add(name)
    return frozenset(out)


def check_choices(cfg) -> None:
    """Each field of dataclass `cfg` whose metadata lists `choices` holds one of them (each item, for a tuple or
    list field; None where the field's default is None: unset), else ConfigError keyed by the field. argparse
    checks the flags; this checks the same values however the config was made (Python, YAML recipe, checkpoint)."""
    for f in dataclasses.fields(cfg):
        allowed = f.metadata.get("choices")
        value = getattr(cfg, f.name)
        if allowed is None or (value is None and f.default is None):
            continue
        if f.name not in _sequence_fields(type(cfg)):
            items = (value,)
        elif isinstance(value, (tuple, list)):
            items = value
        else:  # a str would pass item by item ("train" in "train") and be iterated by its characters later
            raise ConfigError(f"{f.name} must be a tuple or list of {', '.join(map(str, allowed))}, got {value!r}",
                              key=f.name)
        bad = [v for v in items if v not in allowed or type(v) not in {type(a) for a in allowed}]  # True ≠ 1 here
        if bad:
            raise ConfigError(f"{f.name} must be one of {', '.join(map(str, allowed))}, got {bad[0]!r}", key=f.name)


class _Config:
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}
    model_type: ClassVar[str] = ""
    # Values of fields added after checkpoints were first written: a saved config without the field was trained
    # with this value (from_dict fills it in), whatever today's default is.
    LEGACY: ClassVar[dict[str, Any]] = {}

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def preset(cls, name: str, **overrides: Any):
        """A named preset with optional field overrides, e.g. `MosaicConfig.preset("paper", n_layer=1)`."""
        if name not in cls.PRESETS:
            raise ConfigError(f"unknown preset '{name}' for {cls.__name__}; choose one of: {', '.join(cls.PRESETS)}",
                              key="preset")
        check_keys(cls, overrides)
        return cls(**{**cls.PRESETS[name], **overrides})

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        d = cls._upgrade({k: v for k, v in d.items() if k != "model_type"})
        check_keys(cls, d)
        return cls(**{**cls.LEGACY, **d})

    @classmethod
    def _upgrade(cls, d: dict[str, Any], init_given: bool = True) -> dict[str, Any]:
        """A saved config's fields renamed or merged since it was written, as today's fields (same model).
        init_given: d's `init` was written by the run (not filled in from a preset)."""
        return d

    @classmethod
    def upgrade_overrides(cls, preset: str, overrides: dict[str, Any]) -> dict[str, Any]:
        """Overrides of `preset` (a run's saved `model_args`) as today's fields: `_upgrade` read against the preset's
        values, since an old switch may depend on a field the overrides leave to the preset. Keeps every key given
        and adds those the upgrade sets apart from the preset's value. An unknown preset: unchanged (the caller
        reports it)."""
        if preset not in cls.PRESETS:
            return dict(overrides)
        base = cls.PRESETS[preset]
        merged = cls._upgrade({**base, **overrides}, init_given="init" in overrides)
        return {k: v for k, v in merged.items() if k in overrides or k not in base or base[k] != v}

    def to_dict(self) -> dict[str, Any]:
        return {"model_type": self.model_type, **dataclasses.asdict(self)}

    def replace(self, **changes: Any):
        check_keys(type(self), changes)
        return dataclasses.replace(self, **changes)

    def _validate_common(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}", key=name)
        if self.n_embd % self.n_head != 0:
            raise ConfigError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})", key="n_embd",
                              others=("n_head",))
        for name in self.field_names():
            if name.endswith("dropout"):
                value = getattr(self, name)
                if not 0.0 <= value < 1.0:
                    raise ConfigError(f"{name} must be in [0, 1), got {value!r}", key=name)
        check_choices(self)

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head


@dataclass
class MosaicConfig(_Config):
    """A Memory Mosaic: context memories (attention's place) and persistent memories (the MLP's place)."""

    vocab_size: int = 50304
    block_size: int = 512  # training context; longer inputs are allowed (no positional encoding)
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    pmem_size: int = 2688  # persistent-memory slots per head; 3.5·n_embd matches a GPT-2 block's parameters
    dropout: float = 0.05  # residual dropout after each memory (the Library's hd_dropout)
    # Dropout on retrieval weights; None (unset): the same as `dropout`, so dropout=0.0 means no dropout at all
    # (any attention dropout also sends CPU attention to its slow unfused path). Presets set them explicitly.
    cmem_attn_dropout: Optional[float] = None  # context memory: 0 in the paper (eft) runs, 0.05 for ICLL
    pmem_attn_dropout: Optional[float] = None  # persistent memory (ic_dropout)
    # Ablation switches (all True / "pmem" is the paper's model).
    value_peek: bool = True  # False: v_t = α·Norm(W x_t), no look at x_{t+1}
    key_leaky_average: bool = True  # False: k_t from x_t alone (λ = 0), in C-mem keys and P-mem queries
    learn_bandwidth: bool = True  # False: β fixed at its initial value e² (θ is a buffer)
    key_norm: bool = True  # False: C-mem keys and P-mem queries not L2-normalised (no longer a Gaussian kernel)
    ffn: str = _one_of("pmem", FFN_KINDS)  # "pmem" | "mlp" | "swiglu": what fills the MLP slot (mlp/swiglu at matched parameters)
    # Implementation: "fast" (O(T) scan, flash-eligible retrieval) or "reference" (T×T matrices). Same maths.
    impl: str = _one_of("fast", IMPLS)
    scan_chunk: int = 16
    # Memory Mosaics v2 switches (docs/long_context.md). The defaults are v1: with all of them off the model is v1's,
    # parameter for parameter and logit for logit.
    adaptive_bandwidth: bool = False  # β = β₁·n^α + β₀ per head, n = number of pairs the query reads
    key_gate: bool = False  # gated keys: k̄_t = g_t W_φx_t + λ_t k̄_{t-1}, g = exp(W_g x), λ = exp(-|W_λ x|)
    short_window: int = 0  # h ≥ 2: short-term memory over j ∈ [t-h+1, t-1]; 0: v1's one memory over j ≤ t-1
    long_offset: int = 0  # m ≥ 1: long-term memory over j ≤ t-m (m used at inference); 0: no long-term memory
    long_offset_min: int = 0  # training draws m ~ U[min, max] per layer and forward pass; (0, 0): m = long_offset
    long_offset_max: int = 0
    # Readings of the paper where it is ambiguous (docs/long_context.md "Choices"); the defaults are ours.
    window_convention: str = _one_of("eq10", WINDOW_CONVENTIONS)  # "eq10": window h reads j ∈ [t-h+1, t-1] (h-1 pairs); "appc": [t-h, t-1] (h)
    long_offset_draw: str = _one_of("layer", OFFSET_DRAWS)  # "layer": each layer draws its own m per training forward; "forward": one for all
    v2_per_head: bool = True  # False: the gate g, decay λ and bandwidth β₀, β₁, α are shared by a memory's heads
    # "library" (the authors' Library: the paper's runs), "gpt2" (nanoMosaics' init and head, which trains ~2 nats
    # faster in the first hundreds of steps at small width: README "Language modelling") or "v2" (v2's truncated
    # normals σ = 1/√(2d(l+1)) and the gpt2 head; v2 paper, arXiv 2507.03285). See INITS.
    init: str = _one_of("library", MOSAIC_INITS)

    model_type: ClassVar[str] = "mosaic"
    LEGACY: ClassVar[dict[str, Any]] = {"init": "library"}  # every Memory Mosaic before the field: Library init
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        # BabiStories (Library eft semantics): no C-mem attention dropout. Depth is an override.
        "paper": dict(vocab_size=50304, block_size=512, n_layer=12, n_head=12, n_embd=768, pmem_size=2688,
                      dropout=0.05, cmem_attn_dropout=0.0, pmem_attn_dropout=0.05, init="library"),
        # RegBench / in-context language learning (Library regular semantics).
        "icll": dict(vocab_size=20, block_size=1000, n_layer=2, n_head=8, n_embd=128, pmem_size=448,
                     dropout=0.05, cmem_attn_dropout=0.05, pmem_attn_dropout=0.05, init="library"),
        # Small CPU model for real runs (character or small-BPE language modelling, benchmarks).
        "small": dict(vocab_size=4096, block_size=256, n_layer=4, n_head=4, n_embd=128, pmem_size=448,
                      dropout=0.0, cmem_attn_dropout=0.0, pmem_attn_dropout=0.0, init="gpt2"),
        # Trains in seconds on a CPU; smoke tests.
        "tiny": dict(vocab_size=256, block_size=64, n_layer=2, n_head=2, n_embd=32, pmem_size=112,
                     dropout=0.0, cmem_attn_dropout=0.0, pmem_attn_dropout=0.0, init="gpt2"),
    }
    # Memory Mosaics v2: small's dimensions with windows scaled to a 256-token training context (the paper's h = 256,
    # m ~ U[64, 256] at context 4096, m = 64 at inference) and the paper's "small" model (P = 7168 gives SwiGLU d' =
    # 6144; its tokenizer is not confirmed, so the vocabulary stays GPT-2's).
    V2_SWITCHES: ClassVar[dict[str, Any]] = dict(adaptive_bandwidth=True, key_gate=True, ffn="swiglu", init="v2")
    PRESETS["small-v2"] = dict(PRESETS["small"], **V2_SWITCHES, short_window=64, long_offset=16, long_offset_min=16,
                               long_offset_max=64)
    PRESETS["paper-v2"] = dict(vocab_size=50304, block_size=4096, n_layer=24, n_head=16, n_embd=2048, pmem_size=7168,
                               dropout=0.0, cmem_attn_dropout=0.0, pmem_attn_dropout=0.0, **V2_SWITCHES,
                               short_window=256, long_offset=64, long_offset_min=64, long_offset_max=256)

    @classmethod
    def _upgrade(cls, d: dict[str, Any], init_given: bool = True) -> dict[str, Any]:
        """The boolean `v2_init` (before init="v2"): with init "gpt2" it drew exactly what init="v2" draws. With init
        "library" (v2's draws, the Library's 1/√d head) it becomes "library": a checkpoint's weights and logits are
        the same (the head's scale is the init's only trace in a trained model); only a fresh draw would differ —
        which is why only SAVED configs are upgraded: new input naming `v2_init` is refused (unknown key)."""
        d = dict(d)
        v2_init, init = d.pop("v2_init", None), d.get("init", cls.LEGACY["init"])
        if v2_init and init == "gpt2":
            d["init"] = "v2"
        elif v2_init is False and init == "v2" and not init_given:  # over small-v2 / paper-v2: "gpt2" then, "v2" now
            d["init"] = "gpt2"
        return d

    def __post_init__(self) -> None:
        if self.cmem_attn_dropout is None:
            self.cmem_attn_dropout = self.dropout
        if self.pmem_attn_dropout is None:
            self.pmem_attn_dropout = self.dropout
        self._validate_common()
        if not isinstance(self.pmem_size, int) or self.pmem_size <= 0:
            raise ConfigError(f"pmem_size must be a positive integer, got {self.pmem_size!r}", key="pmem_size")
        if not isinstance(self.scan_chunk, int) or self.scan_chunk < 2:
            raise ConfigError(f"scan_chunk must be an integer ≥ 2, got {self.scan_chunk!r}", key="scan_chunk")
        self._validate_v2()

    def _validate_v2(self) -> None:
        for name in ("short_window", "long_offset", "long_offset_min", "long_offset_max"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"{name} must be an integer ≥ 0, got {value!r}", key=name)
        if self.short_window == 1:
            raise ConfigError("short_window must be 0 (off) or ≥ 2: window h reads j ∈ [t-h+1, t-1], empty for h = 1",
                              key="short_window")
        lo, hi = self.long_offset_min, self.long_offset_max
        if (lo or hi) and not (self.long_offset and 1 <= lo <= hi):
            raise ConfigError(f"long_offset_min/max must satisfy 1 ≤ min ≤ max with long_offset ≥ 1 (the inference "
                              f"offset), got min={lo}, max={hi}, long_offset={self.long_offset}",
                              key="long_offset_min", others=("long_offset_max", "long_offset"))

    @property
    def uses_v2_memory(self) -> bool:
        """True when a v2 context-memory switch is on (layers/three_level_memory.py replaces v1's ContextMemory)."""
        return bool(self.adaptive_bandwidth or self.key_gate or self.short_window or self.long_offset)

    @property
    def ffn_hidden(self) -> int:
        """Hidden width of the MLP / SwiGLU ablations, matched to the persistent memory's 2d² + 2Pd weights."""
        d, p = self.n_embd, self.pmem_size
        return round((d + p) if self.ffn == "mlp" else 2 * (d + p) / 3)


@dataclass
class TransformerConfig(_Config):
    """GPT-2 baseline (nanoGPT-style): learned positions, pre-LN, GELU MLP of width 4d, tied embeddings."""

    vocab_size: int = 50304
    block_size: int = 512  # size of the position table: the longest input the model accepts
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.05  # on the embedding sum, attention probabilities and residual outputs
    # "learned": GPT-2's position table (inputs ≤ block_size); "rotary": RoPE on queries and keys (no table, any
    # length; ops/rotary.py); "none": no position information at all (causal attention alone; any length).
    positions: str = _one_of("learned", POSITIONS)
    rope_base: float = 10000.0
    # "gpt2" (the paper's baseline, §7) or "library" (the Memory Mosaic's Library init and 1/√d head, to compare
    # heads like for like). Every preset keeps "gpt2": the baseline the authors ran. See INITS.
    init: str = _one_of("gpt2", INITS)

    model_type: ClassVar[str] = "transformer"
    LEGACY: ClassVar[dict[str, Any]] = {"init": "gpt2"}  # every transformer before the field: GPT-2 init
    # Mirrors MosaicConfig's presets at matched parameter count (same width, heads and depth).
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        name: {k: v for k, v in p.items() if k in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "dropout")}
        for name, p in MosaicConfig.PRESETS.items()
    }

    def __post_init__(self) -> None:
        self._validate_common()
        if self.positions == "rotary" and self.head_dim % 2:
            raise ConfigError(f"positions rotary needs an even head dimension n_embd / n_head, got {self.head_dim}",
                              key="positions", others=("n_embd", "n_head"))
        if not self.rope_base > 1.0:
            raise ConfigError(f"rope_base must be > 1, got {self.rope_base!r}", key="rope_base")


CONFIGS: dict[str, type[_Config]] = {"mosaic": MosaicConfig, "transformer": TransformerConfig}


def config_from_dict(d: dict[str, Any]) -> MosaicConfig | TransformerConfig:
    """Rebuild a config saved with `to_dict()` (it records `model_type`)."""
    kind = d.get("model_type")
    if kind not in CONFIGS:
        raise ConfigError(f"config has unknown model_type {kind!r}; expected one of {list(CONFIGS)}")
    return CONFIGS[kind].from_dict(d)
