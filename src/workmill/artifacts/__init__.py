"""Published artifacts: file naming, the release manifest, publishing and download (docs/reference.md "Files of a platform repo")."""
