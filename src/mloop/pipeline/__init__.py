"""Config-driven training: load, split, fit, evaluate, cross-validate, log, gate, register.

Entry point: `from mloop.pipeline.train import train` (not re-exported here, so that the name
`mloop.pipeline.train` keeps meaning the module).
"""

from mloop.pipeline.config import TrainConfig, config_from_dict, load_config
from mloop.pipeline.evaluate import CriterionResult

__all__ = ["CriterionResult", "TrainConfig", "config_from_dict", "load_config"]
