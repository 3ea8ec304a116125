"""Opens the outside directory and unlinks relative to that descriptor.

expect: forbidden
"""
import os

directory = os.open(os.path.dirname("__PLANTED__"), os.O_RDONLY)
os.unlink(os.path.basename("__PLANTED__"), dir_fd=directory)
