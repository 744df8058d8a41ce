"""The KubeRay manifest starts the application drcn-serve starts: its import path resolves to the builder in the
code, and its arguments are drcn-serve options that parse (a renamed option fails here, not in a cluster)."""

from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

REPO = Path(__file__).resolve().parents[2]


def test_the_rayservice_manifest_names_the_code_and_its_options():
    pytest.importorskip("ray.serve")
    import importlib

    from drcn.runtime.serve.cli import build_parser

    manifest = yaml.safe_load((REPO / "deploy" / "rayservice.yaml").read_text())
    assert manifest["kind"] == "RayService"
    config = yaml.safe_load(manifest["spec"]["serveConfigV2"])
    (application,) = config["applications"]
    module, name = application["import_path"].split(":")
    builder = getattr(importlib.import_module(module), name)
    assert callable(builder) and name == "from_args"
    argv = []
    for key, value in application["args"].items():
        argv += [f"--{key}", str(value)]
    args = build_parser().parse_args(argv)
    assert args.onnx == "/models/drcn_f64_d9.onnx" and args.replicas == 2 and args.backend == "openvino"
    image = {c["image"] for g in [manifest["spec"]["rayClusterConfig"]["headGroupSpec"]]
             + manifest["spec"]["rayClusterConfig"]["workerGroupSpecs"] for c in g["template"]["spec"]["containers"]}
    assert len(image) == 1
    assert manifest["spec"]["rayClusterConfig"]["rayVersion"] in (REPO / "deploy" / "Dockerfile").read_text()


def test_from_args_builds_the_application_with_the_options(tiny_model_files):
    pytest.importorskip("ray.serve")
    pytest.importorskip("onnxruntime")
    from drcn.runtime.serve.app import from_args

    app = from_args({"onnx": str(tiny_model_files[1]), "backend": "onnxruntime", "replicas": 2, "queue": 4})
    deployment = app._bound_deployment
    assert deployment.num_replicas == 2
    settings, limits = deployment.init_args
    assert settings.request.backend == "onnxruntime" and limits.max_pending == 4
    scaled = from_args({"onnx": str(tiny_model_files[1]), "backend": "onnxruntime", "replicas": 1,
                        "max-replicas": 3})._bound_deployment
    assert scaled._deployment_config.autoscaling_config.min_replicas == 1
    assert scaled._deployment_config.autoscaling_config.max_replicas == 3
