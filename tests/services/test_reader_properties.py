"""Properties of the reader and validator over any input: no exception escapes, and every data row ends as
exactly one contact or one rejection."""

import codecs
import csv
import encodings.aliases
import io
import os
import re
import tempfile
from unittest import mock

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from importdash.config import Config
from importdash.errors import ApiError, InvalidFile
from importdash.models import ErrorCategory
from importdash.services import reader
from importdash.services.reader import DELIMITERS, CsvSource, FileLimits, SourceRow, check_file
from importdash.services.validator import Contact, Rejection, validate

LIMITS = FileLimits.from_config(vars(Config))

CATEGORIES = {category.value for category in ErrorCategory}


def _text_codecs():
    """Every text encoding this Python has, by its canonical name."""
    names = set()
    for name in set(encodings.aliases.aliases.values()) | {"utf_8_sig", "utf_16", "utf_32", "cp1252", "shift_jis"}:
        try:
            info = codecs.lookup(name)
        except LookupError:
            continue
        if getattr(info, "_is_text_encoding", True):
            names.add(info.name)
    return sorted(names)


TEXT_CODECS = _text_codecs()
PROPERTY_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text that exercises the CSV grammar: separators, quotes, every line ending, spaces, an @ and a dot.
csv_ish = st.text(alphabet=',;\t|"\r\n @.aéZ\ufeff\u2028', max_size=120)
header = st.sampled_from(
    ["", "name,email\n", "name;email;company\r\n", "email\tname\n", "Name , EMAIL,\n", "name,email,name\n"]
)


def read_everything(content, **options):
    """Check the bytes as an upload would; if accepted, read and validate every row.

    Returns None when the file is refused (with InvalidFile or, for a bad option, ApiError) and
    otherwise (rows, count, outcomes, file format).
    """
    with tempfile.NamedTemporaryFile(suffix=".csv", delete=False) as file:
        file.write(content)
    try:
        try:
            file_format = check_file(file.name, max_line_length=Config.MAX_LINE_LENGTH, limits=LIMITS, **options)
        except ApiError as refusal:
            assert refusal.message and refusal.status_code == 400
            event("refused")
            return None
        event("accepted")
        with CsvSource(file.name, file_format.encoding, file_format.delimiter) as source:
            rows = list(source.rows())
            count = source.count()
        return rows, count, [validate(row) for row in rows], file_format
    finally:
        os.remove(file.name)


def assert_each_row_has_one_outcome(rows, count, outcomes):
    assert count == len(rows) == len(outcomes)
    numbers = [row.row for row in rows]
    assert numbers == sorted(set(numbers)) and all(number >= 2 for number in numbers)
    for row, outcome in zip(rows, outcomes, strict=True):
        assert isinstance(outcome, Contact | Rejection)
        assert outcome.row == row.row
        if isinstance(outcome, Rejection):
            assert outcome.category in CATEGORIES and outcome.message


@PROPERTY_SETTINGS
@given(head=st.sampled_from([b"", b"name,email\n", codecs.BOM_UTF8 + b"email;name\r\n"]), body=st.binary(max_size=300))
def test_any_bytes_are_refused_or_read_row_by_row(head, body):
    content = head + body
    result = read_everything(content)
    if result is not None:
        rows, count, outcomes, _format = result
        assert_each_row_has_one_outcome(rows, count, outcomes)
        if b"\xef\xbf\xbd" not in content:  # the file's own U+FFFD is the only one that may appear
            assert all("\ufffd" not in str(row.data) for row in rows)


@PROPERTY_SETTINGS
@given(head=header, body=csv_ish, codec=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252"]))
def test_csv_like_text_is_refused_or_read_row_by_row(head, body, codec):
    text = head + body
    try:
        content = text.encode(codec)
    except UnicodeEncodeError:
        assume(False)
    options = {"encoding": codec} if codec == "cp1252" else {}
    result = read_everything(content, **options)
    if result is not None:
        assert_each_row_has_one_outcome(*result[:3])


@PROPERTY_SETTINGS
@given(
    content=st.binary(max_size=120),
    encoding=st.sampled_from(TEXT_CODECS),
    delimiter=st.sampled_from([None, *DELIMITERS]),
)
def test_any_text_codec_python_has_refuses_or_reads(content, encoding, delimiter):
    result = read_everything(b"name,email\n" + content, encoding=encoding, delimiter=delimiter)
    if result is not None:
        assert_each_row_has_one_outcome(*result[:3])


cell = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=30)


