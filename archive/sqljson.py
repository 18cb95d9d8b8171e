"""JSON taken apart by the database, in the SQL of each database the service runs on."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import JSON
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


class JsonWithout(FunctionElement):
    """A JSON column without the member at ``path`` (keys), computed by the database so the
    part left out is never sent or decoded: ``JsonWithout(Item.facts, "document", "text")``;
    the expression of a generated column (``EvidenceItem.listed_facts``). A value whose
    member's parent is not an object (JSON ``null``, a list, a scalar) is left as it is."""

    type = JSON()
    inherit_cache = True

    def __init__(self, column: Any, *path: str) -> None:
        if not path or not all(_JSON_KEY.fullmatch(key) for key in path):
            raise ValueError(f"JSON path keys must be plain names: {path!r}")
        self.path = path
        super().__init__(column)


_JSON_KEY = re.compile(r"[a-z_][a-z0-9_]*")


# Only where the member's parent is an object: PostgreSQL refuses to take a path out of a
# scalar or an array ("cannot delete path in scalar"), and a generated column's error would
# refuse the write of the row. Anything else is kept as it is.

@compiles(JsonWithout, "postgresql")
def _json_without_postgresql(element: JsonWithout, compiler: Any, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    parent = f"({column} #> '{{{','.join(element.path[:-1])}}}')" if element.path[:-1] else column
    return (f"CASE WHEN json_typeof({parent}) = 'object' "
            f"THEN (({column})::jsonb #- '{{{','.join(element.path)}}}')::json ELSE {column} END")


@compiles(JsonWithout, "sqlite")
def _json_without_sqlite(element: JsonWithout, compiler: Any, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    parent = "$" + "".join(f".{key}" for key in element.path[:-1])
    return (f"CASE WHEN json_type({column}, '{parent}') = 'object' "
            f"THEN json_remove({column}, '$.{'.'.join(element.path)}') ELSE {column} END")
