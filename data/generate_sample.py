"""Generate contact files to import: realistic rows with a known mix of problems.

By default the rows are fresh: every address carries the file's seed (lena.kim1234+s5@example.com), so a file
shares no address with the bundled sample, nor with a file made with another seed. Importing it finds no
duplicates but the file's own deliberate ones: about 5 % of its rows repeat an earlier address of the same file,
in another case or with spaces around it. --sample writes the bundled sample's rows instead: data/test-data-1000.csv
as it is, continued when more than 1,000 rows are asked for. The same seed always gives the same bytes, and rows
are streamed, so a million-row file takes no more memory than a small one.
"""

import argparse
import csv
import random
import secrets
import unicodedata
from collections.abc import Iterator
from pathlib import Path

DEFAULT_ROWS = 1000
DEFAULT_SEED = 1000  # the bundled sample's
SAMPLE_OUT = Path(__file__).resolve().parent / "test-data-1000.csv"  # where --sample writes by default
HEADER = ["name", "email", "company"]

# Share of rows of each problem kind; the remaining rows are valid contacts with unique emails.
ROW_KINDS = [
    ("duplicate", 0.05),  # repeats an earlier email, sometimes in another case or with spaces around it
    ("missing", 0.03),  # blank name, blank email, or both
    ("invalid_email", 0.03),  # missing @, double @, a space, no top-level domain...
    ("blocked", 0.02),  # an address at BLOCKED_DOMAIN, which the simulated downstream refuses
    ("ragged", 0.004),  # too few or too many fields
]
# Share of companies that are absent or must be quoted; the rest are plain.
COMPANY_KINDS = [("none", 0.10), ("comma", 0.03), ("quote", 0.015), ("newline", 0.002)]
SPACED_NAME_SHARE = 0.02  # names with stray spaces around them, which the validator trims

RECENT_CONTACTS = 1000  # earlier contacts a duplicate may repeat; bounded so memory stays flat
BLOCKED_DOMAIN = "blocked.example"
DOMAINS = ["example.com"] * 5 + ["example.org"] * 2 + ["example.net", "mail.example", "corp.example", "inbox.example"]
NO_TLD_HOSTS = ["example", "mail", "corp-mail"]

FIRST_NAMES = [
    "Aisha",
    "Alejandro",
    "Amelia",
    "Ana",
    "Arjun",
    "Ben",
    "Björn",
    "Carlos",
    "Chloé",
    "Daniel",
    "Elena",
    "Emma",
    "Fatima",
    "Grace",
    "Hannah",
    "Hiroshi",
    "Isabel",
    "Jack",
    "James",
    "José",
    "Julia",
    "Kenji",
    "Lars",
    "Leila",
    "Liam",
    "Lucas",
    "Maria",
    "Mateo",
    "Mei",
    "Mohammed",
    "Noah",
    "Olivia",
    "Omar",
    "Priya",
    "Rafael",
    "Sara",
    "Sofia",
    "Søren",
    "Thomas",
    "Wei",
    "Yusuf",
    "Zoë",
]
LAST_NAMES = [
    "Adams",
    "Ahmed",
    "Andersen",
    "Brown",
    "Chen",
    "Costa",
    "Dubois",
    "Fernández",
    "Fischer",
    "García",
    "Hansen",
    "Hughes",
    "Ivanova",
    "Jensen",
    "Kim",
    "Kowalski",
    "Lee",
    "Martin",
    "Müller",
    "Nakamura",
    "Nguyen",
    "Novak",
    "O'Brien",
    "Okafor",
    "Patel",
    "Pereira",
    "Rossi",
    "Santos",
    "Schmidt",
    "Silva",
    "Singh",
    "Smith",
    "Smith-Jones",
    "Suzuki",
    "Taylor",
    "Walker",
    "Williams",
    "Yamamoto",
    "Zhang",
]
COMPANY_WORDS = [
    "Acme",
    "Blue Harbor",
    "Bright Path",
    "Cedar",
    "Evergreen",
    "Granite",
    "Harbor Point",
    "Ironbridge",
    "Lakeside",
    "Northwind",
    "Pioneer",
    "Redwood",
    "Riverside",
    "Silver Birch",
    "Summit",
    "Tidewater",
]
INDUSTRIES = [
    "Analytics",
    "Bakery",
    "Capital",
    "Consulting",
    "Design",
    "Energy",
    "Foods",
    "Health",
    "Logistics",
    "Media",
    "Outfitters",
    "Robotics",
    "Software",
    "Travel",
]
COMPANY_SUFFIXES = ["Ltd", "Inc.", "GmbH", "LLC", "Group", "& Co.", "", "", ""]
DEPARTMENTS = ["Accounts Payable", "Head Office", "Attn: Purchasing", "Building 2"]
_ASCII_LETTERS = str.maketrans({"ø": "o", "Ø": "O", "æ": "ae", "ß": "ss", "ł": "l"})


