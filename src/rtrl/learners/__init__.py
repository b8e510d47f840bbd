"""Online learners: they take any estimator; optimisers are optax transformations."""

from rtrl.learners.actor_critic import ACState, ActorCritic, actor_critic
from rtrl.learners.impala import Impala, ImpalaConfig, ImpalaState, impala, vtrace
from rtrl.learners.metrics import binned_means, discounted_returns, unreliable_tail
from rtrl.learners.optim import OPTIMIZERS, make_optimizer, rmsprop_on_update
from rtrl.learners.ppo import PPO, PPOConfig, PPOState, gae, ppo
from rtrl.learners.regression import OnlineRegression, RegressionState, online_regression
from rtrl.learners.td import TDLambda, TDState, td_lambda
from rtrl.learners.trunks import bptt_trunk, feedforward_trunk, rtrl_trunk

__all__ = [
    "ACState",
    "OPTIMIZERS",
    "ActorCritic",
    "PPO",
    "PPOConfig",
    "PPOState",
    "actor_critic",
    "bptt_trunk",
    "feedforward_trunk",
    "gae",
    "Impala",
    "ImpalaConfig",
    "ImpalaState",
    "impala",
    "make_optimizer",
    "ppo",
    "rtrl_trunk",
    "OnlineRegression",
    "RegressionState",
    "TDLambda",
    "TDState",
    "binned_means",
    "discounted_returns",
    "online_regression",
    "rmsprop_on_update",
    "td_lambda",
    "unreliable_tail",
    "vtrace",
]
