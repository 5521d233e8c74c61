"""nas.auditing."""
