"""mandos-audit: check and read the audit trail."""
