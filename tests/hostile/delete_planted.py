"""Deletes a file the test planted outside the sandbox.

expect: forbidden
"""
import os

os.remove("__PLANTED__")
