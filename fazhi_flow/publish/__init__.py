"""The published report: a plain document model, how it is merged from approved material, and the
renderers (plain text, HTML with a print stylesheet, DOCX in GB/T 9704-2012 format, PDF)."""
