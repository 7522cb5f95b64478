import csv
import tracemalloc

import pytest

from importdash.config import Config
from importdash.errors import InvalidFile
from importdash.services.reader import (
    CsvSource,
    FileLimits,
    SourceRow,
    check_file,
    count_rows,
    read_header,
)

LIMITS = FileLimits.from_config(vars(Config))


@pytest.fixture
def write(tmp_path):
    """Return a function that writes bytes or UTF-8 text to a CSV file and returns its path."""

    def write(content, name="contacts.csv"):
        path = tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        return path

    return write


def read_all(path, **kwargs):
    with CsvSource(path, **kwargs) as source:
        return list(source.rows())


def test_reads_rows_numbered_from_two(write):
    path = write("name,email,company\nAda Lovelace,ada@example.com,Analytical Engines\nAlan Turing,alan@example.org,\n")

    rows = read_all(path)

    assert rows == [
        SourceRow(
            2,
            "Ada Lovelace",
            "ada@example.com",
            "Analytical Engines",
            {"name": "Ada Lovelace", "email": "ada@example.com", "company": "Analytical Engines"},
            None,
        ),
        SourceRow(
            3,
            "Alan Turing",
            "alan@example.org",
            "",
            {"name": "Alan Turing", "email": "alan@example.org", "company": ""},
            None,
        ),
    ]


def test_accepts_str_paths(write):
    path = write("name,email\nAda,ada@example.com\n")

    assert [row.email for row in read_all(str(path))] == ["ada@example.com"]


def test_bom_and_crlf(write):
    path = write(b"\xef\xbb\xbfname,email,company\r\nZo\xc3\xab,zoe@example.com,Acme\r\nBen,ben@example.com,Beta\r\n")

    with CsvSource(path) as source:
        assert source.columns == ["name", "email", "company"]
        rows = list(source.rows())

    assert [(row.row, row.name, row.email, row.company) for row in rows] == [
        (2, "Zoë", "zoe@example.com", "Acme"),
        (3, "Ben", "ben@example.com", "Beta"),
    ]


def test_bom_is_dropped_from_the_header_even_when_read_as_plain_utf8(write):
    path = write(b"\xef\xbb\xbfname,email\nAda,ada@example.com\n")

    assert read_header(path, encoding="utf-8") == ["name", "email"]


def test_file_without_trailing_newline(write):
    path = write("name,email\nAda,ada@example.com")

    assert [row.email for row in read_all(path)] == ["ada@example.com"]


def test_quoted_commas_doubled_quotes_and_newlines(write):
    path = write(
        "name,email,company\r\n"
        '"Smith, Jane",jane@example.com,"Smith, Jones & Partners"\r\n'
        'Joe,joe@example.com,"The ""Blue"" Door"\r\n'
        'Mia,mia@example.com,"Acme Foods\r\nHead Office"\r\n'
        "Lee,lee@example.com,Beta\r\n"
    )

    rows = read_all(path)

    assert [(row.row, row.name, row.company) for row in rows] == [
        (2, "Smith, Jane", "Smith, Jones & Partners"),
        (3, "Joe", 'The "Blue" Door'),
        (4, "Mia", "Acme Foods\r\nHead Office"),
        (5, "Lee", "Beta"),
    ]
    assert all(row.problem is None for row in rows)


def test_quoted_newline_does_not_add_a_row_but_blank_lines_count(write):
    path = write(
        "name,email,company\n"
        'Ana,ana@example.com,"two\nlines"\n'
        "\n"
        "Ben,ben@example.com,Beta\n"
        "   \n"
        "\r\n"
        "Cy,cy@example.com,Gamma\n"
        "\n"
    )

    rows = read_all(path)

    assert [(row.row, row.name) for row in rows] == [(2, "Ana"), (4, "Ben"), (7, "Cy")]
    assert count_rows(path) == 3


def test_blank_lines_before_the_header_are_skipped_and_counted(write):
    path = write("\n\nname,email\nAda,ada@example.com\n")

    with CsvSource(path) as source:
        assert source.columns == ["name", "email"]
        assert [(row.row, row.name) for row in source.rows()] == [(4, "Ada")]


def test_header_matching_ignores_case_and_whitespace(write):
    path = write(" NAME ,Email,\tCompany \nAda,ada@example.com,Acme\n")

    with CsvSource(path) as source:
        assert source.columns == ["NAME", "Email", "Company"]
        [row] = source.rows()

    assert (row.name, row.email, row.company) == ("Ada", "ada@example.com", "Acme")
    assert row.data == {"NAME": "Ada", "Email": "ada@example.com", "Company": "Acme"}


def test_columns_in_any_order_with_unknown_columns_kept(write):
    path = write("id,Email,phone,name\n7,ada@example.com,555-0100,Ada\n")

    [row] = read_all(path)

    assert (row.name, row.email, row.company) == ("Ada", "ada@example.com", None)
    assert row.data == {"id": "7", "Email": "ada@example.com", "phone": "555-0100", "name": "Ada"}


