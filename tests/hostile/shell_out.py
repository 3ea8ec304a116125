"""Runs a shell to write outside the sandbox.

expect: forbidden
"""
import subprocess

subprocess.run(["sh", "-c", "echo pwned > __OUTSIDE__/shell.txt"])
