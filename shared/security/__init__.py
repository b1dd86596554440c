"""Who and what the product lets in and out."""
