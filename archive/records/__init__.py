"""Records management of a case: retention classes, legal holds, the disposal-eligibility
report, the case's outcome, and the figures the corps reports every year.

Nothing here deletes anything: the service never disposes of a case; it only says which
cases the policy would allow to be disposed of, and why the others may not be.
"""
