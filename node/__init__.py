"""The node agent: images, containers, networks; `dockyard` is its command line."""
__version__ = "0.1.0"
