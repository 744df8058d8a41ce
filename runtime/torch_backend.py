"""The PyTorch reference backend: the safetensors weights run eagerly (CUDA when present). Imported only when
chosen, so ``drcn.runtime`` itself never imports torch."""

from __future__ import annotations

import numpy as np

from drcn.errors import DrcnError
from drcn.optional import require
from drcn.devices import torch_device
from drcn.runtime.backend import ModelSpec


class TorchBackend:
    name = "torch"

    def __init__(self, model_path: str, device: str = "auto", precision: str = "auto", **_):
        torch = require("torch", "the PyTorch backend", "pip install 'drcn[torch]'")
        from drcn.weights import load_model

        self._torch = torch
        self.device = torch_device(device)
        precision = "fp32" if precision == "auto" else precision  # the reference runs fp32 unless told
        if precision not in ("fp32", "fp16", "bf16"):
            raise DrcnError(f"--precision {precision}: the PyTorch backend runs fp32, fp16 (CUDA) or bf16")
        if precision == "fp16" and self.device == "cpu":
            raise DrcnError("--precision fp16 with the PyTorch backend needs a CUDA GPU")
        self.dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
        self.model = load_model(model_path, device=self.device).to(self.dtype)
        config = self.model.config
        self.spec = ModelSpec(halo=config.halo, channels=config.channels, scales=config.scales,
                              precision=precision, source=str(model_path))
        where = torch.cuda.get_device_name(self.device) if self.device.startswith("cuda") else "CPU"
        self.description = f"PyTorch {torch.__version__} on {where}, {precision} ({model_path})"

    def run(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device, self.dtype)
            return self.model(x).float().cpu().numpy()

    def close(self) -> None:
        self.model = None
        if self.device.startswith("cuda"):
            self._torch.cuda.empty_cache()
