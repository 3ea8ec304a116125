"""Uses sqlite's ATTACH, which opens files without any audit event.

expect: forbidden
"""
import sqlite3

sqlite3.connect(":memory:").execute("ATTACH DATABASE '__OUTSIDE__/pwned.db' AS pwned")
