"""``drcn.shipped``: the trained model that ships with the package (weights, its ONNX export, the model card).

Package data, found through ``importlib.resources`` in editable and wheel installs alike (see
``drcn.weights.default_weights_path``); ``$DRCN_WEIGHTS`` overrides it.
"""
