"""polystore.toml parsing: every error names the file and the dotted field."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolkit.config import Config, load_config, parse_config
from toolkit.errors import ConfigError

GOOD = """
data_dir = "data"
[catalog]
url = "sqlite:///meta/catalog.db"
[stores.users]
kind = "relational"
[stores.users.shards]
s0 = "sqlite:///u0.db"
s1 = "postgresql://app:${PG_PASSWORD}@db:5432/users"
[stores.users.router]
type = "hash"
weights = { s0 = 1, s1 = 3 }
[stores.orders]
[stores.orders.shards]
a = "sqlite:///o.db"
b = "sqlite:////abs/o.db"
[stores.orders.router]
type = "range"
ranges = [{ shard = "a", upto = 100 }, { shard = "b" }]
"""


def test_a_good_file_becomes_typed_objects(tmp_path: Path) -> None:
    config = parse_config(GOOD, file="p.toml", base_dir=tmp_path, env={"PG_PASSWORD": "s3cret"})
    users = config.stores["users"]
    assert users.kind == "relational"
    assert users.shard_urls == {
        "s0": f"sqlite:///{tmp_path / 'u0.db'}",  # relative to the file, not the cwd
        "s1": "postgresql://app:s3cret@db:5432/users",
    }
    assert users.router.type == "hash"
    assert users.router.options == {"weights": {"s0": 1, "s1": 3}}
    assert config.stores["orders"].kind == "relational"  # the default kind
    assert config.stores["orders"].shard_urls["b"] == "sqlite:////abs/o.db"
    assert config.catalog.url == f"sqlite:///{tmp_path / 'meta/catalog.db'}"
    assert config.data_dir == (tmp_path / "data").resolve()


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("stores = 3", "p.toml: stores: expected a table"),
        ("[stores.u]\nkind='graphy'\nshards={s0='sqlite:///x'}", "p.toml: stores.u.kind: expected one of"),
        ("[stores.u]\nkind='relational'", "p.toml: stores.u.shards: missing"),
        ("[stores.u]\nshards={}", "p.toml: stores.u.shards: a store needs at least one shard"),
        ("[stores.u]\nshards={s0='ftp://x'}", "p.toml: stores.u.shards.s0: no adapter for URL scheme 'ftp'"),
        ("[stores.u]\nshards={s0='not a url'}", "p.toml: stores.u.shards.s0: not a URL"),
        ("[stores.u]\nshards={s0=5}", "p.toml: stores.u.shards.s0: expected a string, found int"),
        (
            "[stores.u]\nshards={s0='sqlite:///x'}\nrouter={type='modulo'}",
            "p.toml: stores.u.router.type: expected one of",
        ),
        (
            "[stores.u]\nshards={s0='sqlite:///x'}\nrouter={type='hash', weights={s9=1}}",
            "p.toml: stores.u.router.weights.s9: unknown shard 's9'",
        ),
        (
            "[stores.u]\nshards={a='sqlite:///x', b='sqlite:///y'}\nrouter={type='range', ranges=[{shard='a', upto=5}, {shard='b', upto=3}, {shard='a'}]}",
            "p.toml: stores.u.router.ranges",
        ),
        ("[stores.u]\nshards={s0='sqlite:///x'}\nsharding='x'", "p.toml: stores.u.sharding: unknown field"),
        (
            "[stores.u]\nshards={s0='postgresql://u:${NOPE}@h/db'}",
            "p.toml: stores.u.shards.s0: environment variable NOPE",
        ),
        ("[stores.'bad-name']\nshards={s0='sqlite:///x'}", "p.toml: stores.bad-name: store names"),
        ("catalogue = {}", "p.toml: catalogue: unknown field"),
        ("[stores.u\n", "p.toml: not valid TOML"),
    ],
)
def test_errors_name_file_and_field(text: str, where: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, file="p.toml", base_dir=tmp_path, env={})
    assert str(caught.value).startswith(where), str(caught.value)


def test_env_defaults(tmp_path: Path) -> None:
    text = "[stores.u]\nshards={s0='postgresql://u:${PW:-dev}@h/db'}"
    assert parse_config(text, env={}).stores["u"].shards[0].url == "postgresql://u:dev@h/db"
    assert parse_config(text, env={"PW": "x"}).stores["u"].shards[0].url == "postgresql://u:x@h/db"


def test_no_file_means_the_embedded_default(tmp_path: Path) -> None:
    config = load_config()
    assert config.embedded
    assert config.catalog.url.startswith("sqlite:///")
    store = config.embedded_store("users")
    assert [shard.url for shard in store.shards] == [f"sqlite:///{(tmp_path / '.polystore/users.s0.db')}"]


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: no such file \(run `polystore init`"):
        load_config(tmp_path / "nope.toml")


def test_env_var_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "custom.toml"
    path.write_text("[stores.a]\nshards={s0='sqlite:///a.db'}")
    monkeypatch.setenv("POLYSTORE_CONFIG", str(path))
    assert list(load_config().stores) == ["a"]


def test_the_init_template_is_valid(tmp_path: Path) -> None:
    from importlib import resources

    text = resources.files("toolkit").joinpath("templates/polystore.toml").read_text()
    config = parse_config(text, base_dir=tmp_path, env={})
    assert set(config.stores) == {"users", "orders", "tenants"}
    assert {store.router.type for store in config.stores.values()} == {"hash", "range", "directory"}
    assert isinstance(config, Config)


ONE_STORE = """
[stores.users.shards]
s0 = "sqlite:///u0.db"
[stores.users.options]
"""


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            'namespce = "app_"',
            "stores.users.options.namespce: unknown option (shard 's0', RelationalOptions); did you mean 'namespace'?",
        ),
        ('busy_timeout = "soon"', "stores.users.options.busy_timeout: Input should be a valid number"),
        ("pool_size = [1]", "stores.users.options.pool_size: Input should be a valid integer"),
    ],
)
def test_adapter_options_are_typed_at_load(options: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(ONE_STORE + options, file="p.toml", base_dir=tmp_path)
    assert str(caught.value).startswith(f"p.toml: {message}")
    assert caught.value.field is not None
    assert caught.value.field.startswith("stores.users.options.")


def test_valid_adapter_options_pass_and_reach_the_adapter_typed(tmp_path: Path) -> None:
    from adapters.registry import adapter_class

    config = parse_config(ONE_STORE + 'namespace = "app_"\nbusy_timeout = 5', file="p.toml", base_dir=tmp_path)
    options = config.stores["users"].options
    adapter = adapter_class("sqlite")(config.stores["users"].shards[0].url, store="users", shard="s0", options=options)
    try:
        assert adapter.options.namespace == "app_"
        assert adapter.options.busy_timeout == 5.0
    finally:
        adapter.close()


def test_an_adapter_built_directly_refuses_unknown_options() -> None:
    from adapters.registry import adapter_class

    with pytest.raises(ConfigError, match=r"stores\.users\.options\.busy_timout: .*did you mean 'busy_timeout'"):
        adapter_class("sqlite")("sqlite:///:memory:", store="users", shard="s0", options={"busy_timout": 1})
