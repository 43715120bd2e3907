"""Stopping rules: pure, jit-able functions of the round history that say when labeling
more points no longer pays.

A factory closes over its hyperparameters and returns a :class:`StoppingRule` (optax's
shape): ``state = rule.init(outputs)``, then after every round
``state, stop, reason = rule.update(state, outputs)`` with ``outputs`` a
:class:`RoundOutputs`; ``describe(rule, state)`` says the state in words::

    rule = jaxal.stopping.stabilizing_predictions(threshold=0.99, window=3)
    update = jax.jit(rule.update)
    state = rule.init(outputs)
    for each round:                     # train, then:
        outputs = jaxal.stopping.RoundOutputs(stop_probs=softmax(logits on the stop set))
        state, stop, reason = update(state, outputs)
        print(jaxal.stopping.describe(rule, state))
        if stop: break

``stop`` is a bool [] array and ``reason`` an int32 [] code into ``rule.reasons`` (0:
continue), so ``update`` runs under ``jit``, ``lax.scan`` or ``vmap``.

==========================  ===========================================  ==================
rule                        stops when                                   reads
==========================  ===========================================  ==================
``labeling_budget``         ``budget`` labels added since the first      ``labeled``
                            update
``stabilizing_predictions`` Cohen's kappa between successive models'    ``stop_probs``
                            predictions on a fixed stop set >=
                            ``threshold`` over ``window`` rounds
``overall_uncertainty``     mean normalized entropy of the unlabeled     ``pool_probs``,
                            pool < ``threshold``                         ``unlabeled``
``max_confidence``          largest normalized entropy of the            ``pool_probs``,
                            unlabeled pool < ``threshold``               ``unlabeled``
``selected_accuracy``       the selecting model's accuracy on the batch  ``batch_predictions``,
                            just labeled >= ``threshold``                ``batch_labels``
``validation_plateau``      no improvement of ``validation`` for         ``validation``
                            ``patience`` rounds
==========================  ===========================================  ==================

:func:`any_of` combines rules; :func:`get` finds a factory by name; :func:`cohen_kappa`
is the agreement measure on its own.
"""

from jaxal.stopping._registry import REGISTRY as REGISTRY
from jaxal.stopping._registry import get as get
from jaxal.stopping._rule import RoundOutputs as RoundOutputs
from jaxal.stopping._rule import StoppingRule as StoppingRule
from jaxal.stopping._rule import describe as describe
from jaxal.stopping.accuracy import AccuracyState as AccuracyState
from jaxal.stopping.accuracy import selected_accuracy as selected_accuracy
from jaxal.stopping.budget import BudgetState as BudgetState
from jaxal.stopping.budget import labeling_budget as labeling_budget
from jaxal.stopping.combinators import AnyOfState as AnyOfState
from jaxal.stopping.combinators import any_of as any_of
from jaxal.stopping.kappa import KappaState as KappaState
from jaxal.stopping.kappa import cohen_kappa as cohen_kappa
from jaxal.stopping.kappa import stabilizing_predictions as stabilizing_predictions
from jaxal.stopping.plateau import PlateauState as PlateauState
from jaxal.stopping.plateau import validation_plateau as validation_plateau
from jaxal.stopping.uncertainty import UncertaintyState as UncertaintyState
from jaxal.stopping.uncertainty import max_confidence as max_confidence
from jaxal.stopping.uncertainty import overall_uncertainty as overall_uncertainty

__all__ = [
    "REGISTRY",
    "AccuracyState",
    "AnyOfState",
    "BudgetState",
    "KappaState",
    "PlateauState",
    "RoundOutputs",
    "StoppingRule",
    "UncertaintyState",
    "any_of",
    "cohen_kappa",
    "describe",
    "get",
    "labeling_budget",
    "max_confidence",
    "overall_uncertainty",
    "selected_accuracy",
    "stabilizing_predictions",
    "validation_plateau",
]
