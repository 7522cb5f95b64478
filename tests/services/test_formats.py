"""Each format's reader (xlsx, JSON, NDJSON, CSV's quoted line breaks), format detection and the hostile-input
caps, through check_file and CheckedFile.open as a job uses them."""

import codecs
import io
import json
import zipfile
from datetime import date, datetime, time, timedelta

import pytest
from openpyxl import Workbook

from importdash.config import Config
from importdash.errors import ApiError, InvalidFile
from importdash.models import FileFormat
from importdash.services.jsonrows import JsonLimits
from importdash.services.mapping import ColumnMapping
from importdash.services.reader import FileLimits, check_file, detect_format
from importdash.services.workbook import WorkbookLimits, cell_text

LIMITS = FileLimits.from_config(vars(Config))
MAX_LINE_LENGTH = Config.MAX_LINE_LENGTH


def checked(path, **options):
    return check_file(path, max_line_length=MAX_LINE_LENGTH, limits=options.pop("limits", LIMITS), **options)


def read(path, **options):
    """Check the file, open it as a job would, and return (the check's result, every SourceRow)."""
    result = checked(path, **options)
    with result.open(path) as source:
        return result, list(source.rows())


def write_workbook(path, sheets, active=0):
    """Write a workbook with one sheet per (name, rows) item; `active` is the index of the sheet it opens on."""
    workbook = Workbook()
    workbook.remove(workbook.active)
    for name, rows in sheets.items():
        sheet = workbook.create_sheet(name)
        for row in rows:
            if isinstance(row, dict):  # {row number: cells}: a row at a place of its own
                for number, cells in row.items():
                    for column, value in enumerate(cells, start=1):
                        sheet.cell(number, column, value)
            else:
                sheet.append(row)
    workbook.active = active
    workbook.save(path)
    return path


def excel_saved_workbook(path, rows_xml, strings):
    """Write a workbook the way Excel saves one: its text in a shared-strings table, a date style, a dimension."""
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    office = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    package = "http://schemas.openxmlformats.org/package/2006/relationships"
    kinds = "application/vnd.openxmlformats-officedocument.spreadsheetml"
    parts = {
        "[Content_Types].xml": '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        f'<Override PartName="/xl/workbook.xml" ContentType="{kinds}.sheet.main+xml"/>'
        f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{kinds}.worksheet+xml"/>'
        f'<Override PartName="/xl/sharedStrings.xml" ContentType="{kinds}.sharedStrings+xml"/>'
        f'<Override PartName="/xl/styles.xml" ContentType="{kinds}.styles+xml"/></Types>',
        "_rels/.rels": f'<Relationships xmlns="{package}">'
        f'<Relationship Id="rId1" Type="{office}/officeDocument" Target="xl/workbook.xml"/></Relationships>',
        "xl/workbook.xml": f'<workbook xmlns="{main}" xmlns:r="{office}">'
        '<sheets><sheet name="Export" sheetId="1" r:id="rId1"/></sheets></workbook>',
        "xl/_rels/workbook.xml.rels": f'<Relationships xmlns="{package}">'
        f'<Relationship Id="rId1" Type="{office}/worksheet" Target="worksheets/sheet1.xml"/>'
        f'<Relationship Id="rId2" Type="{office}/sharedStrings" Target="sharedStrings.xml"/>'
        f'<Relationship Id="rId3" Type="{office}/styles" Target="styles.xml"/></Relationships>',
        "xl/styles.xml": f'<styleSheet xmlns="{main}"><fonts count="1"><font/></fonts>'
        '<fills count="1"><fill><patternFill patternType="none"/></fill></fills>'
        '<borders count="1"><border/></borders><cellStyleXfs count="1"><xf numFmtId="0"/></cellStyleXfs>'
        '<cellXfs count="2"><xf numFmtId="0" xfId="0"/><xf numFmtId="14" xfId="0" applyNumberFormat="1"/></cellXfs>'
        '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles></styleSheet>',
        "xl/sharedStrings.xml": f'<sst xmlns="{main}">'
        + "".join(f'<si><t xml:space="preserve">{text}</t></si>' for text in strings)
        + "</sst>",
        "xl/worksheets/sheet1.xml": f'<worksheet xmlns="{main}"><dimension ref="A1:XFD1048576"/>'
        f"<sheetData>{rows_xml}</sheetData></worksheet>",
    }
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, text in parts.items():
            archive.writestr(name, text)
    return path


