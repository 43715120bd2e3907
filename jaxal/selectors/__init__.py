"""Selectors over arrays with candidate masks: they never see a model.

Each takes arrays (scores, points, kernels, MC probabilities, gradients) and a bool
candidate mask [N] and returns int32 indices [budget] in pick order (-1 for slots that no
candidate can fill under ``jit``). Those that measure something on the way return
``Selection(indices, info)``: ``submodular_greedy`` and ``glister`` (``GreedyInfo(gains)``),
``batchbald`` (``BatchBaldInfo(scores)``), ``probcover`` (``GreedyInfo(gains)``),
``bait`` (``BaitInfo(forward, backward)``).

Layout: ``_top_k`` and ``_stochastic`` (rankings), ``_greedy`` and ``_points`` (distance
greedy: k-center, k-means++), ``_kmeans``, ``_typiclust`` and ``_probcover`` (cold
start: typicality per cluster, ball coverage), ``_hac`` and ``_round_robin``
(average-linkage clustering, Cluster-Margin's round robin), ``_batchbald``, ``_bait``
(Fisher information), ``_glister``, ``_gradmatch``, and the ``submodular`` package
(``greedy``: SubmodularFn and the optimizers; ``kernels``; ``functions``;
``combinators``; ``measures``: SIMILAR). ``__all__`` lists the public
selectors and types; the helpers the strategies share (``gather``, ``rank_keys``,
``sq_distances``, ...) are importable here too, outside ``__all__``.
"""

import warnings
from typing import Any

from jaxal._points import OuterProduct as OuterProduct
from jaxal._points import gather as gather
from jaxal.selectors._bait import bait as bait
from jaxal.selectors._batchbald import DEFAULT_MAX_CONFIGURATIONS as BATCHBALD_MAX_CONFIGURATIONS  # noqa: F401
from jaxal.selectors._batchbald import batchbald as batchbald
from jaxal.selectors._deprecated import DEPRECATED as _DEPRECATED
from jaxal.selectors._glister import REGULARIZERS as GLISTER_REGULARIZERS  # noqa: F401
from jaxal.selectors._glister import glister as glister
from jaxal.selectors._glister import greedy_count as glister_greedy_count  # noqa: F401
from jaxal.selectors._gradmatch import gradmatch as gradmatch
from jaxal.selectors._gradmatch import gradmatch_omp as gradmatch_omp
from jaxal.selectors._gradmatch import nnls as nnls
from jaxal.selectors._greedy import greedy_by_distance as greedy_by_distance
from jaxal.selectors._greedy import k_center_greedy as k_center_greedy
from jaxal.selectors._greedy import kmeans_plusplus as kmeans_plusplus
from jaxal.selectors._greedy import sample_by_weight as sample_by_weight
from jaxal.selectors._hac import Linkage as Linkage
from jaxal.selectors._hac import average_linkage as average_linkage
from jaxal.selectors._hac import cut as cut
from jaxal.selectors._kmeans import kmeans as kmeans
from jaxal.selectors._kmeans import kmeans_clusters as kmeans_clusters
from jaxal.selectors._kmeans import kmeans_with_fill as kmeans_with_fill
from jaxal.selectors._kmeans import lloyd as lloyd
from jaxal.selectors._kmeans import nearest_distinct as nearest_distinct
from jaxal.selectors._points import fold_member_blocks as fold_member_blocks
from jaxal.selectors._points import min_sq_distances_to_members as min_sq_distances_to_members
from jaxal.selectors._points import nearest as nearest
from jaxal.selectors._points import sq_distances as sq_distances
from jaxal.selectors._points import sq_norms as sq_norms
from jaxal.selectors._probcover import ball_counts as ball_counts
from jaxal.selectors._probcover import ball_purity as ball_purity
from jaxal.selectors._probcover import nearest_other_label as nearest_other_label
from jaxal.selectors._probcover import probcover as probcover
from jaxal.selectors._probcover import purity_radius as purity_radius
from jaxal.selectors._round_robin import round_robin as round_robin
from jaxal.selectors._selection import BaitInfo as BaitInfo
from jaxal.selectors._selection import BatchBaldInfo as BatchBaldInfo
from jaxal.selectors._selection import GreedyInfo as GreedyInfo
from jaxal.selectors._selection import Selection as Selection
from jaxal.selectors._stochastic import STOCHASTIC_MODES as STOCHASTIC_MODES
from jaxal.selectors._stochastic import log_weights as log_weights
from jaxal.selectors._stochastic import stochastic_top_k as stochastic_top_k
from jaxal.selectors._top_k import random_subset as random_subset
from jaxal.selectors._top_k import rank_keys as rank_keys
from jaxal.selectors._top_k import top_k as top_k
from jaxal.selectors._typiclust import typical_per_cluster as typical_per_cluster
from jaxal.selectors.submodular.combinators import conditional_gain as conditional_gain
from jaxal.selectors.submodular.combinators import restrict as restrict
from jaxal.selectors.submodular.combinators import (
    submodular_mutual_information as submodular_mutual_information,
)
from jaxal.selectors.submodular.functions import CONCAVE_FUNCTIONS as CONCAVE_FUNCTIONS
from jaxal.selectors.submodular.functions import SUBMODULAR_FUNCTIONS as SUBMODULAR_FUNCTIONS
from jaxal.selectors.submodular.functions import disparity_min as disparity_min
from jaxal.selectors.submodular.functions import disparity_sum as disparity_sum
from jaxal.selectors.submodular.functions import facility_location as facility_location
from jaxal.selectors.submodular.functions import feature_based as feature_based
from jaxal.selectors.submodular.functions import graph_cut as graph_cut
from jaxal.selectors.submodular.functions import log_determinant as log_determinant
from jaxal.selectors.submodular.functions import saturated_coverage as saturated_coverage
from jaxal.selectors.submodular.functions import sum_redundancy as sum_redundancy
from jaxal.selectors.submodular.greedy import OPTIMIZERS as OPTIMIZERS
from jaxal.selectors.submodular.greedy import SubmodularFn as SubmodularFn
from jaxal.selectors.submodular.greedy import submodular_greedy as submodular_greedy
from jaxal.selectors.submodular.kernels import KERNEL_METRICS as KERNEL_METRICS
from jaxal.selectors.submodular.kernels import METRICS as METRICS
from jaxal.selectors.submodular.kernels import (
    STORED_KERNEL_MAX_POINTS as STORED_KERNEL_MAX_POINTS,
)
from jaxal.selectors.submodular.kernels import Similarity as Similarity
from jaxal.selectors.submodular.kernels import similarity_kernel as similarity_kernel
from jaxal.selectors.submodular.measures import CG_FUNCTIONS as CG_FUNCTIONS
from jaxal.selectors.submodular.measures import CMI_FUNCTIONS as CMI_FUNCTIONS
from jaxal.selectors.submodular.measures import INFORMATION_MEASURES as INFORMATION_MEASURES
from jaxal.selectors.submodular.measures import MI_FUNCTIONS as MI_FUNCTIONS
from jaxal.selectors.submodular.measures import com as com
from jaxal.selectors.submodular.measures import fl1mi as fl1mi
from jaxal.selectors.submodular.measures import fl2mi as fl2mi
from jaxal.selectors.submodular.measures import flcg as flcg
from jaxal.selectors.submodular.measures import flcmi as flcmi
from jaxal.selectors.submodular.measures import gccg as gccg
from jaxal.selectors.submodular.measures import gcmi as gcmi
from jaxal.selectors.submodular.measures import information_measure as information_measure
from jaxal.selectors.submodular.measures import logdetcg as logdetcg
from jaxal.selectors.submodular.measures import logdetcmi as logdetcmi
from jaxal.selectors.submodular.measures import logdetmi as logdetmi