def generate_rows(rows, seed=DEFAULT_SEED, tag=None) -> Iterator[list[str]]:
    """Yield rows data rows (no header) as lists of cells, the same ones for the same seed and tag.

    With a tag every address carries it as a subaddress (local+tag@domain): files with different tags share no
    address, and none shares one with the bundled sample, whose rows (seed DEFAULT_SEED) have no tag.
    """
    rng = random.Random(seed)
    recent = []
    for index in range(rows):
        kind = _pick(rng, ROW_KINDS, default="valid")
        if kind == "duplicate" and recent:
            yield _duplicate(rng, recent)
            continue
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        name = _spaced(rng, f"{first} {last}")
        # The row index inside the local part keeps every fresh address unique without remembering them.
        local = _local_part(rng, first, last, index) + (f"+{tag}" if tag else "")
        email = f"{local}@{rng.choice(DOMAINS)}"
        company = _company(rng)
        if kind == "missing":
            yield _missing(rng, name, email, company)
        elif kind == "invalid_email":
            yield [name, _invalid_email(rng, local, first, last, index), company]
        elif kind == "blocked":
            yield [name, f"{local}@{BLOCKED_DOMAIN}", company]
        elif kind == "ragged":
            yield _ragged(rng, name, email, company)
        else:
            _remember(rng, recent, (name, email, company))
            yield [name, email, company]


