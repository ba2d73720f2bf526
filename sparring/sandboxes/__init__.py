"""Sandboxes: isolated execution of model-written code, locally (bubblewrap) and in Docker.

The layer that code environments and Code-as-Task verification run programs through; its backends
arrive with the sandbox issue.
"""
