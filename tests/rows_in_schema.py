"""A shared test check: a loaded split has its kind's columns first, each value of its schema type, and ids."""
from forgetting import data

PYARROW_TYPES = {"string": str, "int64": int, "list<string>": list}


def assert_rows_in_schema(ds, kind: str) -> None:
    columns = data.COLUMNS[kind]
    assert ds.column_names[:len(columns)] == list(columns)
    for row in ds:
        for column, type_name in columns.items():
            assert isinstance(row[column], PYARROW_TYPES[type_name]), (column, row[column])
        assert row["id"]
