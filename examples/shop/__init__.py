"""The shop example. Its code ships with polystore as ``toolkit.demo.shop``.

``polystore demo`` runs the shop from an installed wheel. So the application lives
once, inside the distribution, in ``toolkit/demo/shop/``:

* ``models.py``: the entities and the stores they live in;
* ``app.py``: the use cases;
* ``checkout.py``: the checkout saga;
* ``polystore.toml`` and ``polystore.stack.toml``: the two configuration files.

Import it as ``toolkit.demo.shop``, which works with or without a source checkout.
This package only keeps the source tree's command working::

    python -m examples.shop                    # SQLite files under ./.polystore, no server
    python -m examples.shop --config toolkit/demo/shop/polystore.stack.toml
"""
