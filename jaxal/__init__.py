"""jaxal: deep active learning as pure, jit-compiled JAX functions."""

from jaxal import attacks as attacks
from jaxal import scores as scores
from jaxal import selectors as selectors
from jaxal import stopping as stopping
from jaxal import strategies as strategies
from jaxal import streaming as streaming
from jaxal._api import select as select
from jaxal.model import Model as Model
from jaxal.model import from_flax as from_flax
from jaxal.pool import Pool as Pool
from jaxal.probe import fit_linear_probe as fit_linear_probe
from jaxal.probe import init_linear_probe as init_linear_probe
from jaxal.probe import linear_probe as linear_probe
from jaxal.round import make_round as make_round
from jaxal.strategies import Strategy as Strategy

__version__ = "0.1.0"

__all__ = [
    "attacks",
    "Model",
    "Pool",
    "Strategy",
    "fit_linear_probe",
    "from_flax",
    "init_linear_probe",
    "linear_probe",
    "make_round",
    "scores",
    "select",
    "selectors",
    "stopping",
    "strategies",
    "streaming",
]