def test_cells_are_not_trimmed_by_the_reader(write):
    path = write("name,email\n  Ada  , ada@example.com \n")

    [row] = read_all(path)

    assert (row.name, row.email) == ("  Ada  ", " ada@example.com ")


def test_without_company_column_company_is_none(write):
    path = write("name,email\nAda,ada@example.com\n")

    [row] = read_all(path)

    assert row.company is None
    assert row.data == {"name": "Ada", "email": "ada@example.com"}


def test_repeated_column_names_are_refused_with_the_names(write):
    path = write("name,email,note,Note,phone,phone\nAda,ada@example.com,first,second,1,2\n")

    with pytest.raises(InvalidFile) as raised:
        read_header(path)

    assert raised.value.message == (
        'The header repeats the column names "Note", "phone"; every column needs its own name.'
    )


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (
            "name,email,",
            'Column 3 of the header has no name; every column needs one. Columns found: "name", "email", "".',
        ),
        (
            ' ,name,"",email',
            'Columns 1, 3 of the header have no name; every column needs one. Columns found: "", "name", "", "email".',
        ),
    ],
)
def test_empty_column_names_are_refused_with_their_positions(write, header, message):
    path = write(f"{header}\nAda,ada@example.com,x,y\n")

    with pytest.raises(InvalidFile) as raised:
        read_header(path)

    assert raised.value.message == message


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("name,company", ['no "email" column', 'Columns found: "name", "company"']),
        ("Who,Reach", ['no "name" and "email" columns', 'Columns found: "Who", "Reach"']),
        ("email,phone", ['no "name" column', 'Columns found: "email", "phone"']),
    ],
)
def test_header_missing_required_columns(write, header, expected):
    path = write(f"{header}\na,b\n")

    with pytest.raises(InvalidFile) as raised:
        CsvSource(path)

    for fragment in expected:
        assert fragment in raised.value.message
    assert raised.value.status_code == 400
    assert raised.value.code == "mapping_required"
    assert raised.value.details["columns"] == header.split(",")


def test_header_with_a_known_column_twice(write):
    path = write("name,email,Email\nAda,a@example.com,b@example.com\n")

    with pytest.raises(InvalidFile, match='repeats the column name "Email"'):
        read_header(path)


@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf", b"\n\n", b"\r\n  \r\n"])
def test_empty_file(write, content):
    path = write(content)

    with pytest.raises(InvalidFile) as raised:
        read_header(path)

    assert raised.value.message == "The file is empty."


def test_header_only_file_has_no_rows(write):
    path = write("name,email,company\r\n")

    assert read_header(path) == ["name", "email", "company"]
    assert read_all(path) == []
    assert count_rows(path) == 0


def test_ragged_rows_are_yielded_with_a_problem(write):
    path = write(
        "name,email,company\n"
        "Ada,ada@example.com,Acme\n"
        "Ben,ben@example.com\n"
        "Cy,cy@example.com,Smith, Jones & Co\n"
        "Dee\n"
        "Eve,eve@example.com,Beta\n"
    )

    rows = read_all(path)

    assert [(row.row, row.problem) for row in rows] == [
        (2, None),
        (3, "row 3 has 2 fields, expected 3"),
        (4, "row 4 has 4 fields, expected 3"),
        (5, "row 5 has 1 field, expected 3"),
        (6, None),
    ]
    short, long, single = rows[1], rows[2], rows[3]
    assert (short.name, short.email, short.company) == ("Ben", "ben@example.com", None)
    assert short.data == {"name": "Ben", "email": "ben@example.com"}
    assert (long.name, long.email, long.company) == ("Cy", "cy@example.com", "Smith")
    assert long.data == {"name": "Cy", "email": "cy@example.com", "company": "Smith", "_extra": [" Jones & Co"]}
    assert (single.name, single.email, single.company) == ("Dee", None, None)
    assert count_rows(path) == 5


def test_ragged_row_keeps_cells_present_when_email_comes_first(write):
    path = write("email,name\nada@example.com\n")

    [row] = read_all(path)

    assert (row.email, row.name, row.problem) == ("ada@example.com", None, "row 2 has 1 field, expected 2")


def test_start_after_skips_rows_up_to_that_number(write):
    path = write("name,email\na,a@example.com\n\nb,b@example.com\nc,c@example.com\n")

    with CsvSource(path) as source:
        assert [row.row for row in source.rows()] == [2, 4, 5]
        assert [row.row for row in source.rows(start_after=0)] == [2, 4, 5]
        assert [row.row for row in source.rows(start_after=1)] == [2, 4, 5]
        assert [row.row for row in source.rows(start_after=2)] == [4, 5]
        assert [row.row for row in source.rows(start_after=3)] == [4, 5]
        assert [row.row for row in source.rows(start_after=4)] == [5]
        assert [row.row for row in source.rows(start_after=5)] == []
        assert [row.row for row in source.rows(start_after=99)] == []


