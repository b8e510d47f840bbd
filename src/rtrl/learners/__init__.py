"""Online learners: they take any estimator; optimisers are optax transformations."""

from rtrl.learners.metrics import binned_means, discounted_returns
from rtrl.learners.regression import OnlineRegression, RegressionState, online_regression
from rtrl.learners.td import TDLambda, TDState, rmsprop_on_update, td_lambda

__all__ = [
    "OnlineRegression",
    "RegressionState",
    "TDLambda",
    "TDState",
    "binned_means",
    "discounted_returns",
    "online_regression",
    "rmsprop_on_update",
    "td_lambda",
]
