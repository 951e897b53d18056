"""Published artifacts: file naming, the release manifest, publishing and download (SPEC §10)."""
