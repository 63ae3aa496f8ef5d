"""Helpers shared by the test suite (on sys.path through pytest's ``pythonpath``).

Test modules import from here and never from each other.
"""
