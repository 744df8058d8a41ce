"""drcn: DRCN super-resolution from training to deployment.

Importing this package is cheap: it pulls in no deep-learning library. The PyTorch module lives in
``drcn.model`` and is imported only by the code that needs it. ``drcn.Upscaler`` and ``drcn.upscale`` (the
application API, :mod:`drcn.runtime.api`) load on first use.
"""

__version__ = "0.1.0"

from drcn.config import ModelConfig  # noqa: E402  (plain dataclass, no heavy imports)
from drcn.errors import DrcnError  # noqa: E402

__all__ = ["ModelConfig", "DrcnError", "Upscaler", "upscale", "__version__"]


def __getattr__(name: str):
    # The application API lives in the deployment layer; the package's front door names it without importing it
    # (and with it a backend) until it is used.
    if name in ("Upscaler", "upscale"):
        from drcn.runtime import api

        return getattr(api, name)
    raise AttributeError(f"module 'drcn' has no attribute {name!r}")
