"""The PyTorch reference backend: the safetensors weights run eagerly (CUDA when present). Imported only when
chosen, so ``drcn.runtime`` itself never imports torch."""

from __future__ import annotations

import numpy as np

from drcn.errors import DrcnError
from drcn.optional import require
from drcn.devices import torch_device
from drcn.runtime.backends.table import ModelSpec


class TorchBackend:
    name = "torch"

    def __init__(self, model_path: str, device: str = "auto", precision: str = "auto", kind: str = "y",
                 scale: int = 1, ensemble: int = 1, **_):
        """``kind`` rgb/gray with an integer ``scale``: the weights run as the whole-frame job
        (:class:`drcn.frame_model.FrameModel`, colour and enlargement in float32 on the same device), with the
        self-ensemble of ``ensemble`` transforms around its network."""
        torch = require("torch", "the PyTorch backend", "pip install 'drcn[torch]'")
        from drcn.weights import load_model

        self._torch = torch
        self.device = torch_device(device)
        self.runs_on_gpu = self.device.startswith("cuda")
        precision = "fp32" if precision == "auto" else precision  # the reference runs fp32 unless told
        if precision not in ("fp32", "fp16", "bf16"):
            raise DrcnError(f"--precision {precision}: the PyTorch backend runs fp32, fp16 (CUDA) or bf16")
        if precision == "fp16" and self.device == "cpu":
            raise DrcnError("--precision fp16 with the PyTorch backend needs a CUDA GPU")
        self.dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
        network = load_model(model_path, device=self.device).to(self.dtype)
        config = network.config
        if kind == "y":
            self.model = network
            self.spec = ModelSpec(halo=config.halo, channels=config.channels, scales=config.scales,
                                  precision=precision, source=str(model_path))
        else:
            from drcn import frame
            from drcn.frame_model import FrameModel

            self.model = FrameModel(network, kind, scale, self.dtype, ensemble).to(self.device).eval()
            self.spec = ModelSpec(halo=frame.lr_halo(config.halo, scale), channels=3 if kind == "rgb" else 1,
                                  scales=config.scales, precision=precision, source=str(model_path), kind=kind,
                                  scale=scale)
        where = torch.cuda.get_device_name(self.device) if self.device.startswith("cuda") else "CPU"
        self.description = f"PyTorch {torch.__version__} on {where}, {precision} ({model_path})"

    def run(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
            if self.spec.kind == "y":
                x = x.to(self.dtype)
            return self.model(x).float().cpu().numpy()

    def close(self) -> None:
        self.model = None
        if self.device.startswith("cuda"):
            self._torch.cuda.empty_cache()
