"""Mapping memory: the mapping a user last gave for a file with a given set of columns, used for the next such file.

A remembered mapping counts as confident: a person chose it (in a request's mapping, the CLI's --map or a template)
for exactly this set of columns, so the next file with those columns imports without asking again.
"""

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..models import HeaderMapping
from .mapping import ColumnMapping, header_key


def recall(session: Session, columns: list[str]) -> ColumnMapping | None:
    """The mapping last given for a header with these columns, in this header's spelling; None if there is none."""
    remembered = session.get(HeaderMapping, header_key(columns))
    if remembered is None:
        return None
    return ColumnMapping.from_json(remembered.mapping).for_columns(columns)


def remember(session: Session, columns: list[str], mapping: ColumnMapping) -> None:
    """Keep the mapping given for a header with these columns (the latest replaces an earlier one), and commit."""
    key = header_key(columns)
    for _attempt in range(2):  # a first insert can race another request's; the second attempt updates
        remembered = session.get(HeaderMapping, key)
        if remembered is None:
            session.add(HeaderMapping(header_key=key, columns=list(columns), mapping=mapping.to_json()))
        else:
            remembered.columns, remembered.mapping = list(columns), mapping.to_json()
        try:
            session.commit()
            return
        except IntegrityError:
            session.rollback()
