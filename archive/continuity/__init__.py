"""Continuity of recording: devices and their clocks, enforcement actions, gaps and their review.

* :mod:`~archive.continuity.models` - the tables (devices, actions, gaps, analysis state);
* :mod:`~archive.continuity.analysis` - the gap analysis itself, on plain values;
* :mod:`~archive.continuity.runs` - requests for analysis, and running it against the database;
* :mod:`~archive.continuity.devices` - device clocks and enforcement actions;
* :mod:`~archive.continuity.gaps` - explanations of gaps and their review;
* :mod:`~archive.continuity.report` - the case's continuity report, the one the API, the case
  page, case verification and certified exports all use.
"""
