"""Makes the planted file unreadable.

expect: forbidden
"""
import os

os.chmod("__PLANTED__", 0)
