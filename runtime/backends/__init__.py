"""Inference backends: the backend table (table.py), one module per backend, and the choice of model file and backend (select.py)."""
