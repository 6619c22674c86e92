"""polystore's core layer: the error tree and the entity model.

Everything else builds on these two modules and they import nothing of polystore's but
each other, so any layer can use them without pulling in the layers above. They live
here, under the lowest top-level package, because importing any ``toolkit`` module runs
``toolkit/__init__``, which loads the whole application-facing API: a core inside
``toolkit`` would make ``import adapters.base`` load the repository that imports it.
Applications keep using the public spellings ``toolkit.errors`` and ``toolkit.model``.
"""
