"""Loads ctypes to call libc directly, past every audit hook.

expect: forbidden
"""
import ctypes

ctypes.CDLL(None).kill(__PARENT_PID__, 9)
