"""Online learners: they take any estimator; optimisers are optax transformations."""

from rtrl.learners.regression import OnlineRegression, RegressionState, online_regression

__all__ = ["OnlineRegression", "RegressionState", "online_regression"]