__all__ = [
    # rankings
    "top_k",
    "stochastic_top_k",
    "random_subset",
    # distances and clusters
    "k_center_greedy",
    "kmeans_plusplus",
    "kmeans",
    "kmeans_with_fill",
    "kmeans_clusters",
    "average_linkage",
    "cut",
    "round_robin",
    # coverage and typicality (cold start)
    "typical_per_cluster",
    "probcover",
    "ball_purity",
    "purity_radius",
    # Bayesian and gradient selection
    "batchbald",
    "bait",
    "glister",
    "gradmatch",
    # submodular functions and their greedy
    "SubmodularFn",
    "submodular_greedy",
    "Similarity",
    "similarity_kernel",
    "facility_location",
    "graph_cut",
    "saturated_coverage",
    "sum_redundancy",
    "feature_based",
    "log_determinant",
    "disparity_sum",
    "disparity_min",
    "SUBMODULAR_FUNCTIONS",
    # SIMILAR's information measures
    "conditional_gain",
    "submodular_mutual_information",
    "information_measure",
    "INFORMATION_MEASURES",
    # types
    "OuterProduct",
    "Selection",
    "GreedyInfo",
    "BatchBaldInfo",
    "BaitInfo",
    "Linkage",
]


def __getattr__(name: str) -> Any:
    """Old names of renamed selectors, with a DeprecationWarning."""
    if name in _DEPRECATED:
        value, replacement = _DEPRECATED[name]
        warnings.warn(
            f"jaxal.selectors.{name} is deprecated; use jaxal.selectors.{replacement}",
            DeprecationWarning,
            stacklevel=2,
        )
        return value
    raise AttributeError(f"module 'jaxal.selectors' has no attribute {name!r}")
