"""External data files: where they live (data_dir), how they are read (readers), where
they come from (manifest: every file with its pinned public URL and SHA-256) and how
`icm data fetch` downloads them (fetch)."""
