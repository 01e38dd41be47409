"""How a continuation is sampled: :class:`Sampling` (one request's settings) and
:class:`GenerationDefaults` (what the settings a caller leaves unset become: the sampling fields
of the model's ``generation_config``, which ``gemlm.loading`` fills from :data:`ALIAS_DEFAULTS`
for a built-in model that states none, else greedy, as ``transformers`` does). Torch-free."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import GenerationConfig

SAMPLING_FIELDS = ("do_sample", "temperature", "top_p", "top_k", "repetition_penalty")

# gemlm's defaults for the built-in models, whose GGUF-converted folders state none.
# SmolLM2-135M-Instruct (the Q4_1 GGUF): greedy. Its card advises temperature 0.2, top-p 0.9, but
# on this GGUF 4 of 10 seeded replies to "What is the capital of France?" start "L'Étoile, ..."
# and run on in French; greedy is as right on short facts (80% vs 78%,
# benchmarks/results/chat_defaults.md) and never does that. Gemma 3: the upstream
# generation_config.json (top-k 64, top-p 0.95, temperature 1).
SMOLLM2_DEFAULTS = {"do_sample": False}
ALIAS_DEFAULTS: dict[str, dict[str, Any]] = {
    "smollm2-135m-instruct": SMOLLM2_DEFAULTS,
    "huggingfacetb/smollm2-135m-instruct": SMOLLM2_DEFAULTS,
    "gemma3-270m": {"do_sample": True, "top_k": 64, "top_p": 0.95},
}


@dataclass(frozen=True)
class GenerationDefaults:
    """What an unset sampling setting becomes. ``temperature`` 0 is greedy; ``top_k`` 0 is off.

    >>> GenerationDefaults().as_dict()["source"]
    'greedy (the model states no sampling defaults)'
    """

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    source: str = "greedy (the model states no sampling defaults)"

    @classmethod
    def of(cls, config: GenerationConfig | None) -> GenerationDefaults:
        """The sampling a ``generation_config`` states, read as vLLM reads it: the values
        written there (``do_sample: false`` means greedy); greedy if it states none."""
        stated = {k: getattr(config, k, None) for k in SAMPLING_FIELDS}
        stated = {k: v for k, v in stated.items() if v is not None}
        if not stated:
            return cls()
        greedy = stated.get("do_sample") is False
        return cls(
            temperature=0.0 if greedy else float(stated.get("temperature", 1.0)),
            top_p=float(stated.get("top_p", 1.0)),
            top_k=int(stated.get("top_k", 0)),
            repetition_penalty=float(stated.get("repetition_penalty", 1.0)),
            source="generation_config",
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def states_sampling(config: GenerationConfig | None) -> bool:
    """Whether a ``generation_config`` sets any of :data:`SAMPLING_FIELDS`."""
    return any(getattr(config, k, None) is not None for k in SAMPLING_FIELDS)


@dataclass(frozen=True)
class Sampling:
    """How one continuation is generated; ``None`` takes the model's default
    (:class:`GenerationDefaults`). ``temperature`` 0 is greedy, ``top_k`` 0 is off; ``seed``
    seeds torch.

    The penalties are the OpenAI / vLLM ones: ``frequency_penalty`` and ``presence_penalty``
    (-2..2) lower the logit of a token by ``frequency * count + presence * (count > 0)``, its
    count in the generated text; ``repetition_penalty`` (> 0, 1 is off) divides a positive
    logit (multiplies a negative one) of every token already in the prompt or the output.

    >>> Sampling(stop="\\n").stop
    ('\\n',)
    >>> Sampling(seed=7).for_choice(2).seed
    9
    >>> Sampling(top_p=0.5).resolved(GenerationDefaults(temperature=0.2)).temperature
    0.2
    """

    max_new_tokens: int = 256
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    repetition_penalty: float | None = None
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    stop: tuple[str, ...] = field(default=())
    seed: int | None = None

    def __post_init__(self) -> None:
        stop = self.stop
        stop = (stop,) if isinstance(stop, str) else tuple(stop or ())
        object.__setattr__(self, "stop", tuple(s for s in stop if s))
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        problems = [
            f"{name} must be {rule}, got {value}"
            for name, value, ok, rule in (
                ("temperature", self.temperature, lambda x: x >= 0, ">= 0"),
                ("top_p", self.top_p, lambda x: 0 < x <= 1, "in (0, 1]"),
                ("top_k", self.top_k, lambda x: x >= 0, ">= 0 (0 is off)"),
                ("repetition_penalty", self.repetition_penalty, lambda x: x > 0, "> 0"),
                ("frequency_penalty", self.frequency_penalty, lambda x: -2 <= x <= 2, "in [-2, 2]"),
                ("presence_penalty", self.presence_penalty, lambda x: -2 <= x <= 2, "in [-2, 2]"),
            )
            if value is not None and not ok(value)
        ]
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def greedy(self) -> bool:
        return not self.temperature

    def resolved(self, defaults: GenerationDefaults) -> Sampling:
        """Every ``None`` setting replaced by ``defaults``' value."""
        unset = {
            f.name: getattr(defaults, f.name)
            for f in fields(self)
            if getattr(self, f.name) is None and hasattr(defaults, f.name)
        }
        return replace(self, **unset) if unset else self

    def for_choice(self, index: int) -> Sampling:
        """Choice ``index`` of ``n``: seed + index, so seeded choices differ yet reproduce."""
        if self.seed is None or index == 0:
            return self
        return replace(self, seed=(self.seed + index) % 2**64)