@PROPERTY_SETTINGS
@given(
    table=st.lists(st.tuples(cell, cell, cell), min_size=1, max_size=8),
    delimiter=st.sampled_from(list(DELIMITERS)),
    codec=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-32"]),
)
def test_whatever_the_csv_writer_writes_is_read_back_cell_for_cell(table, delimiter, codec):
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(["name", "email", "company"])
    writer.writerows(table)

    result = read_everything(buffer.getvalue().encode(codec))

    assert result is not None
    rows, count, outcomes, file_format = result
    assert file_format.delimiter == delimiter
    assert [(row.name, row.email, row.company) for row in rows] == table
    assert [row.row for row in rows] == list(range(2, len(table) + 2))
    assert_each_row_has_one_outcome(rows, count, outcomes)


maybe_text = st.none() | st.text(max_size=300)


@settings(max_examples=300, deadline=None)
@given(
    row=st.integers(2, 10**6),
    name=maybe_text,
    email=maybe_text,
    company=maybe_text,
    problem=st.none() | st.text(min_size=1),
)
def test_the_validator_gives_every_row_exactly_one_answer(row, name, email, company, problem):
    outcome = validate(SourceRow(row, name, email, company, {"name": name}, problem))

    assert outcome.row == row
    if isinstance(outcome, Contact):
        assert problem is None
        assert outcome.name == outcome.name.strip() != ""
        assert outcome.email == email.strip() and outcome.email_key == outcome.email.lower()
        assert outcome.company is None or outcome.company == outcome.company.strip() != ""
    else:
        assert isinstance(outcome, Rejection)
        assert outcome.category in CATEGORIES and outcome.message
        assert outcome.data == {"name": name}


@pytest.mark.parametrize("codec", ["utf-16", "utf-32"])
def test_byte_order_marks_name_the_encoding_whatever_was_asked(tmp_path, codec):
    path = tmp_path / "contacts.csv"
    path.write_bytes("name,email\nZoë,zoe@example.com\n".encode(codec))

    file_format = check_file(path, encoding="cp1252", max_line_length=Config.MAX_LINE_LENGTH, limits=LIMITS)

    assert file_format.encoding == codec
    with CsvSource(path, file_format.encoding, file_format.delimiter) as source:
        assert [row.name for row in source.rows()] == ["Zoë"]


@PROPERTY_SETTINGS
@given(
    lines=st.lists(st.text(alphabet="ab\x00", max_size=12), min_size=1, max_size=12),
    breaks=st.lists(st.sampled_from(["\n", "\r", "\r\n"]), min_size=12, max_size=12),
    final_break=st.booleans(),
    chunk=st.integers(1, 9),
    limit=st.integers(1, 8),
    codec=st.sampled_from(["utf-8", "utf-16"]),
)
def test_the_scan_finds_the_first_nul_or_long_line_wherever_blocks_split(
    lines, breaks, final_break, chunk, limit, codec
):
    text = "".join(line + line_break for line, line_break in zip(lines, breaks, strict=False))
    if not final_break:
        text = text.rstrip("\r\n")
    numbered = list(enumerate(re.split(r"\r\n|\r|\n", text), start=1))
    if "\x00" in text:  # with a NUL somewhere, lines are never too long: the NUL's line is the answer
        limit, expected = 100, next(number for number, line in numbered if "\x00" in line)
    else:
        expected = next((number for number, line in numbered if len(line) > limit), None)
    with tempfile.NamedTemporaryFile(delete=False) as file:
        file.write(text.encode(codec))
    try:
        with mock.patch.object(reader, "_SCAN_CHUNK_BYTES", chunk):
            reader._scan(file.name, codec, limit)
    except InvalidFile as refusal:
        assert int(re.search(r"[Ll]ine (\d+)", refusal.message).group(1)) == expected
    else:
        assert expected is None
    finally:
        os.remove(file.name)


@PROPERTY_SETTINGS
@given(
    before=st.text(alphabet="aé\r\n", max_size=20),
    after=st.text(alphabet="aé\r\n", max_size=10),
    bad=st.sampled_from([b"\xff", b"\xc3", b"\xe9a", b"\x80"]),
    chunk=st.integers(1, 9),
)
def test_an_undecodable_byte_is_located_wherever_blocks_split(before, after, bad, chunk):
    content = b"\xef\xbb\xbf" + before.encode() + bad + after.encode()
    with tempfile.NamedTemporaryFile(delete=False) as file:
        file.write(content)
    try:
        with mock.patch.object(reader, "_SCAN_CHUNK_BYTES", chunk), pytest.raises(InvalidFile) as raised:
            reader._scan(file.name, "utf-8-sig", 100)
    finally:
        os.remove(file.name)
    position, line = 3 + len(before.encode()), 1 + len(re.findall(r"\r\n|\r|\n", before))
    assert f"byte 0x{bad[0]:02X} at byte position {position} (line {line})" in raised.value.message
