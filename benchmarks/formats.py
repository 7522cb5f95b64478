"""Formats: reading an .xlsx, JSON or NDJSON file against reading a CSV file of the same rows, and peak memory.

Each figure is what an import spends on reading its file: the upload check (check_file) and one pass over the
rows as SourceRows (CheckedFile.open(...).rows()), in a fresh child process per file so each peak RSS (ru_maxrss)
belongs to that file alone. Within a round the formats run one after another on the same rows (the bundled
sample's generator), so each format's rows/s is printed as a share of the CSV's in that round. Peak RSS is
compared between the small and the large file of each format: the target is large <= 1.2 x small. Then each
format's file goes through a whole batch import on a real server (upload, check, read, validate, store), timed
until it is staged, again as a share of the CSV's rows/s.

The workbooks are written by openpyxl (write_only), which stores text inline; a workbook saved by Excel keeps
its text in a shared-strings table instead, which openpyxl loads whole. That table's memory is measured on its
own: a table of the large file's distinct texts, loaded the way openpyxl loads it, against its XML's size
(XLSX_MAX_SHARED_STRINGS_MB caps that XML).

    .venv/bin/python benchmarks/formats.py [--runs 2] [--small 100000] [--large 1000000] [--import-rows 100000]
        [--smoke]

--smoke runs one round of 1,000 rows against 2,000, and imports of 1,000 rows. Generated files are kept under
$TMPDIR/importdash-bench.
"""

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from xml.sax.saxutils import escape

import common

FORMATS = ("csv", "xlsx", "json", "ndjson")
TIMEOUT = 3600


def format_file(rows, file_format):
    """The path of the sample's `rows` rows in the format, written once from the CSV (same header, same cells)."""
    source = common.sample_file(rows)
    if file_format == "csv":
        return source
    path = source.with_suffix(f".{file_format}")
    if path.exists():
        return path
    partial = path.with_suffix(f".{file_format}.partial")
    with open(source, newline="", encoding="utf-8") as file:
        reader = csv.reader(file)
        header = next(reader)
        if file_format == "xlsx":
            from openpyxl import Workbook

            workbook = Workbook(write_only=True)
            sheet = workbook.create_sheet("Contacts")
            sheet.append(header)
            for cells in reader:
                sheet.append(cells)
            workbook.save(partial)
        else:
            with open(partial, "w", encoding="utf-8") as out:
                if file_format == "json":
                    out.write("[\n")
                for number, cells in enumerate(reader):
                    record = json.dumps(dict(zip(header, cells, strict=False)), ensure_ascii=False)
                    if file_format == "json":
                        out.write(("," if number else "") + record + "\n")
                    else:
                        out.write(record + "\n")
                if file_format == "json":
                    out.write("]\n")
    partial.rename(path)
    return path


def expected_rows(rows, file_format):
    """The rows a reader yields: all of them, but for a workbook's, where a row of empty cells is a blank row."""
    if file_format != "xlsx":
        return rows
    with open(common.sample_file(rows), newline="", encoding="utf-8") as file:
        return rows - sum(1 for cells in csv.reader(file) if not any(cells))


def read_in_child(path, file_format):
    """Check and read the file in a fresh process; return its figures (rows, seconds, peak RSS in kB)."""
    result = subprocess.run(
        [sys.executable, __file__, "--read", str(path), file_format],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"reading {path.name} failed:\n{result.stderr}")
    return json.loads(result.stdout)


def read_file(path, file_format):
    """The child's work: check the file as an upload is checked, then read every row as a job does."""
    from importdash.config import Config
    from importdash.models import FileFormat
    from importdash.services.reader import FileLimits, check_file

    started, cpu_started = time.perf_counter(), time.process_time()
    checked = check_file(
        path,
        file_format=FileFormat(file_format),
        max_line_length=Config.MAX_LINE_LENGTH,
        limits=FileLimits.from_config(vars(Config)),
    )
    check_seconds = time.perf_counter() - started
    rows = 0
    with checked.open(path) as source:
        for _row in source.rows():
            rows += 1
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    figures = {"rows": rows, "check_seconds": check_seconds, "seconds": seconds, "cpu_seconds": cpu_seconds}
    print(json.dumps(figures | {"peak_kb": peak}))


def staged_through_server(path):
    """Batch-import the file through a real server on a fresh database; return (rows, seconds from the start of
    the upload until the import was staged, its total known: check, read, validate and store)."""
    workdir = common.scratch_dir("formats-")
    try:
        with common.Server(workdir, common.sqlite_url(workdir), rate_per_second=0, simulated_latency_ms=0) as server:
            staged_at = []
            started = time.perf_counter()
            status, body = server.upload("/api/import/batch", path)
            assert status == 202, body

            def watch(job):
                if job["total_records"] is not None and not staged_at:
                    staged_at.append(time.perf_counter())

            job = server.wait_for_job(body["job"]["id"], timeout=TIMEOUT, poll=0.2, on_poll=watch)
    finally:
        common.remove(workdir)
    assert job["status"] == "completed" and job["processed_count"] == job["total_records"], job
    return job["total_records"], staged_at[0] - started