def rewrite_member(path, name, change):
    """Rewrite one part of a workbook's ZIP archive with change(its bytes)."""
    with zipfile.ZipFile(path) as archive:
        parts = [(info, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for info, content in parts:
            archive.writestr(info, change(content) if info.filename == name else content)


def with_member(path, name, content):
    """Add a part to a workbook's ZIP archive."""
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, content)
    return path


# Excel.


def test_xlsx_cells_come_through_as_text_never_as_excel_renders_them(tmp_path):
    header = ["Name", "Email", "Joined", "Meeting", "Start", "Score", "Count", "Big", "Active", "Note"]
    row = [
        "Ada",
        "ada@example.com",
        datetime(2024, 1, 5),
        datetime(2024, 1, 5, 13, 30, 15),
        time(9, 5),
        0.1 + 0.2 - 0.2,  # 0.10000000000000003 stored: shown in its shortest exact form
        42.0,
        1e20,
        True,
        "  keeps its spaces  ",
    ]
    path = write_workbook(tmp_path / "people.xlsx", {"People": [header, row]})
    rewrite_member(
        path, "xl/worksheets/sheet1.xml", lambda xml: xml.replace(b"<v>0.5</v>", b"<v>0.10000000000000001</v>")
    )
    result, rows = read(path)
    assert result.file_format is FileFormat.XLSX and result.sheet == "People"
    assert rows[0].row == 2
    assert rows[0].extra == {
        "Joined": "2024-01-05",
        "Meeting": "2024-01-05T13:30:15",
        "Start": "09:05:00",
        "Score": "0.1",
        "Count": "42",
        "Big": "1e+20",
        "Active": "TRUE",
        "Note": "  keeps its spaces  ",
    }


def test_a_workbook_as_excel_saves_it_reads_its_shared_strings_dates_and_row_numbers(tmp_path):
    rows_xml = (
        '<row r="1" ht="20" customHeight="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c>'
        '<c r="C1" t="s"><v>2</v></c></row>'
        '<row r="4" ht="20" customHeight="1"><c r="A4" t="s"><v>3</v></c><c r="B4" t="s"><v>4</v></c>'
        '<c r="C4" s="1"><v>45296</v></c></row>'
        '<row r="6"><c r="B6" t="s"><v>5</v></c></row>'
    )
    path = excel_saved_workbook(
        tmp_path / "export.xlsx", rows_xml, ["Name", "Email", "Joined", " Ada ", "ada@example.com", "b@example.com"]
    )
    result, rows = read(path)
    assert (result.sheet, result.columns) == ("Export", ["Name", "Email", "Joined"])
    assert [(row.row, row.name, row.email, row.extra) for row in rows] == [
        (4, " Ada ", "ada@example.com", {"Joined": "2024-01-05"}),
        (6, "", "b@example.com", {"Joined": ""}),
    ]


def test_an_inline_string_in_rich_text_runs_reads_as_its_text(tmp_path):
    path = write_workbook(tmp_path / "rich.xlsx", {"S": [["name", "email"], ["PLACEHOLDER", "ada@example.com"]]})
    runs = b"<is><r><t>Ada </t></r><r><rPr><b/></rPr><t xml:space='preserve'>Love lace</t></r></is>"
    rewrite_member(path, "xl/worksheets/sheet1.xml", lambda xml: xml.replace(b"<is><t>PLACEHOLDER</t></is>", runs))
    _result, rows = read(path)
    assert rows[0].name == "Ada Love lace"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        ("=not a formula", "=not a formula"),
        (False, "FALSE"),
        (7, "7"),
        (0.1, "0.1"),
        (-3.0, "-3"),
        (2.5e-7, "2.5e-07"),
        (date(1999, 12, 31), "1999-12-31"),
        (timedelta(hours=36, minutes=30), "PT36H30M"),
    ],
)
def test_cell_text(value, text):
    assert cell_text(value) == text


