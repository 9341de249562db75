"""The use cases: plain functions named after the business verb.

Each takes a unit of work, a clock and the acting principal; the same functions
serve HTTP, workers and the CLI. Authorization is decided here.
"""
