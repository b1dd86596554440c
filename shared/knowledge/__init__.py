"""Knowledge documents of each agent: loading (text, Markdown, HTML, PDF), splitting, storing, indexing.

`python -m shared.knowledge` ingests, lists and deletes documents. Vendor libraries (pypdf,
Beautiful Soup, the text splitters, Azure AI Search) load on first use, never on import.
"""