def test_xlsx_row_numbers_are_the_sheets_and_blank_rows_are_skipped(tmp_path):
    rows = [{3: ["name", "email"], 4: ["Ada", "ada@example.com"], 7: ["Bob", "bob@example.com"], 9: ["", None]}]
    path = write_workbook(tmp_path / "gaps.xlsx", {"Sheet": rows})
    _result, read_rows = read(path)
    assert [(row.row, row.name) for row in read_rows] == [(4, "Ada"), (7, "Bob")]


def test_xlsx_short_rows_are_padded_and_values_past_the_header_are_a_ragged_row(tmp_path):
    path = write_workbook(
        tmp_path / "ragged.xlsx",
        {"Sheet": [["name", "email", "company"], ["Ada", "ada@example.com"], ["Bob", "bob@example.com", "B", "", "x"]]},
    )
    _result, rows = read(path)
    assert (rows[0].company, rows[0].problem) == ("", None)
    assert rows[1].problem == "row 3 has 5 fields, expected 3"


def test_xlsx_reads_the_active_sheet_by_default_and_a_named_one_on_request(tmp_path):
    sheets = {
        "Notes": [["just notes"]],
        "Contacts": [["name", "email"], ["Ada", "ada@example.com"]],
        "Old": [["name", "email"], ["Bob", "bob@example.com"]],
    }
    path = write_workbook(tmp_path / "book.xlsx", sheets, active=1)
    result, rows = read(path)
    assert (result.sheet, [row.name for row in rows]) == ("Contacts", ["Ada"])
    result, rows = read(path, sheet="Old")
    assert (result.sheet, [row.name for row in rows]) == ("Old", ["Bob"])


def test_an_unknown_sheet_is_a_400_listing_the_sheets(tmp_path):
    path = write_workbook(tmp_path / "book.xlsx", {"A": [["name", "email"]], "B b": [["name", "email"]]})
    with pytest.raises(ApiError) as raised:
        checked(path, sheet="Contacts")
    assert raised.value.status_code == 400
    assert raised.value.message == 'The workbook has no sheet named \'Contacts\'; its sheets are "A", "B b".'


def test_xlsx_rows_resume_after_a_row_and_count_like_rows(tmp_path):
    path = write_workbook(
        tmp_path / "many.xlsx",
        {"Sheet": [["name", "email"], *[[f"P{n}", f"p{n}@example.com"] for n in range(5)], [], ["Z", "z@example.com"]]},
    )
    result = checked(path)
    with result.open(path) as source:
        assert [row.row for row in source.rows(start_after=4)] == [5, 6, 8]
        assert source.count() == 6


def test_a_stored_xlsx_that_cannot_seek_is_read_through_a_copy(tmp_path):
    path = write_workbook(tmp_path / "book.xlsx", {"S": [["name", "email"], ["Ada", "ada@example.com"]]})
    content = path.read_bytes()

    class Unseekable(io.BytesIO):
        def seekable(self):
            return False

    result = checked(path)
    with result.open(lambda: Unseekable(content)) as source:
        assert [row.email for row in source.rows()] == ["ada@example.com"]


def test_a_workbook_given_as_a_stream_is_checked_like_a_file(tmp_path):
    path = write_workbook(tmp_path / "book.xlsx", {"S": [["name", "email"], ["Ada", "ada@example.com"]]})
    content = path.read_bytes()
    result = checked(lambda: io.BytesIO(content))
    assert (result.file_format, result.sheet, result.columns) == (FileFormat.XLSX, "S", ["name", "email"])


def test_a_workbook_that_unpacks_far_beyond_its_size_is_refused_before_it_is_read(tmp_path):
    path = write_workbook(tmp_path / "bomb.xlsx", {"S": [["name", "email"], ["Ada", "ada@example.com"]]})
    with_member(path, "xl/media/filler.bin", bytes(4 << 20))  # 4 MB of zeros pack into a few KB
    with pytest.raises(InvalidFile, match="times its size, more than the 100:1 a workbook may; it is refused as a"):
        checked(path)


