"""Spectral distances, conjugacy classes, tables, figures and the report.

Reads records from disk; never imports ``torch`` or ``ray``.
"""
