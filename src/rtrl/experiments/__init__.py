"""Experiments: named runs that put cells, estimators, learners and streams together."""