def write_csv(path, rows, seed=DEFAULT_SEED, tag=None):
    """Write a header and rows generated rows to path, returning the number of data rows written."""
    written = 0
    with open(path, "w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(HEADER)
        for cells in generate_rows(rows, seed=seed, tag=tag):
            writer.writerow(cells)
            written += 1
    return written


def _remember(rng, recent, contact):
    if len(recent) < RECENT_CONTACTS:
        recent.append(contact)
    else:
        recent[rng.randrange(RECENT_CONTACTS)] = contact


def _duplicate(rng, recent):
    name, email, company = rng.choice(recent)
    variant = rng.randrange(4)
    if variant == 1:
        email = email.upper()
    elif variant == 2:
        local, domain = email.split("@")
        email = f"{local.title()}@{domain.capitalize()}"
    elif variant == 3:
        email = rng.choice([f" {email}", f"{email} ", f"  {email}  "])
    if rng.random() < 0.3:
        company = _company(rng)
    return [name, email, company]


def _missing(rng, name, email, company):
    blank = rng.choice(["", "", " "])
    which = rng.random()
    if which < 0.45:
        return [blank, email, company]
    if which < 0.9:
        return [name, blank, company]
    return [blank, blank, company]


def _invalid_email(rng, local, first, last, index):
    domain = rng.choice(DOMAINS)
    mistake = rng.randrange(6)
    if mistake == 0:
        return f"{local}{domain}"
    if mistake == 1:
        return f"{local}@@{domain}"
    if mistake == 2:
        return f"{_ascii(first)} {_ascii(last)}{index}@{domain}"
    if mistake == 3:
        return f"{local}@{rng.choice(NO_TLD_HOSTS)}"
    if mistake == 4:
        return f"{local}@"
    return f"{local}@{domain.replace('.', ',')}"


def _ragged(rng, name, email, company):
    if rng.random() < 0.5:
        return [name, email]
    # What an unquoted comma in the company does to a row.
    return [name, email, f"{rng.choice(LAST_NAMES)}", f" {rng.choice(LAST_NAMES)} & Partners"]


def _company(rng):
    kind = _pick(rng, COMPANY_KINDS, default="plain")
    word, industry = rng.choice(COMPANY_WORDS), rng.choice(INDUSTRIES)
    if kind == "none":
        return ""
    if kind == "comma":
        if rng.random() < 0.5:
            return f"{word} {industry}, {rng.choice(['Inc.', 'Ltd', 'LLC'])}"
        return f"{rng.choice(LAST_NAMES)}, {rng.choice(LAST_NAMES)} & Partners"
    if kind == "quote":
        return f'The "{word}" {industry} Company'
    if kind == "newline":
        return f"{word} {industry}\n{rng.choice(DEPARTMENTS)}"
    return f"{word} {industry} {rng.choice(COMPANY_SUFFIXES)}".strip()


def _pick(rng, kinds, default):
    draw = rng.random()
    for kind, share in kinds:
        if draw < share:
            return kind
        draw -= share
    return default


def _spaced(rng, name):
    if rng.random() < SPACED_NAME_SHARE:
        return rng.choice([f" {name}", f"{name} ", f"  {name}  "])
    return name


def _local_part(rng, first, last, index):
    # Digits after letters and a distinct separator per pattern keep the patterns from colliding.
    number = index * 10 + rng.randrange(10)
    first, last = _ascii(first), _ascii(last)
    pattern = rng.randrange(3)
    if pattern == 0:
        return f"{first}.{last}{number}"
    if pattern == 1:
        return f"{first}_{last}{number}"
    return f"{first[0]}{last}{number}"


def _ascii(word):
    decomposed = unicodedata.normalize("NFKD", word.translate(_ASCII_LETTERS))
    return "".join(character for character in decomposed if character.isascii() and character.isalpha()).lower()


def fresh_tag(seed):
    """The tag a fresh file's addresses carry: its seed, so files made with different seeds share no address."""
    return f"s{seed}"


def main(argv=None):
    """Write a contact file from the command line."""
    summary, _, details = __doc__.partition("\n\n")
    parser = argparse.ArgumentParser(
        description=summary, epilog=details, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="data rows to write (default %(default)s)")
    rows_from = parser.add_mutually_exclusive_group()
    rows_from.add_argument(
        "--seed",
        type=int,
        help="fresh rows from this seed: the same seed gives the same file (default: a new random seed, printed)",
    )
    rows_from.add_argument(
        "--sample",
        action="store_true",
        help=f"the bundled sample's rows instead of fresh ones (importing them again gives duplicates); "
        f"the default --out is then {SAMPLE_OUT.relative_to(SAMPLE_OUT.parent.parent)}",
    )
    parser.add_argument("--out", type=Path, help="file to write (default: contacts-<rows>.csv in this folder)")
    args = parser.parse_args(argv)
    if args.sample:
        out = args.out or SAMPLE_OUT
        written = write_csv(out, args.rows, seed=DEFAULT_SEED)
        print(f"wrote {written} rows of the bundled sample to {out}")
        return
    seed = secrets.randbelow(10**9) if args.seed is None else args.seed
    out = args.out or Path(f"contacts-{args.rows}.csv")
    written = write_csv(out, args.rows, seed=seed, tag=fresh_tag(seed))
    print(f"wrote {written} fresh rows to {out} (--seed {seed} makes the same file again)")


if __name__ == "__main__":
    main()