def shared_strings_in_child(rows):
    result = subprocess.run(
        [sys.executable, __file__, "--shared-strings", str(rows)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"measuring the shared strings failed:\n{result.stderr}")
    return json.loads(result.stdout)


def measure_shared_strings(rows):
    """The child's work: load a shared-strings table of the file's distinct texts as openpyxl does; its memory."""
    import tracemalloc

    from openpyxl.reader.strings import read_string_table

    path = common.sample_file(rows).with_suffix(".sharedStrings.xml")
    if not path.exists():
        seen = {}
        with open(common.sample_file(rows), newline="", encoding="utf-8") as file:
            for cells in csv.reader(file):
                for cell in cells:
                    seen.setdefault(cell, None)
        partial = path.with_suffix(".xml.partial")
        with open(partial, "w", encoding="utf-8") as out:
            out.write('<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">')
            for text in seen:
                out.write(f'<si><t xml:space="preserve">{escape(text)}</t></si>')
            out.write("</sst>")
        partial.rename(path)
    tracemalloc.start()
    with open(path, "rb") as file:
        table = read_string_table(file)
    current, _peak = tracemalloc.get_traced_memory()
    print(json.dumps({"strings": len(table), "xml_bytes": os.path.getsize(path), "held_bytes": current}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--import-rows", type=int, default=100_000, help="rows of the batch imports through a server")
    args = common.parse_args(parser, smoke={"runs": 1, "small": 1_000, "large": 2_000, "import_rows": 1_000})
    print(f"formats: check + read of {args.large:,} and {args.small:,} rows, each format against CSV", flush=True)
    files = {(rows, name): format_file(rows, name) for rows in (args.small, args.large) for name in FORMATS}
    for (rows, name), path in files.items():
        print(f"  {name:6} {rows:>9,} rows: {path.stat().st_size / (1 << 20):7.1f} MB ({path.name})", flush=True)
    expected = {(rows, name): expected_rows(rows, name) for rows, name in files}
    shares = {name: [] for name in FORMATS}  # rows per second of wall time, as a share of CSV's
    cpu_shares = {name: [] for name in FORMATS}  # rows per CPU second: steadier on a shared machine
    growth = {name: [] for name in FORMATS}
    for round_number in range(1, args.runs + 1):
        print(f"round {round_number}:", flush=True)
        peaks = {}
        for rows in (args.small, args.large):
            baseline = cpu_baseline = None
            for name in FORMATS:
                figures = read_in_child(files[rows, name], name)
                assert figures["rows"] == expected[rows, name], (name, rows, figures)
                rate, cpu_rate = rows / figures["seconds"], rows / figures["cpu_seconds"]
                baseline, cpu_baseline = baseline or rate, cpu_baseline or cpu_rate
                peaks[rows, name] = figures["peak_kb"]
                if rows == args.large:
                    shares[name].append(rate / baseline)
                    cpu_shares[name].append(cpu_rate / cpu_baseline)
                print(
                    f"  {name:6} {rows:>9,} rows: {rate:9,.0f} rows/s ({rate / baseline:6.1%} of CSV's), "
                    f"{cpu_rate:9,.0f} rows per CPU s ({cpu_rate / cpu_baseline:6.1%}), "
                    f"check {figures['check_seconds']:5.1f} s of {figures['seconds']:6.1f} s, "
                    f"peak RSS {figures['peak_kb'] / 1024:6.1f} MB",
                    flush=True,
                )
        for name in FORMATS:
            ratio = peaks[args.large, name] / peaks[args.small, name]
            growth[name].append(ratio)
            print(f"  {name:6} peak RSS {args.large:,} rows / {args.small:,} rows = {ratio:.3f}x", flush=True)
    print(f"batch imports of {args.import_rows:,} rows through a server, until staged:", flush=True)
    imports = {name: [] for name in FORMATS}
    for round_number in range(1, args.runs + 1):
        baseline = None
        for name in FORMATS:
            rows, seconds = staged_through_server(format_file(args.import_rows, name))
            rate = rows / seconds
            baseline = baseline or rate
            imports[name].append(rate / baseline)
            print(f"  round {round_number} {name:6}: {rate:8,.0f} rows/s ({rate / baseline:6.1%} of CSV's)", flush=True)
    strings = shared_strings_in_child(args.large)
    print(
        f"shared strings (apart): {strings['strings']:,} distinct texts of the {args.large:,}-row file, "
        f"{strings['xml_bytes'] / (1 << 20):.1f} MB of XML, hold {strings['held_bytes'] / (1 << 20):.1f} MB "
        f"once loaded ({strings['held_bytes'] / strings['xml_bytes']:.2f}x the XML)"
    )
    print("summary, over rounds (min-max):")
    for name in FORMATS[1:]:
        print(
            f"  {name:6} rows/s {min(shares[name]):.1%}-{max(shares[name]):.1%} of CSV's at {args.large:,} rows "
            f"(per CPU second {min(cpu_shares[name]):.1%}-{max(cpu_shares[name]):.1%}); "
            f"peak RSS growth {min(growth[name]):.3f}-{max(growth[name]):.3f}x (target <= 1.2x)"
        )
    print(f"  csv    peak RSS growth {min(growth['csv']):.3f}-{max(growth['csv']):.3f}x")
    for name in FORMATS[1:]:
        print(
            f"  {name:6} batch import of {args.import_rows:,} rows, staged: "
            f"{min(imports[name]):.1%}-{max(imports[name]):.1%} of CSV's rows/s"
        )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--read"]:
        read_file(Path(sys.argv[2]), sys.argv[3])
    elif sys.argv[1:2] == ["--shared-strings"]:
        measure_shared_strings(int(sys.argv[2]))
    else:
        main()
