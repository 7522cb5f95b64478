"""The README's CLI section and its table of import times stay true to the code."""

import math
import re

import pytest

from importdash.cli import COMMANDS
from importdash.config import PROJECT_ROOT, Config

pytestmark = pytest.mark.unit

README = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")


def section(title):
    return README.partition(f"\n### {title}\n")[2].partition("\n## ")[0].partition("\n### ")[0]


def test_every_cli_command_is_documented_in_the_cli_section():
    cli = section("CLI")
    documented = set(re.findall(r"^importdash ([a-z-]+)", cli, flags=re.MULTILINE))

    assert {command.name for command in COMMANDS} <= documented
    assert "IMPORTDASH_PROGRESS_LINE_SECONDS" in cli and "`IMPORTDASH_PROGRESS_LINE_SECONDS`" in README


def test_the_table_of_import_times_follows_from_the_default_settings():
    rows_a_second = Config.RATE_PER_SECOND * Config.RECORDS_PER_CALL
    times = section("How long an import takes")
    table = re.findall(r"^\| ([\d,]+) \| ([\d,]+) \| \(([\d,]+) − (\d+)\) / (\d+) = ([\d,.]+) s", times, re.MULTILINE)

    assert (
        f"{Config.RATE_PER_SECOND:g} calls a second × {Config.RECORDS_PER_CALL} records a call = **{rows_a_second:g}"
        in (times.replace("\n", " "))
    )
    assert [int(rows.replace(",", "")) for rows, *_ in table] == [1_000, 50_000, 1_000_000]
    for rows, calls, calls_again, burst, rate, seconds in table:
        expected_calls = math.ceil(int(rows.replace(",", "")) / Config.RECORDS_PER_CALL)
        assert int(calls.replace(",", "")) == int(calls_again.replace(",", "")) == expected_calls
        assert (int(burst), float(rate)) == (Config.RATE_BURST, Config.RATE_PER_SECOND)
        assert float(seconds.replace(",", "")) == (expected_calls - Config.RATE_BURST) / Config.RATE_PER_SECOND
