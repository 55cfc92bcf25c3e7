"""edgecnn: classic CNNs from PyTorch to the edge.

The public API is re-exported here; everything else is internal.
"""

__version__ = "0.1.0"

from .card import ModelCard
from .errors import EdgeCNNError
from .models import create_model, get_spec, list_models

__all__ = ["__version__", "ModelCard", "EdgeCNNError", "create_model", "get_spec", "list_models"]