def test_a_workbook_over_the_unpacked_size_cap_is_refused(tmp_path):
    path = write_workbook(tmp_path / "big.xlsx", {"S": [["name", "email"], ["Ada", "ada@example.com"]]})
    limits = FileLimits(workbook=WorkbookLimits(10_000, 100, 10_000), json=LIMITS.json)
    with pytest.raises(InvalidFile, match=r"The workbook unpacks to [\d,]+ bytes, more than the 10,000 bytes"):
        checked(path, limits=limits)


def test_an_oversized_shared_strings_table_is_refused_before_it_is_loaded(tmp_path):
    path = write_workbook(tmp_path / "strings.xlsx", {"S": [["name", "email"], ["Ada", "ada@example.com"]]})
    strings = "".join(f"<si><t>{n:08d} some text</t></si>" for n in range(5_000))
    with_member(path, "xl/sharedStrings.xml", f'<sst xmlns="x" count="5000">{strings}</sst>')
    limits = FileLimits(workbook=WorkbookLimits(1 << 30, 100, 100_000), json=LIMITS.json)
    with pytest.raises(InvalidFile, match=r"shared-strings table is [\d,]+ bytes, more than the 100,000 bytes"):
        checked(path, limits=limits)


def test_a_zip_that_is_not_a_workbook_and_a_damaged_workbook_are_refused(tmp_path):
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("a.txt", "hello")
    with pytest.raises(InvalidFile, match="a ZIP archive, not CSV text"):
        checked(archive)
    with pytest.raises(InvalidFile, match="a ZIP archive but not an Excel .xlsx workbook"):
        checked(archive, file_format=None, file_name="photos.xlsx")
    broken = tmp_path / "broken.xlsx"
    good = write_workbook(tmp_path / "good.xlsx", {"S": [["name", "email"], ["Ada", "ada@example.com"]]})
    broken.write_bytes(good.read_bytes()[:-200])
    with pytest.raises(InvalidFile, match="not an Excel .xlsx workbook"):
        checked(broken, file_format=FileFormat.XLSX)


def test_a_sheet_damaged_after_its_first_rows_stops_the_read_saying_where(tmp_path):
    path = write_workbook(
        tmp_path / "damaged.xlsx", {"S": [["name", "email"], ["Ada", "ada@example.com"], ["Bob", "bob@example.com"]]}
    )
    rewrite_member(path, "xl/worksheets/sheet1.xml", lambda xml: xml.replace(b'<row r="3">', b'<row r="3"><oops>'))
    result = checked(path)  # the check reads the header and the first row
    with result.open(path) as source, pytest.raises(InvalidFile) as raised:
        list(source.rows())
    assert raised.value.message.startswith('The sheet "S" cannot be read after row 2: the workbook is damaged')


def test_an_empty_sheet_is_refused(tmp_path):
    path = write_workbook(tmp_path / "empty.xlsx", {"Empty": []})
    with pytest.raises(InvalidFile, match='The sheet "Empty" is empty.'):
        checked(path)


# JSON and NDJSON.


def test_json_header_is_every_key_in_order_of_first_appearance(tmp_path):
    records = [
        {"name": "Ada", "email": "ada@example.com", "phone": "1"},
        {"email": "bob@example.com", "name": "Bob", "title": "Dr", "score": 1.10, "vip": True, "note": None},
    ]
    path = tmp_path / "people.json"
    path.write_text(json.dumps(records))
    result, rows = read(path)
    assert result.file_format is FileFormat.JSON
    assert result.columns == ["name", "email", "phone", "title", "score", "vip", "note"]
    assert [row.row for row in rows] == [1, 2]
    assert rows[1].extra == {"phone": "", "title": "Dr", "score": "1.1", "vip": "true", "note": ""}


def test_json_numbers_keep_their_written_form_and_nested_values_are_kept_as_json(tmp_path):
    path = tmp_path / "nested.json"
    path.write_bytes(
        codecs.BOM_UTF8
        + b'[{"name": "Ada", "email": "ada@example.com", "n": 0.10, "big": 12345678901234567890,'
        + b' "address": {"city": "London", "lines": ["1 St", 2.5]}, "tags": []}]'
    )
    _result, rows = read(path)
    assert rows[0].extra == {
        "n": "0.10",
        "big": "12345678901234567890",
        "address": '{"city":"London","lines":["1 St",2.5]}',
        "tags": "[]",
    }


