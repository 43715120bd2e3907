"""Strategy factories: ``factory(model, budget, **hyperparameters) -> Strategy``.

Where each registry name lives (one module per family):

========================================  ==========================================
``least_confidence``, ``margin``,         ``uncertainty``: scores of the softmax or of
``entropy``, ``bald``                     MC-dropout samples
``random``, ``coreset``, ``kmeans``,      ``diversity``: points, distances, clusters
``badge``
``batchbald``                             ``batch_bayesian``
``deepfool``, ``bim``                     ``adversarial``
``submodular``, ``fass``                  ``submodular``
``smi``, ``scg``, ``scmi``                ``information``: SIMILAR's measures
``glister``, ``gradmatch``                ``optimization``: gradient-based subsets
``typiclust``                             ``typiclust``: cold start, typical points
``probcover``                             ``probcover``: cold start, ball coverage
``maxherding``, ``uherding``              ``herding``: Gaussian-kernel coverage
``dropquery``                             ``dropquery``: dropout disagreement, k-means
``epig``                                  ``epig``: information about target predictions
``alfamix``                               ``alfamix``: prediction flips under feature mixing
``bait``                                  ``bait``: last-layer Fisher information
``cluster_margin``                        ``cluster_margin``: small margins, HAC clusters
``stochastic``, ``partition``             ``wrappers``: around another strategy
========================================  ==========================================

Shared pieces: ``_base`` (the Strategy type, argument checks, the compiled eager call),
``_catalog`` (the base registry), ``_registry`` (with the wrappers). Hyperparameter names
are documented once in ``docs/hyperparameters.md``.
"""

from jaxal.strategies._base import Strategy as Strategy
from jaxal.strategies._registry import REGISTRY as REGISTRY
from jaxal.strategies._registry import get as get
from jaxal.strategies.adversarial import bim as bim
from jaxal.strategies.adversarial import deepfool as deepfool
from jaxal.strategies.alfamix import alfamix as alfamix
from jaxal.strategies.bait import bait as bait
from jaxal.strategies.batch_bayesian import batchbald as batchbald
from jaxal.strategies.cluster_margin import cluster_margin as cluster_margin
from jaxal.strategies.diversity import badge as badge
from jaxal.strategies.diversity import coreset as coreset
from jaxal.strategies.diversity import kmeans as kmeans
from jaxal.strategies.diversity import random as random
from jaxal.strategies.dropquery import dropquery as dropquery
from jaxal.strategies.epig import epig as epig
from jaxal.strategies.herding import maxherding as maxherding
from jaxal.strategies.herding import uherding as uherding
from jaxal.strategies.information import scg as scg
from jaxal.strategies.information import scmi as scmi
from jaxal.strategies.information import smi as smi
from jaxal.strategies.optimization import glister as glister
from jaxal.strategies.optimization import gradmatch as gradmatch
from jaxal.strategies.probcover import probcover as probcover
from jaxal.strategies.submodular import fass as fass
from jaxal.strategies.submodular import submodular as submodular
from jaxal.strategies.typiclust import typiclust as typiclust
from jaxal.strategies.uncertainty import bald as bald
from jaxal.strategies.uncertainty import entropy as entropy
from jaxal.strategies.uncertainty import least_confidence as least_confidence
from jaxal.strategies.uncertainty import margin as margin
from jaxal.strategies.wrappers import partition as partition
from jaxal.strategies.wrappers import stochastic as stochastic

__all__ = [
    "REGISTRY",
    "Strategy",
    "alfamix",
    "badge",
    "bait",
    "bald",
    "batchbald",
    "bim",
    "cluster_margin",
    "coreset",
    "deepfool",
    "dropquery",
    "entropy",
    "epig",
    "fass",
    "get",
    "glister",
    "gradmatch",
    "kmeans",
    "least_confidence",
    "margin",
    "maxherding",
    "partition",
    "probcover",
    "random",
    "scg",
    "scmi",
    "smi",
    "stochastic",
    "submodular",
    "typiclust",
    "uherding",
]
