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


def email_keys(path):
    """The normalised emails of a file's rows that would become records."""
    with CsvSource(path) as source:
        return {result.email_key for row in source.rows() if isinstance(result := validate(row), Contact)}


def test_the_command_line_makes_fresh_rows_by_default(generator, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)

    generator.main(["--rows", "2000"])
    generator.main(["--rows", "2000", "--out", "second.csv"])

    first, second = tmp_path / "contacts-2000.csv", tmp_path / "second.csv"
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("wrote 2000 fresh rows to contacts-2000.csv (--seed ")
    assert count_rows(first) == count_rows(second) == 2000
    # Neither repeats an address of the bundled sample, nor of the other file (each had a new seed).
    assert not email_keys(first) & email_keys(SAMPLE)
    assert not email_keys(first) & email_keys(second)
    assert len(email_keys(first)) > 1700  # only the file's own deliberate repeats and problem rows are missing


def test_a_seed_makes_the_same_fresh_file_again(generator, tmp_path, capsys):
    out, again = tmp_path / "a.csv", tmp_path / "b.csv"

    generator.main(["--rows", "25", "--seed", "3", "--out", str(out)])
    generator.main(["--rows", "25", "--seed", "3", "--out", str(again)])

    assert count_rows(out) == 25 and out.read_bytes() == again.read_bytes()
    assert (
        capsys.readouterr().out.splitlines()[0] == f"wrote 25 fresh rows to {out} (--seed 3 makes the same file again)"
    )
    assert all("+s3@" in key for key in email_keys(out))


def test_fresh_rows_are_the_samples_rows_with_tagged_addresses(generator):
    fresh = list(generator.generate_rows(1000, tag="s1"))
    sample = list(generator.generate_rows(1000))

    # The same draws: the same mix of problems, names and companies in the same places; only the addresses differ.
    assert [(cells[0], cells[2:]) for cells in fresh] == [(cells[0], cells[2:]) for cells in sample]
    changed = [(new[1], old[1]) for new, old in zip(fresh, sample, strict=True) if new[1] != old[1]]
    assert len(changed) > 900 and all("+s1@" in new.lower() for new, _old in changed if "@" in new)


def test_sample_writes_the_bundled_rows(generator, tmp_path, capsys):
    out = tmp_path / "sample.csv"

    generator.main(["--sample", "--out", str(out)])

    assert out.read_bytes() == SAMPLE.read_bytes()
    assert capsys.readouterr().out == f"wrote 1000 rows of the bundled sample to {out}\n"
    with pytest.raises(SystemExit):
        generator.main(["--sample", "--seed", "3"])  # the sample has its own seed


def test_help_says_the_rows_are_fresh(generator, capsys):
    with pytest.raises(SystemExit):
        generator.main(["--help"])

    help_text = " ".join(capsys.readouterr().out.split())
    assert "By default the rows are fresh" in help_text
    assert "shares no address with the bundled sample" in help_text
    assert "--sample" in help_text
