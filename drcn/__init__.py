"""drcn: DRCN super-resolution from training to deployment.

Importing this package is cheap: it pulls in no deep-learning library. The PyTorch module lives in
``drcn.model`` and is imported only by the code that needs it.
"""

__version__ = "0.1.0"

from drcn.config import ModelConfig  # noqa: E402  (plain dataclass, no heavy imports)
from drcn.errors import DrcnError  # noqa: E402

__all__ = ["ModelConfig", "DrcnError", "__version__"]
