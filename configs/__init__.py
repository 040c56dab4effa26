"""Pipeline configs: ``get_config(arg=None)`` files for ``--config=configs/<name>.py[:quick]``.

Each module's docstring holds the command that runs it; ``common`` holds one
builder per config section. Importable from a checkout or an install::

  >>> from configs import default
  >>> default.get_config("quick").train.epochs
  1
"""
