"""Selectors over arrays with candidate masks: they never see a model."""

from jaxal.selectors._batchbald import batchbald as batchbald
from jaxal.selectors._batchbald import batchbald_with_scores as batchbald_with_scores
from jaxal.selectors._greedy import greedy_by_distance as greedy_by_distance
from jaxal.selectors._greedy import k_center_greedy as k_center_greedy
from jaxal.selectors._greedy import kmeans_plusplus as kmeans_plusplus
from jaxal.selectors._greedy import sample_by_weight as sample_by_weight
from jaxal.selectors._kmeans import kmeans as kmeans
from jaxal.selectors._kmeans import lloyd as lloyd
from jaxal.selectors._kmeans import nearest_distinct as nearest_distinct
from jaxal.selectors._points import OuterProduct as OuterProduct
from jaxal.selectors._points import min_sq_distances_to_members as min_sq_distances_to_members
from jaxal.selectors._points import sq_distances as sq_distances
from jaxal.selectors._stochastic import STOCHASTIC_MODES as STOCHASTIC_MODES
from jaxal.selectors._stochastic import log_weights as log_weights
from jaxal.selectors._stochastic import stochastic_top_k as stochastic_top_k
from jaxal.selectors._top_k import random_subset as random_subset
from jaxal.selectors._top_k import top_k as top_k

__all__ = [
    "STOCHASTIC_MODES",
    "OuterProduct",
    "batchbald",
    "batchbald_with_scores",
    "greedy_by_distance",
    "k_center_greedy",
    "kmeans",
    "kmeans_plusplus",
    "lloyd",
    "log_weights",
    "min_sq_distances_to_members",
    "nearest_distinct",
    "random_subset",
    "sample_by_weight",
    "sq_distances",
    "stochastic_top_k",
    "top_k",
]
