"""Sleeps instead of burning CPU, so only the wall-clock timeout can stop it.

expect: timeout
"""
import time

time.sleep(3600)
