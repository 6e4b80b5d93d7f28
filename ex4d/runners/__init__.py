"""Runners: the only modules that import Hydra. Each takes a composed config and returns a dict."""