def test_a_json_record_that_is_not_an_object_is_a_row_problem_numbered_from_1(tmp_path):
    path = tmp_path / "mixed.json"
    path.write_text('[{"name": "Ada", "email": "ada@example.com"}, "x", [1], {}, null]')
    _result, rows = read(path)
    assert [(row.row, row.problem) for row in rows] == [
        (1, None),
        (2, "record 2 (counting the array's records from 1) is a string, not an object with the columns as keys"),
        (3, "record 3 (counting the array's records from 1) is an array, not an object with the columns as keys"),
        (4, None),
        (5, "record 5 (counting the array's records from 1) is null, not an object with the columns as keys"),
    ]
    assert (rows[3].name, rows[3].email) == ("", "")  # an empty record: missing values, kept as a row


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"name": "Ada", "email": "a@example.com"}', "for one object per line choose ndjson"),
        ("  [", "not valid JSON"),
        ('[{"name": "Ada", "email": "a@example.com"}] [', "not valid JSON"),
        ("[]", "The JSON array is empty"),
        ("[1, 2]", "holds no object with a key"),
    ],
)
def test_json_that_is_not_an_array_of_objects_is_refused(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(InvalidFile, match=message):
        checked(path, file_format=FileFormat.JSON)


def test_json_nested_deeper_than_the_limit_is_refused(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text('[{"name": "Ada", "email": "a@example.com"}, {"x": ' + "[" * 100_000 + "]" * 100_000 + "}]")
    with pytest.raises(InvalidFile, match="Record 2 nests objects and arrays deeper than 32 levels"):
        checked(path)
    shallow = tmp_path / "shallow.json"
    shallow.write_text('[{"name": "Ada", "email": "a@example.com", "x": ' + "[" * 29 + "]" * 29 + "}]")
    assert checked(shallow).columns == ["name", "email", "x"]


def test_json_records_using_too_many_keys_are_refused(tmp_path):
    path = tmp_path / "wide.json"
    path.write_text(json.dumps([{"name": "A", "email": "a@example.com", f"k{n}": n} for n in range(20)]))
    limits = FileLimits(workbook=LIMITS.workbook, json=JsonLimits(max_depth=32, max_columns=10))
    with pytest.raises(InvalidFile, match="more than 10 different keys"):
        checked(path, limits=limits)


def test_json_rows_resume_after_a_record(tmp_path):
    path = tmp_path / "people.json"
    path.write_text(json.dumps([{"name": f"P{n}", "email": f"p{n}@example.com"} for n in range(1, 6)]))
    result = checked(path)
    with result.open(path) as source:
        assert [row.row for row in source.rows(start_after=3)] == [4, 5]
        assert source.count() == 5


def test_ndjson_rows_are_numbered_by_line_and_bad_lines_are_row_problems(tmp_path):
    path = tmp_path / "people.ndjson"
    path.write_bytes(
        b'{"name": "Ada", "email": "ada@example.com"}\r\n'
        b"\n"
        b"[1, 2]\n"
        b"{not json\n"
        b'{"name": "Bob", "email": "bob@example.com", "team": {"id": 7}}'  # no final line break
    )
    result, rows = read(path)
    assert result.file_format is FileFormat.NDJSON and result.columns == ["name", "email", "team"]
    assert [(row.row, row.name, row.problem) for row in rows] == [
        (1, "Ada", None),
        (3, None, "line 3 is an array, not an object with the columns as keys"),
        (4, None, "line 4 is not JSON (Expecting property name enclosed in double quotes)"),
        (5, "Bob", None),
    ]
    assert rows[-1].extra == {"team": '{"id":7}'}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"name": "A", "email": "a@example.com"}\n{"x": ' + b"[" * 50 + b"]" * 50 + b"}\n", "line 2 nests"),
        (b"not json\n[1]\n", "No line of the file is a JSON object"),
        (b'{"name": "A", "email": "a@example.com", "x": "' + b"y" * 2_000 + b'"}\n', "Line 1 is longer than 1,000"),
    ],
)
def test_ndjson_that_nests_too_deep_has_no_object_or_too_long_a_line_is_refused(tmp_path, content, message):
    path = tmp_path / "bad.ndjson"
    path.write_bytes(content)
    with pytest.raises(InvalidFile, match=message):
        check_file(path, file_format=FileFormat.NDJSON, max_line_length=1_000, limits=LIMITS)


