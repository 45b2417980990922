"""Which commands a healthcheck runs: the tool check compares them with the upstream image."""

import pytest

from stackplate.standins.references import _healthcheck_tools


@pytest.mark.parametrize(
    ("test", "tools"),
    [
        (["CMD", "redis-cli", "ping"], {"redis-cli"}),
        (["CMD-SHELL", "pg_isready -U app && psql -c 'select 1'"], {"sh", "pg_isready", "psql"}),
        # An assignment before the command, a command substitution and a pipe: all run.
        (
            ["CMD-SHELL", 'REDISCLI_AUTH="$(cat /run/secrets/pw)" redis-cli ping | grep -q PONG'],
            {"sh", "cat", "redis-cli", "grep"},
        ),
        (["CMD", "sh", "-c", "exec env A=1 node x.js || exit 1"], {"sh", "node", "exit"}),
        (["NONE"], set()),
    ],
)
def test_healthcheck_tools(test, tools) -> None:
    assert _healthcheck_tools({"test": test}) == tools
