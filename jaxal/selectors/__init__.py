"""Selectors over arrays with candidate masks: they never see a model."""

import warnings
from typing import Any

from jaxal._points import OuterProduct as OuterProduct
from jaxal._points import gather as gather
from jaxal.selectors._batchbald import DEFAULT_MAX_CONFIGURATIONS as BATCHBALD_MAX_CONFIGURATIONS
from jaxal.selectors._batchbald import batchbald as batchbald
from jaxal.selectors._batchbald import batchbald_with_scores as batchbald_with_scores
from jaxal.selectors._glister import REGULARIZERS as GLISTER_REGULARIZERS
from jaxal.selectors._glister import glister as glister
from jaxal.selectors._glister import glister_with_gains as glister_with_gains
from jaxal.selectors._glister import greedy_count as glister_greedy_count
from jaxal.selectors._gradmatch import gradmatch as gradmatch
from jaxal.selectors._gradmatch import gradmatch_omp as gradmatch_omp
from jaxal.selectors._gradmatch import nnls as nnls
from jaxal.selectors._greedy import greedy_by_distance as greedy_by_distance
from jaxal.selectors._greedy import k_center_greedy as k_center_greedy
from jaxal.selectors._greedy import kmeans_plusplus as kmeans_plusplus
from jaxal.selectors._greedy import sample_by_weight as sample_by_weight
from jaxal.selectors._information import CG_FUNCTIONS as CG_FUNCTIONS
from jaxal.selectors._information import CMI_FUNCTIONS as CMI_FUNCTIONS
from jaxal.selectors._information import INFORMATION_MEASURES as INFORMATION_MEASURES
from jaxal.selectors._information import MI_FUNCTIONS as MI_FUNCTIONS
from jaxal.selectors._information import capped_facility_location as capped_facility_location
from jaxal.selectors._information import com as com
from jaxal.selectors._information import conditional_gain as conditional_gain
from jaxal.selectors._information import fl1mi as fl1mi
from jaxal.selectors._information import fl2mi as fl2mi
from jaxal.selectors._information import flcg as flcg
from jaxal.selectors._information import flcmi as flcmi
from jaxal.selectors._information import gccg as gccg
from jaxal.selectors._information import gcmi as gcmi
from jaxal.selectors._information import information_measure as information_measure
from jaxal.selectors._information import logdetcg as logdetcg
from jaxal.selectors._information import logdetcmi as logdetcmi
from jaxal.selectors._information import logdetmi as logdetmi
from jaxal.selectors._information import restrict as restrict
from jaxal.selectors._information import (
    submodular_mutual_information as submodular_mutual_information,
)
from jaxal.selectors._kernels import METRICS as METRICS
from jaxal.selectors._kernels import Similarity as Similarity
from jaxal.selectors._kernels import similarity_kernel as similarity_kernel
from jaxal.selectors._kmeans import kmeans as kmeans
from jaxal.selectors._kmeans import lloyd as lloyd
from jaxal.selectors._kmeans import nearest_distinct as nearest_distinct
from jaxal.selectors._points import min_sq_distances_to_members as min_sq_distances_to_members
from jaxal.selectors._points import sq_distances as sq_distances
from jaxal.selectors._stochastic import STOCHASTIC_MODES as STOCHASTIC_MODES
from jaxal.selectors._stochastic import log_weights as log_weights
from jaxal.selectors._stochastic import stochastic_top_k as stochastic_top_k
from jaxal.selectors._submodular import OPTIMIZERS as OPTIMIZERS
from jaxal.selectors._submodular import SubmodularFn as SubmodularFn
from jaxal.selectors._submodular import submodular_greedy as submodular_greedy
from jaxal.selectors._submodular_functions import CONCAVE_FUNCTIONS as CONCAVE_FUNCTIONS
from jaxal.selectors._submodular_functions import SUBMODULAR_FUNCTIONS as SUBMODULAR_FUNCTIONS
from jaxal.selectors._submodular_functions import disparity_min as disparity_min
from jaxal.selectors._submodular_functions import disparity_sum as disparity_sum
from jaxal.selectors._submodular_functions import facility_location as facility_location
from jaxal.selectors._submodular_functions import feature_based as feature_based
from jaxal.selectors._submodular_functions import graph_cut as graph_cut
from jaxal.selectors._submodular_functions import log_determinant as log_determinant
from jaxal.selectors._submodular_functions import saturated_coverage as saturated_coverage
from jaxal.selectors._submodular_functions import sum_redundancy as sum_redundancy
from jaxal.selectors._top_k import random_subset as random_subset
from jaxal.selectors._top_k import rank_keys as rank_keys
from jaxal.selectors._top_k import top_k as top_k

__all__ = [
    "batchbald",
    "BATCHBALD_MAX_CONFIGURATIONS",
    "batchbald_with_scores",
    "capped_facility_location",
    "CG_FUNCTIONS",
    "CMI_FUNCTIONS",
    "com",
    "CONCAVE_FUNCTIONS",
    "conditional_gain",
    "disparity_min",
    "disparity_sum",
    "facility_location",
    "feature_based",
    "flcg",
    "flcmi",
    "gather",
    "gccg",
    "gcmi",
    "glister",
    "glister_greedy_count",
    "GLISTER_REGULARIZERS",
    "glister_with_gains",
    "gradmatch",
    "gradmatch_omp",
    "graph_cut",
    "greedy_by_distance",
    "information_measure",
    "INFORMATION_MEASURES",
    "k_center_greedy",
    "kmeans",
    "kmeans_plusplus",
    "lloyd",
    "log_determinant",
    "log_weights",
    "logdetcg",
    "logdetcmi",
    "logdetmi",
    "METRICS",
    "MI_FUNCTIONS",
    "min_sq_distances_to_members",
    "nearest_distinct",
    "nnls",
    "OPTIMIZERS",
    "OuterProduct",
    "random_subset",
    "rank_keys",
    "restrict",
    "sample_by_weight",
    "saturated_coverage",
    "Similarity",
    "similarity_kernel",
    "sq_distances",
    "STOCHASTIC_MODES",
    "stochastic_top_k",
    "SUBMODULAR_FUNCTIONS",
    "submodular_greedy",
    "submodular_mutual_information",
    "SubmodularFn",
    "sum_redundancy",
    "top_k",
]


_RENAMED = {"mutual_information": "submodular_mutual_information"}


def __getattr__(name: str) -> Any:
    """Old names of renamed selectors, with a DeprecationWarning."""
    if name in _RENAMED:
        new = _RENAMED[name]
        warnings.warn(
            f"jaxal.selectors.{name} is deprecated; use jaxal.selectors.{new} "
            "(jaxal.scores.mutual_information is BALD's score)",
            DeprecationWarning,
            stacklevel=2,
        )
        return globals()[new]
    raise AttributeError(f"module 'jaxal.selectors' has no attribute {name!r}")