# Detection, and a format named for a file that is another.


@pytest.mark.parametrize(
    ("content", "name", "expected"),
    [
        (b'  \n[{"name": "A"}]', "contacts.csv", FileFormat.JSON),  # the content wins over the name
        (b'\xef\xbb\xbf{"name": "A"}\n', "contacts.txt", FileFormat.NDJSON),
        (b"name,email\n", "contacts.json", FileFormat.JSON),  # the content says nothing: the extension does
        (b"name,email\n", "contacts.JSONL", FileFormat.NDJSON),
        (b"name,email\n", "contacts.xlsx", FileFormat.XLSX),
        (b"name,email\n", "contacts.txt", FileFormat.CSV),
        (b"name,email\n", None, FileFormat.CSV),
    ],
)
def test_the_format_is_detected_by_content_then_extension_then_csv(tmp_path, content, name, expected):
    path = tmp_path / "upload"
    path.write_bytes(content)
    assert detect_format(path, name) is expected


def test_a_workbook_is_detected_by_its_content_whatever_its_name(tmp_path):
    path = write_workbook(tmp_path / "export.csv", {"S": [["name", "email"], ["Ada", "ada@example.com"]]})
    assert detect_format(path, "export.csv") is FileFormat.XLSX


@pytest.mark.parametrize(
    ("content", "file_format", "message"),
    [
        (b"name,email\nAda,ada@example.com\n", FileFormat.XLSX, "The file is not an Excel .xlsx workbook"),
        (b'[{"name": "A"}]', FileFormat.XLSX, "looks like JSON; choose that format"),
        (b"name,email\nAda,ada@example.com\n", FileFormat.JSON, "it does not start with ["),
        (b'{"name": "A", "email": "a@example.com"}\n', FileFormat.JSON, "for one object per line choose ndjson"),
        (b'[{"name": "A", "email": "a@example.com"}]', FileFormat.NDJSON, "choose the format json"),
    ],
)
def test_a_format_that_does_not_match_the_content_is_refused(tmp_path, content, file_format, message):
    path = tmp_path / "upload"
    path.write_bytes(content)
    with pytest.raises(InvalidFile, match=message.replace("[", r"\[").replace(".", r"\.")):
        checked(path, file_format=file_format)


def test_a_workbook_named_as_csv_is_refused_saying_it_is_a_workbook(tmp_path):
    path = write_workbook(tmp_path / "book.xlsx", {"S": [["name", "email"], ["Ada", "ada@example.com"]]})
    with pytest.raises(InvalidFile, match="is an Excel .xlsx workbook, not CSV: choose the format xlsx"):
        checked(path, file_format=FileFormat.CSV)


def test_a_mapping_binds_every_format_the_same_way(tmp_path):
    mapping = ColumnMapping(name=("First", "Last"), email="Mail", extra=("Phone",))
    path = write_workbook(
        tmp_path / "book.xlsx", {"S": [["First", "Last", "Mail", "Phone", "Fax"], ["Ada", "L", "a@example.com", 1]]}
    )
    _result, rows = read(path, mapping=mapping)
    assert (rows[0].name, rows[0].email, rows[0].extra) == ("Ada L", "a@example.com", {"Phone": "1"})
    path = tmp_path / "people.ndjson"
    path.write_text('{"First": "Ada", "Last": "L", "Mail": "a@example.com", "Phone": 1, "Fax": 2}\n')
    _result, rows = read(path, mapping=mapping)
    assert (rows[0].name, rows[0].email, rows[0].extra) == ("Ada L", "a@example.com", {"Phone": "1"})


# CSV.


@pytest.mark.parametrize("line_break", [b"\r\n", b"\n", b"\r"])
def test_a_line_break_in_a_quoted_csv_field_is_kept_exactly_as_written(tmp_path, line_break):
    path = tmp_path / "quoted.csv"
    path.write_bytes(b'name,email,company\r\nAda,ada@example.com,"Acme' + line_break + b'Head Office"\r\n')
    _result, rows = read(path)
    assert rows[0].company == "Acme" + line_break.decode() + "Head Office"
