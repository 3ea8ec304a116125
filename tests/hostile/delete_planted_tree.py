"""Removes the whole directory that holds the planted file.

expect: forbidden
"""
import os
import shutil

shutil.rmtree(os.path.dirname("__PLANTED__"))
