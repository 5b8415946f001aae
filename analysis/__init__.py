"""Spectral distances, conjugacy classes, tables, figures and the report.

Reads records from disk; never imports ``torch`` or ``ray``. Public entry points:

- :func:`analysis.distances.spectral_distance` and
  :func:`analysis.distances.pairwise_distance_matrix` (exact 1-Wasserstein between spectra);
- :func:`analysis.conjugacy.conjugacy_classes` and :func:`analysis.conjugacy.pairwise_tests`
  (permutation tests over seed labels, Holm correction, constrained complete-linkage classes);
- :func:`analysis.records.load_records` (validated ``spectra.parquet`` / ``trials.parquet``);
- :func:`analysis.report.run_analysis` and ``python -m analysis DIR`` (writes DIR/analysis/).
"""