def test_start_after_counts_a_quoted_newline_as_one_row(write):
    path = write('name,email,company\na,a@example.com,"x\ny"\nb,b@example.com,z\n')

    with CsvSource(path) as source:
        assert [(row.row, row.name) for row in source.rows(start_after=2)] == [(3, "b")]


def test_rows_can_be_read_again(write):
    path = write("name,email\na,a@example.com\nb,b@example.com\n")

    with CsvSource(path) as source:
        first = list(source.rows())
        second = list(source.rows())

    assert first == second
    assert len(first) == 2


def test_count_rows_matches_rows(write):
    path = write('\ufeffname,email\na,a@example.com\n\nb\nc,c@example.com,extra\n"d\ne",d@example.com\n \n')

    assert count_rows(path) == len(read_all(path)) == 4


def test_close_closes_the_file(write):
    path = write("name,email\na,a@example.com\n")

    with CsvSource(path) as source:
        pass

    with pytest.raises(ValueError):
        list(source.rows())


def test_undecodable_byte_in_the_header_chunk(write):
    content = "name,email\nJosé,jose@example.com\n".encode("latin-1")
    path = write(content)

    with pytest.raises(InvalidFile) as raised:
        CsvSource(path)

    position = content.index(b"\xe9")
    assert raised.value.message == (
        f"The file is not valid UTF-8 text: byte 0xE9 at byte position {position} (line 2) cannot be decoded. "
        'Save it as UTF-8, or name the encoding it was saved in with the "encoding" field '
        "(for example cp1252, latin-1 or shift_jis)."
    )


def test_undecodable_byte_far_into_the_file_counts_the_bom(write):
    good_rows = "".join(f"Person {number},p{number}@example.com\n" for number in range(5000))
    content = b"\xef\xbb\xbfname,email\n" + good_rows.encode() + b"Bad \xff\xfe,bad@example.com\n"
    path = write(content)

    with CsvSource(path) as source:
        with pytest.raises(InvalidFile) as raised:
            list(source.rows())

    position = content.index(b"\xff")
    assert f"byte 0xFF at byte position {position} (line 5002)" in raised.value.message
    with pytest.raises(InvalidFile, match="not valid UTF-8"):
        count_rows(path)


def test_truncated_multibyte_character_at_the_end(write):
    content = "name,email\nZoë,zoe@example.com\n".encode() + b"\xc3"
    path = write(content)

    with pytest.raises(InvalidFile, match=f"byte 0xC3 at byte position {len(content) - 1} \\(line 3\\)"):
        count_rows(path)


def test_other_encodings_can_be_named(write):
    path = write("name,email\nJosé,jose@example.com\n".encode("latin-1"))

    [row] = read_all(path, encoding="latin-1")

    assert row.name == "José"


def test_unknown_encoding(write):
    path = write("name,email\n")

    with pytest.raises(InvalidFile, match='"no-such-codec" is not a known text encoding'):
        read_header(path, encoding="no-such-codec")


def test_a_field_over_the_csv_limit_is_one_bad_row_and_reading_goes_on(write):
    runaway = "x" * (csv.field_size_limit() + 10)
    path = write(f'name,email\na,a@example.com\nb,"{runaway}\nc,c@example.com\n')

    rows = read_all(path)

    assert [(row.row, row.name, row.problem) for row in rows] == [
        (2, "a", None),
        (3, None, "row 3 has a field longer than 131,072 characters (is a quote left open?)"),
        (4, "c", None),
    ]
    assert rows[1].data == {}
    assert count_rows(path) == 3
    with CsvSource(path) as source:
        assert [row.row for row in source.rows(start_after=3)] == [4]


def test_check_file_reads_a_large_file_in_bounded_memory(write):
    rows = "".join(f"Person {number},person{number}@example.com,Company {number % 97}\r\n" for number in range(400_000))
    path = write("name,email,company\r\n" + rows)
    assert path.stat().st_size > 20_000_000

    tracemalloc.start()
    try:
        file_format = check_file(path, max_line_length=Config.MAX_LINE_LENGTH, limits=LIMITS)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert (file_format.encoding, file_format.delimiter, file_format.columns) == (
        "utf-8-sig",
        ",",
        ["name", "email", "company"],
    )
    assert peak < 8_000_000


def test_a_line_without_an_end_is_refused_without_reading_it_whole(write):
    path = write(b"name,email\n" + b"x" * 5_000_000)

    tracemalloc.start()
    try:
        with pytest.raises(InvalidFile, match="Line 2 is longer than 1,048,576 characters"):
            check_file(path, max_line_length=Config.MAX_LINE_LENGTH, limits=LIMITS)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < 8_000_000
