"""The attacks of the robustness study, as data: which ART attack, which gradient it needs, its settings.

Each attack registers itself with the ART class that implements it, the gradient it asks of the
model (`loss`: the loss gradient every adapter has; `class`: the gradient of one logit, which an
adapter may lack), whether it sweeps an L∞ budget ε (Foolbox 3's habit: one attack, a *list* of
epsilons, a result for each), and the function turning the study's settings into the ART keyword
arguments. Importing this module imports no framework and not ART: the planner reads it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from dlcompat.registry import Registry


@dataclass(frozen=True)
class AttackSettings:
    """Every attack setting of the study config's `[attacks]` section (see `dlcompat.study.config`)."""

    epsilons: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3)
    images: int = 100
    batch_size: int = 128
    steps: int = 10
    #: BIM/PGD step as a fraction of ε; None: 2.5 / steps (Madry et al. 2018)
    step_fraction: float | None = None
    random_init: bool = True
    cw_confidence: float = 0.0
    cw_learning_rate: float = 0.01
    cw_binary_search_steps: int = 5
    cw_steps: int = 10
    cw_initial_const: float = 1.0
    deepfool_steps: int = 50
    deepfool_overshoot: float = 0.02
    deepfool_classes: int = 10
    jsma_theta: float = 1.0
    jsma_gamma: float = 0.1

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AttackSettings:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "epsilons" in values:
            values["epsilons"] = tuple(float(e) for e in values["epsilons"])
        return cls(**values)

    @property
    def eps_step_fraction(self) -> float:
        return self.step_fraction if self.step_fraction is not None else 2.5 / self.steps


#: settings every attack's result depends on (part of each attack job's key)
COMMON_SETTINGS: tuple[str, ...] = ("images", "batch_size")


@dataclass(frozen=True)
class AttackEntry:
    name: str
    title: str
    art_class: str  # "module:Class" in ART
    gradient: str  # "loss" | "class"
    sweeps_epsilon: bool
    #: targeted attacks get a seeded random target class other than the true one (the same for every framework)
    targeted: bool
    reference: str
    #: the AttackSettings fields this attack reads (besides COMMON_SETTINGS); they go in the job's key
    settings: tuple[str, ...]
    kwargs: Callable[[AttackSettings, float | None], dict[str, Any]]
    #: the tidy row's `variant` for one budget, e.g. "fgsm eps=0.1"
    describe: Callable[[AttackSettings, float | None], str] = field(default=lambda _s, _e: "")

    def variant(self, settings: AttackSettings, epsilon: float | None) -> str:
        return self.describe(settings, epsilon) or self.name

    def budgets(self, settings: AttackSettings) -> list[float | None]:
        return list(settings.epsilons) if self.sweeps_epsilon else [None]

    def key_settings(self, settings: AttackSettings) -> dict[str, Any]:
        """The settings this attack's result depends on, as JSON-able data (its job's parameters)."""
        out = {}
        for name in (*COMMON_SETTINGS, *self.settings):
            value = getattr(settings, name)
            out[name] = list(value) if isinstance(value, tuple) else value
        return out


ATTACKS: Registry[AttackEntry] = Registry("attack")
register_attack = ATTACKS.register


def attack_names() -> list[str]:
    return ATTACKS.names()


def attack_entry(name: str) -> AttackEntry:
    return ATTACKS.get(name)


def _eps(epsilon: float | None) -> str:
    return f"{epsilon:g}"


def _iterative(settings: AttackSettings, epsilon: float | None, random_init: bool) -> dict[str, Any]:
    assert epsilon is not None
    return {"norm": "inf", "eps": epsilon, "eps_step": epsilon * settings.eps_step_fraction,
            "max_iter": settings.steps, "num_random_init": 1 if random_init else 0,
            "batch_size": settings.batch_size}


register_attack(AttackEntry(
    name="fgsm", title="FGSM", art_class="art.attacks.evasion:FastGradientMethod", gradient="loss",
    sweeps_epsilon=True, targeted=False, settings=("epsilons",),
    reference="Goodfellow, Shlens, Szegedy: Explaining and harnessing adversarial examples, ICLR 2015",
    kwargs=lambda s, e: {"norm": "inf", "eps": e, "eps_step": e, "minimal": False, "num_random_init": 0,
                         "batch_size": s.batch_size},
    describe=lambda _s, e: f"fgsm eps={_eps(e)}",
))
register_attack(AttackEntry(
    name="bim", title="BIM", art_class="art.attacks.evasion:ProjectedGradientDescent", gradient="loss",
    sweeps_epsilon=True, targeted=False, settings=("epsilons", "steps", "step_fraction"),
    reference="Kurakin, Goodfellow, Bengio: Adversarial examples in the physical world, ICLR workshop 2017",
    kwargs=lambda s, e: _iterative(s, e, random_init=False),
    describe=lambda _s, e: f"bim eps={_eps(e)}",
))
register_attack(AttackEntry(
    name="pgd", title="PGD (L∞)", art_class="art.attacks.evasion:ProjectedGradientDescent", gradient="loss",
    sweeps_epsilon=True, targeted=False, settings=("epsilons", "steps", "step_fraction", "random_init"),
    reference="Madry et al.: Towards deep learning models resistant to adversarial attacks, ICLR 2018",
    kwargs=lambda s, e: _iterative(s, e, random_init=s.random_init),
    describe=lambda _s, e: f"pgd eps={_eps(e)}",
))
register_attack(AttackEntry(
    name="cw-l2", title="C&W-L2", art_class="art.attacks.evasion:CarliniL2Method", gradient="class",
    sweeps_epsilon=False, targeted=False,
    settings=("cw_confidence", "cw_learning_rate", "cw_binary_search_steps", "cw_steps", "cw_initial_const"),
    reference="Carlini, Wagner: Towards evaluating the robustness of neural networks, IEEE S&P 2017",
    kwargs=lambda s, _e: {"confidence": s.cw_confidence, "learning_rate": s.cw_learning_rate,
                          "binary_search_steps": s.cw_binary_search_steps, "max_iter": s.cw_steps,
                          "initial_const": s.cw_initial_const, "targeted": False, "batch_size": s.batch_size},
    describe=lambda s, _e: f"cw-l2 confidence={s.cw_confidence:g}",
))
register_attack(AttackEntry(
    name="deepfool", title="DeepFool", art_class="art.attacks.evasion:DeepFool", gradient="class",
    sweeps_epsilon=False, targeted=False, settings=("deepfool_steps", "deepfool_overshoot", "deepfool_classes"),
    reference="Moosavi-Dezfooli, Fawzi, Frossard: DeepFool, CVPR 2016",
    kwargs=lambda s, _e: {"max_iter": s.deepfool_steps, "epsilon": s.deepfool_overshoot,
                          "nb_grads": s.deepfool_classes, "batch_size": s.batch_size},
    describe=lambda s, _e: f"deepfool overshoot={s.deepfool_overshoot:g}",
))
register_attack(AttackEntry(
    name="jsma", title="JSMA", art_class="art.attacks.evasion:SaliencyMapMethod", gradient="class",
    sweeps_epsilon=False, targeted=True, settings=("jsma_theta", "jsma_gamma"),
    reference="Papernot et al.: The limitations of deep learning in adversarial settings, EuroS&P 2016",
    kwargs=lambda s, _e: {"theta": s.jsma_theta, "gamma": s.jsma_gamma, "batch_size": s.batch_size},
    describe=lambda s, _e: f"jsma theta={s.jsma_theta:g} gamma={s.jsma_gamma:g}",
))
