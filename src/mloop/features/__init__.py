"""Feature specs and the transformers that ship inside the logged model."""

from mloop.features.spec import FeatureSpec, build_preprocessor, coerce_inputs
from mloop.features.transformers import CategoryCleaner, DateParts, IQRClipper

__all__ = [
    "CategoryCleaner",
    "DateParts",
    "FeatureSpec",
    "IQRClipper",
    "build_preprocessor",
    "coerce_inputs",
]
