"""pytest plugin: expand tests over every platform of an image's manifest list.

Installed as ``pytest_multiarch`` and registered through the ``pytest11`` entry point.
"""
