"""Deployments: named specs of model variants and a traffic policy (single, A/B, canary,
shadow, blue-green), stored with their history, and the pure logic serving uses to route."""

from mloop.deploy.canary import CanaryDriver, Decision, Observation, decide
from mloop.deploy.router import Choice, TrafficRouter, bucket
from mloop.deploy.service import DeploymentService, LiveCounts
from mloop.deploy.spec import DeploymentSpec, Policy, load_spec, parse_spec

__all__ = [
    "CanaryDriver",
    "Choice",
    "Decision",
    "DeploymentService",
    "DeploymentSpec",
    "LiveCounts",
    "Observation",
    "Policy",
    "TrafficRouter",
    "bucket",
    "decide",
    "load_spec",
    "parse_spec",
]
