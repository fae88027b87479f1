"""Sessions, rollups and visitor profiles filled by materialized views on insert.

Superseded by 0005: they counted a row as often as it was inserted and could part from the raw
tables after a crash, and no report read most of them. A new database gets none of them;
0005 drops them from databases that have them. Kept, empty, so that the recorded history of
installed databases stays the same.
"""

OPERATIONS: list[str] = []
