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
    the expression of a generated column (``EvidenceItem.listed_facts``)."""

    type = JSON()
    inherit_cache = True

    def __init__(self, column: Any, *path: str) -> None:
        if not path or not all(_JSON_KEY.fullmatch(key) for key in path):
            raise ValueError(f"JSON path keys must be plain names: {path!r}")
        self.path = path
        super().__init__(column)


_JSON_KEY = re.compile(r"[a-z_][a-z0-9_]*")


@compiles(JsonWithout, "postgresql")
def _json_without_postgresql(element: JsonWithout, compiler: Any, **kw: Any) -> str:
    return f"(({compiler.process(element.clauses, **kw)})::jsonb #- '{{{','.join(element.path)}}}')::json"


@compiles(JsonWithout, "sqlite")
def _json_without_sqlite(element: JsonWithout, compiler: Any, **kw: Any) -> str:
    return f"json_remove({compiler.process(element.clauses, **kw)}, '$.{'.'.join(element.path)}')"
