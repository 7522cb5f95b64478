import importlib.util
from collections import Counter
from itertools import islice
from pathlib import Path

import pytest

from importdash.config import Config
from importdash.services.reader import CsvSource, count_rows
from importdash.services.validator import Contact, validate

DATA = Path(__file__).resolve().parent.parent / "data"
SAMPLE = DATA / "test-data-1000.csv"


@pytest.fixture(scope="module")
def generator():
    """Import data/generate_sample.py, which is a script rather than part of the package."""
    spec = importlib.util.spec_from_file_location("generate_sample", DATA / "generate_sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def sample_rows():
    with CsvSource(SAMPLE) as source:
        return list(source.rows())


@pytest.fixture(scope="module")
def categories(sample_rows):
    """Count what an import of the sample should report, the way the pipeline decides each category."""
    blocked_domains = {domain.strip() for domain in Config.SIMULATED_REJECT_DOMAINS.split(",")}
    counts = Counter()
    seen = set()
    for row in sample_rows:
        result = validate(row)
        if not isinstance(result, Contact):
            counts[result.category] += 1
        elif result.email_key in seen:
            counts["duplicate"] += 1
        else:
            seen.add(result.email_key)
            counts["other" if result.email_key.rpartition("@")[2] in blocked_domains else "imported"] += 1
    return counts


def test_sample_is_the_configured_default():
    assert Path(Config.SAMPLE_FILE) == SAMPLE


def test_sample_has_a_thousand_rows(sample_rows):
    assert SAMPLE.read_bytes().startswith(b"name,email,company\n")
    assert len(sample_rows) == 1000
    assert count_rows(SAMPLE) == 1000


@pytest.mark.parametrize(
    ("category", "low", "high"),
    [("duplicate", 35, 70), ("missing_value", 20, 45), ("invalid_format", 25, 60), ("other", 10, 35)],
)
def test_sample_shows_every_category_in_proportion(categories, category, low, high):
    assert low <= categories[category] <= high, categories


def test_most_of_the_sample_imports(categories):
    assert 820 <= categories["imported"] <= 900, categories


def test_sample_has_awkward_but_valid_csv(sample_rows):
    problems = [row for row in sample_rows if row.problem]
    companies = [row.company for row in sample_rows if row.problem is None]

    assert 2 <= len(problems) <= 10
    assert any(row.company is None for row in problems) and any("_extra" in row.data for row in problems)
    assert 1 <= sum("\n" in company for company in companies) <= 3
    assert sum("," in company for company in companies) >= 10
    assert sum('"' in company for company in companies) >= 5
    assert 60 <= sum(not company for company in companies) <= 140


def test_sample_duplicates_vary_in_case_and_spacing(sample_rows):
    spellings = {}
    for row in sample_rows:
        result = validate(row)
        if isinstance(result, Contact):
            spellings.setdefault(result.email_key, set()).add(row.email)
    repeated = [emails for emails in spellings.values() if len(emails) > 1]

    assert any(any(email != email.strip() for email in emails) for emails in repeated)
    assert any(len({email.strip() for email in emails}) > 1 for emails in repeated)


def test_regenerating_the_sample_gives_identical_bytes(generator, tmp_path):
    out = tmp_path / "sample.csv"

    assert generator.write_csv(out, generator.DEFAULT_ROWS, seed=generator.DEFAULT_SEED) == 1000
    assert out.read_bytes() == SAMPLE.read_bytes()


def test_blocked_domain_is_one_the_simulator_refuses(generator):
    assert generator.BLOCKED_DOMAIN in Config.SIMULATED_REJECT_DOMAINS.split(",")


def test_generate_rows_is_deterministic_per_seed(generator):
    assert list(generator.generate_rows(200, seed=5)) == list(generator.generate_rows(200, seed=5))
    assert list(generator.generate_rows(200, seed=5)) != list(generator.generate_rows(200, seed=6))


def test_generate_rows_streams(generator):
    rows = generator.generate_rows(10**12)

    assert len(list(islice(rows, 5))) == 5


def test_command_line(generator, tmp_path, capsys):
    out = tmp_path / "small.csv"

    generator.main(["--rows", "25", "--seed", "3", "--out", str(out)])

    assert count_rows(out) == 25
    assert capsys.readouterr().out == f"wrote 25 rows to {out}\n"
