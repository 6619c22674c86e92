"""[stores.NAME.resilience] in polystore.toml: defaults, every field, errors naming the field."""

from __future__ import annotations

from importlib import resources

import pytest

from toolkit.config import parse_config
from toolkit.errors import ConfigError
from toolkit.resilience import DEFAULT_POLICY, BreakerPolicy, BulkheadPolicy, RetryPolicy, ThrottlePolicy

STORE = "[stores.kv]\nkind = 'keyvalue'\n[stores.kv.shards]\ns0 = 'sqlite:///kv.db'\n"


def test_a_store_without_the_table_gets_the_documented_defaults() -> None:
    policy = parse_config(STORE).stores["kv"].resilience
    assert policy == DEFAULT_POLICY
    assert policy.breaker == BreakerPolicy(failures=5, window=10.0, cool_down=5.0, probes=1)
    assert policy.bulkhead == BulkheadPolicy(max_concurrent=32, max_wait=1.0)
    assert policy.throttle.rate is None  # no throttle unless a rate is set
    assert policy.retry == RetryPolicy(max_attempts=3, initial_backoff=0.05, timeout=5.0)


def test_every_field_is_read() -> None:
    text = STORE + (
        "[stores.kv.resilience]\nenabled = true\n"
        "[stores.kv.resilience.breaker]\nenabled = true\nfailures = 3\nwindow = 20\nfailure_rate = 0.25\n"
        "min_calls = 40\ncool_down = 2.5\nprobes = 2\n"
        "[stores.kv.resilience.bulkhead]\nenabled = true\nmax_concurrent = 4\nmax_wait = 0\n"
        "[stores.kv.resilience.throttle]\nrate = 250\nalgorithm = 'sliding_window'\nburst = 10\nwindow = 0.5\n"
        "wait = false\nmax_wait = 0.2\n"
        "[stores.kv.resilience.retry]\nmax_attempts = 5\ninitial_backoff = 0.01\nmultiplier = 3\nmax_backoff = 0.5\n"
        "jitter = 1\ntimeout = 2\n"
    )
    policy = parse_config(text).stores["kv"].resilience
    assert policy.breaker == BreakerPolicy(
        failures=3, window=20.0, failure_rate=0.25, min_calls=40, cool_down=2.5, probes=2
    )
    assert policy.bulkhead == BulkheadPolicy(max_concurrent=4, max_wait=0.0)
    assert policy.throttle == ThrottlePolicy(
        rate=250.0, algorithm="sliding_window", burst=10, window=0.5, wait=False, max_wait=0.2
    )
    assert policy.retry == RetryPolicy(
        max_attempts=5, initial_backoff=0.01, multiplier=3.0, max_backoff=0.5, jitter=1.0, timeout=2.0
    )
    assert not parse_config(STORE + "[stores.kv.resilience]\nenabled = false\n").stores["kv"].resilience.enabled


@pytest.mark.parametrize(
    ("table", "body", "message"),
    [
        ("", "retries = 3", "stores.kv.resilience.retries: unknown field (expected one of: enabled, breaker,"),
        ("", "enabled = 'yes'", "stores.kv.resilience.enabled: expected true or false, found str"),
        ("", "breaker = 5", "stores.kv.resilience.breaker: expected a table, found int"),
        ("breaker", "failures = 0", "stores.kv.resilience.breaker.failures: must be a whole number of at least 1"),
        ("breaker", "failures = 2.5", "stores.kv.resilience.breaker.failures: expected a whole number, found float"),
        ("breaker", "failure_rate = 1.5", "stores.kv.resilience.breaker.failure_rate: must be within (0, 1]"),
        ("breaker", "cool_down = -1", "stores.kv.resilience.breaker.cool_down: must be a positive number"),
        ("bulkhead", "max_concurrent = true", "stores.kv.resilience.bulkhead.max_concurrent: expected a whole number"),
        ("bulkhead", "size = 3", "stores.kv.resilience.bulkhead.size: unknown field"),
        ("throttle", "rate = '100'", "stores.kv.resilience.throttle.rate: expected a number, found str"),
        ("throttle", "rate = 0", "stores.kv.resilience.throttle.rate: must be a positive number"),
        ("throttle", "algorithm = 'gcra'", "stores.kv.resilience.throttle.algorithm: expected one of token_bucket,"),
        ("throttle", "wait = 1", "stores.kv.resilience.throttle.wait: expected true or false, found int"),
        ("throttle", "rate = 0.5\nalgorithm = 'fixed_window'", "stores.kv.resilience.throttle.window: rate * window"),
        ("retry", "jitter = 2", "stores.kv.resilience.retry.jitter: must be within [0, 1]"),
        ("retry", "multiplier = 0.5", "stores.kv.resilience.retry.multiplier: must be at least 1"),
        ("retry", "max_attempts = 0", "stores.kv.resilience.retry.max_attempts: must be a whole number of at least 1"),
    ],
)
def test_errors_name_the_file_and_the_field(table: str, body: str, message: str) -> None:
    header = f"[stores.kv.resilience.{table}]" if table else "[stores.kv.resilience]"
    with pytest.raises(ConfigError) as raised:
        parse_config(f"{STORE}{header}\n{body}\n", file="app.toml")
    assert str(raised.value).startswith(f"app.toml: {message}"), str(raised.value)


def test_the_template_documents_every_field_and_its_example_parses() -> None:
    text = resources.files("toolkit").joinpath("templates/polystore.toml").read_text(encoding="utf-8")
    section = text[text.index("# Resilience per store") :]
    lines = []
    for line in section.splitlines():
        if line.startswith("# [") or (line.startswith("# ") and not line.startswith("# #") and " = " in line):
            line = line[2:]
        elif line.startswith("# # "):
            line = line[4:]
        lines.append(line)
    store = "[stores.users]\n[stores.users.shards]\ns0 = 'sqlite:///u.db'\n"
    policy = parse_config(store + "\n".join(lines)).stores["users"].resilience
    assert policy.throttle.rate == 500.0
    assert policy.breaker.failure_rate == 0.5
    for part in (policy.breaker, policy.bulkhead, policy.throttle, policy.retry):
        for name in type(part).__dataclass_fields__:
            assert f"# {name} = " in section or f"# # {name} = " in section, name
