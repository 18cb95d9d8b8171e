"""Certified exports: requested, approved by another person, built by a worker as one ZIP.

* :mod:`~archive.exports.service`: requesting, approving and downloading (what routes call).
* :mod:`~archive.exports.access`: who may request, approve, see and download an export.
* :mod:`~archive.exports.links`: signed, time-limited download links.
* :mod:`~archive.exports.plan`: what goes in, gathered and checked before the bytes flow.
* :mod:`~archive.exports.bag`: the bag's layout, written from a plan; :mod:`~archive.exports.bagzip`
  streams it as a ZIP; :mod:`~archive.exports.certificate` is its sealed PDF certificate.
* :mod:`~archive.exports.build`: the build lifecycle (building, waiting, ready, failed);
  :mod:`~archive.exports.waiting` wakes exports that wait for sealing.
* :mod:`~archive.exports.errors`: ``ExportFailed`` and ``ExportWaiting``.
"""
