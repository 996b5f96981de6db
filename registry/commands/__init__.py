"""Sub-commands of ``dockyard-registry``: one module per command (group), each exposing
``register(subparsers)`` which adds its parser(s) with ``set_defaults(func=handler)``; a handler
is ``func(args) -> int``. The list of modules is in registry/__main__.py.
"""
